"""Re-check one finding of a scan by an independent route.

``verify_match(scan_dir, item)`` re-reads the item from the scanned source, checks its SHA-256 against
the scan's report, decodes and fingerprints it again, and aligns it exhaustively (every offset, no
index) against each recording the report names for it. When the recording's registered audio file is
at hand and still has its registered SHA-256, it is decoded and fingerprinted again too; otherwise
the fingerprint stored at registration is used, and the result says so. Each reported match must be
reproduced: same recording, offsets within ``tolerance_s``.

Matches the landmark family found are re-checked by the landmark route too: the item's triplets are
computed again and aligned by the Hough search against that one recording alone (its triplets made
again from its audio, or taken from the registered postings), and the alignment -- the recording
time at the item's start -- must agree within ``tolerance_s``; a match both families found passes
when either route reproduces it.

Matches only the envelope verifier found (family ``envelope``: whole items in a reverberant room)
are re-checked by recomputing both envelopes and the Chromaprint corroboration at every offset
within a second of the reported alignment (or at every offset of the recording when checking a
recording the scan did not report), with the scan's thresholds. Matches only the mixture verifier
found (family ``mixture``: whole items under other sound) are re-checked the same way, peak by peak,
against the recording's peaks (picked again from its audio when at hand, else as registered).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from earmark.catalogue.reader import open_reader
from earmark.catalogue.store import peak_map
from earmark.errors import DecodeError, ScanError
from earmark.fileio import sha256_file
from earmark.fingerprint.landmarks import Triplets, triplets
from earmark.fingerprint.pipeline import fingerprint_samples, fingerprint_source
from earmark.match import envelope as env_match
from earmark.match import excerpt as excerpt_match
from earmark.match import landmarks as lm_match
from earmark.match import mixture as mix_match
from earmark.match.chromaprint import (
    MatchConfig,
    alignment_evidence,
    select_spans,
    spans_to_matches,
    verify_diagonal,
)
from earmark.match.extent import ExtentConfig, extend
from earmark.match.model import NullModel
from earmark.scan.worker import ScanSettings
from earmark.sources import ItemData, Limits, Part, discover, iter_part


@dataclass(frozen=True)
class MatchCheck:
    """One reported match and what the re-check found for it."""

    track_id: str
    reported: dict
    reproduced: dict | None
    ok: bool
    detail: str


@dataclass
class RecheckResult:
    item: str
    ok: bool = False
    sha256_ok: bool = False
    checks: list[MatchCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def find_item(source: str, item_id: str, limits: Limits) -> ItemData:
    """Read one item of a source again, by its report identifier."""
    prefix = item_id.split("::", 1)[0] if "::" in item_id else None
    for part in discover(source, all_files=True):
        if not isinstance(part, Part):  # a skipped file
            continue
        if part.name == item_id or (prefix is not None and part.name == prefix):
            for it in iter_part(part, limits):
                if it.id == item_id:
                    return it
    raise ScanError(f"{item_id}: not found in {source}")


def _scan_settings(manifest: dict) -> ScanSettings:
    s = manifest.get("settings") or {}
    return ScanSettings(
        match=MatchConfig(**s.get("match", {})),
        null=NullModel(**{"clump": 1.0, **s.get("null", {})}),  # scans before 0.8.0 counted every start
        landmarks=lm_match.HoughConfig(**s.get("landmarks", {})),
        envelope=env_match.EnvelopeMatchConfig(**s.get("envelope", {})),
        mixture=mix_match.MixtureMatchConfig(**s.get("mixture", {})),
        extent=ExtentConfig(**s["extent"]) if "extent" in s else None,  # scans before 0.9.0: no extent
        excerpt=excerpt_match.ExcerptConfig(**s["excerpt"]) if s.get("excerpt") else None,  # none before 0.10
        silent_dbfs=s.get("silent_dbfs", ScanSettings().silent_dbfs),
        limits=Limits(**s.get("limits", {})),
    )


def verify_match(
    scan_dir: str | os.PathLike,
    item_id: str,
    *,
    track_id: str | None = None,
    catalogue: str | os.PathLike | None = None,
    source: str | None = None,
    tolerance_s: float = 0.1,
) -> RecheckResult:
    """Re-check the matches a scan reported for ``item_id`` (or only those of ``track_id``).

    Raises
    ------
    ScanError
        The scan, the item or the catalogue cannot be found.
    """
    scan_dir = Path(scan_dir)
    try:
        manifest = json.loads((scan_dir / "manifest.json").read_text())
        records = {}
        for line in (scan_dir / "report.jsonl").read_text().splitlines():
            r = json.loads(line)
            records[r["file"]] = r
    except (OSError, json.JSONDecodeError, KeyError) as e:
        raise ScanError(f"{scan_dir}: not a completed scan: {e}") from e
    record = records.get(item_id)
    if record is None:
        raise ScanError(f"{scan_dir}: no item {item_id!r} in the report")
    settings = _scan_settings(manifest)
    reader = open_reader(catalogue or manifest["catalogue"])
    if reader.digest != manifest.get("catalogue_digest"):
        raise ScanError("the catalogue has changed since the scan (its digest differs)")
    result = RecheckResult(item=item_id)
    item = find_item(source or manifest["source"], item_id, settings.limits)
    if item.error:
        raise ScanError(f"{item_id}: cannot be read: {item.error}")
    digest = item.sha256()
    result.sha256_ok = digest == record.get("sha256")
    if not result.sha256_ok:
        result.notes.append(f"the item's SHA-256 is {digest}, not the {record.get('sha256')} the scan "
                            "recorded: it has changed since the scan")
        return result
    qpeaks = reader.landmark_config.query_peaks
    envc = reader.envelope_config
    keep = settings.mixture.max_item_s
    try:
        if item.samples is not None:
            fa = fingerprint_samples(item.samples, item.sample_rate, reader.config, peaks=qpeaks,
                                     envelope=envc, keep_spectrogram_s=keep)
        else:
            src = item.data if item.data is not None else item.path
            fa = fingerprint_source(src, reader.config, name=item_id, peaks=qpeaks,  # type: ignore[arg-type]
                                    envelope=envc, keep_spectrogram_s=keep)
        fp = fa.fingerprint
    except DecodeError as e:
        raise ScanError(f"{item_id}: cannot be decoded: {e.reason}") from e
    wanted = [m for m in record["matches"] if track_id is None or m["track_id"] == track_id]
    if not wanted and track_id is None:
        result.notes.append("the scan reported no match for this item")
        return result
    if not wanted:  # check a recording the scan did not report: any alignment would confirm it
        result.notes.append(f"the scan reported no match with {track_id}; checking for any alignment")
        wanted = [{"track_id": track_id, "query_start": None, "ref_start": None}]
    by_track = {r.track_id: r for r in reader.recordings.values()}
    for tid in sorted({m["track_id"] for m in wanted}):
        rec = by_track.get(tid)
        if rec is None:
            raise ScanError(f"{tid}: not in the catalogue")
        again = None
        audio = Path(rec.source_path)
        if audio.is_file() and sha256_file(audio)[0] == rec.sha256:
            try:
                again = fingerprint_source(audio, reader.config, name=str(audio),
                                           peaks=reader.landmark_config.peaks, envelope=envc)
                result.notes.append(f"{tid}: registered audio re-decoded and re-fingerprinted "
                                    "(SHA-256 verified)")
            except DecodeError as e:
                result.notes.append(f"{tid}: registered audio could not be decoded ({e.reason}); "
                                    "used the fingerprint stored at registration")
        else:
            result.notes.append(f"{tid}: registered audio not at hand with its registered SHA-256; "
                                "used the fingerprint stored at registration")
        if again is not None:
            r_codes, r_active = again.fingerprint.codes, again.fingerprint.active
            r_trips = triplets(again.peaks, reader.landmark_config.triplets)  # type: ignore[arg-type]
            r_env = again.envelope
            r_pk = peak_map(again.peaks, reader.landmark_config.peaks)  # type: ignore[arg-type]
        else:
            r_codes, r_active = reader.ref(rec.rec_id)
            r_trips = reader.landmark_postings(rec.rec_id)
            r_env = reader.envelope(rec.rec_id)
            r_pk = reader.peak_map(rec.rec_id)
        spans = []
        for diag in range(-(len(fp) - 1), len(r_codes)):  # every offset: no index involved
            spans += verify_diagonal(fp, r_codes, r_active, rec.rec_id, diag, settings.match, settings.null,
                                     catalogue_items=reader.n_items_live)
        found = spans_to_matches(select_spans(spans, settings.match), fp, reader.recordings)
        found += _landmark_alignments(fa, r_trips, r_pk, rec, reader, settings)
        if settings.extent is not None:  # the copy's extent, as the scan reports it
            found = [extend(f, fa.peaks, fp.duration, r_pk, reader.landmark_config.peaks, settings.extent,
                            ref_duration=rec.duration_s) for f in found]
        near_s = [m["ref_start"] - m["query_start"] for m in wanted
                  if m["track_id"] == tid and m.get("family") == "envelope"]
        if near_s or wanted[0]["query_start"] is None:
            found += _envelope_alignments(fa, r_codes, r_active, r_env, rec, reader, settings, near_s)
        near_s = [m["ref_start"] - m["query_start"] for m in wanted
                  if m["track_id"] == tid and m.get("family") == "mixture"]
        if near_s or wanted[0]["query_start"] is None:
            found += _mixture_alignments(fa, r_pk, rec, reader, settings, near_s)
        for m in (x for x in wanted if x["track_id"] == tid):
            if m["query_start"] is None:
                near = found
            else:
                near = [f for f in found if _reproduces(f, m, tolerance_s)]
            if near:
                best = near[0].to_dict()
                result.checks.append(MatchCheck(tid, m, best, True, "reproduced"))
            else:
                alt = [f.to_dict() for f in found]
                detail = ("no alignment reproduces it" if not alt else
                          f"closest alignments: {[(a['query_start'], a['ref_start']) for a in alt[:3]]}")
                result.checks.append(MatchCheck(tid, m, alt[0] if alt else None, False, detail))
    result.ok = result.sha256_ok and bool(result.checks) and all(c.ok for c in result.checks)
    return result


def _reproduces(found: object, reported: dict, tolerance_s: float) -> bool:
    """Chromaprint alignments must reproduce the reported alignment where they start (the recording
    time the reported match gives that item time), over a stretch the reported match covers; landmark
    alignments the recording time at the item's start. (Span edges are not compared: they are the
    copy's extent, which a Chromaprint alignment at the recording's own speed cannot follow on a
    tempo-changed copy.)"""
    f = found
    if f.family in ("envelope", "mixture") or reported.get("family") in ("envelope", "mixture"):  # type: ignore[attr-defined]
        return (f.family == reported.get("family")  # type: ignore[attr-defined]
                and abs(f.ref_start - f.query_start - (reported["ref_start"] - reported["query_start"]))  # type: ignore[attr-defined]
                <= tolerance_s)
    if f.family == "chromaprint":  # type: ignore[attr-defined]
        tf = reported.get("time_factor", 1.0)
        there = reported["ref_start"] + (f.query_start - reported["query_start"]) * tf  # type: ignore[attr-defined]
        inside = reported["query_start"] - tolerance_s <= f.query_start < reported["query_end"]  # type: ignore[attr-defined]
        return (reported.get("family", "chromaprint") != "landmark" and inside
                and abs(f.ref_start - there) <= tolerance_s)  # type: ignore[attr-defined]
    if reported.get("family", "chromaprint") == "chromaprint":
        return False
    tf = reported.get("time_factor", 1.0)
    at_zero = reported["ref_start"] - reported["query_start"] * tf
    mine = f.ref_start - f.query_start * f.time_factor  # type: ignore[attr-defined]
    overlap = min(f.query_end, reported["query_end"]) - max(f.query_start, reported["query_start"])  # type: ignore[attr-defined]
    return abs(mine - at_zero) <= tolerance_s and overlap > 0


def _landmark_alignments(fa: object, r_trips: Triplets, r_pk: tuple, rec: object, reader: object,
                         settings: ScanSettings) -> list:
    """Landmark alignments of the item with one recording, by the Hough search over that recording
    alone (no catalogue index), with the excerpts among the shorter ones that the peak check admits
    against the recording's peaks ``r_pk`` (:mod:`earmark.match.excerpt`; scans before 0.10.0 had
    no excerpt check)."""
    lc = reader.landmark_config  # type: ignore[attr-defined]
    index = lm_match.MemoryIndex({rec.rec_id: (r_trips, rec.duration_s)})  # type: ignore[attr-defined]
    hc, config = settings.landmarks, settings.excerpt
    peaks, duration = fa.peaks, fa.fingerprint.duration  # type: ignore[attr-defined]
    excerpts: list = []
    out = lm_match.match_peaks(peaks, duration, index, {rec.rec_id: rec}, lc.triplets, hc,  # type: ignore[attr-defined]
                               max_fmp=hc.search_fmp, excerpts_out=excerpts if config is not None else None)
    if not excerpts or fa.spectrogram is None:  # type: ignore[attr-defined]
        return out
    pc, mc = lc.peaks, settings.mixture
    item = mix_match.item_peaks(peaks, fa.spectrogram, pc, mc)  # type: ignore[attr-defined]
    for e in excerpts:
        got = None if e.fmp > hc.copy_fmp else excerpt_match.admit(
            e, item, peaks, duration, r_pk, rec.duration_s, pc, mc, settings.extent, config,  # type: ignore[attr-defined]
            catalogue_frames=reader.landmark_seconds / pc.frame_duration)  # type: ignore[attr-defined]
        if got is not None:
            out.append(got[0])
    return out


def _envelope_alignments(fa: object, r_codes: object, r_active: object, r_env: object, rec: object,
                         reader: object, settings: ScanSettings, near_s: list[float]) -> list:
    """Envelope alignments of the whole item with one recording: every frame offset within a second
    of each reported alignment, or of the whole recording when ``near_s`` is empty (no index)."""
    ec = reader.envelope_config  # type: ignore[attr-defined]
    fp = fa.fingerprint  # type: ignore[attr-defined]
    n_ref = len(r_env)  # type: ignore[arg-type]
    if near_s:
        reach = int(round(1.0 / ec.frame_s))
        offsets = sorted({o for s in near_s for o in range(int(round(s / ec.frame_s)) - reach,
                                                             int(round(s / ec.frame_s)) + reach + 1)})
    else:
        offsets = list(range(-len(fa.envelope) + 1, n_ref))  # type: ignore[attr-defined]
    proposals = [(rec.rec_id, o * ec.frame_s) for o in offsets]  # type: ignore[attr-defined]
    config = replace(settings.envelope, jitter_frames=0)
    return env_match.verify_alignments(
        fa.envelope, fp.duration, proposals, lambda _rid: r_env, {rec.rec_id: rec},  # type: ignore[attr-defined]
        ec, config, catalogue_frames=reader.envelope_frames_live,  # type: ignore[attr-defined]
        corroborate=lambda _rid, off: alignment_evidence(fp, r_codes, r_active, off, settings.null))


def _mixture_alignments(fa: object, r_pk: tuple, rec: object, reader: object, settings: ScanSettings,
                        near_s: list[float]) -> list:
    """Mixture alignments of the whole item with one recording: every frame offset within a second
    of each reported alignment, or of the whole recording when ``near_s`` is empty (no index)."""
    if fa.spectrogram is None or fa.peaks is None:  # type: ignore[attr-defined]
        return []
    pc = reader.landmark_config.peaks  # type: ignore[attr-defined]
    config = replace(settings.mixture, search_s=1.0)
    if near_s:
        proposals = [(rec.rec_id, s) for s in near_s]  # type: ignore[attr-defined]
    else:  # every offset: proposals two search widths apart
        start = -fa.fingerprint.duration  # type: ignore[attr-defined]
        n = int((rec.duration_s - start) / 2.0) + 2  # type: ignore[attr-defined]
        proposals = [(rec.rec_id, start + 2.0 * i) for i in range(n)]  # type: ignore[attr-defined]
    item = mix_match.item_peaks(fa.peaks, fa.spectrogram, pc, config)  # type: ignore[attr-defined]
    return mix_match.verify_alignments(
        item, fa.fingerprint.duration, proposals, lambda _rid: r_pk, {rec.rec_id: rec},  # type: ignore[attr-defined]
        pc, config, catalogue_frames=reader.landmark_seconds / pc.frame_duration)  # type: ignore[attr-defined]


__all__ = ["MatchCheck", "RecheckResult", "find_item", "verify_match"]
