"""The one timing helper every benchmark script uses (median of repeated wall times)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` calls after ``warmup`` calls.

    The warm-up calls compile or load numba kernels and start thread pools, so the median
    sees only steady-state calls; the median (not the mean) ignores the occasional
    descheduled call on a shared machine.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
