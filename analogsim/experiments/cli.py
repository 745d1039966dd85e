"""The ``analogsim`` command line: train, sweep, report, presets and compare.

Every subcommand turns its arguments into run parameters (:mod:`analogsim.experiments.points`)
and calls the library; user errors (bad arguments, unknown presets, malformed TOML, unknown
keys) print one message saying what is wrong and what is allowed and exit with status 2,
without a traceback. ``python -m analogsim.experiments.cli --doc`` prints the CLI and TOML
reference (docs/cli.md is generated from it; a test keeps the two equal).
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import re
import sqlite3
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data import EXPERIMENTS_DIR, find_spec  # the shipped sweep specs
from ..fields import parse_override, spec_of
from ..hardware.presets import PRESET_NOTES, PRESETS
from ..rules import OPTIMIZERS, RULES, is_rule
from .data import DATA_DIR_ENV, DATASETS, SYSTEM_DATA_ROOT
from .models import model_presets
from .points import RUN_KEYS, Run, execute, resolve_point
from .runner import TRANSPOSES, TrainConfig

__all__ = ["main", "build_parser", "EXPERIMENTS_DIR", "UsageError"]

RUN_FN = "analogsim.experiments.points:run_point"
WARMUP_FN = "analogsim.experiments.points:warmup"
IDENTITY_FN = "analogsim.experiments.points:identity"
WIDTH = 100
#: Exit status of `train` when the run diverged (2 is a usage error).
EXIT_DIVERGED = 3
#: Exit status when the disk is full or the store stays locked (nothing written is lost).
EXIT_IO = 4


class UsageError(ValueError):
    """A mistake in what the user asked for: reported in one line, exit status 2."""


def _formatter(prog: str) -> argparse.HelpFormatter:
    # A fixed width keeps --help (and the generated docs/cli.md) independent of the terminal.
    return argparse.RawDescriptionHelpFormatter(prog, width=WIDTH, max_help_position=30)


def _wrap(text: str) -> str:
    return textwrap.fill(text, WIDTH)


def _epilog(title: str, *commands: str) -> str:
    return "\n".join([title, *(f"  {c}" for c in commands)])


# --------------------------------------------------------------------------- parser


def _rule_arg(text: str) -> str:
    """``--rule``: a registered name or a ``module:Class`` reference (imported to check)."""
    if not is_rule(text):
        raise argparse.ArgumentTypeError(
            f"invalid choice: {text!r} (choose from {', '.join(map(repr, RULES))}, or "
            "'module:Class' "
            "naming an importable Rule subclass)")
    return text


def _field_help(name: str) -> str:
    """Help of the flag that sets run key ``name``: the field's declared doc and default."""
    name = name.replace("-", "_")
    f = next(f for cls in (TrainConfig, Run) for f in dataclasses.fields(cls) if f.name == name)
    shown = f.default is not None and f.default is not False  # unset / off: nothing to show
    return spec_of(f).doc + (f" (default: {f.default})" if shown else "")


def _add_run_options(p: argparse.ArgumentParser, model: str) -> None:
    """Options shared by train and compare (``model``: the default network preset)."""
    p.add_argument("--model", metavar="NAME|FILE", help="network preset (see `analogsim "
                   f"presets`) or a model TOML file (default: {model})")
    p.add_argument("--dataset", choices=list(DATASETS), help=_field_help("dataset"))
    p.add_argument("--data-dir", metavar="DIR", help=_field_help("data_dir") + " (default: "
                   f"${DATA_DIR_ENV}, then for fashion {SYSTEM_DATA_ROOT}/fashion-mnist, where "
                   "`make data` installs it)")
    p.add_argument("--transpose", choices=list(TRANSPOSES), help=_field_help("transpose"))
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override any run parameter: hardware field (noise.read_noise=0.05 or "
                   "hw.adc.bits=6), model field (model.hidden=relu), training field "
                   "(train.lr=0.1), rule option (rule.feedback=digital) or optimizer option "
                   "(optimizer.threshold=2); repeatable, wins "
                   "over the flags; values are TOML literals (bare words are strings)")


