"""Branch-free ``exp`` and ``log`` for the device workers' inner loops.

Why not libm: the soft-bounds response with cycle-to-cycle noise needs ``(1 - α)^n_eff`` for a
real ``n_eff`` in every pulsed device, two per cell and direction. libm's ``pow`` costs
~15 ns a call on the project's machine and keeps the loop scalar; these polynomial versions
are plain arithmetic (selects, no calls, no tables), so LLVM inlines and vectorises them
with the rest of the row. They are written for their arguments here, not in general:

* :func:`exp_nonpos` — ``exp(x)`` for ``x ≤ 0``: ``x = k ln2 + r``, ``|r| ≤ ln2/2``
  (Cody–Waite split of ln 2, fdlibm's ``ln2_hi``/``ln2_lo``), Taylor polynomial of degree
  13 in ``r`` (truncation < 4e-18), scaled by ``2^k`` built from its bits. Below -708 the
  result is 0 (libm returns subnormals there, which are 0 as float32 conductances anyway).
* :func:`log_unit` — ``log(y)`` for ``0 ≤ y ≤ 1`` normal or 0: ``y = 2^e m``,
  ``m ∈ [√½, √2)``, ``log m = 2 atanh(s)``, ``s = (m - 1)/(m + 1)``, series to ``s^23``
  (truncation < 1e-17). ``y = 0`` gives ``-1023 ln 2`` instead of ``-inf``: every use
  multiplies it by a pulse count ≥ 1 or by 0 (:func:`pow_from_log`), and
  ``exp(-709·n) = 0`` like ``0^n``.
* :func:`pow_from_log` — ``y^e = exp(e log y)`` from ``log_unit(y)`` (taken once per step
  size and shared by the cell's two devices), ``e ≥ 0``; ``e = 0`` gives exactly 1 (also
  for ``y`` NaN: a refused cell's factor is never used otherwise).

Both are within a few ulp of libm (``tests/kernels/test_elementary.py`` checks ≤ 4 ulp on
dense grids); the NumPy twin there repeats the operations in the same order, which makes it
bit-identical (no ``fastmath``, so no contraction into FMAs). Callers compile with
``error_model="numpy"``: under numba's default (Python) model the division in
:func:`log_unit` carries a zero check that keeps the loop from vectorising (``m + 1 ≥ 1.7``
is never 0).
"""

from __future__ import annotations

import numpy as np

from ._numba import jit
from .rng import bits_to_f64, f64_to_bits

__all__ = ["EXP_COEF", "LOG_COEF", "exp_nonpos", "log_unit", "pow_from_log"]

LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01  # 0x3FE62E42FEE00000: k·LN2_HI is exact for |k| < 2^11
LN2_LO = 1.90821492927058770002e-10
SQRT2 = 1.4142135623730951
EXP_FLOOR = -708.0
_MANT = np.uint64(0x000FFFFFFFFFFFFF)
_ONE = np.uint64(0x3FF0000000000000)
_BIAS = np.int64(1023)
_S52 = np.uint64(52)

# Horner coefficients, highest power first: 1/k! for k = 13..0 and 1/(2k + 1) for k = 11..0.
EXP_COEF = tuple(1.0 / float(np.prod(np.arange(1, k + 1, dtype=np.float64)))
                 for k in range(13, -1, -1))
LOG_COEF = tuple(1.0 / (2 * k + 1) for k in range(11, -1, -1))
(_E13, _E12, _E11, _E10, _E9, _E8, _E7, _E6, _E5, _E4, _E3, _E2, _E1, _E0) = EXP_COEF
(_L11, _L10, _L9, _L8, _L7, _L6, _L5, _L4, _L3, _L2, _L1, _L0) = LOG_COEF


@jit(inline="always")
def exp_nonpos(x):
    """``exp(x)`` for ``x ≤ 0`` (float64; 0 below -708)."""
    t = x if x > EXP_FLOOR else EXP_FLOOR
    k = np.floor(t * LOG2E + 0.5)
    r = (t - k * LN2_HI) - k * LN2_LO
    # Horner, written out: numba compiles a loop over a tuple as indexed loads.
    p = ((((((_E13 * r + _E12) * r + _E11) * r + _E10) * r + _E9) * r + _E8) * r + _E7) * r
    p = ((((((p + _E6) * r + _E5) * r + _E4) * r + _E3) * r + _E2) * r + _E1) * r + _E0
    scale = bits_to_f64(np.uint64(np.int64(k) + _BIAS) << _S52)
    return p * scale if x > EXP_FLOOR else 0.0


@jit(inline="always")
def log_unit(y):
    """``log(y)`` for ``y`` in ``[0, 1]`` (float64; ``-1023 ln 2`` at 0)."""
    b = f64_to_bits(y)
    e = np.int64(b >> _S52) - _BIAS
    m = bits_to_f64((b & _MANT) | _ONE)
    big = m > SQRT2
    m = 0.5 * m if big else m
    e = e + 1 if big else e
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    q = (((((_L11 * s2 + _L10) * s2 + _L9) * s2 + _L8) * s2 + _L7) * s2 + _L6) * s2
    q = (((((q + _L5) * s2 + _L4) * s2 + _L3) * s2 + _L2) * s2 + _L1) * s2 + _L0
    ef = np.float64(e)
    return ef * LN2_HI + (2.0 * s * q + ef * LN2_LO)


@jit(inline="always")
def pow_from_log(lg, e):
    """``y**e`` from ``lg = log_unit(y)``, ``y`` in ``[0, 1]``, ``e ≥ 0``; exactly 1 at
    ``e = 0``."""
    x = e * lg
    return exp_nonpos(x if e > 0.0 else 0.0)  # a select, not a branch: exp(0) is exactly 1
