"""Binary window indexes: FAISS fast path and a brute-force reference with one protocol."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import faiss
import numpy as np

from earmark.errors import ParameterError


def pack_windows(codes: np.ndarray, *, width: int) -> np.ndarray:
    """Pack every run of ``width`` consecutive items into one binary vector.

    Parameters
    ----------
    codes : np.ndarray, shape (n,), uint32
    width : int
        Items per window.

    Returns
    -------
    np.ndarray, shape (max(n - width + 1, 0), 4 * width), uint8
        Row ``j`` holds items ``j .. j + width - 1`` (little-endian bytes).
    """
    if width < 1:
        raise ParameterError(f"width={width} must be >= 1")
    codes = np.ascontiguousarray(codes, dtype="<u4")
    m = len(codes) - width + 1
    if m <= 0:
        return np.zeros((0, 4 * width), np.uint8)
    view = np.lib.stride_tricks.sliding_window_view(codes, width)
    return np.ascontiguousarray(view).view(np.uint8).reshape(m, 4 * width)


def window_ok(active: np.ndarray, *, width: int) -> np.ndarray:
    """True for windows (as in :func:`pack_windows`) whose items are all active."""
    active = np.asarray(active, dtype=bool)
    m = len(active) - width + 1
    if m <= 0:
        return np.zeros(0, bool)
    c = np.concatenate([[0], np.cumsum(~active)])
    return (c[width:] - c[:m]) == 0


@dataclass(frozen=True)
class Hits:
    """Search results: for each query row, up to ``k`` neighbours.

    Attributes
    ----------
    distances : np.ndarray, shape (q, k), int32
        Hamming distances in bits; rows are sorted ascending.
    ids : np.ndarray, shape (q, k), int64
        Row numbers in the index; -1 where fewer than ``k`` neighbours exist.
    """

    distances: np.ndarray
    ids: np.ndarray


class BinaryIndex(Protocol):
    """What the matcher needs of a window index."""

    d: int

    @property
    def ntotal(self) -> int: ...

    def add(self, vectors: np.ndarray) -> None: ...

    def search(self, queries: np.ndarray, k: int) -> Hits: ...


def _check(vectors: np.ndarray, d: int) -> np.ndarray:
    v = np.ascontiguousarray(vectors, dtype=np.uint8)
    if v.ndim != 2 or v.shape[1] * 8 != d:
        raise ParameterError(f"vectors of shape {v.shape} do not hold {d}-bit codes")
    return v


class BruteForceIndex:
    """Exact k-NN by popcount over every stored vector (the reference implementation).

    Ties are broken by the lower id, as FAISS's flat index does.
    """

    def __init__(self, d: int):
        if d % 8:
            raise ParameterError(f"d={d} must be a multiple of 8")
        self.d = d
        self._data = np.zeros((0, d // 8), np.uint8)

    @property
    def ntotal(self) -> int:
        return len(self._data)

    def add(self, vectors: np.ndarray) -> None:
        self._data = np.concatenate([self._data, _check(vectors, self.d)])

    def search(self, queries: np.ndarray, k: int) -> Hits:
        q = _check(queries, self.d)
        dist = np.bitwise_count(q[:, None, :] ^ self._data[None, :, :]).sum(axis=2, dtype=np.int32)
        kk = min(k, self.ntotal)
        order = np.argsort(dist, axis=1, kind="stable")[:, :kk]
        out_d = np.full((len(q), k), np.iinfo(np.int32).max, np.int32)
        out_i = np.full((len(q), k), -1, np.int64)
        out_d[:, :kk] = np.take_along_axis(dist, order, axis=1)
        out_i[:, :kk] = order
        return Hits(distances=out_d, ids=out_i)


class FaissBinaryIndex:
    """FAISS exact Hamming k-NN (``IndexBinaryFlat``), saved and memory-mapped from disk."""

    def __init__(self, d: int, *, index: faiss.IndexBinary | None = None):
        if d % 8:
            raise ParameterError(f"d={d} must be a multiple of 8")
        self.d = d
        self._index = index if index is not None else faiss.IndexBinaryFlat(d)
        if self._index.d != d:
            raise ParameterError(f"FAISS index has d={self._index.d}, expected {d}")

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    def add(self, vectors: np.ndarray) -> None:
        v = _check(vectors, self.d)
        if len(v):
            self._index.add(v)

    def search(self, queries: np.ndarray, k: int) -> Hits:
        q = _check(queries, self.d)
        if len(q) == 0 or self.ntotal == 0:  # as BruteForceIndex: no neighbour, infinite distance
            far = np.full((len(q), k), np.iinfo(np.int32).max, np.int32)
            return Hits(far, np.full((len(q), k), -1, np.int64))
        dist, ids = self._index.search(q, k)
        return Hits(distances=dist.astype(np.int32, copy=False), ids=ids.astype(np.int64, copy=False))

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically (temporary name, then rename)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        faiss.write_index_binary(self._index, str(tmp))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike, *, mmap: bool = True) -> FaissBinaryIndex:
        flags = faiss.IO_FLAG_MMAP if mmap else 0
        index = faiss.read_index_binary(str(path), flags)
        return cls(index.d, index=index)
