"""The experimental landmark family: invariant keys, the postings index against brute force, and
Hough matching that recovers a speed change's time factor and pitch shift."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import soxr

from earmark import synth
from earmark.fingerprint.landmarks import TripletConfig, make_keys, probe_ranges, triplets
from earmark.fingerprint.peaks import PeakConfig, extract_peaks
from earmark.index.postings import Postings, brute_force_lookup
from earmark.match.landmarks import build_postings, match_triplets

PC = PeakConfig()
QC = replace(PC, nbhd_frames=6, nbhd_bins=4)
TC = TripletConfig()
SR = PC.sample_rate


def test_keys_ignore_pitch_translation_and_time_scaling():
    ratio = np.array([0.3, 0.55])
    d12, d23, p1 = np.array([2.0, -3.5]), np.array([-1.0, 4.0]), np.array([13.0, 26.0])
    k = make_keys(ratio, d12, d23, p1, TC)
    # the same triplets 0.4 st higher (same octave cell) and played faster: same keys
    assert np.array_equal(k, make_keys(ratio, d12, d23, p1 + 0.4, TC))
    assert not np.array_equal(k, make_keys(ratio, d12 + 1.0, d23, p1, TC))


def test_probe_ranges_cover_the_neighbouring_ratio_and_octave_cells():
    k = make_keys(np.array([0.5]), np.array([1.0]), np.array([2.0]), np.array([23.9]), TC)
    lo, hi, row = probe_ranges(k)
    shifted = make_keys(np.array([0.5 + 1 / 32]), np.array([1.0]), np.array([2.0]), np.array([24.3]), TC)
    assert any(lo[i] <= shifted[0] <= hi[i] for i in range(len(lo)))
    assert set(row.tolist()) == {0}


def test_postings_lookup_equals_brute_force():
    rng = np.random.default_rng(3)
    keys = rng.integers(0, 400, 3000).astype(np.uint32)
    lo = rng.integers(0, 400, 80)
    hi = lo + rng.integers(0, 4, 80)
    p = Postings.build(keys, row=np.arange(len(keys)))
    q, post = p.lookup(lo, hi)
    assert {(int(a), int(p.columns["row"][b])) for a, b in zip(q, post, strict=True)} == brute_force_lookup(
        keys, lo, hi)


@pytest.mark.parametrize("speed", [1.0, 1.12])
def test_a_sped_up_excerpt_matches_with_its_factors(speed):
    songs = [synth.song(s, duration=40.0, sr=SR) for s in (21, 22, 23)]
    postings = build_postings(np.arange(3), [triplets(extract_peaks(x, PC), TC) for x in songs])
    excerpt = songs[1][10 * SR : 22 * SR]
    query = soxr.resample(excerpt, SR * speed, SR).astype(np.float32) if speed != 1.0 else excerpt
    cands = match_triplets(triplets(extract_peaks(query, QC), TC, query=True), postings)
    assert cands and cands[0].rec_id == 1
    best = cands[0]
    assert best.time_factor == pytest.approx(speed, rel=0.02)
    assert best.pitch_st == pytest.approx(12 * np.log2(speed), abs=0.25)
    assert best.offset_s == pytest.approx(10.0, abs=0.15)
    others = [c.anchors for c in cands if c.rec_id != 1]
    assert best.anchors > 3 * max(others, default=1)
