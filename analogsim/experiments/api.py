"""``analogsim.train``: one training run from Python, returning a :class:`Result`.

The run is described as on the command line — a rule, a hardware preset (or a
:class:`~analogsim.hardware.config.HardwareConfig`), a network preset (or a
:class:`~analogsim.layers.network.ModelConfig`), run parameters as keywords
(``epochs=3, lr=0.05, transpose="shadow"``) and dotted fields in ``overrides``
(``{"noise.read_noise": 0.05, "model.hidden": "relu", "rule.feedback_scale": 2}``) —
resolved by :func:`~analogsim.experiments.points.resolve_point` with the same checks and
messages, and trained by :func:`~analogsim.experiments.points.execute`, the function the CLI
and every sweep point call, so the numbers are the ones ``analogsim train`` prints for the
same settings.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

from ..kernels import CACHE, when_compiling
from ..rules import RULES, Rule, register_rule
from .data import Dataset, load_dataset
from .points import execute, resolve_point
from .result import Result
from .runner import build_run

__all__ = ["train", "compile_notice", "COMPILE_NOTICE"]

COMPILE_NOTICE = ("analogsim: compiling kernels (first run only; about a minute) …" if CACHE
                  else "analogsim: compiling kernels (no writable cache: every run) …")


def compile_notice(write: Callable[[str], None] | None = None) -> Callable[[], None]:
    """The callback that prints :data:`COMPILE_NOTICE` (to stderr by default)."""
    def notice() -> None:
        if write is not None:
            write(COMPILE_NOTICE)
        else:
            print(COMPILE_NOTICE, file=sys.stderr, flush=True)
    return notice


def _rule_name(rule: Any) -> str:
    """A registered name for ``rule`` (a name, ``"module:Class"``, or a Rule subclass)."""
    if isinstance(rule, type) and issubclass(rule, Rule):
        if RULES.get(getattr(rule, "name", None)) is not rule:
            register_rule(rule)
        return rule.name
    return rule


def train(rule: Any = "dfa", hardware: Any = "ideal", model: Any = "digits-small", *,
          dataset: str | Dataset = "digits", overrides: Mapping[str, Any] | None = None,
          progress: bool = False, quiet: bool = False, **params: Any) -> Result:
    """Train one learning rule on a network built on simulated hardware.

    Parameters
    ----------
    rule : str or Rule subclass
        A registered rule (``"bp"``, ``"dfa"``, … see :data:`analogsim.RULES`),
        ``"module:Class"``, or a :class:`~analogsim.rules.Rule` subclass (registered on
        first use).
    hardware : str or HardwareConfig
        A hardware preset (:data:`analogsim.PRESETS`), a hardware TOML file, or a config.
    model : str or ModelConfig
        A network preset (``"digits-small"``: 64-64-10 tanh), a model TOML file, or a config.
    dataset : str or Dataset
        ``"digits"`` (embedded 8×8 digits), ``"mnist"``, ``"fashion"``, …, or a
        :class:`~analogsim.experiments.data.Dataset`.
    overrides : mapping, optional
        Dotted run parameters: hardware fields (``"noise.read_noise"``), model fields
        (``"model.hidden"``), rule options (``"rule.<option>"``), optimizer options.
    progress : bool
        Show a progress bar on stderr that advances per batch.
    quiet : bool
        Print nothing (not even the one-line notice when kernels compile).
    **params
        Run parameters (docs/cli.md, "Run parameters"): ``epochs`` (default 5), ``seed``
        (0), ``lr``, ``batch_size``, ``transpose``, ``optimizer``, ``staleness``,
        ``alignment``, ``drift_s`` (s), ``data_dir`` …

    Returns
    -------
    Result
        The run record (a mapping: ``result["metrics"]["test_accuracy"]``) with
        ``.table()``, ``.plot()``, ``.to_dict()``, ``.to_json()``, ``.to_dataframe()``,
        ``.save(dir)``, and the trained ``.network`` and ``.trainer``.

    Raises
    ------
    ValueError
        An unknown preset, key or value (the message names it and what is allowed).
    """
    ds = dataset if isinstance(dataset, Dataset) else None
    point = {"rule": _rule_name(rule), "hardware": hardware, "model": model,
             "dataset": ds.name if ds is not None else dataset, **params, **(overrides or {})}
    run = resolve_point(point)
    if ds is None:
        cfg = run.train
        ds = load_dataset(cfg.dataset, **({"data_dir": cfg.data_dir} if cfg.data_dir else {}))
    trainer = build_run(run.hw, run.model, run.train, ds.n_features, ds.n_outputs)
    bar = _bar(run.train.rule) if progress and not quiet else None

    def on_step(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    def on_epoch(rec: dict[str, Any]) -> None:
        bar.set_postfix(loss=f"{rec['train_loss']:.3f}", val_acc=f"{rec['val_accuracy']:.3f}")

    notice = compile_notice(None if bar is None else lambda s: bar.write(s, file=sys.stderr))
    hooks = {} if bar is None else {"on_step": on_step, "on_epoch": on_epoch}
    try:
        with when_compiling(notice if not quiet else lambda: None):
            out = execute(run, dataset=ds, trainer=trainer, **hooks)
    finally:
        if bar is not None:
            bar.close()
    return Result(out, trainer=trainer, dataset=ds)


def _bar(desc: str):
    from tqdm import tqdm

    return tqdm(total=None, desc=desc, unit="batch", file=sys.stderr, leave=False)
