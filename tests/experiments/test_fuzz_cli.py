"""Property-based fuzzing of the command line: ``main(argv)`` with random arguments.

Every argument list either succeeds (status 0) or is a usage error (status 2, one message,
no traceback) — never an uncaught exception. Training and sweeps are replaced by a stub that
stops once the run has been resolved and validated, so each case takes milliseconds.
"""

from __future__ import annotations

import contextlib
import io

import pytest
from conftest import fuzz
from hypothesis import given
from hypothesis import strategies as st

cli = pytest.importorskip("analogsim.experiments.cli")
from analogsim.experiments import sweep as sweep_mod  # noqa: E402

FLAGS = {
    "train": ["--rule", "--hardware", "--model", "--dataset", "--data-dir", "--transpose",
              "--set", "--epochs", "--batch-size", "--lr", "--lr-eps", "--lr-aux", "--refresh",
              "--staleness", "--seed", "--alignment", "--drift-s", "--json", "--save"],
    "sweep": ["--store", "--dask", "--workers", "--serial", "--retry-failed"],
    "report": ["--out", "--format", "--sweep", "--no-plots"],
    "presets": [],
    "compare": ["--hardware", "--rules", "--epochs", "--seeds", "--out", "--workers", "--resume",
                "--model", "--dataset", "--transpose", "--set"],
}
KEYS = ["noise.read_noise", "hw.adc.bits", "adc.bits", "device.w_max", "model.hidden",
        "model.sizes", "train.lr", "train.epochs", "rule.feedback", "rule.top", "lr", "epochs",
        "bogus", "hw.bogus.x", "model.nope", "rule", "seed", ""]
LITERALS = ["0", "1", "-1", "2", "8", "0.05", "1e400", "nan", "inf", "-inf", "true", "relu",
            "dfa", "bp", '"x"', "[1, 2]", "[64, 0, 10]", "{a = 1}", "", "none", "'a", "=",
            "1979-05-27"]
WORDS = ["bp", "dfa", "dtp", "nope", "ideal", "rram", "aihwkit_default", "digits", "teacher",
         "mnist", "probe", "twin", "bidirectional", "digits-small", "missing.toml", ".",
         "bad.toml", "spec.toml", "store.sqlite", "notadb.sqlite", "md,csv", "tex", "local",
         "tcp://", "bp,dfa", "bp,,nope", "3", "0,0", "-2", "2,1", "x" * 300]
NUMBERS = ["0", "1", "-1", "2", "100000", "1000001", "2147483648", "0.5", "nan", "inf", "1e-9",
           "-0.0", "1e400", "abc"]


def _value():
    return st.one_of(st.sampled_from(WORDS), st.sampled_from(NUMBERS),
                     st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS),
                               st.sampled_from(LITERALS)),
                     st.text(max_size=6))


@st.composite
def argvs(draw) -> list[str]:
    argv: list[str] = []
    if draw(st.integers(0, 9)) == 0:
        argv.append(draw(st.sampled_from(["--version", "--doc", "--help", "-x", "--bogus"])))
    cmd = draw(st.sampled_from([*FLAGS, "nope", ""]))
    argv.append(cmd)
    if cmd in ("sweep", "report") and draw(st.booleans()):
        argv.append(draw(st.sampled_from(WORDS)))  # the positional file
    for _ in range(draw(st.integers(0, 6))):
        flag = draw(st.sampled_from(FLAGS.get(cmd) or ["--x"]) | st.sampled_from(["--help"]))
        argv.append(flag)
        if draw(st.integers(0, 4)):
            argv.append(draw(_value()))
    if draw(st.integers(0, 5)) == 0:
        argv.append(draw(_value()))  # a stray token
    return argv


class _Ran(Exception):
    """Raised by the stubs: the arguments were accepted and the run would start."""


def _stub(*args, **kwargs):
    raise _Ran


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "bad.toml").write_text('name = "x"\n[grid\n')
    (d / "spec.toml").write_text('name = "s"\n[base]\nepochs = 1\n[grid]\nseed = [0, 1]\n')
    (d / "notadb.sqlite").write_text("this is not a database")
    return d


def _main(workdir, argv: list[str]) -> tuple[int | str, str]:
    """``cli.main(argv)`` in ``workdir`` with training and sweeps stubbed: (status, stderr)."""
    out, errs = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(errs):
        mp.chdir(workdir)
        mp.setattr(cli, "execute", _stub)
        mp.setattr(sweep_mod, "run_sweep", _stub)
        try:
            status = cli.main(argv)
        except _Ran:
            status = "ran"
    return status, errs.getvalue()


@fuzz(400)
@given(argv=argvs())
def test_cli_arguments(fuzz_cases, workdir, argv) -> None:
    fuzz_cases.tick("cli: main(argv)")
    status, err = _main(workdir, argv)
    assert status in (0, 2, "ran"), (argv, status, err[-500:])
    assert "Traceback" not in err, (argv, err[-2000:])
    if status == 2:
        assert err.strip(), f"status 2 without a message for {argv}"


@pytest.mark.parametrize("store", [".", ""])
def test_report_of_an_empty_or_dot_path_is_a_usage_error(workdir, store) -> None:
    assert _main(workdir, ["report", store])[0] == 2


@pytest.mark.parametrize("argv", [["train", "--model", "m" * 300 + ".toml"], ["report", "r" * 300]])
def test_over_long_file_names_are_usage_errors(workdir, argv) -> None:
    assert _main(workdir, argv)[0] == 2


@pytest.mark.parametrize("argv", [["sweep", "s" * 300], ["report", "notadb.sqlite"]])
def test_fixed_cases_stay_fixed(workdir, argv) -> None:
    """Found by the fuzzer, fixed in sweep.load_spec and ResultsStore (now ValueErrors)."""
    assert _main(workdir, argv)[0] in (2, "ran")
