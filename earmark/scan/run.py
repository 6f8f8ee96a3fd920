"""Run a scan of a dataset against a catalogue and write its results to a scan directory.

A scan directory holds::

    manifest.json     what was scanned, with what (catalogue digest, parameters, versions), when
    results.jsonl     one line per item, appended (and flushed) as items finish
    report.jsonl      the same lines sorted by item, written atomically when the scan completes
    summary.json      the counts shown at the end
"""

from __future__ import annotations

import dataclasses
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
from earmark.catalogue.store import atomic_write_text, utc_now
from earmark.errors import EarmarkError, ScanError
from earmark.fingerprint import chromaprint
from earmark.parallel import default_workers, imap_unordered
from earmark.scan.items import Item, iter_folder
from earmark.scan.worker import ItemResult, ScanSettings, scan_item

log = logging.getLogger(__name__)

SCAN_FORMAT = "earmark-scan"
SCAN_VERSION = 1


@dataclass
class ScanSummary:
    """Counts of a finished scan."""

    items: int = 0
    matched: int = 0
    no_match: int = 0
    no_signal: int = 0
    errors: int = 0
    skipped_files: int = 0
    matches: int = 0
    recordings_found: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    item_cpu_seconds: float = 0.0
    workers: int = 1
    found: set[str] = field(default_factory=set, repr=False)

    def add(self, r: ItemResult) -> None:
        self.items += 1
        self.matched += r.status == "match"
        self.no_match += r.status == "no_match"
        self.no_signal += r.status == "no_signal"
        self.errors += r.status == "error"
        self.matches += len(r.matches)
        self.found.update(m.track_id for m in r.matches)
        self.recordings_found = len(self.found)
        self.audio_seconds += r.duration_s
        self.item_cpu_seconds += r.cpu_s

    def to_dict(self) -> dict[str, object]:
        d = {k: v for k, v in dataclasses.asdict(self).items() if k != "found"}
        d["recordings_found"] = len(self.found)
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


def _scan_one(item: Item) -> ItemResult:
    return scan_item(item, _worker["reader"], _worker["settings"])  # type: ignore[arg-type]


def scan_manifest(
    source: Path, reader: CatalogueReader, settings: ScanSettings, workers: int, argv: list[str] | None
) -> dict[str, object]:
    return {
        "format": SCAN_FORMAT,
        "format_version": SCAN_VERSION,
        "earmark_version": __version__,
        "source": str(source),
        "catalogue": str(reader.root),
        "catalogue_digest": reader.digest,
        "catalogue_recordings": reader.n_recordings,
        "params_id": reader.params_id,
        "settings": dataclasses.asdict(settings),
        "workers": workers,
        "command_line": argv if argv is not None else sys.argv,
        "versions": {
            "python": platform.python_version(),
            "libchromaprint": chromaprint.library_version(),
            **decoder_versions(),
        },
        "host": platform.node(),
        "started_at": utc_now(),
    }


def scan(
    source: str | os.PathLike,
    catalogue: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    settings: ScanSettings | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    all_files: bool = False,
    argv: list[str] | None = None,
    on_result: Callable[[ItemResult], None] | None = None,
) -> ScanSummary:
    """Scan every item of ``source`` against ``catalogue``; results go to ``out_dir``.

    Parameters
    ----------
    source : path
        A folder (recursive) or a single file.
    catalogue : path
        A catalogue directory.
    out_dir : path
        Created if missing. Must not hold another scan unless ``overwrite``.
    workers : int, optional
        Processes to use; all cores by default.
    on_result : callable, optional
        Called in this process with each item's result as it finishes (for progress display).

    Raises
    ------
    ScanError, CatalogueError, ParamsMismatchError
        The scan cannot run at all. Bad items never raise: they are ``error`` lines.
    """
    settings = settings or ScanSettings()
    workers = workers or default_workers()
    source = Path(source)
    out = Path(out_dir)
    reader = open_reader(catalogue)
    if not source.exists():
        raise ScanError(f"{source}: no such file or folder")
    if out.exists() and (out / "manifest.json").exists() and not overwrite:
        raise ScanError(f"{out}: already holds a scan (use another folder, or overwrite it)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        for stale in ("report.jsonl", "results.jsonl", "summary.json"):
            (out / stale).unlink(missing_ok=True)
    except OSError as e:
        raise ScanError(f"{out}: cannot write the scan folder: {e.strerror or e}") from e
    manifest = scan_manifest(source, reader, settings, workers, argv)
    manifest["status"] = "running"
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True))

    summary = ScanSummary(workers=workers)
    metadata = {rid: r.metadata() for rid, r in reader.recordings.items()}
    t0, c0 = time.monotonic(), _cpu_now()

    def items() -> Iterator[Item]:
        for x in iter_folder(source, all_files=all_files):
            if isinstance(x, Item):
                yield x
            else:
                summary.skipped_files += 1

    if workers > 1:
        del reader  # each worker opens its own memory-mapped view
        results = imap_unordered(
            _scan_one, items(), workers=workers, initializer=_init_worker, initargs=(str(catalogue), settings)
        )
    else:
        _one_thread_per_process()
        results = (scan_item(it, reader, settings) for it in items())
    with open(out / "results.jsonl", "w", encoding="utf-8") as f:
        for r in results:
            f.write(json.dumps(r.to_record(metadata), sort_keys=True) + "\n")
            f.flush()
            summary.add(r)
            if on_result is not None:
                on_result(r)
    summary.wall_seconds = round(time.monotonic() - t0, 3)
    # worker processes are not our children (forkserver), so their CPU is summed per item
    summary.cpu_seconds = round(_cpu_now() - c0 + (summary.item_cpu_seconds if workers > 1 else 0.0), 3)
    summary.item_cpu_seconds = round(summary.item_cpu_seconds, 3)
    _finish(out, manifest, summary)
    return summary


def _cpu_now() -> float:
    """CPU seconds of this process and its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _finish(out: Path, manifest: dict, summary: ScanSummary) -> None:
    lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    lines.sort(key=lambda s: json.loads(s)["file"])
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
