"""earmark.fingerprint: Chromaprint items, their silence mask, determinism and invariances."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from conftest import SR, write_audio

from earmark import synth
from earmark.errors import ParameterError
from earmark.fingerprint import FAMILIES, Fingerprint, chromaprint, params_id
from earmark.fingerprint.chromaprint import HOP, SAMPLE_RATE, ChromaprintConfig, extract
from earmark.fingerprint.pipeline import fingerprint_source
from earmark.match.chromaprint import ITEM_SPAN_S

CFG = ChromaprintConfig()
ITEM_S = HOP / SAMPLE_RATE  # 0.1238 s


def ber(a: np.ndarray, b: np.ndarray) -> float:
    """Bit error rate of two equally long code arrays."""
    assert len(a) == len(b) and len(a) > 0
    return float(np.bitwise_count(np.asarray(a, np.uint32) ^ np.asarray(b, np.uint32)).mean() / 32)


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    """30 s of a synthetic song at Chromaprint's own rate."""
    return synth.song(21, duration=30.0, sr=SAMPLE_RATE)


@pytest.fixture(scope="module")
def music_fp(music) -> Fingerprint:
    return extract(music, CFG)


def test_family_registry_and_constants():
    assert FAMILIES == {"chromaprint": chromaprint}
    assert CFG.sample_rate == 11025
    assert CFG.item_duration == pytest.approx(0.1238, abs=1e-4)
    assert re.fullmatch(r"\d+\.\d+\.\d+", chromaprint.library_version())


# ------------------------------------------------------------------------------- silence
def test_silence_gives_no_active_items():
    fp = extract(synth.silence(10.0, sr=SAMPLE_RATE), CFG)
    assert len(fp) > 0
    assert fp.n_active == 0
    assert set(fp.codes.tolist()) == {chromaprint.SILENCE_CODE}


def test_empty_input_gives_an_empty_fingerprint():
    fp = extract(np.zeros(0, np.float32), CFG)
    assert len(fp) == 0 and fp.n_active == 0 and fp.duration == 0.0


def test_quiet_noise_is_inactive_below_the_silence_level_and_active_above_it():
    quiet = synth.noise(1, duration=10.0, sr=SAMPLE_RATE, rms=10 ** (-70 / 20))  # -70 dBFS
    assert extract(quiet, CFG).n_active == 0
    lenient = ChromaprintConfig(silence_dbfs=-80.0)
    fp = extract(quiet, lenient)
    assert fp.n_active == len(fp) > 0


def test_items_before_a_late_start_are_inactive(music):
    """Silence then music: only items whose ~2.7 s span reaches the music carry evidence."""
    lead = 6.0
    fp = extract(np.concatenate([synth.silence(lead, sr=SAMPLE_RATE), music[: 10 * SAMPLE_RATE]]), CFG)
    first = int(np.flatnonzero(fp.active)[0])
    assert lead - ITEM_SPAN_S - 2 * ITEM_S <= first * ITEM_S <= lead
    assert fp.active[first:].all()


# ------------------------------------------------------------------------------- rate
def test_items_per_second_is_one_per_hop():
    fp30 = extract(synth.song(22, duration=30.0, sr=SAMPLE_RATE), CFG)
    fp60 = extract(synth.song(22, duration=60.0, sr=SAMPLE_RATE), CFG)
    assert fp30.item_duration == fp60.item_duration == pytest.approx(HOP / SAMPLE_RATE)
    rate = (len(fp60) - len(fp30)) / 30.0
    assert rate == pytest.approx(1 / 0.1238, abs=0.05)
    # the first item needs a full item span of audio
    assert len(fp30) == pytest.approx((30.0 - ITEM_SPAN_S) / ITEM_S + 1, abs=2)
    assert fp60.duration == pytest.approx(60.0)


def test_item_time_converts_indexes_to_seconds(music_fp):
    assert music_fp.item_time(10) == pytest.approx(10 * ITEM_S)
    np.testing.assert_allclose(music_fp.item_time(np.array([0, 8, 80])), np.array([0, 8, 80]) * ITEM_S)


# ------------------------------------------------------------------------------- determinism
def test_same_audio_gives_identical_codes(music, music_fp):
    again = extract(music.copy(), CFG)
    np.testing.assert_array_equal(again.codes, music_fp.codes)
    np.testing.assert_array_equal(again.active, music_fp.active)
    assert again.params_id == music_fp.params_id


@pytest.mark.parametrize("block", [1000, HOP, 3 * SAMPLE_RATE + 17])
def test_block_size_does_not_change_the_fingerprint(music, music_fp, block):
    fp = extract(music, CFG, block=block)
    np.testing.assert_array_equal(fp.codes, music_fp.codes)
    np.testing.assert_array_equal(fp.active, music_fp.active)


