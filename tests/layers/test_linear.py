"""Analog and digital linear layers, and the network container."""

import numpy as np
import pytest

from analogsim.hardware.presets import get_preset
from analogsim.layers.linear import AnalogLinear, DigitalLinear, TransposeRequiredError
from analogsim.layers.network import ModelConfig, build_network

IDEAL = get_preset("ideal")


def _pair(seed=0, **kw):
    a = AnalogLinear(7, 5, hw=IDEAL, seed=seed, activation="tanh", **kw)
    d = DigitalLinear(7, 5, seed=seed, activation="tanh")
    return a, d


def test_analog_layer_on_ideal_hardware_equals_digital():
    a, d = _pair()
    x = np.random.default_rng(0).standard_normal((4, 7)).astype(np.float32)
    ua, ha = a.forward(x)
    ud, hd = d.forward(x)
    np.testing.assert_allclose(ua, ud, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ha, hd, rtol=1e-5, atol=1e-6)


def test_analog_update_matches_digital_update_in_expectation():
    a, d = _pair()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 7)).astype(np.float32)
    delta = rng.standard_normal((16, 5)).astype(np.float32) * 0.1
    for layer in (a, d):
        layer.update(x, delta, 0.01)
    probe = np.eye(7, dtype=np.float32)
    # Read both layers' weights back through their forward paths (bias removed).
    wa, wd = a.read(probe).T, d.read(probe).T
    np.testing.assert_allclose(wa, wd, atol=1e-3)
    np.testing.assert_allclose(a.b, d.b, rtol=1e-6)


def test_weights_are_mapped_with_headroom():
    from analogsim import oracle

    a = AnalogLinear(30, 20, hw=IDEAL, seed=0, headroom=2.0)
    w_dev = oracle.weights(a.array)
    assert np.max(np.abs(w_dev)) <= IDEAL.device.w_max / 2 + 1e-6
    assert np.max(np.abs(w_dev)) > IDEAL.device.w_max / 2 * 0.9


def test_analog_layer_without_transpose_refuses_backward():
    a, _ = _pair()
    with pytest.raises(TransposeRequiredError, match="forward-only"):
        a.backward_input(np.zeros((2, 5), np.float32))


@pytest.mark.parametrize("kw,match", [
    ({"transpose": "mirror"}, "transpose"),
    ({"headroom": 0.5}, "headroom"),
    ({"init": "normal"}, "init"),
])
def test_bad_layer_options(kw, match):
    with pytest.raises(ValueError, match=match):
        AnalogLinear(3, 2, hw=IDEAL, seed=0, **kw)


def test_bad_update_arguments():
    a, _ = _pair()
    x = np.zeros((2, 7), np.float32)
    with pytest.raises(ValueError, match="lr"):
        a.update(x, np.zeros((2, 5), np.float32), -1.0)
    with pytest.raises(ValueError, match="batch"):
        a.update(x, np.zeros((3, 5), np.float32), 0.1)
    with pytest.raises(TypeError, match="float64 .*would round.*allowed: float32"):
        a.forward(x.astype(np.float64) + 0.1)  # lossless float64 (x itself) is accepted


@pytest.mark.parametrize("field,value", [
    ("sizes", (5,)), ("hidden", "gelu"), ("loss", "hinge"), ("eps0", -1.0),
    ("backend", "optical"), ("headroom", 0.1), ("init", "he"), ("surrogate", "magic"),
])
def test_model_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"model.{field}"):
        ModelConfig(**{field: value})


def test_network_caches_forward_and_state_round_trip():
    cfg = ModelConfig(sizes=(6, 5, 4, 3), hidden="smooth")
    hw = get_preset("aihwkit_default")
    net = build_network(cfg, hw, seed=3)
    x = np.random.default_rng(2).standard_normal((4, 6)).astype(np.float32)
    z = net.forward(x)
    assert [h.shape for h in net.cache.h] == [(4, 5), (4, 4), (4, 3)]
    np.testing.assert_array_equal(net.cache.u[-1], z)
    state = net.state_dict()
    z1 = net.forward(x)
    net2 = build_network(cfg, hw, seed=3)
    net2.load_state_dict(state)
    np.testing.assert_array_equal(net2.forward(x), z1)  # same noise draws after restore


def test_network_rejects_unchained_layers():
    from analogsim.layers.network import Network

    with pytest.raises(ValueError, match="do not chain"):
        Network([DigitalLinear(3, 4, seed=0), DigitalLinear(5, 2, seed=0)])
