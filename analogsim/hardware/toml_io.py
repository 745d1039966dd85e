"""TOML mapping of :class:`HardwareConfig`: load, dump, save and command-line overrides.

File layout (one-to-one with the dataclasses; key names equal field names)::

    name = "my-pcm"          # optional
    base = "pcm"             # optional: start from a preset instead of the defaults

    [adc]                    # one table per section: dac adc noise device update tile
    bits = 6                 #                        periphery cost
    out_bound = inf          # TOML's inf is allowed where the field allows it

    [device]
    levels = "none"          # the string "none" means Python None (see below)

Conventions
-----------
* **None.** TOML has no null. A field whose type admits ``None`` (``dac.bits``,
  ``adc.bits``, ``device.levels``) is written as the string ``"none"`` when it is
  ``None``, and ``"none"`` is read back as ``None`` for exactly those fields. Omitting a key
  means "keep the base value" (the preset's, or the dataclass default without ``base``),
  never ``None``.
* **Numbers.** An integer given for a float field is converted to float (``out_bound = 12``
  is fine); a float given for an integer field is an error, as is a bool for an int.
* **name.** Without ``name`` the result is named after ``base`` (or ``"custom"``).
* **Errors** are ``ValueError`` naming the file, the key and what is allowed: unknown
  top-level keys or sections, unknown fields, non-table sections, an unknown ``base``,
  malformed TOML (with tomllib's message), and invalid values (the dataclass message,
  which names field, value and the allowed range).

:func:`dumps_hardware` writes every field explicitly (no ``base``), so
``load_hardware(dumps_hardware(hw)) == hw`` for every valid config. ``models/hardware/``
holds one such file per preset; regenerate them with
``python -m analogsim.hardware.toml_io models/hardware``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import textwrap
import tomllib
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .config import HardwareConfig
from .presets import PRESET_NOTES, PRESETS, get_preset

__all__ = [
    "NONE",
    "preset_comment",
    "load_hardware",
    "loads_hardware",
    "dumps_hardware",
    "save_hardware",
    "apply_overrides",
    "write_preset_files",
]

#: How ``None`` is spelled in TOML files and overrides.
NONE = "none"

_TOP_LEVEL = ("name", "base") + HardwareConfig.SECTIONS


# --------------------------------------------------------------------------- field types


def _section_types(section: str) -> dict[str, Any]:
    """Resolved type hints of a section dataclass: ``{field: type}``."""
    cls = type(getattr(HardwareConfig(), section))
    return typing.get_type_hints(cls)


def _admits_none(tp: Any) -> bool:
    return type(None) in typing.get_args(tp)


def _is_float_field(tp: Any) -> bool:
    return tp is float or (float in typing.get_args(tp) and int not in typing.get_args(tp))


def _convert(section: str, key: str, value: Any) -> Any:
    """Map a TOML value onto the Python value for ``section.key`` (before validation)."""
    tp = _section_types(section)[key]
    if value == NONE and _admits_none(tp):
        return None
    if _is_float_field(tp) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


# --------------------------------------------------------------------------- loading


def _fields_of(section: str) -> list[str]:
    return [f.name for f in dataclasses.fields(getattr(HardwareConfig(), section))]


def _from_mapping(data: Mapping[str, Any], source: str) -> HardwareConfig:
    unknown = [k for k in data if k not in _TOP_LEVEL]
    if unknown:
        raise ValueError(f"{source}: top-level key {unknown[0]!r} is unknown; allowed: "
                         + ", ".join(_TOP_LEVEL))
    base_name = data.get("base")
    if base_name is not None:
        if not isinstance(base_name, str):
            raise ValueError(f"{source}: base = {base_name!r} is invalid; allowed: one of "
                             + ", ".join(PRESETS))
        try:
            hw = get_preset(base_name)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None
    else:
        hw = HardwareConfig()
    sections: dict[str, Any] = {}
    for sec in HardwareConfig.SECTIONS:
        if sec not in data:
            continue
        table = data[sec]
        if not isinstance(table, dict):
            raise ValueError(f"{source}: {sec} = {table!r} is invalid; allowed: a table "
                             f"[{sec}] with keys " + ", ".join(_fields_of(sec)))
        allowed = _fields_of(sec)
        bad = [k for k in table if k not in allowed]
        if bad:
            raise ValueError(f"{source}: key {bad[0]!r} in [{sec}] is unknown; allowed: "
                             + ", ".join(allowed))
        changes = {k: _convert(sec, k, v) for k, v in table.items()}
        try:
            sections[sec] = dataclasses.replace(getattr(hw, sec), **changes)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None
    if "name" in data:
        name = data["name"]
    else:
        name = base_name if base_name is not None else "custom"
    try:
        return dataclasses.replace(hw, name=name, **sections)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None


def loads_hardware(text: str, *, source: str = "<string>") -> HardwareConfig:
    """Parse TOML text into a :class:`HardwareConfig` (``source`` names it in errors)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{source}: malformed TOML: {e}") from None
    return _from_mapping(data, source)


