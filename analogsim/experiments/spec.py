"""Sweep specs: the TOML form of a sweep, its validation, and its expansion into points.

Spec
----
.. code-block:: toml

    name = "rules-vs-read-noise"
    description = "three rules against read noise"
    [base]                          # every point starts from these run parameters
    dataset = "digits"
    hardware = "rram"
    epochs = 3
    [grid]                          # cartesian product, first key varies slowest
    rule = ["bp", "fa", "dfa"]
    "hw.noise.read_noise" = [0.0, 0.02, 0.05]
    seed = [0, 1, 2]
    [random]                        # optional: n samples, seeded, keys drawn in sorted order
    n = 10
    seed = 0                        # optional, default 0
    "hw.adc.bits" = { choice = [4, 6, 8] }
    "hw.device.dw_min" = { loguniform = [1e-4, 1e-2] }   # 0 < low < high
    lr = { uniform = [0.01, 0.1] }                       # low < high
    batch = { randint = [16, 64] }                       # integers, both ends included

Keys are run parameters, or hardware fields written ``"hw.<section>.<field>"``; the engine
passes them through untouched and the run function applies them.  Values are booleans,
integers, finite floats, strings or lists of these (a table is rejected: write its fields as
quoted dotted keys).  A key may be in ``[base]`` and in ``[grid]`` or ``[random]`` (the latter
win) but not in both ``[grid]`` and ``[random]``.  To vary the run seed in a random search,
put ``seed`` in ``[grid]`` (``[random]``'s own ``seed`` seeds the sampler).

Points: ``base`` merged with one grid combination; with ``[random]`` too, every grid
combination is combined with every random sample (the same n samples for each combination,
so grid settings are compared at the same sampled values).  Points that come out identical
(e.g. a random ``choice`` drawing the same value twice) are kept once, so a sweep may have
fewer than ``combinations * n`` points.  Sampling uses only ``random.Random(seed).random()``,
whose sequence Python guarantees across versions, so point ids never drift.  A point's id is
the first 16 hex chars of the sha256 of its canonical JSON (sorted keys), see :func:`point_id`.

With a ``[select]`` table one parameter (e.g. ``lr``) is chosen per setting on short trial
runs before the final runs: see :mod:`analogsim.experiments.select`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analogsim.experiments.select import check_scoring, check_select
from analogsim.fields import loads_toml, read_text_file, unknown_key

__all__ = ["TOP_LEVEL", "DISTRIBUTIONS", "SEARCH_METHODS", "SweepSpec", "load_spec",
           "loads_spec", "spec_from_dict", "expand", "point_id", "search_candidates"]

#: Top-level keys of a spec, and the distributions ``[random]`` draws from.
TOP_LEVEL = ("name", "description", "base", "grid", "random", "select", "search")
#: Sampling methods of ``[search]``.
SEARCH_METHODS = ("random", "sobol", "lhs")
#: Keys of ``[search]`` that are not searched parameters.
SEARCH_KEYS = ("n", "method", "seed", "metric", "goal", "halving.epochs", "halving.keep")
DISTRIBUTIONS = ("choice", "uniform", "loguniform", "randint")

Point = dict[str, Any]

#: Most points one spec may expand to (checked before anything is expanded; a point costs
#: about 1 KiB in the driver and a row in the store).
MAX_POINTS = 1_000_000

# --------------------------------------------------------------------------- spec validation


def _check_key(where: str, key: Any) -> None:
    bad = not isinstance(key, str) or not key or key != key.strip()
    if not bad and key.startswith("hw."):
        bad = any(not part for part in key.split(".")[1:])
    if bad:
        raise ValueError(f"{where} key {key!r} is invalid; allowed: a run parameter name or "
                         "'hw.<section>.<field>'")


def _check_value(where: str, value: Any) -> None:
    if isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if math.isfinite(value):
            return
    elif isinstance(value, list):
        for item in value:
            _check_value(where, item)
        return
    hint = " (write a table's fields as quoted dotted keys)" if isinstance(value, dict) else ""
    raise ValueError(f"{where} = {value!r} is invalid; allowed: a boolean, integer, finite "
                     f"float, string or a list of these{hint}")


def _check_table(where: str, table: Any) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ValueError(f"{where} = {table!r} is invalid; allowed: a table")
    for key in table:
        _check_key(where, key)
    return table


def _check_grid(grid: Any) -> None:
    for key, values in _check_table("[grid]", grid).items():
        where = f"[grid] {key!r}"
        if not isinstance(values, list) or not values:
            raise ValueError(f"{where} = {values!r} is invalid; allowed: a non-empty list")
        seen: set[str] = set()
        for value in values:
            _check_value(where, value)
            text = json.dumps(value, sort_keys=True)
            if text in seen:
                raise ValueError(f"{where} lists {value!r} twice; allowed: distinct values")
            seen.add(text)


def _check_int(where: str, value: Any, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{where} = {value!r} is invalid; allowed: an integer >= {low}")


def _check_bounds(where: str, kind: str, args: Any) -> None:
    numbers = isinstance(args, list) and len(args) == 2 and all(
        isinstance(a, int | float) and not isinstance(a, bool) and math.isfinite(a) for a in args)
    if not numbers:
        raise ValueError(f"{where} {kind} = {args!r} is invalid; allowed: [low, high], "
                         "two finite numbers")
    low, high = args
    if kind == "randint":
        allowed = "integers with low <= high (both ends included)"
        ok = all(isinstance(a, int) for a in args) and low <= high
    elif kind == "loguniform":
        allowed, ok = "0 < low < high", 0 < low < high
    else:
        allowed, ok = "low < high", low < high
    if not ok:
        raise ValueError(f"{where} {kind} = {args!r} is invalid; allowed: {allowed}")


def _check_distribution(key: str, dist: Any, section: str = "[random]") -> None:
    where = f"{section} {key!r}"
    if not isinstance(dist, dict) or len(dist) != 1:
        raise ValueError(f"{where} = {dist!r} is invalid; allowed: a table with exactly one of "
                         + ", ".join(DISTRIBUTIONS) + ", e.g. { uniform = [0.01, 0.1] }")
    kind, args = next(iter(dist.items()))
    if kind not in DISTRIBUTIONS:
        raise unknown_key(where, kind, DISTRIBUTIONS, what="distribution")
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise ValueError(f"{where} choice = {args!r} is invalid; allowed: a non-empty list")
        _check_value(where, args)
    else:
        _check_bounds(where, kind, args)


def _check_random(table: Any) -> None:
    table = _check_table("[random]", table)
    if "n" not in table:
        raise ValueError("[random] has no 'n'; allowed: n = <number of samples, >= 1>")
    _check_int("[random] n", table["n"], 1)
    _check_int("[random] seed", table.get("seed", 0), 0)
    dists = {k: v for k, v in table.items() if k not in ("n", "seed")}
    if not dists:
        raise ValueError("[random] has no distributions; allowed: keys such as "
                         "lr = { uniform = [0.01, 0.1] }")
    for key, dist in dists.items():
        _check_distribution(key, dist)


# --------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep specification (see the module docstring for the TOML form).

    Parameters
    ----------
    name : str
        Sweep name, stored with every row.
    description : str
        Free text.
    base : dict
        Parameters shared by every point.
    grid : dict
        ``{key: non-empty list}``; the cartesian product of the lists.
    random : dict or None
        ``{"n": int, "seed": int, key: {distribution: args}, ...}``.
    select : dict or None
        ``{"param": str, "values": list, "metric": str, "goal": "max"|"min",
        "trial.<key>": value, ...}`` (:mod:`analogsim.experiments.select`).
    search : dict or None
        ``{"n": int, "method": "random"|"sobol"|"lhs", "seed": int, "metric": str,
        "goal": ..., "trial.<key>": value, key: {distribution: args}, ...}``: like
        ``[select]``, with ``n`` candidates sampled from the distributions (the same
        candidates for every setting).
    """

    name: str
    description: str = ""
    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    random: dict[str, Any] | None = None
    select: dict[str, Any] | None = None
    search: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"name = {self.name!r} is invalid; allowed: a non-empty string")
        if not isinstance(self.description, str):
            raise ValueError(f"description = {self.description!r} is invalid; allowed: a string")
        for key, value in _check_table("[base]", self.base).items():
            _check_value(f"[base] {key!r}", value)
        _check_grid(self.grid)
        if self.random is not None:
            _check_random(self.random)
            both = sorted(set(self.grid) & set(self.random) - {"n", "seed"})
            if both:
                raise ValueError(f"keys {both} are in both [grid] and [random]; allowed: each "
                                 "key in at most one of them")
            # Normalise: an explicit sampler seed makes the spec self-describing.
            object.__setattr__(self, "random", {"seed": 0, **self.random})
        n_points = math.prod(len(v) for v in self.grid.values()) * (
            self.random["n"] if self.random is not None else 1)
        if n_points > MAX_POINTS:
            raise ValueError(f"the spec expands to {n_points} points; allowed: at most "
                             f"{MAX_POINTS} per spec (split it into several sweeps)")
        if self.select is not None and self.search is not None:
            raise ValueError("[select] and [search] are both given; allowed: one of them")
        if self.select is not None:
            object.__setattr__(self, "select", check_select(self.select, _check_value))
            self._check_tuned("[select]", [self.select["param"]])
        if self.search is not None:
            object.__setattr__(self, "search", _check_search(self.search))
            self._check_tuned("[search]", _searched(self.search))

    def _check_tuned(self, section: str, keys: list[str]) -> None:
        for key in keys:
            if key == "seed" or key in self.grid or (self.random is not None
                                                     and key in self.random):
                raise ValueError(f"{section} {key!r} is also in [grid] or [random] (or is the "
                                 f"seed); allowed: a parameter that only {section} varies")

    def tuning(self) -> tuple[str, dict[str, Any], list[Point]] | None:
        """``(section, table, candidates)`` of ``[select]`` or ``[search]``, else None."""
        if self.select is not None:
            return "[select]", self.select, [{self.select["param"]: v}
                                             for v in self.select["values"]]
        if self.search is not None:
            return "[search]", self.search, search_candidates(self.search)
        return None


