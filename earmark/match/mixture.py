"""Mixture verification: whole-item copies buried under other sound (music, speech, noise).

Under louder music or speech a recording keeps only some of its spectral peaks on top: too few
triplets survive for the landmark family (a triplet needs all three of its peaks) and the chroma
bits follow the louder source. Single peaks survive far better. This module checks proposed
alignments (recording, offset at the recording's own speed and pitch) peak by peak, over the whole
item. See ``docs/matching.md``.

Evidence, for the recording's stored peaks that the item faces at the alignment:

1. **Coincidence.** ``k`` of the ``n`` reference peaks have an item peak within ``tol_frames``
   frames and ``tol_bins`` log-frequency bins. Under the null (the item unrelated to the
   recording) a reference peak in bin ``b`` finds one with the probability ``p_b`` that a random
   frame of the item has one there (the item's own peak occupancy, per bin), so ``k`` has mean
   ``mu = sum p_b``; were the peaks independent, its variance would be ``sum p_b (1 - p_b)``, a
   little below ``mu``. Chance coincidences come in clumps (notes are held, music repeats itself),
   and more so between some pairs (two pieces in one key and metre) than others, so ``k`` is counted
   in clumps of the *pair's own* dispersion: the variance of ``k - mu`` over ``background_offsets``
   offsets spread evenly over the recording, divided by the mean ``mu``, and never below that of
   independent peaks (times ``dispersion``): a local background like the landmark family's
   (quasi-Poisson; checked on non-catalogue audio by ``benchmarks/null_calibration.py``). The tail
   is multiplied by every distinguishable offset of the catalogue (Bonferroni).
2. **Masking.** An item that holds the recording under other sound is the recording plus something:
   wherever the recording has a peak, the item is at least as loud (less a fixed gain). So the item's
   level at each loud reference peak, less the peak's own level, is compared with its median over the
   item: a reference peak that the item leaves ``unmasked_db`` quieter than that is one the item
   lacks although nothing in it could hide the peak. A related recording (a passage or stems shared
   by two recordings of one artist) lacks many; a copy under other sound lacks almost none. At most
   ``max_unmasked`` of them may be missing. This is what keeps unregistered recordings of the same
   artist out: their shared material coincides as well as a buried copy does.

The decision is taken only on whole items (``min_share`` of the item must face the recording), like
the envelope verifier's: a copy that fills only part of an item is left to the other families and
to the excerpt check (:mod:`earmark.match.excerpt`), which applies these tests to that part alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
from scipy.special import gammainc

from earmark.catalogue.store import Recording
from earmark.errors import ParameterError
from earmark.fingerprint.peaks import PeakConfig, Peaks, peak_cells
from earmark.match.landmarks import LOG10_FLOOR, Hits
from earmark.match.model import Match

#: Width in seconds of the offset cells that timing-preserving landmark hits vote in.
PROPOSAL_CELL_S = 0.25
#: Landmark hits whose time factor is within 3 % (in log) of 1 keep the recording's speed.
_FACTOR_LO, _FACTOR_HI = math.exp(-0.03), math.exp(0.03)


@dataclass(frozen=True)
class MixtureMatchConfig:
    """Thresholds of the mixture verifier.

    Attributes
    ----------
    max_fmp : float
        Report a match whose false-match probability (see the module) is at most this, the chance
        level Chromaprint matches are held to.
    max_unmasked : float
        Largest share of the loud reference peaks that the item may lack where nothing in it could
        hide them (the masking test).
    unmasked_db : float
        How much quieter than its median level difference the item must be at a reference peak for
        that peak to count as lacking.
    loud_quantile : float
        Reference peaks below this quantile of the compared peaks' levels are not judged by the
        masking test (a quiet peak is hidden by a codec's noise as easily as by music).
    tol_frames, tol_bins : int
        An item peak within this many frames and log-frequency bins of a reference peak coincides
        with it (the masking test reads the item's loudest cell within one of each).
    search_s : float
        Offsets within this many seconds of a proposed one are searched (proposals come from cells
        a quarter of a second wide, or from Chromaprint items of 0.12 s).
    min_share : float
        Share of the item that must face the recording at the alignment.
    proposals : int
        Timing-preserving landmark cells proposed per item, by votes.
    chroma_proposals : int
        Chromaprint's most voted candidate alignments proposed per item.
    dispersion : float
        Smallest clump size of chance coincidences (quasi-Poisson), as a multiple of that of
        independent peaks, ``sum p_b (1 - p_b) / mu``: a pair's own is measured.
    background_offsets : int
        Offsets of the recording at which a pair's own dispersion is measured.
    max_item_s : float
        Longer items are not verified (their spectrogram is not kept; a whole-item test would need
        a recording longer still).
    """

    max_fmp: float = 1e-6
    max_unmasked: float = 0.05
    unmasked_db: float = 6.0
    loud_quantile: float = 0.25
    tol_frames: int = 2
    tol_bins: int = 1
    search_s: float = 0.3
    min_share: float = 0.9
    proposals: int = 48
    chroma_proposals: int = 12
    dispersion: float = 1.0
    background_offsets: int = 32
    max_item_s: float = 900.0

    def __post_init__(self) -> None:
        if not 0.0 < self.max_fmp <= 1.0:
            raise ParameterError(f"max_fmp={self.max_fmp} must be in (0, 1]")
        if not 0.0 <= self.max_unmasked <= 1.0 or not 0.0 <= self.loud_quantile < 1.0:
            raise ParameterError("max_unmasked and loud_quantile must be shares")
        if self.tol_frames < 0 or self.tol_bins < 0 or self.proposals < 0 or self.dispersion < 1.0:
            raise ParameterError("tolerances and proposals must be >= 0, dispersion >= 1")
        if not 0.0 < self.min_share <= 1.0:
            raise ParameterError(f"min_share={self.min_share} must be in (0, 1]")
        if self.background_offsets < 2:
            raise ParameterError("background_offsets must be at least 2")
        if self.search_s < 0 or self.unmasked_db < 0 or self.max_item_s < 0:
            raise ParameterError("search_s, unmasked_db and max_item_s must be >= 0")


@dataclass(frozen=True)
class ItemPeaks:
    """What the verifier needs of an item, computed once: its dilated peak map (frames x bins), the
    per-bin chance that a frame holds a peak there, and its log spectrogram."""

    hit: np.ndarray  # bool frames x bins: an item peak within the tolerance
    occupancy: np.ndarray  # float per bin
    spectrogram: np.ndarray  # frames x bins, dB

    @property
    def n_frames(self) -> int:
        return len(self.hit)

    def level(self, frames: np.ndarray, bins: np.ndarray) -> np.ndarray:
        """The item's loudest level (dB) within one frame and one bin of each cell."""
        spec = self.spectrogram
        n, nb = spec.shape
        out = np.full(len(frames), -np.inf, np.float32)
        for df in (-1, 0, 1):
            f = np.clip(frames + df, 0, n - 1)
            for db in (-1, 0, 1):
                out = np.maximum(out, spec[f, np.clip(bins + db, 0, nb - 1)])
        return out


def dilate(grid: np.ndarray, df: int, db: int) -> np.ndarray:
    """Logical OR over a (2 df + 1) x (2 db + 1) neighbourhood, by shifted slices."""
    out = grid.copy()
    for s in range(1, db + 1):
        out[:, s:] |= grid[:, :-s]
        out[:, :-s] |= grid[:, s:]
    across = out.copy()
    for s in range(1, df + 1):
        out[s:] |= across[:-s]
        out[:-s] |= across[s:]
    return out


def item_peaks(peaks: Peaks, spectrogram: np.ndarray, pc: PeakConfig,
               config: MixtureMatchConfig) -> ItemPeaks:
    """Prepare an item's peaks (any picker's) and its kept spectrogram for :func:`evidence`."""
    n = len(spectrogram)
    grid = np.zeros((n, pc.n_bins), bool)
    if n and len(peaks):
        f, b = peak_cells(peaks, pc)
        grid[np.minimum(f, n - 1), b] = True
    hit = dilate(grid, config.tol_frames, config.tol_bins)
    occupancy = hit.mean(axis=0) if n else np.zeros(pc.n_bins)
    return ItemPeaks(hit=hit, occupancy=occupancy, spectrogram=np.asarray(spectrogram))


@dataclass(frozen=True)
class Evidence:
    """The verifier's evidence at one alignment (``offset`` in frames: recording frame of item
    frame 0)."""

    offset: int
    compared: int  # reference peaks the item faces
    coincident: int
    expected: float  # the null's mean
    dispersion: float  # the null's smallest: independent peaks' variance over the mean (x config)
    unmasked: float  # share of loud reference peaks the item lacks unhidden
    share: float  # share of the item's frames facing the recording
    log10_tail: float


def log10_tail(k: int, mu: float, dispersion: float) -> float:
    """log10 P(K >= k) for chance coincidences of mean ``mu``, counted in clumps of ``dispersion``."""
    if k <= mu:
        return 0.0
    with np.errstate(divide="ignore"):
        return max(float(np.log10(gammainc(k / dispersion, max(mu, 1e-9) / dispersion))), LOG10_FLOOR)


def log10_fmp(tail: float, catalogue_frames: float, config: MixtureMatchConfig) -> float:
    """The tail multiplied by every distinguishable offset of the catalogue."""
    tests = max(1.0, catalogue_frames / (2 * config.tol_frames + 1))
    return min(0.0, tail + math.log10(tests))


def _coincidences(item: ItemPeaks, frame: np.ndarray, bins: np.ndarray, ref_frames: int, offs: np.ndarray,
                  config: MixtureMatchConfig) -> tuple[np.ndarray, ...] | None:
    """Per offset (frames, ascending): log10 tail, coincident and compared peaks, null mean, faced
    item frames, smallest dispersion. None when no offset faces enough."""
    n = item.n_frames
    q0, q1 = np.maximum(0, -offs), np.minimum(n, ref_frames - offs)
    ok = (q1 - q0) >= config.min_share * n
    if n == 0 or not ok.any():
        return None
    offs, q0, q1 = offs[ok], q0[ok], q1[ok]
    count = _counts_dense if offs[-1] - offs[0] <= n else _counts_runs
    counted = count(item, np.asarray(frame), np.asarray(bins), offs, q0, q1)
    if counted is None:
        return None
    k, compared, mu, var = counted
    m = np.maximum(mu, 1e-9)
    d = np.maximum(config.dispersion * var / m, 1e-6)  # independent peaks' (times the floor)
    with np.errstate(divide="ignore"):
        tails = np.where(k > mu, np.log10(gammainc(k / d, m / d)), 0.0)
    tails = np.maximum(tails, LOG10_FLOOR)
    return offs, tails, k, compared, mu, q1 - q0, d


def _counts_dense(item: ItemPeaks, frame: np.ndarray, bins: np.ndarray, offs: np.ndarray, q0: np.ndarray,
                  q1: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """Per offset facing item frames ``[q0, q1)``: coincident and compared peaks, the null's mean and
    independent peaks' variance. For offsets close together: every reference peak any of them faces,
    against every offset (a few hundred x a few dozen)."""
    a, b = np.searchsorted(frame, offs[0] + q0[0]), np.searchsorted(frame, offs[-1] + q1[-1])
    if b <= a:
        return None
    f, fb = frame[a:b].astype(np.int64), bins[a:b].astype(np.int64)
    qf = f[None, :] - offs[:, None]
    faced = (qf >= q0[:, None]) & (qf < q1[:, None])
    # the item cell each peak meets, as a flat index (cells off the item are clipped, then not faced)
    nb = item.hit.shape[1]
    cell = (f * nb + fb)[None, :] - (offs * nb)[:, None]
    k = np.count_nonzero(np.take(item.hit.reshape(-1), cell, mode="clip") & faced, axis=1)
    p = item.occupancy[fb]
    fm = faced.astype(np.float64)
    return k, np.count_nonzero(faced, axis=1), fm @ p, fm @ (p * (1.0 - p))


def _counts_runs(item: ItemPeaks, frame: np.ndarray, bins: np.ndarray, offs: np.ndarray, q0: np.ndarray,
                 q1: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """:func:`_counts_dense` for offsets far apart: the reference peaks (sorted by frame) an offset
    faces are one run of them, so only those are gathered, offset by offset, and the null's sums are
    differences of running sums (the work is the peaks faced, however far apart the offsets are)."""
    start, end = np.searchsorted(frame, offs + q0), np.searchsorted(frame, offs + q1)
    compared = end - start
    total = int(compared.sum())
    if total == 0:
        return None
    row = np.repeat(np.arange(len(offs)), compared)
    j = np.arange(total) + np.repeat(start - (np.cumsum(compared) - compared), compared)  # peak index
    hit = item.hit[frame[j].astype(np.int64) - offs[row], bins[j]]
    k = np.bincount(row, weights=hit, minlength=len(offs)).astype(np.int64)
    lo, hi = int(start.min()), int(end.max())
    p = item.occupancy[bins[lo:hi]]
    run_mu = np.concatenate([[0.0], np.cumsum(p)])
    run_var = np.concatenate([[0.0], np.cumsum(p * (1.0 - p))])
    return (k, compared, run_mu[end - lo] - run_mu[start - lo],
            run_var[end - lo] - run_var[start - lo])


def coincidence(item: ItemPeaks, ref: tuple[np.ndarray, np.ndarray, np.ndarray], ref_frames: int,
                offsets: np.ndarray, config: MixtureMatchConfig) -> Evidence | None:
    """The best of ``offsets`` (frames, ascending, consecutive) by coincidence tail; None when the
    item faces the recording (``ref_frames`` long) at none of them for ``min_share`` of its frames.
    The masking test is not run (``unmasked`` is NaN): see :func:`evidence`.

    Every ``tol_frames + 1``-th offset is tried first (a copy's peaks coincide within the tolerance
    at one of them), then every offset around the best of those."""
    frame, bins = np.asarray(ref[0]), np.asarray(ref[1])
    offs = np.asarray(offsets, np.int64)
    step = config.tol_frames + 1
    coarse = _coincidences(item, frame, bins, ref_frames, offs[::step], config) if step > 1 else None
    if coarse is not None:
        o = int(coarse[0][int(np.argmin(coarse[1]))])
        offs = offs[(offs >= o - step + 1) & (offs <= o + step - 1)]
    res = _coincidences(item, frame, bins, ref_frames, offs, config)
    if res is None:
        return None
    offs, tails, k, compared, mu, faced, disp = res
    i = int(np.argmin(tails))  # the first of equals: offsets ascend, so the result is deterministic
    return Evidence(offset=int(offs[i]), compared=int(compared[i]), coincident=int(k[i]),
                    expected=float(mu[i]), dispersion=float(disp[i]), unmasked=math.nan,
                    share=float(faced[i] / item.n_frames), log10_tail=float(tails[i]))


def local_dispersion(item: ItemPeaks, ref: tuple[np.ndarray, np.ndarray, np.ndarray], ref_frames: int,
                     config: MixtureMatchConfig) -> float:
    """The pair's own clump size of chance coincidences: ``var(k - mu) / mean(mu)`` over
    ``background_offsets`` whole-item offsets spread evenly over the recording (0 where it cannot
    be measured; :func:`pair_tail` never goes below independent peaks'). A copy's own place is one
    of many and barely moves it; two pieces that agree in key and metre everywhere raise it, and
    with it every tail between them."""
    n = item.n_frames
    if n == 0 or ref_frames <= n:
        return 0.0
    offs = np.unique(np.linspace(0, ref_frames - n, config.background_offsets).astype(np.int64))
    res = _coincidences(item, np.asarray(ref[0]), np.asarray(ref[1]), ref_frames, offs,
                        replace(config, min_share=1.0))
    if res is None or len(res[0]) < 2:
        return 0.0
    _, _, k, _, mu, _, _ = res
    return float(np.var(k - mu) / max(float(np.mean(mu)), 1e-9))


def pair_tail(ev: Evidence, local: float) -> float:
    """log10 tail of ``ev``'s coincidences at the pair's own dispersion ``local``
    (:func:`local_dispersion`), never below the smallest at the alignment."""
    return log10_tail(ev.coincident, ev.expected, max(ev.dispersion, local))


def unmasked_share(item: ItemPeaks, ref: tuple[np.ndarray, np.ndarray, np.ndarray], offset: int,
                   config: MixtureMatchConfig) -> float:
    """The masking test at one offset: the share of the loud reference peaks the item faces that it
    is ``unmasked_db`` quieter at than the median difference (see the module)."""
    frame, bins, level = (np.asarray(a) for a in ref)
    n = item.n_frames
    a, b = np.searchsorted(frame, offset + max(0, -offset)), np.searchsorted(frame, offset + n)
    if b <= a:
        return 1.0
    qf, qb = frame[a:b].astype(np.int64) - offset, bins[a:b].astype(np.int64)
    lv = level[a:b].astype(np.float32)
    loud = lv >= np.quantile(lv, config.loud_quantile)
    d = item.level(qf[loud], qb[loud]) - lv[loud]
    return float(np.mean(d < np.median(d) - config.unmasked_db))


def evidence(item: ItemPeaks, ref: tuple[np.ndarray, np.ndarray, np.ndarray], ref_frames: int,
             offsets: np.ndarray, config: MixtureMatchConfig) -> Evidence | None:
    """:func:`coincidence` with the masking test at its best offset."""
    ev = coincidence(item, ref, ref_frames, offsets, config)
    if ev is None:
        return None
    return replace(ev, unmasked=unmasked_share(item, ref, ev.offset, config))


def timing_proposals(hits: Hits | Iterable[Hits], n: int) -> list[tuple[int, float]]:
    """The ``n`` (recording, offset in seconds) cells that most distinct item anchors vote for among
    landmark hits (one set, or blocks of them) that keep the recording's speed and pitch (a cell's
    votes include its two neighbours'), strongest first, each a local maximum of those votes (of a
    run of equal cells, the first)."""
    keys, anchors = [], []
    for h in [hits] if isinstance(hits, Hits) else hits:
        keep = np.flatnonzero((h.factor > _FACTOR_LO) & (h.factor < _FACTOR_HI) & (np.abs(h.shift) < 0.5))
        cell = np.round((h.tr[keep] - h.tq[keep]) / PROPOSAL_CELL_S).astype(np.int64)
        keys.append((h.rec[keep] << 32) + (cell + (1 << 31)))  # recording, then offset cell (may be < 0)
        anchors.append(h.anchor[keep])
    key = np.concatenate(keys) if keys else np.zeros(0, np.int64)
    if n <= 0 or not len(key):
        return []
    anchor = np.concatenate(anchors)
    order = np.lexsort((anchor, key))
    key, anchor = key[order], anchor[order]
    first = np.r_[True, (key[1:] != key[:-1]) | (anchor[1:] != anchor[:-1])]  # one vote per anchor
    key, votes = np.unique(key[first], return_counts=True)
    smooth = votes.astype(np.int64).copy()
    nbr = []
    for d in (-1, 1):
        j = np.searchsorted(key, key + d)
        found = (j < len(key)) & (key[np.minimum(j, len(key) - 1)] == key + d)
        smooth[found] += votes[j[found]]
        nbr.append((found, j))
    # a cell beside a stronger one (or an equal one before it) adds nothing: the verifier searches
    # around each proposal further than a cell, so the slots go to distinct places
    peak = np.ones(len(key), bool)
    for (found, j), beats in zip(nbr, (np.greater, np.greater_equal), strict=True):
        peak[found] &= beats(smooth[found], smooth[j[found]])
    sel = np.flatnonzero(peak)
    order = sel[np.lexsort((key[sel], -smooth[sel]))][:n]
    return [(int(key[i] >> 32), float(((key[i] & 0xFFFFFFFF) - (1 << 31)) * PROPOSAL_CELL_S)) for i in order]


def best_place(item: ItemPeaks, ref: tuple[np.ndarray, np.ndarray, np.ndarray], ref_frames: int,
               config: MixtureMatchConfig, chunk: int = 128) -> Evidence | None:
    """:func:`coincidence` over every whole-item offset of the recording, in chunks of ``chunk``
    coarse offsets (bounded memory): the best place, without the masking test."""
    n = item.n_frames
    lo, hi = -int((1.0 - config.min_share) * n), ref_frames - int(math.ceil(config.min_share * n))
    if n == 0 or hi < lo:
        return None
    frame, bins = np.asarray(ref[0]), np.asarray(ref[1])
    step = config.tol_frames + 1
    coarse = np.arange(lo, hi + 1, step)
    best: tuple[float, int] | None = None
    for a in range(0, len(coarse), chunk):
        res = _coincidences(item, frame, bins, ref_frames, coarse[a:a + chunk], config)
        if res is not None:
            i = int(np.argmin(res[1]))  # the first of equals, as coincidence()
            if best is None or res[1][i] < best[0]:
                best = (float(res[1][i]), int(res[0][i]))
    if best is None:
        return None
    return coincidence(item, ref, ref_frames, np.arange(best[1] - step + 1, best[1] + step), config)


def _judge(ev: Evidence | None, item: ItemPeaks, ref: tuple[np.ndarray, np.ndarray, np.ndarray],
           local: Callable[[], float], config: MixtureMatchConfig, catalogue_frames: float
           ) -> tuple[float, Evidence] | None:
    """``(log10 FMP, evidence)`` when the place passes both tests (the tail at the pair's own
    dispersion ``local()``, asked for only now: it only weakens the tail), else None."""
    if ev is None:
        return None
    fmp10 = log10_fmp(ev.log10_tail, catalogue_frames, config)
    if fmp10 > math.log10(config.max_fmp):
        return None
    d = local()
    if d > ev.dispersion:
        ev = replace(ev, log10_tail=pair_tail(ev, d))
        fmp10 = log10_fmp(ev.log10_tail, catalogue_frames, config)
        if fmp10 > math.log10(config.max_fmp):
            return None
    ev = replace(ev, unmasked=unmasked_share(item, ref, ev.offset, config))
    return (fmp10, ev) if ev.unmasked <= config.max_unmasked else None


def verify_alignments(
    item: ItemPeaks, duration: float, proposals: Iterable[tuple[int, float]],
    peak_map: Mapping[int, tuple[np.ndarray, np.ndarray, np.ndarray]] | object,
    recordings: Mapping[int, Recording], pc: PeakConfig, config: MixtureMatchConfig, *,
    catalogue_frames: float, search: Iterable[int] = (),
) -> list[Match]:
    """Mixture matches among the proposed (recording, offset in seconds) alignments of a whole item.

    ``peak_map(rec_id)`` gives a recording's stored peaks (a ``CatalogueReader`` method). A
    recording found at some proposal, or listed in ``search``, is also searched over every
    whole-item offset (its passage may repeat, and the proposals miss the true place): every
    recording's best passing place is reported, its other passing places (a repeated passage) as
    alternatives.
    """
    fd = pc.frame_duration
    span = int(round(config.search_s / fd))
    tried: dict[int, list[int]] = {}
    found: list[tuple[float, int, Evidence]] = []
    refs: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    dispersions: dict[int, float] = {}

    def local(rec_id: int, ref: tuple[np.ndarray, np.ndarray, np.ndarray], ref_frames: int) -> float:
        if rec_id not in dispersions:  # the pair's, whichever place: measured once per recording
            dispersions[rec_id] = local_dispersion(item, ref, ref_frames, config)
        return dispersions[rec_id]

    for rec_id, off in proposals:
        if rec_id not in recordings:
            continue
        o0 = int(round(off / fd))
        if any(abs(o0 - t) <= span for t in tried.get(rec_id, [])):
            continue
        tried.setdefault(rec_id, []).append(o0)
        ref_frames = int(recordings[rec_id].duration_s / fd)
        if rec_id not in refs:
            refs[rec_id] = peak_map(rec_id)  # type: ignore[operator]
        ref = refs[rec_id]
        ev = coincidence(item, ref, ref_frames, np.arange(o0 - span, o0 + span + 1), config)
        passed = _judge(ev, item, ref, partial(local, rec_id, ref, ref_frames), config, catalogue_frames)
        if passed is not None:
            found.append((passed[0], rec_id, passed[1]))
    # a recording found somewhere may repeat the passage: its best place over the whole recording
    # (which the proposals can miss) is judged too, and the strongest place is the match
    for rec_id in sorted({r for _, r, _ in found} | {r for r in search if r in recordings}):
        if rec_id not in refs:
            refs[rec_id] = peak_map(rec_id)  # type: ignore[operator]
        ref_frames, ref = int(recordings[rec_id].duration_s / fd), refs[rec_id]
        ev = best_place(item, ref, ref_frames, config)
        if ev is None or any(r == rec_id and abs(e.offset - ev.offset) <= 2 * span for _, r, e in found):
            continue
        passed = _judge(ev, item, ref, partial(local, rec_id, ref, ref_frames), config, catalogue_frames)
        if passed is not None:
            found.append((passed[0], rec_id, passed[1]))
    found.sort(key=lambda x: (x[0], x[1], x[2].offset))
    out: list[Match] = []
    placed: list[tuple[int, int]] = []
    for fmp10, rec_id, ev in found:
        if any(r == rec_id and abs(o - ev.offset) <= 2 * span for r, o in placed):
            continue
        alternative = any(r == rec_id for r, _ in placed)
        placed.append((rec_id, ev.offset))
        rec = recordings[rec_id]
        q0 = max(0.0, -ev.offset * fd)
        q1 = min(duration, rec.duration_s - ev.offset * fd)
        r0 = ev.offset * fd + q0
        out.append(Match(
            track_id=rec.track_id, rec_id=rec_id, query_start=q0, query_end=max(q0, q1), ref_start=r0,
            ref_end=r0 + max(0.0, q1 - q0), score=-fmp10, fmp=10**fmp10, ber=None, chance_ber=None,
            n_items=ev.compared, n_distinct=ev.coincident, alternative=alternative, family="mixture",
            unmasked=ev.unmasked))
    out.sort(key=lambda m: (m.alternative, m.fmp, m.track_id))
    return out
