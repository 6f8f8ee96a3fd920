"""How far a copy reaches: the extent of a decided match, from the recording's own peaks.

A match's span is where its family's evidence is: where landmark triplets survived whole (all three
peaks), or where Chromaprint items summarise mostly copied audio. A degraded copy (under speech,
pitch-shifted, reverberant) keeps evidence in patches, so its first and last pieces of evidence fall
inside the copy, on average about half a second from each end, and a report that counts how much of
a recording a dataset holds would come out short.

Single peaks survive far better than triplets. Once a match is decided (the alignment is known:
time factor, pitch shift, offset), the recording's stored peaks are mapped into the item, and each is
checked for an item peak within a few frames and a bin (the mixture verifier's test). Inside the
copy the share of peaks found is the copy's rate, measured over the match's span; beyond the copy it
falls to the item's chance rate (its peak occupancy per bin). The span is extended, in bins of
``bin_s``, as far as the peaks found keep above the midpoint of the two rates (a maximum-sum run
from each end of the span outward). The extent never shrinks a span, and it changes neither the
decision nor its evidence: only where the report says the copy begins and ends.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy.stats import poisson

from earmark.errors import ParameterError
from earmark.fingerprint.peaks import PeakConfig, Peaks, peak_cells
from earmark.match.mixture import dilate
from earmark.match.model import Match


@dataclass(frozen=True)
class ExtentConfig:
    """Parameters of :func:`extend`.

    Attributes
    ----------
    bin_s : float
        Item seconds per step of the extension (its precision).
    reach_s : float
        Farthest the extent looks beyond each end of the span, in item seconds.
    tol_frames, tol_bins : int
        A recording peak is found when the item has a peak within this many frames and
        log-frequency bins of where the alignment puts it.
    search_s : float
        The alignment is refined within this many seconds either way first, to the offset where the
        span's peaks agree best (Chromaprint places a match to within half an item, 0.06 s).
    min_peaks : int
        Fewest recording peaks the span must face to measure the copy's rate (else no extension).
    min_contrast : float
        The copy's rate must exceed the chance rate by this much (else no extension: the peaks do
        not tell the copy from other audio).
    max_chance : float
        ... and the span's found peaks must be this improbable under chance (Poisson, at the span's
        expected count, times the shifts the refinement tried): the best of many shifts of a
        misplaced alignment finds a few more than chance.
    shared_rate : float
        Two recordings share audio where one holds at least this share of the other's peaks (and
        ``min_contrast`` more than chance; :func:`peak_agreement`): a remaster holds about three
        quarters of its original's, unrelated recordings a few in a hundred.
    """

    bin_s: float = 0.25
    reach_s: float = 10.0
    tol_frames: int = 2
    tol_bins: int = 1
    search_s: float = 0.1
    min_peaks: int = 20
    min_contrast: float = 0.1
    max_chance: float = 1e-3
    shared_rate: float = 0.2

    def shares_audio(self, rate: float, chance: float, compared: int) -> bool:
        """Whether :func:`peak_agreement`'s figures say two recordings share audio."""
        return compared >= self.min_peaks and rate >= self.shared_rate and rate - chance >= self.min_contrast

    def __post_init__(self) -> None:
        if self.bin_s <= 0 or self.reach_s < 0 or self.tol_frames < 0 or self.tol_bins < 0:
            raise ParameterError("bin_s must be > 0; reach_s and tolerances >= 0")


@dataclass(frozen=True)
class Profile:
    """Recording peaks faced (``n``), found (``k``) and expected by chance (``mu``), and the item's own
    peaks (``own``), per bin of item time; bin ``i`` spans ``[start + i * bin_s, start + (i + 1) *
    bin_s)``. ``shift`` is the refinement of the alignment, in item seconds (added to item times)."""

    start: float
    bin_s: float
    n: np.ndarray
    k: np.ndarray
    mu: np.ndarray
    own: np.ndarray
    shift: float = 0.0


