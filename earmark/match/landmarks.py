"""Landmark matching: Hough votes over (recording, time factor, pitch shift, offset), refined to the
inliers of the best cells, scored by a local-background Poisson null model.

Long items are searched in overlapping windows (bounded memory and a fresh chance per window, which
the false-match probability counts); a recording found in several windows at one alignment is
reported once over the union of their spans. See ``docs/matching.md`` for the null model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Protocol

import numpy as np
from scipy.special import gammainc

from earmark.fingerprint.landmarks import TripletConfig, Triplets, probe_ranges, triplets
from earmark.fingerprint.peaks import Peaks
from earmark.index.postings import LookupFilter, Postings
from earmark.match.model import FACTOR_TOLERANCE, Match, transform_reading
from earmark.match.runs import max_subarray

#: Probabilities below 1e-300 are reported as 1e-300 (beyond float range, and beyond meaning).
LOG10_FLOOR = -300.0
#: Width of the bins over which an alignment's supported span is found (see :func:`evidence_span`).
SPAN_BIN_S = 0.5
#: Bits of a packed Hough cell below the recording id (factor 6, shift 6, offset 24).
_CELL_BITS = 36
#: The empirical null (:func:`empirical_log10_fmp`) fits the tail of Hough cells with at least this
#: many hits on the item's other recordings.
EMPIRICAL_MIN_HITS = 2
#: The tail is fitted above the count of the item's this-many-th strongest such cell.
EMPIRICAL_TAIL = 20
#: Its per-hit decay when fewer than three such cells exist (too few to fit): tenfold per hit.
EMPIRICAL_FALLBACK_LOG10_DECAY = -1.0
#: Recordings that some alignment places at this analytic FMP are left out of the item's null.
EMPIRICAL_PRESENT_FMP = 1e-6


class LandmarkIndex(Protocol):
    """What the matcher needs from a catalogue (``CatalogueReader`` provides it)."""

    def landmark_lookup(self, lo: np.ndarray, hi: np.ndarray,
                        accept: LookupFilter | None = None) -> tuple[np.ndarray, ...]: ...

    def recording_duration(self, rec_id: int) -> float: ...

    @property
    def n_recordings(self) -> int: ...

    @property
    def landmark_seconds(self) -> float: ...


@dataclass(frozen=True)
class HoughConfig:
    """Hypothesis cells, inlier tolerances, windows and the decision threshold.

    Attributes
    ----------
    log_factor_cell, shift_cell_st, offset_cell_s : float
        Hough cell sizes: natural log of the time factor, semitones, seconds.
    max_cells : int
        Cells refined per window (by raw votes).
    inlier_s, inlier_st : float
        A hit is an inlier of a hypothesis when its recording time lies within ``inlier_s`` of the
        fitted line and its pitch shift within ``inlier_st`` of the fitted shift.
    window_s, hop_s : float
        Long items are searched in windows of this length, this far apart.
    min_pitches : int
        Degenerate-audio guard: inlier anchors must span at least this many distinct semitones
        (a tone or a chord repeats a few pitches and can line up with anything that holds them).
    min_span_s, min_span_fraction : float
        A match must cover at least ``max(min_span_s, min_span_fraction * min(item, 10 s))`` of
        the item: chance and shared motifs line up briefly, copies throughout.
    dispersion : float
        Over-dispersion of chance anchors (quasi-Poisson): anchors are counted in clumps of this
        size, and the chance rate divided by it; fitted on generated audio
        (``benchmarks/null_calibration.py``).
    calibration : float
        Multiplier of the Bonferroni-Poisson tail fitted on non-catalogue audio so that predicted
        and observed chance-match rates agree (``benchmarks/null_calibration.py``).
    span_density : float
        Inliers per second below which a stretch at either end of an alignment is not counted in
        its span (:func:`evidence_span`); a weak copy under noise keeps one or two a second.
    max_fmp : float
        Report a landmark-only match when its false-match probability is at most this. The null
        model bounds *chance* alignments, and 1e-6 would rule chance out; but recordings of one
        artist can share passages (a theme, a loop, a remix's stems), which no chance model covers.
        The default is the preset that keeps false positives at zero on the public benchmark's
        hard negatives (same-artist unregistered recordings; the strongest scores 1e-75, see
        docs/benchmarks.md). Matches that Chromaprint confirms are not held to it.
    copy_fmp : float
        A landmark-only match that keeps the recording's timing (time factor within 1 % of 1:
        untransformed or pitch-shifted) and covers at least ``min_span_fraction`` of the whole
        item stands at this probability, the chance level Chromaprint matches are held to. Such an
        alignment says the item *is* the recording, degraded: related recordings of one artist
        line up at another tempo (a theme reused, a remix) or over a short stretch of a longer
        piece (a shared ending), and those are held to ``max_fmp``. It admits the item's best
        place only: a weaker place of a passage the recording repeats is reported (as an
        alternative) at ``max_fmp``.
    confirm_fmp : float
        A landmark match at most this probable by chance that coincides with a Chromaprint match
        adds its evidence and factors to it.
    """

    log_factor_cell: float = 0.03
    shift_cell_st: float = 0.5
    offset_cell_s: float = 0.25
    max_cells: int = 12
    inlier_s: float = 0.06
    inlier_st: float = 0.4
    window_s: float = 20.0
    hop_s: float = 15.0
    min_pitches: int = 4
    min_span_s: float = 1.5
    min_span_fraction: float = 0.5
    dispersion: float = 1.2
    calibration: float = 1.0
    span_density: float = 0.5
    max_fmp: float = 1e-80
    copy_fmp: float = 1e-6
    confirm_fmp: float = 1e-6

    def min_span(self, item_duration: float) -> float:
        """The shortest evidence span (s) a landmark match of an item this long may have."""
        return max(self.min_span_s, self.min_span_fraction * min(item_duration, 10.0))

    @property
    def search_fmp(self) -> float:
        """Landmark matches worth keeping before the decision: those that may stand alone and
        those that may confirm a Chromaprint match."""
        return max(self.confirm_fmp, self.max_fmp, self.copy_fmp)

    def stands_alone(self, m: Match, item_duration: float) -> bool:
        """Whether a landmark match no Chromaprint match confirms is reported."""
        if m.fmp <= self.max_fmp:
            return True
        keeps_timing = abs(m.time_factor - 1.0) <= FACTOR_TOLERANCE
        covers_item = m.duration >= self.min_span_fraction * item_duration
        return keeps_timing and covers_item and m.fmp <= self.copy_fmp


@dataclass(frozen=True)
class Candidate:
    """One alignment hypothesis in one window, with its evidence and false-match probability."""

    rec_id: int
    time_factor: float  # recording seconds per item second
    pitch_st: float  # pitch of the item relative to the recording
    offset_s: float  # recording time at item time 0
    anchors: int  # distinct item anchors among the inliers (the evidence unit)
    pitches: int  # distinct anchor semitones among the inliers
    hits: int  # inlier hits
    background: int  # all hits on this recording in the window (the chance level grows with it)
    query_start: float
    query_end: float
    log10_fmp: float
    log10_empirical_fmp: float | None = None  # on the recordings the item does not hold (None: none left)


def log10_fmp(anchors: int, background: int, *, rec_duration: float, window_s: float, n_windows: int,
              catalogue_seconds: float, n_recordings: int, tc: TripletConfig, hc: HoughConfig) -> float:
    """log10 of the probability that chance alone lines up ``anchors`` anchors this well.

    Under the null the item is unrelated to the catalogue and each of the ``background`` hits on the
    recording falls in a hypothesis' inlier band with probability
    ``p = 2 inlier_s / (L_rec + L_window) * inlier_st / max_shift``; the inlier anchors are then
    Poisson with mean ``background * p`` (the query's own hits: a local background that penalises
    items that hit a recording everywhere). The tail is multiplied by the number of distinguishable
    hypotheses over the whole catalogue (offsets x shifts x time factors, per window, over every
    window) and by the fitted calibration factor.
    """
    p_in = (2 * hc.inlier_s / (rec_duration + window_s)) * min(1.0, hc.inlier_st / max(tc.max_shift_st, 1e-9))
    lam = max(background, 1) * p_in
    # quasi-Poisson: neighbouring anchors share peaks, so chance agreements come in clumps of about
    # ``dispersion`` anchors; count clumps. P(K >= k) for Poisson(m) is the regularised lower
    # incomplete gamma P(k, m), which also serves fractional k.
    d = max(hc.dispersion, 1.0)
    k = max(anchors / d, 1e-9)
    with np.errstate(divide="ignore"):
        tail = max(float(np.log10(gammainc(k, lam / d))), LOG10_FLOOR)
    span = min(window_s, hc.window_s)
    factors = max(1.0, (1 + tc.tempo_tolerance - 1 / (1 + tc.tempo_tolerance)) * span / (2 * hc.inlier_s))
    shifts = max(1.0, tc.max_shift_st / hc.inlier_st)
    offsets = (catalogue_seconds + n_recordings * span) / (2 * hc.inlier_s)
    tests = offsets * shifts * factors * max(1, n_windows)
    return min(0.0, float(tail) + math.log10(tests * hc.calibration))


def empirical_log10_fmp(hits: int, other: np.ndarray, *, catalogue_seconds: float, left_out_seconds: float,
                        n_left_out: int, n_recordings: int, window_s: float, n_windows: int,
                        hc: HoughConfig) -> float | None:
    """log10 of the probability that chance gives an alignment whose strongest Hough cell holds
    ``hits`` hits, measured on the item itself: its cells on the recordings it does not hold (all but
    ``n_left_out`` of them, ``left_out_seconds`` long; ``other``: their hit counts, those of at least
    ``EMPIRICAL_MIN_HITS``) are its chance alignments with music.

    Where ``hits`` is within their range, the expected number of chance cells at least this strong is
    counted; beyond it, the tail above a threshold ``u`` (the ``EMPIRICAL_TAIL``-th strongest count,
    at least ``EMPIRICAL_MIN_HITS``) is fitted as geometric (maximum likelihood, one pseudo-cell):
    each further hit is ``q = m / (1 + m)`` times as likely, ``m`` the mean excess over ``u``, so
    ``E = n_u * q ** (hits - u) * (1 + q) / 2`` (mid-p: as strong cells count half; so are they in
    the counted range). ``E`` is scaled from the other recordings' cells to the whole
    catalogue's (in proportion to their seconds plus one window each) and multiplied by the windows;
    the probability is ``1 - exp(-E)``. An item that holds rich music agrees with much of any
    catalogue by chance (shared keys, chords and tempos) and so sets itself a higher bar; that is what
    the analytic model (:func:`log10_fmp`) misses. None (no estimate) when the catalogue has no
    recording left."""
    span = min(window_s, hc.window_s)
    other_s = catalogue_seconds - left_out_seconds + (n_recordings - n_left_out) * span
    if n_recordings <= n_left_out or other_s <= 0:
        return None
    scale = max(n_windows, 1) * (catalogue_seconds + n_recordings * span) / other_s
    other = np.asarray(other)
    if len(other) >= 3:
        k = min(EMPIRICAL_TAIL, len(other))
        u = max(EMPIRICAL_MIN_HITS, int(np.partition(other, -k)[-k]))
        tail = other[other >= u]
        m = (float(np.sum(tail - u)) + 1.0) / (len(tail) + 1.0)
        decay = math.log10(m / (1.0 + m))
        n_u = len(tail)
    else:
        u, decay, n_u = EMPIRICAL_MIN_HITS, EMPIRICAL_FALLBACK_LOG10_DECAY, max(len(other), 1)
    # mid-p (a count moves in whole hits, and counting the equal ones whole makes every probability
    # conservative by up to a factor 1 / q at loose thresholds)
    if hits <= u:
        as_strong = float(np.sum(other > hits)) + 0.5 * float(np.sum(other == hits))
        log10_e = math.log10(scale * max(as_strong, 0.5))
    else:
        log10_e = math.log10(scale * n_u * 0.5 * (1.0 + 10**decay)) + (hits - u) * decay
    if log10_e > 1.0:
        return 0.0
    p = log10_e if log10_e < -8 else math.log10(-math.expm1(-10**log10_e))
    return max(min(0.0, p), LOG10_FLOOR)


def _windows(duration: float, hc: HoughConfig) -> list[tuple[float, float]]:
    if duration <= hc.window_s:
        return [(0.0, max(duration, 1e-3))]
    n = int(math.ceil((duration - hc.window_s) / hc.hop_s)) + 1
    return [(i * hc.hop_s, min(duration, i * hc.hop_s + hc.window_s)) for i in range(n)]


@dataclass(frozen=True)
class Hits:
    """Index hits of an item's triplets that a time factor and shift within range can explain, one
    row per hit: the recording and its anchor time, the item anchor (its time, pitch, span and a
    peak id, unique within the item), and the hit's time factor and pitch shift."""

    rec: np.ndarray  # int64
    tr: np.ndarray  # recording anchor time, s
    tq: np.ndarray  # item anchor time, s
    qp1: np.ndarray  # item anchor pitch, semitones
    qspan: np.ndarray  # item t3 - t1, s
    anchor: np.ndarray  # int64 item peak id of the anchor
    factor: np.ndarray
    shift: np.ndarray

    def __len__(self) -> int:
        return len(self.rec)

    @staticmethod
    def concat(parts: list[Hits]) -> Hits:
        if len(parts) == 1:
            return parts[0]
        return Hits(**{f.name: np.concatenate([getattr(h, f.name) for h in parts]) for f in fields(Hits)})


