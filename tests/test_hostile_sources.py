"""Hostile and broken containers: each bad member is an error line that says why, never an exception;
the rest of the container is still scanned; nothing is ever written outside the scan's folder."""

from __future__ import annotations

import io
import json
import struct
import tarfile
import warnings
import zipfile
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SR
from sourcekit import (
    answer,
    scan_records,
    tar_member,
    tar_symlink,
    tree,
    webdataset_members,
    write_tar,
    write_zip,
)

from earmark import synth
from earmark.scan.worker import ScanSettings
from earmark.sources import Limits, Part, iter_part

TEXT = b"la la la, this is text and not an mp3\n" * 40


def _scan_guarded(source, library, tmp_path: Path, monkeypatch, **kwargs) -> dict[str, dict]:
    """Scan from a working directory deep inside ``tmp_path``, and check that nothing changed in
    ``tmp_path`` (nor in the working directory) except the scan folder."""
    cwd = tmp_path / "cwd" / "a" / "b"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    before = tree(tmp_path)
    records = scan_records(source, library.catalogue, tmp_path / "scan" / "out", **kwargs)
    after = tree(tmp_path)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    outside = {p for p in changed if not p.startswith("scan")}
    assert not outside, f"the scan wrote outside its folder: {sorted(outside)}"
    assert sorted(p for p in changed if p.startswith("scan")) == [
        "scan", "scan/out", "scan/out/manifest.json", "scan/out/report.jsonl", "scan/out/results.jsonl",
        "scan/out/summary.json"]
    for name in ("evil.mp3", "evil2.mp3", "w.mp3"):  # '../../x' from the data folder or from the out folder
        for d in (Path("/abs"), Path("/"), tmp_path.parent, tmp_path.parent.parent, tmp_path / "scan"):
            assert not (d / name).exists(), d / name
    return records


def _error(record: dict, kind: str, *words: str) -> None:
    assert record["status"] == "error", record
    assert record["error_kind"] == kind, record
    for w in words:
        assert w in record["error"], record
    assert record["matches"] == []


# ------------------------------------------------------------------------------------ unsafe paths
def test_zip_with_traversal_and_absolute_member_names(clips, folder_answers, library, tmp_path, monkeypatch):
    good = clips["pos1.mp3"].data
    data = tmp_path / "data"
    data.mkdir()
    write_zip(data / "hostile.zip", [
        ("../../evil.mp3", good), ("/abs/evil.mp3", good), ("C:/w.mp3", good), ("..\\..\\w.mp3", good),
        ("ok/../../../evil.mp3", good), ("fine.mp3", good), ("dir/also-fine.mp3", clips["pos2.mp3"].data),
    ])
    records = _scan_guarded(data, library, tmp_path, monkeypatch)
    assert len(records) == 7
    for name in ("../../evil.mp3", "ok/../../../evil.mp3", "..\\..\\w.mp3"):
        _error(records[f"hostile.zip::{name}"], "unsafe_path", "path traversal")
    for name in ("/abs/evil.mp3", "C:/w.mp3"):
        _error(records[f"hostile.zip::{name}"], "unsafe_path", "absolute path")
    assert answer(records["hostile.zip::fine.mp3"]) == answer(folder_answers["pos1.mp3"])
    assert answer(records["hostile.zip::dir/also-fine.mp3"]) == answer(folder_answers["pos2.mp3"])


