"""Conv layers on crossbars: forward vs naive loops, pooling, gradients, FA = BP, charges."""

from __future__ import annotations

import numpy as np
import pytest

from analogsim import oracle
from analogsim.hardware.ledger import Ledger
from analogsim.hardware.presets import get_preset
from analogsim.layers.conv import AnalogConv2d, DigitalConv2d
from analogsim.layers.linear import TransposeRequiredError
from analogsim.layers.network import ModelConfig, build_network
from analogsim.layers.unfold import Pool2d, Window, fold, pair, unfold
from analogsim.rules import Schedule, get_rule

IDEAL = get_preset("ideal")

# (in_shape, c_out, kernel, stride, padding, dilation, groups)
GEOMETRIES = [
    ((3, 7, 6), 4, 3, 1, 0, 1, 1),
    ((3, 7, 6), 4, 3, 1, 1, 1, 1),
    ((2, 9, 8), 3, (3, 2), 2, (1, 0), 1, 1),
    ((2, 9, 9), 5, 3, 1, 2, 2, 1),
    ((4, 8, 7), 6, 3, (2, 1), 1, (1, 2), 2),
    ((4, 6, 6), 4, 1, 1, 0, 1, 4),  # depthwise 1x1
]


def naive_conv(x, w, b, stride, padding, dilation, groups):
    """Loops over every output pixel and kernel tap (float64): the reference."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n, c, h, wd = x.shape
    co, cig, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, co, ho, wo))
    cog = co // groups
    for o in range(co):
        g = o // cog
        for r in range(ho):
            for q in range(wo):
                acc = np.full(n, float(b[o]))
                for ci in range(cig):
                    for i in range(kh):
                        for j in range(kw):
                            acc += w[o, ci, i, j] * xp[:, g * cig + ci, r * sh + i * dh,
                                                       q * sw + j * dw]
                out[:, o, r, q] = acc
    return out


def naive_pool(x, kind, size, stride):
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = size, stride
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.zeros((n, c, ho, wo))
    for r in range(ho):
        for q in range(wo):
            win = x[:, :, r * sh:r * sh + kh, q * sw:q * sw + kw]
            out[:, :, r, q] = win.max(axis=(2, 3)) if kind == "max" else win.mean(axis=(2, 3))
    return out


def naive_pool_backward(x, g, kind, size, stride):
    """Route each output error to its window's (first) maximum, or spread it evenly."""
    (kh, kw), (sh, sw) = size, stride
    gx = np.zeros_like(x)
    for b in range(x.shape[0]):
        for ch in range(x.shape[1]):
            for r in range(g.shape[2]):
                for q in range(g.shape[3]):
                    win = x[b, ch, r * sh:r * sh + kh, q * sw:q * sw + kw]
                    if kind == "max":
                        i, j = np.unravel_index(np.argmax(win), win.shape)
                        gx[b, ch, r * sh + i, q * sw + j] += g[b, ch, r, q]
                    else:
                        gx[b, ch, r * sh:r * sh + kh, q * sw:q * sw + kw] += \
                            g[b, ch, r, q] / (kh * kw)
    return gx


def _analog_weight(layer) -> np.ndarray:
    """The kernels a conv layer computes with (oracle: non-physical), PyTorch layout."""
    w = [oracle.weights(k.array) * float(k.scale) for k in layer.kernels]
    return np.concatenate(w, axis=0).reshape(layer.kernel_shape)