def spec_from_dict(data: Mapping[str, Any], *, source: str = "<dict>") -> SweepSpec:
    """Build a :class:`SweepSpec` from a parsed TOML document.

    Raises
    ------
    ValueError
        On unknown top-level keys or any invalid part; the message starts with ``source``.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: spec = {data!r} is invalid; allowed: a table")
    for key in data:
        if key not in TOP_LEVEL:
            raise unknown_key(source, key, TOP_LEVEL, what="top-level key")
    if "name" not in data:
        raise ValueError(f"{source}: 'name' is missing; allowed: name = \"<sweep name>\"")
    try:
        return SweepSpec(**copy.deepcopy(dict(data)))
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None


def loads_spec(text: str, *, source: str = "<string>") -> SweepSpec:
    """Parse a sweep spec from TOML text."""
    return spec_from_dict(loads_toml(text, source=source), source=source)


def load_spec(path: str | os.PathLike[str]) -> SweepSpec:
    """Read and validate a sweep spec TOML file.

    Relative paths in ``hardware``, ``model`` and ``data_dir`` values (those ending in
    ``.toml`` or holding a ``/``; a ``data_dir`` always) are resolved against the spec's own
    folder, so a spec and the files it names can be moved and run from anywhere.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.toml`` file.

    Returns
    -------
    SweepSpec
    """
    path = Path(path)
    # os.path.isfile: False (not OSError) for names the OS rejects, e.g. too long; and for a
    # FIFO or a device, which are never read.
    if not os.path.isfile(path):
        raise ValueError(f"path = {str(path)!r} is invalid; allowed: an existing TOML file")
    text = read_text_file(path, "sweep spec")
    data = loads_toml(text, source=str(path))
    if isinstance(data, dict):
        _anchor_paths(data, path.resolve().parent)
    return spec_from_dict(data, source=str(path))


#: Keys whose relative paths name files beside the spec (not in the working directory).
PATH_KEYS = ("hardware", "model", "data_dir")


def _anchored(key: str, value: Any, base: Path) -> Any:
    if not isinstance(value, str) or os.path.isabs(value) or not value:
        return value
    if key == "data_dir" or value.endswith(".toml") or "/" in value or os.sep in value:
        return str(base / value)
    return value  # a preset name


def _anchor_values(key: str, value: Any, base: Path) -> Any:
    """``value`` of ``key`` (plain or a bundle ``"a+b"``) with its paths made absolute."""
    parts = key.split("+")
    if len(parts) == 1:
        return _anchored(key, value, base)
    if isinstance(value, list) and len(value) == len(parts):
        return [_anchored(k, v, base) for k, v in zip(parts, value, strict=True)]
    return value


def _anchor_paths(data: dict[str, Any], base: Path) -> None:
    """Resolve relative file paths of ``[base]`` and ``[grid]`` against the spec's folder."""
    def wanted(key: Any) -> bool:
        return isinstance(key, str) and any(k in PATH_KEYS for k in key.split("+"))

    if isinstance(data.get("base"), dict):
        for key in [k for k in data["base"] if wanted(k)]:
            data["base"][key] = _anchor_values(key, data["base"][key], base)
    if isinstance(data.get("grid"), dict):
        for key in [k for k in data["grid"] if wanted(k)]:
            values = data["grid"][key]
            if isinstance(values, list):
                data["grid"][key] = [_anchor_values(key, v, base) for v in values]


