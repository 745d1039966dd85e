"""Plots of experiment results (matplotlib, headless) and the gradient-alignment probe.

Every plot function takes plain lists of dicts (built by :mod:`analogsim.experiments.report`
from a results store, or by :meth:`analogsim.Result.curves`), draws into ``ax`` if given
(e.g. from ``matplotlib.pyplot.subplots()`` in a notebook) or else into a new
:class:`matplotlib.figure.Figure` made directly, never through ``pyplot`` (nothing opens a
window; the global backend of an interactive session is left alone), saves a PNG only when
``path`` is given, and returns the :class:`~matplotlib.axes.Axes` (its figure is
``ax.figure``).

Colours are fixed per rule (:func:`rule_color`), so ``bp`` has the same colour in every
figure; several series of one rule differ by line style.

This module is also the one place in the library allowed to use :mod:`analogsim.oracle`
(non-physical inspection): :func:`alignment_angles` needs the devices' exact weights to
compute the true gradient.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["RULE_ORDER", "rule_color", "alignment_angles", "layer_weights",
           "plot_accuracy_vs_param", "plot_accuracy_vs_energy", "plot_accuracy_bars",
           "plot_learning_curves", "plot_alignment", "plot_ledger_breakdown", "pareto_front"]

#: Fixed colour order: the registry's rules first, then anything else in order of appearance.
RULE_ORDER = ("bp", "fa", "dfa", "ifa", "drtp", "tp", "dtp", "dni", "hybrid")
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf")
_LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
#: Marker per series of one rule (with the line style), so that even the n-th series differs.
_SERIES_MARKERS = ("o", "s", "^", "v", "D", "P")
#: Marker per transpose strategy in the accuracy-vs-energy plot (None: the rule needs none).
TRANSPOSE_MARKERS = {None: "o", "probe": "s", "shadow": "D", "twin": "^", "bidirectional": "v"}
_KIND_COLORS = {"adc": "#4c72b0", "dac": "#55a868", "cells": "#c44e52", "pulses": "#8172b2",
                "programming": "#ccb974", "digital": "#64b5cd", "memory": "#8c8c8c"}


def rule_color(rule: str) -> str:
    """The colour of ``rule`` in every figure (unknown names hash onto the palette)."""
    if rule in RULE_ORDER:
        return _PALETTE[RULE_ORDER.index(rule) % len(_PALETTE)]
    return _PALETTE[sum(map(ord, rule)) % len(_PALETTE)]


def _series_index(series: Sequence[dict[str, Any]]) -> list[int]:
    """Per series, how many series of the same rule came before it."""
    seen: dict[str, int] = {}
    out = []
    for s in series:
        n = seen.get(s["rule"], 0)
        seen[s["rule"]] = n + 1
        out.append(n)
    return out


def _styles(series: Sequence[dict[str, Any]]) -> list[Any]:
    """Line style per series: the n-th series of a rule gets the n-th style."""
    return [_LINESTYLES[n % len(_LINESTYLES)] for n in _series_index(series)]


def _markers(series: Sequence[dict[str, Any]]) -> list[str]:
    """Marker per series: the n-th series of a rule gets the n-th marker."""
    return [_SERIES_MARKERS[n % len(_SERIES_MARKERS)] for n in _series_index(series)]


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def _finish(ax: Axes, path: str | Path | None) -> Axes:
    """Save ``ax``'s figure to ``path`` if one is given; return ``ax``."""
    if path is not None:
        _save(ax.figure, path)
    return ax


def _new(title: str | None, size: tuple[float, float] = (6.4, 4.2),
         ax: Axes | None = None) -> tuple[Figure, Axes]:
    """``(figure, axes)``: the given ``ax`` and its figure, or a new figure of ``size``."""
    if ax is None:
        fig = Figure(figsize=size)
        ax = fig.subplots()
    elif not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes, got {type(ax).__name__}")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.set_axisbelow(True)
    return ax.figure, ax


# --------------------------------------------------------------------------- alignment


def layer_weights(layer: Any) -> np.ndarray:
    """The weight matrix a layer computes with, float64 ``(n_out, n_in)`` (non-physical)."""
    if hasattr(layer, "w"):
        return np.asarray(layer.w, dtype=np.float64)
    from .. import oracle

    w = oracle.weights(layer.array) * float(layer.scale)
    cols = getattr(layer, "col_scale", None)  # per-output mapping (program_weights)
    return w if cols is None else w * cols.astype(np.float64)[:, None]


