"""TOML mapping of :class:`HardwareConfig`: load, dump, save and command-line overrides.

File layout (one-to-one with the dataclasses; key names equal field names)::

    name = "my-pcm"          # optional
    base = "pcm"             # optional: start from a preset instead of the defaults

    [adc]                    # one table per section: dac adc noise device update tile
    bits = 6                 #                        periphery cost
    out_bound = inf          # TOML's inf is allowed where the field allows it

    [device]
    levels = "none"          # the string "none" means Python None (see below)

The mapping itself is the generic one of :mod:`analogsim.fields` (each field's type,
range and optionality come from its declaration in :mod:`analogsim.hardware.config`);
this module adds what is specific to hardware files: ``base``, the default ``name``, the
section-aware error messages and the preset files.

Conventions
-----------
* **None.** TOML has no null. A field declared optional (``dac.bits``, ``adc.bits``,
  ``device.levels``) is written as the string ``"none"`` when it is ``None``, and
  ``"none"`` in any case (``"None"``, ``"NONE"``) is read back as ``None`` for exactly
  those fields. Omitting a key means "keep the base value" (the preset's, or the dataclass
  default without ``base``), never ``None``.
* **Numbers.** An integer given for a float field is converted to float (``out_bound = 12``
  is fine); a float given for an integer field is an error, as is a bool for an int.
* **name.** Without ``name`` the result is named after ``base`` (or ``"custom"``).
* **Errors** are ``ValueError`` naming the file, the key and what is allowed: unknown
  top-level keys, sections or fields (with the nearest valid name suggested), non-table
  sections, an unknown ``base``, malformed TOML (with tomllib's message), and invalid
  values (the dataclass message, which names field, value and the allowed range).

:func:`dumps_hardware` writes every field explicitly (no ``base``), so
``load_hardware(dumps_hardware(hw)) == hw`` for every valid config.
``analogsim/data/models/hardware/`` (package data, see :mod:`analogsim.data`; a checkout's
``models/hardware`` links there) holds one such file per preset; regenerate them with
``python -m analogsim.hardware.toml_io analogsim/data/models/hardware``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..fields import (
    NONE,
    dumps_toml,
    fail,
    from_mapping,
    loads_toml,
    parse_override,
    read_text_file,
    unknown_key,
)
from .config import HardwareConfig, field_key_error
from .presets import PRESET_NOTES, PRESETS

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

_TOP_LEVEL = ("name", "base") + HardwareConfig.SECTIONS


# --------------------------------------------------------------------------- loading


def _base(data: Mapping[str, Any], source: str) -> HardwareConfig:
    """The config a file starts from: the preset named by ``base``, else the defaults."""
    name = data.get("base")
    if name is None:
        return HardwareConfig()
    if not isinstance(name, str):
        try:
            fail("", "base", name, "a preset name: " + ", ".join(PRESETS))
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None
    if name not in PRESETS:
        raise unknown_key(source, name, PRESETS, what="base preset")
    return PRESETS[name]


def _check_keys(data: Mapping[str, Any], base: HardwareConfig, source: str) -> None:
    """Unknown top-level keys and section fields, named with their section."""
    for key in data:
        if key not in _TOP_LEVEL:
            raise unknown_key(source, key, _TOP_LEVEL, what="top-level key")
    for sec in HardwareConfig.SECTIONS:
        table = data.get(sec)
        if isinstance(table, Mapping):  # a non-table is reported by from_mapping
            names = [f.name for f in dataclasses.fields(getattr(base, sec))]
            for key in table:
                if key not in names:
                    raise unknown_key(source, key, names, what=f"[{sec}] key")


def _from_mapping(data: Mapping[str, Any], source: str) -> HardwareConfig:
    hw = _base(data, source)
    _check_keys(data, hw, source)
    table = {k: v for k, v in data.items() if k != "base"}
    table.setdefault("name", data.get("base", "custom"))
    return from_mapping(HardwareConfig, table, where=source, base=hw)


def loads_hardware(text: str, *, source: str = "<string>") -> HardwareConfig:
    """Parse TOML text into a :class:`HardwareConfig` (``source`` names it in errors)."""
    return _from_mapping(loads_toml(text, source=source), source)


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
        return loads_hardware(read_text_file(path, "hardware file"), source=str(path))
    if not isinstance(path_or_text, str):
        raise TypeError("load_hardware expects a path or TOML text, got "
                        f"{type(path_or_text).__name__}")
    return loads_hardware(path_or_text)


# --------------------------------------------------------------------------- writing


def dumps_hardware(hw: HardwareConfig, *, comment: str | None = None) -> str:
    """TOML text with every field of ``hw`` (``None`` written as ``"none"``).

    ``comment`` (may span lines) is written first as ``#`` lines.
    """
    if not isinstance(hw, HardwareConfig):
        raise TypeError(f"hw must be a HardwareConfig, got {type(hw).__name__}")
    return dumps_toml(hw, comment=comment)


def save_hardware(hw: HardwareConfig, path: str | os.PathLike[str], *,
                  comment: str | None = None) -> None:
    """Write :func:`dumps_hardware` output to ``path`` (UTF-8)."""
    Path(path).write_text(dumps_hardware(hw, comment=comment), encoding="utf-8")


# --------------------------------------------------------------------------- overrides


def apply_overrides(hw: HardwareConfig, overrides: Iterable[str]) -> HardwareConfig:
    """Apply ``"section.field=value"`` strings (values are TOML literals) to ``hw``.

    ``true``, ``6``, ``0.02``, ``inf``, ``"soft"`` and the bare word ``soft`` all work;
    ``none`` (any case, quoted or not) sets an optional field to ``None``; ``name=...``
    renames. All overrides of one section are applied together (so ``adc.bits=8
    adc.out_bound=10`` works on the ``ideal`` preset, whose ``out_bound = inf`` needs
    ``bits = None``); a later override of the same field wins. An error names the
    overrides of the section that failed.

    >>> from analogsim.hardware.presets import get_preset
    >>> apply_overrides(get_preset("pcm"), ["adc.bits=6", "device.bounds=hard"]).adc.bits
    6
    """
    if isinstance(overrides, str):
        raise TypeError("overrides must be a list of 'section.field=value' strings, not a "
                        "single string")
    tables: dict[str, dict[str, Any]] = {}  # section (or "name") → its part of one table
    sources: dict[str, list[str]] = {}
    for item in overrides:
        key, value = parse_override(item, example="adc.bits=6", form="section.field=value")
        error = field_key_error(hw, key)
        if error:
            raise ValueError(f"override {item!r}: {error}")
        sec, _, fname = key.rpartition(".")
        group = sec or "name"
        node = tables.setdefault(group, {})
        (node.setdefault(sec, {}) if sec else node)[fname] = value
        sources.setdefault(group, []).append(item)
    for group, table in tables.items():
        which = sources[group]
        label = f"override {which[0]!r}" if len(which) == 1 else f"overrides {which}"
        hw = from_mapping(HardwareConfig, table, where=label, base=hw)
    return hw


# --------------------------------------------------------------------------- preset files


def preset_comment(name: str) -> str:
    """The header comment of ``analogsim/data/models/hardware/<name>.toml``."""
    note = textwrap.fill(f"Hardware preset {name!r}: {PRESET_NOTES[name]}", width=88)
    return (f"{note}\n"
            "Generated from analogsim.hardware.presets; do not edit by hand (a test checks\n"
            "that this file equals the preset). Regenerate with\n"
            "`python -m analogsim.hardware.toml_io analogsim/data/models/hardware`.\n"
            "Units: docs/hardware.md.")


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
