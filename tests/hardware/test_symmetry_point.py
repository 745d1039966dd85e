"""Per-cell asymmetry spread (``device.up_down_dtod``) and the oracle's symmetry point."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from analogsim import oracle
from analogsim.hardware.array import make_array
from analogsim.hardware.config import HardwareConfig
from analogsim.hardware.presets import get_preset

IDEAL = get_preset("ideal")


def soft(**device: object) -> HardwareConfig:
    """Noise-free soft-bounds device (w_max = 1) with the given device overrides."""
    kw = {"w_max": 1.0, "dw_min": 0.01, "bounds": "soft", **device}
    dev = dataclasses.replace(IDEAL.device, **kw)
    return dataclasses.replace(IDEAL, device=dev)


def test_zero_spread_keeps_todays_draws_and_steps() -> None:
    """The default draws nothing extra; a spread leaves every earlier draw unchanged."""
    base = soft(up_down=0.2, dtod=0.3, stuck_on=0.1, stuck_off=0.1, drift_nu=0.05,
                drift_nu_std=0.02)
    a0 = make_array(9, 12, base, seed=3)
    a1 = make_array(9, 12, dataclasses.replace(
        base, device=dataclasses.replace(base.device, up_down_dtod=0.1)), seed=3)
    for g0, g1 in zip(oracle.conductances(a0), oracle.conductances(a1), strict=True):
        np.testing.assert_array_equal(g0, g1)  # stuck draws come before the spread
    v0, v1 = oracle.device_variation(a0), oracle.device_variation(a1)
    assert not np.array_equal(v0["alpha_up"], v1["alpha_up"])
    # Without the spread the steps are today's formula: α(1 ± u) times the log-normal
    # factors, whose ratio is the same in both arrays (the same earlier draws).
    f0 = v0["alpha_up"].astype(np.float64) / (0.01 * 1.2)
    f1 = v1["alpha_up"].astype(np.float64) / v1["alpha_down"] * v0["alpha_down"] / 0.01 / 0.8
    assert np.all(np.isfinite(f0)) and np.all(np.isfinite(f1))


def test_symmetry_point_closed_form_without_spread() -> None:
    a = make_array(5, 6, soft(up_down=0.3), seed=1)
    np.testing.assert_allclose(oracle.symmetry_point(a), 0.3, rtol=0, atol=1e-6)
    a = make_array(5, 6, soft(up_down=-0.2, w_max=2.0, dw_min=0.02), seed=1)
    np.testing.assert_allclose(oracle.symmetry_point(a), -0.4, rtol=0, atol=2e-6)


def test_spread_gives_each_cell_its_own_symmetry_point() -> None:
    a = make_array(100, 200, soft(up_down=0.1, up_down_dtod=0.05), seed=7)
    w = oracle.symmetry_point(a)
    assert w.dtype == np.float64 and w.shape == (200, 100)
    # Without dtod w*_ij = w_max u_ij, u_ij ~ N(0.1, 0.05²) (the clip at ±1 is 18σ away).
    assert abs(w.mean() - 0.1) < 0.002
    assert abs(w.std() - 0.05) < 0.002
    steps = oracle.device_variation(a)
    u = (steps["alpha_up"].astype(np.float64) - steps["alpha_down"]) / (2 * 0.01)
    np.testing.assert_allclose(w, u, rtol=0, atol=1e-5)


def test_spread_is_clipped_so_steps_stay_non_negative() -> None:
    a = make_array(50, 50, soft(up_down=0.5, up_down_dtod=2.0), seed=2)
    steps = oracle.device_variation(a)
    assert steps["alpha_up"].min() >= 0.0 and steps["alpha_down"].min() >= 0.0
    w = oracle.symmetry_point(a)
    assert np.all(np.abs(w) <= 1.0)
    assert np.any(w == 1.0) and np.any(w == -1.0)  # cells whose u was clipped at ±1


@pytest.mark.parametrize("dtod", [0.0, 0.2])
def test_random_pulses_settle_at_the_symmetry_point(dtod: float) -> None:
    """A long sequence of random UP/DOWN pulses leaves each weight fluctuating around w*."""
    hw = soft(dw_min=0.02, up_down=0.1, up_down_dtod=0.2, dtod=dtod)
    a = make_array(8, 8, hw, seed=11)
    a.program(np.full((8, 8), -0.8))  # start far from w*
    rng = np.random.default_rng(5)
    n_steps, acc = 4000, np.zeros((8, 8))
    for t in range(n_steps):
        a.pulse_cells(rng.choice(np.array([-1, 1]), size=(8, 8)))
        if t >= n_steps // 2:
            acc += oracle.weights(a)
    w_star = oracle.symmetry_point(a)
    assert np.std(w_star) > 0.05  # the cells really differ
    # Fluctuation about w*: std ≈ √(α/2)·w_max ≈ 0.1 per sample, correlated over ~1/α = 100
    # pulses: the mean of 2000 samples is within ≈ 0.03 of w*.
    np.testing.assert_allclose(acc / (n_steps - n_steps // 2), w_star, rtol=0, atol=0.08)


def test_symmetry_point_hard_bounds_and_stuck_devices() -> None:
    hard = soft(bounds="hard", up_down=0.2)
    np.testing.assert_array_equal(oracle.symmetry_point(make_array(4, 3, hard, seed=0)), 1.0)
    sym = soft(bounds="hard")
    assert np.all(np.isnan(oracle.symmetry_point(make_array(4, 3, sym, seed=0))))
    stuck = make_array(40, 40, soft(up_down=0.0, stuck_on=0.3), seed=4)
    w = oracle.symmetry_point(stuck)
    plus, minus = oracle.stuck_mask(stuck, "plus"), oracle.stuck_mask(stuck, "minus")
    gp = np.where(plus, 1.0, 0.5)
    gm = np.where(minus, 1.0, 0.5)
    np.testing.assert_allclose(w, gp - gm, rtol=0, atol=1e-6)


def test_symmetry_point_is_pure() -> None:
    a = make_array(4, 4, soft(up_down=0.1, up_down_dtod=0.1), seed=0)
    before = oracle.conductances(a), oracle.device_variation(a)
    s1 = oracle.symmetry_point(a)
    s1[:] = 0.0
    np.testing.assert_array_equal(oracle.conductances(a)[0], before[0][0])
    assert not np.array_equal(oracle.symmetry_point(a), s1)
    with pytest.raises(TypeError):
        oracle.symmetry_point(np.zeros((2, 2)))  # type: ignore[arg-type]


@pytest.mark.parametrize("gamma", [0.6, 2.5])
def test_power_step_random_pulses_settle_at_the_symmetry_point(gamma: float) -> None:
    """``step_model = "pow"``: the closed-form w* of the power step, checked by simulation."""
    hw = soft(dw_min=0.04, up_down=0.3, up_down_dtod=0.2, step_model="pow", pow_gamma=gamma)
    a = make_array(6, 6, hw, seed=3)
    rng = np.random.default_rng(8)
    n_steps, acc = 4000, np.zeros((6, 6))
    for t in range(n_steps):
        a.pulse_cells(rng.choice(np.array([-1, 1]), size=(6, 6)))
        if t >= n_steps // 2:
            acc += oracle.weights(a)
    w_star = oracle.symmetry_point(a)
    # The power law moves w* away from the soft-bounds value w_max (α_up−α_down)/(α_up+α_down).
    steps = oracle.device_variation(a)
    au, ad = (steps[k].astype(np.float64) for k in ("alpha_up", "alpha_down"))
    assert np.max(np.abs(w_star - (au - ad) / (au + ad))) > 0.05
    np.testing.assert_allclose(acc / (n_steps - n_steps // 2), w_star, rtol=0, atol=0.1)


def test_power_step_model_is_declared_and_checked() -> None:
    with pytest.raises(ValueError, match=r"device\.bounds = 'hard' is invalid"):
        soft(bounds="hard", step_model="pow")
    with pytest.raises(ValueError, match=r"device\.pow_gamma = 0\.0 is invalid"):
        soft(step_model="pow", pow_gamma=0.0)
    with pytest.raises(ValueError, match=r"device\.up_down_dtod = -0\.1 is invalid"):
        soft(up_down_dtod=-0.1)
    assert soft().device.kernel_pow_gamma == 0.0  # default: today's response
    assert soft(pow_gamma=2.0).device.kernel_pow_gamma == 0.0  # pow_gamma alone: unused
    assert soft(step_model="pow", pow_gamma=2.0).device.kernel_pow_gamma == 2.0


def test_power_step_gamma_one_follows_soft_bounds_through_the_array() -> None:
    base = soft(dw_min=0.02, up_down=0.2, dtod=0.3)
    pw = soft(dw_min=0.02, up_down=0.2, dtod=0.3, step_model="pow", pow_gamma=1.0)
    counts = np.random.default_rng(1).integers(-30, 31, (5, 7))
    out = []
    for hw in (base, pw):
        a = make_array(7, 5, hw, seed=2)
        a.pulse_cells(counts)
        a.pulse_update(np.ones((2, 7), np.float32), np.ones((2, 5), np.float32), 0.01)
        out.append((oracle.weights(a), oracle.symmetry_point(a)))
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(out[0][1], out[1][1], rtol=0, atol=1e-12)
