"""The envelope family: band energies with analytic answers, the streamed extractor against the whole
signal, centring and the null model's pieces, the verifier against an exhaustive search, reverberant
copies found (directly and through a scan), negative controls, repeats as alternatives, and
catalogues made with other envelope parameters refused."""

from __future__ import annotations

import dataclasses
import json
import math

import librosa
import numpy as np
import pytest
from conftest import SR

from earmark import synth
from earmark.catalogue.reader import open_reader
from earmark.catalogue.store import Catalogue
from earmark.errors import ParameterError, ParamsMismatchError
from earmark.fingerprint.envelope import EnvelopeConfig, EnvelopeStream, extract_envelope, mel_filters, to_db
from earmark.fingerprint.pipeline import fingerprint_source
from earmark.match import envelope as em
from earmark.match.envelope import (
    INFLATION,
    LEAD_FRAMES,
    EnvelopeMatchConfig,
    centre,
    correlation,
    effective_cells,
    log10_fmp,
    log10_tail,
    smear,
    verify_alignments,
)
from earmark.scan.worker import ScanSettings, scan_item
from earmark.sources import ItemData
from earmark.synth import reverberate, room_ir

CFG = EnvelopeConfig()
ESR = CFG.sample_rate  # the envelope's own rate: signals below are generated at it, no resampling
FS = CFG.frame_s
MC = EnvelopeMatchConfig()

#: Chromaprint evidence (ber, chance_ber, log10 tail) far beyond ``corroborate_p``: only the envelope decides.
STRONG = (0.2, 0.42, -30.0)


class _Rec:
    def __init__(self, track_id: str, duration_s: float):
        self.track_id, self.duration_s = track_id, duration_s


def verify(q_env, duration, proposals, refs, *, catalogue_frames, config=MC, corroborate=lambda r, o: STRONG):
    recs = {k: _Rec(f"T{k}", len(v) * FS) for k, v in refs.items()}
    return verify_alignments(q_env, duration, proposals, refs.__getitem__, recs, CFG, config,
                             catalogue_frames=catalogue_frames, corroborate=corroborate)


def every_offset(refs: dict[int, np.ndarray], nq: int) -> list[tuple[int, float]]:
    """Proposals at every start of the item inside each recording (the most chance ever gets)."""
    return [(k, o * FS) for k, e in refs.items() for o in range(0, len(e) - nq + 1)]


@pytest.fixture(scope="module")
def room_copy():
    """A 44 s song, its envelope and that of a 20 s excerpt from 10 s played in a fully wet room."""
    song = synth.song(12, duration=44.0, sr=ESR)
    wet = reverberate(song, 5, sr=ESR)[int(10.0 * ESR): int(30.0 * ESR)]
    return extract_envelope(song, CFG), extract_envelope(wet, CFG)


# ------------------------------------------------------------------------------- features: known answers
@pytest.mark.parametrize("band", [3, 10, 20])
def test_full_scale_sine_reads_about_0_db_in_its_band_and_far_less_elsewhere(band):
    centres = librosa.mel_frequencies(n_mels=CFG.n_bands + 2, fmin=CFG.fmin, fmax=CFG.fmax)[1:-1]
    t = np.arange(3 * ESR) / ESR
    db = to_db(extract_envelope(np.sin(2 * np.pi * centres[band] * t), CFG), CFG)[4:-4]  # full frames
    assert np.abs(db[:, band]).max() <= 2.0  # Hann main lobe: 1.5 dB over the peak bin's power
    others = np.delete(db, [band - 1, band, band + 1], axis=1)
    assert others.max() < -60.0


def test_silence_reads_the_floor():
    assert np.array_equal(extract_envelope(np.zeros(5 * CFG.hop + 17), CFG),
                          np.zeros((6, CFG.n_bands), np.uint8))
    assert np.all(to_db(np.zeros(3, np.uint8), CFG) == CFG.floor_db)


