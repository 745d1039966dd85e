"""Pulse-update kernels against plain-NumPy twins (bit-exact), statistics, and validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_elementary import unit_pow_twin  # the device workers' exp(e log y), bit for bit

from analogsim.kernels import make_key, normal, pulse_update_expected, pulse_update_stochastic
from analogsim.kernels.rng import sub_key

KEY = make_key(99, 2)
MASK = (1 << 64) - 1
GAMMA, M1, M2, C0 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, \
    0x6A09E667F3BCC909
TAG_CTOC, TAG_X, TAG_D = 1, 2, 3
_pow = np.frompyfunc(math.pow, 2, 1)  # libm pow, as the power-step response calls it


# --------------------------------------------------------------------------- twins


def u64_twin(key: int, counter: int, idx: np.ndarray) -> np.ndarray:
    """Documented generator: ``mix(s + (idx + 1)·γ)``, ``s = mix(key ^ mix(ctr·γ + c0))``."""
    def mix(z):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(M1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(M2)
        return z ^ (z >> np.uint64(31))
    s = mix(np.uint64(key) ^ mix(np.array([(counter * GAMMA + C0) & MASK], dtype=np.uint64)))
    return mix(s + (idx.astype(np.uint64) + np.uint64(1)) * np.uint64(GAMMA))


def uniform_twin(key: int, counter: int, n: int) -> np.ndarray:
    h = u64_twin(key, counter, np.arange(n))
    return ((h >> np.uint64(12)).astype(np.float64) + 0.5) * 2.0**-52


def ipow(base: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Binary powering with the kernel's multiplication order."""
    f = np.ones_like(base)
    for k in range(int(n.max()).bit_length()):
        f = np.where((n >> k) & 1, f * base, f)
        base = base * base
    return f


def pow_pulse(g, alpha, pot, gamma, s):
    """One power-step pulse of relative size ``s``: ``G + sα(1 - G)^γ`` or ``G - sαG^γ``."""
    if pot:
        return np.minimum(g + s * alpha * _pow(1.0 - g, gamma).astype(np.float64), 1.0)
    return np.maximum(g - s * alpha * _pow(g, gamma).astype(np.float64), 0.0)


def pow_device(g, alpha, e, pot, gamma):
    """``⌊e⌋`` whole power-step pulses one after another, then one of size ``e - ⌊e⌋``."""
    k = np.floor(e)
    for t in range(int(k.max(initial=0))):
        g = np.where(t < k, pow_pulse(g, alpha, pot, gamma, 1.0), g)
    frac = e - k
    return np.where(frac > 0, pow_pulse(g, alpha, pot, gamma, frac), g)


def stage(p, m, alpha, n, up, soft, ctoc, z, gamma=0.0):
    """One direction of pulses on the pair (p, m); ``z`` = ctoc normals (2, ...) for G+, G-.

    ``gamma > 0``: the power-step response (soft/hard ignored)."""
    e = [n.astype(np.float64), n.astype(np.float64)]
    if ctoc > 0:
        e = [np.where(n > 0, np.maximum(n + ctoc * np.sqrt(n) * z[k], 0.0), 0.0) for k in (0, 1)]
    if gamma > 0:
        return pow_device(p, alpha, e[0], up, gamma), pow_device(m, alpha, e[1], not up, gamma)
    if soft:
        if ctoc > 0:
            fp, fm = (unit_pow_twin(1.0 - alpha, ek) for ek in e)
        else:
            fp = fm = ipow(1.0 - alpha, n)
        # Potentiation as G + (1 - G)(1 - f): f = 1 (no pulse) leaves G exactly.
        p2 = p + (1.0 - p) * (1.0 - fp) if up else p * fp
        m2 = m * fm if up else m + (1.0 - m) * (1.0 - fm)
    else:
        dp, dm = 0.5 * alpha * e[0], 0.5 * alpha * e[1]
        p2 = np.minimum(p + dp, 1.0) if up else np.maximum(p - dp, 0.0)
        m2 = np.maximum(m - dm, 0.0) if up else np.minimum(m + dm, 1.0)
    return np.where(n == 0, p, p2), np.where(n == 0, m, m2)


