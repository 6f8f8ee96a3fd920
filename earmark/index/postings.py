"""Exact-key postings in sorted arrays: the index of the landmark family.

Keys are uint32 sorted once (stable, so equal keys keep insertion order and the index is
deterministic); payload arrays are aligned with them. A lookup of many key ranges at once is two
``searchsorted`` calls and a repeat/cumsum expansion: no Python loop per key. The arrays can be saved
as ``.npy`` and memory-mapped, like the Chromaprint segments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from earmark.errors import ParameterError
from earmark.fingerprint.landmarks import Triplets

#: A predicate on looked-up landmark postings: given each hit's query index, anchor pitch and span,
#: which hits to keep (a boolean mask).
LookupFilter = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

#: Key ranges at most this many values wide are counted by comparison, wider ones by a second search.
NARROW_RANGE = 4


@dataclass(frozen=True)
class Postings:
    """Sorted keys and their payload columns (all the same length).

    ``distinct`` holds each distinct key once and ``starts`` the row where its postings begin (one
    more entry than ``distinct``, the last being ``len(keys)``): the lookup searches the distinct
    keys (about half as many as the postings in the benchmark's catalogue). They are derived from
    ``keys`` when not given (an index written without them); catalogue segments store them so that
    opening a large index costs no pass over its keys.
    """

    keys: np.ndarray  # uint32, sorted
    columns: dict[str, np.ndarray]
    distinct: np.ndarray | None = None  # uint32, strictly increasing
    starts: np.ndarray | None = None  # int64, len(distinct) + 1

    def __post_init__(self) -> None:
        if self.distinct is None or self.starts is None:
            distinct, starts = distinct_keys(self.keys)
            object.__setattr__(self, "distinct", distinct)
            object.__setattr__(self, "starts", starts)
        elif len(self.starts) != len(self.distinct) + 1 or int(self.starts[-1]) != len(self.keys):
            raise ParameterError(f"{len(self.distinct)} distinct keys need {len(self.distinct) + 1} starts "
                                 f"ending at {len(self.keys)}")

    @classmethod
    def build(cls, keys: np.ndarray, **columns: np.ndarray) -> Postings:
        keys = np.asarray(keys, dtype=np.uint32)
        for name, col in columns.items():
            if len(col) != len(keys):
                raise ParameterError(f"column {name} has {len(col)} rows, keys have {len(keys)}")
        order = np.argsort(keys, kind="stable")
        return cls(keys=keys[order], columns={k: np.asarray(v)[order] for k, v in columns.items()})

    @classmethod
    def from_triplets(cls, rec_ids: list[int] | np.ndarray, trips: list[Triplets]) -> Postings:
        """Landmark postings of several recordings: key -> (rec, t1, p1, span), as the catalogue
        stores them (recording ids int32, times and pitches float32)."""
        def cat(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
            return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype)

        return cls.build(
            cat([t.key for t in trips], np.uint32),
            rec=cat([np.full(len(t), r) for r, t in zip(rec_ids, trips, strict=True)], np.int32),
            t1=cat([t.t1 for t in trips], np.float32),
            p1=cat([t.p1 for t in trips], np.float32),
            span=cat([t.span for t in trips], np.float32),
        )

    def select(self, rows: np.ndarray) -> Postings:
        """The postings at ``rows`` (ascending rows keep the keys sorted)."""
        return Postings(keys=self.keys[rows], columns={k: v[rows] for k, v in self.columns.items()})

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every posting with ``lo[q] <= key <= hi[q]``.

        Returns
        -------
        query : np.ndarray, int64
            Index into ``lo``/``hi`` of each hit.
        posting : np.ndarray, int64
            Row of each hit in this index.
        """
        # probing in key order keeps the binary searches in cache (several times faster on
        # memory-mapped keys than probing in query order)
        by_key = np.argsort(lo)  # any order of equal keys: callers depend on the set of hits only
        lo_k = np.asarray(lo, dtype=np.uint32)[by_key]
        hi_k = np.asarray(hi, dtype=np.uint32)[by_key]
        distinct, row_of = self.distinct, self.starts
        assert distinct is not None and row_of is not None  # set in __post_init__
        first = np.searchsorted(distinct, lo_k, side="left")  # first distinct key >= lo
        width = int((hi_k.astype(np.int64) - lo_k).max(initial=0)) + 1
        if width <= NARROW_RANGE:
            # a range of w key values holds at most w distinct keys: count those <= hi among the next w
            # (cheaper than a second binary search; the landmark probes span 3 values)
            last = first.copy()
            top = len(distinct) - 1
            for j in range(width):
                at = first + j
                last += (at <= top) & (distinct[np.minimum(at, top)] <= hi_k)
        else:
            last = np.searchsorted(distinct, hi_k, side="right")
        a, b = row_of[first], row_of[np.maximum(last, first)]
        counts = b - a
        query = np.repeat(by_key, counts)
        if len(query) == 0:
            return query.astype(np.int64), np.zeros(0, np.int64)
        starts = np.repeat(a - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        posting = starts + np.arange(len(query))
        return query.astype(np.int64), posting.astype(np.int64)

    def lookup_accepted(self, lo: np.ndarray, hi: np.ndarray, accept: LookupFilter | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`lookup` of landmark postings, keeping the hits ``accept`` passes (all without it).
        Returns ``(query, posting, p1, span)``: the anchor pitch and span read once, for the filter
        and for the caller; the other columns are left for the caller to read for the kept hits."""
        q, rows = self.lookup(lo, hi)
        p1, span = self.columns["p1"][rows], self.columns["span"][rows]
        if accept is not None:
            ok = np.flatnonzero(accept(q, p1, span))
            q, rows, p1, span = q[ok], rows[ok], p1[ok], span[ok]
        return q, rows, p1, span


def distinct_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of sorted ``keys`` and the row where each one's run starts (with
    ``len(keys)`` appended)."""
    keys = np.asarray(keys)
    if len(keys) == 0:
        return np.zeros(0, np.uint32), np.zeros(1, np.int64)
    first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return keys[first].astype(np.uint32), np.append(first, len(keys)).astype(np.int64)


def brute_force_lookup(keys: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> set[tuple[int, int]]:
    """Reference for tests: (query, key row) pairs by direct comparison (rows of unsorted ``keys``)."""
    keys = np.asarray(keys, dtype=np.int64)
    return {(q, int(r)) for q in range(len(lo)) for r in np.flatnonzero((keys >= lo[q]) & (keys <= hi[q]))}
