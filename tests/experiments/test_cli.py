"""The `analogsim` command line: train, sweep, report, presets, compare, errors and docs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_report import make_store

from analogsim.data import EXPERIMENTS_DIR
from analogsim.experiments import cli
from analogsim.experiments.clidoc import reference
from analogsim.experiments.store import ResultsStore

REPO = Path(__file__).resolve().parents[2]
KEYS = ("test_accuracy", "train_loss", "energy_per_sample_pj", "transpose_energy_share",
        "critical_path_ns")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_json(capsys) -> None:
    code, out, err = run(capsys, "train", "--rule", "dfa", "--hardware", "ideal", "--dataset",
                         "digits", "--epochs", "1", "--seed", "0", "--json")
    assert code == 0 and err == ""  # no progress bar with --json
    record = json.loads(out)
    for key in KEYS:
        assert isinstance(record[key], float)
    assert 0.1 < record["test_accuracy"] <= 1.0 and record["transpose_energy_share"] == 0.0
    assert record["config"]["train"]["rule"] == "dfa" and len(record["epochs"]) == 1


def test_train_table_progress_and_overrides(capsys) -> None:
    code, out, err = run(capsys, "train", "--rule", "bp", "--hardware", "aihwkit_default",
                         "--epochs", "1", "--set", "noise.read_noise=0.01",
                         "--set", "model.sizes=[64, 16, 10]", "--lr", "0.1")
    assert code == 0
    assert "bp on aihwkit_default" in out and "share spent on transposes" in out
    assert "critical-path latency per step (ns)" in out and "energy per sample: adc" in out
    assert "100%" not in err  # stderr is no terminal here: no progress bar (test_cli_comforts)


@pytest.mark.parametrize(("argv", "needles"), [
    (["train", "--rule", "nope"], ["invalid choice: 'nope'", "'bp'", "'dfa'"]),
    (["train", "--hardware", "nonexistent"], ["'nonexistent' is unknown", "aihwkit_default"]),
    (["train", "--model", "huge"], ["'huge' is unknown", "digits-small"]),
    (["train", "--set", "noise.bogus=1"], ["noise: key 'bogus' is unknown", "read_noise"]),
    (["train", "--set", "adc.bitz=6"], ["adc: key 'bitz' is unknown (did you mean 'bits'?)"]),
    (["train", "--set", "colour=red"], ["'colour' is unknown", "hw.<section>.<field>"]),
    (["train", "--set", "model.hiden=relu"], ["model: key 'hiden' is unknown (did you mean "
                                              "'hidden'?)"]),
    (["train", "--set", "rule.bogus=1"], ["rule 'dfa': option 'bogus' is unknown; allowed: "
                                          "feedback, feedback_scale, zero_init"]),
    (["train", "--set", "rule.feedbak=digital"], ["did you mean 'feedback'?"]),
    (["train", "--set", "rule.feedback=optical"], ["rule.feedback = 'optical' is invalid",
                                                   "'analog', 'digital'"]),
    (["train", "--set", "lr"], ["--set: override 'lr' is invalid", "key=value"]),
    (["train", "--set", "model.hidden=a b"], ["is not a TOML literal"]),
    (["train", "--epochs", "0"], ["train.epochs = 0 is invalid", "[1, 100000]"]),
    (["train", "--epochs", "two"], ["invalid int value: 'two'"]),
    (["train", "--transpose", "mirror"], ["invalid choice: 'mirror'", "'shadow'"]),
    (["sweep", "missing.toml"], ["'missing.toml' is invalid", "existing TOML file"]),
    (["report", "missing.sqlite"], ["'missing.sqlite' does not exist"]),
    (["compare", "--rules", "bp,nope"], ["nope is not a rule", "dfa"]),
    (["compare", "--seeds", "0"], ["--seeds '0' is invalid", "count N >= 1"]),
    (["compare", "--hardware", "gpu"], ["'gpu' is unknown", "rram"]),
    (["compare", "--optimizers", "sgd,adam"], ["adam is not an optimizer", "mixed_precision"]),
    ([], ["COMMAND"]),
])
def test_bad_arguments_exit_2_and_name_the_value(capsys, argv, needles) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    text = out + err
    for needle in needles:
        assert needle in text
    assert "Traceback" not in text


def test_malformed_hardware_toml_and_spec(capsys, tmp_path: Path) -> None:
    bad = tmp_path / "hw.toml"
    bad.write_text("[noise\n")
    code, _, err = run(capsys, "train", "--hardware", str(bad))
    assert code == 2 and "malformed TOML" in err and str(bad) in err
    spec = tmp_path / "s.toml"
    spec.write_text('name = "s"\n[base]\nhw_noise = 0.1\n[grid]\nseed = [0]\n')
    code, _, err = run(capsys, "sweep", str(spec), "--store", str(tmp_path / "r.sqlite"))
    assert code == 2 and "key 'hw_noise' is unknown" in err
    assert not (tmp_path / "r.sqlite").exists()  # rejected before anything ran


def test_save_checkpoint(capsys, tmp_path: Path) -> None:
    path = tmp_path / "ckpt" / "run.npz"
    code, out, err = run(capsys, "train", "--epochs", "1", "--json", "--save", str(path),
                         "--set", "model.sizes=[64, 8, 10]")
    from analogsim.experiments import checkpoint

    assert code == 0 and path.is_file()
    meta = checkpoint.read_meta(path)
    assert meta["epoch"] == 1 and meta["config"]["train"]["rule"] == "dfa"


def _json_run(capsys, *argv: str) -> dict:
    code, out, err = run(capsys, "train", "--json", "--hardware", "aihwkit_default",
                         "--set", "model.sizes=[64, 8, 10]", *argv)
    assert code == 0, err
    record = json.loads(out)
    record.pop("wall_time_s")
    return record


def test_resume_continues_a_saved_run_exactly(capsys, tmp_path: Path) -> None:
    path = str(tmp_path / "run.npz")
    straight = _json_run(capsys, "--epochs", "2")
    first = _json_run(capsys, "--epochs", "1", "--save", path)
    assert len(first["epochs"]) == 1
    resumed = _json_run(capsys, "--epochs", "2", "--save", path, "--resume")
    assert resumed == straight
    # Without --resume an existing checkpoint is overwritten by a fresh run.
    assert _json_run(capsys, "--epochs", "2", "--save", path) == straight


def test_resume_rejects_other_settings_and_needs_save(capsys, tmp_path: Path) -> None:
    path = str(tmp_path / "run.npz")
    _json_run(capsys, "--epochs", "1", "--save", path)
    code, _, err = run(capsys, "train", "--json", "--hardware", "aihwkit_default", "--set",
                       "model.sizes=[64, 8, 10]", "--epochs", "2", "--lr", "0.2", "--save",
                       path, "--resume")
    assert code == 2 and "lr" in err
    code, _, err = run(capsys, "train", "--resume")
    assert code == 2 and "--resume is invalid without --save" in err


def test_presets_lists_everything(capsys) -> None:
    code, out, _ = run(capsys, "presets")
    assert code == 0
    for name in ("ideal", "aihwkit_default", "rram", "pcm", "ecram", "rpu_ideal_device",
                 "digits-small", "nokland-7x240", "bartunov-5x256", "smooth-256",
                 "experiments/rules_vs_read_noise.toml",
                 "experiments/mnist/rules_table_mnist.toml", "dfa", "hybrid"):
        assert name in out
    assert "(invalid" not in out


def test_report_writes_tables_and_plots(capsys, tmp_path: Path) -> None:
    store = make_store(tmp_path / "r.sqlite")
    code, out, _ = run(capsys, "report", str(store), "--format", "md,csv")
    assert code == 0
    out_dir = tmp_path / "r-report"  # the default output directory
    for name in ("report.md", "noise.csv", "other.csv", "noise-accuracy-vs-energy.png",
                 "noise-ledger.png"):
        assert (out_dir / name).is_file() and str(out_dir / name) in out
    code, _, _ = run(capsys, "report", str(store), "--out", str(tmp_path / "o"), "--format",
                     "csv", "--no-plots", "--sweep", "other")
    assert code == 0 and [p.name for p in (tmp_path / "o").iterdir()] == ["other.csv"]
    code, _, err = run(capsys, "report", str(store), "--format", "pdf")
    assert code == 2 and "format = 'pdf' is invalid" in err


def test_sweep_runs_resumes_and_keeps_failures(capsys, tmp_path: Path) -> None:
    spec = tmp_path / "tiny.toml"
    spec.write_text('name = "tiny"\n[base]\nepochs = 1\nmodel = "digits-small"\n'
                    '"model.sizes" = [64, 8, 10]\n[grid]\nrule = ["dfa"]\n'
                    '"model.hidden" = ["tanh", "step"]\n')  # step units: no derivative
    store = tmp_path / "r.sqlite"
    code, out, _ = run(capsys, "sweep", str(spec), "--store", str(store), "--serial")
    assert code == 0 and "2 points, 0 skipped, 1 done, 1 failed" in out
    with ResultsStore(store) as s:
        rows = s.rows("tiny")
    assert all("NotDifferentiableError" in r["error"] for r in rows if r["status"] == "failed")
    code, out, _ = run(capsys, "sweep", str(spec), "--store", str(store), "--serial")
    assert code == 0 and "2 skipped, 0 done" in out  # resumed: nothing to do
    code, out, _ = run(capsys, "sweep", str(spec), "--store", str(store), "--serial",
                       "--retry-failed")
    assert code == 0 and "1 skipped, 0 done, 1 failed" in out


def test_sweep_executor_flags(capsys, monkeypatch, tmp_path: Path) -> None:
    """--dask and --workers reach run_sweep (the dask executors are tested in test_sweep)."""
    seen = []

    def fake_run_sweep(spec, store, run_fn, executor, workers, **kw):
        seen.append((executor, workers, run_fn, kw["retry_failed"]))
        raise ValueError("stop here")

    import analogsim.experiments.sweep as sweep_module

    monkeypatch.setattr(sweep_module, "run_sweep", fake_run_sweep)
    spec = str(EXPERIMENTS_DIR / "rules_vs_read_noise.toml")
    for flags in (["--dask", "local", "--workers", "2"], ["--dask", "tcp://h:8786"], []):
        assert run(capsys, "sweep", spec, *flags)[0] == 2
    assert seen == [("dask-local", 2, cli.RUN_FN, False), ("tcp://h:8786", None, cli.RUN_FN,
                                                           False), ("local", None, cli.RUN_FN,
                                                                    False)]
    code, _, err = run(capsys, "sweep", spec, "--dask", "local", "--serial")
    assert code == 2 and "exclude each other" in err


def test_compare_tiny(capsys, tmp_path: Path) -> None:
    out_dir = tmp_path / "cmp"
    code, out, _ = run(capsys, "compare", "--epochs", "1", "--rules", "dfa,bp", "--seeds", "1",
                       "--out", str(out_dir), "--serial",
                       "--set", "model.sizes=[64, 16, 10]")
    assert code == 0
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.split()[:1] in (["dfa"], ["bp"])}
    assert set(lines) == {"dfa", "bp"}
    assert " 0.0 % " in lines["dfa"] and " 0.0 % " not in lines["bp"]  # BP pays for Wᵀ
    md = (out_dir / "compare.md").read_text()
    assert "| dfa | - | 1 |" in md and "| bp | probe | 1 |" in md and "critical path" in md
    for name in ("compare-accuracy-vs-energy.png", "compare-ledger.png",
                 "compare-alignment.png"):
        assert (out_dir / name).stat().st_size > 1000


def test_compare_with_several_optimizers_shows_them_as_a_column(capsys, tmp_path) -> None:
    out_dir = tmp_path / "cmp"
    code, out, _ = run(capsys, "compare", "--epochs", "1", "--rules", "dfa", "--seeds", "1",
                       "--optimizers", "sgd,mixed_precision", "--out", str(out_dir),
                       "--serial", "--set", "model.sizes=[64, 16, 10]")
    assert code == 0
    md = (out_dir / "compare.md").read_text()
    assert "| rule | optimizer |" in md.replace(" transpose |", "")
    assert "| mixed_precision |" in md and "| sgd |" in md
    energy = {ln.split()[1]: float(ln.split()[-5]) for ln in out.splitlines()
              if ln.split()[:1] == ["dfa"]}
    assert energy["mixed_precision"] > energy["sgd"]  # the digital χ work is charged


def test_docs_cli_md_is_generated_from_the_code() -> None:
    committed = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == reference(cli.build_parser()), (
        "docs/cli.md is out of date; regenerate it with "
        "`python -m analogsim.experiments.cli --doc > docs/cli.md`")


def test_doc_flag_prints_the_reference(capsys) -> None:
    code, out, _ = run(capsys, "--doc")
    assert code == 0 and out == reference(cli.build_parser())


def test_the_toml_reference_comes_from_the_declarations() -> None:
    from analogsim.experiments.runner import TrainConfig
    from analogsim.fields import field_rows
    from analogsim.layers.network import ModelConfig
    from analogsim.rules import RULES

    text = reference(cli.build_parser())
    from analogsim.rules import optimizer_options

    for cls, prefix in ((ModelConfig, ""), (TrainConfig, ""), (RULES["dfa"].Options, "rule."),
                        (optimizer_options("mixed_precision"), "optimizer.")):
        for row in field_rows(cls, prefix):
            if row["field"] not in ("rule_options", "optimizer_options"):
                assert f"| `{row['field']}` | `{row['default']}` | {row['unit']} | " in text
                assert row["doc"].replace("|", "\\|") in text
    assert "| `sizes` | `[64, 64, 10]` |  | a list of >= 2 integers in [1, 1000000] |" in text
    assert "| `rule.zero_init` | `\"auto\"` |  | 'auto', true or false |" in text
    assert "### `[adc]`" in text and "| `bits` | `8` |" in text
