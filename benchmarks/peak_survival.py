#!/usr/bin/env python3
"""Peak survival per transformation: the share of a recording's spectral peaks that reappear in a
transformed copy where the truth says they should (issue 4's first measurement; robust-matching.md
section 7, "measure first").

For every truth segment of a positive dataset file, peaks of the recording's span are mapped through
the segment's time_factor and pitch_st into the file, and counted as surviving when a peak of the
file lies within ``--frames`` frames and ``--semitones`` semitones. Reported: median survival per
transform, and the peak rates (per second) of references and queries.

Usage: peak_survival.py BENCH_DIR [--limit-per-transform 6] [--ref-nbhd 12,9] [--query-nbhd 12,9]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from earmark.audio import decode
from earmark.fingerprint.peaks import PeakConfig, extract_peaks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bench", type=Path)
    ap.add_argument("--limit-per-transform", type=int, default=6)
    ap.add_argument("--ref-nbhd", default="12,9", help="frames,bins half-sizes for references")
    ap.add_argument("--query-nbhd", default="12,9", help="frames,bins half-sizes for queries")
    ap.add_argument("--frames", type=float, default=3.0)
    ap.add_argument("--semitones", type=float, default=0.67)
    a = ap.parse_args()
    base = PeakConfig()
    rf, rb = map(int, a.ref_nbhd.split(","))
    qf, qb = map(int, a.query_nbhd.split(","))
    ref_cfg = replace(base, nbhd_frames=rf, nbhd_bins=rb)
    q_cfg = replace(base, nbhd_frames=qf, nbhd_bins=qb)
    paths = {}
    for line in (a.bench / "catalogue.csv").read_text().splitlines()[1:]:
        cols = line.split(",")
        paths[cols[0]] = a.bench / cols[-1]
    truth = [json.loads(x) for x in (a.bench / "truth.jsonl").read_text().splitlines()]
    ref_cache: dict[str, np.ndarray] = {}
    per: dict[str, list[float]] = defaultdict(list)
    rates: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    for t in truth:
        if t["kind"] != "positive" or counts[t["transform"]] >= a.limit_per_transform:
            continue
        counts[t["transform"]] += 1
        q = decode(a.bench / "dataset" / t["file"], sr=base.sample_rate).samples
        qp = extract_peaks(q, q_cfg)
        rates["query"].append(len(qp) / max(len(q) / base.sample_rate, 1e-9))
        for s in t["segments"]:
            tid = s["track_id"]
            if tid not in ref_cache:
                ref_cache[tid] = decode(paths[tid], sr=base.sample_rate).samples
            r = ref_cache[tid]
            a0, a1 = int(s["ref_start"] * base.sample_rate), int(s["ref_end"] * base.sample_rate)
            rp = extract_peaks(r[a0:a1], ref_cfg)
            rates["reference"].append(len(rp) / max((a1 - a0) / base.sample_rate, 1e-9))
            inner = (rp.time > 0.5) & (rp.time < (a1 - a0) / base.sample_rate - 0.5)  # away from the cut
            if inner.sum() < 5 or len(qp) == 0:
                per[t["transform"]].append(0.0)
                continue
            tq = s["query_start"] + rp.time[inner] / s["time_factor"]
            pq = rp.pitch[inner] + s["pitch_st"]
            scale = np.array([1 / base.frame_duration / a.frames, 1 / a.semitones])
            tree = cKDTree(np.c_[qp.time, qp.pitch] * scale)
            d, _ = tree.query(np.c_[tq, pq] * scale, distance_upper_bound=1.0)
            per[t["transform"]].append(float(np.mean(np.isfinite(d))))
    out = {k: round(statistics.median(v), 3) for k, v in sorted(per.items())}
    for k, v in out.items():
        print(f"{k:22s} {v:.3f}  (n={len(per[k])})")
    print(json.dumps({"median_survival": out, "peaks_per_s": {k: round(statistics.median(v), 1)
                                                              for k, v in rates.items()},
                      "ref_nbhd": a.ref_nbhd, "query_nbhd": a.query_nbhd}))


if __name__ == "__main__":
    main()
