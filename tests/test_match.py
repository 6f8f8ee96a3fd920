"""earmark.match: finding registered recordings in queries, and nothing in negative controls."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import SR, match_samples, write_audio

from earmark import synth
from earmark.catalogue.metadata import RecordingSpec
from earmark.catalogue.reader import open_reader
from earmark.catalogue.store import Catalogue
from earmark.errors import ParameterError, ParamsMismatchError
from earmark.fingerprint.chromaprint import HOP, SAMPLE_RATE, ChromaprintConfig, extract
from earmark.fingerprint.pipeline import fingerprint_source
from earmark.index import BruteForceIndex, pack_windows, window_ok
from earmark.match.chromaprint import (
    MatchConfig,
    candidate_diagonals,
    diagonal_errors,
    find_spans,
    match_fingerprint,
)
from earmark.match.model import Match, NullModel

ITEM_S = HOP / SAMPLE_RATE


def _fp(samples: np.ndarray, tmp_path, name: str = "q.mp3"):
    """Fingerprint ``samples`` (at ``SR``) after a round trip through a file of ``name``'s type."""
    path = write_audio(tmp_path / name, samples)
    return fingerprint_source(path, ChromaprintConfig()).fingerprint


# ------------------------------------------------------------------------------- positives
@pytest.mark.parametrize(("index", "start"), [(1, 5.0), (3, 12.3), (6, 41.77)])
def test_mp3_excerpt_is_found_at_its_offset(library, reader, tmp_path, index, start):
    song = library.song(index)
    found = match_samples(song.excerpt(start, 10.0), reader, tmp_path / "excerpt.mp3")
    assert len(found) == 1, found
    m = found[0]
    assert m.track_id == song.track_id
    assert m.ref_start == pytest.approx(start, abs=0.5)
    assert m.query_start == pytest.approx(0.0, abs=0.5)
    assert m.query_end == pytest.approx(10.0, abs=0.5)
    assert m.ref_end - m.ref_start == pytest.approx(m.query_end - m.query_start, abs=0.01)
    assert m.fmp <= 1e-6 and m.score >= 6
    assert m.ber < 0.18 < m.chance_ber
    assert reader.recordings[m.rec_id].track_id == song.track_id


def test_excerpt_in_the_middle_of_unrelated_audio_is_located(library, reader, tmp_path):
    """Padding the query with an unregistered song shifts the query span, not the reference span."""
    song = library.song(2)
    pad = synth.song(77, duration=8.0, sr=SR)
    query = np.concatenate([pad, song.excerpt(20.0, 12.0), pad[::-1]])
    found = match_samples(query, reader, tmp_path / "padded.wav")
    assert [m.track_id for m in found] == [song.track_id]
    m = found[0]
    # the offset between query and reference is exact to an item; the edges may spread by an item span
    assert m.ref_start - m.query_start == pytest.approx(20.0 - 8.0, abs=0.3)
    assert 6.0 <= m.query_start <= 9.0
    assert 19.0 <= m.query_end <= 23.0


# Three excerpts of 10 s back to back: (catalogue index, start in the recording).
MEDLEY = [(1, 5.0), (4, 20.0), (6, 30.0)]
# A medley whose reported spans run seconds into the neighbouring excerpts (a package bug, see below).
MEDLEY_OVERSHOOT = [(2, 24.85), (4, 6.06), (5, 36.88)]


def _medley(library, reader, path, parts) -> list[Match]:
    query = np.concatenate([library.song(i).excerpt(t, 10.0) for i, t in parts])
    return match_samples(query, reader, path)


@pytest.mark.slow
def test_medley_finds_all_three_with_their_spans(library, reader, tmp_path):
    found = _medley(library, reader, tmp_path / "medley.mp3", MEDLEY)
    assert [m.track_id for m in found] == [library.song(i).track_id for i, _ in MEDLEY]
    for j, (m, (_, ref_start)) in enumerate(zip(found, MEDLEY, strict=True)):
        q0 = 10.0 * j
        assert m.query_start == pytest.approx(q0, abs=1.5), found
        assert m.query_end == pytest.approx(q0 + 10.0, abs=1.5), found
        # right alignment: the query-to-recording offset is the true one
        assert m.ref_start - m.query_start == pytest.approx(ref_start - q0, abs=0.5)


