"""The log-frequency peak front end (groundwork of the landmark family): analytic answers and
invariances."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from earmark import synth
from earmark.errors import ParameterError
from earmark.fingerprint.peaks import PeakConfig, extract_peaks, log_spectrogram

CFG = PeakConfig()
SR = CFG.sample_rate


def _tone(freq: float, seconds: float = 2.0, lead: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return np.concatenate([np.zeros(int(lead * SR)), 0.5 * np.sin(2 * np.pi * freq * t)]).astype(np.float32)


def _survival(ref, query, *, time_factor=1.0, shift_st=0.0, frames=3.0, semitones=0.67) -> float:
    """Share of reference peaks with a query peak where the transform puts them."""
    from scipy.spatial import cKDTree

    if len(ref) == 0:
        return 0.0
    scale = np.array([1 / CFG.frame_duration / frames, 1 / semitones])
    tree = cKDTree(np.c_[query.time, query.pitch] * scale)
    d, _ = tree.query(np.c_[ref.time / time_factor, ref.pitch + shift_st] * scale, distance_upper_bound=1.0)
    return float(np.mean(np.isfinite(d)))


# A 1024-point FFT at 11025 Hz has 10.8 Hz bins: over a semitone at 155 Hz, a fifth of one at 1 kHz.
@pytest.mark.parametrize(
    ("freq", "tolerance_st"), [(155.56, 0.6), (440.0, 0.1), (523.25, 0.1), (1975.5, 0.1)]
)
def test_a_tone_peaks_at_its_pitch(freq, tolerance_st):
    peaks = extract_peaks(_tone(freq), CFG)
    expected = 12 * np.log2(freq / CFG.fmin)
    tonal = peaks.pitch[np.abs(peaks.pitch - expected) < 1]
    assert len(tonal) >= 1
    assert np.all(np.abs(tonal - expected) < tolerance_st)


def test_silence_has_no_peaks():
    assert len(extract_peaks(np.zeros(3 * SR, np.float32), CFG)) == 0
    assert log_spectrogram(np.zeros(100, np.float32), CFG).shape == (0, CFG.n_bins)


def test_gain_does_not_move_peaks():
    song = synth.song(11, duration=12.0, sr=SR)
    a, b = extract_peaks(song, CFG), extract_peaks(song * 0.25, CFG)
    assert len(a) > 100
    # peaks are measured against their local level, so a gain change keeps them (float rounding can
    # break a tie between equal neighbours differently)
    assert _survival(a, b, frames=1.0, semitones=0.05) > 0.95
    assert abs(len(a) - len(b)) <= 0.05 * len(a)


def test_deterministic():
    song = synth.song(12, duration=8.0, sr=SR)
    a, b = extract_peaks(song, CFG), extract_peaks(song.copy(), CFG)
    assert np.array_equal(a.time, b.time) and np.array_equal(a.pitch, b.pitch)


@pytest.mark.parametrize("speed", [0.9, 1.06, 1.2])
def test_a_speed_change_translates_pitch_and_scales_time(speed):
    """Resampling by `speed` (pitch up by 12 log2(speed) st, time / speed): most peaks move exactly so;
    a control with the wrong shift finds far fewer."""
    song = synth.song(13, duration=20.0, sr=SR)
    fast = soxr.resample(song, SR * speed, SR).astype(np.float32)
    ref, q = extract_peaks(song, CFG), extract_peaks(fast, CFG)
    st = 12 * np.log2(speed)
    right = _survival(ref, q, time_factor=speed, shift_st=st)
    wrong = _survival(ref, q, time_factor=speed, shift_st=st + 1.5)
    assert right > 0.6
    assert wrong < right / 2


def test_invalid_config_is_refused():
    with pytest.raises(ParameterError, match="Nyquist"):
        PeakConfig(fmin=1000.0, n_octaves=5)
    with pytest.raises(ParameterError, match="hop"):
        PeakConfig(hop=0)
