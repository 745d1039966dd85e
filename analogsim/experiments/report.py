"""Results store → tables (Markdown, CSV, terminal) and plots.

Rows of one sweep are grouped by the run parameters that vary across the sweep (bundles
``"a+b"`` are split into their keys; ``seed`` is never a grouping key, and ``rule`` always
is), and every metric is reported as mean ± sample standard deviation over the seeds of a
group. Failed points are listed with the last line of their error.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..rules import RULES
from . import plots
from .paths import check_output_dir
from .points import expand_bundles
from .runner import TrainConfig
from .select import SUFFIX as TRIALS_SUFFIX
from .store import ResultsStore, check_store_file

__all__ = ["METRICS", "Group", "SweepSummary", "summarise", "load_summaries", "format_table",
           "markdown_table", "write_report", "write_plots", "FORMATS"]

#: (summary key, column header, number format) of the reported metrics.
METRICS = (
    ("test_accuracy", "test accuracy", "acc"),
    ("train_loss", "train loss", "loss"),
    ("energy_per_sample_pj", "energy / sample (pJ)", "sig"),
    ("transpose_energy_share", "transpose share", "pct"),
    ("critical_path_ns", "critical path / step (ns)", "sig"),
)
#: Shown only when some run of the sweep has them (drift runs; smooth hidden activations).
OPTIONAL_METRICS = (("test_accuracy_drift", "test accuracy after drift", "acc"),
                    ("inference_energy_per_sample_pj", "test-time energy / sample (pJ)",
                     "sig"),
                    ("eps_mean", "learned ε (mean)", "sig"),
                    ("eps_min", "learned ε (min)", "sig"),
                    ("eps_max", "learned ε (max)", "sig"))
FORMATS = ("md", "csv")

#: Axis labels (with units) of settings commonly swept; others are shown by key.
PARAM_LABELS = {
    "hw.noise.read_noise": "read noise σ_r (units of w_max)",
    "hw.noise.out_noise": "output noise σ_out (output units)",
    "hw.noise.prog_noise": "programming noise σ_p (fraction of G_max)",
    "hw.adc.bits": "ADC resolution (bits)",
    "hw.dac.bits": "DAC resolution (bits)",
    "hw.device.levels": "conductance levels per device",
    "hw.device.up_down": "up/down asymmetry",
    "hw.device.dw_min": "pulse step Δw_min (device units)",
    "hw.device.stuck_off": "fraction of devices stuck off",
    "hw.device.drift_nu": "drift exponent ν",
    "drift_s": "drift time after training (s)",
    "staleness": "update staleness (steps)",
    "lr": "learning rate",
}


@dataclass
class Group:
    """The runs of one setting (all seeds) and their aggregates."""

    key: tuple[tuple[str, Any], ...]
    rule: str
    transpose: str | None
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        parts = []
        for k, v in self.key:
            if k == "rule":
                parts.append(str(v))
            elif k == "transpose":  # "-": the rule needs no transpose
                parts += [f"Wᵀ by {v}"] if v != "-" else []
            else:
                parts.append(f"{k.rsplit('.', 1)[-1]}={_short(v)}")
        return ", ".join(parts)

    @property
    def n_diverged(self) -> int:
        return sum(r["status"] == "diverged" for r in self.rows)

    def values(self, metric: str) -> np.ndarray:
        """One value per finished run; a diverged run's figures are NaN (so is the mean)."""
        vals = [r["summary"].get(metric) for r in self.rows]
        return np.array([math.nan if v is None else v for v in vals], dtype=float)

    def mean_std(self, metric: str) -> tuple[float, float]:
        v = self.values(metric)
        if v.size == 0:
            return math.nan, math.nan
        return float(np.mean(v)), float(np.std(v, ddof=1)) if v.size > 1 else 0.0

    def curve(self, key: str, reduce_layers: bool = False) -> tuple[list, list, list]:
        """Per-epoch mean and sample std (as in the tables) over seeds of an epoch-record
        key."""
        per_epoch: dict[int, list[float]] = {}
        for r in self.rows:
            for rec in r["metrics"] or []:
                v = rec.get(key)
                if v is None:
                    continue
                if reduce_layers:  # hidden layers only: the output layer is always exact
                    hidden = [a for a in v[:-1] if a is not None and not math.isnan(a)]
                    v = float(np.mean(hidden)) if hidden else math.nan
                per_epoch.setdefault(rec["epoch"], []).append(v)
        xs = sorted(per_epoch)
        return (xs, [float(np.mean(per_epoch[e])) for e in xs],
                [float(np.std(per_epoch[e], ddof=1)) if len(per_epoch[e]) > 1 else 0.0
                 for e in xs])

    def breakdown_per_sample(self) -> dict[str, float]:
        """Mean over seeds of the energy per sample by operation kind (pJ)."""
        acc: dict[str, list[float]] = {}
        for r in self.rows:
            parts = (r["ledger"] or {}).get("energy_breakdown_pj") or {}
            total, per = sum(parts.values()), r["summary"].get("energy_per_sample_pj", 0.0)
            scale = per / total if total > 0 else 0.0
            for k, v in parts.items():
                acc.setdefault(k, []).append(v * scale)
        return {k: float(np.mean(v)) for k, v in acc.items()}