@pytest.mark.parametrize("n", [0, 1, CFG.hop - 1, CFG.hop, CFG.hop + 1, CFG.n_fft, 10 * CFG.hop + 3])
def test_frame_count_is_ceil_n_over_hop(n):
    x = synth.noise(3, duration=n / ESR, sr=ESR)
    assert len(x) == n
    env = extract_envelope(x, CFG)
    assert env.shape == (math.ceil(n / CFG.hop), CFG.n_bands) and env.dtype == np.uint8


def test_stream_fed_in_odd_blocks_equals_the_whole_signal_exactly():
    x = synth.song(21, duration=9.0, sr=ESR)
    whole = extract_envelope(x, CFG)
    sizes = [1, 0, 7, 1023, 3001, 2049, 5, 20000]
    cuts = np.cumsum(sizes)
    stream = EnvelopeStream(CFG)
    for block in np.split(x, cuts[cuts < len(x)]):
        stream.feed(block)
    assert np.array_equal(stream.finish(), whole)
    # a stream shorter than one window is finished from the zero-padded buffer alone
    short = EnvelopeStream(CFG)
    short.feed(x[:700])
    assert np.array_equal(short.finish(), extract_envelope(x[:700], CFG))


def _plain_envelope_db(x: np.ndarray) -> np.ndarray:
    """Unquantised band energies (dB re a full-scale sine) frame by frame, written out plainly."""
    n_frames = math.ceil(len(x) / CFG.hop)
    padded = np.concatenate([x, np.zeros(CFG.n_fft)])
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(CFG.n_fft) / CFG.n_fft)  # periodic Hann
    fb = librosa.filters.mel(sr=ESR, n_fft=CFG.n_fft, n_mels=CFG.n_bands, fmin=CFG.fmin, fmax=CFG.fmax,
                             norm=None)
    out = np.empty((n_frames, CFG.n_bands))
    for k in range(n_frames):
        power = np.abs(np.fft.rfft(padded[k * CFG.hop: k * CFG.hop + CFG.n_fft] * w)) ** 2
        out[k] = 10 * np.log10(fb @ power / (w.sum() / 2) ** 2 + 1e-30)
    return out


def test_to_db_inverts_the_quantisation_within_half_a_step():
    x = np.asarray(synth.song(22, duration=6.0, sr=ESR), np.float64)
    ref = _plain_envelope_db(x)
    got = to_db(extract_envelope(x, CFG), CFG)
    inside = (ref > CFG.floor_db) & (ref < CFG.floor_db + 255 * CFG.step_db)
    assert inside.mean() > 0.99
    err = got[inside] - ref[inside]
    assert np.abs(err).max() <= CFG.step_db / 2 + 1e-6
    assert np.abs(err).max() > 0.4 * CFG.step_db  # a real quantisation, not a finer one
    codes = np.arange(256, dtype=np.uint8)  # and every code survives the round trip
    assert np.array_equal(np.round((to_db(codes, CFG) - CFG.floor_db) / CFG.step_db), codes)


def test_a_gain_of_minus_20_db_lowers_every_code_by_40_steps():
    x = np.asarray(synth.song(23, duration=6.0, sr=ESR), np.float64)
    loud, quiet = extract_envelope(x, CFG).astype(int), extract_envelope(0.1 * x, CFG).astype(int)
    ok = loud >= 41  # not clipped at the floor after the cut
    diff = loud[ok] - quiet[ok]
    assert ok.mean() > 0.99
    assert (diff == 40).mean() > 0.999 and np.abs(diff - 40).max() <= 1  # rounding ties aside


def test_a_delay_of_whole_hops_delays_the_frames_and_changes_nothing_else():
    x = synth.song(24, duration=6.0, sr=ESR)
    env = extract_envelope(x, CFG)
    late = extract_envelope(np.concatenate([np.zeros(5 * CFG.hop, np.float32), x]), CFG)
    assert len(late) == len(env) + 5
    assert np.array_equal(late[5:], env)
    assert not late[:3].any()  # frames before the window reaches the signal: floor


