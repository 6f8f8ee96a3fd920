"""Read-only, memory-mapped view of a catalogue for matching (one per worker process)."""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earmark.catalogue.store import SEGMENT_FORMAT, Catalogue, Recording
from earmark.errors import CatalogueError, ParamsMismatchError
from earmark.fingerprint.landmarks import Triplets
from earmark.index import FaissBinaryIndex
from earmark.index.postings import LookupFilter, Postings


@dataclass(frozen=True)
class WindowHits:
    """Flat search results: one row per (query window, catalogue window) neighbour pair.

    All arrays have the same length; ``qpos`` and ``rpos`` are item indexes (query, recording).
    """

    qpos: np.ndarray  # int64
    rec_id: np.ndarray  # int64
    rpos: np.ndarray  # int64
    distance: np.ndarray  # int32, Hamming bits over the window


@dataclass
class _Segment:
    name: str
    codes: np.ndarray
    active: np.ndarray
    rec_ids: np.ndarray
    rec_starts: np.ndarray
    win_item: np.ndarray
    index: FaissBinaryIndex
    landmarks: Postings  # keys; columns rec, t1, p1, span
    env: np.ndarray  # uint8 frames x bands, every recording's envelope concatenated
    env_starts: np.ndarray  # int64, n_recordings + 1
    pk: tuple[np.ndarray, np.ndarray, np.ndarray]  # reference peaks: frame, bin, level
    pk_starts: np.ndarray  # int64, n_recordings + 1


def _load_array(path: Path, *, mmap: bool) -> np.ndarray:
    """A stored array, memory-mapped when asked, as a plain ndarray (a view of the mapping:
    np.memmap's own indexing costs tens of microseconds a call, and the matchers index these arrays
    per candidate)."""
    return np.asarray(np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False))


