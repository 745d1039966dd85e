"""Runner: how a run is built (DFA's zero start of the hidden weights)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analogsim import oracle
from analogsim.experiments.data import load_dataset, onehot
from analogsim.experiments.runner import TrainConfig, build_run, train
from analogsim.hardware.presets import get_preset
from analogsim.layers.network import ModelConfig

IDEAL = get_preset("ideal")


def _hidden_weights_zero(hidden: str, zero_init) -> bool:
    cfg = TrainConfig(rule="dfa", rule_options={"zero_init": zero_init})
    tr = build_run(IDEAL, ModelConfig(sizes=(64, 16, 16, 10), hidden=hidden), cfg, 64, 10)
    layers = list(tr.net.layers)
    hidden_zero = [not np.any(oracle.weights(layer.array)) for layer in layers[:-1]]
    assert np.any(oracle.weights(layers[-1].array))  # the output layer never starts at zero
    assert len(set(hidden_zero)) == 1
    return hidden_zero[0]


@pytest.mark.parametrize(("hidden", "zero_init", "zero"), [
    ("tanh", "auto", True), ("sigmoid", "auto", True), ("smooth", "auto", True),
    ("relu", "auto", False),  # f'(0) = 0: a zero start would never move
    ("relu", True, True), ("tanh", False, False),
])
def test_dfa_zero_init_follows_the_slope_at_zero(hidden, zero_init, zero) -> None:
    assert _hidden_weights_zero(hidden, zero_init) is zero


def test_dfa_with_relu_trains_by_default_and_not_from_zero() -> None:
    ds = load_dataset("digits")
    model = ModelConfig(sizes=(64, 32, 32, 10), hidden="relu")
    accs = {}
    for zero_init in ("auto", True):
        cfg = TrainConfig(rule="dfa", epochs=2, seed=0, rule_options={"zero_init": zero_init})
        accs[zero_init] = train(IDEAL, model, cfg, dataset=ds)["metrics"]["test_accuracy"]
    assert accs["auto"] > 0.4  # chance is 0.1
    assert accs[True] < 0.2  # every hidden δ is 0 forever: chance


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_dfa_zero_init_option_is_checked(bad) -> None:
    with pytest.raises(ValueError, match=r"zero_init = .* allowed: 'auto', true or false"):
        build_run(IDEAL, ModelConfig(sizes=(64, 8, 10)),
                  TrainConfig(rule="dfa", rule_options={"zero_init": bad}), 64, 10)


def test_train_returns_plain_json_data():
    """The documented contract: the record is JSON-serialisable (no trainer object inside)."""

    ds = load_dataset("digits")
    cfg = TrainConfig(rule="dfa", epochs=1, seed=0)
    model = ModelConfig(sizes=(64, 16, 10))
    rec = train(IDEAL, model, cfg, dataset=ds)
    back = json.loads(json.dumps(rec))
    assert back["metrics"]["test_accuracy"] == rec["metrics"]["test_accuracy"]
    assert set(rec) == {"config", "metrics", "epochs", "ledger", "energy_breakdown_pj"}
    # A handle on the trained network: build the trainer and pass it in.
    tr = build_run(IDEAL, model, cfg, ds.n_features, ds.n_outputs)
    again = train(IDEAL, model, cfg, dataset=ds, trainer=tr)
    assert again["metrics"]["test_accuracy"] == rec["metrics"]["test_accuracy"]
    x, y = ds.get_split("test")
    assert 0.0 <= tr.net.evaluate(x, onehot(y, ds.n_classes))[1] <= 1.0


@pytest.mark.parametrize("sizes", [(784, 16, 10), (64, 16, 5)])
def test_a_model_that_does_not_fit_the_data_is_refused_not_resized(sizes):
    ds = load_dataset("digits")
    with pytest.raises(ValueError, match=r"sizes = \[.*\] has .* but data set 'digits' has 64 "
                                         r"features and 10 outputs; allowed: .*model.sizes="):
        train(IDEAL, ModelConfig(sizes=sizes), TrainConfig(rule="dfa", epochs=1), dataset=ds)
    with pytest.raises(ValueError, match="allowed: a model with sizes"):
        build_run(IDEAL, ModelConfig(sizes=sizes), TrainConfig(rule="dfa"), 64, 10)