def _angle_deg(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None:
        return math.nan
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return math.nan
    cos = float(np.sum(a * b)) / (na * nb)
    return math.degrees(math.acos(min(1.0, max(-1.0, cos))))


def _true_gradients(net: Any, target: np.ndarray) -> dict[int, np.ndarray]:
    r"""BP's :math:`\delta_l^\top x_l` per layer on the cached forward pass, computed digitally
    with the devices' exact weights; stops below a unit without a derivative."""
    c = net.cache
    top = net.layers[-1]
    delta = net.loss.grad(c.u[-1], target).astype(np.float64)
    if top.act.name != "identity":
        delta = delta * top.act.deriv(c.u[-1], c.h[-1])
    grads = {}
    for l in range(len(net) - 1, -1, -1):
        grads[l] = delta.T @ c.x[l].astype(np.float64)
        below = net.layers[l - 1] if l else None
        if below is None or not below.act.has_deriv:
            break
        delta = (delta @ layer_weights(net.layers[l])) * below.act.deriv(c.u[l - 1],
                                                                          c.h[l - 1])
    return grads


def alignment_angles(trainer: Any, x: np.ndarray, t: np.ndarray) -> list[float]:
    r"""Angle (degrees) between each layer's rule update and the true gradient.

    On a deep copy of ``trainer`` (so the run is unchanged: no ledger charges, no random
    draws), the rule computes its updates for the batch ``(x, t)``; its weight change for
    layer ``l`` is :math:`-\eta\,\delta_l^\top x_l` summed over its update records. The true
    gradient is backprop's :math:`\delta_l^\top x_l` on the same (noisy) forward pass with the
    exact device weights, :math:`\delta_{l-1} = (W_l^\top \delta_l) \odot f'(u_{l-1})`. The
    angle is :math:`\arccos\frac{\langle A, B\rangle}{\|A\|\,\|B\|}`: 0° for BP on ideal
    hardware, below 90° when the rule descends the loss.

    Returns
    -------
    list of float
        One angle per layer (input side first); NaN where a rule makes no update, the update
        is zero, or the true gradient is undefined (a unit without a derivative below).
    """
    from ..hardware.config import CostModel
    from ..rules import Schedule

    conv = [layer.name for layer in trainer.net.layers if hasattr(layer, "kernels")]
    if conv:
        raise ValueError(f"alignment angles are measured on fully connected layers, but "
                         f"{', '.join(conv)} are conv layers (or pool their input); allowed: "
                         "alignment = false for a conv network")
    tr = copy.deepcopy(trainer)
    net, rule = tr.net, tr.rule
    sched = Schedule(net.ledger, net.hw.cost if net.hw is not None else CostModel())
    _, updates = rule.compute(net, x, t, sched)
    ours: dict[int, np.ndarray] = {}
    index = {id(layer): l for l, layer in enumerate(net.layers)}
    for up in updates:
        l = index.get(id(up.target))
        if l is not None and not up.aux:
            dw = up.delta.astype(np.float64).T @ up.x.astype(np.float64)
            ours[l] = ours[l] + dw if l in ours else dw
    true = _true_gradients(net, t)
    return [_angle_deg(ours.get(l), true.get(l)) for l in range(len(net))]


# --------------------------------------------------------------------------- plots


def plot_accuracy_vs_param(series: Sequence[dict[str, Any]], xlabel: str,
                           path: str | Path | None = None, *, title: str | None = None,
                           ylabel: str = "test accuracy", ax: Axes | None = None) -> Axes:
    """Accuracy against a swept setting, one line per series with seed spread as error bars.

    ``series``: dicts with ``label``, ``rule``, ``x``, ``y`` and ``yerr`` (lists).
    """
    _, ax = _new(title, (7.6, 4.2), ax)
    for s, ls, mk in zip(series, _styles(series), _markers(series), strict=True):
        ax.errorbar(s["x"], s["y"], yerr=s.get("yerr"), label=s["label"], color=rule_color(
            s["rule"]), linestyle=ls, marker=mk, markersize=4, capsize=3)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _finish(ax, path)


def plot_score_scatter(points: Sequence[dict[str, Any]], xlabel: str,
                       path: str | Path | None = None, *, title: str | None = None,
                       ylabel: str = "validation accuracy (trials)", ax: Axes | None = None
                       ) -> Axes:
    """A tuning search's trials: score against one searched parameter, a dot per trial.

    ``points``: dicts with ``rule``, ``x`` (the parameter's value) and ``y`` (the score);
    the x axis is logarithmic when the values are positive and span more than 10×.
    """
    _, ax = _new(title, (7.6, 4.2), ax)
    for rule in dict.fromkeys(p["rule"] for p in points):
        pts = [(p["x"], p["y"]) for p in points if p["rule"] == rule]
        ax.scatter([x for x, _ in pts], [y for _, y in pts], s=16, label=rule,
                   color=rule_color(rule))
    xs = [p["x"] for p in points]
    if xs and min(xs) > 0 and max(xs) > 10 * min(xs):
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _finish(ax, path)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (lower energy *and* higher accuracy),
    ordered by energy."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def plot_accuracy_vs_energy(points: Sequence[dict[str, Any]], path: str | Path | None = None,
                            *, title: str | None = None, ax: Axes | None = None) -> Axes:
    """Accuracy against training energy per sample, with the Pareto front.

    ``points``: dicts with ``label``, ``rule``, ``transpose`` (None for rules that do not
    need ``Wᵀ``), ``energy``, ``acc`` and optionally ``acc_err``, ``energy_err`` and ``note``
    (written next to the point, e.g. the swept setting). The colour shows the rule, the
    marker the transpose strategy.
    """
    from matplotlib.lines import Line2D

    _, ax = _new(title, (7.6, 4.6), ax)
    xy = [(p["energy"], p["acc"]) for p in points]
    for p in points:
        ax.errorbar(p["energy"], p["acc"], yerr=p.get("acc_err"), xerr=p.get("energy_err"),
                    marker=TRANSPOSE_MARKERS.get(p.get("transpose"), "X"), markersize=7,
                    color=rule_color(p["rule"]), linestyle="none", capsize=2, alpha=0.9)
        if p.get("note"):
            ax.annotate(p["note"], (p["energy"], p["acc"]), textcoords="offset points",
                        xytext=(5, 3), fontsize=6, color=rule_color(p["rule"]))
    front = pareto_front(xy)
    handles = [Line2D([], [], color=rule_color(r), marker="o", linestyle="none", label=r)
               for r in dict.fromkeys(p["rule"] for p in points)]
    strategies = [t for t in dict.fromkeys(p.get("transpose") for p in points) if t]
    handles += [Line2D([], [], color="black", marker=TRANSPOSE_MARKERS.get(t, "X"),
                       linestyle="none", label=f"Wᵀ by {t}") for t in strategies]
    if front:  # ringed; joined by a dashed line when more than one point is on it
        handles += ax.plot([xy[i][0] for i in front], [xy[i][1] for i in front], color="black",
                           linewidth=1, linestyle="--" if len(front) > 1 else "none",
                           alpha=0.6, marker="o", markersize=14, markerfacecolor="none",
                           label="Pareto front" if len(front) > 1
                           else "Pareto front (one point beats all)")
    energies = [e for e, _ in xy if e > 0]
    if energies and max(energies) / min(energies) > 20:
        ax.set_xscale("log")
    ax.set_xlabel("training energy per sample (pJ)")
    ax.set_ylabel("test accuracy")
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _finish(ax, path)


