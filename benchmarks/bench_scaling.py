"""Scaling of the analog read and the pulse update: time and peak memory vs batch and width.

Operations, on one :class:`~analogsim.hardware.array.CrossbarArray` of the ``aihwkit_default``
preset (7-bit DAC, 9-bit ADC with range management, output noise, 512×512 tiles):

* ``read``        ``arr.mvm(x)``                      (B, n_in) → (B, n_out)
* ``expected``    ``arr.pulse_update(x, d, lr)``      update mode ``expected``
* ``stochastic``  ``arr.pulse_update(x, d, lr)``      update mode ``stochastic`` (BL 31)

Two sweeps: batch ``B`` at ``n_in = n_out = 512``, and square width ``n`` at ``B = 64``
(``n_in·n_out = n²``; widths above 512 are tiled). Reported per point:

* time: median wall time of ``--repeats`` calls after warm-up, with BLAS at one thread
  (:func:`analogsim.kernels.kernel_threads`, as in training) and numba's thread count as in
  the machine line;
* ``py peak``: ``tracemalloc`` peak of one call — every NumPy buffer (NumPy reports its data
  allocations to tracemalloc) and Python object allocated during the call, *not* memory that
  numba kernels allocate internally;
* ``rss peak``: the rise of the process's resident high-water mark during one call, in a fresh
  subprocess per point and operation: after three warm-up calls (kernel loading, thread
  pools and their malloc arenas, BLAS work buffers, the array's cached read matrix) the
  high-water mark is reset (``echo 5 > /proc/self/clear_refs``) and the peak resident size
  ``VmHWM`` (what ``getrusage().ru_maxrss`` reports) after one call minus the resident size
  before it is taken; the minimum over three such calls is reported. Resolution: pages, and
  the kernel's RSS counters lag by up to ~256 kB per thread. The subprocess runs with
  ``MALLOC_MMAP_THRESHOLD_=65536`` so that glibc returns large freed blocks to the system
  instead of keeping them for reuse (otherwise a reused block would not count). This covers
  numba's internal buffers too. Without ``clear_refs`` (non-Linux) the column is omitted.

Slopes are least-squares fits of log(value) on log(B) or log(n_in·n_out), printed for all
points and for the upper half (where per-call overheads no longer dominate). Linear growth
is slope 1. Writes ``perf_scaling.png`` (log-log, matplotlib Agg) and ``perf_scaling.md``
(the tables) and ``perf_scaling.json`` (the raw rows) to ``--out-dir`` (default docs/img).

Usage::

    python benchmarks/bench_scaling.py [--quick] [--repeats N] [--out-dir DIR] [--no-rss]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import median_time  # noqa: E402
from bench_crossbar import machine_info  # noqa: E402

from analogsim.hardware.array import CrossbarArray  # noqa: E402
from analogsim.hardware.config import replace_field  # noqa: E402
from analogsim.hardware.presets import get_preset  # noqa: E402
from analogsim.kernels import get_threads, kernel_threads, set_threads  # noqa: E402

PRESET = "aihwkit_default"
OPS = ("read", "expected", "stochastic")
BATCHES = (16, 32, 64, 128, 256, 512, 1024)
WIDTHS = (64, 128, 256, 512, 1024, 2048)
QUICK_BATCHES, QUICK_WIDTHS = (16, 64), (64, 128)
FIXED_WIDTH, FIXED_BATCH = 512, 64
LR = 0.01
ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- one point


def make_case(op: str, batch: int, n: int, seed: int = 0):
    """Array and a call ``fn()`` performing ``op`` once on a (batch, n) × (n, n) problem."""
    hw = get_preset(PRESET)
    if op != "read":
        hw = replace_field(hw, "update.mode", op)
    arr = CrossbarArray(n, n, hw, seed=seed)
    rng = np.random.default_rng(seed)
    arr.program(rng.uniform(-0.3, 0.3, (n, n)) * hw.device.w_max)
    x = rng.uniform(-1, 1, (batch, n)).astype(np.float32)
    d = (0.1 * rng.standard_normal((batch, n))).astype(np.float32)
    if op == "read":
        return arr, lambda: arr.mvm(x)
    return arr, lambda: arr.pulse_update(x, d, LR)


def time_point(op: str, batch: int, n: int, repeats: int) -> float:
    _, fn = make_case(op, batch, n)
    return median_time(fn, repeats)


def tracemalloc_peak(op: str, batch: int, n: int) -> int:
    """Peak bytes traced by tracemalloc during one call (after a warm-up call)."""
    _, fn = make_case(op, batch, n)
    fn()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(ln.split()[1]) for ln in fh if ln.startswith(field + ":"))


def rss_child(op: str, batch: int, n: int, calls: int = 3) -> None:
    """Subprocess body: print the resident high-water rise (bytes) of one call as JSON.

    Warm-up calls first: they load the kernels, start the thread pools (a pool thread's
    first allocations also touch its own malloc arena), let BLAS allocate its work buffers
    and build the array's cached read matrix — one-off costs, not per-call ones. Then the
    minimum over ``calls`` measured calls, each after resetting the high-water mark: a
    one-off cost that still slips into one call is not reported as the per-call peak.
    """
    _, fn = make_case(op, batch, n)
    for _ in range(3):
        fn()
    rises = []
    for _ in range(calls):
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset the high-water mark to the current resident size
        before = _status_kb("VmRSS")
        fn()
        # VmHWM is the counter ru_maxrss reports; read both from the same file.
        rises.append(max(_status_kb("VmHWM") - before, 0) * 1024)
    print(json.dumps({"rss_peak": min(rises)}))


def rss_peak(op: str, batch: int, n: int) -> int | None:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536",
           "NUMBA_NUM_THREADS": str(get_threads())}
    cmd = [sys.executable, __file__, "--child", op, str(batch), str(n)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])["rss_peak"]


def rss_available() -> bool:
    return os.access("/proc/self/clear_refs", os.W_OK)


# --------------------------------------------------------------------------- sweeps and fits


def sweep(points: list[tuple[int, int]], repeats: int, rss: str) -> list[dict]:
    """Measure every op at every point; ``rss``: "all", "first" (one subprocess) or "off"."""
    rows = []
    for batch, n in points:
        for op in OPS:
            want = rss == "all" or (rss == "first" and not rows)
            row = {"op": op, "batch": batch, "n_in": n, "n_out": n,
                   "time_s": time_point(op, batch, n, repeats),
                   "py_peak": tracemalloc_peak(op, batch, n),
                   "rss_peak": rss_peak(op, batch, n) if want else None}
            rows.append(row)
            print(f"  {op:<11} B={batch:<5} n={n:<5} {row['time_s'] * 1e3:9.3f} ms", flush=True)
    return rows


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y on log x (nan with fewer than 2 usable points)."""
    pts = [(np.log(x), np.log(y)) for x, y in zip(xs, ys, strict=True) if y and y > 0]
    if len(pts) < 2:
        return float("nan")
    a = np.array(pts)
    return float(np.polyfit(a[:, 0], a[:, 1], 1)[0])


