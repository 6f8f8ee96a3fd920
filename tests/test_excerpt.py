"""Excerpts: a few seconds of a recording spliced into other audio are reported once the peak check
confirms them over their extent; a related recording that shares a stem with a registered one is
not; a stretch another recording's match already holds is left to it. The check's counts against a
plain loop, its Bonferroni factor, its thresholds one at a time, and the re-check of an excerpt."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SR, build_catalogue, write_audio, write_csv

from earmark import synth
from earmark.catalogue.reader import open_reader
from earmark.catalogue.store import peak_map
from earmark.cli.main import cli
from earmark.errors import ParameterError
from earmark.fingerprint.landmarks import LandmarkConfig
from earmark.fingerprint.peaks import extract_peaks, log_spectrogram
from earmark.fingerprint.pipeline import fingerprint_source
from earmark.match import excerpt as ex
from earmark.match import landmarks as lm
from earmark.match import mixture as mx
from earmark.match.chromaprint import MatchConfig
from earmark.match.extent import ExtentConfig, extend
from earmark.match.model import Match
from earmark.report.build import build_bundle
from earmark.scan.recheck import verify_match
from earmark.scan.run import read_report, scan
from earmark.scan.worker import ScanSettings, _check_excerpts, scan_item
from earmark.sources import ItemData

AT, LENGTH, FROM = 3.0, 4.0, 20.0  # the excerpt's place in the item, its length, its place in the recording
#: Chromaprint held to an impossible level: what is left is the landmark family and the verifiers
NO_CHROMA = MatchConfig(max_fmp=1e-300)
LC = LandmarkConfig()


def _splice(host: np.ndarray, part: np.ndarray, at: float) -> np.ndarray:
    y = host.copy()
    a = int(round(at * SR))
    y[a: a + len(part)] = part
    return y


def _cut(x: np.ndarray, start: float, length: float) -> np.ndarray:
    return x[int(round(start * SR)): int(round((start + length) * SR))]


@pytest.fixture(scope="module")
def excerpt_scan(tmp_path_factory):
    """A catalogue of SONG and STEMS (two songs mixed at equal power, as stems of one master), and a
    folder of items: 10 s of unregistered music with 4 s of SONG spliced in, the same with 4 s of a
    stem of STEMS alone (a related recording, not a copy), and unregistered music alone."""
    root = tmp_path_factory.mktemp("excerpt")
    song = synth.song(81, duration=40.0, sr=SR)
    stem_a = synth.song(83, duration=40.0, sr=SR)
    stems = synth.mix_at_snr(stem_a, synth.song(84, duration=40.0, sr=SR), 0.0)
    rows = []
    for tid, x in (("SONG", song), ("STEMS", stems)):
        write_audio(root / f"{tid}.wav", x)
        rows.append({"track_id": tid, "isrc": "", "title": tid, "artist": "a", "album": "",
                     "rights_holder": "h", "path": f"{tid}.wav", "licence_ref": ""})
    build_catalogue(root / "cat", write_csv(root / "cat.csv", rows)).close()
    items = {
        "excerpt.wav": _splice(synth.song(90, duration=10.0, sr=SR), _cut(song, FROM, LENGTH), AT),
        "stem.wav": _splice(synth.song(91, duration=10.0, sr=SR), _cut(stem_a, FROM, LENGTH), AT),
        "unrelated.wav": synth.song(92, duration=10.0, sr=SR),
    }
    data = root / "data"
    data.mkdir()
    for name, x in items.items():
        write_audio(data / name, x)
    settings = ScanSettings(match=NO_CHROMA)
    scan(data, root / "cat", root / "out", workers=1, settings=settings, argv=["earmark", "scan", "test"])
    return root, items, {r["file"]: r for r in read_report(root / "out")}, open_reader(root / "cat")


def _item(items, name):
    return ItemData(name, samples=items[name], sample_rate=SR)


def test_an_excerpt_in_other_music_is_reported_where_it_lies(excerpt_scan):
    _, _, report, _ = excerpt_scan
    (m,) = report["excerpt.wav"]["matches"]
    assert (m["track_id"], m["family"], m["alternative"]) == ("SONG", "landmark", False)
    assert m["transform"] == "none"
    assert abs(m["query_start"] - AT) <= 0.3 and abs(m["query_end"] - (AT + LENGTH)) <= 0.3
    assert abs((m["ref_start"] - m["query_start"]) - (FROM - AT)) <= 0.05
    # too short to stand on its landmarks, admitted by the peak check, whose figures it carries
    assert m["fmp"] > ScanSettings().landmarks.max_fmp and m["query_end"] - m["query_start"] < 5.0
    config = ex.ExcerptConfig()
    assert m["excerpt_fmp"] <= config.max_fmp and m["unmasked"] <= config.max_unmasked
    assert m["n_distinct"] >= config.min_rate * m["n_items"] and m["n_items"] >= config.min_peaks


def test_without_the_excerpt_check_the_excerpt_is_missed(excerpt_scan):
    _, items, _, reader = excerpt_scan
    off = scan_item(_item(items, "excerpt.wav"), reader, ScanSettings(match=NO_CHROMA, excerpt=None))
    assert (off.status, off.matches) == ("no_match", ())


def test_a_related_recording_sharing_a_stem_is_not_an_excerpt(excerpt_scan):
    _, items, report, reader = excerpt_scan
    assert report["stem.wav"]["status"] == "no_match"
    # the landmarks line the shared stem up with STEMS beyond chance: only the check keeps it out
    loose = ex.ExcerptConfig(min_rate=0.0, max_unmasked=1.0)
    got = scan_item(_item(items, "stem.wav"), reader, ScanSettings(match=NO_CHROMA, excerpt=loose))
    (m,) = got.matches
    assert m.track_id == "STEMS" and m.excerpt_fmp <= loose.max_fmp
    strict = ex.ExcerptConfig()
    assert m.n_distinct < strict.min_rate * m.n_items and m.unmasked > strict.max_unmasked


def _evidence_at_the_truth(registered: np.ndarray, spliced: np.ndarray) -> ex.ExcerptEvidence:
    """The check's evidence for ``spliced`` (4 s at AT of 10 s) against ``registered`` from FROM, at
    the true alignment, from the two pickers' peaks at the analysis rate."""
    pc, qpc, mc = LC.peaks, LC.query_peaks, mx.MixtureMatchConfig()
    fd, rate = pc.frame_duration, pc.sample_rate
    item = mx.item_peaks(extract_peaks(spliced, qpc), log_spectrogram(spliced, qpc), pc, mc)
    m = Match(track_id="R", rec_id=0, query_start=AT, query_end=AT + LENGTH, ref_start=FROM,
              ref_end=FROM + LENGTH, score=10.0, fmp=1e-10, ber=None, chance_ber=None, n_items=0,
              n_distinct=0, family="landmark")
    return ex.evidence(m, item, peak_map(extract_peaks(registered, pc), pc), int(len(registered) / rate / fd),
                       pc, mc, ex.ExcerptConfig(), catalogue_frames=68 * 250 / fd, stretches=1600.0)


