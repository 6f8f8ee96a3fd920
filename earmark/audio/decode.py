"""Decode audio through PyAV (FFmpeg bundled in the wheel) to mono float32 blocks.

One function turns any supported input into a stream of fixed-rate mono blocks; everything else is
built on it. Inputs are a filesystem path or the bytes of a file (archives hand us bytes). The first
audio stream of video containers (mp4, webm, mkv) is used.

Failures are typed (:mod:`earmark.errors`): empty input, not audio, truncated/corrupt data and
unsupported codecs each get their own error class naming the item and the reason.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from earmark.errors import (
    CorruptAudioError,
    EmptyInputError,
    NotAudioError,
    ParameterError,
    UnsupportedCodecError,
)

log = logging.getLogger(__name__)

AudioSource = str | os.PathLike | bytes | bytearray | memoryview

#: File name extensions of audio and video files (lower case, with the dot).
AUDIO_EXTENSIONS = frozenset(
    ".wav .flac .mp3 .ogg .oga .opus .m4a .aac .mp4 .webm .mkv .wma .aif .aiff .mka".split()
)

#: Decoded audio shorter than this share of the duration the container declares is "truncated".
TRUNCATION_RATIO = 0.5
#: Declared durations below this many seconds are not trusted for the truncation check.
TRUNCATION_MIN_DECLARED_S = 2.0


def source_name(source: AudioSource, name: str | None = None) -> str:
    """A human-readable name for an input, for error messages and reports."""
    if name:
        return name
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return os.fspath(source)


@dataclass(frozen=True)
class Audio:
    """Mono audio at a known rate.

    Attributes
    ----------
    samples : np.ndarray, shape (n,), float32, read-only
        Samples in [-1, 1].
    sr : int
        Sample rate in Hz.
    source : str
        Where the audio came from (path or item name).
    """

    samples: np.ndarray
    sr: int
    source: str = ""

    def __post_init__(self) -> None:
        s = np.asarray(self.samples, dtype=np.float32)
        if s.ndim != 1:
            raise ParameterError(f"Audio.samples must be 1-D, got shape {s.shape}")
        if self.sr <= 0:
            raise ParameterError(f"Audio.sr={self.sr} must be positive")
        if s is self.samples and s.flags.writeable:
            s = s.copy()
        s.setflags(write=False)
        object.__setattr__(self, "samples", s)

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return len(self.samples) / self.sr


@dataclass(frozen=True)
class StreamInfo:
    """What the container says about the audio stream that is being decoded."""

    container: str
    codec: str
    source_sr: int
    source_channels: int
    declared_duration: float | None  # seconds, None when the container does not say


def _samples(frame: av.AudioFrame) -> np.ndarray:
    """The float32 samples of a packed mono frame, read from its buffer (a third of the cost of
    ``to_ndarray``, which a scan pays some forty times per second of audio)."""
    return np.frombuffer(frame.planes[0], dtype=np.float32, count=frame.samples)


#: Decoded frames are resampled in batches of about this many source samples: one resampler call
#: per few hundred milliseconds instead of one per codec frame (mp3's are 1,152 samples), which
#: halves the resampler's cost. The resampler is a stream filter, so its output does not depend on
#: how the input is cut (a test pins batched output equal to frame-by-frame output).
RESAMPLE_BATCH = 16384


class _FrameBatch:
    """Consecutive decoded frames of one format, layout and rate, joined into one frame."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.n_samples = 0
        self.shape: tuple[str, str, int] | None = None

    def fits(self, frame: av.AudioFrame) -> bool:
        return self.shape is None or self.shape == (frame.format.name, frame.layout.name, frame.sample_rate)

    def add(self, frame: av.AudioFrame) -> None:
        self.shape = (frame.format.name, frame.layout.name, frame.sample_rate)
        self.parts.append(frame.to_ndarray())
        self.n_samples += frame.samples

    def take(self) -> av.AudioFrame | None:
        if not self.parts or self.shape is None:
            return None
        fmt, layout, rate = self.shape
        # planar: (channels, samples); packed: (1, samples * channels); either way along axis 1
        joined = np.concatenate(self.parts, axis=1) if len(self.parts) > 1 else self.parts[0]
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(joined), format=fmt, layout=layout)
        frame.sample_rate = rate
        self.parts, self.n_samples = [], 0
        return frame


def _resampled(resampler: av.AudioResampler, frame: av.AudioFrame | None) -> Iterator[np.ndarray]:
    """The resampler's output for a batch (nothing for an empty one)."""
    if frame is not None:
        for out in resampler.resample(frame):
            yield _samples(out)


