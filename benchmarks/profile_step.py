"""One training step, stage by stage: what the kernels cost and what is left around them.

For one rule and preset (default: DFA on ``aihwkit_default``, 784-256-256-10, batch 64,
mnist-subset) it measures, in one run, at ``--threads`` numba threads (default 1) and one
BLAS thread (as :func:`analogsim.experiments.runner.train` runs):

* ``plain``: the NumPy float32 backprop step of :mod:`bench_training` (the ratio's floor);
* ``step``: the analog training step (:meth:`Trainer.step` on fresh shuffled batches);
* every kernel call of ``--captures`` captured steps, replayed on copies of their inputs
  (the trainer's state is not touched): each forward / feedback read (``analog_read``: DAC,
  tile products, noise, ADC) beside the plain ``sgemm`` of the same shape, each stochastic
  pulse update split into its three kernel stages — column trains, row trains, and
  coincidence counting with the device model — the last also with cycle-to-cycle noise off,
  which shows what the noise model costs; an ``expected``-mode update as its ``Dᵀ X``
  products and kernel calls (blocks of rows).

The remainder ``step - Σ stages`` is everything else: Python, digital ops (losses,
activations, the rule's feedback), ledger and schedule bookkeeping. ``step - remainder``
is what a step would cost with all overhead gone: if that alone exceeds a target ratio, no
removal of overhead can meet it — only cheaper kernels or less simulated work (see
docs/performance.md, "What the step is made of").

A stage's time is the minimum over ``--repeats`` replays of its call, averaged over
``--captures`` captured steps (a step's pulse counts, hence its update's cost, vary with the
errors of its batch); whole steps are medians over ``--repeats`` fresh batches. Minima of
warm replays make the stages a lower bound and the remainder an upper bound of the overhead;
``--cold`` evicts the caches before every replay (a training step meets its layers' device
state after the other layers have passed through the caches), the pessimistic bound (it
also evicts the code and tables a real step keeps warm).

Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/profile_step.py [--rule dfa]
        [--preset aihwkit_default] [--batch 64] [--repeats 30] [--threads 1]
        [--captures 5] [--cold] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
import types
from collections.abc import Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_training as bt  # noqa: E402
from _timing import median_time  # noqa: E402
from bench_crossbar import machine_info  # noqa: E402

import analogsim.hardware.array as array_mod  # noqa: E402
from analogsim.hardware.ledger import Ledger  # noqa: E402
from analogsim.kernels import kernel_threads, set_threads  # noqa: E402
from analogsim.kernels import stochastic as st  # noqa: E402

#: With ``--cold``: a buffer larger than the caches, summed before every timed replay.
_EVICT: list[np.ndarray] = []


def min_time(fn: Callable[[], object], repeats: int) -> float:
    """Minimum wall time of ``fn()`` in seconds over ``repeats`` calls after one warm-up
    (each call from cold caches when ``--cold`` filled :data:`_EVICT`)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        for buf in _EVICT:
            buf.sum()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def capture_step(trainer, xb: np.ndarray, tb: np.ndarray) -> tuple[list, list, list]:
    """Run one step, recording (deep copies of) the arguments of every analog read, every
    stochastic update and every ``expected``-mode block (its ``Dᵀ X`` and its kernel call)."""
    reads, updates, expected = [], [], []
    read, update = array_mod.analog_read, array_mod.stochastic_update_unchecked
    product, kernel = array_mod._requested_change, array_mod.pulse_update_expected

    def rec_read(arr, *a, **k):
        state = types.SimpleNamespace(hw=arr.hw, _read_key=arr._read_key,
                                      _read_counter=arr._read_counter)
        reads.append((state, copy.deepcopy(a), copy.deepcopy(k)))
        return read(arr, *a, **k)

    def rec_update(*a, **k):
        updates.append(copy.deepcopy((a, k)))
        return update(*a, **k)

    def rec_product(*a):
        expected.append(["D^T X", copy.deepcopy(a)])
        return product(*a)

    def rec_kernel(*a, **k):
        expected.append(["kernel", copy.deepcopy((a, k))])
        return kernel(*a, **k)

    hooks = {"analog_read": rec_read, "stochastic_update_unchecked": rec_update,
             "_requested_change": rec_product, "pulse_update_expected": rec_kernel}
    saved = {name: getattr(array_mod, name) for name in hooks}
    for name, fn in hooks.items():
        setattr(array_mod, name, fn)
    try:
        trainer.step(xb, tb)
    finally:
        for name, fn in saved.items():
            setattr(array_mod, name, fn)
    return reads, updates, expected


