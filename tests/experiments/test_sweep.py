"""Sweep specs, point expansion and the serial, local-process and dask executors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sweep_dummy

from analogsim.experiments.store import ResultsStore
from analogsim.experiments.sweep import (
    WORKER_ENV,
    SweepSpec,
    expand,
    load_spec,
    loads_spec,
    point_id,
    run_sweep,
    spec_from_dict,
)

HERE = Path(__file__).resolve().parent

EXAMPLE = """
name = "rules-vs-read-noise"
description = "three rules against read noise"
[base]
dataset = "digits"
hardware = "rram"
epochs = 3
[grid]
rule = ["bp", "fa", "dfa"]
"hw.noise.read_noise" = [0.0, 0.02, 0.05]
seed = [0, 1, 2]
[random]
n = 10
seed = 0
"hw.adc.bits" = { choice = [4, 6, 8] }
"hw.device.dw_min" = { loguniform = [1e-4, 1e-2] }
lr = { uniform = [0.01, 0.1] }
"""


@pytest.fixture(autouse=True)
def _workers_import_the_dummy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spawned and dask workers find ``sweep_dummy`` through PYTHONPATH (and sys.path)."""
    paths = [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    monkeypatch.syspath_prepend(str(HERE))


def tiny_spec(n_seeds: int = 4, name: str = "tiny", **base) -> SweepSpec:
    return SweepSpec(name=name, base={"dataset": "digits", **base},
                     grid={"seed": list(range(n_seeds))})


def results(path: Path) -> dict[str, tuple]:
    """``{point_id: (config, metrics, ledger, summary)}``: what must not depend on executor."""
    with ResultsStore(path) as store:
        return {r["point_id"]: (r["config"], r["metrics"], r["ledger"], r["summary"])
                for r in store.rows()}


# --------------------------------------------------------------------------- spec


def test_example_spec_loads(tmp_path: Path) -> None:
    path = tmp_path / "sweep.toml"
    path.write_text(EXAMPLE)
    spec = load_spec(path)
    assert spec.name == "rules-vs-read-noise" and spec.base["epochs"] == 3
    assert list(spec.grid) == ["rule", "hw.noise.read_noise", "seed"]
    assert spec.random["n"] == 10 and spec.random["lr"] == {"uniform": [0.01, 0.1]}
    assert spec == loads_spec(EXAMPLE)


def test_random_seed_defaults_to_zero() -> None:
    spec = spec_from_dict({"name": "r", "random": {"n": 2, "lr": {"uniform": [0, 1]}}})
    assert spec.random["seed"] == 0


@pytest.mark.parametrize(("text", "match"), [
    ('name = "x"\nepochs = 3', r"^bad\.toml: top-level key 'epochs' is unknown; allowed: name, "
                              r"description, base, grid, random, select, search$"),
    ('name = "x"\n[sweep]\na = 1', r"top-level key 'sweep' is unknown; allowed: name"),
    ('name = "x"\n[grids]\na = [1]', r"top-level key 'grids' is unknown \(did you mean 'grid'"),
    ("[grid]\nseed = [0]", "'name' is missing"),
    ('name = ""', "name = ''"),
    ('name = "x"\n[grid]\nseed = []', r"\[grid\] 'seed' = \[\] is invalid.*non-empty list"),
    ('name = "x"\n[grid]\nseed = 3', r"\[grid\] 'seed' = 3 is invalid"),
    ('name = "x"\n[grid]\nseed = [1, 1]', "lists 1 twice"),
    ('name = "x"\n[grid]\n"hw..bits" = [4]', "key 'hw..bits' is invalid"),
    ('name = "x"\n[base]\nlr = nan', r"\[base\] 'lr' = nan is invalid"),
    ('name = "x"\n[base.hw.adc]\nbits = 4', "quoted dotted keys"),
    ('name = "x"\n[random]\nlr = { uniform = [0, 1] }', r"\[random\] has no 'n'"),
    ('name = "x"\n[random]\nn = 0\nlr = { uniform = [0, 1] }', r"\[random\] n = 0"),
    ('name = "x"\n[random]\nn = 2\nseed = -1\nlr = { uniform = [0, 1] }', "seed = -1"),
    ('name = "x"\n[random]\nn = 2', "no distributions"),
    ('name = "x"\n[random]\nn = 2\nlr = { uniform = [1, 0] }', "uniform = \\[1, 0\\].*low < high"),
    ('name = "x"\n[random]\nn = 2\nlr = { uniform = [1] }', "two finite numbers"),
    ('name = "x"\n[random]\nn = 2\nlr = { loguniform = [0, 1] }', "0 < low < high"),
    ('name = "x"\n[random]\nn = 2\nb = { randint = [1.5, 3] }', "randint.*integers"),
    ('name = "x"\n[random]\nn = 2\nb = { randint = [5, 3] }', "randint.*low <= high"),
    ('name = "x"\n[random]\nn = 2\nb = { choice = [] }', "choice = \\[\\].*non-empty"),
    ('name = "x"\n[random]\nn = 2\nb = { normal = [0, 1] }',
     r"^bad\.toml: \[random\] 'b': distribution 'normal' is unknown.*; allowed: choice, "
     r"uniform, loguniform, randint$"),
    ('name = "x"\n[random]\nn = 2\nb = { unifrom = [0, 1] }', r"did you mean 'uniform'"),
    ('name = "x"\n[random]\nn = 2\nb = 3', "exactly one of choice"),
    ('name = "x"\n[random]\nn = 2\nb = { uniform = [0, 1], choice = [1] }', "exactly one"),
    ('name = "x"\n[grid]\nlr = [0.1]\n[random]\nn = 2\nlr = { uniform = [0, 1] }',
     r"\['lr'\] are in both"),
    ('name = "x"\n[grid\n', "^bad\\.toml: malformed TOML"),
])
def test_bad_specs_name_the_problem(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        loads_spec(text, source="bad.toml")


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="path = .*nope.toml"):
        load_spec(tmp_path / "nope.toml")


# --------------------------------------------------------------------------- expansion


def test_point_id_is_sha256_of_sorted_json() -> None:
    point = {"seed": 0, "rule": "bp", "hw.noise.read_noise": 0.02}
    assert point_id(point) == "3f9ba57f2705fe98"  # sha256 of '{"hw.noise...":0.02,...}'
    assert point_id(dict(reversed(point.items()))) == "3f9ba57f2705fe98"
    with pytest.raises(ValueError, match="point = "):
        point_id({"x": object()})


def test_expand_grid_times_random_is_deterministic() -> None:
    spec = loads_spec(EXAMPLE)
    points = expand(spec)
    assert len(points) == 3 * 3 * 3 * 10
    assert points == expand(loads_spec(EXAMPLE))
    first = points[0]
    assert (first["rule"], first["hw.noise.read_noise"], first["seed"]) == ("bp", 0.0, 0)
    assert first["dataset"] == "digits" and first["epochs"] == 3
    # the same 10 samples are paired with every grid combination
    samples = [{k: p[k] for k in ("lr", "hw.adc.bits", "hw.device.dw_min")} for p in points]
    assert samples[:10] == samples[10:20] == samples[-10:]
    assert len({point_id(p) for p in points}) == len(points)
    points[0]["rule"] = "changed"  # fresh dicts: the spec is untouched
    assert expand(spec)[0]["rule"] == "bp"


def test_random_samples_are_golden_and_within_bounds() -> None:
    spec = spec_from_dict({"name": "r", "random": {
        "n": 3, "seed": 7, "lr": {"uniform": [0.01, 0.1]}, "bits": {"choice": [4, 6, 8]},
        "dw": {"loguniform": [1e-4, 1e-2]}, "batch": {"randint": [16, 64]}}})
    # Pinned: drawn from random.Random(seed).random() only, stable across Python versions.
    assert expand(spec)[0] == {"batch": 31, "bits": 4, "dw": 0.0020038672435223836,
                               "lr": 0.01651926580007885}
    big = spec_from_dict({"name": "r", "random": {
        "n": 400, "lr": {"uniform": [0.01, 0.1]}, "dw": {"loguniform": [1e-4, 1e-2]},
        "b": {"randint": [1, 3]}}})
    points = expand(big)
    assert all(0.01 <= p["lr"] < 0.1 and 1e-4 <= p["dw"] <= 1e-2 for p in points)
    assert {p["b"] for p in points} == {1, 2, 3}  # both ends included
    assert isinstance(points[0]["b"], int) and isinstance(points[0]["lr"], float)


def test_duplicate_random_points_are_kept_once() -> None:
    spec = spec_from_dict({"name": "r", "grid": {"rule": ["bp", "fa"]},
                           "random": {"n": 20, "bits": {"choice": [4, 8]}}})
    points = expand(spec)
    assert sorted((p["rule"], p["bits"]) for p in points) == [
        ("bp", 4), ("bp", 8), ("fa", 4), ("fa", 8)]


def test_base_only_spec_is_one_point() -> None:
    assert expand(SweepSpec(name="one", base={"lr": 0.1})) == [{"lr": 0.1}]


# --------------------------------------------------------------------------- executors


def test_serial_sweep_stores_every_point(tmp_path: Path, capsys) -> None:
    spec = tiny_spec()
    report = run_sweep(spec, tmp_path / "r.sqlite", "sweep_dummy:ok", executor="serial")
    assert (report.total, report.skipped, report.done, report.failed) == (4, 0, 4, 0)
    assert "4 done" in str(report) and report.wall_time > 0
    assert "tiny" in capsys.readouterr().err  # the progress bar goes to stderr
    with ResultsStore(tmp_path / "r.sqlite") as store:
        rows = store.rows(sweep="tiny")
    assert [r["point"] for r in rows] == expand(spec)
    expected = sweep_dummy.ok(expand(spec)[2])
    assert rows[2]["summary"] == expected["summary"]
    assert rows[2]["metrics"][0]["loss"] == float(expected["metrics"][0]["loss"])
    assert set(rows[2]["extra"]) == {"worker"} and rows[2]["seed"] == 2
    assert set(rows[2]["versions"]) == {"python", "numpy", "numba", "analogsim"}
    assert all(r["status"] == "done" and r["wall_time"] >= 0 for r in rows)


def test_local_processes_match_serial_and_get_one_thread_each(tmp_path: Path) -> None:
    spec = tiny_spec(sleep=0.1)
    before = {key: os.environ.get(key) for key in WORKER_ENV}
    serial = run_sweep(spec, tmp_path / "s.sqlite", "sweep_dummy:slow", "serial",
                       progress=False)
    local = run_sweep(spec, tmp_path / "l.sqlite", "sweep_dummy:slow", "local",
                      max_workers=2, progress=False, warmup_fn="sweep_dummy:warm")
    assert serial.done == local.done == 4
    assert results(tmp_path / "l.sqlite") == results(tmp_path / "s.sqlite")
    with ResultsStore(tmp_path / "l.sqlite") as store:
        workers = [r["extra"]["worker"] for r in store.rows()]
    assert all(w["env"] == WORKER_ENV and w["pid"] != os.getpid() for w in workers)
    assert {key: os.environ.get(key) for key in WORKER_ENV} == before  # driver restored
    assert sweep_dummy.WARMED == [os.getpid()]  # warm-up ran once, in the driver


def test_resume_runs_only_unfinished_points(tmp_path: Path) -> None:
    spec = tiny_spec(n_seeds=6)
    pids = [point_id(p) for p in expand(spec)]
    path = tmp_path / "r.sqlite"
    fake = {"config": {}, "metrics": [], "ledger": {}, "summary": {"fake": True}}
    with ResultsStore(path) as store:  # as if a sweep had been killed part-way
        for pid, point in zip(pids[:2], expand(spec)[:2], strict=True):
            store.record_done(pid, sweep="tiny", point=point, **fake)
        store.mark_running(pids[2], sweep="tiny", point=expand(spec)[2])
        store.record_failed(pids[3], "old error", sweep="tiny", point=expand(spec)[3])

    kept = run_sweep(spec, path, "sweep_dummy:ok", "serial", progress=False,
                     retry_failed=False)
    assert (kept.skipped, kept.done, kept.failed) == (3, 3, 0)
    with ResultsStore(path) as store:
        assert store.status(pids[3]) == "failed"

    report = run_sweep(spec, path, "sweep_dummy:ok", "serial", progress=False)
    assert (report.total, report.skipped, report.done, report.failed) == (6, 5, 1, 0)
    with ResultsStore(path) as store:
        summaries = [row["summary"] for row in store.rows()]
    assert summaries[:2] == [{"fake": True}] * 2  # done points were not run again
    assert all("test_accuracy" in s for s in summaries[2:])
    again = run_sweep(spec, path, "sweep_dummy:ok", "serial", progress=False)
    assert (again.skipped, again.done) == (6, 0)


KILLED = """
import sys
from analogsim.experiments.sweep import SweepSpec, run_sweep
spec = SweepSpec(name="killed", base={"sleep": 0.1}, grid={"seed": list(range(8))})
run_sweep(spec, sys.argv[1], "sweep_dummy:slow", "serial", progress=False)
"""


def test_a_killed_sweep_loses_only_the_run_in_flight(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(path)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if path.exists():
                with ResultsStore(path) as store:
                    if len(store.done_ids()) >= 2:
                        break
    finally:
        proc.kill()  # SIGKILL: no cleanup of any kind in the driver
        proc.wait()
    with ResultsStore(path) as store:
        assert store.integrity_ok()
        statuses = list(store.statuses().values())
    n_done = statuses.count("done")
    assert 2 <= n_done < 8 and statuses.count("running") <= 1
    spec = SweepSpec(name="killed", base={"sleep": 0.1}, grid={"seed": list(range(8))})
    report = run_sweep(spec, path, "sweep_dummy:slow", "serial", progress=False)
    assert (report.skipped, report.done, report.failed) == (n_done, 8 - n_done, 0)


@pytest.mark.parametrize("executor", ["serial", "local"])
def test_failing_points_are_recorded_and_the_sweep_goes_on(tmp_path: Path, executor) -> None:
    report = run_sweep(tiny_spec(), tmp_path / "r.sqlite", "sweep_dummy:boom", executor,
                       max_workers=2, progress=False)
    assert (report.done, report.failed) == (2, 2)
    with ResultsStore(tmp_path / "r.sqlite") as store:
        rows = {r["seed"]: r for r in store.rows()}
    assert set(report.failed_ids) == {point_id(p) for p in expand(tiny_spec()) if p["seed"] % 2}
    for seed in (1, 3):
        assert rows[seed]["status"] == "failed" and rows[seed]["summary"] is None
        assert "Traceback" in rows[seed]["error"]
        assert f"ValueError: boom at seed {seed}" in rows[seed]["error"]
    assert rows[0]["status"] == rows[2]["status"] == "done"


def test_a_dying_worker_fails_its_points_and_a_new_pool_goes_on(tmp_path: Path) -> None:
    report = run_sweep(tiny_spec(n_seeds=6), tmp_path / "r.sqlite", "sweep_dummy:die",
                       "local", max_workers=2, progress=False)
    assert report.done + report.failed == 6 and 1 <= report.failed <= 2
    with ResultsStore(tmp_path / "r.sqlite") as store:
        rows = {r["seed"]: r for r in store.rows()}
        assert store.integrity_ok()
    assert rows[1]["status"] == "failed" and "died abruptly" in rows[1]["error"]
    assert all(rows[s]["status"] == "done" for s in (3, 4, 5))  # run by the new pool


def test_malformed_result_fails_the_point(tmp_path: Path) -> None:
    report = run_sweep(tiny_spec(1), tmp_path / "r.sqlite", "sweep_dummy:bad", "serial",
                       progress=False)
    assert report.failed == 1
    with ResultsStore(tmp_path / "r.sqlite") as store:
        assert "lacks keys ['config', 'metrics', 'ledger']" in store.rows()[0]["error"]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"run_fn": "sweep_dummy.ok"}, "run_fn = 'sweep_dummy.ok' is invalid"),
    ({"run_fn": "no_such_module:ok"}, "run_fn = 'no_such_module:ok' cannot be imported"),
    ({"run_fn": "sweep_dummy:nope"}, "cannot be imported"),
    ({"run_fn": "sweep_dummy:ENV_KEYS"}, "not callable"),
    ({"executor": "threads"}, "executor = 'threads' is invalid"),
    ({"max_workers": 0}, "max_workers = 0"),
    ({"warmup_fn": "x"}, "warmup_fn = 'x'"),
])
def test_bad_run_sweep_arguments(tmp_path: Path, kwargs, match) -> None:
    args = {"run_fn": "sweep_dummy:ok", "executor": "serial", **kwargs}
    with pytest.raises(ValueError, match=match):
        run_sweep(tiny_spec(), tmp_path / "r.sqlite", **args)


