#!/usr/bin/env python3
"""Write the validation figures a report's methods section quotes (earmark/report/validation.json)
from a benchmark scan scored by the benchmark's score.py (its --json output).

Recall per transformation with a Wilson 95 % interval; the false-positive rate per file bounded by the
rule of three when no negative matched (3 / n at 95 %), else by the Wilson upper bound.

Usage: make_validation.py SCORE_JSON --version X.Y.Z --date YYYY-MM-DD [--out PATH]
           [--confirm SCORE_JSON --confirm-name NAME]

``--confirm`` adds the same figures from a second benchmark built with another seed (other withheld
recordings, other excerpts), on which nothing was chosen: the check that the thresholds generalise.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

Z = 1.959964


def wilson(k: int, n: int) -> list[float]:
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    den = 1 + Z * Z / n
    mid = (p + Z * Z / (2 * n)) / den
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / den
    return [round(max(0.0, mid - half), 3), round(min(1.0, mid + half), 3)]


def fp_upper(k: int, n: int) -> float:
    return round(3 / n, 4) if k == 0 else wilson(k, n)[1]


def figures(s: dict) -> dict:
    """Recall per transformation and false positives per negative kind from a score.py --json."""
    recall, negatives = {}, {}
    for name, v in sorted(s["per_transform"].items()):
        if name.startswith("neg_"):
            negatives[name] = {"files": v["n"], "false_positive_files": v["fp_files"],
                               "fp_rate_upper_95": fp_upper(v["fp_files"], v["n"])}
        elif not name.startswith("bad_") and v.get("n"):
            recall[name] = {"files": v["n"], "recall": round(v["found"] / v["n"], 4),
                            "recall_95ci": wilson(v["found"], v["n"]),
                            "segments": v["seg_n"], "segments_found": v["seg_found"]}
    head = s["headline"]
    return {
        "headline": head,
        "recall_per_transform": recall,
        "negatives": negatives,
        "negative_files": head["negative_files"],
        "false_positive_files": head["false_positive_files"],
        "false_positive_rate_upper_95": fp_upper(head["false_positive_files"], head["negative_files"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("score_json", type=Path)
    ap.add_argument("--version", required=True)
    ap.add_argument("--date", required=True)
    ap.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "earmark/report/validation.json")
    ap.add_argument("--confirm", type=Path, default=None)
    ap.add_argument("--confirm-name", default=None)
    a = ap.parse_args()
    fig = figures(json.loads(a.score_json.read_text()))
    out = {
        "benchmark": "catalogue-in-dataset public-v1 (shared/bench, seed 20261122)",
        "command": "earmark scan DATASET --catalogue CAT --out SCAN; score.py truth.jsonl SCAN/report.jsonl",
        "earmark_version": a.version,
        "measured_on": a.date,
        **fig,
        "note": "Zero events in n files bound the per-file false-positive rate by 3/n (rule of three, 95%).",
    }
    if a.confirm is not None:
        out["confirmation"] = {"benchmark": a.confirm_name or str(a.confirm),
                               **figures(json.loads(a.confirm.read_text()))}
    head = fig["headline"]
    recall = fig["recall_per_transform"]
    a.out.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {a.out}: macro recall {head['macro_recall']}, {len(recall)} transforms")


if __name__ == "__main__":
    main()
