"""Pitch- and tempo-invariant triplet landmarks over log-frequency peaks (issue 4, experimental).

A triplet is three peaks in time order. Its key holds only what pitch shifts, tempo changes and
speed changes leave alone: the ratio ``(t2 - t1) / (t3 - t1)`` (times scale together) and the pitch
differences ``p2 - p1`` and ``p3 - p2`` (on a log-frequency axis pitch moves are translations), plus
a coarse octave of the anchor (probed in the neighbouring cell too). Each posting keeps the anchor's
time and pitch and the triplet's span, so a hit yields a time factor (span ratio), a pitch shift
(anchor pitch difference) and an offset: evidence for one alignment hypothesis.

References keep a few triplets per anchor; queries form many more, in time windows widened by the
tempo tolerance, so that the query's triplets contain the reference's (Sonnleitner & Widmer's
asymmetry). Not yet part of the scan's decision: see docs/benchmarks.md, issue 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from earmark.errors import ParameterError
from earmark.fingerprint.peaks import Peaks

RATIO_BITS = 5
DIFF_BITS = 6
OCTAVE_BITS = 3
OCTAVE_SHIFT = RATIO_BITS + 2 * DIFF_BITS


def probe_ranges(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Key ranges ``[lo, hi]`` to look up for query keys: the ratio field +-1 (one contiguous range,
    since it is the lowest field) in the key's own octave cell and both neighbours (a pitch shift
    can move the anchor across a cell edge). Returns ``(lo, hi, query_row)`` flattened."""
    keys = np.asarray(keys, dtype=np.int64)
    r = keys & (2**RATIO_BITS - 1)
    octv = keys >> OCTAVE_SHIFT
    middle = keys & ((1 << OCTAVE_SHIFT) - 1) & ~np.int64(2**RATIO_BITS - 1)
    los, his, rows = [], [], []
    for do in (-1, 0, 1):
        o = octv + do
        ok = (o >= 0) & (o < 2**OCTAVE_BITS)
        base = (o << OCTAVE_SHIFT) | middle
        lo = base | np.maximum(r - 1, 0)
        hi = base | np.minimum(r + 1, 2**RATIO_BITS - 1)
        los.append(lo[ok])
        his.append(hi[ok])
        rows.append(np.flatnonzero(ok))
    return np.concatenate(los), np.concatenate(his), np.concatenate(rows)


@dataclass(frozen=True)
class TripletConfig:
    """Which peaks form triplets, and how keys are quantised.

    Attributes
    ----------
    min_gap_s, max_gap_s : float
        Allowed time between consecutive peaks of a triplet (reference side).
    max_pitch_diff : float
        Largest pitch difference between consecutive peaks, in semitones.
    min_pitch_diff : float
        Smallest one: peaks of one held note or tone repeat the same triplet at every offset, the
        degenerate evidence that lets tones and drones match anything with that note.
    ref_fan : int
        Reference side: each peak pairs with this many followers (up to ``ref_fan ** 2`` triplets per
        anchor).
    query_fan : int
        Query side: the same, larger, so the query's triplets contain the reference's.
    tempo_tolerance : float
        Query windows are widened by this factor each way (0.25: time factors 0.8-1.25 are found).
    diff_step : float
        Pitch-difference quantum in semitones.
    """

    min_gap_s: float = 0.03
    max_gap_s: float = 0.30
    max_pitch_diff: float = 8.0
    min_pitch_diff: float = 0.5
    ref_fan: int = 4
    query_fan: int = 7
    tempo_tolerance: float = 0.25
    diff_step: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.min_gap_s < self.max_gap_s:
            raise ParameterError(f"gaps min_gap_s={self.min_gap_s}, max_gap_s={self.max_gap_s} must increase")
        if 2 * self.max_pitch_diff / self.diff_step >= 2**DIFF_BITS:
            raise ParameterError(f"max_pitch_diff={self.max_pitch_diff} does not fit {DIFF_BITS} bits")


