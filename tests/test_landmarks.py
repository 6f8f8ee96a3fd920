"""The landmark family: invariant keys and their probes, the postings index against brute force,
streamed peaks against whole-signal peaks, and matching that survives speed, tempo and pitch changes
and reports the applied factors, with negative controls."""

from __future__ import annotations

from dataclasses import replace

import librosa
import numpy as np
import pytest
import soxr

from earmark import synth
from earmark.errors import ParameterError
from earmark.fingerprint.landmarks import (
    LandmarkConfig,
    TripletConfig,
    Triplets,
    make_keys,
    probe_ranges,
    triplets,
)
from earmark.fingerprint.peaks import PeakStream, extract_peaks
from earmark.index.postings import Postings, brute_force_lookup, distinct_keys
from earmark.match.landmarks import HoughConfig, MemoryIndex, evidence_span, log10_fmp, match_peaks, search
from earmark.match.model import transform_reading

LC = LandmarkConfig()
PC, QC, TC = LC.peaks, LC.query_peaks, LC.triplets
SR = PC.sample_rate


class _Rec:
    def __init__(self, track_id: str, duration_s: float):
        self.track_id, self.duration_s = track_id, duration_s


@pytest.fixture(scope="module")
def songs():
    return [synth.song(s, duration=40.0, sr=SR) for s in (21, 22, 23)]


@pytest.fixture(scope="module")
def index(songs):
    return MemoryIndex({i: (triplets(extract_peaks(x, PC), TC), len(x) / SR) for i, x in enumerate(songs)})


RECS = {i: _Rec(f"T{i}", 40.0) for i in range(3)}


def test_keys_ignore_pitch_translation_and_time_scaling():
    ratio, span = np.array([0.3, 0.55]), np.array([0.2, 0.4])
    d12, d23, p1 = np.array([2.0, -3.5]), np.array([-1.0, 4.0]), np.array([13.0, 26.0])
    k = make_keys(ratio, d12, d23, span, p1, TC)
    # 0.4 st higher (same pitch cell), 5 % faster (same span cell): same keys
    assert np.array_equal(k, make_keys(ratio, d12, d23, span / 1.05, p1 + 0.4, TC))
    assert not np.array_equal(k, make_keys(ratio, d12 + 1.0, d23, span, p1, TC))


@pytest.mark.parametrize("factor,shift", [(1.0, 0.0), (1.2, 12 * np.log2(1.2)), (0.9, -2.0), (1.1, 3.9)])
def test_probes_reach_the_reference_key_under_any_allowed_change(factor, shift):
    rng = np.random.default_rng(5)
    n = 400
    ratio, span = rng.uniform(0.05, 0.95, n), rng.uniform(0.07, 0.7, n)
    d12, d23, p1 = rng.uniform(-7, 7, n), rng.uniform(-7, 7, n), rng.uniform(5, 50, n)
    ref = make_keys(ratio, d12, d23, span, p1, TC)
    # the copy: spans divided by the time factor, anchor pitches moved; ratio jitter of half a cell
    qr = np.clip(ratio + rng.uniform(-0.5, 0.5, n) / 32, 0, 0.999)
    q = Triplets(make_keys(qr, d12, d23, span / factor, p1 + shift, TC), np.arange(n), np.zeros(n),
                 p1 + shift, span / factor)
    lo, hi, row = probe_ranges(q, TC)
    found = np.zeros(n, bool)
    for a, b, r in zip(lo, hi, row, strict=True):
        found[r] |= a <= ref[r] <= b
    assert found.all()


@pytest.mark.parametrize("widest", [0, 3, 4, 30])  # counted by comparison up to NARROW_RANGE, then searched
def test_postings_lookup_equals_brute_force(widest):
    rng = np.random.default_rng(3 + widest)
    keys = rng.integers(0, 400, 3000).astype(np.uint32)
    lo = np.r_[rng.integers(0, 400, 80), 398, 399, 0, 405, 250]  # the ends, beyond the last key
    hi = lo + np.r_[rng.integers(0, widest + 1, 80), widest, widest, widest, widest, -2]  # and lo > hi
    p = Postings.build(keys, row=np.arange(len(keys)))
    q, post = p.lookup(lo, hi)
    want = brute_force_lookup(keys, lo, hi)
    assert {(int(a), int(p.columns["row"][b])) for a, b in zip(q, post, strict=True)} == want
    assert len(want) > 80 and len(q) == len(want)