def triplet_hits(q: Triplets, index: LandmarkIndex, tc: TripletConfig, *, anchor_base: int = 0) -> Hits:
    """Look up triplets ``q`` and keep the hits within the tempo tolerance and the pitch range.
    ``anchor_base`` is added to the anchors' peak indices (triplets formed from a slice of peaks)."""
    lo, hi, row = probe_ranges(q, tc)
    tol = 1.0 + tc.tempo_tolerance

    def within(qi: np.ndarray, pr: np.ndarray, spr: np.ndarray) -> np.ndarray:
        qrow = row[qi]
        factor = spr / q.span[qrow]
        return (factor >= 1 / tol) & (factor <= tol) & (np.abs(q.p1[qrow] - pr) <= tc.max_shift_st)

    # the index reads a hit's recording and time only once it is within range
    qi, rec, tr, pr, spr = index.landmark_lookup(lo, hi, within)
    qrow = row[qi]
    return Hits(rec=np.asarray(rec, np.int64), tr=np.asarray(tr, np.float64),
                tq=q.t1[qrow], qp1=q.p1[qrow], qspan=q.span[qrow], anchor=q.anchor[qrow] + anchor_base,
                factor=spr / q.span[qrow], shift=q.p1[qrow] - pr)


def window_candidates(q: Triplets, index: LandmarkIndex, tc: TripletConfig, hc: HoughConfig, *,
                      window: tuple[float, float], n_windows: int) -> list[Candidate]:
    """Alignment hypotheses for the triplets anchored in ``window``, strongest first."""
    w0, w1 = window
    q = q.select(np.flatnonzero((q.t1 >= w0) & (q.t1 < w1)))
    return hough_candidates(triplet_hits(q, index, tc), index, tc, hc, window=window, n_windows=n_windows)