@dataclass
class SweepSummary:
    """One sweep's rows, grouped."""

    name: str
    keys: list[str]
    groups: list[Group]
    failed: list[dict[str, Any]]
    running: list[dict[str, Any]]
    metrics: tuple[tuple[str, str, str], ...] = METRICS
    bundled: frozenset[str] = frozenset()  # keys set by a bundle "a+b" (varied jointly)

    @property
    def n_done(self) -> int:
        return sum(len(g.rows) for g in self.groups)


def _short(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _rule_of(row: dict[str, Any], point: dict[str, Any]) -> str:
    cfg = row.get("config") or {}
    return (cfg.get("train") or {}).get("rule") or point.get("rule") or TrainConfig.rule


def _transpose_of(row: dict[str, Any], rule: str) -> str | None:
    """The transpose strategy the run used, None if its rule needs none."""
    needs = getattr(RULES.get(rule), "needs_transpose", None)
    if not isinstance(needs, bool):  # an option-dependent property (dni): ask the ledger
        needs = (row.get("summary") or {}).get("transpose_energy_share", 0) > 0
    if needs:
        return ((row.get("config") or {}).get("train") or {}).get("transpose")
    return None


def summarise(name: str, rows: Sequence[dict[str, Any]]) -> SweepSummary:
    """Group the rows of one sweep (see the module docstring)."""
    points, bundled = [], set()
    for row in rows:
        bundled.update(k for key in row["point"] if "+" in key for k in key.split("+"))
        try:
            p = expand_bundles(row["point"])
        except ValueError:
            p = dict(row["point"])
        p["rule"] = _rule_of(row, p)
        if "transpose" in p and _transpose_of(row, p["rule"]) is None:
            p["transpose"] = "-"  # e.g. ["fa", "probe"] in a bundle: fa has no transpose
        points.append(p)
    keys: list[str] = []
    for p in points:
        keys += [k for k in p if k not in keys]
    # Stored points have sorted keys, so the grid order is lost: rule first, then the rest.
    keys = ["rule"] + [k for k in keys if k not in ("seed", "rule")
                       and len({repr(p.get(k)) for p in points}) > 1]
    groups: dict[tuple, Group] = {}
    failed, running = [], []
    for row, p in zip(rows, points, strict=True):
        if row["status"] == "failed":
            failed.append(row)
        elif row["status"] == "running":
            running.append(row)
        else:
            gkey = tuple((k, p.get(k)) for k in keys)
            if repr(gkey) not in groups:
                groups[repr(gkey)] = Group(gkey, p["rule"], _transpose_of(row, p["rule"]))
            groups[repr(gkey)].rows.append(row)
    extra = tuple(m for m in OPTIONAL_METRICS
                  if any(m[0] in (r["summary"] or {}) for g in groups.values() for r in g.rows))
    return SweepSummary(name, keys, list(groups.values()), failed, running, METRICS + extra,
                        frozenset(bundled))


def load_summaries(store_path: str | Path, sweep: str | None = None) -> list[SweepSummary]:
    """Read a store and group every sweep in it (or just ``sweep``).

    Raises
    ------
    ValueError
        If the file does not exist, or ``sweep`` is not in it.
    """
    path = Path(store_path)
    if not os.path.isfile(path):  # not Path.is_file: it raises for over-long names
        raise ValueError(f"store {str(path)!r} does not exist; allowed: a results file "
                         "written by `analogsim sweep` or `analogsim compare`")
    check_store_file(path)  # never turn some other file into a database
    with ResultsStore(path) as store:
        known = store.sweeps()
        if sweep is None and not known:
            raise ValueError(f"store {str(path)!r} holds no results yet; allowed: a store with "
                             "at least one run (run `analogsim sweep SPEC --store` on it first)")
        if sweep is not None and sweep not in known:
            raise ValueError(f"sweep {sweep!r} is not in {str(path)!r}; allowed: "
                             + (", ".join(sorted(known)) or "(the store is empty)"))
        # Per sweep through its member list: a point two sweeps share is in both.
        return [summarise(n, store.rows(n)) for n in ([sweep] if sweep else known)]


# --------------------------------------------------------------------------- tables


def _fmt(mean: float, std: float, kind: str, n: int) -> str:
    if math.isnan(mean):
        return "–"
    if kind == "pct":
        text, err = f"{100 * mean:.1f} %", f"{100 * std:.1f}"
    elif kind == "acc":
        text, err = f"{mean:.3f}", f"{std:.3f}"
    elif kind == "loss":
        text, err = f"{mean:.3f}", f"{std:.3f}"
    elif 1 <= abs(mean) < 1e6:
        text, err = f"{mean:.0f}", f"{std:.0f}" if std >= 1 else f"{std:.2g}"
    else:
        text, err = f"{mean:.4g}", f"{std:.2g}"
    return text if n < 2 else f"{text} ± {err}"


def table_rows(summary: SweepSummary) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells: one row per group (mean ± std over seeds)."""
    headers = [*summary.keys, "seeds"] + [m[1] for m in summary.metrics]
    rows = []
    for g in summary.groups:
        seeds = str(len(g.rows)) + (f" ({g.n_diverged} diverged)" if g.n_diverged else "")
        cells = [_short(v) for _, v in g.key] + [seeds]
        cells += [_fmt(*g.mean_std(m), kind, len(g.rows)) for m, _, kind in summary.metrics]
        rows.append(cells)
    return headers, rows


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table with aligned columns (for the terminal)."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)), line]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def esc(c: Any) -> str:
        return str(c).replace("|", "\\|")
    out = ["| " + " | ".join(map(esc, headers)) + " |", "|" + " --- |" * len(headers)]
    out += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(out)


def _error_line(text: str | None) -> str:
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no error text)"


def failed_table(summary: SweepSummary) -> tuple[list[str], list[list[str]]]:
    rows = [[r["point_id"], ", ".join(f"{k}={_short(v)}" for k, v in r["point"].items()),
             _error_line(r["error"])] for r in summary.failed]
    return ["point id", "point", "error"], rows


def _write_csv(summary: SweepSummary, path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([*summary.keys, "seeds"] + [f"{m}_{s}" for m, _, _ in summary.metrics
                                               for s in ("mean", "std")])
        for g in summary.groups:
            w.writerow([v for _, v in g.key] + [len(g.rows)]
                       + [x for m, _, _ in summary.metrics for x in g.mean_std(m)])
    return path


# --------------------------------------------------------------------------- plots


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "sweep"


def _numeric_keys(summary: SweepSummary) -> list[str]:
    out = []
    for i, k in enumerate(summary.keys):
        vals = [g.key[i][1] for g in summary.groups]
        if k != "rule" and k not in summary.bundled and len(set(map(repr, vals))) > 1 and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
            out.append(k)
    return out


def _compacted(summary: SweepSummary) -> list[str]:
    """Keys that plot labels show only where they differ from their most common value.

    A bundle of more than two keys (``device_nonidealities.toml`` sets five device fields
    together, and each setting changes one of them) would otherwise spell out every field in
    every label; the shortened label names just the field(s) the setting changes.
    """
    keys = [k for k in summary.keys if k in summary.bundled and k not in ("rule", "transpose")]
    return keys if len(keys) > 2 else []


def _setting_parts(summary: SweepSummary, group: Group, *, numeric: bool = True,
                   transpose: bool = True) -> list[str]:
    """Short ``field=value`` parts naming a group's setting (without its rule) for plots."""
    compact = _compacted(summary)
    common = {}
    for k in compact:
        i = summary.keys.index(k)
        vals = [repr(g.key[i][1]) for g in summary.groups]
        common[k] = max(dict.fromkeys(vals), key=vals.count)  # ties: first seen
    skip = () if numeric else _numeric_keys(summary)
    parts = []
    for k, v in group.key:
        if k == "rule" or k in skip:
            continue
        if k == "transpose":
            if transpose:
                parts.append("no Wᵀ needed" if v in ("-", None) else f"Wᵀ by {v}")
        elif k not in common or repr(v) != common[k]:
            parts.append(f"{k.rsplit('.', 1)[-1]}={_short(v)}")
    if not parts and compact:
        parts.append("baseline")
    return parts


def _plot_label(summary: SweepSummary, group: Group) -> str:
    parts = [p for p in _setting_parts(summary, group) if p != "no Wᵀ needed"]
    return ", ".join([group.rule, *parts])


def _param_series(summary: SweepSummary, key: str) -> list[dict[str, Any]]:
    i = summary.keys.index(key)
    series: dict[str, dict[str, Any]] = {}
    for g in summary.groups:
        rest = tuple(kv for j, kv in enumerate(g.key) if j != i)
        label = Group(rest, g.rule, g.transpose).label
        s = series.setdefault(label, {"label": label, "rule": g.rule, "pts": []})
        s["pts"].append((g.key[i][1], *g.mean_std("test_accuracy")))
    out = []
    for s in series.values():
        pts = sorted(s.pop("pts"))
        out.append({**s, "x": [p[0] for p in pts], "y": [p[1] for p in pts],
                    "yerr": [p[2] for p in pts]})
    return out


def _draw(plot: Any, *args: Any, path: Path, **kw: Any) -> Path:
    """Call a plot function of :mod:`.plots` that saves to ``path``; return the path."""
    plot(*args, path=path, **kw)
    return path


def write_plots(summary: SweepSummary, out_dir: str | Path, prefix: str | None = None
                ) -> dict[str, Path]:
    """Every plot the sweep's data supports; ``{title: path}``."""
    out, prefix = Path(out_dir), _slug(prefix or summary.name)
    made: dict[str, Path] = {}
    groups = summary.groups
    if not groups:
        return made
    if summary.name.endswith(TRIALS_SUFFIX):  # a tuning search: each trial's score
        for key in _numeric_keys(summary):
            made[f"validation score vs {key}"] = _draw(plots.plot_score_scatter,
                [{"rule": g.rule, "x": dict(g.key)[key], "y": y} for g in groups
                 for y in g.values("val_accuracy")], PARAM_LABELS.get(key, key),
                path=out / f"{prefix}-validation-vs-{_slug(key)}.png", title=summary.name)
    for key in _numeric_keys(summary):  # accuracy against each swept number, per series
        made[f"accuracy vs {key}"] = _draw(plots.plot_accuracy_vs_param,
            _param_series(summary, key), PARAM_LABELS.get(key, key),
            path=out / f"{prefix}-accuracy-vs-{_slug(key)}.png", title=summary.name)
    pts = []
    for g in groups:  # the note names the setting (and the swept number) next to the point
        (acc, acc_sd), (en, en_sd) = g.mean_std("test_accuracy"), g.mean_std(
            "energy_per_sample_pj")
        note = ", ".join(_setting_parts(summary, g, transpose=False))
        pts.append({"label": g.label, "rule": g.rule, "transpose": g.transpose, "acc": acc,
                    "acc_err": acc_sd, "energy": en, "energy_err": en_sd, "note": note})
    # numeric settings have their own plot; the bars compare the other settings
    settings = [(g, ", ".join(_setting_parts(summary, g, numeric=False))) for g in groups]
    per_rule: dict[str, set[str]] = {}
    for g, s in settings:
        per_rule.setdefault(g.rule, set()).add(s)
    if any(len(v) > 1 for v in per_rule.values()):  # a rule under several settings: bars
        xlabel = ("setting (fields at their most common value not shown)"
                  if _compacted(summary) else "setting")
        drift = any(m[0] == "test_accuracy_drift" for m in summary.metrics)
        made["accuracy by setting"] = _draw(plots.plot_accuracy_bars,
            [{"setting": s, "rule": g.rule,
              **dict(zip(("y", "yerr"), g.mean_std("test_accuracy"), strict=True)),
              **(dict(zip(("y2", "yerr2"), g.mean_std("test_accuracy_drift"), strict=True))
                 if drift else {})} for g, s in settings],
            path=out / f"{prefix}-accuracy-by-setting.png", title=summary.name, xlabel=xlabel,
            second_label="bar: before drift\ntick: after drift" if drift else None)
    made["accuracy vs energy"] = _draw(plots.plot_accuracy_vs_energy,
        pts, path=out / f"{prefix}-accuracy-vs-energy.png", title=summary.name)
    curves = [{"label": _plot_label(summary, g), "rule": g.rule, **dict(zip(("x", "y", "yerr"),
                                                            g.curve("val_accuracy"),
                                                            strict=True))} for g in groups]
    made["learning curves"] = _draw(plots.plot_learning_curves,
        curves, path=out / f"{prefix}-learning-curves.png", title=summary.name)
    clipped = [{"label": _plot_label(summary, g), "rule": g.rule, **dict(zip(
        ("x", "y", "yerr"), g.curve("adc_saturated"), strict=True))} for g in groups]
    if any(v > 0 for c in clipped for v in c["y"]):  # the periphery clipped during training
        made["ADC saturation during training"] = _draw(plots.plot_learning_curves,
            [c for c in clipped if c["x"]], path=out / f"{prefix}-adc-saturation.png",
            ylabel="share of ADC conversions saturated", title=summary.name)
    angles = [{"label": _plot_label(summary, g), "rule": g.rule, **dict(zip(
        ("x", "y", "yerr"), g.curve("alignment_deg", reduce_layers=True), strict=True))}
        for g in groups]
    angles = [a for a in angles if a["x"]]
    if angles:
        made["alignment with the true gradient"] = _draw(plots.plot_alignment,
            angles, path=out / f"{prefix}-alignment.png", title=summary.name)
    bars = [{"label": _plot_label(summary, g), "rule": g.rule,
             "breakdown": g.breakdown_per_sample()}
            for g in groups]
    made["energy by operation kind"] = _draw(plots.plot_ledger_breakdown,
        bars, path=out / f"{prefix}-ledger.png", title=summary.name)
    return made


# --------------------------------------------------------------------------- report


def _markdown_section(summary: SweepSummary, images: dict[str, Path], base: Path) -> str:
    parts = [f"## {summary.name}", "",
             f"{summary.n_done} runs done in {len(summary.groups)} settings, "
             f"{len(summary.failed)} failed, {len(summary.running)} unfinished; "
             "mean ± standard deviation over seeds.", "",
             markdown_table(*table_rows(summary)), ""]
    if summary.failed:
        parts += ["### Failed points", "", markdown_table(*failed_table(summary)), ""]
    for title, path in images.items():
        parts += [f"![{title}]({path.relative_to(base).as_posix()})", ""]
    return "\n".join(parts)


def write_report(store_path: str | Path, out_dir: str | Path, *,
                 formats: Iterable[str] = FORMATS, sweep: str | None = None,
                 with_plots: bool = True) -> list[Path]:
    """Write ``report.md`` (tables, failures, plots), ``<sweep>.csv`` and the PNGs.

    Returns the paths written.
    """
    formats = list(formats)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"format = {','.join(formats)!r} is invalid; allowed: a comma-"
                         "separated subset of " + ", ".join(FORMATS))
    out = check_output_dir(out_dir, "out")
    summaries = load_summaries(store_path, sweep)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    sections = [f"# Results from `{Path(store_path).name}`", ""]
    for s in summaries:
        images = write_plots(s, out) if with_plots else {}
        written += images.values()
        sections.append(_markdown_section(s, images, out))
        if "csv" in formats:
            written.append(_write_csv(s, out / f"{_slug(s.name)}.csv"))
    if "md" in formats:
        path = out / "report.md"
        path.write_text("\n".join(sections), encoding="utf-8")
        written.append(path)
    return written
