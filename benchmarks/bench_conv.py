"""Benchmark conv layers on crossbars: analog forward vs float32 im2col + GEMM, LeNet epochs.

Two measurements, as ratios taken in one run (never a timed test; the numbers depend on the
machine and its load):

1. **Forward.** For conv shapes of LeNet-5 and a wider layer, the median time of
   :meth:`AnalogConv2d.read <analogsim.layers.conv.AnalogConv2d>` (pool + im2col + one batched
   array read of all ``B·P`` windows through DAC → array → noise → ADC, charged) on
   ``ideal`` and ``aihwkit_default``, divided by the median time of the float32 reference of
   the same shape: the same im2col (:func:`analogsim.layers.unfold.unfold`) and one
   ``cols @ Wᵀ`` GEMM (NumPy/BLAS). The issue's target is a ratio ≤ 1.5.
2. **LeNet epoch.** The median :meth:`Trainer.step` of ``lenet5`` on ``aihwkit_default`` at
   batch 64 for BP (probe transpose) and DFA, and the epoch of 60 000 images it implies
   (step × 937.5); the issue's target is < 60 s on one core. The batches are real
   Fashion-MNIST images when the ``fashion`` data set is found (Debian's
   dataset-fashion-mnist, ``make data``), synthetic ones otherwise (the cost of a step does
   not depend on the pixels). ``--epoch`` also trains one whole epoch of the 60 000 training
   images (train + validation splits) with DFA and reports its wall time.

Runs inside :func:`analogsim.kernels.kernel_threads` (one numba and one BLAS thread unless
``NUMBA_NUM_THREADS`` says otherwise), as the runner does.

Usage::

    python benchmarks/bench_conv.py [--quick] [--repeats N] [--epoch]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import median_time  # noqa: E402
from bench_crossbar import machine_info  # noqa: E402

from analogsim.experiments.data import load_dataset, onehot  # noqa: E402
from analogsim.experiments.models import load_model  # noqa: E402
from analogsim.experiments.runner import TrainConfig, build_run  # noqa: E402
from analogsim.hardware.presets import get_preset  # noqa: E402
from analogsim.kernels import kernel_threads  # noqa: E402
from analogsim.layers.conv import AnalogConv2d  # noqa: E402
from analogsim.layers.unfold import unfold  # noqa: E402

#: (label, batch, input map (C, H, W), c_out, kernel, padding)
SHAPES = [
    ("lenet conv1", 64, (1, 28, 28), 6, 5, 2),
    ("lenet conv2", 64, (6, 14, 14), 16, 5, 0),
    ("wide 3x3", 64, (32, 16, 16), 64, 3, 1),
]
QUICK_SHAPES = [("tiny conv", 4, (2, 8, 8), 4, 3, 1)]
PRESETS = ("ideal", "aihwkit_default")
BATCH = 64
EPOCH = 60_000


def forward_rows(shapes, repeats: int) -> list[str]:
    """One table row per (shape, preset): analog read vs float32 im2col + GEMM."""
    rng = np.random.default_rng(0)
    rows = []
    for label, batch, in_shape, c_out, k, pad in shapes:
        x = rng.standard_normal((batch, int(np.prod(in_shape)))).astype(np.float32)
        for preset in PRESETS:
            layer = AnalogConv2d(in_shape, c_out, k, padding=pad, hw=get_preset(preset), seed=0)
            w = rng.standard_normal((c_out, layer.k_in)).astype(np.float32)

            def reference(x=x, w=w, layer=layer, in_shape=in_shape):
                cols = unfold(x.reshape(x.shape[0], *in_shape), layer.window)
                return cols @ w.T

            t_ref = median_time(reference, repeats)
            t_ana = median_time(lambda x=x, layer=layer: layer.read(x), repeats)
            n_rows = batch * layer.n_positions
            rows.append(f"{label:<13}{preset:<17}{n_rows:>8}{layer.k_in:>6}{c_out:>6}"
                        f"{t_ref * 1e3:>10.2f}{t_ana * 1e3:>11.2f}{t_ana / t_ref:>8.1f}")
    return rows


def lenet_batches(quick: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """Training images (x, labels) and where they come from."""
    if not quick:
        try:
            ds = load_dataset("fashion")
            x = np.concatenate([ds.x_train, ds.x_val])
            y = np.concatenate([ds.y_train, ds.y_val])
            return x, y, f"Fashion-MNIST ({len(x)} training images)"
        except FileNotFoundError:
            pass
    rng = np.random.default_rng(0)
    n = 4 * BATCH
    return rng.standard_normal((n, 784)).astype(np.float32), rng.integers(0, 10, n), \
        "synthetic 28x28 images"


def step_rows(x, y, rules, repeats: int) -> list[tuple[str, float]]:
    """Median step (s) of lenet5 on aihwkit_default per rule."""
    out = []
    for rule in rules:
        tr = build_run(get_preset("aihwkit_default"), load_model("lenet5"),
                       TrainConfig(rule=rule, batch_size=BATCH, lr=0.05, transpose="probe"),
                       784, 10)
        batches = [(x[i:i + BATCH], onehot(y[i:i + BATCH], 10))
                   for i in range(0, min(len(x), 8 * BATCH), BATCH)]
        it = iter(range(10**9))

        def step(tr=tr, batches=batches, it=it):
            xb, tb = batches[next(it) % len(batches)]
            tr.step(xb, tb)

        out.append((rule, median_time(step, repeats)))
    return out


def whole_epoch(x, y) -> float:
    """Wall time (s) of one DFA epoch of lenet5 on aihwkit_default over all of ``x``."""
    tr = build_run(get_preset("aihwkit_default"), load_model("lenet5"),
                   TrainConfig(rule="dfa", batch_size=BATCH, lr=0.05), 784, 10)
    order = np.random.default_rng(0).permutation(len(x))
    t0 = time.perf_counter()
    for i in range(0, len(x), BATCH):
        idx = order[i:i + BATCH]
        tr.step(x[idx], onehot(y[idx], 10))
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke mode: a tiny conv, 2 steps")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per measurement")
    ap.add_argument("--epoch", action="store_true", help="also train one whole DFA epoch")
    args = ap.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 15)
    print(machine_info())
    with kernel_threads():
        print(f"\nconv forward, median of {repeats}: analog read (pool + im2col + one batched "
              "read) vs float32 im2col + GEMM")
        head = (f"{'shape':<13}{'preset':<17}{'rows B·P':>8}{'K':>6}{'C_o':>6}"
                f"{'gemm ms':>10}{'analog ms':>11}{'ratio':>8}")
        print(head)
        print("-" * len(head))
        for row in forward_rows(QUICK_SHAPES if args.quick else SHAPES, repeats):
            print(row)
        x, y, source = lenet_batches(args.quick)
        rules = ("dfa",) if args.quick else ("bp", "dfa")
        print(f"\nLeNet-5 (lenet5) on aihwkit_default, batch {BATCH}, {source}; "
              f"epoch = {EPOCH} images = step x {EPOCH / BATCH:g}")
        print(f"{'rule':<6}{'step ms':>10}{'epoch s':>10}  (target < 60 s)")
        for rule, t in step_rows(x, y, rules, repeats):
            print(f"{rule:<6}{t * 1e3:>10.1f}{t * EPOCH / BATCH:>10.1f}")
        if args.epoch and not args.quick:
            print(f"whole DFA epoch of {len(x)} images: {whole_epoch(x, y):.1f} s")


if __name__ == "__main__":
    main()
