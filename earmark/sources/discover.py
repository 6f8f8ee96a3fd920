"""Split a source (path, URL, brace pattern) into parts, recognising what each file is."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec

from earmark.audio import AUDIO_EXTENSIONS
from earmark.errors import ScanError

#: Extensions that are certainly not dataset items; a folder scan skips them and counts them.
NON_MEDIA_EXTENSIONS = frozenset(
    ".json .jsonl .txt .md .csv .tsv .yaml .yml .xml .html .py .idx .lock .log .pdf .png .jpg .jpeg "
    ".gif .cue .m3u .nfo .sha256 .md5 .cls .npy .pt .safetensors".split()
)
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


@dataclass(frozen=True)
class Part:
    """A unit of work: one audio file, or one container (zip, tar shard, Parquet or Arrow file).

    ``url`` is a local path or an fsspec URL; ``name`` is the part's path relative to the scanned
    root: the item id of a file, the prefix (``name::member``) of a container's items.
    """

    kind: str  # file | zip | tar | parquet | arrow
    url: str
    name: str
    size: int = -1


@dataclass(frozen=True)
class Skipped:
    """A file the scan does not read (not media by its name), counted in the summary."""

    url: str
    reason: str


def _matching_brace(s: str, i: int) -> int:
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return -1


def _split_top_level(body: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in body:
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur.append(ch)
    parts.append("".join(cur))
    return parts


def expand_braces(pattern: str) -> list[str]:
    """Expand ``{000..099}`` numeric ranges and ``{a,b}`` lists (nested too) in the order bash does.

    As in bash, a range with a zero-padded bound pads every term to the widest bound, and braces
    that hold neither a range nor a comma stay as they are.

    >>> expand_braces("shard-{00..02}.tar")
    ['shard-00.tar', 'shard-01.tar', 'shard-02.tar']
    >>> expand_braces("x{a,b{1..2}}")
    ['xa', 'xb1', 'xb2']
    """
    i = pattern.find("{")
    while i != -1:
        j = _matching_brace(pattern, i)
        if j < 0:
            return [pattern]
        body = pattern[i + 1 : j]
        rng = re.fullmatch(r"(-?\d+)\.\.(-?\d+)", body)
        parts = _split_top_level(body)
        if rng:
            lo_s, hi_s = rng.group(1), rng.group(2)
            padded = any(x.lstrip("-").startswith("0") and len(x.lstrip("-")) > 1 for x in (lo_s, hi_s))
            width = max(len(lo_s), len(hi_s)) if padded else 0
            lo, hi = int(lo_s), int(hi_s)
            step = 1 if hi >= lo else -1
            choices = [str(k).zfill(width) for k in range(lo, hi + step, step)]
        elif len(parts) > 1:
            choices = [x for part in parts for x in expand_braces(part)]
        else:  # literal braces: look for an expansion further on
            i = pattern.find("{", i + 1)
            continue
        rest = expand_braces(pattern[j + 1 :])
        return [pattern[:i] + c + r for c in choices for r in rest]
    return [pattern]


def _kind_by_name(name: str) -> str | None:
    low = name.lower()
    if low.endswith(TAR_SUFFIXES):
        return "tar"
    ext = posixpath.splitext(low)[1]
    if ext == ".zip":
        return "zip"
    if ext == ".parquet":
        return "parquet"
    if ext == ".arrow":
        return "arrow"
    if ext in AUDIO_EXTENSIONS:
        return "file"
    return None


def _kind_by_magic(fs: fsspec.AbstractFileSystem, path: str) -> str:
    try:
        with fs.open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return "file"  # the decoder will say what is wrong with it
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"PAR1"):
        return "parquet"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return "file"


def _join(protocol: str, path: str) -> str:
    return path if protocol in ("file", "local") else f"{protocol}://{path}"


def discover(source: str, *, all_files: bool = False) -> Iterator[Part | Skipped]:
    """The parts of ``source`` in a stable (sorted) order.

    ``source`` is a file, a folder (recursive), a brace pattern (``shard-{000000..000099}.tar``), a
    glob, or any of these as an fsspec URL (``s3://``, ``gs://``, ``https://``). The kind of each file
    is recognised from its name, or from its first bytes when the name says nothing.
    """
    source = str(source)
    patterns = expand_braces(source)
    found_any = False
    for pattern in patterns:
        try:
            fs, path = fsspec.core.url_to_fs(pattern)
        except (ValueError, ImportError) as e:
            raise ScanError(f"{pattern}: cannot open this kind of location: {e}") from e
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        if protocol in ("http", "https"):  # no listing over HTTP: the URL is one file
            found_any = True
            name = posixpath.basename(pattern.split("?", 1)[0]) or pattern
            yield Part(_kind_by_name(name) or "file", pattern, name)
            continue
        if any(c in path for c in "*?[") and not fs.exists(path):
            matches = sorted(fs.glob(path))
            root = path.split("*", 1)[0].rsplit("/", 1)[0]
        elif fs.isdir(path):
            matches = None
            root = path.rstrip("/")
        elif fs.exists(path):
            matches = [path]
            root = posixpath.dirname(path)
        else:
            continue
        if matches is None:
            files = sorted(fs.find(path, withdirs=False))
        else:
            files = []
            for m in matches:
                files.extend(sorted(fs.find(m, withdirs=False)) if fs.isdir(m) else [m])
        for f in files:
            found_any = True
            rel = f[len(root) :].lstrip("/") if f.startswith(root) else posixpath.basename(f)
            base = posixpath.basename(f)
            url = _join(protocol, f)
            if base.startswith("."):
                yield Skipped(url, "hidden file")
                continue
            kind = _kind_by_name(base)
            ext = posixpath.splitext(base)[1].lower()
            if kind is None:
                if not all_files and ext in NON_MEDIA_EXTENSIONS:
                    yield Skipped(url, "not media by its name")
                    continue
                kind = _kind_by_magic(fs, f)
            yield Part(kind, url, rel)
    if not found_any:
        raise ScanError(f"{source}: no such file or folder (or nothing in it)")
