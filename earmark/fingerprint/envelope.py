"""Spectral envelopes: the third fingerprint family, a verifier for copies too smeared for the others.

A reverberant room convolves a recording with a long, noise-like impulse response. The fine
structure both other families rely on does not survive a fully wet room: Chromaprint's chroma bits
flip (bit error rates of 0.2-0.3, where same-artist recordings already agree at 0.19) and spectral
peaks follow the room's random colouring rather than the music. What survives is the coarse
spectral envelope: how much energy each band holds, frame by frame, smeared forward by the decay
and scaled by a fixed gain per band.

An envelope is the log energy of ``n_bands`` mel bands between ``fmin`` and ``fmax``, every ``hop``
samples (93 ms at 11025 Hz), stored as one byte per band and frame (``step_db`` quanta above
``floor_db``; power relative to a full-scale signal). Frame ``k`` is the windowed spectrum of samples
``[k * hop, k * hop + n_fft)``, zero-padded past the end, so a signal of ``n`` samples has
``ceil(n / hop)`` frames and a stream fed block by block gives the same frames as the whole signal.

Envelopes are not indexed: the matcher (:mod:`earmark.match.envelope`) compares them only at the
alignments the Chromaprint index proposes. At 24 bands they cost 258 bytes per second of catalogue
audio, about 56 GB per million recordings, memory-mapped and read only at those alignments.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from earmark.errors import ParameterError
from earmark.fingerprint.base import params_id as _params_id

FAMILY = "envelope"


@dataclass(frozen=True)
class EnvelopeConfig:
    """Parameters of the envelope family; ``params_id`` identifies them (a catalogue refuses others).

    Attributes
    ----------
    sample_rate : int
        Rate of the analysed signal (the Chromaprint rate, so one decode serves every family).
    n_fft, hop : int
        Hann window and hop in samples.
    n_bands : int
        Mel bands (Slaney scale, unnormalised triangles) between ``fmin`` and ``fmax`` Hz.
    floor_db, step_db : float
        Stored byte ``c`` stands for ``floor_db + c * step_db`` dB (0 is the floor: silence).
    """

    sample_rate: int = 11025
    n_fft: int = 2048
    hop: int = 1024
    n_bands: int = 24
    fmin: float = 80.0
    fmax: float = 5000.0
    floor_db: float = -120.0
    step_db: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.hop <= self.n_fft:
            raise ParameterError(f"hop={self.hop} must be in (0, n_fft={self.n_fft}]")
        if not 0 < self.fmin < self.fmax <= self.sample_rate / 2:
            raise ParameterError(f"need 0 < fmin < fmax <= {self.sample_rate / 2} Hz")
        if self.n_bands < 2 or self.step_db <= 0:
            raise ParameterError("need at least 2 bands and a positive step")

    @property
    def params_id(self) -> str:
        return _params_id(FAMILY, self)

    @property
    def frame_s(self) -> float:
        """Seconds between frames."""
        return self.hop / self.sample_rate


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear (200/3 Hz per mel) below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (math.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((math.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3))


def mel_filters(config: EnvelopeConfig) -> np.ndarray:
    """Triangular mel filters (bands x rfft bins), unnormalised: the values of
    ``librosa.filters.mel(..., norm=None)`` (float32, as librosa returns them), computed here so
    that a scan worker does not pay librosa's import (about a second of CPU) for one matrix."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(config.fmin)), _hz_to_mel(np.array(config.fmax)),
                                   config.n_bands + 2))
    freqs = np.fft.rfftfreq(config.n_fft, 1.0 / config.sample_rate)
    width = np.diff(edges)
    ramps = edges[:, None] - freqs[None, :]
    lower = -ramps[:-2] / width[:-1, None]
    upper = ramps[2:] / width[1:, None]
    return np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)


@lru_cache(maxsize=8)
def _filters(config: EnvelopeConfig) -> tuple[np.ndarray, np.ndarray]:
    window = np.hanning(config.n_fft + 1)[:-1]  # periodic Hann
    fb = mel_filters(config)
    # |rfft|^2 of a full-scale sine is (sum(window) / 2)^2: scale so that reads as about 0 dB
    scale = 4.0 / window.sum() ** 2
    return window.astype(np.float64), (fb * scale).astype(np.float64)