@pytest.mark.parametrize("geo", GEOMETRIES, ids=lambda g: "x".join(map(str, g[0])) + f"-{g}")
def test_forward_equals_naive_loops_on_ideal_hardware(geo):
    in_shape, c_out, k, s, p, d, g = geo
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, int(np.prod(in_shape)))).astype(np.float32)
    kw = dict(stride=s, padding=p, dilation=d, groups=g, seed=2, activation="tanh")
    ana = AnalogConv2d(in_shape, c_out, k, hw=IDEAL, **kw)
    dig = DigitalConv2d(in_shape, c_out, k, **kw)
    bias = rng.standard_normal(c_out)
    for layer in (ana, dig):
        layer.b[:] = bias
    w = _analog_weight(ana)
    np.testing.assert_allclose(w, dig.weight, rtol=1e-5, atol=1e-6)  # one init, both backends
    ref = naive_conv(x.reshape(3, *in_shape).astype(np.float64), w, ana.b,
                     pair("s", s, 1), pair("p", p, 0), pair("d", d, 1), g)
    for layer in (ana, dig):
        u, h = layer.forward(x)
        assert u.shape == (3, layer.n_out) == (3, int(np.prod(layer.out_shape)))
        np.testing.assert_allclose(u, ref.reshape(3, -1), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(h, np.tanh(u), rtol=1e-6)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize(("size", "stride"), [((2, 2), (2, 2)), ((3, 2), (2, 1)), ((3, 3), (1, 1))])
def test_pooling_forward_and_backward_equal_numpy_loops(kind, size, stride):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 6))
    pool = Pool2d(kind, size, stride)
    y, sw = pool.forward(x)
    np.testing.assert_allclose(y, naive_pool(x, kind, size, stride), rtol=1e-12)
    g = rng.standard_normal(y.shape)
    gx = pool.backward(g, sw, x.shape)
    np.testing.assert_allclose(gx, naive_pool_backward(x, g, kind, size, stride), rtol=1e-12)


@pytest.mark.parametrize("geo", GEOMETRIES[:5])
def test_fold_is_the_transpose_of_unfold(geo):
    in_shape, _, k, s, p, d, _ = geo
    win = Window(k, s, p, d)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, *in_shape))
    cols = unfold(x, win)
    c = rng.standard_normal(cols.shape)
    assert np.sum(cols * c) == pytest.approx(np.sum(x * fold(c, win, x.shape)), rel=1e-12)


# ---------------------------------------------------------------------------- gradients

CONV_NET = ModelConfig(input_shape=(2, 9, 9), hidden="tanh", layers=(
    "conv:4x3x3,padding=1", "pool:max2", "conv:6x3x3,stride=2,padding=1,groups=2",
    "pool:avg2,stride=1", "fc:5", "fc:3"))


def _batch(n_in, b=4, n_out=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, n_in)).astype(np.float32)
    t = np.eye(n_out, dtype=np.float32)[rng.integers(0, n_out, b)]
    return x, t


def _compute(rule, net, x, t):
    if rule.net is not net:
        rule.build(net)
    return rule.compute(net, x, t, Schedule(net.ledger, IDEAL.cost))


def _loss(net, x, t):
    return net.loss.value(net.forward(x, cache=False), t)


def _kernel_gradient(layer, up):
    """∂E/∂W_j of every group from an Update: Σ_positions δ ⊗ x (the layer's update rule)."""
    if not hasattr(layer, "kernels"):
        return [up.delta.T @ up.x]
    cols = unfold(layer.pool.forward(up.x.reshape(-1, *layer.in_shape))[0]
                  if layer.pool else up.x.reshape(-1, *layer.in_shape), layer.window)
    dpos = up.delta.reshape(len(up.x), layer.c_out, -1).transpose(0, 2, 1).reshape(
        -1, layer.c_out)
    return [dpos[:, j * layer.k_out:(j + 1) * layer.k_out].T
            @ cols[:, j * layer.k_in:(j + 1) * layer.k_in] for j in range(layer.groups)]


