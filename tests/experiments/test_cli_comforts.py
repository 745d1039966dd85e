"""CLI comforts: --quiet, the compile notice, per-batch progress on a terminal only, --out DIR."""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib

import numba
import pytest

from analogsim.experiments import cli
from analogsim.experiments.api import COMPILE_NOTICE
from analogsim.experiments.rundir import MANIFEST, RUN_FILES
from analogsim.kernels import when_compiling

TRAIN = ("train", "--rule", "dfa", "--epochs", "1", "--seed", "0")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_progress_advances_per_batch_on_a_terminal(capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    code, out, err = run(capsys, *TRAIN, "--epochs", "2")
    assert code == 0 and "test accuracy" in out
    assert "64/64" in err and "batch" in err and "val_acc" in err  # 2 × 32 batches
    code, out, err = run(capsys, *TRAIN, "--quiet")
    assert code == 0 and "test accuracy" in out and err == ""


def test_no_progress_when_stderr_is_no_terminal(capsys) -> None:
    code, out, err = run(capsys, *TRAIN)
    assert code == 0 and "test accuracy" in out and "batch" not in err


def test_the_compile_notice_comes_once_and_only_on_a_cache_miss(capsys) -> None:
    args = argparse.Namespace(quiet=False, json=False)

    def fresh():  # a function numba has never seen: compiling it is a cache miss
        @numba.njit(cache=False)
        def f(x):
            return x + 1
        return f

    with cli._compiling(args):
        f = fresh()
        f(1)
        f(2.0)  # a second compilation: still one notice
    assert capsys.readouterr().err == COMPILE_NOTICE + "\n"
    assert "compiling kernels (first run only" in COMPILE_NOTICE
    with cli._compiling(args):
        f(3)  # already compiled: no notice
    with cli._compiling(argparse.Namespace(quiet=True, json=False)):
        fresh()(1)
    with cli._compiling(argparse.Namespace(quiet=False, json=True)):
        fresh()(1)
    assert capsys.readouterr().err == ""
    seen = []
    with when_compiling(lambda: seen.append(1)):
        pass
    fresh()(1)  # outside the block: the listener is gone
    assert seen == []


def test_out_writes_the_runs_folder(tmp_path, capsys) -> None:
    out_dir = tmp_path / "run1"
    code, out, _ = run(capsys, *TRAIN, "--json", "--out", str(out_dir))
    assert code == 0
    printed = json.loads(out)
    assert sorted(p.name for p in out_dir.iterdir()) == sorted([*RUN_FILES, MANIFEST])
    stored = json.loads((out_dir / "metrics.json").read_text())
    assert stored == printed
    config = tomllib.loads((out_dir / "config.toml").read_text())
    assert config["train"]["rule"] == "dfa" and config["model"]["sizes"] == [64, 64, 10]
    assert config["hardware"]["name"] == "ideal" and "out_bound" in config["hardware"]["adc"]
    epochs = (out_dir / "epochs.csv").read_text().splitlines()
    assert epochs[0].startswith("epoch,train_loss") and len(epochs) == 2
    summary = (out_dir / "summary.csv").read_text()
    assert f"test_accuracy,{printed['test_accuracy']}" in summary
    assert "test accuracy" in (out_dir / "table.txt").read_text()
    for png in ("learning-curves.png", "ledger.png"):
        assert (out_dir / png).read_bytes()[:4] == b"\x89PNG"
    code, out, _ = run(capsys, *TRAIN, "--out", str(out_dir))  # ours: replaced
    assert code == 0 and f"written to {out_dir}" in out


@pytest.mark.parametrize("setup, match", [
    (lambda d: (d / "config.toml").write_text("mine"), r"holds config\.toml not written by"),
    (lambda d: (d / MANIFEST).write_text("{}"), rf"{MANIFEST} there was not written"),
    (lambda d: (d / "table.txt").mkdir(), r"holds table\.txt not written"),
])
def test_out_refuses_what_is_not_ours(tmp_path, capsys, setup, match) -> None:
    d = tmp_path / "d"
    d.mkdir()
    setup(d)
    before = sorted(p.name for p in d.iterdir())
    code, out, err = run(capsys, *TRAIN, "--out", str(d))
    assert code == 2 and out == "" and "--out" in err
    assert re.search(match, err)
    assert sorted(p.name for p in d.iterdir()) == before  # nothing written, nothing trained


def test_out_must_be_a_directory(tmp_path, capsys) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    code, _, err = run(capsys, *TRAIN, "--out", str(f))
    assert code == 2 and "allowed: a directory or a new name" in err