def test_config_is_validated_and_every_field_is_in_its_params_id():
    other = {"sample_rate": 22050, "n_fft": 4096, "hop": 512, "n_bands": 32, "fmin": 60.0, "fmax": 4000.0,
             "floor_db": -100.0, "step_db": 0.25}
    assert set(other) == {f.name for f in dataclasses.fields(EnvelopeConfig)}
    ids = {EnvelopeConfig(**{k: v}).params_id for k, v in other.items()}
    assert len(ids) == len(other) and CFG.params_id not in ids
    assert EnvelopeConfig().params_id == CFG.params_id
    with pytest.raises(ParameterError, match="hop=4096 must be in"):
        EnvelopeConfig(hop=4096)
    with pytest.raises(ParameterError, match=r"fmax <= 5512.5 Hz"):
        EnvelopeConfig(fmax=8000.0)
    with pytest.raises(ParameterError, match="at least 2 bands"):
        EnvelopeConfig(n_bands=1)


# ------------------------------------------------------------------------------- the comparison's pieces
def test_centre_removes_frame_means_band_means_and_band_trends():
    g = np.random.default_rng(7)
    x = g.normal(size=(80, 24))
    c = centre(x)
    t = np.arange(80) - 39.5
    assert np.abs(c.mean(axis=1)).max() < 1e-12
    assert np.abs(c.mean(axis=0)).max() < 1e-12
    assert np.abs(t @ c).max() < 1e-9
    # loudness per frame, a fixed gain per band (a room, an equaliser) and a trend per band are gone
    disguised = x + g.normal(size=(80, 1)) * 10 + g.normal(size=(1, 24)) * 6 + np.outer(t, g.normal(size=24))
    assert np.allclose(centre(disguised), c, atol=1e-9)
    assert np.allclose(centre(c), c, atol=1e-12)


def test_a_pure_fade_or_a_fixed_band_gain_centres_to_zero():
    t = np.arange(60.0)[:, None]
    gains = np.linspace(-30, 0, 24)[None, :]
    for db in (np.zeros((60, 1)) - 0.5 * t + np.zeros((1, 24)),  # a fade: every band falls alike
               gains + np.zeros((60, 1)),  # a coloured but steady sound
               gains - 0.5 * t + np.outer(t[:, 0], np.linspace(0, -0.3, 24))):  # both, darkening
        assert np.abs(centre(db)).max() < 1e-9


def test_correlation_known_answers():
    g = np.random.default_rng(8)
    x, y = centre(g.normal(size=(200, 24))), centre(g.normal(size=(200, 24)))
    assert correlation(x, x) == pytest.approx(1.0, abs=1e-12)
    assert correlation(x, 3.0 * x) == pytest.approx(1.0, abs=1e-12)
    assert correlation(x, -x) == pytest.approx(-1.0, abs=1e-12)
    assert abs(correlation(x, y)) < 4 / math.sqrt(x.size)
    assert correlation(x, x + y) == pytest.approx(1 / math.sqrt(2), abs=0.03)
    assert correlation(x, np.zeros_like(x)) == 0.0


def test_effective_cells_lie_between_1_and_n_and_fall_with_smoothness():
    g = np.random.default_rng(9)
    n_frames, n_bands = 300, 24

    def smoothed(width: int) -> np.ndarray:
        x = g.normal(size=(n_frames + width, n_bands))
        return centre(np.cumsum(x, axis=0)[width:] - np.cumsum(x, axis=0)[:-width])  # moving sums in time

    n = n_frames * n_bands
    cells = {w: effective_cells(smoothed(w), smoothed(w)) for w in (1, 4, 16)}
    assert all(1.0 <= c <= n for c in cells.values())
    assert cells[1] > 0.8 * n
    assert cells[1] > cells[4] > cells[16]
    # box smoothing of width L: sum of squared autocorrelations ~ 2L / 3 (L >> 1), so n_eff ~ 3n / 2L
    assert cells[16] == pytest.approx(3 * n / 32, rel=0.3)
    assert effective_cells(np.zeros((30, 24)), np.zeros((30, 24))) == 1.0