def hough_candidates(h: Hits, index: LandmarkIndex, tc: TripletConfig, hc: HoughConfig, *,
                     window: tuple[float, float], n_windows: int) -> list[Candidate]:
    """Alignment hypotheses from the hits of one window's triplets, strongest first."""
    if len(h) == 0:
        return []
    w0, w1 = window
    rec, tr, tq, factor, shift = h.rec, h.tr, h.tq, h.factor, h.shift
    tol = 1.0 + tc.tempo_tolerance
    centre = 0.5 * (w0 + w1)
    b_c = tr - factor * (tq - centre)  # recording time at the window centre: little leverage
    lf = np.round(np.log(factor) / hc.log_factor_cell).astype(np.int64) + 32
    sh = np.round(shift / hc.shift_cell_st).astype(np.int64) + 32
    of = np.round(b_c / hc.offset_cell_s).astype(np.int64) + 2**23
    packed = (rec << _CELL_BITS) | (lf << 30) | (sh << 24) | of
    order = np.argsort(packed)  # grouping only: ties need no order
    ps = packed[order]
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])
    counts = np.diff(np.r_[starts, len(ps)])
    if len(counts) > hc.max_cells:  # the strongest cells, without sorting them all
        best = np.argpartition(-counts, hc.max_cells - 1)[: hc.max_cells]
        best = best[np.lexsort((best, -counts[best]))]
    else:
        best = np.lexsort((np.arange(len(counts)), -counts))
    top = starts[best]
    anchor = h.anchor
    cells = ps[starts]
    out: list[Candidate] = []
    line_cells: list[int] = []  # hits in the strongest cell on each candidate's line
    for cell in ps[top]:
        r = int(cell >> _CELL_BITS)
        a0 = np.searchsorted(ps, r << _CELL_BITS)
        a1 = np.searchsorted(ps, (r + 1) << _CELL_BITS)
        idx = order[a0:a1]  # every hit on recording r
        c_lf, c_sh, c_of = (cell >> 30) & 63, (cell >> 24) & 63, cell & (2**24 - 1)
        near = idx[(np.abs(lf[idx] - c_lf) <= 1) & (np.abs(sh[idx] - c_sh) <= 1)
                   & (np.abs(of[idx] - c_of) <= 1)]
        a = float(np.median(factor[near]))
        s = float(np.median(shift[near]))
        b = float(np.median(tr[near] - a * tq[near]))
        inl = idx[(np.abs(tr[idx] - (a * tq[idx] + b)) <= hc.inlier_s)
                  & (np.abs(shift[idx] - s) <= hc.inlier_st)]
        if len(inl) == 0:
            continue
        # refit on the inliers (Theil-Sen slope, median shift and offset), then recount
        if np.ptp(tq[inl]) > 1.0:
            a = float(np.clip(_theil_sen(tq[inl], tr[inl]), 1 / tol, tol))
            b = float(np.median(tr[inl] - a * tq[inl]))
            s = float(np.median(shift[inl]))
            inl = idx[(np.abs(tr[idx] - (a * tq[idx] + b)) <= hc.inlier_s)
                      & (np.abs(shift[idx] - s) <= hc.inlier_st)]
        anchors = len(np.unique(anchor[inl]))
        pitches = len(np.unique(np.round(h.qp1[inl])))
        if pitches < hc.min_pitches:
            lf10 = 0.0
        else:
            lf10 = log10_fmp(anchors, len(idx), rec_duration=index.recording_duration(r),
                             window_s=w1 - w0, n_windows=n_windows,
                             catalogue_seconds=index.landmark_seconds,
                             n_recordings=index.n_recordings, tc=tc, hc=hc)
        q0, q1 = evidence_span(tq[inl], tq[inl] + h.qspan[inl], hc)
        out.append(Candidate(
            rec_id=r, time_factor=a, pitch_st=s, offset_s=b, anchors=anchors, pitches=pitches,
            hits=len(inl), background=len(idx), query_start=q0, query_end=q1, log10_fmp=lf10))
        line_cells.append(int(counts[np.searchsorted(cells, np.unique(packed[inl]))].max()))
    return _dedupe(_with_empirical(out, line_cells, cells, counts, index, hc, window_s=w1 - w0,
                                   n_windows=n_windows))


