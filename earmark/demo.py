"""The built-in demo: a synthetic label, a synthetic dataset, the whole job end to end.

Everything is generated from fixed seeds (no downloads): a catalogue of songs with rights metadata,
and a dataset that holds excerpts of some of them (re-encoded, quieter, noisy, in a medley, sped up,
slowed down, in a reverberant room, buried under louder music, spliced into other music),
unregistered songs by the same "artists", noise, silence and a broken file.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from earmark import synth
from earmark.catalogue.metadata import read_csv
from earmark.catalogue.store import Catalogue
from earmark.parallel import default_workers
from earmark.scan.run import read_report, scan

SR = 22050
N_SONGS = 8
SONG_SECONDS = 45.0


@dataclass
class DemoResult:
    expected: dict[str, set[str]] = field(default_factory=dict)  # file -> track_ids that must be found
    found: dict[str, set[str]] = field(default_factory=dict)
    missed: list[str] = field(default_factory=list)
    false: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missed and not self.false


def _excerpt(x: np.ndarray, start: float, seconds: float) -> np.ndarray:
    a = int(start * SR)
    return x[a : a + int(seconds * SR)]


def build_demo_data(root: Path) -> dict[str, set[str]]:
    """Write ``root/catalogue`` (audio + tracks.csv) and ``root/dataset``; return the truth."""
    cat_dir, data_dir = root / "catalogue", root / "dataset"
    cat_dir.mkdir(parents=True)
    data_dir.mkdir(parents=True)
    songs = {}
    rows = []
    for i in range(N_SONGS):
        artist = i % 3
        tid = f"DEMO{i + 1:03d}"
        songs[tid] = synth.same_artist_song(100 + i, artist, duration=SONG_SECONDS, sr=SR)
        path = cat_dir / f"{tid}.flac"
        sf.write(path, songs[tid], SR, subtype="PCM_16")
        rows.append({
            "track_id": tid, "isrc": f"XXDEM26{i + 1:05d}", "title": f"Demo Song {i + 1}",
            "artist": f"Demo Artist {artist + 1}", "album": "Demo Album", "rights_holder": "Demo Records",
            "path": path.name,
        })
    with open(cat_dir / "tracks.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)

    truth: dict[str, set[str]] = {}

    def put(name: str, x: np.ndarray, tracks: set[str]) -> None:
        p = data_dir / name
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, np.clip(x, -1, 1), SR, subtype="PCM_16")
        truth[name] = tracks

    put("clips/a.wav", _excerpt(songs["DEMO001"], 12.0, 10.0), {"DEMO001"})
    put("clips/b.flac", 0.3 * _excerpt(songs["DEMO002"], 20.0, 15.0), {"DEMO002"})
    noisy = _excerpt(songs["DEMO003"], 5.0, 12.0)
    put("clips/c_noisy.wav", synth.mix_at_snr(noisy, synth.noise(7, duration=12.0, sr=SR, color="pink"), 10),
        {"DEMO003"})
    medley = np.concatenate([_excerpt(songs[t], 10.0, 12.0) for t in ("DEMO004", "DEMO005", "DEMO006")])
    put("mixes/medley.wav", medley, {"DEMO004", "DEMO005", "DEMO006"})
    put("full/DEMO007.flac", songs["DEMO007"], {"DEMO007"})
    # changed copies only the landmark family finds: "nightcore" (15 % faster) and "slowed" (8 %
    # slower), both resampled so the pitch follows the speed
    fast = _excerpt(songs["DEMO008"], 15.0, 23.0)
    put("edits/d_nightcore.wav", soxr.resample(fast, SR * 1.15, SR).astype(np.float32), {"DEMO008"})
    slow = soxr.resample(_excerpt(songs["DEMO001"], 22.0, 18.4), SR * 0.92, SR)
    put("edits/e_slowed.wav", slow.astype(np.float32), {"DEMO001"})
    # a copy played in a fully wet room (RT60 0.9 s, no direct sound)
    put("edits/f_room.wav", synth.reverberate(_excerpt(songs["DEMO005"], 25.0, 12.0), 11, sr=SR, rt60=0.9),
        {"DEMO005"})
    # a copy buried 9 dB under other (unregistered) music
    under = synth.same_artist_song(600, 2, duration=10.0, sr=SR)
    buried = synth.mix_at_snr(_excerpt(songs["DEMO006"], 30.0, 10.0), under, -9)
    put("edits/g_buried.wav", buried, {"DEMO006"})
    # 3 s of a song spliced into 10 s of other (unregistered) music: an excerpt
    spliced = synth.same_artist_song(703, 2, duration=10.0, sr=SR)
    spliced[int(3.0 * SR): int(6.0 * SR)] = _excerpt(songs["DEMO002"], 32.0, 3.0)
    put("edits/h_excerpt.wav", spliced, {"DEMO002"})
    # negative controls: same artists, not registered; noise; silence; a broken file
    for j in range(3):
        put(f"other/unregistered_{j}.wav", synth.same_artist_song(500 + j, j, duration=20.0, sr=SR), set())
    put("other/noise.wav", synth.noise(3, duration=10.0, sr=SR, color="pink"), set())
    put("other/silence.wav", synth.silence(10.0, sr=SR), set())
    (data_dir / "other" / "broken.mp3").write_text("this is not audio\n")
    truth["other/broken.mp3"] = set()
    return truth


def run_demo(
    out: str | Path, *, workers: int | None = None, echo: Callable[[str], None] = print
) -> DemoResult:
    """Generate the demo data under ``out``, register the catalogue, scan, and check the answer."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    echo(f"generating a synthetic catalogue of {N_SONGS} songs and a dataset in {out}/ ...")
    truth = build_demo_data(out)
    workers = workers or default_workers()
    cat_path, scan_path = out / "catalogue.earmark", out / "scan"
    with Catalogue.open(cat_path, create=True) as cat:
        added = cat.add(read_csv(out / "catalogue" / "tracks.csv"), workers=workers)
    echo(f"registered {added.count('added')} recordings in {cat_path}")
    summary = scan(out / "dataset", cat_path, scan_path, workers=workers, argv=["earmark", "demo"])
    echo(f"scanned {summary.items} items ({summary.audio_seconds / 60:.1f} min of audio) "
         f"in {summary.wall_seconds:.1f} s: {summary.matched} matched, {summary.no_signal} no signal, "
         f"{summary.errors} errors")
    result = DemoResult(expected=truth)
    for rec in read_report(scan_path):
        got = {m["track_id"] for m in rec["matches"]}
        result.found[rec["file"]] = got
        want = truth.get(rec["file"], set())
        result.missed += [f"{rec['file']}: {t}" for t in sorted(want - got)]
        result.false += [f"{rec['file']}: {t}" for t in sorted(got - want)]
        line = f"  {rec['status']:9s} {rec['file']}"
        for m in rec["matches"]:
            who = f"{m['track_id']} '{m['recording']['title']}' by {m['recording']['artist']}"
            line += (f"\n            {who}: "
                     f"item {m['query_start']:.1f}-{m['query_end']:.1f} s = recording "
                     f"{m['ref_start']:.1f}-{m['ref_end']:.1f} s, score {m['score']:.1f}")
            if m.get("transform", "none") != "none":
                line += (f"\n            {m['transform']}: time factor {m['time_factor']:.3f}, "
                         f"pitch {m['pitch_st']:+.2f} semitones ({m['family']})")
            if m.get("family") == "envelope":
                line += (f"\n            whole item in a room: spectral envelope correlation "
                         f"{m['envelope_r']:.2f}, bit error rate {m['ber']:.2f} (envelope)")
            if m.get("family") == "mixture":
                line += (f"\n            whole item under other sound: {m['n_distinct']} of "
                         f"{m['n_items']} recording peaks coincide, {100 * m['unmasked']:.1f} % of its "
                         "loud peaks missing unmasked (mixture)")
            if m.get("excerpt_fmp") is not None:
                line += (f"\n            an excerpt among other audio: {m['n_distinct']} of {m['n_items']} "
                         f"recording peaks found there, {100 * m['unmasked']:.1f} % of its loud peaks "
                         "missing unmasked (excerpt check)")
        if rec["status"] in ("error", "no_signal"):
            line += f"  ({rec.get('error') or rec.get('reason')})"
        echo(line)
    n_want = sum(len(v) for v in truth.values())
    echo(f"found {n_want - len(result.missed)}/{n_want} planted recordings, "
         f"{len(result.false)} false matches; report: {scan_path / 'report.jsonl'}")
    for m in result.missed:
        echo(f"  MISSED {m}")
    for m in result.false:
        echo(f"  FALSE  {m}")
    (out / "demo-truth.json").write_text(json.dumps({k: sorted(v) for k, v in truth.items()}, indent=1))
    return result
