"""Audio in: decode any common container/codec to mono float32 at a chosen rate, streaming."""

from earmark.audio.decode import (
    AUDIO_EXTENSIONS,
    Audio,
    AudioSource,
    StreamInfo,
    decode,
    decoder_versions,
    open_stream,
    source_name,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "Audio",
    "AudioSource",
    "StreamInfo",
    "decode",
    "decoder_versions",
    "open_stream",
    "source_name",
]