def _with_empirical(cands: list[Candidate], line_cells: list[int], cells: np.ndarray, counts: np.ndarray,
                    index: LandmarkIndex, hc: HoughConfig, *, window_s: float, n_windows: int
                    ) -> list[Candidate]:
    """The window's candidates with their empirical FMP (:func:`empirical_log10_fmp`): the null is
    the item's cells on recordings it does not hold, so the candidate's own recording is left out,
    and so is every recording that some candidate already places at ``EMPIRICAL_PRESENT_FMP`` (a
    medley's other pieces, the music a copy is buried under: their cells are copies, not chance)."""
    if not cands:
        return cands
    cut = math.log10(EMPIRICAL_PRESENT_FMP)
    present = sorted({c.rec_id for c in cands if c.log10_fmp <= cut})
    strong = counts >= EMPIRICAL_MIN_HITS
    strong_rec = cells[strong] >> _CELL_BITS
    strong_counts = counts[strong]
    out = []
    for c, k in zip(cands, line_cells, strict=True):
        if c.pitches < hc.min_pitches:
            out.append(c)
            continue
        left_out = sorted(set(present) | {c.rec_id})
        null = strong_counts[~np.isin(strong_rec, left_out)]
        lf = empirical_log10_fmp(k, null, catalogue_seconds=index.landmark_seconds,
                                 left_out_seconds=sum(index.recording_duration(r) for r in left_out),
                                 n_left_out=len(left_out), n_recordings=index.n_recordings,
                                 window_s=window_s, n_windows=n_windows, hc=hc)
        out.append(replace(c, log10_empirical_fmp=lf))
    return out


