"""A diverging run stops with a clear reason and is stored as ``diverged``, never as a result."""

from __future__ import annotations

import json
import math
import sqlite3

import pytest

from analogsim.experiments import cli
from analogsim.experiments.runner import TrainConfig, train
from analogsim.experiments.store import ResultsStore
from analogsim.experiments.sweep import SweepSpec, run_sweep
from analogsim.hardware.presets import get_preset
from analogsim.layers.network import ModelConfig

SMALL = ModelConfig(sizes=(64, 16, 10))


def test_a_huge_lr_stops_as_diverged_without_test_figures() -> None:
    out = train(get_preset("ideal"), SMALL, TrainConfig(lr=1000.0, epochs=4))
    m = out["metrics"]
    assert m["diverged"] is True and m["diverged_epoch"] == 1
    assert "more than diverge_factor = 10 times the first step's" in m["diverged_reason"]
    assert math.isnan(m["test_accuracy"]) and math.isnan(m["val_accuracy"])
    assert out["epochs"] == []  # no finished finite epoch
    json.dumps(out)  # still plain data


def test_a_sane_run_is_not_flagged_and_the_factor_is_a_setting() -> None:
    ok = train(get_preset("ideal"), SMALL, TrainConfig(epochs=1))
    assert "diverged" not in ok["metrics"] and ok["metrics"]["test_accuracy"] > 0.2
    lax = train(get_preset("ideal"), SMALL, TrainConfig(lr=1000.0, epochs=1,
                                                        diverge_factor=1e30))
    assert "diverged" not in lax["metrics"]


def test_a_non_finite_loss_stops_at_that_step(monkeypatch) -> None:
    from analogsim.rules import Trainer

    step = Trainer.step
    calls = []

    def nan_at_third(self, x, t):
        res = step(self, x, t)
        calls.append(1)
        if len(calls) == 3:
            object.__setattr__(res, "loss", float("nan"))
        return res

    monkeypatch.setattr(Trainer, "step", nan_at_third)
    m = train(get_preset("ideal"), SMALL, TrainConfig(epochs=2))["metrics"]
    assert (m["diverged_epoch"], m["diverged_step"]) == (1, 3) and len(calls) == 3
    assert "the loss of step 3 is nan" in m["diverged_reason"]


def test_cli_train_exits_3_with_the_reason(capsys) -> None:
    assert cli.main(["train", "--lr", "1000", "--epochs", "2"]) == cli.EXIT_DIVERGED == 3
    assert "error: training diverged: the mean training loss of epoch 1" in \
        capsys.readouterr().err


def test_cross_entropy_on_regression_targets_is_refused(capsys) -> None:
    argv = ["train", "--dataset", "teacher", "--epochs", "1", "--set", "model.sizes=[20,8,5]"]
    assert cli.main(argv) == 2
    assert "loss = 'xent' (softmax cross-entropy) needs class labels" in capsys.readouterr().err


def test_sweep_stores_diverged_rows_keeps_them_and_reports_them(tmp_path) -> None:
    spec = SweepSpec(name="div", base={"epochs": 1, "model.sizes": [64, 8, 10]},
                     grid={"lr": [0.05, 1000.0]})
    store = tmp_path / "s.sqlite"
    rep = run_sweep(spec, store, "analogsim.experiments.points:run_point", "serial",
                    progress=False)
    assert (rep.done, rep.failed) == (2, 0)
    with ResultsStore(store) as st:
        status = {r["point"]["lr"]: r["status"] for r in st.rows("div")}
    assert status == {0.05: "done", 1000.0: "diverged"}
    again = run_sweep(spec, store, "analogsim.experiments.points:run_point", "serial",
                      progress=False)
    assert again.skipped == 2  # a diverged point is finished: not run again
    from analogsim.experiments.report import load_summaries, table_rows

    _, rows = table_rows(load_summaries(store)[0])
    assert any("1 (1 diverged)" in cells for cells in rows)


def test_a_version_1_store_is_migrated_with_every_row(tmp_path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE runs (point_id TEXT PRIMARY KEY, sweep TEXT NOT NULL, status "
                 "TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')), point_json "
                 "TEXT NOT NULL, config_json TEXT, metrics_json TEXT, ledger_json TEXT, "
                 "summary_json TEXT, extra_json TEXT, error TEXT, wall_time REAL, "
                 "versions_json TEXT, seed INTEGER, started_at TEXT, finished_at TEXT)")
    conn.execute("INSERT INTO runs (point_id, sweep, status, point_json) VALUES "
                 "('0123456789abcdef', 'old', 'done', '{\"seed\": 0}')")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with ResultsStore(path) as st:
        assert st.status("0123456789abcdef") == "done"
        st.record_done("fedcba9876543210", sweep="new", point={"seed": 1}, config={},
                       metrics=[], ledger={}, summary={"diverged": True}, status="diverged")
        assert st.status("fedcba9876543210") == "diverged"
    with pytest.raises(ValueError, match="status = 'weird' is invalid"):
        with ResultsStore(path) as st:
            st.record_done("fedcba9876543210", sweep="new", point={}, config={}, metrics=[],
                           ledger={}, summary={}, status="weird")


def test_each_epoch_records_its_share_of_saturated_adc_conversions(tmp_path) -> None:
    import dataclasses

    hw = get_preset("pcm")
    tight = dataclasses.replace(hw, adc=dataclasses.replace(hw.adc, out_bound=0.5))
    out = train(tight, SMALL, TrainConfig(epochs=2))
    shares = [e["adc_saturated"] for e in out["epochs"]]
    assert all(0 < s < 1 for s in shares)
    ledger = out["ledger"]
    total = ledger["adc_saturations"] / ledger["adc_conversions"]
    assert min(shares) <= total <= max(shares)  # the epochs' shares average to the total
    roomy = train(get_preset("ideal"), SMALL, TrainConfig(epochs=1))
    assert roomy["epochs"][0]["adc_saturated"] == 0.0
    # The report draws the curve when anything saturated.
    from analogsim.experiments.report import write_report

    spec = SweepSpec(name="sat", base={"epochs": 2, "model.sizes": [64, 16, 10],
                                       "hardware": "pcm", "hw.adc.out_bound": 0.5},
                     grid={"seed": [0]})
    run_sweep(spec, tmp_path / "s.sqlite", "analogsim.experiments.points:run_point", "serial",
              progress=False)
    names = {p.name for p in write_report(tmp_path / "s.sqlite", tmp_path / "r",
                                          formats=["md"])}
    assert "sat-adc-saturation.png" in names