def _curves(series: Sequence[dict[str, Any]], path: str | Path | None, ylabel: str,
            title: str | None, ylim: tuple[float, float] | None,
            hline: tuple[float, str] | None = None, ax: Axes | None = None) -> Axes:
    _, ax = _new(title, (7.6, 4.2), ax)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if hline is not None:
        ax.axhline(hline[0], color="grey", linewidth=1, linestyle=":", label=hline[1])
    for s, ls, mk in zip(series, _styles(series), _markers(series), strict=True):
        x, y = np.asarray(s["x"], float), np.asarray(s["y"], float)
        ax.plot(x, y, label=s["label"], color=rule_color(s["rule"]), linestyle=ls, marker=mk,
                markersize=3)
        if s.get("yerr") is not None:
            err = np.asarray(s["yerr"], float)
            ax.fill_between(x, y - err, y + err, color=rule_color(s["rule"]), alpha=0.15)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _finish(ax, path)


def plot_learning_curves(series: Sequence[dict[str, Any]], path: str | Path | None = None, *,
                         ylabel: str = "validation accuracy", title: str | None = None,
                         ax: Axes | None = None) -> Axes:
    """One curve per series (``label``, ``rule``, ``x`` = epochs, ``y``, ``yerr``)."""
    return _curves(series, path, ylabel, title, (0, 1.02) if "accuracy" in ylabel else None,
                   ax=ax)


def plot_alignment(series: Sequence[dict[str, Any]], path: str | Path | None = None, *,
                   title: str | None = None, ax: Axes | None = None) -> Axes:
    """Angle between each rule's hidden-layer update and the true gradient, per epoch."""
    return _curves(series, path, "angle to true gradient, hidden layers (°)", title, (0, 120),
                   hline=(90.0, "90°: no descent"), ax=ax)


