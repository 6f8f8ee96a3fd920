"""earmark.catalogue: registering recordings, incremental segments, removal, metadata sources."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SR, build_catalogue, ffmpeg_encode, match_samples, write_audio, write_csv

from earmark import synth
from earmark.catalogue.metadata import (
    RecordingSpec,
    normalise_isrc,
    read_csv,
    spec_from_file,
    specs_from_folder,
)
from earmark.catalogue.reader import open_reader
from earmark.catalogue.store import WINDOW_WIDTH, Catalogue
from earmark.errors import CatalogueError, MetadataError, ParamsMismatchError
from earmark.fingerprint.chromaprint import ChromaprintConfig
from earmark.fingerprint.envelope import EnvelopeConfig
from earmark.fingerprint.landmarks import LandmarkConfig

SEGMENT_FILES = {
    "manifest.json", "codes.npy", "active.npy", "rec_ids.npy", "rec_starts.npy", "win_item.npy",
    "windows.faissbin", "lm_keys.npy", "lm_distinct.npy", "lm_starts.npy", "lm_rec.npy", "lm_t1.npy",
    "lm_p1.npy", "lm_span.npy",
    "env.npy", "env_starts.npy", "pk_frame.npy", "pk_bin.npy", "pk_level.npy", "pk_starts.npy",
}


# ------------------------------------------------------------------------------- the session catalogue
def test_catalogue_from_csv_lists_every_recording_with_its_metadata(library):
    with Catalogue.open(library.catalogue) as cat:
        recs = cat.recordings()
        assert [r.track_id for r in recs] == sorted(library.songs)
        for r in recs:
            song = library.songs[r.track_id]
            assert (r.title, r.artist, r.album, r.rights_holder) == (
                song.title, song.artist, "Synthetic Album", "Example Records")
            assert r.isrc == song.isrc  # "gb-abc-24-00001" was normalised
            assert r.extra == {"licence_ref": f"LIC-{song.seed}"}
            assert r.duration_s == pytest.approx(song.duration, abs=0.01)
            assert r.n_items == pytest.approx(song.duration / 0.1238, abs=25)
            assert r.segment == "000001" and r.removed_at is None
            assert Path(r.source_path) == library.audio_dir / f"song{song.seed}.wav"
            assert len(r.sha256) == 64
            assert r.size_bytes == (library.audio_dir / f"song{song.seed}.wav").stat().st_size
        assert cat.segment_names() == ["000001"]
        stats = cat.stats()
        assert stats["recordings"] == 6
        hours = sum(s.duration for s in library.songs.values()) / 3600
        assert stats["hours"] == pytest.approx(hours, abs=1e-3)
        assert stats["digest"] == cat.digest()


def test_get_by_track_id_or_isrc(library):
    with Catalogue.open(library.catalogue) as cat:
        by_id = cat.get("TRK-0003")
        by_isrc = cat.get("GBABC2400003")
        assert by_id == by_isrc
        assert by_id.title == "Song 13"
        with pytest.raises(CatalogueError, match=r"no recording 'TRK-9999' in the catalogue"):
            cat.get("TRK-9999")


def test_manifest_mirrors_the_database(library):
    m = json.loads((library.catalogue / "manifest.json").read_text())
    assert m["format"] == "earmark-catalogue"
    assert m["recordings"] == 6
    assert m["segments"] == ["000001"]
    assert m["families"]["chromaprint"]["params_id"] == ChromaprintConfig().params_id
    assert m["families"]["landmark"]["params_id"] == LandmarkConfig().params_id
    assert m["families"]["envelope"]["params_id"] == EnvelopeConfig().params_id
    assert m["window_width"] == WINDOW_WIDTH
    seg = library.catalogue / "segments" / "000001"
    assert {p.name for p in seg.iterdir()} == SEGMENT_FILES
    sm = json.loads((seg / "manifest.json").read_text())
    assert sm["n_recordings"] == 6
    assert sm["landmark_params_id"] == LandmarkConfig().params_id
    keys = np.load(seg / "lm_keys.npy")
    assert sm["n_postings"] == len(keys) > 0 and np.all(keys[1:] >= keys[:-1])
    assert set(sm["files"]) == SEGMENT_FILES - {"manifest.json"}


def test_reader_exposes_reference_codes(library, reader):
    assert reader.n_recordings == 6
    assert reader.window_width == WINDOW_WIDTH
    assert reader.n_items_live == sum(r.n_items for r in reader.recordings.values())
    for rec_id, rec in reader.recordings.items():
        codes, active = reader.ref(rec_id)
        assert len(codes) == len(active) == rec.n_items
        assert codes.dtype == np.uint32 and active.all()  # songs have no silence


# ------------------------------------------------------------------------------- adding again
def test_readding_the_same_csv_adds_nothing(catalogue_copy, library):
    with Catalogue.open(catalogue_copy) as cat:
        before = cat.digest()
        result = cat.add(read_csv(library.csv_path))
        assert result.count("duplicate") == 6 and result.count("added") == 0
        assert {o.detail for o in result.outcomes} == {"track_id already registered"}
        assert result.segment is None
        assert cat.segment_names() == ["000001"]
        assert cat.digest() == before
        assert len(cat.recordings()) == 6


def test_the_same_file_under_another_track_id_is_a_duplicate(catalogue_copy, library):
    with Catalogue.open(catalogue_copy) as cat:
        spec = RecordingSpec(path=library.audio_dir / "song12.wav", track_id="COPY-OF-12")
        result = cat.add([spec])
        assert [(o.track_id, o.status, o.detail) for o in result.outcomes] == [
            ("COPY-OF-12", "duplicate", "same audio file as TRK-0002")]
        assert len(cat.recordings()) == 6


def test_the_same_new_file_twice_in_one_batch_is_added_once(tmp_path):
    wav = write_audio(tmp_path / "a.wav", synth.song(31, duration=12.0, sr=SR))
    with Catalogue.open(tmp_path / "cat", create=True) as cat:
        result = cat.add([RecordingSpec(wav, "A1"), RecordingSpec(wav, "A2")])
        assert [(o.track_id, o.status) for o in result.outcomes] == [("A2", "duplicate"), ("A1", "added")]
        assert [r.track_id for r in cat.recordings()] == ["A1"]


@pytest.mark.slow
def test_a_second_add_is_a_second_segment_and_both_are_searchable(catalogue_copy, library, tmp_path):
    new = synth.song(41, duration=40.0, sr=SR)
    write_audio(tmp_path / "new.wav", new)
    with Catalogue.open(catalogue_copy) as cat:
        before = cat.digest()
        result = cat.add([RecordingSpec(tmp_path / "new.wav", "NEW-1", title="New")])
        assert result.segment == "000002"
        assert [o.status for o in result.outcomes] == ["added"]
        assert cat.segment_names() == ["000001", "000002"]
        assert cat.get("NEW-1").segment == "000002"
        assert cat.digest() != before
    # the first segment is untouched (segments are immutable)
    for p in (library.catalogue / "segments" / "000001").iterdir():
        assert p.read_bytes() == (catalogue_copy / "segments" / "000001" / p.name).read_bytes()
    reader = open_reader(catalogue_copy)
    assert reader.n_recordings == 7
    old = library.song(4)
    queries = [(new[15 * SR : 27 * SR], "NEW-1", 15.0), (old.excerpt(20.0, 12.0), old.track_id, 20.0)]
    for samples, tid, t0 in queries:
        found = match_samples(samples, reader, tmp_path / f"q-{tid}.wav")
        assert [m.track_id for m in found] == [tid]
        assert found[0].ref_start == pytest.approx(t0, abs=0.5)


@pytest.mark.slow
def test_removed_recordings_are_not_listed_or_matched_and_can_come_back(catalogue_copy, library, tmp_path):
    song = library.song(2)
    query = song.excerpt(10.0, 12.0)
    with Catalogue.open(catalogue_copy) as cat:
        removed = cat.remove(song.track_id)
        assert removed.track_id == song.track_id
        assert song.track_id not in [r.track_id for r in cat.recordings()]
        assert len(cat.recordings(include_removed=True)) == 6
        with pytest.raises(CatalogueError, match="no recording"):
            cat.get(song.track_id)
        with pytest.raises(CatalogueError, match="no recording"):
            cat.remove(song.track_id)
    reader = open_reader(catalogue_copy)
    assert reader.n_recordings == 5
    assert match_samples(query, reader, tmp_path / "q1.wav") == []
    with Catalogue.open(catalogue_copy) as cat:
        result = cat.add(read_csv(library.csv_path))
        assert [o.track_id for o in result.outcomes if o.status == "added"] == [song.track_id]
    found = match_samples(query, open_reader(catalogue_copy), tmp_path / "q2.wav")
    assert [m.track_id for m in found] == [song.track_id]


# ------------------------------------------------------------------------------- bad input
def test_bad_files_are_errors_and_the_good_ones_are_still_added(tmp_path):
    good = write_audio(tmp_path / "good.wav", synth.song(32, duration=12.0, sr=SR))
    (tmp_path / "notes.mp3").write_text("not audio at all\n" * 10)
    (tmp_path / "empty.wav").write_bytes(b"")
    short = write_audio(tmp_path / "short.wav", synth.song(33, duration=1.5, sr=SR))
    silent = write_audio(tmp_path / "silent.wav", synth.silence(10.0, sr=SR))
    specs = [
        RecordingSpec(good, "GOOD"),
        RecordingSpec(tmp_path / "notes.mp3", "TEXT"),
        RecordingSpec(tmp_path / "empty.wav", "EMPTY"),
        RecordingSpec(tmp_path / "missing.wav", "MISSING"),
        RecordingSpec(short, "SHORT"),
        RecordingSpec(silent, "SILENT"),
    ]
    with Catalogue.open(tmp_path / "cat", create=True) as cat:
        result = cat.add(specs)
        by_id = {o.track_id: o for o in result.outcomes}
        assert by_id["GOOD"].status == "added"
        errors = {t for t, o in by_id.items() if o.status == "error"}
        assert errors == {"TEXT", "EMPTY", "MISSING", "SHORT", "SILENT"}
        assert by_id["TEXT"].detail.startswith("not_audio:")
        assert by_id["EMPTY"].detail.startswith("empty:")
        assert by_id["MISSING"].detail.startswith("cannot read")
        assert "too short or silent" in by_id["SHORT"].detail
        assert "too short or silent" in by_id["SILENT"].detail
        assert [r.track_id for r in cat.recordings()] == ["GOOD"]


def test_params_mismatch_is_refused(library):
    with pytest.raises(ParamsMismatchError, match="not the requested chromaprint-v1-"):
        Catalogue.open(library.catalogue, config=ChromaprintConfig(silence_dbfs=-50.0))
    with Catalogue.open(library.catalogue, config=ChromaprintConfig()) as cat:  # the same parameters: fine
        assert cat.config == ChromaprintConfig()


def test_a_segment_with_other_parameters_is_refused_by_the_reader(catalogue_copy):
    path = catalogue_copy / "segments" / "000001" / "manifest.json"
    m = json.loads(path.read_text())
    m["params_id"] = ChromaprintConfig(silence_dbfs=-50.0).params_id
    path.write_text(json.dumps(m))
    with pytest.raises(ParamsMismatchError, match="segment fingerprints use parameters"):
        open_reader(catalogue_copy)


def test_a_folder_that_is_not_a_catalogue_is_refused(tmp_path):
    with pytest.raises(CatalogueError, match="not an earmark catalogue"):
        Catalogue.open(tmp_path)
    with pytest.raises(CatalogueError, match="not an earmark catalogue"):
        open_reader(tmp_path / "missing")
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(CatalogueError, match="exists, is not empty and is not a catalogue"):
        Catalogue.open(tmp_path, create=True)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CatalogueError, match="format='something-else'"):
        Catalogue.open(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(CatalogueError, match="unreadable manifest"):
        Catalogue.open(tmp_path)


def test_a_catalogue_of_an_older_format_is_refused_with_what_to_do(catalogue_copy):
    manifest = json.loads((catalogue_copy / "manifest.json").read_text())
    manifest["format_version"] = 3  # before segments stored each recording's peaks
    (catalogue_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CatalogueError, match=r"format version 3 is not supported .*re-register"):
        Catalogue.open(catalogue_copy)


def test_a_catalogue_without_its_database_is_refused(catalogue_copy):
    (catalogue_copy / "catalogue.sqlite").unlink()
    with pytest.raises(CatalogueError, match="catalogue.sqlite is missing"):
        Catalogue.open(catalogue_copy)


# ------------------------------------------------------------------------------- determinism
@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_building_twice_gives_byte_identical_segments(library, tmp_path, workers):
    """Same audio and metadata, same segment files, whatever the number of worker processes."""
    build_catalogue(tmp_path / "again", library.csv_path, workers=workers).close()
    a = library.catalogue / "segments" / "000001"
    b = tmp_path / "again" / "segments" / "000001"
    assert {p.name for p in b.iterdir()} == SEGMENT_FILES
    for p in sorted(a.iterdir()):
        assert (b / p.name).read_bytes() == p.read_bytes(), p.name
    with Catalogue.open(library.catalogue) as x, Catalogue.open(tmp_path / "again") as y:
        assert x.digest() == y.digest()


# ------------------------------------------------------------------------------- metadata sources
def test_read_csv_keeps_extra_columns_and_resolves_paths(library):
    specs = read_csv(library.csv_path)
    assert [s.track_id for s in specs] == [f"TRK-{i:04d}" for i in range(1, 7)]
    s = specs[0]
    assert s.path == library.audio_dir / "song11.wav"
    assert s.isrc == "GBABC2400001"
    assert s.extra == {"licence_ref": "LIC-11"}
    assert s.metadata()["rights_holder"] == "Example Records"


@pytest.mark.parametrize(
    ("columns", "rows", "message"),
    [
        (["track_id", "title"], [{"track_id": "A", "title": "x"}], r"missing required column\(s\) path"),
        (["track_id", "path"], [{"track_id": "A", "path": "a.wav"}, {"track_id": "A", "path": "b.wav"}],
         r":3: track_id 'A' appears twice"),
        (["track_id", "path"], [{"track_id": "", "path": "a.wav"}], r":2: empty track_id or path"),
    ],
)
def test_malformed_csv_is_a_metadata_error(tmp_path, columns, rows, message):
    path = write_csv(tmp_path / "bad.csv", rows, columns)
    with pytest.raises(MetadataError, match=message):
        read_csv(path)


def test_missing_csv_is_a_metadata_error(tmp_path):
    with pytest.raises(MetadataError, match="cannot read"):
        read_csv(tmp_path / "nope.csv")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("gb-abc-24-00001", "GBABC2400001"), ("US ABC 24 00042", "USABC2400042"),
     ("USABC2400042", "USABC2400042"), (" not an isrc ", "not an isrc"), ("", "")],
)
def test_normalise_isrc(raw, expected):
    assert normalise_isrc(raw) == expected


def test_specs_from_folder_use_artist_dash_title_file_names(tmp_path):
    root = tmp_path / "label"
    (root / "album one").mkdir(parents=True)
    write_audio(root / "Alpha Band - First Light.wav", synth.song(34, duration=12.0, sr=SR))
    write_audio(root / "album one" / "Beta - Second Song.wav", synth.song(35, duration=12.0, sr=SR))
    write_audio(root / "untitled.wav", synth.song(36, duration=12.0, sr=SR))
    (root / "cover.jpg").write_bytes(b"\xff\xd8 not audio")
    (root / "readme.txt").write_text("ignored")
    specs = specs_from_folder(root)
    got = {s.track_id: (s.artist, s.title) for s in specs}
    assert got == {
        "Alpha Band - First Light": ("Alpha Band", "First Light"),
        "album one/Beta - Second Song": ("Beta", "Second Song"),
        "untitled": ("", "untitled"),
    }
    with Catalogue.open(tmp_path / "cat", create=True) as cat:
        result = cat.add(specs)
        assert result.count("added") == 3
        assert cat.get("album one/Beta - Second Song").artist == "Beta"


def test_tags_win_over_the_file_name(tmp_path):
    wav = write_audio(tmp_path / "src.wav", synth.song(37, duration=5.0, sr=SR))
    mp3 = tmp_path / "Wrong Artist - Wrong Title.mp3"
    ffmpeg_encode(wav, mp3, "-c:a", "libmp3lame", "-metadata", "title=Tagged Title",
                  "-metadata", "artist=Tagged Artist", "-metadata", "TSRC=US-XYZ-24-00042",
                  "-metadata", "copyright=Tag Label")
    spec = spec_from_file(mp3, tmp_path)
    assert (spec.track_id, spec.isrc, spec.title, spec.artist, spec.rights_holder) == (
        "USXYZ2400042", "USXYZ2400042", "Tagged Title", "Tagged Artist", "Tag Label")


def test_specs_from_a_missing_folder_is_a_metadata_error(tmp_path):
    with pytest.raises(MetadataError, match="not a folder"):
        specs_from_folder(tmp_path / "missing")


def test_creating_in_a_fresh_folder_writes_an_empty_catalogue(tmp_path):
    with Catalogue.open(tmp_path / "new" / "cat", create=True) as cat:
        assert cat.recordings() == [] and cat.segment_names() == []
    reader = open_reader(tmp_path / "new" / "cat")
    assert reader.n_recordings == 0


def test_segment_written_without_distinct_keys_reads_the_same(catalogue_copy):
    """Segments written before the distinct keys were stored (0.7.0) derive them when opened."""
    seg = catalogue_copy / "segments" / "000001"
    keys = np.load(seg / "lm_keys.npy").astype(np.int64)
    lo = np.random.default_rng(5).choice(keys, 400) - 1
    hi = lo + 2
    before = open_reader(catalogue_copy).landmark_lookup(lo, hi)
    stored = np.load(seg / "lm_distinct.npy"), np.load(seg / "lm_starts.npy")
    m = json.loads((seg / "manifest.json").read_text())
    for name in ("lm_distinct.npy", "lm_starts.npy"):
        (seg / name).unlink()
        del m["files"][name]
    (seg / "manifest.json").write_text(json.dumps(m))
    reader = open_reader(catalogue_copy)
    (postings,) = [s.landmarks for s in reader._segments]
    np.testing.assert_array_equal(postings.distinct, stored[0])
    np.testing.assert_array_equal(postings.starts, stored[1])
    after = reader.landmark_lookup(lo, hi)
    assert len(before[0]) > 400
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


def test_landmark_lookup_equals_brute_force_and_skips_removed_recordings(catalogue_copy):
    with Catalogue.open(catalogue_copy) as cat:
        gone = cat.get("TRK-0002").rec_id
        cat.remove("TRK-0002")
    reader = open_reader(catalogue_copy)
    seg = catalogue_copy / "segments" / "000001"
    keys = np.load(seg / "lm_keys.npy").astype(np.int64)
    rec = np.load(seg / "lm_rec.npy")
    t1 = np.load(seg / "lm_t1.npy")
    rng = np.random.default_rng(11)
    lo = rng.choice(keys, 300) - rng.integers(0, 3, 300)  # around keys that exist, some that do not
    hi = lo + rng.integers(0, 4, 300)
    q, r, t, _, _ = reader.landmark_lookup(lo, hi)
    got = sorted((a, b, round(c, 4)) for a, b, c in zip(q.tolist(), r.tolist(), t.tolist(), strict=True))
    want = sorted((i, int(rec[j]), round(float(t1[j]), 4)) for i in range(len(lo))
                  for j in np.flatnonzero((keys >= lo[i]) & (keys <= hi[i])) if rec[j] != gone)
    assert got == want and len(want) > 300
    assert gone in set(rec.tolist()) and gone not in set(r.tolist())
    # a filter on pitch and span keeps exactly the hits it passes, with all their columns
    full = reader.landmark_lookup(lo, hi)
    cut = float(np.median(full[4]))
    seen: list[int] = []

    def accept(qi, p1, span):
        seen.append(len(qi))
        return (span > cut) & (qi % 2 == 0) & (p1 > -1e9)

    kept = reader.landmark_lookup(lo, hi, accept)
    mask = (full[4] > cut) & (full[0] % 2 == 0)
    for a, b in zip(kept, full, strict=True):
        np.testing.assert_array_equal(a, b[mask])
    assert 0 < mask.sum() < len(mask) and sum(seen) >= len(mask)
