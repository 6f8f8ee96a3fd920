"""earmark.audio: decoding any container to mono float32 at a chosen rate, streaming, typed errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FFMPEG, SR, ffmpeg_encode, write_audio

from earmark import synth
from earmark.audio import Audio, decode, open_stream
from earmark.errors import (
    CorruptAudioError,
    DecodeError,
    EmptyInputError,
    NotAudioError,
    ParameterError,
)

DURATION = 6.0


@pytest.fixture(scope="module")
def clip_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "clip.wav"
    synth.write_wav(path, synth.song(3, duration=DURATION, sr=SR), SR)
    return path


@pytest.fixture(scope="module")
def encoded(clip_wav: Path) -> dict[str, Path]:
    """The clip in every container/codec the tests decode (ffmpeg), plus a video file."""
    out = {"wav": clip_wav}
    for ext in ("flac", "mp3", "ogg", "opus", "m4a"):
        out[ext] = ffmpeg_encode(clip_wav, clip_wav.with_suffix(f".{ext}"))
    # a video container: a tiny black VP8 picture stream first, then the clip as Opus
    webm = clip_wav.with_name("clip.webm")
    subprocess.run(
        [FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", f"color=c=black:s=32x32:r=5:d={DURATION}", "-i", str(clip_wav), "-shortest",
         "-map", "0:v", "-map", "1:a", "-c:v", "libvpx", "-c:a", "libopus", str(webm)],
        check=True, capture_output=True,
    )
    out["webm"] = webm
    mkv = clip_wav.with_name("clip.mkv")
    subprocess.run(
        [FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", f"color=c=black:s=32x32:r=5:d={DURATION}", "-i", str(clip_wav), "-shortest",
         "-map", "0:v", "-map", "1:a", "-c:v", "mpeg4", "-c:a", "aac", str(mkv)],
        check=True, capture_output=True,
    )
    out["mkv"] = mkv
    return out


# Codecs with encoder delay/padding (AAC, Opus) may add a few tens of milliseconds.
@pytest.mark.parametrize(
    ("ext", "codec"),
    [("wav", "pcm_s16le"), ("flac", "flac"), ("mp3", "mp3"), ("ogg", "vorbis"),
     ("opus", "opus"), ("m4a", "aac"), ("webm", "opus"), ("mkv", "aac")],
)
@pytest.mark.parametrize("sr", [11025, 16000])
def test_decode_every_format_to_mono_float32(encoded, ext, codec, sr):
    audio = decode(encoded[ext], sr=sr)
    assert isinstance(audio, Audio)
    assert audio.sr == sr
    assert audio.samples.dtype == np.float32
    assert audio.samples.ndim == 1
    assert audio.duration == pytest.approx(DURATION, abs=0.1)
    assert not audio.samples.flags.writeable
    assert 0.3 < np.abs(audio.samples).max() <= 1.0
    with open_stream(encoded[ext], sr=sr) as st:
        assert st.info.codec.startswith(codec)
        assert st.info.source_channels == 1


@pytest.mark.parametrize(("ext", "codec"), [("webm", "opus"), ("mkv", "aac")])
def test_video_container_uses_its_audio_stream(encoded, ext, codec):
    """The video stream comes first; decoding takes the audio and matches the wav's content."""
    with open_stream(encoded[ext], sr=11025) as st:
        assert "matroska" in st.info.container
        assert st.info.codec == codec
    ref = decode(encoded["wav"], sr=11025).samples
    got = decode(encoded[ext], sr=11025).samples
    # encoder delay (Opus pre-skip, AAC priming) may shift the audio: find the lag, then compare
    seg = ref[11025:22050]
    lags = range(-2205, 2206)
    scores = [float(seg @ got[11025 + lag : 22050 + lag]) for lag in lags]
    lag = lags[int(np.argmax(scores))]
    assert abs(lag) < 2205 // 2
    n = min(len(ref), len(got) - lag) - 11025
    a, b = ref[11025 : 11025 + n], got[11025 + lag : 11025 + lag + n]
    assert np.corrcoef(a, b)[0, 1] > 0.95


