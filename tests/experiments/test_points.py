"""Run parameters: key namespaces, bundles, value parsing, errors, and one real run."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analogsim.experiments.points import (
    eps_summary,
    execute,
    expand_bundles,
    parse_assignment,
    parse_value,
    resolve_point,
    run_point,
)
from analogsim.hardware.presets import get_preset
from analogsim.layers.network import ModelConfig, build_network


def test_defaults() -> None:
    run = resolve_point({})
    assert run.hw == get_preset("ideal") and run.model.name == "digits-small"
    assert run.train.rule == "dfa" and not run.alignment and run.drift_s == 0.0


def test_namespaces_reach_their_configs() -> None:
    run = resolve_point({
        "hardware": "pcm", "rule": "fa", "noise.read_noise": 0.05, "hw.adc.bits": 6,
        "hw.device.levels": "none", "model.hidden": "relu", "train.lr": 0.2, "epochs": 2,
        "rule.feedback": "digital", "alignment": True, "drift_s": 60,
    })
    assert run.hw.noise.read_noise == 0.05 and run.hw.adc.bits == 6
    assert run.hw.device.levels is None and run.hw.device.drift_nu == 0.05  # rest from pcm
    assert run.model.hidden == "relu"
    assert (run.train.rule, run.train.lr, run.train.epochs) == ("fa", 0.2, 2)
    assert run.train.rule_options == {"feedback": "digital"}
    assert run.alignment and run.drift_s == 60.0


def test_hardware_fields_of_one_section_apply_together() -> None:
    # ideal has adc.bits = none with out_bound = inf; setting bits alone would be invalid.
    run = resolve_point({"hw.adc.bits": 8, "hw.adc.out_bound": 10})
    assert (run.hw.adc.bits, run.hw.adc.out_bound) == (8, 10.0)


def test_bundles() -> None:
    assert expand_bundles({"rule+transpose": ["bp", "twin"], "seed": 1}) == {
        "rule": "bp", "transpose": "twin", "seed": 1}
    run = resolve_point({"model.hidden+model.learnable_eps": ["smooth", False]})
    assert run.model.hidden == "smooth" and run.model.learnable_eps is False
    with pytest.raises(ValueError, match=r"bundle 'rule\+transpose' = \['bp'\] is invalid; "
                                         r"allowed: a list of 2 values"):
        expand_bundles({"rule+transpose": ["bp"]})


@pytest.mark.parametrize(("point", "match"), [
    ({"colour": 1}, r"key 'colour' is unknown; allowed: hardware, model, rule"),
    ({"noise.bogus": 1}, r"field 'noise.bogus' is unknown; fields of \[noise\]: read_noise"),
    ({"model.depth": 3}, r"key 'model.depth' is unknown; model fields: name, sizes"),
    ({"hardware": "nope"}, r"hardware preset 'nope' is unknown; allowed: ideal, "),
    ({"hardware": "missing.toml"}, r"'missing.toml' does not exist"),
    ({"model": "nope"}, r"model preset 'nope' is unknown"),
    ({"rule": "backprop"}, r"train.rule = 'backprop' is unknown; allowed: bp, fa"),
    ({"epochs": 0}, r"train.epochs = 0 is invalid"),
    ({"hw.noise.read_noise": -1.0}, r"noise.read_noise = -1.0 is invalid"),
    ({"alignment": "yes"}, r"alignment = 'yes' is invalid; allowed: true or false"),
    ({"drift_s": -5}, r"drift_s = -5 is invalid"),
    ({"hw.noise.read_noise": [0.1]}, r"is invalid; allowed: a number, boolean or string"),
])
def test_errors_say_what_is_allowed(point, match) -> None:
    with pytest.raises(ValueError, match=match):
        resolve_point(point)


def test_malformed_hardware_file(tmp_path) -> None:
    path = tmp_path / "hw.toml"
    path.write_text("[noise\nread_noise = 1")
    with pytest.raises(ValueError, match="malformed TOML"):
        resolve_point({"hardware": str(path)})
    path.write_text('base = "rram"\n[noise]\nread_noise = 0.03\n')
    assert resolve_point({"hardware": str(path)}).hw.noise.read_noise == 0.03


def test_value_parsing() -> None:
    assert parse_value("6") == 6 and parse_value("0.02") == 0.02 and parse_value("true") is True
    assert parse_value("relu") == "relu" and parse_value('"soft"') == "soft"
    assert parse_value("[64, 32, 10]") == [64, 32, 10] and math.isinf(parse_value("inf"))
    assert parse_assignment("noise.read_noise=0.05") == ("noise.read_noise", 0.05)
    with pytest.raises(ValueError, match=r"--set 'lr' is invalid; allowed: key=value"):
        parse_assignment("lr")
    with pytest.raises(ValueError, match="is not a TOML literal"):
        parse_assignment("model.hidden=a b")


def test_run_point_returns_what_a_sweep_stores() -> None:
    rec = run_point({"rule": "dfa", "epochs": 1, "alignment": True, "drift_s": 10})
    assert set(rec) == {"config", "metrics", "ledger", "summary"}
    assert rec["config"]["train"]["rule"] == "dfa"
    (epoch,) = rec["metrics"]
    assert len(epoch["alignment_deg"]) == 2 and epoch["alignment_deg"][1] < 1e-3
    assert 0.0 < rec["summary"]["test_accuracy"] <= 1.0
    # ideal hardware has no drift: the accuracy after drift equals the one before
    assert rec["summary"]["test_accuracy_drift"] == rec["summary"]["test_accuracy"]
    assert set(rec["ledger"]) == {"counts", "energy_breakdown_pj"}


def test_eps_summary_reads_each_hidden_layers_activation() -> None:
    cfg = ModelConfig(sizes=(4, 3, 2, 2), hidden="smooth", output="identity")
    net = build_network(cfg, get_preset("ideal"), seed=0)
    net.layers[0].act.theta[...] = np.log([0.5, 0.1, 0.2])
    net.layers[1].act.theta[...] = np.log([0.01, 0.03])
    s = eps_summary(net)
    assert s["eps_mean_per_layer"] == pytest.approx([0.8 / 3, 0.02])
    assert s["eps_min_per_layer"] == pytest.approx([0.1, 0.01])
    assert s["eps_max_per_layer"] == pytest.approx([0.5, 0.03])
    assert (s["eps_mean"], s["eps_min"], s["eps_max"]) == pytest.approx((0.84 / 5, 0.01, 0.5))
    tanh = build_network(cfg.replace(hidden="tanh"), get_preset("ideal"), seed=0)
    assert eps_summary(tanh) == {}


def test_runs_with_smooth_units_store_their_final_eps() -> None:
    point = {"model": "digits-deep", "model.hidden": "smooth", "model.theta_rule": "chain",
             "lr_eps": 3.0, "rule": "bp", "epochs": 1}
    trainers = []
    out = execute(resolve_point(point), on_checkpoint=lambda tr, state: trainers.append(tr))
    eps = [layer.act.eps for layer in trainers[-1].net.layers[:-1]]
    m = out["metrics"]
    assert m["eps_mean_per_layer"] == pytest.approx([e.mean() for e in eps])
    assert m["eps_min"] == pytest.approx(min(e.min() for e in eps))
    assert m["eps_max"] == pytest.approx(max(e.max() for e in eps))
    assert m["eps_min"] < 0.09 and m["eps_max"] > 0.11  # learned: moved both ways from 0.1
    fixed = run_point({**point, "model.learnable_eps": False})["summary"]
    assert fixed["eps_min"] == pytest.approx(0.1) and fixed["eps_max"] == pytest.approx(0.1)
    assert fixed["eps_mean_per_layer"] == pytest.approx([0.1, 0.1])
    tanh = run_point({"rule": "bp", "epochs": 1})["summary"]
    assert not any(k.startswith("eps") for k in tanh)
