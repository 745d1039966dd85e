"""The ``layers`` form of a network description: parse and check layer strings, infer shapes.

A network may be given as a list of layer strings (``model.layers``) on an input map of shape
``model.input_shape = [C, H, W]``, instead of ``model.sizes``::

    input_shape = [1, 28, 28]
    layers = ["conv:6x5x5,padding=2", "pool:max2", "conv:16x5x5", "pool:max2",
              "fc:120", "fc:84", "fc:10"]

Grammar (no spaces needed; sizes are ``N`` or ``HxW``):

``conv:<c_out>x<k>`` or ``conv:<c_out>x<k_h>x<k_w>``, then optionally ``,stride=S``,
``,padding=P``, ``,dilation=D``, ``,groups=G``
    a convolution on crossbar tiles (:class:`~analogsim.layers.conv.AnalogConv2d`).
``pool:max<k>`` or ``pool:avg<k>``, optionally ``,stride=S`` (default: the window size)
    max or average pooling (digital), applied to the input of the next weight layer.
``fc:<n_out>``
    a fully connected layer; after a conv layer it reads the flattened map (C order), after a
    pool it is built as a conv layer whose window is the whole pooled map.

Rules: convolutions and pools come before the first ``fc``; a pool is followed by a weight
layer (``conv`` or ``fc``) and not by another pool; the list ends with a weight layer. The
hidden weight layers use ``model.hidden``, the last one ``model.output``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .unfold import POOLS, Pool2d, Window

__all__ = ["LayerPlan", "plan_layers", "LAYER_GRAMMAR"]

#: The ``allowed: …`` text of a bad layer string.
LAYER_GRAMMAR = ("'conv:<c_out>x<k>[x<k_w>][,stride=S][,padding=P][,dilation=D][,groups=G]', "
                 "'pool:max<k>' or 'pool:avg<k>' [,stride=S], or 'fc:<n_out>' (sizes N or HxW)")

_SIZE = r"\d+(?:x\d+)?"
_CONV = re.compile(rf"conv:(\d+)x({_SIZE})((?:,\w+={_SIZE})*)\Z")
_POOL = re.compile(rf"pool:({'|'.join(POOLS)})({_SIZE})((?:,\w+={_SIZE})*)\Z")
_FC = re.compile(r"fc:(\d+)\Z")
_CONV_OPTIONS = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1}
_MAX = 1 << 20


@dataclass(frozen=True)
class LayerPlan:
    """One weight layer of a ``layers`` network, its input transform and shapes.

    ``kind`` is ``"conv"`` (a window smaller than the map, or any conv entry), ``"fc"``
    (fully connected on the flattened input: no pool before it) or ``"pooled_fc"`` (an fc
    entry after a pool, built as a conv whose window covers the pooled map).
    """

    kind: str
    in_shape: tuple[int, int, int] | None
    n_in: int
    n_out: int
    c_out: int = 0
    window: Window | None = None
    groups: int = 1
    pool: Pool2d | None = None
    out_shape: tuple[int, int, int] | None = None


class _Bad(ValueError):
    """A layer string that is invalid; the message says why (the caller adds the rest)."""


def _size(text: str) -> tuple[int, int]:
    h, _, w = text.partition("x")
    return int(h), int(w or h)


def _options(text: str, allowed: dict[str, int]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in allowed:
            raise _Bad(f"option {key!r} is unknown (allowed: {', '.join(allowed)})")
        if key in out:
            raise _Bad(f"option {key!r} is given twice")
        out[key] = int(value) if key == "groups" else _size(value)
    return out


def _check_range(what: str, values: tuple[int, ...], lo: int) -> None:
    for v in values:
        if not lo <= v <= _MAX:
            raise _Bad(f"{what} {v} is out of range [{lo}, {_MAX}]")


def _parse(text: str):
    """``("conv", c_out, Window, groups)``, ``("pool", Pool2d)`` or ``("fc", n)``."""
    if not isinstance(text, str):
        raise _Bad("not a string")
    s = text.strip()
    if m := _CONV.match(s):
        c_out, kernel = int(m.group(1)), _size(m.group(2))
        opts = {**_CONV_OPTIONS, **_options(m.group(3), _CONV_OPTIONS)}
        _check_range("c_out", (c_out,), 1)
        _check_range("kernel size", kernel, 1)
        _check_range("stride", pair_of(opts["stride"]), 1)
        _check_range("padding", pair_of(opts["padding"]), 0)
        _check_range("dilation", pair_of(opts["dilation"]), 1)
        _check_range("groups", (opts["groups"],), 1)
        return ("conv", c_out, Window(kernel, opts["stride"], opts["padding"],
                                      opts["dilation"]), opts["groups"])
    if m := _POOL.match(s):
        size = _size(m.group(2))
        opts = _options(m.group(3), {"stride": 0})
        _check_range("pool size", size, 1)
        stride = opts.get("stride", size)
        _check_range("pool stride", pair_of(stride), 1)
        return ("pool", Pool2d(m.group(1), size, stride))
    if m := _FC.match(s):
        n = int(m.group(1))
        _check_range("fc width", (n,), 1)
        return ("fc", n)
    raise _Bad("it does not match the grammar")


def pair_of(v: object) -> tuple[int, int]:
    return v if isinstance(v, tuple) else (int(v), int(v))


def plan_layers(input_shape: tuple[int, ...] | None, layers: tuple[str, ...],
                fail) -> list[LayerPlan]:
    """Weight layers, shapes and input transforms of a ``layers`` description.

    ``fail(name, value, allowed)`` raises the config's error (``model.layers[2] = 'x' is
    invalid; allowed: …``); ``name`` is ``layers[i]`` or ``input_shape``.
    """
    if input_shape is None or len(input_shape) != 3:
        fail("input_shape", input_shape, "three integers [channels, height, width] when "
             "layers is given")
    # The current map (None once a fully connected layer has flattened it) and its width.
    shape: tuple[int, int, int] | None = tuple(input_shape)  # type: ignore[assignment]
    width = math.prod(input_shape)
    plans: list[LayerPlan] = []
    pool: Pool2d | None = None
    for i, text in enumerate(layers):
        try:
            parsed = _parse(text)
            plan = _step(parsed, shape, width, pool, i == len(layers) - 1)
        except (_Bad, ValueError) as exc:
            fail(f"layers[{i}]", text, f"{LAYER_GRAMMAR}; here: {exc}")
        if plan is None:
            pool = parsed[1]
            continue
        plans.append(plan)
        pool, shape, width = None, plan.out_shape, plan.n_out
    if not plans:
        fail("layers", layers, "at least one weight layer (conv or fc)")
    return plans


def _step(parsed, shape: tuple[int, int, int] | None, width: int, pool: Pool2d | None,
          last: bool) -> LayerPlan | None:
    """The plan of one entry on the current map ``shape`` (None after an fc layer) of
    ``width`` values; None for a pool (it joins the next weight layer)."""
    kind = parsed[0]
    if kind == "pool":
        if pool is not None:
            raise _Bad("two pools in a row (allowed: one pool between weight layers)")
        if shape is None:
            raise _Bad("a pool after a fully connected layer (allowed: pools before the "
                       "first fc)")
        if last:
            raise _Bad("the list ends with a pool (allowed: a weight layer last)")
        parsed[1].out_shape(shape)  # raises if the window does not fit the map
        return None
    if kind == "conv":
        if shape is None:
            raise _Bad("a conv after a fully connected layer (allowed: convs first)")
        _, c_out, window, groups = parsed
        c, h, w = pool.out_shape(shape) if pool is not None else shape
        if c % groups or c_out % groups:
            raise _Bad(f"groups = {groups} does not divide the input channels ({c}) and "
                       f"c_out ({c_out})")
        ho, wo = window.out_size(h, w)
        return LayerPlan("conv", shape, width, c_out * ho * wo, c_out, window, groups, pool,
                         (c_out, ho, wo))
    n = parsed[1]
    if pool is not None:
        _, h, w = pool.out_shape(shape)
        return LayerPlan("pooled_fc", shape, width, n, n, Window((h, w)), 1, pool)
    return LayerPlan("fc", shape, width, n)
