"""Read the items of one part: a file, a zip, a tar / WebDataset shard, a Parquet or Arrow file.

Every member is read into memory through a bounded reader: members are never written to disk, so a
hostile path cannot escape anywhere, and sizes that lie cannot exhaust memory. Anything wrong with
one member becomes an :class:`ItemData` with an ``error``; a truncated or corrupt container ends with
one error item that says where it broke, after the items read before that point.
"""

from __future__ import annotations

import dataclasses
import io
import json
import posixpath
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec
import numpy as np
from fsspec.implementations.local import LocalFileSystem

from earmark.audio import AUDIO_EXTENSIONS
from earmark.sources.discover import NON_MEDIA_EXTENSIONS, Part
from earmark.sources.items import ItemData


@dataclass(frozen=True)
class Limits:
    """Bounds on what one item may cost to read.

    Attributes
    ----------
    max_item_bytes : int
        Largest member (uncompressed) read; larger ones are errors.
    max_compression_ratio : float
        A zip member whose uncompressed size exceeds its compressed size by more than this (and is
        over ``bomb_min_bytes``) is treated as a compression bomb.
    audio_column : str
        Column holding the audio in Parquet / Arrow files.
    """

    max_item_bytes: int = 1 << 30
    max_compression_ratio: float = 200.0
    bomb_min_bytes: int = 16 << 20
    audio_column: str = "audio"


def unsafe_member(name: str) -> str:
    """Why an archive member name is unsafe to honour (absolute, traversal), or '' if it is fine."""
    n = name.replace("\\", "/")
    if n.startswith("/") or (len(n) > 1 and n[1] == ":"):
        return "absolute path in archive"
    if ".." in n.split("/"):
        return "path traversal ('..') in archive"
    return ""


def _is_media_member(name: str) -> bool:
    ext = posixpath.splitext(name.lower())[1]
    return ext in AUDIO_EXTENSIONS or (ext not in NON_MEDIA_EXTENSIONS and ext != "")


def _read_bounded(f: io.BufferedIOBase | object, limit: int) -> bytes | None:
    """Read at most ``limit`` bytes; None if there is more."""
    data = f.read(limit + 1)  # type: ignore[attr-defined]
    return None if len(data) > limit else data


def iter_part(part: Part, limits: Limits = Limits()) -> Iterator[ItemData]:
    """The items of one part, in their stored order, each with an identifier unique in the part.

    An archive may hold two members of one name; both are items, the later ones identified as
    ``name#2``, ``name#3``... so that no member can hide behind another.
    """
    readers = {"file": _iter_file, "zip": _iter_zip, "tar": _iter_tar, "parquet": _iter_table,
               "arrow": _iter_table}
    reader = readers.get(part.kind)
    if reader is None:
        yield ItemData(part.name, error=f"unknown source kind {part.kind!r}", error_kind="source")
        return
    seen: dict[str, int] = {}
    for item in reader(part, limits):
        n = seen.get(item.id, 0) + 1
        seen[item.id] = n
        yield item if n == 1 else dataclasses.replace(item, id=f"{item.id}#{n}")


def _iter_file(part: Part, limits: Limits) -> Iterator[ItemData]:
    fs, path = fsspec.core.url_to_fs(part.url)
    if isinstance(fs, LocalFileSystem):  # the decoder reads local files itself, streaming
        yield ItemData(part.name, path=path, size=part.size if part.size >= 0 else fs.size(path))
        return
    try:
        with fs.open(path, "rb") as f:
            data = _read_bounded(f, limits.max_item_bytes)
    except (OSError, ValueError) as e:
        yield ItemData(part.name, error=f"cannot read: {e}", error_kind="io")
        return
    if data is None:
        yield ItemData(part.name, error=f"larger than {limits.max_item_bytes} bytes", error_kind="too_large")
    else:
        yield ItemData(part.name, data=data, size=len(data))


