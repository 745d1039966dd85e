"""The device workers' exp and log (kernels/elementary.py): NumPy twins, bit for bit, and
accuracy against libm."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analogsim.kernels import elementary as el
from analogsim.kernels._numba import jit

LN2_HI, LN2_LO, LOG2E = el.LN2_HI, el.LN2_LO, el.LOG2E


# --------------------------------------------------------------------------- twins


def horner(coef: tuple[float, ...], t: np.ndarray) -> np.ndarray:
    p = np.full_like(t, coef[0])
    for c in coef[1:]:
        p = p * t + c
    return p


def exp_nonpos_twin(x: np.ndarray) -> np.ndarray:
    """``2^k · P(r)``, ``k = ⌊x log2 e + ½⌋``, ``r = (x - k ln2_hi) - k ln2_lo``; 0 below -708."""
    x = np.asarray(x, dtype=np.float64)
    t = np.where(x > el.EXP_FLOOR, x, el.EXP_FLOOR)
    k = np.floor(t * LOG2E + 0.5)
    r = (t - k * LN2_HI) - k * LN2_LO
    return np.where(x > el.EXP_FLOOR, horner(el.EXP_COEF, r) * np.ldexp(1.0, k.astype(int)),
                    0.0)


def log_unit_twin(y: np.ndarray) -> np.ndarray:
    """``e ln2 + 2s Q(s²)``, ``y = 2^e m``, ``m ∈ [√½, √2)``, ``s = (m - 1)/(m + 1)``."""
    y = np.asarray(y, dtype=np.float64)
    b = y.view(np.uint64)
    e = (b >> np.uint64(52)).astype(np.int64) - 1023
    m = ((b & np.uint64(0x000FFFFFFFFFFFFF)) | np.uint64(0x3FF0000000000000)).view(np.float64)
    big = m > el.SQRT2
    m = np.where(big, 0.5 * m, m)
    ef = (e + big).astype(np.float64)
    s = (m - 1.0) / (m + 1.0)
    return ef * LN2_HI + (2.0 * s * horner(el.LOG_COEF, s * s) + ef * LN2_LO)


def unit_pow_twin(y: np.ndarray, e: np.ndarray) -> np.ndarray:
    """``y**e = exp(e log y)``, exactly 1 where ``e = 0``."""
    with np.errstate(invalid="ignore"):
        x = e * log_unit_twin(y)
    return exp_nonpos_twin(np.where(e > 0.0, x, 0.0))


# --------------------------------------------------------------------------- kernels


@jit(cache=False, error_model="numpy")
def _exp(x, out):
    for i in range(x.size):
        out[i] = el.exp_nonpos(x[i])


@jit(cache=False, error_model="numpy")
def _log(y, out):
    for i in range(y.size):
        out[i] = el.log_unit(y[i])


@jit(cache=False, error_model="numpy")
def _pow(y, e, out):
    for i in range(y.size):
        out[i] = el.pow_from_log(el.log_unit(y[i]), e[i])


def _run(kernel, *args: np.ndarray) -> np.ndarray:
    out = np.empty_like(args[0])
    kernel(*args, out)
    return out


def _ulps(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got - want) / np.spacing(np.abs(want))))


@pytest.fixture(scope="module")
def exponents() -> np.ndarray:
    rng = np.random.default_rng(4)
    return -np.concatenate([rng.uniform(0, 1, 20_000), rng.uniform(0, 708, 20_000),
                            rng.uniform(0, 1e-9, 1000), [0.0, 0.5 * math.log(2), 707.9]])


@pytest.fixture(scope="module")
def bases() -> np.ndarray:
    """``1 - α`` for float32 steps α: everything the device workers pass."""
    rng = np.random.default_rng(5)
    alpha = np.concatenate([rng.uniform(0, 1, 20_000), rng.uniform(0, 1e-3, 20_000),
                            [0.0, 2.0**-24, 0.5, 1.0 - 2.0**-24]]).astype(np.float32)
    return 1.0 - alpha.astype(np.float64)


def test_exp_matches_libm_within_an_ulp_and_its_twin_exactly(exponents) -> None:
    got = _run(_exp, exponents)
    assert _ulps(got, np.array([math.exp(v) for v in exponents])) <= 1.0
    np.testing.assert_array_equal(got, exp_nonpos_twin(exponents))
    assert _run(_exp, np.array([0.0, -0.0]))[0] == 1.0


def test_exp_below_the_floor_is_zero() -> None:
    np.testing.assert_array_equal(_run(_exp, np.array([-708.5, -1e4, -np.inf])), 0.0)


def test_log_matches_libm_within_four_ulp_and_its_twin_exactly(bases) -> None:
    got = _run(_log, bases)
    nonzero = bases < 1.0
    assert _ulps(got[nonzero], np.log(bases[nonzero])) <= 4.0
    np.testing.assert_array_equal(got, log_unit_twin(bases))
    assert _run(_log, np.array([1.0]))[0] == 0.0


def test_log_of_zero_is_minus_1023_ln2() -> None:
    """α = 1: any pulse count ≥ 1 then gives exp(-709 n) = 0, as 0**n does."""
    assert _run(_log, np.array([0.0]))[0] == pytest.approx(-1023 * math.log(2), rel=1e-15)
    assert _run(_pow, np.array([0.0, 0.0]), np.array([1.0, 0.0])).tolist() == [0.0, 1.0]


def test_pow_from_log_is_libm_pow_to_float32_and_its_twin_exactly(bases) -> None:
    e = np.random.default_rng(6).uniform(0, 60, bases.size)
    e[:100] = 0.0
    got = _run(_pow, bases, e)
    want = np.array([math.pow(b, x) for b, x in zip(bases, e, strict=True)])
    # exp(e log y) carries log y's rounding times |e log y| (up to ~700): ~1e-13 relative
    np.testing.assert_allclose(got, want, rtol=2e-13, atol=1e-300)
    assert np.mean(got.astype(np.float32) == want.astype(np.float32)) > 0.9999
    np.testing.assert_array_equal(got, unit_pow_twin(bases, e))
    np.testing.assert_array_equal(got[:100], 1.0)


def test_zero_exponent_gives_one_even_for_a_nan_base() -> None:
    """A refused cell (bad α, no pulse) passes a NaN base with ``e = 0``: the factor is 1."""
    assert _run(_pow, np.array([np.nan]), np.array([0.0]))[0] == 1.0
