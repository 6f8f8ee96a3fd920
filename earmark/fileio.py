"""File helpers every layer shares: SHA-256 of a file, atomic writes, UTC timestamps."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path


def utc_now() -> str:
    """The current time in UTC, ISO 8601 to the second (``2026-11-22T18:00:00Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def sha256_file(path: str | os.PathLike, *, chunk: int = 1 << 20) -> tuple[str, int]:
    """SHA-256 (hex) and size in bytes of a file, read in chunks. Raises OSError."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, mode: int = 0o644) -> None:
    """Write to a uniquely named temporary file beside ``path``, fsync, then rename it over ``path``:
    a reader sees the old file or the new one, never a part. Raises OSError."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))