def _frames_db(x: np.ndarray, config: EnvelopeConfig, n_frames: int) -> np.ndarray:
    """uint8 codes of the first ``n_frames`` frames of ``x`` (which holds all their samples).

    The spectra are computed in single precision (a seventh of the double-precision cost; the codes
    agree), the band energies and their logarithm in double."""
    import scipy.fft

    window, fb = _filters(config)
    if n_frames <= 0:
        return np.zeros((0, config.n_bands), np.uint8)
    x32 = np.asarray(x, dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x32, config.n_fft)[:: config.hop][:n_frames]
    spec = scipy.fft.rfft(frames * window.astype(np.float32), axis=1)
    power = (spec.real * spec.real + spec.imag * spec.imag).astype(np.float64)
    db = 10.0 * np.log10(power @ fb.T + 1e-30)
    codes = np.round((db - config.floor_db) / config.step_db)
    return np.clip(codes, 0, 255).astype(np.uint8)


def extract_envelope(samples: np.ndarray, config: EnvelopeConfig) -> np.ndarray:
    """Envelope of a mono signal at ``config.sample_rate``: uint8, shape ``(frames, n_bands)``."""
    x = np.asarray(samples, dtype=np.float32)
    n_frames = math.ceil(len(x) / config.hop)
    padded = np.concatenate([x, np.zeros((n_frames - 1) * config.hop + config.n_fft - len(x), np.float32)]) \
        if n_frames else x
    return _frames_db(padded, config, n_frames)


class EnvelopeStream:
    """The envelope of a long signal fed block by block, equal to :func:`extract_envelope` on the
    whole, holding at most one window plus one block of samples.

    With ``defer_s``, a signal no longer than that is only kept as it arrives, and its envelope is
    computed when :meth:`deferred`'s function is first called (a scan reads it for few items); a
    longer one is computed block by block from the moment it passes the limit."""

    def __init__(self, config: EnvelopeConfig, *, defer_s: float = 0.0):
        self.config = config
        self._buf = np.zeros(0, np.float32)
        self._seen = 0
        self._out: list[np.ndarray] = []
        self._limit = int(defer_s * config.sample_rate)  # samples
        self._kept: list[np.ndarray] | None = [] if self._limit > 0 else None

    def feed(self, block: np.ndarray) -> None:
        if self._kept is None:
            self._feed(block)
            return
        self._kept.append(np.asarray(block, dtype=np.float32))
        self._seen += len(block)
        if self._seen > self._limit:  # too long to defer: compute from here on
            self._compute_kept()

    def _compute_kept(self) -> None:
        kept, self._kept, self._seen = self._kept or [], None, 0
        for k in kept:
            self._feed(k)

    def deferred(self) -> Callable[[], np.ndarray]:
        """A function returning the envelope (:meth:`finish`'s): computed when first called for a
        signal still within ``defer_s``, at once otherwise."""
        if self._kept is None:
            env = self.finish()
            return lambda: env
        x = np.concatenate(self._kept) if self._kept else np.zeros(0, np.float32)
        self._kept, self._seen = None, 0
        config, cache = self.config, []

        def envelope() -> np.ndarray:
            if not cache:
                cache.append(extract_envelope(x, config))
            return cache[0]
        return envelope

    def _feed(self, block: np.ndarray) -> None:
        c = self.config
        if len(block):
            self._buf = np.concatenate([self._buf, np.asarray(block, dtype=np.float32)])
            self._seen += len(block)
        ready = (len(self._buf) - c.n_fft) // c.hop + 1 if len(self._buf) >= c.n_fft else 0
        if ready > 0:
            self._out.append(_frames_db(self._buf, c, ready))
            self._buf = self._buf[ready * c.hop:]

    def finish(self) -> np.ndarray:
        if self._kept is not None:
            self._compute_kept()
        c = self.config
        done = sum(len(o) for o in self._out)
        total = math.ceil(self._seen / c.hop)
        rest = total - done
        if rest > 0:
            pad = np.zeros((rest - 1) * c.hop + c.n_fft - len(self._buf), np.float32)
            self._out.append(_frames_db(np.concatenate([self._buf, pad]), c, rest))
        self._buf = np.zeros(0, np.float32)
        if not self._out:
            return np.zeros((0, c.n_bands), np.uint8)
        return np.concatenate(self._out)


def to_db(codes: np.ndarray, config: EnvelopeConfig) -> np.ndarray:
    """Stored codes back to dB (float64), same shape."""
    return config.floor_db + np.asarray(codes, dtype=np.float64) * config.step_db


__all__ = ["FAMILY", "EnvelopeConfig", "EnvelopeStream", "extract_envelope", "to_db"]
