"""Property-based fuzzing of the hardware layer: configs, array inputs, extremes, TOML.

Every case either works — finite outputs of the right shape, conductances in ``[0, 1]`` — or
raises ``ValueError``/``TypeError`` naming what is wrong; never a crash deep in a kernel, a
silent NaN or a hang. ``fuzz_cases`` (tests/conftest.py) counts the cases tried.
"""

from __future__ import annotations

import dataclasses
import math
import re

import hypothesis.extra.numpy as hnp
import numpy as np
from conftest import fuzz
from hypothesis import given
from hypothesis import strategies as st

from analogsim.hardware.array import CrossbarArray, make_array
from analogsim.hardware.config import HardwareConfig, replace_field
from analogsim.hardware.ledger import energy_pj, latency_ns
from analogsim.hardware.presets import PRESETS, get_preset
from analogsim.hardware.toml_io import dumps_hardware, loads_hardware
from analogsim.oracle import conductances

FIELDS = [(sec, f.name) for sec in HardwareConfig.SECTIONS
          for f in dataclasses.fields(getattr(HardwareConfig(), sec))]
WORDS = ["fixed", "maxabs", "calibrated", "soft", "hard", "expected", "stochastic", "none", ""]

#: Any value a user or a file might put in a field: right and wrong types, edge numbers.
ANY = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 2, 3, 24, 25, 64, 65, -1, 0.5, 1.0, 1e-300, 5e-324, 1e-40, 1e-8,
                     1e6, 1e12, 1e13, 1e300, math.nan, math.inf, -math.inf]),
    st.sampled_from(WORDS), st.text(max_size=4),
    st.floats(width=32).map(np.float32), st.integers(-4, 40).map(np.int64),
    st.lists(st.integers(-2, 2), max_size=2), st.just(np.array([1.0, 2.0])),
)
#: Values near the edges of the allowed ranges (bit widths, float32 limits, fractions).
EDGES = st.sampled_from([-1, 0, 1, 2, 3, 16, 24, 25, 64, 65, 1000, 1001, 1 << 16, 1 << 20,
                         (1 << 20) + 1, 0.0, -0.0, 1e-45, 1e-40, 1e-38, 1e-30, 1e-12, 0.999999,
                         1.0, 1.000001, 10.0, 10.5, 1e9, 3e38, 1e39, 1e12, 1e13])
VALUES = st.one_of(ANY, EDGES, EDGES)


def _exercise(hw: HardwareConfig, seed: int) -> None:
    """Program, read, update, drift and read again; everything finite and in range."""
    rng = np.random.default_rng(seed)
    n_out, n_in = int(rng.integers(1, 7)), int(rng.integers(1, 9))
    arr = make_array(n_in, n_out, hw, seed=seed)
    arr.program(rng.uniform(-0.9, 0.9, (n_out, n_in)) * hw.device.w_max)
    x = rng.standard_normal((3, n_in)).astype(np.float32)
    y = arr.mvm(x)
    assert y.shape == (3, n_out) and y.dtype == np.float32 and np.all(np.isfinite(y))
    d = rng.standard_normal((3, n_out)).astype(np.float32)
    arr.pulse_update(x, d, 0.1)
    arr.advance_clock(100.0)
    gp, gm = conductances(arr)
    assert np.all((gp >= 0) & (gp <= 1) & (gm >= 0) & (gm <= 1))
    assert np.all(np.isfinite(arr.mvm(x)))
    totals = arr.ledger.totals()
    assert math.isfinite(energy_pj(totals, hw.cost, hw.adc.bits))
    assert math.isfinite(latency_ns(totals, hw.cost))


@fuzz(200)
@given(base=st.sampled_from(list(PRESETS)),
       changes=st.lists(st.tuples(st.sampled_from(FIELDS), VALUES), min_size=1,
                       max_size=3),
       seed=st.integers(0, 2**16))
def test_config_fields_valid_or_named_error(fuzz_cases, base, changes, seed) -> None:
    fuzz_cases.tick("hardware: config fields")
    hw = get_preset(base)
    for (sec, name), value in changes:
        try:
            hw = replace_field(hw, f"{sec}.{name}", value)
        except (ValueError, TypeError) as exc:
            assert f"{sec}.{name}" in str(exc) or f"{sec}." in str(exc) and name in str(exc), \
                (sec, name, value, str(exc))
    _exercise(hw, seed)


