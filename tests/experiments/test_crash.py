"""Crash-safe sweeps: SIGKILL the driver or a worker, re-run, lose nothing, change nothing.

The driver runs in a subprocess with the local process executor; it is killed with SIGKILL
(no cleanup of any kind) at random, seeded moments — after a random number of points have
been stored plus a random delay, so kills land before, between and during the store's writes.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from analogsim.experiments.store import ResultsStore
from analogsim.experiments.sweep import SweepSpec, expand, point_id, run_sweep

HERE = Path(__file__).resolve().parent
N_POINTS = 20
DRIVER = """
import sys
from analogsim.experiments.sweep import SweepSpec, run_sweep
spec = SweepSpec(name="crash", base={"sleep": 0.08}, grid={"seed": list(range(int(sys.argv[2])))})
run_sweep(spec, sys.argv[1], "sweep_dummy:slow", "local", max_workers=2, progress=False)
"""


@pytest.fixture(autouse=True)
def _workers_import_the_dummies(monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    monkeypatch.syspath_prepend(str(HERE))


def _n_done(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        con = sqlite3.connect(path, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM runs WHERE status = 'done'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:  # table not created yet
        return 0


def _snapshot(path: Path) -> dict[str, dict]:
    """Rows by point id, checking integrity and uniqueness on the way."""
    with ResultsStore(path) as store:
        assert store.integrity_ok()
        rows = store.rows()
        n_rows = store._conn.execute("SELECT COUNT(*), COUNT(DISTINCT point_id) FROM runs"
                                     ).fetchone()
    assert n_rows[0] == n_rows[1] == len(rows)
    assert {r["status"] for r in rows} <= {"running", "done", "failed"}
    return {r["point_id"]: r for r in rows}


def _session(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid`` (the driver's and its workers')."""
    out = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.getsid(int(entry)) == sid:
                state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    out.append(int(entry))
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            pass
    return out


def _kill_driver_at(path: Path, n_done: int, delay: float) -> None:
    """Start the driver; SIGKILL it once ``n_done`` points are stored plus ``delay`` s."""
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(path), str(N_POINTS)],
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None and _n_done(path) < n_done:
            time.sleep(0.01)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # Orphaned workers notice that the driver died and exit by themselves.
        deadline = time.monotonic() + 10
        while _session(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _session(proc.pid), "workers outlived the killed driver"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_driver_killed_repeatedly_then_resumed(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    rng = np.random.default_rng(2024)
    first_seen: dict[str, tuple] = {}
    progress = []
    for _ in range(4):
        target = _n_done(path) + int(rng.integers(0, 4))
        _kill_driver_at(path, target, float(rng.uniform(0.0, 0.15)))
        rows = _snapshot(path) if path.exists() else {}
        for pid, row in rows.items():
            if row["status"] != "done":
                continue
            seen = (row["summary"], row["metrics"], row["ledger"], row["config"],
                    row["finished_at"])
            # A point stored as done is never run or rewritten again.
            assert first_seen.setdefault(pid, seen) == seen
        progress.append(len(first_seen))
    assert any(0 < n < N_POINTS for n in progress), progress  # kills interrupted real work

    spec = SweepSpec(name="crash", base={"sleep": 0.08}, grid={"seed": list(range(N_POINTS))})
    report = run_sweep(spec, path, "sweep_dummy:slow", "local", max_workers=2, progress=False)
    assert (report.skipped, report.failed) == (len(first_seen), 0)
    rows = _snapshot(path)
    assert sorted(rows) == sorted(point_id(p) for p in expand(spec))  # each exactly once
    assert all(r["status"] == "done" for r in rows.values())
    for pid, seen in first_seen.items():
        r = rows[pid]
        assert (r["summary"], r["metrics"], r["ledger"], r["config"], r["finished_at"]) == seen


def test_worker_killed_is_recorded_and_redone(tmp_path: Path) -> None:
    path, marker = tmp_path / "r.sqlite", tmp_path / "killed"
    spec = SweepSpec(name="victim", base={"sleep": 0.05, "marker": str(marker), "victim": 2},
                     grid={"seed": list(range(6))})
    report = run_sweep(spec, path, "crash_dummy:kill_once", "local", max_workers=2,
                       progress=False)
    assert marker.exists() and report.done + report.failed == 6
    victim = point_id(expand(spec)[2])
    assert victim in report.failed_ids and report.failed <= 2  # the victim and one in flight
    rows = _snapshot(path)
    assert rows[victim]["status"] == "failed" and "died abruptly" in rows[victim]["error"]
    done_before = {pid: r["summary"] for pid, r in rows.items() if r["status"] == "done"}

    again = run_sweep(spec, path, "crash_dummy:kill_once", "local", max_workers=2,
                      progress=False)
    assert (again.skipped, again.done, again.failed) == (6 - report.failed, report.failed, 0)
    rows = _snapshot(path)
    assert len(rows) == 6 and all(r["status"] == "done" for r in rows.values())
    assert all(rows[pid]["summary"] == s for pid, s in done_before.items())
