"""Network presets: every shipped TOML loads, maps onto ModelConfig, and bad files fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from analogsim.experiments.models import (
    MODEL_FIELDS,
    MODELS_DIR,
    apply_model_overrides,
    load_model,
    loads_model,
    model_presets,
)
from analogsim.fields import dumps_toml
from analogsim.layers.network import ModelConfig

EXPECTED = {
    "digits-small": ((64, 64, 10), "tanh"),
    "digits-deep": ((64, 64, 64, 10), "tanh"),
    "nokland-7x240": ((784, *[240] * 7, 10), "tanh"),
    "bartunov-5x256": ((784, *[256] * 5, 10), "tanh"),
    "smooth-256": ((784, 256, 256, 10), "smooth"),
    "fc-256x2": ((784, 256, 256, 10), "tanh"),
}


def test_presets_dir_holds_the_expected_networks() -> None:
    assert MODELS_DIR.is_dir()
    assert set(EXPECTED) <= set(model_presets())


@pytest.mark.parametrize("path", sorted(MODELS_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_every_preset_loads_and_has_a_header(path: Path) -> None:
    cfg = load_model(path)
    assert isinstance(cfg, ModelConfig)
    assert cfg.name == path.stem  # `--model NAME` and the file name agree
    assert cfg.description
    assert path.read_text(encoding="utf-8").startswith("#")  # says what the network is
    assert load_model(path.stem) == cfg
    again = loads_model(dumps_toml(cfg))  # the mapping is one-to-one, "none" included
    assert again == cfg and again.description == cfg.description


@pytest.mark.parametrize(("name", "expected"), EXPECTED.items())
def test_preset_architectures(name: str, expected) -> None:
    cfg = load_model(name)
    assert (cfg.sizes, cfg.hidden) == expected
    assert cfg.loss == "xent" and cfg.output == "identity"


def test_presets_command_lists_the_fashion_network(capsys) -> None:
    from analogsim.experiments.cli import main

    assert main(["presets"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "fc-256x2" in x)
    assert "784-256-256-10 tanh (the issue-11 Fashion-MNIST network)" in line


def test_base_none_and_int_to_float() -> None:
    cfg = loads_model('base = "smooth-256"\nname = "x"\nsurrogate = "none"\neps0 = 1\n'
                      "learnable_eps = false")
    assert cfg.sizes == (784, 256, 256, 10) and cfg.hidden == "smooth"
    assert cfg.surrogate is None and cfg.eps0 == 1.0 and isinstance(cfg.eps0, float)
    assert cfg.learnable_eps is False and cfg.name == "x"


@pytest.mark.parametrize(("text", "match"), [
    ("sizes = [4, 2]\nwidth = 3", r"key 'width' is unknown; allowed: base, name, .*hidden"),
    ("sizes = 64", r"sizes = 64 is invalid; allowed: a list of >= 2 integers"),
    ("sizes = [4]", r"model.sizes = \(4,\) is invalid"),
    ('hidden = "swish"', r"model.hidden = 'swish' is invalid; allowed: .*tanh"),
    ("learnable_eps = 1", r"^bad\.toml: model\.learnable_eps = 1 is invalid; allowed: true or "
                          r"false$"),
    ('description = 5', r"model\.description = 5 is invalid; allowed: any string"),
    ('surrogate = "None"\nhidden = "step"\neps0 = true', r"model\.eps0 = True is invalid"),
    ('base = "huge"', r"model preset 'huge' is unknown; allowed: .*digits-small"),
    ("sizes = [4, 2", "malformed TOML"),
])
def test_bad_model_files_say_what_is_allowed(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        loads_model(text, source="bad.toml")


def test_a_preset_naming_itself_as_base_stops(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "loop.toml").write_text('base = "loop"\n')
    monkeypatch.setattr("analogsim.experiments.models.MODELS_DIR", tmp_path)
    with pytest.raises(ValueError, match=r"base = 'loop' is invalid; allowed: one of loop"):
        load_model("loop")


def test_unknown_preset_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'nope' is unknown; allowed: .*nokland-7x240"):
        load_model("nope")
    with pytest.raises(ValueError, match=r"model file .*missing.toml' does not exist"):
        load_model(tmp_path / "missing.toml")


def test_a_file_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text("hiden = 'relu'\n")
    with pytest.raises(ValueError, match=r"mine.toml: key 'hiden' is unknown \(did you mean "
                                         r"'hidden'\?\); allowed: base, name, sizes"):
        load_model(str(path))


def test_overrides() -> None:
    cfg = apply_model_overrides(load_model("digits-small"),
                                {"hidden": "step", "surrogate": "sigmoid", "sizes": [64, 8, 10]})
    assert (cfg.hidden, cfg.surrogate, cfg.sizes) == ("step", "sigmoid", (64, 8, 10))
    with pytest.raises(ValueError, match="model field 'depth' is unknown; allowed: name"):
        apply_model_overrides(cfg, {"depth": 3})
    with pytest.raises(ValueError, match=r"^x: model field 'hiden' is unknown \(did you mean "
                                         r"'hidden'\?\)"):
        apply_model_overrides(cfg, {"hiden": "relu"}, source="x")
    with pytest.raises(ValueError, match=r"^x: model\.hidden = 'swish' is invalid; allowed: "):
        apply_model_overrides(cfg, {"hidden": "swish"}, source="x")
    assert apply_model_overrides(cfg, {"surrogate": "none", "eps0": 2}).surrogate is None
    assert set(MODEL_FIELDS) == {f for f in ModelConfig.__dataclass_fields__}
