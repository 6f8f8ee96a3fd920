"""What every fingerprint family shares: the :class:`Fingerprint` value and parameter identities."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import numpy as np

from earmark.errors import ParameterError

#: Bumped whenever the meaning of stored fingerprints changes for every family.
FORMAT_VERSION = 1


def params_id(family: str, config: object) -> str:
    """A stable identity of ``family`` + format version + every field of a frozen config dataclass.

    Two fingerprints can be compared only if their ``params_id`` are equal.
    """
    fields = dataclasses.asdict(config)  # type: ignore[call-overload]
    blob = json.dumps(
        {"family": family, "format_version": FORMAT_VERSION, "params": fields}, sort_keys=True
    ).encode()
    return f"{family}-v{FORMAT_VERSION}-{hashlib.sha256(blob).hexdigest()[:16]}"


@dataclass(frozen=True)
class Fingerprint:
    """A sequence of fixed-rate codes for one piece of audio.

    Attributes
    ----------
    family : str
        Fingerprint family name (e.g. ``"chromaprint"``).
    params_id : str
        Identity of the parameters the codes were made with (see :func:`params_id`).
    codes : np.ndarray, shape (n,), uint32, read-only
        One code per item; item ``i`` starts at ``i * item_duration`` seconds.
    active : np.ndarray, shape (n,), bool, read-only
        False for items made of (near-)silence; they carry no evidence.
    item_duration : float
        Seconds between consecutive items.
    duration : float
        Seconds of audio the fingerprint was computed from.
    """

    family: str
    params_id: str
    codes: np.ndarray
    active: np.ndarray
    item_duration: float
    duration: float

    def __post_init__(self) -> None:
        codes = np.ascontiguousarray(self.codes, dtype=np.uint32)
        active = np.ascontiguousarray(self.active, dtype=bool)
        if codes.ndim != 1 or active.shape != codes.shape:
            raise ParameterError(
                f"codes {codes.shape} and active {active.shape} must be 1-D and of equal length"
            )
        if self.item_duration <= 0:
            raise ParameterError(f"item_duration={self.item_duration} must be positive")
        for name, arr in (("codes", codes), ("active", active)):
            if arr.flags.writeable:
                arr = arr.copy() if arr is getattr(self, name) else arr
                arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return len(self.codes)

    def item_time(self, idx: np.ndarray | int) -> np.ndarray | float:
        """Start time in seconds of item(s) ``idx``: the one place items become seconds."""
        return np.asarray(idx) * self.item_duration if not np.isscalar(idx) else idx * self.item_duration

    @property
    def n_active(self) -> int:
        return int(self.active.sum())
