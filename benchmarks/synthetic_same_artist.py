#!/usr/bin/env python3
"""Unregistered synthetic songs "by the same artists" as the demo's catalogue, scanned against it.

The demo's catalogue (``earmark demo``: DEMO001-DEMO008, artists 0-2) is registered from songs of
``earmark.synth.same_artist_song``; this scans N further songs of those artists (10 s each, composition
seeds FIRST..FIRST+N-1, artist seed % 3), none of them registered, and counts the items with any match,
per artist and per family. Every match is a false one.

Usage: synthetic_same_artist.py CATALOGUE [--first 800] [--n 300] [--workers 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from multiprocessing import Pool
from pathlib import Path

from earmark import synth
from earmark.catalogue.reader import CatalogueReader, open_reader
from earmark.scan.worker import ScanSettings, scan_item
from earmark.sources import ItemData

SR = 22050
_R: dict[str, CatalogueReader] = {}


def _init(cat: str) -> None:
    _R["reader"] = open_reader(cat)


def _one(seed: int) -> dict:
    artist = seed % 3
    x = synth.same_artist_song(seed, artist, duration=10.0, sr=SR)
    r = scan_item(ItemData(f"song-{seed}.wav", samples=x, sample_rate=SR), _R["reader"], ScanSettings())
    return {"seed": seed, "artist": artist,
            "matches": [{"track_id": m.track_id, "family": m.family, "fmp": m.fmp,
                         "excerpt": getattr(m, "excerpt_fmp", None) is not None,  # None before 0.10.0
                         "seconds": round(m.duration, 1)} for m in r.matches]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("catalogue", type=Path)
    ap.add_argument("--first", type=int, default=800)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    with Pool(a.workers, initializer=_init, initargs=(str(a.catalogue),)) as p:
        res = p.map(_one, range(a.first, a.first + a.n))
    per_artist = Counter(r["artist"] for r in res)
    false_items = Counter(r["artist"] for r in res if r["matches"])
    families = Counter(m["family"] + (" (excerpt)" if m["excerpt"] else "")
                       for r in res for m in r["matches"])
    print(f"{len(res)} unregistered same-artist songs, {sum(false_items.values())} with a (false) match")
    for artist in sorted(per_artist):
        print(f"  artist {artist}: {false_items[artist]} of {per_artist[artist]}")
    print(f"  matches by family: {dict(families)}")
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
