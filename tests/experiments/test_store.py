"""Results store: schema, row life cycle, JSON conversion, integrity and two-process writes."""

from __future__ import annotations

import dataclasses
import math
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from analogsim.experiments.store import ResultsStore, to_json

RESULT = {"config": {"rule": "bp"}, "metrics": [{"epoch": 0, "loss": 1.0}],
          "ledger": {"energy_pj": 3.0}, "summary": {"test_accuracy": 0.9}}


@pytest.fixture
def store(tmp_path: Path):
    with ResultsStore(tmp_path / "sub" / "runs.sqlite") as s:
        yield s


def test_creates_schema_with_wal_and_busy_timeout(store: ResultsStore) -> None:
    conn = store._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 2_000  # then _begin waits
    columns = [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
    for name in ("point_id", "sweep", "status", "point_json", "config_json", "metrics_json",
                 "ledger_json", "summary_json", "error", "wall_time", "versions_json", "seed",
                 "started_at", "finished_at"):
        assert name in columns
    assert store.integrity_ok()


def test_reopening_keeps_rows(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    with ResultsStore(path) as s:
        s.record_done("a", sweep="s", point={"seed": 3}, **RESULT)
    with ResultsStore(path) as s:
        assert s.status("a") == "done"
        assert s.rows()[0]["seed"] == 3


def test_life_cycle_running_done_failed_rerun(store: ResultsStore) -> None:
    point = {"rule": "bp", "seed": 1}
    assert store.status("p1") is None
    store.mark_running("p1", sweep="s", point=point)
    assert store.status("p1") == "running"
    (row,) = store.rows()
    assert row["point"] == point and row["seed"] == 1 and row["started_at"]
    assert row["summary"] is None and row["finished_at"] is None

    store.record_done("p1", sweep="s", point=point, **RESULT, extra={"note": "x"},
                      wall_time=1.5, versions={"python": "3.11"})
    (row,) = store.rows()
    assert row["status"] == "done" and row["summary"] == RESULT["summary"]
    assert row["metrics"] == RESULT["metrics"] and row["extra"] == {"note": "x"}
    assert row["wall_time"] == 1.5 and row["versions"] == {"python": "3.11"}
    assert row["started_at"] <= row["finished_at"]
    assert store.done_ids() == {"p1"}

    store.mark_running("p1", sweep="s2", point=point)  # the re-run replaces the old result
    (row,) = store.rows()
    assert row["status"] == "running" and row["summary"] is None and row["sweep"] == "s2"

    store.record_failed("p1", "Traceback: boom", wall_time=0.1)
    (row,) = store.rows()
    assert row["status"] == "failed" and row["error"] == "Traceback: boom"
    assert row["point"] == point and row["sweep"] == "s2"
    assert store.done_ids() == set()


def test_record_failed_without_a_row_needs_the_point(store: ResultsStore) -> None:
    with pytest.raises(ValueError, match="'ghost'.*sweep= and point="):
        store.record_failed("ghost", "err")
    assert store.rows() == []  # the failed transaction was rolled back
    store.record_failed("ghost", "err", sweep="s", point={"seed": 2})
    assert store.statuses() == {"ghost": "failed"}


def test_rows_filter_by_sweep_in_dispatch_order(store: ResultsStore) -> None:
    for pid, sweep in [("z", "a"), ("y", "b"), ("x", "a")]:
        store.mark_running(pid, sweep=sweep, point={"id": pid})
    store.record_done("z", sweep="a", point={"id": "z"}, **RESULT)  # keeps its place
    assert [r["point_id"] for r in store.rows()] == ["z", "y", "x"]
    assert [r["point_id"] for r in store.rows(sweep="a")] == ["z", "x"]
    assert store.statuses("b") == {"y": "running"}
    assert store.done_ids("b") == set() and store.done_ids("a") == {"z"}


def test_numpy_values_dataclasses_and_nan_are_stored(store: ResultsStore) -> None:
    @dataclasses.dataclass
    class Cfg:
        bits: int = 6

    summary = {"acc": np.float32(0.5), "n": np.int64(7), "w": np.arange(3), "loss": math.nan}
    store.record_done("p", sweep="s", point={}, config=Cfg(), metrics=[], ledger={},
                      summary=summary)
    (row,) = store.rows()
    assert row["config"] == {"bits": 6}
    assert row["summary"]["acc"] == 0.5 and row["summary"]["n"] == 7
    assert row["summary"]["w"] == [0, 1, 2] and math.isnan(row["summary"]["loss"])


def test_to_json_is_sorted_and_rejects_unknown_objects() -> None:
    assert to_json({"b": 1, "a": {2, 1}}) == '{"a":[1,2],"b":1}'
    with pytest.raises(TypeError, match="object"):
        to_json({"x": object()})


@pytest.mark.parametrize("bad", ["", None, 3])
def test_bad_point_id_is_rejected(store: ResultsStore, bad) -> None:
    with pytest.raises(ValueError, match="point_id"):
        store.mark_running(bad, sweep="s", point={})


def test_bad_timeout_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timeout = -1"):
        ResultsStore(tmp_path / "x.sqlite", timeout=-1)


def test_close_and_memory_store() -> None:
    s = ResultsStore(":memory:")
    s.mark_running("a", sweep="s", point={})
    assert s.integrity_ok() and repr(s) == "ResultsStore(':memory:')"
    s.close()
    with pytest.raises(sqlite3.ProgrammingError):
        s.status("a")


def test_integrity_check_detects_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    with ResultsStore(path) as s:
        for i in range(200):
            s.record_done(f"p{i:03d}", sweep="s", point={"i": i}, **RESULT,
                          extra={"pad": "x" * 200})
    # Closing the last connection checkpoints the WAL into the main file; now scribble over
    # a page in the middle of the table (page 1, the schema, stays intact).
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 8 * page
    data[5 * page:6 * page] = bytes(range(256)) * (page // 256)
    path.write_bytes(bytes(data))
    with ResultsStore(path) as s:
        assert not s.integrity_ok()


WRITER = """
import sys, time
from pathlib import Path
from analogsim.experiments.store import ResultsStore
path, prefix, go = sys.argv[1:4]
while not Path(go).exists():
    time.sleep(0.002)
with ResultsStore(path) as store:
    for i in range(50):
        pid, point = f"{prefix}{i:02d}", {"writer": prefix, "seed": i}
        store.mark_running(pid, sweep=prefix, point=point)
        store.record_done(pid, sweep=prefix, point=point, config={}, metrics=[{"loss": i}],
                          ledger={}, summary={"i": i})
"""


def test_two_processes_writing_concurrently_lose_nothing(tmp_path: Path) -> None:
    path, go = tmp_path / "shared.sqlite", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), prefix, str(go)],
                              stderr=subprocess.PIPE, text=True) for prefix in ("a", "b")]
    time.sleep(0.3)  # both interpreters up and polling, so they open and write together
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    with ResultsStore(path) as s:
        rows = s.rows()
        assert s.integrity_ok()
    assert len(rows) == 100 and {r["status"] for r in rows} == {"done"}
    for prefix in ("a", "b"):
        mine = sorted((r for r in rows if r["sweep"] == prefix), key=lambda r: r["point_id"])
        assert [r["summary"]["i"] for r in mine] == list(range(50))


def test_a_held_lock_is_announced_then_a_clear_error(tmp_path, capsys) -> None:
    import sqlite3 as sq

    path = tmp_path / "s.sqlite"
    with ResultsStore(path):
        pass
    holder = sq.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's open write transaction
    try:
        with ResultsStore(path, timeout=0.5) as st, pytest.raises(
                sq.OperationalError, match="is locked by another process .* for more than "
                                           "0.5 s; allowed: wait for it or stop it"):
            st.mark_running("a" * 16, sweep="s", point={})
    except sq.OperationalError as exc:  # opening itself may be what waits
        assert "locked by another process" in str(exc)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "another process holds its write lock" in capsys.readouterr().err
