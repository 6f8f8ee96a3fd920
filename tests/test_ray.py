"""The Ray engine: a local Ray cluster must give exactly the local engine's report."""

from __future__ import annotations

import io
import tarfile

import pytest
from conftest import SR, write_audio

from earmark import synth
from earmark.errors import ScanError
from earmark.scan.run import read_report, scan

ray = pytest.importorskip("ray", reason="the ray extra is not installed")


@pytest.fixture(scope="module")
def shards(library, tmp_path_factory):
    """Two WebDataset shards and a loose file: 2 positives, 1 hard negative, 1 broken member."""
    root = tmp_path_factory.mktemp("ray-data")
    src = tmp_path_factory.mktemp("ray-src")
    members = {
        "shard-000000.tar": {
            "a.mp3": write_audio(src / "a.mp3", library.song(1).excerpt(10.0, 10.0)),
            "b.wav": write_audio(src / "b.wav", synth.noise(4, duration=8.0, sr=SR, color="pink")),
        },
        "shard-000001.tar": {
            "c.ogg": write_audio(src / "c.ogg", library.song(4).excerpt(20.0, 12.0)),
            "d.mp3": None,  # not audio
        },
    }
    for shard, files in members.items():
        with tarfile.open(root / shard, "w") as tar:
            for name, path in files.items():
                data = path.read_bytes() if path is not None else b"plain text, not audio\n" * 10
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    write_audio(root / "loose.wav", library.hard_negatives["same_artist_13"][: 12 * SR])
    return root


@pytest.mark.slow
def test_ray_report_equals_local_report(library, shards, tmp_path):
    local = scan(shards, library.catalogue, tmp_path / "local", workers=1)
    distributed = scan(shards, library.catalogue, tmp_path / "ray", workers=2, engine="ray")
    a, b = read_report(tmp_path / "local"), read_report(tmp_path / "ray")
    assert a == b
    assert [r["file"] for r in a] == [
        "loose.wav", "shard-000000.tar::a.mp3", "shard-000000.tar::b.wav",
        "shard-000001.tar::c.ogg", "shard-000001.tar::d.mp3",
    ]
    status = {r["file"]: r["status"] for r in a}
    assert status["shard-000000.tar::a.mp3"] == status["shard-000001.tar::c.ogg"] == "match"
    assert status["shard-000001.tar::d.mp3"] == "error"
    assert status["loose.wav"] == status["shard-000000.tar::b.wav"] == "no_match"
    assert local.matched == distributed.matched == 2
    manifest = (tmp_path / "ray" / "manifest.json").read_text()
    assert '"engine": "ray"' in manifest


def test_unknown_engine_is_refused(library, shards, tmp_path):
    with pytest.raises(ScanError, match="engine='spark' must be"):
        scan(shards, library.catalogue, tmp_path / "x", engine="spark")