@pytest.mark.slow
def test_medley_with_similar_neighbours_still_finds_all_three_aligned(library, reader, tmp_path):
    found = _medley(library, reader, tmp_path / "medley.mp3", MEDLEY_OVERSHOOT)
    assert [m.track_id for m in found] == [library.song(i).track_id for i, _ in MEDLEY_OVERSHOOT]
    for j, (m, (_, ref_start)) in enumerate(zip(found, MEDLEY_OVERSHOOT, strict=True)):
        q0 = 10.0 * j
        assert m.ref_start - m.query_start == pytest.approx(ref_start - q0, abs=0.5)
        assert m.query_start <= q0 + 1.0 and m.query_end >= q0 + 9.0  # the excerpt itself is covered


@pytest.mark.slow
def test_medley_spans_stay_within_1_5_s_of_the_excerpt_edges(library, reader, tmp_path):
    found = _medley(library, reader, tmp_path / "medley.mp3", MEDLEY_OVERSHOOT)
    spans = [(round(m.query_start, 2), round(m.query_end, 2)) for m in found]
    assert len(spans) == 3, spans
    for j, (q0, q1) in enumerate(spans):
        assert q0 == pytest.approx(10.0 * j, abs=1.5), spans
        assert q1 == pytest.approx(10.0 * j + 10.0, abs=1.5), spans


@pytest.mark.parametrize("color", ["pink", "white"])
def test_noise_at_10_db_snr_still_matches(library, reader, tmp_path, color):
    song = library.song(5)
    clean = song.excerpt(30.0, 10.0)
    noisy = synth.mix_at_snr(clean, synth.noise(8, duration=10.0, sr=SR, color=color), 10.0)
    found = match_samples(noisy, reader, tmp_path / "noisy.mp3")
    assert [m.track_id for m in found] == [song.track_id]
    assert found[0].ref_start == pytest.approx(30.0, abs=0.5)


def test_quieter_copy_matches_like_the_original(library, reader, tmp_path):
    song = library.song(3)
    loud = match_samples(song.excerpt(25.0, 10.0), reader, tmp_path / "a.wav")
    quiet = match_samples(song.excerpt(25.0, 10.0) * 0.1, reader, tmp_path / "b.wav")
    assert [m.track_id for m in loud] == [m.track_id for m in quiet] == [song.track_id]
    assert quiet[0].ref_start == pytest.approx(loud[0].ref_start, abs=ITEM_S + 1e-9)


# ------------------------------------------------------------------------------- negative controls
NEGATIVES = {
    "pink noise": lambda: synth.noise(5, duration=20.0, sr=SR, color="pink"),
    "white noise": lambda: synth.noise(6, duration=20.0, sr=SR),
    "pure tone": lambda: synth.tone(440.0, duration=20.0, sr=SR),
    "chirp": lambda: synth.chirp(200.0, 2000.0, duration=20.0, sr=SR),
    "silence": lambda: synth.silence(20.0, sr=SR),
    "unrelated song": lambda: synth.song(99, duration=30.0, sr=SR),
}


@pytest.mark.parametrize("name", sorted(NEGATIVES))
def test_negative_controls_match_nothing(reader, tmp_path, name):
    assert match_samples(NEGATIVES[name](), reader, tmp_path / "neg.mp3") == []


@pytest.mark.parametrize("name", ["same_artist_11", "same_artist_13"])
def test_unregistered_songs_by_a_registered_artist_match_nothing(library, reader, tmp_path, name):
    """Hard negatives: same key, tempo range, timbres and drum kit as a registered song."""
    assert match_samples(library.hard_negatives[name], reader, tmp_path / "neg.mp3") == []


