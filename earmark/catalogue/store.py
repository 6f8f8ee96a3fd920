"""A catalogue on disk: rights metadata in SQLite, fingerprints and FAISS indexes in segments.

Layout of a catalogue directory::

    manifest.json            format, version, fingerprint parameters, segments (a readable mirror)
    catalogue.sqlite         recordings (rights metadata, SHA-256 of the audio) and segments
    segments/NNNNNN/         one per `add`: immutable once written
        manifest.json        format, params_id, counts, SHA-256 of every file
        codes.npy            uint32 items of every recording in the segment, concatenated
        active.npy           bool, False for silent items
        rec_ids.npy          int64 recording id per recording in the segment
        rec_starts.npy       int64 offsets of each recording in codes.npy (n_recordings + 1)
        win_item.npy         int64 item offset of each indexed window
        windows.faissbin     FAISS binary index over the windows
        lm_keys.npy          uint32 landmark triplet keys, sorted (postings of the landmark family)
        lm_distinct.npy, lm_starts.npy
                             uint32 distinct keys and int64 row of each one's first posting (with the
                             number of postings appended): what a lookup searches. Segments written
                             before 0.8.0 lack them, and the reader derives them from lm_keys.npy
        lm_rec.npy           int32 recording id of each posting
        lm_t1.npy, lm_p1.npy, lm_span.npy
                             float32 anchor time (s), anchor pitch (semitones), triplet span (s)
        env.npy              uint8 spectral envelopes (frames x bands) of every recording, concatenated
        env_starts.npy       int64 offsets of each recording in env.npy (n_recordings + 1)
        pk_frame.npy, pk_bin.npy, pk_level.npy
                             the reference peaks of every recording, concatenated: uint32 frame,
                             uint8 log-frequency bin, float16 level (dB) at the peak's cell
        pk_starts.npy        int64 offsets of each recording in the pk_ arrays (n_recordings + 1)

Growth is incremental: each `add` writes a new segment and commits its rows in one SQLite
transaction (the commit point: a segment not recorded in SQLite is ignored). Removal marks the
recording removed; search filters it out. Arrays are memory-mapped on read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from earmark import __version__
from earmark.catalogue.licences import Licence
from earmark.catalogue.metadata import CORE_FIELDS, RecordingSpec
from earmark.errors import CatalogueError, DecodeError, ParamsMismatchError
from earmark.fileio import atomic_write_text, sha256_file, utc_now
from earmark.fingerprint import chromaprint, envelope, landmarks
from earmark.fingerprint.base import FORMAT_VERSION, Fingerprint
from earmark.fingerprint.peaks import PeakConfig, Peaks, peak_cells
from earmark.fingerprint.pipeline import fingerprint_source
from earmark.index import FaissBinaryIndex, pack_windows, window_ok
from earmark.index.postings import Postings
from earmark.parallel import imap_unordered

log = logging.getLogger(__name__)

CATALOGUE_FORMAT = "earmark-catalogue"
CATALOGUE_VERSION = 4
#: Landmark keys holding more postings than this (or than the segment's 99.9th percentile of
#: posting-list lengths, whichever is larger) are stop-listed: they say little and cost much.
LANDMARK_KEY_CAP = 40
SEGMENT_FORMAT = "earmark-segment"
#: Items per indexed window (8 Chromaprint items = 256 bits, about one second).
WINDOW_WIDTH = 8

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    name TEXT PRIMARY KEY,
    family TEXT NOT NULL,
    params_id TEXT NOT NULL,
    n_recordings INTEGER NOT NULL,
    n_items INTEGER NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS recordings (
    rec_id INTEGER PRIMARY KEY,
    track_id TEXT NOT NULL,
    isrc TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL DEFAULT '',
    artist TEXT NOT NULL DEFAULT '',
    album TEXT NOT NULL DEFAULT '',
    rights_holder TEXT NOT NULL DEFAULT '',
    duration_s REAL NOT NULL,
    n_items INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    source_path TEXT NOT NULL,
    extra_json TEXT NOT NULL DEFAULT '{}',
    segment TEXT NOT NULL REFERENCES segments(name),
    added_at TEXT NOT NULL,
    removed_at TEXT
);
CREATE TABLE IF NOT EXISTS licences (
    licence_id INTEGER PRIMARY KEY,
    licensee TEXT NOT NULL,
    dataset_pattern TEXT NOT NULL,
    track_ids TEXT NOT NULL DEFAULT '',
    start TEXT NOT NULL DEFAULT '',
    "end" TEXT NOT NULL DEFAULT '',
    territory TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    added_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS live_track ON recordings(track_id) WHERE removed_at IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS live_sha ON recordings(sha256) WHERE removed_at IS NULL;
"""





