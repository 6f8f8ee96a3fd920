"""Spectral peaks on a log-frequency axis: the front end of the planned landmark family (issue 4).

On a log-frequency axis a pitch shift or a speed change is a translation, so differences of peak
pitches survive them exactly, and ratios of peak times survive tempo and speed changes. This module
computes the constellation only; hashing, indexing and matching build on it.

Stages (each a function over arrays): :func:`log_spectrogram` (STFT power mapped onto
``bins_per_octave`` log-spaced bins, in dB), :func:`whiten` (minus a running mean per bin, so quiet
bands can hold peaks), :func:`pick_peaks` (local maxima of a time x frequency neighbourhood, above a
floor, interpolated parabolically in time and pitch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
from scipy import ndimage, sparse

from earmark.errors import ParameterError


@dataclass(frozen=True)
class PeakConfig:
    """Parameters of the peak front end.

    Attributes
    ----------
    sample_rate : int
        Analysis rate in Hz (the rate Chromaprint is fed at, so one decode serves both).
    n_fft, hop : int
        STFT window and hop in samples (1024 / 96 at 11025 Hz: 93 ms windows every 8.7 ms).
    fmin : float
        Lowest bin centre in Hz.
    bins_per_octave, n_octaves : int
        Log-frequency resolution and range (36 and 5: 1/3-semitone bins, 110-3520 Hz).
    whiten_s : float
        Length in seconds of the local mean (over one octave) that peaks are measured against.
    nbhd_bins, nbhd_frames : int
        Half-sizes of the neighbourhood a peak must dominate, in bins and frames.
    floor_db : float
        A peak must stand this far above its local mean (see :func:`whiten`).
    """

    sample_rate: int = 11025
    n_fft: int = 1024
    hop: int = 96
    fmin: float = 110.0
    bins_per_octave: int = 36
    n_octaves: int = 5
    whiten_s: float = 1.5
    nbhd_bins: int = 9
    nbhd_frames: int = 12
    floor_db: float = 6.0

    def __post_init__(self) -> None:
        nyquist = self.sample_rate / 2
        if self.fmin * 2 ** (self.n_octaves + 1 / self.bins_per_octave) >= nyquist:
            raise ParameterError(
                f"fmin={self.fmin} with n_octaves={self.n_octaves} passes Nyquist ({nyquist} Hz)"
            )
        if self.hop <= 0 or self.n_fft <= 0 or self.hop > self.n_fft:
            raise ParameterError(f"hop={self.hop} must be in (0, n_fft={self.n_fft}]")

    @property
    def n_bins(self) -> int:
        return self.bins_per_octave * self.n_octaves

    @property
    def frame_duration(self) -> float:
        """Seconds between frames: the one place frames become seconds."""
        return self.hop / self.sample_rate

    def bin_to_semitones(self, b: np.ndarray | float) -> np.ndarray | float:
        """Log-frequency bin (fractional) -> semitones above ``fmin``."""
        return np.asarray(b) * (12.0 / self.bins_per_octave)


@dataclass(frozen=True)
class Peaks:
    """A constellation: one row per peak, sorted by time then pitch.

    Attributes
    ----------
    time : np.ndarray, float64, seconds
    pitch : np.ndarray, float64, semitones above ``fmin`` (interpolated)
    strength : np.ndarray, float32, dB above the bin's running mean
    level : np.ndarray, float32, or None
        The spectrogram's own level at the peak's cell (dB of power, not whitened): what an item
        that holds the recording under other sound must reach there (``earmark.match.mixture``).
    """

    time: np.ndarray
    pitch: np.ndarray
    strength: np.ndarray
    level: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not (self.time.shape == self.pitch.shape == self.strength.shape) or self.time.ndim != 1:
            raise ParameterError("peak arrays must be 1-D and of equal length")
        if self.level is not None and self.level.shape != self.time.shape:
            raise ParameterError("peak levels must match the peaks")

    def __len__(self) -> int:
        return len(self.time)


@lru_cache(maxsize=8)
def _log_filterbank(sr: int, n_fft: int, fmin: float, bpo: int, n_octaves: int) -> sparse.csr_matrix:
    """Triangular weights from linear FFT bins onto log-spaced bins, shape (n_bins, n_fft // 2 + 1)."""
    n_bins = bpo * n_octaves
    fft_freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    k = np.arange(-1, n_bins + 1)
    edges = fmin * 2.0 ** (k / bpo)  # centres of bins -1 .. n_bins
    rows, cols, vals = [], [], []
    df = sr / n_fft
    for b in range(n_bins):
        lo, c, hi = edges[b], edges[b + 1], edges[b + 2]
        # at low frequencies the log bins are narrower than an FFT bin: widen to one FFT bin each side
        lo, hi = min(lo, c - df), max(hi, c + df)
        sel = np.flatnonzero((fft_freqs > lo) & (fft_freqs < hi))
        w = np.where(fft_freqs[sel] <= c, (fft_freqs[sel] - lo) / (c - lo), (hi - fft_freqs[sel]) / (hi - c))
        w = w / w.sum()
        rows += [b] * len(sel)
        cols += sel.tolist()
        vals += w.tolist()
    return sparse.csr_matrix((vals, (rows, cols)), shape=(n_bins, n_fft // 2 + 1))


def log_spectrogram(samples: np.ndarray, config: PeakConfig) -> np.ndarray:
    """Power on log-spaced bins, in dB.

    Parameters
    ----------
    samples : np.ndarray, shape (n,), float32
        Mono audio at ``config.sample_rate``.

    Returns
    -------
    np.ndarray, shape (n_frames, n_bins), float32
        Frame ``i`` is centred at ``i * hop + n_fft / 2`` samples.
    """
    x = np.asarray(samples, dtype=np.float32)
    if len(x) < config.n_fft:
        return np.zeros((0, config.n_bins), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, config.n_fft)[:: config.hop]
    window = np.hanning(config.n_fft).astype(np.float32)
    spec = scipy.fft.rfft(frames * window, axis=1)  # float32 in, complex64 out: ~5x numpy's float64 FFT
    power = spec.real**2 + spec.imag**2
    fb = _log_filterbank(config.sample_rate, config.n_fft, config.fmin, config.bins_per_octave,
                         config.n_octaves)
    logp = (fb @ power.T).T
    return (10.0 * np.log10(logp + 1e-10)).astype(np.float32)


def whiten(spec_db: np.ndarray, config: PeakConfig) -> np.ndarray:
    """dB above the local level: the mean over ``whiten_s`` seconds and one octave around each bin.

    Averaging across frequency too lets a sustained partial stand above its neighbourhood (a
    per-bin mean over time alone would flatten every held note), while a band where an interfering
    source is loud raises only its own floor.
    """
    if len(spec_db) == 0:
        return spec_db
    size = (max(1, int(round(config.whiten_s / config.frame_duration))), config.bins_per_octave)
    local = ndimage.uniform_filter(spec_db, size=size, mode="nearest")
    return spec_db - local


def pick_peaks(spec_db: np.ndarray, config: PeakConfig, *, silence_db: float = -60.0) -> Peaks:
    """Local maxima of the whitened spectrogram, interpolated in time and pitch.

    A peak equals the maximum of its ``(2 nbhd_frames + 1) x (2 nbhd_bins + 1)`` neighbourhood,
    stands ``floor_db`` above its bin's running mean, lies in a frame whose loudest bin is above
    ``silence_db`` (dB of power), and is not in a flat region (digital silence, clipping).
    """
    if len(spec_db) < 3:
        return _no_peaks()
    white = whiten(spec_db, config)
    nt, nb = config.nbhd_frames, config.nbhd_bins
    # the neighbourhood maximum, as two separable passes (the first one reused below)
    across = ndimage.maximum_filter1d(white, size=2 * nb + 1, axis=1, mode="constant", cval=-np.inf)
    nbhd_max = ndimage.maximum_filter1d(across, size=2 * nt + 1, axis=0, mode="constant", cval=-np.inf)
    loud = (spec_db.max(axis=1) > silence_db)[:, None]
    mask = (white == nbhd_max) & loud & (white >= config.floor_db)
    mask[0, :] = mask[-1, :] = False
    mask[:, 0] = mask[:, -1] = False
    t, b = np.nonzero(mask)
    # the few candidates are checked one by one (gathers, not filters over the whole image):
    # a plateau (a held tone) is one peak, at its start: strictly above the earlier frames around it
    back = t[:, None] - np.arange(1, nt + 1)[None, :]
    earlier = np.where(back >= 0, across[np.maximum(back, 0), b[:, None]], -np.inf).max(axis=1)
    # and not in a flat region (digital silence, clipping)
    patch = spec_db[(t[:, None] + np.array([-1, -1, -1, 0, 0, 1, 1, 1])[None, :]),
                    (b[:, None] + np.array([-1, 0, 1, -1, 1, -1, 0, 1])[None, :])]
    centre = spec_db[t, b]
    keep = (white[t, b] > earlier) & ((patch.max(axis=1) > patch.min(axis=1)) | (centre != patch.min(axis=1)))
    t, b = t[keep], b[keep]
    # parabolic interpolation of the whitened surface along each axis
    c = white[t, b]
    df = _parabola(white[t, b - 1], c, white[t, b + 1])
    dt = _parabola(white[t - 1, b], c, white[t + 1, b])
    time = (t + dt) * config.frame_duration + config.n_fft / 2 / config.sample_rate
    pitch = config.bin_to_semitones(b + df)
    order = np.lexsort((pitch, time))
    return Peaks(time=time[order].astype(np.float64), pitch=np.asarray(pitch)[order].astype(np.float64),
                 strength=c[order].astype(np.float32), level=spec_db[t, b][order].astype(np.float32))


def peak_cells(peaks: Peaks, config: PeakConfig) -> tuple[np.ndarray, np.ndarray]:
    """The spectrogram cell of each peak: its frame and log-frequency bin (its interpolated position
    rounded; int64, frame at least 0, bin within the bins)."""
    frame = np.round((np.asarray(peaks.time) - config.n_fft / 2 / config.sample_rate) / config.frame_duration)
    bins = np.round(np.asarray(peaks.pitch) * config.bins_per_octave / 12.0)
    return np.maximum(frame, 0).astype(np.int64), np.clip(bins, 0, config.n_bins - 1).astype(np.int64)


def _no_peaks() -> Peaks:
    z = np.zeros(0)
    return Peaks(z, z, np.zeros(0, np.float32), np.zeros(0, np.float32))


def _parabola(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Offset in (-0.5, 0.5) of the vertex of the parabola through (-1, a), (0, b), (1, c)."""
    den = a - 2 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(den < 0, 0.5 * (a - c) / den, 0.0)
    return np.clip(np.nan_to_num(d), -0.5, 0.5)


def extract_peaks(samples: np.ndarray, config: PeakConfig) -> Peaks:
    """The constellation of a mono signal at ``config.sample_rate``."""
    return pick_peaks(log_spectrogram(samples, config), config)


class PeakStream:
    """Peaks of a long signal fed block by block, in bounded memory.

    Samples are analysed in chunks of ``chunk_s`` seconds with ``margin_s`` of context on each side,
    and each chunk contributes the peaks of its core only. The margin exceeds the reach of every
    filter (the whitening's half-window, the peak neighbourhood), so the result equals
    :func:`extract_peaks` on the whole signal, at a fixed memory cost per chunk.

    With ``keep_s`` the log spectrogram of the first ``keep_s`` seconds is kept too (float16, about
    21 kB per second at the default parameters; :meth:`spectrogram`): the mixture verifier reads the
    item's level wherever a recording has a peak. Longer signals keep none: a verifier that compares
    whole items has no use for a part.
    """

    def __init__(self, config: PeakConfig, *, chunk_s: float = 60.0, margin_s: float = 2.0,
                 keep_s: float = 0.0):
        hop = config.hop
        self.config = config
        self._chunk = max(1, int(chunk_s * config.sample_rate) // hop) * hop
        self._margin = max(1, int(math.ceil(margin_s * config.sample_rate / hop))) * hop
        self._buf: list[np.ndarray] = []
        self._buffered = 0
        self._base = 0  # absolute sample index of the buffer's first sample
        self._out: list[Peaks] = []
        self._keep = int(keep_s * config.sample_rate / hop)  # frames
        self._spec: list[np.ndarray] | None = [] if self._keep > 0 else None

    def spectrogram(self) -> np.ndarray | None:
        """The kept log spectrogram (frames x bins, float16, frame ``i`` as in
        :func:`log_spectrogram`), or None when none was asked for or the signal was longer."""
        if self._spec is None:
            return None
        return (np.concatenate(self._spec) if self._spec
                else np.zeros((0, self.config.n_bins), np.float16))

    def feed(self, block: np.ndarray) -> None:
        if len(block):
            self._buf.append(np.asarray(block, dtype=np.float32))
            self._buffered += len(block)
        while self._buffered >= self._chunk + 2 * self._margin:
            x = np.concatenate(self._buf)
            self._emit(x[: self._chunk + 2 * self._margin], last=False)
            x = x[self._chunk :]
            self._buf, self._buffered = [x], len(x)
            self._base += self._chunk

    def finish(self) -> Peaks:
        x = np.concatenate(self._buf) if self._buf else np.zeros(0, np.float32)
        self._emit(x, last=True)
        self._buf, self._buffered = [], 0
        parts = [p for p in self._out if len(p)]
        if not parts:
            return _no_peaks()
        return Peaks(time=np.concatenate([p.time for p in parts]),
                     pitch=np.concatenate([p.pitch for p in parts]),
                     strength=np.concatenate([p.strength for p in parts]),
                     level=np.concatenate([p.level for p in parts]))  # type: ignore[misc]

    def _emit(self, x: np.ndarray, *, last: bool) -> None:
        sr, hop = self.config.sample_rate, self.config.hop
        spec = log_spectrogram(x, self.config)
        pk = pick_peaks(spec, self.config)
        lo = 0.0 if self._base == 0 else self._margin / sr
        hi = math.inf if last else (self._margin + self._chunk) / sr
        keep = (pk.time >= lo) & (pk.time < hi)
        off = self._base / sr
        self._out.append(Peaks(time=pk.time[keep] + off, pitch=pk.pitch[keep], strength=pk.strength[keep],
                               level=pk.level[keep]))  # type: ignore[index]
        if self._spec is not None:
            # this chunk's core frames: frame i of the chunk is frame base/hop + i of the signal
            f0 = 0 if self._base == 0 else self._margin // hop
            f1 = len(spec) if last else (self._margin + self._chunk) // hop
            self._spec.append(spec[f0:f1].astype(np.float16))
            if sum(len(s) for s in self._spec) > self._keep:
                self._spec = None
