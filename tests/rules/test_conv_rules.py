"""Every rule on conv networks: what runs, what learns, what is refused, Crafton's hybrid."""

from __future__ import annotations

import numpy as np
import pytest

from analogsim.experiments.data import load_dataset
from analogsim.experiments.runner import TrainConfig, build_run, train
from analogsim.hardware.presets import get_preset
from analogsim.layers.network import ModelConfig, build_network
from analogsim.rules import RULES, Schedule, get_rule

IDEAL = get_preset("ideal")
#: A tiny conv net on the 8x8 digits: conv → max pool → dense (a pooled fc) → output.
DIGITS_CONV = ModelConfig(input_shape=(1, 8, 8), hidden="tanh", layers=(
    "conv:8x3x3,padding=1", "pool:max2", "fc:32", "fc:10"))
#: Two conv layers, so BP runs through a convolution and FA needs a conv feedback.
TWO_CONV = ModelConfig(input_shape=(1, 8, 8), hidden="tanh", layers=(
    "conv:4x3x3,padding=1", "pool:avg2", "conv:6x3x3", "fc:12", "fc:10"))


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _batch(n_in: int, b: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, n_in)).astype(np.float32)
    return x, np.eye(10, dtype=np.float32)[rng.integers(0, 10, b)]


#: The rules of issue 16 (the registry may hold more, added by others).
CONV_RULES = ["bp", "fa", "dfa", "ifa", "drtp", "tp", "dtp", "dni", "hybrid"]


def test_the_listed_rules_are_registered():
    assert set(CONV_RULES) <= set(RULES)


@pytest.mark.parametrize("rule", CONV_RULES)
def test_every_rule_steps_on_a_conv_network(rule, digits):
    cfg = TrainConfig(rule=rule, epochs=1, seed=1, transpose="probe")
    tr = build_run(IDEAL, TWO_CONV, cfg, 64, 10)
    before = {k: v.copy() for k, v in tr.net.state_dict().items()}
    x, t = digits.x_train[:16], np.eye(10, dtype=np.float32)[digits.y_train[:16]]
    for _ in range(2):
        res = tr.step(x, t)
        assert np.isfinite(res.loss) and res.critical_path_ns > 0
    after = tr.net.state_dict()
    moved = [k for k in before if k.endswith("array.gp") and not np.array_equal(
        before[k], after[k])]
    assert moved, f"{rule}: no array was updated"


def test_ifa_refuses_max_pooling_above_the_first_layer_naming_rule_and_layer():
    net = build_network(DIGITS_CONV, IDEAL, seed=0)
    with pytest.raises(ValueError, match=r"rule 'ifa' carries the error forward through "
                                         r"layer1's forward read, but layer1 max-pools its "
                                         r"input.*; allowed: average pooling there"):
        get_rule("ifa").build(net)
    get_rule("ifa").build(build_network(TWO_CONV, IDEAL, seed=0))  # average pooling: fine


@pytest.mark.parametrize("rule", ["dfa", "drtp"])
@pytest.mark.parametrize("preset", ["ideal", "aihwkit_default"])
def test_dfa_and_drtp_learn_digits_with_a_conv_layer(rule, preset, digits):
    cfg = TrainConfig(rule=rule, epochs=2, lr=0.3, seed=0)
    out = train(get_preset(preset), DIGITS_CONV, cfg, dataset=digits)
    losses = [e["train_loss"] for e in out["epochs"]]
    assert losses[-1] < 0.8 * losses[0]
    assert out["metrics"]["test_accuracy"] > 0.5  # chance is 0.1


def _deltas(rule, net, x, t):
    if rule.net is not net:
        rule.build(net)
    _, ups = rule.compute(net, x, t, Schedule(net.ledger, IDEAL.cost))
    return {u.name: u.delta for u in ups}


@pytest.mark.parametrize("name", ["fa", "dfa", "drtp"])
def test_conv_layers_bp_is_bp_below_and_the_rule_above(name):
    """Crafton et al. 2019: BP's exact gradient in the conv layers, the rule in the fc ones."""
    net = build_network(TWO_CONV.replace(backend="digital"), IDEAL, seed=2)
    x, t = _batch(net.n_in)
    hybrid = get_rule(name, feedback="digital", conv_layers="bp", seed=3)
    assert hybrid.needs_transpose and not get_rule(name).needs_transpose
    got = _deltas(hybrid, net, x, t)
    bp = _deltas(get_rule("bp"), net, x, t)
    own = _deltas(get_rule(name, feedback="digital", seed=3), net, x, t)
    assert sorted(got) == ["W0", "W1", "W2", "W3"]
    for conv in ("W0", "W1"):
        np.testing.assert_array_equal(got[conv], bp[conv])
        assert not np.allclose(own[conv], bp[conv])
    for fc in ("W2", "W3"):
        np.testing.assert_array_equal(got[fc], own[fc])
    # No feedback for the conv layers (FA's B_l carries layer l's error down to layer l-1).
    assert set(hybrid.feedback) == ({"B3"} if name == "fa" else {"B2"})


def test_conv_layers_bp_charges_the_transpose_and_runs_in_the_runner(digits):
    cfg = TrainConfig(rule="dfa", epochs=1, lr=0.3, seed=0, rule_options={"conv_layers": "bp"},
                      transpose="probe")
    out = train(IDEAL, DIGITS_CONV, cfg, dataset=digits)
    assert out["metrics"]["transpose_energy_share"] > 0
    plain = train(IDEAL, DIGITS_CONV, TrainConfig(rule="dfa", epochs=1, lr=0.3, seed=0),
                  dataset=digits)
    assert plain["metrics"]["transpose_energy_share"] == 0


def test_dfa_hybrid_starts_from_random_weights_and_learns(digits):
    """DFA's zero start would freeze Crafton's hybrid (zero kernels get no BP gradient
    through zero FC weights, and the FC layers see zero inputs): 'auto' starts it from
    random weights, and it learns the digits (it stayed at 0.1 from a zero start)."""
    assert get_rule("dfa", conv_layers="bp").zero_init is False
    assert get_rule("dfa").zero_init == "auto"
    with pytest.raises(ValueError, match=r"^rule.zero_init = True is invalid with "
                                         r"rule.conv_layers = 'bp'"):
        get_rule("dfa", conv_layers="bp", zero_init=True)
    cfg = TrainConfig(rule="dfa", epochs=2, lr=0.3, seed=0, rule_options={"conv_layers": "bp"},
                      transpose="probe")
    # Plain DFA's > 0.5 on this net: test_dfa_and_drtp_learn_digits_with_a_conv_layer.
    assert train(IDEAL, DIGITS_CONV, cfg, dataset=digits)["metrics"]["test_accuracy"] > 0.5


def test_conv_layers_option_is_validated():
    with pytest.raises(ValueError, match=r"^rule.conv_layers = 'all' is invalid; allowed: one "
                                         r"of 'same', 'bp'$"):
        get_rule("dfa", conv_layers="all")
    with pytest.raises(ValueError, match=r"rule 'ifa': option 'conv_layers' is unknown"):
        get_rule("ifa", conv_layers="bp")
    assert get_rule("bp", conv_layers="bp").needs_transpose  # accepted, as FA's feedback
