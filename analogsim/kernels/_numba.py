"""The one place where numba options are set; every kernel module imports its decorators here.

* ``cache=True``: compiled kernels are written next to the sources (``__pycache__``) so a
  test run or a sweep worker compiles each kernel once, not once per process; where that is
  not writable, to ``NUMBA_CACHE_DIR`` or a per-user directory (:mod:`._cache`).
* ``fastmath`` is off: kernels are checked bit-for-bit against NumPy twins, and reassociation
  would make results depend on vector width.
* ``parallel=True`` only on drivers that loop over independent rows/samples with ``prange``;
  every random number is drawn from a counter-based generator keyed by (seed, call, element),
  so results do not depend on the thread count. Each driver also has a serial build
  (``driver.serial``, see :func:`pick`): starting the thread pool costs ~5 µs per call,
  more than the whole work of a small call.
* Set ``NUMBA_BOUNDSCHECK=1`` in the environment to run every kernel with bounds checking.
* **BLAS threads.** The library's own BLAS products (the read's ``xq Wᵀ`` per input block,
  the expected update's ``Dᵀ X``, digital layers and feedback products) run with BLAS at
  one thread: :meth:`~analogsim.rules.Trainer.step` and the public ``CrossbarArray`` calls
  are wrapped in :func:`blas_single_thread`, whatever ``OPENBLAS_NUM_THREADS`` the user has.
  Measured on the project's 2-core machine (OpenBLAS 0.3.31 from the NumPy and SciPy
  wheels, Haswell kernels, pthreads; idle, load ≤ 1.3), for two reasons:

  - *bits*: OpenBLAS's float32 GEMM gives other last bits at 2 threads than at 1 (≈20 % of
    the outputs of a 64×256×256 or 64×784×256 product; the threaded path sums in another
    order). The ADC hides most of it, but now and then a read output lands on another
    level (in the case we traced, one of the 16 384 outputs of the first layer's read in
    the third step), and everything after it differs: ``ecram``, FA, 784-256-256-10,
    batch 64 — 9 % of the weights differed after 4 steps between
    ``OPENBLAS_NUM_THREADS=1`` and ``2``. Now bit-identical at 1 vs 2 BLAS threads and
    1 vs 2 numba threads (``tests/kernels/test_blas_threads.py``);
  - *time*: after a multi-threaded product OpenBLAS's workers spin for 2²⁸ cycles (≈0.1 s)
    waiting for the next one and take the cores numba's threads need. Unguarded, at 2 numba
    and 2 BLAS threads: ``mvm`` 784×256×128 8.0 ms against 0.78 ms at one BLAS thread
    (≈30 ms of CPU per call), a DFA step of 784-256-256-10 at batch 64 on
    ``aihwkit_default`` 16–21 ms against 6.2–9.3 ms (1.8–2.4×, 3× the CPU); the ``ecram``
    FA step above 23 ms against 9.6 ms. Guarded, the step at the default BLAS count is
    0.95–1.04× the step inside ``kernel_threads()`` (the runner's loop; one run of six
    1.25×), and ``mvm`` 0.97–1.04× (``benchmarks/bench_threads.py``).

  Alternatives measured: ``OPENBLAS_THREAD_TIMEOUT=4`` (the shortest spin) makes the
  unguarded step as fast as the guarded one on an idle machine (0.97–0.99×) but does not
  change the bits, helps little under load (a 2-thread product then waits for a
  descheduled worker: 80–88 ms steps at load 2.5–3), and OpenBLAS reads it only when it is
  loaded, i.e. when NumPy is imported, so only the user's environment can set it. Keeping
  BLAS calls out of numba's parallel regions: they already are (every product is issued
  from Python between kernel calls); the spin *after* the call is what competes, and the
  bits differ anyway. One BLAS thread loses BLAS's own parallelism on large products on
  machines with many cores (numba's kernels keep theirs); ``ANALOGSIM_BLAS_SINGLE_THREAD=0``
  (read at import) leaves BLAS alone, at the price of results that depend on its thread
  count.

  Cost: one outermost entry and exit ≈ 0.9 µs with BLAS already at one thread, ≈ 1.7 µs
  when it is not (one ``get`` and two ``set`` calls per loaded BLAS library through the
  ``ctypes`` handles found once, here NumPy's and SciPy's OpenBLAS), ≈ 0.5 µs nested (a
  step's ~25 array calls). threadpoolctl's ``threadpool_limits``, which ``kernel_threads``
  used, costs 0.8–0.9 ms per entry: it inspects every loaded library each time.
  :func:`kernel_threads` (``blas = 1``) is now the same mechanism; wrapping a whole loop in
  it still helps when the loop does its own multi-threaded BLAS work between library calls
  (the workers would otherwise spin into the next call).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import sys
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numba
from threadpoolctl import ThreadpoolController

from . import _cache

__all__ = ["jit", "pjit", "pick", "prange", "row_groups", "set_threads", "get_threads",
           "kernel_threads", "blas_single_thread", "BLAS_SINGLE_THREAD", "when_compiling"]

F = TypeVar("F", bound=Callable[..., Any])

#: Whether kernels are cached on disk, and where (:mod:`._cache`: a read-only install falls
#: back to a per-user or temporary directory, or to no cache with one warning).
_HERE = os.path.dirname(os.path.abspath(__file__))  # as numba's locators see the sources
CACHE = _cache.configure(numba.config, Path(_HERE) / "__pycache__")
if CACHE:  # numba does not see changes in other modules' helpers: drop kernels built on old ones
    _cache.purge_stale(_cache.kernel_cache_dir(numba.config.CACHE_DIR, _HERE),
                       _cache.source_salt(Path(_HERE)))
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
    """``driver`` itself for ``work`` ≥ :data:`SERIAL_WORK` elements with more than one
    numba thread, else ``driver.serial``.

    At one thread the parallel build only adds the pool's start and join, and its
    ``prange`` body can compile to slower code than the serial build (``_pack_columns``
    at 64 × 784, ``bl`` 31: 0.88-0.99 ms against 0.45-0.69 ms serial, one run).
    """
    return driver if work >= SERIAL_WORK and numba.get_num_threads() > 1 else driver.serial


def pick_groups(driver, work: int, n: int) -> tuple:
    """``(build, n_groups)`` for a driver that loops ``prange`` over groups of ``n`` rows:
    :func:`pick`'s build, with one group for the serial build and :func:`row_groups`
    groups for the parallel one."""
    build = pick(driver, work)
    return build, 1 if build is driver.serial else row_groups(n)


def row_groups(n: int) -> int:
    """Number of groups a parallel driver splits ``n`` rows into (``≤ 4 × threads``).

    A driver loops ``prange`` over groups and allocates its scratch buffers once per group
    rather than once per row (an allocation costs ~0.1 µs, a row of a small layer ~1 µs).
    Rows stay independent, so results do not depend on the grouping or the thread count.
    Computed in Python and passed in: a jitted ``get_num_threads`` would keep the driver
    out of the on-disk cache.
    """
    return max(1, min(n, 4 * numba.get_num_threads()))


@contextlib.contextmanager
def when_compiling(callback: Callable[[], None]):
    """Call ``callback()`` once, at the first kernel compilation inside the block.

    numba announces a compilation (its ``numba:compile`` event) only on a cache miss — a
    kernel found in the on-disk cache is loaded without one — so the callback runs exactly
    when a first run (or a run after a code change, or without a cache) starts compiling,
    and never on a warm cache. It is how ``analogsim train`` prints its one-line
    "compiling kernels" notice. Thread-safe; the listener is removed on exit.
    """
    from numba.core import event

    fired = threading.Event()

    class _Listener(event.Listener):
        def on_start(self, ev) -> None:
            if not fired.is_set():
                fired.set()
                callback()

        def on_end(self, ev) -> None:
            pass

    listener = _Listener()
    event.register("numba:compile", listener)
    try:
        yield
    finally:
        event.unregister("numba:compile", listener)


def set_threads(n: int) -> None:
    """Set the number of numba threads for parallel kernels (1 ≤ n ≤ NUMBA_NUM_THREADS)."""
    limit = numba.config.NUMBA_NUM_THREADS
    if not isinstance(n, int) or not 1 <= n <= limit:
        raise ValueError(f"threads = {n!r} is invalid; allowed: an integer in [1, {limit}]")
    numba.set_num_threads(n)


def get_threads() -> int:
    return numba.get_num_threads()


# --------------------------------------------------------------------------- BLAS threads
# The library's own BLAS products (the read's ``xq Wᵀ``, the expected update's ``Dᵀ X``, the
# digital layers) run with OpenBLAS at one thread; see the module docstring for why and for
# the measured costs. OpenBLAS's count is process-wide, so the state below is too.

#: ``ANALOGSIM_BLAS_SINGLE_THREAD=0`` (read at import) makes :func:`blas_single_thread` a
#: no-op: BLAS keeps the process's thread count inside the library, and results then depend
#: on it. :func:`kernel_threads` always acts.
BLAS_SINGLE_THREAD = os.environ.get("ANALOGSIM_BLAS_SINGLE_THREAD", "1") != "0"

_OPENBLAS_AFFIXES = tuple(itertools.product(("", "scipy_"), ("", "64_", "_64")))


def _blas_handles() -> tuple[tuple[Callable[[], int], Callable[[int], object]], ...]:
    """``(get, set)`` thread-count functions of every loaded BLAS library (slow: ~0.3-1 ms).

    Found once by threadpoolctl. For OpenBLAS on its own threads (not OpenMP) the C
    functions are called directly: threadpoolctl ≥ 3.8 ignores ``set`` calls from any
    Python thread but the first one to set a limit, which would silently break the
    restore when the block is left from another thread (threaded Dask workers); the
    lock in :class:`_BlasState` already keeps threads from fighting.
    """
    handles = []
    for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
        direct = None
        if lib.internal_api == "openblas" and getattr(lib, "threading_layer", "") != "openmp":
            for pre, suf in _OPENBLAS_AFFIXES:
                get = getattr(lib.dynlib, f"{pre}openblas_get_num_threads{suf}", None)
                put = getattr(lib.dynlib, f"{pre}openblas_set_num_threads{suf}", None)
                if get is not None and put is not None:
                    direct = (get, put)
                    break
        handles.append(direct or (lib.get_num_threads, lib.set_num_threads))
    return tuple(handles)


class _BlasState:
    """Process-wide nesting count of :func:`blas_single_thread` blocks, under one lock.

    The outermost entry (count 0 → 1) saves each library's thread count and sets 1; the
    last exit (1 → 0) restores the saved counts, so a block left by one thread while
    another is still inside does not restore too early. An inner entry only counts (the
    library's calls nest: a step makes ~25 array calls). The library handles are looked
    up again on an outermost entry after new modules were imported (a new BLAS may have
    been loaded), as threadpoolctl's own cached controller does.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.saved: list[tuple[Callable[[int], object], int]] = []
        self.handles: tuple = ()
        self.n_modules = -1

    def current_handles(self) -> tuple:
        """The library handles, looked up again if modules were imported (call locked)."""
        if self.depth == 0 and len(sys.modules) != self.n_modules:
            self.n_modules = len(sys.modules)
            self.handles = _blas_handles()
        return self.handles

    def enter(self) -> None:
        with self.lock:
            if self.depth == 0:
                for get, put in self.current_handles():
                    n = get()
                    if n != 1:
                        put(1)
                        self.saved.append((put, n))
            self.depth += 1

    def exit(self) -> None:
        with self.lock:
            self.depth -= 1
            if self.depth == 0:
                for put, n in self.saved:
                    put(n)
                self.saved.clear()

    def after_fork(self) -> None:
        # A lock held by another thread at fork time would never be released in the child.
        # Blocks that other threads were inside are gone there: the count then stays above
        # 0 and the child keeps BLAS at one thread (deterministic, only not restored).
        self.lock = threading.Lock()


_BLAS = _BlasState()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_BLAS.after_fork)