def device_twin(dev, n_up, n_dn, soft, ctoc, key, counter, gamma=0.0, shared=False):
    """UP then DOWN pulses on every cell; returns new (gp, gm) float32. ``shared``: the
    (UP, G+) and (DOWN, G+) normals serve both devices (``ctoc_scope = "cell"``)."""
    p, m = dev["gp"].astype(np.float64), dev["gm"].astype(np.float64)
    z = np.zeros((4,) + p.shape)
    if ctoc > 0:
        z = normal(sub_key(key, TAG_CTOC), counter, 4 * p.size).reshape(p.shape + (4,))
        z = np.moveaxis(z, -1, 0)
        if shared:
            z = z[[0, 0, 2, 2]]
    p2, m2 = stage(p, m, dev["alpha_up"].astype(np.float64), n_up, True, soft, ctoc, z[0:2],
                   gamma)
    p2, m2 = stage(p2, m2, dev["alpha_down"].astype(np.float64), n_dn, False, soft, ctoc,
                   z[2:4], gamma)
    p2 = np.where(dev["frozen_p"] == 1, p, p2).astype(np.float32)
    m2 = np.where(dev["frozen_m"] == 1, m, m2).astype(np.float32)
    return p2, m2


def expected_twin(dev, dw, dw_min, soft, ctoc, max_pulses, key, counter, gamma=0.0,
                  shared=False):
    a = np.minimum(np.abs(dw.astype(np.float64)) * (1.0 / dw_min), max_pulses + 1.0)
    u = uniform_twin(key, counter, dw.size).reshape(dw.shape)
    fl = np.floor(a)
    n = fl.astype(np.int64) + (u < a - fl)
    n_clip = int(np.count_nonzero(n > max_pulses))
    n = np.minimum(n, max_pulses)
    n_up, n_dn = np.where(dw > 0, n, 0), np.where(dw > 0, 0, n)
    return (device_twin(dev, n_up, n_dn, soft, ctoc, key, counter, gamma, shared),
            int(n.sum()), n_clip)


def trains_twin(v, scale, bl, key, counter):
    """Bits (B, bl, n) of the pulse trains of every column of ``v``."""
    b, n = v.shape
    per = (bl + 1) // 2
    p = scale * np.abs(v.astype(np.float64))
    cut = int(np.count_nonzero(p > 1.0))
    thr = (np.minimum(p, 1.0) * 2.0**32 + 0.5).astype(np.uint64)
    idx = (np.arange(b)[:, None, None] * n + np.arange(n)[None, None, :]) * per \
        + np.arange(per)[None, :, None]
    h = u64_twin(key, counter, idx)
    lo = (h & np.uint64(0xFFFFFFFF)) < thr[:, None, :]
    hi = (h >> np.uint64(32)) < thr[:, None, :]
    bits = np.stack([lo, hi], axis=2).reshape(b, 2 * per, n)[:, :bl]
    return bits, cut


def stochastic_twin(dev, x, d, lr, bl, dw_min, um, soft, ctoc, key, counter, gamma=0.0,
                    shared=False):
    xmax, dmax = float(np.abs(x).max()), float(np.abs(d).max())
    base = lr / (bl * dw_min)
    ax = math.sqrt(base * dmax / xmax) if um else math.sqrt(base)
    cd = base / ax
    xb, cut_x = trains_twin(x, ax, bl, sub_key(key, TAG_X), counter)
    db, cut_d = trains_twin(d, cd, bl, sub_key(key, TAG_D), counter)
    coinc = db[:, :, :, None] & xb[:, :, None, :]                 # (B, bl, n_out, n_in)
    opposite = (d < 0)[:, :, None] != (x < 0)[:, None, :]         # (B, n_out, n_in)
    n_tot = coinc.sum(axis=(0, 1))
    n_up = (coinc & opposite[:, None]).sum(axis=(0, 1))
    new = device_twin(dev, n_up, n_tot - n_up, soft, ctoc, key, counter, gamma, shared)
    return new, int(n_tot.sum()), cut_x + cut_d


