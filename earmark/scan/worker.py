"""Scan one item: hash, decode, fingerprint, match. Never raises for a bad item."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field

from earmark.catalogue.reader import CatalogueReader
from earmark.errors import DecodeError, EarmarkError
from earmark.fingerprint.pipeline import fingerprint_samples, fingerprint_source
from earmark.match import envelope as env_match
from earmark.match import excerpt as excerpt_match
from earmark.match import extent as extent_match
from earmark.match import landmarks as lm_match
from earmark.match import mixture as mix_match
from earmark.match.chromaprint import (
    ITEM_SPAN_S,
    MatchConfig,
    alignment_evidence,
    candidate_diagonals,
    match_fingerprint,
    references_agree,
)
from earmark.match.combine import (
    SAME_ALIGNMENT_S,
    SameAudio,
    combine,
    mark_repeats,
    mark_same_audio,
    ref_at,
    same_alignment,
)
from earmark.match.model import Match, NullModel
from earmark.sources import ItemData, Limits, Part, iter_part

log = logging.getLogger(__name__)

#: Whole inputs quieter than this are "silent".
SILENT_DBFS = -60.0
#: Items shorter than this carry too little for either family to judge.
MIN_JUDGE_S = 1.5


@dataclass(frozen=True)
class ScanSettings:
    """Everything that decides a scan's results (recorded in the scan manifest)."""

    match: MatchConfig = field(default_factory=MatchConfig)
    null: NullModel = field(default_factory=NullModel)
    landmarks: lm_match.HoughConfig = field(default_factory=lm_match.HoughConfig)
    envelope: env_match.EnvelopeMatchConfig = field(default_factory=env_match.EnvelopeMatchConfig)
    mixture: mix_match.MixtureMatchConfig = field(default_factory=mix_match.MixtureMatchConfig)
    extent: extent_match.ExtentConfig | None = field(default_factory=extent_match.ExtentConfig)
    excerpt: excerpt_match.ExcerptConfig | None = field(default_factory=excerpt_match.ExcerptConfig)
    silent_dbfs: float = SILENT_DBFS
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True)
class ItemResult:
    """The outcome of scanning one item: exactly one report line."""

    file: str
    status: str  # match | no_match | no_signal | error
    matches: tuple[Match, ...] = ()
    reason: str = ""  # why no_signal / error
    error_kind: str = ""
    sha256: str = ""
    size_bytes: int = 0
    duration_s: float = 0.0
    codec: str = ""
    source_path: str | None = None
    cpu_s: float = 0.0

    def to_record(self, metadata: dict[int, dict[str, object]]) -> dict[str, object]:
        rec: dict[str, object] = {"file": self.file, "status": self.status}
        if self.source_path is not None:
            rec["source_path"] = self.source_path
        if self.status == "error":
            rec["error"] = self.reason
            rec["error_kind"] = self.error_kind
        elif self.status == "no_signal":
            rec["reason"] = self.reason
        rec["matches"] = [{**m.to_dict(), "recording": metadata.get(m.rec_id, {})} for m in self.matches]
        rec["sha256"] = self.sha256
        rec["size_bytes"] = self.size_bytes
        if self.status != "error":
            rec["duration_s"] = round(self.duration_s, 3)
            rec["codec"] = self.codec
        return rec


def scan_part(
    part: Part, reader: CatalogueReader, settings: ScanSettings, *, skip: frozenset[str] = frozenset()
) -> list[ItemResult]:
    """Scan every item of one part (a file, a shard, a table) not in ``skip``: the engine-agnostic
    unit of work that local processes and distributed engines both run."""
    out = []
    for item in iter_part(part, settings.limits):
        if item.id not in skip:
            out.append(scan_item(item, reader, settings))
    return out


def scan_item(item: ItemData, reader: CatalogueReader, settings: ScanSettings) -> ItemResult:
    """Scan one item against the catalogue; every failure becomes an ``error`` result.

    The result's ``cpu_s`` is the CPU time this process spent on the item.
    """
    t0 = time.process_time()
    result = _scan_item(item, reader, settings)
    return dataclasses.replace(result, cpu_s=time.process_time() - t0)