def test_log10_tail_and_fmp_known_answers():
    z05 = 1.6448536269514722  # P(Z > z05) = 0.05
    assert log10_tail(0.0, 500) == pytest.approx(math.log10(0.5))
    assert log10_tail(math.tanh(z05 / 10), 103, inflation=1.0) == pytest.approx(math.log10(0.05), abs=1e-9)
    # the default divides Fisher's z by INFLATION: the same tail needs a correlation INFLATION times as far
    assert log10_tail(math.tanh(INFLATION * z05 / 10), 103) == pytest.approx(math.log10(0.05), abs=1e-9)
    assert log10_tail(0.3, 103) > log10_tail(0.3, 103, inflation=1.0)
    assert log10_tail(0.3, 1000) < log10_tail(0.3, 100) < log10_tail(0.2, 100) < 0
    assert log10_tail(0.99, 3.0) == 0.0  # no evidence
    assert log10_fmp(-10.0, 1000) == pytest.approx(-7.0)
    assert log10_fmp(-2.0, 10**6) == 0.0 and log10_fmp(-2.0, 0) == -2.0


def test_smear_decays_a_burst_by_the_time_constant():
    db = np.full((20, 3), -120.0)
    db[5] = -10.0
    s = smear(db, 0.06, FS)
    per_frame = 10 * math.log10(math.exp(-FS / 0.06))  # -6.7 dB a frame
    assert s[5, 0] == pytest.approx(-10.0 + 10 * math.log10(1 - math.exp(-FS / 0.06)), abs=1e-6)
    assert np.allclose(np.diff(s[5:12], axis=0), per_frame, atol=1e-3)
    # before the burst the floor is approached from below: the decay starts from nothing
    assert s[0, 0] == pytest.approx(-120.0 + 10 * math.log10(1 - math.exp(-FS / 0.06)), abs=1e-6)
    assert np.all(np.diff(s[:5], axis=0) > 0) and np.all(s[:5] < -120.0)
    assert np.array_equal(smear(db, 0.0, FS), db)


# ------------------------------------------------------------------------------- verifier vs brute force
def _plain_smear(db: np.ndarray, decay_s: float) -> np.ndarray:
    a = math.exp(-FS / decay_s)
    state, out = np.zeros(db.shape[1]), np.empty_like(db)
    for k in range(len(db)):
        state = a * state + (1 - a) * 10 ** (db[k] / 10)
        out[k] = 10 * np.log10(state)
    return out


def _plain_centre(db: np.ndarray) -> np.ndarray:
    x = db - db.mean(axis=1, keepdims=True)
    design = np.column_stack([np.ones(len(x)), np.arange(len(x))])
    coef, *_ = np.linalg.lstsq(design, x, rcond=None)
    return x - design @ coef


def _exhaustive(q_env, ref_env, proposals, config) -> tuple[int, float, int]:
    """(offset in frames, r, first compared item frame) of the best-correlated offset of the window,
    over the frames whose window lies inside the signal (the last two reach into zero padding)."""
    pad = -(-CFG.n_fft // CFG.hop)
    q_env, ref_env = q_env[: len(q_env) - pad], ref_env[: len(ref_env) - pad]
    q_db = CFG.floor_db + CFG.step_db * q_env.astype(float)
    r_db_all = CFG.floor_db + CFG.step_db * ref_env.astype(float)
    nq = len(q_env)
    best = (-2.0, 0, 0)
    for _, offset_s in proposals:
        centre_o = round(offset_s / FS)
        for o in range(centre_o - config.jitter_frames, centre_o + config.jitter_frames + 1):
            q0, q1 = max(0, -o), min(nq, len(ref_env) - o)
            if q1 - q0 < max(config.min_frames, config.min_share * nq):
                continue
            lead = min(LEAD_FRAMES, o + q0)  # the recording's history that feeds the decay
            r_db = _plain_smear(r_db_all[o + q0 - lead: o + q1], config.decay_s)[lead:]
            a, b = _plain_centre(q_db[q0:q1]), _plain_centre(r_db)
            r = float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))
            best = max(best, (r, o, q0))
    return best[1], best[0], best[2]