TEXTURES = {
    "pink": lambda: synth.noise(1, duration=40.0, sr=SR, color="pink"),
    "white": lambda: synth.noise(2, duration=40.0, sr=SR),
    "tone": lambda: synth.tone(440.0, duration=40.0, sr=SR),
    "chirp": lambda: synth.chirp(100.0, 4000.0, duration=40.0, sr=SR),
}


@pytest.fixture(scope="module")
def texture_reader(tmp_path_factory):
    """A catalogue of degenerate recordings: noise, a tone and a sweep."""
    root = tmp_path_factory.mktemp("textures")
    specs = []
    for name, make in TEXTURES.items():
        specs.append(RecordingSpec(write_audio(root / f"{name}.wav", make()), name))
    with Catalogue.open(root / "cat", create=True) as cat:
        assert cat.add(specs).count("added") == len(TEXTURES)
    return open_reader(root / "cat")


@pytest.mark.parametrize(
    "name", ["other pink noise", "other white noise", "same tone, other level", "other tone"]
)
def test_noise_and_tones_do_not_match_registered_noise_and_tones(texture_reader, tmp_path, name):
    """Noise agrees with other noise far below BER 0.5 at every alignment: that is no evidence."""
    query = {
        "other pink noise": synth.noise(11, duration=20.0, sr=SR, color="pink"),
        "other white noise": synth.noise(12, duration=20.0, sr=SR),
        "same tone, other level": synth.tone(440.0, duration=20.0, sr=SR, amplitude=0.3),
        "other tone": synth.tone(445.0, duration=20.0, sr=SR),
    }[name]
    assert match_samples(query, texture_reader, tmp_path / "q.wav") == []


@pytest.mark.parametrize("name", ["pink", "chirp"])
def test_copies_of_registered_noise_and_sweeps_do_match(texture_reader, tmp_path, name):
    found = match_samples(TEXTURES[name]()[5 * SR : 15 * SR], texture_reader, tmp_path / "q.wav")
    assert [m.track_id for m in found] == [name]
    assert found[0].ref_start == pytest.approx(5.0, abs=0.5)


def test_params_mismatch_is_refused(library, reader):
    fp = extract(library.song(1).excerpt(0.0, 10.0)[::2], ChromaprintConfig(silence_dbfs=-50.0))
    with pytest.raises(ParamsMismatchError, match="differ from the catalogue's"):
        match_fingerprint(fp, reader)


# ------------------------------------------------------------------------------- stages
def test_find_spans_returns_the_low_error_stretch():
    rng = np.random.default_rng(3)
    errors = rng.binomial(32, 0.5, 300).astype(np.int32)  # chance agreement
    errors[100:180] = rng.binomial(32, 0.05, 80)  # a true alignment
    valid = np.ones(300, bool)
    spans = find_spans(errors, valid, MatchConfig())
    assert len(spans) == 1
    a, b = spans[0]
    assert abs(a - 100) <= 2 and abs(b - 180) <= 2


def test_find_spans_finds_two_separate_stretches_and_ignores_invalid_items():
    errors = np.full(400, 16, np.int32)
    errors[50:100] = 1
    errors[250:330] = 2
    valid = np.ones(400, bool)
    assert find_spans(errors, valid, MatchConfig()) == [(50, 100), (250, 330)]
    # items without evidence inside a stretch neither break it nor count as errors
    valid[60:70] = False
    errors[60:70] = 32
    assert find_spans(errors, valid, MatchConfig()) == [(50, 100), (250, 330)]
    assert find_spans(errors, np.zeros(400, bool), MatchConfig()) == []
    assert find_spans(np.full(400, 16, np.int32), np.ones(400, bool), MatchConfig()) == []
    assert find_spans(np.zeros(0, np.int32), np.zeros(0, bool), MatchConfig()) == []