@dataclass(frozen=True)
class Triplets:
    """Triplet hashes of one signal.

    Attributes
    ----------
    key : np.ndarray, uint32
        Quantised invariant key (ratio in the low bits, see :func:`make_keys`).
    anchor : np.ndarray, int64
        Index of the anchor peak (distinct anchors are the unit of evidence).
    t1, p1, span : np.ndarray, float64
        Anchor time (s), anchor pitch (semitones), t3 - t1 (s).
    """

    key: np.ndarray
    anchor: np.ndarray
    t1: np.ndarray
    p1: np.ndarray
    span: np.ndarray

    def __len__(self) -> int:
        return len(self.key)


def make_keys(ratio: np.ndarray, d12: np.ndarray, d23: np.ndarray, p1: np.ndarray,
              config: TripletConfig) -> np.ndarray:
    """Pack quantised invariants into uint32 keys: ``octave | d23 | d12 | ratio`` (ratio lowest)."""
    r = np.clip(np.floor(ratio * 2**RATIO_BITS), 0, 2**RATIO_BITS - 1).astype(np.uint32)
    off = 2 ** (DIFF_BITS - 1)
    q12 = np.clip(np.round(d12 / config.diff_step) + off, 0, 2**DIFF_BITS - 1).astype(np.uint32)
    q23 = np.clip(np.round(d23 / config.diff_step) + off, 0, 2**DIFF_BITS - 1).astype(np.uint32)
    octv = np.clip(np.floor(p1 / 12.0), 0, 2**OCTAVE_BITS - 1).astype(np.uint32)
    return r | (q12 << RATIO_BITS) | (q23 << (RATIO_BITS + DIFF_BITS)) | (octv << OCTAVE_SHIFT)


def triplets(peaks: Peaks, config: TripletConfig, *, query: bool = False) -> Triplets:
    """All triplets of a constellation, vectorised.

    Each anchor ``i`` pairs with the first ``fan`` peaks ``j`` that follow it within the gap window and
    lie within ``max_pitch_diff``; each ``j`` with its own first ``fan`` followers ``k``. References use
    ``fan = per_anchor_fan`` (a few stable triplets), queries a wider window and a larger fan.
    """
    t, p = np.asarray(peaks.time), np.asarray(peaks.pitch)
    n = len(t)
    lo_gap, hi_gap, fan = config.min_gap_s, config.max_gap_s, config.ref_fan
    if query:
        lo_gap, hi_gap = lo_gap / (1 + config.tempo_tolerance), hi_gap * (1 + config.tempo_tolerance)
        fan = config.query_fan
    if n < 3:
        z = np.zeros(0)
        return Triplets(np.zeros(0, np.uint32), np.zeros(0, np.int64), z, z, z)
    start = np.searchsorted(t, t + lo_gap, side="left")
    stop = np.searchsorted(t, t + hi_gap, side="right")
    offs = np.arange(fan)
    j = start[:, None] + offs[None, :]  # (n, fan)
    ok_j = j < np.minimum(stop[:, None], n)
    j = np.where(ok_j, j, 0)
    d1 = np.abs(p[j] - p[:, None])
    ok_j &= (d1 <= config.max_pitch_diff) & (d1 >= config.min_pitch_diff)
    k = start[j][:, :, None] + offs[None, None, :]  # (n, fan, fan)
    ok_k = ok_j[:, :, None] & (k < np.minimum(stop[j][:, :, None], n))
    k = np.where(ok_k, k, 0)
    d2 = np.abs(p[k] - p[j][:, :, None])
    ok_k &= (d2 <= config.max_pitch_diff) & (d2 >= config.min_pitch_diff)
    ii, jj, kk = np.nonzero(ok_k)
    jn = j[ii, jj]
    kn = k[ii, jj, kk]
    span = t[kn] - t[ii]
    keys = make_keys((t[jn] - t[ii]) / span, p[jn] - p[ii], p[kn] - p[jn], p[ii], config)
    return Triplets(key=keys, anchor=ii.astype(np.int64), t1=t[ii], p1=p[ii], span=span)