# --------------------------------------------------------------------------- expansion


def point_id(point: Mapping[str, Any]) -> str:
    """Stable id of a point: first 16 hex chars of sha256 of its sorted-key JSON.

    >>> point_id({"b": 1, "a": 0.5}) == point_id({"a": 0.5, "b": 1})
    True
    """
    try:
        text = json.dumps(dict(point), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"point = {point!r} is invalid; allowed: JSON-able values ({exc})") \
            from None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _draw(dist: dict[str, Any], u: float) -> Any:
    """Map one uniform ``u`` in [0, 1) to a value of ``dist`` (no version-dependent RNG)."""
    kind, args = next(iter(dist.items()))
    if kind == "choice":
        return copy.deepcopy(args[min(int(u * len(args)), len(args) - 1)])
    low, high = args
    if kind == "randint":
        return low + min(int(u * (high - low + 1)), high - low)
    if kind == "loguniform":
        value = math.exp(math.log(low) + (math.log(high) - math.log(low)) * u)
    else:
        value = low + (high - low) * u
    return float(min(max(value, low), high))  # rounding must not step outside the bounds


def _random_samples(table: dict[str, Any]) -> list[Point]:
    rng = random.Random(table["seed"])
    keys = sorted(k for k in table if k not in ("n", "seed"))
    return [{key: _draw(table[key], rng.random()) for key in keys} for _ in range(table["n"])]