def plot_accuracy_bars(bars: Sequence[dict[str, Any]], path: str | Path | None = None, *,
                       title: str | None = None, ylabel: str = "test accuracy",
                       xlabel: str | None = None, second_label: str | None = None,
                       ax: Axes | None = None) -> Axes:
    """Grouped bars: one group per setting, one bar per rule, seed spread as error bars.

    ``bars``: dicts with ``setting`` (x-axis group), ``rule``, ``y`` and ``yerr``, and
    optionally ``y2`` / ``yerr2``: a second value of the same quantity (e.g. the test
    accuracy after drift) drawn as a black tick across the bar, named ``second_label`` in
    the legend. The bars of a setting are centred on its tick, however many rules it has.
    """
    settings = list(dict.fromkeys(b["setting"] for b in bars))
    rules = list(dict.fromkeys(b["rule"] for b in bars))
    per_setting = {s: [r for r in rules if any(b["setting"] == s and b["rule"] == r
                                               for b in bars)] for s in settings}
    n_max = max(len(v) for v in per_setting.values())
    _, ax = _new(title, (max(6.4, 0.35 * len(settings) * n_max + 2.5), 4.6), ax)
    width = 0.8 / n_max
    for rule in rules:
        mine = {b["setting"]: b for b in bars if b["rule"] == rule}
        here = [s for s in settings if s in mine]
        xs = [i + (per_setting[s].index(rule) - (len(per_setting[s]) - 1) / 2) * width
              for i, s in enumerate(settings) if s in mine]
        ys = [mine[s]["y"] for s in here]
        errs = [mine[s].get("yerr") or 0.0 for s in here]
        ax.bar(xs, ys, width=width * 0.95, yerr=errs, capsize=2, color=rule_color(rule),
               label=rule)
        second = [(x, mine[s]["y2"], mine[s].get("yerr2") or 0.0) for x, s in zip(
            xs, here, strict=True) if mine[s].get("y2") is not None]
        if second:  # a tick as wide as the bar, with its own seed spread
            x2, y2 = [x for x, _, _ in second], [y for _, y, _ in second]
            ax.hlines(y2, [x - 0.42 * width for x in x2], [x + 0.42 * width for x in x2],
                      colors="black", linewidth=2.5, zorder=3)
            ax.errorbar(x2, y2, yerr=[e for _, _, e in second], fmt="none", ecolor="black",
                        elinewidth=1, capsize=0, zorder=3)
    if second_label:  # the rules, then one legend entry for the ticks
        from matplotlib.lines import Line2D

        handles, labels = ax.get_legend_handles_labels()
        handles.append(Line2D([], [], color="black", linewidth=2.5))
        labels.append(second_label)
        ax.legend(handles, labels, fontsize=8, title="rule", title_fontsize=8,
                  loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_xticks(range(len(settings)), [s.replace(", ", "\n") for s in settings], fontsize=7)
    ax.grid(False, axis="x")
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    if not second_label:
        ax.legend(fontsize=8, title="rule", title_fontsize=8, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0))
    return _finish(ax, path)


def plot_ledger_breakdown(bars: Sequence[dict[str, Any]], path: str | Path | None = None, *,
                          title: str | None = None, ax: Axes | None = None) -> Axes:
    """Stacked bars of training energy per sample by operation kind, one bar per group.

    ``bars``: dicts with ``label``, ``rule`` and ``breakdown`` ``{kind: pJ per sample}``.
    """
    _, ax = _new(title, (max(6.4, 0.6 * len(bars) + 3), 4.6), ax)
    kinds = [k for k in _KIND_COLORS if any(b["breakdown"].get(k, 0) > 0 for b in bars)]
    kinds += sorted({k for b in bars for k in b["breakdown"]} - set(_KIND_COLORS))
    x = np.arange(len(bars))
    bottom = np.zeros(len(bars))
    for kind in kinds:
        h = np.array([b["breakdown"].get(kind, 0.0) for b in bars])
        ax.bar(x, h, bottom=bottom, label=kind, color=_KIND_COLORS.get(kind, "#dddddd"),
               width=0.7)
        bottom += h
    ax.set_xticks(x, [b["label"] for b in bars], rotation=30, ha="right", fontsize=8)
    for tick, b in zip(ax.get_xticklabels(), bars, strict=True):
        tick.set_color(rule_color(b["rule"]))
    ax.set_ylabel("training energy per sample (pJ)")
    if kinds:  # runs without a cost breakdown (another run function) draw empty bars
        ax.legend(fontsize=8, title="operation kind", title_fontsize=8, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0))
    return _finish(ax, path)
