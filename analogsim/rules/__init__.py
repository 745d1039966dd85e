"""Learning rules: small objects with explicit state, named in :data:`RULES`.

``bp`` needs ``Wᵀδ`` and takes it only through a transpose strategy; every other rule trains
forward-only arrays natively. See docs/rules.md for the equations, costs and pitfalls.
"""

from __future__ import annotations

from .base import SGD, Rule, Schedule, StepResult, Trainer, Update
from .feedback import BP, DFA, DRTP, FA, IFA

__all__ = ["RULES", "get_rule", "Rule", "SGD", "Schedule", "StepResult", "Trainer", "Update"]

RULES: dict[str, type[Rule]] = {"bp": BP, "fa": FA, "dfa": DFA, "ifa": IFA, "drtp": DRTP}


def _register_optional() -> None:
    # Target-propagation and synthetic-gradient rules live in their own modules.
    try:
        from .target import DTP, TP
        RULES.update({"tp": TP, "dtp": DTP})
    except ImportError:  # pragma: no cover - during development only
        pass
    try:
        from .synthetic import DNI, Hybrid
        RULES.update({"dni": DNI, "hybrid": Hybrid})
    except ImportError:  # pragma: no cover
        pass


_register_optional()


def get_rule(name: str, **options) -> Rule:
    """Build a rule by registry name with its options (unknown options are errors)."""
    if name not in RULES:
        raise ValueError(f"rule = {name!r} is unknown; allowed: {', '.join(RULES)}")
    try:
        return RULES[name](**options)
    except TypeError as exc:
        raise ValueError(f"rule {name!r}: bad option ({exc}); see docs/rules.md") from exc
