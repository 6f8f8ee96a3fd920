#!/usr/bin/env python3
"""How well the experimental landmark family separates copies from non-copies (issue 4).

Registers the benchmark catalogue's landmarks in memory, then for every dataset file reports the
evidence (distinct query anchors among the inliers) of the best hypothesis on a true recording and
of the best hypothesis on any other recording. Prints, per transform, the recall at the evidence
threshold that keeps every negative file and every wrong recording below it.

Usage: landmark_eval.py BENCH_DIR [--limit-per-kind N]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections import defaultdict
from pathlib import Path

from earmark.audio import decode
from earmark.errors import DecodeError
from earmark.fingerprint.landmarks import LandmarkConfig, triplets
from earmark.fingerprint.peaks import extract_peaks
from earmark.match.landmarks import HoughConfig, MemoryIndex, search


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bench", type=Path)
    ap.add_argument("--limit-per-kind", type=int, default=10**9)
    a = ap.parse_args()
    lc = LandmarkConfig()
    ref_cfg, q_cfg, tc = lc.peaks, lc.query_peaks, lc.triplets
    rows = list(csv.DictReader((a.bench / "catalogue.csv").open()))
    fam: dict[str, set[str]] = defaultdict(set)
    if (a.bench / "families.json").exists():
        for g in json.loads((a.bench / "families.json").read_text()):
            for t in g:
                fam[t].update(g)
    t0 = time.process_time()
    recs = {}
    for i, r in enumerate(rows):
        x = decode(a.bench / r["path"], sr=ref_cfg.sample_rate).samples
        recs[i] = (triplets(extract_peaks(x, ref_cfg), tc), len(x) / ref_cfg.sample_rate)
    index = MemoryIndex(recs)
    cpu_reg = time.process_time() - t0
    n_post = sum(len(t) for t, _ in recs.values())
    print(f"registered {len(rows)} recordings, {n_post} postings in {cpu_reg:.0f} s CPU")
    tid = [r["track_id"] for r in rows]
    per: dict[str, list[tuple[int, int]]] = defaultdict(list)  # transform -> (true evidence, false evidence)
    seen: dict[str, int] = defaultdict(int)
    cpu = 0.0
    audio = 0.0
    for line in (a.bench / "truth.jsonl").read_text().splitlines():
        t = json.loads(line)
        if t["kind"] == "bad" or seen[t["transform"]] >= a.limit_per_kind:
            continue
        seen[t["transform"]] += 1
        try:
            x = decode(a.bench / "dataset" / t["file"], sr=ref_cfg.sample_rate).samples
        except DecodeError:
            continue
        c0 = time.process_time()
        dur = len(x) / ref_cfg.sample_rate
        cands = search(extract_peaks(x, q_cfg), dur, index, tc, HoughConfig())
        cpu += time.process_time() - c0
        audio += len(x) / ref_cfg.sample_rate
        truth = {s["track_id"] for s in t.get("segments", [])}
        truth |= {y for z in list(truth) for y in fam.get(z, ())}
        best_true = max((c.anchors for c in cands if tid[c.rec_id] in truth), default=0)
        best_false = max((c.anchors for c in cands if tid[c.rec_id] not in truth), default=0)
        per[t["transform"]].append((best_true, best_false))
    threshold = 1 + max(f for v in per.values() for _, f in v)
    print(f"zero-false-positive evidence threshold: {threshold} anchors; "
          f"query CPU {cpu / max(audio, 1e-9) * 1000:.1f} ms per audio second")
    result = {}
    for k in sorted(per):
        v = per[k]
        if any(tr for tr, _ in v) or not k.startswith("neg"):
            result[k] = round(sum(tr >= threshold for tr, _ in v) / len(v), 3)
    for k, r in result.items():
        print(f"{k:26s} {r:.3f}")
    worst = sorted(((f, k) for k, v in per.items() for _, f in v), reverse=True)[:5]
    print(json.dumps({"threshold": threshold, "recall": result, "strongest_false": worst}))


if __name__ == "__main__":
    main()