def test_missing_dask_says_how_to_install(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # makes `import distributed` fail
    with pytest.raises(ImportError, match=r"pip install analogsim\[dask\]"):
        run_sweep(tiny_spec(), tmp_path / "r.sqlite", "sweep_dummy:ok", "dask-local",
                  progress=False)


@pytest.mark.slow
def test_dask_local_cluster_matches_serial(tmp_path: Path) -> None:
    spec = tiny_spec()
    run_sweep(spec, tmp_path / "s.sqlite", "sweep_dummy:boom", "serial", progress=False)
    report = run_sweep(spec, tmp_path / "d.sqlite", "sweep_dummy:boom", "dask-local",
                       max_workers=2, progress=False)
    assert (report.total, report.done, report.failed) == (4, 2, 2)
    assert results(tmp_path / "d.sqlite") == results(tmp_path / "s.sqlite")
    with ResultsStore(tmp_path / "d.sqlite") as store:
        rows = store.rows()
    for row in rows:
        if row["seed"] % 2:
            assert f"ValueError: boom at seed {row['seed']}" in row["error"]
        else:
            assert row["extra"]["worker"]["env"] == WORKER_ENV
            assert row["extra"]["worker"]["pid"] != os.getpid()


@pytest.mark.slow
def test_dask_scheduler_address(tmp_path: Path) -> None:
    from distributed import LocalCluster

    spec = tiny_spec(2)
    run_sweep(spec, tmp_path / "s.sqlite", "sweep_dummy:ok", "serial", progress=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address="127.0.0.1:0") as cluster:
        report = run_sweep(spec, tmp_path / "d.sqlite", "sweep_dummy:ok",
                           cluster.scheduler_address, progress=False)
    assert (report.total, report.done) == (2, 2)
    assert results(tmp_path / "d.sqlite") == results(tmp_path / "s.sqlite")


def test_a_spec_that_is_a_fifo_or_a_device_is_refused_unread(tmp_path: Path) -> None:
    fifo = tmp_path / "spec.toml"
    os.mkfifo(fifo)
    link = tmp_path / "zero.toml"
    os.symlink("/dev/zero", link)
    for path in (fifo, link):
        with pytest.raises(ValueError, match="allowed: an existing TOML file"):
            load_spec(path)  # would block (FIFO) or never end (/dev/zero) if it were read


def test_relative_paths_in_a_spec_resolve_against_its_folder(tmp_path: Path,
                                                             monkeypatch) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "hw.toml").write_text('base = "pcm"\n')
    (folder / "spec.toml").write_text(
        'name = "rel"\n[base]\nhardware = "hw.toml"\ndata_dir = "data"\n'
        '[grid]\n"model+rule" = [["nets/m.toml", "dfa"], ["digits-small", "bp"]]\n'
        'seed = [0]\n')
    monkeypatch.chdir(tmp_path)  # elsewhere: the spec's folder counts, not the cwd
    spec = load_spec(folder / "spec.toml")
    assert spec.base["hardware"] == str(folder / "hw.toml")
    assert spec.base["data_dir"] == str(folder / "data")
    assert spec.grid["model+rule"] == [[str(folder / "nets" / "m.toml"), "dfa"],
                                       ["digits-small", "bp"]]
