"""Helpers of the source tests: build zips, tar / WebDataset shards, Parquet and Arrow files in
memory, scan them, and reduce report records to what must not depend on the container."""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
import zipfile
from pathlib import Path

from earmark.scan.run import read_report, scan

#: Fields of a match that depend only on the audio, not on where it was stored.
ANSWER_FIELDS = ("track_id", "ref_start", "ref_end", "query_start", "query_end", "score")


def tar_member(tar: tarfile.TarFile, name: str, data: bytes, *, mtime: int = 1_700_000_000) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = mtime
    tar.addfile(info, io.BytesIO(data))


def tar_symlink(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    tar.addfile(info)


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    """A tar file of ``(name, bytes)`` members in the given order."""
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            tar_member(tar, name, data)
    return path


def webdataset_members(clips, *, json_first: bool | None = None) -> list[tuple[str, bytes]]:
    """``key.mp3`` + ``key.json {"source_file": ...}`` per clip; the json comes before the audio for
    every other key unless ``json_first`` says which."""
    out = []
    for i, c in enumerate(clips):
        meta = json.dumps({"source_file": f"originals/{c.name}", "duration": 10.0}).encode()
        audio = (f"{c.stem}.mp3", c.data)
        doc = (f"{c.stem}.json", meta)
        first = (i % 2 == 0) if json_first is None else json_first
        out += [doc, audio] if first else [audio, doc]
    return out


def write_zip(path: Path, members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            z.writestr(info, data, compress_type=compression)
    return path


def scan_records(source, catalogue, out: Path, **kwargs) -> dict[str, dict]:
    """Scan ``source`` and return its report records by item id."""
    kwargs.setdefault("workers", 1)
    scan(source, catalogue, out, **kwargs)
    records = read_report(out)
    ids = [r["file"] for r in records]
    assert len(ids) == len(set(ids)), "an item appears twice in the report"
    return {r["file"]: r for r in records}


def answer(record: dict) -> tuple:
    """What a record says about the audio: status and each match's recording and alignment."""
    return (record["status"], [tuple(m[k] for k in ANSWER_FIELDS) for m in record["matches"]])


def assert_known_answer(record: dict, clip, *, tol: float = 0.5) -> None:
    """``record`` says what ``clip`` is: the right recording at the right place, or no match."""
    if clip.track_id is None:
        assert record["status"] == "no_match", record
        return
    assert record["status"] == "match", record
    assert len(record["matches"]) == 1, record["matches"]
    (m,) = record["matches"]
    assert m["track_id"] == clip.track_id
    assert abs(m["ref_start"] - clip.ref_start) <= tol, (m["ref_start"], clip.ref_start)


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path below ``root`` with its size and mtime (to see that nothing was written)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return out


def wait_for(predicate, timeout: float, interval: float = 0.005) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