def _add_train(sub: Any) -> None:
    p = sub.add_parser(
        "train", formatter_class=_formatter, help="train one rule on one hardware preset",
        description=_wrap("Train one learning rule on a network built on simulated analog "
                          "hardware; report accuracy, loss and the ledger's costs."),
        epilog=_epilog(
            "examples:",
            "analogsim train --rule dfa --hardware ideal --dataset digits --epochs 5 --seed 0 "
            "--json",
            "analogsim train --rule bp --hardware rram --transpose shadow "
            "--set noise.read_noise=0.05",
            "analogsim train --rule fa --model my-net.toml --set model.hidden=relu --lr 0.1",
            "analogsim train --rule dfa --hardware pcm --optimizer mixed_precision "
            "--set optimizer.threshold=1"))
    p.add_argument("--rule", type=_rule_arg, metavar="{" + ",".join(RULES) + ",MODULE:CLASS}",
                   default=TrainConfig.rule, help=_field_help("rule") + "; a user rule as "
                   "'module:Class' (docs/rules.md, Write your own rule)")
    p.add_argument("--optimizer", choices=list(OPTIMIZERS), help=_field_help("optimizer"))
    p.add_argument("--hardware", metavar="PRESET|FILE", default="ideal",
                   help="hardware preset (" + ", ".join(PRESETS) + ") or a hardware TOML file "
                   "(default: ideal)")
    _add_run_options(p, "digits-small")
    for flag, metavar, kind in (("--epochs", "N", int), ("--batch-size", "N", int),
                                ("--lr", "RATE", float), ("--lr-eps", "RATE", float),
                                ("--lr-aux", "RATE", float), ("--refresh", "N", int),
                                ("--staleness", "STEPS", int), ("--seed", "N", int)):
        p.add_argument(flag, type=kind, metavar=metavar, help=_field_help(flag[2:]))
    p.add_argument("--alignment", action="store_true", help=_field_help("alignment"))
    p.add_argument("--drift-s", type=float, metavar="SECONDS", help=_field_help("drift_s"))
    p.add_argument("--json", action="store_true", help="print one JSON object (no progress "
                   "bar, no notices, no table)")
    p.add_argument("--out", metavar="DIR", help="also write the run's folder: resolved "
                   "configuration (config.toml), metrics (metrics.json, summary.csv, "
                   "epochs.csv), the table and plots (PNG); files of those names are replaced "
                   "only if an earlier run wrote them")
    _add_quiet(p)
    p.add_argument("--save", metavar="PATH", help="write a checkpoint of the whole training "
                   "state after every epoch (atomically; the file always holds the latest "
                   "finished epoch)")
    p.add_argument("--resume", action="store_true", help="with --save: if PATH exists, "
                   "continue from it (same settings required) instead of starting afresh; "
                   "the result equals an uninterrupted run bit for bit")


def _add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no "
                   "notices (results and errors are still printed); progress is also off "
                   "when stderr is not a terminal")


def _add_sweep(sub: Any) -> None:
    p = sub.add_parser(
        "sweep", formatter_class=_formatter, help="run every point of a sweep spec (resumable)",
        description=_wrap("Run every point of a sweep spec (TOML) and store each result as it "
                          "finishes. Re-running the same spec on the same store resumes: finished "
                          "points are skipped, interrupted ones run again."),
        epilog=_epilog(
            "examples:",
            "analogsim sweep experiments/rules_vs_read_noise.toml",
            "analogsim sweep experiments/rules_vs_adc_bits.toml --store results/adc.sqlite "
            "--workers 2",
            "analogsim sweep spec.toml --dask local            # a dask LocalCluster",
            "analogsim sweep spec.toml --dask tcp://10.0.0.5:8786"))
    p.add_argument("spec", metavar="SPEC.toml", help="sweep spec (see docs/cli.md): a file, or "
                   "a shipped spec by name (`analogsim presets` lists them)")
    p.add_argument("--store", metavar="FILE", help="SQLite results file (default: "
                   "results/<spec file name>.sqlite)")
    p.add_argument("--dask", metavar="ADDRESS|local", help="run on a dask cluster: 'local' "
                   "starts a LocalCluster, otherwise the address of a running scheduler")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes for local runs "
                   "and --dask local (default: the number of CPUs)")
    p.add_argument("--serial", action="store_true", help="run the points one after another "
                   "in this process (debugging)")
    p.add_argument("--retry-failed", action="store_true", help="run points that failed "
                   "before again (default: keep their failure)")
    _add_quiet(p)


