"""Run functions for the sweep tests, importable by spawned and dask worker processes.

Results depend only on the point (a numpy generator seeded from the point's JSON), so the
serial, local and dask executors must store identical values.  Where the run happened (process
id, environment) goes to extra keys, which the executors are allowed to differ on.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import numpy as np

ENV_KEYS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

#: Calls of :func:`warm` in this process (the driver's, when used as ``warmup_fn``).
WARMED: list[int] = []


def _rng(point: dict) -> np.random.Generator:
    digest = hashlib.sha256(json.dumps(point, sort_keys=True).encode()).hexdigest()
    return np.random.default_rng(int(digest[:8], 16))


def ok(point: dict) -> dict:
    """Deterministic fake training run; numpy scalars on purpose (the store converts them)."""
    rng = _rng(point)
    losses = np.sort(rng.random(3).astype(np.float32))[::-1]
    return {
        "config": {"point": point, "layers": [4, 3]},
        "metrics": [{"epoch": e, "loss": losses[e]} for e in range(3)],
        "ledger": {"energy_pj": rng.random() * 1e3, "reads": np.int64(rng.integers(100))},
        "summary": {"test_accuracy": rng.random(), "energy_per_sample_pj": rng.random()},
        "worker": {"pid": os.getpid(), "env": {k: os.environ.get(k) for k in ENV_KEYS}},
    }


def boom(point: dict) -> dict:
    """Like :func:`ok` but raises for odd seeds."""
    if point.get("seed", 0) % 2 == 1:
        raise ValueError(f"boom at seed {point['seed']}")
    return ok(point)


def slow(point: dict) -> dict:
    """Like :func:`ok` after sleeping ``point["sleep"]`` seconds (default 0.2)."""
    time.sleep(point.get("sleep", 0.2))
    return ok(point)


def die(point: dict) -> dict:
    """The worker process exits at once for seed 1 (a crash); other points are :func:`slow`.

    The others being slow keeps the crash inside the first two points in flight.
    """
    if point.get("seed") == 1:
        os._exit(3)
    return slow(point)


def bad(point: dict) -> dict:
    """Returns a result without the required keys."""
    return {"summary": {"x": 1}}


def warm() -> None:
    """Warm-up hook: records that it ran in this process."""
    WARMED.append(os.getpid())


#: Best ``lr`` per ``rule`` for :func:`peaked`.
PEAK = {"a": 0.01, "b": 0.1}


def peaked(point: dict) -> dict:
    """Validation accuracy peaks at ``PEAK[rule]`` (lr ≥ 0.3 fails); the test accuracy peaks
    elsewhere, so a selection that read it would choose differently."""
    if point["lr"] >= 0.3:
        raise ValueError("diverged")
    out = ok(point)
    gap = abs(np.log10(point["lr"]) - np.log10(PEAK[point["rule"]]))
    out["summary"] = {"val_accuracy": 0.9 - 0.1 * gap, "test_accuracy": 0.5 + 0.1 * gap,
                      "epochs": point.get("epochs", 5)}
    return out


def counted(point: dict) -> dict:
    """Like :func:`slow`, and appends the point's seed to the file ``point["log"]`` (one line
    per computation, so a test can count how often each point ran)."""
    with open(point["log"], "a", encoding="utf-8") as f:
        f.write(f"{point['seed']}\n")
    return slow(point)