def make_device(shape, seed=0, g=None, alpha=(0.01, 0.02), stuck=0.1):
    rng = np.random.default_rng(seed)
    dev = dict(
        gp=rng.uniform(0.05, 0.95, shape).astype(np.float32) if g is None
        else np.full(shape, g, dtype=np.float32),
        gm=rng.uniform(0.05, 0.95, shape).astype(np.float32) if g is None
        else np.full(shape, g, dtype=np.float32),
        alpha_up=rng.uniform(*alpha, shape).astype(np.float32),
        alpha_down=rng.uniform(*alpha, shape).astype(np.float32),
        frozen_p=(rng.random(shape) < stuck).astype(np.uint8),
        frozen_m=(rng.random(shape) < stuck).astype(np.uint8),
    )
    return dev


def dev_kw(dev):
    return {k: dev[k] for k in ("alpha_up", "alpha_down", "frozen_p", "frozen_m")}


# --------------------------------------------------------------------------- expected mode


@pytest.mark.parametrize("soft", [True, False])
@pytest.mark.parametrize("stuck", [0.1, 0.0])
@pytest.mark.parametrize(("nmax", "density"), [(3, 1.0), (15, 0.6), (90, 0.9), (300, 0.8),
                                               (7, 0.05)])
@pytest.mark.parametrize(("ctoc", "shared"), [(0.0, False), (0.35, False), (0.35, True)])
def test_device_worker_with_fixed_counts(soft, stuck, nmax, density, ctoc, shared):
    """dw = n·dw_min with dw_min a power of two: counts are exact, no rounding draw decides.
    The cases cover the fused count-and-update loops (counts < 16 and < 256, rows with and
    without stuck devices), the dense row paths (with and without ctoc) and the compacted
    one."""
    rng = np.random.default_rng(nmax)
    shape = (6, 70)
    dev = make_device(shape, seed=nmax, alpha=(0.0, 0.01), stuck=stuck)
    dev["alpha_up"][0, 0] = 0.0
    n = rng.integers(-nmax, nmax + 1, shape) * (rng.random(shape) < density)
    dw_min = 2.0**-10
    dw = (n * dw_min).astype(np.float32)
    want, total, _ = expected_twin(dev, dw, dw_min, soft, ctoc, 10_000, KEY, 4, shared=shared)
    gp, gm = dev["gp"].copy(), dev["gm"].copy()
    got = pulse_update_expected(gp, gm, dw, dw_min=dw_min, soft=soft, ctoc=ctoc,
                                max_pulses=10_000, key=KEY, counter=4, ctoc_shared=shared,
                                **dev_kw(dev))
    assert got == (total, 0) == (int(np.abs(n).sum()), 0)
    np.testing.assert_array_equal(gp, want[0])
    np.testing.assert_array_equal(gm, want[1])
    stuck_p = dev["frozen_p"] == 1
    np.testing.assert_array_equal(gp[stuck_p], dev["gp"][stuck_p])


@pytest.mark.parametrize("soft", [True, False])
@pytest.mark.parametrize("ctoc", [0.0, 0.4])
@pytest.mark.parametrize("stuck", [0.1, 0.0])
def test_expected_matches_twin_with_stochastic_rounding(soft, ctoc, stuck):
    rng = np.random.default_rng(7)
    shape = (9, 33)
    dev = make_device(shape, seed=3, stuck=stuck)
    dw_min = 0.003
    dw = (rng.standard_normal(shape) * 0.004).astype(np.float32)
    dw[0, :3] = [0.0, 1.0, -1.0]          # no pulse, and two cells cut at max_pulses
    want, total, n_clip = expected_twin(dev, dw, dw_min, soft, ctoc, 40, KEY, 11)
    gp, gm = dev["gp"].copy(), dev["gm"].copy()
    got = pulse_update_expected(gp, gm, dw, dw_min=dw_min, soft=soft, ctoc=ctoc, max_pulses=40,
                                key=KEY, counter=11, **dev_kw(dev))
    assert got == (total, n_clip) and n_clip == 2
    np.testing.assert_array_equal(gp, want[0])
    np.testing.assert_array_equal(gm, want[1])


