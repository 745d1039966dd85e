"""The shipped sweep specs in experiments/: each loads, expands, resolves and stays small."""

from __future__ import annotations

from pathlib import Path

import pytest

from analogsim.experiments.cli import EXPERIMENTS_DIR
from analogsim.experiments.points import expand_bundles, resolve_point
from analogsim.experiments.select import trial_points
from analogsim.experiments.sweep import expand, load_spec, point_id

SPECS = sorted(EXPERIMENTS_DIR.glob("*.toml"))
#: Longer specs (other data, more epochs) live in subfolders: checked, but not held to the
#: digits budget.
LONG_SPECS = sorted(set(EXPERIMENTS_DIR.rglob("*.toml")) - set(SPECS))
#: The questions the issue asks the shipped specs to answer, by the spec file that does.
TOPICS = {
    "rules_vs_read_noise": "hw.noise.read_noise",
    "rules_vs_adc_bits": "hw.adc.bits",
    "rules_vs_dac_bits": "hw.dac.bits",
    "transpose_vs_feedback": "transpose",
    "device_nonidealities": "hw.device.stuck_off",
    "smooth_activation": "model.learnable_eps",
    "seed_problems": "staleness",
}
#: Long specs that check a mechanism on one seed rather than make a results table.
CHECKS = {"optimizer_ablation", "optimizers_adc"}
#: Budget per spec in run-epochs on the digits (~1 s each on one core): minutes on 2 cores.
MAX_RUN_EPOCHS = 250


