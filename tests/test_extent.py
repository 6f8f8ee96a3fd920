"""The extent of a decided match: its span extended as far as the recording's peaks keep being found
in the item, never beyond the copy, never shrunk; and peak agreement between two recordings."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from conftest import SR, write_audio

from earmark import synth
from earmark.fingerprint.peaks import PeakConfig, Peaks
from earmark.fingerprint.pipeline import fingerprint_source
from earmark.match.extent import ExtentConfig, extend, peak_agreement, profile
from earmark.match.model import Match

CFG = ExtentConfig()


def _rec(reader, track_id: str) -> int:
    return next(i for i, r in reader.recordings.items() if r.track_id == track_id)


def _match(rec_id: int, track_id: str, q0: float, q1: float, offset: float, factor: float = 1.0) -> Match:
    """A match placing item time t at recording time ``offset + factor * t``."""
    return Match(track_id=track_id, rec_id=rec_id, query_start=q0, query_end=q1,
                 ref_start=offset + factor * q0, ref_end=offset + factor * q1, score=30.0, fmp=1e-30,
                 ber=None, chance_ber=None, n_items=0, n_distinct=0, family="landmark", anchors=20,
                 time_factor=factor)


@pytest.fixture(scope="module")
def partial(library, tmp_path_factory):
    """12 s of another artist's song with 5 s of song 3 (its seconds 20-25) at item seconds 4-9."""
    song = library.song(3)
    x = 0.5 * synth.song(91, duration=12.0, sr=SR)[: 12 * SR]
    x[4 * SR: 9 * SR] = song.excerpt(20.0, 5.0)
    path = write_audio(tmp_path_factory.mktemp("extent") / "partial.mp3", x)
    return song, path


def _extend(reader, path, m: Match, config: ExtentConfig = CFG) -> Match:
    fa = fingerprint_source(path, reader.config, peaks=reader.landmark_config.query_peaks)
    return extend(m, fa.peaks, fa.fingerprint.duration, reader.peak_map(m.rec_id),
                  reader.landmark_config.peaks, config, ref_duration=reader.recording_duration(m.rec_id))


def test_a_span_inside_a_partial_copy_reaches_the_copys_ends_and_no_further(library, reader, partial):
    song, path = partial
    rec = _rec(reader, song.track_id)
    m = _match(rec, song.track_id, 5.5, 7.5, offset=16.0)  # evidence in the middle of the copy
    out = _extend(reader, path, m)
    assert 3.7 <= out.query_start <= 4.3 and 8.7 <= out.query_end <= 9.3
    # the same alignment, so the recording's side follows
    assert math.isclose(out.ref_start - out.query_start, 16.0)
    assert math.isclose(out.ref_end - out.query_end, 16.0)
    assert (out.score, out.fmp, out.anchors, out.family) == (m.score, m.fmp, m.anchors, m.family)


def test_the_extent_never_shrinks_a_span_and_ignores_a_misplaced_one(library, reader, partial):
    song, path = partial
    rec = _rec(reader, song.track_id)
    wide = _match(rec, song.track_id, 2.0, 11.0, offset=16.0)  # wider than the copy: kept as it is
    assert _extend(reader, path, wide) == wide
    wrong = _match(rec, song.track_id, 5.5, 7.5, offset=4.0)  # 12 s off: the span's peaks are chance
    assert _extend(reader, path, wrong) == wrong
    other = _match(_rec(reader, library.song(5).track_id), library.song(5).track_id, 5.5, 7.5, offset=16.0)
    assert _extend(reader, path, other) == other


def test_a_copy_of_the_recordings_start_is_not_extended_before_it(library, reader, tmp_path):
    song = library.song(2)
    x = np.concatenate([0.5 * synth.song(92, duration=3.0, sr=SR)[: 3 * SR], song.excerpt(0.0, 6.0)])
    path = write_audio(tmp_path / "intro.wav", x)
    rec = _rec(reader, song.track_id)
    out = _extend(reader, path, _match(rec, song.track_id, 4.5, 8.0, offset=-3.0))
    assert out.ref_start >= 0.0 and out.query_start >= 3.0 - 1e-9 and out.query_end >= 8.75