@pytest.mark.parametrize("ext", ["wav", "flac", "mp3", "ogg", "opus", "m4a", "webm", "mkv"])
def test_decode_from_bytes_equals_decode_from_path(encoded, ext):
    path = encoded[ext]
    from_path = decode(path, sr=11025)
    from_bytes = decode(path.read_bytes(), sr=11025)
    np.testing.assert_array_equal(from_bytes.samples, from_path.samples)
    assert from_bytes.source == f"<{path.stat().st_size} bytes>"
    assert decode(path.read_bytes(), sr=11025, name="item-7").source == "item-7"


def test_wav_at_its_own_rate_is_the_written_samples(tmp_path):
    """No resampling: the decoded samples are the 16-bit values written, within one LSB."""
    x = synth.tone(440.0, duration=1.0, sr=SR)
    path = write_audio(tmp_path / "tone.wav", x)
    got = decode(path, sr=SR).samples
    assert len(got) == len(x)
    np.testing.assert_allclose(got, x, atol=2 / 32768)


def test_resampled_tone_keeps_its_frequency(tmp_path):
    """One sinusoid in, one spectral peak out at the same frequency, whatever the output rate."""
    path = write_audio(tmp_path / "tone.wav", synth.tone(1000.0, duration=2.0, sr=SR))
    for sr in (8000, 11025, 44100):
        s = decode(path, sr=sr).samples
        spec = np.abs(np.fft.rfft(s * np.hanning(len(s))))
        peak_hz = np.argmax(spec) * sr / len(s)
        assert peak_hz == pytest.approx(1000.0, abs=1.0)
        assert len(s) == pytest.approx(2.0 * sr, abs=2)


def test_stereo_is_downmixed_to_mono(tmp_path):
    x = synth.tone(440.0, duration=1.0, sr=SR)
    silent_right = np.stack([x, np.zeros_like(x)], axis=1)
    path = write_audio(tmp_path / "stereo.wav", silent_right)
    with open_stream(path, sr=SR) as st:
        assert st.info.source_channels == 2
        mono = np.concatenate(list(st.blocks()))
    assert mono.ndim == 1 and len(mono) == len(x)
    # whatever the downmix gain, the result is proportional to the left channel
    gain = float(mono @ x / (x @ x))
    assert 0.3 < gain <= 1.0
    np.testing.assert_allclose(mono, gain * x, atol=1e-3)


# ------------------------------------------------------------------------------- errors
def test_empty_file_is_empty_input(tmp_path):
    p = tmp_path / "empty.mp3"
    p.write_bytes(b"")
    with pytest.raises(EmptyInputError, match="empty file") as info:
        decode(p, sr=11025)
    assert info.value.kind == "empty"
    assert info.value.source == str(p)


def test_empty_bytes_are_empty_input():
    with pytest.raises(EmptyInputError, match=r"<0 bytes>: empty input"):
        decode(b"", sr=11025)


def test_text_file_named_mp3_is_not_audio(tmp_path):
    p = tmp_path / "lyrics.mp3"
    p.write_text("This is not an MP3 file, just some text.\n" * 20)
    with pytest.raises(NotAudioError, match="not a recognised audio or video file"):
        decode(p, sr=11025)


def test_random_bytes_after_riff_are_not_audio(tmp_path, rng):
    p = tmp_path / "fake.wav"
    p.write_bytes(b"RIFF" + rng.bytes(4000))
    with pytest.raises(NotAudioError, match=r"fake\.wav: not a recognised"):
        decode(p, sr=11025)
    with pytest.raises(NotAudioError):
        decode(p.read_bytes(), sr=11025)


