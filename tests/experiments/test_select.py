"""``[select]``: one parameter chosen per setting on validation trials, then the final runs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from sweep_dummy import PEAK

from analogsim.experiments import select
from analogsim.experiments.store import ResultsStore
from analogsim.experiments.sweep import SweepSpec, expand, loads_spec, point_id, run_sweep

HERE = Path(__file__).resolve().parent
SELECT = {"param": "lr", "values": [0.01, 0.1, 0.3], "metric": "val_accuracy",
          "trial.epochs": 1, "trial.seed": 0}


@pytest.fixture(autouse=True)
def _workers_import_the_dummy(monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    monkeypatch.syspath_prepend(str(HERE))


def spec(**select_over) -> SweepSpec:
    return SweepSpec(name="sel", base={"epochs": 5, "lr": 0.05},
                     grid={"rule": ["a", "b"], "seed": [0, 1, 2]},
                     select={**SELECT, **select_over})


def test_trials_collapse_the_seeds_and_take_the_overrides() -> None:
    s = spec()
    trials = select.trial_points(expand(s), s.select, s.tuning()[2], point_id)
    assert len(trials) == 2 * 3  # rules x candidates; seeds collapse to trial.seed = 0
    assert {(t["rule"], t["lr"], t["epochs"], t["seed"]) for t in trials} == {
        (r, lr, 1, 0) for r in "ab" for lr in (0.01, 0.1, 0.3)}


def test_choice_reads_the_metric_and_breaks_ties_by_order() -> None:
    s = spec()
    point = expand(s)[0]
    ids = {lr: point_id({**point, "epochs": 1, "seed": 0, "lr": lr}) for lr in SELECT["values"]}
    summaries = {ids[0.01]: {"val_accuracy": 0.5}, ids[0.1]: {"val_accuracy": 0.7},
                 ids[0.3]: {"val_accuracy": float("nan")}}
    cands = s.tuning()[2]
    assert select.choose(point, s.select, cands, summaries, point_id) == {"lr": 0.1}
    summaries[ids[0.01]] = {"val_accuracy": 0.7}  # a tie: the earlier candidate
    assert select.choose(point, s.select, cands, summaries, point_id) == {"lr": 0.01}
    low = spec(metric="val_loss", goal="min")
    loss = {ids[0.01]: {"val_loss": 0.4}, ids[0.1]: {"val_loss": 0.2}}
    assert select.choose(point, low.select, cands, loss, point_id) == {"lr": 0.1}
    assert select.choose(point, s.select, cands, {}, point_id) is None


def test_sweep_runs_trials_then_finals_with_the_validation_choice(tmp_path) -> None:
    store = tmp_path / "r.sqlite"
    rep = run_sweep(spec(), store, run_fn="sweep_dummy:peaked", executor="serial",
                    progress=False)
    # 6 trials (2 of them fail: lr = 0.3 diverges) + 6 finals.
    assert (rep.total, rep.done, rep.failed) == (12, 10, 2)
    with ResultsStore(store) as st:
        finals = st.rows("sel")
        trials = st.rows("sel:select")
    assert len(trials) == 6 and len(finals) == 6
    chosen = {(r["point"]["rule"], r["point"]["seed"]): r["point"]["lr"] for r in finals}
    assert chosen == {(r, s): {"a": 0.01, "b": 0.1}[r] for r in "ab" for s in range(3)}
    assert all(r["point"]["epochs"] == 5 and r["status"] == "done" for r in finals)
    again = run_sweep(spec(), store, run_fn="sweep_dummy:peaked", executor="serial",
                      progress=False, retry_failed=False)
    assert (again.done, again.skipped) == (0, 12)  # resumable: nothing runs twice


def test_a_setting_without_any_finished_trial_is_reported_failed(tmp_path) -> None:
    store = tmp_path / "r.sqlite"
    rep = run_sweep(spec(values=[0.3, 0.5]), store, run_fn="sweep_dummy:peaked",
                    executor="serial", progress=False)
    assert (rep.total, rep.done, rep.failed) == (10, 0, 10)  # 4 trials fail, 6 finals unresolved
    with ResultsStore(store) as st:
        rows = st.rows("sel")
    assert len(rows) == 6 and all(r["status"] == "failed" for r in rows)
    assert "[select]: none of the 2 trials of this setting finished" in rows[0]["error"]


@pytest.mark.parametrize("table, match", [
    ({"values": [1, 2], "metric": "val_accuracy"}, "has no 'param'"),
    ({**SELECT, "param": "seed"}, "param = 'seed' is invalid"),
    ({**SELECT, "metric": None}, "metric = None is invalid"),
    ({**SELECT, "values": [0.1]}, "at least two"),
    ({**SELECT, "values": [0.1, 0.1]}, "distinct"),
    ({**SELECT, "metric": "test_accuracy"}, "not measured on the test split"),
    ({**SELECT, "goal": "up"}, "goal = 'up' is invalid"),
    ({**SELECT, "trial.lr": 0.1}, "overrides the selected parameter"),
    ({**SELECT, "budget": 3}, "key 'budget' is unknown"),
])
def test_bad_select_tables_name_the_problem(table, match) -> None:
    with pytest.raises(ValueError, match=match):
        SweepSpec(name="x", select=table)


def test_select_param_may_not_also_be_swept() -> None:
    with pytest.raises(ValueError, match=r"\[select\] 'lr' is also in \[grid\]"):
        loads_spec('name = "x"\n[grid]\nlr = [0.1, 0.2]\n[select]\nparam = "lr"\n'
                   'values = [0.1, 0.2]\nmetric = "val_accuracy"\n')


SEARCH = {"n": 6, "seed": 3, "metric": "val_accuracy", "trial.epochs": 1, "trial.seed": 0,
          "lr": {"loguniform": [0.005, 0.5]}, "lr_aux": {"choice": [0.01, 0.1]}}


@pytest.mark.parametrize("method", ["random", "sobol", "lhs"])
def test_search_candidates_are_seeded_distinct_and_in_range(method) -> None:
    s = SweepSpec(name="s", grid={"rule": ["a"]}, search={**SEARCH, "method": method})
    cands = s.tuning()[2]
    assert cands == SweepSpec(name="s", grid={"rule": ["a"]},
                              search={**SEARCH, "method": method}).tuning()[2]
    assert 2 <= len(cands) <= 6 and len({repr(c) for c in cands}) == len(cands)
    assert all(0.005 <= c["lr"] <= 0.5 and c["lr_aux"] in (0.01, 0.1) for c in cands)
    other = SweepSpec(name="s", grid={"rule": ["a"]},
                      search={**SEARCH, "method": method, "seed": 4}).tuning()[2]
    assert other != cands


def test_lhs_spreads_one_candidate_per_stratum() -> None:
    s = SweepSpec(name="s", search={**SEARCH, "n": 8, "method": "lhs",
                                    "lr": {"uniform": [0.0, 8.0]}})
    assert sorted(int(c["lr"]) for c in s.tuning()[2]) == list(range(8))


def test_search_runs_trials_then_finals_with_the_best_candidate(tmp_path) -> None:
    spec = SweepSpec(name="srch", base={"epochs": 5}, grid={"rule": ["a", "b"],
                                                            "seed": [0, 1]},
                     search={**SEARCH, "n": 8, "lr_aux": {"choice": [0.01]}})
    cands = spec.tuning()[2]
    rep = run_sweep(spec, tmp_path / "r.sqlite", run_fn="sweep_dummy:peaked",
                    executor="serial", progress=False)
    n_ok = sum(c["lr"] < 0.3 for c in cands)
    assert rep.done == 2 * n_ok + 4
    with ResultsStore(tmp_path / "r.sqlite") as st:
        finals = st.rows("srch")
    for row in finals:  # the candidate closest to the rule's peak (validation accuracy)
        rule = row["point"]["rule"]
        best = min((c for c in cands if c["lr"] < 0.3),
                   key=lambda c: abs(np.log10(c["lr"]) - np.log10(PEAK[rule])))
        assert row["point"]["lr"] == best["lr"] and row["point"]["lr_aux"] == 0.01


@pytest.mark.parametrize("table, match", [
    ({**SEARCH, "n": 1}, r"\[search\] n = 1 is invalid"),
    ({k: v for k, v in SEARCH.items() if k != "n"}, "has no 'n'"),
    ({**SEARCH, "method": "grid"}, "method 'grid' is unknown"),
    ({"n": 4, "metric": "val_accuracy"}, "no parameters to search"),
    ({**SEARCH, "lr": {"loguniform": [0, 1]}}, "0 < low < high"),
    ({**SEARCH, "trial.lr": 0.1}, "overrides the selected parameter"),
    ({**SEARCH, "metric": "test_loss"}, "not measured on the test split"),
])
def test_bad_search_tables_name_the_problem(table, match) -> None:
    with pytest.raises(ValueError, match=match):
        SweepSpec(name="x", search=table)


def test_select_and_search_exclude_each_other_and_the_grid() -> None:
    with pytest.raises(ValueError, match=r"\[select\] and \[search\] are both given"):
        SweepSpec(name="x", select=SELECT, search=SEARCH)
    with pytest.raises(ValueError, match=r"\[search\] 'lr' is also in \[grid\]"):
        SweepSpec(name="x", grid={"lr": [0.1]}, search=SEARCH)


def test_report_plots_each_trial_score_against_each_searched_parameter(tmp_path) -> None:
    from analogsim.experiments.report import write_report

    spec = SweepSpec(name="srch", base={"epochs": 5}, grid={"rule": ["a", "b"]},
                     search={**SEARCH, "n": 4})
    run_sweep(spec, tmp_path / "r.sqlite", run_fn="sweep_dummy:peaked", executor="serial",
              progress=False)
    written = write_report(tmp_path / "r.sqlite", tmp_path / "out", formats=["md"])
    names = {p.name for p in written}
    assert "srch-select-validation-vs-lr.png" in names
    text = (tmp_path / "out" / "report.md").read_text()
    assert "srch:select" in text and "validation score vs lr" in text


def test_successive_halving_runs_only_the_best_candidates_longer(tmp_path) -> None:
    search = {**{k: v for k, v in SEARCH.items() if k != "trial.epochs"}, "n": 8,
              "lr_aux": {"choice": [0.01]}, "halving.epochs": [1, 3], "halving.keep": 0.25}
    spec = SweepSpec(name="sh", base={"epochs": 5}, grid={"rule": ["a", "b"], "seed": [0, 1]},
                     search=search)
    cands = [c for c in spec.tuning()[2] if c["lr"] < 0.3]  # lr >= 0.3 fails in the dummy
    rep = run_sweep(spec, tmp_path / "r.sqlite", run_fn="sweep_dummy:peaked",
                    executor="serial", progress=False)
    with ResultsStore(tmp_path / "r.sqlite") as st:
        trials = st.rows("sh:select")
        finals = st.rows("sh")
    n_all = len(spec.tuning()[2])
    assert len(trials) == 2 * n_all + 2 * 2  # rung 1: every candidate, rung 2: 2 of 8
    assert rep.total == len(trials) + len(finals)
    for rule in "ab":
        rung2 = sorted(r["point"]["lr"] for r in trials
                       if r["point"]["rule"] == rule and r["point"]["epochs"] == 3)
        by_peak = sorted(cands, key=lambda c: abs(np.log10(c["lr"]) - np.log10(PEAK[rule])))
        assert rung2 == sorted(c["lr"] for c in by_peak[:2])
        assert {r["point"]["lr"] for r in finals if r["point"]["rule"] == rule} == {
            by_peak[0]["lr"]}


@pytest.mark.parametrize("extra, match", [
    ({"halving.epochs": [3, 1]}, "at least two increasing"),
    ({"halving.epochs": [2]}, "at least two increasing"),
    ({"halving.epochs": [1, 3], "halving.keep": 1.0}, r"halving.keep = 1.0 is invalid"),
    ({"halving.keep": 0.5}, "halving.keep needs halving.epochs"),
    ({"halving.epochs": [1, 3], "trial.epochs": 2}, "trial.epochs and halving.epochs"),
])
def test_bad_halving_settings_name_the_problem(extra, match) -> None:
    table = {k: v for k, v in SEARCH.items() if k != "trial.epochs"}
    with pytest.raises(ValueError, match=match):
        SweepSpec(name="x", search={**table, **extra})