def _iter_zip(part: Part, limits: Limits) -> Iterator[ItemData]:
    try:
        with fsspec.open(part.url, "rb") as raw, zipfile.ZipFile(raw) as z:
            for info in sorted(z.infolist(), key=lambda i: i.filename):
                if info.is_dir():
                    continue
                iid = f"{part.name}::{info.filename}"
                bad = unsafe_member(info.filename)
                if bad:
                    yield ItemData(iid, error=bad, error_kind="unsafe_path")
                    continue
                if not _is_media_member(info.filename):
                    continue
                if info.file_size > limits.max_item_bytes:
                    yield ItemData(iid, error=f"member of {info.file_size} bytes exceeds the "
                                   f"{limits.max_item_bytes}-byte limit", error_kind="too_large")
                    continue
                ratio = info.file_size / max(1, info.compress_size)
                if info.file_size > limits.bomb_min_bytes and ratio > limits.max_compression_ratio:
                    yield ItemData(iid, error=f"compression bomb: {info.file_size} bytes from "
                                   f"{info.compress_size} (ratio {ratio:.0f})", error_kind="bomb")
                    continue
                try:
                    # zipfile stops at the declared size and checks the CRC, so a member whose data
                    # does not match its header (damaged, or inflating beyond it) fails here
                    with z.open(info) as f:
                        data = f.read(info.file_size)
                except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as e:
                    yield ItemData(iid, error=f"damaged archive member (data does not match its header): {e}",
                                   error_kind="corrupt_container")
                    continue
                yield ItemData(iid, data=data, size=len(data))
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        yield ItemData(part.name, error=f"unreadable zip archive: {e}", error_kind="corrupt_container")


