"""earmark.sources end to end: zip, tar / WebDataset shards, brace patterns, Parquet, Arrow and
``save_to_disk`` folders give the same answers as the same audio scanned as a plain folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import SR
from sourcekit import (
    answer,
    assert_known_answer,
    scan_records,
    webdataset_members,
    write_tar,
    write_zip,
)

from earmark.cli.main import cli
from earmark.errors import ScanError
from earmark.scan.run import read_report
from earmark.sources import ItemData, Part, Skipped, discover, expand_braces, iter_part

HF_METADATA = {b"huggingface": json.dumps({"info": {"features": {"audio": {"_type": "Audio"}}}}).encode()}


# ----------------------------------------------------------------------------------- expand_braces
@pytest.mark.parametrize(
    "pattern, expected",
    [
        ("shard-{000000..000002}.tar", ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]),
        ("s-{08..11}.tar", ["s-08.tar", "s-09.tar", "s-10.tar", "s-11.tar"]),
        ("s-{8..11}.tar", ["s-8.tar", "s-9.tar", "s-10.tar", "s-11.tar"]),
        ("s-{3..1}", ["s-3", "s-2", "s-1"]),
        ("{-1..1}", ["-1", "0", "1"]),
        ("{train,test}.parquet", ["train.parquet", "test.parquet"]),
        ("{a,b}-{1..2}", ["a-1", "a-2", "b-1", "b-2"]),
        ("s3://bucket/{x,y}/part-{0..1}.tar", ["s3://bucket/x/part-0.tar", "s3://bucket/x/part-1.tar",
                                               "s3://bucket/y/part-0.tar", "s3://bucket/y/part-1.tar"]),
        ("{a,}z", ["az", "z"]),
        ("plain/path/shard.tar", ["plain/path/shard.tar"]),
        ("lit{eral}-{1..2}", ["lit{eral}-1", "lit{eral}-2"]),
        ("empty{}braces", ["empty{}braces"]),
        ("{7..7}", ["7"]),
    ],
)
def test_expand_braces(pattern, expected):
    assert expand_braces(pattern) == expected


def test_expand_braces_nested_like_a_shell():
    assert expand_braces("x{a,b{1..2}}") == ["xa", "xb1", "xb2"]
    assert expand_braces("shard-{0{0..1},10}.tar") == ["shard-00.tar", "shard-01.tar", "shard-10.tar"]


def test_expand_braces_pads_to_the_widest_bound():
    assert expand_braces("{1..010}")[:2] == ["001", "002"]
    assert expand_braces("{1..010}")[-1] == "010"


# ------------------------------------------------------------------------------------------ discover
def test_discover_recognises_each_file_by_name_or_content(clips, tmp_path):
    root = tmp_path / "mixed"
    (root / "sub").mkdir(parents=True)
    c = clips["pos1.mp3"]
    write_tar(root / "shardnoext", [(f"{c.stem}.mp3", c.data)])
    write_zip(root / "bundle", [("x.mp3", c.data)])
    pq.write_table(pa.table({"audio": [c.data]}), root / "sub" / "table")
    (root / "clip").write_bytes(c.data)
    (root / "a.tar.gz").write_bytes(b"")
    (root / "d.arrow").write_bytes(b"")
    (root / "e.parquet").write_bytes(b"")
    (root / "f.zip").write_bytes(b"")
    (root / "g.FLAC").write_bytes(b"")
    (root / "notes.txt").write_text("hello")
    (root / "info.json").write_text("{}")
    (root / ".hidden.mp3").write_bytes(c.data)
    found = list(discover(str(root)))
    parts = {p.name: p.kind for p in found if isinstance(p, Part)}
    assert parts == {
        "shardnoext": "tar", "bundle": "zip", "sub/table": "parquet", "clip": "file", "a.tar.gz": "tar",
        "d.arrow": "arrow", "e.parquet": "parquet", "f.zip": "zip", "g.FLAC": "file",
    }
    skipped = {Path(s.url).name: s.reason for s in found if isinstance(s, Skipped)}
    assert skipped == {"notes.txt": "not media by its name", "info.json": "not media by its name",
                       ".hidden.mp3": "hidden file"}
    # parts come in a stable, sorted order, and urls point at the files
    names = [p.name for p in found if isinstance(p, Part)]
    assert names == sorted(names)
    assert all(Path(p.url).exists() for p in found if isinstance(p, Part))
    # with all_files, non-media names are tried too (hidden files never)
    every = {p.name: p.kind for p in discover(str(root), all_files=True) if isinstance(p, Part)}
    assert every["notes.txt"] == "file" and every["info.json"] == "file" and ".hidden.mp3" not in every


def test_discover_a_single_file_glob_and_brace_pattern(tmp_path):
    for i in range(4):
        write_tar(tmp_path / f"shard-{i:06d}.tar", [])
    (p,) = discover(str(tmp_path / "shard-000002.tar"))
    assert (p.kind, p.name) == ("tar", "shard-000002.tar")
    braces = [p.name for p in discover(str(tmp_path / "shard-{000001..000002}.tar"))]
    assert braces == ["shard-000001.tar", "shard-000002.tar"]
    # a range wider than what exists picks what is there
    assert len(list(discover(str(tmp_path / "shard-{000002..000009}.tar")))) == 2
    globbed = [p.name for p in discover(str(tmp_path / "shard-00000[13].tar"))]
    assert globbed == ["shard-000001.tar", "shard-000003.tar"]
    with pytest.raises(ScanError, match="no such file or folder"):
        list(discover(str(tmp_path / "shard-{000007..000009}.tar")))
    with pytest.raises(ScanError, match="no such file or folder"):
        list(discover(str(tmp_path / "nothing-here")))


def test_discover_an_existing_path_with_brackets_in_its_name(tmp_path):
    root = tmp_path / "Album [2020]"
    root.mkdir()
    write_tar(root / "shard.tar", [])
    assert [p.name for p in discover(str(root))] == ["shard.tar"]
    assert [p.name for p in discover(str(root / "shard.tar"))] == ["shard.tar"]


# ---------------------------------------------------------------------------------- zip end to end
def test_zip_of_audio_files_gives_the_folder_answers(clips, folder_answers, library, tmp_path):
    archive = write_zip(tmp_path / "archive.zip",
                        [(c.name, c.data) for c in clips.values()] + [("README.txt", b"about")])
    records = scan_records(archive, library.catalogue, tmp_path / "out")
    assert sorted(records) == sorted(f"archive.zip::{n}" for n in clips)
    for name, clip in clips.items():
        rec = records[f"archive.zip::{name}"]
        assert answer(rec) == answer(folder_answers[name]), name
        assert_known_answer(rec, clip)
        assert rec["sha256"] == folder_answers[name]["sha256"]
        assert rec["size_bytes"] == len(clip.data)
        assert "source_path" not in rec


def test_zip_members_in_folders_and_stored_uncompressed(clips, folder_answers, library, tmp_path):
    import zipfile

    c1, c2 = clips["pos2.mp3"], clips["neg_noise.mp3"]
    (tmp_path / "data").mkdir()
    members = [("clips/", b""), ("clips/deep/x.mp3", c1.data), ("y.mp3", c2.data)]
    write_zip(tmp_path / "data" / "a.zip", members, compression=zipfile.ZIP_STORED)
    records = scan_records(tmp_path / "data", library.catalogue, tmp_path / "out")
    assert sorted(records) == ["a.zip::clips/deep/x.mp3", "a.zip::y.mp3"]
    assert answer(records["a.zip::clips/deep/x.mp3"]) == answer(folder_answers["pos2.mp3"])
    assert answer(records["a.zip::y.mp3"]) == answer(folder_answers["neg_noise.mp3"])


# ---------------------------------------------------------------------------------- tar / WebDataset
@pytest.fixture
def shard_folder(clips, tmp_path) -> Path:
    """Four WebDataset shards of two samples each; json before the audio for some keys, after for others."""
    root = tmp_path / "shards"
    root.mkdir()
    names = list(clips)
    for s in range(4):
        members = webdataset_members([clips[n] for n in names[2 * s : 2 * s + 2]])
        write_tar(root / f"shard-{s:06d}.tar", members)
    return root


def test_webdataset_shard_sets_source_path_whichever_comes_first(clips, folder_answers, library, tmp_path):
    ordered = list(clips.values())
    members = webdataset_members(ordered)
    # the fixture really mixes both orders
    kinds = [n.rsplit(".", 1)[1] for n, _ in members]
    assert kinds[:4] == ["json", "mp3", "mp3", "json"]
    shard = write_tar(tmp_path / "shard-000000.tar", members)
    items = list(iter_part(Part("tar", str(shard), "shard-000000.tar")))
    assert [i.id for i in items] == [f"shard-000000.tar::{c.stem}.mp3" for c in ordered]
    assert [i.source_path for i in items] == [f"originals/{c.name}" for c in ordered]
    assert [i.data for i in items] == [c.data for c in ordered]

    records = scan_records(shard, library.catalogue, tmp_path / "out")
    assert len(records) == len(clips)
    for c in ordered:
        rec = records[f"shard-000000.tar::{c.stem}.mp3"]
        assert rec["source_path"] == f"originals/{c.name}"
        assert answer(rec) == answer(folder_answers[c.name]), c.name
        assert_known_answer(rec, c)


def test_webdataset_meta_does_not_leak_to_the_next_key(clips, tmp_path):
    a, b, c = clips["pos1.mp3"], clips["pos2.mp3"], clips["pos3.mp3"]
    shard = write_tar(tmp_path / "s.tar", [
        ("a.json", json.dumps({"path": "from-path-key"}).encode()), ("a.mp3", a.data),
        ("b.mp3", b.data),  # no json at all
        ("c.mp3", c.data), ("c.json", b"{not json"),  # unreadable json: no source_path, still an item
        ("dir/d.flac", a.data), ("dir/d.json", json.dumps({"source_file": "dir-d"}).encode()),
        ("e.txt", b"caption"), ("e.cls", b"3"),  # a key without audio is no item
    ])
    items = {i.id.split("::")[1]: i for i in iter_part(Part("tar", str(shard), "s.tar"))}
    assert list(items) == ["a.mp3", "b.mp3", "c.mp3", "dir/d.flac"]
    assert [i.source_path for i in items.values()] == ["from-path-key", None, None, "dir-d"]
    assert all(not i.error for i in items.values())


def test_folder_of_shards_and_a_brace_pattern_selecting_some(clips, folder_answers, library, shard_folder,
                                                              tmp_path):
    everything = scan_records(shard_folder, library.catalogue, tmp_path / "all")
    assert len(everything) == 8
    assert {k.split("::")[0] for k in everything} == {f"shard-{s:06d}.tar" for s in range(4)}
    for rid, rec in everything.items():
        name = rec["source_path"].split("/")[-1]
        assert rid.endswith(f"::{clips[name].stem}.mp3")
        assert answer(rec) == answer(folder_answers[name])
        assert_known_answer(rec, clips[name])

    pattern = str(shard_folder / "shard-{000000..000002}.tar")
    some = scan_records(pattern, library.catalogue, tmp_path / "some")
    assert sorted(some) == sorted(k for k in everything if not k.startswith("shard-000003.tar"))
    assert len(some) == 6
    for rid, rec in some.items():
        assert rec == everything[rid]
    manifest = json.loads((tmp_path / "some" / "manifest.json").read_text())
    assert manifest["source"].endswith("shard-{000000..000002}.tar")


def test_compressed_tar_shards(clips, folder_answers, library, tmp_path):
    import tarfile

    from sourcekit import tar_member

    for suffix, mode in ((".tar.gz", "w:gz"), (".tgz", "w:gz"), (".tar.xz", "w:xz"), (".tar.bz2", "w:bz2")):
        with tarfile.open(tmp_path / f"s{suffix}", mode) as t:
            tar_member(t, "k.mp3", clips["pos4.mp3"].data)
    records = scan_records(tmp_path, library.catalogue, tmp_path / "out")
    assert sorted(records) == sorted(f"s{x}::k.mp3" for x in (".tar.gz", ".tgz", ".tar.xz", ".tar.bz2"))
    for rec in records.values():
        assert answer(rec) == answer(folder_answers["pos4.mp3"])


# --------------------------------------------------------------------------------------- Parquet
def _hf_table(clips_list, offset: int = 0) -> pa.Table:
    audio = pa.array(
        [{"bytes": c.data, "path": f"wavs/{c.name}"} for c in clips_list],
        type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
    )
    return pa.table({"id": list(range(offset, offset + len(clips_list))), "audio": audio,
                     "text": [f"caption {c.stem}" for c in clips_list]}).replace_schema_metadata(HF_METADATA)


def test_hugging_face_parquet_with_an_audio_struct(clips, folder_answers, library, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    ordered = list(clips.values())
    files = ["train-00000-of-00002.parquet", "train-00001-of-00002.parquet"]
    pq.write_table(_hf_table(ordered[:5]), root / files[0], row_group_size=2)
    pq.write_table(_hf_table(ordered[5:], offset=5), root / files[1])
    (root / "README.md").write_text("dataset card")
    records = scan_records(root, library.catalogue, tmp_path / "out")
    expected_ids = [f"{files[0]}::row {i}" for i in range(5)] + [f"{files[1]}::row {i}" for i in range(3)]
    assert sorted(records) == sorted(expected_ids)
    for rid, c in zip(expected_ids, ordered, strict=True):
        rec = records[rid]
        assert rec["source_path"] == f"wavs/{c.name}"
        assert answer(rec) == answer(folder_answers[c.name]), rid
        assert_known_answer(rec, c)
        assert rec["sha256"] == folder_answers[c.name]["sha256"]
    assert records["train-00000-of-00002.parquet::row 3"]["source_path"] == "wavs/pos4.mp3"
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["skipped_files"] == 1


def test_parquet_with_a_raw_bytes_column(clips, folder_answers, library, tmp_path):
    ordered = list(clips.values())
    pq.write_table(pa.table({"audio": pa.array([c.data for c in ordered], type=pa.large_binary())}),
                   tmp_path / "raw.parquet")
    records = scan_records(tmp_path / "raw.parquet", library.catalogue, tmp_path / "out")
    assert sorted(records) == sorted(f"raw.parquet::row {i}" for i in range(len(ordered)))
    for i, c in enumerate(ordered):
        rec = records[f"raw.parquet::row {i}"]
        assert answer(rec) == answer(folder_answers[c.name])
        assert "source_path" not in rec


def test_parquet_with_decoded_arrays_is_resampled_and_matched(clips, library, tmp_path):
    ordered = list(clips.values())
    assert SR == 22050
    cells = [{"array": c.samples.astype(np.float32).tolist(), "sampling_rate": SR, "path": c.name}
             for c in ordered]
    # one cell at another rate (44.1 kHz), one holding nothing usable, one missing
    loud = clips["pos6.mp3"]
    import soxr

    cells.append({"array": soxr.resample(loud.samples, SR, 44100).astype(np.float32).tolist(),
                  "sampling_rate": 44100, "path": "hi-rate.wav"})
    cells.append({"array": None, "sampling_rate": SR, "path": "nothing.wav"})
    cells.append(None)
    t = pa.table({"audio": pa.array(cells, type=pa.struct([
        ("array", pa.list_(pa.float32())), ("sampling_rate", pa.int64()), ("path", pa.string())]))})
    pq.write_table(t, tmp_path / "decoded.parquet")
    items = list(iter_part(Part("parquet", str(tmp_path / "decoded.parquet"), "decoded.parquet")))
    assert items[0].samples is not None and items[0].sample_rate == SR and items[0].data is None
    records = scan_records(tmp_path / "decoded.parquet", library.catalogue, tmp_path / "out")
    assert len(records) == len(cells)
    for i, c in enumerate(ordered):
        rec = records[f"decoded.parquet::row {i}"]
        assert_known_answer(rec, c)
        assert rec["source_path"] == c.name
        assert rec["codec"] == "pcm_f32"
        assert rec["duration_s"] == pytest.approx(10.0, abs=0.05)
    hi = records[f"decoded.parquet::row {len(ordered)}"]
    assert_known_answer(hi, loud)
    nothing = records[f"decoded.parquet::row {len(ordered) + 1}"]
    assert nothing["status"] == "error" and "neither bytes nor an array" in nothing["error"]
    assert nothing["source_path"] == "nothing.wav"
    missing = records[f"decoded.parquet::row {len(ordered) + 2}"]
    assert missing["status"] == "error" and missing["error_kind"] == "empty"


def test_a_decoded_stereo_cell_is_an_error_item(library, clips, tmp_path):
    c = clips["pos1.mp3"]
    stereo = np.stack([c.samples, c.samples]).astype(np.float32)
    (tmp_path / "in").mkdir()
    for name, cell in (("x", {"array": stereo.tolist(), "sampling_rate": SR}),
                       ("y", {"array": c.samples.tolist(), "sampling_rate": 0})):
        pq.write_table(pa.table({"audio": [cell]}), tmp_path / "in" / f"{name}.parquet")
    records = scan_records(tmp_path / "in", library.catalogue, tmp_path / "out")
    for rid in ("x.parquet::row 0", "y.parquet::row 0"):
        assert records[rid]["status"] == "error"
        assert "sampling_rate or 1-D array" in records[rid]["error"]


def test_one_ragged_decoded_cell_does_not_lose_the_rest_of_the_table(library, clips, tmp_path):
    c = clips["pos1.mp3"]
    ragged = [[0.0, 0.1], [0.2]]
    t = pa.table({"audio": pa.array(
        [{"array": ragged, "sampling_rate": SR}, {"array": [c.samples.tolist()], "sampling_rate": SR}],
        type=pa.struct([("array", pa.list_(pa.list_(pa.float32()))), ("sampling_rate", pa.int64())]))})
    pq.write_table(t, tmp_path / "r.parquet")
    ids = [i.id for i in iter_part(Part("parquet", str(tmp_path / "r.parquet"), "r.parquet"))]
    assert ids == ["r.parquet::row 0", "r.parquet::row 1"]


def test_audio_column_option_of_the_cli(clips, folder_answers, library, tmp_path):
    ordered = [clips["pos3.mp3"], clips["neg_noise.mp3"]]
    table = pa.table({"audio": ["not audio", "not audio either"], "other": [c.data for c in ordered]})
    pq.write_table(table, tmp_path / "t.parquet")

    def run(*extra):
        out = tmp_path / f"out{len(extra)}"
        res = CliRunner().invoke(cli, ["scan", str(tmp_path / "t.parquet"), "-c", str(library.catalogue),
                                       "-o", str(out), "-j", "1", *extra], catch_exceptions=False)
        return res, {r["file"]: r for r in read_report(out)}

    res, records = run("--audio-column", "other")
    assert res.exit_code == 1, res.output  # found a catalogue recording
    for i, c in enumerate(ordered):
        assert answer(records[f"t.parquet::row {i}"]) == answer(folder_answers[c.name])
    manifest = json.loads((tmp_path / "out2" / "manifest.json").read_text())
    assert manifest["settings"]["limits"]["audio_column"] == "other"

    res, records = run()  # the default column holds strings: errors that say so, nothing found
    assert res.exit_code == 0, res.output
    assert [r["status"] for r in records.values()] == ["error", "error"]
    assert "audio cell of type str is not audio" in records["t.parquet::row 0"]["error"]

    res, records = run("--audio-column", "nope", "--overwrite")
    assert res.exit_code == 0, res.output
    (rec,) = records.values()
    assert rec["file"] == "t.parquet" and rec["status"] == "error"
    assert "no column 'nope'" in rec["error"] and "audio, other" in rec["error"]


# ----------------------------------------------------------------------------- Arrow / save_to_disk
def _write_save_to_disk(root: Path, table: pa.Table, *, stream: bool = True) -> Path:
    root.mkdir(parents=True)
    name = "data-00000-of-00001.arrow"
    with pa.OSFile(str(root / name), "wb") as sink:
        writer = (pa.ipc.new_stream if stream else pa.ipc.new_file)(sink, table.schema)
        for batch in table.to_batches(max_chunksize=3):
            writer.write_batch(batch)
        writer.close()
    (root / "dataset_info.json").write_text(json.dumps({
        "features": {"audio": {"_type": "Audio", "sampling_rate": SR},
                     "text": {"dtype": "string", "_type": "Value"}},
        "citation": "", "description": "", "homepage": "", "license": ""}))
    (root / "state.json").write_text(json.dumps({
        "_data_files": [{"filename": name}], "_fingerprint": "0123456789abcdef", "_format_columns": None,
        "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False, "_split": "train"}))
    return root


@pytest.mark.parametrize("stream", [True, False], ids=["ipc-stream", "ipc-file"])
def test_save_to_disk_folder(clips, folder_answers, library, tmp_path, stream):
    ordered = list(clips.values())
    ds = _write_save_to_disk(tmp_path / "ds", _hf_table(ordered), stream=stream)
    (p,) = [x for x in discover(str(ds)) if isinstance(x, Part)]
    assert (p.kind, p.name) == ("arrow", "data-00000-of-00001.arrow")
    records = scan_records(ds, library.catalogue, tmp_path / "out")
    assert sorted(records) == sorted(f"data-00000-of-00001.arrow::row {i}" for i in range(len(ordered)))
    for i, c in enumerate(ordered):
        rec = records[f"data-00000-of-00001.arrow::row {i}"]
        assert rec["source_path"] == f"wavs/{c.name}"
        assert answer(rec) == answer(folder_answers[c.name])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["skipped_files"] == 2 and summary["items"] == len(ordered)


# -------------------------------------------------------------------------- kinds known by content
def test_containers_without_extensions_are_scanned_by_content(clips, folder_answers, library, tmp_path):
    c1, c2, c3, c4 = (clips[n] for n in ("pos1.mp3", "pos2.mp3", "pos5.mp3", "neg_artist.mp3"))
    shards = tmp_path / "shards"
    shards.mkdir()
    write_tar(shards / "part-a", webdataset_members([c1, c4]))
    write_tar(shards / "part-b", webdataset_members([c2]))
    tables = tmp_path / "tables"
    tables.mkdir()
    pq.write_table(_hf_table([c3]), tables / "chunk-a")
    pq.write_table(_hf_table([c1, c2]), tables / "chunk-b")
    write_tar(tmp_path / "lone-shard", webdataset_members([c3]))

    recs = scan_records(shards, library.catalogue, tmp_path / "o1")
    assert sorted(recs) == ["part-a::neg_artist.mp3", "part-a::pos1.mp3", "part-b::pos2.mp3"]
    assert answer(recs["part-a::pos1.mp3"]) == answer(folder_answers["pos1.mp3"])
    assert answer(recs["part-b::pos2.mp3"]) == answer(folder_answers["pos2.mp3"])
    assert recs["part-a::neg_artist.mp3"]["status"] == "no_match"

    recs = scan_records(tables, library.catalogue, tmp_path / "o2")
    assert sorted(recs) == ["chunk-a::row 0", "chunk-b::row 0", "chunk-b::row 1"]
    assert answer(recs["chunk-a::row 0"]) == answer(folder_answers["pos5.mp3"])
    assert answer(recs["chunk-b::row 1"]) == answer(folder_answers["pos2.mp3"])

    recs = scan_records(tmp_path / "lone-shard", library.catalogue, tmp_path / "o3")
    assert list(recs) == ["lone-shard::pos5.mp3"]
    assert answer(recs["lone-shard::pos5.mp3"]) == answer(folder_answers["pos5.mp3"])


def test_a_folder_mixing_every_kind(clips, folder_answers, library, tmp_path):
    """One scan over plain files, a zip, a shard and a table: every item once, by its own id."""
    root = tmp_path / "mixed"
    (root / "audio").mkdir(parents=True)
    (root / "audio" / "pos1.mp3").write_bytes(clips["pos1.mp3"].data)
    write_zip(root / "z.zip", [("pos2.mp3", clips["pos2.mp3"].data)])
    write_tar(root / "w.tar", webdataset_members([clips["pos3.mp3"]]))
    pq.write_table(_hf_table([clips["pos4.mp3"]]), root / "t.parquet")
    shutil.copy(root / "audio" / "pos1.mp3", root / "audio" / "copy.mp3")
    records = scan_records(root, library.catalogue, tmp_path / "out")
    assert sorted(records) == ["audio/copy.mp3", "audio/pos1.mp3", "t.parquet::row 0", "w.tar::pos3.mp3",
                               "z.zip::pos2.mp3"]
    for rid, name in (("audio/pos1.mp3", "pos1.mp3"), ("audio/copy.mp3", "pos1.mp3"),
                      ("z.zip::pos2.mp3", "pos2.mp3"), ("w.tar::pos3.mp3", "pos3.mp3"),
                      ("t.parquet::row 0", "pos4.mp3")):
        assert answer(records[rid]) == answer(folder_answers[name]), rid


def test_item_data_sha256_of_each_form(clips, tmp_path):
    import hashlib

    c = clips["pos1.mp3"]
    (tmp_path / "a.mp3").write_bytes(c.data)
    want = hashlib.sha256(c.data).hexdigest()
    assert ItemData("a", data=c.data).sha256() == want
    assert ItemData("a", path=str(tmp_path / "a.mp3")).sha256() == want
    x = np.arange(4, dtype=np.float64)
    assert ItemData("a", samples=x).sha256() == hashlib.sha256(x.astype("<f4").tobytes()).hexdigest()


def test_scan_part_and_scan_item(clips, folder_answers, reader, tmp_path):
    """The engine-agnostic unit: a part's items in stored order, minus the skipped ones."""
    from earmark.scan.worker import ScanSettings, scan_item, scan_part

    ordered = [clips[n] for n in ("pos1.mp3", "neg_noise.mp3", "pos2.mp3")]
    shard = write_tar(tmp_path / "s.tar", webdataset_members(ordered))
    part = Part("tar", str(shard), "s.tar")
    settings = ScanSettings()
    results = scan_part(part, reader, settings)
    assert [r.file for r in results] == ["s.tar::pos1.mp3", "s.tar::neg_noise.mp3", "s.tar::pos2.mp3"]
    assert [r.status for r in results] == ["match", "no_match", "match"]
    meta = {rid: r.metadata() for rid, r in reader.recordings.items()}
    for r, c in zip(results, ordered, strict=True):
        assert answer(r.to_record(meta)) == answer(folder_answers[c.name])
        assert r.cpu_s > 0
    skipped = scan_part(part, reader, settings, skip=frozenset({"s.tar::pos1.mp3", "s.tar::pos2.mp3"}))
    assert [r.file for r in skipped] == ["s.tar::neg_noise.mp3"]

    bad = scan_item(ItemData("x", error="why not", error_kind="source", source_path="p"), reader, settings)
    assert (bad.status, bad.reason, bad.error_kind, bad.source_path) == ("error", "why not", "source", "p")
    assert bad.to_record({})["error"] == "why not"
    gone = scan_item(ItemData("y", path=str(tmp_path / "missing.mp3")), reader, settings)
    assert gone.status == "error" and gone.error_kind == "io"
    decoded = scan_item(ItemData("z", samples=clips["pos3.mp3"].samples, sample_rate=SR), reader, settings)
    assert decoded.status == "match"
    assert decoded.matches[0].to_dict()["track_id"] == clips["pos3.mp3"].track_id
