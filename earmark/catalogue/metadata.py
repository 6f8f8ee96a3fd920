"""Where recordings and their rights metadata come from: a CSV, or a folder of tagged audio."""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from earmark.audio import AUDIO_EXTENSIONS
from earmark.errors import MetadataError

log = logging.getLogger(__name__)

#: Columns every catalogue record has (empty strings where unknown).
CORE_FIELDS = ("track_id", "isrc", "title", "artist", "album", "rights_holder")
REQUIRED_CSV_COLUMNS = ("track_id", "path")
_ISRC = re.compile(r"^[A-Z]{2}[A-Z0-9]{3}\d{7}$")


@dataclass(frozen=True)
class RecordingSpec:
    """One recording to register: where its audio is and what we know about it."""

    path: Path
    track_id: str
    isrc: str = ""
    title: str = ""
    artist: str = ""
    album: str = ""
    rights_holder: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def metadata(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in CORE_FIELDS}


def normalise_isrc(value: str) -> str:
    """Upper-case an ISRC and drop separators; the value is kept as given if it does not look like one."""
    v = re.sub(r"[\s-]", "", value or "").upper()
    return v if _ISRC.match(v) else (value or "").strip()


def read_csv(path: str | Path) -> list[RecordingSpec]:
    """Read a catalogue CSV: ``track_id`` and ``path`` (relative to the CSV's folder) are required,
    ``isrc, title, artist, album, rights_holder`` are recognised, other columns are kept in ``extra``.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in REQUIRED_CSV_COLUMNS if c not in columns]
            if missing:
                raise MetadataError(f"{path}: missing required column(s) {', '.join(missing)}")
            specs = []
            seen: set[str] = set()
            for lineno, row in enumerate(reader, start=2):
                row = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
                tid, rel = row.get("track_id", ""), row.get("path", "")
                if not tid or not rel:
                    raise MetadataError(f"{path}:{lineno}: empty track_id or path")
                if tid in seen:
                    raise MetadataError(f"{path}:{lineno}: track_id {tid!r} appears twice")
                seen.add(tid)
                extra = {k: v for k, v in row.items() if k not in CORE_FIELDS and k != "path"}
                specs.append(
                    RecordingSpec(
                        path=(path.parent / rel),
                        track_id=tid,
                        isrc=normalise_isrc(row.get("isrc", "")),
                        title=row.get("title", ""),
                        artist=row.get("artist", ""),
                        album=row.get("album", ""),
                        rights_holder=row.get("rights_holder", ""),
                        extra=extra,
                    )
                )
    except OSError as e:
        raise MetadataError(f"{path}: cannot read: {e.strerror or e}") from e
    except (csv.Error, UnicodeDecodeError) as e:
        raise MetadataError(f"{path}: not a readable CSV: {e}") from e
    return specs


def _tag(tags: object, *names: str) -> str:
    if not tags:
        return ""
    for n in names:
        try:
            v = tags.get(n)  # type: ignore[attr-defined]
        except (KeyError, ValueError, TypeError):
            v = None
        if v:
            v = v[0] if isinstance(v, list) else v
            v = getattr(v, "text", v)
            v = v[0] if isinstance(v, list) and v else v
            if str(v).strip():
                return str(v).strip()
    return ""


def spec_from_file(path: Path, root: Path) -> RecordingSpec:
    """Metadata for one audio file from its tags, falling back to its file name.

    ``track_id`` is the ISRC when tagged, else the path relative to ``root`` without extension.
    A file name of the form ``Artist - Title`` fills artist and title when tags do not.
    """
    import mutagen

    try:
        mf = mutagen.File(path, easy=True)
        tags = mf.tags if mf is not None else None
    except Exception as e:  # mutagen raises many types on odd files; tags are optional
        log.debug("%s: no readable tags: %s", path, e)
        tags = None
    title = _tag(tags, "title")
    artist = _tag(tags, "artist", "albumartist")
    album = _tag(tags, "album")
    isrc = normalise_isrc(_tag(tags, "isrc", "tsrc"))
    rights = _tag(tags, "copyright", "organization", "label")
    stem = path.stem
    if (not title or not artist) and " - " in stem:
        a, t = stem.split(" - ", 1)
        artist, title = artist or a.strip(), title or t.strip()
    rel = path.relative_to(root).with_suffix("").as_posix()
    return RecordingSpec(
        path=path,
        track_id=isrc or rel,
        isrc=isrc,
        title=title or stem,
        artist=artist,
        album=album,
        rights_holder=rights,
    )


def iter_audio_files(root: str | Path) -> Iterator[Path]:
    """Audio files below ``root`` by extension, in sorted order, not following symlinked folders."""
    root = Path(root)
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS:
            yield p


def specs_from_folder(root: str | Path) -> list[RecordingSpec]:
    """One :class:`RecordingSpec` per audio file below ``root`` (see :func:`spec_from_file`)."""
    root = Path(root)
    if not root.is_dir():
        raise MetadataError(f"{root}: not a folder")
    return [spec_from_file(p, root) for p in iter_audio_files(root)]
