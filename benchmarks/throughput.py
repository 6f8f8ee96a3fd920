#!/usr/bin/env python3
"""Scan throughput of earmark against ``fpcalc -raw -length 0`` on the same files, side by side.

Measures, over ``--repeats`` alternating runs:
  * audio seconds (ffprobe durations of the decodable files) per CPU second (user + system of the
    whole process tree) for fpcalc over every file and for ``earmark scan --workers 1``;
  * wall-clock time of ``earmark scan`` with 1 and with 2 workers.
Prints medians and ratios as one JSON line (and a table), for docs/benchmarks.md.

Usage: throughput.py DATASET_DIR CATALOGUE [--repeats 3] [--earmark PATH]
Needs ffprobe/fpcalc (Debian ffmpeg, libchromaprint-tools).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def media_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def durations(files: list[Path]) -> float:
    total = 0.0
    for p in files:
        r = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(p)],
            capture_output=True, text=True,
        )
        try:
            total += float(r.stdout.strip())
        except ValueError:
            pass  # broken files have no duration
    return total


def run_fpcalc(files: list[Path]) -> tuple[float, float]:
    c0, t0 = children_cpu(), time.monotonic()
    for p in files:
        # Debian 12's fpcalc exits non-zero on some valid mp3s but still prints the fingerprint
        subprocess.run(["fpcalc", "-raw", "-length", "0", str(p)], capture_output=True)
    return children_cpu() - c0, time.monotonic() - t0


def run_earmark(earmark: str, dataset: Path, catalogue: Path, workers: int) -> tuple[float, float, dict]:
    out = Path(tempfile.mkdtemp(prefix="earmark-bench-"))
    try:
        c0, t0 = children_cpu(), time.monotonic()
        r = subprocess.run(
            [earmark, "scan", str(dataset), "-c", str(catalogue), "-o", str(out / "scan"),
             "--workers", str(workers)],
            capture_output=True, text=True,
        )
        wall = time.monotonic() - t0
        if r.returncode not in (0, 1):
            sys.exit(f"earmark scan failed ({r.returncode}):\n{r.stderr}")
        summary = json.loads((out / "scan" / "summary.json").read_text())
        cpu = children_cpu() - c0
        if workers > 1:  # pool workers are children of the forkserver, not of this process
            cpu = summary["cpu_seconds"]
        return cpu, wall, summary
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("catalogue", type=Path)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--earmark", default=shutil.which("earmark") or "earmark")
    a = ap.parse_args()
    files = media_files(a.dataset)
    audio_s = durations(files)
    rows: dict[str, list[float]] = {k: [] for k in (
        "fpcalc_cpu", "earmark1_cpu", "earmark1_wall", "earmark2_wall", "earmark2_cpu")}
    for i in range(a.repeats):
        cpu, _ = run_fpcalc(files)
        rows["fpcalc_cpu"].append(cpu)
        cpu, wall, _ = run_earmark(a.earmark, a.dataset, a.catalogue, 1)
        rows["earmark1_cpu"].append(cpu)
        rows["earmark1_wall"].append(wall)
        cpu, wall, _ = run_earmark(a.earmark, a.dataset, a.catalogue, 2)
        rows["earmark2_wall"].append(wall)
        rows["earmark2_cpu"].append(cpu)
        print(f"run {i + 1}: " + ", ".join(f"{k}={v[-1]:.1f}s" for k, v in rows.items()), file=sys.stderr)
    med = {k: statistics.median(v) for k, v in rows.items()}
    result = {
        "files": len(files),
        "audio_seconds": round(audio_s, 1),
        "repeats": a.repeats,
        "fpcalc_audio_s_per_cpu_s": round(audio_s / med["fpcalc_cpu"], 1),
        "earmark_audio_s_per_cpu_s": round(audio_s / med["earmark1_cpu"], 1),
        "earmark_vs_fpcalc": round(med["fpcalc_cpu"] / med["earmark1_cpu"], 3),
        "wall_1_worker_s": round(med["earmark1_wall"], 2),
        "wall_2_workers_s": round(med["earmark2_wall"], 2),
        "speedup_2_workers": round(med["earmark1_wall"] / med["earmark2_wall"], 3),
        "raw": {k: [round(x, 2) for x in v] for k, v in rows.items()},
        "cores": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
