"""Learning rules: small objects with explicit state, named in :data:`RULES`.

``bp`` needs ``Wᵀδ`` and takes it only through a transpose strategy; every other rule trains
forward-only arrays natively. See docs/rules.md for the equations, costs and pitfalls.

Each rule declares its options once, as the fields of its ``Options`` dataclass
(:func:`analogsim.fields.param`: default, allowed values, one-line doc); :func:`get_rule`
validates them and :func:`rule_options` hands the declaration to the docs generator.

How an analog layer's update reaches its conductances is the *optimizer*'s business
(:mod:`.optimizers`, :data:`OPTIMIZERS`: ``sgd``, ``mixed_precision``, ``tiki_taka``,
``ttv2``, ``c_ttv2``, ``agad``), orthogonal to the rule.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import re

from .base import SGD, Rule, Schedule, StepResult, Trainer, Update
from .feedback import BP, DFA, DRTP, FA, IFA
from .forward import PEPITA, ForwardForward
from .optimizers import OPTIMIZERS, AnalogOptimizer, get_optimizer, optimizer_options
from .perturbation import ForwardGradient, NodePerturbation
from .synthetic import DNI, Hybrid
from .target import DTP, TP

__all__ = ["RULES", "get_rule", "rule_options", "register_rule", "is_rule", "Rule", "SGD",
           "Schedule", "StepResult", "Trainer", "Update", "OPTIMIZERS", "AnalogOptimizer",
           "get_optimizer", "optimizer_options"]

RULES: dict[str, type[Rule]] = {"bp": BP, "fa": FA, "dfa": DFA, "ifa": IFA, "drtp": DRTP,
                                "tp": TP, "dtp": DTP, "dni": DNI, "hybrid": Hybrid,
                                # forward reads only (forward.py, perturbation.py)
                                "forward_forward": ForwardForward, "pepita": PEPITA,
                                "forward_gradient": ForwardGradient,
                                "node_perturbation": NodePerturbation}


#: Built-in rule names: :func:`register_rule` never replaces these.
BUILTIN = frozenset(RULES)
#: Entry-point group through which installed packages add rules (name → ``Rule`` subclass).
ENTRY_POINT_GROUP = "analogsim.rules"
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_entry_points_loaded = False


def register_rule(cls: type[Rule] | None = None, *, name: str | None = None,
                  replace: bool = False):
    """Add a user rule to :data:`RULES`; usable as ``@register_rule`` or a plain call.

    Parameters
    ----------
    cls : type
        A subclass of :class:`Rule` that implements :meth:`Rule.compute` and declares its
        ``Options`` as a frozen dataclass (fields with :func:`analogsim.fields.param`).
    name : str, optional
        Registry name (lower case, digits, ``_``); default ``cls.name``, which is set to it.
    replace : bool
        Allow replacing a user rule registered earlier under ``name`` (built-ins never).

    Returns
    -------
    type
        ``cls`` (so it works as a decorator).

    Notes
    -----
    The registry is per process. Sweep workers (spawned processes, Dask workers) find a
    user rule by importing it: give it in a spec or ``--rule`` as ``"module:Class"`` (the
    module importable there: installed or on ``PYTHONPATH``), or install it under the
    ``analogsim.rules`` entry-point group.
    """
    if cls is None:
        return lambda c: register_rule(c, name=name, replace=replace)
    _check_rule_class(cls)
    key = cls.name if name is None else name
    if not isinstance(key, str) or not _NAME.match(key):
        raise ValueError(f"name = {key!r} is invalid; allowed: lower-case letters, digits and "
                         "'_', starting with a letter")
    if key in BUILTIN or (key in RULES and RULES[key] is not cls and not replace):
        raise ValueError(f"rule name {key!r} is taken by {RULES[key].__module__}."
                         f"{RULES[key].__qualname__}; allowed: a new name"
                         + ("" if key in BUILTIN else ", or replace=True"))
    cls.name = key
    RULES[key] = cls
    return cls


def _check_rule_class(cls: object) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Rule)):
        raise TypeError(f"rule class must be a subclass of analogsim.rules.Rule, got {cls!r}")
    if cls.compute is Rule.compute:
        raise TypeError(f"{cls.__qualname__} does not implement compute(net, x, target, sched)")
    opts = cls.Options
    if not (dataclasses.is_dataclass(opts) and opts.__dataclass_params__.frozen):
        raise TypeError(f"{cls.__qualname__}.Options must be a frozen dataclass")


def _load_entry_points() -> None:
    """Register the rules of installed packages' ``analogsim.rules`` entry points, once."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in RULES:
            register_rule(ep.load(), name=ep.name)


def _import_rule(ref: str) -> type[Rule]:
    """``"package.module:Class"`` → the class, imported and registered under ``ref``."""
    module, _, qual = ref.partition(":")
    try:
        obj = importlib.import_module(module)
    except ImportError as exc:
        raise ValueError(f"rule = {ref!r}: module {module!r} cannot be imported ({exc}); "
                         "allowed: a module importable here (installed or on PYTHONPATH)"
                         ) from exc
    for part in qual.split("."):
        obj = getattr(obj, part, None)
    if obj is None:
        raise ValueError(f"rule = {ref!r}: {module!r} has no {qual!r}; allowed: "
                         "'module:Class' naming a Rule subclass")
    _check_rule_class(obj)
    RULES[ref] = obj  # keyed by the reference: the name a worker will look up
    return obj


def _rule_class(name: str) -> type[Rule]:
    if name in RULES:
        return RULES[name]
    if isinstance(name, str) and ":" in name:
        return _import_rule(name)
    _load_entry_points()
    if name not in RULES:
        raise ValueError(f"rule = {name!r} is unknown; allowed: {', '.join(RULES)}, a rule "
                         "registered with register_rule, or 'module:Class'")
    return RULES[name]


def is_rule(name: object) -> bool:
    """Whether ``name`` resolves to a rule (may import a ``module:Class`` reference)."""
    try:
        _rule_class(name)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return False
    return True


def get_rule(name: str, *, seed: int = 0, **options) -> Rule:
    """Build a rule by registry name.

    Parameters
    ----------
    name : str
        A key of :data:`RULES`.
    seed : int
        The run's seed (not an option: every rule takes it).
    **options
        Fields of the rule's ``Options`` (:func:`rule_options`).

    Raises
    ------
    ValueError
        Unknown rule; unknown option (the nearest option name is suggested); or an invalid
        value (``rule.<option> = value is invalid; allowed: …``).
    """
    return _rule_class(name)(seed=seed, **options)


def rule_options(name: str) -> type:
    """The ``Options`` dataclass of rule ``name`` (for docs: ``fields.field_rows`` of it)."""
    return _rule_class(name).Options
