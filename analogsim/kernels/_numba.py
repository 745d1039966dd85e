"""The one place where numba options are set; every kernel module imports its decorators here.

* ``cache=True``: compiled kernels are written next to the sources (``__pycache__``) so a
  test run or a sweep worker compiles each kernel once, not once per process.
* ``fastmath`` is off: kernels are checked bit-for-bit against NumPy twins, and reassociation
  would make results depend on vector width.
* ``parallel=True`` only on drivers that loop over independent rows/samples with ``prange``;
  every random number is drawn from a counter-based generator keyed by (seed, call, element),
  so results do not depend on the thread count.
* Set ``NUMBA_BOUNDSCHECK=1`` in the environment to run every kernel with bounds checking.
* :func:`kernel_threads` runs a block with BLAS limited to one thread. OpenBLAS worker
  threads spin for a while after each product; on a small machine they then compete with
  numba's threads for the same cores. Measured on 2 cores (784-256-256-10, DFA, one epoch of
  3500 samples, batch 256): 1.85 s with both pools at 2 threads, 0.69 s with numba at 1,
  0.38 s with BLAS at 1 — the training loop therefore runs inside ``kernel_threads()``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numba
from threadpoolctl import threadpool_limits

__all__ = ["jit", "pjit", "prange", "set_threads", "get_threads", "kernel_threads"]

CACHE = os.environ.get("ANALOGSIM_NUMBA_CACHE", "1") != "0"
FASTMATH = False

prange = numba.prange


def jit(fn=None, **extra):
    """Serial nopython kernel with the project's options (``inline`` etc. via ``extra``)."""
    opts = {"cache": CACHE, "fastmath": FASTMATH, "nogil": True, **extra}
    return numba.njit(**opts) if fn is None else numba.njit(**opts)(fn)


def pjit(fn=None, **extra):
    """Parallel nopython driver (uses ``prange``) with the project's options."""
    opts = {"cache": CACHE, "fastmath": FASTMATH, "nogil": True, "parallel": True, **extra}
    return numba.njit(**opts) if fn is None else numba.njit(**opts)(fn)


def set_threads(n: int) -> None:
    """Set the number of numba threads for parallel kernels (1 ≤ n ≤ NUMBA_NUM_THREADS)."""
    limit = numba.config.NUMBA_NUM_THREADS
    if not isinstance(n, int) or not 1 <= n <= limit:
        raise ValueError(f"threads = {n!r} is invalid; allowed: an integer in [1, {limit}]")
    numba.set_num_threads(n)


def get_threads() -> int:
    return numba.get_num_threads()


@contextlib.contextmanager
def kernel_threads(blas: int = 1) -> Iterator[None]:
    """Run a block with BLAS limited to ``blas`` threads (numba keeps its own count)."""
    with threadpool_limits(limits=blas, user_api="blas"):
        yield
