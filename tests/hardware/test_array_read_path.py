"""The array's read path equals a plain re-statement of it, bit for bit (multi-tile reads).

The reference below is the straightforward loop the read path was written as (one fresh
BLAS product per input block, columns of norms, scales and bounds sliced per block,
saturated samples re-read with halved inputs). The array's helpers reuse buffers and hoist
loop invariants for speed; this test pins that they still draw the same noise and give the
same numbers and counts.

The second half checks the two aihwkit-compatible read options statistically against
NumPy twins of their definitions: per-tile max-abs input scaling (``dac.scaling =
"maxabs_tile"``) and conductance-dependent read noise (``noise.read_noise_model = "pcm"``).
"""

from __future__ import annotations

import numpy as np
import pytest

from analogsim import oracle
from analogsim.hardware.array import make_array
from analogsim.hardware.config import replace_field
from analogsim.hardware.ledger import COUNTERS, Ledger
from analogsim.hardware.presets import get_preset
from analogsim.kernels import adc_read, blas_single_thread, dac_encode


def reference_read(arr, x, w, in_starts, out_starts, bounds):
    """The read path as a plain loop; returns (out, n_reads, n_sat). Advances arr's counter."""
    hw = arr.hw
    pcm = hw.noise.read_noise_model == "pcm" and hw.noise.read_noise > 0

    def encoded(xq, scale, sqnorm):
        out = np.zeros((xq.shape[0], w.shape[0]), dtype=np.float32)
        sat = np.zeros(xq.shape[0], dtype=bool)
        n_sat = 0
        row_tile = int(out_starts[1] - out_starts[0]) if len(out_starts) > 2 else w.shape[0]
        for k in range(len(in_starts) - 1):
            c0, c1 = in_starts[k], in_starts[k + 1]
            y = xq[:, c0:c1] @ w[:, c0:c1].T
            sc = np.ascontiguousarray(scale[:, k]) if scale.ndim == 2 else scale
            if pcm:
                noise = dict(read_var=(xq[:, c0:c1] * xq[:, c0:c1]) @ np.abs(w[:, c0:c1]).T,
                             read_std=np.sqrt(hw.device.w_max) * hw.noise.read_noise)
            else:
                noise = dict(sqnorm_block=np.ascontiguousarray(sqnorm[:, k]),
                             read_std=hw.device.w_max * hw.noise.read_noise)
            n, rows = adc_read(y, out, scale=sc, out_std=hw.noise.out_noise, bits=hw.adc.bits,
                               bounds=np.ascontiguousarray(bounds[:, k]), row_tile=row_tile,
                               key=arr._read_key, counter=arr._read_counter, **noise)
            arr._read_counter += 1
            n_sat += n
            sat |= rows
        return out, sat, n_sat

    xq, scale, sqnorm, _ = dac_encode(x, bits=hw.dac.bits, input_range=hw.dac.input_range,
                                      maxabs=hw.dac.scaling != "fixed", col_starts=in_starts,
                                      per_block=hw.dac.scaling == "maxabs_tile")
    out, sat, n_sat = encoded(xq, scale, sqnorm)
    n_reads, tries = x.shape[0], 0
    while hw.adc.manage_range and tries < hw.adc.max_retries and sat.any():
        idx = np.flatnonzero(sat)
        xq2, _, sq2, _ = dac_encode(np.ascontiguousarray(xq[idx] * np.float32(0.5)),
                                    bits=hw.dac.bits, input_range=1.0, maxabs=False,
                                    col_starts=in_starts)
        sc2 = np.ascontiguousarray(scale[idx] * np.float32(2.0))
        out2, sat2, n2 = encoded(xq2, sc2, sq2)
        out[idx] = out2
        n_sat += n2
        sat = np.zeros_like(sat)
        sat[idx] = sat2
        xq[idx], scale[idx] = xq2, sc2
        n_reads += idx.size
        tries += 1
    return out, n_reads, n_sat


def _variant(preset):
    """A preset, or ``preset+pcm-tile``: with PCM read noise and per-tile scaling on top."""
    name, _, extra = preset.partition("+")
    hw = get_preset(name)
    if extra:
        hw = replace_field(hw, "noise.read_noise", 0.05)
        hw = replace_field(hw, "noise.read_noise_model", "pcm")
        hw = replace_field(hw, "dac.scaling", "maxabs_tile")
    return hw


