"""Decode an input and fingerprint it in one streaming pass."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from earmark.audio import AudioSource, StreamInfo, open_stream
from earmark.errors import ParameterError
from earmark.fingerprint import chromaprint
from earmark.fingerprint.base import Fingerprint
from earmark.fingerprint.envelope import EnvelopeConfig, EnvelopeStream, extract_envelope
from earmark.fingerprint.peaks import PeakConfig, Peaks, PeakStream, log_spectrogram, pick_peaks


@dataclass(frozen=True)
class FingerprintedAudio:
    """A fingerprint with what the decoder said about the input and how loud it was."""

    fingerprint: Fingerprint
    info: StreamInfo
    peak: float  # largest absolute sample value
    rms_dbfs: float  # loudness of the whole input
    peaks: Peaks | None = None  # spectral peaks for the landmark family, when asked for
    spectrogram: np.ndarray | None = None  # the peaks' log spectrogram (float16), when kept
    envelope_of: Callable[[], np.ndarray] | None = field(default=None, repr=False, compare=False)

    @cached_property
    def envelope(self) -> np.ndarray | None:
        """The spectral envelope (uint8 frames x bands) when asked for: computed on first read where
        it was deferred."""
        return self.envelope_of() if self.envelope_of is not None else None


def fingerprint_source(
    source: AudioSource, config: chromaprint.ChromaprintConfig, *, name: str | None = None,
    peaks: PeakConfig | None = None, envelope: EnvelopeConfig | None = None, keep_spectrogram_s: float = 0.0,
    defer_envelope_s: float = 0.0,
) -> FingerprintedAudio:
    """Decode ``source`` to 11025 Hz mono and compute its Chromaprint fingerprint, block by block,
    with ``peaks`` also its spectral peaks for the landmark family and with ``envelope`` its spectral
    envelope (same decode, same blocks). With ``peaks`` and ``keep_spectrogram_s``, an input no
    longer than that also keeps the peaks' log spectrogram. With ``envelope`` and
    ``defer_envelope_s``, an input no longer than that keeps its samples instead and computes its
    envelope when it is first read (a scan reads it for few items).

    Raises the typed decode errors of :func:`earmark.audio.open_stream`.
    """
    stats = {"peak": 0.0, "sumsq": 0.0, "n": 0}
    for other in (peaks, envelope):
        if other is not None and other.sample_rate != config.sample_rate:
            raise ParameterError(
                f"analysis rate {other.sample_rate} differs from the fingerprint rate {config.sample_rate}")
    stream = PeakStream(peaks, keep_s=keep_spectrogram_s) if peaks is not None else None
    env = EnvelopeStream(envelope, defer_s=defer_envelope_s) if envelope is not None else None

    def measured(blocks):
        for b in blocks:
            if stream is not None:
                stream.feed(b)
            if env is not None:
                env.feed(b)
            if len(b):
                stats["peak"] = max(stats["peak"], float(abs(b).max()))
                stats["sumsq"] += float(np.square(b, dtype=np.float64).sum())
                stats["n"] += len(b)
            yield b

    with open_stream(source, sr=config.sample_rate, name=name) as st:
        fp = chromaprint.extract_blocks(measured(st.blocks()), config)
        info = st.info


    rms = math.sqrt(stats["sumsq"] / stats["n"]) if stats["n"] else 0.0
    rms_dbfs = 20 * math.log10(rms) if rms > 0 else -math.inf
    return FingerprintedAudio(fingerprint=fp, info=info, peak=stats["peak"], rms_dbfs=rms_dbfs,
                              peaks=stream.finish() if stream is not None else None,
                              spectrogram=stream.spectrogram() if stream is not None else None,
                              envelope_of=env.deferred() if env is not None else None)


def fingerprint_samples(
    samples: np.ndarray, sr: int, config: chromaprint.ChromaprintConfig, *, peaks: PeakConfig | None = None,
    envelope: EnvelopeConfig | None = None, keep_spectrogram_s: float = 0.0,
) -> FingerprintedAudio:
    """Fingerprint audio that arrives already decoded (mono float32 at ``sr`` Hz), e.g. a Parquet
    ``{array, sampling_rate}`` cell. It is resampled to the fingerprinter's rate with soxr. The
    options are those of :func:`fingerprint_source`; the envelope is computed when first read."""
    import soxr

    x = np.asarray(samples, dtype=np.float32)
    if sr != config.sample_rate and len(x):
        x = soxr.resample(x, sr, config.sample_rate).astype(np.float32, copy=False)
    fp = chromaprint.extract(x, config)
    sumsq = float(np.square(x, dtype=np.float64).sum())
    rms = math.sqrt(sumsq / len(x)) if len(x) else 0.0
    info = StreamInfo(container="array", codec="pcm_f32", source_sr=sr, source_channels=1,
                      declared_duration=len(samples) / sr if sr else None)
    spec = log_spectrogram(x, peaks) if peaks is not None else None
    kept = None
    limit = int(keep_spectrogram_s * peaks.sample_rate / peaks.hop) if peaks is not None else 0  # frames
    if spec is not None and keep_spectrogram_s > 0 and len(spec) <= limit:  # PeakStream's limit
        kept = spec.astype(np.float16)
    return FingerprintedAudio(
        fingerprint=fp,
        info=info,
        peak=float(np.abs(x).max()) if len(x) else 0.0,
        rms_dbfs=20 * math.log10(rms) if rms > 0 else -math.inf,
        peaks=pick_peaks(spec, peaks) if peaks is not None else None,  # type: ignore[arg-type]
        spectrogram=kept,
        envelope_of=(lambda: extract_envelope(x, envelope)) if envelope is not None else None,
    )
