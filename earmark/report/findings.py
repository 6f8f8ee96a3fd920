"""Findings per recording, per rights holder and in total, derived from a scan's report records.

What rights holders ask: which of our works are in this dataset, in how many items, how much of each
work (the union of matched recording intervals over all items), under which transformations, and what
the strongest evidence is. Everything here is a pure function of the report's records and the
catalogue's metadata, so a reader can re-derive it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

from earmark.catalogue.licences import Licence
from earmark.match.combine import as_strong
from earmark.match.envelope import EnvelopeMatchConfig


def merge_intervals(
    intervals: Iterable[tuple[float, float]], *, gap: float = 0.0
) -> list[tuple[float, float]]:
    """Union of closed intervals, sorted; intervals closer than ``gap`` seconds are joined."""
    out: list[list[float]] = []
    for a, b in sorted((min(a, b), max(a, b)) for a, b in intervals):
        if out and a <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


#: A whole-item envelope match's place is not known either when an alternative's Chromaprint bits agree
#: as well, within the margin the matchers treat as equal (the coarse envelope ranks the repeats of a
#: loop by small differences). Otherwise :func:`earmark.match.combine.as_strong` decides.
_ENVELOPE_BER_MARGIN = EnvelopeMatchConfig().repeat_ber_margin


@dataclass(frozen=True)
class Finding:
    """One catalogue recording found in the scanned dataset."""

    track_id: str
    isrc: str
    title: str
    artist: str
    rights_holder: str
    duration_s: float
    n_items: int  # items holding at least one match of it
    n_distinct_bytes: int  # distinct SHA-256 among those items
    n_matches: int
    matched_duration_s: float  # sum of item-side matched seconds
    coverage_s: float  # length of the union of matched recording intervals (each copy once)
    coverage_fraction: float
    coverage_intervals: tuple[tuple[float, float], ...]  # the placed ones (see ambiguous_places)
    max_item_ref_fraction: float  # the best single item's share of the recording
    longest_match: dict
    strongest_match: dict
    transforms: dict[str, int]
    items: tuple[str, ...]
    licensed: bool = False
    licences: tuple[int, ...] = ()
    # recording intervals of copies whose place is not known: the recording repeats the passage and
    # another place matches about as well; each such copy is at one of them (counted once in
    # coverage_s, at its best place, but not drawn or listed as a covered interval)
    ambiguous_places: tuple[tuple[float, float], ...] = ()
    # other registered recordings that share audio with this one where it was found (a remaster
    # and its original), by track id: the number of this finding's items they also match, less well
    # (their matches there are alternatives with ``shares_audio_with`` naming this recording)
    shares_audio: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["coverage_intervals"] = [list(x) for x in self.coverage_intervals]
        d["ambiguous_places"] = [list(x) for x in self.ambiguous_places]
        d["items"] = list(self.items)
        d["licences"] = list(self.licences)
        d["schema"] = "earmark.finding/1"
        return d


@dataclass(frozen=True)
class HolderTotals:
    rights_holder: str
    recordings_registered: int
    recordings_found: int
    recordings_unlicensed: int
    items: int
    matched_duration_s: float


@dataclass(frozen=True)
class Findings:
    """Everything a report states about a scan: per recording, per rights holder, totals."""

    findings: tuple[Finding, ...]
    holders: tuple[HolderTotals, ...]
    totals: dict[str, object] = field(default_factory=dict)


def _near_equal_places(m: dict, alternatives: Sequence[dict]) -> list[dict]:
    """Of the alternative places in primary match ``m``'s item (same recording), those sharing more
    than half of the shorter item span with evidence :func:`~earmark.match.combine.as_strong` as its own."""
    out = []
    for x in alternatives:
        shared = min(m["query_end"], x["query_end"]) - max(m["query_start"], x["query_start"])
        shorter = min(m["query_end"] - m["query_start"], x["query_end"] - x["query_start"])
        close = as_strong(m, x)
        if m.get("family") == "envelope" and None not in (m.get("ber"), x.get("ber")):
            close = close or x["ber"] <= m["ber"] + _ENVELOPE_BER_MARGIN  # the harmony agrees as well
        if shared > 0.5 * shorter and close:
            out.append(x)
    return out


def _r3(x: float) -> float:
    return round(float(x), 3)


def build_findings(
    records: Sequence[dict],
    catalogue: Sequence[dict],
    *,
    licences: Sequence[Licence] = (),
    dataset: str = "",
    date: str = "",
) -> Findings:
    """Aggregate a scan's report records by catalogue recording.

    Parameters
    ----------
    records : sequence of dict
        The scan's report lines (``file``, ``status``, ``sha256``, ``matches``...).
    catalogue : sequence of dict
        Every registered recording: ``track_id, isrc, title, artist, rights_holder, duration_s``.
    licences : sequence of Licence
        Licences recorded in the catalogue; findings they cover are reported as licensed.
    dataset, date : str
        The dataset's name (matched against licence patterns) and the scan date ``YYYY-MM-DD``.
    """
    meta = {r["track_id"]: r for r in catalogue}
    per: dict[str, list[tuple[dict, dict]]] = defaultdict(list)
    # a match that yields to a recording it shares the audio with is that recording's finding
    shared: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for rec in records:
        for m in rec.get("matches") or []:
            if m.get("shares_audio_with"):
                shared[m["shares_audio_with"]][m["track_id"]].add(rec["file"])
            else:
                per[m["track_id"]].append((rec, m))
    findings = []
    for tid in sorted(per):
        pairs = per[tid]
        info = meta.get(tid) or pairs[0][1].get("recording", {})
        dur = float(info.get("duration_s") or 0.0)
        items = sorted({rec["file"] for rec, _ in pairs})
        # a repeated passage matched at a second place is one copy, not two: coverage counts the first
        primary = [(rec, m) for rec, m in pairs if not m.get("alternative")]
        intervals = merge_intervals((m["ref_start"], m["ref_end"]) for _, m in primary)
        covered = sum(b - a for a, b in intervals)
        # ... and where another place matches about as well, which place it is is not known
        alternatives: dict[int, list[dict]] = defaultdict(list)  # by item: no pass over every pair
        for rec, m in pairs:
            if m.get("alternative"):
                alternatives[id(rec)].append(m)
        rivals = {id(m): _near_equal_places(m, alternatives.get(id(rec), ())) for rec, m in primary}
        placed = merge_intervals((m["ref_start"], m["ref_end"]) for _, m in primary if not rivals[id(m)])
        ambiguous = merge_intervals((x["ref_start"], x["ref_end"]) for _, m in primary if rivals[id(m)]
                                    for x in [m, *rivals[id(m)]])
        per_item_cov: dict[str, float] = defaultdict(float)
        for f in items:
            iv = merge_intervals((m["ref_start"], m["ref_end"]) for rec, m in primary if rec["file"] == f)
            per_item_cov[f] = sum(b - a for a, b in iv)
        longest_rec, longest = max(pairs, key=lambda p: (p[1]["query_end"] - p[1]["query_start"],
                                                         p[1]["score"]))
        strongest_rec, strongest = max(
            pairs, key=lambda p: (p[1]["score"], -(p[1]["ber"] if p[1].get("ber") is not None else 0.5)))
        transforms: dict[str, int] = defaultdict(int)
        for _, m in pairs:
            transforms[m.get("transform") or "none"] += 1
        covering = tuple(lic.licence_id for lic in licences if lic.covers(tid, dataset, date))
        findings.append(Finding(
            track_id=tid,
            isrc=str(info.get("isrc", "")),
            title=str(info.get("title", "")),
            artist=str(info.get("artist", "")),
            rights_holder=str(info.get("rights_holder", "")),
            duration_s=_r3(dur),
            n_items=len(items),
            n_distinct_bytes=len({rec.get("sha256") for rec, _ in pairs}),
            n_matches=len(pairs),
            matched_duration_s=_r3(sum(m["query_end"] - m["query_start"] for _, m in pairs)),
            coverage_s=_r3(covered),
            coverage_fraction=round(min(1.0, covered / dur), 4) if dur else 0.0,
            coverage_intervals=tuple((round(a, 1), round(b, 1)) for a, b in placed),
            ambiguous_places=tuple((round(a, 1), round(b, 1)) for a, b in ambiguous),
            max_item_ref_fraction=round(min(1.0, max(per_item_cov.values()) / dur), 4) if dur else 0.0,
            longest_match=_match_ref(longest_rec, longest),
            strongest_match=_match_ref(strongest_rec, strongest),
            transforms=dict(sorted(transforms.items())),
            items=tuple(items),
            licensed=bool(covering),
            licences=covering,
            shares_audio={t: len(fs) for t, fs in sorted(shared[tid].items())},
        ))
    holders = []
    by_holder: dict[str, list[dict]] = defaultdict(list)
    for r in catalogue:
        by_holder[str(r.get("rights_holder", ""))].append(r)
    for holder in sorted(by_holder):
        found = [f for f in findings if f.rights_holder == holder]
        holders.append(HolderTotals(
            rights_holder=holder,
            recordings_registered=len(by_holder[holder]),
            recordings_found=len(found),
            recordings_unlicensed=sum(not f.licensed for f in found),
            items=len({i for f in found for i in f.items}),
            matched_duration_s=_r3(sum(f.matched_duration_s for f in found)),
        ))
    statuses: dict[str, int] = defaultdict(int)
    for rec in records:
        statuses[rec["status"]] += 1
    totals = {
        "items_scanned": len(records),
        "items_matched": statuses["match"],
        "items_no_match": statuses["no_match"],
        "items_no_signal": statuses["no_signal"],
        "items_error": statuses["error"],
        "recordings_registered": len(catalogue),
        "recordings_found": len(findings),
        "recordings_unlicensed": sum(not f.licensed for f in findings),
        "items_with_unlicensed_recordings": len({i for f in findings if not f.licensed for i in f.items}),
        "matched_duration_s": _r3(sum(f.matched_duration_s for f in findings)),
    }
    return Findings(findings=tuple(findings), holders=tuple(holders), totals=totals)


def _match_ref(rec: dict, m: dict) -> dict:
    return {
        "file": rec["file"],
        "sha256": rec.get("sha256", ""),
        "query_start": m["query_start"],
        "query_end": m["query_end"],
        "ref_start": m["ref_start"],
        "ref_end": m["ref_end"],
        "duration_s": _r3(m["query_end"] - m["query_start"]),
        "score": m["score"],
        "fmp": m.get("fmp"),
        "empirical_fmp": m.get("empirical_fmp"),
        "ber": m.get("ber"),
        "family": m.get("family", "chromaprint"),
        "anchors": m.get("anchors", 0),
        "envelope_r": m.get("envelope_r"),
        "unmasked": m.get("unmasked"),
        # the peak check's counts: a mixture match's, or an excerpt's (a landmark match it admitted)
        "peaks_compared": m.get("n_items", 0) if m.get("unmasked") is not None else None,
        "peaks_coincident": m.get("n_distinct", 0) if m.get("unmasked") is not None else None,
        "excerpt_fmp": m.get("excerpt_fmp"),
        "time_factor": m.get("time_factor", 1.0),
        "pitch_st": m.get("pitch_st", 0.0),
    }
