"""Generate docs/cli.md — the CLI and TOML reference — from the code itself.

The command-line part comes from the argparse parser (:func:`analogsim.experiments.cli.
build_parser`), the TOML part from the dataclass fields (types, defaults) and their numpydoc
``Parameters`` sections. ``tests/experiments/test_cli.py`` checks that the committed file
equals :func:`reference`, so the docs cannot drift from the code. Regenerate with::

    python -m analogsim.experiments.cli --doc > docs/cli.md
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import textwrap
import typing
from typing import Any

from ..hardware.config import HardwareConfig
from ..layers.network import ModelConfig
from .points import RUN_KEYS
from .runner import TrainConfig

__all__ = ["reference", "doc_params"]

_ESC = str.maketrans({"|": "\\|"})


def doc_params(cls: type) -> dict[str, str]:
    """``{field: one-paragraph description}`` from a numpydoc ``Parameters`` section."""
    doc = inspect.getdoc(cls) or ""
    m = re.search(r"^Parameters\n-+\n(.*?)(?:\n\n[A-Z][a-z]+\n-+\n|\Z)", doc, re.S | re.M)
    if not m:
        return {}
    out: dict[str, str] = {}
    names: list[str] = []
    for line in m.group(1).splitlines():
        if line and not line.startswith(" "):
            names = [n.strip() for n in line.split(":")[0].split(",")]
            for n in names:
                out[n] = ""
        elif line.strip() and names:
            for n in names:
                out[n] = (out[n] + " " + line.strip()).strip()
    return out


#: Descriptions of fields whose class docstring has no ``Parameters`` entry for them.
_FALLBACK = {
    "tile.rows": "array rows (= inputs) per tile",
    "tile.cols": "array columns (= outputs) per tile",
    "adc.range_mode": "`fixed` (absolute `out_bound`) or `calibrated` (fraction of the "
                      "worst-case tile output)",
    "adc.max_retries": "re-reads allowed per saturated sample when `manage_range` is on",
    "model.description": "one line shown by `analogsim presets` (not compared)",
}
_UNITS = {"pj_per_bit": "pJ per driven row and input bit", "pj_per_byte": "pJ per byte",
          "ops_per_ns": "operations per ns", "pj_8bit": "pJ per 8-bit conversion",
          "_pj": "pJ", "_fj": "fJ", "_ns": "ns"}


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is tuple:
        return "list of int"
    text = tp if isinstance(tp, str) else getattr(tp, "__name__", None) or str(tp)
    text = str(text).replace("typing.", "").replace("NoneType", "none")
    return text.replace("tuple[int, ...]", "list of int").replace(" | None", ' or "none"')


def _default(value: Any) -> str:
    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return repr(value)


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    out += ["| " + " | ".join(c.translate(_ESC) for c in r) + " |" for r in rows]
    return out + [""]


def _describe(section: str, name: str, docs: dict[str, str]) -> str:
    if docs.get(name):
        return docs[name]
    if f"{section}.{name}" in _FALLBACK:
        return _FALLBACK[f"{section}.{name}"]
    if section == "cost":
        unit = next((u for part, u in _UNITS.items() if part in name), "")
        return (f"unit: {unit}; " if unit else "") + "coefficient of the cost model, sources in " \
            "docs/hardware.md"
    return ""


def _field_rows(obj: Any, section: str) -> list[list[str]]:
    hints = typing.get_type_hints(type(obj))
    docs = doc_params(type(obj))
    return [[f"`{f.name}`", _type_name(hints[f.name]), f"`{_default(getattr(obj, f.name))}`",
             _describe(section, f.name, docs)] for f in dataclasses.fields(obj)]


# --------------------------------------------------------------------------- commands


def _option_rows(parser: argparse.ArgumentParser) -> list[list[str]]:
    rows = []
    for a in parser._actions:  # argparse has no public API to list a parser's arguments
        if a.help == argparse.SUPPRESS or isinstance(a, argparse._HelpAction):
            continue
        names = ", ".join(a.option_strings) or a.metavar or a.dest
        if a.nargs == 0 or not a.option_strings:
            value = ""
        elif a.choices:
            value = "{" + ",".join(map(str, a.choices)) + "}"
        else:
            value = a.metavar or a.dest.upper()
        rows.append([f"`{names}`", f"`{value}`" if value else "", (a.help or "").strip()])
    return rows


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = ["## Commands", ""]
    for name, p in sub.choices.items():
        out += [f"### `analogsim {name}`", "", textwrap.fill(p.description or "", 96), ""]
        rows = _option_rows(p)
        out += _table(["option", "value", "meaning"], rows) if rows else []
        if p.epilog:
            out += ["```text", p.epilog, "```", ""]
    return out


# --------------------------------------------------------------------------- run keys


def _run_key_rows(train_help: dict[str, str]) -> list[list[str]]:
    hints = typing.get_type_hints(TrainConfig)
    defaults = TrainConfig()
    rows = [["`hardware`", "str", '`"ideal"`', "hardware preset name or TOML file"],
            ["`model`", "str", '`"digits-small"`', "network preset name or TOML file"]]
    for key in RUN_KEYS:
        if key in ("hardware", "model", "alignment", "drift_s"):
            continue
        value = getattr(defaults, key)
        rows.append([f"`{key}`", _type_name(hints[key]).replace(' or "none"', ""),
                     f"`{_default(value)}`" if value is not None else "(unset)",
                     train_help.get(key, "")])
    rows += [["`alignment`", "bool", "`false`", train_help.get("alignment", "")],
             ["`drift_s`", "float", "`0.0`", train_help.get("drift_s", "")],
             ["`hw.<section>.<field>`", "", "", "a hardware field (see below); in `--set` the "
              "`hw.` may be left out"],
             ["`model.<field>`", "", "", "a network field (see below)"],
             ["`train.<field>`", "", "", "the same as the plain training keys above"],
             ["`rule.<option>`", "", "", "a constructor option of the rule (docs/rules.md)"],
             ['`"a+b"`', "list", "", 'a bundle: `"rule+transpose" = ["bp", "shadow"]` sets '
              "both; in a sweep grid, a list of such lists varies them jointly"]]
    return rows


def _sweep_section() -> list[str]:
    from .sweep import _DISTRIBUTIONS, _TOP_LEVEL

    return [
        "## Sweep specs (`analogsim sweep SPEC.toml`)", "",
        "Top-level keys: " + ", ".join(f"`{k}`" for k in _TOP_LEVEL) + ". `[base]` holds run "
        "parameters shared by every point, `[grid]` lists values whose cartesian product is "
        "run (first key slowest), `[random]` draws `n` seeded samples from distributions "
        "(" + ", ".join(f"`{d}`" for d in _DISTRIBUTIONS) + ") and pairs each with every grid "
        "combination. Keys are the run parameters above; hardware fields must be written "
        '`"hw.<section>.<field>"` (quoted). A point id is a hash of the point, so re-running '
        "a spec resumes it; see `analogsim/experiments/sweep.py` for the details.", "",
        "```toml",
        'name = "rules-vs-read-noise"',
        'description = "three rules against read noise"',
        "[base]",
        'hardware = "rram"',
        "epochs = 3",
        "[grid]",
        'rule = ["bp", "fa", "dfa"]',
        '"hw.noise.read_noise" = [0.0, 0.02, 0.05]',
        "seed = [0, 1, 2]",
        "```", ""]


# --------------------------------------------------------------------------- whole page


def reference() -> str:
    """The text of docs/cli.md."""
    from .cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    train_help = {a.dest: (a.help or "").strip() for a in sub.choices["train"]._actions}
    hw = HardwareConfig()
    out = [
        "# Command line and TOML reference", "",
        "<!-- Generated by `python -m analogsim.experiments.cli --doc > docs/cli.md`; do not "
        "edit by hand (tests/experiments/test_cli.py checks that this file is up to date). -->",
        "", textwrap.fill(parser.description or "", 96), "",
        "Errors in arguments, presets, TOML files or keys print one line saying what is wrong "
        "and what is allowed, and exit with status 2.", "",
    ]
    out += _commands(parser)
    out += ["## Run parameters", "",
            "One flat table of keys describes a training run: `analogsim train` builds it from "
            "its flags and `--set KEY=VALUE` options (values are TOML literals; bare words are "
            "strings), and every point of a sweep is one. Unknown keys are errors.", ""]
    out += _table(["key", "type", "default", "meaning"], _run_key_rows(train_help))
    out += ["## Hardware TOML (`--hardware FILE`, `models/hardware/`)", "",
            "One table per section; key names equal the fields below. Optional top-level "
            "`name` and `base = \"<preset>\"` (start from a preset instead of these defaults). "
            "The string `\"none\"` means None for the fields that allow it; omitted keys keep "
            "the base value. Units and sources: docs/hardware.md.", ""]
    for sec in HardwareConfig.SECTIONS:
        out += [f"### `[{sec}]`", ""]
        out += _table(["field", "type", "default", "meaning"], _field_rows(getattr(hw, sec), sec))
    out += ["## Network TOML (`--model FILE`, `models/networks/`)", "",
            "Top-level keys equal the fields below, plus an optional `base = \"<preset>\"`. The "
            "first and last entries of `sizes` are replaced by the data set's input and output "
            "sizes.", ""]
    out += _table(["field", "type", "default", "meaning"], _field_rows(ModelConfig(), "model"))
    out += _sweep_section()
    return "\n".join(out).rstrip() + "\n"
