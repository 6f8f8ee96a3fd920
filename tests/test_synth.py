"""earmark.synth: the generator every test depends on is deterministic and does what it says."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from earmark import synth
from earmark.errors import ParameterError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def test_fixture_files_match_their_recorded_checksums(tmp_path):
    """fixtures/generate.py still writes byte-identical WAVs (synth and write_wav are deterministic)."""
    spec = importlib.util.spec_from_file_location("fixtures_generate", FIXTURES / "generate.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    expected = json.loads((FIXTURES / "checksums.json").read_text())
    assert gen.generate(tmp_path) == expected


def test_same_seed_same_samples_other_seed_other_samples():
    a = synth.song(5, duration=4.0, sr=22050)
    np.testing.assert_array_equal(a, synth.song(5, duration=4.0, sr=22050))
    assert not np.array_equal(a, synth.song(6, duration=4.0, sr=22050))
    np.testing.assert_array_equal(a, synth.same_artist_song(5, 5, duration=4.0, sr=22050))
    assert a.dtype == np.float32 and a.shape == (4 * 22050,)
    assert np.abs(a).max() == pytest.approx(synth.PEAK, abs=1e-6)


def test_same_artist_songs_differ_from_the_artist_s_own_song():
    own = synth.song(11, duration=6.0, sr=11025)
    other = synth.same_artist_song(911, 11, duration=6.0, sr=11025)
    assert not np.array_equal(own, other)
    assert abs(float(np.corrcoef(own, other)[0, 1])) < 0.3


def test_tone_chirp_noise_and_silence():
    t = synth.tone(1000.0, duration=1.0, sr=8000, amplitude=0.25)
    assert t.shape == (8000,) and np.abs(t).max() == pytest.approx(0.25, abs=1e-4)
    assert np.argmax(np.abs(np.fft.rfft(t))) == 1000  # 1 Hz bins over one second
    c = synth.chirp(100.0, 3000.0, duration=2.0, sr=8000)
    first, last = np.abs(np.fft.rfft(c[:800])), np.abs(np.fft.rfft(c[-800:]))
    assert np.argmax(first) * 10 < 300 and np.argmax(last) * 10 > 2700
    n = synth.noise(1, duration=2.0, sr=8000, rms=0.05)
    assert float(np.sqrt(np.mean(n.astype(np.float64) ** 2))) == pytest.approx(0.05, rel=1e-3)
    assert not synth.silence(0.5, sr=8000).any() and len(synth.silence(0.5, sr=8000)) == 4000
    with pytest.raises(ParameterError, match="color must be"):
        synth.noise(1, duration=1.0, color="blue")


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_mix_at_snr_reaches_the_requested_ratio(snr_db):
    s = synth.song(2, duration=3.0, sr=8000).astype(np.float64)
    v = synth.noise(3, duration=3.0, sr=8000, color="pink")
    mixed = synth.mix_at_snr(s, v, snr_db).astype(np.float64)
    added = mixed - s
    measured = 10 * np.log10(np.mean(s**2) / np.mean(added**2))
    assert measured == pytest.approx(snr_db, abs=0.01)


def test_write_wav_clips_and_rounds(tmp_path):
    path = tmp_path / "x.wav"
    synth.write_wav(path, np.array([0.0, 0.5, 2.0, -2.0], np.float32), 8000)
    pcm = np.frombuffer(path.read_bytes()[44:], "<i2")
    assert pcm.tolist() == [0, 16384, 32767, -32767]