def expected_stages(expected: list, repeats: int) -> list[tuple[str, float]]:
    """``(label, s)`` per ``expected``-mode block: its ``Dᵀ X`` product and its kernel."""
    out = []
    for kind, args in expected:
        if kind == "D^T X":
            x, d = args[0], args[1]
            label = f"update {d.shape[1]}x{x.shape[1]}: D^T X (BLAS)"
            out.append((label, min_time(lambda a=args: array_mod._requested_change(*a),
                                        repeats)))
        else:
            (gp, gm, dw, *rest), kw = args
            label = f"update {gp.shape[0]}x{gp.shape[1]}: expected-mode kernel"
            g_p, g_m = gp.copy(), gm.copy()
            out.append((label, min_time(lambda g_p=g_p, g_m=g_m, dw=dw, rest=rest, kw=kw:
                                        array_mod.pulse_update_expected(g_p, g_m, dw, *rest,
                                                                        **kw), repeats)))
    return out


def read_stages(reads: list, repeats: int) -> list[tuple[str, float, float]]:
    """``(label, analog read s, sgemm s)`` per captured read."""
    out = []
    for state, a, k in reads:
        x, w = a[0], a[1]
        label = f"read {x.shape[0]}x{x.shape[1]} -> {w.shape[0]}"
        t_read = min_time(lambda s=state, a=a, k=k: array_mod.analog_read(
            s, a[0], a[1], a[2], a[3], a[4], Ledger(), *a[6:], **k), repeats)
        t_gemm = min_time(lambda x=x, w=w: x @ w.T, repeats)
        out.append((label, t_read, t_gemm))
    return out


def stage_calls(a: tuple) -> tuple[str, float, dict[str, Callable[[float], object]]] | None:
    """The three kernel stages of one captured update (on copies of its device state):
    ``(label, ctoc, {stage: call})``; the device stage takes the cycle-to-cycle noise.
    ``None`` if nothing fires."""
    (gp, gm, x, d, lr, bl, dw_min, um, a_up, a_dn, f_p, f_m, soft, ctoc, gamma, key, ctr,
     xmax, dmax) = a[:19]
    shared = bool(a[19]) if len(a) > 19 else False
    plan = st.update_plan(x, gp.shape[0], lr, bl, dw_min, um, xmax, dmax)
    if plan is None:
        return None
    g_p, g_m = gp.copy(), gm.copy()
    # The update's own stage functions, in its order (stochastic_update_unchecked).
    calls = {
        "column trains": lambda _: st.column_trains(plan, x, bl, key, ctr),
        "row trains": lambda _: st.row_trains(plan, d, bl, key, ctr),
        "device": lambda noise: st.coincidences(plan, g_p, g_m, d, bl, a_up, a_dn, f_p, f_m,
                                                soft, noise, shared, key, ctr, gamma),
    }
    return f"update {gp.shape[0]}x{gp.shape[1]}", ctoc, calls


def update_stages(updates: list, repeats: int) -> list[tuple[str, float]]:
    """``(label, s)`` per stage of every captured stochastic update."""
    out = []
    for a, _ in updates:
        got = stage_calls(a)
        if got is None:
            continue
        name, ctoc, calls = got
        # Trains first: the device stage counts the coincidences of the trains they write.
        for stage in ("column trains", "row trains"):
            out.append((f"{name}: {stage}", min_time(lambda c=calls[stage]: c(0.0), repeats)))
        t_quiet = min_time(lambda c=calls["device"]: c(0.0), repeats)
        out.append((f"{name}: coincidences + device", t_quiet))
        if ctoc > 0.0:
            t_dev = min_time(lambda c=calls["device"], n=ctoc: c(n), repeats)
            out.append((f"{name}: cycle-to-cycle noise", max(t_dev - t_quiet, 0.0)))
    return out


