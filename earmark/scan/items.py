"""Dataset items: what a scan reads, each with a stable identifier for the report."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from earmark.catalogue.metadata import AUDIO_EXTENSIONS
from earmark.errors import ScanError

#: Extensions of files that are certainly not media; a folder scan skips them (and counts them).
NON_MEDIA_EXTENSIONS = frozenset(
    ".json .jsonl .txt .md .csv .tsv .yaml .yml .xml .html .py .parquet .arrow .idx .lock .log .pdf .png "
    ".jpg .jpeg .gif .cue .m3u .nfo .sha256 .md5".split()
)


@dataclass(frozen=True)
class Item:
    """One dataset item. ``id`` is what the report's ``file`` field holds; ``path`` is where to read it."""

    id: str
    path: Path
    size: int


def is_candidate(path: Path) -> bool:
    """Media by extension, or no extension at all (datasets often drop it)."""
    ext = path.suffix.lower()
    return ext in AUDIO_EXTENSIONS or (ext not in NON_MEDIA_EXTENSIONS and ext == "")


def iter_folder(root: str | os.PathLike, *, all_files: bool = False) -> Iterator[Item | Path]:
    """Items below ``root`` in sorted order; skipped files are yielded as bare paths.

    Symlinks to files are followed, symlinked folders are not (no cycles). With ``all_files`` every
    regular file is an item.
    """
    root = Path(root)
    if not root.exists():
        raise ScanError(f"{root}: no such file or folder")
    if root.is_file():
        yield Item(id=root.name, path=root, size=root.stat().st_size)
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if not p.is_file():
                continue
            if name.startswith(".") or not (all_files or is_candidate(p)):
                yield p
                continue
            yield Item(id=p.relative_to(root).as_posix(), path=p, size=p.stat().st_size)