def _batch(width: int):
    """Mostly well-shaped float32 batches (any values), sometimes anything at all."""
    good = st.integers(1, 4).flatmap(lambda b: hnp.arrays(np.float32, (b, width)))
    wild = hnp.arrays(dtype=st.sampled_from([np.float32, np.float64, np.float16, np.int32,
                                             np.bool_, np.complex64]),
                      shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6))
    other = st.one_of(st.none(), st.lists(st.floats(), max_size=3), st.text(max_size=2))
    return st.one_of(good, good, wild, other)


def _valid(x, width: int) -> bool:
    return (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 2
            and x.shape[0] >= 1 and x.shape[1] == width and bool(np.all(np.isfinite(x))))


ARRAYS = {name: make_array(5, 4, get_preset(name), seed=1) for name in PRESETS}


@fuzz(250)
@given(name=st.sampled_from(list(PRESETS)), x=_batch(5))
def test_mvm_inputs(fuzz_cases, name, x) -> None:
    fuzz_cases.tick("hardware: CrossbarArray.mvm")
    arr = ARRAYS[name]
    try:
        y = arr.mvm(x)
    except (ValueError, TypeError) as exc:
        assert "x" in str(exc), str(exc)
        # A valid batch fails only if its exact result is beyond float32.
        assert not _valid(x, 5) or "overflows float32" in str(exc), str(exc)
        return
    assert _valid(x, 5), "accepted an invalid batch"
    assert y.shape == (x.shape[0], 4) and np.all(np.isfinite(y))


LRS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(
    [0, 1, -1, 1e-30, 1e30, 1e38, 3e38, True, "0.1", None]), st.floats(width=32).map(np.float32))


@fuzz(250)
@given(name=st.sampled_from(list(PRESETS)), x=_batch(5), d=_batch(4), lr=LRS,
       mode=st.sampled_from(["expected", "stochastic"]))
def test_pulse_update_inputs(fuzz_cases, name, x, d, lr, mode) -> None:
    fuzz_cases.tick("hardware: CrossbarArray.pulse_update")
    arr = make_array(5, 4, replace_field(get_preset(name), "update.mode", mode), seed=2)
    ok_lr = isinstance(lr, (int, float, np.floating)) and not isinstance(lr, bool) \
        and math.isfinite(lr) and lr > 0
    valid = _valid(x, 5) and _valid(d, 4) and x.shape[0] == d.shape[0] and ok_lr
    try:
        arr.pulse_update(x, d, lr)
    except (ValueError, TypeError) as exc:
        assert not valid, str(exc)
        assert re.search(r"\b(x|d|lr)\b", str(exc)), str(exc)
        return
    assert valid, "accepted invalid update arguments"
    gp, gm = conductances(arr)
    assert np.all((gp >= 0) & (gp <= 1) & (gm >= 0) & (gm <= 1))
    assert np.all(np.isfinite(arr.mvm(np.ones((1, 5), np.float32))))


@fuzz(150)
@given(name=st.sampled_from(list(PRESETS)), w=st.one_of(
    hnp.arrays(st.sampled_from([np.float32, np.float64]), (4, 5)),
    hnp.arrays(st.sampled_from([np.float64, np.int64, np.float16]),
               hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)),
    st.none(), st.lists(st.floats(), max_size=3)))
def test_program_inputs(fuzz_cases, name, w) -> None:
    fuzz_cases.tick("hardware: CrossbarArray.program")
    hw = get_preset(name)
    arr = CrossbarArray(5, 4, hw, seed=3)
    valid = (isinstance(w, np.ndarray) and w.dtype.kind == "f" and w.shape == (4, 5)
             and bool(np.all(np.isfinite(w))) and float(np.max(np.abs(w))) <= hw.device.w_max)
    try:
        arr.program(w)
    except (ValueError, TypeError) as exc:
        assert not valid and "w" in str(exc), str(exc)
        return
    assert valid
    assert np.all(np.isfinite(arr.mvm(np.ones((2, 5), np.float32))))


def _scaled(rng: np.random.Generator, magnitude: float, shape) -> np.ndarray:
    """Normal draws times ``magnitude`` as float32 (kept inside the float32 range)."""
    return np.clip(magnitude * rng.standard_normal(shape), -3e38, 3e38).astype(np.float32)


