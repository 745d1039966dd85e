"""Property-based fuzzing of the public kernel functions (the numba entry points).

Every case is either rejected by the Python-side checks with ``ValueError``/``TypeError``
naming the argument, or runs and gives finite outputs (conductances stay in ``[0, 1]``).
Run once with ``NUMBA_BOUNDSCHECK=1`` to check indexing too (docs/robustness.md).
"""

from __future__ import annotations

import re

import hypothesis.extra.numpy as hnp
import numpy as np
from conftest import fuzz
from hypothesis import given
from hypothesis import strategies as st

from analogsim.kernels import (
    adc_read,
    dac_encode,
    pulse_update_expected,
    pulse_update_stochastic,
)

BITS = st.one_of(st.sampled_from([None, 2, 3, 8, 24]),
                 st.sampled_from([0, 1, 25, -3, 8.0, True, "8", np.int64(6)]))
REALS = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                  st.sampled_from([0.0, 1e-45, 1e-30, 1.0, 1e30, 3e38, -1.0]),
                  st.sampled_from([np.float32(2.0), np.int64(3), "1", None, True]))
WIDTH = st.integers(1, 9)


def _f32(shape):
    """float32 arrays of the shape, any values (NaN, Inf, subnormal, ±3.4e38 included)."""
    return hnp.arrays(np.float32, shape)


def _named(exc: Exception, *names: str) -> bool:
    return any(re.search(rf"\b{re.escape(n)}\b", str(exc)) for n in names)


def _ok_bits(b) -> bool:
    return b is None or (isinstance(b, (int, np.integer)) and not isinstance(b, bool)
                         and 2 <= b <= 24)


def _ok_real(v, *, positive: bool = False) -> bool:
    ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
    return ok and bool(np.isfinite(v)) and (v > 0 if positive else v >= 0)


@fuzz(200)
@given(data=st.data(), bits=BITS, input_range=REALS, maxabs=st.booleans())
def test_dac_encode(fuzz_cases, data, bits, input_range, maxabs) -> None:
    fuzz_cases.tick("kernels: dac_encode")
    b, n = data.draw(st.integers(1, 4)), data.draw(WIDTH)
    x = data.draw(_f32((b, n)))
    cut = data.draw(st.integers(0, n))
    starts = np.array(sorted({0, cut, n}), dtype=np.int64)
    f32 = np.finfo(np.float32)
    valid = _ok_bits(bits) and _ok_real(input_range, positive=True) \
        and float(f32.tiny) <= input_range <= float(f32.max) and bool(np.all(np.isfinite(x)))
    try:
        xq, scale, sq, n_clip = dac_encode(x, bits=bits, input_range=input_range,
                                           maxabs=maxabs, col_starts=starts)
    except (ValueError, TypeError) as exc:
        assert not valid and _named(exc, "x", "bits", "input_range"), str(exc)
        return
    assert valid, "accepted invalid arguments"
    assert np.all(np.abs(xq) <= 1) and np.all(np.isfinite(sq)) and np.all(sq >= 0)
    assert np.all(np.isfinite(scale)) and n_clip >= 0


@fuzz(200)
@given(data=st.data(), bits=BITS, read_std=REALS, out_std=REALS,
       bound=st.sampled_from([1e-30, 1e-6, 1.0, 1e6, 1e30, 0.0, -1.0, np.nan, np.inf]),
       counter=st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([-1, 2**64, 1.5])))
