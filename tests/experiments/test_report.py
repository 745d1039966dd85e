"""Report: grouping by swept fields, mean ± std over seeds, failed points, files written."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from analogsim.experiments.report import (
    format_table,
    load_summaries,
    markdown_table,
    table_rows,
    write_report,
)
from analogsim.experiments.store import ResultsStore
from analogsim.experiments.sweep import point_id

RULES = ("bp", "dfa")
NOISE = (0.0, 0.05)


def fake_record(rule: str, noise: float, seed: int) -> dict:
    """What run_point returns, with accuracies chosen so the aggregates are easy to check."""
    acc = {"bp": 0.9, "dfa": 0.8}[rule] - noise + 0.01 * seed
    share = 0.4 if rule == "bp" else 0.0
    return {
        "config": {"train": {"rule": rule, "transpose": "probe"}},
        "metrics": [{"epoch": e, "val_accuracy": acc - 0.1 * (2 - e), "train_loss": 1.0 / e,
                     "alignment_deg": [30.0 + 40 * (rule == "dfa"), 0.0]} for e in (1, 2)],
        "ledger": {"counts": {}, "energy_breakdown_pj": {"adc": 100.0, "pulses": 300.0}},
        "summary": {"test_accuracy": acc, "train_loss": 0.5, "energy_per_sample_pj": 4.0,
                    "transpose_energy_share": share, "critical_path_ns": 100.0 + seed},
    }


def make_store(path: Path) -> Path:
    with ResultsStore(path) as store:
        for rule in RULES:
            for noise in NOISE:
                for seed in (0, 1):
                    point = {"rule": rule, "hw.noise.read_noise": noise, "seed": seed,
                             "epochs": 2}
                    store.record_done(point_id(point), sweep="noise", point=point,
                                      **fake_record(rule, noise, seed))
        bad = {"rule": "fa", "hw.noise.read_noise": 0.0, "seed": 0, "epochs": 2}
        store.record_failed(point_id(bad), "Traceback ...\nFloatingPointError: diverged",
                            sweep="noise", point=bad)
        other = {"rule+transpose": ["bp", "twin"], "seed": 0}
        store.record_done(point_id(other), sweep="other", point=other,
                          **fake_record("bp", 0.0, 0))
    return path


def test_groups_and_aggregates(tmp_path: Path) -> None:
    noise, other = load_summaries(make_store(tmp_path / "r.sqlite"))
    assert noise.name == "noise" and noise.keys == ["rule", "hw.noise.read_noise"]
    assert [g.label for g in noise.groups] == ["bp, read_noise=0", "bp, read_noise=0.05",
                                              "dfa, read_noise=0", "dfa, read_noise=0.05"]
    g = noise.groups[1]
    mean, std = g.mean_std("test_accuracy")
    assert mean == pytest.approx(0.855) and std == pytest.approx(0.00707107, rel=1e-5)
    assert g.curve("val_accuracy")[0] == [1, 2]
    assert g.curve("alignment_deg", reduce_layers=True)[1] == [30.0, 30.0]
    assert g.breakdown_per_sample() == {"adc": 1.0, "pulses": 3.0}  # scaled to 4 pJ/sample
    assert [r["point"]["rule"] for r in noise.failed] == ["fa"]
    # a bundle is split into its keys, and rule/transpose come from it
    assert other.keys == ["rule"] and other.groups[0].transpose == "probe"
    headers, rows = table_rows(noise)
    assert headers[:3] == ["rule", "hw.noise.read_noise", "seeds"]
    assert rows[1][:4] == ["bp", "0.05", "2", "0.855 ± 0.007"]
    assert "40.0 % ± 0.0" in rows[0]


def test_unknown_sweep_and_missing_store(tmp_path: Path) -> None:
    path = make_store(tmp_path / "r.sqlite")
    with pytest.raises(ValueError, match="sweep 'x' is not in .*allowed: noise, other"):
        load_summaries(path, "x")
    with pytest.raises(ValueError, match="store .*nope.sqlite' does not exist"):
        load_summaries(tmp_path / "nope.sqlite")
    with pytest.raises(ValueError, match="format = 'pdf' is invalid; allowed: .*md, csv"):
        write_report(path, tmp_path / "out", formats=["pdf"])


def test_write_report_md_csv_png(tmp_path: Path) -> None:
    path = make_store(tmp_path / "r.sqlite")
    written = write_report(path, tmp_path / "out", sweep="noise")
    names = {p.name for p in written}
    assert {"report.md", "noise.csv", "noise-accuracy-vs-energy.png", "noise-ledger.png",
            "noise-learning-curves.png", "noise-alignment.png",
            "noise-accuracy-vs-hw.noise.read_noise.png"} == names
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## noise" in md and "| dfa | 0.05 | 2 | 0.755 ± 0.007 |" in md
    assert "### Failed points" in md and "FloatingPointError: diverged" in md
    assert "![accuracy vs energy](noise-accuracy-vs-energy.png)" in md
    with (tmp_path / "out" / "noise.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and float(rows[3]["test_accuracy_mean"]) == pytest.approx(0.755)


def test_text_tables() -> None:
    text = format_table(["a", "bb"], [["1", "2"], ["333", "4"]])
    assert text.splitlines() == ["a    bb", "---  --", "1    2 ", "333  4 "]
    assert markdown_table(["x|y"], [["1"]]).splitlines()[0] == "| x\\|y |"


def test_learned_eps_columns_only_when_runs_have_them(tmp_path: Path) -> None:
    path = tmp_path / "eps.sqlite"
    with ResultsStore(path) as store:
        for seed, eps in ((0, 0.05), (1, 0.15)):
            point = {"rule": "bp", "seed": seed}
            rec = fake_record("bp", 0.0, seed)
            rec["summary"].update(eps_mean=eps, eps_min=eps / 2, eps_max=eps * 2)
            store.record_done(point_id(point), sweep="smooth", point=point, **rec)
    plain, = load_summaries(make_store(tmp_path / "r.sqlite"))[:1]
    assert not any(m[0].startswith("eps_") for m in plain.metrics)
    smooth, = load_summaries(path)
    headers, rows = table_rows(smooth)
    assert "learned ε (mean)" in headers
    assert rows[0][headers.index("learned ε (mean)")].startswith("0.1 ± 0.07")
