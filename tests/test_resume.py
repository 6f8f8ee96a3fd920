"""Resume for real: ``earmark scan`` killed with SIGKILL at seeded points (and once with a torn last
line), then ``--resume``: the final report equals an uninterrupted scan's, every item exactly once,
and finished items are never scanned again. Refusals leave the scan folder untouched."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from conftest import SR, write_csv
from sourcekit import wait_for, write_tar

from earmark import synth
from earmark.catalogue.metadata import read_csv
from earmark.catalogue.store import Catalogue
from earmark.cli.main import cli
from earmark.scan.run import load_results, read_report, scan

#: Fields that would depend on timing or on the machine rather than on the data.
VOLATILE = {"cpu_s", "wall_s", "elapsed_s", "host", "started_at", "finished_at"}
ITEM_S = 7.0


def _clean(records: list[dict]) -> list[dict]:
    kept = ({k: v for k, v in r.items() if k not in VOLATILE} for r in records)
    return sorted(kept, key=lambda r: r["file"])


@pytest.fixture(scope="module")
def resume_data(library, tmp_path_factory) -> Path:
    """30 items of 7 s: 24 files (positives, negatives, silence, non-audio) and a shard of 6."""
    rng = np.random.default_rng(4711)
    root = tmp_path_factory.mktemp("resume-data")
    n = 0
    for k in range(14):  # excerpts of every catalogue song at seeded places
        song = library.song(1 + k % 6)
        start = float(rng.uniform(0, song.duration - ITEM_S - 1))
        synth.write_wav(root / f"item{n:02d}.wav", song.excerpt(round(start, 2), ITEM_S), SR)
        n += 1
    for k in range(6):
        synth.write_wav(root / f"item{n:02d}.wav", synth.noise(100 + k, duration=ITEM_S, sr=SR,
                                                             color=("pink", "white")[k % 2]), SR)
        n += 1
    negative = library.hard_negatives["same_artist_13"][: int(ITEM_S * SR)]
    synth.write_wav(root / f"item{n:02d}.wav", negative, SR)
    synth.write_wav(root / f"item{n + 1:02d}.wav", synth.silence(ITEM_S, sr=SR), SR)
    (root / f"item{n + 2:02d}.mp3").write_text("not audio\n" * 50)
    (root / f"item{n + 3:02d}.wav").write_bytes(b"")
    (root / "notes.txt").write_text("skipped")
    members = []
    for k in range(6):
        wav = root / f"m{k}.tmp.wav"
        samples = library.song(1 + k).excerpt(3.0 + k, ITEM_S) if k % 2 == 0 else synth.noise(
            200 + k, duration=ITEM_S, sr=SR, color="pink")
        synth.write_wav(wav, samples, SR)
        meta = json.dumps({"source_file": f"o/{k}"}).encode()
        members += [(f"s{k}.wav", wav.read_bytes()), (f"s{k}.json", meta)]
        wav.unlink()
    write_tar(root / "shard-000000.tar", members)
    return root


@pytest.fixture(scope="module")
def uninterrupted(resume_data, library, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("resume-ref") / "out"
    scan(resume_data, library.catalogue, out, workers=1)
    records = read_report(out)
    assert len(records) == 30
    statuses = {r["status"] for r in records}
    assert statuses == {"match", "no_match", "no_signal", "error"}
    assert sum(r["status"] == "match" for r in records) >= 15
    return out


def _cmd(data: Path, catalogue: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "earmark.cli.main", "scan", str(data), "-c", str(catalogue), "-o", str(out),
            "--workers", "1", *extra]


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _run_and_kill(cmd: list[str], results: Path, at_lines: int) -> int:
    """Start ``cmd``, SIGKILL it once ``results`` has ``at_lines`` lines; the lines there then."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        reached = wait_for(lambda: _lines(results) >= at_lines or proc.poll() is not None, timeout=60)
        ended_early = proc.poll() is not None
        if not ended_early:
            os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None and not reached:
            proc.kill()  # the test is failing: do not leave the scan running
        proc.wait(timeout=30)
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
    assert reached, "the scan neither progressed nor ended"
    assert not ended_early, f"the scan ended (status {proc.returncode}) before the kill point: {err}"
    assert proc.returncode == -signal.SIGKILL
    return _lines(results)


