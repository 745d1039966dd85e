"""Generate docs/cli.md — the CLI and TOML reference — from the code itself.

The command-line part comes from the argparse parser the caller passes in (the CLI's
:func:`~analogsim.experiments.cli.build_parser`; this module does not import the CLI, so the
two form no import cycle), the TOML part from the field declarations
(:func:`analogsim.fields.field_rows`): hardware sections, network, training, and the options
of every learning rule. ``tests/experiments/test_cli.py`` checks that the committed file
equals :func:`reference`, so the docs cannot drift from the code. Regenerate with::

    python -m analogsim.experiments.cli --doc > docs/cli.md
"""

from __future__ import annotations

import argparse
import textwrap

from ..fields import field_rows
from ..hardware.config import HardwareConfig
from ..layers.network import ModelConfig
from ..rules import OPTIMIZERS, RULES, optimizer_options, rule_options
from .points import DEFAULTS, Run
from .runner import TrainConfig
from .sweep import DISTRIBUTIONS, TOP_LEVEL

__all__ = ["reference"]

_ESC = str.maketrans({"|": "\\|"})
#: Columns of a table of declared fields (run parameters and rule options are "keys").
_HEADERS = ["default", "unit", "allowed", "meaning"]


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    out += ["| " + " | ".join(c.translate(_ESC) for c in r) + " |" for r in rows]
    return out + [""]


def _field_table(cls: type, prefix: str = "", skip: tuple[str, ...] = ()) -> list[list[str]]:
    """Rows of a config's declared fields: key, default, unit, allowed, meaning."""
    return [[f"`{r['field']}`", f"`{r['default']}`", r["unit"], r["allowed"], r["doc"]]
            for r in field_rows(cls, prefix) if r["field"] not in skip]


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


# --------------------------------------------------------------------------- TOML parts


def _run_keys() -> list[str]:
    rows = [["`hardware`", f'`"{DEFAULTS["hardware"]}"`', "", "a preset name or a .toml file",
             "hardware preset (`analogsim presets`) or hardware TOML file"],
            ["`model`", f'`"{DEFAULTS["model"]}"`', "", "a preset name or a .toml file",
             "network preset (`analogsim presets`) or network TOML file"]]
    rows += _field_table(TrainConfig, skip=("rule_options", "optimizer_options"))
    rows += _field_table(Run)
    rows += [["`hw.<section>.<field>`", "", "", "", "a hardware field (see below); in `--set` "
              "the `hw.` may be left out"],
             ["`model.<field>`", "", "", "", "a network field (see below)"],
             ["`train.<field>`", "", "", "", "the same as the plain training keys above"],
             ["`rule.<option>`", "", "", "", "an option of the rule (see below)"],
             ["`optimizer.<option>`", "", "", "", "an option of the analog optimizer (see "
              "below)"],
             ['`"a+b"`', "", "", "a list", 'a bundle: `"rule+transpose" = ["bp", "shadow"]` '
              "sets both; in a sweep grid, a list of such lists varies them jointly"]]
    return ["## Run parameters", "",
            "One flat table of keys describes a training run: `analogsim train` builds it from "
            "its flags and `--set KEY=VALUE` options (values are TOML literals; bare words are "
            "strings), and every point of a sweep is one. Unknown keys are errors that name "
            "the nearest valid key.", "", *_table(["key", *_HEADERS], rows)]


def _hardware() -> list[str]:
    out = ["## Hardware TOML (`--hardware FILE`, `analogsim/data/models/hardware/`)", "",
           "One table per section; key names equal the fields below. Optional top-level "
           "`name` and `base = \"<preset>\"` (start from a preset instead of these defaults). "
           "The string `\"none\"` means None for the fields that allow it; omitted keys keep "
           "the base value. Sources of the defaults: docs/hardware.md.", ""]
    hw = HardwareConfig()
    for sec in HardwareConfig.SECTIONS:
        rows = _field_table(type(getattr(hw, sec)))
        out += [f"### `[{sec}]`", "", *_table(["field", *_HEADERS], rows)]
    return out