def _iter_tar(part: Part, limits: Limits) -> Iterator[ItemData]:
    """WebDataset-aware: members sharing a key (name up to the first dot of the basename) are one
    sample; its json (``source_file``, ``path``) supplies the item's ``source_path``."""
    pending: list[tuple[str, bytes | None, str, str]] = []  # (member name, data, error, kind)
    meta: dict[str, object] = {}
    current_key: str | None = None
    n_read = 0

    def flush() -> Iterator[ItemData]:
        src = meta.get("source_file") or meta.get("path") or meta.get("source_path")
        for name, data, err, kind in pending:
            iid = f"{part.name}::{name}"
            if err:
                yield ItemData(iid, error=err, error_kind=kind, source_path=src)  # type: ignore[arg-type]
            else:
                yield ItemData(iid, data=data, size=len(data or b""), source_path=src)  # type: ignore[arg-type]
        pending.clear()
        meta.clear()

    try:
        with fsspec.open(part.url, "rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as tar:
            for m in tar:
                name = m.name
                base = posixpath.basename(name)
                key = posixpath.join(posixpath.dirname(name), base.split(".", 1)[0])
                if key != current_key:
                    yield from flush()
                    current_key = key
                bad = unsafe_member(name)
                if bad:
                    pending.append((name, None, bad, "unsafe_path"))
                    continue
                if not m.isfile():
                    if m.issym() or m.islnk() or m.isdev():
                        pending.append((name, None, "link or device in archive", "unsafe_path"))
                    continue
                if base.lower().endswith(".json"):
                    if m.size <= 1 << 20:
                        try:
                            f = tar.extractfile(m)
                            doc = json.loads(f.read()) if f else {}
                            if isinstance(doc, dict):
                                meta.update({k: str(v) for k, v in doc.items()
                                             if k in ("source_file", "path", "source_path")})
                        except (json.JSONDecodeError, UnicodeDecodeError):
                            pass
                    continue
                if not _is_media_member(name):
                    continue
                if m.size > limits.max_item_bytes:
                    pending.append((name, None, f"member of {m.size} bytes exceeds the "
                                    f"{limits.max_item_bytes}-byte limit", "too_large"))
                    continue
                f = tar.extractfile(m)
                data = f.read() if f else b""
                if len(data) < m.size:
                    raise tarfile.ReadError(f"member {name} is cut short ({len(data)} of {m.size} bytes)")
                pending.append((name, data, "", ""))
                n_read += 1
            yield from flush()
        if not _tar_ends_properly(part.url):
            raise tarfile.ReadError("no end-of-archive marker: the shard is cut short")
    except (tarfile.TarError, OSError, EOFError, ValueError) as e:
        yield from flush()
        yield ItemData(f"{part.name}::<after {n_read} items>",
                       error=f"truncated or corrupt tar shard: {e}", error_kind="corrupt_container")


def _tar_ends_properly(url: str) -> bool:
    """An uncompressed tar ends with two zero blocks; tarfile silently stops at a header cut short,
    so a shard without them lost its end. Compressed or unseekable shards are not checked here."""
    if not url.lower().endswith(".tar") and posixpath.splitext(url)[1]:
        return True
    try:
        with fsspec.open(url, "rb") as f:
            if f.read(262)[257:262] != b"ustar":  # gzip & co. have their own end checks
                return True
            size = f.seek(0, 2)
            if size < 1024:
                return False
            f.seek(size - 1024)
            return f.read(1024) == bytes(1024)
    except (OSError, ValueError):
        return True  # not seekable: trust tarfile


def _iter_table(part: Part, limits: Limits) -> Iterator[ItemData]:
    import pyarrow as pa
    import pyarrow.ipc
    import pyarrow.parquet as pq

    col = limits.audio_column
    row = 0
    try:
        with fsspec.open(part.url, "rb") as raw:
            if part.kind == "parquet":
                pf = pq.ParquetFile(raw)
                if col not in pf.schema_arrow.names:
                    raise KeyError(f"no column {col!r} (columns: {', '.join(pf.schema_arrow.names)})")
                batches = pf.iter_batches(columns=[col], batch_size=64)
            else:
                try:
                    reader = pa.ipc.open_stream(raw)
                except pa.ArrowInvalid:
                    raw.seek(0)
                    reader = pa.ipc.open_file(raw)
                    batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
                else:
                    batches = iter(reader)
                if col not in reader.schema.names:
                    raise KeyError(f"no column {col!r} (columns: {', '.join(reader.schema.names)})")
            for batch in batches:
                for value in batch.column(col).to_pylist():
                    yield _table_item(f"{part.name}::row {row}", value, limits)
                    row += 1
    except KeyError as e:
        yield ItemData(part.name, error=str(e.args[0]), error_kind="source")
    except (OSError, ValueError, EOFError) as e:  # pyarrow errors derive from these
        yield ItemData(f"{part.name}::<after row {row}>", error=f"unreadable table: {e}",
                       error_kind="corrupt_container")


def _table_item(iid: str, value: object, limits: Limits) -> ItemData:
    """One cell of an audio column: bytes, ``{bytes, path}`` or ``{array, sampling_rate}``."""
    src = None
    if isinstance(value, dict):
        src = value.get("path")
        if value.get("bytes") is not None:
            value = value["bytes"]
        elif value.get("array") is not None:
            try:
                sr = int(value.get("sampling_rate") or 0)
                arr = np.asarray(value["array"], dtype=np.float32)
            except (TypeError, ValueError) as e:
                return ItemData(iid, error=f"decoded audio cell is not a 1-D array of numbers: {e}",
                                error_kind="not_audio", source_path=src)
            if sr <= 0 or arr.ndim != 1:
                return ItemData(iid, error="decoded audio without a valid sampling_rate or 1-D array",
                                error_kind="not_audio", source_path=src)
            return ItemData(iid, samples=arr, sample_rate=sr, size=arr.nbytes, source_path=src)
        else:
            return ItemData(iid, error="audio cell holds neither bytes nor an array "
                            "(a path alone cannot be read safely)", error_kind="not_audio", source_path=src)
    if isinstance(value, (bytes, bytearray)):
        if len(value) > limits.max_item_bytes:
            return ItemData(iid, error="cell exceeds the size limit", error_kind="too_large", source_path=src)
        return ItemData(iid, data=bytes(value), size=len(value), source_path=src)
    if value is None:
        return ItemData(iid, error="empty audio cell", error_kind="empty", source_path=src)
    return ItemData(iid, error=f"audio cell of type {type(value).__name__} is not audio",
                    error_kind="not_audio", source_path=src)