def _add_report(sub: Any) -> None:
    p = sub.add_parser(
        "report", formatter_class=_formatter, help="tables and plots from a results store",
        description=_wrap("Read a results store and write a Markdown report (tables of mean ± std "
                          "over seeds per setting, failed points, plots) and CSV tables."),
        epilog=_epilog(
            "example:",
            "analogsim report results/rules_vs_read_noise.sqlite --out results/read_noise"))
    p.add_argument("store", metavar="STORE", help="SQLite results file")
    p.add_argument("--out", metavar="DIR", help="output directory (default: the store's path "
                   "without .sqlite, plus -report)")
    p.add_argument("--format", default="md,csv", metavar="md,csv", help="comma-separated "
                   "table formats (default: md,csv)")
    p.add_argument("--sweep", metavar="NAME", help="only this sweep of the store")
    p.add_argument("--no-plots", action="store_true", help="tables only")


def _add_presets(sub: Any) -> None:
    sub.add_parser("presets", formatter_class=_formatter,
                   help="list hardware, model and experiment presets",
                   description=_wrap("List the hardware presets, network presets, sweep specs and "
                                     "learning rules, with one-line descriptions."))


def _add_compare(sub: Any) -> None:
    p = sub.add_parser(
        "compare", formatter_class=_formatter, help="the main job: every rule on a noisy preset",
        description=_wrap("Train every learning rule (or --rules) on the digits with the "
                          "two-hidden-layer digits-deep network on one hardware preset, BP "
                          "paying for Wᵀ through the probe transpose; print a table (accuracy, "
                          "energy per sample, transpose share, critical-path latency) and "
                          "write it as Markdown with plots to --out."),
        epilog=_epilog(
            "examples:",
            "analogsim compare",
            "analogsim compare --hardware ecram --rules bp,fa,dfa --epochs 20 --seeds 5"))
    p.add_argument("--hardware", metavar="PRESET|FILE", default="aihwkit_default",
                   help="hardware preset or TOML file (default: aihwkit_default)")
    p.add_argument("--rules", metavar="LIST", help="comma-separated rules (default: all: "
                   + ",".join(RULES) + ")")
    p.add_argument("--epochs", type=int, metavar="N", default=10,
                   help="training epochs (default: 10)")
    p.add_argument("--optimizers", metavar="LIST", default="sgd",
                   help="comma-separated analog optimizers, each run with every rule; more "
                   "than one adds an optimizer column (default: sgd; all: "
                   + ",".join(OPTIMIZERS) + ")")
    p.add_argument("--seeds", default="3", metavar="N|LIST", help="number of seeds (0..N-1) "
                   "or a comma-separated list (default: 3)")
    p.add_argument("--out", default="results/compare", metavar="DIR",
                   help="output directory (default: results/compare)")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes (default: the "
                   "number of CPUs)")
    p.add_argument("--serial", action="store_true", help="run in this process, one run after "
                   "another (debugging)")
    p.add_argument("--resume", action="store_true", help="keep finished runs of an earlier "
                   "compare in DIR (default: start afresh)")
    _add_quiet(p)
    _add_run_options(p, "digits-deep")


