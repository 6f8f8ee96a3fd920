#!/usr/bin/env python3
"""verify-match on matches of a scan chosen by seed: each must be reproduced (offsets within 0.1 s),
and must fail when checked against a wrong recording or after one byte of the item changes.

Usage: verify_matches.py SCAN_DIR [--n 20] [--seed 1] [--family F]
The byte-change check copies each chosen item (a local file) to a scratch folder. With ``--family``,
every item with a (non-alternative) match that family found is checked instead of a sample.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
from pathlib import Path

from earmark.scan.recheck import verify_match
from earmark.scan.run import read_report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scan_dir", type=Path)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--family", help="check every item with a match this family found")
    a = ap.parse_args()
    records = read_report(a.scan_dir)
    manifest = json.loads((a.scan_dir / "manifest.json").read_text())
    source = Path(manifest["source"])
    matched = [r for r in records if r["status"] == "match" and "::" not in r["file"]]
    if a.family:
        chosen = [r for r in matched
                  if any(m.get("family") == a.family and not m.get("alternative") for m in r["matches"])]
    else:
        chosen = random.Random(a.seed).sample(matched, min(a.n, len(matched)))
    all_tracks = sorted({m["track_id"] for r in records for m in r["matches"]})
    res = {"reproduced": 0, "wrong_recording_failed": 0, "changed_byte_failed": 0, "n": len(chosen)}
    for r in chosen:
        ok = verify_match(a.scan_dir, r["file"])
        res["reproduced"] += ok.ok
        own = {m["track_id"] for m in r["matches"]}
        wrong = random.Random(r["file"]).choice([t for t in all_tracks if t not in own])
        res["wrong_recording_failed"] += not verify_match(a.scan_dir, r["file"], track_id=wrong).ok
        with tempfile.TemporaryDirectory() as tmp:
            dst = Path(tmp) / r["file"]
            dst.parent.mkdir(parents=True)
            shutil.copyfile(source / r["file"], dst)
            data = bytearray(dst.read_bytes())
            data[len(data) // 2] ^= 0x01
            dst.write_bytes(bytes(data))
            res["changed_byte_failed"] += not verify_match(a.scan_dir, r["file"], source=tmp).ok
        print(r["file"], "reproduced" if ok.ok else f"NOT reproduced: {[c.detail for c in ok.checks]}")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
