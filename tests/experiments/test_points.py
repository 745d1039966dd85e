"""Run parameters: key namespaces, bundles, value parsing, errors, and one real run."""

from __future__ import annotations

import datetime
import math

import numpy as np
import pytest

from analogsim.experiments.points import (
    HW_KEYS,
    RUN_KEYS,
    eps_summary,
    execute,
    expand_bundles,
    resolve_point,
    run_point,
)
from analogsim.fields import parse_literal, parse_override
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
    ({"colour": 1}, r"^run parameters: key 'colour' is unknown; allowed: hardware, model, rule, "
                    r".*drift_s, hw.<section>.<field>, model.<field>"),
    ({"noise.bogus": 1}, r"^run parameters: noise: key 'bogus' is unknown; allowed: read_noise, "
                         r"out_noise, prog_noise, read_noise_model$"),
    ({"hw.adc.bitz": 1}, r"^run parameters: hw.adc: key 'bitz' is unknown \(did you mean "
                         r"'bits'\?\); allowed: bits, out_bound"),
    ({"hw.nosie.read_noise": 1}, r"^run parameters: hw: key 'nosie.read_noise' is unknown "
                                 r"\(did you mean 'noise.read_noise'\?\); allowed: name, "
                                 r"dac.bits"),
    ({"model.depth": 3}, r"^run parameters: model: key 'depth' is unknown; allowed: name, sizes, "
                         r"hidden"),
    ({"model.hiden": "relu"}, r"model: key 'hiden' is unknown \(did you mean 'hidden'\?\)"),
    ({"train.lrr": 0.1}, r"train: key 'lrr' is unknown \(did you mean 'lr'\?\)"),
    ({"rule.bogus": 1}, r"^run parameters: rule 'dfa': option 'bogus' is unknown; allowed: "
                        r"feedback, feedback_scale, zero_init, conv_layers$"),
    ({"rule": "bp", "rule.zero_init": True}, r"rule 'bp': option 'zero_init' is unknown; "
                                             r"allowed: feedback, feedback_scale, "
                                             r"conv_layers$"),
    ({"rule": "dtp", "rule.tpo": "inverse"}, r"option 'tpo' is unknown \(did you mean 'top'"),
    ({"rule.feedback": "optical"}, r"^run parameters: rule.feedback = 'optical' is invalid; "
                                   r"allowed: one of 'analog', 'digital'$"),
    ({"hardware": "nope"}, r"hardware preset 'nope' is unknown; allowed: ideal, "),
    ({"hardware": "missing.toml"}, r"'missing.toml' does not exist"),
    ({"model": "nope"}, r"model preset 'nope' is unknown"),
    ({"rule": "backprop"}, r"train.rule = 'backprop' is invalid; allowed: one of 'bp', 'fa'"),
    ({"epochs": 0}, r"^run parameters: train.epochs = 0 is invalid; allowed: an integer in "
                    r"\[1, 100000\]$"),
    ({"lr": "fast"}, r"train.lr = 'fast' is invalid; allowed: a real number in \[0, 1000\]"),
    ({"hw.noise.read_noise": -1.0}, r"noise.read_noise = -1.0 is invalid"),
    ({"model.sizes": [64, 0, 10]}, r"model.sizes = \(64, 0, 10\) is invalid; allowed: a list"),
    ({"alignment": "yes"}, r"^alignment = 'yes' is invalid; allowed: true or false$"),
    ({"drift_s": -5}, r"^drift_s = -5 is invalid; allowed: a real number in \[0, inf\)$"),
    ({"drift_s": math.inf}, r"drift_s = inf is invalid"),
    ({"hw.noise.read_noise": [0.1]}, r"noise.read_noise = \[0.1\] is invalid; allowed: a real"),
    ({"hw.noise.read_noise": datetime.date(1979, 5, 27)}, r"noise.read_noise = datetime.date"),
])
def test_errors_say_what_is_allowed(point, match) -> None:
    with pytest.raises(ValueError, match=match) as err:
        resolve_point(point)
    assert "__init__" not in str(err.value) and "Options" not in str(err.value)


def test_values_follow_the_toml_conventions() -> None:
    run = resolve_point({"hardware": "pcm", "hw.adc.bits": "None", "hw.adc.out_bound": 10,
                         "model.surrogate": "none", "model.eps0": 1, "data_dir": "none",
                         "rule.feedback_scale": 2, "drift_s": 5})
    assert run.hw.adc.bits is None and run.hw.adc.out_bound == 10.0
    assert run.model.surrogate is None and type(run.model.eps0) is float
    assert run.train.data_dir is None and run.train.rule_options == {"feedback_scale": 2.0}
    assert type(run.drift_s) is float
    assert resolve_point({"hw.name": "mine"}).hw.name == "mine"


def test_key_lists_cover_every_field() -> None:
    assert "adc.bits" in HW_KEYS and "name" in HW_KEYS and "cost.t_read_ns" in HW_KEYS
    assert RUN_KEYS[:3] == ("hardware", "model", "rule") and RUN_KEYS[-2:] == ("alignment",
                                                                               "drift_s")


def test_malformed_hardware_file(tmp_path) -> None:
    path = tmp_path / "hw.toml"
    path.write_text("[noise\nread_noise = 1")
    with pytest.raises(ValueError, match="malformed TOML"):
        resolve_point({"hardware": str(path)})
    path.write_text('base = "rram"\n[noise]\nread_noise = 0.03\n')
    assert resolve_point({"hardware": str(path)}).hw.noise.read_noise == 0.03


def test_value_parsing() -> None:
    """``--set`` values go through the one override parser of :mod:`analogsim.fields`."""
    assert parse_literal("6") == 6 and parse_literal("0.02") == 0.02
    assert parse_literal("true") is True and parse_literal("relu") == "relu"
    assert parse_literal('"soft"') == "soft" and parse_literal("[64, 32, 10]") == [64, 32, 10]
    assert math.isinf(parse_literal("inf"))
    assert parse_override("noise.read_noise=0.05") == ("noise.read_noise", 0.05)
    with pytest.raises(ValueError, match=r"override 'lr' is invalid; allowed: 'key=value'"):
        parse_override("lr")
    with pytest.raises(ValueError, match="is not a TOML literal"):
        parse_override("model.hidden=a b")


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