def build_parser() -> argparse.ArgumentParser:
    """The ``analogsim`` argument parser (also the source of docs/cli.md)."""
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="analogsim", formatter_class=_formatter,
        description=_wrap("Train neural networks on simulated forward-only analog crossbars with "
                          "learning rules that avoid Wᵀ, and compare what they cost."),
        epilog=_epilog(
            "start with:",
            "analogsim compare            # every rule on a noisy preset (the main job)",
            "analogsim presets            # what hardware, models and sweeps exist",
            "analogsim train --help"))
    parser.add_argument("--version", action="version", version=f"analogsim {__version__}")
    parser.add_argument("--doc", action="store_true", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_train, _add_sweep, _add_report, _add_presets, _add_compare):
        add(sub)
    return parser


# --------------------------------------------------------------------------- helpers


def _sets(items: Sequence[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` options as run parameters (values are TOML literals)."""
    try:
        return dict(parse_override(s, example="model.hidden=relu") for s in items)
    except ValueError as e:
        raise UsageError(f"--set: {e}") from None


def _point_from(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """Run parameters from the flags that were given, then ``--set`` (which wins)."""
    point = {}
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value is not False:
            point[name] = value
    return {**point, **_sets(args.sets)}


def _resolve(point: dict[str, Any]):
    try:
        return resolve_point(point)
    except ValueError as e:
        raise UsageError(str(e)) from None


# --------------------------------------------------------------------------- train

# The table and the JSON object are the Result's (analogsim.Result.table / .to_json), so
# `analogsim train` and the Python API print the same; the rows: result.SUMMARY_ROWS.


def _progress_on(args: argparse.Namespace) -> bool:
    """Progress bars only for a person watching: not with --quiet or --json, and not when
    stderr is not a terminal (a log file, a pipe, CI)."""
    return not (args.quiet or getattr(args, "json", False)) and sys.stderr.isatty()


def _compiling(args: argparse.Namespace, bar: Any = None):
    """A block inside which the first kernel compilation prints a one-line notice on stderr
    (not with --quiet or --json); through the progress bar if there is one, so it is not
    torn. numba reports a compilation only on a cache miss: a warm cache prints nothing."""
    from ..kernels import when_compiling
    from .api import COMPILE_NOTICE

    def notice() -> None:
        if bar is not None:
            bar.write(COMPILE_NOTICE, file=sys.stderr)
        else:
            print(COMPILE_NOTICE, file=sys.stderr, flush=True)
    silent = args.quiet or getattr(args, "json", False)  # --json: for machines
    return when_compiling(lambda: None if silent else notice())


def _output_file(path: str, flag: str) -> Path:
    from .paths import check_output_file

    try:
        return check_output_file(path, flag)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _output_dir(path: str, flag: str) -> Path:
    from .paths import check_output_dir

    try:
        return check_output_dir(path, flag)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _check_store(path: str) -> None:
    from .store import check_store_file

    try:
        check_store_file(path)
    except ValueError as e:
        raise UsageError(str(e)) from None


def cmd_train(args: argparse.Namespace) -> int:
    from .result import Result

    run = _resolve(_point_from(args, RUN_KEYS))  # every run key has a flag of its name
    if args.resume and not args.save:
        raise UsageError("--resume is invalid without --save; allowed: --save PATH --resume")
    ckpt = None
    if args.save is not None:
        from . import checkpoint as ckpt

        _output_file(args.save, "--save")  # before the first epoch, not after it
    if args.out is not None:
        _run_dir(args.out)  # likewise
    resume = args.save if args.resume and os.path.exists(args.save) else None
    bar = _train_bar(run.train.rule) if _progress_on(args) else None

    def on_step(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)  # a resumed run's first step jumps the bar

    def on_epoch(rec: dict[str, Any]) -> None:
        bar.set_postfix(epoch=rec["epoch"], loss=f"{rec['train_loss']:.3f}",
                        val_acc=f"{rec['val_accuracy']:.3f}")

    def on_checkpoint(trainer: Any, state: dict[str, Any]) -> None:
        # Saved after every epoch (atomically, overwriting): the file always holds the
        # latest finished epoch and resumes with checkpoint.load + runner.train.
        config = {"hardware": run.hw.to_dict(), "model": trainer.net.config.to_dict(),
                  "train": run.train.to_dict()}
        ckpt.save(args.save, trainer, {**state, "config": config})

    try:
        with _compiling(args, bar):
            out = execute(run, on_epoch=on_epoch if bar is not None else None,
                          on_step=on_step if bar is not None else None,
                          on_checkpoint=on_checkpoint if ckpt else None, resume=resume)
    except (ValueError, FileNotFoundError) as e:  # e.g. a rule that needs a derivative
        raise UsageError(str(e)) from None
    finally:
        if bar is not None:
            bar.close()
    result = Result(out)
    if args.json:
        print(result.to_json())
    else:
        print(result.table())
        if args.save and not args.quiet:
            print(f"checkpoint written to {args.save}")
    if args.out is not None:
        try:
            written = result.save(args.out)
        except ValueError as e:  # the folder changed under the run (checked at the start)
            raise UsageError(str(e)) from None
        if not (args.json or args.quiet):
            print(f"written to {args.out}: " + ", ".join(p.name for p in written))
    if out["metrics"].get("diverged"):
        print(f"error: {out['metrics']['diverged_reason']}", file=sys.stderr)
        return EXIT_DIVERGED
    return 0


def _train_bar(rule: str):
    """The training progress bar: steps (batches), not epochs."""
    from tqdm import tqdm

    return tqdm(total=None, desc=rule, unit="batch", file=sys.stderr, dynamic_ncols=True)


def _run_dir(path: str) -> Path:
    from .rundir import check_run_dir

    try:
        return check_run_dir(path, "--out")
    except ValueError as e:
        raise UsageError(str(e)) from None


# --------------------------------------------------------------------------- sweep


def _check_points(spec) -> int:
    """Resolve every point in the driver, so a typo fails now and not once per worker."""
    from .select import trial_points
    from .sweep import expand, point_id

    points = expand(spec)
    tuning = spec.tuning()
    if tuning is not None:  # each point with each candidate, and the trial overrides
        points = points + trial_points(points, tuning[1], tuning[2], point_id)
    if len(points) > 5000:  # ~1 ms each: say why nothing else shows for a while
        print(f"{spec.name}: checking {len(points)} points ...", file=sys.stderr, flush=True)
    for p in points:
        try:
            resolve_point(p)
        except ValueError as e:
            raise UsageError(f"{spec.name}: point {p}: {e}") from None
    return len(points)


def _executor(args: argparse.Namespace) -> str:
    if args.serial and args.dask:
        raise UsageError("--serial and --dask exclude each other; allowed: one of them")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers = {args.workers} is invalid; allowed: an integer >= 1")
    if args.serial:
        return "serial"
    if args.dask is None:
        return "local"
    return "dask-local" if args.dask == "local" else args.dask


def cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import load_spec, run_sweep

    try:
        spec = load_spec(find_spec(args.spec))
    except ValueError as e:
        raise UsageError(str(e)) from None
    _check_points(spec)
    executor = _executor(args)
    store = args.store or str(Path("results") / f"{Path(args.spec).stem}.sqlite")
    if os.path.getsize(_output_file(store, "--store")) if os.path.isfile(store) else 0:
        _check_store(store)  # an existing file must already be a results store
    try:
        with _compiling(args):
            report = run_sweep(spec, store, RUN_FN, executor, args.workers,
                               progress=_progress_on(args), retry_failed=args.retry_failed,
                               warmup_fn=WARMUP_FN, identity_fn=IDENTITY_FN)
    except (ValueError, ImportError) as e:  # a malformed dask address, dask not installed
        raise UsageError(str(e)) from None
    print(report)
    if report.failed:
        print(f"{report.failed} points failed; see `analogsim report {store}`", file=sys.stderr)
    print(f"next: analogsim report {store}")
    return 0


# --------------------------------------------------------------------------- report


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    store = Path(args.store)
    if not store.name:  # "" and "." name a directory, not a results file
        raise UsageError(f"store = {args.store!r} is invalid; allowed: a results file "
                         "written by `analogsim sweep` or `analogsim compare`")
    out = Path(args.out) if args.out else store.with_name(store.stem + "-report")
    try:
        written = write_report(store, out, formats=formats, sweep=args.sweep,
                               with_plots=not args.no_plots)
    except ValueError as e:
        raise UsageError(str(e)) from None
    for path in written:
        print(path)
    return 0


# --------------------------------------------------------------------------- presets


def _one_line(text: str, limit: int = 96) -> str:
    """First paragraph of ``text`` without sources or reST markup, cut at a word boundary."""
    text = " ".join(text.strip().split("\n\n")[0].split())
    text = re.sub(r":math:`([^`]*)`", r"\1", text.split(" Source")[0]).replace("``", "")
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " …"


def presets_listing() -> str:
    """The text ``analogsim presets`` prints."""
    from .models import load_model
    from .sweep import load_spec

    def block(title: str, items: list[tuple[str, str]]) -> list[str]:
        width = max((len(n) for n, _ in items), default=0)
        return [title, *(f"  {n.ljust(width)}  {d}" for n, d in items), ""]

    hw = [(n, _one_line(PRESET_NOTES[n])) for n in PRESETS]
    models = []
    for name, path in model_presets().items():
        try:
            models.append((name, load_model(path).description or "-"))
        except ValueError as e:
            models.append((name, f"(invalid: {e})"))
    specs = []
    for path in sorted(EXPERIMENTS_DIR.rglob("*.toml")):  # longer specs sit in subfolders
        try:
            specs.append((str(path.relative_to(EXPERIMENTS_DIR.parent)),
                          _one_line(load_spec(path).description or "-")))
        except ValueError as e:
            specs.append((path.name, f"(invalid: {e})"))
    rules = [(n, _one_line(c.__doc__ or "-")) for n, c in RULES.items()]
    lines = block("hardware presets (--hardware NAME; TOML copies in "
                  "analogsim/data/models/hardware/):", hw)
    lines += block("network presets (--model NAME; analogsim/data/models/networks/):", models)
    lines += block("sweep specs (analogsim sweep NAME; analogsim/data/experiments/):", specs)
    lines += block("learning rules (--rule NAME; docs/rules.md):", rules)
    return "\n".join(lines).rstrip() + "\n"


def cmd_presets(args: argparse.Namespace) -> int:
    print(presets_listing(), end="")
    return 0


# --------------------------------------------------------------------------- compare


def _seeds(text: str) -> list[int]:
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        else:
            seeds = list(range(int(text)))
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {text!r} is invalid; allowed: a count N >= 1 (seeds 0..N-1) "
                         "or a comma-separated list of distinct integers >= 0")
    return seeds


def _listed(flag: str, text: str, registry, noun: str) -> list[str]:
    """Distinct names of a comma-separated ``--flag`` list, each a key of ``registry``."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in registry]
    if bad or not names:
        raise UsageError(f"{flag} {text!r}: {bad[0] if bad else 'empty'} is not {noun}; "
                         "allowed: a comma-separated list of " + ", ".join(registry))
    return list(dict.fromkeys(names))


def _rules(text: str | None) -> list[str]:
    return list(RULES) if text is None else _listed("--rules", text, RULES, "a rule")


def _optimizers(text: str) -> list[str]:
    return _listed("--optimizers", text, OPTIMIZERS, "an optimizer")


def compare_spec(args: argparse.Namespace):
    """The sweep ``compare`` runs: every rule × seed on one hardware preset."""
    from .sweep import SweepSpec

    base: dict[str, Any] = {"hardware": args.hardware, "dataset": args.dataset or "digits",
                            "model": args.model or "digits-deep", "epochs": args.epochs,
                            "transpose": args.transpose or "probe", "alignment": True}
    if args.data_dir:
        base["data_dir"] = args.data_dir
    optimizers = _optimizers(args.optimizers)
    grid: dict[str, Any] = {"rule": _rules(args.rules)}
    if len(optimizers) > 1:
        grid["optimizer"] = optimizers
    else:
        base["optimizer"] = optimizers[0]
    base.update(_sets(args.sets))
    grid["seed"] = _seeds(args.seeds)
    return SweepSpec(name="compare", description=f"every rule on {args.hardware} "
                     f"(optimizer {', '.join(optimizers)})", base=base, grid=grid)


def cmd_compare(args: argparse.Namespace) -> int:
    from .report import format_table, markdown_table, summarise, table_rows, write_plots
    from .store import ResultsStore
    from .sweep import run_sweep

    spec = compare_spec(args)
    _check_points(spec)
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers = {args.workers} is invalid; allowed: an integer >= 1")
    out = _output_dir(args.out, "--out")
    store = out / "compare.sqlite"
    if not args.resume:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{store}{suffix}").unlink(missing_ok=True)
    start = time.perf_counter()
    with _compiling(args):
        report = run_sweep(spec, store, RUN_FN, "serial" if args.serial else "local",
                           args.workers, progress=_progress_on(args), retry_failed=True,
                           warmup_fn=WARMUP_FN, identity_fn=IDENTITY_FN)
    with ResultsStore(store) as s:
        summary = summarise("compare", s.rows("compare"))
    headers, rows = table_rows(summary)
    epochs = f"{args.epochs} epoch" + ("s" if args.epochs != 1 else "")
    print(f"\n{spec.description}, {epochs}, seeds {spec.grid['seed']} "
          f"({report.done} runs, {report.failed} failed, "
          f"{time.perf_counter() - start:.0f} s wall)\n")
    print(format_table(headers, rows))
    images = write_plots(summary, out, prefix="compare")
    md = [f"# `analogsim compare` on {args.hardware}", "",
          f"{epochs} on {spec.base['dataset']} with {spec.base['model']}, seeds "
          f"{spec.grid['seed']}; mean ± std over seeds.", "", markdown_table(headers, rows), ""]
    md += [f"![{t}]({p.name})" for t, p in images.items()]
    (out / "compare.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    print(f"\nwritten: {out / 'compare.md'}, " + ", ".join(p.name for p in images.values()))
    if summary.failed:
        from .report import failed_table

        print("\nfailed runs:\n" + format_table(*failed_table(summary)), file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- main

COMMANDS = {"train": cmd_train, "sweep": cmd_sweep, "report": cmd_report,
            "presets": cmd_presets, "compare": cmd_compare}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``analogsim`` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse has printed usage and the error (status 2) or help (0)
        return int(e.code or 0)
    if args.doc:
        from .clidoc import reference  # clidoc does not import this module: no cycle

        print(reference(parser), end="")
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args)
    except UsageError as e:
        print(f"analogsim {args.command}: error: {e}", file=sys.stderr)
        return 2
    except FloatingPointError as e:
        print(f"analogsim {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"analogsim {args.command}: interrupted", file=sys.stderr)
        return 130
    except (OSError, sqlite3.OperationalError) as e:
        full = getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or \
            "disk is full" in str(e)
        if not full and not ("locked" in str(e) and "allowed:" in str(e)):
            raise
        what = ("no space left on the device (or quota exceeded)" if full else str(e))
        print(f"analogsim {args.command}: error: {what}: {e if full else ''}".rstrip(": ")
              + "; results and checkpoints already written are intact (every write is one "
              "transaction or an atomic rename); free space and run the command again to "
              "resume", file=sys.stderr)
        return EXIT_IO


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