def test_the_profile_counts_found_peaks_above_chance_inside_the_copy_only(library, reader, partial):
    song, path = partial
    rec = _rec(reader, song.track_id)
    fa = fingerprint_source(path, reader.config, peaks=reader.landmark_config.query_peaks)
    p = profile(_match(rec, song.track_id, 5.5, 7.5, offset=16.0), fa.peaks, fa.fingerprint.duration,
                reader.peak_map(rec), reader.landmark_config.peaks, CFG)
    t = p.start + p.bin_s * (np.arange(len(p.n)) + 0.5)
    inside, outside = (t > 4.3) & (t < 8.7), (t < 3.7) | (t > 9.3)
    rate = lambda sel: p.k[sel].sum() / p.n[sel].sum()  # noqa: E731
    chance = lambda sel: p.mu[sel].sum() / p.n[sel].sum()  # noqa: E731
    assert rate(inside) > 0.3 and rate(inside) > 3 * chance(inside)
    assert rate(outside) < 2 * chance(outside) + 0.05


def test_peak_agreement_finds_a_stretched_transposed_copy_only_with_the_right_mapping(rng):
    pc = PeakConfig()
    n = 4000
    a_frames = np.sort(rng.integers(0, 2000, n)).astype(np.uint32)
    a_bins = rng.integers(0, pc.n_bins - 6, n).astype(np.uint8)
    # b is a played 5 % slower and 3 bins (one semitone) higher, starting at its frame 100
    b = ((a_frames * 1.05 + 100).round().astype(np.uint32), (a_bins + 3).astype(np.uint8), None)
    a = (a_frames, a_bins, None)
    fd = pc.frame_duration
    b_start = (500 * 1.05 + 100) * fd
    right = peak_agreement(a, 500 * fd, b, b_start, 8.0, b_per_a=1.05, shift_bins=3, pc=pc, config=CFG)
    assert right[0] > 0.95 and CFG.shares_audio(*right)
    for kw in ({"b_per_a": 1.05, "shift_bins": -3}, {"b_per_a": 1.0, "shift_bins": 3}):
        wrong = peak_agreement(a, 500 * fd, b, b_start, 8.0, pc=pc, config=CFG, **kw)
        assert wrong[0] < 0.5
    unrelated = (np.sort(rng.integers(0, 2000, n)).astype(np.uint32),
                 rng.integers(0, pc.n_bins, n).astype(np.uint8), None)
    assert not CFG.shares_audio(*peak_agreement(a, 500 * fd, unrelated, 500 * fd, 8.0, pc=pc, config=CFG))


def test_extent_config_rejects_nonsense():
    with pytest.raises(Exception, match="bin_s"):
        dataclasses.replace(CFG, bin_s=0.0)


def test_a_coarsely_placed_span_is_refined_before_its_peaks_are_counted(library, reader, partial):
    # Chromaprint places a match to within half an item (0.06 s): 3 peak frames of tolerance would
    # miss most peaks without the refinement
    song, path = partial
    rec = _rec(reader, song.track_id)
    out = _extend(reader, path, _match(rec, song.track_id, 5.5, 7.5, offset=16.07))
    assert 3.7 <= out.query_start <= 4.3 and 8.7 <= out.query_end <= 9.3
    assert math.isclose(out.ref_start - out.query_start, 16.07)  # the alignment itself is not moved
    no_search = dataclasses.replace(CFG, search_s=0.0)
    coarse = _match(rec, song.track_id, 5.5, 7.5, offset=16.07)
    assert _extend(reader, path, coarse, no_search) == coarse


def _peaks(times: np.ndarray, pitches: np.ndarray) -> Peaks:
    z = np.zeros(len(times), np.float32)
    return Peaks(time=times, pitch=pitches, strength=z, level=z)


@pytest.mark.parametrize("tail, reaches", [("silent", 10.0), ("other audio", 7.0)])
def test_a_copy_runs_to_the_end_through_silence_on_both_sides(rng, tail, reaches):
    pc = PeakConfig()
    # a 20 s recording with peaks up to 17 s and a silent tail; the item copies its seconds 10-20
    t = np.sort(rng.uniform(0.0, 17.0, 17 * 30))
    pitch = rng.uniform(0, 59, len(t))
    centre = pc.n_fft / 2 / pc.sample_rate
    ref = (np.round((t - centre) / pc.frame_duration).astype(np.uint32), np.round(pitch * 3).astype(np.uint8),
           None)
    copy = t >= 10.0
    it, ip = t[copy] - 10.0, pitch[copy]
    if tail == "other audio":  # the item goes on with something else
        extra = np.sort(rng.uniform(7.0, 10.0, 90))
        it, ip = np.r_[it, extra], np.r_[ip, rng.uniform(0, 59, 90)]
    m = _match(0, "T", 1.0, 5.0, offset=10.0)
    out = extend(m, _peaks(it, ip), 10.0, ref, pc, CFG, ref_duration=20.0)
    assert out.query_start == 0.0
    assert abs(out.query_end - reaches) <= CFG.bin_s