def _looks_like_path(s: str) -> bool:
    return "\n" not in s and (s.endswith(".toml") or os.path.exists(s))


def load_hardware(path_or_text: str | os.PathLike[str]) -> HardwareConfig:
    """Load a hardware description from a TOML file or from TOML text.

    A :class:`os.PathLike`, or a one-line string that ends in ``.toml`` or names an
    existing file, is read as a file; any other string is parsed as TOML text.
    """
    if isinstance(path_or_text, os.PathLike) or (
            isinstance(path_or_text, str) and _looks_like_path(path_or_text)):
        path = Path(path_or_text)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(f"hardware file {str(path)!r} does not exist") from None
        return loads_hardware(text, source=str(path))
    if not isinstance(path_or_text, str):
        raise TypeError("load_hardware expects a path or TOML text, got "
                        f"{type(path_or_text).__name__}")
    return loads_hardware(path_or_text)


# --------------------------------------------------------------------------- writing


def _toml_value(value: Any) -> str:
    """One TOML literal for a str / int / float / bool / None value."""
    if value is None:
        return json.dumps(NONE)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)  # shortest round-trip form, e.g. 0.001, 1e-05, 100.0
        return text if any(c in text for c in ".e") else text + ".0"
    if isinstance(value, str):
        # A JSON string (escapes \" \\ \n \uXXXX …) is a valid TOML basic string.
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot write {type(value).__name__} {value!r} to TOML")


def dumps_hardware(hw: HardwareConfig, *, comment: str | None = None) -> str:
    """TOML text with every field of ``hw`` (``None`` written as ``"none"``).

    ``comment`` (may span lines) is written first as ``#`` lines.
    """
    if not isinstance(hw, HardwareConfig):
        raise TypeError(f"hw must be a HardwareConfig, got {type(hw).__name__}")
    lines: list[str] = []
    if comment:
        lines += [("# " + ln).rstrip() for ln in comment.splitlines()]
        lines.append("")
    lines.append(f"name = {_toml_value(hw.name)}")
    for sec in HardwareConfig.SECTIONS:
        lines += ["", f"[{sec}]"]
        obj = getattr(hw, sec)
        for f in dataclasses.fields(obj):
            lines.append(f"{f.name} = {_toml_value(getattr(obj, f.name))}")
    return "\n".join(lines) + "\n"


def save_hardware(hw: HardwareConfig, path: str | os.PathLike[str], *,
                  comment: str | None = None) -> None:
    """Write :func:`dumps_hardware` output to ``path`` (UTF-8)."""
    Path(path).write_text(dumps_hardware(hw, comment=comment), encoding="utf-8")


# --------------------------------------------------------------------------- overrides