def test_diagonal_errors_of_a_shifted_copy_are_zero(rng):
    ref = rng.integers(0, 2**32, 200, dtype=np.uint32)
    q = ref[30:130]
    first, err, valid = diagonal_errors(q, np.ones(100, bool), ref, np.ones(200, bool), 30)
    assert first == 0 and len(err) == 100 and (err == 0).all() and valid.all()
    # a diagonal reaching before the recording's start begins later in the query
    first, err, _ = diagonal_errors(q, np.ones(100, bool), ref, np.ones(200, bool), -10)
    assert first == 10 and len(err) == 90
    assert err.mean() == pytest.approx(16, abs=2)  # unrelated items: half the bits
    assert len(diagonal_errors(q, np.ones(100, bool), ref, np.ones(200, bool), 500)[1]) == 0


def test_null_model_is_monotone():
    null = NullModel()
    kw = {"catalogue_items": 10_000, "query_items": 200}
    by_ber = [null.log10_fmp(b, 60, **kw) for b in (0.05, 0.1, 0.2, 0.3, 0.4)]
    assert all(x < y for x, y in zip(by_ber, by_ber[1:], strict=False))
    by_n = [null.log10_fmp(0.2, n, **kw) for n in (20, 40, 80, 160)]
    assert all(x > y for x, y in zip(by_n, by_n[1:], strict=False))
    # chance agreement is no evidence; more catalogue or query makes chance likelier
    assert null.log10_fmp(0.5, 100, **kw) == 0.0
    assert null.log10_fmp(0.2, 60, catalogue_items=10**6, query_items=200) > by_ber[2]
    assert null.log10_fmp(0.2, 60, catalogue_items=10_000, query_items=2000) > by_ber[2]
    assert null.log10_fmp(0.1, 0, **kw) == 0.0


def test_null_model_tail_is_the_normal_tail():
    null = NullModel(inflation=1.0)
    sigma = math.sqrt(0.25 / (32 * 100))
    z = (0.45 - 0.5) / sigma
    expected = math.log10(0.5 * math.erfc(-z / math.sqrt(2)))
    assert null.log10_tail(0.45, 100) == pytest.approx(expected, rel=1e-9)
    # independent chances: every start of every recording, per 80-item query window, in clumps of 6
    assert NullModel().n_tests(catalogue_items=6000, query_items=160) == pytest.approx(2000.0)
    assert NullModel(clump=1.0).n_tests(catalogue_items=6000, query_items=40) == 6000
    assert NullModel().n_tests(catalogue_items=3, query_items=40) == 1.0  # never below one test


def _window_reference(reader) -> tuple[BruteForceIndex, list[tuple[int, int]]]:
    """Every catalogue window in a brute-force index, with (rec_id, item) of each row."""
    index = BruteForceIndex(32 * reader.window_width)
    where = []
    for rec_id in sorted(reader.recordings):
        codes, active = reader.ref(rec_id)
        ok = np.flatnonzero(window_ok(active, width=reader.window_width))
        index.add(pack_windows(codes, width=reader.window_width)[ok])
        where += [(rec_id, int(i)) for i in ok]
    return index, where


def test_window_search_equals_brute_force(library, reader, tmp_path):
    """The reader's FAISS search returns exactly the neighbours a brute-force scan finds."""
    fp = _fp(library.song(4).excerpt(7.0, 10.0), tmp_path)
    cfg = MatchConfig()
    qidx = np.flatnonzero(window_ok(fp.active, width=reader.window_width))
    windows = pack_windows(fp.codes, width=reader.window_width)[qidx]
    fast = reader.search(windows, qidx, k=cfg.k, max_distance=cfg.max_window_distance)
    index, where = _window_reference(reader)
    hits = index.search(windows, cfg.k)
    expected = sorted(
        (int(qidx[r]), *where[hits.ids[r, c]], int(hits.distances[r, c]))
        for r, c in zip(*np.nonzero(hits.distances <= cfg.max_window_distance), strict=True)
    )
    got = sorted(zip(fast.qpos.tolist(), fast.rec_id.tolist(), fast.rpos.tolist(), fast.distance.tolist(),
                     strict=True))
    assert got == expected
    assert len(got) > 0


