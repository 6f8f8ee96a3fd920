"""earmark.scan: one report line per dataset item, with known answers and negative controls."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import SR, write_audio

from earmark import synth
from earmark.errors import CatalogueError, ScanError
from earmark.fingerprint.pipeline import fingerprint_source
from earmark.match.model import Match
from earmark.scan.run import read_report, scan
from earmark.scan.worker import ScanSettings, _check_weak_places

#: Fields that depend on timing, not on the data (dropped before comparing scans).
TIMING_FIELDS = {"cpu_s", "wall_s", "elapsed_s"}

MATCH_FIELDS = {"track_id", "query_start", "query_end", "ref_start", "ref_end", "score", "recording"}


@pytest.fixture(scope="module")
def dataset(library, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A dataset folder and the status each of its items must get."""
    root = tmp_path_factory.mktemp("dataset")
    (root / "album").mkdir()
    write_audio(root / "pos_a.mp3", library.song(1).excerpt(12.0, 12.0))
    write_audio(root / "album" / "pos_b.wav", library.song(3).excerpt(30.0, 15.0))
    write_audio(root / "neg_same_artist.ogg", library.hard_negatives["same_artist_13"][: 15 * SR])
    write_audio(root / "neg_pink.wav", synth.noise(9, duration=12.0, sr=SR, color="pink"))
    (root / "empty.wav").write_bytes(b"")
    (root / "lyrics.mp3").write_text("la la la, this is text and not an mp3\n" * 20)
    write_audio(root / "silent.wav", synth.silence(10.0, sr=SR))
    write_audio(root / "clip_1s.wav", library.song(2).excerpt(20.0, 1.0))
    (root / "notes.txt").write_text("not a dataset item")
    expected = {
        "pos_a.mp3": "match",
        "album/pos_b.wav": "match",
        "neg_same_artist.ogg": "no_match",
        "neg_pink.wav": "no_match",
        "empty.wav": "error",
        "lyrics.mp3": "error",
        "silent.wav": "no_signal",
        "clip_1s.wav": "no_signal",
    }
    return root, expected


@pytest.fixture(scope="module")
def scanned(dataset, library, tmp_path_factory):
    root, _ = dataset
    out = tmp_path_factory.mktemp("scan") / "out"
    summary = scan(root, library.catalogue, out, workers=1, argv=["earmark", "scan", "test"])
    return out, summary


def _records(out: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in read_report(out)]