def _save_npy(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, arr, allow_pickle=False)
    os.replace(tmp, path)


@dataclass(frozen=True)
class Recording:
    """A registered recording as stored in the catalogue."""

    rec_id: int
    track_id: str
    isrc: str
    title: str
    artist: str
    album: str
    rights_holder: str
    duration_s: float
    n_items: int
    sha256: str
    size_bytes: int
    source_path: str
    extra: dict[str, str]
    segment: str
    added_at: str
    removed_at: str | None = None

    def metadata(self) -> dict[str, object]:
        """Rights metadata as it goes into a report."""
        d = {k: getattr(self, k) for k in CORE_FIELDS}
        d["duration_s"] = round(self.duration_s, 3)
        d["sha256"] = self.sha256
        if self.extra:
            d["extra"] = dict(self.extra)
        return d


@dataclass(frozen=True)
class AddOutcome:
    """What happened to one recording given to :meth:`Catalogue.add`."""

    track_id: str
    path: str
    status: str  # "added" | "duplicate" | "error"
    detail: str = ""


@dataclass
class AddResult:
    outcomes: list[AddOutcome] = field(default_factory=list)
    segment: str | None = None

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)


@dataclass(frozen=True)
class _Fingerprinted:
    spec: RecordingSpec
    sha256: str = ""
    size: int = 0
    fingerprint: Fingerprint | None = None
    triplets: landmarks.Triplets | None = None
    envelope: np.ndarray | None = None
    peaks: Peaks | None = None
    error: str = ""


def _fingerprint_spec(
    args: tuple[RecordingSpec, chromaprint.ChromaprintConfig, landmarks.LandmarkConfig,
                envelope.EnvelopeConfig],
) -> _Fingerprinted:
    spec, config, lm, env = args
    try:
        digest, size = sha256_file(spec.path)
        fa = fingerprint_source(spec.path, config, name=str(spec.path), peaks=lm.peaks, envelope=env)
    except DecodeError as e:
        return _Fingerprinted(spec, error=f"{e.kind}: {e.reason}")
    except OSError as e:
        return _Fingerprinted(spec, error=f"cannot read: {e.strerror or e}")
    if fa.fingerprint.n_active < WINDOW_WIDTH:
        secs = fa.fingerprint.duration
        return _Fingerprinted(spec, error=f"too short or silent to fingerprint ({secs:.1f} s)")
    trips = landmarks.triplets(fa.peaks, lm.triplets)  # type: ignore[arg-type]
    return _Fingerprinted(spec, sha256=digest, size=size, fingerprint=fa.fingerprint, triplets=trips,
                          envelope=fa.envelope, peaks=fa.peaks)


