"""Match values and the null model that turns aligned evidence into a false-match probability."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from scipy.special import log_ndtr

from earmark.errors import ParameterError


@dataclass(frozen=True)
class Match:
    """One catalogue recording found in one span of a dataset item.

    Times are seconds. ``query_*`` are in the dataset item, ``ref_*`` in the recording.

    Attributes
    ----------
    score : float
        ``-log10(fmp)``: 6 means a chance alignment this strong has probability at most 1e-6
        for this item against the whole catalogue.
    fmp : float
        False-match probability under the null model (see ``docs/matching.md``).
    ber : float
        Bit error rate between the item and the recording over the aligned span (0 = identical,
        0.5 = unrelated).
    chance_ber : float
        Bit error rate expected between unrelated audio with the same bit statistics as the two
        sides (0.5 for music; lower for silence, noise and tones, which agree by chance).
    n_items : int
        Aligned fingerprint items that carry evidence (non-silent on both sides).
    n_distinct : int
        Distinct aligned code pairs among them (the evidence the null model counts).
    alternative : bool
        The same stretch of the item also matches a stronger place of this recording (a repeated
        passage): the audio alone cannot tell which place was copied; this is the second one.
    family : str
        Which fingerprint families found this alignment: ``chromaprint``, ``landmark`` or
        ``chromaprint+landmark`` (evidence of both is reported; ``fmp`` is the smaller of the two,
        doubled for having looked twice), or ``envelope`` (a whole-item copy only the spectral
        envelope verifier confirms, e.g. in a reverberant room), or ``mixture`` (a whole-item copy
        under other sound that only the peak-by-peak mixture verifier confirms). A ``landmark``
        match with ``excerpt_fmp`` set is an excerpt: too short to stand on its landmark evidence,
        admitted by the peak check of :mod:`earmark.match.excerpt`.
    time_factor : float
        Recording seconds per item second (1.2: the item is a copy sped up by 20 %).
    pitch_st : float
        Pitch of the item relative to the recording, in semitones.
    transform : str
        Reading of the two factors: ``none``, ``speed`` (pitch follows time), ``tempo`` (pitch
        kept), ``pitch`` (time kept) or ``mixed``.
    anchors, hits : int
        Landmark evidence: distinct item peaks anchoring triplets that agree with the alignment,
        and the agreeing triplet hits (0 when only Chromaprint found the match).
    envelope_r : float or None
        Envelope evidence (family ``envelope``): correlation of the item's and the recording's
        centred spectral envelopes over the whole item; ``n_distinct`` then holds the effective
        number of independent cells the null model counts, ``n_items`` the compared frames.
    unmasked : float or None
        Mixture evidence (family ``mixture``): the share of the recording's loud peaks that the item
        lacks although nothing in it is loud enough to hide them; ``n_items`` then holds the
        recording's peaks the item faces, ``n_distinct`` those the item has a peak at. The same for
        an excerpt (``excerpt_fmp`` set), over the excerpt's stretch of the item.
    excerpt_fmp : float or None
        Excerpt evidence: the false-match probability of the peak coincidences over the stretch of
        the item a short landmark match covers (:mod:`earmark.match.excerpt`). None otherwise.
    empirical_fmp : float or None
        Landmark evidence: the probability of an alignment this strong by chance, measured on the
        item itself (its chance alignments with the catalogue's other recordings, extrapolated to
        this strength; :func:`earmark.match.landmarks.empirical_log10_fmp`). Calibrated on
        non-catalogue audio, where the analytic ``fmp`` of landmark evidence understates chance
        between pieces of music; decisions still use ``fmp`` (docs/matching.md). None without
        landmark evidence.
    shares_audio_with : str or None
        The track id of another registered recording that shares this stretch of audio (a remaster
        and its original, one master registered twice) and agrees better with the item: the item
        holds that one, and this match is reported as an alternative
        (:func:`earmark.match.combine.mark_same_audio`). None otherwise.
    """

    track_id: str
    rec_id: int
    query_start: float
    query_end: float
    ref_start: float
    ref_end: float
    score: float
    fmp: float
    ber: float | None
    chance_ber: float | None
    n_items: int
    n_distinct: int
    alternative: bool = False
    family: str = "chromaprint"
    time_factor: float = 1.0
    pitch_st: float = 0.0
    transform: str = "none"
    anchors: int = 0
    hits: int = 0
    envelope_r: float | None = None
    unmasked: float | None = None
    empirical_fmp: float | None = None
    shares_audio_with: str | None = None
    excerpt_fmp: float | None = None

    def __post_init__(self) -> None:
        if self.query_end < self.query_start or self.ref_end < self.ref_start:
            raise ParameterError(f"match spans must not be reversed: {self}")
        if not 0.0 <= self.fmp <= 1.0:
            raise ParameterError(f"fmp={self.fmp} must be a probability")
        if self.empirical_fmp is not None and not 0.0 <= self.empirical_fmp <= 1.0:
            raise ParameterError(f"empirical_fmp={self.empirical_fmp} must be a probability")

    @property
    def duration(self) -> float:
        return self.query_end - self.query_start

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        for k in ("query_start", "query_end", "ref_start", "ref_end"):
            d[k] = round(d[k], 3)
        d["matched_duration"] = round(self.duration, 3)
        d["score"] = round(self.score, 2)
        d["fmp"] = float(f"{self.fmp:.3g}")
        d["ber"] = None if self.ber is None else round(self.ber, 4)
        d["chance_ber"] = None if self.chance_ber is None else round(self.chance_ber, 4)
        d["time_factor"] = round(self.time_factor, 4)
        d["pitch_st"] = round(self.pitch_st, 3)
        if self.unmasked is not None:
            d["unmasked"] = round(self.unmasked, 4)
        if self.empirical_fmp is not None:
            d["empirical_fmp"] = float(f"{self.empirical_fmp:.3g}")
        if self.excerpt_fmp is not None:
            d["excerpt_fmp"] = float(f"{self.excerpt_fmp:.3g}")
        return d


#: A time factor within this relative distance of 1, or a pitch within this many semitones of 0,
#: or of each other's prediction, counts as unchanged / following.
FACTOR_TOLERANCE = 0.01
PITCH_TOLERANCE_ST = 0.25


def transform_reading(time_factor: float, pitch_st: float) -> str:
    """Name the change from (time factor, pitch shift); robust-matching.md section 0.

    Only two factors are observable, so a reading is an interpretation: ``speed`` when the pitch
    moved as resampling would move it (``12 log2 time_factor``), ``tempo`` when only time changed,
    ``pitch`` when only pitch changed, ``none`` when neither, ``mixed`` otherwise.
    """
    time_same = abs(time_factor - 1.0) <= FACTOR_TOLERANCE
    pitch_same = abs(pitch_st) <= PITCH_TOLERANCE_ST
    if time_same and pitch_same:
        return "none"
    if time_same:
        return "pitch"
    if pitch_same:
        return "tempo"
    if abs(pitch_st - 12 * math.log2(time_factor)) <= PITCH_TOLERANCE_ST:
        return "speed"
    return "mixed"


@dataclass(frozen=True)
class NullModel:
    """Chance agreement of Chromaprint bits between unrelated audio.

    Under the null hypothesis the two aligned item sequences are independent and their bits agree
    half the time (``mu = 0.5``). Only distinct aligned code pairs count as evidence (a held note
    or a tone repeats one comparison many times). Neighbouring items share most of their audio, so
    the spread of the chance bit error rate is ``inflation`` times that of independent bits,
    ``sqrt(mu (1 - mu) / (32 n))``. Degenerate audio whose bits are not fair (silence, noise, tones,
    static textures) is not covered by this model; the matcher rejects it separately by demanding a
    contrast with the span's own chance agreement (``MatchConfig.min_contrast``).

    The false-match probability of a span is the normal tail of its bit error rate below ``mu``,
    multiplied by the number of independent alignments tried: every item of every recording as a
    start, times the number of ``window_items``-long windows in the query (span boundaries are
    chosen from the data, so each window is a fresh chance), divided by ``clump``. Alignments one
    item apart compare codes summarising the same 2.6 s of audio, so chance agreement comes in clumps
    of neighbouring alignments; counting each start as a test (``clump`` 1, earmark 0.7.0 and
    earlier) overstated chance 3-9x at 0.5-0.1 on non-catalogue audio. ``clump`` 6 was chosen on the
    public benchmark's negatives with 1,000 generated songs and checked on the seed 7 benchmark
    with 1,000 other songs (docs/benchmarks.md).
    """

    inflation: float = 3.0
    window_items: int = 80  # about 10 s of items per independent query window
    clump: float = 6.0  # neighbouring alignments per independent chance

    def log10_tail(self, ber: float, n_eff: int, mu: float = 0.5) -> float:
        """log10 P(BER <= ``ber``) over ``n_eff`` distinct item pairs of independent audio."""
        if n_eff <= 0 or mu <= 0:
            return 0.0
        sigma = self.inflation * math.sqrt(mu * (1 - mu) / (32 * n_eff))
        return float(log_ndtr((ber - mu) / sigma)) / math.log(10)

    def n_tests(self, *, catalogue_items: int, query_items: int) -> float:
        return max(1.0, max(1, catalogue_items) * max(1.0, query_items / self.window_items) / self.clump)

    def log10_fmp(
        self, ber: float, n_eff: int, *, mu: float = 0.5, catalogue_items: int, query_items: int
    ) -> float:
        """log10 of the false-match probability (<= 0)."""
        m = self.n_tests(catalogue_items=catalogue_items, query_items=query_items)
        return min(0.0, self.log10_tail(ber, n_eff, mu) + math.log10(m))
