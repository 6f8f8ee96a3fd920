"""earmark.index: window packing, and the FAISS fast path against the brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest

from earmark.errors import ParameterError
from earmark.index import BruteForceIndex, FaissBinaryIndex, Hits, pack_windows, window_ok


# ------------------------------------------------------------------------------- packing
def test_pack_windows_known_array():
    codes = np.array([0x04030201, 0x08070605, 0xFFFFFFFF, 0x00000000, 0x11223344], np.uint32)
    w = pack_windows(codes, width=2)
    assert w.shape == (4, 8) and w.dtype == np.uint8
    # row j holds items j, j+1 as little-endian bytes
    assert w[0].tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert w[1].tolist() == [5, 6, 7, 8, 255, 255, 255, 255]
    assert w[3].tolist() == [0, 0, 0, 0, 0x44, 0x33, 0x22, 0x11]
    for j in range(4):
        np.testing.assert_array_equal(w[j].view("<u4"), codes[j : j + 2])


@pytest.mark.parametrize(("n", "width", "rows"), [(10, 8, 3), (8, 8, 1), (7, 8, 0), (0, 8, 0), (5, 1, 5)])
def test_pack_windows_shapes(n, width, rows):
    w = pack_windows(np.arange(n, dtype=np.uint32), width=width)
    assert w.shape == (rows, 4 * width)
    assert w.flags.c_contiguous


def test_pack_windows_rejects_zero_width():
    with pytest.raises(ParameterError, match="width=0 must be >= 1"):
        pack_windows(np.arange(4, dtype=np.uint32), width=0)


def test_window_ok_marks_windows_of_active_items_only():
    active = np.array([1, 1, 1, 0, 1, 1, 1, 1, 0, 1], bool)
    ok = window_ok(active, width=3)
    assert ok.shape == (8,)
    # window j covers items j..j+2
    expected = [all(active[j : j + 3]) for j in range(8)]
    assert ok.tolist() == expected == [True, False, False, False, True, True, False, False]
    assert window_ok(active, width=11).shape == (0,)
    assert window_ok(np.ones(4, bool), width=4).tolist() == [True]


# ------------------------------------------------------------------------------- FAISS vs reference
def _both(d: int, data: np.ndarray) -> tuple[FaissBinaryIndex, BruteForceIndex]:
    f, b = FaissBinaryIndex(d), BruteForceIndex(d)
    f.add(data)
    b.add(data)
    assert f.ntotal == b.ntotal == len(data)
    return f, b


def _assert_same_hits(a: Hits, b: Hits) -> None:
    np.testing.assert_array_equal(a.distances, b.distances)
    np.testing.assert_array_equal(a.ids, b.ids)
    assert a.distances.dtype == b.distances.dtype == np.int32
    assert a.ids.dtype == b.ids.dtype == np.int64


@pytest.mark.parametrize("k", [1, 4, 16, 64])
def test_faiss_equals_brute_force_on_random_windows(rng, k):
    d = 256
    data = rng.integers(0, 256, (500, d // 8), dtype=np.uint8)
    # queries: noisy copies of stored rows (close neighbours) and unrelated rows
    flips = rng.random((20, d)) < 0.1
    noisy = np.packbits(np.unpackbits(data[:20], axis=1) ^ flips, axis=1)
    queries = np.concatenate([noisy, rng.integers(0, 256, (20, d // 8), dtype=np.uint8)])
    f, b = _both(d, data)
    hf, hb = f.search(queries, k), b.search(queries, k)
    _assert_same_hits(hf, hb)
    assert (np.diff(hf.distances, axis=1) >= 0).all()
    # each noisy copy finds its own row first
    assert hf.ids[:20, 0].tolist() == list(range(20))


def test_faiss_equals_brute_force_with_ties(rng):
    """Duplicated rows and a tiny code space make many equal distances: lower ids win in both."""
    d = 64
    base = rng.integers(0, 256, (40, d // 8), dtype=np.uint8)
    data = np.concatenate([base, base, base[:10]])[rng.permutation(90)]
    queries = np.concatenate([base[:10], rng.integers(0, 256, (10, d // 8), dtype=np.uint8)])
    f, b = _both(d, data)
    for k in (1, 3, 30):
        _assert_same_hits(f.search(queries, k), b.search(queries, k))
    hits = b.search(base[:1], 3)
    assert hits.distances[0, :2].tolist() == [0, 0]  # the two copies, exactly
    assert hits.ids[0, 0] < hits.ids[0, 1]

    small = rng.integers(0, 4, (300, 1), dtype=np.uint8)  # 8-bit codes, only 4 values: ties everywhere
    f, b = _both(8, small)
    q = rng.integers(0, 256, (50, 1), dtype=np.uint8)
    for k in (1, 7, 100):
        _assert_same_hits(f.search(q, k), b.search(q, k))


def test_fewer_stored_than_k_pads_with_minus_one(rng):
    data = rng.integers(0, 256, (3, 4), dtype=np.uint8)
    f, b = _both(32, data)
    hf, hb = f.search(data, 5), b.search(data, 5)
    _assert_same_hits(hf, hb)
    assert (hf.ids[:, 3:] == -1).all()
    assert sorted(hf.ids[0, :3].tolist()) == [0, 1, 2]


def test_empty_index_and_empty_queries_return_no_neighbours(rng):
    q = rng.integers(0, 256, (4, 4), dtype=np.uint8)
    for index in (FaissBinaryIndex(32), BruteForceIndex(32)):
        hits = index.search(q, 2)
        assert hits.ids.shape == (4, 2) and (hits.ids == -1).all()
    f = FaissBinaryIndex(32)
    f.add(q)
    assert f.search(np.zeros((0, 4), np.uint8), 2).ids.shape == (0, 2)


def test_wrong_width_vectors_are_rejected():
    with pytest.raises(ParameterError, match="multiple of 8"):
        FaissBinaryIndex(30)
    with pytest.raises(ParameterError, match="multiple of 8"):
        BruteForceIndex(12)
    for index in (FaissBinaryIndex(64), BruteForceIndex(64)):
        with pytest.raises(ParameterError, match=r"do not hold 64-bit codes"):
            index.add(np.zeros((2, 4), np.uint8))
        with pytest.raises(ParameterError, match=r"do not hold 64-bit codes"):
            index.search(np.zeros(8, np.uint8), 1)


@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_round_trip(tmp_path, rng, mmap):
    d = 256
    data = rng.integers(0, 256, (300, d // 8), dtype=np.uint8)
    queries = rng.integers(0, 256, (25, d // 8), dtype=np.uint8)
    f = FaissBinaryIndex(d)
    f.add(data)
    path = tmp_path / "windows.faissbin"
    f.save(path)
    assert path.exists() and not path.with_name(path.name + ".tmp").exists()
    g = FaissBinaryIndex.load(path, mmap=mmap)
    assert g.d == d and g.ntotal == 300
    _assert_same_hits(g.search(queries, 10), f.search(queries, 10))
    ref = BruteForceIndex(d)
    ref.add(data)
    _assert_same_hits(g.search(queries, 10), ref.search(queries, 10))


def test_saving_twice_gives_identical_bytes(tmp_path, rng):
    data = rng.integers(0, 256, (100, 32), dtype=np.uint8)
    for name in ("a", "b"):
        f = FaissBinaryIndex(256)
        f.add(data)
        f.save(tmp_path / name)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