def _parse_literal(text: str) -> Any:
    """A TOML literal; a bare word (``stochastic``) is taken as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        word = text.strip()
        if word and all(c.isalnum() or c in "_-" for c in word):
            return word
        raise


def apply_overrides(hw: HardwareConfig, overrides: Iterable[str]) -> HardwareConfig:
    """Apply ``"section.field=value"`` strings (values are TOML literals) to ``hw``.

    ``true``, ``6``, ``0.02``, ``inf``, ``"soft"`` and the bare word ``soft`` all work;
    ``"none"``/``none`` sets an optional field to ``None``; ``name=...`` renames. All
    overrides of one section are applied together (so ``adc.bits=8 adc.out_bound=10`` works
    on the ``ideal`` preset, whose ``out_bound = inf`` needs ``bits = None``); a later
    override of the same field wins.

    >>> from analogsim.hardware.presets import get_preset
    >>> apply_overrides(get_preset("pcm"), ["adc.bits=6", "device.bounds=hard"]).adc.bits
    6
    """
    if isinstance(overrides, str):
        raise TypeError("overrides must be a list of 'section.field=value' strings, not a "
                        "single string")
    changes: dict[str, dict[str, Any]] = {}
    sources: dict[str, list[str]] = {}
    for item in overrides:
        if not isinstance(item, str) or "=" not in item:
            raise ValueError(f"override {item!r} is invalid; allowed: 'section.field=value' "
                             "with a TOML literal value, e.g. 'adc.bits=6'")
        key, _, raw = item.partition("=")
        key = key.strip()
        try:
            value = _parse_literal(raw)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"override {item!r}: value {raw.strip()!r} is not a TOML "
                             f"literal ({e}); strings need quotes, e.g. \"soft\"") from None
        if key == "name":
            changes.setdefault("name", {})["name"] = value
            sources.setdefault("name", []).append(item)
            continue
        sec, dot, fname = key.partition(".")
        if not dot or sec not in HardwareConfig.SECTIONS:
            raise ValueError(f"override {item!r}: field {key!r} is unknown; allowed: 'name' "
                             "or '<section>.<field>' with section in "
                             + ", ".join(HardwareConfig.SECTIONS))
        allowed = _fields_of(sec)
        if fname not in allowed:
            raise ValueError(f"override {item!r}: field {key!r} is unknown; fields of "
                             f"[{sec}]: " + ", ".join(allowed))
        changes.setdefault(sec, {})[fname] = _convert(sec, fname, value)
        sources.setdefault(sec, []).append(item)
    for sec, kw in changes.items():
        try:
            if sec == "name":
                hw = dataclasses.replace(hw, name=kw["name"])
            else:
                hw = dataclasses.replace(hw, **{sec: dataclasses.replace(getattr(hw, sec),
                                                                         **kw)})
        except ValueError as e:
            which = sources[sec]
            label = f"override {which[0]!r}" if len(which) == 1 else f"overrides {which}"
            raise ValueError(f"{label}: {e}") from None
    return hw


# --------------------------------------------------------------------------- preset files


def preset_comment(name: str) -> str:
    """The header comment of ``models/hardware/<name>.toml``."""
    note = textwrap.fill(f"Hardware preset {name!r}: {PRESET_NOTES[name]}", width=88)
    return (f"{note}\n"
            "Generated from analogsim.hardware.presets; do not edit by hand (a test checks\n"
            "that this file equals the preset). Regenerate with\n"
            "`python -m analogsim.hardware.toml_io models/hardware`. Units: docs/hardware.md.")


def write_preset_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Write ``<directory>/<preset>.toml`` for every preset; returns the paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, hw in PRESETS.items():
        p = out / f"{name}.toml"
        save_hardware(hw, p, comment=preset_comment(name))
        paths.append(p)
    return paths


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m analogsim.hardware.toml_io <directory>", file=sys.stderr)
        return 2
    for p in write_preset_files(args[0]):
        print(p)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
