#!/usr/bin/env python3
"""Predicted versus observed chance-event rates of the landmark, envelope and mixture null models
(issue 4, item 4).

Null items: every negative file of the benchmark (same-artist unregistered recordings, distractor
music, speech, noise, silence, tones, sound effects) plus generated audio (seeded synthetic songs of
3-30 s, noise, chords) -- none of it in the catalogue. Issue 4 asks for agreement within a factor of
3 at thresholds loose enough to see at least 20 events.

Landmark family. For each item, the strongest alignment's false-match probability (FMP); at
threshold alpha a calibrated FMP predicts alpha x items chance events, and we count how many items
have their strongest FMP at most alpha. The judged table is the FMP the report gives for landmark
evidence, the empirical one (``empirical_log10_fmp``: measured on the item's own chance alignments
with the catalogue's other recordings), over the items that make at least one alignment with enough
distinct pitches to be judged (an item that is never judged cannot make a chance event: silence,
noise and tones mostly do not). The analytic FMP the decisions use follows for reference (it
understates chance between pieces of music), then its strongest alignments that could be reported
(evidence spanning ``min_span`` of the item), unrelated and same-artist items apart.

Envelope family (``earmark/match/envelope.py``). What is tested is the per-alignment chance tail
``log10_tail(r, n_eff)`` (Fisher z over Bartlett's effective cells, divided by ``INFLATION``) at the
alignments the verifier really looks at: for an item whose Chromaprint fingerprint has enough sound
(the scan worker's gates), every one of Chromaprint's candidate alignments (``candidate_diagonals``,
up to 48 per item, not only the best), each tried at ``jitter_frames`` envelope frames either side
(``EnvelopeMatchConfig()`` defaults: +-2, so 5 offsets), with the recording smeared, both windows
centred and compared exactly as ``verify_alignments`` does (``smear``, ``centre``, ``correlation``,
``effective_cells``, ``log10_tail``, ``LEAD_FRAMES``, ``min_share``, ``min_frames``). Offsets where
too little of the item faces the recording are skipped as there; an alignment with no offset left
is not a test. Two tables:

* *per offset*: every distinct (item, recording, offset) the verifier evaluates is one test (the
  candidates of one recording are often neighbouring diagonals, so their jittered offsets overlap;
  each offset counts once). Its tail is a p-value by construction, so the prediction at alpha is
  exactly alpha x offsets, whatever the correlation between tests. This checks the marginal tail.
* *per candidate alignment* (the issue's unit): the alignment's evidence is its best correlation
  over its jittered offsets and that offset's tail (as ``verify_alignments`` judges a place); an
  event is that tail <= alpha. The jittered offsets are strongly correlated, so the chance of an
  event is alpha x m_eff with m_eff between 1 (identical offsets) and the number of offsets tried
  (independent ones). m_eff is *computed from the null model itself*, not fitted to the events:
  Bartlett's formula also gives the correlation of the evidence at two offsets ``d`` frames apart,
  ``c(d) = sum_k rho_q(k) rho_r(k + d) / sum_k rho_q(k) rho_r(k)`` (the recording's autocorrelation
  shifted by ``d`` frames in time), and under the model the offsets' z scores are then jointly normal
  with that correlation. P(max z >= z_alpha) is bounded above by Hunter-Worsley's chain bound
  ``sum_i P(A_i) - sum_i P(A_i and A_i+1)`` (pairs by Owen's T) -- the prediction -- and below by
  de Caen's bound, printed as the range of the prediction. (The verifier takes the tail at the best
  correlation, the model the best z; n_eff hardly changes between neighbouring offsets.) The
  predicted count is the sum of these probabilities over all tested alignments; the observed count
  is the number of alignments with an event. Overlapping alignments can share one chance agreement,
  so events come in clumps: the "items" column says how many null items they came from. The model's
  adjacent-offset correlation c(1) is compared with the correlation of neighbouring offsets' z scores
  measured over all tests.

Mixture verifier (``earmark/match/mixture.py``). What is tested is the coincidence tail
``log10_tail(k, mu, dispersion)`` of single reference peaks. For each null item long enough for the
verifier, 100 offsets per recording are drawn at random (seeded by the item; every offset faces the
whole item), and each is one test, its tail taken at the pair's own dispersion (``local_dispersion``,
measured at other, evenly spaced offsets, never below independent peaks' at the offset:
``pair_tail``, as the verifier does); the prediction at alpha is alpha x tests. Counted separately:
the items that share nothing with the catalogue, and the same-artist recordings (shared material is
not chance, and the masking test exists for it); and the events that also pass the masking test
(``max_unmasked``), for which the prediction is an upper bound.

A row is judged ("within 3x": yes / no) where the predicted or the observed count is at least 20.
The fast version on generated audio against a synthetic catalogue is
``tests/test_envelope_null.py`` (the landmark one is in ``tests/test_landmarks.py``).

The FMP the verifier reports multiplies the tail by every live catalogue frame (each a possible
start), far more starts than the alignments tried, so a calibrated tail makes it conservative; the
strongest envelope FMP any null item reaches is printed as well.

Usage: null_calibration.py BENCH_DIR CATALOGUE [--generated 200] [--first-generated 0] [--calibration C]
       [--dispersion D] [--inflation I] [--only all|generated|benchmark] [--landmark-only] [--workers 2]
       [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from scipy.special import ndtr, ndtri, owens_t

from earmark import synth
from earmark.audio import decode
from earmark.catalogue.reader import CatalogueReader
from earmark.errors import DecodeError
from earmark.fingerprint.envelope import EnvelopeConfig, to_db
from earmark.fingerprint.peaks import extract_peaks
from earmark.fingerprint.pipeline import fingerprint_samples
from earmark.match import mixture as mix
from earmark.match.calibration import (
    Strongest,
    chance_events,
    fitted_calibration,
    strongest_chromaprint_log10_fmp,
    strongest_log10_fmps,
)
from earmark.match.chromaprint import MatchConfig, candidate_diagonals
from earmark.match.envelope import (
    INFLATION,
    LEAD_FRAMES,
    EnvelopeMatchConfig,
    autocorrelation,
    centre,
    correlation,
    effective_cells,
    full_frames,
    log10_tail,
    smear,
)
from earmark.match.excerpt import ExcerptConfig
from earmark.match.landmarks import HoughConfig
from earmark.match.model import NullModel
from earmark.scan.worker import SILENT_DBFS

ALPHAS = (0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 1e-3, 1e-4)
ENV_ALPHAS = (1e-2, 1e-3, 1e-4, 1e-5)
_R: dict[str, object] = {}


# ------------------------------------------------------------------------------- envelope family
SAME_ARTIST = "neg_withheld_same_artist"


def pair_tail(z: np.ndarray | float, c: np.ndarray | float) -> np.ndarray:
    """P(X >= z and Y >= z) for standard normals of correlation ``c`` (Owen's T; ``z`` > 0)."""
    c = np.clip(np.asarray(c, dtype=np.float64), -0.999999, 0.999999)
    z = np.asarray(z, dtype=np.float64)
    return np.maximum(ndtr(-z) - 2.0 * owens_t(z, np.sqrt((1.0 - c) / (1.0 + c))), 0.0)


def max_tail_bounds(alpha: float, offsets: list[int],
                    lag_corr: Callable[[int], float]) -> tuple[float, float]:
    """(lower, upper) bounds on P(max_i Z_i >= z_alpha) for jointly normal z scores at ``offsets``
    (sorted frames) with correlation ``lag_corr(d)`` at ``d`` frames apart: de Caen's and
    Hunter-Worsley's (chain of neighbouring offsets) bounds."""
    m = len(offsets)
    z = -float(ndtri(alpha))
    if m == 1:
        return alpha, alpha
    upper = m * alpha - sum(float(pair_tail(z, lag_corr(b - a)))
                            for a, b in zip(offsets[:-1], offsets[1:], strict=True))
    joint = np.array([[alpha if i == j else float(pair_tail(z, lag_corr(abs(b - a))))
                       for j, b in enumerate(offsets)] for i, a in enumerate(offsets)])
    lower = float(sum(alpha * alpha / joint[i].sum() for i in range(m)))
    return lower, min(upper, m * alpha)


@dataclass
class EnvelopeTests:
    """The envelope family's chance tests of one null item (plain lists: picklable, summable)."""

    alphas: tuple[float, ...] = ENV_ALPHAS  # the per-test thresholds ``predicted`` is given at
    offset_tails: list[float] = field(default_factory=list)  # log10 tail of each distinct offset
    best_tails: list[float] = field(default_factory=list)  # per alignment: tail at its best r
    n_offsets: list[int] = field(default_factory=list)  # per alignment: offsets tried
    predicted: list[list[float]] = field(default_factory=list)  # per alignment, per alpha: upper
    predicted_low: list[list[float]] = field(default_factory=list)  # the same, lower bound
    c1: list[float] = field(default_factory=list)  # per alignment: model correlation at 1 frame
    z_pairs: list[tuple[float, float]] = field(default_factory=list)  # z at offsets o, o + 1


def envelope_tests(
    q_env: np.ndarray,
    proposals: Iterable[tuple[int, float]],
    ref_env: Callable[[int], np.ndarray],
    env_config: EnvelopeConfig,
    alphas: tuple[float, ...] = ENV_ALPHAS,
    config: EnvelopeMatchConfig | None = None,
    inflation: float = INFLATION,
) -> EnvelopeTests:
    """Every chance test the envelope verifier makes for one item: ``proposals`` are its candidate
    alignments ``(rec_id, recording seconds at item start)`` (as the scan worker builds them)."""
    cfg = config or EnvelopeMatchConfig()
    fs = env_config.frame_s
    q_env = full_frames(q_env, env_config)
    nq = len(q_env)
    out = EnvelopeTests(alphas=tuple(alphas))
    if nq < cfg.min_frames:
        return out
    q_db = to_db(q_env, env_config)
    refs: dict[int, np.ndarray] = {}
    done: dict[tuple[int, int], tuple[float, float, float, np.ndarray, np.ndarray] | None] = {}

    def at(rec_id: int, o: int) -> tuple[float, float, float, np.ndarray, np.ndarray] | None:
        """(r, z, log10 tail, centred item, centred recording) at offset ``o``, as
        verify_alignments compares them."""
        key = (rec_id, o)
        if key not in done:
            r_all = refs.setdefault(rec_id, full_frames(ref_env(rec_id), env_config))
            q0, q1 = max(0, -o), min(nq, len(r_all) - o)
            if q1 - q0 < max(cfg.min_frames, cfg.min_share * nq):
                done[key] = None
            else:
                lo = o + q0
                lead = min(LEAD_FRAMES, lo)
                rw = smear(to_db(r_all[lo - lead:lo + q1 - q0], env_config), cfg.decay_s, fs)[lead:]
                qc, rc = centre(q_db[q0:q1]), centre(rw)
                r = correlation(qc, rc)
                n = effective_cells(qc, rc)
                tail = log10_tail(r, n, inflation)
                z = (math.atanh(min(max(r, -0.999999), 0.999999)) * math.sqrt(n - 3) / inflation
                     if n > 3 else 0.0)
                out.offset_tails.append(tail)
                done[key] = (r, z, tail, qc, rc)
        return done[key]

    for rec_id, offset_s in proposals:
        o0 = int(round(offset_s / fs))
        tried = [(o, e) for o in range(o0 - cfg.jitter_frames, o0 + cfg.jitter_frames + 1)
                 if (e := at(int(rec_id), o)) is not None]
        if not tried:
            continue
        _r, _z, tail, qc, rc = max(tried, key=lambda t: t[1][0])[1]
        out.best_tails.append(tail)
        aq, ar = autocorrelation(qc), autocorrelation(rc)
        den = float((aq * ar).sum())
        cache: dict[int, float] = {}

        def lag_corr(d: int, aq: np.ndarray = aq, ar: np.ndarray = ar, den: float = den,
                     cache: dict[int, float] = cache) -> float:
            if d not in cache:
                cache[d] = float((aq * np.roll(ar, d, axis=0)).sum()) / den if den > 0 else 0.0
            return cache[d]

        offsets = [o for o, _ in tried]
        bounds = [max_tail_bounds(a, offsets, lag_corr) for a in alphas]
        out.n_offsets.append(len(offsets))
        out.predicted.append([b[1] for b in bounds])
        out.predicted_low.append([b[0] for b in bounds])
        out.c1.append(lag_corr(1))
    for (rec_id, o), e in done.items():
        nxt = done.get((rec_id, o + 1))
        if e is not None and nxt is not None:
            out.z_pairs.append((e[1], nxt[1]))
    return out


@dataclass(frozen=True)
class EnvelopeRow:
    """Predicted and observed envelope chance events at one per-test threshold."""

    alpha: float
    unit: str  # "offset" or "alignment"
    tests: int
    predicted: float
    predicted_low: float  # lower end of the prediction (equal to predicted for offsets)
    observed: int
    items: int  # null items the observed events came from

    @property
    def ratio(self) -> float:
        return self.observed / self.predicted if self.predicted > 0 else float("inf")

    @property
    def m_eff(self) -> float:
        """Effective number of independent offsets per test the prediction assumes."""
        return self.predicted / (self.alpha * self.tests) if self.tests else 0.0


def envelope_rows(per_item: list[EnvelopeTests]) -> list[EnvelopeRow]:
    """Per offset, then per candidate alignment, at each alpha the items were tested at."""
    alphas = next((e.alphas for e in per_item if e.best_tails), ENV_ALPHAS)
    assert all(e.alphas == alphas for e in per_item if e.best_tails), "items tested at other alphas"
    n_off = sum(len(e.offset_tails) for e in per_item)
    rows = []
    for a in alphas:
        off = [_events(e.offset_tails, a) for e in per_item]
        rows.append(EnvelopeRow(a, "offset", n_off, a * n_off, a * n_off, sum(off), sum(n > 0 for n in off)))
    for k, a in enumerate(alphas):
        ali = [_events(e.best_tails, a) for e in per_item]
        rows.append(EnvelopeRow(a, "alignment", sum(len(e.best_tails) for e in per_item),
                                sum(p[k] for e in per_item for p in e.predicted),
                                sum(p[k] for e in per_item for p in e.predicted_low), sum(ali),
                                sum(n > 0 for n in ali)))
    return rows


def item_envelope_tests(x: np.ndarray, sr: int, reader: CatalogueReader, inflation: float = INFLATION,
                        alphas: tuple[float, ...] = ENV_ALPHAS) -> tuple[EnvelopeTests, float]:
    """Fingerprint ``x`` as the scan worker does and return its envelope chance tests and the
    strongest envelope log10 FMP among them (0 if none). Items the worker would not send to the
    verifier (silent, too little sound for Chromaprint, no candidates) have no tests."""
    match = MatchConfig()
    fa = fingerprint_samples(x, sr, reader.config, envelope=reader.envelope_config)
    fp = fa.fingerprint
    if fa.rms_dbfs < SILENT_DBFS or fp.n_active < match.min_items + reader.window_width - 1:
        return EnvelopeTests(alphas=tuple(alphas)), 0.0
    cands = candidate_diagonals(fp, reader, match)
    proposals = [(rec, diag * fp.item_duration) for rec, diag, _votes in cands]
    tests = envelope_tests(fa.envelope, proposals, reader.envelope, reader.envelope_config, alphas,
                           inflation=inflation)
    lf = min(0.0, min(tests.best_tails, default=0.0) + math.log10(max(1, reader.envelope_frames_live)))
    return tests, lf


# -------------------------------------------------------------------------------- mixture verifier
MIX_ALPHAS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
MIX_OFFSETS = 100


@dataclass
class MixtureTests:
    """One null item's mixture chance tests: how many, and the events at each of ``MIX_ALPHAS``
    (coincidence tail alone, and also passing the masking test)."""

    tests: int = 0
    events: list[int] = field(default_factory=lambda: [0] * len(MIX_ALPHAS))
    masked_events: list[int] = field(default_factory=lambda: [0] * len(MIX_ALPHAS))


def null_item_peaks(x: np.ndarray, sr: int, reader: CatalogueReader,
                    config: mix.MixtureMatchConfig | None = None) -> mix.ItemPeaks | None:
    """A null item as the peak-level verifiers see it (``mixture.item_peaks``); None when the scan
    would not judge it (silent, or no peaks)."""
    config = config or mix.MixtureMatchConfig()
    fa = fingerprint_samples(x, sr, reader.config, peaks=reader.landmark_config.query_peaks,
                             keep_spectrogram_s=len(x) / sr + 1)
    if fa.rms_dbfs < SILENT_DBFS or fa.spectrogram is None or not len(fa.peaks):  # type: ignore[arg-type]
        return None
    return mix.item_peaks(fa.peaks, fa.spectrogram, reader.landmark_config.peaks, config)  # type: ignore[arg-type]


def item_mixture_tests(x: np.ndarray, sr: int, reader: CatalogueReader, seed: int,
                       config: mix.MixtureMatchConfig | None = None,
                       offsets: int = MIX_OFFSETS, *, item: mix.ItemPeaks | None = None) -> MixtureTests:
    """Coincidence tails of ``x`` at ``offsets`` random whole-item offsets of every recording
    (``item``: ``x`` already prepared by :func:`null_item_peaks`)."""
    config = config or mix.MixtureMatchConfig()
    out = MixtureTests()
    item = item or null_item_peaks(x, sr, reader, config)
    if item is None:
        return out
    _chance_tails(item, reader, np.random.default_rng(seed), offsets, config, out,
                  lambda ev, ref, o: mix.unmasked_share(item, ref, o, config) <= config.max_unmasked)
    return out


def _chance_tails(item: mix.ItemPeaks, reader: CatalogueReader, rng: np.random.Generator, offsets: int,
                  config: mix.MixtureMatchConfig, out: MixtureTests,
                  passes: Callable[[mix.Evidence, tuple, int], bool]) -> None:
    """Add to ``out`` the coincidence tails of ``item`` at ``offsets`` random offsets of every recording
    longer than it, each at the pair's own dispersion (as the verifiers take it); an event that also
    ``passes(evidence, recording peaks, offset)`` the verifier's other tests counts in ``masked_events``."""
    pc = reader.landmark_config.peaks
    for rid, rec in sorted(reader.recordings.items()):
        ref_frames = int(rec.duration_s / pc.frame_duration)
        if ref_frames <= item.n_frames:
            continue
        ref = reader.peak_map(rid)
        local = mix.local_dispersion(item, ref, ref_frames, config)  # the pair's own, as the verifier's
        for o in np.sort(rng.integers(0, ref_frames - item.n_frames, offsets)):
            ev = mix.coincidence(item, ref, ref_frames, np.array([o]), config)
            if ev is None or ev.compared == 0:
                continue
            out.tests += 1
            tail = mix.pair_tail(ev, local)
            if tail > math.log10(MIX_ALPHAS[0]):
                continue
            passed = passes(ev, ref, int(o))
            for j, alpha in enumerate(MIX_ALPHAS):
                if tail <= math.log10(alpha):
                    out.events[j] += 1
                    out.masked_events[j] += passed


def _tail_tables(res: list, at: int, out: dict[str, object], passing: str, key: str) -> dict[str, object]:
    """Print and add to ``out`` the chance-event table of the ``MixtureTests`` at index ``at`` of each
    result, unrelated and same-artist items apart; ``passing`` heads the column (JSON ``key``) of the
    events that also pass the verifier's other tests."""
    groups = {"unrelated": [r for r in res if r[0] != SAME_ARTIST],
              "same_artist": [r for r in res if r[0] == SAME_ARTIST]}
    for name, sel in groups.items():
        tests = sum(r[at].tests for r in sel)
        rows = []
        print(f"  {name}: {len(sel)} items, {tests} tests")
        print(f"  {'alpha':>6} {'predicted':>9} {'observed':>8} {'ratio':>6} {passing:>9}  within 3x")
        for j, alpha in enumerate(MIX_ALPHAS):
            obs = sum(r[at].events[j] for r in sel)
            passed = sum(r[at].masked_events[j] for r in sel)
            pred = alpha * tests
            ratio = obs / pred if pred else float("nan")
            seen = max(obs, pred) >= 20
            ok = seen and 1 / 3 <= ratio <= 3
            print(f"  {alpha:6g} {pred:9.1f} {obs:8d} {ratio:6.2f} {passed:9d}  "
                  f"{'yes' if ok else ('no' if seen else 'too few events')}")
            rows.append({"alpha": alpha, "predicted": pred, "observed": obs, "ratio": ratio, key: passed})
        out[name] = {"items": len(sel), "tests": tests, "rows": rows}
    return out


def mixture_summary(res: list) -> dict[str, object]:
    """Print the mixture verifier's table (unrelated items; same-artist items); return it."""
    print(f"\nmixture verifier: coincidence tails at {MIX_OFFSETS} random whole-item offsets per "
          f"(null item, recording), at each pair's own dispersion (at least "
          f"{mix.MixtureMatchConfig().dispersion:g}x independent peaks')")
    return _tail_tables(res, 6, {"alphas": list(MIX_ALPHAS), "offsets_per_recording": MIX_OFFSETS},
                        "masked", "observed_passing_masking")


# -------------------------------------------------------------------------------- excerpt check
EXC_STRETCHES, EXC_OFFSETS, EXC_SECONDS = 3, 30, 4.0


def item_excerpt_tests(x: np.ndarray, sr: int, reader: CatalogueReader, seed: int,
                       config: mix.MixtureMatchConfig | None = None, *,
                       item: mix.ItemPeaks | None = None) -> MixtureTests:
    """The excerpt check's coincidence tails (``earmark.match.excerpt.evidence`` before its
    Bonferroni factor): ``EXC_STRETCHES`` random stretches of ``EXC_SECONDS`` of ``x``, each taken as
    an item of its own (its own peak occupancy) and compared with every recording at ``EXC_OFFSETS``
    random offsets, at the pair's own dispersion. ``masked_events`` counts the events that also pass
    the check's other two tests (a copy's share of peaks and the masking test)."""
    config = config or mix.MixtureMatchConfig()
    whole = replace(config, min_share=1.0)
    excerpt = ExcerptConfig()
    pc = reader.landmark_config.peaks
    out = MixtureTests()
    item = item or null_item_peaks(x, sr, reader, config)
    n = int(EXC_SECONDS / pc.frame_duration)
    if item is None or item.n_frames < n:
        return out
    rng = np.random.default_rng(seed)
    for f0 in rng.integers(0, item.n_frames - n + 1, EXC_STRETCHES):
        hit = item.hit[f0: f0 + n]
        part = mix.ItemPeaks(hit=hit, occupancy=hit.mean(axis=0), spectrogram=item.spectrogram[f0: f0 + n])

        def copy_like(ev: mix.Evidence, ref: tuple, o: int, part: mix.ItemPeaks = part) -> bool:
            return (ev.coincident >= excerpt.min_rate * ev.compared and ev.compared >= excerpt.min_peaks
                    and mix.unmasked_share(part, ref, o, whole) <= excerpt.max_unmasked)

        _chance_tails(part, reader, rng, EXC_OFFSETS, whole, out, copy_like)
    return out


def excerpt_summary(res: list) -> dict[str, object]:
    """Print the excerpt check's table (unrelated items; same-artist items); return it."""
    print(f"\nexcerpt check: coincidence tails of {EXC_STRETCHES} random {EXC_SECONDS:g} s stretches per "
          f"null item at {EXC_OFFSETS} random offsets per recording, at each pair's own dispersion")
    out: dict[str, object] = {"alphas": list(MIX_ALPHAS), "stretches_per_item": EXC_STRETCHES,
                              "seconds": EXC_SECONDS, "offsets_per_recording": EXC_OFFSETS}
    return _tail_tables(res, 8, out, "copy-like", "observed_passing_rate_and_masking")


# ------------------------------------------------------------------------------------ benchmark
def _init(cat: str, calibration: float, dispersion: float, inflation: float, landmark_only: bool,
          clump: float) -> None:
    _R["landmark_only"] = landmark_only
    _R["null"] = replace(NullModel(), clump=clump)
    _R["reader"] = CatalogueReader(cat)
    _R["hough"] = replace(HoughConfig(), calibration=calibration, dispersion=dispersion)
    _R["inflation"] = inflation


def _generated(i: int, sr: int) -> np.ndarray:
    dur = (3.0, 10.0, 30.0)[i % 3]
    kind = i % 10
    if kind == 8:
        return synth.noise(10_000 + i, duration=dur, sr=sr, color="pink").astype(np.float32)
    if kind == 9:
        t = np.arange(int(dur * sr)) / sr
        f0 = 110 + 7 * i
        return (sum(np.sin(2 * np.pi * f0 * r * t) for r in (1, 1.26, 1.5)) / 6).astype(np.float32)
    return synth.song(50_000 + i, duration=dur, sr=sr)


def _job(task: tuple[str, str, int]) -> tuple:
    """One null item: ``(kind, ref, duration, landmark Strongest, EnvelopeTests, envelope log10 FMP,
    MixtureTests, strongest Chromaprint log10 FMP or None, excerpt MixtureTests)``."""
    kind, ref, i = task
    reader: CatalogueReader = _R["reader"]  # type: ignore[assignment]
    cfg = reader.landmark_config
    sr = cfg.peaks.sample_rate
    if kind == "generated":
        x = _generated(i, sr)
    else:
        try:
            x = decode(ref, sr=sr).samples
        except DecodeError:
            return (kind, ref, 0.0, Strongest(0.0, 0.0, 0.0, False), EnvelopeTests(), 0.0, MixtureTests(),
                    None, MixtureTests())
    dur = len(x) / sr
    st = strongest_log10_fmps(extract_peaks(x, cfg.query_peaks), dur, reader, cfg, _R["hough"])  # type: ignore[arg-type]
    cp = strongest_chromaprint_log10_fmp(fingerprint_samples(x, sr, reader.config).fingerprint, reader,
                                         MatchConfig(), _R["null"])  # type: ignore[arg-type]
    if _R["landmark_only"]:
        return kind, ref, dur, st, EnvelopeTests(), 0.0, MixtureTests(), cp, MixtureTests()
    env, env_lf = item_envelope_tests(x, sr, reader, _R["inflation"])  # type: ignore[arg-type]
    seed = i if kind == "generated" else zlib.crc32(ref.encode())
    item = null_item_peaks(x, sr, reader)  # once for both peak-level verifiers
    if item is None:
        return kind, ref, dur, st, env, env_lf, MixtureTests(), cp, MixtureTests()
    mixt = item_mixture_tests(x, sr, reader, seed=seed, item=item)
    return kind, ref, dur, st, env, env_lf, mixt, cp, item_excerpt_tests(x, sr, reader, seed + 1, item=item)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bench", type=Path)
    ap.add_argument("catalogue", type=Path)
    ap.add_argument("--generated", type=int, default=200)
    ap.add_argument("--first-generated", type=int, default=0,
                    help="index of the first generated item (another range: other songs, a held-out check)")
    ap.add_argument("--calibration", type=float, default=HoughConfig().calibration)
    ap.add_argument("--dispersion", type=float, default=HoughConfig().dispersion)
    ap.add_argument("--inflation", type=float, default=INFLATION,
                    help="envelope family: z divisor of the chance tail (earmark.match.envelope.INFLATION)")
    ap.add_argument("--clump", type=float, default=NullModel().clump,
                    help="Chromaprint family: alignments per independent chance (NullModel.clump)")
    ap.add_argument("--only", choices=("all", "generated", "benchmark"), default="all",
                    help="which null items count (fit on one, check on the other)")
    ap.add_argument("--landmark-only", action="store_true",
                    help="only the landmark family's tables (fast: for many generated items)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    tasks = []
    for line in (a.bench / "truth.jsonl").read_text().splitlines():
        t = json.loads(line)
        if t["kind"] == "negative":
            tasks.append((t["transform"], str(a.bench / "dataset" / t["file"]), 0))
    first = a.first_generated
    tasks += [("generated", f"generated-{i}", i) for i in range(first, first + a.generated)]
    t0 = time.time()
    with Pool(a.workers, initializer=_init,
              initargs=(str(a.catalogue), a.calibration, a.dispersion, a.inflation, a.landmark_only,
                        a.clump)) as p:
        res = [r for r in p.map(_job, tasks, chunksize=4) if r[2] > 0]
    if a.only != "all":
        res = [r for r in res if (r[0] == "generated") == (a.only == "generated")]
    print(f"{len(res)} null items ({sum(r[0] != 'generated' for r in res)} benchmark negatives, "
          f"{sum(r[0] == 'generated' for r in res)} generated) in {time.time() - t0:.0f} s")
    cp_tested = [r[7] for r in res if r[7] is not None]
    print(f"chromaprint family (clump {a.clump:g}): {len(cp_tested)} items have sound enough to be searched; "
          "strongest span passing the contrast rule")
    chromaprint = _print_rows(chance_events(cp_tested, ALPHAS))
    cp_unrelated = [r[7] for r in res if r[7] is not None and r[0] != SAME_ARTIST]
    print(f"the same without the same-artist recordings: {len(cp_unrelated)}")
    chromaprint_unrelated = _print_rows(chance_events(cp_unrelated, ALPHAS))
    tested = [r[3].empirical for r in res if r[3].tested]
    print(f"landmark family, empirical FMP (the one reported): {len(tested)} items make an alignment "
          f"with enough pitches to be judged")
    empirical = _print_rows(chance_events(tested, ALPHAS))
    unrelated = [r[3].empirical for r in res if r[3].tested and r[0] != SAME_ARTIST]
    print(f"the same without the same-artist recordings (shared material is not chance): {len(unrelated)}")
    empirical_unrelated = _print_rows(chance_events(unrelated, ALPHAS))
    strongest = [r[3].analytic for r in res]
    print(f"analytic FMP (decisions; every item; calibration factor {a.calibration:g}, "
          f"dispersion {a.dispersion:g})")
    rows = _print_rows(chance_events(strongest, ALPHAS))
    kinds = sorted({r[0] for r in res})
    per_kind = {k: {"items": sum(r[0] == k for r in res),
                    "strongest_log10_fmp": round(min(r[3].analytic for r in res if r[0] == k), 2),
                    "strongest_log10_empirical_fmp": round(min(r[3].empirical for r in res if r[0] == k), 2)}
                for k in kinds}
    for k, v in per_kind.items():
        print(f"  {k:26s} {v['items']:4d} items, strongest log10 FMP {v['strongest_log10_fmp']} analytic, "
              f"{v['strongest_log10_empirical_fmp']} empirical")
    fit = fitted_calibration(strongest, 0.1)
    print(f"calibration factor that would match observed to predicted at alpha 0.1: {fit:.3g}")
    reportable = reportable_rows(res)

    envelope = {} if a.landmark_only else envelope_summary(res, a.inflation, _reader_frames(a.catalogue))
    mixture = {} if a.landmark_only else mixture_summary(res)
    excerpts = {} if a.landmark_only else excerpt_summary(res)
    if a.json:
        a.json.write_text(json.dumps({"chromaprint": [r.__dict__ for r in chromaprint],
                                      "chromaprint_unrelated": [r.__dict__ for r in chromaprint_unrelated],
                                      "clump": a.clump,
                                      "empirical": [r.__dict__ for r in empirical],
                                      "empirical_unrelated": [r.__dict__ for r in empirical_unrelated],
                                      "rows": [r.__dict__ for r in rows], "per_kind": per_kind,
                                      "fitted_at_0.1": fit, "calibration": a.calibration,
                                      "reportable": reportable,
                                      "envelope": envelope, "mixture": mixture,
                                      "excerpts": excerpts}, indent=1))


def _print_rows(rows: list) -> list:
    print(f"{'alpha':>6} {'predicted':>9} {'observed':>8} {'ratio':>6}  within 3x")
    for r in rows:
        seen = max(r.observed, r.predicted) >= 20  # as the other families: 20 events seen or expected
        ok = seen and 1 / 3 <= r.ratio <= 3
        print(f"{r.alpha:6g} {r.predicted:9.1f} {r.observed:8d} {r.ratio:6.2f}  "
              f"{'yes' if ok else ('no' if seen else 'too few events')}")
    return rows


def reportable_rows(res: list) -> dict[str, list[dict[str, float]]]:
    """The same rows for the alignments a landmark match could be made of (evidence spanning
    ``min_span`` of the item), unrelated and same-artist items apart: which alignments chance makes
    that the decision could act on."""
    out = {}
    print("reportable alignments only (evidence spanning min_span of the item):")
    for name, same in (("unrelated", False), ("same-artist", True)):
        rows = chance_events([r[3].reportable for r in res if (r[0] == SAME_ARTIST) == same], ALPHAS)
        out[name] = [r.__dict__ for r in rows]
        print(f"  {name:12s}" + " ".join(f"{r.alpha:g}: {r.observed}/{r.predicted:.1f}" for r in rows))
    return out


def _reader_frames(cat: Path) -> int:
    return CatalogueReader(cat).envelope_frames_live


def envelope_summary(res: list, inflation: float, catalogue_frames: int) -> dict[str, object]:
    """Print the envelope family's tables; return them for the JSON output."""
    per_item: list[EnvelopeTests] = [r[4] for r in res]
    rows = envelope_rows(per_item)
    tested = sum(bool(e.best_tails) for e in per_item)
    n_ali = sum(len(e.best_tails) for e in per_item)
    n_off = sum(len(e.offset_tails) for e in per_item)
    print(f"\nenvelope family: {tested} of {len(res)} null items reach the verifier (Chromaprint "
          f"candidates), {n_ali} candidate alignments, {n_off} distinct offsets; inflation {inflation:g}")
    print(f"{'alpha':>6} {'unit':>9} {'tests':>6} {'m_eff':>5} {'predicted':>9} {'(lower)':>8} "
          f"{'observed':>8} {'items':>5} {'ratio':>6}  within 3x")
    for r in rows:
        seen = max(r.observed, r.predicted) >= 20
        ok = seen and 1 / 3 <= r.ratio <= 3
        low = f"{r.predicted_low:8.1f}" if r.unit == "alignment" else f"{'':8s}"
        print(f"{r.alpha:6g} {r.unit:>9} {r.tests:6d} {r.m_eff:5.2f} {r.predicted:9.1f} {low} "
              f"{r.observed:8d} {r.items:5d} {r.ratio:6.2f}  "
              f"{'yes' if ok else ('no' if seen else 'too few events')}")
    c1 = [c for e in per_item for c in e.c1]
    zp = np.array([p for e in per_item for p in e.z_pairs], dtype=np.float64).reshape(-1, 2)
    measured = float(np.corrcoef(zp.T)[0, 1]) if len(zp) > 2 else float("nan")
    model_c1 = float(np.mean(c1)) if c1 else float("nan")
    print(f"neighbouring offsets (1 frame apart): model correlation of their evidence {model_c1:.3f} "
          f"(mean over alignments), measured correlation of their z scores {measured:.3f} ({len(zp)} pairs)")
    kinds = sorted({r[0] for r in res})
    lf_all = [r[5] for r in res]
    per_kind = {}
    for k in kinds:
        sel = [r for r in res if r[0] == k]
        per_kind[k] = {"items": len(sel), "tested_items": sum(bool(r[4].best_tails) for r in sel),
                       "alignments": sum(len(r[4].best_tails) for r in sel),
                       "alignment_events": [sum(_events(r[4].best_tails, x) for r in sel)
                                            for x in ENV_ALPHAS],
                       "strongest_log10_tail": round(min((t for r in sel for t in r[4].best_tails),
                                                         default=0.0), 2),
                       "strongest_log10_fmp": round(min(r[5] for r in sel), 2)}
        v = per_kind[k]
        print(f"  {k:26s} {v['items']:4d} items, {v['tested_items']:4d} verified, {v['alignments']:5d} "
              f"alignments, events {'/'.join(map(str, v['alignment_events']))}, strongest log10 tail "
              f"{v['strongest_log10_tail']}, log10 FMP {v['strongest_log10_fmp']}")
    print(f"  (events: alignments at or below {', '.join(f'{x:g}' for x in ENV_ALPHAS)})")
    with_events = [{"kind": r[0], "item": r[1], "alignments": len(r[4].best_tails),
                    "alignment_events": [_events(r[4].best_tails, x) for x in ENV_ALPHAS],
                    "offset_events": [_events(r[4].offset_tails, x) for x in ENV_ALPHAS],
                    "strongest_log10_tail": round(min(r[4].best_tails), 2)}
                   for r in res if r[4].best_tails and _events(r[4].best_tails, ENV_ALPHAS[0])]
    max_fmp = EnvelopeMatchConfig().max_fmp
    below = sum(lf <= math.log10(max_fmp) for lf in lf_all)
    print(f"strongest envelope log10 FMP of any null item {min(lf_all, default=0.0):.2f} "
          f"({catalogue_frames} catalogue frames); {below} items at or below max_fmp {max_fmp:g} "
          f"before Chromaprint corroboration")
    return {"inflation": inflation, "catalogue_frames": catalogue_frames, "alphas": list(ENV_ALPHAS),
            "rows": [dict(r.__dict__, ratio=r.ratio, m_eff=r.m_eff) for r in rows],
            "tested_items": tested, "alignments": n_ali, "offsets": n_off,
            "model_c1_mean": model_c1, "measured_z_pair_corr": measured,
            "z_pairs": len(zp), "per_kind": per_kind, "items_at_or_below_max_fmp": below,
            "strongest_log10_fmp": min(lf_all, default=0.0), "items_with_events": with_events}


def _events(tails: list[float], alpha: float) -> int:
    return sum(t <= math.log10(alpha) for t in tails)


if __name__ == "__main__":
    main()