class CatalogueReader:
    """Everything the matcher needs, memory-mapped: window search, reference codes, metadata."""

    def __init__(self, root: str | os.PathLike, *, mmap: bool = True):
        with Catalogue.open(root) as cat:
            self.root = Path(root)
            self.config = cat.config
            self.params_id = cat.config.params_id
            self.landmark_config = cat.landmark_config
            self.envelope_config = cat.envelope_config
            self.window_width = int(cat.manifest["window_width"])
            self.digest = cat.digest()
            seg_names = cat.segment_names()
            self.recordings: dict[int, Recording] = {r.rec_id: r for r in cat.recordings()}
        self._segments: list[_Segment] = []
        self._where: dict[int, tuple[int, int, int]] = {}  # rec_id -> (segment index, start, end)
        self._where_env: dict[int, tuple[int, int, int]] = {}  # the same, in envelope frames
        self._where_pk: dict[int, tuple[int, int, int]] = {}  # the same, in reference peaks
        for name in seg_names:
            d = self.root / "segments" / name
            try:
                m = json.loads((d / "manifest.json").read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise CatalogueError(f"{d}: unreadable segment manifest: {e}") from e
            if m.get("format") != SEGMENT_FORMAT:
                raise CatalogueError(f"{d}: not an earmark segment")
            if m.get("params_id") != self.params_id:
                raise ParamsMismatchError(
                    f"{d}: segment fingerprints use parameters {m.get('params_id')}, "
                    f"the catalogue uses {self.params_id}"
                )
            if m.get("landmark_params_id") != self.landmark_config.params_id:
                raise ParamsMismatchError(
                    f"{d}: segment landmarks use parameters {m.get('landmark_params_id')}, "
                    f"the catalogue uses {self.landmark_config.params_id}"
                )
            if m.get("envelope_params_id") != self.envelope_config.params_id:
                raise ParamsMismatchError(
                    f"{d}: segment envelopes use parameters {m.get('envelope_params_id')}, "
                    f"the catalogue uses {self.envelope_config.params_id}"
                )
            if int(m.get("window_width", -1)) != self.window_width:
                raise ParamsMismatchError(f"{d}: window width {m.get('window_width')} != {self.window_width}")
            def load(file: str, mapped: bool = True, d: Path = d) -> np.ndarray:
                return _load_array(d / file, mmap=mmap and mapped)

            seg = _Segment(
                name=name,
                codes=load("codes.npy"),
                active=load("active.npy"),
                rec_ids=load("rec_ids.npy", mapped=False),
                rec_starts=load("rec_starts.npy", mapped=False),
                win_item=load("win_item.npy"),
                index=FaissBinaryIndex.load(d / "windows.faissbin", mmap=mmap),
                landmarks=Postings(  # stored sorted: no build step
                    keys=load("lm_keys.npy"),
                    columns={c: load(f"lm_{c}.npy") for c in ("rec", "t1", "p1", "span")},
                    # derived from the keys for segments written without them
                    **({"distinct": load("lm_distinct.npy"), "starts": load("lm_starts.npy")}
                       if "lm_starts.npy" in m.get("files", {}) else {})),
                env=load("env.npy"),
                env_starts=load("env_starts.npy", mapped=False),
                pk=(load("pk_frame.npy"), load("pk_bin.npy"), load("pk_level.npy")),
                pk_starts=load("pk_starts.npy", mapped=False),
            )
            si = len(self._segments)
            self._segments.append(seg)
            for j, rid in enumerate(seg.rec_ids):
                self._where[int(rid)] = (si, int(seg.rec_starts[j]), int(seg.rec_starts[j + 1]))
                self._where_env[int(rid)] = (si, int(seg.env_starts[j]), int(seg.env_starts[j + 1]))
                self._where_pk[int(rid)] = (si, int(seg.pk_starts[j]), int(seg.pk_starts[j + 1]))
        self._live = np.array(sorted(self.recordings), dtype=np.int64)
        self._live_mask = np.zeros(int(max(self._where, default=0)) + 1, bool)
        self._live_mask[self._live[self._live < len(self._live_mask)]] = True
        # segments none of whose recordings was removed skip the live filter of every lookup
        self._all_live = {seg.name: bool(self._live_mask[np.asarray(seg.rec_ids, np.int64)].all())
                          for seg in self._segments}
        self.n_items_live = sum(r.n_items for r in self.recordings.values())
        self.landmark_seconds = float(sum(r.duration_s for r in self.recordings.values()))
        self.longest_duration_s = float(max((r.duration_s for r in self.recordings.values()), default=0.0))
        self.envelope_frames_live = sum(b - a for rid, (_, a, b) in self._where_env.items()
                                        if rid in self.recordings)

    def recording_duration(self, rec_id: int) -> float:
        return float(self.recordings[int(rec_id)].duration_s)

    def landmark_lookup(self, lo: np.ndarray, hi: np.ndarray, accept: LookupFilter | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every live landmark posting with ``lo[q] <= key <= hi[q]``, over all segments.

        Returns ``(q, rec_id, t1, p1, span)``: the index into ``lo``/``hi`` of each hit and the
        posting's recording, anchor time, anchor pitch and span. With ``accept``, only the hits it
        passes (given ``q``, ``p1`` and ``span``) are returned; the other columns are read for those
        alone (most hits of a pitch- and tempo-tolerant probe fall outside the tolerance).
        """
        parts = []
        for seg in self._segments:
            q, rows, p1, span = seg.landmarks.lookup_accepted(lo, hi, accept)
            if len(q) == 0:
                continue
            cols = seg.landmarks.columns
            rec = np.asarray(cols["rec"][rows], dtype=np.int64)
            if not self._all_live[seg.name]:
                live = np.flatnonzero(self._live_mask[rec])
                q, rows, rec, p1, span = q[live], rows[live], rec[live], p1[live], span[live]
            parts.append((q, rec, np.asarray(cols["t1"][rows]), p1, span))
        if not parts:
            z = np.zeros(0, np.int64)
            f = np.zeros(0, np.float32)
            return z, z, f, f, f
        if len(parts) == 1:
            return parts[0]  # type: ignore[return-value]
        return tuple(np.concatenate(x) for x in zip(*parts, strict=True))  # type: ignore[return-value]

    @property
    def n_recordings(self) -> int:
        return len(self.recordings)

    def search(self, windows: np.ndarray, qpos: np.ndarray, *, k: int, max_distance: int) -> WindowHits:
        """Nearest catalogue windows of each query window, within ``max_distance`` bits.

        Parameters
        ----------
        windows : np.ndarray, shape (q, 4 * window_width), uint8
            Packed query windows.
        qpos : np.ndarray, shape (q,), int64
            Item index of each query window in the query.
        k : int
            Neighbours per window and segment.
        max_distance : int
            Neighbours farther than this many bits are dropped.
        """
        out_q, out_r, out_p, out_d = [], [], [], []
        for seg in self._segments:
            if len(windows) == 0 or seg.index.ntotal == 0:
                continue
            hits = seg.index.search(windows, k)
            keep = (hits.ids >= 0) & (hits.distances <= max_distance)
            rows, cols = np.nonzero(keep)
            item = np.asarray(seg.win_item)[hits.ids[rows, cols]]
            which = np.searchsorted(seg.rec_starts, item, side="right") - 1
            rec = seg.rec_ids[which]
            out_q.append(qpos[rows])
            out_r.append(rec)
            out_p.append(item - seg.rec_starts[which])
            out_d.append(hits.distances[rows, cols])
        if not out_q:
            z = np.zeros(0, np.int64)
            return WindowHits(z, z, z, np.zeros(0, np.int32))
        rec = np.concatenate(out_r)
        live = np.isin(rec, self._live)
        return WindowHits(
            qpos=np.concatenate(out_q)[live],
            rec_id=rec[live],
            rpos=np.concatenate(out_p)[live],
            distance=np.concatenate(out_d)[live],
        )

    def landmark_postings(self, rec_id: int) -> Triplets:
        """The landmark triplets registered for one recording (stop-listed keys excluded), read
        from its segment's postings."""
        lm = self._segments[self._where[int(rec_id)][0]].landmarks
        rows = np.flatnonzero(np.asarray(lm.columns["rec"]) == int(rec_id))
        t1, p1, span = (np.asarray(lm.columns[c][rows], dtype=np.float64) for c in ("t1", "p1", "span"))
        return Triplets(key=np.asarray(lm.keys[rows]), anchor=np.arange(len(rows), dtype=np.int64),
                        t1=t1, p1=p1, span=span)

    def envelope(self, rec_id: int) -> np.ndarray:
        """The spectral envelope (uint8 frames x bands) of one recording, as a read-only view."""
        si, a, b = self._where_env[int(rec_id)]
        return self._segments[si].env[a:b]

    def peak_map(self, rec_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The reference peaks of one recording (frame, log-frequency bin, level in dB), in time
        order, as read-only views."""
        si, a, b = self._where_pk[int(rec_id)]
        frame, bins, level = self._segments[si].pk
        return frame[a:b], bins[a:b], level[a:b]

    def ref(self, rec_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Codes (uint32) and active mask (bool) of one recording, as read-only views."""
        si, a, b = self._where[int(rec_id)]
        seg = self._segments[si]
        return seg.codes[a:b], seg.active[a:b]


def open_reader(root: str | os.PathLike) -> CatalogueReader:
    """Open a catalogue for matching; raises CatalogueError if it is not one."""
    try:
        return CatalogueReader(root)
    except sqlite3.Error as e:
        raise CatalogueError(f"{root}: unreadable catalogue database: {e}") from e
