"""earmark.cli: every command has help; catalogue commands and scan exit codes end to end."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import SR, write_audio

from earmark import __version__, synth
from earmark.cli.main import cli
from earmark.match.chromaprint import MatchConfig


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix]
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            out += _commands(cmd, (*prefix, name))
        else:
            out.append((*prefix, name))
    return out


ALL_COMMANDS = _commands(cli)


def run(*args: str | Path) -> click.testing.Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_the_command_tree_is_complete():
    assert set(ALL_COMMANDS) >= {
        (), ("catalogue",), ("catalogue", "add"), ("catalogue", "list"), ("catalogue", "show"),
        ("catalogue", "remove"), ("scan",), ("demo",),
    }


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "earmark")
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_has_help(path, flag):
    result = run(*path, flag)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ")
    cmd = cli
    for name in path:
        cmd = cmd.commands[name]
    first_paragraph = " ".join(cmd.help.split("\n\n")[0].split())
    assert first_paragraph and first_paragraph in " ".join(result.output.split())


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"earmark, version {__version__}"


def test_installed_console_script_reports_its_version():
    exe = Path(sys.executable).parent / "earmark"
    if not exe.exists():
        exe = shutil.which("earmark")
    if exe is None:
        pytest.skip("the earmark console script is not installed in this environment")
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"earmark, version {__version__}"


# ------------------------------------------------------------------------------- catalogue commands
@pytest.fixture
def cli_catalogue(library, tmp_path) -> Path:
    """A catalogue registered through the CLI from the session's metadata CSV."""
    cat = tmp_path / "cat"
    result = run("catalogue", "add", "-c", cat, "--metadata", library.csv_path, "-j", "1")
    assert result.exit_code == 0, result.output
    assert re.search(r"added 6, duplicates 0, errors 0 in [\d.]+ s; catalogue now holds 6 recordings",
                     result.stdout)
    return cat


@pytest.mark.slow
def test_catalogue_add_list_show_remove(cli_catalogue, library):
    cat = cli_catalogue
    listed = run("catalogue", "list", "-c", cat)
    assert listed.exit_code == 0
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [r[0] for r in rows] == sorted(library.songs)
    first = library.song(1)
    assert rows[0][:4] == [first.track_id, first.isrc, first.artist, first.title]
    assert rows[0][5] == "Example Records"
    assert "6 recordings" in listed.stderr

    as_json = run("catalogue", "list", "-c", cat, "--json")
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [r["track_id"] for r in records] == sorted(library.songs)
    assert records[0]["isrc"] == first.isrc

    shown = run("catalogue", "show", "-c", cat, "TRK-0002")
    assert shown.exit_code == 0
    rec = json.loads(shown.stdout)
    assert rec["track_id"] == "TRK-0002" and rec["title"] == "Song 12"
    assert rec["extra"] == {"licence_ref": "LIC-12"}
    assert json.loads(run("catalogue", "show", "-c", cat, "GBABC2400002").stdout) == rec  # by ISRC

    summary = json.loads(run("catalogue", "show", "-c", cat).stdout)
    assert summary["recordings"] == 6 and summary["segments"] == 1
    assert summary["manifest"]["format"] == "earmark-catalogue"

    removed = run("catalogue", "remove", "-c", cat, "TRK-0002", "TRK-0005")
    assert removed.exit_code == 0
    assert removed.stdout.splitlines() == ["removed TRK-0002 (Artist 12 - Song 12)",
                                           "removed TRK-0005 (Artist 15 - Song 15)"]
    remaining = [line.split("\t")[0] for line in run("catalogue", "list", "-c", cat).stdout.splitlines()]
    assert remaining == ["TRK-0001", "TRK-0003", "TRK-0004", "TRK-0006"]

    missing = run("catalogue", "show", "-c", cat, "TRK-0002")
    assert missing.exit_code == 2
    assert missing.stderr.startswith("earmark: error: ") and "no recording 'TRK-0002'" in missing.stderr

    again = run("catalogue", "add", "-c", cat, "--metadata", library.csv_path, "-j", "1")
    assert again.exit_code == 0
    assert "added 2, duplicates 4, errors 0" in again.stdout


