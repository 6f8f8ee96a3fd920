"""Envelope verification: whole-item copies too smeared for the other families (reverberant rooms).

The Chromaprint index proposes alignments (recording, offset) even where its bits disagree too much
to report a match; this module compares the item's spectral envelope with the recording's at each
proposed offset (and ``jitter_frames`` either side), over the whole item.

The comparison (see ``docs/matching.md``):

1. The recording's envelope is smeared forward by an exponential decay of ``decay_s`` (energy time
   constant; a room with a reverberation time RT60 has RT60 / 13.8, 0.06 s for 0.8 s), so a
   reverberant copy's blurred onsets meet their source. Unsmeared copies lose little by it.
2. Both envelopes (log energy, frames x bands) are centred: each frame's mean over the bands is
   removed (loudness), then each band's mean and linear trend over the item (a room's or an
   equaliser's fixed gain per band, and fades, which otherwise make any two fading passages agree).
3. The evidence is the correlation ``r`` of the two centred envelopes.

Null model. For independent audio, ``r`` is centred on 0 with variance ``sum_k rho_q(k) rho_r(k) / N``
over all lags ``k`` in time and band (Bartlett's formula for the cross-correlation of two
autocorrelated series), where ``rho`` are the two envelopes' own autocorrelations. So the evidence
counts ``n_eff = N / sum_k rho_q(k) rho_r(k)`` independent cells, and the tail probability is that of
Fisher's ``atanh(r) * sqrt(n_eff - 3)`` under a standard normal. The false-match probability
multiplies it by every frame of the live catalogue (each a possible start, Bonferroni), which is
the index size in this family's units. ``benchmarks/null_calibration.py`` compares this prediction
with chance correlations observed on non-catalogue audio.

The decision is taken only on whole items (``min_share`` of the item must face the recording): a
passage two recordings share may agree this well over a few seconds, but a whole item that is not
a copy does not. A copy that fills only part of an item is left to the other families.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter
from scipy.special import log_ndtr

from earmark.catalogue.store import Recording
from earmark.errors import ParameterError
from earmark.fingerprint.envelope import EnvelopeConfig, to_db
from earmark.match.model import Match

#: Frames of the recording before the compared window that feed the decay (about a second).
LEAD_FRAMES = 12


@dataclass(frozen=True)
class EnvelopeMatchConfig:
    """Thresholds of the envelope verifier (documented in ``docs/matching.md``).

    Attributes
    ----------
    max_fmp : float
        Largest false-match probability reported as a match.
    jitter_frames : int
        Offsets tried either side of each proposed alignment (a proposal is a Chromaprint diagonal,
        0.12 s apart; a frame is 0.093 s).
    decay_s : float
        Energy time constant of the decay the recording is smeared with before comparison.
    corroborate_p : float
        The harmony must agree too: at the alignment the envelopes chose, the Chromaprint bits of the
        whole item must agree with the recording's beyond their own chance rate (the pair's agreement
        at other shifts) at this level. Envelopes alone also follow a rhythm or an orchestration two
        recordings share (same-artist recordings at one tempo); a copy keeps its harmony as well,
        even in a room (bit error rates 0.19-0.30 where chance is 0.37-0.45). The catalogue-wide
        false-match probability is the envelope's; this second test only removes matches.
    min_share : float
        Share of the item's frames that must face the recording.
    min_frames : int
        Fewest compared frames (shorter items carry too little envelope evidence).
    """

    max_fmp: float = 1e-6
    jitter_frames: int = 2
    decay_s: float = 0.06
    corroborate_p: float = 1e-3
    min_share: float = 0.9
    min_frames: int = 24

    def __post_init__(self) -> None:
        if not 0 < self.max_fmp <= 1:
            raise ParameterError(f"max_fmp={self.max_fmp} must be in (0, 1]")
        if not 0 < self.corroborate_p <= 1:
            raise ParameterError(f"corroborate_p={self.corroborate_p} must be in (0, 1]")
        if not 0 < self.min_share <= 1:
            raise ParameterError(f"min_share={self.min_share} must be in (0, 1]")
        if self.jitter_frames < 0 or self.decay_s < 0 or self.min_frames < 4:
            raise ParameterError("jitter_frames and decay_s must be >= 0, min_frames >= 4")


@dataclass(frozen=True)
class Evidence:
    """The envelope evidence of one alignment."""

    r: float  # correlation of the centred envelopes
    n_eff: float  # independent cells the null model counts
    log10_tail: float  # log10 P(r' >= r) for one alignment of independent audio


def smear(db: np.ndarray, decay_s: float, frame_s: float) -> np.ndarray:
    """Envelope (dB, frames x bands) after an exponential energy decay of time constant ``decay_s``."""
    if decay_s <= 0 or len(db) == 0:
        return np.asarray(db, dtype=np.float64)
    a = math.exp(-frame_s / decay_s)
    power = 10.0 ** (np.asarray(db, dtype=np.float64) / 10.0)
    return 10.0 * np.log10(lfilter([1.0 - a], [1.0, -a], power, axis=0) + 1e-30)


def centre(db: np.ndarray) -> np.ndarray:
    """Remove each frame's mean over the bands, then each band's mean and linear trend over time."""
    x = np.asarray(db, dtype=np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    x = x - x.mean(axis=0, keepdims=True)
    t = np.arange(len(x), dtype=np.float64)
    t -= t.mean()
    tt = float(t @ t)
    if tt > 0:
        x = x - np.outer(t, (t @ x) / tt)
    return x


def _autocorrelation(x: np.ndarray) -> np.ndarray:
    f = np.fft.rfft2(x, s=(2 * x.shape[0], 2 * x.shape[1]))
    a = np.fft.irfft2(np.abs(f) ** 2, s=(2 * x.shape[0], 2 * x.shape[1]))
    return a / a[0, 0] if a[0, 0] > 0 else a


def effective_cells(qc: np.ndarray, rc: np.ndarray) -> float:
    """Bartlett's effective number of independent cells for the correlation of ``qc`` and ``rc``."""
    denom = float((_autocorrelation(qc) * _autocorrelation(rc)).sum())
    return float(min(qc.size, qc.size / denom)) if denom > 0 else 1.0


