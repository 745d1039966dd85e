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

from .base import SGD, Rule, Schedule, StepResult, Trainer, Update
from .feedback import BP, DFA, DRTP, FA, IFA
from .optimizers import OPTIMIZERS, AnalogOptimizer, get_optimizer, optimizer_options
from .synthetic import DNI, Hybrid
from .target import DTP, TP

__all__ = ["RULES", "get_rule", "rule_options", "Rule", "SGD", "Schedule", "StepResult",
           "Trainer", "Update", "OPTIMIZERS", "AnalogOptimizer", "get_optimizer",
           "optimizer_options"]

RULES: dict[str, type[Rule]] = {"bp": BP, "fa": FA, "dfa": DFA, "ifa": IFA, "drtp": DRTP,
                                "tp": TP, "dtp": DTP, "dni": DNI, "hybrid": Hybrid}


def _rule_class(name: str) -> type[Rule]:
    if name not in RULES:
        raise ValueError(f"rule = {name!r} is unknown; allowed: {', '.join(RULES)}")
    return RULES[name]


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