def test_distinct_keys_mark_each_run_of_postings():
    keys = np.array([3, 3, 5, 9, 9, 9, 12], np.uint32)
    distinct, starts = distinct_keys(keys)
    assert distinct.tolist() == [3, 5, 9, 12] and starts.tolist() == [0, 2, 3, 6, 7]
    p = Postings.build(keys[::-1].copy(), row=np.arange(7))
    assert p.distinct.tolist() == [3, 5, 9, 12] and p.starts.tolist() == [0, 2, 3, 6, 7]
    assert distinct_keys(np.zeros(0, np.uint32))[1].tolist() == [0]
    with pytest.raises(ParameterError):
        Postings(keys=keys, columns={}, distinct=distinct, starts=starts[:-1])


def test_streamed_peaks_equal_whole_signal_peaks():
    x = synth.song(5, duration=75.0, sr=SR)
    whole = extract_peaks(x, QC)
    stream = PeakStream(QC, chunk_s=20.0, margin_s=2.0)
    for i in range(0, len(x), 7777):
        stream.feed(x[i : i + 7777])
    got = stream.finish()
    assert len(got) == len(whole) > 1000
    np.testing.assert_allclose(got.time, whole.time, atol=1e-9)
    np.testing.assert_allclose(got.pitch, whole.pitch, atol=1e-9)


def _match(index, query):
    hc = replace(HoughConfig(), max_fmp=1e-6)
    return match_peaks(extract_peaks(query, QC), len(query) / SR, index, RECS, TC, hc)


@pytest.mark.parametrize("change", ["none", "speed", "tempo", "pitch"])
def test_a_changed_excerpt_matches_and_reports_the_applied_factors(songs, index, change):
    excerpt = songs[1][10 * SR : 30 * SR]
    factor, shift = 1.0, 0.0
    if change == "speed":  # resampled: 12 % faster and higher
        factor, shift = 1.12, 12 * np.log2(1.12)
        query = soxr.resample(excerpt, SR * factor, SR).astype(np.float32)
    elif change == "tempo":
        factor = 1.1
        query = librosa.effects.time_stretch(excerpt, rate=factor).astype(np.float32)
    elif change == "pitch":
        shift = 2.0
        query = librosa.effects.pitch_shift(excerpt, sr=SR, n_steps=shift).astype(np.float32)
    else:
        query = excerpt
    matches = [m for m in _match(index, query) if not m.alternative]
    assert matches and {m.rec_id for m in matches} == {1}
    best = max(matches, key=lambda m: m.score)
    assert best.time_factor == pytest.approx(factor, rel=0.01)
    assert best.pitch_st == pytest.approx(shift, abs=0.25)
    assert best.transform == change
    # recording time of the item's start: 10 s (the excerpt's place), whatever the change
    assert best.ref_start - best.query_start * best.time_factor == pytest.approx(10.0, abs=0.15)
    assert best.fmp < 1e-20


def test_unrelated_music_and_a_tone_do_not_match(index):
    other = synth.song(99, duration=12.0, sr=SR)
    t = np.arange(12 * SR) / SR
    chord = (sum(np.sin(2 * np.pi * 220 * r * t) for r in (1, 1.26, 1.5)) / 3).astype(np.float32)
    for query in (other, chord):
        assert _match(index, query) == []
        cands = search(extract_peaks(query, QC), 12.0, index, TC, HoughConfig())
        assert all(c.log10_fmp > -6 for c in cands)


def test_more_chance_hits_mean_a_weaker_score():
    kw = dict(rec_duration=200.0, window_s=10.0, n_windows=1, catalogue_seconds=2000.0, n_recordings=10,
              tc=TC, hc=HoughConfig())
    assert log10_fmp(12, 500, **kw) < log10_fmp(12, 5000, **kw) < log10_fmp(8, 5000, **kw) <= 0.0
    # a larger catalogue tests more hypotheses
    assert log10_fmp(12, 500, **kw) < log10_fmp(12, 500, **{**kw, "catalogue_seconds": 2e6})


@pytest.mark.parametrize("tf,st,reading", [(1.0, 0.0, "none"), (1.2, 3.156, "speed"), (1.1, 0.0, "tempo"),
                                           (1.0, -1.0, "pitch"), (1.1, 2.0, "mixed"), (1.004, 0.1, "none")])
def test_transform_reading(tf, st, reading):
    assert transform_reading(tf, st) == reading