def peak_map(peaks: Peaks, config: PeakConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A recording's peaks as stored: the spectrogram frame and log-frequency bin of each peak's
    cell (its interpolated position rounded) and the level there, in time order."""
    frame, bins = peak_cells(peaks, config)
    level = peaks.level if peaks.level is not None else np.zeros(len(peaks), np.float32)
    return frame.astype(np.uint32), bins.astype(np.uint8), np.asarray(level).astype(np.float16)


def stop_listed(keys: np.ndarray) -> np.ndarray:
    """Mask of postings whose key is too common (see ``LANDMARK_KEY_CAP``)."""
    if len(keys) == 0:
        return np.zeros(0, bool)
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    cap = max(LANDMARK_KEY_CAP, float(np.percentile(counts, 99.9)))
    return counts[inverse] > cap


def _family_config(root: Path, manifest: dict, family: str, build: Callable[[dict], object]) -> Any:
    """A family's parameters from the manifest, refused unless this version computes the same
    ``params_id`` from them."""
    fam = manifest["families"].get(family, {})
    try:
        config = build(fam["config"])
    except (KeyError, TypeError) as e:
        raise CatalogueError(f"{root}: {family} parameters missing or unreadable: {e}") from e
    if config.params_id != fam.get("params_id"):  # type: ignore[attr-defined]
        raise ParamsMismatchError(
            f"{root}: catalogue was made with {family} parameters {fam.get('params_id')}, which this "
            f"earmark version computes as {config.params_id}; re-register the catalogue"  # type: ignore[attr-defined]
        )
    return config


class Catalogue:
    """A catalogue directory. Open (or create) with :meth:`open`."""

    def __init__(self, root: Path, config: chromaprint.ChromaprintConfig, manifest: dict,
                 landmark_config: landmarks.LandmarkConfig | None = None,
                 envelope_config: envelope.EnvelopeConfig | None = None):
        self.root = root
        self.config = config
        self.landmark_config = landmark_config or landmarks.LandmarkConfig()
        self.envelope_config = envelope_config or envelope.EnvelopeConfig()
        self.manifest = manifest
        self._db = sqlite3.connect(root / "catalogue.sqlite", isolation_level=None)
        self._db.row_factory = sqlite3.Row

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        root: str | os.PathLike,
        *,
        create: bool = False,
        config: chromaprint.ChromaprintConfig | None = None,
    ) -> Catalogue:
        """Open the catalogue at ``root``; with ``create=True`` make it if it does not exist.

        Raises
        ------
        CatalogueError
            The directory is not a catalogue (or is unreadable).
        ParamsMismatchError
            ``config`` is given and differs from the catalogue's fingerprint parameters.
        """
        root = Path(root)
        mpath = root / "manifest.json"
        if not mpath.exists():
            if not create:
                raise CatalogueError(f"{root}: not an earmark catalogue (no manifest.json)")
            if root.exists() and any(root.iterdir()):
                raise CatalogueError(f"{root}: exists, is not empty and is not a catalogue")
            cfg = config or chromaprint.ChromaprintConfig()
            lmc = landmarks.LandmarkConfig()
            envc = envelope.EnvelopeConfig()
            root.mkdir(parents=True, exist_ok=True)
            (root / "segments").mkdir(exist_ok=True)
            manifest = {
                "format": CATALOGUE_FORMAT,
                "format_version": CATALOGUE_VERSION,
                "fingerprint_format_version": FORMAT_VERSION,
                "families": {
                    chromaprint.FAMILY: {"params_id": cfg.params_id, "config": asdict(cfg)},
                    landmarks.FAMILY: {"params_id": lmc.params_id, "config": asdict(lmc),
                                       "key_cap": LANDMARK_KEY_CAP},
                    envelope.FAMILY: {"params_id": envc.params_id, "config": asdict(envc)},
                },
                "window_width": WINDOW_WIDTH,
                "created_at": utc_now(),
                "created_by": f"earmark {__version__}",
            }
            cat = cls(root, cfg, manifest, lmc, envc)
            cat._db.executescript(_SCHEMA)
            cat._write_manifest()
            return cat
        try:
            manifest = json.loads(mpath.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise CatalogueError(f"{mpath}: unreadable manifest: {e}") from e
        if manifest.get("format") != CATALOGUE_FORMAT:
            raise CatalogueError(f"{root}: not an earmark catalogue (format={manifest.get('format')!r})")
        if manifest.get("format_version") != CATALOGUE_VERSION:
            raise CatalogueError(
                f"{root}: catalogue format version {manifest.get('format_version')} is not supported "
                f"(this earmark reads version {CATALOGUE_VERSION}); re-register its recordings into a new "
                "catalogue with this version"
            )
        fam = manifest["families"][chromaprint.FAMILY]
        stored = chromaprint.ChromaprintConfig(**fam["config"])
        if stored.params_id != fam["params_id"]:
            raise ParamsMismatchError(
                f"{root}: catalogue was made with fingerprint parameters {fam['params_id']}, which this "
                f"earmark version computes as {stored.params_id}; re-register the catalogue"
            )
        if config is not None and config.params_id != stored.params_id:
            raise ParamsMismatchError(
                f"{root}: catalogue fingerprints use parameters {stored.params_id}, "
                f"not the requested {config.params_id}"
            )
        lmc = _family_config(root, manifest, landmarks.FAMILY, landmarks.LandmarkConfig.from_dict)
        envc = _family_config(root, manifest, envelope.FAMILY, lambda d: envelope.EnvelopeConfig(**d))
        if not (root / "catalogue.sqlite").exists():
            raise CatalogueError(f"{root}: catalogue.sqlite is missing")
        return cls(root, stored, manifest, lmc, envc)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Catalogue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reading
    @staticmethod
    def _row_to_recording(r: sqlite3.Row) -> Recording:
        fields = {k: r[k] for k in r.keys() if k != "extra_json"}
        return Recording(**fields, extra=json.loads(r["extra_json"]))

    def recordings(self, *, include_removed: bool = False) -> list[Recording]:
        """Registered recordings ordered by track_id."""
        where = "" if include_removed else "WHERE removed_at IS NULL"
        rows = self._db.execute(f"SELECT * FROM recordings {where} ORDER BY track_id, rec_id")
        return [self._row_to_recording(r) for r in rows]

    def get(self, track_id: str) -> Recording:
        """The live recording with this track_id (or ISRC)."""
        r = self._db.execute(
            "SELECT * FROM recordings WHERE removed_at IS NULL AND (track_id = ? OR isrc = ?) "
            "ORDER BY track_id = ? DESC LIMIT 1",
            (track_id, track_id, track_id),
        ).fetchone()
        if r is None:
            raise CatalogueError(f"{self.root}: no recording {track_id!r} in the catalogue")
        return self._row_to_recording(r)

    def segment_names(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT name FROM segments ORDER BY name")]

    def stats(self) -> dict[str, object]:
        recs = self.recordings()
        size = sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())
        return {
            "recordings": len(recs),
            "hours": round(sum(r.duration_s for r in recs) / 3600, 4),
            "segments": len(self.segment_names()),
            "size_bytes": size,
            "params_id": self.config.params_id,
            "digest": self.digest(),
        }

    def digest(self) -> str:
        """SHA-256 identifying what a scan matches against: parameters, segments and live recordings.

        Licences are not part of it: they change what a report flags, not what a scan finds.
        """
        h = hashlib.sha256()
        h.update(self.config.params_id.encode())
        h.update(self.landmark_config.params_id.encode())
        for r in self._db.execute("SELECT name, manifest_sha256 FROM segments ORDER BY name"):
            h.update(f"segment {r[0]} {r[1]}\n".encode())
        for r in self._db.execute(
            "SELECT track_id, sha256 FROM recordings WHERE removed_at IS NULL ORDER BY track_id"
        ):
            h.update(f"recording {r[0]} {r[1]}\n".encode())

        return h.hexdigest()

    # ------------------------------------------------------------------ changing
    def add(
        self,
        specs: Iterable[RecordingSpec],
        *,
        workers: int = 1,
        progress: Callable[[AddOutcome], None] | None = None,
    ) -> AddResult:
        """Fingerprint and register recordings; files already registered (same SHA-256) are skipped.

        Bad files get an ``error`` outcome and the rest are still added. All new recordings go
        into one new segment, committed atomically.
        """
        specs = sorted(specs, key=lambda s: s.track_id)
        result = AddResult()
        live_sha = {r[0]: r[1] for r in self._db.execute(
            "SELECT sha256, track_id FROM recordings WHERE removed_at IS NULL")}
        live_tid = set(live_sha.values())
        done: list[_Fingerprinted] = []

        def note(o: AddOutcome) -> None:
            result.outcomes.append(o)
            if progress is not None:
                progress(o)

        todo = []
        for s in specs:
            if s.track_id in live_tid:
                note(AddOutcome(s.track_id, str(s.path), "duplicate", "track_id already registered"))
            else:
                todo.append((s, self.config, self.landmark_config, self.envelope_config))
        batch_sha: dict[str, str] = {}
        for fp in imap_unordered(_fingerprint_spec, todo, workers=workers):
            s = fp.spec
            if fp.error:
                note(AddOutcome(s.track_id, str(s.path), "error", fp.error))
            elif fp.sha256 in live_sha or fp.sha256 in batch_sha:
                other = live_sha.get(fp.sha256) or batch_sha[fp.sha256]
                note(AddOutcome(s.track_id, str(s.path), "duplicate", f"same audio file as {other}"))
            else:
                batch_sha[fp.sha256] = s.track_id
                done.append(fp)
        if not done:
            return result
        done.sort(key=lambda f: f.spec.track_id)
        result.segment = self._write_segment(done)
        for fp in done:
            note(AddOutcome(fp.spec.track_id, str(fp.spec.path), "added"))
        self._write_manifest()
        return result

    def _next_segment_name(self) -> str:
        names = self.segment_names() + [p.name for p in (self.root / "segments").iterdir()]
        nums = [int(n) for n in names if n.isdigit()]
        return f"{max(nums, default=0) + 1:06d}"

    def _write_segment(self, items: list[_Fingerprinted]) -> str:
        name = self._next_segment_name()
        final = self.root / "segments" / name
        tmp = self.root / "segments" / f".{name}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        first_id = (self._db.execute("SELECT COALESCE(MAX(rec_id), 0) FROM recordings").fetchone()[0]) + 1
        rec_ids = np.arange(first_id, first_id + len(items), dtype=np.int64)
        codes = [f.fingerprint.codes for f in items]  # type: ignore[union-attr]
        active = [f.fingerprint.active for f in items]  # type: ignore[union-attr]
        starts = np.concatenate([[0], np.cumsum([len(c) for c in codes])]).astype(np.int64)
        all_codes = np.concatenate(codes).astype(np.uint32)
        all_active = np.concatenate(active)
        index = FaissBinaryIndex(32 * WINDOW_WIDTH)
        win_items = []
        for i, (c, a) in enumerate(zip(codes, active, strict=True)):
            ok = np.flatnonzero(window_ok(a, width=WINDOW_WIDTH))
            index.add(pack_windows(c, width=WINDOW_WIDTH)[ok])
            win_items.append(ok + starts[i])
        win_item = np.concatenate(win_items).astype(np.int64)
        postings = Postings.from_triplets(rec_ids, [f.triplets for f in items])  # type: ignore[misc]
        common = stop_listed(postings.keys)
        postings = postings.select(np.flatnonzero(~common))
        _save_npy(tmp / "codes.npy", all_codes)
        _save_npy(tmp / "active.npy", all_active)
        _save_npy(tmp / "rec_ids.npy", rec_ids)
        _save_npy(tmp / "rec_starts.npy", starts)
        _save_npy(tmp / "win_item.npy", win_item)
        index.save(tmp / "windows.faissbin")
        _save_npy(tmp / "lm_keys.npy", postings.keys)
        _save_npy(tmp / "lm_distinct.npy", postings.distinct)
        _save_npy(tmp / "lm_starts.npy", postings.starts)
        for col, arr in postings.columns.items():
            _save_npy(tmp / f"lm_{col}.npy", arr)
        envs = [f.envelope for f in items]
        env_starts = np.concatenate([[0], np.cumsum([len(e) for e in envs])]).astype(np.int64)  # type: ignore[arg-type]
        _save_npy(tmp / "env.npy", np.concatenate(envs).astype(np.uint8))  # type: ignore[arg-type]
        _save_npy(tmp / "env_starts.npy", env_starts)
        maps = [peak_map(f.peaks, self.landmark_config.peaks) for f in items]  # type: ignore[arg-type]
        pk_starts = np.concatenate([[0], np.cumsum([len(m[0]) for m in maps])]).astype(np.int64)
        for i, col in enumerate(("frame", "bin", "level")):
            _save_npy(tmp / f"pk_{col}.npy", np.concatenate([m[i] for m in maps]))
        _save_npy(tmp / "pk_starts.npy", pk_starts)
        files = {p.name: sha256_file(p)[0] for p in sorted(tmp.iterdir())}
        seg_manifest = {
            "format": SEGMENT_FORMAT,
            "format_version": CATALOGUE_VERSION,
            "family": chromaprint.FAMILY,
            "params_id": self.config.params_id,
            "window_width": WINDOW_WIDTH,
            "n_recordings": len(items),
            "n_items": int(len(all_codes)),
            "n_windows": int(len(win_item)),
            "landmark_params_id": self.landmark_config.params_id,
            "n_postings": len(postings),
            "n_stop_listed": int(common.sum()),
            "envelope_params_id": self.envelope_config.params_id,
            "n_envelope_frames": int(env_starts[-1]),
            "files": files,
        }
        text = json.dumps(seg_manifest, indent=1, sort_keys=True)
        atomic_write_text(tmp / "manifest.json", text)
        if final.exists():  # an orphan of an interrupted add: never committed, safe to replace
            shutil.rmtree(final)
        os.replace(tmp, final)
        now = utc_now()
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT INTO segments VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, chromaprint.FAMILY, self.config.params_id, len(items), int(len(all_codes)),
                 hashlib.sha256(text.encode()).hexdigest(), now),
            )
            for rid, f in zip(rec_ids, items, strict=True):
                s, fp = f.spec, f.fingerprint
                db.execute(
                    "INSERT INTO recordings (rec_id, track_id, isrc, title, artist, album, rights_holder, "
                    "duration_s, n_items, sha256, size_bytes, source_path, extra_json, segment, added_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (int(rid), s.track_id, s.isrc, s.title, s.artist, s.album, s.rights_holder,
                     fp.duration, len(fp), f.sha256, f.size, str(s.path),
                     json.dumps(s.extra, sort_keys=True), name, now),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return name

    # ------------------------------------------------------------------ licences
    def add_licence(
        self,
        *,
        licensee: str,
        dataset_pattern: str,
        track_ids: tuple[str, ...] = (),
        start: str = "",
        end: str = "",
        territory: str = "",
        note: str = "",
    ) -> Licence:
        """Record a licence: ``licensee`` may use ``track_ids`` (all when empty) in datasets whose name
        matches the shell pattern ``dataset_pattern``, from ``start`` to ``end`` (``YYYY-MM-DD``)."""
        for d, name in ((start, "start"), (end, "end")):
            if d and not _DATE.match(d):
                raise CatalogueError(f"licence {name}={d!r} must be a date YYYY-MM-DD")
        if start and end and end < start:
            raise CatalogueError(f"licence ends ({end}) before it starts ({start})")
        for t in track_ids:
            self.get(t)  # raises for an unknown recording
        self._db.executescript(_SCHEMA)  # catalogues made before licences existed gain the table
        cur = self._db.execute(
            'INSERT INTO licences (licensee, dataset_pattern, track_ids, start, "end", territory, note, '
            "added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (licensee, dataset_pattern, ",".join(track_ids), start, end, territory, note, utc_now()),
        )
        self._write_manifest()
        return next(x for x in self.licences() if x.licence_id == cur.lastrowid)

    def licences(self) -> list[Licence]:
        """Licences in force (not revoked), oldest first."""
        try:
            rows = self._db.execute('SELECT * FROM licences WHERE revoked_at IS NULL ORDER BY licence_id')
        except sqlite3.OperationalError:  # a catalogue from before licences
            return []
        return [
            Licence(licence_id=r["licence_id"], licensee=r["licensee"], dataset_pattern=r["dataset_pattern"],
                    track_ids=tuple(t for t in r["track_ids"].split(",") if t), start=r["start"],
                    end=r["end"], territory=r["territory"], note=r["note"])
            for r in rows
        ]

    def revoke_licence(self, licence_id: int) -> None:
        cur = self._db.execute(
            "UPDATE licences SET revoked_at = ? WHERE licence_id = ? AND revoked_at IS NULL",
            (utc_now(), licence_id),
        )
        if cur.rowcount == 0:
            raise CatalogueError(f"{self.root}: no licence {licence_id} in force")
        self._write_manifest()

    def remove(self, track_id: str) -> Recording:
        """Mark a recording removed: it is no longer matched or listed (its row stays for the record)."""
        rec = self.get(track_id)
        self._db.execute("UPDATE recordings SET removed_at = ? WHERE rec_id = ?", (utc_now(), rec.rec_id))
        self._write_manifest()
        return rec

    def _write_manifest(self) -> None:
        m = dict(self.manifest)
        m["segments"] = self.segment_names() if (self.root / "catalogue.sqlite").exists() else []
        m["recordings"] = self._db.execute(
            "SELECT COUNT(*) FROM recordings WHERE removed_at IS NULL").fetchone()[0]
        m["digest"] = self.digest()
        self.manifest = m
        atomic_write_text(self.root / "manifest.json", json.dumps(m, indent=1, sort_keys=True))