def _scan_item(item: ItemData, reader: CatalogueReader, settings: ScanSettings) -> ItemResult:
    base = {"file": item.id, "size_bytes": item.size, "source_path": item.source_path}
    if item.error:
        return ItemResult(status="error", reason=item.error, error_kind=item.error_kind, **base)
    try:
        base["sha256"] = item.sha256()
    except OSError as e:
        return ItemResult(status="error", reason=f"cannot read: {e.strerror or e}", error_kind="io", **base)
    try:
        qpeaks = reader.landmark_config.query_peaks
        # the mixture verifier's spectrogram, for items some recording can face for min_share; their
        # envelope is computed only if the envelope verifier reads it (few items)
        mix = settings.mixture
        keep = min(mix.max_item_s, reader.longest_duration_s / mix.min_share)
        if item.samples is not None:
            fa = fingerprint_samples(item.samples, item.sample_rate, reader.config, peaks=qpeaks,
                                    envelope=reader.envelope_config, keep_spectrogram_s=keep)
        else:
            src = item.data if item.data is not None else item.path
            fa = fingerprint_source(src, reader.config, name=item.id, peaks=qpeaks,  # type: ignore[arg-type]
                                    envelope=reader.envelope_config, keep_spectrogram_s=keep,
                                    defer_envelope_s=keep)
    except DecodeError as e:
        return ItemResult(status="error", reason=e.reason, error_kind=e.kind, **base)
    except (EarmarkError, MemoryError) as e:
        return ItemResult(status="error", reason=str(e), error_kind="internal", **base)
    fp = fa.fingerprint
    common = dict(base, duration_s=fp.duration, codec=fa.info.codec)
    need = settings.match.min_items + reader.window_width - 1
    if fa.rms_dbfs < settings.silent_dbfs:
        loud = "digital silence" if not math.isfinite(fa.rms_dbfs) else f"{fa.rms_dbfs:.1f} dBFS"
        return ItemResult(status="no_signal", reason=f"silent ({loud})", **common)
    chroma_ok = fp.n_active >= need
    if not chroma_ok and fp.duration < MIN_JUDGE_S:
        why = f"too short: {fp.duration:.2f} s; at least {MIN_JUDGE_S:.1f} s of sound is needed"
        return ItemResult(status="no_signal", reason=why, **common)
    if fp.n_active == 0 and fp.duration >= (need - 1) * fp.item_duration + ITEM_SPAN_S:
        why = f"too little sound: nothing above {reader.config.silence_dbfs:.0f} dBFS"
        return ItemResult(status="no_signal", reason=why, **common)
    cands = candidate_diagonals(fp, reader, settings.match) if chroma_ok else []
    chroma = (match_fingerprint(fp, reader, settings.match, settings.null, candidates=cands)
              if chroma_ok else [])
    lmc = reader.landmark_config
    hc = settings.landmarks
    lm_hits: list[lm_match.Hits] = []
    excerpts: list[Match] = []
    lms = lm_match.match_peaks(fa.peaks, fp.duration, reader, reader.recordings, lmc.triplets, hc,
                               max_fmp=hc.search_fmp, hits_out=lm_hits,
                               excerpts_out=excerpts if settings.excerpt is not None else None)
    matches = combine(chroma, lms, stands_alone=lambda m: hc.stands_alone(m, fp.duration),
                      repeat_stands=lambda m: m.fmp <= hc.max_fmp)
    if matches and fa.spectrogram is not None and fa.peaks is not None and len(fa.peaks):
        matches = _check_weak_places(matches, fa.peaks, fa.spectrogram, fp.duration, reader, settings)
    if len({m.rec_id for m in matches}) > 1:
        matches = mark_same_audio(matches,
                                  lambda a, b, q0, q1: _same_audio(fp, reader, settings, a, b, q0, q1))
    # Chromaprint's candidates as (recording, offset in seconds): what the whole-item verifiers try
    proposals = [(rec, diag * fp.item_duration) for rec, diag, _votes in cands]
    if not matches and proposals and fa.envelope is not None:
        # neither family placed anything: is the whole item a copy too smeared for both (a room)?
        matches = env_match.verify_alignments(
            fa.envelope, fp.duration, proposals, reader.envelope, reader.recordings, reader.envelope_config,
            settings.envelope, catalogue_frames=reader.envelope_frames_live,
            corroborate=lambda rec, off: alignment_evidence(fp, *reader.ref(rec), off, settings.null))
    if not matches and fa.spectrogram is not None and fa.peaks is not None and len(fa.peaks):
        matches = _mixture_matches(fa.peaks, fa.spectrogram, fp.duration, proposals, lm_hits, reader,
                                   settings)
    if excerpts and fa.spectrogram is not None:
        # last: a whole-item match (a copy under louder sound) leaves no stretch to an excerpt
        matches = _check_excerpts(matches, excerpts, fa.peaks, fa.spectrogram, fp.duration, reader, settings,
                                  lambda a, b, q0, q1: _same_audio(fp, reader, settings, a, b, q0, q1))
    if fa.peaks is not None and settings.extent is not None:
        matches = [_extend(m, fa.peaks, fp.duration, reader, settings.extent) for m in matches]
    return ItemResult(status="match" if matches else "no_match", matches=tuple(matches), **common)