_READ_CASES = [(p, t) for p in ("aihwkit_default", "rram", "ideal", "pcm",
                                 "aihwkit_default+pcm-tile", "rram+pcm-tile")
               for t in (False, True) if not t or _variant(p).periphery.bidirectional]


@pytest.mark.parametrize(("preset", "transposed"), _READ_CASES)
def test_read_path_matches_reference(preset, transposed):
    hw = _variant(preset)
    n_out, n_in = 600, 1100  # several input blocks; several output tiles on 256-wide tiles
    led = Ledger("a")
    arr = make_array(n_in, n_out, hw, seed=3, ledger=led)
    rng = np.random.default_rng(0)
    arr.program(rng.uniform(-0.2, 0.6, (n_out, n_in)) * hw.device.w_max)
    w = np.float32(hw.device.w_max) * (arr._gp - arr._gm)
    width = n_out if transposed else n_in
    # Strongly positive inputs saturate the ADCs, so range management re-reads some samples.
    xs = [rng.standard_normal((17, width)).astype(np.float32),
          rng.uniform(0.5, 1.0, (17, width)).astype(np.float32)]
    for x in xs:
        counter = arr._read_counter
        sat_before = led.totals()["adc_saturations"]
        got = arr.mvm_transposed(x) if transposed else arr.mvm(x)
        after = arr._read_counter
        arr._read_counter = counter  # replay the same draws
        # The array's products run on one BLAS thread (bit-identical at any thread count);
        # so must the twin's, or float32 sums differ in the last bit.
        with blas_single_thread():
            if transposed:
                ref, n_reads, n_sat = reference_read(arr, x, w.T, arr._out_starts,
                                                     arr._in_starts, arr._bounds.T)
            else:
                ref, n_reads, n_sat = reference_read(arr, x, w, arr._in_starts,
                                                     arr._out_starts, arr._bounds)
        assert arr._read_counter == after
        np.testing.assert_array_equal(got, ref)
        assert led.totals()["adc_saturations"] - sat_before == n_sat
    if hw.adc.manage_range:
        assert led.totals()["read_cycles"] > sum(len(x) for x in xs)  # re-reads happened


# --------------------------------------------------------------------------- aihwkit options


def _stat_hw(scaling, model, read_noise=0.05, out_noise=0.06, adc_bits=None):
    """aihwkit_default with the given options; an ideal ADC (no rounding) unless asked, so
    outputs are exactly Gaussian around the twin's mean; no range management."""
    hw = get_preset("aihwkit_default")
    for field, value in (("dac.scaling", scaling), ("noise.read_noise_model", model),
                         ("noise.read_noise", read_noise), ("noise.out_noise", out_noise),
                         ("adc.manage_range", False), ("adc.bits", adc_bits)):
        hw = replace_field(hw, field, value)
    if adc_bits is None:
        hw = replace_field(hw, "adc.out_bound", np.inf)
    return hw


def _mixed_inputs(n_in, rows, n_samples, rng):
    """Inputs whose input tiles differ in scale by up to 50× (the case per-tile scaling is
    for), plus one sample with an all-zero tile."""
    x = rng.standard_normal((n_samples, n_in)).astype(np.float32)
    for k, c0 in enumerate(range(0, n_in, rows)):
        x[:, c0:c0 + rows] *= np.float32([1.0, 0.02, 0.3][k % 3])
    x[-1, rows:] = 0.0
    return x


