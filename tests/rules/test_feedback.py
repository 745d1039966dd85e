"""BP, FA, DFA, IFA, DRTP: gradients, reductions, ledger bills, training on digits."""

import numpy as np
import pytest

from analogsim.hardware.config import replace_field
from analogsim.hardware.presets import get_preset
from analogsim.layers.activations import NotDifferentiableError
from analogsim.layers.linear import TransposeRequiredError
from analogsim.layers.network import ModelConfig, build_network
from analogsim.rules import SGD, Schedule, Trainer, get_rule

IDEAL = get_preset("ideal")


def _batch(n_in=6, n_out=3, b=5, seed=0):
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


@pytest.mark.parametrize("hidden", ["tanh", "smooth", "sigmoid"])
def test_bp_matches_finite_differences_of_weights_and_eps(hidden):
    cfg = ModelConfig(sizes=(6, 5, 4, 3), hidden=hidden, backend="digital", eps0=0.3)
    net = build_network(cfg, IDEAL, seed=1)
    for layer in net.layers:
        layer.w = layer.w.astype(np.float64)  # FD needs float64 weights
    x, t = _batch()
    x = x.astype(np.float64)
    _, ups = _compute(get_rule("bp"), net, x, t)
    by_layer = {id(u.target): u for u in ups}
    h = 1e-6
    for layer in net.layers:
        up = by_layer[id(layer)]
        grad = up.delta.T @ up.x
        for i, j in [(0, 0), (1, 2), (layer.n_out - 1, layer.n_in - 1)]:
            old = layer.w[i, j]
            layer.w[i, j] = old + h
            lp = _loss(net, x, t)
            layer.w[i, j] = old - h
            lm = _loss(net, x, t)
            layer.w[i, j] = old
            assert grad[i, j] == pytest.approx((lp - lm) / (2 * h), rel=1e-4, abs=1e-8)
        if hidden == "smooth" and layer is not net.layers[-1]:
            theta = layer.act.theta
            for k in range(layer.n_out):
                old = theta[k]
                theta[k] = old + h
                lp = _loss(net, x, t)
                theta[k] = old - h
                lm = _loss(net, x, t)
                theta[k] = old
                fd_eps = (lp - lm) / (2 * h) / np.exp(old)
                assert up.grad_eps[k] == pytest.approx(fd_eps, rel=1e-4, abs=1e-8)


def test_bp_on_ideal_analog_bidirectional_equals_digital():
    cfg = ModelConfig(sizes=(6, 5, 4, 3), hidden="tanh")
    ana = build_network(cfg, IDEAL, seed=2, transpose="bidirectional")
    dig = build_network(cfg.replace(backend="digital"), IDEAL, seed=2)
    x, t = _batch()
    _, ua = _compute(get_rule("bp"), ana, x, t)
    _, ud = _compute(get_rule("bp"), dig, x, t)
    for a, d in zip(ua, ud, strict=True):
        np.testing.assert_allclose(a.delta, d.delta, rtol=1e-4, atol=1e-6)


def test_fa_with_transposed_weights_is_exactly_bp():
    cfg = ModelConfig(sizes=(6, 5, 4, 3), hidden="tanh", backend="digital")
    net = build_network(cfg, IDEAL, seed=3)
    x, t = _batch()
    fa = get_rule("fa", feedback="digital")
    fa.build(net)
    for l in range(1, len(net)):
        fa.set_feedback(l, net.layers[l].w.T)
    _, u_fa = _compute(fa, net, x, t)
    _, u_bp = _compute(get_rule("bp"), net, x, t)
    for a, b in zip(u_fa, u_bp, strict=True):
        np.testing.assert_array_equal(a.delta, b.delta)