@pytest.mark.parametrize(("prefix_s", "nudges"), [
    (0.0, (-0.2, 0.1)),  # the best offset lies inside the union of the two windows
    (0.0, (0.25, 0.35)),  # the truth lies below the window: its lower edge must be chosen
    (0.0, (-0.4, -0.5)),  # the truth lies above it: its upper edge must be chosen
    (1.0, (0.0, 0.2)),  # the item starts with a second of noise: the recording is faced from frame 11 on
])
def test_verifier_chooses_the_offset_and_r_of_an_exhaustive_search(prefix_s, nudges):
    song = synth.song(12, duration=44.0, sr=ESR)
    wet = reverberate(song, 5, sr=ESR)
    if prefix_s:
        noise = synth.noise(4, duration=prefix_s, sr=ESR, color="pink")
        wet, true_offset = np.concatenate([noise, wet[: int(20.0 * ESR) - len(noise)]]), -prefix_s
    else:
        wet, true_offset = wet[int(10.0 * ESR): int(30.0 * ESR)], 10.0
    ref_env, q_env = extract_envelope(song, CFG), extract_envelope(wet, CFG)
    proposals = [(1, true_offset + d) for d in nudges]
    seen = []

    def corroborate(rec, off):
        seen.append((rec, off))
        return STRONG

    (m,) = verify(q_env, 20.0, proposals, {1: ref_env}, catalogue_frames=10**6, corroborate=corroborate)
    o, r, q0 = _exhaustive(q_env, ref_env, proposals, MC)
    assert r > 0.4
    assert m.envelope_r == pytest.approx(r, abs=5.1e-5)  # reported to 4 decimals
    assert m.ref_start == pytest.approx((o + q0) * FS, abs=1e-9)
    assert m.query_start == pytest.approx(q0 * FS, abs=1e-9)
    assert m.ref_end - m.ref_start == pytest.approx(m.query_end - m.query_start, abs=1e-9)
    assert seen == [(1, pytest.approx(o * FS))]  # corroborated at the chosen alignment, once
    assert m.n_items == len(q_env) - 2 - q0  # the frames inside the item, from its first faced one


# ------------------------------------------------------------------------------- invariance: a wet room
def test_the_room_is_fully_wet_and_decays_by_60_db_in_rt60():
    h = room_ir(5, sr=ESR)
    e = np.cumsum((h * h)[::-1])[::-1]  # Schroeder's backward integral
    t60 = np.argmax(e < 1e-6 * e[0]) / ESR
    assert t60 == pytest.approx(0.8, abs=0.1)
    assert (h * h).max() < 0.02  # no path (no direct sound) carries more than 2 % of the energy


def test_a_copy_in_a_fully_wet_room_matches_its_recording_at_the_true_offset(room_copy):
    ref_env, q_env = room_copy
    (m,) = verify(q_env, 20.0, [(1, 10.0)], {1: ref_env}, catalogue_frames=10**9)
    assert m.family == "envelope" and m.rec_id == 1 and not m.alternative
    assert m.ref_start == pytest.approx(10.0, abs=0.2)
    assert m.query_start == 0.0 and m.query_end == pytest.approx(20.0, abs=1e-9)
    assert m.fmp < 1e-30 and m.score == pytest.approx(-math.log10(m.fmp))
    assert m.envelope_r > 0.8 and 100 < m.n_distinct < m.n_items * CFG.n_bands
    assert (m.ber, m.chance_ber) == STRONG[:2]
    # the smear is what meets the room's blurred onsets: without it the same alignment is much weaker
    (bare,) = verify(q_env, 20.0, [(1, 10.0)], {1: ref_env}, catalogue_frames=10**9,
                     config=EnvelopeMatchConfig(decay_s=0.0))
    assert bare.envelope_r < m.envelope_r - 0.1