def _check_weak_places(matches: list[Match], peaks, spectrogram, duration: float, reader: CatalogueReader,
                       settings: ScanSettings) -> list[Match]:
    """Re-check the place of landmark-only copies admitted at the chance level.

    Such a match rests on a few aligned anchors (a copy under speech keeps few triplets), and a
    recurring phrase of the recording can line a few up at another place than the one copied. Where
    it keeps the recording's speed and pitch, the mixture verifier checks the recording against the
    whole item peak by peak (far more evidence than the anchors) at the match's places and at the
    recording's best place over its whole length. Places it passes that no match holds are added
    (family ``mixture``), and the places are ranked again (:func:`mark_repeats`): the stronger is the
    finding, the other an alternative. A place it confirms, or none, changes nothing.
    """
    hc = settings.landmarks
    weak = {m.rec_id for m in matches
            if m.family == "landmark" and not m.alternative and m.fmp > hc.max_fmp and m.transform == "none"}
    if not weak:
        return matches
    proposals = [(m.rec_id, m.ref_start - m.query_start * m.time_factor) for m in matches if m.rec_id in weak]
    mc, pc = settings.mixture, reader.landmark_config.peaks
    found = mix_match.verify_alignments(
        mix_match.item_peaks(peaks, spectrogram, pc, mc), duration, proposals, reader.peak_map,
        reader.recordings, pc, mc, catalogue_frames=reader.landmark_seconds / pc.frame_duration,
        search=sorted(weak))
    extra = [x for x in found if x.rec_id in weak and not any(same_alignment(x, m) for m in matches)]
    if not extra:
        return matches
    return sorted(mark_repeats(matches + extra), key=lambda m: (m.query_start, m.track_id, m.ref_start))