def evidence_span(start: np.ndarray, end: np.ndarray, hc: HoughConfig) -> tuple[float, float]:
    """The stretch of the item an alignment's inliers support: the run of ``SPAN_BIN_S`` bins whose
    inlier count most exceeds ``hc.span_density`` per second (a maximum subarray), and within
    it from the 2nd percentile of the inliers' anchor times to the 98th of their last peaks' times.
    A few stray inliers far from the copy (chance agreements, or a neighbouring piece in a medley
    that shares a motif) would otherwise stretch the reported span over audio without evidence."""
    lo = float(start.min())
    bins = np.floor((start - lo) / SPAN_BIN_S).astype(np.int64)
    gain = np.bincount(bins).astype(np.float64) - hc.span_density * SPAN_BIN_S
    a, b = max_subarray(gain)
    keep = (bins >= a) & (bins < b)
    return float(np.percentile(start[keep], 2)), float(np.percentile(end[keep], 98))


def _theil_sen(x: np.ndarray, y: np.ndarray, max_points: int = 256) -> float:
    """Median of the slopes between pairs of points at least 0.5 s apart (robust to the outliers
    a least-squares fit follows); an evenly spaced subset bounds the work."""
    if len(x) > max_points:
        order = np.lexsort((y, x))  # the subset must not depend on the order hits arrived in
        pick = order[np.linspace(0, len(x) - 1, max_points).astype(np.int64)]
        x, y = x[pick], y[pick]
    dx = x[None, :] - x[:, None]
    dy = y[None, :] - y[:, None]
    ok = dx > 0.5
    return float(np.median(dy[ok] / dx[ok])) if ok.any() else 1.0  # callers ensure a 1 s spread


