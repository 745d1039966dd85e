"""The public API: `import analogsim as asim`, Result, reprs, argument order and input rules."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping

import numpy as np
import pytest

import analogsim as asim
from analogsim.experiments.points import execute, resolve_point
from analogsim.experiments.result import Result


@pytest.fixture(scope="module")
def result() -> Result:
    return asim.train("dfa", "pcm", epochs=2, seed=1, quiet=True)


def _no_wall(record: dict) -> dict:
    record = json.loads(json.dumps(record, default=float))
    record["metrics"].pop("wall_time_s")
    return record


def test_train_returns_a_result_that_is_the_runners_record(result) -> None:
    assert isinstance(result, Mapping) and set(result) == {
        "config", "metrics", "epochs", "ledger", "energy_breakdown_pj"}
    assert result["metrics"]["test_accuracy"] == result.metrics["test_accuracy"] > 0.5
    direct = execute(resolve_point({"rule": "dfa", "hardware": "pcm", "epochs": 2,
                                    "seed": 1}))
    assert _no_wall(result.to_dict()) == _no_wall(direct)  # the same run, the same record
    d = result.to_dict()
    d["metrics"]["test_accuracy"] = -1.0
    assert result.metrics["test_accuracy"] != -1.0  # a copy
    with pytest.raises(TypeError):
        result["metrics"] = {}  # read-only
    assert repr(result).startswith("Result(rule='dfa', hardware='pcm', model='digits-small', "
                                   "epochs=2, test_accuracy=")


def test_to_json_and_table_are_what_the_cli_prints(result, capsys) -> None:
    from analogsim.experiments import cli

    assert cli.main(["train", "--rule", "dfa", "--hardware", "pcm", "--epochs", "2",
                     "--seed", "1", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    ours = json.loads(result.to_json())
    assert set(ours) == set(printed) and "test_accuracy" in ours and "epochs" in ours
    for rec in (ours, printed):
        rec.pop("wall_time_s")
    assert ours == printed
    assert cli.main(["train", "--rule", "dfa", "--hardware", "pcm", "--epochs", "2",
                     "--seed", "1"]) == 0
    table = capsys.readouterr().out
    strip = [ln for ln in result.table().splitlines() if not ln.startswith("wall time")]
    assert strip == [ln for ln in table.splitlines() if not ln.startswith("wall time")]


def test_plot_returns_the_axes_and_draws_where_asked(result, tmp_path) -> None:
    from matplotlib.figure import Figure

    ax = result.plot()
    assert ax.get_ylabel() == "validation accuracy" and len(ax.lines) == 1
    fig = Figure()
    mine = fig.subplots()
    assert result.plot(ax=mine, key="train_loss", path=tmp_path / "l.png") is mine
    assert (tmp_path / "l.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="key = 'nope' is not in the epoch records"):
        result.plot(key="nope")


def test_to_dataframe_with_and_without_pandas(result, monkeypatch) -> None:
    try:
        import pandas  # noqa: F401
    except ImportError:
        have = False
    else:
        have = True
    if have:
        df = result.to_dataframe()
        assert list(df.index) == [1, 2] and df["val_accuracy"].iloc[-1] == pytest.approx(
            result.epochs[-1]["val_accuracy"]) and set(df["rule"]) == {"dfa"}
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if it were not installed
    with pytest.raises(ImportError, match="needs pandas.*pip install pandas"):
        result.to_dataframe()


def test_the_result_keeps_the_trained_network(result) -> None:
    net = result.network
    x, y = result.dataset.get_split("test")
    assert net.evaluate(x, asim.onehot(y, 10))[1] == pytest.approx(
        result.metrics["test_accuracy"], abs=0.03)  # fresh read noise, same network
    one = net.predict(x[0].astype(np.float64))  # one sample, lossless float64
    assert one.shape == (10,) and one.dtype == np.float32
    text = repr(net)
    assert text.startswith("Network('digits-small' on 'pcm', seed=1, loss='xent', 2 layers:")
    assert "layer0: AnalogLinear(64 -> 64, tanh)" in text
    assert repr(net.ledger).startswith("Ledger('network', ") and "mvm=" in repr(net.ledger)


def test_train_takes_configs_overrides_and_a_rule_class() -> None:
    from analogsim.rules.feedback import FA

    class MyFA(FA):
        name = "my_fa_for_test_api"

    hw = asim.get_preset("ideal")
    model = asim.load_model("digits-small").replace(sizes=(64, 16, 10))
    try:
        r = asim.train(MyFA, hw, model, epochs=1, overrides={"noise.read_noise": 0.02},
                       quiet=True)
        assert r.config["train"]["rule"] == "my_fa_for_test_api" and asim.RULES[r.rule] is MyFA
    finally:
        asim.RULES.pop("my_fa_for_test_api", None)  # registered on first use: not for others
    assert r.config["hardware"]["noise"]["read_noise"] == 0.02
    assert r.config["model"]["sizes"] == [64, 16, 10]
    with pytest.raises(ValueError, match="hardware preset 'pcn' is unknown; allowed: .*pcm"):
        asim.train("dfa", "pcn")
    with pytest.raises(ValueError, match="nois"):
        asim.train("dfa", overrides={"nois.read_noise": 0.1})


def test_progress_advances_per_batch(capsys) -> None:
    asim.train("dfa", epochs=1, progress=True)
    err = capsys.readouterr().err
    assert "32/32" in err and "batch" in err  # 1000 training digits in batches of 32


def test_make_array_takes_n_in_then_n_out_like_the_layers() -> None:
    hw = asim.get_preset("ideal")
    arr = asim.make_array(64, 10, hw, seed=0)
    layer = asim.AnalogLinear(64, 10, hw=hw, seed=0)
    assert arr.shape == layer.shape == layer.array.shape == (10, 64)  # (n_out, n_in)
    assert (arr.n_in, arr.n_out) == (64, 10)
    assert isinstance(asim.CrossbarArray(64, 10, hw, seed=0), asim.CrossbarArray)
    assert repr(arr).startswith("BidirectionalArray(n_in=64, n_out=10, hw='ideal', seed=0, "
                                "tiles=1 of")  # ideal: periphery.bidirectional = true
    pcm = asim.make_array(64, 10, asim.get_preset("pcm"), seed=0)
    w = np.random.default_rng(0).uniform(-0.5, 0.5, (10, 64))  # float64 weights: fine
    pcm.program(w)
    y = pcm.mvm(np.ones(64, np.float32))  # one vector in, one vector out
    assert y.shape == (10,)
    assert "reads=1" in repr(pcm) and "clock=0 s" in repr(pcm)
    assert "write_verify=" in repr(pcm.ledger)


def test_the_public_names() -> None:
    for name in ("get_preset", "PRESETS", "CrossbarArray", "make_array", "Network",
                 "build_network", "ModelConfig", "RULES", "get_rule", "register_rule", "train",
                 "Result", "program_weights", "export_weights", "plot_learning_curves",
                 "load_dataset", "oracle"):
        assert name in asim.__all__ and getattr(asim, name) is not None
    assert asim.Result is Result and "pcm" in asim.PRESETS
    assert set(dir(asim)) >= set(asim.__all__)