@pytest.mark.parametrize(("index", "start"), [(2, 14.0), (5, 33.3)])
def test_candidates_contain_the_best_diagonal_of_an_exhaustive_scan(library, reader, tmp_path, index, start):
    """Fast path (window votes) vs reference (every diagonal of every recording)."""
    fp = _fp(library.song(index).excerpt(start, 10.0), tmp_path)
    best = (math.inf, None)
    min_overlap = 40
    for rec_id in reader.recordings:
        codes, active = reader.ref(rec_id)
        for diag in range(-len(fp) + min_overlap, len(codes) - min_overlap + 1):
            _, err, valid = diagonal_errors(fp.codes, fp.active, codes, active, diag)
            if valid.sum() >= min_overlap:
                best = min(best, (float(err[valid].mean()), (rec_id, diag)))
    ber, (rec_id, diag) = best
    assert reader.recordings[rec_id].track_id == library.song(index).track_id
    assert diag == pytest.approx(start / ITEM_S, abs=1)
    assert ber / 32 < 0.15
    candidates = candidate_diagonals(fp, reader, MatchConfig())
    assert candidates, "no candidates at all"
    votes = [v for _, _, v in candidates]
    assert votes == sorted(votes, reverse=True)
    assert candidates[0][:2] in {(rec_id, diag + d) for d in (-1, 0, 1)}


@pytest.mark.parametrize(("index", "start", "seconds"), [(2, 14.0, 10.0), (4, 3.2, 5.0)])
def test_query_stride_finds_the_same_match_from_half_the_window_searches(library, reader, tmp_path, index,
                                                                        start, seconds):
    """Candidates from every other query window: the same diagonal wins and, since every
    candidate is verified over all items, the same match comes out."""
    fp = _fp(library.song(index).excerpt(start, seconds), tmp_path)
    every = candidate_diagonals(fp, reader, MatchConfig(query_stride=1))
    half = candidate_diagonals(fp, reader, MatchConfig(query_stride=2))
    assert half[0][:2] == every[0][:2]
    assert 0.3 * every[0][2] <= half[0][2] <= 0.7 * every[0][2]  # about half the votes
    assert match_fingerprint(fp, reader, MatchConfig(query_stride=2)) == \
        match_fingerprint(fp, reader, MatchConfig(query_stride=1))


def test_query_without_active_windows_has_no_candidates(reader):
    fp = extract(synth.silence(10.0, sr=SAMPLE_RATE), reader.config)
    assert candidate_diagonals(fp, reader, MatchConfig()) == []
    assert match_fingerprint(fp, reader) == []


# ------------------------------------------------------------------------------- values
def test_match_values_are_validated_and_serialised():
    m = Match("T", 1, 1.23456, 11.0, 20.0, 29.76543, 12.3456, 3.5e-13, 0.123456, 0.48, 80, 75)
    d = m.to_dict()
    assert d["query_start"] == 1.235 and d["ref_end"] == 29.765
    assert d["matched_duration"] == pytest.approx(9.765)
    assert d["score"] == 12.35 and d["fmp"] == 3.5e-13 and d["ber"] == 0.1235
    assert m.duration == pytest.approx(11.0 - 1.23456)
    with pytest.raises(ParameterError, match="must not be reversed"):
        Match("T", 1, 5.0, 4.0, 0.0, 1.0, 1.0, 0.1, 0.1, 0.5, 10, 10)
    with pytest.raises(ParameterError, match="must be a probability"):
        Match("T", 1, 0.0, 4.0, 0.0, 4.0, 1.0, 1.5, 0.1, 0.5, 10, 10)


def test_match_config_is_validated():
    with pytest.raises(ParameterError, match=r"max_fmp=0 must be in \(0, 1\]"):
        MatchConfig(max_fmp=0)
    with pytest.raises(ParameterError, match=r"span_ber=0.5 must be in \(0, 0.5\)"):
        MatchConfig(span_ber=0.5)
    with pytest.raises(ParameterError, match="query_stride=0 must be at least 1"):
        MatchConfig(query_stride=0)