def test_adc_read(fuzz_cases, data, bits, read_std, out_std, bound, counter) -> None:
    fuzz_cases.tick("kernels: adc_read")
    b, n = data.draw(st.integers(1, 4)), data.draw(WIDTH)
    tile = data.draw(st.integers(1, n + 1))
    y = data.draw(st.one_of(_f32((b, n)), hnp.arrays(
        np.float32, (b, n), elements=st.floats(-1e6, 1e6, width=32))))
    scale = data.draw(hnp.arrays(np.float32, (b,), elements=st.floats(0, 1e6, width=32)))
    sq = data.draw(hnp.arrays(np.float32, (b,), elements=st.floats(0, 1e6, width=32)))
    bounds = np.full(-(-n // tile), bound, dtype=np.float32)
    out = np.zeros((b, n), dtype=np.float32)
    bounds_ok = bits is None or (np.isfinite(np.float32(bound)) and np.float32(bound) > 0)
    valid = (_ok_bits(bits) and _ok_real(read_std) and _ok_real(out_std) and bounds_ok
             and bool(np.all(np.isfinite(y))) and isinstance(counter, int)
             and 0 <= counter < 2**64)
    try:
        n_sat, rows = adc_read(y, out, sqnorm_block=sq, scale=scale, read_std=read_std,
                               out_std=out_std, bits=bits, bounds=bounds, row_tile=tile,
                               key=12345, counter=counter)
    except (ValueError, TypeError) as exc:
        assert not valid, str(exc)
        assert _named(exc, "y", "bits", "read_std", "out_std", "bounds", "counter"), str(exc)
        return
    assert valid, "accepted invalid arguments"
    assert rows.shape == (b,) and 0 <= n_sat <= b * n
    # Finite whenever the exact result fits in float32 (|y|, noise and scale are bounded here).
    if np.all(np.abs(y) <= 1e6) and read_std <= 1e6 and out_std <= 1e6:
        assert np.all(np.isfinite(out))


def _device(rng: np.random.Generator, shape):
    gp = rng.uniform(0, 1, shape).astype(np.float32)
    gm = rng.uniform(0, 1, shape).astype(np.float32)
    alpha = rng.uniform(0, 0.2, shape).astype(np.float32)
    frozen = (rng.random(shape) < 0.1).astype(np.uint8)
    return dict(gp=gp, gm=gm, alpha_up=alpha, alpha_down=alpha.copy(), frozen_p=frozen,
                frozen_m=frozen.copy())


def _in_range(dev) -> bool:
    return all(np.all((g >= 0) & (g <= 1)) for g in (dev["gp"], dev["gm"]))


@fuzz(200)
@given(data=st.data(), dw_min=REALS, ctoc=REALS, soft=st.booleans(),
       max_pulses=st.one_of(st.integers(1, 2**40), st.sampled_from([0, -1, 2**41, 3.0])))
def test_pulse_update_expected(fuzz_cases, data, dw_min, ctoc, soft, max_pulses) -> None:
    fuzz_cases.tick("kernels: pulse_update_expected")
    n_out, n_in = data.draw(WIDTH), data.draw(WIDTH)
    dev = _device(np.random.default_rng(data.draw(st.integers(0, 99))), (n_out, n_in))
    dw = data.draw(_f32((n_out, n_in)))
    valid = (_ok_real(dw_min, positive=True) and _ok_real(ctoc)
             and isinstance(max_pulses, int) and 1 <= max_pulses <= 2**40
             and bool(np.all(np.isfinite(dw))))
    try:
        n_pulses, n_clip = pulse_update_expected(
            dw=dw, dw_min=dw_min, soft=soft, ctoc=ctoc, max_pulses=max_pulses, key=7,
            counter=0, **dev)
    except (ValueError, TypeError) as exc:
        assert not valid and _named(exc, "dw", "dw_min", "ctoc", "max_pulses"), str(exc)
        assert _in_range(dev)  # a rejected cell is left unchanged, never corrupted
        return
    assert valid, "accepted invalid arguments"
    assert n_pulses >= 0 and 0 <= n_clip <= dw.size and _in_range(dev)


@fuzz(200)
@given(data=st.data(), lr=REALS, dw_min=REALS, bl=st.one_of(st.integers(1, 64),
                                                            st.sampled_from([0, 65, 2.0])),
       um=st.booleans(), soft=st.booleans())
def test_pulse_update_stochastic(fuzz_cases, data, lr, dw_min, bl, um, soft) -> None:
    fuzz_cases.tick("kernels: pulse_update_stochastic")
    n_out, n_in, b = data.draw(WIDTH), data.draw(WIDTH), data.draw(st.integers(1, 3))
    dev = _device(np.random.default_rng(data.draw(st.integers(0, 99))), (n_out, n_in))
    x, d = data.draw(_f32((b, n_in))), data.draw(_f32((b, n_out)))
    valid = (_ok_real(lr, positive=True) and _ok_real(dw_min, positive=True)
             and isinstance(bl, int) and 1 <= bl <= 64
             and bool(np.all(np.isfinite(x)) and np.all(np.isfinite(d))))
    try:
        n_pulses, n_clip = pulse_update_stochastic(
            x=x, d=d, lr=lr, bl=bl, dw_min=dw_min, update_management=um, soft=soft, ctoc=0.1,
            key=3, counter=1, **dev)
    except (ValueError, TypeError) as exc:
        assert not valid and _named(exc, "x", "d", "lr", "dw_min", "bl"), str(exc)
        assert _in_range(dev)
        return
    assert valid, "accepted invalid arguments"
    assert n_pulses >= 0 and n_clip >= 0 and _in_range(dev)


def test_single_sample_single_bit_trains_count_one_pulse() -> None:
    """Regression (found by the NUMBA_BOUNDSCHECK run of the fuzz cases): with batch·bl = 1
    the coincidence counters had one plane but two were written, so the UP count of a cell
    picked up the total count (three pulses instead of one here)."""
    shape = (1, 3)
    dev = dict(gp=np.full(shape, 0.5, np.float32), gm=np.full(shape, 0.5, np.float32),
               alpha_up=np.full(shape, 0.1, np.float32),
               alpha_down=np.full(shape, 0.1, np.float32),
               frozen_p=np.zeros(shape, np.uint8), frozen_m=np.zeros(shape, np.uint8))
    x = np.array([[1.0, -1.0, 0.0]], np.float32)  # fire surely (p = 1), twice, never
    n_pulses, _ = pulse_update_stochastic(x=x, d=np.ones((1, 1), np.float32), lr=1.0, bl=1,
                                          dw_min=1.0, update_management=False, soft=False,
                                          ctoc=0.0, key=1, counter=0, **dev)
    assert n_pulses == 2
    np.testing.assert_allclose(dev["gp"] - dev["gm"], [[-0.1, 0.1, 0.0]], atol=1e-6)