def test_catalogue_add_from_a_folder_with_errors_exits_1(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    write_audio(audio / "Some Band - A Song.wav", synth.song(51, duration=12.0, sr=SR))
    (audio / "broken.mp3").write_text("not audio\n" * 30)
    result = run("catalogue", "add", "-c", tmp_path / "cat", audio, "-j", "1")
    assert result.exit_code == 1
    assert "added 1, duplicates 0, errors 1" in result.stdout
    assert re.search(r"error\s+broken: .*broken\.mp3: not_audio", result.stderr)
    listed = run("catalogue", "list", "-c", tmp_path / "cat", "--json")
    (rec,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (rec["track_id"], rec["artist"], rec["title"]) == ("Some Band - A Song", "Some Band", "A Song")


def test_catalogue_add_needs_exactly_one_source(library, tmp_path):
    neither = run("catalogue", "add", "-c", tmp_path / "cat")
    assert neither.exit_code == 2 and "give either --metadata CSV or an AUDIO_DIR" in neither.output
    both = run("catalogue", "add", "-c", tmp_path / "cat", "-m", library.csv_path, library.audio_dir)
    assert both.exit_code == 2


def test_catalogue_add_with_a_bad_csv_exits_2(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("title,artist\nx,y\n")
    result = run("catalogue", "add", "-c", tmp_path / "cat", "-m", bad)
    assert result.exit_code == 2
    assert result.stderr.startswith("earmark: error: ")
    assert "missing required column(s) track_id, path" in result.stderr


@pytest.mark.parametrize(
    "command", [["catalogue", "list"], ["catalogue", "show"], ["catalogue", "remove", "X"]]
)
def test_catalogue_commands_on_a_non_catalogue_exit_2(tmp_path, command):
    result = run(*command, "-c", tmp_path)
    assert result.exit_code == 2
    assert result.stderr.startswith("earmark: error: ")
    assert "not an earmark catalogue" in result.stderr


# ------------------------------------------------------------------------------- scan
@pytest.fixture(scope="module")
def cli_datasets(library, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli-data")
    pos, neg = root / "with_positives", root / "negatives_only"
    pos.mkdir()
    neg.mkdir()
    write_audio(pos / "hit.mp3", library.song(6).excerpt(22.0, 12.0))
    write_audio(pos / "miss.wav", library.hard_negatives["same_artist_11"][: 12 * SR])
    write_audio(neg / "same_artist.mp3", library.hard_negatives["same_artist_13"][: 12 * SR])
    write_audio(neg / "tone.wav", synth.tone(440.0, duration=8.0, sr=SR))
    (neg / "empty.wav").write_bytes(b"")  # an unreadable item does not change the exit status
    return {"pos": pos, "neg": neg}


@pytest.mark.slow
def test_scan_exits_1_when_something_is_found(library, cli_datasets, tmp_path):
    out = tmp_path / "scan"
    result = run("scan", cli_datasets["pos"], "-c", library.catalogue, "-o", out, "-j", "1")
    assert result.exit_code == 1, result.output
    assert re.search(r"items scanned\s+2", result.stdout)
    assert re.search(r"matched\s+1\s+\(1 matches of 1 recordings\)", result.stdout)
    assert f"report            {out / 'report.jsonl'}" in result.stdout
    records = {r["file"]: r for r in map(json.loads, (out / "report.jsonl").read_text().splitlines())}
    assert records["hit.mp3"]["matches"][0]["track_id"] == library.song(6).track_id
    assert records["miss.wav"]["status"] == "no_match"


@pytest.mark.slow
def test_scan_exits_0_when_nothing_is_found(library, cli_datasets, tmp_path):
    out = tmp_path / "scan"
    result = run("scan", cli_datasets["neg"], "-c", library.catalogue, "-o", out, "-j", "2")
    assert result.exit_code == 0, result.output
    assert re.search(r"matched\s+0", result.stdout)
    assert re.search(r"errors\s+1", result.stdout)
    statuses = sorted(json.loads(line)["status"] for line in (out / "report.jsonl").read_text().splitlines())
    assert statuses == ["error", "no_match", "no_match"]


def test_scan_thresholds_from_the_command_line_are_in_force_and_recorded(library, cli_datasets, tmp_path):
    out = tmp_path / "scan"
    result = run("scan", cli_datasets["pos"], "-c", library.catalogue, "-o", out, "-j", "1",
                 "--landmark-max-fmp", "1e-300", "--landmark-copy-fmp", "1e-299", "--max-fmp", "1e-300",
                 "--envelope-max-fmp", "1e-298", "--mixture-max-fmp", "1e-297",
                 "--mixture-max-unmasked", "0.01")
    assert result.exit_code == 0, result.output  # nothing is that certain: the hit is not reported
    settings = json.loads((out / "manifest.json").read_text())["settings"]
    landmarks = settings["landmarks"]
    assert (landmarks["max_fmp"], landmarks["copy_fmp"]) == (1e-300, 1e-299)
    assert settings["envelope"]["max_fmp"] == 1e-298
    assert (settings["mixture"]["max_fmp"], settings["mixture"]["max_unmasked"]) == (1e-297, 0.01)
    assert settings["match"]["max_fmp"] == 1e-300
    # options not given keep their defaults
    assert settings["landmarks"]["confirm_fmp"] == 1e-6 and settings["mixture"]["unmasked_db"] == 6.0


def test_scan_with_a_missing_catalogue_exits_2(cli_datasets, tmp_path):
    result = run("scan", cli_datasets["neg"], "-c", tmp_path / "nope", "-o", tmp_path / "scan")
    assert result.exit_code == 2
    assert result.stderr.startswith("earmark: error: ")
    assert "not an earmark catalogue" in result.stderr
    assert result.stdout == ""


def test_scan_with_an_invalid_catalogue_exits_2(cli_datasets, tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "manifest.json").write_text("{broken")
    result = run("scan", cli_datasets["neg"], "-c", fake, "-o", tmp_path / "scan")
    assert result.exit_code == 2
    assert result.stderr.startswith("earmark: error: ") and "unreadable manifest" in result.stderr


def test_scan_bad_arguments_exit_2(library, tmp_path):
    missing = run("scan", tmp_path / "no-such-dataset", "-c", library.catalogue, "-o", tmp_path / "o")
    assert missing.exit_code == 2 and "no such file or folder" in missing.stderr
    bad_fmp = run("scan", tmp_path, "-c", library.catalogue, "-o", tmp_path / "o", "--max-fmp", "0")
    assert bad_fmp.exit_code == 2


def test_scan_into_an_existing_scan_exits_2_unless_overwrite(library, cli_datasets, tmp_path):
    out = tmp_path / "scan"
    args = ("scan", cli_datasets["neg"], "-c", library.catalogue, "-o", out, "-j", "1")
    assert run(*args).exit_code == 0
    again = run(*args)
    assert again.exit_code == 2 and "already holds a scan" in again.stderr
    assert run(*args, "--overwrite", "--max-fmp", "1e-9").exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["match"]["max_fmp"] == 1e-9


def test_scan_help_states_the_real_default_max_fmp():
    help_text = " ".join(run("scan", "--help").output.split())
    assert f"default {MatchConfig().max_fmp:g}" in help_text


def test_an_unexpected_error_exits_2_never_1(library, tmp_path, monkeypatch):
    """Exit status 1 means 'found catalogue recordings': a crash must not look like a finding."""
    import earmark.scan.run as run_mod

    def boom(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(run_mod, "scan", boom)
    result = CliRunner().invoke(cli, ["scan", str(tmp_path), "-c", str(library.catalogue), "-o",
                                      str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "internal error: RuntimeError: simulated bug" in result.stderr


def test_the_demo_finds_every_planted_recording_and_nothing_else(tmp_path):
    """The README's first command, end to end: catalogue -> index -> scan -> report, with known
    answers (including the sped-up and slowed copies only the landmark family finds)."""
    from earmark.demo import run_demo
    from earmark.scan.run import read_report

    lines: list[str] = []
    result = run_demo(tmp_path / "demo", workers=1, echo=lines.append)
    assert result.ok, lines
    assert result.found["edits/d_nightcore.wav"] == {"DEMO008"}
    recs = {r["file"]: r for r in read_report(tmp_path / "demo" / "scan")}
    (fast,) = [m for m in recs["edits/d_nightcore.wav"]["matches"] if not m["alternative"]]
    (slow,) = [m for m in recs["edits/e_slowed.wav"]["matches"] if not m["alternative"]]
    assert fast["transform"] == slow["transform"] == "speed"
    assert abs(fast["time_factor"] - 1.15) < 0.01 and abs(slow["time_factor"] - 0.92) < 0.01
    assert any("speed: time factor 1.150" in line for line in lines)
    # the copy buried 9 dB under other music is found by the mixture verifier, at its place
    (buried,) = [m for m in recs["edits/g_buried.wav"]["matches"] if not m["alternative"]]
    assert (buried["track_id"], buried["family"]) == ("DEMO006", "mixture")
    assert abs(buried["ref_start"] - 30.0) < 0.05 and buried["unmasked"] <= 0.05
    assert any("whole item under other sound" in line for line in lines)
    # 3 s spliced into other music: too short for the landmarks alone, confirmed by its peaks
    (ex,) = recs["edits/h_excerpt.wav"]["matches"]
    assert (ex["track_id"], ex["family"]) == ("DEMO002", "landmark") and ex["excerpt_fmp"] <= 1e-6
    assert abs(ex["query_start"] - 3.0) < 0.3 and abs(ex["ref_start"] - 32.0) < 0.3
    assert any("an excerpt among other audio" in line for line in lines)
