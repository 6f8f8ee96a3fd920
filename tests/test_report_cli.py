"""Reports end to end through the CLI: scan -> report build (signed) -> report verify; verify-match;
licences; findings and coverage with known answers."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
from click.testing import CliRunner
from conftest import SR, write_audio

from earmark import synth
from earmark.cli.main import cli
from earmark.report.findings import build_findings, merge_intervals
from earmark.scan.run import read_report


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def scanned(library, tmp_path_factory):
    """Three crops of TRK-0001 (two overlapping), one of TRK-0003, a negative; scanned."""
    root = tmp_path_factory.mktemp("report-data")
    s1, s3 = library.song(1), library.song(3)
    write_audio(root / "a.wav", s1.excerpt(5.0, 10.0))
    write_audio(root / "b.wav", s1.excerpt(10.0, 10.0))  # overlaps a.wav by 5 s of the recording
    write_audio(root / "c.wav", s1.excerpt(30.0, 8.0))
    write_audio(root / "=HYPERLINK(evil).wav", s3.excerpt(20.0, 10.0))  # a hostile name
    write_audio(root / "neg.wav", synth.noise(5, duration=10.0, sr=SR, color="pink"))
    out = tmp_path_factory.mktemp("report-scan") / "scan"
    result = run("scan", root, "-c", library.catalogue, "-o", out, "-j", "1")
    assert result.exit_code == 1, result.output
    return root, out


def test_findings_coverage_is_the_union_of_matched_intervals(scanned, library):
    _, out = scanned
    records = read_report(out)
    cat = [{"track_id": t, "duration_s": s.duration, "rights_holder": "R"} for t, s in library.songs.items()]
    f = {x.track_id: x for x in build_findings(records, cat).findings}
    t1 = f["TRK-0001"]
    assert t1.n_items == 3 and t1.n_matches == 3
    # recording seconds 5-20 (a and b) and 30-38 (c): 23 s, within the matcher's edge precision
    assert t1.coverage_s == pytest.approx(23.0, abs=1.5)
    assert len(t1.coverage_intervals) == 2
    assert t1.coverage_fraction == pytest.approx(t1.coverage_s / library.song(1).duration, abs=1e-3)
    assert f["TRK-0003"].n_items == 1
    assert set(f) == {"TRK-0001", "TRK-0003"}


def test_a_copy_whose_place_the_recording_repeats_is_counted_but_not_placed():
    def m(q0, q1, r0, score, alternative=False):
        return {"track_id": "T1", "query_start": q0, "query_end": q1, "ref_start": r0,
                "ref_end": r0 + q1 - q0, "score": score, "alternative": alternative, "ber": 0.1}
    cat = [{"track_id": "T1", "duration_s": 200.0, "rights_holder": "R"}]
    records = [
        # a 24 s loop: the best place (30 s) and one loop later (54 s) match about equally well
        {"file": "loop.wav", "status": "match", "sha256": "a",
         "matches": [m(0, 10, 30.0, 22.5), m(0, 10, 54.0, 21.8, alternative=True)]},
        # a clear place: its alternative is far weaker
        {"file": "clear.wav", "status": "match", "sha256": "b",
         "matches": [m(0, 10, 100.0, 200.0), m(0, 10, 150.0, 90.0, alternative=True)]},
    ]
    # beyond ranking by probability (floor scores), aligned anchors decide
    certain = m(0, 30, 150.0, 291.4) | {"anchors": 241}
    loop = m(0, 30, 170.0, 291.6, alternative=True) | {"anchors": 165}
    records.append({"file": "certain.wav", "status": "match", "sha256": "c", "matches": [certain, loop]})
    (f,) = build_findings(records, cat).findings
    assert f.coverage_s == pytest.approx(50.0)  # each copy counted once
    assert f.coverage_intervals == ((100.0, 110.0), (150.0, 180.0))  # only placed copies are drawn
    assert f.ambiguous_places == ((30.0, 40.0), (54.0, 64.0))
    assert f.to_dict()["ambiguous_places"] == [[30.0, 40.0], [54.0, 64.0]]


def test_a_landmark_only_copys_place_is_ambiguous_when_an_alternative_has_as_many_anchors():
    def m(r0, score, anchors, alternative=False):
        return {"track_id": "T1", "query_start": 0.5, "query_end": 8.6, "ref_start": r0, "ref_end": r0 + 8.1,
                "score": score, "alternative": alternative, "ber": None, "family": "landmark",
                "anchors": anchors}
    cat = [{"track_id": "T1", "duration_s": 200.0, "rights_holder": "R"}]
    # 19.4 against 17.3 is under 0.9, but 14 anchors are over 0.9 of 15
    rec = {"file": "buried.mp3", "status": "match", "sha256": "a",
           "matches": [m(157.0, 19.4, 15), m(143.3, 17.3, 14, alternative=True)]}
    (f,) = build_findings([rec], cat).findings
    assert f.coverage_intervals == () and f.ambiguous_places == ((143.3, 151.4), (157.0, 165.1))
    rec["matches"][1]["anchors"] = 12
    (f,) = build_findings([rec], cat).findings
    assert f.coverage_intervals == ((157.0, 165.1),) and f.ambiguous_places == ()


def test_an_envelope_copys_place_is_ambiguous_when_an_alternative_agrees_as_well_in_its_bits():
    def m(r0, score, ber, alternative=False):
        return {"track_id": "T1", "query_start": 0.0, "query_end": 10.0, "ref_start": r0, "ref_end": r0 + 10,
                "score": score, "alternative": alternative, "ber": ber, "family": "envelope",
                "envelope_r": 0.8}
    cat = [{"track_id": "T1", "duration_s": 200.0, "rights_holder": "R"}]
    records = [
        # the envelope prefers 30 s, but the bits agree as well one loop earlier (within 0.03)
        {"file": "room.wav", "status": "match", "sha256": "a",
         "matches": [m(30.0, 12.0, 0.23), m(6.0, 5.2, 0.19, alternative=True)]},
        # here the alternative is weaker in both: the place stands
        {"file": "room2.wav", "status": "match", "sha256": "b",
         "matches": [m(100.0, 40.0, 0.20), m(150.0, 9.0, 0.27, alternative=True)]},
    ]
    (f,) = build_findings(records, cat).findings
    assert f.coverage_intervals == ((100.0, 110.0),)
    assert f.ambiguous_places == ((6.0, 16.0), (30.0, 40.0))
    assert f.coverage_s == pytest.approx(20.0)
    # the same two places found by Chromaprint are judged by their scores alone: 5.2 < 0.9 x 12
    chroma = [dict(x, family="chromaprint") for x in records[0]["matches"]]
    (g,) = build_findings([dict(records[0], matches=chroma)], cat).findings
    assert g.coverage_intervals == ((30.0, 40.0),) and g.ambiguous_places == ()


def test_merge_intervals():
    assert merge_intervals([(5, 10), (0, 2), (9, 12), (20, 21)]) == [(0, 2), (5, 12), (20, 21)]
    assert merge_intervals([(0, 1), (1.5, 2)], gap=0.6) == [(0, 2)]
    assert merge_intervals([]) == []


def test_report_build_sign_verify_and_tamper(scanned, library, tmp_path):
    _, out = scanned
    key = tmp_path / "keys" / "signer"
    key.parent.mkdir()
    assert run("keys", "generate", key).exit_code == 0
    other = tmp_path / "keys" / "other"
    assert run("keys", "generate", other).exit_code == 0
    bundle = tmp_path / "bundle"
    r = run("report", "build", out, "--out", bundle, "--sign", key)
    assert r.exit_code == 0, r.output
    assert "2 of 6 registered recordings found (2 unlicensed)" in r.output
    for name in ("report/report.html", "report/findings.jsonl", "report/matches.jsonl", "report/items.jsonl",
                 "report/findings.csv", "report/matches.csv", "report/summary.json", "methods/methods.json",
                 "methods/scan-manifest.json", "methods/catalogue.json", "VERIFY.md", "manifest.json",
                 "manifest.json.sig", "SHA256SUMS"):
        assert (bundle / name).is_file(), name
    ok = run("report", "verify", bundle, "--pubkey", f"{key}.pub")
    assert ok.exit_code == 0 and "signature verified" in ok.output
    assert run("report", "verify", bundle, "--pubkey", f"{other}.pub").exit_code == 1
    # the hostile file name is neutralised in the CSV and escaped in the HTML
    rows = list(csv.DictReader((bundle / "report" / "matches.csv").open()))
    assert "'=HYPERLINK(evil).wav" in {r["file"] for r in rows}
    assert len(rows) == 4
    # one byte changed in a report file: verification fails naming it
    tampered = tmp_path / "tampered"
    shutil.copytree(bundle, tampered)
    p = tampered / "report" / "findings.csv"
    data = bytearray(p.read_bytes())
    data[10] ^= 1
    p.write_bytes(bytes(data))
    bad = CliRunner().invoke(cli, ["report", "verify", str(tampered), "--pubkey", f"{key}.pub"])
    assert bad.exit_code == 1
    assert "report/findings.csv" in bad.output


def test_licences_mark_findings_licensed(scanned, catalogue_copy, tmp_path):
    root, _ = scanned
    r = run("catalogue", "licence", "add", "-c", catalogue_copy, "--licensee", "Acme AI",
            "--dataset", "*report-data*", "--track", "TRK-0003", "--from", "2020-01-01")
    assert r.exit_code == 0, r.output
    listed = run("catalogue", "licence", "list", "-c", catalogue_copy)
    assert json.loads(listed.output.splitlines()[0])["licensee"] == "Acme AI"
    out = tmp_path / "scan"
    assert run("scan", root, "-c", catalogue_copy, "-o", out, "-j", "1").exit_code == 1
    bundle = tmp_path / "bundle"
    r = run("report", "build", out, "--out", bundle)
    assert r.exit_code == 0, r.output
    assert "(1 unlicensed)" in r.output
    findings = {json.loads(x)["track_id"]: json.loads(x)
                for x in (bundle / "report" / "findings.jsonl").read_text().splitlines()}
    assert findings["TRK-0003"]["licensed"] and not findings["TRK-0001"]["licensed"]
    bad = CliRunner().invoke(cli, ["catalogue", "licence", "add", "-c", str(catalogue_copy),
                                   "--licensee", "x", "--dataset", "*", "--from", "2020-13-45x"])
    assert bad.exit_code == 2 and "must be a date" in bad.output


def test_verify_match_reproduces_and_detects_changes(scanned, library, tmp_path):
    root, out = scanned
    ok = run("verify-match", out, "a.wav")
    assert ok.exit_code == 0, ok.output
    assert "OK    TRK-0001" in ok.output
    # the item checked against a recording it does not contain
    wrong = run("verify-match", out, "a.wav", "--track", "TRK-0002")
    assert wrong.exit_code == 1 and "FAIL  TRK-0002" in wrong.output
    # one byte of the item changed since the scan
    moved = tmp_path / "data"
    shutil.copytree(root, moved)
    p = moved / "a.wav"
    data = bytearray(p.read_bytes())
    data[-1] ^= 1
    p.write_bytes(bytes(data))
    changed = run("verify-match", out, "a.wav", "--source", moved)
    assert changed.exit_code == 1 and "DIFFERS from the scan" in changed.output


def test_a_sped_up_copy_is_found_by_landmarks_and_rechecked_by_their_route(library, tmp_path):
    """A copy 15 % faster (and higher) escapes Chromaprint; the landmark family reports it with its
    factors, and verify-match reproduces it by the landmark route (that recording alone, no index)."""
    import soxr

    root = tmp_path / "data"
    root.mkdir()
    fast = soxr.resample(library.song(6).excerpt(10.0, 23.0), SR * 1.15, SR).astype("float32")
    write_audio(root / "fast.wav", fast)
    out = tmp_path / "scan"
    result = run("scan", root, "-c", library.catalogue, "-o", out, "-j", "1")
    assert result.exit_code == 1, result.output
    (rec,) = read_report(out)
    main = [m for m in rec["matches"] if not m["alternative"]]
    assert [m["track_id"] for m in main] == ["TRK-0006"]
    m = main[0]
    assert m["family"] == "landmark" and m["ber"] is None and m["transform"] == "speed"
    assert abs(m["time_factor"] - 1.15) < 0.01 and abs(m["pitch_st"] - 12 * 0.2016) < 0.25
    assert abs(m["ref_start"] - m["query_start"] * m["time_factor"] - 10.0) < 0.15
    ok = run("verify-match", out, "fast.wav")
    assert ok.exit_code == 0, ok.output
    wrong = run("verify-match", out, "fast.wav", "--track", "TRK-0002")
    assert wrong.exit_code == 1, wrong.output


def test_recheck_reads_the_null_model_a_scan_used():
    """A scan written before 0.8.0 stored no clump: it counted every alignment as a test, and its
    re-check must too, or the evidence it reproduces would differ from the report's."""
    from earmark.scan.recheck import _scan_settings

    old = _scan_settings({"settings": {"null": {"inflation": 3.0, "window_items": 80}}})
    assert old.null.clump == 1.0
    new = _scan_settings({"settings": {"null": {"inflation": 3.0, "window_items": 80, "clump": 6.0}}})
    assert new.null.clump == 6.0 and _scan_settings({}).null.clump == 1.0


def test_recheck_extends_spans_only_for_scans_that_did():
    """A scan written before 0.9.0 reported evidence spans; its re-check must compare those."""
    from earmark.match.extent import ExtentConfig
    from earmark.scan.recheck import _scan_settings

    assert _scan_settings({"settings": {}}).extent is None
    assert _scan_settings({"settings": {"extent": {"bin_s": 0.5}}}).extent == ExtentConfig(bin_s=0.5)


def test_recheck_checks_excerpts_only_for_scans_that_did():
    """A scan written before 0.10.0 reported no excerpts; its re-check must not admit any."""
    from earmark.match.excerpt import ExcerptConfig
    from earmark.scan.recheck import _scan_settings

    assert _scan_settings({"settings": {}}).excerpt is None
    assert _scan_settings({"settings": {"excerpt": {"min_rate": 0.8}}}).excerpt == ExcerptConfig(min_rate=0.8)
