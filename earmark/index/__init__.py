"""Nearest-neighbour search over binary windows of fingerprint codes.

A *window* is ``width`` consecutive 32-bit Chromaprint items packed into one binary vector
(``width=8`` gives 256 bits, about one second). Two implementations share one small protocol:
:class:`FaissBinaryIndex` (the fast path) and :class:`BruteForceIndex` (the numpy reference the tests
compare it against).
"""

from earmark.index.binary import (
    BinaryIndex,
    BruteForceIndex,
    FaissBinaryIndex,
    Hits,
    pack_windows,
    window_ok,
)

__all__ = ["BinaryIndex", "BruteForceIndex", "FaissBinaryIndex", "Hits", "pack_windows", "window_ok"]
