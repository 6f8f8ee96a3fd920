"""Chromaprint sub-fingerprints through pyacoustid's binding of the system libchromaprint.

We feed decoded PCM to the library ourselves (no ``fpcalc``, no 120-second limit) and read the raw
32-bit items. An item is produced every ``HOP`` samples at 11025 Hz (about 0.124 s); each one
summarises the chroma of roughly 2.3 s of audio starting at its own time, so item times are
comparable between a recording and a copy of it.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable
from dataclasses import dataclass

import chromaprint
import numpy as np

from earmark.errors import EarmarkError, ParameterError
from earmark.fingerprint.base import Fingerprint, params_id

FAMILY = "chromaprint"
#: libchromaprint's internal rate: feeding it this rate skips its own resampler.
SAMPLE_RATE = 11025
#: Samples between items: FRAME_SIZE 4096 with an overlap of FRAME_SIZE - FRAME_SIZE / 3.
HOP = 1365
FRAME_SIZE = 4096
#: Frames of context behind one item (chroma filter + widest classifier): used for the silence mask.
ITEM_SPAN_FRAMES = 19
#: The item libchromaprint emits for digital silence.
SILENCE_CODE = 627964279

_lib = chromaprint._libchromaprint
_lib.chromaprint_get_raw_fingerprint.argtypes = (
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.POINTER(ctypes.c_uint32)),
    ctypes.POINTER(ctypes.c_int),
)
_lib.chromaprint_get_raw_fingerprint.restype = ctypes.c_int


@dataclass(frozen=True)
class ChromaprintConfig:
    """Parameters of the Chromaprint family.

    Attributes
    ----------
    algorithm : int
        libchromaprint algorithm id (1 = ``CHROMAPRINT_ALGORITHM_TEST2``, the library default).
    silence_dbfs : float
        Items whose whole span is quieter than this RMS level (dBFS) are marked inactive.
    """

    algorithm: int = 1
    silence_dbfs: float = -60.0

    def __post_init__(self) -> None:
        if self.algorithm not in (0, 1, 2, 3, 4):
            raise ParameterError(f"algorithm={self.algorithm} must be one of libchromaprint's 0..4")

    @property
    def params_id(self) -> str:
        return params_id(FAMILY, self)

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def item_duration(self) -> float:
        return HOP / SAMPLE_RATE


def library_version() -> str:
    """The libchromaprint version string."""
    return _lib.chromaprint_get_version().decode()


def _raw_fingerprint(ctx: ctypes.c_void_p) -> np.ndarray:
    ptr = ctypes.POINTER(ctypes.c_uint32)()
    size = ctypes.c_int()
    if _lib.chromaprint_get_raw_fingerprint(ctx, ctypes.byref(ptr), ctypes.byref(size)) != 1:
        raise EarmarkError("libchromaprint could not return the raw fingerprint")
    try:
        if not size.value:
            return np.zeros(0, np.uint32)
        return np.ctypeslib.as_array(ptr, shape=(size.value,)).copy()
    finally:
        _lib.chromaprint_dealloc(ptr)


def extract_blocks(blocks: Iterable[np.ndarray], config: ChromaprintConfig) -> Fingerprint:
    """Fingerprint a stream of mono float32 blocks at :data:`SAMPLE_RATE` Hz.

    Parameters
    ----------
    blocks : iterable of np.ndarray, float32, shape (m,)
        Consecutive mono blocks at 11025 Hz, values in [-1, 1]. Only one block is held at a time.
    config : ChromaprintConfig

    Returns
    -------
    Fingerprint
        Raw 32-bit items of the whole stream, with a mask of non-silent items.
    """
    fp = chromaprint.Fingerprinter(config.algorithm)
    fp.start(SAMPLE_RATE, 1)
    energies: list[np.ndarray] = []  # per-hop sum of squares
    carry = np.zeros(0, np.float32)
    n_samples = 0
    for block in blocks:
        block = np.asarray(block, dtype=np.float32)
        n_samples += len(block)
        pcm = np.clip(np.round(block * 32767.0), -32768, 32767).astype("<i2")
        fp.feed(pcm.tobytes())
        carry = np.concatenate([carry, block])
        whole = len(carry) // HOP * HOP
        if whole:
            frames = carry[:whole].reshape(-1, HOP).astype(np.float64)
            energies.append(np.square(frames).sum(axis=1))
            carry = carry[whole:]
    if len(carry):
        c = carry.astype(np.float64)
        energies.append(np.array([float(np.square(c).sum())]))
    fp.finish()
    codes = _raw_fingerprint(fp._ctx)
    hop_energy = np.concatenate(energies) if energies else np.zeros(0)
    active = _active_mask(codes, hop_energy, config)
    return Fingerprint(
        family=FAMILY,
        params_id=config.params_id,
        codes=codes,
        active=active,
        item_duration=config.item_duration,
        duration=n_samples / SAMPLE_RATE,
    )


def extract(samples: np.ndarray, config: ChromaprintConfig, *, block: int = SAMPLE_RATE * 10) -> Fingerprint:
    """Fingerprint a mono float32 array at :data:`SAMPLE_RATE` Hz (see :func:`extract_blocks`)."""
    samples = np.asarray(samples, dtype=np.float32)
    return extract_blocks((samples[i : i + block] for i in range(0, len(samples), block)), config)


def _active_mask(codes: np.ndarray, hop_energy: np.ndarray, config: ChromaprintConfig) -> np.ndarray:
    """Items whose span holds any hop louder than ``silence_dbfs``, and that are not the silence code."""
    n = len(codes)
    if n == 0:
        return np.zeros(0, bool)
    rms = np.sqrt(hop_energy / HOP)
    loud = rms > 10 ** (config.silence_dbfs / 20)
    # item i covers hops i .. i + ITEM_SPAN_FRAMES + FRAME_SIZE / HOP (approx.)
    span = ITEM_SPAN_FRAMES + FRAME_SIZE // HOP
    c = np.concatenate([[0], np.cumsum(loud.astype(np.int64))])
    lo = np.minimum(np.arange(n), len(loud))
    hi = np.minimum(lo + span, len(loud))
    any_loud = (c[hi] - c[lo]) > 0
    return any_loud & (codes != SILENCE_CODE)
