"""The result of one training run: the runner's record with a table, a plot and exports.

:class:`Result` is what :func:`analogsim.train` returns. It *is* the record
:func:`analogsim.experiments.runner.train` (through
:func:`~analogsim.experiments.points.execute`) produces — a read-only mapping with the keys
``config``, ``metrics``, ``epochs``, ``ledger`` and ``energy_breakdown_pj`` — so code that
indexes the plain dict (``result["metrics"]["test_accuracy"]``) works unchanged, and adds:

* :meth:`Result.to_dict`: a deep copy of that record (the contract sweeps store);
* :meth:`Result.to_json`: the one line ``analogsim train --json`` prints (the CLI calls it);
* :meth:`Result.table`: the table ``analogsim train`` prints;
* :meth:`Result.plot`: the learning curve, on a given or new matplotlib ``Axes``;
* :meth:`Result.to_dataframe`: per-epoch records as a pandas ``DataFrame`` (pandas is
  optional: a clear ``ImportError`` without it);
* ``network`` / ``trainer`` / ``dataset``: the trained objects, when the run kept them.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["Result", "SUMMARY_ROWS", "train_table", "json_safe", "json_record"]

#: (metric key, label, format) of the rows ``analogsim train`` prints.
SUMMARY_ROWS = (
    ("test_accuracy", "test accuracy", "{:.4f}"),
    ("test_loss", "test loss", "{:.4f}"),
    ("train_loss", "train loss (last epoch)", "{:.4f}"),
    ("val_accuracy", "validation accuracy", "{:.4f}"),
    ("energy_per_sample_pj", "training energy per sample (pJ)", "{:.4g}"),
    ("transpose_energy_share", "share spent on transposes", "{:.1%}"),
    ("critical_path_ns", "critical-path latency per step (ns)", "{:.4g}"),
    ("inference_energy_per_sample_pj", "test-time energy per sample (pJ)", "{:.4g}"),
    ("test_accuracy_drift", "test accuracy after drift", "{:.4f}"),
    ("eps_mean", "smooth activation: mean learned ε", "{:.4g}"),
    ("eps_min", "smooth activation: min learned ε", "{:.4g}"),
    ("eps_max", "smooth activation: max learned ε", "{:.4g}"),
    ("wall_time_s", "wall time (s)", "{:.1f}"),
)
_KEYS = ("config", "metrics", "epochs", "ledger", "energy_breakdown_pj")


def json_safe(obj: Any) -> Any:
    """Replace NaN/inf (not JSON) by None, recursively."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def json_record(out: Mapping[str, Any]) -> dict[str, Any]:
    """The object ``analogsim train --json`` prints: the metrics at the top level, then the
    epochs, the energy breakdown, the ledger counts and the resolved configuration."""
    return {**out["metrics"], "epochs": out["epochs"],
            "energy_breakdown_pj": out["energy_breakdown_pj"], "ledger": out["ledger"],
            "config": out["config"]}


def train_table(out: Mapping[str, Any], rule: str, hw_name: str) -> str:
    """The text table ``analogsim train`` prints for a run record."""
    from .report import format_table

    m = out["metrics"]
    rows = [[label, fmt.format(m[key])] for key, label, fmt in SUMMARY_ROWS
            if key in m and not (key == "test_accuracy_drift" and not m.get("drift_s"))]
    per = m["energy_per_sample_pj"]
    total = sum(out["energy_breakdown_pj"].values())
    for kind, pj in out["energy_breakdown_pj"].items():
        if pj > 0:
            rows.append([f"  energy per sample: {kind} (pJ)", f"{pj * per / total:.4g}"])
    return f"{rule} on {hw_name}\n" + format_table(["metric", "value"], rows)


