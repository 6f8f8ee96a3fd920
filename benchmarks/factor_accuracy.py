#!/usr/bin/env python3
"""Time factor and pitch shift accuracy of a scan report against the benchmark truth (issue 4).

For every truth segment of the pitch, tempo and speed transforms that the report found (a match of
the right recording overlapping the segment), compares the match's ``time_factor`` with the truth's
(within 1 %) and its ``pitch_st`` (within 0.25 semitone), and checks the transform reading.

Usage: factor_accuracy.py BENCH_DIR REPORT_JSONL
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

KINDS = ("pitch_", "tempo_", "speed_")


def expected_reading(tf: float, st: float) -> str:
    from earmark.match.model import transform_reading

    return transform_reading(tf, st)


def main() -> None:
    bench, report = Path(sys.argv[1]), Path(sys.argv[2])
    truth = {}
    for line in (bench / "truth.jsonl").read_text().splitlines():
        t = json.loads(line)
        truth[t["file"]] = t
    per: dict[str, list[tuple[bool, bool, bool]]] = defaultdict(list)
    for line in report.read_text().splitlines():
        r = json.loads(line)
        t = truth.get(r.get("file", ""))
        if not t or not t["transform"].startswith(KINDS):
            continue
        for seg in t["segments"]:
            ms = [m for m in r.get("matches", [])
                  if m["track_id"] == seg["track_id"] and not m.get("alternative")
                  and m["query_start"] <= seg["query_end"] + 1 and m["query_end"] >= seg["query_start"] - 1]
            if not ms:
                continue
            m = max(ms, key=lambda m: m["score"])
            tf_ok = abs(m["time_factor"] / seg["time_factor"] - 1) <= 0.01
            st_ok = abs(m["pitch_st"] - seg["pitch_st"]) <= 0.25
            rd_ok = m.get("transform") == expected_reading(seg["time_factor"], seg["pitch_st"])
            per[t["transform"]].append((tf_ok, st_ok, rd_ok))
    allv = [x for v in per.values() for x in v]
    print(f"{'transform':18s} found  factor<=1%  pitch<=0.25st  both  reading")
    for k in sorted(per):
        v = per[k]
        n = len(v)
        print(f"{k:18s} {n:5d}  {sum(a for a, _, _ in v) / n:10.3f}  {sum(b for _, b, _ in v) / n:13.3f}  "
              f"{sum(a and b for a, b, _ in v) / n:4.3f}  {sum(c for _, _, c in v) / n:7.3f}")
    n = max(len(allv), 1)
    summary = {"found_segments": len(allv), "both_within": round(sum(a and b for a, b, _ in allv) / n, 4),
               "factor_within_1pct": round(sum(a for a, _, _ in allv) / n, 4),
               "pitch_within_0.25st": round(sum(b for _, b, _ in allv) / n, 4),
               "reading_agrees": round(sum(c for _, _, c in allv) / n, 4)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