def test_tar_with_traversal_absolute_and_link_members(clips, folder_answers, library, tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    good = clips["pos3.mp3"].data
    with tarfile.open(data / "hostile.tar", "w") as t:
        tar_member(t, "../evil.mp3", good)
        tar_member(t, "/abs/evil2.mp3", good)
        tar_symlink(t, "link.mp3", "/etc/passwd")
        tar_symlink(t, "rel.mp3", "../../../etc/hostname")
        info = tarfile.TarInfo("hard.mp3")
        info.type = tarfile.LNKTYPE
        info.linkname = "ok.mp3"
        t.addfile(info)
        tar_member(t, "ok.mp3", good)
        tar_member(t, "ok.json", json.dumps({"source_file": "s/ok.mp3"}).encode())
    records = _scan_guarded(data, library, tmp_path, monkeypatch)
    assert sorted(records) == sorted(f"hostile.tar::{n}" for n in (
        "../evil.mp3", "/abs/evil2.mp3", "link.mp3", "rel.mp3", "hard.mp3", "ok.mp3"))
    _error(records["hostile.tar::../evil.mp3"], "unsafe_path", "path traversal")
    _error(records["hostile.tar::/abs/evil2.mp3"], "unsafe_path", "absolute path")
    for name in ("link.mp3", "rel.mp3", "hard.mp3"):
        _error(records[f"hostile.tar::{name}"], "unsafe_path", "link")
    ok = records["hostile.tar::ok.mp3"]
    assert answer(ok) == answer(folder_answers["pos3.mp3"]) and ok["source_path"] == "s/ok.mp3"


# ---------------------------------------------------------------------------- bombs and size limits
@pytest.mark.parametrize(
    "limits, bomb_bytes",
    [(Limits(), 50 << 20), (Limits(bomb_min_bytes=1 << 20, max_compression_ratio=50), 4 << 20)],
    ids=["default-limits-50MB", "small-limits-4MB"],
)
def test_zip_compression_bomb(clips, folder_answers, library, tmp_path, monkeypatch, limits, bomb_bytes):
    data = tmp_path / "data"
    data.mkdir()
    write_zip(data / "bomb.zip", [("a-bomb.mp3", bytes(bomb_bytes)), ("b-ok.mp3", clips["pos4.mp3"].data)])
    with zipfile.ZipFile(data / "bomb.zip") as z:
        assert z.getinfo("a-bomb.mp3").compress_size < bomb_bytes / 500
    records = _scan_guarded(data, library, tmp_path, monkeypatch, settings=ScanSettings(limits=limits))
    _error(records["bomb.zip::a-bomb.mp3"], "bomb", "compression bomb", f"{bomb_bytes} bytes")
    assert answer(records["bomb.zip::b-ok.mp3"]) == answer(folder_answers["pos4.mp3"])


def _patch_declared_size(raw: bytes, name: bytes, size: int, crc: int | None = None) -> bytes:
    """Rewrite a zip member's declared uncompressed size (and CRC) in its local and central headers."""
    out = bytearray(raw)
    i = out.find(b"PK\x03\x04")
    while i >= 0:
        n, m = struct.unpack_from("<HH", out, i + 26)
        if bytes(out[i + 30 : i + 30 + n]) == name:
            struct.pack_into("<I", out, i + 22, size)
            if crc is not None:
                struct.pack_into("<I", out, i + 14, crc)
        i = out.find(b"PK\x03\x04", i + 4)
    i = out.find(b"PK\x01\x02")
    while i >= 0:
        n = struct.unpack_from("<H", out, i + 28)[0]
        if bytes(out[i + 46 : i + 46 + n]) == name:
            struct.pack_into("<I", out, i + 24, size)
            if crc is not None:
                struct.pack_into("<I", out, i + 16, crc)
        i = out.find(b"PK\x01\x02", i + 4)
    return bytes(out)


def test_zip_member_that_inflates_beyond_its_declared_size(clips, folder_answers, library, tmp_path,
                                                           monkeypatch):
    """A header that says 1000 bytes in front of 8 MB of deflated zeros: the ratio check sees nothing
    wrong, but the reader never takes more than was declared."""
    data = tmp_path / "data"
    data.mkdir()
    liar = bytes(8 << 20)
    buf = io.BytesIO()
    write_zip(buf, [("liar.mp3", liar), ("liar2.mp3", liar), ("ok.mp3", clips["pos5.mp3"].data)])
    raw = _patch_declared_size(buf.getvalue(), b"liar.mp3", 1000)
    raw = _patch_declared_size(raw, b"liar2.mp3", 1000, crc=zlib.crc32(liar[:1000]))
    (data / "liar.zip").write_bytes(raw)
    with zipfile.ZipFile(data / "liar.zip") as z:
        assert z.getinfo("liar.mp3").file_size == 1000
    records = _scan_guarded(data, library, tmp_path, monkeypatch,
                            settings=ScanSettings(limits=Limits(bomb_min_bytes=1 << 20)))
    # the CRC no longer matches what was read: a damaged member (zipfile itself stops at the declared
    # size, so this is corrupt_container, not the 'bomb' an older docs/scanning.md promised)
    _error(records["liar.zip::liar.mp3"], "corrupt_container", "damaged archive member")
    # the CRC was forged to match the declared prefix: only those 1000 bytes are read (and they are
    # not audio); the 8 MB behind them are never inflated into the item
    rec = records["liar.zip::liar2.mp3"]
    assert rec["status"] == "error" and rec["size_bytes"] == 1000
    assert answer(records["liar.zip::ok.mp3"]) == answer(folder_answers["pos5.mp3"])


def test_members_over_the_size_limit(clips, folder_answers, library, tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    big = clips["pos1.mp3"].data * 3  # 3 x 10 s of MP3, ~480 kB
    small = clips["pos2.mp3"].data
    limit = len(small) + 1000
    assert len(big) > limit
    write_zip(data / "z.zip", [("big.mp3", big), ("small.mp3", small)])
    write_tar(data / "t.tar", [("big.mp3", big), ("big.json", b'{"source_file": "x"}'), ("small.mp3", small)])
    pq.write_table(pa.table({"audio": [big, small]}), data / "p.parquet")
    records = _scan_guarded(data, library, tmp_path, monkeypatch,
                            settings=ScanSettings(limits=Limits(max_item_bytes=limit)))
    assert len(records) == 6
    _error(records["z.zip::big.mp3"], "too_large", f"{len(big)} bytes", f"{limit}-byte limit")
    _error(records["t.tar::big.mp3"], "too_large", f"{len(big)} bytes", f"{limit}-byte limit")
    assert records["t.tar::big.mp3"]["source_path"] == "x"
    _error(records["p.parquet::row 0"], "too_large", "size limit")
    for rid in ("z.zip::small.mp3", "t.tar::small.mp3", "p.parquet::row 1"):
        assert answer(records[rid]) == answer(folder_answers["pos2.mp3"]), rid


# ---------------------------------------------------------------------------- truncated / corrupt
def _member_offsets(raw: bytes) -> dict[str, tuple[int, int, int]]:
    """(header offset, data offset, size) of each member of a tar."""
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        return {m.name: (m.offset, m.offset_data, m.size) for m in t.getmembers()}


@pytest.fixture
def shard_bytes(clips) -> bytes:
    buf = io.BytesIO()
    names = ["pos1.mp3", "pos2.mp3", "pos3.mp3", "pos4.mp3"]
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in webdataset_members([clips[n] for n in names]):
            tar_member(t, name, data)
    return buf.getvalue()


def test_truncated_shard_keeps_the_items_before_the_cut(clips, folder_answers, library, tmp_path, monkeypatch,
                                                        shard_bytes):
    _, data_at, size = _member_offsets(shard_bytes)["pos3.mp3"]
    data = tmp_path / "data"
    data.mkdir()
    (data / "shard-000000.tar").write_bytes(shard_bytes[: data_at + size // 2])
    records = _scan_guarded(data, library, tmp_path, monkeypatch)
    assert sorted(records) == ["shard-000000.tar::<after 2 items>", "shard-000000.tar::pos1.mp3",
                               "shard-000000.tar::pos2.mp3"]
    for name in ("pos1.mp3", "pos2.mp3"):
        rec = records[f"shard-000000.tar::{name}"]
        assert answer(rec) == answer(folder_answers[name]) and rec["source_path"] == f"originals/{name}"
    _error(records["shard-000000.tar::<after 2 items>"], "corrupt_container", "truncated")


def test_shard_cut_inside_a_json_member(clips, library, tmp_path, shard_bytes):
    hdr, data_at, size = _member_offsets(shard_bytes)["pos4.json"]
    (tmp_path / "s.tar").write_bytes(shard_bytes[: data_at + size // 2])
    items = list(iter_part(Part("tar", str(tmp_path / "s.tar"), "s.tar")))
    assert [i.id for i in items][:3] == ["s.tar::pos1.mp3", "s.tar::pos2.mp3", "s.tar::pos3.mp3"]
    assert [i.source_path for i in items[:3]] == [f"originals/pos{k}.mp3" for k in (1, 2, 3)]
    assert items[-1].error_kind == "corrupt_container" and "truncated" in items[-1].error


@pytest.mark.parametrize("into_header", [100, 0], ids=["inside-a-header", "at-a-member-boundary"])
def test_shard_cut_between_items_is_reported(shard_bytes, tmp_path, into_header):
    hdr, _, _ = _member_offsets(shard_bytes)["pos3.mp3"]
    (tmp_path / "s.tar").write_bytes(shard_bytes[: hdr + into_header])
    items = list(iter_part(Part("tar", str(tmp_path / "s.tar"), "s.tar")))
    assert [i.id for i in items[:2]] == ["s.tar::pos1.mp3", "s.tar::pos2.mp3"]
    assert len(items) == 3 and "truncated" in items[2].error


def test_non_audio_and_empty_members_are_error_items(clips, folder_answers, library, tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    ok = clips["pos6.mp3"].data
    write_zip(data / "z.zip", [("lyrics.mp3", TEXT), ("empty.mp3", b""), ("ok.mp3", ok), ("notes.txt", TEXT)])
    write_tar(data / "t.tar", [("lyrics.mp3", TEXT), ("empty.flac", b""), ("ok.mp3", ok), ("ok.txt", TEXT)])
    pq.write_table(pa.table({"audio": [TEXT, b"", ok]}), data / "p.parquet")
    records = _scan_guarded(data, library, tmp_path, monkeypatch)
    assert len(records) == 9
    for rid in ("z.zip::lyrics.mp3", "t.tar::lyrics.mp3", "p.parquet::row 0"):
        _error(records[rid], "not_audio", "not a recognised audio")
    for rid in ("z.zip::empty.mp3", "t.tar::empty.flac", "p.parquet::row 1"):
        _error(records[rid], "empty", "empty")
    for rid in ("z.zip::ok.mp3", "t.tar::ok.mp3", "p.parquet::row 2"):
        assert answer(records[rid]) == answer(folder_answers["pos6.mp3"]), rid


def test_corrupt_containers_are_error_records(clips, folder_answers, library, tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    ok = clips["pos1.mp3"].data
    valid_zip = io.BytesIO()
    write_zip(valid_zip, [("a.mp3", ok), ("b.mp3", ok)])
    (data / "garbage.zip").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
    (data / "half.zip").write_bytes(valid_zip.getvalue()[: len(valid_zip.getvalue()) // 2])
    (data / "fake.parquet").write_text("this is not parquet\n" * 10)
    buf = io.BytesIO()
    pq.write_table(pa.table({"audio": [ok, ok]}), buf)
    (data / "half.parquet").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (data / "fake.arrow").write_bytes(b"ARROW1\x00\x00 garbage" * 10)
    (data / "junk.tar").write_bytes(bytes(range(256)) * 20)
    (data / "ok.mp3").write_bytes(ok)
    records = _scan_guarded(data, library, tmp_path, monkeypatch)
    for rid in ("garbage.zip", "half.zip"):
        _error(records[rid], "corrupt_container", "unreadable zip archive")
    for rid in ("fake.parquet::<after row 0>", "half.parquet::<after row 0>", "fake.arrow::<after row 0>"):
        _error(records[rid], "corrupt_container", "unreadable table")
    _error(records["junk.tar::<after 0 items>"], "corrupt_container", "truncated or corrupt tar shard")
    assert answer(records["ok.mp3"]) == answer(folder_answers["pos1.mp3"])
    assert len(records) == 7
    summary = json.loads((tmp_path / "scan" / "out" / "summary.json").read_text())
    assert summary["errors"] == 6 and summary["matched"] == 1


def test_a_bad_part_among_good_parts_in_one_folder(clips, folder_answers, library, tmp_path):
    """One scan over broken and hostile containers and good ones: every good item still answered."""
    data = tmp_path / "data"
    data.mkdir()
    write_zip(data / "a.zip", [("../x.mp3", clips["pos1.mp3"].data), ("y.mp3", clips["pos2.mp3"].data)])
    (data / "b.zip").write_bytes(b"not a zip at all")
    (data / "c.parquet").write_bytes(b"PAR1 nope")
    write_tar(data / "d.tar", webdataset_members([clips["pos3.mp3"]]))
    (data / "e.mp3").write_bytes(TEXT)
    synth.write_wav(data / "f.wav", clips["pos4.mp3"].samples, SR)
    records = scan_records(data, library.catalogue, tmp_path / "out")
    assert {k: r["status"] for k, r in records.items()} == {
        "a.zip::../x.mp3": "error", "a.zip::y.mp3": "match", "b.zip": "error",
        "c.parquet::<after row 0>": "error",
        "d.tar::pos3.mp3": "match", "e.mp3": "error", "f.wav": "match",
    }
    assert records["f.wav"]["matches"][0]["track_id"] == clips["pos4.mp3"].track_id


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_second_member_of_the_same_name_is_not_hidden(clips, library, tmp_path, kind):
    members = [("a.mp3", clips["neg_noise.mp3"].data), ("a.mp3", clips["pos2.mp3"].data)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate name
        (write_zip if kind == "zip" else write_tar)(tmp_path / f"dup.{kind}", members)
    records = scan_records(tmp_path / f"dup.{kind}", library.catalogue, tmp_path / "out")
    found = {m["track_id"] for r in records.values() for m in r["matches"]}
    assert clips["pos2.mp3"].track_id in found
