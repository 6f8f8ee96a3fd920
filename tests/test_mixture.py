"""The mixture verifier: its tail and Bonferroni factor against scipy, the dilation against
scipy.ndimage, the item's peak map at known cells, coincidences and the masking test against plain
loops, copies buried under another song found at the true offset (directly and through a scan),
negative controls (an unrelated song, and a *related* recording that only the masking test rejects),
repeats as alternatives, the landmark proposals, the kept spectrogram and the stored peak maps."""

from __future__ import annotations

import math
import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage, stats

from earmark import synth
from earmark.catalogue.metadata import RecordingSpec
from earmark.catalogue.reader import CatalogueReader, open_reader
from earmark.catalogue.store import Catalogue, peak_map
from earmark.errors import ParameterError
from earmark.fingerprint.landmarks import LandmarkConfig
from earmark.fingerprint.peaks import Peaks, PeakStream, extract_peaks, log_spectrogram
from earmark.fingerprint.pipeline import fingerprint_samples, fingerprint_source
from earmark.match import mixture as mx
from earmark.match.landmarks import LOG10_FLOOR, Hits
from earmark.match.mixture import (
    PROPOSAL_CELL_S,
    ItemPeaks,
    MixtureMatchConfig,
    best_place,
    coincidence,
    evidence,
    item_peaks,
    local_dispersion,
    log10_fmp,
    log10_tail,
    pair_tail,
    timing_proposals,
    unmasked_share,
    verify_alignments,
)
from earmark.scan.worker import ScanSettings, scan_item
from earmark.sources import ItemData

LC = LandmarkConfig()
PC = LC.peaks  # the reference picker (what the catalogue stores)
QPC = LC.query_peaks  # the item picker
SR = PC.sample_rate  # 11025: every signal below is generated at the analysis rate, no resampling
FD = PC.frame_duration
MC = MixtureMatchConfig()
#: A realistic catalogue: 68 recordings of 250 s, in frames (the Bonferroni factor's base).
CATALOGUE_FRAMES = 68 * 250 / FD

SONG_A, SONG_B, SONG_C, OTHER, UNRELATED = 11, 13, 14, 77, 12
START, ITEM_S = 12.0, 10.0  # where the item's excerpt starts in the recording, and its length


class _Rec:
    def __init__(self, track_id: str, duration_s: float):
        self.track_id, self.duration_s = track_id, duration_s


def excerpt(x: np.ndarray, start: float = START, length: float = ITEM_S) -> np.ndarray:
    a = int(round(start * SR))
    return x[a: a + int(round(length * SR))]


def prepare(x: np.ndarray, config: MixtureMatchConfig = MC) -> ItemPeaks:
    """An item as the scan worker prepares it: the query picker's peaks and the log spectrogram."""
    return item_peaks(extract_peaks(x, QPC), log_spectrogram(x, QPC), PC, config)