def _numpy_reference(name, ws, bs, bmats, x, t):
    """Plain NumPy deltas of each rule for a tanh net with softmax cross-entropy."""
    hs, us, h = [], [], x
    for w, b in zip(ws, bs, strict=True):
        u = h @ w.T + b
        us.append(u)
        h = np.tanh(u) if len(us) < len(ws) else u
        hs.append(h)
    p = np.exp(us[-1] - us[-1].max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    e = (p - t) / len(x)
    d = [None] * len(ws)
    d[-1] = e
    for l in range(len(ws) - 2, -1, -1):
        fp = 1 - hs[l] ** 2
        if name == "fa":
            d[l] = (d[l + 1] @ bmats[l + 1].T) * fp
        elif name == "dfa":
            d[l] = (e @ bmats[l].T) * fp
        elif name == "drtp":
            d[l] = ((-t / len(x)) @ bmats[l].T) * fp
    if name == "ifa":
        d[0] = (e @ bmats[0].T) * (1 - hs[0] ** 2)
        for l in range(1, len(ws) - 1):
            d[l] = (d[l - 1] @ ws[l].T) * (1 - hs[l] ** 2)
    return d


@pytest.mark.parametrize("name", ["fa", "dfa", "ifa", "drtp"])
def test_rule_step_matches_numpy_reference(name):
    cfg = ModelConfig(sizes=(6, 5, 4, 3), hidden="tanh", backend="digital")
    net = build_network(cfg, IDEAL, seed=4)
    rng = np.random.default_rng(9)
    for layer in net.layers:
        layer.b[:] = rng.standard_normal(layer.n_out)
    rule = get_rule(name, feedback="digital", seed=5)
    x, t = _batch()
    _, ups = _compute(rule, net, x, t)
    bmats = {int(k[1:]): m.w for k, m in rule.feedback.items()}
    ref = _numpy_reference(name, [la.w for la in net.layers], [la.b for la in net.layers],
                           bmats, x, t)
    got = {net.layers.index(u.target): u.delta for u in ups}
    for l, d in enumerate(ref):
        np.testing.assert_allclose(got[l], d, rtol=2e-5, atol=1e-7)


def test_bp_without_transpose_strategy_fails_clearly():
    net = build_network(ModelConfig(sizes=(6, 5, 3)), IDEAL, seed=0)
    x, t = _batch()
    with pytest.raises(TransposeRequiredError, match="transpose strategy"):
        _compute(get_rule("bp"), net, x, t)


def test_bidirectional_refused_on_forward_only_hardware():
    with pytest.raises(ValueError, match="bidirectional"):
        build_network(ModelConfig(sizes=(6, 5, 3)), get_preset("pcm"), seed=0,
                      transpose="bidirectional")


def _transpose_bill(kind, refresh=1, steps=3):
    hw = replace_field(get_preset("aihwkit_default"), "tile.rows", 4)
    net = build_network(ModelConfig(sizes=(6, 5, 4, 3)), hw, seed=0, transpose=kind,
                        refresh=refresh)
    tr = Trainer(net, get_rule("bp"), SGD(lr=0.01))
    x, t = _batch(b=7)
    for _ in range(steps):
        tr.step(x, t)
    return net, {l: net.layers[l].ledger.child("transpose").totals() for l in range(len(net))}


@pytest.mark.parametrize("refresh,expected_refreshes", [(1, 3), (2, 2), (5, 1)])
def test_probe_charges_n_in_reads_per_refresh_per_layer(refresh, expected_refreshes):
    net, bills = _transpose_bill("probe", refresh)
    for l in (1, 2):  # layer 0 never needs Wᵀδ
        n_in, n_out = net.layers[l].n_in, net.layers[l].n_out
        tiles_in = -(-n_in // 4)
        assert bills[l]["read_cycles"] == expected_refreshes * n_in
        assert bills[l]["mvm"] == expected_refreshes * n_in * tiles_in
        assert bills[l]["digital_macs"] == 3 * 7 * n_in * n_out
    assert bills[0]["mvm"] == 0 and bills[0]["digital_macs"] == 0


def test_shadow_and_twin_bills():
    net, bills = _transpose_bill("shadow")
    for l in (1, 2):
        n = net.layers[l].n_in * net.layers[l].n_out
        # 3 uses plus 3 mirrored updates, each B·n MACs; nothing analog.
        assert bills[l]["digital_macs"] == 2 * 3 * 7 * n
        assert bills[l]["mvm"] == 0 and bills[l]["write_pulses"] == 0
    net, bills = _transpose_bill("twin")
    for l in range(3):
        n_in = net.layers[l].n_in
        assert bills[l]["write_verify"] > 0  # the twin is programmed too
        own = net.layers[l].ledger.child("array").totals()
        # every update reaches the twin as pulses
        assert bills[l]["update_cycles"] == own["update_cycles"]
        if l:
            assert bills[l]["read_cycles"] == 3 * 7
        del n_in


@pytest.mark.parametrize("name", ["bp", "fa", "dfa", "ifa", "drtp"])
@pytest.mark.parametrize("preset", ["ideal", "aihwkit_default"])
def test_rule_learns_digits(name, preset):
    from analogsim.experiments.runner import TrainConfig, train

    cfg = TrainConfig(rule=name, epochs=3, lr=0.05, seed=0,
                      transpose="bidirectional" if preset == "ideal" else "probe",
                      refresh=4)
    out = train(get_preset(preset), ModelConfig(sizes=(64, 32, 10)), cfg)
    losses = [e["train_loss"] for e in out["epochs"]]
    assert losses[-1] < 0.8 * losses[0]
    assert out["metrics"]["test_accuracy"] > 0.6  # chance is 0.1


def test_step_units_need_surrogate_for_error_rules():
    net = build_network(ModelConfig(sizes=(6, 5, 4, 3), hidden="step"), IDEAL, seed=0)
    x, t = _batch()
    with pytest.raises(NotDifferentiableError, match="surrogate"):
        _compute(get_rule("dfa"), net, x, t)


def test_ifa_trains_a_step_unit_above_the_first_layer():
    from analogsim.layers.activations import get_activation

    net = build_network(ModelConfig(sizes=(6, 5, 4, 3), hidden="tanh"), IDEAL, seed=0)
    net.layers[1].act = get_activation("step")
    x, t = _batch()
    _, ups = _compute(get_rule("ifa"), net, x, t)
    assert np.abs(ups[-1].delta).sum() > 0  # the step layer still receives an error


def test_critical_path_bp_is_sequential_dfa_parallel():
    cfg = ModelConfig(sizes=(6, 5, 5, 5, 5, 3))
    x, t = _batch()
    cps = {}
    for name in ("bp", "dfa"):
        net = build_network(cfg, IDEAL, seed=0,
                            transpose="bidirectional" if name == "bp" else None)
        tr = Trainer(net, get_rule(name), SGD(lr=0.01))
        cps[name] = tr.step(x, t).critical_path_ns
    assert cps["bp"] > cps["dfa"] > 0
