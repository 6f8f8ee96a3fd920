"""Excerpt verification: a copy of part of a recording that fills only part of an item.

A dataset item may hold a few seconds of a recording among other audio (an excerpt spliced into a
clip, a sample under a new piece). The landmark family finds such an excerpt's alignment, but a
landmark-only match must cover half the item to stand at the chance level (``HoughConfig``): over
a short stretch, two recordings of one artist can line up as well as a copy does (a shared ending,
a reused theme), and the landmark evidence alone cannot tell the two apart.

What tells them apart is how completely the item holds the recording there. This module checks a
short landmark alignment peak by peak over the excerpt's extent (:mod:`earmark.match.extent`),
with the mixture verifier's two tests (:mod:`earmark.match.mixture`) on that stretch alone, taken
as an item of its own:

1. **Coincidence.** The recording's peaks the stretch faces, and how many of them it holds, against
   the stretch's own peak occupancy and the pair's own clump size: a false-match probability with
   every distinguishable offset of the catalogue and every stretch the extent could have chosen
   counted (Bonferroni).
2. **Masking.** The share of the recording's loud peaks the stretch lacks although nothing in it is
   loud enough to hide them: a copy, with or without other sound over it, lacks almost none.

and one that the whole-item verifiers do not need: the share of the recording's peaks found must be
a copy's (``min_rate``). Excerpts of a recording keep most of its peaks; related recordings that
share a passage, measured on the benchmark, keep two thirds or fewer of each other's, with more of
the rest unmasked. An item under loud other sound, whose excerpts keep fewer, is left to the other
families (a whole-item mixture) or missed: the excerpt path trades that recall for keeping related
recordings out. See docs/matching.md and docs/benchmarks.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from earmark.errors import ParameterError
from earmark.fingerprint.peaks import PeakConfig, Peaks
from earmark.match import mixture as mix
from earmark.match.extent import ExtentConfig, extend
from earmark.match.model import Match


@dataclass(frozen=True)
class ExcerptConfig:
    """Thresholds of the excerpt check.

    Attributes
    ----------
    max_fmp : float
        Largest false-match probability of the stretch's peak coincidences (the chance level the
        other families are held to).
    max_unmasked : float
        Largest share of the recording's loud peaks the stretch may lack unhidden (the mixture
        verifier's bar).
    min_rate : float
        Smallest share of the recording's peaks the stretch must hold.
    min_peaks : int
        Fewest recording peaks the stretch must face.
    search_s : float
        Offsets within this many seconds of the landmark alignment are searched.
    """

    max_fmp: float = 1e-6
    max_unmasked: float = 0.05
    min_rate: float = 0.75
    min_peaks: int = 40
    search_s: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.max_fmp <= 1.0:
            raise ParameterError(f"max_fmp={self.max_fmp} must be in (0, 1]")
        if not 0.0 <= self.max_unmasked <= 1.0 or not 0.0 <= self.min_rate <= 1.0:
            raise ParameterError("max_unmasked and min_rate must be shares")
        if self.min_peaks < 1 or self.search_s < 0:
            raise ParameterError("min_peaks must be >= 1 and search_s >= 0")


@dataclass(frozen=True)
class ExcerptEvidence:
    """The check's figures for one stretch ``[query_start, query_end)`` of the item."""

    query_start: float
    query_end: float
    compared: int  # recording peaks the stretch faces
    coincident: int  # ... that it holds
    unmasked: float
    log10_fmp: float

    @property
    def rate(self) -> float:
        return self.coincident / max(self.compared, 1)


def evidence(m: Match, item: mix.ItemPeaks, ref: tuple[np.ndarray, np.ndarray, np.ndarray], ref_frames: int,
             pc: PeakConfig, mixture: mix.MixtureMatchConfig, config: ExcerptConfig, *,
             catalogue_frames: float, stretches: float) -> ExcerptEvidence | None:
    """Peak evidence of match ``m`` (an alignment at the recording's own speed and pitch) over its
    span ``[m.query_start, m.query_end)`` of an item prepared by :func:`mixture.item_peaks`, the
    span having been chosen among ``stretches`` of the item; None when the stretch faces no
    recording peaks."""
    fd = pc.frame_duration
    f0 = max(0, int(math.floor(m.query_start / fd)))
    f1 = min(item.n_frames, int(math.ceil(m.query_end / fd)))
    if f1 - f0 < 2:
        return None
    hit = item.hit[f0:f1]
    part = mix.ItemPeaks(hit=hit, occupancy=hit.mean(axis=0), spectrogram=item.spectrogram[f0:f1])
    whole = replace(mixture, min_share=1.0)
    o = int(round((m.ref_start - m.query_start * m.time_factor) / fd)) + f0  # recording frame at f0
    reach = int(round(config.search_s / fd))
    ev = mix.coincidence(part, ref, ref_frames, np.arange(o - reach, o + reach + 1), whole)
    if ev is None or ev.compared == 0:
        return None
    tail = mix.pair_tail(ev, mix.local_dispersion(part, ref, ref_frames, whole))
    tests = max(1.0, catalogue_frames / (2 * mixture.tol_frames + 1)) * max(1.0, stretches)
    return ExcerptEvidence(query_start=f0 * fd, query_end=f1 * fd, compared=ev.compared,
                           coincident=ev.coincident, unmasked=mix.unmasked_share(part, ref, ev.offset, whole),
                           log10_fmp=min(0.0, tail + math.log10(tests)))


def passes(ev: ExcerptEvidence | None, config: ExcerptConfig) -> bool:
    """Whether the stretch holds the recording as a copy does (see the module)."""
    return (ev is not None and ev.compared >= config.min_peaks and ev.rate >= config.min_rate
            and ev.unmasked <= config.max_unmasked and ev.log10_fmp <= math.log10(config.max_fmp))


def admit(m: Match, item: mix.ItemPeaks, peaks: Peaks, duration: float,
          ref: tuple[np.ndarray, np.ndarray, np.ndarray], ref_duration: float, pc: PeakConfig,
          mixture: mix.MixtureMatchConfig, extent: ExtentConfig | None, config: ExcerptConfig, *,
          catalogue_frames: float) -> tuple[Match, ExcerptEvidence] | None:
    """The short landmark match ``m`` checked over its extent (``extent`` None: over its span), with
    the check's evidence in it (``excerpt_fmp``, ``unmasked``, and the peaks compared and found as
    ``n_items`` and ``n_distinct``), and that evidence; None when the check does not pass. ``item``
    is the item as :func:`mixture.item_peaks` prepared it from its ``peaks``."""
    x = m if extent is None else extend(m, peaks, duration, ref, pc, extent, ref_duration=ref_duration)
    # the extent sets the stretch's edges on its grid of bins (else they fall on any frame)
    step = pc.frame_duration if extent is None else extent.bin_s
    ev = evidence(x, item, ref, int(ref_duration / pc.frame_duration), pc, mixture, config,
                  catalogue_frames=catalogue_frames, stretches=(duration / step) ** 2)
    if ev is None or not passes(ev, config):
        return None
    return replace(m, excerpt_fmp=10**ev.log10_fmp, unmasked=ev.unmasked, n_items=ev.compared,
                   n_distinct=ev.coincident), ev


__all__ = ["ExcerptConfig", "ExcerptEvidence", "admit", "evidence", "passes"]
