"""Registered recordings that hold the same audio (a remaster and its original): an item that holds one
is attributed to the one that agrees better with it, and the other is reported as an alternative that
names it; recordings that merely overlap in an item are both kept."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from conftest import SR, build_catalogue, write_audio, write_csv
from scipy.signal import butter, sosfilt

from earmark import synth
from earmark.catalogue.reader import open_reader
from earmark.fingerprint.pipeline import fingerprint_source
from earmark.match.chromaprint import MatchConfig, references_agree
from earmark.match.combine import mark_same_audio
from earmark.match.model import Match
from earmark.report.build import build_bundle
from earmark.report.findings import build_findings
from earmark.scan.run import read_report, scan
from earmark.scan.worker import ScanSettings, _same_audio

DT = 0.1238  # seconds per Chromaprint item (any value: the codes are synthetic)


def _m(rec: int, q0: float, q1: float, r0: float, *, anchors: int, fmp: float = 1e-40,
       ber: float | None = None, factor: float = 1.0, alternative: bool = False) -> Match:
    return Match(track_id=f"T{rec:03d}", rec_id=rec, query_start=q0, query_end=q1, ref_start=r0,
                 ref_end=r0 + factor * (q1 - q0), score=-math.log10(fmp), fmp=fmp, ber=ber, chance_ber=None,
                 n_items=0, n_distinct=0, alternative=alternative, family="landmark", anchors=anchors,
                 time_factor=factor)


def test_of_two_recordings_sharing_the_audio_the_one_with_clearly_more_agreeing_anchors_is_the_finding():
    calls = []

    def same(a, b, q0, q1):
        calls.append((a.track_id, b.track_id, q0, q1))
        return True

    remaster = _m(1, 0.0, 10.0, 40.0, anchors=80, fmp=1e-200)
    original = _m(2, 0.5, 9.5, 40.5, anchors=30, fmp=1e-250, ber=0.05)  # stronger by probability
    repeat = _m(2, 0.5, 9.5, 100.5, anchors=25, fmp=1e-90, alternative=True)  # the original repeats it
    out = mark_same_audio([remaster, original, repeat], same)
    assert out[0] == remaster
    assert out[1] == dataclasses.replace(original, alternative=True, shares_audio_with="T001")
    assert out[2] == dataclasses.replace(repeat, shares_audio_with="T001")
    assert calls == [("T001", "T002", 0.5, 9.5)]  # the stronger first, over the shared stretch


@pytest.mark.parametrize("anchors, winner", [((20, 40), "T002"), ((40, 20), "T001"), ((26, 25), "T002"),
                                             ((25, 26), "T002"), ((0, 0), "T002")])
def test_close_anchor_counts_leave_it_to_the_stronger_match(anchors, winner):
    # 20 against 40 is 3.2 standard deviations from an even split; 25 against 26 is 0.1
    a = _m(1, 0.0, 10.0, 0.0, anchors=anchors[0], fmp=1e-30)
    b = _m(2, 0.0, 10.0, 0.0, anchors=anchors[1], fmp=1e-60)
    out = mark_same_audio([a, b], lambda *args: True)
    assert [m.track_id for m in out if not m.alternative] == [winner]
    assert [m.shares_audio_with for m in out if m.alternative] == [winner]


def test_recordings_that_overlap_without_sharing_audio_are_both_kept():
    a = _m(1, 0.0, 10.0, 40.0, anchors=80)
    b = _m(2, 0.0, 10.0, 12.0, anchors=30)
    assert mark_same_audio([a, b], lambda *args: False) == [a, b]


def test_disjoint_stretches_and_other_speeds_are_not_compared():
    def never(*args):
        raise AssertionError("must not be asked")

    a = _m(1, 0.0, 10.0, 40.0, anchors=80)
    later = _m(2, 6.0, 16.0, 0.0, anchors=30)  # 4 s shared of 10: under half
    faster = _m(3, 0.0, 10.0, 0.0, anchors=30, factor=1.1)
    same_rec = _m(1, 0.0, 10.0, 90.0, anchors=30)
    ms = [a, later, faster, same_rec]
    assert mark_same_audio(ms, never) == ms


def test_references_agree_on_a_copy_and_not_on_unrelated_codes(rng):
    codes = rng.integers(0, 2**32, size=800, dtype=np.uint64).astype(np.uint32)
    active = np.ones(800, bool)
    cfg = MatchConfig()
    # the second recording holds the first's items 100..400 from its item 20 (a shifted copy), with
    # 8 % of bits changed (a remaster); beyond that it is unrelated
    other = rng.integers(0, 2**32, size=600, dtype=np.uint64).astype(np.uint32)
    flips = np.zeros(300, np.uint32)
    for bit in range(32):
        flips |= (rng.random(300) < 0.08).astype(np.uint32) << np.uint32(bit)
    other[20:320] = codes[100:400] ^ flips
    ones = np.ones(600, bool)
    assert references_agree((codes, active), 100 * DT, (other, ones), 21 * DT, 20.0, DT, cfg)  # 1 item off
    assert not references_agree((codes, active), 100 * DT, (other, ones), 200 * DT, 20.0, DT, cfg)
    assert not references_agree((codes, active), 500 * DT, (other, ones), 20 * DT, 20.0, DT, cfg)
    # too short a stretch is no evidence, nor is silence
    assert not references_agree((codes, active), 100 * DT, (other, ones), 20 * DT, 1.0, DT, cfg)
    assert not references_agree((codes, np.zeros(800, bool)), 100 * DT, (other, ones), 20 * DT, 20.0, DT, cfg)


def test_findings_attribute_same_audio_items_to_the_better_recording():
    rec = {"file": "a.mp3", "status": "match", "sha256": "00", "matches": [
        {**_m(1, 0.0, 10.0, 40.0, anchors=80).to_dict()},
        {**_m(2, 0.0, 10.0, 40.0, anchors=30, alternative=True).to_dict(), "shares_audio_with": "T001"},
    ]}
    cat = [{"track_id": t, "isrc": "", "title": t, "artist": "x", "rights_holder": "h", "duration_s": 100.0}
           for t in ("T001", "T002")]
    f = build_findings([rec], cat).findings
    assert [x.track_id for x in f] == ["T001"]
    assert f[0].shares_audio == {"T002": 1} and f[0].coverage_fraction == 0.1


def _remaster(x: np.ndarray) -> np.ndarray:
    """A remaster: the same performance with a quiet new layer (another part 12 dB down, as a remix
    adds), its highs lifted 6 dB above 2 kHz and its level changed."""
    layer = synth.song(73, duration=len(x) / SR, sr=SR)[: len(x)]
    y = x + 10 ** (-24 / 20) * layer * (np.sqrt(np.mean(x**2)) / np.sqrt(np.mean(layer**2)))
    sos = butter(2, 2000, btype="highpass", fs=SR, output="sos")
    y = 0.8 * (y + (10 ** (6 / 20) - 1) * sosfilt(sos, y))
    return (y / max(1.0, float(np.abs(y).max()) / 0.95)).astype(np.float32)


@pytest.fixture(scope="module")
def remaster_scan(tmp_path_factory):
    root = tmp_path_factory.mktemp("remaster")
    original = synth.song(71, duration=40.0, sr=SR)
    remaster = _remaster(original)
    other = synth.song(72, duration=40.0, sr=SR)
    rows = []
    for tid, x in (("ORIG", original), ("REMA", remaster), ("OTHR", other)):
        write_audio(root / f"{tid}.wav", x)
        rows.append({"track_id": tid, "isrc": "", "title": tid, "artist": "a", "album": "",
                     "rights_holder": "h", "path": f"{tid}.wav", "licence_ref": ""})
    build_catalogue(root / "cat", write_csv(root / "cat.csv", rows)).close()
    data = root / "data"
    data.mkdir()
    write_audio(data / "from_remaster.mp3", remaster[12 * SR: 22 * SR])
    write_audio(data / "from_original.mp3", original[20 * SR: 30 * SR])
    scan(data, root / "cat", root / "out", workers=1, argv=["earmark", "scan", "test"])
    return root, {r["file"]: r for r in read_report(root / "out")}


@pytest.mark.parametrize("file, present, sibling", [("from_remaster.mp3", "REMA", "ORIG"),
                                                     ("from_original.mp3", "ORIG", "REMA")])
def test_a_copy_of_a_remaster_or_its_original_is_attributed_to_the_one_it_was_made_from(
        remaster_scan, file, present, sibling):
    ms = remaster_scan[1][file]["matches"]
    primary = [m["track_id"] for m in ms if not m["alternative"]]
    assert primary == [present]
    assert {m["shares_audio_with"] for m in ms if m["track_id"] == sibling} == {present}


def test_the_scan_compares_recordings_that_share_audio_and_leaves_unrelated_ones_alone(remaster_scan):
    root, _ = remaster_scan
    reader = open_reader(root / "cat")
    fp = fingerprint_source(root / "data" / "from_original.mp3", reader.config).fingerprint
    rec = {r.track_id: i for i, r in reader.recordings.items()}
    at = {t: _m(rec[t], 0.0, 10.0, 20.0, anchors=20) for t in ("ORIG", "REMA", "OTHR")}
    at = {t: dataclasses.replace(m, track_id=t) for t, m in at.items()}
    settings = ScanSettings()
    assert _same_audio(fp, reader, settings, at["ORIG"], at["REMA"], 0.0, 10.0)
    assert not _same_audio(fp, reader, settings, at["ORIG"], at["OTHR"], 0.0, 10.0)
    # the remaster at another place of itself is not the same audio either
    later = dataclasses.replace(at["REMA"], ref_start=5.0, ref_end=15.0)
    assert not _same_audio(fp, reader, settings, at["ORIG"], later, 0.0, 10.0)


def test_the_bundle_says_which_recordings_share_audio_and_counts_each_item_once(remaster_scan, tmp_path):
    root, _ = remaster_scan
    findings = build_bundle(root / "out", tmp_path / "bundle", catalogue=root / "cat")
    by_id = {f.track_id: f for f in findings.findings}
    assert by_id["REMA"].shares_audio == {"ORIG": 1} and by_id["ORIG"].shares_audio == {"REMA": 1}
    assert by_id["REMA"].n_items == 1 and by_id["ORIG"].n_items == 1
    page = (tmp_path / "bundle" / "report" / "report.html").read_text(encoding="utf-8")
    assert page.count("Shares audio with") == 2
    rows = (tmp_path / "bundle" / "report" / "matches.csv").read_text(encoding="utf-8").splitlines()
    assert "shares_audio_with" in rows[0] and sum(",REMA," in r or r.endswith(",REMA") for r in rows) >= 1