@pytest.mark.parametrize("gamma", [0.5, 2.0])
@pytest.mark.parametrize(("ctoc", "shared"), [(0.0, False), (0.4, False), (0.4, True)])
@pytest.mark.parametrize("big", [False, True])
def test_expected_power_step_matches_twin(gamma, ctoc, shared, big):
    """The power-step response (aihwkit PowStepDevice on [0, 1]) per pulse, bit for bit;
    ``big``: dense rows with counts up to 60 (the paths that would otherwise be fused)."""
    rng = np.random.default_rng(int(10 * gamma) + big)
    shape = (7, 40)
    dev = make_device(shape, seed=5, alpha=(0.01, 0.05))
    dw_min = 2.0**-10
    n = rng.integers(-60 if big else -3, 61 if big else 4, shape)
    dw = (n * dw_min).astype(np.float32)
    want, total, _ = expected_twin(dev, dw, dw_min, True, ctoc, 100, KEY, 3, gamma, shared)
    gp, gm = dev["gp"].copy(), dev["gm"].copy()
    got = pulse_update_expected(gp, gm, dw, dw_min=dw_min, soft=True, ctoc=ctoc, max_pulses=100,
                                key=KEY, counter=3, pow_gamma=gamma, ctoc_shared=shared,
                                **dev_kw(dev))
    assert got == (total, 0) == (int(np.abs(n).sum()), 0)
    np.testing.assert_array_equal(gp, want[0])
    np.testing.assert_array_equal(gm, want[1])
    assert np.all((gp >= 0) & (gp <= 1) & (gm >= 0) & (gm <= 1))


def test_stochastic_power_step_matches_twin():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 70)).astype(np.float32)
    d = rng.standard_normal((5, 6)).astype(np.float32)
    dev = make_device((6, 70), seed=9, alpha=(0.001, 0.01))
    want, total, cut = stochastic_twin(dev, x, d, 0.05, 31, 0.01, True, True, 0.0, KEY, 2, 1.5)
    gp, gm = dev["gp"].copy(), dev["gm"].copy()
    got = pulse_update_stochastic(gp, gm, x, d, 0.05, bl=31, dw_min=0.01, update_management=True,
                                  soft=True, ctoc=0.0, key=KEY, counter=2, pow_gamma=1.5,
                                  **dev_kw(dev))
    assert got == (total, cut) and total > 0
    np.testing.assert_array_equal(gp, want[0])
    np.testing.assert_array_equal(gm, want[1])