def correlation(qc: np.ndarray, rc: np.ndarray) -> float:
    den = math.sqrt(float((qc * qc).sum()) * float((rc * rc).sum()))
    return float((qc * rc).sum()) / den if den > 0 else 0.0


def log10_tail(r: float, n_eff: float) -> float:
    """log10 of the one-sided chance of a correlation at least ``r`` over ``n_eff`` cells."""
    if n_eff <= 3:
        return 0.0
    z = math.atanh(min(max(r, -0.999999), 0.999999)) * math.sqrt(n_eff - 3)
    return float(log_ndtr(-z)) / math.log(10)


def evidence(q_db: np.ndarray, r_db: np.ndarray) -> Evidence:
    """Evidence of two equally long envelopes (dB, frames x bands; the recording's already smeared)."""
    qc, rc = centre(q_db), centre(r_db)
    r = correlation(qc, rc)
    n = effective_cells(qc, rc)
    return Evidence(r=r, n_eff=n, log10_tail=log10_tail(r, n))


def log10_fmp(tail: float, catalogue_frames: int) -> float:
    """Bonferroni over every frame of the catalogue as a start (<= 0)."""
    return min(0.0, tail + math.log10(max(1, catalogue_frames)))


def verify_alignments(
    q_env: np.ndarray,
    duration: float,
    proposals: Iterable[tuple[int, float]],
    ref_env: Callable[[int], np.ndarray],
    recordings: Mapping[int, Recording],
    env_config: EnvelopeConfig,
    config: EnvelopeMatchConfig,
    *,
    catalogue_frames: int,
    corroborate: Callable[[int, float], tuple[float, float, float] | None],
) -> list[Match]:
    """Whole-item matches among proposed alignments ``(rec_id, recording seconds at item start)``.

    ``ref_env(rec_id)`` returns the recording's stored envelope (uint8 codes);
    ``corroborate(rec_id, offset_s)`` the Chromaprint evidence ``(ber, chance_ber, log10_tail)`` of
    the whole item at that alignment (see ``EnvelopeMatchConfig.corroborate_p``). Proposals of one
    recording that are adjacent frames form one place, judged at its best offset. Every place that
    passes both tests is a match; all but the strongest of a recording are alternatives (the
    recording repeats the passage: the envelope cannot tell which place was copied). Strongest
    first.
    """
    fs = env_config.frame_s
    nq = len(q_env)
    if nq < config.min_frames:
        return []
    q_db = to_db(q_env, env_config)
    want: dict[int, set[int]] = {}
    for rec_id, offset_s in proposals:
        o = int(round(offset_s / fs))
        want.setdefault(int(rec_id), set()).update(
            range(o - config.jitter_frames, o + config.jitter_frames + 1))
    out: list[Match] = []
    for rec_id in sorted(want):
        r_all = ref_env(rec_id)
        windows: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # offset -> centred (item, recording)
        places: list[list[tuple[float, int]]] = []  # runs of adjacent offsets: (r, offset)
        for o in sorted(want[rec_id]):
            q0, q1 = max(0, -o), min(nq, len(r_all) - o)
            if q1 - q0 < max(config.min_frames, config.min_share * nq):
                continue
            lo = o + q0
            lead = min(LEAD_FRAMES, lo)
            rw = smear(to_db(r_all[lo - lead:lo + q1 - q0], env_config), config.decay_s, fs)[lead:]
            windows[o] = (centre(q_db[q0:q1]), centre(rw))
            r = correlation(*windows[o])
            if places and o - places[-1][-1][1] == 1:
                places[-1].append((r, o))
            else:
                places.append([(r, o)])
        found = []
        for r, o in sorted((max(p) for p in places), reverse=True):
            if r <= 0:
                break
            n = effective_cells(*windows[o])
            lf = log10_fmp(log10_tail(r, n), catalogue_frames)
            if 10.0 ** lf > config.max_fmp:
                continue
            chroma = corroborate(rec_id, o * fs)
            if chroma is None or chroma[2] > math.log10(config.corroborate_p):
                continue
            found.append((lf, r, n, o, chroma))
        rec = recordings[rec_id]
        for k, (lf, r, n, o, chroma) in enumerate(sorted(found, key=lambda f: (f[0], -f[1]))):
            q0, q1 = max(0, -o), min(nq, len(r_all) - o)
            q_end = min(duration, q1 * fs)
            out.append(Match(
                track_id=rec.track_id, rec_id=rec_id,
                query_start=q0 * fs, query_end=q_end,
                ref_start=(o + q0) * fs, ref_end=min(rec.duration_s, (o + q0) * fs + (q_end - q0 * fs)),
                score=-lf, fmp=10.0 ** lf, ber=chroma[0], chance_ber=chroma[1],
                n_items=q1 - q0, n_distinct=int(round(n)), family="envelope",
                envelope_r=round(r, 4), alternative=k > 0))
    out.sort(key=lambda m: (-m.score, m.rec_id))
    return out


__all__ = ["EnvelopeMatchConfig", "Evidence", "centre", "correlation", "effective_cells", "evidence",
           "log10_fmp", "log10_tail", "smear", "verify_alignments"]
