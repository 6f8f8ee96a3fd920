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
   ``mu = sum p_b``. Chance coincidences come in clumps (music repeats itself), so ``k`` is counted
   in clumps of ``dispersion`` peaks (quasi-Poisson, fitted on non-catalogue audio by
   ``benchmarks/null_calibration.py``), and the tail is multiplied by every distinguishable offset
   of the catalogue (Bonferroni).
2. **Masking.** An item that holds the recording under other sound is the recording plus something:
   wherever the recording has a peak, the item is at least as loud (less a fixed gain). So the item's
   level at each loud reference peak, less the peak's own level, is compared with its median over the
   item: a reference peak that the item leaves ``unmasked_db`` quieter than that is one the item
   lacks although nothing in it could hide the peak. A related recording (a passage or stems shared
   by two recordings of one artist) lacks many; a copy under other sound lacks almost none. At most
   ``max_unmasked`` of them may be missing. This is what keeps unregistered recordings of the same
   artist out: their shared material coincides as well as a buried copy does.

The decision is taken only on whole items (``min_share`` of the item must face the recording), like
the envelope verifier's: a copy that fills only part of an item is left to the other families.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.special import gammainc

from earmark.catalogue.store import Recording
from earmark.errors import ParameterError
from earmark.fingerprint.peaks import PeakConfig, Peaks
from earmark.match.landmarks import LOG10_FLOOR, Hits
from earmark.match.model import Match

#: Width in seconds of the offset cells that timing-preserving landmark hits vote in.
PROPOSAL_CELL_S = 0.25


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
    dispersion : float
        Clump size of chance coincidences (quasi-Poisson); fitted on non-catalogue audio.
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
    proposals: int = 32
    dispersion: float = 1.0
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


@dataclass(frozen=True)
class ItemPeaks:
    """What the verifier needs of an item, computed once: its dilated peak map (frames x bins), the
    per-bin chance that a frame holds a peak there, and its log spectrogram's 3 x 3 maximum."""

    hit: np.ndarray  # bool frames x bins: an item peak within the tolerance
    occupancy: np.ndarray  # float per bin
    level: np.ndarray  # float32 frames x bins, dB

    @property
    def n_frames(self) -> int:
        return len(self.hit)


def item_peaks(peaks: Peaks, spectrogram: np.ndarray, pc: PeakConfig, config: MixtureMatchConfig) -> ItemPeaks:
    """Prepare an item's peaks (any picker's) and its kept spectrogram for :func:`evidence`."""
    n = len(spectrogram)
    grid = np.zeros((n, pc.n_bins), bool)
    if n and len(peaks):
        f = np.round((np.asarray(peaks.time) - pc.n_fft / 2 / pc.sample_rate) / pc.frame_duration)
        b = np.round(np.asarray(peaks.pitch) * pc.bins_per_octave / 12.0)
        grid[np.clip(f, 0, n - 1).astype(np.int64), np.clip(b, 0, pc.n_bins - 1).astype(np.int64)] = True
    size = (2 * config.tol_frames + 1, 2 * config.tol_bins + 1)
    hit = ndimage.maximum_filter(grid, size=size, mode="constant", cval=False) if n else grid
    occupancy = hit.mean(axis=0) if n else np.zeros(pc.n_bins)
    level = (ndimage.maximum_filter(np.asarray(spectrogram, np.float32), size=(3, 3), mode="nearest")
             if n else np.zeros((0, pc.n_bins), np.float32))
    return ItemPeaks(hit=hit, occupancy=occupancy, level=level)


@dataclass(frozen=True)
class Evidence:
    """The verifier's evidence at one alignment (``offset`` in frames: recording frame of item
    frame 0)."""

    offset: int
    compared: int  # reference peaks the item faces
    coincident: int
    expected: float  # the null's mean
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