def profile(m: Match, item: Peaks, duration: float, ref: tuple[np.ndarray, np.ndarray, np.ndarray],
            pc: PeakConfig, config: ExtentConfig) -> Profile:
    """Where match ``m``'s alignment puts the recording's peaks ``ref`` (frames, bins, levels as
    stored) in the item, and which of them the item's peaks ``item`` hold, per bin of item time over
    the span and ``reach_s`` either side (bins aligned on the span's start)."""
    fd = pc.frame_duration
    centre = pc.n_fft / 2 / pc.sample_rate  # a cell's frame starts this long before its peak time
    k_left = int(np.ceil(min(config.reach_s, m.query_start) / config.bin_s))
    start = m.query_start - k_left * config.bin_s
    stop = min(duration, m.query_end + config.reach_s)
    n_bins = max(1, int(np.ceil((stop - start) / config.bin_s)))
    f0 = max(0, int(np.floor((start - centre) / fd)) - config.tol_frames)
    f1 = int(np.ceil((stop - centre) / fd)) + config.tol_frames + 1
    grid = np.zeros((f1 - f0, pc.n_bins), bool)
    own = np.zeros(n_bins)
    if len(item):
        frame, bins = peak_cells(item, pc)
        inside = (frame >= f0) & (frame < f1)
        grid[frame[inside] - f0, bins[inside]] = True
        t_item = np.asarray(item.time)
        t_item = t_item[(t_item >= start) & (t_item < stop)]
        own = np.bincount(np.minimum(((t_item - start) / config.bin_s).astype(np.int64), n_bins - 1),
                          minlength=n_bins).astype(np.float64)
    hit = dilate(grid, config.tol_frames, config.tol_bins)
    occupancy = hit.mean(axis=0)
    # the recording's peaks in item time and bins
    r_time = np.asarray(ref[0], np.float64) * fd + centre
    t = m.query_start + (r_time - m.ref_start) / m.time_factor
    b = np.asarray(ref[1], np.int64) + int(round(m.pitch_st * pc.bins_per_octave / 12))
    f = np.round((t - centre) / fd).astype(np.int64) - f0
    # refine the alignment: the frame shift at which most of the span's peaks are found
    span = (t >= m.query_start) & (t < m.query_end) & (b >= 0) & (b < pc.n_bins)
    reach = int(round(config.search_s / fd))
    best, shift = -1.0, 0
    for d in range(-reach, reach + 1):
        g = f[span] + d
        ok = (g >= 0) & (g < len(hit))
        found = float(hit[g[ok], b[span][ok]].sum())
        if found > best or (found == best and abs(d) < abs(shift)):
            best, shift = found, d
    f, t = f + shift, t + shift * fd
    ok = (t >= start) & (t < stop) & (b >= 0) & (b < pc.n_bins) & (f >= 0) & (f < len(hit))
    t, b, f = t[ok], b[ok], f[ok]
    idx = np.minimum(((t - start) / config.bin_s).astype(np.int64), n_bins - 1)
    n = np.bincount(idx, minlength=n_bins).astype(np.float64)
    k = np.bincount(idx, weights=hit[f, b], minlength=n_bins)
    mu = np.bincount(idx, weights=occupancy[b], minlength=n_bins)
    return Profile(start=start, bin_s=config.bin_s, n=n, k=k, mu=mu, own=own, shift=shift * fd)