def fits(rows: list[dict], axis: str) -> dict[tuple[str, str], tuple[float, float]]:
    """``{(op, metric): (slope over all points, slope over the upper half)}``."""
    out = {}
    for op in OPS:
        sel = [r for r in rows if r["op"] == op]
        xs = [r["batch"] if axis == "batch" else r["n_in"] * r["n_out"] for r in sel]
        for metric in ("time_s", "py_peak", "rss_peak"):
            ys = [r[metric] for r in sel]
            if any(y is None for y in ys):
                continue
            h = len(xs) // 2
            out[(op, metric)] = (slope(xs, ys), slope(xs[h:], ys[h:]))
    return out


# --------------------------------------------------------------------------- output


def _mb(v: int | None) -> str:
    return "—" if v is None else f"{v / 2**20:.2f}"


def markdown(batch_rows: list[dict], width_rows: list[dict], slopes: dict) -> str:
    lines = []
    for title, rows in ((f"vs batch (n_in = n_out = {FIXED_WIDTH})", batch_rows),
                        (f"vs width (batch = {FIXED_BATCH})", width_rows)):
        lines += [f"**{title}**", "",
                  "| op | batch | n_in × n_out | time ms | py peak MB | rss peak MB |",
                  "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['op']} | {r['batch']} | {r['n_in']}×{r['n_out']} | "
                  f"{r['time_s'] * 1e3:.3f} | {_mb(r['py_peak'])} | {_mb(r['rss_peak'])} |"
                  for r in rows]
        lines.append("")
    lines += ["**log-log slopes** (all points / upper half; 1 = linear)", "",
              "| op | metric | vs batch | vs n_in·n_out |", "|---|---|---:|---:|"]
    for op in OPS:
        for metric in ("time_s", "py_peak", "rss_peak"):
            if (op, metric) not in slopes["batch"]:
                continue
            b, w = slopes["batch"][(op, metric)], slopes["width"][(op, metric)]
            lines.append(f"| {op} | {metric} | {b[0]:.2f} / {b[1]:.2f} | "
                         f"{w[0]:.2f} / {w[1]:.2f} |")
    return "\n".join(lines) + "\n"


