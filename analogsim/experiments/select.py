"""Tuning per setting on trial runs, before the final runs of a sweep: ``[select]`` and
``[search]``.

A sweep spec may hold a ``[select]`` table::

    [select]
    param = "lr"                        # the parameter chosen per setting
    values = [0.02, 0.05, 0.1]          # the candidates (at least two, distinct)
    metric = "val_accuracy"             # a key of the run's summary (never a test metric)
    goal = "max"                        # or "min" (e.g. val_loss)
    "trial.epochs" = 3                  # optional overrides of the trial runs
    "trial.seed" = 0

The protocol, the same for every setting of the sweep:

1. **Trials.** Every final point (``[base]`` merged with a grid combination) gives one trial
   point per candidate: the point with ``param = value`` and the ``trial.*`` overrides.
   Points that come out identical (e.g. the seeds of a setting when ``trial.seed`` is fixed)
   are run once. Trials are ordinary points, stored under the sweep name ``"<name>:select"``
   (so they are resumable and appear in ``analogsim report`` as their own sweep, the evidence
   of the choice).
2. **Choice.** For each final point, among its trials that finished, the candidate with the
   best ``metric`` (ties: the earlier candidate in ``values``; a non-finite score counts as the
   worst). A point none of whose trials finished is not run, and is reported as failed.
3. **Finals.** Each final point runs with ``param`` set to its chosen value, under the sweep's
   own name; the choice is visible in the point (and so in the report's setting label).

``[search]`` is the same protocol with ``n`` *candidates* — dicts of several parameters —
sampled once (the same for every setting) from distributions as in ``[random]``, by
``method = "random"``, ``"sobol"`` or ``"lhs"`` with a ``seed``; see
:func:`analogsim.experiments.spec.search_candidates`::

    [search]
    n = 8
    method = "sobol"
    metric = "val_accuracy"
    "trial.epochs" = 2
    lr = { loguniform = [0.005, 0.2] }
    lr_aux = { loguniform = [0.001, 0.1] }

**Successive halving** (either table): ``"halving.epochs" = [1, 3]`` runs every candidate
for 1 epoch, keeps the best ``halving.keep`` (default 0.5, rounded up, at least one) of each
setting, runs those for 3 epochs (a fresh trial from the start: every point is a whole run,
so trials stay independent and resumable), and so on; the choice is made at the last rung.
Hopeless candidates cost one short run instead of the whole trial budget.

Selecting on the validation split and reporting the test split keeps the test data out of
every decision. The module holds pure functions; :func:`analogsim.experiments.sweep.run_sweep`
runs the two phases.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["SELECT_KEYS", "SUFFIX", "check_select", "check_scoring", "check_halving",
           "trial_points", "choose", "final_points", "rungs", "survivors"]

#: Keys a ``[select]`` table may hold besides ``trial.<param>`` overrides.
SELECT_KEYS = ("param", "values", "metric", "goal", "halving.epochs", "halving.keep")
#: Appended to the sweep name for the trial rows.
SUFFIX = ":select"
_TRIAL = "trial."
_TEST_WORDS = ("test",)

Point = dict[str, Any]


def _fail(key: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"[select] {key} = {value!r} is invalid; allowed: {allowed}")


def check_select(table: Any, check_value: Callable[[str, Any], None]) -> dict[str, Any]:
    """Validate a ``[select]`` table; return it with ``goal`` filled in (default ``"max"``).

    ``check_value(where, value)`` validates a point value (the sweep's own checker).
    """
    if not isinstance(table, dict):
        raise _fail("table", table, "a table with param, values, metric")
    for key in table:
        if key not in SELECT_KEYS and not (key.startswith(_TRIAL) and len(key) > len(_TRIAL)):
            raise ValueError(f"[select] key {key!r} is unknown; allowed: "
                             + ", ".join(SELECT_KEYS) + " or 'trial.<parameter>'")
    for key in ("param", "values", "metric"):
        if key not in table:
            raise ValueError(f"[select] has no {key!r}; allowed: param = \"lr\", "
                             "values = [0.02, 0.05, 0.1], metric = \"val_accuracy\"")
    param, values = table["param"], table["values"]
    if not isinstance(param, str) or not param or param == "seed" or param.startswith(_TRIAL):
        raise _fail("param", param, "a run parameter name other than 'seed'")
    if not isinstance(values, list) or len(values) < 2:
        raise _fail("values", values, "a list of at least two candidates")
    texts = [json.dumps(v, sort_keys=True) for v in values]
    if len(set(texts)) != len(texts):
        raise _fail("values", values, "distinct candidates")
    for v in values:
        check_value(f"[select] values of {param!r}", v)
    return check_scoring("[select]", table, [param], check_value)


def check_scoring(section: str, table: dict[str, Any], searched: list[str],
                  check_value: Callable[[str, Any], None]) -> dict[str, Any]:
    """Check what ``[select]`` and ``[search]`` share: ``metric``, ``goal`` and the
    ``trial.*`` overrides (which may not touch a ``searched`` key); fill ``goal``."""
    metric = table.get("metric")
    if not isinstance(metric, str) or not metric or any(w in metric for w in _TEST_WORDS):
        raise ValueError(f"{section} metric = {metric!r} is invalid; allowed: the name of a "
                         "summary metric that is not measured on the test split, e.g. "
                         "'val_accuracy' or 'val_loss'")
    goal = table.get("goal", "max")
    if goal not in ("max", "min"):
        raise ValueError(f"{section} goal = {goal!r} is invalid; allowed: 'max' or 'min'")
    check_halving(section, table)
    for key, v in table.items():
        if key.startswith(_TRIAL):
            if key[len(_TRIAL):] in searched:
                raise ValueError(f"{section} {key} overrides the selected parameter; allowed: "
                                 f"other parameters (the trials take {key[len(_TRIAL):]!r} "
                                 "from the candidates)")
            check_value(f"{section} {key}", v)
    return {**table, "goal": goal}


def check_halving(section: str, table: dict[str, Any]) -> None:
    """``halving.epochs`` (increasing trial budgets, at least two) and ``halving.keep`` (the
    fraction of a setting's candidates that go on to the next rung, in (0, 1))."""
    epochs, keep = table.get("halving.epochs"), table.get("halving.keep", 0.5)
    if epochs is None:
        if "halving.keep" in table:
            raise ValueError(f"{section} halving.keep needs halving.epochs; allowed: e.g. "
                             '"halving.epochs" = [1, 3]')
        return
    ok = isinstance(epochs, list) and len(epochs) >= 2 and all(
        isinstance(e, int) and not isinstance(e, bool) and e >= 1 for e in epochs) and all(
        a < b for a, b in zip(epochs, epochs[1:], strict=False))
    if not ok:
        raise ValueError(f"{section} halving.epochs = {epochs!r} is invalid; allowed: at least "
                         "two increasing epoch counts, e.g. [1, 3]")
    if "trial.epochs" in table:
        raise ValueError(f"{section} trial.epochs and halving.epochs are both given; allowed: "
                         "one of them (the rungs set the trials' epochs)")
    if isinstance(keep, bool) or not isinstance(keep, int | float) or not 0 < keep < 1:
        raise ValueError(f"{section} halving.keep = {keep!r} is invalid; allowed: a fraction "
                         "in (0, 1)")


def rungs(table: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The table of each round of trials: one without halving, else one per rung (its
    ``trial.epochs`` set from ``halving.epochs``)."""
    if "halving.epochs" not in table:
        return [dict(table)]
    return [{**table, "trial.epochs": e} for e in table["halving.epochs"]]


def survivors(point: Mapping[str, Any], table: Mapping[str, Any],
              cands: Sequence[Mapping[str, Any]], summaries: Mapping[str, Mapping[str, Any]],
              point_id: Callable[[Mapping[str, Any]], str]) -> list[dict[str, Any]]:
    """The best ``ceil(keep · n)`` candidates of ``point`` after a rung (at least one), in
    the order of ``cands``; unfinished and non-finite trials rank last."""
    scored = []
    for i, cand in enumerate(cands):
        pid = point_id(_trial(point, table, cand))
        score = _score(summaries[pid], table["metric"], table["goal"]) if pid in summaries \
            else -math.inf
        scored.append((-score, i))
    n_keep = max(1, math.ceil(table.get("halving.keep", 0.5) * len(cands)))
    kept = sorted(i for _, i in sorted(scored)[:n_keep])
    return [dict(cands[i]) for i in kept]


def _overrides(select: Mapping[str, Any]) -> dict[str, Any]:
    return {k[len(_TRIAL):]: v for k, v in select.items() if k.startswith(_TRIAL)}


def _trial(point: Mapping[str, Any], table: Mapping[str, Any], cand: Mapping[str, Any]
           ) -> Point:
    return copy.deepcopy({**point, **_overrides(table), **cand})


def trial_points(points: Sequence[Point], table: Mapping[str, Any],
                 cands: Sequence[Mapping[str, Any]],
                 point_id: Callable[[Mapping[str, Any]], str]) -> list[Point]:
    """The distinct trial points of ``points`` in order (point by point, candidate by
    candidate)."""
    out: list[Point] = []
    seen: set[str] = set()
    for point in points:
        for cand in cands:
            trial = _trial(point, table, cand)
            pid = point_id(trial)
            if pid not in seen:
                seen.add(pid)
                out.append(trial)
    return out


def _score(summary: Any, metric: str, goal: str) -> float:
    """The score to maximise (``-inf`` when missing or not finite)."""
    value = summary.get(metric) if isinstance(summary, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return -math.inf
    return float(value) if goal == "max" else -float(value)


def choose(point: Mapping[str, Any], table: Mapping[str, Any],
           cands: Sequence[Mapping[str, Any]], summaries: Mapping[str, Mapping[str, Any]],
           point_id: Callable[[Mapping[str, Any]], str]) -> dict[str, Any] | None:
    """The chosen candidate for ``point`` from its finished trials (``summaries`` by trial
    id); ``None`` when none of them finished."""
    best, best_score = None, -math.inf
    for cand in cands:
        pid = point_id(_trial(point, table, cand))
        if pid not in summaries:
            continue
        score = _score(summaries[pid], table["metric"], table["goal"])
        if best is None or score > best_score:
            best, best_score = dict(cand), score
    return best


def final_points(points: Sequence[Point], table: Mapping[str, Any],
                 cands: Sequence[Mapping[str, Any]],
                 summaries: Mapping[str, Mapping[str, Any]],
                 point_id: Callable[[Mapping[str, Any]], str]
                 ) -> tuple[list[Point], list[Point]]:
    """``(finals, unresolved)``: each point with its chosen candidate, and the points whose
    trials all failed or are missing."""
    finals: list[Point] = []
    unresolved: list[Point] = []
    for point in points:
        cand = choose(point, table, cands, summaries, point_id)
        if cand is None:
            unresolved.append(dict(point))
        else:
            finals.append(copy.deepcopy({**point, **cand}))
    return finals, unresolved
