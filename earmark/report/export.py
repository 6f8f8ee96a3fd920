"""Machine and spreadsheet exports of a scan: JSONL (the master copy) and CSV.

Dataset paths and catalogue metadata come from other parties and are treated as hostile: a CSV cell
that a spreadsheet would run as a formula (starting with ``= + - @``, a tab or a carriage return) is
prefixed with ``'`` so it is shown as text.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence

from earmark.report.findings import Findings

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

MATCH_COLUMNS = (
    "file", "sha256", "track_id", "isrc", "title", "artist", "rights_holder", "query_start", "query_end",
    "ref_start", "ref_end", "matched_duration", "score", "fmp", "empirical_fmp", "excerpt_fmp", "family",
    "ber", "n_items", "time_factor", "pitch_st", "transform", "alternative", "shares_audio_with",
    "source_path",
)
FINDING_COLUMNS = (
    "track_id", "isrc", "title", "artist", "rights_holder", "duration_s", "licensed", "n_items",
    "n_distinct_bytes", "n_matches", "matched_duration_s", "coverage_s", "coverage_fraction",
    "max_item_ref_fraction", "strongest_file", "strongest_score", "longest_file", "longest_duration_s",
    "shares_audio",
)


def neutralise(value: object) -> str:
    """A CSV cell that no spreadsheet evaluates: text starting like a formula gets a leading ``'``."""
    s = "" if value is None else str(value)
    if isinstance(value, bool):
        s = "true" if value else "false"
    elif isinstance(value, (int, float)):
        return s  # numbers are numbers, even negative ones
    return "'" + s if s.startswith(FORMULA_START) else s


def to_csv(rows: Iterable[dict], columns: Sequence[str]) -> str:
    """RFC 4180 CSV text with a header row, every cell neutralised."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([neutralise(r.get(c)) for c in columns])
    return buf.getvalue()


def match_rows(records: Sequence[dict]) -> list[dict]:
    """One flat row per match, sorted by (track_id, file, query_start)."""
    rows = []
    for rec in records:
        for m in rec.get("matches") or []:
            meta = m.get("recording") or {}
            rows.append({
                **{k: v for k, v in m.items() if k != "recording"},
                "file": rec["file"],
                "sha256": rec.get("sha256", ""),
                "source_path": rec.get("source_path"),
                **{k: meta.get(k, "") for k in ("isrc", "title", "artist", "rights_holder")},
            })
    rows.sort(key=lambda r: (r["track_id"], r["file"], r["query_start"]))
    return rows


def finding_rows(findings: Findings) -> list[dict]:
    rows = []
    for f in findings.findings:
        d = f.to_dict()
        d["strongest_file"] = f.strongest_match["file"]
        d["strongest_score"] = f.strongest_match["score"]
        d["longest_file"] = f.longest_match["file"]
        d["longest_duration_s"] = f.longest_match["duration_s"]
        d["shares_audio"] = ";".join(f"{t}:{n}" for t, n in f.shares_audio.items())
        rows.append(d)
    return rows


def jsonl(rows: Iterable[dict]) -> str:
    """Canonical JSON lines: sorted keys, compact separators, one record per line."""
    return "".join(json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
                   for r in rows)


def item_rows(records: Sequence[dict]) -> list[dict]:
    """One row per scanned item (every item, matched or not): hash, locator, status, reason."""
    keep = ("file", "status", "sha256", "size_bytes", "duration_s", "codec", "error", "error_kind",
            "reason", "source_path")
    rows = [{k: rec[k] for k in keep if k in rec} | {"n_matches": len(rec.get("matches") or [])}
            for rec in records]
    return sorted(rows, key=lambda r: r["file"])