def test_directory_and_missing_file_are_not_audio(tmp_path):
    with pytest.raises(NotAudioError, match="is a directory"):
        decode(tmp_path, sr=11025)
    with pytest.raises(NotAudioError, match="cannot read file"):
        decode(tmp_path / "missing.wav", sr=11025)


def test_truncated_mp3_first_400_bytes_is_a_decode_error(encoded, tmp_path):
    p = tmp_path / "cut.mp3"
    p.write_bytes(encoded["mp3"].read_bytes()[:400])
    with pytest.raises(DecodeError, match=r"cut\.mp3: (not a recognised|truncated|no audio)") as info:
        decode(p, sr=11025)
    assert info.value.kind in ("not_audio", "corrupt")


def test_half_an_mp3_is_reported_truncated(encoded, tmp_path):
    """The container declares 6 s (Xing header) but only half the frames are there."""
    data = encoded["mp3"].read_bytes()
    p = tmp_path / "half.mp3"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptAudioError, match=r"truncated: decoded \d+\.\d+ s of the 6\.\d+ s"):
        decode(p, sr=11025)


def test_bad_rate_is_a_parameter_error(clip_wav):
    with pytest.raises(ParameterError, match="sr=0 must be positive"):
        open_stream(clip_wav, sr=0)


# ------------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("ext", ["wav", "mp3", "ogg"])
@pytest.mark.parametrize("block_seconds", [0.37, 1.0, 2.5])
def test_stream_blocks_have_the_block_size_and_concatenate_to_the_decode(encoded, ext, block_seconds):
    full = decode(encoded[ext], sr=11025).samples
    with open_stream(encoded[ext], sr=11025, block_seconds=block_seconds) as st:
        assert st.block_samples == int(round(block_seconds * 11025))
        blocks = list(st.blocks())
        assert st.decoded_samples == len(full)
    assert all(b.dtype == np.float32 and b.ndim == 1 for b in blocks)
    assert {len(b) for b in blocks[:-1]} == {st.block_samples}
    assert 0 < len(blocks[-1]) <= st.block_samples
    np.testing.assert_array_equal(np.concatenate(blocks), full)


def _frame_by_frame(path: Path, sr: int) -> np.ndarray:
    """Reference: every decoded frame through the resampler on its own."""
    import av

    out = []
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
        for packet in container.demux(container.streams.audio[0]):
            for frame in packet.decode():
                out += [o.to_ndarray()[0] for o in resampler.resample(frame)]
        out += [o.to_ndarray()[0] for o in resampler.resample(None)]
    return np.concatenate(out)


@pytest.mark.parametrize("ext", ["wav", "flac", "mp3", "ogg", "m4a"])  # packed s16, planar float, ...
@pytest.mark.parametrize("batch", [1, 3000, 16384, 10**6])
def test_batched_resampling_equals_frame_by_frame(encoded, ext, batch, tmp_path, monkeypatch):
    stereo = tmp_path / f"stereo.{ext}"
    subprocess.run([FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-i", str(encoded[ext]),
                    "-af", "pan=stereo|c0=c0|c1=-0.5*c0", "-ar", "22050", str(stereo)],
                   check=True, capture_output=True)
    monkeypatch.setattr(sys.modules["earmark.audio.decode"], "RESAMPLE_BATCH", batch)
    for path in (encoded[ext], stereo):
        np.testing.assert_array_equal(decode(path, sr=11025).samples, _frame_by_frame(path, 11025))


def test_audio_value_is_read_only_and_validated():
    a = Audio(samples=np.zeros(10, np.float32), sr=8000)
    assert a.duration == pytest.approx(10 / 8000)
    with pytest.raises(ValueError, match="read-only"):
        a.samples[0] = 1.0
    with pytest.raises(ParameterError, match="1-D"):
        Audio(samples=np.zeros((2, 2), np.float32), sr=8000)
    with pytest.raises(ParameterError, match="must be positive"):
        Audio(samples=np.zeros(2, np.float32), sr=0)
