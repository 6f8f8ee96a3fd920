#!/usr/bin/env python3
"""Scan throughput per source shape (folder, WebDataset shards, Parquet) and engine (local, Ray).

For each combination, runs ``earmark scan`` ``--repeats`` times (alternating) and reports medians
of wall time and of audio hours scanned per hour per core (audio seconds / (wall seconds x
workers)); the Ray engine's overhead is its wall time over the local engine's on the same source.
It also checks that every run of a source gives the same report records.

Usage: sources_throughput.py BENCH_DIR CATALOGUE [--repeats 3] [--workers 2] [--engines local,ray]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(earmark: str, source: Path, catalogue: Path, workers: int, engine: str) -> tuple[float, dict, str]:
    out = Path(tempfile.mkdtemp(prefix="earmark-src-"))
    try:
        t0 = time.monotonic()
        r = subprocess.run([earmark, "scan", str(source), "-c", str(catalogue), "-o", str(out / "s"),
                            "--workers", str(workers), "--engine", engine], capture_output=True, text=True)
        wall = time.monotonic() - t0
        if r.returncode not in (0, 1):
            sys.exit(f"scan of {source} with {engine} failed ({r.returncode}):\n{r.stderr}")
        summary = json.loads((out / "s" / "summary.json").read_text())
        digest = hashlib.sha256((out / "s" / "report.jsonl").read_bytes()).hexdigest()
        return wall, summary, digest
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", type=Path)
    ap.add_argument("catalogue", type=Path)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--engines", default="local,ray")
    ap.add_argument("--earmark", default=shutil.which("earmark") or "earmark")
    a = ap.parse_args()
    sources = {"folder": a.bench / "dataset", "wds": a.bench / "wds", "parquet": a.bench / "hf"}
    engines = a.engines.split(",")
    walls: dict[tuple[str, str], list[float]] = {(s, e): [] for s in sources for e in engines}
    audio: dict[str, float] = {}
    digests: dict[tuple[str, str], set[str]] = {(s, e): set() for s in sources for e in engines}
    for i in range(a.repeats):
        for s, path in sources.items():
            for e in engines:
                wall, summary, digest = run(a.earmark, path, a.catalogue, a.workers, e)
                walls[s, e].append(wall)
                audio[s] = summary["audio_seconds"]
                digests[s, e].add(digest)
                print(f"run {i + 1} {s:8s} {e:5s} {wall:6.1f} s", file=sys.stderr)
    rows = {}
    for (s, e), w in walls.items():
        med = statistics.median(w)
        rows[f"{s}/{e}"] = {
            "wall_s": round(med, 2),
            "runs": [round(x, 2) for x in w],
            "audio_h_per_h_per_core": round(audio[s] / (med * a.workers), 1),
            "identical_reports": len(digests[s, e]) == 1,
        }
        if e != "local" and (s, "local") in walls:
            rows[f"{s}/{e}"]["overhead_vs_local"] = round(med / statistics.median(walls[s, "local"]), 3)
    print(json.dumps({"workers": a.workers, "repeats": a.repeats, "results": rows}, indent=1))


if __name__ == "__main__":
    main()
