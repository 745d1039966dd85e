"""Benchmark BLAS thread handling: the public calls at the process's default BLAS threads
vs inside the runner's context, as ratios, and what entering the context costs.

The library runs its own BLAS products at one thread (:func:`analogsim.kernels.
blas_single_thread`, see the docstring of ``analogsim/kernels/_numba.py``). This script
measures, in one run:

* the cost of one entry and exit of ``blas_single_thread()`` (outermost, i.e. BLAS set to
  one thread and back, and nested), of ``kernel_threads()`` and of threadpoolctl's
  ``threadpool_limits`` (what ``kernel_threads()`` used to be);
* per public call — ``CrossbarArray.mvm`` (784×256, batch 128, ``aihwkit_default``),
  ``CrossbarArray.pulse_update`` in expected mode (same shape and batch), one
  ``Trainer.step`` of 784-256-256-10 at batch 64 on ``aihwkit_default`` with DFA — the median
  time called as a notebook calls it (``default``: BLAS at the process's thread count) and
  inside ``kernel_threads()`` (``runner``: as ``experiments.runner.train`` runs its loop),
  and their ratio;
* the same in a child process with ``ANALOGSIM_BLAS_SINGLE_THREAD=0`` (``unguarded``: the
  library leaving BLAS alone, as before), each ratio against that child's own ``runner``
  column;
* the process CPU time per default call (every thread of the process: spinning OpenBLAS
  workers show there even when the machine's load hides them in the wall time).

Blocks of calls alternate (default, runner, default, runner) and each block starts with
warm-up calls: after a multi-threaded product OpenBLAS's workers spin for a while, which would
otherwise be charged to the next block. The effect of the BLAS thread count shows only when
OpenBLAS has more than one thread, e.g.::

    OPENBLAS_NUM_THREADS=2 python benchmarks/bench_threads.py
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_threads.py

Usage::

    python benchmarks/bench_threads.py [--quick] [--repeats N] [--threads T]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_crossbar import machine_info  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from analogsim.experiments.runner import TrainConfig, build_run  # noqa: E402
from analogsim.hardware.array import CrossbarArray  # noqa: E402
from analogsim.hardware.config import replace_field  # noqa: E402
from analogsim.hardware.presets import get_preset  # noqa: E402
from analogsim.kernels import blas_single_thread, kernel_threads, set_threads  # noqa: E402
from analogsim.layers.network import ModelConfig  # noqa: E402

N_IN, N_OUT, BATCH = 784, 256, 128
SIZES, STEP_BATCH = (784, 256, 256, 10), 64
OPT_OUT = "ANALOGSIM_BLAS_SINGLE_THREAD"


def make_calls() -> dict[str, Callable[[], object]]:
    """The three public calls, each a closure over its own seeded objects."""
    rng = np.random.default_rng(0)
    hw = get_preset("aihwkit_default")
    read = CrossbarArray(N_IN, N_OUT, hw, seed=1)
    read.program(rng.uniform(-0.3, 0.3, (N_OUT, N_IN)))
    x = rng.random((BATCH, N_IN), dtype=np.float32)
    upd = CrossbarArray(N_IN, N_OUT, replace_field(hw, "update.mode", "expected"), seed=2)
    d = (rng.standard_normal((BATCH, N_OUT)) * 0.01).astype(np.float32)
    cfg = TrainConfig(rule="dfa", batch_size=STEP_BATCH, lr=0.01, seed=0)
    trainer = build_run(hw, ModelConfig(sizes=SIZES), cfg, SIZES[0], SIZES[-1])
    xs = rng.random((STEP_BATCH, SIZES[0]), dtype=np.float32)
    ts = np.eye(SIZES[-1], dtype=np.float32)[rng.integers(0, SIZES[-1], STEP_BATCH)]
    return {
        f"mvm {N_IN}x{N_OUT} batch {BATCH}": lambda: read.mvm(x),
        f"pulse_update expected {N_IN}x{N_OUT} batch {BATCH}":
            lambda: upd.pulse_update(x, d, 0.01),
        f"Trainer.step {'-'.join(map(str, SIZES))} batch {STEP_BATCH} dfa":
            lambda: trainer.step(xs, ts),
    }


def block_times(fn: Callable[[], object], n: int, warmup: int, runner: bool
                ) -> tuple[list[float], float]:
    """Wall times of ``n`` calls after ``warmup`` calls, inside ``kernel_threads()`` or not,
    and the process CPU time of those calls (all threads, spinning BLAS workers included)."""
    times = []
    with kernel_threads() if runner else contextlib.nullcontext():
        for _ in range(warmup):
            fn()
        cpu0 = time.process_time()
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        cpu = time.process_time() - cpu0
    return times, cpu


def measure_calls(repeats: int, warmup: int) -> dict[str, list[float]]:
    """Per call, seconds ``[default, runner]`` (medians, blocks alternating twice) and the
    mean CPU seconds of the default calls."""
    out = {}
    for name, fn in make_calls().items():
        times: dict[bool, list[float]] = {False: [], True: []}
        cpu, n = 0.0, max(1, repeats // 2)
        for runner in (False, True, False, True):
            t, c = block_times(fn, n, warmup, runner)
            times[runner] += t
            cpu += 0.0 if runner else c / (2 * n)
        out[name] = [statistics.median(times[False]), statistics.median(times[True]), cpu]
    return out


def entry_costs(n: int) -> dict[str, float]:
    """Microseconds per entry + exit of each way of limiting BLAS (median of 5 batches)."""

    def per_call(cm: Callable[[], object], count: int) -> float:
        batches = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(count):
                with cm():
                    pass
            batches.append((time.perf_counter() - t0) / count)
        return statistics.median(batches) * 1e6

    costs = {"blas_single_thread(), outermost": per_call(blas_single_thread, n),
             "kernel_threads()": per_call(kernel_threads, n)}
    with blas_single_thread():
        costs["blas_single_thread(), nested"] = per_call(blas_single_thread, n)
    costs["threadpool_limits(1, 'blas') (old kernel_threads)"] = per_call(
        lambda: threadpool_limits(limits=1, user_api="blas"), max(1, n // 50))
    return costs


def run_child(args: argparse.Namespace) -> dict[str, list[float]]:
    """The call table measured with the library leaving BLAS alone (a fresh process)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--repeats",
           str(args.repeats), "--warmup", str(args.warmup)]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    res = subprocess.run(cmd, env={**os.environ, OPT_OUT: "0"}, capture_output=True,
                         text=True, check=True)
    return json.loads(res.stdout.splitlines()[-1])