def stage_means(trainer, feed, captures: int, repeats: int
                ) -> tuple[dict[str, float], dict[str, float]]:
    """Stage times of ``captures`` captured steps, averaged (a step's pulse counts, hence its
    update's cost, vary with the errors of its batch): ``({stage: s}, {read: sgemm s})``."""
    runs: dict[str, list[float]] = {}
    gemm: dict[str, list[float]] = {}
    for _ in range(captures):
        reads, updates, expected = capture_step(trainer, *next(feed))
        seen: dict[str, int] = {}
        for label, t_read, t_gemm in read_stages(reads, repeats):
            seen[label] = seen.get(label, 0) + 1
            if seen[label] > 1:  # the same shape read again in one step (DFA's feedback)
                label = f"{label} ({seen[label]})"
            runs.setdefault(label, []).append(t_read)
            gemm.setdefault(label, []).append(t_gemm)
        for label, t_stage in update_stages(updates, repeats) + expected_stages(expected,
                                                                                 repeats):
            runs.setdefault(label, []).append(t_stage)
    mean = statistics.fmean
    return ({k: mean(v) for k, v in runs.items()}, {k: mean(v) for k, v in gemm.items()})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rule", default="dfa")
    ap.add_argument("--transpose", default=None, help="strategy for rules that need Wᵀδ")
    ap.add_argument("--preset", default="aihwkit_default",
                    help="a preset, or preset:cell, or preset:section.field=value[+...]")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1, help="numba threads (BLAS: one)")
    ap.add_argument("--captures", type=int, default=5, help="captured steps to average")
    ap.add_argument("--cold", action="store_true",
                    help="evict the caches (sum a 64 MiB buffer) before every timed replay")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: synthetic data, 784-32-32-10, 5 repeats, 1 capture")
    args = ap.parse_args(argv)
    repeats = 5 if args.quick else args.repeats
    captures = 1 if args.quick else args.captures
    if args.cold:
        _EVICT.append(np.ones(64 * 2**20 // 8))
    x, t, desc = bt.load_data(args.quick)
    sizes = bt.QUICK_SIZES if args.quick else bt.SIZES
    print(machine_info())
    print(f"{args.rule} on {args.preset}, {'-'.join(map(str, sizes))}, batch {args.batch}, "
          f"{desc}; {args.threads} numba thread(s), one BLAS thread"
          + ("; stages replayed from cold caches" if args.cold else ""))
    set_threads(args.threads)
    trainer = bt.build_trainer(bt.Variant(args.preset, args.rule, args.transpose), sizes,
                               args.batch)
    plain = bt.PlainBP(sizes)
    feed = bt.batches(x, t, args.batch, 10**7 // args.batch * args.batch, seed=0)
    with kernel_threads():
        for _ in range(20):  # warm up: compile, and leave the untrained first steps
            trainer.step(*next(feed))
        step = median_time(lambda: trainer.step(*next(feed)), repeats)
        p_step = median_time(lambda: plain.step(*next(feed)), repeats)
        stages, gemm = stage_means(trainer, feed, captures, repeats)
    ms = 1e3
    print(f"\n{'stage (mean of ' + str(captures) + ' captured steps)':<46}{'ms':>8}"
          f"{'share':>8}   note")
    print(f"{'plain float32 step':<46}{p_step * ms:8.3f}{'':>8}   the ratio's floor")
    print(f"{'analog step':<46}{step * ms:8.3f}{'100%':>8}   {step / p_step:.2f}x plain")
    total = 0.0
    for label, t_stage in stages.items():
        total += t_stage
        note = (f"   sgemm {gemm[label] * ms:.3f} ms ({t_stage / gemm[label]:.2f}x)"
                if label in gemm else "")
        print(f"{label:<46}{t_stage * ms:8.3f}{t_stage / step:8.0%}{note}")
    rest = step - total
    print(f"{'everything else (Python, digital ops, ledger)':<46}{rest * ms:8.3f}"
          f"{rest / step:8.0%}   median step - stages")
    print(f"\nkernel stages alone: {total * ms:.3f} ms = {total / p_step:.2f}x the plain step "
          f"(the ratio with every overhead removed)")


if __name__ == "__main__":
    main()
