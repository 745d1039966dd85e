"""A run's folder: ``analogsim train --out DIR`` and :meth:`analogsim.Result.save`.

One run writes these files into ``DIR`` (each atomically: a temporary file renamed over the
target, :func:`~analogsim.experiments.paths.atomic_write`):

``config.toml``        the resolved configuration: ``[train]``, ``[model]``, ``[hardware]``
                       and its sections (every field, defaults written out)
``metrics.json``       the object ``analogsim train --json`` prints (metrics at the top level,
                       per-epoch records, energy breakdown, ledger counts, configuration)
``summary.csv``        ``metric,value`` rows of the summary metrics
``epochs.csv``         one row per epoch (``epoch``, ``train_loss``, ``val_accuracy``, …)
``table.txt``          the table ``analogsim train`` prints
``learning-curves.png``  validation accuracy per epoch
``ledger.png``         training energy per sample by operation kind
``analogsim-run.json`` the list of files above: what makes them ours

Nothing is written over what is not ours: before the run starts, :func:`check_run_dir`
refuses a ``DIR`` that is not a writable directory (or a new name), and a ``DIR`` holding a
file of one of these names that no earlier run listed in its ``analogsim-run.json``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..fields import toml_value
from .paths import atomic_write, check_output_dir

__all__ = ["RUN_FILES", "MANIFEST", "check_run_dir", "write_run_dir", "config_toml"]

RUN_FILES = ("config.toml", "metrics.json", "summary.csv", "epochs.csv", "table.txt",
             "learning-curves.png", "ledger.png")
MANIFEST = "analogsim-run.json"
_WRITER = "analogsim train --out"


def _ours(directory: Path) -> set[str]:
    """The file names an earlier run's manifest lists (empty without a valid manifest)."""
    try:
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    if not isinstance(data, dict) or data.get("written_by") != _WRITER:
        return set()
    files = data.get("files")
    return {f for f in files if isinstance(f, str)} if isinstance(files, list) else set()


def check_run_dir(path: str | os.PathLike[str], param: str = "--out") -> Path:
    """``path`` if a run may write its files there; else ``ValueError`` saying why.

    Allowed: a new name in a writable directory, an empty directory, a directory holding
    none of the run's file names, or one whose such files an earlier run wrote (listed in
    its ``analogsim-run.json``; they are replaced).
    """
    out = check_output_dir(path, param)
    if not out.is_dir():
        return out
    ours = _ours(out)
    manifest = out / MANIFEST
    if os.path.lexists(manifest) and not ours:
        raise ValueError(f"{param} = {os.fspath(path)!r} is invalid: {MANIFEST} there was not "
                         f"written by {_WRITER}; allowed: a new or empty directory, or one an "
                         "earlier `analogsim train --out` wrote")
    foreign = [n for n in RUN_FILES if os.path.lexists(out / n) and n not in ours]
    if foreign:
        raise ValueError(f"{param} = {os.fspath(path)!r} is invalid: it holds "
                         f"{', '.join(foreign)} not written by an earlier run (no "
                         f"{MANIFEST} lists them); allowed: a new or empty directory, or one "
                         "an earlier `analogsim train --out` wrote (nothing else is replaced)")
    return out


def _tables(prefix: str, table: Mapping[str, Any]) -> list[str]:
    """TOML lines of ``table`` as ``[prefix]``, nested mappings as ``[prefix.key]``."""
    lines = ["", f"[{prefix}]"]
    subs = []
    for key, value in table.items():
        if isinstance(value, Mapping) and value:
            subs.append((key, value))
        else:
            lines.append(f"{key} = {toml_value(value)}")
    for key, value in subs:
        lines += _tables(f"{prefix}.{key}", value)
    return lines


def config_toml(config: Mapping[str, Any]) -> str:
    """The resolved configuration (``{"train", "model", "hardware"}`` tables) as TOML."""
    lines = ["# analogsim: the resolved configuration of one training run (every field;",
             "# meanings and units: docs/cli.md)"]
    for name in ("train", "model", "hardware"):
        if name in config:
            lines += _tables(name, config[name])
    return "\n".join(lines) + "\n"


def _csv(rows: list[list[Any]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode("utf-8")


def _cell(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return ""
    return json.dumps(v) if isinstance(v, list | dict) else v


def _epoch_rows(epochs: list[Mapping[str, Any]]) -> list[list[Any]]:
    keys: list[str] = []
    for rec in epochs:
        keys += [k for k in rec if k not in keys]
    return [keys] + [[_cell(rec.get(k, "")) for k in keys] for rec in epochs]


def _png(ax: Any) -> Any:
    fig = ax.figure
    fig.tight_layout()
    return lambda f: fig.savefig(f, format="png", dpi=120)


def write_run_dir(path: str | os.PathLike[str], result: Any) -> list[Path]:
    """Write a run's files (module docstring) for ``result`` (a :class:`Result`); returns
    the paths written. Checks ``path`` with :func:`check_run_dir` first."""
    from .plots import plot_ledger_breakdown

    out = check_run_dir(path)
    out.mkdir(parents=True, exist_ok=True)
    m = result.metrics
    per, parts = m["energy_per_sample_pj"], result["energy_breakdown_pj"]
    total = sum(parts.values())
    bars = [{"label": f"{result.rule} on {result.hardware}", "rule": result.rule,
             "breakdown": {k: v * per / total if total > 0 else 0.0 for k, v in parts.items()}}]
    blobs: dict[str, Any] = {
        "config.toml": config_toml(result.config).encode("utf-8"),
        "metrics.json": (result.to_json() + "\n").encode("utf-8"),
        "summary.csv": _csv([["metric", "value"]] + [[k, _cell(v)] for k, v in m.items()]),
        "epochs.csv": _csv(_epoch_rows(result.epochs)),
        "table.txt": (result.table() + "\n").encode("utf-8"),
        "learning-curves.png": _png(result.plot()),
        "ledger.png": _png(plot_ledger_breakdown(bars, title="training energy per sample")),
    }
    written = []
    for name, blob in blobs.items():
        write = blob if callable(blob) else (lambda f, b=blob: f.write(b))
        written.append(atomic_write(out / name, write, "--out"))
    manifest = json.dumps({"written_by": _WRITER, "files": list(RUN_FILES)}, indent=1)
    written.append(atomic_write(out / MANIFEST, lambda f: f.write(manifest.encode()), "--out"))
    return written