@dataclass
class AudioStream:
    """An open decoding stream: ``info`` up front, ``blocks()`` yields float32 mono blocks.

    Use as a context manager so the container is closed. After the blocks are exhausted,
    ``decoded_samples`` holds the number of samples produced.
    """

    info: StreamInfo
    sr: int
    name: str
    block_samples: int
    _container: av.container.InputContainer
    _stream: av.audio.stream.AudioStream
    decoded_samples: int = field(default=0)

    def __enter__(self) -> AudioStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def _frames(self) -> Iterator[np.ndarray]:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=self.sr)
        n_packets_failed = 0
        n_frames = 0
        batch = _FrameBatch()
        try:
            for packet in self._container.demux(self._stream):
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError as e:
                    # A damaged packet in an otherwise good file: FFmpeg conceals it, so do we,
                    # but a file made of nothing else is corrupt.
                    n_packets_failed += 1
                    log.debug("%s: skipped undecodable packet: %s", self.name, e)
                    continue
                for frame in frames:
                    n_frames += 1
                    if not batch.fits(frame):
                        yield from _resampled(resampler, batch.take())
                    batch.add(frame)
                    if batch.n_samples >= RESAMPLE_BATCH:
                        yield from _resampled(resampler, batch.take())
            yield from _resampled(resampler, batch.take())
            for out in resampler.resample(None):  # the resampler's delay line
                yield _samples(out)
        except av.error.FFmpegError as e:
            raise CorruptAudioError(self.name, f"decoding failed: {e}") from e
        if n_frames == 0:
            why = "no audio could be decoded"
            if n_packets_failed:
                why += f" ({n_packets_failed} damaged packets)"
            raise CorruptAudioError(self.name, why + ": truncated or corrupt")

    def blocks(self) -> Iterator[np.ndarray]:
        """Yield float32 mono blocks of ``block_samples`` samples (the last one may be shorter)."""
        pending: list[np.ndarray] = []
        n_pending = 0
        for chunk in self._frames():
            pending.append(chunk)
            n_pending += len(chunk)
            while n_pending >= self.block_samples:
                joined = np.concatenate(pending)
                block, rest = joined[: self.block_samples], joined[self.block_samples :]
                self.decoded_samples += len(block)
                yield np.ascontiguousarray(block, dtype=np.float32)
                pending, n_pending = ([rest], len(rest)) if len(rest) else ([], 0)
        if n_pending:
            block = np.concatenate(pending).astype(np.float32, copy=False)
            self.decoded_samples += len(block)
            yield block
        declared = self.info.declared_duration
        got = self.decoded_samples / self.sr
        if declared and declared >= TRUNCATION_MIN_DECLARED_S and got < TRUNCATION_RATIO * declared:
            raise CorruptAudioError(
                self.name, f"truncated: decoded {got:.2f} s of the {declared:.2f} s the container declares"
            )


def open_stream(
    source: AudioSource, *, sr: int, name: str | None = None, block_seconds: float = 10.0
) -> AudioStream:
    """Open ``source`` for decoding to mono float32 at ``sr`` Hz in blocks of ``block_seconds``.

    Parameters
    ----------
    source : path or bytes
        A file path, or the complete bytes of a media file.
    sr : int
        Output sample rate in Hz.
    name : str, optional
        Name used in errors (defaults to the path).
    block_seconds : float
        Block length in seconds; memory use is bounded by it, not by the file's length.

    Raises
    ------
    EmptyInputError, NotAudioError, CorruptAudioError, UnsupportedCodecError
    """
    if sr <= 0:
        raise ParameterError(f"sr={sr} must be positive")
    label = source_name(source, name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise EmptyInputError(label, "empty input (0 bytes)")
        fobj: object = io.BytesIO(bytes(source))
    else:
        path = Path(os.fspath(source))
        try:
            size = path.stat().st_size
        except OSError as e:
            raise NotAudioError(label, f"cannot read file: {e.strerror or e}") from e
        if path.is_dir():
            raise NotAudioError(label, "is a directory")
        if size == 0:
            raise EmptyInputError(label, "empty file (0 bytes)")
        fobj = str(path)
    try:
        container = av.open(fobj, mode="r", metadata_errors="ignore")
    except av.error.InvalidDataError as e:
        raise NotAudioError(label, "not a recognised audio or video file") from e
    except av.error.FFmpegError as e:
        raise NotAudioError(label, f"cannot open as media: {e}") from e
    try:
        if not container.streams.audio:
            raise NotAudioError(label, "no audio stream in the file")
        stream = container.streams.audio[0]
        ctx = stream.codec_context
        if ctx is None or not getattr(ctx, "codec", None):
            raise UnsupportedCodecError(label, "audio codec not supported by the bundled FFmpeg")
        declared = None
        if stream.duration is not None and stream.time_base is not None:
            declared = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            declared = container.duration / 1_000_000
        info = StreamInfo(
            container=container.format.name,
            codec=ctx.codec.name,
            source_sr=int(ctx.sample_rate or 0),
            source_channels=int(ctx.channels or 0),
            declared_duration=declared,
        )
        if info.source_sr <= 0:
            raise CorruptAudioError(label, "audio stream has no sample rate")
    except BaseException:
        container.close()
        raise
    block = max(1, int(round(block_seconds * sr)))
    return AudioStream(
        info=info, sr=sr, name=label, block_samples=block, _container=container, _stream=stream
    )


def decode(source: AudioSource, *, sr: int, name: str | None = None) -> Audio:
    """Decode a whole input to mono float32 at ``sr`` Hz.

    For long inputs prefer :func:`open_stream`, which bounds memory by the block size.
    """
    with open_stream(source, sr=sr, name=name) as st:
        blocks = list(st.blocks())
    samples = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    return Audio(samples=samples, sr=sr, source=st.name)


def decoder_versions() -> dict[str, str]:
    """Versions of the decoding libraries, for evidence manifests."""
    libs = {k: ".".join(map(str, v)) for k, v in av.library_versions.items()}
    return {"pyav": av.__version__, **libs}