class Result(Mapping[str, Any]):
    """One training run: the runner's record (a read-only mapping) plus views of it.

    Parameters
    ----------
    record : mapping
        What :func:`analogsim.experiments.runner.train` returned (keys ``config``,
        ``metrics``, ``epochs``, ``ledger``, ``energy_breakdown_pj``).
    trainer : Trainer, optional
        The trained trainer (``result.network`` is its network).
    dataset : Dataset, optional
        The data it was trained and evaluated on.
    """

    def __init__(self, record: Mapping[str, Any], *, trainer: Any = None,
                 dataset: Any = None) -> None:
        missing = [k for k in _KEYS if k not in record]
        if missing:
            raise ValueError(f"record lacks {missing}; allowed: a run record with keys "
                             + ", ".join(_KEYS))
        self._record = dict(record)
        self.trainer = trainer
        self.dataset = dataset

    # ------------------------------------------------------------------ mapping
    def __getitem__(self, key: str) -> Any:
        return self._record[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._record)

    def __len__(self) -> int:
        return len(self._record)

    @property
    def metrics(self) -> dict[str, Any]:
        """Summary figures (``test_accuracy``, ``energy_per_sample_pj`` (pJ), …)."""
        return self._record["metrics"]

    @property
    def epochs(self) -> list[dict[str, Any]]:
        """Per-epoch records (``epoch``, ``train_loss``, ``val_accuracy``, …)."""
        return self._record["epochs"]

    @property
    def config(self) -> dict[str, Any]:
        """The resolved configuration: ``hardware``, ``model``, ``train`` tables."""
        return self._record["config"]

    @property
    def network(self) -> Any:
        """The trained :class:`~analogsim.layers.network.Network` (None if not kept)."""
        return None if self.trainer is None else self.trainer.net

    @property
    def rule(self) -> str:
        return self.config["train"]["rule"]

    @property
    def hardware(self) -> str:
        return self.config["hardware"]["name"]

    def __repr__(self) -> str:
        m = self.metrics
        state = "diverged" if m.get("diverged") else (
            f"test_accuracy={m['test_accuracy']:.3f}, energy/sample="
            f"{m['energy_per_sample_pj']:.4g} pJ, transpose share="
            f"{m['transpose_energy_share']:.1%}")
        return (f"Result(rule={self.rule!r}, hardware={self.hardware!r}, "
                f"model={self.config['model']['name']!r}, epochs={len(self.epochs)}, {state})")

    # ------------------------------------------------------------------ views
    def to_dict(self) -> dict[str, Any]:
        """A deep copy of the run record: exactly what the runner returned (NaN kept)."""
        return copy.deepcopy(self._record)

    def to_json(self) -> str:
        """The JSON line ``analogsim train --json`` prints (NaN as null, sorted keys)."""
        return json.dumps(json_safe(json_record(self._record)), sort_keys=True)

    def table(self) -> str:
        """The text table ``analogsim train`` prints (metrics, energy by operation kind)."""
        return train_table(self._record, self.rule, self.hardware)

    def curves(self, key: str = "val_accuracy") -> list[dict[str, Any]]:
        """The series :func:`analogsim.experiments.plots.plot_learning_curves` takes: one
        curve of the per-epoch ``key`` (``val_accuracy``, ``train_loss``, ``val_loss``,
        ``adc_saturated``)."""
        xs = [r["epoch"] for r in self.epochs if key in r]
        if self.epochs and not xs:
            raise ValueError(f"key = {key!r} is not in the epoch records; allowed: "
                             + ", ".join(k for k in self.epochs[0] if k != "epoch"))
        label = f"{self.rule} on {self.hardware}"
        return [{"label": label, "rule": self.rule, "x": xs,
                 "y": [r[key] for r in self.epochs if key in r], "yerr": None}]

    def plot(self, ax: Any = None, *, key: str = "val_accuracy", path: Any = None) -> Any:
        """Plot the per-epoch ``key`` (default the validation accuracy) against the epoch.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Draw here (e.g. ``fig, ax = plt.subplots()``); default a new figure (no pyplot).
        key : str
            An epoch-record key (see :meth:`curves`).
        path : str or Path, optional
            Also save the figure as a PNG there.

        Returns
        -------
        matplotlib.axes.Axes
        """
        from .plots import plot_learning_curves

        ylabel = key.replace("_", " ").replace("val ", "validation ")
        return plot_learning_curves(self.curves(key), path, ylabel=ylabel, ax=ax,
                                    title=f"{self.rule} on {self.hardware}")

    def save(self, directory: Any) -> list[Any]:
        """Write the run's folder (what ``analogsim train --out DIR`` writes: configuration
        TOML, metrics JSON and CSV, table, plots; :mod:`analogsim.experiments.rundir`).
        Refuses a folder holding files of those names that no earlier run wrote.

        Returns
        -------
        list of Path
            The files written.
        """
        from .rundir import write_run_dir

        return write_run_dir(directory, self)

    def to_dataframe(self) -> Any:
        """Per-epoch records as a ``pandas.DataFrame`` indexed by epoch, with the run's
        ``rule`` and ``hardware`` as columns (list-valued entries such as
        ``alignment_deg`` stay lists).

        Raises
        ------
        ImportError
            If pandas is not installed (it is optional).
        """
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError("Result.to_dataframe needs pandas, which is not installed; "
                              "allowed: `pip install pandas`, or use Result.epochs (a list "
                              "of dicts) / Result.to_dict()") from e
        df = pd.DataFrame(self.epochs).set_index("epoch") if self.epochs else pd.DataFrame()
        df["rule"], df["hardware"] = self.rule, self.hardware
        return df