def _same_alignment(x: Candidate, y: Candidate) -> bool:
    if x.rec_id != y.rec_id or abs(x.pitch_st - y.pitch_st) > 0.5:
        return False
    mid = 0.5 * (max(x.query_start, y.query_start) + min(x.query_end, y.query_end))
    return abs((x.offset_s + x.time_factor * mid) - (y.offset_s + y.time_factor * mid)) <= 0.5


def _dedupe(cands: list[Candidate]) -> list[Candidate]:
    cands = sorted(cands, key=lambda c: (c.log10_fmp, -c.anchors, c.rec_id))
    kept: list[Candidate] = []
    for c in cands:
        if not any(_same_alignment(c, k) for k in kept):
            kept.append(c)
    return kept


def search(peaks: Peaks, duration: float, index: LandmarkIndex, tc: TripletConfig, hc: HoughConfig, *,
           hits_out: list[Hits] | None = None) -> list[Candidate]:
    """Candidates of every window of an item (its query peaks, its duration in seconds), strongest
    first. With ``hits_out``, every block's index hits are appended to it too (each hit once).

    Windows overlap, so the item is cut at every window edge into blocks, and each block's triplets
    are formed (from the peaks its anchors can reach) and looked up once; a window's Hough votes run
    over the hits of its blocks. Memory stays bounded however long the item is."""
    wins = _windows(duration, hc)
    reach = 2 * tc.max_gap_s * (1 + tc.tempo_tolerance)  # an anchor's follower's followers
    t, pitch, strength = np.asarray(peaks.time), np.asarray(peaks.pitch), np.asarray(peaks.strength)
    edges = sorted({e for w in wins for e in w})
    cache: dict[float, Hits] = {}
    out: list[Candidate] = []
    for w0, w1 in wins:
        blocks = [(b0, b1) for b0, b1 in zip(edges[:-1], edges[1:], strict=True) if b0 >= w0 and b1 <= w1]
        for b0 in [b for b in cache if b < w0]:
            del cache[b0]  # earlier windows only
        for b0, b1 in blocks:
            if b0 not in cache:
                a, b = np.searchsorted(t, b0, side="left"), np.searchsorted(t, b1 + reach, side="right")
                q = triplets(Peaks(time=t[a:b], pitch=pitch[a:b], strength=strength[a:b]), tc, query=True)
                q = q.select(np.flatnonzero((q.t1 >= b0) & (q.t1 < b1)))
                cache[b0] = triplet_hits(q, index, tc, anchor_base=int(a))
                if hits_out is not None:
                    hits_out.append(cache[b0])
        hits = Hits.concat([cache[b0] for b0, _ in blocks])
        out += hough_candidates(hits, index, tc, hc, window=(w0, w1), n_windows=len(wins))
    return sorted(out, key=lambda c: (c.log10_fmp, -c.anchors, c.rec_id))


