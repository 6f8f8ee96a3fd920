"""Run-finding over per-item (or per-bin) evidence, shared by the matchers."""

from __future__ import annotations

import numpy as np


def max_subarray(x: np.ndarray) -> tuple[int, int]:
    """Bounds ``[a, b)`` of the maximum-sum contiguous subarray (one element when none is positive).

    Among runs of equal sum, the one ending first wins, and of those the shortest (the latest
    start): Kadane's scan, which restarts whenever its running sum is not positive. Vectorised over
    prefix sums: the best run ending at ``j`` starts just after the last minimum of the prefix sums
    before ``j``, where a run restarted after a single non-positive element counts as a minimum.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        return 0, 0
    # Kadane: run_j = x_j + max(run_{j-1}, 0); its start moves to j whenever run_{j-1} <= 0.
    # run_j = c_j - min(c_0..c_j) with c the prefix sums (c_0 = 0) where the minimum is taken with
    # ties going to the latest index -- exactly Kadane's restart-on-<=0 rule.
    c = np.concatenate([[0.0], np.cumsum(x)])
    prev = c[:-1]  # c_0 .. c_{n-1}: candidate starts for runs ending at 1..n
    run_min = np.minimum.accumulate(prev)
    # the latest index achieving the running minimum: positions where prev equals the running
    # minimum, carried forward
    at_min = np.where(prev <= run_min, np.arange(n), 0)
    start = np.maximum.accumulate(at_min)
    runs = c[1:] - run_min
    j = int(np.argmax(runs))  # the first end with the best sum
    return int(start[j]), j + 1
