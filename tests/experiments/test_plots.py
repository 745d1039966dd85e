"""Plots: gradient alignment probe, Pareto front, colours, and that every plot writes a PNG."""

from __future__ import annotations

import numpy as np
import pytest

from analogsim.experiments import plots
from analogsim.experiments.data import load_digits, onehot
from analogsim.experiments.points import resolve_point
from analogsim.experiments.runner import build_run


@pytest.fixture(scope="module")
def batch():
    ds = load_digits()
    return ds.x_train[:64], onehot(ds.y_train[:64], 10)


def _trainer(rule: str, hardware: str = "ideal", sizes=(64, 32, 16, 10)):
    run = resolve_point({"rule": rule, "hardware": hardware, "model.sizes": list(sizes)})
    return build_run(run.hw, run.model, run.train, 64, 10)


def test_bp_on_ideal_hardware_follows_the_true_gradient(batch) -> None:
    angles = plots.alignment_angles(_trainer("bp"), *batch)
    assert len(angles) == 3 and max(angles) < 0.5


def test_dfa_hidden_updates_are_not_the_gradient_but_its_output_update_is(batch) -> None:
    tr = _trainer("dfa")
    for _ in range(2):  # DFA starts from zero hidden weights: updates and gradients are 0
        tr.step(*batch)
    angles = plots.alignment_angles(tr, *batch)
    assert angles[-1] < 1e-3  # the output layer uses the true error
    assert all(20 < a < 120 for a in angles[:-1])  # random feedback: far from the gradient


def test_the_probe_leaves_the_run_untouched(batch) -> None:
    x, t = batch
    a, b = _trainer("fa", "aihwkit_default"), _trainer("fa", "aihwkit_default")
    before = a.net.ledger.totals()
    plots.alignment_angles(a, x, t)
    assert a.net.ledger.totals() == before  # nothing charged, no reads counted
    ra, rb = a.step(x, t), b.step(x, t)  # same random draws afterwards
    assert ra.loss == rb.loss
    sa, sb = a.net.state_dict(), b.net.state_dict()
    assert all(np.array_equal(sa[k], sb[k]) for k in sa)


def test_pareto_front() -> None:
    pts = [(1.0, 0.5), (2.0, 0.4), (2.0, 0.8), (3.0, 0.9), (0.5, 0.1), (4.0, 0.85)]
    assert plots.pareto_front(pts) == [4, 0, 2, 3]


def test_rule_colours_are_fixed_and_distinct() -> None:
    colours = [plots.rule_color(r) for r in plots.RULE_ORDER]
    assert len(set(colours)) == len(colours)
    assert plots.rule_color("bp") == plots.rule_color("bp") == colours[0]
    assert plots.rule_color("my-rule") == plots.rule_color("my-rule")


def test_every_plot_writes_a_png(tmp_path) -> None:
    s = [{"label": "bp", "rule": "bp", "x": [1, 2], "y": [0.5, 0.7], "yerr": [0.01, 0.02]},
         {"label": "dfa", "rule": "dfa", "x": [1, 2], "y": [0.4, 0.6], "yerr": None}]
    paths = [
        plots.plot_accuracy_vs_param(s, "read noise", tmp_path / "a.png"),
        plots.plot_learning_curves(s, tmp_path / "b.png"),
        plots.plot_alignment(s, tmp_path / "c.png"),
        plots.plot_accuracy_vs_energy(
            [{"label": "bp", "rule": "bp", "transpose": "probe", "energy": 3.0, "acc": 0.9},
             {"label": "dfa", "rule": "dfa", "transpose": None, "energy": 2.0, "acc": 0.8}],
            tmp_path / "d.png"),
        plots.plot_ledger_breakdown(
            [{"label": "bp", "rule": "bp", "breakdown": {"adc": 1.0, "pulses": 2.0}}],
            tmp_path / "sub" / "e.png"),
    ]
    for ax, name in zip(paths, ("a", "b", "c", "d", "sub/e"), strict=True):
        assert ax.figure is not None  # each returns its Axes
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_draw_into_a_given_axes_and_save_only_when_asked(tmp_path) -> None:
    from matplotlib.figure import Figure

    s = [{"label": "dfa", "rule": "dfa", "x": [1, 2, 3], "y": [0.4, 0.6, 0.7], "yerr": None}]
    fig = Figure()
    left, right = fig.subplots(1, 2)
    assert plots.plot_learning_curves(s, ax=left) is left
    assert plots.plot_accuracy_vs_param(s, "lr", ax=right, title="t") is right
    assert len(left.lines) == 1 and right.get_title() == "t"
    ax = plots.plot_ledger_breakdown([{"label": "x", "rule": "bp", "breakdown": {"adc": 1.0}}])
    assert ax.figure is not fig and list(tmp_path.iterdir()) == []  # no path: nothing saved
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        plots.plot_alignment(s, ax="left")
