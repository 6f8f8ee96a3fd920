"""The fast version of the envelope half of ``benchmarks/null_calibration.py``: the envelope
verifier's chance tail against generated audio that is not in the (synthetic) session catalogue."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.special import ndtr

from earmark import synth

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "null_calibration.py"


@pytest.fixture(scope="module")
def nullcal():
    """benchmarks/null_calibration.py as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("null_calibration", _PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_pair_tail_and_bounds_on_the_best_of_correlated_offsets(nullcal):
    z = 2.5
    p = float(ndtr(-z))
    assert nullcal.pair_tail(z, 0.0) == pytest.approx(p * p, rel=1e-9)
    assert nullcal.pair_tail(z, 0.999999) == pytest.approx(p, rel=1e-2)
    offsets = list(range(5))
    # identical offsets: one test; independent ones: five
    lo, hi = nullcal.max_tail_bounds(1e-3, offsets, lambda d: 0.999999)
    assert lo == pytest.approx(1e-3, rel=1e-2) and hi == pytest.approx(1e-3, rel=1e-2)
    lo, hi = nullcal.max_tail_bounds(1e-3, offsets, lambda d: 0.0)
    assert lo <= 1 - (1 - 1e-3) ** 5 <= hi and hi == pytest.approx(5e-3, rel=1e-2)
    # an AR(1)-like chain of correlated offsets: the bounds bracket a simulation
    rng = np.random.default_rng(5)
    c = np.array([[0.85 ** abs(i - j) for j in range(5)] for i in range(5)])
    zmax = (rng.standard_normal((400_000, 5)) @ np.linalg.cholesky(c).T).max(axis=1)
    lo, hi = nullcal.max_tail_bounds(1e-2, offsets, lambda d: 0.85 ** d)
    assert lo < np.mean(zmax >= -nullcal.ndtri(1e-2)) < hi * 1.03


def test_envelope_chance_events_agree_within_a_factor_of_3(nullcal, reader):
    """Unrelated generated songs against the session catalogue: every candidate alignment
    Chromaprint proposes, each at the verifier's jittered offsets. Where at least 20 chance events
    are observed, observed and predicted counts agree within a factor of 3, per offset (the tail
    alone) and per alignment (the best of its jittered offsets, m_eff from the model)."""
    sr = reader.config.sample_rate
    per_item = []
    for i in range(24):
        x = synth.song(7300 + i, duration=20.0, sr=sr)
        tests, lf = nullcal.item_envelope_tests(x, sr, reader, alphas=(1e-1, 3e-2, 1e-2))
        per_item.append(tests)
        assert lf > np.log10(1e-6)  # none would be reported
    every = nullcal.envelope_rows(per_item)
    rows = [r for r in every if r.observed >= 20]
    assert {r.unit for r in rows} == {"offset", "alignment"}, every
    for r in rows:
        assert 1 / 3 <= r.ratio <= 3, r
        if r.unit == "alignment":
            assert 1 < r.m_eff < 5


def test_mixture_chance_events_agree_within_a_factor_of_3(nullcal, reader):
    """The mixture verifier's coincidence tail, at each pair's own dispersion, on unrelated generated
    songs at random whole-item offsets of every session recording: where at least 20 chance events
    are observed, observed and predicted counts agree within a factor of 3."""
    sr = reader.landmark_config.peaks.sample_rate
    per_item = [nullcal.item_mixture_tests(synth.song(8100 + i, duration=10.0, sr=sr), sr, reader, seed=i)
                for i in range(16)]
    tests = sum(t.tests for t in per_item)
    assert tests >= 16 * 6 * nullcal.MIX_OFFSETS * 0.9  # every item against every recording
    judged = 0
    for j, alpha in enumerate(nullcal.MIX_ALPHAS):
        observed = sum(t.events[j] for t in per_item)
        if observed >= 20:
            judged += 1
            assert 1 / 3 <= observed / (alpha * tests) <= 3, (alpha, observed, alpha * tests)
    assert judged >= 1
    # none of them passes the masking test at a level anywhere near a reported match's
    assert sum(t.masked_events[-1] for t in per_item) == 0


@pytest.mark.parametrize("clump", [6.0, 0.1, 40.0])
def test_chromaprint_chance_events_agree_within_a_factor_of_3(reader, clump):
    """The fast version of the Chromaprint family's table in ``benchmarks/null_calibration.py``:
    unrelated generated songs (and some pink noise) against the session catalogue, the strongest
    span of each that passes the contrast rule. With the model's clump (6) every threshold from 0.5
    to 0.1 with 20 events seen or expected agrees within a factor of 3; a model ten times too
    cautious (clump 0.1) or far too confident (clump 40) fails. Below 0.1 generated songs meet the
    generated catalogue by near-miss more often than real music meets a real one (one generator's
    scale, tempo grid and timbres), as in the landmark family's fast test, so 0.05 is not judged."""
    from earmark.fingerprint.pipeline import fingerprint_samples
    from earmark.match.calibration import chance_events, strongest_chromaprint_log10_fmp
    from earmark.match.chromaprint import MatchConfig
    from earmark.match.model import NullModel

    sr = reader.config.sample_rate
    null = NullModel(clump=clump)
    strongest = []
    for i in range(160):
        x = (synth.song(9100 + i, duration=(6.0, 12.0, 24.0)[i % 3], sr=sr) if i % 8
             else synth.noise(9100 + i, duration=8.0, sr=sr, color="pink").astype(np.float32))
        lf = strongest_chromaprint_log10_fmp(fingerprint_samples(x, sr, reader.config).fingerprint, reader,
                                             MatchConfig(), null)
        if lf is not None:
            strongest.append(lf)
    rows = [r for r in chance_events(strongest, (0.5, 0.2, 0.1))
            if max(r.observed, r.predicted) >= 20]
    assert len(rows) >= 2
    within = all(1 / 3 <= r.ratio <= 3 for r in rows)
    assert within == (clump == 6.0)
