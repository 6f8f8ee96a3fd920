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
Fisher's ``atanh(r) * sqrt(n_eff - 3)``, divided by ``INFLATION`` (measured: chance correlations
between music spread wider than Bartlett's formula predicts), under a standard normal. The
false-match probability
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
#: A place of the recording whose own envelope correlates at least this well with a matched place may
#: be a repeat of it (a loop, a varied chorus): it is judged as a place of its own even when the index
#: did not propose it. Judging more places only adds alternatives: each must pass the same tests, and
#: the false-match probability already counts every frame of the catalogue as a start.
REPEAT_SELF_R = 0.5
#: At most this many repeats of a matched place are judged.
MAX_REPEATS = 16


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
    repeat_ber_margin : float
        Once a place of a recording passes, another place of it (proposed, or where the recording
        repeats itself) is also reported, as an alternative, when both families agree there beyond
        chance for that one alignment (at ``corroborate_p``) and its Chromaprint bits agree within
        this margin of the passing place's bit error rate: the envelope evidence of two repeats of a
        passage can fall either side of the catalogue-wide threshold while the harmony says they are
        equally good places (the margin is the Chromaprint matcher's ``repeat_ber_margin``).
    min_share : float
        Share of the item's frames that must face the recording.
    min_frames : int
        Fewest compared frames (shorter items carry too little envelope evidence).
    """

    max_fmp: float = 1e-6
    jitter_frames: int = 2
    decay_s: float = 0.06
    corroborate_p: float = 1e-3
    repeat_ber_margin: float = 0.03
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


def full_frames(env: np.ndarray, env_config: EnvelopeConfig) -> np.ndarray:
    """The frames of an envelope whose window lies inside the signal: the last ``ceil(n_fft / hop)``
    frames reach past its end into zero padding, where the cut splashes energy into the upper bands
    (a burst that can dominate a steady item's centred envelope)."""
    padded = -(-env_config.n_fft // env_config.hop)
    return env[:max(0, len(env) - padded)]


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


def autocorrelation(x: np.ndarray) -> np.ndarray:
    f = np.fft.rfft2(x, s=(2 * x.shape[0], 2 * x.shape[1]))
    a = np.fft.irfft2(np.abs(f) ** 2, s=(2 * x.shape[0], 2 * x.shape[1]))
    return a / a[0, 0] if a[0, 0] > 0 else a


def effective_cells(qc: np.ndarray, rc: np.ndarray) -> float:
    """Bartlett's effective number of independent cells for the correlation of ``qc`` and ``rc``."""
    denom = float((autocorrelation(qc) * autocorrelation(rc)).sum())
    return float(min(qc.size, qc.size / denom)) if denom > 0 else 1.0


#: Centred envelopes with less energy than this per cell (dB squared) are flat: a steady sound, which
#: carries no evidence (their correlation would only rescale round-off).
FLAT_DB2 = 1e-6


def correlation(qc: np.ndarray, rc: np.ndarray) -> float:
    qq, rr = float((qc * qc).sum()), float((rc * rc).sum())
    if min(qq, rr) <= FLAT_DB2 * qc.size:
        return 0.0
    return float((qc * rc).sum()) / math.sqrt(qq * rr)


#: Spread of chance correlations relative to Bartlett's prediction, fitted on the public benchmark's
#: non-catalogue items (its negatives and generated audio) at the alignments Chromaprint proposes.
#: Uninflated, the model predicted a third to a seventh of the chance correlations observed at 1e-2
#: to 1e-4; with z divided by 1.4, predicted and observed agree within a factor of 3 at every
#: threshold with at least 20 events (observed/predicted 0.46-1.33 at 1e-2 and 1e-3;
#: ``benchmarks/null_calibration.py``, docs/benchmarks.md). The events below 1e-3 come from two
#: same-artist recordings, which share material with registered ones and are not chance; that is
#: what the Chromaprint corroboration is for.
INFLATION = 1.4


def log10_tail(r: float, n_eff: float, inflation: float = INFLATION) -> float:
    """log10 of the one-sided chance of a correlation at least ``r`` over ``n_eff`` cells."""
    if n_eff <= 3:
        return 0.0
    z = math.atanh(min(max(r, -0.999999), 0.999999)) * math.sqrt(n_eff - 3) / inflation
    return float(log_ndtr(-z)) / math.log(10)


def sliding_correlation(template: np.ndarray, series: np.ndarray) -> np.ndarray:
    """Correlation of the centred ``template`` (frames x bands) with every equally long window of
    ``series``, each window centred as :func:`centre` does; index ``o`` is the window starting at
    frame ``o``."""
    t = centre(template)
    n, nb = t.shape
    x = np.asarray(series, dtype=np.float64)
    x = x - x.mean(axis=1, keepdims=True)  # the per-frame part of centre() does not depend on the window
    m = len(x) - n + 1
    if m <= 0:
        return np.zeros(0)
    num = np.zeros(m)
    for b in range(nb):
        num += np.correlate(x[:, b], t[:, b], mode="valid")
    k = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    kk = float(k @ k)
    g = np.arange(len(x), dtype=np.float64)[:, None]

    def window_sums(a: np.ndarray) -> np.ndarray:
        c = np.concatenate([np.zeros((1, a.shape[1])), np.cumsum(a, axis=0)])
        return c[n:] - c[:-n]

    s0, s2, sg = window_sums(x), window_sums(x * x), window_sums(x * g)
    o = np.arange(m, dtype=np.float64)[:, None]
    st = sg - s0 * (o + (n - 1) / 2.0)  # sum over the window of x * (frame - window centre)
    var = (s2 - s0 ** 2 / n - (st ** 2 / kk if kk > 0 else 0.0)).sum(axis=1)
    den = math.sqrt(float((t * t).sum())) * np.sqrt(np.maximum(var, 1e-12))
    return num / den


def self_repeats(env_db: np.ndarray, start: int, length: int, *, min_gap: int) -> list[int]:
    """Starts of the places of a recording (dB envelope) that repeat ``env_db[start:start+length]``:
    local maxima of their correlation with it at least ``REPEAT_SELF_R``, at least ``min_gap``
    frames from it and from each other, the strongest ``MAX_REPEATS``."""
    if start < 0 or start + length > len(env_db):
        return []
    c = sliding_correlation(env_db[start:start + length], env_db)
    cand = np.flatnonzero(c >= REPEAT_SELF_R)
    out: list[int] = []
    for o in cand[np.argsort(-c[cand], kind="stable")]:
        if abs(int(o) - start) >= min_gap and all(abs(int(o) - p) >= min_gap for p in out):
            out.append(int(o))
        if len(out) >= MAX_REPEATS:
            break
    return sorted(out)


def log10_fmp(tail: float, catalogue_frames: int) -> float:
    """Bonferroni over every frame of the catalogue as a start (<= 0)."""
    return min(0.0, tail + math.log10(max(1, catalogue_frames)))


def _places(
    rec_id: int,
    r_all: np.ndarray,
    offsets: list[int],
    q_db: np.ndarray,
    env_config: EnvelopeConfig,
    config: EnvelopeMatchConfig,
    catalogue_frames: int,
    corroborate: Callable[[int, float], tuple[float, float, float] | None],
) -> list[tuple[float, float, float, int, tuple[float, float, float]]]:
    """The places of one recording that pass both tests: ``(log10 fmp, r, n_eff, offset, chroma)``."""
    fs = env_config.frame_s
    nq = len(q_db)
    windows: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # offset -> centred (item, recording)
    items: dict[tuple[int, int], np.ndarray] = {}  # (first, end) item frames -> centred item

    def faced(o: int) -> tuple[int, int] | None:
        """Item frames facing the recording at offset ``o``, if enough of the item does."""
        q0, q1 = max(0, -o), min(nq, len(r_all) - o)
        return (q0, q1) if q1 - q0 >= max(config.min_frames, config.min_share * nq) else None

    def run_r(run: list[int]) -> list[tuple[float, int]]:
        """Correlations at adjacent offsets ``run``; the recording is smeared once for all of them."""
        spans = [(o, f) for o in run if (f := faced(o)) is not None]
        if not spans:
            return []
        first = min(o + q0 for o, (q0, _) in spans)
        end = max(o + q1 for o, (_, q1) in spans)
        lead = min(LEAD_FRAMES, first)
        sm = smear(to_db(r_all[first - lead:end], env_config), config.decay_s, fs)
        out = []
        for o, (q0, q1) in spans:
            if (q0, q1) not in items:
                items[(q0, q1)] = centre(q_db[q0:q1])
            at = o + q0 - (first - lead)
            windows[o] = (items[(q0, q1)], centre(sm[at:at + q1 - q0]))
            out.append((correlation(*windows[o]), o))
        return out

    def judge(places: list[tuple[float, int]]) -> list[tuple[float, float, float, int, tuple]]:
        passed = []
        for r, o in sorted(places, reverse=True):
            if r <= 0:
                break
            if 10.0 ** log10_fmp(log10_tail(r, windows[o][0].size), catalogue_frames) > config.max_fmp:
                continue  # fails even with every cell independent (n_eff <= cells): skip the FFTs
            n = effective_cells(*windows[o])
            lf = log10_fmp(log10_tail(r, n), catalogue_frames)
            if 10.0 ** lf > config.max_fmp:
                continue
            chroma = corroborate(rec_id, o * fs)
            if chroma is None or chroma[2] > math.log10(config.corroborate_p):
                continue
            passed.append((lf, r, n, o, chroma))
        return passed

    runs: list[list[tuple[float, int]]] = []  # adjacent offsets form one place: (r, offset)
    groups: list[list[int]] = []
    for o in offsets:
        if groups and o - groups[-1][-1] == 1:
            groups[-1].append(o)
        else:
            groups.append([o])
    for group in groups:  # a group's faced offsets are adjacent too: one place
        scored = run_r(group)
        if scored:
            runs.append(scored)
    tried = [max(run) for run in runs]
    found = judge(tried)
    if found:
        best = min(found)[3]
        gap = 2 * config.jitter_frames + 1
        near = {o for run in runs for _, o in run}
        extra = []
        q0, q1 = max(0, -best), min(nq, len(r_all) - best)
        for start in self_repeats(to_db(r_all, env_config), best + q0, q1 - q0, min_gap=gap):
            o = start - q0  # the offset that puts the item's first faced frame at the repeat
            if all(abs(o - p) >= gap for p in near):
                extra += run_r([o])
        found += judge(extra)
        best_ber = min(found)[4][0]
        passed = {f[3] for f in found}
        level = math.log10(config.corroborate_p)
        for r, o in tried + extra:  # places the envelope alone leaves below its threshold
            if o in passed or r <= 0 or log10_tail(r, windows[o][0].size) > level:
                continue
            n = effective_cells(*windows[o])
            tail = log10_tail(r, n)
            if tail > level:  # both families must agree beyond chance at the place itself
                continue
            chroma = corroborate(rec_id, o * fs)
            if chroma is not None and chroma[2] <= level and chroma[0] <= best_ber + config.repeat_ber_margin:
                found.append((log10_fmp(tail, catalogue_frames), r, n, o, chroma))
    return found


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
    recording that are adjacent frames form one place, judged at its best offset. When a place
    passes, the places where the recording repeats it (:func:`self_repeats`) are judged too, proposed
    or not. Every place that passes both tests is a match; all but the strongest of a recording are
    alternatives (the recording repeats the passage: the envelope cannot tell which place was copied),
    and so are places whose Chromaprint agreement is as good (``repeat_ber_margin``) although their
    envelope evidence alone would not pass. Strongest first.
    """
    fs = env_config.frame_s
    q_env = full_frames(q_env, env_config)
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
        r_all = full_frames(ref_env(rec_id), env_config)
        found = _places(rec_id, r_all, sorted(want[rec_id]), q_db, env_config, config,
                        catalogue_frames, corroborate)
        rec = recordings[rec_id]
        for k, (lf, r, n, o, chroma) in enumerate(sorted(found, key=lambda f: (f[0], -f[1]))):
            q0, q1 = max(0, -o), min(nq, len(r_all) - o)
            q_end = duration if q1 == nq else min(duration, q1 * fs)  # the item's own end is faced
            out.append(Match(
                track_id=rec.track_id, rec_id=rec_id,
                query_start=q0 * fs, query_end=q_end,
                ref_start=(o + q0) * fs, ref_end=min(rec.duration_s, (o + q0) * fs + (q_end - q0 * fs)),
                score=-lf, fmp=10.0 ** lf, ber=chroma[0], chance_ber=chroma[1],
                n_items=q1 - q0, n_distinct=int(round(n)), family="envelope",
                envelope_r=round(r, 4), alternative=k > 0))
    out.sort(key=lambda m: (-m.score, m.rec_id))
    return out


__all__ = ["EnvelopeMatchConfig", "autocorrelation", "centre", "correlation", "effective_cells",
           "full_frames", "log10_fmp", "log10_tail", "self_repeats", "sliding_correlation", "smear",
           "verify_alignments"]