def twin_moments(hw, w, x, in_starts):
    """NumPy twin of one read (ideal ADC): per sample and output the mean and std of ŷ.

    Per input tile k of sample b: ``s_bk`` = max|x| over the tile (per-tile scaling) or over
    the sample; ``q = rint(x / s · L) / L``; ``ŷ = Σ_k s_bk (W_k q_k + n_k + η_k)`` with
    ``Var n_ik = (w_max σ_r)² ‖q_k‖²`` (additive) or ``w_max σ_r² Σ_j |w_ij| q_j²`` (pcm)
    and ``Var η_ik = σ_out²``.
    """
    levels = 2 ** (hw.dac.bits - 1) - 1
    x = x.astype(np.float64)
    mean = np.zeros((x.shape[0], w.shape[0]))
    var = np.zeros_like(mean)
    s_sample = np.abs(x).max(axis=1, keepdims=True)
    for c0, c1 in zip(in_starts[:-1], in_starts[1:], strict=True):
        xk, wk = x[:, c0:c1], w[:, c0:c1]
        s = np.abs(xk).max(axis=1, keepdims=True) if hw.dac.scaling == "maxabs_tile" \
            else s_sample
        s = np.where(s == 0, 1.0, s)
        q = np.rint(xk / s * levels) / levels
        mean += s * (q @ wk.T)
        if hw.noise.read_noise_model == "pcm":
            read = hw.device.w_max * hw.noise.read_noise ** 2 * ((q * q) @ np.abs(wk).T)
        else:
            read = (hw.device.w_max * hw.noise.read_noise) ** 2 * (q * q).sum(axis=1,
                                                                              keepdims=True)
        var += s * s * (read + hw.noise.out_noise ** 2)
    return mean, np.sqrt(var)


@pytest.mark.parametrize("scaling", ["maxabs", "maxabs_tile"])
@pytest.mark.parametrize("model", ["additive", "pcm"])
@pytest.mark.parametrize(("n_out", "n_in"), [(256, 784), (96, 1100)])
def test_read_options_match_numpy_twin_statistically(scaling, model, n_out, n_in):
    """Many reads of a few inputs: the mean of every output equals the twin's mean (within
    5 standard errors), its std the twin's std (all outputs pooled: within 1 %)."""
    hw = _stat_hw(scaling, model)
    rng = np.random.default_rng(11)
    arr = make_array(n_in, n_out, hw, seed=5)
    arr.program(rng.uniform(-0.3, 0.3, (n_out, n_in)) * hw.device.w_max)
    w = oracle.weights(arr)
    x = _mixed_inputs(n_in, hw.tile.rows, 4, rng)
    reps = 1500
    y = arr.mvm(np.repeat(x, reps, axis=0)).astype(np.float64).reshape(4, reps, n_out)
    mean, std = twin_moments(hw, w, x, arr._in_starts)
    got_mean, got_std = y.mean(axis=1), y.std(axis=1, ddof=1)
    assert np.all(np.abs(got_mean - mean) < 5 * std / np.sqrt(reps) + 1e-5 * np.abs(mean))
    # 4 · n_out outputs of 1500 draws each: the pooled variance ratio has a relative SE of
    # about sqrt(2 / (1500 · 4 · n_out)) < 0.4 %.
    ratio = np.sqrt((got_std ** 2).sum() / (std ** 2).sum())
    assert abs(ratio - 1) < 0.01, ratio
    per_output = got_std / std
    assert np.all(np.abs(per_output - 1) < 0.15)  # 1500 draws: SE 1.8 %, 8 SE


def test_per_tile_scaling_reduces_the_error_of_mixed_inputs():
    """A small input tile next to a large one: with per-sample scaling the small tile uses a
    fraction of the DAC range and its partial sum gets the large tile's output noise."""
    rng = np.random.default_rng(3)
    errs = {}
    for scaling in ("maxabs", "maxabs_tile"):
        hw = _stat_hw(scaling, "additive", read_noise=0.0, adc_bits=9)
        hw = replace_field(hw, "adc.out_bound", 12.0)
        arr = make_array(784, 256, hw, seed=1)
        arr.program(rng.uniform(-0.3, 0.3, (256, 784)) * hw.device.w_max)
        w = oracle.weights(arr)
        x = rng.standard_normal((200, 784)).astype(np.float32)
        x[:, 512:] *= np.float32(0.02)
        errs[scaling] = np.std(arr.mvm(x) - x.astype(np.float64) @ w.T)
    assert errs["maxabs_tile"] < errs["maxabs"]


def test_per_tile_scaling_on_one_input_tile_is_per_sample_scaling():
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((9, 300)) * 3).astype(np.float32)
    w = rng.uniform(-0.1, 0.1, (700, 300))
    outs, ledgers = [], []
    for scaling in ("maxabs", "maxabs_tile"):
        hw = replace_field(get_preset("aihwkit_default"), "dac.scaling", scaling)
        arr = make_array(300, 700, hw, seed=2)  # one input tile, two output tiles
        arr.program(w)
        outs.append(arr.mvm(x))
        ledgers.append(arr.ledger.totals())
    np.testing.assert_array_equal(outs[0], outs[1])
    assert ledgers[0] == ledgers[1]