@pytest.mark.parametrize("case, refused_by", [
    ("a copy", set()),
    # a lead stem alone, of a recording whose backing is 12 dB down: most peaks are there, and the
    # backing's are missing where nothing hides them
    ("the lead alone", {"max_unmasked"}),
    # a copy 6 dB under other music: its missing peaks are hidden, not missing; the check leaves it
    # to the other families (its trade for keeping related recordings out)
    ("a buried copy", {"min_rate"}),
])
def test_each_test_of_the_check_refuses_what_it_is_for(case, refused_by):
    sr = LC.peaks.sample_rate
    lead, host = synth.song(83, duration=40.0, sr=sr), synth.song(90, duration=10.0, sr=sr)
    registered = synth.mix_at_snr(lead, synth.song(84, duration=40.0, sr=sr), 12.0)
    a, n, r = int(AT * sr), int(LENGTH * sr), int(FROM * sr)
    part = {"a copy": registered[r: r + n], "the lead alone": lead[r: r + n],
            "a buried copy": synth.mix_at_snr(registered[r: r + n], host[a: a + n], -6.0)}[case]
    spliced = host.copy()
    spliced[a: a + n] = part
    ev = _evidence_at_the_truth(registered, spliced)
    strict = ex.ExcerptConfig()
    assert ev.log10_fmp <= math.log10(strict.max_fmp) and ev.compared >= strict.min_peaks  # all beyond chance
    failed = {"min_rate"} if ev.rate < strict.min_rate else set()
    failed |= {"max_unmasked"} if ev.unmasked > strict.max_unmasked else set()
    assert failed == refused_by and ex.passes(ev, strict) == (not refused_by)
    assert ex.passes(ev, replace(strict, min_rate=0.0, max_unmasked=1.0))


def test_unregistered_music_alone_is_no_match(excerpt_scan):
    assert excerpt_scan[2]["unrelated.wav"]["status"] == "no_match"


@pytest.mark.parametrize("held, kept", [((0.0, 10.0), False), ((4.0, 10.0), False), ((0.0, 4.0), True),
                                        ((7.5, 10.0), True)])