def ref_map(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return peak_map(extract_peaks(x, PC), PC)


def verify(item: ItemPeaks, proposals, refs: dict[int, np.ndarray], *, config=MC,
           duration: float = ITEM_S, catalogue_frames: float = CATALOGUE_FRAMES):
    """``verify_alignments`` against the recordings ``refs`` ({rec_id: audio}), given to it as a
    peak-map getter and objects with ``track_id`` and ``duration_s``."""
    maps = {k: ref_map(x) for k, x in refs.items()}
    recs = {k: _Rec(f"T{k}", len(x) / SR) for k, x in refs.items()}
    return verify_alignments(item, duration, proposals, maps.__getitem__, recs, PC, config,
                             catalogue_frames=catalogue_frames)


def window(centre_s: float, config: MixtureMatchConfig = MC) -> np.ndarray:
    """The offsets (frames) verify_alignments searches around a proposal."""
    o0, span = int(round(centre_s / FD)), int(round(config.search_s / FD))
    return np.arange(o0 - span, o0 + span + 1)


@pytest.fixture(scope="module")
def song_a() -> np.ndarray:
    return synth.song(SONG_A, duration=40.0, sr=SR)


@pytest.fixture(scope="module")
def masker() -> np.ndarray:
    """The louder song the copies are buried under."""
    return synth.song(OTHER, duration=ITEM_S, sr=SR)


@pytest.fixture(scope="module")
def buried(song_a, masker) -> np.ndarray:
    """10 s of song A from 12 s, 6 dB under another song."""
    return synth.mix_at_snr(excerpt(song_a), masker, -6.0)


# ------------------------------------------------------------------------------- the null: known answers
@pytest.mark.parametrize(("k", "mu"), [(1, 0.2), (5, 1.0), (20, 13.5), (60, 13.5), (111, 13.46)])
def test_tail_with_dispersion_one_is_the_poisson_upper_tail(k, mu):
    assert log10_tail(k, mu, 1.0) == pytest.approx(math.log10(stats.poisson.sf(k - 1, mu)), rel=1e-9)


def test_tail_is_zero_without_excess_weaker_with_clumps_and_floored():
    assert log10_tail(13, 13.0, 1.0) == 0.0 and log10_tail(3, 7.5, 1.0) == 0.0
    assert log10_tail(0, 0.0, 1.0) == 0.0
    one, two, four = (log10_tail(40, 13.5, d) for d in (1.0, 2.0, 4.0))
    assert one < two < four < 0.0  # counting in clumps: the same excess is weaker evidence
    assert two == pytest.approx(math.log10(stats.gamma.cdf(13.5 / 2, 40 / 2)), rel=1e-9)
    assert log10_tail(5000, 10.0, 1.0) == LOG10_FLOOR  # beyond float range: the floor, not -inf
    assert log10_tail(3, 0.0, 1.0) < -20  # no chance at all: mu is held at 1e-9, finite


def test_fmp_adds_every_distinguishable_offset_and_is_capped_at_one():
    tests = CATALOGUE_FRAMES / (2 * MC.tol_frames + 1)
    assert log10_fmp(-20.0, CATALOGUE_FRAMES, MC) == pytest.approx(-20.0 + math.log10(tests), rel=1e-12)
    wider = replace(MC, tol_frames=5)
    want = -20.0 + math.log10(CATALOGUE_FRAMES / 11)
    assert log10_fmp(-20.0, CATALOGUE_FRAMES, wider) == pytest.approx(want, rel=1e-12)
    assert log10_fmp(-2.0, CATALOGUE_FRAMES, MC) == 0.0  # capped: a probability
    assert log10_fmp(-2.0, 3.0, MC) == -2.0  # fewer frames than one tolerance cell: one test


# ------------------------------------------------------------------------------- the item's peak map
@pytest.mark.parametrize(("df", "db"), [(0, 0), (2, 1), (1, 0), (0, 3), (4, 2)])
def test_dilate_is_a_maximum_filter(df, db):
    g = np.random.default_rng(100 + 10 * df + db)
    for density in (0.01, 0.1, 0.5):
        grid = g.random((57, 31)) < density
        want = ndimage.maximum_filter(grid, size=(2 * df + 1, 2 * db + 1), mode="constant", cval=False)
        got = mx.dilate(grid, df, db)
        assert got.dtype == bool and np.array_equal(got, want)
    assert not mx.dilate(np.zeros((5, 4), bool), df, db).any()


def _peaks_at(cells: list[tuple[float, float]]) -> Peaks:
    """Peaks whose (fractional) cells are the given (frame, bin)."""
    f = np.array([c[0] for c in cells], float)
    b = np.array([c[1] for c in cells], float)
    time = f * FD + PC.n_fft / 2 / SR
    return Peaks(time=time, pitch=b * 12.0 / PC.bins_per_octave, strength=np.ones(len(f), np.float32))


def test_item_peaks_marks_the_tolerance_rectangle_around_each_peak():
    n = 50
    spec = np.zeros((n, PC.n_bins), np.float32)
    # two peaks close in time in bin 20 (their rectangles merge), one in the corner, one at the top
    # edge; fractional cells round to the nearest (10.3 -> 10, 19.8 -> 20, 12.4 -> 12, 0.2 -> 0)
    ip = item_peaks(_peaks_at([(10.3, 19.8), (12.4, 20.0), (0.2, 0.0), (n - 1, PC.n_bins - 1)]), spec, PC, MC)
    assert ip.hit.shape == (n, PC.n_bins) and ip.n_frames == n
    want = np.zeros((n, PC.n_bins), bool)
    want[8:15, 19:22] = True  # frames 10-2 .. 12+2, bins 20-1 .. 20+1
    want[0:3, 0:2] = True  # clipped at frame 0 and bin 0
    want[n - 3:, PC.n_bins - 2:] = True
    assert np.array_equal(ip.hit, want)
    assert ip.occupancy[20] == pytest.approx(7 / n) and ip.occupancy[19] == pytest.approx(7 / n)
    assert ip.occupancy[0] == pytest.approx(3 / n) and ip.occupancy[22] == 0.0
    assert np.allclose(ip.occupancy, ip.hit.mean(axis=0))
    # the tolerance is the config's
    bare = item_peaks(_peaks_at([(10.3, 19.8)]), spec, PC, replace(MC, tol_frames=0, tol_bins=0))
    assert np.argwhere(bare.hit).tolist() == [[10, 20]]


def test_item_peaks_uses_the_cells_the_catalogue_stores(buried):
    peaks = extract_peaks(buried, QPC)
    spec = log_spectrogram(buried, QPC)
    bare = item_peaks(peaks, spec, PC, replace(MC, tol_frames=0, tol_bins=0))
    frame, bins, _ = peak_map(peaks, PC)
    cells = set(zip(frame.tolist(), bins.tolist(), strict=True))
    assert set(map(tuple, np.argwhere(bare.hit).tolist())) == cells
    ip = item_peaks(peaks, spec, PC, MC)
    assert np.array_equal(ip.hit, mx.dilate(bare.hit, MC.tol_frames, MC.tol_bins))
    assert np.allclose(ip.occupancy, ip.hit.mean(axis=0))
    assert 0.02 < ip.occupancy.mean() < 0.3  # a real item: neither empty nor saturated
    # the masking test's level is the loudest cell within one frame and one bin
    f, b = np.arange(ip.n_frames), (np.arange(ip.n_frames) * 7) % PC.n_bins
    want = ndimage.maximum_filter(spec, size=3, mode="nearest")[f, b]
    assert np.array_equal(ip.level(f, b), want)
    # an item without peaks or frames
    empty = item_peaks(Peaks(np.zeros(0), np.zeros(0), np.zeros(0, np.float32)), spec[:0], PC, MC)
    assert empty.n_frames == 0 and np.array_equal(empty.occupancy, np.zeros(PC.n_bins))


# ------------------------------------------------------------------------------- against plain loops
def _plain_hit(ip_peaks: Peaks, n: int, config: MixtureMatchConfig) -> np.ndarray:
    """The dilated grid, one rectangle per peak."""
    frame, bins, _ = peak_map(ip_peaks, PC)
    grid = np.zeros((n, PC.n_bins), bool)
    for f, b in zip(frame.tolist(), bins.tolist(), strict=True):
        f = min(f, n - 1)
        grid[max(0, f - config.tol_frames): f + config.tol_frames + 1,
             max(0, b - config.tol_bins): b + config.tol_bins + 1] = True
    return grid


def _plain_search(hit: np.ndarray, ref, ref_frames: int, offsets, config: MixtureMatchConfig):
    """Per offset: (log10 tail, k, mu, compared, faced item frames), by a loop over every peak; the
    tail is quasi-Poisson at independent peaks' dispersion (Bernoulli variance over the mean)."""
    n, nb = hit.shape
    occupancy = [sum(bool(hit[t, b]) for t in range(n)) / n for b in range(nb)]
    out = {}
    for o in offsets:
        q0, q1 = max(0, -o), min(n, ref_frames - o)
        if q1 - q0 < config.min_share * n:
            continue
        k, mu, var, compared = 0, 0.0, 0.0, 0
        for f, b in zip(ref[0].tolist(), ref[1].tolist(), strict=True):
            if q0 <= f - o < q1:
                compared += 1
                mu += occupancy[b]
                var += occupancy[b] * (1 - occupancy[b])
                k += bool(hit[f - o, b])
        d = config.dispersion * var / mu
        tail = math.log10(stats.gamma.cdf(mu / d, k / d)) if k > mu else 0.0
        out[int(o)] = (max(tail, LOG10_FLOOR), k, mu, compared, q1 - q0)
    return out


def _plain_unmasked(spec: np.ndarray, ref, offset: int, config: MixtureMatchConfig) -> float:
    n, nb = spec.shape
    faced = [(f - offset, b, np.float32(lv)) for f, b, lv in zip(*(a.tolist() for a in ref), strict=True)
             if 0 <= f - offset < n]
    levels = [lv for _, _, lv in faced]
    cut = np.quantile(np.array(levels, np.float32), config.loud_quantile)
    diffs = []
    for f, b, lv in faced:
        if lv >= cut:
            here = max(spec[min(max(f + i, 0), n - 1), min(max(b + j, 0), nb - 1)]
                       for i in (-1, 0, 1) for j in (-1, 0, 1))
            diffs.append(np.float32(here) - lv)
    med = statistics.median(diffs)
    return sum(d < med - config.unmasked_db for d in diffs) / len(diffs)


@pytest.fixture(scope="module")
def reference_a(song_a):
    return ref_map(song_a)


@pytest.fixture(scope="module")
def lead_in_item(song_a, masker):
    """An item that starts 0.5 s before the recording does (pink noise first), buried at -6 dB: its
    true offset is negative."""
    lead = synth.noise(5, duration=0.5, sr=SR, color="pink")
    return synth.mix_at_snr(np.concatenate([lead, song_a[: int(9.5 * SR)]]), masker, -6.0)


@pytest.mark.parametrize(("case", "window_lo", "tol"), [
    ("buried", -34, (2, 1)),  # the truth in the middle of the window
    ("buried", -1, (2, 1)),  # at its lower edge
    ("buried", -69, (2, 1)),  # at its upper edge
    ("buried", -34, (0, 0)),  # no tolerance: a single pass over every offset
    ("buried", -33, (3, 2)),  # coarse steps of four
    ("lead_in", -34, (2, 1)),  # the item starts before the recording: a negative offset
])
def test_coincidence_finds_the_offset_an_exhaustive_loop_finds(request, reference_a, case, window_lo, tol):
    x = request.getfixturevalue({"buried": "buried", "lead_in": "lead_in_item"}[case])
    true_s = START if case == "buried" else -0.5
    config = replace(MC, tol_frames=tol[0], tol_bins=tol[1])
    peaks = extract_peaks(x, QPC)
    spec = log_spectrogram(x, QPC)
    ip = item_peaks(peaks, spec, PC, config)
    assert np.array_equal(ip.hit, _plain_hit(peaks, len(spec), config))
    ref_frames = int(40.0 / FD)
    truth = int(round(true_s / FD))
    offsets = np.arange(truth + window_lo, truth + window_lo + 70)
    plain = _plain_search(ip.hit, reference_a, ref_frames, offsets, config)
    assert len(plain) == 70  # every offset faces the whole item (or 95 % of it)
    best = min(plain, key=lambda o: (plain[o][0], o))
    assert abs(best - true_s / FD) <= 2  # the search is about something
    tail, k, mu, compared, faced = plain[best]
    assert tail < -25
    ev = coincidence(ip, reference_a, ref_frames, offsets, config)
    assert ev.offset == best
    assert (ev.coincident, ev.compared) == (k, compared)
    assert ev.expected == pytest.approx(mu, rel=1e-9)
    assert ev.log10_tail == pytest.approx(tail, rel=1e-6)
    assert ev.share == pytest.approx(faced / ip.n_frames) and math.isnan(ev.unmasked)
    # the masking test, at the best offset and at one where the item does not hold the recording
    full = evidence(ip, reference_a, ref_frames, offsets, config)
    assert replace(full, unmasked=math.nan) == replace(ev, unmasked=math.nan)
    assert full.unmasked == pytest.approx(_plain_unmasked(spec, reference_a, best, config), abs=1e-12)
    elsewhere = unmasked_share(ip, reference_a, best + 300, config)
    assert elsewhere == pytest.approx(_plain_unmasked(spec, reference_a, best + 300, config), abs=1e-12)
    assert full.unmasked <= 0.02 < 0.2 < elsewhere


def test_local_dispersion_is_the_variance_ratio_at_evenly_spaced_offsets(buried, reference_a):
    ip = prepare(buried)
    frame, bins, _ = reference_a
    ref_frames = int(40.0 / FD)
    offs = np.unique(np.linspace(0, ref_frames - ip.n_frames, MC.background_offsets).astype(np.int64))
    ks, mus = [], []
    for o in offs:  # plain loop: every reference peak the whole item faces at o
        sel = (frame >= o) & (frame < o + ip.n_frames)
        qf, qb = frame[sel].astype(np.int64) - o, bins[sel].astype(np.int64)
        ks.append(int(ip.hit[qf, qb].sum()))
        mus.append(float(ip.occupancy[qb].sum()))
    ks, mus = np.array(ks), np.array(mus)
    expect = float(np.var(ks - mus) / np.mean(mus))
    assert local_dispersion(ip, reference_a, ref_frames, MC) == pytest.approx(expect, rel=1e-9)
    assert local_dispersion(ip, reference_a, ip.n_frames, MC) == 0.0  # nothing to measure it at
    # the tail at the pair's dispersion: this looping song clumps its chance coincidences beyond
    # independent peaks', which weakens the tail; never below independent peaks' (times the floor)
    ev = coincidence(ip, reference_a, ref_frames, np.arange(ref_frames - ip.n_frames), MC)
    assert 0 < ev.dispersion < 1 < expect
    assert pair_tail(ev, expect) == pytest.approx(log10_tail(ev.coincident, ev.expected, expect))
    assert pair_tail(ev, expect) > ev.log10_tail == pytest.approx(pair_tail(ev, 0.0))
    wide = replace(MC, dispersion=50.0)
    ev50 = coincidence(ip, reference_a, ref_frames, np.array([ev.offset]), wide)
    assert ev50.dispersion == pytest.approx(50 * ev.dispersion)
    floor = log10_tail(ev.coincident, ev.expected, 50 * ev.dispersion)
    assert pair_tail(ev50, expect) == pytest.approx(floor)


def test_unmasked_share_known_answer():
    n, offset, quiet = 20, 100, -20.0
    spec = np.full((n, PC.n_bins), quiet, np.float32)
    spec[3:6, 49:52] = spec[9:12, 49:52] = -40.0  # two reference peaks below are lacking (20 dB short)
    spec[:2, 79:82] = spec[-2:, 79:82] = -40.0  # what peaks just outside the item would read, clipped
    spec[13:16, 119:122] = -60.0  # a quiet peak that is lacking too
    ip = ItemPeaks(hit=np.zeros((n, PC.n_bins), bool), occupancy=np.zeros(PC.n_bins), spectrogram=spec)
    cells = [(offset - 1, 80, 0.0)] + [(offset + q, 50, 0.0) for q in range(0, 20, 2)] \
        + [(offset + 14, 120, -30.0), (offset + n, 80, 0.0)]
    ref = tuple(np.array(c, dt) for c, dt in zip(zip(*cells, strict=True), (np.uint32, np.uint8, np.float16),
                                                  strict=True))
    # ten loud peaks faced (the quiet one is below the 25th percentile), each 20 dB above the item
    # (the median difference); at two of them the item is 40 dB short: more than 6 dB below the median
    assert unmasked_share(ip, ref, offset, MC) == pytest.approx(2 / 10)
    assert unmasked_share(ip, ref, offset, replace(MC, unmasked_db=25.0)) == 0.0
    assert unmasked_share(ip, ref, offset, replace(MC, loud_quantile=0.0)) == pytest.approx(3 / 11)
    # the item's level is read within one frame and one bin: a louder neighbour hides a peak
    spec[4, 51] = quiet
    assert unmasked_share(ip, ref, offset, MC) == pytest.approx(1 / 10)


def test_coincidence_says_nothing_when_no_offset_faces_enough_of_the_item(buried, reference_a):
    ip = prepare(buried)
    n, ref_frames = ip.n_frames, int(40.0 / FD)
    # offsets where the item hangs off the recording's end by more than 10 %
    late = np.arange(ref_frames - int(0.85 * n), ref_frames - int(0.85 * n) + 20)
    assert coincidence(ip, reference_a, ref_frames, late, MC) is None
    assert evidence(ip, reference_a, ref_frames, late, MC) is None
    # with min_share lowered they are judged
    assert coincidence(ip, reference_a, ref_frames, late, replace(MC, min_share=0.5)) is not None
    # a recording shorter than 90 % of the item can face it nowhere
    assert coincidence(ip, reference_a, int(0.85 * n), np.arange(-10, 10), MC) is None
    # no reference peak faced: the masking test cannot clear the item
    assert unmasked_share(ip, reference_a, ref_frames + 10, MC) == 1.0


# ------------------------------------------------------------------------------- known answers
def test_a_copy_buried_6_db_under_another_song_is_found_at_the_true_offset(buried, song_a):
    ip = prepare(buried)
    (m,) = verify(ip, [(1, START + 0.2)], {1: song_a})
    assert (m.family, m.track_id, m.rec_id, m.alternative) == ("mixture", "T1", 1, False)
    assert abs(m.ref_start - START) <= 2 * FD
    assert m.query_start == 0.0 and m.query_end == pytest.approx(ITEM_S, abs=1e-9)
    assert m.ref_end - m.ref_start == pytest.approx(m.query_end - m.query_start, abs=1e-9)
    assert m.fmp <= 1e-6 and m.score == pytest.approx(-math.log10(m.fmp))
    assert m.unmasked <= 0.05
    ev = evidence(ip, ref_map(song_a), int(40.0 / FD), window(START + 0.2), MC)
    assert (m.n_items, m.n_distinct, m.unmasked) == (ev.compared, ev.coincident, ev.unmasked)
    # the tail is taken at the pair's own dispersion, measured away from the copy
    d = local_dispersion(ip, ref_map(song_a), int(40.0 / FD), MC)
    assert d > ev.dispersion  # this song loops: its chance coincidences clump beyond independent peaks'
    tail = pair_tail(ev, d)
    assert m.score == pytest.approx(-log10_fmp(tail, CATALOGUE_FRAMES, MC), rel=1e-12)
    # a third of the reference peaks survive under the louder song, against a chance mean of ~13
    assert ev.coincident > 3 * ev.expected
    # the search is local: a proposal 0.5 s off (beyond search_s) does not reach the copy
    assert verify(ip, [(1, START + 0.5)], {1: song_a}) == []
    # an unknown recording is skipped, not looked up
    assert verify(ip, [(9, START)], {1: song_a}) == []
    # two proposals farther apart than search_s whose windows both reach the copy: one place, one match
    twice = verify(ip, [(1, START + 0.2), (1, START - 0.15)], {1: song_a})
    assert [(x.ref_start, x.alternative) for x in twice] == [(m.ref_start, False)]


def test_an_item_that_starts_before_the_recording_is_placed_where_the_recording_starts(lead_in_item, song_a):
    (m,) = verify(prepare(lead_in_item), [(1, -0.25)], {1: song_a})
    assert abs(m.query_start - 0.5) <= 2 * FD and m.ref_start == 0.0
    assert m.query_end == pytest.approx(ITEM_S, abs=1e-9)
    assert m.ref_end == pytest.approx(m.query_end - m.query_start, abs=1e-9)
    assert m.fmp <= MC.max_fmp and m.unmasked <= MC.max_unmasked


@pytest.mark.parametrize("negative", ["unrelated song under the masker", "the masker alone"])
def test_audio_without_the_recording_is_not_a_match(song_a, masker, negative):
    if negative == "the masker alone":
        x = masker
    else:
        x = synth.mix_at_snr(excerpt(synth.song(UNRELATED, duration=40.0, sr=SR)), masker, -6.0)
    ip = prepare(x)
    assert verify(ip, [(1, START + 0.2)], {1: song_a}) == []
    # not a near miss: the coincidences are at chance, and the masking test says no by itself
    ev = evidence(ip, ref_map(song_a), int(40.0 / FD), window(START + 0.2), MC)
    assert log10_fmp(ev.log10_tail, CATALOGUE_FRAMES, MC) > -1.0
    assert ev.unmasked > 0.2
    assert verify(ip, [(1, START + 0.2)], {1: song_a}, config=replace(MC, max_fmp=1.0)) == []


@pytest.fixture(scope="module")
def related():
    """A registered recording made of two stems (song A and song B at equal power), an unregistered
    recording that shares stem A at the same place (A with song C), and a genuine copy of the
    registered one under song C."""
    a = synth.song(SONG_A, duration=40.0, sr=SR)
    registered = synth.mix_at_snr(a, synth.song(SONG_B, duration=40.0, sr=SR), 0.0)
    c = synth.song(SONG_C, duration=ITEM_S, sr=SR)
    return registered, synth.mix_at_snr(excerpt(a), c, 0.0), synth.mix_at_snr(excerpt(registered), c, 0.0)


def test_a_related_recording_that_shares_a_stem_is_rejected_by_the_masking_test(related):
    registered, sibling, copy = related
    ip = prepare(sibling)
    ref = ref_map(registered)
    # the shared stem coincides far beyond chance: the coincidence test alone would report it
    ev = coincidence(ip, ref, int(40.0 / FD), window(START + 0.2), MC)
    assert abs(ev.offset - START / FD) <= 2
    assert log10_fmp(ev.log10_tail, CATALOGUE_FRAMES, MC) < math.log10(MC.max_fmp)
    # but the registered recording's other stem is missing where nothing in the item hides it
    assert unmasked_share(ip, ref, ev.offset, MC) > MC.max_unmasked
    assert verify(ip, [(1, START + 0.2)], {1: registered}) == []
    # only the masking test stands in the way
    (m,) = verify(ip, [(1, START + 0.2)], {1: registered}, config=replace(MC, max_unmasked=1.0))
    assert m.family == "mixture" and m.unmasked > MC.max_unmasked
    # a genuine copy of the registered recording, under the same song C, passes both tests
    (c,) = verify(prepare(copy), [(1, START + 0.2)], {1: registered})
    assert abs(c.ref_start - START) <= 2 * FD and c.unmasked <= MC.max_unmasked


@pytest.mark.parametrize("spread", [False, True])
def test_both_ways_of_counting_coincidences_agree(buried, reference_a, spread, monkeypatch):
    """Offsets close together are counted as one matrix, offsets far apart run by run: the same
    counts, means and tails either way."""
    ip = prepare(buried)
    frame, bins = reference_a[0], reference_a[1]
    ref_frames = int(40.0 / FD)
    offs = (np.unique(np.linspace(0, ref_frames - ip.n_frames, 29).astype(np.int64)) if spread
            else np.arange(100, 127))
    q0, q1 = np.zeros(len(offs), np.int64), np.full(len(offs), ip.n_frames)
    dense = mx._counts_dense(ip, frame, bins, offs, q0, q1)
    runs = mx._counts_runs(ip, frame, bins, offs, q0, q1)
    assert (dense[0] > 0).all() and len(dense[0]) == len(offs) > 20
    assert np.array_equal(dense[0], runs[0]) and np.array_equal(dense[1], runs[1])
    assert np.allclose(dense[2], runs[2], rtol=1e-12) and np.allclose(dense[3], runs[3], rtol=1e-12)
    # the search takes the matrix for close offsets, the runs for spread ones
    used = []

    def spy(name, real):
        return lambda *a: used.append(name) or real(*a)

    for name in ("_counts_dense", "_counts_runs"):
        monkeypatch.setattr(mx, name, spy(name, getattr(mx, name)))
    res = mx._coincidences(ip, frame, bins, ref_frames, offs, MC)
    assert used == ["_counts_runs" if spread else "_counts_dense"]
    assert np.array_equal(res[2], dense[0])


@pytest.mark.parametrize("chunk", [1, 5, 128])
def test_best_place_in_chunks_equals_one_search_over_every_offset(buried, reference_a, chunk):
    ip = prepare(buried)
    ref_frames = int(40.0 / FD)
    lo, hi = -int(0.1 * ip.n_frames), ref_frames - int(math.ceil(0.9 * ip.n_frames))
    whole = coincidence(ip, reference_a, ref_frames, np.arange(lo, hi + 1), MC)
    got = best_place(ip, reference_a, ref_frames, MC, chunk=chunk)
    assert got == whole
    assert abs(got.offset - START / FD) <= 2 and got.log10_tail < -25  # the copy's own place
    assert best_place(ip, reference_a, ip.n_frames // 2, MC) is None  # no whole-item place at all


def test_a_repeated_passage_gives_one_primary_and_one_alternative_match(masker):
    song = synth.song(SONG_C, duration=30.0, sr=SR)
    seg = excerpt(song, 12.0, ITEM_S)
    recording = np.concatenate([song[: int(3.0 * SR)], seg, seg, song[int(22.0 * SR):]])
    ip = prepare(synth.mix_at_snr(seg, masker, -6.0))
    found = verify(ip, [(1, 3.2), (1, 12.8)], {1: recording})
    assert len(found) == 2, found
    assert sorted(m.ref_start for m in found) == [pytest.approx(s, abs=2 * FD) for s in (3.0, 13.0)]
    assert [m.alternative for m in found] == [False, True]
    assert found[0].fmp <= found[1].fmp <= MC.max_fmp
    strong, weak = found[0].ref_start, found[1].ref_start
    # the stronger place proposed (twice within search_s: searched once): it is the best place of the
    # whole recording too, so one match; the recording's peaks are read once
    looked_up = []
    pm = ref_map(recording)
    recs = {1: _Rec("T1", len(recording) / SR)}
    (one,) = verify_alignments(ip, ITEM_S, [(1, strong + 0.2), (1, strong + 0.1)],
                               lambda r: looked_up.append(r) or pm, recs, PC, MC,
                               catalogue_frames=CATALOGUE_FRAMES)
    assert one.ref_start == pytest.approx(strong, abs=1e-9) and not one.alternative
    assert looked_up == [1]
    # only the weaker place proposed: the whole-recording search finds the stronger one, which is the
    # match, and the proposed place is its alternative
    again = verify(ip, [(1, weak + 0.2)], {1: recording})
    assert [(m.ref_start, m.alternative) for m in again] == [(pytest.approx(strong, abs=1e-9), False),
                                                              (pytest.approx(weak, abs=1e-9), True)]
    assert again[0].fmp == pytest.approx(found[0].fmp)


# ------------------------------------------------------------------------------- landmark proposals
def _hits(rows: list[tuple[int, float, float, int, float, float]]) -> Hits:
    """Hits from (rec, offset s, item anchor time s, anchor id, factor, shift st) rows."""
    rec, off, tq, anchor, factor, shift = (np.array(c) for c in zip(*rows, strict=True))
    n = len(rows)
    return Hits(rec=rec.astype(np.int64), tr=(tq + off).astype(float), tq=tq.astype(float),
                qp1=np.zeros(n), qspan=np.full(n, 0.5), anchor=anchor.astype(np.int64),
                factor=factor.astype(float), shift=shift.astype(float))


def test_timing_proposals_count_distinct_anchors_per_cell_at_the_recordings_speed_and_pitch():
    rows = []
    # rec 3 at 5.0 s: 10 anchors (jitter within the cell), and 2 of them also in the next cell
    rows += [(3, 5.0 + 0.02 * (i % 3) - 0.02, 0.3 * i, i, 1.0, 0.0) for i in range(10)]
    rows += [(3, 5.25, 0.3 * i, i, 1.0, 0.0) for i in (0, 1)]
    # rec 4 at 2.0 s: 5 anchors, anchor 20 hit ten times (one vote), time factor and shift within range
    rows += [(4, 2.0, 0.5 * i, 20 + i, 1.02, 0.3) for i in range(5)]
    rows += [(4, 2.0, 0.0, 20, 1.0, 0.0)] * 10
    # rec 7 before the item's start (negative offset): 3 anchors
    rows += [(7, -1.5, 2.0 + i, 30 + i, 1.0, 0.0) for i in range(3)]
    # many anchors at another speed or pitch: not timing-preserving, ignored
    rows += [(5, 7.0, 0.1 * i, 40 + i, 1.2, 0.0) for i in range(30)]
    rows += [(6, 9.0, 0.1 * i, 80 + i, 1.0, 2.0) for i in range(30)]
    rows += [(6, 9.0, 0.1 * i, 80 + i, 1.0, -0.6) for i in range(30)]
    hits = _hits(rows)
    # votes with the two neighbours': (3, 5.0) 10 + 2, (3, 5.25) 2 + 10, (4, 2.0) 5, (7, -1.5) 3;
    # (3, 5.25) ties its stronger-or-equal neighbour before it: one proposal for that place
    assert timing_proposals(hits, 10) == [(3, 5.0), (4, 2.0), (7, -1.5)]
    assert timing_proposals(hits, 2) == [(3, 5.0), (4, 2.0)]
    assert timing_proposals(hits, 0) == []
    # votes beyond (3, 5.25) make it the stronger (2 + 10 + 3 against 10 + 2): it takes the place;
    # two local maxima two cells apart are both proposed
    more = rows + [(3, 5.5, 0.3 * i, 100 + i, 1.0, 0.0) for i in range(3)]
    assert timing_proposals(_hits(more), 10) == [(3, 5.25), (4, 2.0), (7, -1.5)]
    apart = [(8, 1.0, 0.1 * i, i, 1.0, 0.0) for i in range(4)] + [(8, 1.5, 0.1 * i, 10 + i, 1.0, 0.0)
                                                                  for i in range(3)]
    assert timing_proposals(_hits(apart), 10) == [(8, 1.0), (8, 1.5)]
    # cells are PROPOSAL_CELL_S wide and round to the nearest: -1.6 s is cell -6 (-1.5 s)
    assert PROPOSAL_CELL_S == 0.25
    assert timing_proposals(_hits([(7, -1.6, 1.0, 0, 1.0, 0.0)]), 5) == [(7, -1.5)]
    assert timing_proposals(_hits([(2, -1000.0, 1.0, 0, 1.0, 0.0)]), 5) == [(2, -1000.0)]
    assert timing_proposals(_hits([(5, 7.0, 0.0, 0, 1.2, 0.0)]), 5) == []  # nothing kept


def test_timing_proposals_match_a_plain_vote_count():
    g = np.random.default_rng(8)
    n = 3000
    rows = [(int(g.integers(1, 6)), float(g.integers(-20, 60)) * 0.25 + float(g.uniform(-0.1, 0.1)),
             float(g.uniform(0, 10)), int(g.integers(0, 400)), float(g.choice([1.0, 1.01, 1.1])),
             float(g.choice([0.0, 0.2, 1.0]))) for _ in range(n)]
    votes: dict[tuple[int, int], set[int]] = {}
    for rec, off, _tq, anchor, factor, shift in rows:
        if abs(math.log(factor)) < 0.03 and abs(shift) < 0.5:
            votes.setdefault((rec, round(off / 0.25)), set()).add(anchor)
    smooth = {key: sum(len(votes.get((key[0], key[1] + d), ())) for d in (-1, 0, 1)) for key in votes}
    peaks = [key for key in smooth if smooth[key] > smooth.get((key[0], key[1] - 1), -1)
             and smooth[key] >= smooth.get((key[0], key[1] + 1), -1)]
    want = sorted(peaks, key=lambda key: (-smooth[key], key))[:25]
    assert 25 < len(peaks) < len(smooth)  # the rule is about something
    assert timing_proposals(_hits(rows), 25) == [(r, c * 0.25) for r, c in want]


# ------------------------------------------------------------------------------- the kept spectrogram
def test_peak_stream_keeps_the_whole_signals_spectrogram_and_the_peaks_levels():
    x = synth.song(21, duration=7.0, sr=SR)
    whole = log_spectrogram(x, QPC)
    sizes = [1, 0, 7, 1023, 3001, 2049, 5, 20000, 12345]
    cuts = np.cumsum(sizes)
    stream = PeakStream(QPC, chunk_s=1.0, keep_s=10.0)  # seven chunks
    for block in np.split(x, cuts[cuts < len(x)]):
        stream.feed(block)
    peaks = stream.finish()
    spec = stream.spectrogram()
    assert spec.dtype == np.float16 and spec.shape == whole.shape
    assert np.array_equal(spec, whole.astype(np.float16))
    # each peak's level is the spectrogram at its cell (as the catalogue stores it)
    frame, bins, level = peak_map(peaks, QPC)
    assert len(peaks) > 100
    assert np.array_equal(peaks.level, whole[frame, bins])
    assert np.array_equal(level, spec[frame, bins])
    # a signal longer than keep_s keeps none, and none is kept unless asked for
    for keep in (5.0, 0.0):
        short = PeakStream(QPC, chunk_s=1.0, keep_s=keep)
        short.feed(x)
        short.finish()
        assert short.spectrogram() is None


# ------------------------------------------------------------------------------- through a catalogue
@pytest.fixture(scope="module")
def mix_catalogue(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, np.ndarray], CatalogueReader]:
    """A catalogue of song A (32 s) and another song (20 s), registered from 11025 Hz WAVs."""
    root = tmp_path_factory.mktemp("mixture")
    songs = {"A": synth.song(SONG_A, duration=32.0, sr=SR), "O": synth.song(SONG_B, duration=20.0, sr=SR)}
    specs = []
    for tid, x in songs.items():
        synth.write_wav(root / f"{tid}.wav", x, SR)
        specs.append(RecordingSpec(root / f"{tid}.wav", tid))
    with Catalogue.open(root / "cat", create=True) as cat:
        assert cat.add(specs).count("added") == 2
    return root, songs, open_reader(root / "cat")


def test_the_catalogue_stores_each_recordings_peak_map(mix_catalogue):
    root, songs, reader = mix_catalogue
    assert reader.landmark_config.peaks == PC
    assert sorted(r.track_id for r in reader.recordings.values()) == sorted(songs)
    for rec_id, rec in reader.recordings.items():
        fa = fingerprint_source(root / f"{rec.track_id}.wav", reader.config, peaks=PC)
        want = peak_map(fa.peaks, PC)
        got = reader.peak_map(rec_id)
        assert [a.dtype for a in got] == [np.uint32, np.uint8, np.float16]
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
        assert len(got[0]) > 10 * rec.duration_s and np.all(np.diff(got[0].astype(np.int64)) >= 0)
        assert got[0][-1] <= rec.duration_s / FD and got[1].max() < PC.n_bins


def test_scan_finds_a_copy_buried_under_another_song_only_through_the_mixture_verifier(mix_catalogue):
    # 9 dB under: already at -6 dB no other family finds a 10 s excerpt of this catalogue's song A
    _, songs, reader = mix_catalogue
    snr_db = -9.0
    masker = synth.song(OTHER, duration=ITEM_S, sr=SR)
    item = ItemData("buried.wav", samples=synth.mix_at_snr(excerpt(songs["A"], 10.0), masker, snr_db),
                    sample_rate=SR)
    # no other family finds it: with the mixture verifier held to an impossible level, nothing
    off = scan_item(item, reader, ScanSettings(mixture=replace(MC, max_fmp=1e-300)))
    assert (off.status, off.matches) == ("no_match", ())
    result = scan_item(item, reader, ScanSettings())
    assert result.status == "match"
    (m,) = result.matches
    assert (m.family, m.track_id, m.alternative) == ("mixture", "A", False)
    assert abs(m.ref_start - 10.0) <= 2 * FD and m.query_start == 0.0
    assert m.fmp <= MC.max_fmp and m.unmasked <= MC.max_unmasked
    # its evidence is the verifier's at that offset, with the catalogue's seconds as the Bonferroni base
    fa = fingerprint_samples(item.samples, SR, reader.config, peaks=QPC, keep_spectrogram_s=MC.max_item_s)
    rec_id = next(k for k, r in reader.recordings.items() if r.track_id == "A")
    offset = int(round(m.ref_start / FD))
    ip = item_peaks(fa.peaks, fa.spectrogram, PC, MC)
    ev = coincidence(ip, reader.peak_map(rec_id), int(32.0 / FD), np.array([offset]), MC)
    assert (ev.offset, ev.coincident, ev.compared) == (offset, m.n_distinct, m.n_items)
    tail = pair_tail(ev, local_dispersion(ip, reader.peak_map(rec_id), int(32.0 / FD), MC))
    assert m.score == pytest.approx(-log10_fmp(tail, reader.landmark_seconds / FD, MC), rel=1e-12)
    # negative control: an unregistered song under the same masker
    other = ItemData("other.wav", samples=synth.mix_at_snr(
        excerpt(synth.song(UNRELATED + 100, duration=30.0, sr=SR), 10.0), masker, snr_db), sample_rate=SR)
    assert scan_item(other, reader, ScanSettings()).status == "no_match"


@pytest.mark.parametrize(("seconds", "verified"), [(40.0, False), (30.0, True)])
def test_scan_verifies_only_items_a_recording_can_face_for_min_share(mix_catalogue, monkeypatch, seconds,
                                                                     verified):
    # song A from its start, 15 dB under another song (so deep that only the mixture verifier can
    # find even 30 s of it); the longest recording is 32 s: 90 % of a 40 s item is longer than that
    _, songs, reader = mix_catalogue
    calls = []
    real = mx.verify_alignments
    monkeypatch.setattr(mx, "verify_alignments", lambda *a, **k: calls.append(a) or real(*a, **k))
    x = np.concatenate([songs["A"], songs["O"]])[: int(seconds * SR)]
    masker = synth.song(OTHER, duration=seconds, sr=SR)
    result = scan_item(ItemData("long.wav", samples=synth.mix_at_snr(x, masker, -15.0), sample_rate=SR),
                       reader, ScanSettings())
    assert len(calls) == verified
    # (at 15 dB under, this looping song's own dispersion leaves its coincidences short of 1e-6:
    # whether the item reaches the verifier is what is tested; finding is tested at 9 dB above)
    assert all(m.track_id == "A" for m in result.matches)
    if not verified:
        assert result.status == "no_match"


# ------------------------------------------------------------------------------- parameter safety
@pytest.mark.parametrize(("field", "value", "message"), [
    ("max_fmp", 0.0, "max_fmp=0.0"), ("max_fmp", 1.5, "max_fmp=1.5"), ("max_fmp", math.nan, "max_fmp"),
    ("max_unmasked", -0.1, "shares"), ("max_unmasked", 1.1, "shares"), ("loud_quantile", 1.0, "shares"),
    ("loud_quantile", -0.5, "shares"), ("tol_frames", -1, "tolerances"), ("tol_bins", -1, "tolerances"),
    ("proposals", -1, "proposals"), ("dispersion", 0.5, "dispersion"), ("min_share", 0.0, "min_share=0.0"),
    ("min_share", 1.01, "min_share=1.01"),
])
def test_invalid_mixture_config_is_refused(field, value, message):
    with pytest.raises(ParameterError, match=message):
        MixtureMatchConfig(**{field: value})


def test_valid_edges_of_the_mixture_config_are_accepted():
    for kw in ({"max_fmp": 1.0}, {"max_unmasked": 0.0}, {"max_unmasked": 1.0}, {"loud_quantile": 0.0},
               {"tol_frames": 0, "tol_bins": 0}, {"proposals": 0}, {"dispersion": 1.0}, {"min_share": 1.0}):
        assert getattr(MixtureMatchConfig(**kw), next(iter(kw))) == next(iter(kw.values()))