def test_config_identity_and_round_trip():
    from dataclasses import asdict

    assert LandmarkConfig.from_dict(asdict(LC)) == LC
    assert replace(LC, query_nbhd_frames=7).params_id != LC.params_id
    with pytest.raises(ParameterError):
        TripletConfig(min_gap_s=0.5, max_gap_s=0.1)


def test_chance_events_count_known_answers():
    from earmark.match.calibration import chance_events, fitted_calibration

    s = np.log10([0.01, 0.05, 0.2, 0.6, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    rows = chance_events(s, (0.5, 0.1))
    assert [(r.predicted, r.observed) for r in rows] == [(5.0, 3), (1.0, 2)]
    # a model that is 10x too optimistic needs its FMPs multiplied by 10
    rng = np.random.default_rng(0)
    u = rng.uniform(size=20000)
    assert fitted_calibration(np.log10(u / 10), 0.1) == pytest.approx(10, rel=0.1)


def test_predicted_and_observed_chance_matches_agree_within_a_factor_of_3():
    """The fast version of benchmarks/null_calibration.py: unrelated generated songs against a
    generated catalogue; at thresholds with at least 20 predicted chance events the observed count
    is within a factor of 3 of the prediction."""
    from earmark.match.calibration import chance_events, strongest_log10_fmp

    idx = MemoryIndex({i: (triplets(extract_peaks(synth.song(700 + i, duration=60.0, sr=SR), PC), TC), 60.0)
                       for i in range(12)})
    strongest = [strongest_log10_fmp(extract_peaks(synth.song(900 + i, duration=10.0, sr=SR), QC), 10.0, idx,
                                     LC, HoughConfig()) for i in range(80)]
    rows = [r for r in chance_events(strongest, (0.5, 0.3)) if r.predicted >= 20]
    assert len(rows) == 2
    for r in rows:
        assert 1 / 3 <= r.ratio <= 3, r
    # and none of them would stand in a report as a landmark-only match
    assert min(strongest) > np.log10(HoughConfig().max_fmp)


def _efmp(hits, other, **kw):
    from earmark.match.landmarks import empirical_log10_fmp

    args = dict(catalogue_seconds=1000.0, left_out_seconds=100.0, n_left_out=1, n_recordings=10,
                window_s=20.0, n_windows=1, hc=HoughConfig())
    return empirical_log10_fmp(hits, np.asarray(other), **{**args, **kw})


def test_empirical_fmp_known_answers():
    from earmark.match import landmarks as lm

    scale = (1000 + 10 * 20) / (900 + 9 * 20)  # the whole catalogue's cells over the other recordings'
    # 20 chance cells of 2..5 hits: the tail is fitted above the 20th strongest (2), mean excess 1.5,
    # with one pseudo-cell (31 + 1) / (20 + 1); each further hit is q = m / (1 + m) as likely
    other = [2] * 8 + [3] * 6 + [4] * 4 + [5] * 2
    m = (6 + 8 + 6 + 1) / 21
    q = m / (1 + m)
    e = scale * 20 * 0.5 * (1 + q) * q**10  # 12 hits: mid-p, 10 above the threshold
    assert _efmp(12, other) == pytest.approx(np.log10(-np.expm1(-e)), abs=1e-9)
    # within the observed range (here the weakest of three) the cells are counted, mid-p: 2 stronger,
    # 1 as strong, counting half
    assert _efmp(3, [5, 4, 3]) == pytest.approx(np.log10(-np.expm1(-scale * 2.5)), abs=1e-9)
    # no estimate without a recording left; a weak alignment is a sure chance event (log10 1 = 0)
    assert _efmp(30, other, n_left_out=10) is None
    assert _efmp(2, other) == 0.0
    # fewer than three chance cells: the fallback decay from EMPIRICAL_MIN_HITS
    d = lm.EMPIRICAL_FALLBACK_LOG10_DECAY
    e = scale * 1 * 10 ** (d * 6) * 0.5 * (1 + 10**d)
    assert _efmp(8, [3]) == pytest.approx(np.log10(e), abs=1e-6)
    # stronger alignments are rarer; a richer chance level (heavier tail) makes the same one commoner
    assert _efmp(15, other) < _efmp(10, other) < _efmp(6, other)
    assert _efmp(10, [x + 3 for x in other]) > _efmp(10, other)
    # more windows searched, more chance
    assert _efmp(10, other, n_windows=5) > _efmp(10, other)


def test_empirical_fmp_leaves_out_recordings_the_item_holds(songs, index):
    """A medley of two registered recordings: each one's alignment is judged against the item's chance
    level on recordings it does not hold. Counting the other piece's cells as chance would make its
    null a copy, and the evidence weak (the negative control)."""
    from earmark.match import landmarks as lm

    medley = np.concatenate([songs[0][5 * SR : 14 * SR], songs[2][20 * SR : 29 * SR]])
    others = {10 + i: (triplets(extract_peaks(synth.song(400 + i, duration=40.0, sr=SR), PC), TC), 40.0)
              for i in range(8)}
    mine = {i: (triplets(extract_peaks(x, PC), TC), 40.0) for i, x in enumerate(songs)}
    idx = MemoryIndex({**mine, **others})
    peaks = extract_peaks(medley, QC)

    def best(cands):
        judged = [c for c in cands if c.log10_empirical_fmp is not None]
        return {r: min(c.log10_empirical_fmp for c in judged if c.rec_id == r) for r in (0, 2)}

    found = best(search(peaks, len(medley) / SR, idx, TC, HoughConfig()))
    assert max(found.values()) < -6
    old = lm.EMPIRICAL_PRESENT_FMP
    try:
        lm.EMPIRICAL_PRESENT_FMP = 1e-300  # nothing is left out but the candidate's own recording
        blind = best(search(peaks, len(medley) / SR, idx, TC, HoughConfig()))
    finally:
        lm.EMPIRICAL_PRESENT_FMP = old
    assert max(blind.values()) > max(found.values()) + 3


def test_empirical_chance_matches_agree_within_a_factor_of_3():
    """The fast version of benchmarks/null_calibration.py for the FMP the report gives: unrelated
    generated songs against a generated catalogue; at thresholds 0.5 to 0.1 (over the items judged at
    all) the observed count of chance events is within a factor of 3 of the prediction. (Songs of one
    generator share scale, tempo grid and timbres, so below 0.1 they meet by near-miss more often
    than chance between real recordings does: 20 events at 0.05 against 4 predicted. The benchmark
    checks the smaller thresholds on real music.)"""
    from earmark.match.calibration import chance_events, strongest_log10_fmps

    idx = MemoryIndex({i: (triplets(extract_peaks(synth.song(700 + i, duration=60.0, sr=SR), PC), TC), 60.0)
                       for i in range(20)})
    st = [strongest_log10_fmps(extract_peaks(synth.song(900 + i, duration=10.0, sr=SR), QC), 10.0, idx,
                               LC, HoughConfig()) for i in range(200)]
    tested = [s.empirical for s in st if s.tested]
    rows = [r for r in chance_events(tested, (0.5, 0.3, 0.2, 0.1)) if max(r.predicted, r.observed) >= 20]
    assert len(rows) == 4
    for r in rows:
        assert 1 / 3 <= r.ratio <= 3, r


def test_window_by_window_triplets_equal_whole_item_triplets(index, songs):
    """search() forms triplets per window (bounded memory); the result must equal windows cut from
    the whole item's triplets."""
    from earmark.match.landmarks import _windows, window_candidates

    item = np.concatenate([songs[2][5 * SR : 30 * SR], songs[0][:22 * SR]])  # 47 s: four windows
    peaks = extract_peaks(item, QC)
    dur = len(item) / SR
    hc = HoughConfig()
    got = search(peaks, dur, index, TC, hc)
    whole = triplets(peaks, TC, query=True)
    wins = _windows(dur, hc)
    assert len(wins) > 2
    want = []
    for w in wins:
        want += window_candidates(whole, index, TC, hc, window=w, n_windows=len(wins))
    want.sort(key=lambda c: (c.log10_fmp, -c.anchors, c.rec_id))
    assert got == want and {c.rec_id for c in got if c.log10_fmp < -6} == {0, 2}


def test_evidence_span_ignores_stray_inliers_far_from_the_copy():
    rng = np.random.default_rng(3)
    copy = np.sort(rng.uniform(17.4, 25.2, 80))  # a dense copy in the last 8 s of a medley
    stray = np.array([2.9, 6.1, 11.0])  # chance agreements over the other pieces
    t = np.concatenate([stray, copy])
    q0, q1 = evidence_span(t, t + 0.2, HoughConfig())
    assert 17.4 <= q0 < 18.0 and 24.8 < q1 <= 25.4
    # a weak copy (one inlier a second, with a 2 s quiet gap) keeps its whole span
    weak = np.r_[np.arange(0.3, 4.0, 1.0), np.arange(6.2, 10.0, 1.0)]
    q0, q1 = evidence_span(weak, weak + 0.2, HoughConfig())
    assert q0 < 0.5 and q1 > 9.0
