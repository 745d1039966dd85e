"""Transpose strategies: what each returns and what it charges."""

import numpy as np
import pytest

from analogsim import oracle
from analogsim.hardware.array import make_array
from analogsim.hardware.config import replace_field
from analogsim.hardware.presets import get_preset
from analogsim.hardware.transpose import make_transpose

IDEAL = get_preset("ideal")


def _setup(kind, hw=IDEAL, refresh=1, shape=(5, 7), seed=0):
    arr = make_array(*shape[::-1], hw, seed=seed)  # shape is (n_out, n_in)
    tr = make_transpose(kind, arr, seed=seed + 1, refresh=refresh)
    rng = np.random.default_rng(seed)
    w = rng.uniform(-0.3, 0.3, shape) * hw.device.w_max
    arr.program(w.astype(np.float32))
    d = rng.standard_normal((3, shape[0])).astype(np.float32)
    return arr, tr, d, rng


@pytest.mark.parametrize("kind", ["probe", "shadow", "twin", "bidirectional"])
def test_ideal_strategies_give_transposed_product(kind):
    arr, tr, d, _ = _setup(kind)
    np.testing.assert_allclose(tr.matvec_t(d), d @ oracle.weights(arr), rtol=1e-5, atol=1e-5)


def test_probe_is_stale_between_refreshes():
    arr, tr, d, rng = _setup("probe", refresh=2)
    before = tr.matvec_t(d)
    x = rng.standard_normal((4, 7)).astype(np.float32)
    e = rng.standard_normal((4, 5)).astype(np.float32)
    arr.pulse_update(x, e, 0.05)
    np.testing.assert_array_equal(tr.matvec_t(d), before)  # one update: still stale
    arr.pulse_update(x, e, 0.05)
    after = tr.matvec_t(d)
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, d @ oracle.weights(arr), rtol=1e-5, atol=1e-5)
    assert tr.n_refreshes == 2


def test_probe_sees_read_noise_and_quantisation():
    hw = get_preset("aihwkit_default")
    arr, tr, d, _ = _setup("probe", hw=hw)
    exact = d @ oracle.weights(arr)
    got = tr.matvec_t(d)
    assert not np.array_equal(got, exact)
    # The held readout R ≈ Wᵀ carries one output-noise draw and one ADC rounding per entry:
    # std ≈ sqrt(out_noise² + LSB²/12) with LSB = out_bound / (2**(bits-1) - 1) (one-hot
    # probes of full-scale amplitude 1, so no rescaling).
    err = tr._readout - oracle.weights(arr).T
    lsb = hw.adc.out_bound / (2 ** (hw.adc.bits - 1) - 1)
    expected = np.hypot(hw.noise.out_noise, lsb / np.sqrt(12))
    assert 0.6 * expected < err.std() < 1.4 * expected
    assert abs(err.mean()) < 3 * expected / np.sqrt(err.size)


def test_shadow_mirrors_intended_weights_and_diverges_from_devices():
    hw = get_preset("pcm")
    arr, tr, _, rng = _setup("shadow", hw=hw, shape=(16, 16))
    w_int = tr.weights.copy()
    x = rng.standard_normal((8, 16)).astype(np.float32)
    e = rng.standard_normal((8, 16)).astype(np.float32)
    arr.pulse_update(x, e, 0.01)
    np.testing.assert_allclose(tr.weights, w_int - 0.01 * e.T @ x, rtol=1e-5, atol=1e-6)
    div0 = oracle.shadow_divergence(arr, tr.weights)["rel_fro"]
    assert div0 > 0.0  # programming noise, levels, pulse stochasticity
    arr.advance_clock(1e5)
    assert oracle.shadow_divergence(arr, tr.weights)["rel_fro"] > div0  # drift


def test_twin_receives_updates_with_its_own_devices():
    hw = get_preset("aihwkit_default")
    arr, tr, d, rng = _setup("twin", hw=hw, shape=(8, 6))
    x = rng.standard_normal((4, 6)).astype(np.float32)
    e = rng.standard_normal((4, 8)).astype(np.float32)
    # lr small enough that no cell reaches its bound (|w| <= 0.6): there the two copies
    # would agree by saturation, not by tracking.
    for _ in range(5):
        arr.pulse_update(x, e, 0.01)
    w, wt = oracle.weights(arr), oracle.weights(tr.twin)
    assert np.abs(w).max() < hw.device.w_max
    assert wt.shape == (6, 8)
    assert np.corrcoef(w.ravel(), wt.T.ravel())[0, 1] > 0.9
    assert not np.allclose(w, wt.T)  # device-to-device variation and pulse noise differ
    assert tr.ledger.totals()["write_pulses"] > 0


def test_bidirectional_only_on_bidirectional_hardware():
    hw = replace_field(IDEAL, "periphery.bidirectional", False)
    arr = make_array(4, 3, hw, seed=0)
    with pytest.raises(ValueError, match="bidirectional"):
        make_transpose("bidirectional", arr)


def test_unknown_strategy_and_bad_refresh():
    arr = make_array(4, 3, IDEAL, seed=0)
    with pytest.raises(ValueError, match="allowed: probe, shadow, twin, bidirectional"):
        make_transpose("magic", arr)
    with pytest.raises(ValueError, match="refresh"):
        make_transpose("probe", arr, refresh=0)


def test_probe_charges_exactly_n_in_single_vector_reads():
    arr, tr, d, _ = _setup("probe")
    tr.matvec_t(d)
    t = tr.ledger.totals()
    assert t["read_cycles"] == 7 and t["mvm"] == 7
    assert t["digital_macs"] == 3 * 5 * 7
    assert arr.ledger.totals()["mvm"] == 0  # charged to the strategy's scope, not the array's