def evidence(item: ItemPeaks, ref: tuple[np.ndarray, np.ndarray, np.ndarray], ref_frames: int,
             offsets: np.ndarray, config: MixtureMatchConfig) -> Evidence | None:
    """The best of ``offsets`` (frames) by coincidence tail, with its masking test; None when the
    item faces the recording (``ref_frames`` long) at none of them for ``min_share`` of its
    frames."""
    frame, bins, level = (np.asarray(a) for a in ref)
    n = item.n_frames
    best: Evidence | None = None
    for o in np.asarray(offsets, np.int64):
        q0, q1 = max(0, -int(o)), min(n, ref_frames - int(o))
        if n == 0 or (q1 - q0) < config.min_share * n:
            continue
        a, b = np.searchsorted(frame, o + q0), np.searchsorted(frame, o + q1)
        if b - a == 0:
            continue
        qf, qb = frame[a:b].astype(np.int64) - o, bins[a:b].astype(np.int64)
        k = int(item.hit[qf, qb].sum())
        mu = float(item.occupancy[qb].sum())
        tail = log10_tail(k, mu, config.dispersion)
        if best is None or tail < best.log10_tail:
            best = Evidence(offset=int(o), compared=int(b - a), coincident=k, expected=mu, unmasked=1.0,
                            share=(q1 - q0) / n, log10_tail=tail)
    if best is None:
        return None
    o = best.offset
    a = np.searchsorted(frame, o + max(0, -o))
    b = np.searchsorted(frame, o + min(n, ref_frames - o))
    qf, qb, lv = frame[a:b].astype(np.int64) - o, bins[a:b].astype(np.int64), level[a:b].astype(np.float32)
    loud = lv >= np.quantile(lv, config.loud_quantile)
    d = item.level[qf[loud], qb[loud]] - lv[loud]
    unmasked = float(np.mean(d < np.median(d) - config.unmasked_db)) if len(d) else 1.0
    return Evidence(offset=o, compared=best.compared, coincident=best.coincident, expected=best.expected,
                    unmasked=unmasked, share=best.share, log10_tail=best.log10_tail)


def timing_proposals(hits: Hits, n: int) -> list[tuple[int, float]]:
    """The ``n`` (recording, offset in seconds) cells that most distinct item anchors vote for among
    landmark hits that keep the recording's speed and pitch (a cell's votes include its two
    neighbours'), strongest first."""
    keep = (np.abs(np.log(hits.factor)) < 0.03) & (np.abs(hits.shift) < 0.5)
    if n <= 0 or not keep.any():
        return []
    rec, anchor = hits.rec[keep], hits.anchor[keep]
    cell = np.round((hits.tr[keep] - hits.tq[keep]) / PROPOSAL_CELL_S).astype(np.int64)
    pairs = np.unique(np.stack([rec, cell, anchor]), axis=1)  # one vote per anchor and cell
    cells, votes = np.unique(pairs[:2], axis=1, return_counts=True)
    key = cells[0] * (1 << 32) + cells[1]
    smooth = votes.astype(np.int64).copy()
    for d in (-1, 1):
        j = np.searchsorted(key, key + d)
        found = (j < len(key)) & (key[np.minimum(j, len(key) - 1)] == key + d)
        smooth[found] += votes[j[found]]
    order = np.lexsort((key, -smooth))[:n]
    return [(int(cells[0][i]), float(cells[1][i] * PROPOSAL_CELL_S)) for i in order]


def verify_alignments(
    item: ItemPeaks, duration: float, proposals: Iterable[tuple[int, float]],
    peak_map: Mapping[int, tuple[np.ndarray, np.ndarray, np.ndarray]] | object,
    recordings: Mapping[int, Recording], pc: PeakConfig, config: MixtureMatchConfig, *,
    catalogue_frames: float,
) -> list[Match]:
    """Mixture matches among the proposed (recording, offset in seconds) alignments of a whole item.

    ``peak_map(rec_id)`` gives a recording's stored peaks (a ``CatalogueReader`` method). Every
    recording's best passing place is reported; its other passing places (a repeated passage) are
    alternatives.
    """
    fd = pc.frame_duration
    span = int(round(config.search_s / fd))
    tried: dict[int, list[int]] = {}
    found: list[tuple[float, int, Evidence]] = []
    for rec_id, off in proposals:
        if rec_id not in recordings:
            continue
        o0 = int(round(off / fd))
        if any(abs(o0 - t) <= span for t in tried.get(rec_id, [])):
            continue
        tried.setdefault(rec_id, []).append(o0)
        ref_frames = int(recordings[rec_id].duration_s / fd)
        ev = evidence(item, peak_map(rec_id), ref_frames,  # type: ignore[operator]
                      np.arange(o0 - span, o0 + span + 1), config)
        if ev is None:
            continue
        fmp10 = log10_fmp(ev.log10_tail, catalogue_frames, config)
        if fmp10 <= math.log10(config.max_fmp) and ev.unmasked <= config.max_unmasked:
            found.append((fmp10, rec_id, ev))
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