def test_fingerprint_arrays_are_read_only(music_fp):
    assert music_fp.codes.dtype == np.uint32 and music_fp.active.dtype == bool
    with pytest.raises(ValueError, match="read-only"):
        music_fp.codes[0] = 0


# ------------------------------------------------------------------------------- invariances
@pytest.mark.parametrize("gain", [0.5, 0.25])
def test_gain_change_keeps_codes(music, music_fp, gain):
    fp = extract(music * gain, CFG)
    assert len(fp) == len(music_fp)
    assert ber(fp.codes, music_fp.codes) < 0.05
    assert fp.n_active == music_fp.n_active


@pytest.mark.parametrize("shift_items", [1, 7, 80])
def test_crop_at_a_hop_multiple_shifts_the_codes(music, music_fp, shift_items):
    """Cropping k * HOP samples off the front gives the original's items from item k on."""
    fp = extract(music[shift_items * HOP :], CFG)
    n = len(fp)
    assert n == len(music_fp) - shift_items
    assert ber(fp.codes, music_fp.codes[shift_items : shift_items + n]) < 0.02
    # and not at any other shift: the alignment is meaningful
    assert ber(fp.codes[:-3], music_fp.codes[shift_items + 3 : shift_items + n]) > 0.15


def test_unrelated_songs_disagree_on_about_half_the_bits(music_fp):
    other = extract(synth.song(23, duration=30.0, sr=SAMPLE_RATE), CFG)
    n = min(len(other), len(music_fp))
    assert 0.3 < ber(other.codes[:n], music_fp.codes[:n]) < 0.7


def test_mp3_copy_keeps_most_codes(tmp_path):
    """Through the decode pipeline: a 128 kb/s MP3 of a WAV fingerprints nearly the same."""
    x = synth.song(24, duration=20.0, sr=SR)
    wav = write_audio(tmp_path / "song.wav", x)
    mp3 = write_audio(tmp_path / "song.mp3", x)
    a = fingerprint_source(wav, CFG)
    b = fingerprint_source(mp3, CFG)
    assert a.info.codec == "pcm_s16le" and b.info.codec.startswith("mp3")
    assert a.peak == pytest.approx(synth.PEAK, abs=0.01)
    assert a.rms_dbfs == pytest.approx(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2))), abs=0.3)
    n = min(len(a.fingerprint), len(b.fingerprint))
    assert abs(len(a.fingerprint) - len(b.fingerprint)) <= 1
    # an MP3's encoder delay can shift by a fraction of an item; compare the best of 0 / ±1 items
    errs = [ber(a.fingerprint.codes[2 : n - 2], b.fingerprint.codes[2 + d : n - 2 + d]) for d in (-1, 0, 1)]
    assert min(errs) < 0.1


def test_pipeline_on_silence_reports_minus_infinity_dbfs(tmp_path):
    wav = write_audio(tmp_path / "silence.wav", synth.silence(5.0, sr=SR))
    fa = fingerprint_source(wav, CFG)
    assert fa.peak == 0.0
    assert fa.rms_dbfs == -np.inf
    assert fa.fingerprint.n_active == 0


# ------------------------------------------------------------------------------- parameters
def test_params_id_is_stable_and_changes_with_every_field():
    assert ChromaprintConfig().params_id == CFG.params_id
    assert re.fullmatch(r"chromaprint-v1-[0-9a-f]{16}", CFG.params_id)
    changed = {
        "algorithm": ChromaprintConfig(algorithm=2).params_id,
        "silence_dbfs": ChromaprintConfig(silence_dbfs=-50.0).params_id,
    }
    assert {f.name for f in dataclasses.fields(ChromaprintConfig)} == set(changed)
    assert len({CFG.params_id, *changed.values()}) == 3
    assert params_id("other-family", CFG) != CFG.params_id


def test_fingerprints_carry_their_params_id(music):
    fp = extract(music[: 5 * SAMPLE_RATE], ChromaprintConfig(silence_dbfs=-50.0))
    assert fp.params_id == ChromaprintConfig(silence_dbfs=-50.0).params_id != CFG.params_id
    assert fp.family == "chromaprint"


def test_invalid_config_and_fingerprint_values_are_rejected():
    with pytest.raises(ParameterError, match=r"algorithm=7 must be one of"):
        ChromaprintConfig(algorithm=7)
    with pytest.raises(ParameterError, match="must be 1-D and of equal length"):
        Fingerprint("chromaprint", "x", np.zeros(3, np.uint32), np.zeros(2, bool), ITEM_S, 1.0)
    with pytest.raises(ParameterError, match="item_duration=0 must be positive"):
        Fingerprint("chromaprint", "x", np.zeros(3, np.uint32), np.zeros(3, bool), 0, 1.0)