def test_a_stretch_another_recordings_match_holds_is_left_to_it(excerpt_case, held, kept):
    # an excerpt that passes the check is added only where no match holds more than half its stretch
    reader, fa, m = excerpt_case
    other = next(i for i, r in reader.recordings.items() if r.track_id == "STEMS")
    holder = dataclasses.replace(m, track_id="STEMS", rec_id=other, query_start=held[0], query_end=held[1],
                                 ref_start=0.0, ref_end=held[1] - held[0], fmp=1e-100)
    out = _check_excerpts([holder], [m], fa.peaks, fa.spectrogram, fa.fingerprint.duration, reader,
                          ScanSettings(), lambda *args: False)
    assert out[0 if holder.query_start <= m.query_start else -1] == holder
    assert [x.track_id for x in out if x is not holder] == (["SONG"] if kept else [])


@pytest.mark.parametrize("shift, kept", [(0.0, False), (0.8, False), (1.5, True), (-30.0, True)])
def test_an_excerpt_at_the_alignment_of_its_own_recordings_match_is_left_to_that_match(excerpt_case, shift,
                                                                                        kept):
    # SONG matched after the excerpt, at the excerpt's own alignment (shift 0): one copy, which that
    # match's extent reaches; at another alignment (a second copy of another passage) it is kept
    reader, fa, m = excerpt_case
    q0, q1 = 8.0, 10.0
    r0 = m.ref_start + (q0 - m.query_start) + shift
    own = dataclasses.replace(m, query_start=q0, query_end=q1, ref_start=r0, ref_end=r0 + q1 - q0, fmp=1e-100)
    out = _check_excerpts([own], [m], fa.peaks, fa.spectrogram, fa.fingerprint.duration, reader,
                          ScanSettings(), lambda *args: False)
    assert own in out and [x.excerpt_fmp is not None for x in out if x is not own] == ([True] if kept else [])


def _item_path(excerpt_scan, name):
    return excerpt_scan[0] / "data" / name


def _admit(reader, fa, m, config=None):
    config = config or ex.ExcerptConfig()
    pc, mc = reader.landmark_config.peaks, mx.MixtureMatchConfig()
    item = mx.item_peaks(fa.peaks, fa.spectrogram, pc, mc)
    return ex.admit(m, item, fa.peaks, fa.fingerprint.duration, reader.peak_map(m.rec_id),
                    reader.recording_duration(m.rec_id), pc, mc, ExtentConfig(), config,
                    catalogue_frames=reader.landmark_seconds / pc.frame_duration)


@pytest.fixture(scope="module")
def excerpt_case(excerpt_scan):
    """The excerpt item's short SONG alignment, fingerprinted as the worker does."""
    _, _, _, reader = excerpt_scan
    fa = fingerprint_source(_item_path(excerpt_scan, "excerpt.wav"), reader.config,
                            peaks=reader.landmark_config.query_peaks, keep_spectrogram_s=60.0)
    excerpts: list = []
    hc = ScanSettings().landmarks
    lms = lm.match_peaks(fa.peaks, fa.fingerprint.duration, reader, reader.recordings,
                         reader.landmark_config.triplets, hc, max_fmp=hc.search_fmp, excerpts_out=excerpts)
    assert lms == []  # nothing long enough to stand
    (m,) = [e for e in excerpts if e.track_id == "SONG"]
    return reader, fa, m


def test_the_checks_counts_are_those_of_a_plain_loop_over_the_recordings_peaks(excerpt_case):
    reader, fa, m = excerpt_case
    pc, mc = reader.landmark_config.peaks, mx.MixtureMatchConfig()
    fd = pc.frame_duration
    item = mx.item_peaks(fa.peaks, fa.spectrogram, pc, mc)
    x = extend(m, fa.peaks, fa.fingerprint.duration, reader.peak_map(m.rec_id), pc, ExtentConfig(),
               ref_duration=reader.recording_duration(m.rec_id))
    ref = reader.peak_map(m.rec_id)
    ev = ex.evidence(x, item, ref, int(reader.recording_duration(m.rec_id) / fd), pc, mc, ex.ExcerptConfig(),
                     catalogue_frames=1.0, stretches=1.0)
    f0, f1 = math.floor(x.query_start / fd), math.ceil(x.query_end / fd)
    assert (ev.query_start, ev.query_end) == pytest.approx((f0 * fd, f1 * fd))
    best = None
    for o in range(-20, 21):  # every offset (frames) within 0.2 s of the alignment, by a loop
        off = int(round((x.ref_start - x.query_start) / fd)) + o
        k = n = 0
        for f, b in zip(ref[0].tolist(), ref[1].tolist(), strict=True):
            if f0 <= f - off < f1:
                n += 1
                k += bool(item.hit[f - off, b])
        if best is None or k > best[0]:
            best = (k, n)
    assert (ev.coincident, ev.compared) == best
    assert ev.rate == pytest.approx(best[0] / best[1])
    # the Bonferroni factor: every distinguishable catalogue offset, times every stretch
    more = ex.evidence(x, item, ref, int(reader.recording_duration(m.rec_id) / fd), pc, mc,
                       ex.ExcerptConfig(), catalogue_frames=5e6, stretches=1600.0)
    assert more.log10_fmp == pytest.approx(ev.log10_fmp + math.log10(5e6 / (2 * mc.tol_frames + 1) * 1600.0))