def test_power_step_gamma_one_is_soft_bounds():
    """γ = 1 is soft bounds (per pulse instead of the closed form: equal to rounding)."""
    dev = make_device((4, 30), seed=1, stuck=0.0)
    dw = (np.random.default_rng(0).integers(-20, 21, (4, 30)) * 2.0**-10).astype(np.float32)
    out = []
    for gamma in (0.0, 1.0):
        gp, gm = dev["gp"].copy(), dev["gm"].copy()
        pulse_update_expected(gp, gm, dw, dw_min=2.0**-10, soft=True, ctoc=0.0, max_pulses=64,
                              key=KEY, counter=0, pow_gamma=gamma, **dev_kw(dev))
        out.append((gp, gm))
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(out[0][1], out[1][1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("stuck", [0.1, 0.0])
def test_expected_dw_scale_is_a_float32_product(stuck):
    """dw_scale = s gives the same bits as passing dw * float32(s) (dense and sparse rows)."""
    rng = np.random.default_rng(3)
    shape = (12, 150)
    dev = make_device(shape, seed=4, stuck=stuck)
    dw = (rng.standard_normal(shape) * 0.3).astype(np.float32)
    dw[::3] *= np.float32(0.01)           # every third row sparse
    kw = dict(dw_min=0.001, soft=True, ctoc=0.0, max_pulses=500, key=KEY, counter=2)
    g1 = dev["gp"].copy(), dev["gm"].copy()
    r1 = pulse_update_expected(*g1, dw, dw_scale=-0.037, **kw, **dev_kw(dev))
    g2 = dev["gp"].copy(), dev["gm"].copy()
    r2 = pulse_update_expected(*g2, dw * np.float32(-0.037), **kw, **dev_kw(dev))
    assert r1 == r2 and r1[0] > 0
    for a, b in zip(g1, g2, strict=True):
        assert a.tobytes() == b.tobytes()


def test_expected_mean_update_is_unbiased():
    """Hard bounds far from the bounds: E[Δw] = dw for |dw| below one pulse."""
    shape, n_calls, dw_min = (4, 8), 600, 1e-4
    rng = np.random.default_rng(1)
    dw = (rng.uniform(-0.9, 0.9, shape) * dw_min).astype(np.float32)
    dev = make_device(shape, g=0.5, alpha=(dw_min, dw_min), stuck=0.0)
    dev["alpha_up"][:] = dev["alpha_down"][:] = np.float32(dw_min)   # w_max = 1
    gp, gm = dev["gp"], dev["gm"]
    for c in range(n_calls):
        pulse_update_expected(gp, gm, dw, dw_min=dw_min, soft=False, ctoc=0.0, max_pulses=5,
                              key=KEY, counter=c, **dev_kw(dev))
    mean = (gp.astype(np.float64) - gm) / n_calls
    # Rounding std per call ≤ dw_min / 2; 6 standard errors.
    np.testing.assert_allclose(mean, dw, atol=6 * 0.5 * dw_min / math.sqrt(n_calls))


@pytest.mark.parametrize("up", [True, False])
def test_soft_closed_form_equals_sequential_pulses(up):
    shape, n = (3, 5), 37
    dw_min = 2.0**-8
    dev = make_device(shape, seed=5, alpha=(0.01, 0.05), stuck=0.0)
    sign = 1 if up else -1
    g_once = dev["gp"].copy(), dev["gm"].copy()
    pulse_update_expected(*g_once, np.full(shape, sign * n * dw_min, dtype=np.float32),
                          dw_min=dw_min, soft=True, ctoc=0.0, max_pulses=100, key=KEY, counter=0,
                          **dev_kw(dev))
    g_seq = dev["gp"].copy(), dev["gm"].copy()
    one = np.full(shape, sign * dw_min, dtype=np.float32)
    for c in range(n):
        pulse_update_expected(*g_seq, one, dw_min=dw_min, soft=True, ctoc=0.0, max_pulses=100,
                              key=KEY, counter=c, **dev_kw(dev))
    np.testing.assert_allclose(g_once[0], g_seq[0], rtol=1e-5)
    np.testing.assert_allclose(g_once[1], g_seq[1], rtol=1e-5)
    assert (np.all(g_once[0] > dev["gp"]) if up else np.all(g_once[0] < dev["gp"]))


@pytest.mark.parametrize("shared", [False, True])
def test_ctoc_spreads_the_step_with_the_right_std(shared):
    """Hard bounds: each device moves by α/2 · n_eff, n_eff ~ N(n, ctoc² n) (floored at 0);
    independent per device, the weight's std is ctoc √n / √2 pulses, shared (cell scope)
    it is ctoc √n and G+ + G- stays as it was (to float32 rounding of each device)."""
    shape, n, ctoc = (200, 100), 9, 0.2
    dw_min = 2.0**-12
    dev = make_device(shape, g=0.5, stuck=0.0)
    dev["alpha_up"][:] = dev["alpha_down"][:] = np.float32(dw_min)
    gp, gm = dev["gp"], dev["gm"]
    pulse_update_expected(gp, gm, np.full(shape, n * dw_min, dtype=np.float32), dw_min=dw_min,
                          soft=False, ctoc=ctoc, max_pulses=100, key=KEY, counter=0,
                          ctoc_shared=shared, **dev_kw(dev))
    steps = (gp.astype(np.float64) - 0.5) / (0.5 * dw_min)
    assert abs(steps.mean() - n) < 0.02
    assert abs(steps.std() - ctoc * math.sqrt(n)) < 0.02
    w_steps = (gp.astype(np.float64) - gm) / dw_min      # pulses of the weight
    want = ctoc * math.sqrt(n) / (1.0 if shared else math.sqrt(2.0))
    assert abs(w_steps.std() - want) < 0.02
    if shared:
        np.testing.assert_allclose(gp.astype(np.float64) + gm, 1.0, rtol=0, atol=1e-7)


# --------------------------------------------------------------------------- stochastic mode


@pytest.mark.parametrize(("soft", "um", "ctoc", "bl", "lr", "shared"), [
    (True, True, 0.0, 31, 0.05, False), (False, False, 0.0, 7, 0.05, False),
    (True, False, 0.3, 64, 0.05, False), (False, True, 0.5, 1, 0.05, False),
    (False, True, 0.5, 9, 0.05, True), (True, False, 0.3, 31, 0.05, True),
    # few pulses: rows from 4 % to 33 % pulsed, so both ctoc paths (compacted, dense)
    (True, False, 0.3, 2, 0.0003, False), (False, False, 0.45, 2, 0.0003, False),
    (False, False, 0.45, 2, 0.0003, True),
])
def test_stochastic_matches_twin(soft, um, ctoc, bl, lr, shared):
    rng = np.random.default_rng(bl)
    b, n_out, n_in = 6, 5, 70            # 70 inputs: two 64-column words, one partial
    x = rng.standard_normal((b, n_in)).astype(np.float32)
    x[:, 3] = 0.0
    x[0, 5] = 40.0                       # probability cut at 1
    d = rng.standard_normal((b, n_out)).astype(np.float32)
    dev = make_device((n_out, n_in), seed=bl, alpha=(0.001, 0.01))
    dw_min = 0.01
    want, total, cut = stochastic_twin(dev, x, d, lr, bl, dw_min, um, soft, ctoc, KEY, 6,
                                       shared=shared)
    gp, gm = dev["gp"].copy(), dev["gm"].copy()
    got = pulse_update_stochastic(gp, gm, x, d, lr, bl=bl, dw_min=dw_min, update_management=um,
                                  soft=soft, ctoc=ctoc, key=KEY, counter=6, ctoc_shared=shared,
                                  **dev_kw(dev))
    assert got == (total, cut)
    assert total > 0 and cut >= 1
    np.testing.assert_array_equal(gp, want[0])
    np.testing.assert_array_equal(gm, want[1])


@pytest.mark.parametrize("um", [True, False])
def test_stochastic_mean_update_follows_minus_lr_dT_x(um):
    """Fresh copy per call, hard bounds, ctoc 0: mean Δw ≈ -lr dᵀx, pulses ≈ Poisson."""
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (3, 4)).astype(np.float32)
    d = rng.uniform(-1, 1, (3, 2)).astype(np.float32)
    lr, dw_min, bl, n_calls = 0.004, 0.001, 31, 1500
    dev = make_device((2, 4), g=0.5, stuck=0.0)
    dev["alpha_up"][:] = dev["alpha_down"][:] = np.float32(dw_min)
    dws = np.empty((n_calls, 2, 4))
    for c in range(n_calls):
        gp, gm = dev["gp"].copy(), dev["gm"].copy()
        _, cut = pulse_update_stochastic(gp, gm, x, d, lr, bl=bl, dw_min=dw_min,
                                         update_management=um, soft=False, ctoc=0.0, key=KEY,
                                         counter=c, **dev_kw(dev))
        assert cut == 0
        dws[c] = gp.astype(np.float64) - gm
    target = -lr * d.T.astype(np.float64) @ x
    # Per-call variance ≤ dw_min · lr Σ_b |d x| (Poisson-like); 6 standard errors.
    var = dw_min * lr * (np.abs(d.T) @ np.abs(x))
    np.testing.assert_array_less(np.abs(dws.mean(axis=0) - target),
                                 6 * np.sqrt(var / n_calls) + 1e-9)


def test_stochastic_zero_input_does_nothing():
    dev = make_device((2, 3))
    gp, gm = dev["gp"].copy(), dev["gm"].copy()
    got = pulse_update_stochastic(gp, gm, np.zeros((4, 3), np.float32),
                                  np.ones((4, 2), np.float32), 0.1, bl=31, dw_min=0.001,
                                  update_management=True, soft=True, ctoc=0.0, key=KEY,
                                  counter=0, **dev_kw(dev))
    assert got == (0, 0)
    np.testing.assert_array_equal(gp, dev["gp"])


# --------------------------------------------------------------------------- validation


def expected_args(**kw):
    shape = (3, 4)
    dev = make_device(shape)
    args = dict(gp=dev["gp"], gm=dev["gm"], dw=np.zeros(shape, np.float32), dw_min=0.01,
                soft=True, ctoc=0.0, max_pulses=10, key=KEY, counter=0, **dev_kw(dev))
    args.update(kw)
    return args


@pytest.mark.parametrize(("kw", "exc", "pattern"), [
    (dict(dw=np.zeros((3, 4))), TypeError, "dw.dtype = float64"),
    (dict(gp=np.zeros((3, 4))), TypeError, "gp.dtype"),
    (dict(gm=np.zeros((3, 5), np.float32)), ValueError, r"gm.shape = \(3, 5\)"),
    (dict(alpha_up=np.zeros((4, 3), np.float32)), ValueError, "alpha_up.shape"),
    (dict(frozen_p=np.zeros((3, 4), bool)), TypeError, "frozen_p.dtype"),
    (dict(dw=np.zeros((3, 8), np.float32)[:, ::2]), ValueError, "dw is not C-contiguous"),
    (dict(gp=np.zeros((0, 4), np.float32)), ValueError, "gp.shape"),
    (dict(dw_min=0.0), ValueError, "dw_min"), (dict(ctoc=-1.0), ValueError, "ctoc"),
    (dict(max_pulses=0), ValueError, "max_pulses"), (dict(soft=1), TypeError, "soft"),
    (dict(key=2**64), ValueError, "key"), (dict(dw_scale=np.nan), ValueError, "dw_scale"),
    (dict(dw_scale=1e39), ValueError, "dw_scale"), (dict(dw_scale="2"), ValueError, "dw_scale"),
    (dict(pow_gamma=-1.0), ValueError, "pow_gamma"), (dict(pow_gamma=np.inf), ValueError,
                                                      "pow_gamma"),
])
def test_expected_rejects_bad_arguments(kw, exc, pattern):
    with pytest.raises(exc, match=pattern):
        pulse_update_expected(**expected_args(**kw))


def test_expected_rejects_shared_and_non_finite():
    g = np.full((3, 4), 0.5, np.float32)
    with pytest.raises(ValueError, match="gp and gm share memory"):
        pulse_update_expected(**expected_args(gp=g, gm=g))
    dw = np.full((3, 4), 0.01, np.float32)
    dw[1, 1] = np.nan
    args = expected_args(dw=dw)
    before = args["gp"].copy()
    with pytest.raises(ValueError, match="dw contains 1 NaN or Inf"):
        pulse_update_expected(**args)
    assert args["gp"][1, 1] == before[1, 1]
    a = np.full((3, 4), 0.01, np.float32)
    a[2, 2] = 1.5
    with pytest.raises(ValueError, match="alpha_up/alpha_down: 1 pulsed cells"):
        pulse_update_expected(**expected_args(dw=np.full((3, 4), 0.05, np.float32), alpha_up=a))


def stochastic_args(**kw):
    shape = (3, 4)
    dev = make_device(shape)
    args = dict(gp=dev["gp"], gm=dev["gm"], x=np.ones((2, 4), np.float32),
                d=np.ones((2, 3), np.float32), lr=0.01, bl=31, dw_min=0.001,
                update_management=True, soft=True, ctoc=0.0, key=KEY, counter=0, **dev_kw(dev))
    args.update(kw)
    return args


@pytest.mark.parametrize(("kw", "exc", "pattern"), [
    (dict(x=np.ones((2, 4))), TypeError, "x.dtype = float64"),
    (dict(x=np.ones((2, 5), np.float32)), ValueError, r"x.shape = \(2, 5\)"),
    (dict(d=np.ones((3, 3), np.float32)), ValueError, r"d.shape = \(3, 3\)"),
    (dict(x=np.ones((0, 4), np.float32), d=np.ones((0, 3), np.float32)), ValueError, "x.shape"),
    (dict(x=np.ones((2, 8), np.float32)[:, ::2]), ValueError, "x is not C-contiguous"),
    (dict(x=np.array([[1, 2, np.nan, 4]] * 2, np.float32)), ValueError, "x contains 2 NaN"),
    (dict(d=np.array([[1, np.inf, 3]] * 2, np.float32)), ValueError, "d contains 2 NaN"),
    (dict(lr=0.0), ValueError, "lr"), (dict(lr=np.nan), ValueError, "lr"),
    (dict(bl=0), ValueError, "bl"), (dict(bl=65), ValueError, "bl"),
    (dict(update_management=None), TypeError, "update_management"),
    (dict(counter=-3), ValueError, "counter"),
])
def test_stochastic_rejects_bad_arguments(kw, exc, pattern):
    with pytest.raises(exc, match=pattern):
        pulse_update_stochastic(**stochastic_args(**kw))


@pytest.mark.parametrize(("n", "bl", "zeros"), [(70, 31, 0.25), (64, 8, 0.25), (5, 1, 0.25),
                                                (130, 64, 0.25), (200, 31, 0.85),
                                                (25, 9, 0.8)])
def test_column_words_are_the_documented_trains(n, bl, zeros):
    """Bit ``j mod 64`` of ``xt[b·bl + t, j // 64]`` is bit ``t`` of column ``j``'s train
    (zero inputs never fire; padding columns stay 0), in both builds of the driver and
    for any grouping of the samples; mostly zero inputs take the sparse block path."""
    from analogsim.kernels.stochastic import _pack_columns

    rng = np.random.default_rng(n + bl)
    x = rng.standard_normal((3, n)).astype(np.float32)
    x[:, ::4] = 0.0
    x[rng.random(x.shape) < zeros] = 0.0
    x[1, 2] = 9.0                                       # p = 0.3·9 > 1: cut
    key, counter, scale = make_key(3, 4), 17, 0.3
    bits, cut = trains_twin(x, scale, bl, key, counter)  # (B, bl, n)
    n_words = -(-n // 64)
    padded = np.zeros((3, bl, 64 * n_words), dtype=np.uint64)
    padded[:, :, :n] = bits
    want = (padded.reshape(3, bl, n_words, 64) << np.arange(64, dtype=np.uint64)).sum(
        axis=-1, dtype=np.uint64)
    for driver, groups in ((_pack_columns, 2), (_pack_columns, 3), (_pack_columns.serial, 1)):
        xt = np.full((3 * bl + 1, n_words), 7, dtype=np.uint64)
        xneg = np.zeros((4, n_words), dtype=np.uint64)
        clips = np.zeros(3, dtype=np.int64)
        driver(x, scale, bl, np.uint64(key), np.uint64(counter), xt, xneg, clips, groups)
        np.testing.assert_array_equal(xt[:-1].reshape(3, bl, n_words), want)
        assert int(clips.sum()) == cut >= 1
        neg = np.zeros((3, 64 * n_words), dtype=np.uint64)
        neg[:, :n] = x < 0
        np.testing.assert_array_equal(
            xneg[:3], (neg.reshape(3, n_words, 64) << np.arange(64, dtype=np.uint64)).sum(
                axis=-1, dtype=np.uint64))


def test_expected_in_row_blocks_equals_one_call():
    """first_row gives each row its own draws: updating blocks of rows reproduces one call."""
    rng = np.random.default_rng(8)
    shape = (10, 40)
    dev = make_device(shape, seed=2, stuck=0.0)
    dw = (rng.standard_normal(shape) * 0.02).astype(np.float32)
    kw = dict(dw_min=0.004, soft=True, ctoc=0.3, max_pulses=50, key=KEY, counter=5)
    whole = dev["gp"].copy(), dev["gm"].copy()
    r_whole = pulse_update_expected(*whole, dw, **kw, **dev_kw(dev))
    parts = dev["gp"].copy(), dev["gm"].copy()
    total = [0, 0]
    for r0, r1 in ((0, 3), (3, 4), (4, 10)):
        b = slice(r0, r1)
        got = pulse_update_expected(parts[0][b], parts[1][b], dw[b], first_row=r0, **kw,
                                    **{k: v[b] for k, v in dev_kw(dev).items()})
        total = [total[0] + got[0], total[1] + got[1]]
    assert tuple(total) == r_whole
    for a, b in zip(whole, parts, strict=True):
        assert a.tobytes() == b.tobytes()
