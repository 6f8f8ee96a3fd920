#!/usr/bin/env python3
"""Coverage of each registered recording found by a scan, against the benchmark's truth.

For every recording the truth places in the dataset: the share of its duration inside the union of
matched reference intervals (earmark's findings) versus the share inside the union of the truth's
segments; and how far any reported covered interval lies outside the truth's intervals (a copy of a
passage the recording repeats, matched about equally well at several places, is reported in
``ambiguous_places`` rather than as a covered interval, and is not checked).
Issue 5's target: every recording within 5 percentage points, nothing more than 1 s outside. Truth
intervals are clipped to the recording's registered duration (a 30 s clip of a 21 s recording).

Usage: coverage_check.py BENCH_DIR SCAN_DIR CATALOGUE
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from earmark.catalogue.store import Catalogue
from earmark.report.findings import build_findings, merge_intervals
from earmark.scan.run import read_report


def outside(interval: tuple[float, float], truth: list[tuple[float, float]]) -> float:
    """Seconds of ``interval`` farthest from any truth interval (0 if inside one)."""
    a, b = interval
    uncovered = [(a, b)]
    for ta, tb in truth:
        nxt = []
        for ua, ub in uncovered:
            if tb <= ua or ta >= ub:
                nxt.append((ua, ub))
                continue
            if ua < ta:
                nxt.append((ua, ta))
            if tb < ub:
                nxt.append((tb, ub))
        uncovered = nxt
    return max((ub - ua for ua, ub in uncovered), default=0.0)


def main() -> None:
    bench, scan_dir, cat_path = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    fam: dict[str, set[str]] = defaultdict(set)
    fpath = bench / "families.json"
    if fpath.exists():
        for group in json.loads(fpath.read_text()):
            for t in group:
                fam[t].update(group)
    truth: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for line in (bench / "truth.jsonl").read_text().splitlines():
        for s in json.loads(line).get("segments", []):
            truth[s["track_id"]].append((s["ref_start"], s["ref_end"]))
    with Catalogue.open(cat_path) as cat:
        recs = [{"track_id": r.track_id, **r.metadata()} for r in cat.recordings()]
    dur = {r["track_id"]: r["duration_s"] for r in recs}
    found = {f.track_id: f for f in build_findings(read_report(scan_dir), recs).findings}
    rows = []
    for tid in sorted(truth):
        # a clip longer than a short recording runs past its end in the truth (make_bench writes the
        # clip's length); only the recording's own seconds can be covered
        t_iv = merge_intervals([(max(0.0, a), min(b, dur[tid])) for a, b in truth[tid] if a < dur[tid]])
        t_cov = sum(b - a for a, b in t_iv) / dur[tid]
        f = found.get(tid)
        e_cov = f.coverage_fraction if f else 0.0
        allowed = merge_intervals([iv for x in fam.get(tid, {tid}) | {tid} for iv in truth.get(x, [])])
        worst = max((outside(iv, allowed) for iv in (f.coverage_intervals if f else ())), default=0.0)
        rows.append({"track_id": tid, "truth": round(t_cov, 4), "earmark": round(e_cov, 4),
                     "diff_pp": round(100 * (e_cov - t_cov), 2), "max_outside_s": round(worst, 2)})
    within = sum(abs(r["diff_pp"]) <= 5 for r in rows)
    ok_out = sum(r["max_outside_s"] <= 1.0 for r in rows)
    for r in rows:
        print(f"{r['track_id']}  truth {r['truth']:.3f}  earmark {r['earmark']:.3f}  "
              f"diff {r['diff_pp']:+6.2f} pp  outside {r['max_outside_s']:.2f} s")
    print(json.dumps({"recordings": len(rows), "within_5pp": within, "outside_le_1s": ok_out,
                      "max_abs_diff_pp": max(abs(r["diff_pp"]) for r in rows),
                      "max_outside_s": max(r["max_outside_s"] for r in rows)}))


if __name__ == "__main__":
    main()