def test_pcm_model_without_read_noise_is_bit_identical_to_additive():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((7, 1100)).astype(np.float32)
    outs = []
    for model in ("additive", "pcm"):
        hw = replace_field(get_preset("rram"), "noise.read_noise", 0.0)
        hw = replace_field(hw, "noise.read_noise_model", model)
        arr = make_array(1100, 300, hw, seed=8)
        arr.program(np.full((300, 1100), 0.25))
        outs.append(arr.mvm(x))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_pcm_read_noise_follows_the_weights():
    """Zero weights give no read noise in the pcm model (only output noise); the additive
    model gives every output the same read noise."""
    for model, want_quiet in (("pcm", True), ("additive", False)):
        hw = _stat_hw("maxabs", model, read_noise=0.2, out_noise=0.0)
        arr = make_array(64, 4, hw, seed=0)
        w = np.zeros((4, 64))
        w[2:] = 0.5
        arr.program(w)
        y = arr.mvm(np.ones((500, 64), np.float32))
        quiet = y[:, :2].std(axis=0)
        assert np.all(quiet == 0) == want_quiet
        # Twin: std = sqrt(w_max σ² Σ_j |w_ij|) (pcm) or w_max σ √64 (additive).
        want = (np.sqrt(hw.device.w_max * 0.04 * 64 * 0.5) if model == "pcm"
                else hw.device.w_max * 0.2 * 8.0)
        assert abs(y[:, 2:].std() / want - 1) < 0.06


def _counts(**kw):
    return {k: kw.get(k, 0) for k in COUNTERS}


@pytest.mark.parametrize("model", ["additive", "pcm"])
def test_per_tile_scaling_charges_a_multiply_per_tile_output(model):
    """784 inputs on 512-row tiles (2 input tiles), 600 outputs on 512 columns (2 output
    tiles): per sample n_in comparisons, n_in input multiplies and one multiply per tile
    output (n_out · 2). PCM read noise is a device property and costs nothing extra."""
    charges = {}
    for scaling in ("maxabs", "maxabs_tile"):
        hw = _stat_hw(scaling, model, adc_bits=9)
        hw = replace_field(hw, "adc.out_bound", 12.0)
        arr = make_array(784, 600, hw, seed=0)
        arr.program(np.full((600, 784), 0.001))
        arr.ledger.reset()
        arr.mvm(np.ones((3, 784), np.float32))
        charges[scaling] = arr.ledger.totals()
    b, n_in, n_out = 3, 784, 600
    common = dict(mvm=b * 4, read_cycles=b, dac_conversions=b * n_in * 2,
                  dac_bits=b * n_in * 2 * 7, adc_conversions=b * n_out * 2,
                  cell_reads=b * n_in * n_out, digital_adds=b * n_out + b * n_in,
                  mem_bytes=b * (n_in + n_out) * 4)
    assert charges["maxabs"] == _counts(digital_mults=b * (n_in + n_out), **common)
    assert charges["maxabs_tile"] == _counts(digital_mults=b * (n_in + 2 * n_out), **common)


def test_per_tile_range_management_halves_every_tile_of_a_saturated_sample():
    """Range management keeps its per-sample re-read with per-tile scales: a saturating
    sample is re-read with every tile halved and its result stays close to W x. (Each tile
    gives 512 · 0.05 = 25.6 > 12 at full scale, so two halvings; re-quantising the halved
    7-bit level 63 → 31.5 → 32 → 16 reads 16/63 instead of 1/4, +1.6 %.)"""
    hw = replace_field(get_preset("aihwkit_default"), "dac.scaling", "maxabs_tile")
    hw = replace_field(hw, "noise.out_noise", 0.0)
    arr = make_array(1024, 8, hw, seed=0)
    arr.program(np.full((8, 1024), 0.05))
    x = np.ones((2, 1024), np.float32)
    x[1, 512:] = 0.01
    y = arr.mvm(x)
    assert arr.ledger.totals()["read_cycles"] > 2  # sample 0 saturated (25.6 > 12)
    want = x.astype(np.float64) @ oracle.weights(arr).T
    np.testing.assert_allclose(y, want, rtol=0.02)
