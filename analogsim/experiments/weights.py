"""Weights in and out: program trained float weights onto a network, export what it holds.

:func:`program_weights` brings weights trained elsewhere (NumPy, PyTorch, aihwkit — as
arrays, a ``state_dict``-like mapping, or an ``.npz``/``.safetensors`` file with keys such as
``"0.weight"``/``"0.bias"``) onto the layers of a :class:`~analogsim.layers.network.Network`
or onto one layer:

1. **mapping**: an analog layer stores ``W = s · diag(c) · W_dev`` with device weights
   ``|W_dev| ≤ w_max``. ``mapping="layer"`` uses one scale ``s = max|W| / (w_max/headroom)``
   (``c = 1``); ``"column"`` gives every output (column of the crossbar) its own factor, so
   each output's largest weight reaches ``w_max/headroom`` (``c_i = max_j|W_ij| / max|W|``),
   one digital multiply per output and read more; ``"auto"`` picks ``"column"`` when some
   output's largest weight is below 3/4 of the layer's (:data:`AUTO_COLUMN_BELOW`: that
   output gains at least a third more of the device range), else ``"layer"``. On ``pcm``
   a digits MLP's first layer (row maxima down to 0.52 of the largest) went from 23 % to
   17 % relative programming error with ``"column"``.
2. **programming**: ``W_dev`` goes through the array's own write-verify programming
   (:meth:`~analogsim.hardware.array.CrossbarArray.program`: programming noise, levels,
   stuck cells; charged to the ledger); the bias is digital and set exactly (float32).
3. **report**: the relative programming error ``‖W_prog − W‖_F / ‖W‖_F`` per layer, with
   ``W_prog`` the weights the layer now computes with, and a
   :class:`ProgrammingErrorWarning` when it exceeds ``warn_above``.

The error is measured with :mod:`analogsim.oracle` (the exact conductances): a simulator's
diagnostic that real hardware could only estimate with charged reads. :func:`export_weights`
writes the same effective weights, labelled as such in the file's metadata.

Tensor names: every ``<prefix>.weight`` (shape ``(n_out, n_in)``, as ``torch.nn.Linear``)
with its optional ``<prefix>.bias`` is one layer; prefixes are taken in natural order
(``"0" < "2" < "10"``, ``"fc1" < "fc2"``; a PyTorch ``Sequential``'s activations have no
parameters, so ``0, 2, 4`` are its linear layers) and assigned to the network's layers in
order. Any other key is an error (nothing is ignored silently); pass a list of arrays to
give another order.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import oracle
from .._version import __version__
from ..layers.linear import AnalogLinear, DigitalLinear
from ..layers.network import Network
from .tensorfiles import load_tensors, save_tensors

__all__ = ["program_weights", "export_weights", "effective_weights", "LayerProgram",
           "ProgrammingErrorWarning", "MAPPINGS"]

MAPPINGS = ("auto", "layer", "column")
#: ``mapping="auto"`` uses per-column scales when some output's largest weight is below this
#: fraction of the layer's largest.
AUTO_COLUMN_BELOW = 0.75
NON_PHYSICAL = ("effective weights W = scale * diag(col_scale) * w_max * (G+ - G-) read from "
                "the simulator's exact conductances (analogsim.oracle): NOT physically "
                "readable from the hardware; programming error, pulse updates, drift and stuck "
                "cells included, read noise and converters not")


class ProgrammingErrorWarning(UserWarning):
    """Programmed weights differ from the requested ones by more than ``warn_above``."""


@dataclass(frozen=True)
class LayerProgram:
    """What :func:`program_weights` did to one layer.

    Attributes
    ----------
    name : str
        The layer's name (``layer0``, …).
    mapping : str
        ``"layer"``, ``"column"``, or ``"digital"`` for a digital layer (no device).
    scale : float
        Weight units per device unit (1 for a digital layer).
    col_scale : ndarray or None
        Per-output factors of ``"column"`` mapping, ``(n_out,)``.
    rel_error : float
        ``‖W_prog − W‖_F / ‖W‖_F`` (0 when ``W`` is all zero and so is ``W_prog``).
    max_abs_error : float
        ``max |W_prog − W|`` in weight units.
    """

    name: str
    mapping: str
    scale: float
    col_scale: np.ndarray | None
    rel_error: float
    max_abs_error: float

    def __repr__(self) -> str:
        cols = "" if self.col_scale is None else (
            f", col_scale in [{self.col_scale.min():.3g}, {self.col_scale.max():.3g}]")
        return (f"LayerProgram({self.name}: mapping={self.mapping!r}, scale={self.scale:.4g}"
                f"{cols}, rel_error={self.rel_error:.3f}, max_abs_error="
                f"{self.max_abs_error:.3g})")


# --------------------------------------------------------------------------- helpers


def effective_weights(layer: Any) -> np.ndarray:
    """The weights a layer computes with, float64 ``(n_out, n_in)`` in weight units.

    Digital layers: their float32 matrix. Analog layers: ``scale · diag(col_scale) ·
    oracle.weights(array)`` — non-physical inspection (see :data:`NON_PHYSICAL`).
    """
    if isinstance(layer, DigitalLinear):
        return np.asarray(layer.w, dtype=np.float64)
    if not isinstance(layer, AnalogLinear):
        raise TypeError(f"layer must be an AnalogLinear or DigitalLinear, got "
                        f"{type(layer).__name__} (other layer kinds are not supported here)")
    w = oracle.weights(layer.array) * float(layer.scale)
    if layer.col_scale is not None:
        w *= layer.col_scale.astype(np.float64)[:, None]
    return w


def _natural(key: str) -> list[Any]:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t)
            for t in re.split(r"(\d+)", key) if t]


def _from_state_dict(tensors: Mapping[str, np.ndarray], where: str
                     ) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """``[(prefix, weight, bias or None), …]`` in natural prefix order."""
    prefixes = sorted({k[:-len(".weight")] for k in tensors if k.endswith(".weight")},
                      key=_natural)
    used = {f"{p}.weight" for p in prefixes} | {f"{p}.bias" for p in prefixes}
    extra = sorted(k for k in tensors if k not in used)
    if extra:
        raise ValueError(f"{where}: keys {extra[:6]} are neither '<prefix>.weight' nor the "
                         "bias of one; allowed: only linear layers' weights and biases (pass "
                         "a list of arrays for anything else)")
    if not prefixes:
        raise ValueError(f"{where}: no '<prefix>.weight' tensor; allowed: a state dict of "
                         "linear layers, e.g. '0.weight', '0.bias', '2.weight'")
    return [(p, tensors[f"{p}.weight"], tensors.get(f"{p}.bias")) for p in prefixes]


def _entries(target: Any, weights: Any, biases: Any
             ) -> tuple[list[Any], list[tuple[str, Any, Any]]]:
    """The layers and ``(label, weight, bias)`` per layer, from any accepted form."""
    layers = list(target.layers) if isinstance(target, Network) else [target]
    where = "weights"
    if isinstance(weights, str | os.PathLike):
        where = os.fspath(weights)
        weights, _ = load_tensors(weights)
    if isinstance(weights, Mapping):
        if biases is not None:
            raise ValueError("biases must be None when weights is a state dict or a file "
                             "(the biases are its '<prefix>.bias' tensors)")
        entries = [(f"{where}: {p}.weight", w, b) for p, w, b in _from_state_dict(weights,
                                                                                 where)]
    elif isinstance(weights, np.ndarray) and len(layers) == 1:
        entries = [("weights", weights, biases)]
    elif isinstance(weights, Sequence) and not isinstance(weights, np.ndarray):
        if biases is not None and (not isinstance(biases, Sequence)
                                   or len(biases) != len(weights)):
            raise ValueError(f"biases must be None or a list of {len(weights)} arrays (one "
                             "per weight matrix)")
        entries = [(f"weights[{i}]", w, None if biases is None else biases[i])
                   for i, w in enumerate(weights)]
    else:
        raise ValueError(f"weights = {type(weights).__name__} is invalid; allowed: an array "
                         "(for one layer), a list of arrays, a state dict, or a path to an "
                         ".npz/.safetensors file")
    if len(entries) != len(layers):
        raise ValueError(f"{where}: {len(entries)} weight matrices for {len(layers)} layers; "
                         "allowed: one per layer, in order")
    return layers, entries


def _checked(label: str, a: Any, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "iuf":
        raise ValueError(f"{label} is a {type(a).__name__}"
                         + (f" of {a.dtype}" if isinstance(a, np.ndarray) else "")
                         + "; allowed: a numeric numpy array")
    if a.shape != shape:
        raise ValueError(f"{label} has shape {a.shape}; allowed: {shape} (the layer's "
                         "(n_out, n_in) as in torch.nn.Linear.weight; bias (n_out,))")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{label} contains NaN or Inf; allowed: finite values")
    return a


def _mapping(w: np.ndarray, mapping: str, w_top: float) -> tuple[str, float, np.ndarray | None]:
    """``(mapping used, scale, col_scale)`` that put ``max|W|`` (per layer or per output)
    at ``w_top`` device units."""
    rows = np.max(np.abs(w), axis=1)
    peak = float(rows.max(initial=0.0))
    if peak == 0.0:
        return "layer", 1.0, None
    if mapping == "auto":
        mapping = "column" if float(rows.min()) < AUTO_COLUMN_BELOW * peak else "layer"
    scale = peak / w_top
    if mapping == "layer":
        return "layer", scale, None
    return "column", scale, np.where(rows > 0, rows / peak, 1.0)


def _program_layer(layer: Any, w: np.ndarray, b: np.ndarray | None, mapping: str,
                   headroom: float) -> LayerProgram:
    if isinstance(layer, DigitalLinear):
        layer.w[...] = w
        used, scale, cols = "digital", 1.0, None
    elif isinstance(layer, AnalogLinear):
        used, scale, cols = _mapping(w, mapping, layer.hw.device.w_max / headroom)
        div = scale * (cols[:, None] if cols is not None else 1.0)
        w_dev = np.clip(w / div, -layer.hw.device.w_max, layer.hw.device.w_max)  # rounding
        layer.reprogram(w_dev, scale, cols)
    else:
        raise TypeError(f"{getattr(layer, 'name', 'layer')}: {type(layer).__name__} is not "
                        "supported; allowed: AnalogLinear or DigitalLinear layers")
    if b is not None:
        if not layer.has_bias:
            raise ValueError(f"{layer.name}: a bias was given but the layer has none; "
                             "allowed: bias None")
        layer.b[...] = b
    diff = effective_weights(layer) - w
    norm = float(np.linalg.norm(w))
    err = float(np.linalg.norm(diff))
    rel = err / norm if norm > 0 else (0.0 if err == 0 else float("inf"))
    return LayerProgram(layer.name, used, float(scale), None if cols is None else
                        cols.astype(np.float32), rel, float(np.max(np.abs(diff), initial=0)))


# --------------------------------------------------------------------------- public


def program_weights(target: Any, weights: Any, biases: Any = None, *, mapping: str = "auto",
                    headroom: float = 1.0, warn_above: float = 0.1) -> list[LayerProgram]:
    """Map float weights into the device range and program them onto the layers.

    Parameters
    ----------
    target : Network or AnalogLinear or DigitalLinear
        Where the weights go (a network: one weight matrix per layer, in order).
    weights : ndarray, list of ndarray, mapping, str or PathLike
        ``(n_out, n_in)`` per layer (weight units, as ``torch.nn.Linear.weight``): one array
        for one layer, a list (one per layer), a state dict ``{"0.weight": …, "0.bias": …}``,
        or an ``.npz``/``.safetensors`` file holding one (module docstring: key order).
    biases : ndarray or list of ndarray, optional
        ``(n_out,)`` per layer; with a state dict or file, its ``.bias`` tensors are used and
        this must be None. A layer without a given bias keeps its bias.
    mapping : {"auto", "layer", "column"}
        One scale per layer or per output (module docstring).
    headroom : float
        The largest weight maps to ``w_max / headroom`` device units (1: the full range;
        > 1 leaves room for training after the import). In [1, 1000].
    warn_above : float
        Emit a :class:`ProgrammingErrorWarning` for a layer whose relative programming error
        exceeds this (>= 0; ``math.inf`` never warns).

    Returns
    -------
    list of LayerProgram
        Per layer: mapping, scale(s) and the relative programming error.

    Raises
    ------
    ValueError
        A malformed file, a wrong shape, a missing or extra key, an invalid option.
    """
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping = {mapping!r} is invalid; allowed: "
                         + ", ".join(map(repr, MAPPINGS)))
    if not (isinstance(headroom, int | float) and 1.0 <= headroom <= 1000.0):
        raise ValueError(f"headroom = {headroom!r} is invalid; allowed: a number in [1, 1000]")
    if not (isinstance(warn_above, int | float) and warn_above >= 0):
        raise ValueError(f"warn_above = {warn_above!r} is invalid; allowed: a number >= 0")
    layers, entries = _entries(target, weights, biases)
    checked = []
    for layer, (label, w, b) in zip(layers, entries, strict=True):  # all, before any write
        bias_label = label.replace(".weight", ".bias") if ".weight" in label else \
            f"bias of {label}"
        checked.append((layer, _checked(label, w, tuple(layer.shape)),
                        None if b is None else _checked(bias_label, b, (layer.n_out,))))
    out = []
    for layer, w, b in checked:
        rep = _program_layer(layer, w, b, mapping, float(headroom))
        if rep.rel_error > warn_above:
            hw = getattr(layer, "hw", None)
            tips = ("mapping='column', " if rep.mapping == "layer" else "") + (
                "headroom=1, " if headroom > 1 else "")
            warnings.warn(
                f"{layer.name}: the programmed weights are {rep.rel_error:.1%} off the "
                f"requested ones (relative error {rep.rel_error:.3f} > warn_above = "
                f"{warn_above:g}; hardware {getattr(hw, 'name', '?')!r}, programming noise "
                f"{getattr(getattr(hw, 'noise', None), 'prog_noise', 0):g}, mapping "
                f"{rep.mapping!r}); consider {tips}hardware with less programming noise, or "
                "training on the hardware after the import", ProgrammingErrorWarning,
                stacklevel=2)
        out.append(rep)
    return out


def export_weights(target: Any, path: str | os.PathLike[str], *, format: str | None = None
                   ) -> Path:
    """Write the effective weights and biases of a network (or one layer) to a file.

    Keys ``"<i>.weight"`` (float32 ``(n_out, n_in)``) and ``"<i>.bias"`` (``(n_out,)``) for
    layer ``i``, readable by :func:`program_weights` and by PyTorch's
    ``load_state_dict`` of a stack of ``Linear`` layers (``safetensors.numpy.load_file``).
    The metadata says that the weights are the simulator's non-physical view
    (:data:`NON_PHYSICAL`) and names the hardware, network and layer sizes.

    Parameters
    ----------
    target : Network or AnalogLinear or DigitalLinear
    path : str or PathLike
        ``.safetensors`` or ``.npz`` (or give ``format``); replaced atomically if it is a
        regular file, refused if it is anything else.
    format : {"safetensors", "npz"}, optional
    """
    layers = list(target.layers) if isinstance(target, Network) else [target]
    tensors: dict[str, np.ndarray] = {}
    for i, layer in enumerate(layers):
        tensors[f"{i}.weight"] = effective_weights(layer).astype(np.float32)
        if layer.has_bias:
            tensors[f"{i}.bias"] = layer.b.astype(np.float32)
    hw = getattr(target, "hw", None)
    cfg = getattr(target, "config", None)
    meta = {"producer": f"analogsim {__version__}", "weights": NON_PHYSICAL,
            "hardware": getattr(hw, "name", "") or "", "network": getattr(cfg, "name", "") or "",
            "sizes": ",".join(str(n) for n in [layers[0].n_in, *(la.n_out for la in layers)]),
            "layout": "torch.nn.Linear: <i>.weight is (n_out, n_in), <i>.bias is (n_out,)"}
    return save_tensors(path, tensors, meta, format=format)
