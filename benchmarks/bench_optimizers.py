"""Benchmark the analog optimizers: one training step per optimizer, as ratios to ``sgd``.

For the network 784-256-256-10 (tanh, softmax cross-entropy, model ``fc-256x2``) at batch 32,
per preset (default ``pcm``, ``rram``) and rule (default ``bp`` through the probe transpose,
``dfa``) it measures in one run the median :meth:`Trainer.step` of every optimizer of
:data:`analogsim.rules.OPTIMIZERS`, next to the plain NumPy float32 backprop step of the same
shapes (:class:`bench_training.PlainBP`), and prints

* the step in ms, its ratio to ``sgd`` of the same rule and preset, and to the plain step;
* the epoch of 60 000 samples (full Fashion-MNIST's training set) it implies: step × 1875.
  The measured epochs of a real run are in the store of
  ``experiments/fashion/optimizers_core.toml`` (each point's ``wall_time`` / epochs).

Inputs are synthetic (784 features in [0, 1], random labels): the cost of a step does not
depend on what is learnt. The loop runs inside :func:`analogsim.kernels.kernel_threads`, as
:func:`analogsim.experiments.runner.train` does.

Usage::

    python benchmarks/bench_optimizers.py [--quick] [--presets pcm,rram] [--rules bp,dfa]
                                          [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import median_time  # noqa: E402
from bench_crossbar import machine_info  # noqa: E402
from bench_training import PlainBP  # noqa: E402

from analogsim.experiments.data import onehot  # noqa: E402
from analogsim.experiments.runner import TrainConfig, build_run  # noqa: E402
from analogsim.hardware.presets import get_preset  # noqa: E402
from analogsim.kernels import kernel_threads  # noqa: E402
from analogsim.layers.network import ModelConfig  # noqa: E402
from analogsim.rules import OPTIMIZERS  # noqa: E402

SIZES = (784, 256, 256, 10)
QUICK_SIZES = (784, 32, 32, 10)
BATCH = 32
EPOCH = 60_000


def trainer(preset: str, rule: str, optimizer: str, sizes: tuple[int, ...]):
    cfg = TrainConfig(rule=rule, batch_size=BATCH, lr=0.05, seed=0, transpose="probe",
                      optimizer=optimizer)
    return build_run(get_preset(preset), ModelConfig(sizes=sizes, hidden="tanh"), cfg,
                     sizes[0], sizes[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke mode: 784-32-32-10, 2 steps")
    ap.add_argument("--presets", default="pcm,rram")
    ap.add_argument("--rules", default="bp,dfa")
    ap.add_argument("--repeats", type=int, default=None, help="timed steps per optimizer")
    args = ap.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else SIZES
    repeats = args.repeats or (2 if args.quick else 40)
    rng = np.random.default_rng(0)
    xb = rng.random((BATCH, sizes[0]), dtype=np.float32)
    tb = onehot(rng.integers(0, sizes[-1], BATCH), sizes[-1])
    print(machine_info())
    print(f"network {'-'.join(map(str, sizes))} tanh/xent, batch {BATCH}, median of "
          f"{repeats} steps; epoch = {EPOCH} samples = step x {EPOCH // BATCH}\n")
    head = (f"{'preset':<8}{'rule':<6}{'optimizer':<17}{'step ms':>9}{'vs sgd':>8}"
            f"{'vs plain':>10}{'epoch s':>9}")
    print(head)
    print("-" * len(head))
    with kernel_threads():
        plain = PlainBP(sizes)
        for preset in args.presets.split(","):
            for rule in args.rules.split(","):
                base = None
                for name in OPTIMIZERS:
                    try:
                        tr = trainer(preset, rule, name, sizes)
                    except ValueError as exc:  # e.g. bp with tiki_taka (gamma > 0)
                        print(f"{preset:<8}{rule:<6}{name:<17}  refused: {str(exc)[:60]}...")
                        continue
                    p_step = median_time(lambda: plain.step(xb, tb), repeats, 2)
                    step = median_time(lambda tr=tr: tr.step(xb, tb), repeats, 2)
                    base = step if base is None else base
                    print(f"{preset:<8}{rule:<6}{name:<17}{step * 1e3:>9.2f}"
                          f"{step / base:>7.2f}x{step / p_step:>9.1f}x"
                          f"{step * EPOCH / BATCH:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