def _searched(table: dict[str, Any]) -> list[str]:
    return sorted(k for k in table if k not in SEARCH_KEYS and not k.startswith("trial."))


def _check_search(table: Any) -> dict[str, Any]:
    """Validate ``[search]``; return it with ``method``, ``seed`` and ``goal`` filled in."""
    table = _check_table("[search]", table)
    if "n" not in table:
        raise ValueError("[search] has no 'n'; allowed: n = <candidates per setting, >= 2>")
    _check_int("[search] n", table["n"], 2)
    _check_int("[search] seed", table.get("seed", 0), 0)
    method = table.get("method", "random")
    if method not in SEARCH_METHODS:
        raise unknown_key("[search]", method, SEARCH_METHODS, what="method")
    keys = _searched(table)
    if not keys:
        raise ValueError("[search] has no parameters to search; allowed: keys such as "
                         "lr = { loguniform = [0.005, 0.2] }")
    for key in keys:
        _check_distribution(key, table[key], "[search]")
    table = check_scoring("[search]", table, keys, _check_value)
    return {**table, "method": method, "seed": table.get("seed", 0)}


def search_candidates(table: dict[str, Any]) -> list[Point]:
    """The ``n`` candidates of a ``[search]`` table, in draw order (duplicates kept once).

    ``random``: ``random.Random(seed)`` as ``[random]`` (stable across Python versions);
    ``sobol``: a scrambled Sobol sequence (``scipy.stats.qmc``, first ``n`` of the next power
    of two), ``lhs``: a Latin hypercube — both spread the candidates more evenly than
    independent draws, which matters at the small budgets a search can afford.
    """
    keys = _searched(table)
    n, seed, method = table["n"], table["seed"], table["method"]
    if method == "random":
        rng = random.Random(seed)
        units = [[rng.random() for _ in keys] for _ in range(n)]
    else:
        from scipy.stats import qmc

        if method == "sobol":
            m = max(1, math.ceil(math.log2(n)))
            units = qmc.Sobol(len(keys), scramble=True, seed=seed).random_base2(m)[:n].tolist()
        else:
            units = qmc.LatinHypercube(len(keys), seed=seed).random(n).tolist()
    out: list[Point] = []
    seen: set[str] = set()
    for u in units:
        cand = {k: _draw(table[k], min(x, math.nextafter(1.0, 0.0))) for k, x in zip(
            keys, u, strict=True)}
        text = json.dumps(cand, sort_keys=True)
        if text not in seen:
            seen.add(text)
            out.append(cand)
    return out


def _grid_combinations(grid: dict[str, list[Any]]) -> list[Point]:
    combos: list[Point] = [{}]
    for key, values in grid.items():  # first key varies slowest, as itertools.product
        combos = [{**combo, key: value} for combo in combos for value in values]
    return combos


def expand(spec: SweepSpec) -> list[Point]:
    """All points of ``spec`` in a deterministic order, duplicates dropped.

    Order: grid combinations (first grid key slowest), and within each the random samples in
    draw order.  Each point is a fresh dict (mutating it does not touch ``spec``).
    """
    samples = _random_samples(spec.random) if spec.random is not None else [{}]
    points: list[Point] = []
    seen: set[str] = set()
    for combo in _grid_combinations(spec.grid):
        for sample in samples:
            point = copy.deepcopy({**spec.base, **combo, **sample})
            pid = point_id(point)
            if pid not in seen:
                seen.add(pid)
                points.append(point)
    return points
