"""Landmark matching (issue 4, experimental): Hough votes over (recording, time factor, pitch shift,
offset), refined to the inlier set of the best cells.

Not yet part of the scan's decision: its evidence still needs a calibrated null model (see
docs/benchmarks.md). ``benchmarks/landmark_eval.py`` measures how well it separates copies from
non-copies per transformation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from earmark.fingerprint.landmarks import Triplets, probe_ranges
from earmark.index.postings import Postings


@dataclass(frozen=True)
class HoughConfig:
    """Hypothesis cells and inlier tolerances."""

    min_factor: float = 0.75
    max_factor: float = 1.35
    max_shift_st: float = 4.0
    log_factor_cell: float = 0.03
    shift_cell_st: float = 0.5
    offset_cell_s: float = 0.25
    min_votes: int = 4
    max_cells: int = 20
    inlier_s: float = 0.06
    inlier_st: float = 0.4


@dataclass(frozen=True)
class Candidate:
    """One alignment hypothesis and its evidence."""

    rec_id: int
    time_factor: float  # recording seconds per item second
    pitch_st: float  # pitch of the item relative to the recording
    offset_s: float  # recording time at item time 0
    anchors: int  # distinct item anchors among the inliers (the evidence unit)
    hits: int  # inlier hits
    background: int  # all hits on this recording (chance level grows with it)
    query_start: float
    query_end: float


def build_postings(rec_ids: np.ndarray, trips: list[Triplets]) -> Postings:
    """Postings of every recording's triplets: key -> (rec, t1, p1, span)."""
    return Postings.build(
        np.concatenate([t.key for t in trips]),
        rec=np.concatenate([np.full(len(t), r, np.int32) for r, t in zip(rec_ids, trips, strict=True)]),
        t1=np.concatenate([t.t1 for t in trips]).astype(np.float32),
        p1=np.concatenate([t.p1 for t in trips]).astype(np.float32),
        span=np.concatenate([t.span for t in trips]).astype(np.float32),
    )


def match_triplets(q: Triplets, postings: Postings, config: HoughConfig = HoughConfig()) -> list[Candidate]:
    """Alignment hypotheses for a query's triplets, strongest first."""
    if len(q) == 0 or len(postings) == 0:
        return []
    lo, hi, row = probe_ranges(q.key)
    qi, pi = postings.lookup(lo, hi)
    if len(qi) == 0:
        return []
    qrow = row[qi]
    c = postings.columns
    rec = c["rec"][pi].astype(np.int64)
    factor = c["span"][pi] / q.span[qrow]
    shift = q.p1[qrow] - c["p1"][pi]
    keep = (factor >= config.min_factor) & (factor <= config.max_factor)
    keep &= np.abs(shift) <= config.max_shift_st
    qrow, pi, rec, factor, shift = qrow[keep], pi[keep], rec[keep], factor[keep], shift[keep]
    if len(qrow) == 0:
        return []
    tq = q.t1[qrow]
    tr = c["t1"][pi].astype(np.float64)
    offset = tr - factor * tq
    background = np.bincount(rec)
    cells = np.stack([
        rec,
        np.round(np.log(factor) / config.log_factor_cell).astype(np.int64),
        np.round(shift / config.shift_cell_st).astype(np.int64),
        np.round(offset / config.offset_cell_s).astype(np.int64),
    ], axis=1)
    anchor = q.anchor[qrow]
    # one int64 per cell (rec | factor | shift | offset fields), so uniques are 1-D sorts
    # (factor and shift cells fit 6 bits once offset by 32, the offset cell 24 bits: +-2e6 s)
    packed = ((cells[:, 0] << 6 | (cells[:, 1] + 32)) << 6 | (cells[:, 2] + 32)) << 24
    packed |= cells[:, 3] + 2**23
    uniq, first, inverse = np.unique(packed, return_index=True, return_inverse=True)
    uniq_cells = cells[first]
    pairs = np.unique((inverse.astype(np.int64) << 32) | anchor)
    votes = np.bincount(pairs >> 32, minlength=len(uniq))
    order = np.argsort(-votes, kind="stable")[: config.max_cells]
    out: list[Candidate] = []
    for ci in order:
        if votes[ci] < config.min_votes:
            break
        r, lf, sh, of = uniq_cells[ci]
        near = ((rec == r) & (np.abs(cells[:, 1] - lf) <= 1) & (np.abs(cells[:, 2] - sh) <= 1)
                & (np.abs(cells[:, 3] - of) <= 1))
        a = float(np.median(factor[near]))
        s = float(np.median(shift[near]))
        b = float(np.median(tr[near] - a * tq[near]))
        inl = (rec == r) & (np.abs(tr - (a * tq + b)) <= config.inlier_s)
        inl &= np.abs(shift - s) <= config.inlier_st
        if not inl.any():
            continue
        anchors = len(np.unique(anchor[inl]))
        out.append(Candidate(rec_id=int(r), time_factor=a, pitch_st=s, offset_s=b, anchors=anchors,
                             hits=int(inl.sum()), background=int(background[r]),
                             query_start=float(tq[inl].min()), query_end=float(tq[inl].max())))
    out.sort(key=lambda x: (-x.anchors, x.rec_id))
    return out