def extend(m: Match, item: Peaks, duration: float, ref: tuple[np.ndarray, np.ndarray, np.ndarray],
           pc: PeakConfig, config: ExtentConfig, *, ref_duration: float) -> Match:
    """Match ``m`` with its span extended as far as the recording's peaks keep being found in the
    item (see the module); unchanged when the span's own peaks do not stand out from chance."""
    p = profile(m, item, duration, ref, pc, config)
    i0 = int(round((m.query_start - p.start) / p.bin_s))
    i1 = max(i0 + 1, int(np.ceil((m.query_end - p.start) / p.bin_s - 1e-9)))
    n_in = p.n[i0:i1].sum()
    if n_in < config.min_peaks:
        return m
    k_in = p.k[i0:i1].sum()
    rate_in = k_in / n_in
    rate_chance = p.mu.sum() / max(p.n.sum(), 1.0)
    shifts = 2 * int(round(config.search_s / pc.frame_duration)) + 1
    chance = shifts * float(poisson.sf(k_in - 1, rate_chance * n_in))
    if rate_in - rate_chance < config.min_contrast or chance > config.max_chance:
        return m
    gain = p.k - 0.5 * (rate_in + rate_chance) * p.n
    q0, q1 = m.query_start, m.query_end
    left = np.cumsum(gain[:i0][::-1])  # sums of the runs ending at the span, longest last
    if len(left) and left.max() > 0:
        q0 = max(0.0, m.query_start - (int(np.argmax(left)) + 1) * p.bin_s)
    right = np.cumsum(gain[i1:])
    if len(right) and right.max() > 0:
        q1 = min(duration, p.start + (i1 + int(np.argmax(right)) + 1) * p.bin_s)
    # the copy cannot reach beyond the recording; where what is left of the item or the recording
    # up to either's end holds no peak on either side (a silent end, a fade below the peak floor),
    # nothing tells the copy from what follows, and it is taken to run to that end
    a = m.time_factor
    first = max(0.0, m.query_start - m.ref_start / a)
    last = min(duration, m.query_start + (ref_duration - m.ref_start) / a)
    q0, q1 = max(q0, first), min(q1, last)
    silent = (p.n == 0) & (p.own == 0)
    j0 = int(np.floor((first - p.start) / p.bin_s + 1e-9))
    j1 = int(np.ceil((last - p.start) / p.bin_s - 1e-9))
    b0 = int(round((q0 - p.start) / p.bin_s))
    b1 = int(round((q1 - p.start) / p.bin_s))
    if 0 <= j0 < b0 and silent[j0:b0].all():
        q0 = first
    if b1 < j1 <= len(silent) and silent[b1:j1].all():
        q1 = last
    if q0 >= m.query_start and q1 <= m.query_end:
        return m
    q0, q1 = min(q0, m.query_start), max(q1, m.query_end)
    r0 = m.ref_start + (q0 - m.query_start) * a
    r1 = m.ref_start + (q1 - m.query_start) * a
    return dataclasses.replace(m, query_start=q0, query_end=q1, ref_start=max(0.0, r0),
                               ref_end=min(ref_duration, max(r0, r1)))


def peak_agreement(a: tuple[np.ndarray, np.ndarray, np.ndarray], a_start_s: float,
                   b: tuple[np.ndarray, np.ndarray, np.ndarray], b_start_s: float, length_s: float, *,
                   b_per_a: float = 1.0, shift_bins: int = 0, pc: PeakConfig, config: ExtentConfig,
                   search_frames: int = 6) -> tuple[float, float, int]:
    """How many of recording ``b``'s peaks over ``length_s`` seconds from ``b_start_s`` recording
    ``a`` holds from ``a_start_s`` (``b_per_a`` seconds of ``b`` per second of ``a``, ``b``'s bins
    ``shift_bins`` above ``a``'s), at the best of the frame shifts within ``search_frames``: the
    share found within the tolerance, the share expected by chance (``a``'s peak occupancy in those
    bins), and the peaks compared. A remaster holds about three quarters of its original's peaks;
    two unrelated recordings hold their chance share, a few in a hundred."""
    fd = pc.frame_duration
    fa, ba = np.asarray(a[0], np.int64), np.asarray(a[1], np.int64)
    a0, a1 = int(a_start_s / fd), int((a_start_s + length_s) / fd)
    grid = np.zeros((max(1, a1 - a0 + 1), pc.n_bins), bool)
    inside = (fa >= a0) & (fa <= a1)
    grid[fa[inside] - a0, ba[inside]] = True
    hit = dilate(grid, config.tol_frames, config.tol_bins)
    occupancy = hit.mean(axis=0)
    fb, bb = np.asarray(b[0], np.float64), np.asarray(b[1], np.int64) - shift_bins
    b0 = b_start_s / fd
    sel = (fb >= b0) & (fb <= b0 + (a1 - a0) * b_per_a) & (bb >= 0) & (bb < pc.n_bins)
    at = np.round((fb[sel] - b0) / b_per_a).astype(np.int64)
    bb = bb[sel]
    best = (0.0, 0.0, 0)
    for d in range(-search_frames, search_frames + 1):
        ok = (at + d >= 0) & (at + d < len(hit))
        n = int(ok.sum())
        if n == 0:
            continue
        rate = float(hit[at[ok] + d, bb[ok]].mean())
        if rate > best[0]:
            best = (rate, float(occupancy[bb[ok]].mean()), n)
    return best
