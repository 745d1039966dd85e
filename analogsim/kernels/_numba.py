"""The one place where numba options are set; every kernel module imports its decorators here.

* ``cache=True``: compiled kernels are written next to the sources (``__pycache__``) so a
  test run or a sweep worker compiles each kernel once, not once per process.
* ``fastmath`` is off: kernels are checked bit-for-bit against NumPy twins, and reassociation
  would make results depend on vector width.
* ``parallel=True`` only on drivers that loop over independent rows/samples with ``prange``;
  every random number is drawn from a counter-based generator keyed by (seed, call, element),
  so results do not depend on the thread count. Each driver also has a serial build
  (``driver.serial``, see :func:`pick`): starting the thread pool costs ~5 µs per call,
  more than the whole work of a small call.
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
import types
from collections.abc import Iterator

import numba
from threadpoolctl import threadpool_limits

__all__ = ["jit", "pjit", "pick", "prange", "row_groups", "set_threads", "get_threads",
           "kernel_threads"]

CACHE = os.environ.get("ANALOGSIM_NUMBA_CACHE", "1") != "0"
FASTMATH = False

prange = numba.prange


def jit(fn=None, **extra):
    """Serial nopython kernel with the project's options (``inline`` etc. via ``extra``)."""
    opts = {"cache": CACHE, "fastmath": FASTMATH, "nogil": True, **extra}
    return numba.njit(**opts) if fn is None else numba.njit(**opts)(fn)


def pjit(fn=None, **extra):
    """Parallel nopython driver (uses ``prange``) with the project's options.

    The returned dispatcher carries ``.serial``: the same code compiled without
    ``parallel`` (``prange`` runs as ``range``), cached under its own name.
    """
    opts = {"cache": CACHE, "fastmath": FASTMATH, "nogil": True, **extra}

    def build(f):
        par = numba.njit(parallel=True, **opts)(f)
        twin = types.FunctionType(f.__code__, f.__globals__, f.__name__, f.__defaults__,
                                  f.__closure__)
        twin.__qualname__ = f"{f.__qualname__}__serial"
        twin.__module__, twin.__doc__ = f.__module__, f.__doc__
        par.serial = numba.njit(**opts)(twin)
        return par
    return build if fn is None else build(fn)


# Elements of work below which a driver runs serially (≈ 30-100 µs of work: the parallel
# start and join cost ~5 µs, and a second thread only halves what is left).
SERIAL_WORK = 1 << 16


def pick(driver, work: int):
    """``driver`` itself for ``work`` ≥ :data:`SERIAL_WORK` elements, else ``driver.serial``."""
    return driver if work >= SERIAL_WORK else driver.serial


def row_groups(n: int) -> int:
    """Number of groups a parallel driver splits ``n`` rows into (``≤ 4 × threads``).

    A driver loops ``prange`` over groups and allocates its scratch buffers once per group
    rather than once per row (an allocation costs ~0.1 µs, a row of a small layer ~1 µs).
    Rows stay independent, so results do not depend on the grouping or the thread count.
    Computed in Python and passed in: a jitted ``get_num_threads`` would keep the driver
    out of the on-disk cache.
    """
    return max(1, min(n, 4 * numba.get_num_threads()))


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
