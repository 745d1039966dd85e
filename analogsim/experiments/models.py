"""Network presets: TOML files that map onto :class:`~analogsim.layers.network.ModelConfig`.

File layout (key names equal the dataclass's field names; every key is optional)::

    # what the network is and where it comes from
    name = "digits-small"
    description = "64-64-10 tanh for the 8x8 digits"
    base = "digits-small"     # optional: start from another preset instead of the defaults
    sizes = [64, 64, 10]      # (n_input, hidden..., n_output)
    hidden = "tanh"
    surrogate = "none"        # TOML has no null: the string "none" means None

or, for a convolutional network (docs/conv.md; ``sizes`` are then derived)::

    input_shape = [1, 28, 28]
    layers = ["conv:6x5x5,padding=2", "pool:max2", "conv:16x5x5", "pool:max2",
              "fc:120", "fc:84", "fc:10"]

Presets live in ``analogsim/data/models/networks/<name>.toml`` inside the package, found with
:mod:`importlib.resources` (:mod:`analogsim.data`; in a checkout ``models/`` links there, and the
hardware presets' TOML copies are next door in ``models/hardware/``). The runner refuses data
whose input or output width differs from ``sizes`` (see
:func:`~analogsim.experiments.runner.check_io`), and image data whose shape differs from
``input_shape``.

Values are mapped and checked by the field declarations of ``ModelConfig``
(:func:`analogsim.fields.from_mapping`). Errors are ``ValueError`` naming the file, the key
and what is allowed: unknown keys (with the nearest name suggested), an unknown ``base``,
malformed TOML, and invalid values (the dataclass message).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..data import NETWORKS_DIR
from ..fields import from_mapping, loads_toml, read_text_file, unknown_key
from ..layers.network import ModelConfig, with_derived_sizes

__all__ = ["MODELS_DIR", "MODEL_FIELDS", "model_presets", "load_model", "loads_model",
           "apply_model_overrides"]

#: Where the network presets live (``analogsim/data/models/networks`` of the package).
MODELS_DIR = NETWORKS_DIR

#: TOML keys of a model file, in ``ModelConfig`` order.
MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))

_TOP_LEVEL = ("base", *MODEL_FIELDS)
#: A preset may start from another (``base``); a chain this long is a preset naming itself.
_MAX_DEPTH = 8


def model_presets() -> dict[str, Path]:
    """``{name: path}`` of the shipped network presets (sorted by name)."""
    if not MODELS_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(MODELS_DIR.glob("*.toml"))}


def _base(data: Mapping[str, Any], source: str, depth: int) -> ModelConfig | None:
    """The config named by the file's ``base`` key (None without one)."""
    base = data.get("base")
    if base is None:
        return None
    if not isinstance(base, str) or depth > _MAX_DEPTH:
        raise ValueError(f"{source}: base = {base!r} is invalid; allowed: one of "
                         + ", ".join(model_presets()))
    try:
        return load_model(base, _depth=depth + 1)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None


def _from_mapping(data: Mapping[str, Any], source: str, depth: int = 0) -> ModelConfig:
    for key in data:
        if key not in _TOP_LEVEL:
            raise unknown_key(source, key, _TOP_LEVEL)
    base = _base(data, source, depth)
    fields = {k: v for k, v in data.items() if k != "base"}
    if "name" not in fields and base is None:
        fields["name"] = Path(source).stem if source.endswith(".toml") else "custom"
    base = base if base is not None else ModelConfig()
    try:
        fields = with_derived_sizes(base, fields)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    return from_mapping(ModelConfig, fields, where=source, base=base)


def loads_model(text: str, *, source: str = "<string>", _depth: int = 0) -> ModelConfig:
    """Parse TOML text into a :class:`ModelConfig` (``source`` names it in errors)."""
    return _from_mapping(loads_toml(text, source=source), source, _depth)


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
        return loads_model(read_text_file(path, "model file"), source=str(path), _depth=_depth)
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
    for key in changes:
        if key not in MODEL_FIELDS:
            raise unknown_key(source, key, MODEL_FIELDS, what="model field")
    try:
        changes = with_derived_sizes(cfg, changes)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    return from_mapping(ModelConfig, changes, where=source, base=cfg)
