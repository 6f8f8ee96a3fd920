#!/usr/bin/env python3
"""Predicted versus observed chance-match rates of the landmark null model (issue 4, item 4).

Null items: every negative file of the benchmark (same-artist unregistered recordings, distractor
music, speech, noise, silence, tones, sound effects) plus generated audio (seeded synthetic songs of
3-30 s, noise, chords) -- none of it in the catalogue. For each item, the strongest alignment's false-
match probability (FMP); at threshold alpha the model predicts alpha x items chance events, and we
count how many items have their strongest FMP at most alpha. Issue 4 asks for agreement within a
factor of 3 at thresholds loose enough to see at least 20 events.

Usage: null_calibration.py BENCH_DIR CATALOGUE [--generated 200] [--calibration C] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from earmark import synth
from earmark.audio import decode
from earmark.catalogue.reader import CatalogueReader
from earmark.errors import DecodeError
from earmark.fingerprint.peaks import extract_peaks
from earmark.match.calibration import chance_events, fitted_calibration, strongest_log10_fmp
from earmark.match.landmarks import HoughConfig

ALPHAS = (0.5, 0.2, 0.1, 0.05, 0.02)
_R: dict[str, object] = {}


def _init(cat: str, calibration: float, dispersion: float) -> None:
    _R["reader"] = CatalogueReader(cat)
    _R["hough"] = replace(HoughConfig(), calibration=calibration, dispersion=dispersion)


def _generated(i: int, sr: int) -> np.ndarray:
    dur = (3.0, 10.0, 30.0)[i % 3]
    kind = i % 10
    if kind == 8:
        return synth.noise(10_000 + i, duration=dur, sr=sr, color="pink").astype(np.float32)
    if kind == 9:
        t = np.arange(int(dur * sr)) / sr
        f0 = 110 + 7 * i
        return (sum(np.sin(2 * np.pi * f0 * r * t) for r in (1, 1.26, 1.5)) / 6).astype(np.float32)
    return synth.song(50_000 + i, duration=dur, sr=sr)


def _job(task: tuple[str, str, int]) -> tuple[str, str, float, float]:
    kind, ref, i = task
    reader = _R["reader"]
    cfg = reader.landmark_config  # type: ignore[attr-defined]
    sr = cfg.peaks.sample_rate
    if kind == "generated":
        x = _generated(i, sr)
    else:
        try:
            x = decode(ref, sr=sr).samples
        except DecodeError:
            return kind, ref, 0.0, 0.0
    dur = len(x) / sr
    lf = strongest_log10_fmp(extract_peaks(x, cfg.query_peaks), dur, reader, cfg, _R["hough"])  # type: ignore[arg-type]
    return kind, ref, dur, lf


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bench", type=Path)
    ap.add_argument("catalogue", type=Path)
    ap.add_argument("--generated", type=int, default=200)
    ap.add_argument("--calibration", type=float, default=HoughConfig().calibration)
    ap.add_argument("--dispersion", type=float, default=HoughConfig().dispersion)
    ap.add_argument("--only", choices=("all", "generated", "benchmark"), default="all",
                    help="which null items count (fit on one, check on the other)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    tasks = []
    for line in (a.bench / "truth.jsonl").read_text().splitlines():
        t = json.loads(line)
        if t["kind"] == "negative":
            tasks.append((t["transform"], str(a.bench / "dataset" / t["file"]), 0))
    tasks += [("generated", f"generated-{i}", i) for i in range(a.generated)]
    t0 = time.time()
    with Pool(a.workers, initializer=_init, initargs=(str(a.catalogue), a.calibration, a.dispersion)) as p:
        res = [r for r in p.map(_job, tasks, chunksize=4) if r[2] > 0]
    if a.only != "all":
        res = [r for r in res if (r[0] == "generated") == (a.only == "generated")]
    strongest = [r[3] for r in res]
    rows = chance_events(strongest, ALPHAS)
    print(f"{len(res)} null items ({sum(r[0] != 'generated' for r in res)} benchmark negatives, "
          f"{sum(r[0] == 'generated' for r in res)} generated) in {time.time() - t0:.0f} s; "
          f"calibration factor {a.calibration:g}, dispersion {a.dispersion:g}")
    print(f"{'alpha':>6} {'predicted':>9} {'observed':>8} {'ratio':>6}  within 3x")
    for r in rows:
        ok = r.predicted >= 20 and 1 / 3 <= r.ratio <= 3
        print(f"{r.alpha:6g} {r.predicted:9.1f} {r.observed:8d} {r.ratio:6.2f}  "
              f"{'yes' if ok else ('no' if r.predicted >= 20 else 'too few events')}")
    kinds = sorted({r[0] for r in res})
    per_kind = {k: {"items": sum(r[0] == k for r in res),
                    "strongest_log10_fmp": round(min(r[3] for r in res if r[0] == k), 2)} for k in kinds}
    for k, v in per_kind.items():
        print(f"  {k:26s} {v['items']:4d} items, strongest log10 FMP {v['strongest_log10_fmp']}")
    fit = fitted_calibration(strongest, 0.1)
    print(f"calibration factor that would match observed to predicted at alpha 0.1: {fit:.3g}")
    if a.json:
        a.json.write_text(json.dumps({"rows": [r.__dict__ for r in rows], "per_kind": per_kind,
                                      "fitted_at_0.1": fit, "calibration": a.calibration}, indent=1))


if __name__ == "__main__":
    main()