class _OneBlasThread:
    """Context manager and decorator: BLAS at one thread inside (see :func:`blas_single_thread`)."""

    __slots__ = ()

    def __enter__(self) -> None:
        _BLAS.enter()

    def __exit__(self, exc_type, exc, tb) -> bool:
        _BLAS.exit()
        return False

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            _BLAS.enter()
            try:
                return fn(*args, **kwargs)
            finally:
                _BLAS.exit()
        return wrapper  # type: ignore[return-value]


class _Untouched:
    """No-op stand-in for :class:`_OneBlasThread` (``ANALOGSIM_BLAS_SINGLE_THREAD=0``)."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        return False

    def __call__(self, fn: F) -> F:
        return fn


_ONE, _UNTOUCHED = _OneBlasThread(), _Untouched()


def blas_single_thread() -> contextlib.AbstractContextManager[None]:
    """Run a block or a function with BLAS at one thread; re-entrant, thread-safe, ≈1 µs.

    Use as ``with blas_single_thread():`` or as a decorator ``@blas_single_thread()``. The
    library's entry points (:meth:`~analogsim.rules.Trainer.step`, the array calls) are
    wrapped in it, so their results do not depend on the BLAS thread count and OpenBLAS
    workers do not spin against numba's threads. On leaving the outermost block the thread
    counts found on entering it are restored.

    Returns
    -------
    contextlib.AbstractContextManager
        A shared context-manager/decorator object with no state of its own: the nesting
        count is process-wide, as OpenBLAS's thread count is. With
        ``ANALOGSIM_BLAS_SINGLE_THREAD=0`` in the environment at import, a no-op.
    """
    return _ONE if BLAS_SINGLE_THREAD else _UNTOUCHED


class _BlasLimit:
    """``kernel_threads(blas=n)`` for ``n > 1``: set ``n`` on entry, restore on exit."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.saved: list[tuple[Callable[[int], object], int]] = []

    def __enter__(self) -> None:
        with _BLAS.lock:
            handles = _BLAS.current_handles()
            self.saved = [(put, get()) for get, put in handles]
            for _, put in handles:
                put(self.n)

    def __exit__(self, exc_type, exc, tb) -> bool:
        with _BLAS.lock:
            for put, n in self.saved:
                put(n)
        return False


def kernel_threads(blas: int = 1) -> contextlib.AbstractContextManager[None]:
    """Run a block with BLAS limited to ``blas`` threads (numba keeps its own count).

    ``blas = 1`` (what :func:`analogsim.experiments.runner.train` uses) is
    :func:`blas_single_thread` without its opt-out: it acts even with
    ``ANALOGSIM_BLAS_SINGLE_THREAD=0``. Wrapping a whole loop also keeps BLAS at one
    thread for the user's own products between library calls.
    """
    if not isinstance(blas, int) or isinstance(blas, bool) or blas < 1:
        raise ValueError(f"blas = {blas!r} is invalid; allowed: an integer >= 1")
    return _ONE if blas == 1 else _BlasLimit(blas)
