"""Checking the null models against chance: predicted versus observed chance-match rates.

If the false-match probability (FMP) of the strongest alignment an unrelated item produces is
calibrated, then over many unrelated items the share whose strongest FMP is at most ``alpha`` is
``alpha``: the *predicted* number of chance events at threshold ``alpha`` is ``alpha * n_items``
(``n_items``: the items judged at all, see :class:`Strongest`).
:func:`chance_events` counts the *observed* ones. Used by ``benchmarks/null_calibration.py`` (the
benchmark's negatives and generated audio) and by the test suite (generated audio only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from earmark.catalogue.reader import CatalogueReader
from earmark.fingerprint.base import Fingerprint
from earmark.fingerprint.landmarks import LandmarkConfig
from earmark.fingerprint.peaks import Peaks
from earmark.match.chromaprint import MatchConfig, candidate_diagonals, verify_diagonal
from earmark.match.landmarks import HoughConfig, LandmarkIndex, search
from earmark.match.model import NullModel


@dataclass(frozen=True)
class CalibrationRow:
    """Predicted and observed chance events at one threshold."""

    alpha: float
    n_items: int
    predicted: float
    observed: int

    @property
    def ratio(self) -> float:
        """observed / predicted (1 is perfect calibration)."""
        return self.observed / self.predicted if self.predicted > 0 else float("inf")


@dataclass(frozen=True)
class Strongest:
    """log10 FMPs of the strongest alignments of one item (0 where it has none).

    ``analytic``: by the analytic model (:func:`~earmark.match.landmarks.log10_fmp`);
    ``reportable``: the same among alignments whose evidence spans ``min_span`` of the item (what a
    landmark match needs); ``empirical``: by the empirical null
    (:func:`~earmark.match.landmarks.empirical_log10_fmp`). ``tested``: the item made at least one
    alignment with enough distinct pitches to be judged at all (silence, noise and tones mostly do
    not; an item that is never tested can have no chance event, so it is not counted)."""

    analytic: float
    reportable: float
    empirical: float
    tested: bool


def strongest_log10_fmp(peaks: Peaks, duration: float, index: LandmarkIndex, config: LandmarkConfig,
                        hough: HoughConfig) -> float:
    """log10 FMP of the strongest alignment one item makes with the catalogue (0 if none)."""
    return strongest_log10_fmps(peaks, duration, index, config, hough).analytic


def strongest_log10_fmps(peaks: Peaks, duration: float, index: LandmarkIndex, config: LandmarkConfig,
                         hough: HoughConfig) -> Strongest:
    """The strongest alignments one item makes with the catalogue, by each measure."""
    cands = search(peaks, duration, index, config.triplets, hough)
    min_span = hough.min_span(duration)
    return Strongest(
        analytic=min((c.log10_fmp for c in cands), default=0.0),
        reportable=min((c.log10_fmp for c in cands if c.query_end - c.query_start >= min_span), default=0.0),
        empirical=min((c.log10_empirical_fmp for c in cands if c.log10_empirical_fmp is not None),
                      default=0.0),
        tested=any(c.pitches >= hough.min_pitches for c in cands))


def chance_events(strongest: np.ndarray | list[float], alphas: tuple[float, ...]) -> list[CalibrationRow]:
    """Observed versus predicted chance events for the strongest log10 FMP of each unrelated item."""
    s = np.asarray(strongest, dtype=np.float64)
    return [CalibrationRow(alpha=a, n_items=len(s), predicted=a * len(s),
                           observed=int(np.sum(s <= np.log10(a)))) for a in alphas]


def fitted_calibration(strongest: np.ndarray | list[float], alpha: float) -> float:
    """The multiplier of the FMP that makes observed equal predicted at ``alpha`` (the
    ``alpha``-quantile of the strongest FMPs, divided by ``alpha``)."""
    s = np.sort(np.asarray(strongest, dtype=np.float64))
    if len(s) == 0:
        return 1.0
    q = 10 ** float(np.quantile(s, alpha))
    return alpha / q if q > 0 else 1.0


def strongest_chromaprint_log10_fmp(fp: Fingerprint, reader: CatalogueReader, config: MatchConfig,
                                    null: NullModel) -> float | None:
    """log10 FMP of the strongest Chromaprint span one item makes with the catalogue (0 if none),
    among the spans of the candidates the matcher verifies that pass its contrast rule (the null
    model is of fair bits; degenerate audio -- silence, noise, tones -- is the contrast rule's to
    reject, and is not chance in the model's sense). The bit error rate threshold is a decision
    threshold like the FMP's own, so it is not applied. None when the item has too little sound for
    Chromaprint to search (the scan's gate): it is not tested."""
    if fp.n_active < config.min_items + reader.window_width - 1:
        return None
    best = 0.0
    for rec_id, diag, _votes in candidate_diagonals(fp, reader, config)[: config.max_verified]:
        r_codes, r_active = reader.ref(rec_id)
        for s in verify_diagonal(fp, r_codes, r_active, rec_id, diag, config, null,
                                 catalogue_items=reader.n_items_live):
            if s.chance_ber - s.ber >= config.min_contrast:
                best = min(best, s.log10_fmp)
    return best
