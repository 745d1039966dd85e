"""ModelConfig and TrainConfig: declared once (analogsim.fields), checked by the declarations."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from analogsim.experiments.runner import TrainConfig
from analogsim.fields import from_mapping, spec_of, to_mapping
from analogsim.layers.network import ModelConfig
from analogsim.rules import RULES

MODEL_DICT = {"name": "custom", "sizes": [64, 64, 10], "hidden": "tanh", "output": "identity",
              "loss": "xent", "eps0": 0.1, "learnable_eps": True, "theta_rule": "text",
              "surrogate": None, "init": "uniform", "init_scale": 1.0, "backend": "analog",
              "headroom": 2.0, "description": ""}
TRAIN_DICT = {"rule": "dfa", "dataset": "digits", "epochs": 5, "batch_size": 32, "lr": 0.05,
              "lr_eps": 0.01, "lr_aux": 0.01, "seed": 0, "transpose": "probe", "refresh": 1,
              "staleness": 0, "rule_options": {}, "diverge_factor": 10.0, "optimizer": "sgd",
              "optimizer_options": {},
              "data_dir": None}


@pytest.mark.parametrize("cls", [ModelConfig, TrainConfig])
def test_every_field_is_declared_with_a_doc(cls) -> None:
    for f in dataclasses.fields(cls):
        spec = spec_of(f)
        assert spec is not None and spec.doc, f.name
        assert f"{f.name} : " in cls.__doc__  # numpydoc Parameters from the declarations


def test_to_dict_keeps_its_shape_and_order() -> None:
    """Checkpoints and the results store compare these dicts: same keys, order, values."""
    assert list(ModelConfig().to_dict().items()) == list(MODEL_DICT.items())
    assert list(TrainConfig().to_dict().items()) == list(TRAIN_DICT.items())


@pytest.mark.parametrize(("kw", "match"), [
    ({"sizes": (4,)}, r"^model\.sizes = \(4,\) is invalid; allowed: a list of >= 2 integers "
                      r"in \[1, 1000000\]$"),
    ({"sizes": (4, 0)}, r"model\.sizes"), ({"sizes": (4, 1_000_001)}, r"model\.sizes"),
    ({"sizes": (4, True)}, r"model\.sizes"),
    ({"hidden": "gelu"}, r"^model\.hidden = 'gelu' is invalid; allowed: one of .*'tanh'"),
    ({"output": "gelu"}, r"model\.output"), ({"loss": "hinge"}, r"model\.loss"),
    ({"eps0": 0.0}, r"^model\.eps0 = 0\.0 is invalid; allowed: a real number in \(0, 1000000\)$"),
    ({"eps0": 1e6}, r"model\.eps0"), ({"eps0": True}, r"model\.eps0"),
    ({"learnable_eps": 1}, r"^model\.learnable_eps = 1 is invalid; allowed: true or false$"),
    ({"theta_rule": "x"}, r"model\.theta_rule"),
    ({"surrogate": "magic"}, r"model\.surrogate = 'magic' .*'sigmoid' or none$"),
    ({"init": "he"}, r"model\.init"), ({"init_scale": 0}, r"model\.init_scale"),
    ({"init_scale": 100.5}, r"model\.init_scale"), ({"backend": "optical"}, r"model\.backend"),
    ({"headroom": 0.99}, r"^model\.headroom = 0\.99 .*in \[1, 1000\]$"),
    ({"headroom": 1001}, r"model\.headroom"), ({"description": None}, r"model\.description"),
])
def test_model_config_ranges(kw, match) -> None:
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kw)


def test_model_config_edges_and_numpy_scalars() -> None:
    cfg = ModelConfig(sizes=[np.int64(5), 1_000_000], eps0=np.float32(0.5), init_scale=100,
                      headroom=1, learnable_eps=np.bool_(False), surrogate="clipped")
    assert cfg.sizes == (5, 1_000_000) and type(cfg.sizes[0]) is int
    assert type(cfg.eps0) is float and cfg.init_scale == 100.0 and cfg.headroom == 1.0
    assert cfg.learnable_eps is False
    assert ModelConfig(description="x") == ModelConfig()  # description is not compared
    assert from_mapping(ModelConfig, to_mapping(cfg)) == cfg


@pytest.mark.parametrize(("kw", "match"), [
    ({"epochs": 0}, r"^train\.epochs = 0 is invalid; allowed: an integer in \[1, 100000\]$"),
    ({"epochs": 100_001}, r"train\.epochs"), ({"epochs": 2.0}, r"train\.epochs"),
    ({"batch_size": 0}, r"train\.batch_size"), ({"batch_size": 1_000_001}, r"train\.batch_size"),
    ({"seed": -1}, r"train\.seed"), ({"seed": 2**31}, r"train\.seed"),
    ({"seed": True}, r"train\.seed"),
    ({"refresh": 0}, r"train\.refresh"), ({"staleness": 1001}, r"train\.staleness"),
    ({"lr": -0.1}, r"^train\.lr = -0\.1 is invalid; allowed: a real number in \[0, 1000\]$"),
    ({"lr_eps": float("nan")}, r"train\.lr_eps"), ({"lr_aux": float("inf")}, r"train\.lr_aux"),
    ({"lr": 1000.5}, r"train\.lr"),
    ({"transpose": "mirror"}, r"^train\.transpose = 'mirror' is invalid; allowed: one of "
                              r"'probe', 'shadow', 'twin', 'bidirectional'$"),
    ({"rule": "backprop"}, r"^train\.rule = 'backprop' is invalid; allowed: one of 'bp', 'fa'"),
    ({"rule_options": [1]}, r"train\.rule_options = \[1\] is invalid; allowed: a table"),
    ({"data_dir": 3}, r"train\.data_dir = 3 is invalid; allowed: a non-empty string or none"),
])
def test_train_config_ranges(kw, match) -> None:
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kw)


def test_train_config_edges_and_numpy_scalars() -> None:
    cfg = TrainConfig(epochs=np.int64(100_000), lr=1, lr_eps=0, seed=2**31 - 1, staleness=1000)
    assert type(cfg.epochs) is int and cfg.lr == 1.0 and type(cfg.lr) is float
    assert TrainConfig(data_dir="d").data_dir == "d"


def test_train_rule_is_checked_against_the_live_registry(monkeypatch) -> None:
    monkeypatch.setitem(RULES, "mine", RULES["dfa"])  # a rule registered at run time
    assert TrainConfig(rule="mine").rule == "mine"
    with pytest.raises(ValueError, match=r"allowed: one of .*'mine'"):
        TrainConfig(rule="yours")