def plot(batch_rows: list[dict], width_rows: list[dict], path: Path) -> None:
    """2×2 log-log panels: time (top) and memory (bottom) vs batch (left) and width (right).

    Memory: tracemalloc peak as solid lines, RSS rise as dotted lines with open markers
    (zero rises — below the page/counter resolution — are left out of the log plot).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    colors = dict(zip(OPS, ("C0", "C1", "C2"), strict=True))
    for col, (rows, xlabel, xf) in enumerate((
            (batch_rows, f"batch B (n_in = n_out = {FIXED_WIDTH})", lambda r: r["batch"]),
            (width_rows, f"n_in · n_out (batch {FIXED_BATCH})",
             lambda r: r["n_in"] * r["n_out"]))):
        xs = sorted({xf(r) for r in rows})
        for row, series in enumerate(((("time_s", "o-", ""),),
                                      (("py_peak", "o-", " tracemalloc"),
                                       ("rss_peak", "o:", " rss")))):
            ax = axes[row, col]
            for metric, style, suffix in series:
                for op in OPS:
                    pts = [(xf(r), r[metric]) for r in rows
                           if r["op"] == op and r[metric] is not None and r[metric] > 0]
                    if pts:
                        ax.loglog(*zip(*pts, strict=True), style, color=colors[op],
                                  label=op + suffix,
                                  mfc="none" if metric == "rss_peak" else colors[op])
            metric = series[0][0]
            y0 = max(r[metric] for r in rows if xf(r) == xs[-1])
            ax.loglog(xs, [y0 * x / xs[-1] for x in xs], "k--", lw=0.8, label="slope 1")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("time per call [s]" if row == 0 else "peak memory per call [bytes]")
            ax.grid(True, which="both", lw=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(f"analogsim scaling: CrossbarArray ({PRESET}) read and pulse updates")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        with kernel_threads():
            rss_child(argv[1], int(argv[2]), int(argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 points per sweep, 2 repeats")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per point")
    ap.add_argument("--out-dir", default=str(ROOT / "docs" / "img"),
                    help="where perf_scaling.png and perf_scaling.md go")
    ap.add_argument("--no-rss", action="store_true", help="skip the subprocess RSS column")
    ap.add_argument("--threads", type=int, default=None,
                    help="numba threads (default: NUMBA_NUM_THREADS, i.e. all cores)")
    args = ap.parse_args(argv)
    if args.threads is not None:
        set_threads(args.threads)
    repeats = args.repeats or (2 if args.quick else 9)
    batches = QUICK_BATCHES if args.quick else BATCHES
    widths = QUICK_WIDTHS if args.quick else WIDTHS
    # Quick mode runs one subprocess (the code path stays exercised), not one per point.
    rss = "off" if args.no_rss or not rss_available() else ("first" if args.quick else "all")
    print(machine_info())
    print(f"load average before: {os.getloadavg()[0]:.2f}; preset {PRESET}, repeats {repeats}, "
          f"rss column: {rss}")
    with kernel_threads():
        batch_rows = sweep([(b, FIXED_WIDTH) for b in batches], repeats, rss)
        width_rows = sweep([(FIXED_BATCH, n) for n in widths], repeats, rss)
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    slopes = {"batch": fits(batch_rows, "batch"), "width": fits(width_rows, "width")}
    table = markdown(batch_rows, width_rows, slopes)
    print(table)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "perf_scaling.md").write_text(table)
    (out / "perf_scaling.json").write_text(json.dumps({"batch": batch_rows,
                                                       "width": width_rows}, indent=1))
    plot(batch_rows, width_rows, out / "perf_scaling.png")
    print(f"wrote {out / 'perf_scaling.png'}, {out / 'perf_scaling.md'} and .json")


if __name__ == "__main__":
    main()
