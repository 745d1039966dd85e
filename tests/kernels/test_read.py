"""DAC encoding and ADC read kernels against plain-NumPy twins (bit-exact), and validation."""

from __future__ import annotations

import numpy as np
import pytest

from analogsim.kernels import adc_read, dac_encode, make_key, normal

RNG = np.random.default_rng(42)
KEY = make_key(5, 1)


# --------------------------------------------------------------------------- twins


def lane_sum_squares(q: np.ndarray) -> np.ndarray:
    """Σ q² per row in the kernel's order: four lanes (j mod 4), each in index order,
    then (l0 + l1) + (l2 + l3). Padding with zeros adds exact zeros."""
    b, n = q.shape
    sq = np.zeros((b, -(-n // 4) * 4))
    sq[:, :n] = q.astype(np.float64) ** 2
    lanes = np.cumsum(sq.reshape(b, -1, 4), axis=1)[:, -1, :]
    return (lanes[:, 0] + lanes[:, 1]) + (lanes[:, 2] + lanes[:, 3])


def level_sum_squares(k: np.ndarray, levels: float) -> np.ndarray:
    """Σ (k Δ)² per row the kernel's way: exact integer sums of k² over runs of 4096 inputs,
    added in float64, divided by L² once."""
    k = k.astype(np.int64)
    total = np.zeros(k.shape[0])
    for c0 in range(0, k.shape[1], 4096):
        total += (k[:, c0:c0 + 4096] ** 2).sum(axis=1).astype(np.float64)
    return total / (levels * levels)


def dac_twin(x, bits, input_range, maxabs, col_starts, per_block=False):
    b = x.shape[0]
    blocks = list(zip(col_starts[:-1], col_starts[1:], strict=True))
    if maxabs and per_block:
        s = np.stack([np.abs(x[:, c0:c1]).max(axis=1) for c0, c1 in blocks], axis=1)
        s[s == 0] = 1.0
    elif maxabs:
        s = np.abs(x).max(axis=1)
        s[s == 0] = 1.0
    else:
        s = np.full(b, input_range, dtype=np.float32)
    if per_block and s.ndim == 1:
        s = np.repeat(s[:, None], len(blocks), axis=1)
    # The divisor of every input: its sample's scale, or its block's.
    div = (np.concatenate([np.repeat(s[:, [k]], c1 - c0, axis=1)
                           for k, (c0, c1) in enumerate(blocks)], axis=1)
           if per_block else s[:, None])
    xn = x.astype(np.float64) / div.astype(np.float64)
    n_clip = 0 if maxabs else int(np.count_nonzero(np.abs(xn) > 1.0))
    xn = np.clip(xn, -1.0, 1.0)
    if bits is None:
        xq = xn.astype(np.float32)
        sq = np.stack([lane_sum_squares(xq[:, c0:c1]) for c0, c1 in blocks], axis=1)
    else:
        levels = float(2 ** (bits - 1) - 1)
        k = np.rint(xn * levels)
        xq = (k * (1.0 / levels)).astype(np.float32)
        sq = np.stack([level_sum_squares(k[:, c0:c1], levels) for c0, c1 in blocks], axis=1)
    return xq, s.astype(np.float32), sq.astype(np.float32), n_clip


def adc_twin(y, out, sqnorm, scale, read_std, out_std, bits, bounds, row_tile, key, counter,
             read_var=None):
    """``read_var`` (B, n_out) replaces the per-sample ``sqnorm`` by per-output factors."""
    b, n = y.shape
    q = sqnorm.astype(np.float64)[:, None] if read_var is None else read_var.astype(np.float64)
    sigma = np.sqrt(read_std * read_std * q + out_std * out_std)
    z = normal(key, counter, b * n).reshape(b, n)
    v = y.astype(np.float64) + sigma * z
    sat = np.zeros((b, n), dtype=bool)
    if bits is not None:
        levels = float(2 ** (bits - 1) - 1)
        bnd = np.repeat(bounds.astype(np.float64), row_tile)[:n][None, :]
        sat = np.abs(v) > bnd
        v = np.clip(v, -bnd, bnd)
        v = np.rint(v * (levels / bnd)) * (bnd / levels)
    new = (out.astype(np.float64) + scale.astype(np.float64)[:, None] * v).astype(np.float32)
    return new, int(sat.sum()), sat.any(axis=1)


def starts(*s):
    return np.array(s, dtype=np.int64)


# --------------------------------------------------------------------------- DAC


@pytest.mark.parametrize("bits", [None, 2, 5, 8, 24])
@pytest.mark.parametrize("maxabs", [True, False])
def test_dac_matches_twin(bits, maxabs):
    x = (RNG.standard_normal((7, 30)) * 0.8).astype(np.float32)
    x[2] = 0.0                      # all-zero sample: scale 1
    x[3, 4] = 0.7                   # exactly on the fixed range
    x[4, :5] = [1e-30, -1e-30, 3.0, -3.0, 0.0]
    cs = starts(0, 5, 13, 14, 30)   # blocks of 5, 8, 1, 16 (not multiples of 4)
    got = dac_encode(x, bits=bits, input_range=0.7, maxabs=maxabs, col_starts=cs)
    want = dac_twin(x, bits, 0.7, maxabs, cs)
    for g, w in zip(got[:3], want[:3], strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)
    assert got[3] == want[3]
    if not maxabs:
        assert got[3] > 0
    assert np.abs(got[0]).max() <= 1.0


def test_dac_maxabs_hits_full_scale_and_levels():
    x = RNG.uniform(-2, 2, (4, 64)).astype(np.float32)
    xq, scale, _, n_clip = dac_encode(x, bits=4, input_range=1.0, maxabs=True,
                                      col_starts=starts(0, 64))
    assert n_clip == 0
    np.testing.assert_array_equal(scale, np.abs(x).max(axis=1))
    np.testing.assert_array_equal(np.abs(xq).max(axis=1), np.ones(4, dtype=np.float32))
    k = xq.astype(np.float64) * 7
    np.testing.assert_allclose(k, np.rint(k), atol=1e-6)


@pytest.mark.parametrize("bits", [None, 2, 7, 24])
@pytest.mark.parametrize("maxabs", [True, False])
def test_dac_per_block_matches_twin(bits, maxabs):
    """Per-block scales: each block divided by its own max|x| (1 for an all-zero block)."""
    x = (RNG.standard_normal((6, 30)) * 0.8).astype(np.float32)
    x[1, 13:] *= np.float32(0.01)   # a small block next to a large one
    x[2, 5:13] = 0.0                # an all-zero block inside a non-zero sample
    x[3] = 0.0                      # an all-zero sample
    x[4, :5] = [1e-30, -1e-30, 3.0, -3.0, 0.0]
    cs = starts(0, 5, 13, 14, 30)
    got = dac_encode(x, bits=bits, input_range=0.7, maxabs=maxabs, col_starts=cs,
                     per_block=True)
    want = dac_twin(x, bits, 0.7, maxabs, cs, per_block=True)
    assert got[1].shape == (6, 4)
    for g, w in zip(got[:3], want[:3], strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)
    assert got[3] == want[3]
    if maxabs:
        # Every non-zero block reaches full scale.
        for c0, c1 in zip(cs[:-1], cs[1:], strict=True):
            peak = np.abs(got[0][:, c0:c1]).max(axis=1)
            nonzero = np.abs(x[:, c0:c1]).max(axis=1) > 0
            np.testing.assert_array_equal(peak[nonzero], 1.0)
        np.testing.assert_array_equal(got[1][2, 1], 1.0)


def test_dac_per_block_equals_per_sample_on_one_block():
    x = (RNG.standard_normal((5, 33)) * 2).astype(np.float32)
    cs = starts(0, 33)
    one = dac_encode(x, bits=7, input_range=1.0, maxabs=True, col_starts=cs)
    per = dac_encode(x, bits=7, input_range=1.0, maxabs=True, col_starts=cs, per_block=True)
    np.testing.assert_array_equal(per[1][:, 0], one[1])
    for g, w in ((per[0], one[0]), (per[2], one[2])):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_dac_per_block_rejects_non_finite(bad):
    x = np.ones((3, 8), dtype=np.float32)
    x[1, 6] = bad
    with pytest.raises(ValueError, match="x contains 1 NaN or Inf"):
        dac_encode(x, bits=8, input_range=1.0, maxabs=True, col_starts=starts(0, 4, 8),
                   per_block=True)


# --------------------------------------------------------------------------- ADC


def adc_case(b=5, n=37, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.standard_normal((b, n)) * 3).astype(np.float32)
    y[0, :4] = [100.0, -100.0, 2.0, -2.0]
    out = rng.standard_normal((b, n)).astype(np.float32)
    sq = rng.uniform(0, 50, b).astype(np.float32)
    sc = rng.uniform(0.5, 2, b).astype(np.float32)
    return y, out, sq, sc


@pytest.mark.parametrize("bits", [None, 3, 8])
@pytest.mark.parametrize(("read_std", "out_std"), [(0.0, 0.0), (0.05, 0.0), (0.02, 0.3)])
def test_adc_matches_twin(bits, read_std, out_std):
    # n_out = 37 with row tiles of 16: bounds per tile, chunks starting at odd draw indices.
    y, out, sq, sc = adc_case()
    bounds = np.array([2.5, 4.0, 8.0], dtype=np.float32)
    want = adc_twin(y, out, sq, sc, read_std, out_std, bits, bounds, 16, KEY, 3)
    got_out = out.copy()
    n_sat, rows = adc_read(y, got_out, sqnorm_block=sq, scale=sc, read_std=read_std,
                           out_std=out_std, bits=bits, bounds=bounds, row_tile=16, key=KEY,
                           counter=3)
    np.testing.assert_array_equal(got_out, want[0])
    assert n_sat == want[1]
    np.testing.assert_array_equal(rows, want[2])
    if bits is not None:
        assert n_sat >= 2 and rows[0]


def read_var_case(b, n, seed):
    """Per-output variance factors Σ_j |w_ij| x_j² of a random block (a few exact zeros)."""
    rng = np.random.default_rng(seed)
    absw = np.abs(rng.uniform(-1, 1, (n, 40))).astype(np.float32)
    xsq = (rng.uniform(-1, 1, (b, 40)) ** 2).astype(np.float32)
    var = xsq @ absw.T
    var[0, :3] = 0.0
    return var


@pytest.mark.parametrize("bits", [None, 3, 8])
@pytest.mark.parametrize(("read_std", "out_std"), [(0.0, 0.0), (0.05, 0.0), (0.02, 0.3)])
def test_adc_per_output_variance_matches_twin(bits, read_std, out_std):
    y, out, _, sc = adc_case()
    var = read_var_case(*y.shape, seed=4)
    bounds = np.array([2.5, 4.0, 8.0], dtype=np.float32)
    want = adc_twin(y, out, None, sc, read_std, out_std, bits, bounds, 16, KEY, 3,
                    read_var=var)
    got_out = out.copy()
    n_sat, rows = adc_read(y, got_out, read_var=var, scale=sc, read_std=read_std,
                           out_std=out_std, bits=bits, bounds=bounds, row_tile=16, key=KEY,
                           counter=3)
    np.testing.assert_array_equal(got_out, want[0])
    assert n_sat == want[1]
    np.testing.assert_array_equal(rows, want[2])


@pytest.mark.parametrize("per_output", [False, True])
@pytest.mark.parametrize(("n", "bits"), [(6, 8), (25, None), (128, 4)])
@pytest.mark.parametrize("noise", [(0.05, 0.1), (0.0, 0.0)])
def test_adc_narrow_outputs_match_twin(per_output, n, bits, noise):
    """Few outputs over many samples in one row tile (a conv layer's channels over its
    windows): normals drawn for several samples in one pass give the twin's numbers,
    across group boundaries of the parallel build (613 samples)."""
    y, out, sq, sc = adc_case(b=613, n=n, seed=n)
    var = read_var_case(613, n, seed=n) if per_output else None
    bounds = np.array([6.0], dtype=np.float32)
    want = adc_twin(y, out, None if per_output else sq, sc, *noise, bits, bounds, 512,
                    KEY, 5, read_var=var)
    got_out = out.copy()
    kw = dict(read_var=var) if per_output else dict(sqnorm_block=sq)
    n_sat, rows = adc_read(y, got_out, scale=sc, read_std=noise[0], out_std=noise[1], bits=bits,
                           bounds=bounds, row_tile=512, key=KEY, counter=5, **kw)
    np.testing.assert_array_equal(got_out, want[0])
    assert n_sat == want[1]
    np.testing.assert_array_equal(rows, want[2])


def test_adc_per_output_variance_long_rows():
    y, out, _, sc = adc_case(b=3, n=601, seed=1)
    var = read_var_case(3, 601, seed=5)
    bounds = np.array([20.0] * 3, dtype=np.float32)
    want = adc_twin(y, out, None, sc, 0.1, 0.2, 6, bounds, 256, KEY, 9, read_var=var)
    n_sat, _ = adc_read(y, out, read_var=var, scale=sc, read_std=0.1, out_std=0.2, bits=6,
                        bounds=bounds, row_tile=256, key=KEY, counter=9)
    np.testing.assert_array_equal(out, want[0])
    assert n_sat == want[1]


def test_adc_per_output_variance_is_the_output_variance():
    """Statistically: output i has std sqrt(σ_r² q_i + σ_o²), mean 0, and the per-sample
    norm path with q_bi = ‖x_b‖² for every i draws the very same numbers."""
    b, n = 2000, 64
    y = np.zeros((b, n), dtype=np.float32)
    q = np.linspace(0.0, 9.0, n, dtype=np.float32)
    var = np.ascontiguousarray(np.broadcast_to(q, (b, n)))
    out = np.zeros_like(y)
    sc = np.ones(b, dtype=np.float32)
    adc_read(y, out, read_var=var, scale=sc, read_std=0.3, out_std=0.1, bits=None,
             bounds=np.array([np.inf], dtype=np.float32), row_tile=n, key=KEY, counter=7)
    want_std = np.sqrt(0.09 * q.astype(np.float64) + 0.01)
    # 2000 draws per output: the std estimate has a relative SE of 1/sqrt(4000) ≈ 1.6 %.
    np.testing.assert_allclose(out.std(axis=0), want_std, rtol=0.07)
    assert np.all(np.abs(out.mean(axis=0)) < 4 * want_std / np.sqrt(b))
    ratio = out.std(axis=0).mean() / want_std.mean()
    assert abs(ratio - 1) < 0.01
    same = np.full(b, 4.0, dtype=np.float32)
    o1, o2 = np.zeros_like(y), np.zeros_like(y)
    adc_read(y, o1, sqnorm_block=same, scale=sc, read_std=0.3, out_std=0.1, bits=8,
             bounds=np.array([5.0], dtype=np.float32), row_tile=n, key=KEY, counter=2)
    adc_read(y, o2, read_var=np.full((b, n), 4.0, dtype=np.float32), scale=sc, read_std=0.3,
             out_std=0.1, bits=8, bounds=np.array([5.0], dtype=np.float32), row_tile=n,
             key=KEY, counter=2)
    np.testing.assert_array_equal(o1, o2)


def test_adc_long_rows_cross_noise_chunks():
    y, out, sq, sc = adc_case(b=3, n=601, seed=1)
    bounds = np.array([20.0] * 3, dtype=np.float32)
    want = adc_twin(y, out, sq, sc, 0.1, 0.2, 6, bounds, 256, KEY, 9)
    n_sat, _ = adc_read(y, out, sqnorm_block=sq, scale=sc, read_std=0.1, out_std=0.2, bits=6,
                        bounds=bounds, row_tile=256, key=KEY, counter=9)
    np.testing.assert_array_equal(out, want[0])
    assert n_sat == want[1]


def test_adc_ideal_accepts_infinite_bound_and_adds_right_noise():
    b, n = 400, 250
    y = np.zeros((b, n), dtype=np.float32)
    out = np.zeros_like(y)
    sq = np.full(b, 4.0, dtype=np.float32)
    sc = np.ones(b, dtype=np.float32)
    n_sat, rows = adc_read(y, out, sqnorm_block=sq, scale=sc, read_std=0.3, out_std=0.4,
                           bits=None, bounds=np.array([np.inf], dtype=np.float32),
                           row_tile=n, key=KEY, counter=0)
    assert n_sat == 0 and not rows.any()
    # Var = 0.3² · 4 + 0.4² = 0.52, estimated from 100 000 draws (SE of var ≈ 0.0023).
    assert abs(out.var() - 0.52) < 0.015
    assert abs(out.mean()) < 0.015


def test_adc_fresh_counter_gives_fresh_noise():
    y, out, sq, sc = adc_case()
    bounds = np.full(3, 50.0, dtype=np.float32)
    o1, o2 = out.copy(), out.copy()
    kw = dict(sqnorm_block=sq, scale=sc, read_std=0.1, out_std=0.1, bits=8, bounds=bounds,
              row_tile=16, key=KEY)
    adc_read(y, o1, counter=1, **kw)
    adc_read(y, o2, counter=2, **kw)
    assert not np.array_equal(o1, o2)


# --------------------------------------------------------------------------- validation


DAC_KW = dict(bits=8, input_range=1.0, maxabs=True)


@pytest.mark.parametrize(("x", "exc", "pattern"), [
    (np.zeros((2, 4)), TypeError, "x.dtype = float64"),
    ([[0.0] * 4], TypeError, "x must be a numpy.ndarray"),
    (np.zeros(4, dtype=np.float32), ValueError, r"x.shape = \(4,\)"),
    (np.zeros((0, 4), dtype=np.float32), ValueError, r"x.shape = \(0, 4\)"),
    (np.zeros((2, 8), dtype=np.float32)[:, ::2], ValueError, "x is not C-contiguous"),
])
def test_dac_rejects_bad_x(x, exc, pattern):
    with pytest.raises(exc, match=pattern):
        dac_encode(x, col_starts=starts(0, 4), **DAC_KW)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("maxabs", [True, False])
def test_dac_rejects_non_finite(bad, maxabs):
    x = np.zeros((3, 4), dtype=np.float32)
    x[1, 2] = bad
    x[2, 0] = bad
    with pytest.raises(ValueError, match="x contains 2 NaN or Inf"):
        dac_encode(x, bits=8, input_range=1.0, maxabs=maxabs, col_starts=starts(0, 4))


@pytest.mark.parametrize(("kw", "pattern"), [
    (dict(bits=1), "bits = 1"), (dict(bits=25), "bits = 25"), (dict(bits=8.0), "bits = 8.0"),
    (dict(input_range=0.0), "input_range"), (dict(input_range=np.nan), "input_range"),
    (dict(col_starts=starts(0, 3)), "col_starts"), (dict(col_starts=starts(1, 4)), "col_starts"),
    (dict(col_starts=starts(0, 2, 2, 4)), "col_starts"),
    (dict(col_starts=np.array([0, 4], dtype=np.int32)), "col_starts.dtype"),
])
def test_dac_rejects_bad_parameters(kw, pattern):
    args = dict(bits=8, input_range=1.0, maxabs=False, col_starts=starts(0, 4)) | kw
    with pytest.raises((ValueError, TypeError), match=pattern):
        dac_encode(np.zeros((2, 4), dtype=np.float32), **args)


def adc_args(**kw):
    y, out, sq, sc = adc_case()
    args = dict(y=y, out=out, sqnorm_block=sq, scale=sc, read_std=0.1, out_std=0.1, bits=8,
                bounds=np.full(3, 5.0, dtype=np.float32), row_tile=16, key=KEY, counter=0)
    args.update(kw)
    return args


@pytest.mark.parametrize(("kw", "exc", "pattern"), [
    (dict(y=np.zeros((5, 37))), TypeError, "y.dtype"),
    (dict(out=np.zeros((5, 36), dtype=np.float32)), ValueError, r"out.shape = \(5, 36\)"),
    (dict(sqnorm_block=np.zeros(4, dtype=np.float32)), ValueError, "sqnorm_block.shape"),
    (dict(scale=np.ones((5, 1), dtype=np.float32)), ValueError, "scale.shape"),
    (dict(bounds=np.full(2, 5.0, dtype=np.float32)), ValueError, "bounds.shape"),
    (dict(bounds=np.array([5, 0, 5], dtype=np.float32)), ValueError, "bounds"),
    (dict(bounds=np.array([5, np.inf, 5], dtype=np.float32)), ValueError, "bounds"),
    (dict(read_std=-0.1), ValueError, "read_std"), (dict(out_std=np.inf), ValueError, "out_std"),
    (dict(row_tile=0), ValueError, "row_tile"), (dict(bits=0), ValueError, "bits"),
    (dict(key=-5), ValueError, "key"), (dict(counter=-1), ValueError, "counter"),
    (dict(scale=np.array([1, 1, np.nan, 1, 1], dtype=np.float32)), ValueError, "scale"),
])
def test_adc_rejects_bad_arguments(kw, exc, pattern):
    with pytest.raises(exc, match=pattern):
        adc_read(**adc_args(**kw))


@pytest.mark.parametrize(("kw", "exc", "pattern"), [
    (dict(read_var=np.zeros((5, 37), dtype=np.float32)), ValueError, "both given"),
    (dict(sqnorm_block=None), ValueError, "both None"),
    (dict(sqnorm_block=None, read_var=np.zeros((5, 36), dtype=np.float32)), ValueError,
     r"read_var.shape = \(5, 36\)"),
    (dict(sqnorm_block=None, read_var=np.zeros((5, 37))), TypeError, "read_var.dtype"),
    (dict(sqnorm_block=None, read_var=np.full((5, 37), -1.0, dtype=np.float32)), ValueError,
     "read_var contains NaN/Inf or a negative value"),
    (dict(sqnorm_block=None, read_var=np.full((5, 37), np.inf, dtype=np.float32)),
     ValueError, "read_var contains"),
])
def test_adc_rejects_bad_read_var(kw, exc, pattern):
    args = adc_args(**kw)
    before = args["out"].copy()
    with pytest.raises(exc, match=pattern):
        adc_read(**args)
    np.testing.assert_array_equal(args["out"], before)  # nothing written


def test_adc_rejects_read_only_out_and_non_finite_y():
    args = adc_args()
    args["out"].flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        adc_read(**args)
    args = adc_args()
    args["y"][1, 3] = np.nan
    with pytest.raises(ValueError, match="y contains 1 NaN or Inf"):
        adc_read(**args)


@pytest.mark.parametrize("maxabs", [True, False])
def test_dac_exact_ties_round_half_to_even(maxabs):
    """x·L/s exactly halfway between two levels (s = L = 127): the multiply-based fast path
    must hand these to the exact quotient, which rounds half to even."""
    k = np.arange(-127, 127, dtype=np.float32)
    x = np.stack([k + np.float32(0.5), k + np.float32(0.25)])
    x[:, 0] = -127.0                      # max|x| = 127 in both samples
    cs = starts(0, 100, x.shape[1])
    got = dac_encode(x, bits=8, input_range=127.0, maxabs=maxabs, col_starts=cs)
    want = dac_twin(x, 8, 127.0, maxabs, cs)
    for g, w in zip(got[:3], want[:3], strict=True):
        np.testing.assert_array_equal(g, w)
    levels = np.rint(got[0].astype(np.float64) * 127)
    np.testing.assert_array_equal(levels[0, 1:], np.rint(k[1:] + 0.5))   # half to even


def test_dac_clipped_fixed_range_and_long_blocks():
    """Fixed range with clipping on the multiply path, and a block longer than one run of
    4096 inputs for the squared norm."""
    x = (RNG.standard_normal((3, 9000)) * 0.6).astype(np.float32)
    cs = starts(0, 8500, 9000)
    for bits in (3, 8, 12):
        got = dac_encode(x, bits=bits, input_range=0.5, maxabs=False, col_starts=cs)
        want = dac_twin(x, bits, 0.5, False, cs)
        for g, w in zip(got[:3], want[:3], strict=True):
            np.testing.assert_array_equal(g, w)
        assert got[3] == want[3] > 0


def test_max_abs_reports_peak_and_non_finite():
    from analogsim.kernels import max_abs

    x = np.array([[0.5, -3.25], [2.0, 0.0]], dtype=np.float32)
    assert max_abs(x) == 3.25
    assert max_abs(np.zeros(5, dtype=np.float32)) == 0.0
    x[0, 0] = -np.inf
    assert max_abs(x) == np.inf
    x[1, 1] = np.nan
    assert np.isnan(max_abs(x))
    with pytest.raises(TypeError, match="a.dtype = float64"):
        max_abs(np.zeros(3))
    with pytest.raises(ValueError, match="a is not C-contiguous"):
        max_abs(np.zeros((3, 4), dtype=np.float32)[:, ::2])