def test_report_has_one_line_per_item_with_the_expected_status(scanned, dataset):
    out, _ = scanned
    _, expected = dataset
    lines = (out / "report.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    # one line each, notes.txt skipped, sorted by name (album/ before the top-level files, unlike
    # the folder walk, which lists a folder's files before its subfolders)
    assert [r["file"] for r in records] == sorted(expected)
    assert records[0]["file"] == "album/pos_b.wav"
    assert {r["file"]: r["status"] for r in records} == expected


def test_positive_items_name_the_recording_and_where_it_is(scanned, library):
    out, _ = scanned
    records = {r["file"]: r for r in read_report(out)}
    for file, song, ref_start, length in (("pos_a.mp3", library.song(1), 12.0, 12.0),
                                          ("album/pos_b.wav", library.song(3), 30.0, 15.0)):
        (m,) = records[file]["matches"]
        assert MATCH_FIELDS <= set(m)
        assert m["track_id"] == song.track_id
        assert m["ref_start"] == pytest.approx(ref_start, abs=0.5)
        assert m["query_start"] == pytest.approx(0.0, abs=0.5)
        assert m["query_end"] == pytest.approx(length, abs=0.5)
        assert m["ref_end"] > m["ref_start"] and m["score"] >= 6
        rec = m["recording"]
        assert (rec["track_id"], rec["isrc"], rec["title"], rec["artist"], rec["rights_holder"]) == (
            song.track_id, song.isrc, song.title, song.artist, "Example Records")
        assert rec["extra"] == {"licence_ref": f"LIC-{song.seed}"}
        assert records[file]["duration_s"] == pytest.approx(length, abs=0.1)
        assert len(records[file]["sha256"]) == 64


def test_error_items_say_why(scanned):
    out, _ = scanned
    records = {r["file"]: r for r in read_report(out)}
    assert records["empty.wav"]["error_kind"] == "empty"
    assert "empty file" in records["empty.wav"]["error"]
    assert records["lyrics.mp3"]["error_kind"] == "not_audio"
    assert "not a recognised audio" in records["lyrics.mp3"]["error"]
    for r in records.values():
        assert ("error" in r) == (r["status"] == "error")
        if r["status"] != "match":
            assert r["matches"] == []


def test_no_signal_items_say_why(scanned):
    out, _ = scanned
    records = {r["file"]: r for r in read_report(out)}
    assert records["silent.wav"]["reason"] == "silent (digital silence)"
    clip = records["clip_1s.wav"]
    assert clip["duration_s"] == pytest.approx(1.0, abs=0.01)
    # a loud clip too short for a single fingerprint item is short, not silent
    assert clip["reason"].startswith("too short: 1.00 s"), clip["reason"]


def test_summary_counts_match_the_report(scanned):
    out, summary = scanned
    records = read_report(out)
    on_disk = json.loads((out / "summary.json").read_text())
    for d in (on_disk, summary.to_dict()):
        assert d["items"] == len(records) == 8
        assert d["matched"] == sum(r["status"] == "match" for r in records) == 2
        assert d["no_match"] == 2 and d["no_signal"] == 2 and d["errors"] == 2
        assert d["skipped_files"] == 1
        assert d["matches"] == 2 and d["recordings_found"] == 2
        assert d["workers"] == 1


def test_summary_attribute_recordings_found_is_set(scanned):
    _, summary = scanned
    assert summary.recordings_found == 2


def test_scan_folder_has_manifest_results_and_report(scanned, reader):
    out, _ = scanned
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "earmark-scan"
    assert manifest["status"] == "complete"
    assert manifest["catalogue_digest"] == reader.digest
    assert manifest["params_id"] == reader.params_id
    assert manifest["command_line"] == ["earmark", "scan", "test"]
    assert manifest["settings"]["match"]["max_fmp"] == pytest.approx(1e-6)
    results = sorted((out / "results.jsonl").read_text().splitlines(), key=lambda s: json.loads(s)["file"])
    assert results == (out / "report.jsonl").read_text().splitlines()


@pytest.mark.slow
def test_two_workers_give_the_same_records(scanned, dataset, library, tmp_path):
    out1, _ = scanned
    root, _ = dataset
    summary = scan(root, library.catalogue, tmp_path / "out2", workers=2)
    assert summary.workers == 2
    assert _records(tmp_path / "out2") == _records(out1)
    assert summary.to_dict()["items"] == 8 and summary.matched == 2


def test_an_existing_scan_is_not_overwritten_unless_asked(dataset, library, tmp_path):
    root, _ = dataset
    out = tmp_path / "out"
    single = root / "album" / "pos_b.wav"
    scan(single, library.catalogue, out, workers=1)
    first = (out / "report.jsonl").read_text()
    with pytest.raises(ScanError, match="already holds a scan"):
        scan(single, library.catalogue, out, workers=1)
    assert (out / "report.jsonl").read_text() == first
    summary = scan(root / "silent.wav", library.catalogue, out, workers=1, overwrite=True)
    assert summary.items == 1
    assert [r["file"] for r in read_report(out)] == ["silent.wav"]


def test_a_single_file_is_a_dataset_of_one(dataset, library, tmp_path):
    root, _ = dataset
    summary = scan(root / "pos_a.mp3", library.catalogue, tmp_path / "out", workers=1)
    (record,) = read_report(tmp_path / "out")
    assert record["file"] == "pos_a.mp3" and record["status"] == "match"
    assert summary.matched == 1


def test_all_files_scans_non_media_too(dataset, library, tmp_path):
    root, _ = dataset
    summary = scan(root, library.catalogue, tmp_path / "out", workers=1, all_files=True)
    records = {r["file"]: r for r in read_report(tmp_path / "out")}
    assert summary.skipped_files == 0 and summary.items == 9
    assert records["notes.txt"]["status"] == "error"
    assert records["notes.txt"]["error_kind"] == "not_audio"


def test_scan_cannot_run_without_a_source_or_a_catalogue(dataset, library, tmp_path):
    root, _ = dataset
    with pytest.raises(ScanError, match="no such file or folder"):
        scan(tmp_path / "missing", library.catalogue, tmp_path / "out", workers=1)
    with pytest.raises(CatalogueError, match="not an earmark catalogue"):
        scan(root, tmp_path / "no-catalogue", tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists()


def test_on_result_sees_every_item(dataset, library, tmp_path):
    root, expected = dataset
    seen = []
    scan(root, library.catalogue, tmp_path / "out", workers=1, on_result=lambda r: seen.append(r.file))
    assert sorted(seen) == sorted(expected)


def test_a_weak_landmark_only_place_is_rechecked_peak_by_peak_over_the_recording(library, reader, tmp_path):
    song = library.song(2)
    path = write_audio(tmp_path / "copy.wav", song.excerpt(20.0, 10.0))
    fa = fingerprint_source(path, reader.config, peaks=reader.landmark_config.query_peaks,
                            keep_spectrogram_s=60.0)
    rec_id = next(i for i, r in reader.recordings.items() if r.track_id == song.track_id)

    def weak(ref_start: float, fmp: float = 4e-7) -> Match:
        # a landmark-only copy admitted at the chance level, at the recording's speed and pitch
        return Match(track_id=song.track_id, rec_id=rec_id, query_start=0.3, query_end=7.6,
                     ref_start=ref_start, ref_end=ref_start + 7.3, score=-math.log10(fmp), fmp=fmp, ber=None,
                     chance_ber=None, n_items=0, n_distinct=0, family="landmark", anchors=8)

    settings = ScanSettings()

    def check(ms):
        return _check_weak_places(ms, fa.peaks, fa.spectrogram, fa.fingerprint.duration, reader, settings)

    # placed 12 s late: the whole-item check finds the true place, which becomes the finding
    out = check([weak(32.3)])
    (best,) = [m for m in out if not m.alternative]
    assert best.family == "mixture" and abs(best.ref_start - (20.0 + best.query_start)) < 0.1
    assert [m.ref_start for m in out if m.alternative] == [32.3]
    # placed right: confirmed, nothing added; a strong landmark match is not re-checked at all
    assert check([weak(20.3)]) == [weak(20.3)]
    assert check([weak(32.3, fmp=1e-90)]) == [weak(32.3, fmp=1e-90)]
