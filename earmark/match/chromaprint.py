"""Chromaprint matching: retrieve candidate alignments, follow each diagonal, verify spans.

Stages, each a small function over arrays:

1. :func:`candidate_diagonals` — FAISS k-NN of every 8-item query window among the catalogue's
   windows; each neighbour votes for (recording, diagonal = ref item - query item).
2. :func:`diagonal_errors` — for one candidate, the bit errors of every aligned item pair.
3. :func:`find_spans` — the stretches of the diagonal where the two agree far better than chance
   (smoothed error below a threshold, edges trimmed by a maximum-sum subarray).
4. Verification — each span's bit error rate over its evidence items is turned into a false-match
   probability by :class:`~earmark.match.model.NullModel`; spans above the threshold are dropped,
   overlapping spans keep the strongest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from earmark.catalogue.reader import CatalogueReader
from earmark.errors import ParameterError, ParamsMismatchError
from earmark.fingerprint import chromaprint
from earmark.fingerprint.base import Fingerprint
from earmark.index import pack_windows, window_ok
from earmark.match.model import Match, NullModel
from earmark.match.runs import max_subarray

#: Seconds of audio summarised by one item, beyond its start (frame + classifier context).
ITEM_SPAN_S = (chromaprint.FRAME_SIZE + (chromaprint.ITEM_SPAN_FRAMES - 1) * chromaprint.HOP) / (
    chromaprint.SAMPLE_RATE
)


@dataclass(frozen=True)
class MatchConfig:
    """Thresholds of the Chromaprint matcher (documented in ``docs/matching.md``).

    Attributes
    ----------
    k : int
        Neighbours retrieved per query window.
    max_window_distance : int
        Neighbours farther than this (bits of 256) cast no vote.
    max_candidates : int
        Candidate diagonals per item, the most voted first (the whole-item verifiers try them all).
    max_verified : int
        Of them, the most voted that Chromaprint itself verifies along their whole diagonal.
    query_stride : int
        Candidates are retrieved for every ``query_stride``-th item of the query only. Windows
        span ``window_width`` items, so every item is still covered, and each alignment is then
        verified over every item; stride 2 halves the Hamming search (a sixth of the scan's CPU)
        and left the benchmark report unchanged (docs/benchmarks.md).
    smooth_items : int
        Items in the moving window that finds matching stretches of a diagonal.
    span_ber : float
        A stretch belongs to a span where its smoothed bit error rate is at most this.
    trim_ber : float
        Span edges are trimmed to the maximum-sum subarray of ``trim_ber - error``; the evidence
        (bit error rate, items, false-match probability) is measured over this span.
    edge_ber : float
        The reported times are those of the maximum-sum subarray of ``edge_ber - error`` inside the
        span: its core, without the fuzzy edges where a copy meets other audio. The decision is not
        taken on the core alone, since a short passage shared by two different recordings of one
        artist would then look as clean as a copy.
    merge_gap_items : int
        Stretches of one diagonal closer than this are one span.
    min_items : int
        Fewest evidence items a reported span may have.
    max_fmp : float
        Largest false-match probability reported as a match.
    max_ber : float
        Largest bit error rate of a reported span. Different recordings that share material (a
        theme reused across one artist's soundtrack) can agree at 0.19 over ten seconds, while
        re-encoded, cropped, EQ'd or moderately noisy copies stay below 0.18.
    min_contrast : float
        A span must beat its chance bit error rate (see :func:`span_evidence`) by this much, so
        silence, noise, tones and static textures that agree everywhere are not matches.
    max_overlap : float
        Share of the shorter of two spans that may overlap in item time before the weaker is dropped.
    repeat_ber_margin : float
        A second place in the same recording (a repeated passage) matching the same stretch is also
        reported when its bit error rate is within this margin of the best one's.
    """

    k: int = 8
    max_window_distance: int = 96
    max_candidates: int = 48
    max_verified: int = 24
    query_stride: int = 3
    smooth_items: int = 16
    span_ber: float = 0.36
    trim_ber: float = 0.38
    edge_ber: float = 0.30
    merge_gap_items: int = 24
    min_items: int = 12
    max_fmp: float = 1e-6
    max_ber: float = 0.18
    min_contrast: float = 0.10
    max_overlap: float = 0.5
    repeat_ber_margin: float = 0.03

    def __post_init__(self) -> None:
        if not 0 < self.max_fmp <= 1:
            raise ParameterError(f"max_fmp={self.max_fmp} must be in (0, 1]")
        if self.query_stride < 1:
            raise ParameterError(f"query_stride={self.query_stride} must be at least 1")
        if not 0 < self.span_ber < 0.5:
            raise ParameterError(f"span_ber={self.span_ber} must be in (0, 0.5)")


@dataclass(frozen=True)
class Span:
    """A stretch ``[start, end)`` of query items on diagonal ``diag`` of recording ``rec_id``."""

    rec_id: int
    diag: int
    start: int
    end: int
    n_items: int
    core_start: int
    core_end: int
    n_eff: int
    ber: float
    chance_ber: float
    log10_fmp: float


def span_seconds(
    start: int, end: int, *, n_items: int, item_duration: float, duration: float
) -> tuple[float, float]:
    """Seconds of audio covered by matched items ``[start, end)`` of an input of ``n_items`` items.

    An item summarises :data:`ITEM_SPAN_S` seconds from its start, and it still matches while most
    of that audio belongs to the recording, so a span's edges lie about half an item span inside the
    outer edges of its items, except where the span reaches the start or end of the input.
    """
    half = ITEM_SPAN_S / 2
    q0 = 0.0 if start == 0 else start * item_duration + half
    q1 = duration if end >= n_items else (end - 1) * item_duration + half
    return q0, max(q0, min(duration, q1))


def candidate_diagonals(
    fp: Fingerprint, reader: CatalogueReader, config: MatchConfig
) -> list[tuple[int, int, int]]:
    """(rec_id, diagonal, votes) of the most voted alignments, most votes first.

    A vote is a distinct query window whose neighbour lies on the diagonal (±1 item: votes of the
    two neighbouring diagonals count too, since a copy's frames fall between the recording's).
    """
    width = reader.window_width
    qidx = np.flatnonzero(window_ok(fp.active, width=width))
    qidx = qidx[qidx % config.query_stride == 0]
    if len(qidx) == 0:
        return []
    windows = pack_windows(fp.codes, width=width)[qidx]
    hits = reader.search(windows, qidx, k=config.k, max_distance=config.max_window_distance)
    if len(hits.qpos) == 0:
        return []
    diag = hits.rpos - hits.qpos
    # one vote per (rec, diag, query window)
    triples = np.unique(np.stack([hits.rec_id, diag, hits.qpos], axis=1), axis=0)
    pairs, votes = np.unique(triples[:, :2], axis=0, return_counts=True)
    # add the neighbouring diagonals' votes: pairs are sorted, so (rec, diag) packed into one int64
    # keeps that order and the neighbours are found by binary search
    packed = (pairs[:, 0] << 32) + (pairs[:, 1] + (1 << 31))
    soft = votes.copy()
    for step in (-1, 1):
        at = np.searchsorted(packed, packed + step)
        found = at < len(packed)
        found[found] = packed[at[found]] == packed[found] + step
        soft[found] += votes[at[found]]
    order = np.lexsort((pairs[:, 1], pairs[:, 0], -soft))[: config.max_candidates]
    return [(int(pairs[i, 0]), int(pairs[i, 1]), int(soft[i])) for i in order]


def diagonal_errors(
    q_codes: np.ndarray, q_active: np.ndarray, r_codes: np.ndarray, r_active: np.ndarray, diag: int
) -> tuple[int, np.ndarray, np.ndarray]:
    """Bit errors along a diagonal.

    Returns
    -------
    first : int
        Query item index of the first aligned pair.
    errors : np.ndarray, int32
        Differing bits (0..32) of each aligned item pair ``(first + j, first + j + diag)``.
    valid : np.ndarray, bool
        Both items carry evidence (non-silent).
    """
    lo = max(0, -diag)
    hi = min(len(q_codes), len(r_codes) - diag)
    if hi <= lo:
        return lo, np.zeros(0, np.int32), np.zeros(0, bool)
    q = np.asarray(q_codes[lo:hi], dtype=np.uint32)
    r = np.asarray(r_codes[lo + diag : hi + diag], dtype=np.uint32)
    err = np.bitwise_count(q ^ r).astype(np.int32)
    valid = np.asarray(q_active[lo:hi], bool) & np.asarray(r_active[lo + diag : hi + diag], bool)
    return lo, err, valid


def find_spans(errors: np.ndarray, valid: np.ndarray, config: MatchConfig) -> list[tuple[int, int]]:
    """Stretches ``[a, b)`` of a diagonal where the two fingerprints agree far better than chance."""
    n = len(errors)
    if n == 0 or valid.sum() == 0:
        return []
    e = np.where(valid, errors / 32.0, 0.0)
    w = min(config.smooth_items, n)
    ce = np.concatenate([[0.0], np.cumsum(e)])
    cv = np.concatenate([[0], np.cumsum(valid)])
    starts = np.arange(n - w + 1)
    cnt = cv[starts + w] - cv[starts]
    local = np.where(cnt > 0, (ce[starts + w] - ce[starts]) / np.maximum(cnt, 1), 1.0)
    good = (local <= config.span_ber) & (cnt >= max(1, w // 2))
    if not good.any():
        return []
    # a good window marks all of its items
    mark = np.zeros(n + 1, np.int32)
    idx = np.flatnonzero(good)
    np.add.at(mark, idx, 1)
    np.add.at(mark, idx + w, -1)
    covered = np.cumsum(mark[:n]) > 0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], covered.astype(np.int8), [0]])))
    runs = list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
    merged: list[list[int]] = []
    for a, b in runs:
        if merged and a - merged[-1][1] <= config.merge_gap_items:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    spans = []
    gain = np.where(valid, config.trim_ber - errors / 32.0, 0.0)
    for a, b in merged:
        ta, tb = max_subarray(gain[a:b])
        if tb > ta:
            spans.append((a + ta, a + tb))
    return spans


#: Shifts (items) of the off-diagonal comparisons that measure a span's local chance agreement.
NULL_SHIFTS = np.array([-256, -192, -128, -96, -64, -48, -32, -16, 16, 32, 48, 64, 96, 128, 192, 256])


def span_evidence(q: np.ndarray, r_codes: np.ndarray, ridx: np.ndarray) -> tuple[int, float]:
    """Distinct aligned code pairs, and the bit error rate this query span reaches by chance.

    The chance rate is the lower of two estimates: one from the two sides' own bit frequencies
    (0.5 for fair bits, lower for silence, noise and tones), and the median bit error rate of the
    same query span against the same recording shifted by :data:`NULL_SHIFTS` (wrapping around).
    A static texture (a drone, rain, an ambient pad) agrees with its recording almost as well at
    every shift; a true alignment agrees only on its own diagonal (and at a few repeats).

    Parameters
    ----------
    q : np.ndarray, shape (n,), uint32
        Query evidence items.
    r_codes : np.ndarray, shape (m,), uint32
        All items of the recording.
    ridx : np.ndarray, shape (n,), int64
        Recording item aligned with each query item.
    """
    if len(q) == 0:
        return 0, 0.5
    r = np.asarray(r_codes[ridx], dtype=np.uint32)
    n_eff = len(np.unique((q.astype(np.uint64) << np.uint64(32)) | r.astype(np.uint64)))
    qb = np.unpackbits(q.astype("<u4").view(np.uint8).reshape(-1, 4), axis=1).mean(axis=0)
    rb = np.unpackbits(r.astype("<u4").view(np.uint8).reshape(-1, 4), axis=1).mean(axis=0)
    marginal = float(np.mean(qb * (1 - rb) + (1 - qb) * rb))
    m = len(r_codes)
    shifted = np.asarray(r_codes, dtype=np.uint32)[(ridx[None, :] + NULL_SHIFTS[:, None]) % m]
    local = float(np.median(np.bitwise_count(q[None, :] ^ shifted).mean(axis=1))) / 32
    return n_eff, min(marginal, local)


def alignment_evidence(
    fp: Fingerprint, r_codes: np.ndarray, r_active: np.ndarray, offset_s: float, null: NullModel,
    *, search_items: int = 2,
) -> tuple[float, float, float] | None:
    """Chromaprint evidence of the whole item at one alignment (``offset_s``: recording seconds at
    the item's start), at the best of the ``search_items`` diagonals either side.

    Returns ``(ber, chance_ber, log10_tail)``, the tail being that of the bit error rate for one
    alignment under the null model, against the span's own chance rate; None without evidence.
    """
    d0 = int(round(offset_s / fp.item_duration))
    best = None
    for diag in range(d0 - search_items, d0 + search_items + 1):
        first, err, valid = diagonal_errors(fp.codes, fp.active, r_codes, r_active, diag)
        n = int(valid.sum())
        if n == 0:
            continue
        ber = float(err[valid].sum()) / (32 * n)
        if best is None or ber < best[0]:
            best = (ber, diag, first, valid)
    if best is None:
        return None
    ber, diag, first, valid = best
    qi = first + np.flatnonzero(valid)
    n_eff, chance = span_evidence(np.asarray(fp.codes)[qi], r_codes, qi + diag)
    return ber, chance, null.log10_tail(ber, n_eff, mu=chance)


def references_agree(
    a: tuple[np.ndarray, np.ndarray], a_start_s: float, b: tuple[np.ndarray, np.ndarray], b_start_s: float,
    length_s: float, item_duration: float, config: MatchConfig, *, search_items: int = 2,
) -> bool:
    """Whether two recordings hold the same audio over ``length_s`` seconds from ``a_start_s`` in the
    first and ``b_start_s`` in the second (each given as its codes and active mask), at the best of
    the ``search_items`` item shifts either side: their codes agree as a copy agrees with its
    recording (bit error rate at most ``config.max_ber`` over at least ``config.min_items`` evidence
    items, beating the pair's chance rate by ``config.min_contrast``). A remaster and its original
    do; two pieces of one artist that share a theme do not (see ``MatchConfig.max_ber``)."""
    n = int(length_s / item_duration)
    a0 = int(round(a_start_s / item_duration))
    best: tuple[float, float] | None = None
    for d in range(-search_items, search_items + 1):
        b0 = int(round(b_start_s / item_duration)) + d
        lo = max(0, -a0, -b0)
        hi = min(n, len(a[0]) - a0, len(b[0]) - b0)
        if hi - lo < config.min_items:
            continue
        ia = np.arange(a0 + lo, a0 + hi)
        ib = np.arange(b0 + lo, b0 + hi)
        ok = np.asarray(a[1], bool)[ia] & np.asarray(b[1], bool)[ib]
        if ok.sum() < config.min_items:
            continue
        qa = np.asarray(a[0], np.uint32)[ia[ok]]
        ber = float(np.bitwise_count(qa ^ np.asarray(b[0], np.uint32)[ib[ok]]).mean()) / 32
        if best is None or ber < best[0]:
            _, chance = span_evidence(qa, np.asarray(b[0], np.uint32), ib[ok])
            best = (ber, chance)
    return best is not None and best[0] <= config.max_ber and best[1] - best[0] >= config.min_contrast


def _overlap(a: Span, b: Span) -> float:
    inter = min(a.end, b.end) - max(a.start, b.start)
    return max(0, inter) / max(1, min(a.end - a.start, b.end - b.start))


def verify_diagonal(
    fp: Fingerprint,
    r_codes: np.ndarray,
    r_active: np.ndarray,
    rec_id: int,
    diag: int,
    config: MatchConfig,
    null: NullModel,
    *,
    catalogue_items: int,
) -> list[Span]:
    """Every span of one candidate alignment, with its evidence and false-match probability."""
    spans = []
    first, err, valid = diagonal_errors(fp.codes, fp.active, r_codes, r_active, diag)
    for a, b in find_spans(err, valid, config):
        n_ev = int(valid[a:b].sum())
        if n_ev < config.min_items:
            continue
        ok = valid[a:b]
        ber = float(err[a:b][ok].sum()) / (32 * n_ev)
        qi = np.arange(first + a, first + b)[ok]
        n_eff, chance = span_evidence(np.asarray(fp.codes)[qi], r_codes, qi + diag)
        lf = null.log10_fmp(ber, n_eff, catalogue_items=catalogue_items, query_items=len(fp))
        ca, cb = max_subarray(np.where(ok, config.edge_ber - err[a:b] / 32.0, 0.0))
        if cb <= ca:
            ca, cb = 0, b - a
        spans.append(Span(rec_id, diag, first + a, first + b, n_ev, first + a + ca, first + a + cb,
                          n_eff, ber, chance, lf))
    return spans


def select_spans(spans: list[Span], config: MatchConfig) -> list[tuple[Span, bool]]:
    """The reported spans, strongest first, each with whether it is an alternative place (a repeat)."""
    threshold = math.log10(config.max_fmp)
    ordered = sorted(spans, key=lambda s: (s.log10_fmp, -s.n_items, s.rec_id, s.diag, s.start))
    kept: list[tuple[Span, bool]] = []
    for s in ordered:
        if s.log10_fmp > threshold:
            break
        if s.ber > config.max_ber or s.chance_ber - s.ber < config.min_contrast:
            continue
        rivals = [k for k, _ in kept if _overlap(s, k) > config.max_overlap]
        # A recording that repeats a passage (loops, choruses) matches the same stretch of the query
        # at several places: all of them are reported when the evidence is as strong.
        if all(k.rec_id == s.rec_id and abs(k.diag - s.diag) > config.smooth_items
               and s.ber <= k.ber + config.repeat_ber_margin for k in rivals):
            kept.append((s, bool(rivals)))
    return kept


def spans_to_matches(
    kept: list[tuple[Span, bool]], fp: Fingerprint, recordings: dict[int, object]
) -> list[Match]:
    """Matches in seconds, ordered by position in the item."""
    dt = fp.item_duration
    out = []
    for s, alternative in kept:
        rec = recordings[s.rec_id]
        q0, q1 = span_seconds(s.core_start, s.core_end, n_items=len(fp), item_duration=dt,
                              duration=fp.duration)
        r0 = max(0.0, q0 + s.diag * dt)  # the same alignment on both sides (time factor 1)
        r1 = min(rec.duration_s, q1 + s.diag * dt)  # type: ignore[attr-defined]
        out.append(
            Match(
                track_id=rec.track_id,  # type: ignore[attr-defined]
                rec_id=s.rec_id,
                query_start=q0,
                query_end=max(q0, q1),
                ref_start=r0,
                ref_end=max(r0, r1),
                score=-s.log10_fmp,
                fmp=10**s.log10_fmp,
                ber=s.ber,
                chance_ber=s.chance_ber,
                n_items=s.n_items,
                n_distinct=s.n_eff,
                alternative=alternative,
            )
        )
    out.sort(key=lambda m: (m.query_start, m.track_id))
    return out


def match_fingerprint(
    fp: Fingerprint,
    reader: CatalogueReader,
    config: MatchConfig | None = None,
    null: NullModel | None = None,
    *,
    candidates: list[tuple[int, int, int]] | None = None,
) -> list[Match]:
    """Every catalogue recording found in ``fp``, strongest first, at most one per query stretch.

    ``candidates`` are :func:`candidate_diagonals`' (computed here when not given).

    Raises
    ------
    ParamsMismatchError
        Fingerprints and catalogue must share ``params_id``.
    """
    config = config or MatchConfig()
    null = null or NullModel()
    if fp.params_id != reader.params_id:
        raise ParamsMismatchError(
            f"fingerprint parameters {fp.params_id} differ from the catalogue's {reader.params_id}"
        )
    spans: list[Span] = []
    if candidates is None:
        candidates = candidate_diagonals(fp, reader, config)
    for rec_id, diag, _votes in candidates[: config.max_verified]:
        r_codes, r_active = reader.ref(rec_id)
        spans += verify_diagonal(fp, r_codes, r_active, rec_id, diag, config, null,
                                 catalogue_items=reader.n_items_live)
    return spans_to_matches(select_spans(spans, config), fp, reader.recordings)
