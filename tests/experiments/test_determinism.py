"""Same seed ⇒ the same numbers, whatever the number of numba threads.

Every random draw in the kernels comes from a counter-based generator keyed by (seed, call,
element), and parallel loops write disjoint outputs, so a training run must give identical
metrics, ledger and final state with ``NUMBA_NUM_THREADS=1`` and ``2`` (each run in its own
process: the thread count is fixed when numba starts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import hashlib, json, sys
import numba
from analogsim.experiments.checkpoint import state_arrays
from analogsim.experiments.data import load_dataset
from analogsim.experiments.runner import TrainConfig, build_run, train
from analogsim.hardware.config import replace_field
from analogsim.hardware.presets import get_preset
from analogsim.layers.network import ModelConfig

ds = load_dataset("digits")
out = {"threads": numba.config.NUMBA_NUM_THREADS}
hw = get_preset("aihwkit_default")
for rule, mode in (("bp", "expected"), ("dfa", "stochastic")):
    args = (replace_field(hw, "update.mode", mode), ModelConfig(sizes=(64, 32, 10)),
            TrainConfig(rule=rule, epochs=1, batch_size=32, seed=5))
    trainer = build_run(*args, ds.n_features, ds.n_outputs)
    run = train(*args, dataset=ds, trainer=trainer)
    state = state_arrays(trainer)
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].tobytes())
    metrics = {k: v for k, v in run["metrics"].items() if k != "wall_time_s"}
    out[rule] = {"metrics": metrics, "epochs": run["epochs"], "ledger": run["ledger"],
                 "state": digest.hexdigest()}
print(json.dumps(out, sort_keys=True))
"""


def _run(threads: int) -> subprocess.Popen:
    env = {**os.environ, "NUMBA_NUM_THREADS": str(threads)}
    return subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 cores for 2 numba threads")
def test_one_and_two_threads_give_identical_runs() -> None:
    procs = {n: _run(n) for n in (1, 2)}  # both at once: 2 cores
    results = {}
    for n, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr[-3000:]
        results[n] = json.loads(stdout.strip().splitlines()[-1])
    assert results[1].pop("threads") == 1 and results[2].pop("threads") == 2
    assert results[1] == results[2]
    assert results[1]["bp"]["state"] != results[1]["dfa"]["state"]  # the hash sees the state


def _stored(path) -> dict:
    from analogsim.experiments.store import ResultsStore

    with ResultsStore(path) as store:
        rows = store.rows()
    out = {}
    for r in rows:
        assert r["status"] == "done", r["error"]
        summary = {k: v for k, v in r["summary"].items() if k != "wall_time_s"}
        out[r["point_id"]] = (r["config"], r["metrics"], r["ledger"], summary)
    return out


@pytest.mark.parametrize("executor", ["local", pytest.param("dask-local",
                                                            marks=pytest.mark.slow)])
def test_executors_store_identical_results(tmp_path, executor) -> None:
    """A real training point gives the same record in the driver and in a worker process
    (one numba thread there, the driver's default here)."""
    from analogsim.experiments.sweep import SweepSpec, run_sweep

    if executor == "dask-local":
        pytest.importorskip("distributed")
    spec = SweepSpec(name="det", base={"hardware": "aihwkit_default", "epochs": 1,
                                       "model": "digits-small"},
                     grid={"rule": ["bp", "dfa"], "seed": [3]})
    run_fn = "analogsim.experiments.points:run_point"
    run_sweep(spec, tmp_path / "serial.sqlite", run_fn, "serial", progress=False)
    run_sweep(spec, tmp_path / "other.sqlite", run_fn, executor, max_workers=1,
              progress=False)
    serial = _stored(tmp_path / "serial.sqlite")
    assert len(serial) == 2 and serial == _stored(tmp_path / "other.sqlite")
