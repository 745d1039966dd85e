"""Network presets: TOML files that map onto :class:`~analogsim.layers.network.ModelConfig`.

File layout (key names equal the dataclass's field names; every key is optional)::

    # what the network is and where it comes from
    name = "digits-small"
    description = "64-64-10 tanh for the 8x8 digits"
    base = "digits-small"     # optional: start from another preset instead of the defaults
    sizes = [64, 64, 10]      # (n_input, hidden..., n_output)
    hidden = "tanh"
    surrogate = "none"        # TOML has no null: the string "none" means None

Presets live in ``models/networks/<name>.toml`` at the repository root (the hardware presets
are next door in ``models/hardware/``). The runner replaces the first and last entry of
``sizes`` by the data set's input and output sizes, so one preset serves every data set.

Errors are ``ValueError`` naming the file, the key and what is allowed: unknown keys, a
wrong type (``sizes = 64``), an unknown ``base``, malformed TOML, and invalid values (the
dataclass message).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..layers.network import ModelConfig

__all__ = ["MODELS_DIR", "MODEL_FIELDS", "model_presets", "load_model", "loads_model",
           "apply_model_overrides", "model_field_types"]

#: Where the network presets live (``<repo>/models/networks``).
MODELS_DIR = Path(__file__).resolve().parents[2] / "models" / "networks"

#: TOML keys of a model file, in ``ModelConfig`` order.
MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))

_NONE = "none"
_TOP_LEVEL = ("base", *MODEL_FIELDS)


def model_field_types() -> dict[str, Any]:
    """``{field: resolved type}`` of :class:`ModelConfig`."""
    return typing.get_type_hints(ModelConfig)


def _convert(key: str, value: Any, where: str) -> Any:
    """TOML value → Python value of ``ModelConfig.<key>`` (types only; values are validated
    by the dataclass)."""
    tp = model_field_types()[key]
    args = typing.get_args(tp)
    if value == _NONE and type(None) in args:
        return None
    if key == "sizes":
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: sizes = {value!r} is invalid; allowed: a list of >= 2 "
                             "integers, e.g. [64, 64, 10]")
        return tuple(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    expected = {str: str, float: float, bool: bool}.get(tp)
    if expected is not None and not isinstance(value, expected):
        raise ValueError(f"{where}: {key} = {value!r} is invalid; allowed: a "
                         f"{expected.__name__}")
    return value


def model_presets() -> dict[str, Path]:
    """``{name: path}`` of the shipped network presets (sorted by name)."""
    if not MODELS_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(MODELS_DIR.glob("*.toml"))}


def _from_mapping(data: Mapping[str, Any], source: str, depth: int = 0) -> ModelConfig:
    unknown = [k for k in data if k not in _TOP_LEVEL]
    if unknown:
        raise ValueError(f"{source}: key {unknown[0]!r} is unknown; allowed: "
                         + ", ".join(_TOP_LEVEL))
    base = data.get("base")
    if base is None:
        cfg = ModelConfig()
    elif not isinstance(base, str) or depth > 8:  # depth: a preset naming itself as base
        raise ValueError(f"{source}: base = {base!r} is invalid; allowed: one of "
                         + ", ".join(model_presets()))
    else:
        try:
            cfg = load_model(base, _depth=depth + 1)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None
    changes = {k: _convert(k, v, source) for k, v in data.items() if k != "base"}
    if "name" not in changes and base is None:
        changes["name"] = Path(source).stem if source.endswith(".toml") else "custom"
    try:
        return dataclasses.replace(cfg, **changes)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{source}: {e}") from None


def loads_model(text: str, *, source: str = "<string>", _depth: int = 0) -> ModelConfig:
    """Parse TOML text into a :class:`ModelConfig` (``source`` names it in errors)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{source}: malformed TOML: {e}") from None
    return _from_mapping(data, source, _depth)


def load_model(name_or_path: str | os.PathLike[str], *, _depth: int = 0) -> ModelConfig:
    """Load a network preset by name (``digits-small``) or from a TOML file.

    A :class:`os.PathLike`, or a string ending in ``.toml`` or naming an existing file, is
    read as a file; any other string must be a preset name.

    Raises
    ------
    ValueError
        Unknown preset (the message lists the presets), missing file, or an invalid file.
    """
    text = os.fspath(name_or_path)
    if isinstance(name_or_path, os.PathLike) or text.endswith(".toml") or os.path.isfile(text):
        path = Path(text)
        # os.path.isfile: False, not OSError, for names the OS rejects (e.g. too long).
        if not os.path.isfile(path):
            raise ValueError(f"model file {text!r} does not exist; allowed: a TOML file or a "
                             "preset: " + ", ".join(model_presets()))
        return loads_model(path.read_text(encoding="utf-8"), source=str(path), _depth=_depth)
    presets = model_presets()
    if text not in presets:
        raise ValueError(f"model preset {text!r} is unknown; allowed: "
                         + (", ".join(presets) or f"(none found in {MODELS_DIR})")
                         + " or a path to a .toml file")
    return loads_model(presets[text].read_text(encoding="utf-8"), source=str(presets[text]),
                       _depth=_depth)


def apply_model_overrides(cfg: ModelConfig, changes: Mapping[str, Any], *,
                          source: str = "override") -> ModelConfig:
    """Return ``cfg`` with ``{field: value}`` applied (TOML conventions: ``"none"`` → None).

    >>> apply_model_overrides(ModelConfig(), {"hidden": "relu"}).hidden
    'relu'
    """
    bad = [k for k in changes if k not in MODEL_FIELDS]
    if bad:
        raise ValueError(f"{source}: model field {bad[0]!r} is unknown; allowed: "
                         + ", ".join(MODEL_FIELDS))
    conv = {k: _convert(k, v, f"{source} model.{k}") for k, v in changes.items()}
    try:
        return dataclasses.replace(cfg, **conv)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{source}: {e}") from None