def print_report(costs: dict[str, float], calls: dict[str, list[float]],
                 unguarded: dict[str, list[float]]) -> None:
    wrapped = all(hasattr(getattr(CrossbarArray, m), "__wrapped__")
                  for m in ("mvm", "pulse_update"))
    print("\nentry + exit, microseconds")
    for name, us in costs.items():
        print(f"  {name:<52}{us:>10.2f}")
    print(f"\nper call, median wall ms; cpu: process CPU ms per default call (all threads). "
          f"CrossbarArray calls wrapped in blas_single_thread: {'yes' if wrapped else 'no'}")
    print(f"{'call':<48}{'default':>9}{'runner':>9}{'ratio':>8}{'cpu':>8}"
          f"{'unguarded':>11}{'runner':>9}{'ratio':>8}{'cpu':>8}")
    for name, (d, r, c) in calls.items():
        ud, ur, uc = unguarded[name]
        print(f"{name:<48}{d * 1e3:>9.3f}{r * 1e3:>9.3f}{d / r:>7.2f}x{c * 1e3:>8.2f}"
              f"{ud * 1e3:>11.3f}{ur * 1e3:>9.3f}{ud / ur:>7.2f}x{uc * 1e3:>8.2f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per measurement")
    ap.add_argument("--warmup", type=int, default=None, help="untimed calls per block")
    ap.add_argument("--threads", type=int, default=None,
                    help="numba threads (default: NUMBA_NUM_THREADS, i.e. all cores)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.threads is not None:
        set_threads(args.threads)
    args.repeats = args.repeats or (2 if args.quick else 30)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    if args.child:
        print(json.dumps(measure_calls(args.repeats, args.warmup)))
        return
    print(machine_info())
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    costs = entry_costs(200 if args.quick else 20_000)
    calls = measure_calls(args.repeats, args.warmup)
    unguarded = run_child(args)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print_report(costs, calls, unguarded)


if __name__ == "__main__":
    main()