def test_a_weak_chromaprint_corroboration_rejects_the_match(room_copy):
    ref_env, q_env = room_copy
    p = math.log10(MC.corroborate_p)

    def found(tail):
        return verify(q_env, 20.0, [(1, 10.0)], {1: ref_env}, catalogue_frames=10**9,
                      corroborate=lambda r, o: None if tail is None else (0.35, 0.42, tail))

    assert len(found(p)) == 1  # at the level: accepted
    assert found(p + 0.01) == []
    assert found(-0.5) == []
    assert found(None) == []  # no Chromaprint evidence at all


def test_scan_reports_a_reverberant_copy_of_a_registered_song_as_an_envelope_match(library, reader):
    song = library.song(2)
    wet = reverberate(song.samples, 5, sr=SR)[int(10.0 * SR): int(30.0 * SR)].astype(np.float32)
    result = scan_item(ItemData("room.wav", samples=wet, sample_rate=SR), reader, ScanSettings())
    assert result.status == "match"
    (m,) = result.matches
    assert (m.family, m.track_id) == ("envelope", song.track_id)
    assert m.ref_start == pytest.approx(10.0, abs=0.2)
    assert m.query_start == 0.0 and m.query_end == pytest.approx(20.0, abs=0.01)
    assert m.fmp <= ScanSettings().envelope.max_fmp and m.envelope_r > 0.8
    # the same excerpt dry is placed by the other families; the envelope is not consulted
    dry = scan_item(ItemData("dry.wav", samples=song.excerpt(10.0, 20.0), sample_rate=SR), reader,
                    ScanSettings())
    assert [x.track_id for x in dry.matches] == [song.track_id]
    assert dry.matches[0].family != "envelope"


@pytest.mark.parametrize("which", ["unregistered", "same_artist"])
def test_scan_of_a_reverberant_song_that_is_not_registered_finds_nothing(library, reader, monkeypatch, which):
    x = synth.song(77, duration=20.0, sr=SR) if which == "unregistered" else \
        library.hard_negatives["same_artist_11"][: 20 * SR]
    calls = []
    real = em.verify_alignments

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        # each of the two tests must say no by itself: the envelope even when Chromaprint corroborates
        alone = real(*args, **dict(kwargs, corroborate=lambda r, o: STRONG))
        calls.append((len(list(args[2])), out, alone))
        return out

    monkeypatch.setattr(em, "verify_alignments", spy)
    result = scan_item(ItemData("room.wav", samples=reverberate(x, 6, sr=SR).astype(np.float32),
                                sample_rate=SR), reader, ScanSettings())
    assert (result.status, result.matches) == ("no_match", ())
    assert calls and calls[0][0] > 0 and calls[0][1] == calls[0][2] == []  # asked, and said no


# ------------------------------------------------------------------------------- negative controls
def _chord(t: np.ndarray) -> np.ndarray:
    return sum(0.2 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63, 440.0))


NEGATIVES = {
    "other song": lambda t: synth.song(77, duration=len(t) / ESR, sr=ESR),
    "other song in the room": lambda t: reverberate(synth.song(77, duration=len(t) / ESR, sr=ESR), 6, sr=ESR),
    "pink noise": lambda t: synth.noise(31, duration=len(t) / ESR, sr=ESR, color="pink"),
    "tone chord": _chord,
    "fading chord": lambda t: _chord(t) * np.exp(-t / 4.0),
    "fading song": lambda t: synth.song(78, duration=len(t) / ESR, sr=ESR) * np.linspace(1, 0, len(t)),
}