def _tear_last_line(results: Path) -> str:
    """Cut the file in the middle of its last line, as a write killed midway leaves it."""
    raw = results.read_bytes()
    start = raw.rstrip(b"\n").rfind(b"\n") + 1
    torn = raw[: start + (len(raw) - start) // 2]
    results.write_bytes(torn)
    return json.loads(raw[start:])["file"]


def test_killed_scans_resume_to_the_uninterrupted_report(resume_data, uninterrupted, library, tmp_path):
    out = tmp_path / "out"
    results = out / "results.jsonl"
    rng = np.random.default_rng(20240607)
    points = sorted(int(x) for x in rng.choice(np.arange(2, 21), size=4, replace=False))
    base = _cmd(resume_data, library.catalogue, out)

    kept: list[bytes] = []
    n = 0
    for i, at in enumerate(points):
        at = max(at, n + 1)  # each run gets past its start (and its manifest update) before the kill
        n = _run_and_kill(base + (["--resume"] if i else []), results, at)
        assert n >= at
        lines = results.read_bytes().split(b"\n")
        # what earlier runs wrote is still there, unchanged, in front
        assert lines[: len(kept)] == kept
        kept = [ln for ln in lines if ln.endswith(b"}")]
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["status"] == "running" and len(manifest.get("resumed_at", [])) == i
        assert not (out / "report.jsonl").exists()
    torn_file = _tear_last_line(results)
    kept = kept[:-1]

    proc = subprocess.run(base + ["--resume"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr  # catalogue recordings were found
    assert f"resumed           {len(kept)} items were already done" in proc.stdout

    final = results.read_bytes().split(b"\n")
    assert final[: len(kept)] == kept  # finished items were not scanned again ...
    records = [json.loads(ln) for ln in final if ln]
    files = [r["file"] for r in records]
    assert len(files) == len(set(files)) == 30  # ... and every item is there exactly once
    assert torn_file in files[len(kept):]  # the torn item was scanned again

    assert _clean(read_report(out)) == _clean(read_report(uninterrupted))
    assert (out / "report.jsonl").read_text() == (uninterrupted / "report.jsonl").read_text()
    summary = json.loads((out / "summary.json").read_text())
    reference = json.loads((uninterrupted / "summary.json").read_text())
    for k in ("items", "matched", "no_match", "no_signal", "errors", "matches", "recordings_found",
              "skipped_files"):
        assert summary[k] == reference[k], k
    assert summary["resumed_items"] == len(kept)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["resumed_at"]) == len(points)


def _cli(*args) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _snapshot(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


@pytest.fixture
def scanned_ids(monkeypatch) -> list[str]:
    """The ids of the items this process actually scans (decodes and matches) from now on."""
    import earmark.scan.worker as worker

    ids: list[str] = []
    real = worker.scan_item

    def counting(item, reader, settings):
        ids.append(item.id)
        return real(item, reader, settings)

    monkeypatch.setattr(worker, "scan_item", counting)
    return ids


def _partial(uninterrupted: Path, out: Path, n: int) -> Path:
    """A scan folder as a scan killed while writing line ``n + 1`` leaves it."""
    out.mkdir()
    manifest = json.loads((uninterrupted / "manifest.json").read_text())
    manifest["status"] = "running"
    manifest.pop("finished_at")
    (out / "manifest.json").write_text(json.dumps(manifest))
    lines = (uninterrupted / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").write_text("".join(lines[:n]) + lines[n][:40])
    return out


@pytest.fixture
def partial_scan(uninterrupted, tmp_path) -> Path:
    """A scan folder as a killed scan leaves it: manifest 'running', 11 of 30 lines, a torn 12th."""
    return _partial(uninterrupted, tmp_path / "partial", 11)


def test_resume_with_another_catalogue_is_refused(resume_data, partial_scan, catalogue_copy, library,
                                                  tmp_path):
    row = {"track_id": "TRK-0099", "isrc": "GBABC2400099", "title": "Extra", "artist": "Extra Artist",
           "album": "", "rights_holder": "Example Records", "path": "extra.wav", "licence_ref": ""}
    synth.write_wav(tmp_path / "extra.wav", synth.song(99, duration=30.0, sr=SR), SR)
    with Catalogue.open(catalogue_copy) as cat:
        assert cat.add(read_csv(write_csv(tmp_path / "extra.csv", [row]))).count("added") == 1
    before = _snapshot(partial_scan)
    res = _cli("scan", resume_data, "-c", catalogue_copy, "-o", partial_scan, "-j", "1", "--resume")
    assert res.exit_code == 2
    assert "refusing to resume" in res.stderr and "catalogue_digest" in res.stderr
    assert _snapshot(partial_scan) == before  # the torn line is not even cut

    # so is a resume over another source, or with other parameters
    other = tmp_path / "other-source"
    other.mkdir()
    shutil.copy(resume_data / "item00.wav", other)
    res = _cli("scan", other, "-c", library.catalogue, "-o", partial_scan, "-j", "1", "--resume")
    assert res.exit_code == 2 and "refusing to resume" in res.stderr and "source" in res.stderr
    res = _cli("scan", resume_data, "-c", library.catalogue, "-o", partial_scan, "-j", "1", "--resume",
               "--max-fmp", "0.001")
    assert res.exit_code == 2 and "refusing to resume" in res.stderr and "settings" in res.stderr
    assert _snapshot(partial_scan) == before

    # the same catalogue copied elsewhere is the same catalogue: the resume goes ahead
    same = tmp_path / "same-cat"
    shutil.copytree(library.catalogue, same)
    res = _cli("scan", resume_data, "-c", same, "-o", partial_scan, "-j", "1", "--resume")
    assert res.exit_code == 1, res.output
    assert "resumed           11 items were already done" in res.stdout


def test_resume_of_a_partial_scan_in_process(resume_data, partial_scan, uninterrupted, library, scanned_ids):
    seen = []
    summary = scan(resume_data, library.catalogue, partial_scan, workers=1, resume=True,
                   on_result=lambda r: seen.append(r.file))
    lines = (uninterrupted / "results.jsonl").read_text().splitlines()
    done_before = [json.loads(ln)["file"] for ln in lines[:11]]
    assert summary.resumed_items == 11 and summary.items == 30
    assert len(seen) == 19 and not set(seen) & set(done_before)
    assert sorted(scanned_ids) == sorted(seen)  # nothing done before was scanned again
    assert (partial_scan / "report.jsonl").read_text() == (uninterrupted / "report.jsonl").read_text()


def test_resume_inside_a_half_scanned_shard(resume_data, uninterrupted, library, tmp_path, scanned_ids):
    lines = (uninterrupted / "results.jsonl").read_text().splitlines()
    order = [json.loads(ln)["file"] for ln in lines]
    assert order[24:] == [f"shard-000000.tar::s{k}.wav" for k in range(6)]  # the shard is the last part
    out = _partial(uninterrupted, tmp_path / "partial", 27)  # s0-s2 done, s3 torn
    seen = []
    summary = scan(resume_data, library.catalogue, out, workers=1, resume=True,
                   on_result=lambda r: seen.append(r.file))
    assert seen == [f"shard-000000.tar::s{k}.wav" for k in (3, 4, 5)]
    assert scanned_ids == seen  # the shard is read again, but its finished items are not scanned
    assert summary.resumed_items == 27
    assert (out / "report.jsonl").read_text() == (uninterrupted / "report.jsonl").read_text()
    assert (out / "results.jsonl").read_text().splitlines() == lines


def test_resume_of_a_finished_scan_rebuilds_the_same_report(resume_data, uninterrupted, library, tmp_path,
                                                           scanned_ids):
    out = tmp_path / "done"
    shutil.copytree(uninterrupted, out)
    results = (out / "results.jsonl").read_bytes()
    (out / "report.jsonl").unlink()
    res = _cli("scan", resume_data, "-c", library.catalogue, "-o", out, "-j", "1", "--resume")
    assert res.exit_code == 1, res.output
    assert "resumed           30 items were already done" in res.stdout
    assert (out / "results.jsonl").read_bytes() == results  # nothing scanned again
    assert scanned_ids == []
    assert (out / "report.jsonl").read_text() == (uninterrupted / "report.jsonl").read_text()
    assert json.loads((out / "summary.json").read_text())["items"] == 30


def test_a_scan_folder_is_not_reused_without_resume_or_overwrite(resume_data, partial_scan, library):
    before = _snapshot(partial_scan)
    res = _cli("scan", resume_data, "-c", library.catalogue, "-o", partial_scan, "-j", "1")
    assert res.exit_code == 2
    assert "already holds a scan" in res.stderr
    assert _snapshot(partial_scan) == before


def test_resume_without_an_earlier_scan_is_a_fresh_scan(resume_data, uninterrupted, library, tmp_path):
    summary = scan(resume_data / "item00.wav", library.catalogue, tmp_path / "new", workers=1, resume=True)
    assert summary.items == 1 and summary.resumed_items == 0
    (rec,) = read_report(tmp_path / "new")
    ref = {r["file"]: r for r in read_report(uninterrupted)}["item00.wav"]
    assert rec == ref


# ---------------------------------------------------------------------------------- load_results
@pytest.mark.parametrize(
    "content, kept, left",
    [
        (b"", 0, b""),
        (b'{"file": "a"}\n{"file": "b"}\n', 2, b'{"file": "a"}\n{"file": "b"}\n'),
        (b'{"file": "a"}\n{"file": "b"', 1, b'{"file": "a"}\n'),  # torn last line
        (b'{"file": "a"}\n{"file": "b"}', 1, b'{"file": "a"}\n'),  # complete json, newline never written
        (b'{"file": "a"}\n{"fi\n{"file": "c"}\n', 1, b'{"file": "a"}\n'),  # nothing after a torn line
        (b'{"file": "a"}\n\xff\xfe\n', 1, b'{"file": "a"}\n'),
        (b'{"file": "\xc3', 0, b""),
    ],
)
def test_load_results_cuts_a_torn_tail(tmp_path, content, kept, left):
    p = tmp_path / "results.jsonl"
    p.write_bytes(content)
    records = load_results(p)
    assert len(records) == kept
    assert p.read_bytes() == left


def test_load_results_of_a_missing_file(tmp_path):
    assert load_results(tmp_path / "nope.jsonl") == []
    assert not (tmp_path / "nope.jsonl").exists()
