"""Rule options: one declaration per option (``Rule.Options``), one error format, the docs."""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest

from analogsim.fields import Spec, field_rows, markdown_table, spec_of, specs, toml_value
from analogsim.rules import RULES, get_rule, rule_options
from analogsim.rules.feedback import DFA

#: The constructor defaults before the options were declared (keyword arguments of each
#: rule's ``__init__``), spelled out: the declarations must not have moved any of them.
_FEEDBACK = {"feedback": "analog", "feedback_scale": 1.0}
_TP = {"top": "inverse", "top_lr": 8.0, "inverse": "learned", "noise": 1.0, "headroom": 2.0}
OLD_DEFAULTS = {
    # conv_layers (issue 16) is new; its default keeps the old behaviour.
    "bp": {**_FEEDBACK, "conv_layers": "same"}, "fa": {**_FEEDBACK, "conv_layers": "same"},
    "ifa": _FEEDBACK,
    "drtp": {**_FEEDBACK, "conv_layers": "same"},
    "dfa": {**_FEEDBACK, "zero_init": "auto", "conv_layers": "same"},
    "tp": _TP, "dtp": _TP,
    "dni": {"label": True, "target": "feedback", "bootstrap": True, "feedback": "analog",
            "feedback_scale": 1.0, "headroom": 2.0, "predictor_lr_scale": 100.0,
            "predictor_step": "nlms"},
    "hybrid": {"blocks": 2, "label": True, "headroom": 2.0, "predictor_lr_scale": 100.0,
               "predictor_step": "nlms"},
    # the forward-only rules (issue 15) were declared with their options from the start
    "forward_forward": {"threshold": 0.5, "label_scale": 3.0, "head": "goodness",
                        "skip_first": False},
    "pepita": {"feedback": "analog", "feedback_scale": 0.5},
    "forward_gradient": {"sigma": 0.1, "directional": "difference", "perturb": "layer",
                         "samples": 1},
    "node_perturbation": {"sigma": 0.1, "noise": "injected", "samples": 1},
}


def _bad_values(spec: Spec) -> list[object]:
    """Values outside what ``spec`` declares: wrong type, out of range, not a choice."""
    if spec.kind == "bool":
        return ["yes", 1, None]
    if spec.kind == "str":
        return [1, "", *(["no-such-" + spec.choices[0]] if spec.choices else [])]
    assert spec.kind in ("int", "float"), f"add bad values for kind {spec.kind!r}"
    out: list[object] = ["1", True, None]
    if spec.lo is not None:
        out.append(spec.lo if spec.lo_open else spec.lo - 1)
    if spec.hi is not None:
        out.append(spec.hi if spec.hi_open else spec.hi + 1)
    if spec.kind == "int":
        out.append(1.5)
    else:
        out += [math.nan, math.inf]
    return out


def _cases() -> list[tuple[str, str, object, Spec]]:
    return [(rule, opt, value, spec) for rule, cls in RULES.items()
            for opt, spec in specs(cls.Options).items() for value in _bad_values(spec)]


def test_every_option_is_declared_with_a_doc():
    for rule, cls in RULES.items():
        assert rule_options(rule) is cls.Options
        for f in dataclasses.fields(cls.Options):
            spec = spec_of(f)
            assert spec is not None, f"{rule}.{f.name} is not declared with param()"
            assert spec.doc.strip() and "\n" not in spec.doc, f"{rule}.{f.name}: no one-line doc"


@pytest.mark.parametrize("rule", list(RULES))
def test_defaults_are_the_old_constructor_defaults(rule):
    cls = RULES[rule]
    assert dataclasses.asdict(cls.Options()) == OLD_DEFAULTS[rule]
    assert get_rule(rule).options == cls.Options()
    assert get_rule(rule).seed == 0


@pytest.mark.parametrize("rule,option,value,spec", _cases(),
                         ids=[f"{r}.{o}={v!r}" for r, o, v, _ in _cases()])
def test_out_of_range_values_are_refused_in_one_format(rule, option, value, spec):
    expect = f"rule.{option} = {value!r} is invalid; allowed: {spec.allowed()}"
    with pytest.raises(ValueError, match="^" + re.escape(expect) + "$"):
        get_rule(rule, **{option: value})


@pytest.mark.parametrize("rule", list(RULES))
def test_unknown_option_suggests_the_nearest_name(rule):
    names = RULES[rule].option_names()
    for opt in names:
        typo = opt + opt[-1]
        with pytest.raises(ValueError) as info:
            get_rule(rule, **{typo: 1})
        msg = str(info.value)
        assert msg == (f"rule {rule!r}: option {typo!r} is unknown (did you mean {opt!r}?); "
                       f"allowed: {', '.join(names)}")
    with pytest.raises(ValueError, match=r"option 'seeed' is unknown; allowed: ") as info:
        get_rule(rule, seeed=1)
    assert "seed" not in str(info.value).split("allowed: ")[1].split(", ")  # not an option


def test_unknown_option_message_names_no_class_or_python_internals():
    with pytest.raises(ValueError) as info:
        get_rule("dfa", feedbak="digital")
    assert str(info.value) == ("rule 'dfa': option 'feedbak' is unknown (did you mean "
                               "'feedback'?); allowed: feedback, feedback_scale, zero_init, "
                               "conv_layers")
    with pytest.raises(ValueError, match=r"^rule 'dfa': option 'feedbak' is unknown"):
        DFA(feedbak="digital")  # the class itself gives the same message
    with pytest.raises(ValueError, match=r"^rule = 'dfb' is unknown; allowed: bp, fa, dfa, "):
        get_rule("dfb")
    with pytest.raises(ValueError, match=r"^rule = 'dfb' is unknown"):
        rule_options("dfb")


def test_numpy_scalars_are_accepted_and_stored_as_python_values():
    rule = get_rule("dfa", feedback_scale=np.float64(0.5), zero_init=np.bool_(True), seed=1)
    assert rule.options.feedback_scale == 0.5 and type(rule.options.feedback_scale) is float
    assert rule.zero_init is True  # what the runner reads
    for name, cls in RULES.items():
        for opt, spec in specs(cls.Options).items():
            default = getattr(cls.Options(), opt)
            if spec.kind in ("float", "int", "bool"):
                np_type = {"float": np.float64, "int": np.int64, "bool": np.bool_}[spec.kind]
                got = getattr(get_rule(name, **{opt: np_type(default)}).options, opt)
                assert got == default and type(got) is type(default), f"{name}.{opt}"
    assert get_rule("tp", top_lr=3).options.top_lr == 3.0  # an int for a float option


def test_constructor_keywords_still_work_and_set_the_options():
    rule = get_rule("dtp", top="transpose", seed=1)
    assert rule.options.top == "transpose" and rule.needs_transpose and rule.seed == 1
    assert DFA(seed=0, feedback="digital").options.feedback == "digital"
    hybrid = get_rule("hybrid", blocks=3)
    assert hybrid.block == 3 and hybrid.engine.target == "transpose"
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.options.top = "inverse"  # type: ignore[misc]


@pytest.mark.parametrize("rule", list(RULES))
def test_docs_tables_come_from_the_options(rule):
    rows = field_rows(rule_options(rule))
    assert [r["field"] for r in rows] == RULES[rule].option_names()
    assert {r["field"]: r["default"] for r in rows} == {
        k: toml_value(v) for k, v in OLD_DEFAULTS[rule].items()}
    assert all(r["allowed"] for r in rows)
    assert markdown_table(rule_options(rule)).count("\n") == len(rows) + 2
