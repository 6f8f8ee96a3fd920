"""Pitch- and tempo-invariant triplet landmarks over log-frequency peaks: the second fingerprint family.

A triplet is three spectral peaks in time order. Its key holds what pitch shifts, tempo changes and
speed changes leave alone or change only a little:

* ``ratio = (t2 - t1) / (t3 - t1)`` (times scale together), 5 bits, lowest, so a lookup can probe
  the neighbouring ratio values as one contiguous key range;
* ``d12 = p2 - p1`` and ``d23 = p3 - p2`` in semitones (on a log-frequency axis a pitch move is a
  translation, so differences are invariant), ``diff_step`` quanta;
* a coarse cell of the span ``t3 - t1`` (log scale; a tempo change moves it by at most
  ``tempo_tolerance``, so queries probe every cell the tolerance reaches);
* a coarse cell of the anchor pitch ``p1`` (a pitch shift moves it by at most ``max_shift_st``,
  probed the same way).

Each posting keeps the anchor's time and pitch and the span, so one hit yields a time factor (span
ratio), a pitch shift (anchor pitch difference) and an offset: one vote for an alignment hypothesis.

Followers are the first peaks after a peak that lie within the pitch window (not the first peaks in
time, which in dense or mixed audio are mostly out of range and would leave triplets unformed). The
reference keeps ``ref_fan`` followers per peak from a sparse constellation; the query keeps
``query_fan`` from a dense one, in time windows widened by the tempo tolerance, so that most of the
reference's triplets reappear in the query (Sonnleitner & Widmer's asymmetry).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from earmark.errors import ParameterError
from earmark.fingerprint.base import params_id as _params_id
from earmark.fingerprint.peaks import PeakConfig, Peaks

FAMILY = "landmark"
RATIO_BITS = 5
#: Followers are searched among at most this many peaks after each peak (a cap on work per peak).
MAX_CANDIDATES = 48


@dataclass(frozen=True)
class TripletConfig:
    """Which peaks form triplets, and how keys are quantised.

    Attributes
    ----------
    min_gap_s, max_gap_s : float
        Allowed time between consecutive peaks of a reference triplet.
    max_pitch_diff, min_pitch_diff : float
        Largest and smallest pitch difference between consecutive peaks, in semitones. The smallest
        keeps a held note or a tone (which repeat one triplet at every offset) from forming triplets.
    ref_fan, query_fan : int
        Followers per peak on the reference and the query side.
    tempo_tolerance : float
        Time factors within ``[1 / (1 + t), 1 + t]`` are findable: query windows are widened and
        span cells probed by this much.
    max_shift_st : float
        Pitch shifts within +-this are findable: anchor pitch cells are probed over this range.
    diff_step : float
        Pitch-difference quantum in semitones.
    diff_bits : int
        Bits per pitch difference.
    span_cell : float
        Width of a span cell in natural-log units.
    span_bits, pitch_cell_bits : int
        Bits of the span cell and of the anchor pitch cell.
    pitch_cell_st : float
        Width of an anchor pitch cell in semitones.
    """

    min_gap_s: float = 0.03
    max_gap_s: float = 0.30
    max_pitch_diff: float = 8.0
    min_pitch_diff: float = 0.5
    ref_fan: int = 4
    query_fan: int = 3
    tempo_tolerance: float = 0.25
    max_shift_st: float = 4.0
    diff_step: float = 1.0 / 3.0
    diff_bits: int = 6
    span_cell: float = 0.2
    span_bits: int = 4
    pitch_cell_st: float = 6.0
    pitch_cell_bits: int = 4

    def __post_init__(self) -> None:
        if not 0 < self.min_gap_s < self.max_gap_s:
            raise ParameterError(f"gaps min_gap_s={self.min_gap_s}, max_gap_s={self.max_gap_s} must increase")
        if 2 * self.max_pitch_diff / self.diff_step >= 2**self.diff_bits:
            raise ParameterError(f"max_pitch_diff={self.max_pitch_diff} does not fit {self.diff_bits} bits")
        if RATIO_BITS + 2 * self.diff_bits + self.span_bits + self.pitch_cell_bits > 32:
            raise ParameterError("triplet key fields do not fit 32 bits")
        if min(self.ref_fan, self.query_fan) < 1 or max(self.ref_fan, self.query_fan) > MAX_CANDIDATES:
            raise ParameterError(f"fans must be within 1..{MAX_CANDIDATES}")
        if self.tempo_tolerance < 0 or self.max_shift_st < 0:
            raise ParameterError("tolerances must not be negative")

    @property
    def span_shift(self) -> int:
        return RATIO_BITS + 2 * self.diff_bits

    @property
    def pitch_shift(self) -> int:
        return self.span_shift + self.span_bits


@dataclass(frozen=True)
class LandmarkConfig:
    """Everything that decides a landmark fingerprint: the reference and query peak pickers and the
    triplet keys. ``params_id`` identifies it; a catalogue refuses queries made with another."""

    peaks: PeakConfig = field(default_factory=PeakConfig)
    query_nbhd_frames: int = 6
    query_nbhd_bins: int = 4
    triplets: TripletConfig = field(default_factory=TripletConfig)

    @property
    def query_peaks(self) -> PeakConfig:
        return replace(self.peaks, nbhd_frames=self.query_nbhd_frames, nbhd_bins=self.query_nbhd_bins)

    @property
    def params_id(self) -> str:
        return _params_id(FAMILY, self)

    @classmethod
    def from_dict(cls, d: dict) -> LandmarkConfig:
        """Inverse of ``dataclasses.asdict`` (as stored in a catalogue manifest)."""
        return cls(peaks=PeakConfig(**d["peaks"]), triplets=TripletConfig(**d["triplets"]),
                   **{k: v for k, v in d.items() if k not in ("peaks", "triplets")})


@dataclass(frozen=True)
class Triplets:
    """Triplet hashes of one signal (all arrays the same length).

    Attributes
    ----------
    key : np.ndarray, uint32
        Quantised invariant key (see :func:`make_keys`).
    anchor : np.ndarray, int64
        Index of the anchor peak (distinct anchors are the unit of evidence).
    t1, p1, span : np.ndarray, float64
        Anchor time (s), anchor pitch (semitones above ``fmin``), ``t3 - t1`` (s).
    """

    key: np.ndarray
    anchor: np.ndarray
    t1: np.ndarray
    p1: np.ndarray
    span: np.ndarray

    def __len__(self) -> int:
        return len(self.key)

    def select(self, rows: np.ndarray) -> Triplets:
        return Triplets(self.key[rows], self.anchor[rows], self.t1[rows], self.p1[rows], self.span[rows])


def _span_cell(span: np.ndarray, config: TripletConfig) -> np.ndarray:
    return np.floor(np.log(np.maximum(span, 1e-6) / config.min_gap_s) / config.span_cell).astype(np.int64)


def _pitch_cell(p: np.ndarray, config: TripletConfig) -> np.ndarray:
    return np.floor(np.asarray(p) / config.pitch_cell_st).astype(np.int64)


def make_keys(ratio: np.ndarray, d12: np.ndarray, d23: np.ndarray, span: np.ndarray, p1: np.ndarray,
              config: TripletConfig) -> np.ndarray:
    """Pack quantised fields into uint32 keys: ``pitch cell | span cell | d23 | d12 | ratio``."""
    top = 2**config.diff_bits - 1
    off = 2 ** (config.diff_bits - 1)
    r = np.clip(np.floor(np.asarray(ratio) * 2**RATIO_BITS), 0, 2**RATIO_BITS - 1).astype(np.int64)
    q12 = np.clip(np.round(np.asarray(d12) / config.diff_step) + off, 0, top).astype(np.int64)
    q23 = np.clip(np.round(np.asarray(d23) / config.diff_step) + off, 0, top).astype(np.int64)
    s = np.clip(_span_cell(np.asarray(span), config), 0, 2**config.span_bits - 1)
    pc = np.clip(_pitch_cell(p1, config), 0, 2**config.pitch_cell_bits - 1)
    k = r | (q12 << RATIO_BITS) | (q23 << (RATIO_BITS + config.diff_bits))
    k |= (s << config.span_shift) | (pc << config.pitch_shift)
    return k.astype(np.uint32)


def probe_ranges(q: Triplets, config: TripletConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Key ranges ``[lo, hi]`` to look up for a query's triplets: the ratio field +-1 (one contiguous
    range), in every span cell a time factor within the tempo tolerance reaches and every anchor
    pitch cell a shift within ``max_shift_st`` reaches. Returns ``(lo, hi, query_row)``."""
    keys = np.asarray(q.key, dtype=np.int64)
    r = keys & (2**RATIO_BITS - 1)
    middle = keys & ((1 << config.span_shift) - 1) & ~np.int64(2**RATIO_BITS - 1)
    tol = 1.0 + config.tempo_tolerance
    s_top, p_top = 2**config.span_bits - 1, 2**config.pitch_cell_bits - 1
    s_lo = np.clip(_span_cell(q.span / tol, config), 0, s_top)
    s_hi = np.clip(_span_cell(q.span * tol, config), 0, s_top)
    p_lo = np.clip(_pitch_cell(q.p1 - config.max_shift_st, config), 0, p_top)
    p_hi = np.clip(_pitch_cell(q.p1 + config.max_shift_st, config), 0, p_top)
    los, his, rows = [], [], []
    for ds in range(int((s_hi - s_lo).max(initial=0)) + 1):
        for dp in range(int((p_hi - p_lo).max(initial=0)) + 1):
            s, p = s_lo + ds, p_lo + dp
            ok = np.flatnonzero((s <= s_hi) & (p <= p_hi))
            base = middle[ok] | (s[ok] << config.span_shift) | (p[ok] << config.pitch_shift)
            los.append(base | np.maximum(r[ok] - 1, 0))
            his.append(base | np.minimum(r[ok] + 1, 2**RATIO_BITS - 1))
            rows.append(ok)
    if not rows:
        z = np.zeros(0, np.int64)
        return z, z, z
    return np.concatenate(los), np.concatenate(his), np.concatenate(rows)