def test_bp_through_conv_matches_finite_differences():
    net = build_network(CONV_NET.replace(backend="digital"), IDEAL, seed=5)
    assert [getattr(la, "kind", "fc") for la in net.layers] == ["conv", "conv", "fc", "fc"]
    for layer in net.layers:
        for k in getattr(layer, "kernels", [layer]):
            k.w = k.w.astype(np.float64)
        layer.b = np.random.default_rng(6).standard_normal(layer.b.shape)
    x, t = _batch(net.n_in)
    x = x.astype(np.float64)
    _, ups = _compute(get_rule("bp"), net, x, t)
    by_layer = {id(u.target): u for u in ups}
    h, rng = 1e-6, np.random.default_rng(7)
    for layer in net.layers:
        up = by_layer[id(layer)]
        for grad, k in zip(_kernel_gradient(layer, up), getattr(layer, "kernels", [layer]),
                           strict=True):
            for _ in range(4):
                i, j = rng.integers(k.w.shape[0]), rng.integers(k.w.shape[1])
                old = k.w[i, j]
                k.w[i, j] = old + h
                lp = _loss(net, x, t)
                k.w[i, j] = old - h
                lm = _loss(net, x, t)
                k.w[i, j] = old
                assert grad[i, j] == pytest.approx((lp - lm) / (2 * h), rel=1e-5, abs=1e-9)
        if hasattr(layer, "kernels"):  # the bias gradient: Σ over positions
            gb = up.delta.reshape(len(x), layer.c_out, -1).sum(axis=(0, 2))
            old = layer.b[0]
            layer.b[0] = old + h
            lp = _loss(net, x, t)
            layer.b[0] = old - h
            lm = _loss(net, x, t)
            layer.b[0] = old
            assert gb[0] == pytest.approx((lp - lm) / (2 * h), rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("transpose", ["bidirectional", "probe", "shadow", "twin"])
def test_bp_on_ideal_hardware_equals_the_digital_twin(transpose):
    ana = build_network(CONV_NET, IDEAL, seed=8, transpose=transpose)
    dig = build_network(CONV_NET.replace(backend="digital"), IDEAL, seed=8)
    x, t = _batch(ana.n_in, seed=1)
    _, ua = _compute(get_rule("bp"), ana, x, t)
    _, ud = _compute(get_rule("bp"), dig, x, t)
    for a, d in zip(ua, ud, strict=True):
        np.testing.assert_allclose(a.delta, d.delta, rtol=1e-3, atol=1e-6)
    scopes = {n.path for n in ana.ledger.walk() if n.name == "transpose"}
    assert "network/layer1/group0/transpose" in scopes  # W_jᵀ of each group, charged
    for j in (0, 1):  # a transposed read (bidirectional, twin) or digital MACs (probe, shadow)
        tr = ana.ledger.child("layer1").child(f"group{j}").child("transpose").totals()
        assert tr["mvm"] + tr["digital_macs"] > 0


def test_fa_with_the_forward_kernels_equals_bp_exactly():
    net = build_network(CONV_NET.replace(backend="digital"), IDEAL, seed=9)
    x, t = _batch(net.n_in, seed=2)
    fa = get_rule("fa", feedback="digital")
    fa.build(net)
    assert type(fa.feedback["B1"]).__name__ == "ConvFeedback"
    for l in range(1, len(net)):
        layer = net.layers[l]
        fa.set_feedback(l, layer.weight if hasattr(layer, "weight") else layer.w.T)
    _, u_fa = _compute(fa, net, x, t)
    _, u_bp = _compute(get_rule("bp"), net, x, t)
    for a, b in zip(u_fa, u_bp, strict=True):
        np.testing.assert_array_equal(a.delta, b.delta)


def test_fa_random_kernels_differ_from_bp_and_live_on_arrays():
    net = build_network(CONV_NET, IDEAL, seed=9)
    fa = get_rule("fa", seed=1)
    fa.build(net)
    fb = fa.feedback["B1"]
    assert [k.shape for k in fb.kernels] == [(net.layers[1].k_in, 3)] * 2  # K × C_o/g
    x, t = _batch(net.n_in, seed=2)
    _, ups = _compute(fa, net, x, t)
    assert all(np.all(np.isfinite(u.delta)) for u in ups)
    assert fa.ledger.child("B1").totals()["mvm"] > 0  # forward reads of the feedback arrays


def test_backward_without_transpose_strategy_fails_clearly():
    layer = AnalogConv2d((1, 5, 5), 2, 3, hw=IDEAL, seed=0)
    x = np.ones((2, 25), dtype=np.float32)
    layer.forward(x)
    with pytest.raises(TransposeRequiredError, match=r"layer: this rule needs Wᵀδ"):
        layer.backward_input(np.ones((2, layer.n_out), dtype=np.float32))


def test_max_pool_backward_needs_a_forward_of_the_same_batch():
    layer = DigitalConv2d((1, 6, 6), 2, 3, pool=Pool2d("max", 2), seed=0)
    with pytest.raises(ValueError, match=r"layer: the backward pass through max pooling needs"):
        layer.backward_input(np.ones((2, layer.n_out), dtype=np.float32))


# ---------------------------------------------------------------------------- update

def test_update_is_the_rank_bp_outer_product():
    dig = DigitalConv2d((2, 6, 6), 4, 3, padding=1, groups=2, seed=3)
    ana = AnalogConv2d((2, 6, 6), 4, 3, padding=1, groups=2, seed=3, hw=IDEAL)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 72)).astype(np.float32)
    # Small enough that no cell's pulse train is cut at bl·B·P pulses.
    d = (0.01 * rng.standard_normal((3, dig.n_out))).astype(np.float32)
    w0, wa0 = dig.weight.copy(), _analog_weight(ana)
    b0 = dig.b.copy()
    dig.update(x, d, 0.05)
    ana.update(x, d, 0.05)
    cols = unfold(x.reshape(3, 2, 6, 6).astype(np.float64), dig.window)
    dpos = d.reshape(3, 4, 36).transpose(0, 2, 1).reshape(-1, 4).astype(np.float64)
    want = np.concatenate([dpos[:, 2 * j:2 * j + 2].T @ cols[:, 9 * j:9 * j + 9]
                           for j in range(2)]).reshape(dig.kernel_shape)
    np.testing.assert_allclose(w0 - dig.weight, 0.05 * want, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(b0 - dig.b, 0.05 * d.reshape(3, 4, 36).sum(axis=(0, 2)),
                               rtol=1e-5, atol=1e-7)
    # On ideal hardware the pulses deliver it to within one device step per cell.
    step = IDEAL.device.dw_min * float(ana.kernels[0].scale)
    assert np.abs(0.05 * want).max() > 50 * step  # many pulses per cell
    np.testing.assert_allclose(wa0 - _analog_weight(ana), 0.05 * want, atol=1.01 * step)
    # One rank-(B·P) pulse update per group: B·P rows drive the array.
    upd = ana.ledger.child("group0").child("array").totals()
    assert upd["update_cycles"] == 3 * 36 * IDEAL.update.bl


# ---------------------------------------------------------------------------- ledger

def _read_counts(h: int) -> dict[str, dict[str, int]]:
    led = Ledger("net")
    layer = AnalogConv2d((2, h, h), 3, 3, padding=1, pool=Pool2d("max", 2), hw=IDEAL, seed=0,
                         ledger=led)
    layer.forward(np.ones((4, 2 * h * h), dtype=np.float32))
    return {k: led.child(k).totals() for k in ("array", "unfold", "pool")}


def test_ledger_charges_are_nonzero_and_scale_with_positions():
    small, big = _read_counts(8), _read_counts(16)  # 4x4 → 8x8 positions after pooling
    p_small, p_big, k = 16, 64, 2 * 9
    for c in (small, big):
        assert all(c[s]["mem_bytes"] > 0 for s in c)
        assert c["pool"]["digital_adds"] > 0
    assert small["array"]["mvm"] == 4 * p_small and big["array"]["mvm"] == 4 * p_big
    assert small["array"]["adc_conversions"] == 4 * p_small * 3
    assert small["array"]["dac_conversions"] == 4 * p_small * k
    assert small["array"]["cell_reads"] == 4 * p_small * k * 3
    assert big["array"]["cell_reads"] == 4 * big["array"]["cell_reads"] // 4 == \
        4 * p_big * k * 3
    assert small["unfold"]["mem_bytes"] == 2 * 4 * p_small * k * 4  # gather read + write
    assert big["unfold"]["mem_bytes"] == 4 * small["unfold"]["mem_bytes"]
    assert big["pool"]["digital_adds"] == 4 * small["pool"]["digital_adds"]


def test_a_window_covering_the_map_is_a_flatten_without_unfold_traffic():
    led = Ledger("net")
    layer = AnalogConv2d((3, 4, 4), 7, 4, hw=IDEAL, seed=0, ledger=led)
    assert (layer.kind, layer.n_positions, layer.n_out) == ("fc", 1, 7)
    layer.forward(np.ones((2, 48), dtype=np.float32))
    assert led.child("unfold").totals()["mem_bytes"] == 0
    assert led.child("array").totals()["mvm"] == 2


# ---------------------------------------------------------------------------- bad input

@pytest.mark.parametrize(("kw", "match"), [
    (dict(in_shape=(1, 5), c_out=2, kernel_size=3),
     r"in_shape = \(1, 5\) is invalid; allowed: three integers >= 1"),
    (dict(in_shape=(3, 5, 5), c_out=2, kernel_size=3, groups=2),
     r"layer: groups = 2 is invalid; allowed: a divisor of both the input channels \(3\) and "
     r"c_out \(2\)"),
    (dict(in_shape=(1, 4, 4), c_out=2, kernel_size=5),
     r"a 5x5 window .* does not fit the 4x4 map; allowed: a window no larger"),
    (dict(in_shape=(1, 4, 4), c_out=0, kernel_size=3), r"c_out = 0 is invalid; allowed: an "
                                                       r"integer >= 1"),
    (dict(in_shape=(1, 4, 4), c_out=2, kernel_size=3, stride=0),
     r"stride = 0 is invalid; allowed: an integer >= 1 or a pair of them"),
])
def test_bad_layer_arguments_say_what_is_allowed(kw, match):
    with pytest.raises(ValueError, match=match):
        DigitalConv2d(seed=0, **kw)


@pytest.mark.parametrize(("layers", "match"), [
    (["conv:6x5", "fc:10"], r"model\.layers\[0\] = 'conv:6x5' is invalid; allowed: 'conv:.*; "
                            r"here: a 5x5 window .* does not fit the 4x4 map"),
    (["conv:6x3x3,strid=2", "fc:10"], r"layers\[0\] = 'conv:6x3x3,strid=2' .* here: option "
                                      r"'strid' is unknown \(allowed: stride, padding"),
    (["pool:min2", "fc:10"], r"layers\[0\] = 'pool:min2' .* here: it does not match the "
                             r"grammar"),
    (["fc:10", "conv:2x3"], r"layers\[1\] = 'conv:2x3' .* here: a conv after a fully "
                            r"connected layer"),
    (["conv:2x3", "pool:max2", "pool:max2", "fc:3"], r"layers\[2\] .* two pools in a row"),
    (["conv:2x3", "pool:max2"], r"layers\[1\] .* the list ends with a pool"),
    (["conv:3x3,groups=2", "fc:3"], r"groups = 2 does not divide"),
    (["conv:0x3", "fc:3"], r"c_out 0 is out of range"),
    (["fc:0"], r"fc width 0 is out of range"),
])
def test_bad_layer_strings_name_parameter_value_and_grammar(layers, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(input_shape=(1, 4, 4), layers=tuple(layers))


def test_layers_need_an_input_shape_and_consistent_sizes():
    with pytest.raises(ValueError, match=r"model.input_shape = None is invalid; allowed: three "
                                         r"integers \[channels, height, width\]"):
        ModelConfig(layers=("fc:10",))
    with pytest.raises(ValueError, match=r"model.sizes = \(16, 3\) is invalid; allowed: "
                                         r"\[16, 10\] \(what layers gives\)"):
        ModelConfig(input_shape=(1, 4, 4), layers=("fc:10",), sizes=(16, 3))
    with pytest.raises(ValueError, match=r"model.input_shape = \(1, 4, 4\) is invalid; allowed: "
                                         r"none without layers"):
        ModelConfig(input_shape=(1, 4, 4))
    cfg = ModelConfig(input_shape=(1, 4, 4), layers=("conv:2x3", "fc:10"))
    assert cfg.sizes == (16, 8, 10)
    assert cfg.replace(layers=("conv:3x3", "fc:5")).sizes == (16, 12, 5)
    assert cfg.replace(layers=(), sizes=(16, 5)).input_shape is None
    with pytest.raises(ValueError, match=r"model.layers = \(\) is invalid; allowed: layers = "
                                         r"\[\] together with sizes"):
        cfg.replace(layers=())
    # A fully connected config's dict is what it was before layers existed.
    assert "layers" not in ModelConfig().to_dict() and "input_shape" not in ModelConfig().to_dict()
