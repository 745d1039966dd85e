"""Input checks of the array's public calls: the one input rule of the API.

* :func:`to_float32`: float32 passes; another real dtype is converted only when every value
  survives exactly; a float64 array that would round is a ``TypeError`` saying how many values
  would change (the simulator computes in float32 and never rounds a caller's numbers
  silently).
* :func:`check_batch`: a batch ``(B >= 1, width)`` under that rule, C-contiguous.
* :func:`as_rows`: a single vector ``(width,)`` as a batch of one (public reads return it 1-D).
"""

from __future__ import annotations

import numpy as np

__all__ = ["to_float32", "check_batch", "as_rows"]

#: Largest integer magnitude float32 holds exactly (its significand has 24 bits).
_F32_EXACT_INT = 1 << 24


def to_float32(name: str, x: object) -> np.ndarray:
    """``x`` as float32 if that changes no value, else ``TypeError`` (the one input rule).

    float32 passes through untouched. Another real dtype is converted when every value
    survives exactly: float16, integers of magnitude ≤ 2²⁴, float64 (or longer) arrays whose
    values are float32 numbers (e.g. ``x32.astype(np.float64)``). A float64
    array that would round is refused, with the number of values that would change: the
    simulator computes in float32 and never changes a caller's numbers silently.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of float32, got {type(x).__name__}")
    if x.dtype == np.float32:
        return x
    kind = x.dtype.kind
    if kind in "iu":
        peak = max(int(np.max(x, initial=0)), -int(np.min(x, initial=0)))  # Python ints
        if peak <= _F32_EXACT_INT:
            return x.astype(np.float32)
        why = f"integers up to {peak} (float32 holds integers exactly only up to 2**24)"
    elif kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            y = x.astype(np.float32)
            same = (y == x) | (np.isnan(x) & np.isnan(y))
        if same.all():
            return y
        bad = int(same.size - np.count_nonzero(same))
        why = f"{bad} of {x.size} values would round or overflow in float32"
    else:
        raise TypeError(f"{name}.dtype = {x.dtype} is not allowed; allowed: float32 (or a "
                        "real dtype whose values float32 holds exactly)")
    raise TypeError(f"{name}.dtype = {x.dtype} is not allowed here: {why}; allowed: float32 "
                    f"(convert explicitly with {name}.astype(np.float32); the simulator "
                    "computes in float32 and never rounds your numbers silently)")


def check_batch(name: str, x: object, width: int) -> np.ndarray:
    """Validate a batch of vectors: a float32 ndarray of shape ``(B ≥ 1, width)``.

    Another real dtype is converted only when no value changes (:func:`to_float32`).
    Returns a C-contiguous view/copy (layout and that conversion only; values are never
    changed). Finiteness is checked inside the kernels, on the pass that reads the data.
    """
    x = to_float32(name, x)
    if x.ndim != 2 or x.shape[1] != width or x.shape[0] < 1:
        raise ValueError(f"{name}.shape = {x.shape} is invalid; allowed: (batch >= 1, {width})")
    return np.ascontiguousarray(x)


def as_rows(name: str, x: object, width: int) -> tuple[object, bool]:
    """A 1-D ndarray of ``width`` values as a batch of one row, and whether it was 1-D (the
    result is then returned 1-D too); anything else unchanged, for :func:`check_batch`."""
    if not (isinstance(x, np.ndarray) and x.ndim == 1):
        return x, False
    if x.shape[0] != width:
        raise ValueError(f"{name}.shape = {x.shape} is invalid; allowed: ({width},) or "
                         f"(batch >= 1, {width})")
    return x[None, :], True
