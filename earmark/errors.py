"""The one exception hierarchy of earmark.

Every error the library raises on purpose is an :class:`EarmarkError`. Third-party errors are
wrapped (``raise ... from e``) so callers need to catch only these.
"""

from __future__ import annotations


class EarmarkError(Exception):
    """Root of every error earmark raises on purpose."""


class DecodeError(EarmarkError):
    """An input could not be decoded as audio. ``source`` names the item, ``reason`` says why."""

    kind = "decode"

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class EmptyInputError(DecodeError):
    """The input has no bytes at all."""

    kind = "empty"


class NotAudioError(DecodeError):
    """The input is not a media file any decoder recognises, or it holds no audio stream."""

    kind = "not_audio"


class CorruptAudioError(DecodeError):
    """The input looks like audio but is truncated or damaged beyond decoding."""

    kind = "corrupt"


class UnsupportedCodecError(DecodeError):
    """The container is readable but its audio codec is not supported."""

    kind = "unsupported_codec"


class ParameterError(EarmarkError):
    """A parameter value is out of range or inconsistent."""


class ParamsMismatchError(EarmarkError):
    """Fingerprints or an index were made with other parameters than the ones in force."""


class CatalogueError(EarmarkError):
    """A catalogue cannot be opened, read or changed."""


class MetadataError(CatalogueError):
    """A metadata file (e.g. a catalogue CSV) is malformed."""


class ScanError(EarmarkError):
    """A scan cannot run at all (bad arguments, unreadable output directory, ...)."""