@pytest.mark.parametrize("field", ["min_rate", "min_peaks", "max_fmp"])
def test_each_threshold_admits_the_excerpt_at_its_figure_and_refuses_it_just_beyond(excerpt_case, field):
    reader, fa, m = excerpt_case
    admitted, ev = _admit(reader, fa, m)
    assert admitted == dataclasses.replace(m, excerpt_fmp=10**ev.log10_fmp, unmasked=ev.unmasked,
                                           n_items=ev.compared, n_distinct=ev.coincident)
    at, beyond = {"min_rate": (ev.rate, ev.rate + 1e-3), "min_peaks": (ev.compared, ev.compared + 1),
                  "max_fmp": (10 ** ev.log10_fmp * 1.001, 10 ** ev.log10_fmp / 1.001)}[field]
    assert _admit(reader, fa, m, replace(ex.ExcerptConfig(), **{field: at})) is not None
    assert _admit(reader, fa, m, replace(ex.ExcerptConfig(), **{field: beyond})) is None


def test_verify_match_reproduces_an_excerpt_and_refuses_it_for_another_recording(excerpt_scan):
    root, _, _, _ = excerpt_scan
    res = verify_match(root / "out", "excerpt.wav")
    assert res.ok and [c.ok for c in res.checks] == [True]
    wrong = verify_match(root / "out", "excerpt.wav", track_id="STEMS")
    assert not wrong.ok


def test_the_scan_manifest_records_the_excerpt_settings(excerpt_scan):
    root, _, _, _ = excerpt_scan
    manifest = json.loads((root / "out" / "manifest.json").read_text())
    assert manifest["settings"]["excerpt"] == dataclasses.asdict(ex.ExcerptConfig())


@pytest.mark.parametrize("field, value", [("max_fmp", 0.0), ("max_fmp", 2.0), ("min_rate", 1.5),
                                          ("max_unmasked", -0.1), ("min_peaks", 0), ("search_s", -1.0)])
def test_invalid_excerpt_config_is_refused(field, value):
    with pytest.raises(ParameterError):
        ex.ExcerptConfig(**{field: value})


def test_the_bundle_says_the_peaks_confirm_the_excerpt(excerpt_scan, tmp_path):
    root, _, report, _ = excerpt_scan
    (m,) = report["excerpt.wav"]["matches"]
    findings = build_bundle(root / "out", tmp_path / "bundle", catalogue=root / "cat")
    (song,) = [f for f in findings.findings if f.track_id == "SONG"]
    strongest = song.strongest_match
    assert strongest["excerpt_fmp"] == m["excerpt_fmp"]
    assert (strongest["peaks_compared"], strongest["peaks_coincident"]) == (m["n_items"], m["n_distinct"])
    page = (tmp_path / "bundle" / "report" / "report.html").read_text(encoding="utf-8")
    assert page.count("an excerpt too short to stand on its landmarks") == 1
    rows = list(csv.DictReader(io.StringIO((tmp_path / "bundle" / "report" / "matches.csv").read_text())))
    assert [float(r["excerpt_fmp"]) for r in rows if r["track_id"] == "SONG"] == [m["excerpt_fmp"]]


def test_verify_match_on_the_command_line_names_the_excerpts_evidence(excerpt_scan):
    root, _, report, _ = excerpt_scan
    (m,) = report["excerpt.wav"]["matches"]
    res = CliRunner().invoke(cli, ["verify-match", str(root / "out"), "excerpt.wav"])
    assert res.exit_code == 0, res.output
    (line,) = [x for x in res.output.splitlines() if x.startswith("OK")]
    assert "SONG" in line and "excerpt check FMP" in line
    assert "recording peaks found" in line and "% of the loud ones missing unmasked" in line
    wrong = CliRunner().invoke(cli, ["verify-match", str(root / "out"), "excerpt.wav", "--track", "STEMS"])
    assert wrong.exit_code == 1