def test_every_topic_has_a_spec() -> None:
    assert {p.stem for p in SPECS} >= set(TOPICS)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_loads_expands_and_resolves(path: Path) -> None:
    spec = load_spec(path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# What it shows:")  # a comment header saying what it shows
    assert spec.description
    points = expand(spec)
    assert len(points) >= 2
    runs = [resolve_point(p) for p in points]
    assert all(r.train.dataset == "digits" for r in runs)
    assert len({p.get("seed", 0) for p in points}) <= 3
    assert sum(r.train.epochs for r in runs) <= MAX_RUN_EPOCHS
    if path.stem in TOPICS:  # the swept setting is really varied
        key = TOPICS[path.stem]
        assert len({repr(expand_bundles(p).get(key)) for p in points}) > 1


def test_bundled_settings_change_the_resolved_config() -> None:
    spec = load_spec(EXPERIMENTS_DIR / "device_nonidealities.toml")
    runs = [resolve_point(p) for p in expand(spec) if p["rule"] == "dfa" and p["seed"] == 0]
    d = [r.hw.device for r in runs]
    devices = [(x.levels, x.up_down, x.stuck_off, x.drift_nu, x.drift_nu_std) for x in d]
    assert devices == [(None, 0.0, 0.0, 0.0, 0.0), (16, 0.0, 0.0, 0.0, 0.0),
                       (None, 0.5, 0.0, 0.0, 0.0), (None, 0.0, 0.05, 0.0, 0.0),
                       (None, 0.0, 0.0, 0.05, 0.02)]
    assert all(r.drift_s == 86400.0 for r in runs)


def test_long_specs_exist_and_resolve() -> None:
    assert [p.relative_to(EXPERIMENTS_DIR).as_posix() for p in LONG_SPECS] == [
        "fashion/ctoc_scope.toml", "fashion/forward_rules.toml", "fashion/lenet.toml",
        "fashion/optimizer_ablation.toml",
        "fashion/optimizers.toml", "fashion/optimizers_adc.toml",
        "fashion/optimizers_core.toml", "fashion/rules_tuned.toml",
        "fashion/seed_problems.toml", "fashion/update_cost.toml",
        "mnist/rules_table_mnist.toml"]
    for path in LONG_SPECS:
        assert path.read_text(encoding="utf-8").startswith("# What it shows:")
        spec = load_spec(path)
        points = expand(spec)
        if spec.tuning() is not None:  # every candidate and the trial overrides resolve too
            points = points + trial_points(points, *spec.tuning()[1:], point_id)
        runs = [resolve_point(p) for p in points]
        if path.stem in CHECKS:  # one seed: a check of a mechanism, not a results table
            continue
        assert len({p.get("seed", 0) for p in points}) >= 3
        assert {r.train.rule for r in runs} >= {"bp", "dfa"}


def test_tuned_rules_spec_searches_every_rule_on_two_presets() -> None:
    spec = load_spec(EXPERIMENTS_DIR / "fashion" / "rules_tuned.toml")
    runs = [resolve_point(p) for p in expand(spec)]
    assert {r.train.rule for r in runs} == {"bp", "fa", "dfa", "ifa", "drtp", "tp", "dtp",
                                           "dni", "hybrid"}
    assert {r.train.transpose for r in runs if r.train.rule == "bp"} == {"probe",
                                                                         "bidirectional"}
    assert {r.train.epochs for r in runs} == {10} and {r.train.seed for r in runs} == {0, 1, 2}
    section, table, candidates = spec.tuning()
    assert section == "[search]" and table["metric"] == "val_accuracy"
    assert len(candidates) == 6 and {frozenset(c) for c in candidates} == {
        frozenset({"lr", "lr_aux"})}


def test_forward_rules_spec_covers_the_issue_grid() -> None:
    spec = load_spec(EXPERIMENTS_DIR / "fashion" / "forward_rules.toml")
    runs = [resolve_point(p) for p in expand(spec)]
    assert {r.train.rule for r in runs} == {"forward_forward", "pepita", "forward_gradient",
                                           "node_perturbation", "bp", "dfa"}
    assert {r.hw.name for r in runs} == {"ideal", "aihwkit_default"}
    assert {r.model.sizes for r in runs} == {(784, 256, 256, 10)}
    assert all(r.train.epochs >= 10 and r.train.dataset == "fashion" for r in runs)
    assert {r.train.seed for r in runs} == {0, 1, 2}
    section, table, candidates = spec.tuning()
    assert section == "[search]" and table["metric"] == "val_accuracy"
    assert {frozenset(c) for c in candidates} == {frozenset({"lr"})}


def test_fashion_optimizer_specs_cover_the_issue_grid() -> None:
    full = [resolve_point(p) for p in expand(load_spec(EXPERIMENTS_DIR / "fashion" /
                                                       "optimizers.toml"))]
    assert {r.train.rule for r in full} == {"bp", "dfa", "fa", "drtp"}
    assert {r.train.transpose for r in full if r.train.rule == "bp"} == {"probe",
                                                                         "bidirectional"}
    assert {r.train.optimizer for r in full} == {"sgd", "mixed_precision", "ttv2", "c_ttv2",
                                                 "agad"}
    assert {r.hw.name for r in full} == {"ideal", "ecram", "pcm", "rram"}
    assert all(r.train.epochs >= 10 and r.train.dataset == "fashion" for r in full)


def test_lenet_spec_runs_every_conv_rule_on_two_presets() -> None:
    spec = load_spec(EXPERIMENTS_DIR / "fashion" / "lenet.toml")
    runs = [resolve_point(p) for p in expand(spec)]
    assert {r.model.name for r in runs} == {"lenet5"} and {r.train.dataset for r in runs} == {
        "fashion"}
    assert {(r.train.rule, r.train.rule_options["conv_layers"]) for r in runs} == {
        ("bp", "same"), ("fa", "same"), ("dfa", "same"), ("drtp", "same"), ("dfa", "bp"),
        ("fa", "bp")}
    assert {r.hw.name for r in runs} == {"ideal", "aihwkit_default"}
    assert {r.train.epochs for r in runs} == {10} and {r.train.seed for r in runs} == {0, 1, 2}
    section, table, candidates = spec.tuning()
    assert section == "[select]" and table["metric"] == "val_accuracy"
    assert [c["lr"] for c in candidates] == [0.01, 0.03, 0.1, 0.3]