@fuzz(150)
@given(dac_bits=st.sampled_from([None, 2, 3, 8, 24]), adc_bits=st.sampled_from([None, 2, 3, 24]),
       read_noise=st.sampled_from([0.0, 1e-6, 0.1, 10.0]),
       out_noise=st.sampled_from([0.0, 1e-6, 0.1, 10.0]),
       out_bound=st.sampled_from([1e-12, 1e-6, 1.0, 12.0, 1e6, 1e12]),
       input_range=st.sampled_from([1e-12, 1e-3, 1.0, 1e6, 1e12]),
       w_max=st.sampled_from([1e-6, 1.0, 1e6]), scaling=st.sampled_from(["fixed", "maxabs"]),
       manage=st.booleans(), magnitude=st.sampled_from([0.0, 1e-30, 1e-6, 1.0, 1e6, 1e30, 1e38]),
       seed=st.integers(0, 2**16))
def test_extreme_bits_and_noise_stay_finite(fuzz_cases, dac_bits, adc_bits, read_noise,
                                            out_noise, out_bound, input_range, w_max, scaling,
                                            manage, magnitude, seed) -> None:
    fuzz_cases.tick("hardware: extreme bits/noise")
    hw = get_preset("ideal")
    for key, value in (("adc.out_bound", 12.0), ("adc.bits", adc_bits),
                       ("adc.out_bound", out_bound), ("dac.bits", dac_bits),
                       ("dac.input_range", input_range), ("dac.scaling", scaling),
                       ("noise.read_noise", read_noise), ("noise.out_noise", out_noise),
                       ("adc.manage_range", manage)):
        hw = replace_field(hw, key, value)
    hw = dataclasses.replace(hw, device=dataclasses.replace(hw.device, w_max=w_max,
                                                            dw_min=w_max * 1e-3))
    arr = make_array(7, 6, hw, seed=seed)
    rng = np.random.default_rng(seed)
    arr.program(rng.uniform(-w_max, w_max, (6, 7)))
    x = _scaled(rng, magnitude, (5, 7))
    y = _read_or_refuse(arr, x, magnitude)
    if y is None:
        return
    assert np.all(np.isfinite(y)), (hw, magnitude)
    arr.pulse_update(x, _scaled(rng, magnitude, (5, 6)) + np.float32(1), 1.0)
    gp, gm = conductances(arr)
    assert np.all((gp >= 0) & (gp <= 1) & (gm >= 0) & (gm <= 1))
    # The update changed the weights: a read that fitted float32 before may now overflow,
    # which must again be the clear refusal, never inf or NaN.
    y = _read_or_refuse(arr, x, magnitude)
    assert y is None or np.all(np.isfinite(y))


def _read_or_refuse(arr, x, magnitude):
    """``arr.mvm(x)``, or None where it refused an overflowing read (only for huge inputs)."""
    try:
        return arr.mvm(x)
    except ValueError as exc:
        assert magnitude > 1e30 and "overflows float32" in str(exc), str(exc)
        return None


_VALID_TOML = dumps_hardware(get_preset("rram"))


def _mutate(data) -> str:
    text = _VALID_TOML
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 8)))
        text = text[:i] + data.draw(st.text(alphabet='[]="=.#\n 0123456789abc-_ne+', max_size=6)
                                    ) + text[j:]
    return text


_LITERALS = ["1", "-1", "0", "2", "25", "1.5", "nan", "inf", "-inf", "1e400", "true", '"soft"',
             '"none"', '"x"', "[1, 2]", "{a = 1}", "1979-05-27", "0x10", '""', "1e-300"]


@fuzz(300)
@given(data=st.data())
def test_malformed_toml(fuzz_cases, data) -> None:
    fuzz_cases.tick("hardware: TOML")
    kind = data.draw(st.sampled_from(["mutate", "line", "text"]))
    key = None
    if kind == "mutate":
        text = _mutate(data)
    elif kind == "line":
        sec, key = data.draw(st.sampled_from(FIELDS + [("adc", "nope"), ("bogus", "bits")]))
        value = data.draw(st.one_of(st.sampled_from(_LITERALS), st.integers().map(str)))
        base = data.draw(st.sampled_from(["", 'base = "ideal"\n', 'base = "pcm"\n',
                                          'base = "nope"\n', "base = 3\n"]))
        text = f"{base}[{sec}]\n{key} = {value}\n"
    else:
        text = data.draw(st.text(max_size=40))
    try:
        hw = loads_hardware(text, source="fuzz.toml")
    except ValueError as exc:
        msg = str(exc)
        assert msg.startswith("fuzz.toml: "), msg
        if kind == "line" and "malformed TOML" not in msg and "preset" not in msg \
                and "base" not in msg:
            assert key in msg, msg  # a bad value or key names the key
        return
    assert isinstance(hw, HardwareConfig)
    assert loads_hardware(dumps_hardware(hw)) == hw