def _network() -> list[str]:
    return ["## Network TOML (`--model FILE`, `analogsim/data/models/networks/`)", "",
            "Top-level keys equal the fields below, plus an optional `base = \"<preset>\"` "
            "(start from that preset instead of these defaults). The first and last entries "
            "of `sizes` must equal the data set's input and output widths. A convolutional "
            "network is given by `input_shape` and `layers` instead (docs/conv.md); its "
            "`sizes` are then derived.", "",
            *_table(["field", *_HEADERS], _field_table(ModelConfig))]


def _rule_options() -> list[str]:
    """One table per distinct ``Options`` class, headed by the rules that share it."""
    return _options_section("rule", "Rule options", RULES, rule_options)


def _optimizer_options() -> list[str]:
    return _options_section("optimizer", "Analog optimizer options", OPTIMIZERS,
                            optimizer_options)


def _options_section(key: str, title: str, registry, options_of) -> list[str]:
    """One table per distinct ``Options`` class of a registry, headed by its users."""
    groups: dict[type, list[str]] = {}
    for name in registry:
        groups.setdefault(options_of(name), []).append(name)
    out = [f"## {title} (`{key}.<option>`)", "",
           f"Set with `--set {key}.<option>=VALUE` or a `\"{key}.<option>\"` key of a sweep; "
           "docs/rules.md explains them.", ""]
    for options, names in groups.items():
        rows = _field_table(options, prefix=f"{key}.")
        title = ", ".join(f"`{n}`" for n in names)
        out += [f"### {title}", ""]
        out += _table(["key", *_HEADERS], rows) if rows else ["No options.", ""]
    return out


def _sweep_section() -> list[str]:
    return [
        "## Sweep specs (`analogsim sweep SPEC.toml`)", "",
        "Top-level keys: " + ", ".join(f"`{k}`" for k in TOP_LEVEL) + ". `[base]` holds run "
        "parameters shared by every point, `[grid]` lists values whose cartesian product is "
        "run (first key slowest), `[random]` draws `n` seeded samples from distributions "
        "(" + ", ".join(f"`{d}`" for d in DISTRIBUTIONS) + ") and pairs each with every grid "
        "combination. `[select]` chooses one parameter per setting (e.g. `lr` from "
        "`values`) by a validation metric of short trial runs (`trial.<key>` overrides, "
        "stored as the sweep `<name>:select`), then runs every point with its choice; see "
        "`analogsim/experiments/select.py`. `[search]` does the same for `n` candidates "
        "sampled (`method` = `random`, `sobol` or `lhs`, seeded) from distributions of "
        "several parameters at once, e.g. `lr = { loguniform = [0.005, 0.2] }`; "
        "`\"halving.epochs\" = [1, 3]` (with `halving.keep`, default 0.5) runs the trials "
        "as successive halving. "
        "Keys are the run parameters above; "
        "hardware fields must be written "
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
        "[select]",
        'param = "lr"',
        "values = [0.02, 0.05, 0.1]",
        'metric = "val_accuracy"',
        '"trial.epochs" = 1',
        '"trial.seed" = 0',
        "```", ""]


# --------------------------------------------------------------------------- whole page


def reference(parser: argparse.ArgumentParser) -> str:
    """The text of docs/cli.md for the CLI's ``parser``."""
    out = [
        "# Command line and TOML reference", "",
        "<!-- Generated by `python -m analogsim.experiments.cli --doc > docs/cli.md`; do not "
        "edit by hand (tests/experiments/test_cli.py checks that this file is up to date). -->",
        "", textwrap.fill(parser.description or "", 96), "",
        "Errors in arguments, presets, TOML files or keys print one line saying what is wrong "
        "and what is allowed, and exit with status 2.", "",
    ]
    out += _commands(parser)
    out += _run_keys() + _hardware() + _network() + _rule_options() + _optimizer_options()
    out += _sweep_section()
    return "\n".join(out).rstrip() + "\n"
