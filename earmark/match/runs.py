"""Run-finding over per-item (or per-bin) evidence, shared by the matchers."""

from __future__ import annotations

import math

import numpy as np


def max_subarray(x: np.ndarray) -> tuple[int, int]:
    """Bounds ``[a, b)`` of the maximum-sum contiguous subarray (the first one on ties; one element
    when none is positive)."""
    best, best_a, best_b = -math.inf, 0, 0
    run, a = 0.0, 0
    for i, v in enumerate(np.asarray(x).tolist()):
        if run <= 0:
            run, a = v, i
        else:
            run += v
        if run > best:
            best, best_a, best_b = run, a, i + 1
    return best_a, best_b