@pytest.fixture(scope="module")
def registered() -> dict[int, np.ndarray]:
    return {k: extract_envelope(synth.song(seed, duration=40.0, sr=ESR), CFG)
            for k, seed in enumerate((11, 12, 13), start=1)}


@pytest.mark.parametrize("name", NEGATIVES)
def test_unrelated_audio_does_not_match_at_any_offset(registered, name):
    t = np.arange(int(20.0 * ESR)) / ESR
    q_env = extract_envelope(NEGATIVES[name](t), CFG)
    proposals = every_offset(registered, len(q_env))
    frames = sum(len(e) for e in registered.values())
    assert verify(q_env, 20.0, proposals, registered, catalogue_frames=frames) == []
    # not a near miss either: even at max_fmp = 1 the strongest place is nowhere near 1e-6
    anything = verify(q_env, 20.0, proposals, registered, catalogue_frames=frames,
                      config=EnvelopeMatchConfig(max_fmp=1.0))
    assert anything and min(m.fmp for m in anything) > 1e-2


def test_a_repeated_passage_gives_one_primary_and_one_alternative_match():
    song = synth.song(13, duration=30.0, sr=ESR)
    seg = song[int(12.0 * ESR): int(20.0 * ESR)]
    recording = np.concatenate([song[: int(3.0 * ESR)], seg, seg, song[int(22.0 * ESR):]])
    ref_env = extract_envelope(recording, CFG)
    q_env = extract_envelope(reverberate(seg, 5, sr=ESR), CFG)
    # Chromaprint proposes both places (proposals at every frame would make one place of them all)
    found = verify(q_env, 8.0, [(1, 3.0), (1, 11.0)], {1: ref_env}, catalogue_frames=10**7)
    assert len(found) == 2, found
    assert sorted(m.ref_start for m in found) == [pytest.approx(3.0, abs=0.2), pytest.approx(11.0, abs=0.2)]
    assert [m.alternative for m in found] == [False, True]
    assert found[0].score >= found[1].score and found[1].fmp < 1e-6
    # a place that passes brings its repeats to judgement, proposed or not: either proposal alone
    # gives the same two matches
    # (the same up to the decay's history before the compared window, which depends on which
    # offsets are smeared together: scores agree to 1e-6)
    for alone in (3.0, 11.0):
        again = verify(q_env, 8.0, [(1, alone)], {1: ref_env}, catalogue_frames=10**7)
        assert [(m.ref_start, m.alternative, m.envelope_r) for m in again] == \
            [(m.ref_start, m.alternative, m.envelope_r) for m in found]
        assert [m.score for m in again] == pytest.approx([m.score for m in found], rel=1e-6)


def test_sliding_correlation_equals_centring_every_window():
    g = np.random.default_rng(10)
    series = np.cumsum(g.normal(size=(150, 24)), axis=0) + np.linspace(0, 20, 150)[:, None]
    template = series[60:100] + g.normal(size=(40, 24))
    fast = em.sliding_correlation(template, series)
    slow = [correlation(centre(template), centre(series[o:o + 40])) for o in range(150 - 40 + 1)]
    assert np.allclose(fast, slow, atol=1e-9)
    assert int(np.argmax(fast)) == 60


# ------------------------------------------------------------------------------- parameter safety
def test_the_catalogue_stores_each_recordings_envelope(library, reader):
    rec_id, rec = next((k, r) for k, r in reader.recordings.items() if r.track_id == "TRK-0001")
    fa = fingerprint_source(library.audio_dir / "song11.wav", reader.config, envelope=CFG)
    assert reader.envelope_config == CFG
    assert np.array_equal(reader.envelope(rec_id), fa.envelope)
    assert len(fa.envelope) == math.ceil(rec.duration_s * ESR / CFG.hop - 1e-6)
    assert reader.envelope_frames_live == sum(len(reader.envelope(k)) for k in reader.recordings)


