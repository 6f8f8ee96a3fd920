"""The maximum-sum run both matchers use to trim spans, against a brute-force reference."""

from __future__ import annotations

import numpy as np

from earmark.match.runs import max_subarray


def _brute(x: list[int]) -> tuple[int, int]:
    """Best sum; among runs with it the one ending first, and of those the shortest."""
    runs = [(sum(x[a:b]), b, a) for b in range(1, len(x) + 1) for a in range(b)]
    best = max(s for s, _, _ in runs)
    b = min(b for s, b, _ in runs if s == best)
    a = max(a for s, bb, a in runs if s == best and bb == b)
    return a, b


def test_max_subarray_matches_brute_force_including_ties():
    rng = np.random.default_rng(11)
    for _ in range(3000):
        x = rng.integers(-3, 4, size=int(rng.integers(1, 25))).tolist()
        assert max_subarray(np.array(x, dtype=float)) == _brute(x), x


def test_max_subarray_known_answers():
    assert max_subarray(np.array([-1.0, 2.0, 3.0, -9.0, 4.0])) == (1, 3)
    assert max_subarray(np.array([-3.0, -1.0, -2.0])) == (1, 2)  # all negative: the largest element
    assert max_subarray(np.array([0.0, 0.0, 5.0, 0.0])) == (2, 3)  # zero-sum edges are not included
    assert max_subarray(np.zeros(0)) == (0, 0)
