"""The value a source hands to the scanner for each dataset item."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from earmark.fileio import sha256_file


@dataclass(frozen=True)
class ItemData:
    """One dataset item, read from its source.

    Exactly one of ``data`` (the encoded bytes of a media file), ``samples`` (already decoded audio,
    as Parquet ``{array, sampling_rate}`` columns hold it), ``path`` (a local file, read by the
    decoder itself) or ``error`` (why the container could not give this item) is set.

    Attributes
    ----------
    id : str
        Stable identifier, the report's ``file`` field (``clips/a.mp3``,
        ``shard-000003.tar::key.mp3``, ``train-00000-of-00005.parquet::row 17``).
    source_path : str or None
        The path the container records for the item (Parquet ``audio.path``, WebDataset json
        ``source_file``), when it records one.
    """

    id: str
    data: bytes | None = None
    samples: np.ndarray | None = None
    sample_rate: int = 0
    path: str | None = None
    error: str = ""
    error_kind: str = ""
    source_path: str | None = None
    size: int = 0

    def sha256(self) -> str:
        """SHA-256 of the item's bytes (of its float32 little-endian samples when it came decoded)."""
        h = hashlib.sha256()
        if self.data is not None:
            h.update(self.data)
        elif self.samples is not None:
            h.update(np.ascontiguousarray(self.samples, dtype="<f4").tobytes())
        elif self.path is not None:
            return sha256_file(self.path)[0]
        return h.hexdigest()