def _followers(t: np.ndarray, p: np.ndarray, lo_gap: float, hi_gap: float, fan: int,
               config: TripletConfig) -> tuple[np.ndarray, np.ndarray]:
    """For each peak, the first ``fan`` later peaks within the gap window and the pitch window.
    Returns ``(index, valid)``, both shape (n, fan)."""
    n = len(t)
    start = np.searchsorted(t, t + lo_gap, side="left")
    stop = np.minimum(np.searchsorted(t, t + hi_gap, side="right"), n)
    width = int(min(MAX_CANDIDATES, max(1, (stop - start).max(initial=1))))
    cand = start[:, None] + np.arange(width)[None, :]
    ok = cand < stop[:, None]
    cand = np.where(ok, cand, 0)
    d = np.abs(p[cand] - p[:, None])
    ok &= (d <= config.max_pitch_diff) & (d >= config.min_pitch_diff)
    rank = np.cumsum(ok, axis=1) - 1
    ok &= rank < fan
    idx = np.zeros((n, fan), np.int64)
    valid = np.zeros((n, fan), bool)
    ii, ww = np.nonzero(ok)
    idx[ii, rank[ii, ww]] = cand[ii, ww]
    valid[ii, rank[ii, ww]] = True
    return idx, valid


def triplets(peaks: Peaks, config: TripletConfig, *, query: bool = False) -> Triplets:
    """All triplets of a constellation, vectorised: each peak with each of its followers ``j`` and
    each of ``j``'s followers ``k`` (see the module docstring)."""
    t, p = np.asarray(peaks.time, np.float64), np.asarray(peaks.pitch, np.float64)
    if len(t) < 3:
        z = np.zeros(0)
        return Triplets(np.zeros(0, np.uint32), np.zeros(0, np.int64), z, z, z)
    lo_gap, hi_gap, fan = config.min_gap_s, config.max_gap_s, config.ref_fan
    if query:
        tol = 1.0 + config.tempo_tolerance
        lo_gap, hi_gap, fan = lo_gap / tol, hi_gap * tol, config.query_fan
    j, ok_j = _followers(t, p, lo_gap, hi_gap, fan, config)
    k = j[j]  # (n, fan, fan): followers of each follower
    ok_k = ok_j[:, :, None] & ok_j[j]
    ii, jj, kk = np.nonzero(ok_k)
    jn = j[ii, jj]
    kn = k[ii, jj, kk]
    span = t[kn] - t[ii]
    keys = make_keys((t[jn] - t[ii]) / span, p[jn] - p[ii], p[kn] - p[jn], span, p[ii], config)
    return Triplets(key=keys, anchor=ii.astype(np.int64), t1=t[ii], p1=p[ii], span=span)