def _check_excerpts(matches: list[Match], excerpts: list[Match], peaks, spectrogram, duration: float,
                    reader: CatalogueReader, settings: ScanSettings, same: SameAudio) -> list[Match]:
    """``matches`` and the excerpts (short landmark alignments at the recording's own speed and pitch,
    at most ``copy_fmp`` probable by chance) that the peak check admits over their extent
    (:mod:`earmark.match.excerpt`), strongest first, each only where no match already holds most of
    its stretch of the item (there the excerpt is at most material the two recordings share) and is not
    at the alignment of a match of its own recording (the extent reaches it from there). Admitted
    excerpts of two recordings on one stretch are told apart as matches that share audio are
    (:func:`mark_same_audio`, with ``same``)."""
    config, hc = settings.excerpt, settings.landmarks
    todo = sorted((e for e in excerpts if e.fmp <= hc.copy_fmp),
                  key=lambda m: (m.fmp, m.query_start, m.rec_id))
    if config is None or not todo:
        return matches
    pc, mc = reader.landmark_config.peaks, settings.mixture
    held = [(m.query_start, m.query_end) for m in matches]

    def taken(a: float, b: float) -> bool:
        return any(min(b, y) - max(a, x) > 0.5 * (b - a) for x, y in held)

    item = None  # the item's peak grid, made for the first excerpt checked (most items have none)
    admitted: list[Match] = []
    for e in todo:
        mid = 0.5 * (e.query_start + e.query_end)
        own = any(m.rec_id == e.rec_id and abs(ref_at(m, mid) - ref_at(e, mid)) <= SAME_ALIGNMENT_S
                  for m in matches)
        if own or taken(e.query_start, e.query_end):
            continue  # another stretch of a match's own alignment (its extent reaches it), or held
        item = item or mix_match.item_peaks(peaks, spectrogram, pc, mc)
        got = excerpt_match.admit(e, item, peaks, duration, reader.peak_map(e.rec_id),
                                  reader.recording_duration(e.rec_id), pc, mc, settings.extent, config,
                                  catalogue_frames=reader.landmark_seconds / pc.frame_duration)
        if got is not None and not taken(got[1].query_start, got[1].query_end):
            admitted.append(got[0])
    if len({m.rec_id for m in admitted}) > 1:
        admitted = mark_same_audio(admitted, same)
    return sorted(matches + admitted, key=lambda m: (m.query_start, m.track_id, m.ref_start))


#: Families whose span is where their evidence is, not the copy's whole extent (see ``extent``); the
#: whole-item verifiers report the whole item.
_SPAN_FAMILIES = ("landmark", "chromaprint", "chromaprint+landmark")


def _extend(m: Match, peaks, duration: float, reader: CatalogueReader,
            config: extent_match.ExtentConfig) -> Match:
    """``m`` over the copy's whole extent (:func:`earmark.match.extent.extend`)."""
    if m.family not in _SPAN_FAMILIES:
        return m
    return extent_match.extend(m, peaks, duration, reader.peak_map(m.rec_id), reader.landmark_config.peaks,
                               config, ref_duration=reader.recording_duration(m.rec_id))


def _same_audio(fp, reader: CatalogueReader, settings: ScanSettings, a: Match, b: Match, q0: float,
                q1: float) -> bool:
    """Whether matches ``a`` and ``b`` of two recordings place audio the two share over item seconds
    ``[q0, q1]`` (see :func:`earmark.match.combine.mark_same_audio`): their codes agree as a copy's
    do (one master registered twice, a remaster), or one holds a share of the other's spectral peaks
    that only shared material gives (a version built on the other's stems)."""
    ra, rb = ref_at(a, q0), ref_at(b, q0)
    if references_agree(reader.ref(a.rec_id), ra, reader.ref(b.rec_id), rb, (q1 - q0) * a.time_factor,
                        fp.item_duration, settings.match):
        return True
    pc, config = reader.landmark_config.peaks, settings.extent or extent_match.ExtentConfig()
    shift = int(round((a.pitch_st - b.pitch_st) * pc.bins_per_octave / 12))
    agreement = extent_match.peak_agreement(
        reader.peak_map(a.rec_id), ra, reader.peak_map(b.rec_id), rb, (q1 - q0) * a.time_factor,
        b_per_a=b.time_factor / a.time_factor, shift_bins=shift, pc=pc, config=config)
    return config.shares_audio(*agreement)


def _mixture_matches(peaks, spectrogram, duration: float, chroma: list[tuple[int, float]],
                     lm_hits: list[lm_match.Hits], reader: CatalogueReader,
                     settings: ScanSettings) -> list[Match]:
    """Is the whole item a recording under other sound? Checked at the best of Chromaprint's proposed
    alignments ``chroma`` and at the timing-preserving landmark cells most anchors vote for (among the
    hits the landmark search looked up)."""
    mc = settings.mixture
    proposals = chroma[: mc.chroma_proposals] + mix_match.timing_proposals(lm_hits, mc.proposals)
    pc = reader.landmark_config.peaks
    item = mix_match.item_peaks(peaks, spectrogram, pc, mc)
    return mix_match.verify_alignments(
        item, duration, proposals, reader.peak_map, reader.recordings, pc, mc,
        catalogue_frames=reader.landmark_seconds / pc.frame_duration)