def test_a_catalogue_whose_envelope_params_id_does_not_match_refuses_to_open(catalogue_copy):
    path = catalogue_copy / "manifest.json"
    good = json.loads(path.read_text())
    m = json.loads(path.read_text())
    m["families"]["envelope"]["params_id"] = EnvelopeConfig(n_bands=32).params_id
    path.write_text(json.dumps(m))
    with pytest.raises(ParamsMismatchError, match="made with envelope parameters envelope-"):
        Catalogue.open(catalogue_copy)
    with pytest.raises(ParamsMismatchError, match="envelope parameters"):
        open_reader(catalogue_copy)
    m = json.loads(json.dumps(good))  # a changed config under the old id is caught the same way
    m["families"]["envelope"]["config"]["n_bands"] = 32
    path.write_text(json.dumps(m))
    with pytest.raises(ParamsMismatchError, match="made with envelope parameters"):
        Catalogue.open(catalogue_copy)


def test_segments_with_other_envelope_parameters_are_refused_by_the_reader(catalogue_copy):
    # a manifest rewritten consistently to other envelope parameters still faces segments made with
    # the defaults: the reader refuses them rather than compare envelopes of two kinds
    path = catalogue_copy / "manifest.json"
    m = json.loads(path.read_text())
    other = EnvelopeConfig(n_bands=32)
    m["families"]["envelope"]["config"]["n_bands"] = 32
    m["families"]["envelope"]["params_id"] = other.params_id
    path.write_text(json.dumps(m))
    with Catalogue.open(catalogue_copy) as cat:
        assert cat.envelope_config == other
    with pytest.raises(ParamsMismatchError, match="segment envelopes use parameters"):
        open_reader(catalogue_copy)


@pytest.mark.parametrize("cfg", [EnvelopeConfig(), EnvelopeConfig(n_bands=40, fmin=30.0, fmax=5500.0),
                                 EnvelopeConfig(n_fft=1024, hop=512, n_bands=12)])
def test_mel_filters_are_librosas(cfg):
    librosa = pytest.importorskip("librosa")
    expected = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_bands, fmin=cfg.fmin,
                                   fmax=cfg.fmax, norm=None)
    np.testing.assert_array_equal(mel_filters(cfg), expected)


@pytest.mark.parametrize("defer_s", [0.0, 3.0, 4.9, 5.3, 60.0])
def test_a_deferred_envelope_equals_the_streamed_one(defer_s):
    """Deferring the envelope (kept samples, computed when read) gives the streamed envelope, on
    either side of the limit, whatever the blocks."""
    x = synth.song(4242, duration=5.0, sr=ESR)
    stream = EnvelopeStream(CFG)
    deferred = EnvelopeStream(CFG, defer_s=defer_s)
    for a in range(0, len(x), 3001):
        stream.feed(x[a:a + 3001])
        deferred.feed(x[a:a + 3001])
    expect = stream.finish()
    assert np.array_equal(expect, extract_envelope(x, CFG))
    get = deferred.deferred()
    kept = defer_s * ESR >= len(x)
    assert (deferred._out == []) == kept  # within the limit nothing is computed before it is read
    assert np.array_equal(get(), expect) and get() is get()
    # finish() on a deferring stream computes it too
    again = EnvelopeStream(CFG, defer_s=defer_s)
    again.feed(x)
    assert np.array_equal(again.finish(), expect)


def test_fingerprint_source_defers_the_envelope_until_read(library, reader):
    path = library.audio_dir / "song11.wav"
    eager = fingerprint_source(path, reader.config, envelope=CFG)
    lazy = fingerprint_source(path, reader.config, envelope=CFG, defer_envelope_s=600.0)
    assert "envelope" not in lazy.__dict__  # not computed yet
    assert np.array_equal(lazy.envelope, eager.envelope) and "envelope" in lazy.__dict__
    assert fingerprint_source(path, reader.config).envelope is None
