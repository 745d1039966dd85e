"""Two drivers on one store: points are claimed with leases, each computed exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analogsim.experiments.store import ResultsStore

HERE = Path(__file__).resolve().parent
DRIVER = """
import sys
from analogsim.experiments.sweep import SweepSpec, run_sweep
spec = SweepSpec(name="both", base={"sleep": 0.15, "log": sys.argv[2]},
                 grid={"seed": list(range(12))})
print(run_sweep(spec, sys.argv[1], "sweep_dummy:counted", "serial", progress=False))
"""


def test_two_identical_sweeps_compute_every_point_once(tmp_path) -> None:
    store, log = tmp_path / "r.sqlite", tmp_path / "log.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])}
    procs = [subprocess.Popen([sys.executable, "-c", DRIVER, str(store), str(log)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    runs = log.read_text().split()
    assert sorted(runs, key=int) == [str(s) for s in range(12)]  # each exactly once
    with ResultsStore(store) as st:
        assert sorted(st.statuses().values()) == ["done"] * 12
    done = [int(o.split(" done")[0].rsplit(", ", 1)[1]) for o, _ in outs]
    assert sum(done) == 12 and min(done) >= 1  # both drivers did part of the work


def test_leases_of_other_hosts_hold_until_they_expire(tmp_path) -> None:
    with ResultsStore(tmp_path / "r.sqlite") as st:
        items = [("a" * 16, {"seed": 0}), ("b" * 16, {"seed": 1})]
        assert st.claim(items, sweep="s", owner="elsewhere:1:x", lease_s=0.3) == items
        assert st.claim(items, sweep="s", owner="me:2:y", lease_s=60) == []
        assert st.held_by_others([i for i, _ in items], "me:2:y") == 2
        assert st.renew("elsewhere:1:x", 0.3) == 2
        time.sleep(0.4)
        assert st.claim(items[:1], sweep="s", owner="me:2:y", lease_s=60) == items[:1]
        st.record_done("a" * 16, sweep="s", point={"seed": 0}, config={}, metrics=[],
                       ledger={}, summary={"x": 1})
        # A late result of the first owner does not replace the finished row.
        st.record_done("a" * 16, sweep="s", point={"seed": 0}, config={}, metrics=[],
                       ledger={}, summary={"x": 2}, keep_finished=True)
        st.record_failed("a" * 16, "late failure", sweep="s", point={"seed": 0})
        row = [r for r in st.rows("s") if r["point_id"] == "a" * 16][0]
        assert row["status"] == "done" and row["summary"] == {"x": 1}


def test_a_dead_local_driver_frees_its_claims_at_once(tmp_path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    import platform

    dead = f"{platform.node()}:{proc.pid}:z"
    with ResultsStore(tmp_path / "r.sqlite") as st:
        items = [("c" * 16, {"seed": 0})]
        assert st.claim(items, sweep="s", owner=dead, lease_s=600) == items
        assert st.claim(items, sweep="s", owner="me:3:w", lease_s=60) == items


@pytest.mark.parametrize("retry", [True, False])
def test_failed_points_are_claimed_only_when_retried(tmp_path, retry) -> None:
    with ResultsStore(tmp_path / "r.sqlite") as st:
        st.record_failed("d" * 16, "boom", sweep="s", point={"seed": 0})
        got = st.claim([("d" * 16, {"seed": 0})], sweep="s", owner="me:1:a", lease_s=60,
                       retry_failed=retry)
        assert bool(got) is retry