def match_peaks(peaks: Peaks, duration: float, index: LandmarkIndex, recordings: dict[int, object],
                tc: TripletConfig, hc: HoughConfig, *, max_fmp: float | None = None,
                hits_out: list[Hits] | None = None, excerpts_out: list[Match] | None = None) -> list[Match]:
    """Landmark matches of one item: candidates at most ``max_fmp`` (default ``hc.max_fmp``) that
    span enough of the item, one per (recording, alignment), spans merged across windows, in item
    order. ``hits_out`` collects the index hits (see :func:`search`). ``excerpts_out`` collects, the
    same way, the alignments too short for that (at least ``hc.min_span_s``) that keep the
    recording's speed and pitch and no longer alignment holds: excerpts, which only a check of
    their peaks can admit (:mod:`earmark.match.excerpt`)."""
    limit = math.log10(hc.max_fmp if max_fmp is None else max_fmp)
    min_span = hc.min_span(duration)
    cands = [c for c in search(peaks, duration, index, tc, hc, hits_out=hits_out) if c.log10_fmp <= limit]
    sig = [c for c in cands if c.query_end - c.query_start >= min_span]
    if excerpts_out is not None:
        short = [c for c in cands if hc.min_span_s <= c.query_end - c.query_start < min_span
                 and transform_reading(c.time_factor, c.pitch_st) == "none"
                 and not any(_same_alignment(c, x) for x in sig)]
        excerpts_out += [m for m in _grouped_matches(short, duration, recordings) if not m.alternative]
    return _grouped_matches(sig, duration, recordings)


def _grouped_matches(sig: list[Candidate], duration: float, recordings: dict[int, object]) -> list[Match]:
    """One match per (recording, alignment) among candidates sorted strongest first."""
    groups: list[list[Candidate]] = []
    for c in sig:
        for g in groups:
            if _same_alignment(c, g[0]) or any(_same_alignment(c, x) for x in g):
                g.append(c)
                break
        else:
            groups.append([c])
    out = []
    primaries: list[tuple[Candidate, float, float]] = []
    for g in groups:
        best = g[0]
        rec = recordings[best.rec_id]
        q0 = max(0.0, min(c.query_start for c in g))
        q1 = min(duration, max(c.query_end for c in g))
        r0 = max(0.0, best.offset_s + best.time_factor * q0)
        r1 = min(float(rec.duration_s), best.offset_s + best.time_factor * q1)  # type: ignore[attr-defined]
        # the same stretch of the item matching a stronger place of this recording: a repeat
        alternative = any(p.rec_id == best.rec_id and min(q1, p1) - max(q0, p0) > 0.5 * (q1 - q0)
                          for p, p0, p1 in primaries)
        if not alternative:
            primaries.append((best, q0, q1))
        out.append(Match(
            track_id=rec.track_id,  # type: ignore[attr-defined]
            rec_id=best.rec_id, query_start=q0, query_end=max(q0, q1), ref_start=r0, ref_end=max(r0, r1),
            score=-best.log10_fmp, fmp=10**best.log10_fmp, ber=None, chance_ber=None, n_items=0,
            n_distinct=0, alternative=alternative, family="landmark", time_factor=best.time_factor,
            pitch_st=best.pitch_st,
            transform=transform_reading(best.time_factor, best.pitch_st), anchors=best.anchors,
            hits=best.hits,
            empirical_fmp=None if best.log10_empirical_fmp is None else 10**best.log10_empirical_fmp))
    out.sort(key=lambda m: (m.query_start, m.track_id))
    return out


class MemoryIndex:
    """A landmark index held in memory (a few recordings: tests, benchmarks, re-checks).

    ``recordings`` maps rec_id to ``(triplets, duration_s)``; lookups return what
    ``CatalogueReader.landmark_lookup`` returns.
    """

    def __init__(self, recordings: dict[int, tuple[Triplets, float]]):
        ids = sorted(recordings)
        self._durations = {r: float(recordings[r][1]) for r in ids}
        self._postings = Postings.from_triplets(ids, [recordings[r][0] for r in ids])

    def landmark_lookup(self, lo: np.ndarray, hi: np.ndarray,
                        accept: LookupFilter | None = None) -> tuple[np.ndarray, ...]:
        q, rows, p1, span = self._postings.lookup_accepted(lo, hi, accept)
        c = self._postings.columns
        return q, c["rec"][rows], c["t1"][rows], p1, span

    def recording_duration(self, rec_id: int) -> float:
        return self._durations[int(rec_id)]

    @property
    def n_recordings(self) -> int:
        return len(self._durations)

    @property
    def landmark_seconds(self) -> float:
        return float(sum(self._durations.values()))
