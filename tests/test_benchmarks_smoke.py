"""The benchmark scripts run end to end in their ``--quick`` mode (so they cannot rot).

No timing is asserted: a benchmark's numbers depend on the machine and its load. The scripts
run concurrently in subprocesses, each with one numba thread and one BLAS thread: on a
2-core machine shared with other jobs, parallel numba regions can stall for a scheduler
time slice per call, which would make a smoke run slow without testing anything more.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
TIMEOUT_S = 120

#: run label (the script, or the script and a mode) → (extra arguments, texts its output
#: must contain)
SCRIPTS = {
    "bench_crossbar.py": ([], ()),
    "bench_training.py": ([], ("plain float32 BP", "DFA epoch target", "incumbent")),
    "bench_training.py --rounds": (["--rounds", "1", "--presets", "ideal"],
                                   ("median", "bp/bidirectional")),
    "bench_scaling.py": (["--out-dir", "{tmp}"], ("log-log slopes", "wrote")),
    "profile_train.py": ([], ("seconds per epoch", "fixed cost per step", "cProfile")),
    "profile_step.py": ([], ("kernel stages alone", "column trains", "sgemm", "everything else")),
    "bench_optimizers.py": (["--presets", "pcm", "--rules", "dfa"], ("vs sgd", "c_ttv2")),
    "bench_conv.py": ([], ("im2col + GEMM", "LeNet-5", "epoch s")),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Start every script at once, then collect them (wall time ≈ the slowest pair)."""
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    procs = {}
    for name, (extra, _) in SCRIPTS.items():
        tmp = tmp_path_factory.mktemp(name.split()[0].removesuffix(".py"))
        cmd = [sys.executable, str(BENCH / name.split()[0]), "--quick",
               *(a.format(tmp=tmp) for a in extra)]
        procs[name] = (subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=env, cwd=tmp), tmp)
    out = {}
    for name, (proc, tmp) in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        out[name] = (subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr),
                     tmp)
    return out


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_quick_mode_runs(runs, name):
    res, _ = runs[name]
    assert res.returncode == 0, f"{name} failed:\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}"
    assert res.stdout.strip(), f"{name} printed nothing"
    for text in SCRIPTS[name][1]:
        assert text in res.stdout, f"{name}: {text!r} missing from its output"


def test_training_benchmark_covers_every_rule(runs):
    from analogsim.rules import RULES

    res, _ = runs["bench_training.py"]
    rows = [ln.split() for ln in res.stdout.splitlines() if ln.startswith(("ideal ", "aihwkit"))]
    seen = {row[1].split("/")[0] for row in rows if len(row) > 1 and not row[1].isdigit()}
    assert seen == set(RULES), f"rules missing from the table: {set(RULES) - seen}"


def test_scaling_benchmark_writes_plot_and_table(runs):
    _, tmp = runs["bench_scaling.py"]
    png, md = tmp / "perf_scaling.png", tmp / "perf_scaling.md"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = md.read_text()
    assert "| read |" in text and "| stochastic |" in text and "slopes" in text


def test_training_benchmark_rounds_mode_prints_every_target_rule(runs):
    """One numba thread here (see ``runs``): the rounds then measure one thread only."""
    res, _ = runs["bench_training.py --rounds"]
    rows = [ln.split() for ln in res.stdout.splitlines() if ln.startswith(("dfa ", "bp/", "fa "))]
    assert {(r[0], r[1]) for r in rows} == {(v, "1") for v in ("dfa", "bp/bidirectional",
                                                               "bp/probe", "fa")}
