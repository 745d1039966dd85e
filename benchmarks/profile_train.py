"""Profile a full training run: where the time goes outside the numba kernels.

Three measurements of one configuration (default: DFA, mnist-subset, 784-256-256-10,
batch 64, ``aihwkit_default``):

1. **seconds per epoch**: median over ``--epochs`` epochs of the training loop exactly as
   :func:`analogsim.experiments.runner.train` runs it (``Trainer.step`` per shuffled batch,
   inside :func:`analogsim.kernels.kernel_threads`), without evaluation;
2. **fixed cost per step**: the same rule and depth on a tiny network (every layer 8 wide,
   so kernels and BLAS do almost nothing) — what one step costs in Python, validation,
   ledger and schedule bookkeeping and kernel dispatch;
3. **cProfile** of one full ``train`` call (build, epoch, evaluation), with ``tottime``
   grouped by category and the top functions. Compiled numba drivers appear as single
   entries (their time is kernel time); BLAS products are ufunc calls, which cProfile does
   not list, so their time is inside the ``tottime`` of the Python function that calls them
   (``read_encoded``, ``pulse_update``, the plain float32 ops of the layers).

Usage::

    python benchmarks/profile_train.py [--quick] [--rule dfa] [--preset aihwkit_default]
                                       [--batch 64] [--sizes 784-256-256-10] [--top 25]
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import importlib
import os
import pstats
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_crossbar import machine_info  # noqa: E402

from analogsim.experiments.data import load_dataset, onehot  # noqa: E402
from analogsim.experiments.runner import TrainConfig, build_run, train  # noqa: E402
from analogsim.hardware.presets import get_preset  # noqa: E402
from analogsim.kernels import kernel_threads, set_threads  # noqa: E402
from analogsim.layers.network import ModelConfig  # noqa: E402

KERNEL_MODULES = ("analogsim.kernels.read", "analogsim.kernels.update",
                  "analogsim.kernels.stochastic", "analogsim.kernels.device",
                  "analogsim.kernels.rng")


def _compiled_names() -> set[tuple[str, str]]:
    """``(file, name)`` of every numba dispatcher in the kernel modules."""
    out = set()
    for mod_name in KERNEL_MODULES:
        mod = importlib.import_module(mod_name)
        for name, obj in vars(mod).items():
            if type(obj).__name__.endswith("Dispatcher"):
                out.add((os.path.abspath(mod.__file__), name))
    return out


def category(fn: str, name: str, compiled: set[tuple[str, str]]) -> str:
    if (os.path.abspath(fn), name) in compiled:
        return "numba kernels (compiled)"
    if "analogsim" in fn:
        return "python: analogsim/" + fn.split("analogsim/")[-1]
    if "numpy" in fn or (fn == "~" and "numpy" in name):
        return "python/C: numpy"
    return "other (builtins, contextlib, ...)"


def profile_train(hw_name: str, model: ModelConfig, cfg: TrainConfig, ds, top: int) -> float:
    """cProfile one ``train`` call; print the grouped and the top ``tottime``; return total."""
    prof = cProfile.Profile()
    prof.enable()
    train(get_preset(hw_name), model, cfg, dataset=ds)
    prof.disable()
    stats = pstats.Stats(prof)
    compiled = _compiled_names()
    groups: collections.Counter = collections.Counter()
    calls: collections.Counter = collections.Counter()
    for (fn, _, name), (_, nc, tt, _, _) in stats.stats.items():
        key = category(fn, name, compiled)
        groups[key] += tt
        calls[key] += nc
    total = sum(groups.values())
    print(f"\ncProfile of one train() call: {total:.3f} s (profiler overhead included)")
    print(f"{'tottime s':>10}{'share':>8}{'calls':>10}  category")
    for key, tt in groups.most_common():
        print(f"{tt:>10.3f}{tt / total:>8.1%}{calls[key]:>10}  {key}")
    print(f"\ntop {top} functions by tottime:")
    stats.sort_stats("tottime").print_stats(top)
    return total


def epoch_seconds(tr, ds, batch: int, epochs: int) -> list[float]:
    times = []
    for e in range(epochs):
        rng = np.random.default_rng([0, e, 0xDA7A])
        t0 = time.perf_counter()
        for xb, yb in ds.batches("train", batch, rng):
            tr.step(xb, onehot(yb, ds.n_classes))
        times.append(time.perf_counter() - t0)
    return times


def step_overhead(hw_name: str, cfg: TrainConfig, depth: int, batch: int, n: int) -> float:
    """Median seconds of one step on a network whose layers are all 8 wide."""
    sizes = (8,) * depth + (10,)
    tr = build_run(get_preset(hw_name), ModelConfig(sizes=sizes), cfg, 8, 10)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 8), dtype=np.float32)
    t = onehot(rng.integers(0, 10, batch), 10)
    for _ in range(10):
        tr.step(x, t)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        tr.step(x, t)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="digits, 64-32-32-10, 1 epoch")
    ap.add_argument("--rule", default="dfa")
    ap.add_argument("--preset", default="aihwkit_default")
    ap.add_argument("--transpose", default="probe")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--sizes", default="784-256-256-10")
    ap.add_argument("--dataset", default="mnist-subset")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs (median)")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--threads", type=int, default=None,
                    help="numba threads (default: NUMBA_NUM_THREADS, i.e. all cores)")
    args = ap.parse_args(argv)
    if args.threads is not None:
        set_threads(args.threads)
    if args.quick:
        args.dataset, args.sizes, args.epochs, args.top = "digits", "64-32-32-10", 1, 10
    sizes = tuple(int(s) for s in args.sizes.split("-"))
    ds = load_dataset(args.dataset)
    model = ModelConfig(sizes=sizes, hidden="tanh")
    cfg = TrainConfig(rule=args.rule, dataset=args.dataset, epochs=1, batch_size=args.batch,
                      lr=0.01, transpose=args.transpose)
    print(machine_info())
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"{args.rule} ({args.transpose}) on {args.preset}, {args.dataset} "
          f"{len(ds.x_train)} train samples, {args.sizes}, batch {args.batch}")
    train(get_preset(args.preset), model, cfg, dataset=ds)  # warm-up: kernels, caches
    with kernel_threads():
        tr = build_run(get_preset(args.preset), model, cfg, ds.n_features, ds.n_outputs)
        times = epoch_seconds(tr, ds, args.batch, args.epochs)
        n_steps = -(-len(ds.x_train) // args.batch)
        fixed = step_overhead(args.preset, cfg, len(sizes) - 1, args.batch,
                              20 if args.quick else 300)
    ep = statistics.median(times)
    print(f"\nseconds per epoch (median of {len(times)}): {ep:.3f}  "
          f"[{', '.join(f'{t:.3f}' for t in times)}]")
    print(f"per step: {ep / n_steps * 1e3:.2f} ms over {n_steps} steps; fixed cost per step "
          f"(all layers 8 wide): {fixed * 1e3:.3f} ms = {fixed * n_steps / ep:.0%} of the epoch")
    profile_train(args.preset, model, cfg, ds, args.top)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
