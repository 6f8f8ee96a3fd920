"""Run a scan of a dataset against a catalogue and write its results to a scan directory.

A scan directory holds::

    manifest.json     what was scanned, with what (catalogue digest, parameters, versions), when
    results.jsonl     one line per item, appended (and flushed) as items finish: the scan's state
    report.jsonl      the same lines sorted by item, written atomically when the scan completes
    summary.json      the counts shown at the end

A scan killed at any point (even ``kill -9`` in the middle of writing a line) resumes with
``resume=True``: a torn last line is cut off, items already in ``results.jsonl`` are not scanned
again, and the final report holds every item exactly once. Resuming with another catalogue, other
parameters or another source is refused.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from earmark import __version__
from earmark.audio import decoder_versions
from earmark.catalogue.reader import CatalogueReader, open_reader
from earmark.errors import EarmarkError, ScanError
from earmark.fileio import atomic_write_text, utc_now
from earmark.fingerprint import chromaprint
from earmark.parallel import default_workers, imap_unordered
from earmark.scan.worker import ItemResult, ScanSettings, scan_part
from earmark.sources import Part, Skipped, discover

log = logging.getLogger(__name__)

SCAN_FORMAT = "earmark-scan"
SCAN_VERSION = 1
#: Manifest fields that must be equal for a scan to be resumed.
RESUME_KEYS = ("source", "catalogue_digest", "params_id", "landmark_params_id", "envelope_params_id",
               "settings", "format_version")


@dataclass
class ScanSummary:
    """Counts of a scan (including the items a resumed scan had already done)."""

    items: int = 0
    matched: int = 0
    no_match: int = 0
    no_signal: int = 0
    errors: int = 0
    skipped_files: int = 0
    matches: int = 0
    recordings_found: int = 0
    resumed_items: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    item_cpu_seconds: float = 0.0
    workers: int = 1
    found: set[str] = field(default_factory=set, repr=False)

    def add(self, record: dict) -> None:
        """Count one report record."""
        status = record["status"]
        self.items += 1
        self.matched += status == "match"
        self.no_match += status == "no_match"
        self.no_signal += status == "no_signal"
        self.errors += status == "error"
        self.matches += len(record["matches"])
        self.found.update(m["track_id"] for m in record["matches"])
        self.recordings_found = len(self.found)
        self.audio_seconds += float(record.get("duration_s") or 0.0)

    def to_dict(self) -> dict[str, object]:
        d = {k: v for k, v in dataclasses.asdict(self).items() if k != "found"}
        d["audio_hours"] = round(self.audio_seconds / 3600, 4)
        d["realtime_factor"] = round(self.audio_seconds / self.wall_seconds, 1) if self.wall_seconds else None
        return d


# Worker-process state: the catalogue is opened (memory-mapped) once per process.
_worker: dict[str, object] = {}


def _one_thread_per_process() -> None:
    """Scans parallelise over processes: BLAS and OpenMP thread pools on tiny per-item work only spin
    (measured: twice the CPU time for the same wall time)."""
    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(1)
    threadpool_limits(1)


def _init_worker(catalogue: str, settings: ScanSettings) -> None:
    _one_thread_per_process()
    _worker["reader"] = open_reader(catalogue)
    _worker["settings"] = settings


def _scan_task(task: tuple[Part, frozenset[str]]) -> list[ItemResult]:
    part, skip = task
    return scan_part(part, _worker["reader"], _worker["settings"], skip=skip)  # type: ignore[arg-type]


def scan_manifest(
    source: str, reader: CatalogueReader, settings: ScanSettings, workers: int, argv: list[str] | None,
    engine: str = "local",
) -> dict[str, object]:
    return {
        "format": SCAN_FORMAT,
        "format_version": SCAN_VERSION,
        "earmark_version": __version__,
        "source": source,
        "catalogue": str(reader.root),
        "catalogue_digest": reader.digest,
        "catalogue_recordings": reader.n_recordings,
        "params_id": reader.params_id,
        "landmark_params_id": reader.landmark_config.params_id,
        "envelope_params_id": reader.envelope_config.params_id,
        "settings": json.loads(json.dumps(dataclasses.asdict(settings))),
        "workers": workers,
        "engine": engine,
        "command_line": argv if argv is not None else sys.argv,
        "versions": {
            "python": platform.python_version(),
            "libchromaprint": chromaprint.library_version(),
            **decoder_versions(),
        },
        "host": platform.node(),
        "started_at": utc_now(),
    }


def _source_key(source: str | os.PathLike) -> str:
    s = os.fspath(source)
    return s if "://" in s else str(Path(s).resolve())


def load_results(path: Path) -> list[dict]:
    """Complete records of a results file, cutting off a torn last line (a write killed midway)."""
    if not path.exists():
        return []
    raw = path.read_bytes()
    good_end = 0
    records = []
    pos = 0
    while pos < len(raw):
        nl = raw.find(b"\n", pos)
        if nl < 0:
            break  # no newline: the last write was cut short
        try:
            records.append(json.loads(raw[pos:nl]))
        except (json.JSONDecodeError, UnicodeDecodeError):
            break  # a torn line, then anything after it is not trusted
        pos = good_end = nl + 1
    if good_end < len(raw):
        log.info("%s: dropping %d bytes of a torn last record", path, len(raw) - good_end)
        with open(path, "r+b") as f:
            f.truncate(good_end)
    return records


def scan(
    source: str | os.PathLike,
    catalogue: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    settings: ScanSettings | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    resume: bool = False,
    all_files: bool = False,
    engine: str = "local",
    address: str | None = None,
    argv: list[str] | None = None,
    on_result: Callable[[ItemResult], None] | None = None,
) -> ScanSummary:
    """Scan every item of ``source`` against ``catalogue``; results go to ``out_dir``.

    Parameters
    ----------
    source : path or URL
        A folder (recursive), a file, an archive, a shard, a brace pattern of shards, Parquet files,
        a ``save_to_disk`` folder, locally or at an fsspec URL (see :func:`earmark.sources.discover`).
    catalogue : path
        A catalogue directory.
    out_dir : path
        Created if missing. Must not hold another scan unless ``overwrite`` or ``resume``.
    workers : int, optional
        Processes to use; all cores by default.
    resume : bool
        Carry on an interrupted scan in ``out_dir``; refused if the catalogue, parameters or
        source differ.
    engine : {"local", "ray"}
        Local worker processes, or a Ray cluster (``address``; a local Ray without it).
    on_result : callable, optional
        Called in this process with each newly scanned item's result (for progress display).

    Raises
    ------
    ScanError, CatalogueError, ParamsMismatchError
        The scan cannot run at all. Bad items never raise: they are ``error`` lines.
    """
    settings = settings or ScanSettings()
    workers = workers or default_workers()
    if engine not in ("local", "ray"):
        raise ScanError(f"engine={engine!r} must be 'local' or 'ray'")
    out = Path(out_dir)
    reader = open_reader(catalogue)
    manifest = scan_manifest(_source_key(source), reader, settings, workers, argv, engine)
    found = discover(os.fspath(source), all_files=all_files)
    first = next(found)  # raises ScanError before anything is written when there is nothing to scan
    previous: list[dict] = []
    mpath = out / "manifest.json"
    if mpath.exists() and resume:
        try:
            old = json.loads(mpath.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ScanError(f"{out}: cannot resume, unreadable manifest: {e}") from e
        differ = [k for k in RESUME_KEYS if old.get(k) != manifest.get(k)]
        if differ:
            raise ScanError(
                f"{out}: refusing to resume: the scan there was made with a different "
                f"{', '.join(differ)} (start a new scan in another folder, or overwrite it)"
            )
        manifest["started_at"] = old.get("started_at", manifest["started_at"])
        manifest["resumed_at"] = [*old.get("resumed_at", []), utc_now()]
        previous = load_results(out / "results.jsonl")
    elif mpath.exists() and not overwrite:
        raise ScanError(f"{out}: already holds a scan (resume it, use another folder, or overwrite it)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        for stale in ("report.jsonl", "summary.json") + (() if previous or resume else ("results.jsonl",)):
            (out / stale).unlink(missing_ok=True)
    except OSError as e:
        raise ScanError(f"{out}: cannot write the scan folder: {e.strerror or e}") from e
    manifest["status"] = "running"
    atomic_write_text(mpath, json.dumps(manifest, indent=1, sort_keys=True))

    summary = ScanSummary(workers=workers)
    done: set[str] = set()
    for rec in previous:
        if rec["file"] not in done:
            done.add(rec["file"])
            summary.add(rec)
    summary.resumed_items = len(done)
    metadata = {rid: r.metadata() for rid, r in reader.recordings.items()}
    t0, c0 = time.monotonic(), _cpu_now()

    def tasks() -> Iterator[tuple[Part, frozenset[str]]]:
        for x in itertools.chain([first], found):
            if isinstance(x, Skipped):
                summary.skipped_files += 1
            elif x.kind == "file":
                if x.name not in done:
                    yield x, frozenset()
            else:
                prefix = x.name + "::"
                yield x, frozenset(d for d in done if d.startswith(prefix))

    if engine == "ray":
        from earmark.scan.ray_engine import run_ray

        del reader
        batches = run_ray(tasks(), str(Path(catalogue).resolve()), settings, workers=workers, address=address)
    elif workers > 1:
        del reader  # each worker opens its own memory-mapped view
        batches = imap_unordered(_scan_task, tasks(), workers=workers, initializer=_init_worker,
                                 initargs=(str(catalogue), settings))
    else:
        _one_thread_per_process()
        batches = (scan_part(p, reader, settings, skip=skip) for p, skip in tasks())
    with open(out / "results.jsonl", "a", encoding="utf-8") as f:
        for batch in batches:
            for r in batch:
                if r.file in done:  # a container that yields one id twice: keep the first
                    continue
                done.add(r.file)
                record = r.to_record(metadata)
                f.write(json.dumps(record, sort_keys=True) + "\n")
                f.flush()
                summary.add(record)
                summary.item_cpu_seconds += r.cpu_s
                if on_result is not None:
                    on_result(r)
    summary.wall_seconds = round(time.monotonic() - t0, 3)
    # worker processes are not our children (forkserver, Ray), so their CPU is summed per item
    pooled = workers > 1 or engine != "local"
    summary.cpu_seconds = round(_cpu_now() - c0 + (summary.item_cpu_seconds if pooled else 0.0), 3)
    summary.item_cpu_seconds = round(summary.item_cpu_seconds, 3)
    _finish(out, manifest, summary)
    return summary


def _cpu_now() -> float:
    """CPU seconds of this process and its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _finish(out: Path, manifest: dict, summary: ScanSummary) -> None:
    records = {}
    for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines():
        records.setdefault(json.loads(line)["file"], line)
    lines = [records[k] for k in sorted(records)]
    atomic_write_text(out / "report.jsonl", "".join(line + "\n" for line in lines))
    atomic_write_text(out / "summary.json", json.dumps(summary.to_dict(), indent=1, sort_keys=True))
    manifest = dict(manifest, status="complete", finished_at=utc_now())
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True))


def read_report(scan_dir: str | os.PathLike) -> list[dict]:
    """The records of a completed scan's report.jsonl."""
    p = Path(scan_dir) / "report.jsonl"
    try:
        return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as e:
        raise EarmarkError(f"{p}: cannot read the report: {e}") from e
