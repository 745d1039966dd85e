"""TP and DTP: NumPy reference steps, DTP's fixed point, exact inverses, options, digits."""

import copy

import numpy as np
import pytest

from analogsim.experiments.runner import TrainConfig, build_run, train
from analogsim.hardware.presets import get_preset
from analogsim.layers.linear import TransposeRequiredError
from analogsim.layers.network import ModelConfig, build_network
from analogsim.rules import SGD, Schedule, Trainer, get_rule
from analogsim.rules.target import _MAX_SLOPE, DTP, TP

IDEAL = get_preset("ideal")


def _batch(n_in=6, n_out=3, b=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, n_in)).astype(np.float32)
    t = np.eye(n_out, dtype=np.float32)[rng.integers(0, n_out, b)]
    return x, t


def _sched(net):
    return Schedule(net.ledger, IDEAL.cost)


def _compute(rule, net, x, t, sched=None):
    if rule.net is not net:
        rule.build(net)
    return rule.compute(net, x, t, sched or _sched(net))


def _digital(sizes=(6, 5, 4, 3), hidden="tanh", seed=4, **kw):
    net = build_network(ModelConfig(sizes=sizes, hidden=hidden, backend="digital", **kw), IDEAL,
                        seed=seed)
    rng = np.random.default_rng(seed + 100)
    for layer in net.layers:
        layer.b[:] = 0.3 * rng.standard_normal(layer.n_out)
    return net


def _softmax(z):
    p = np.exp(z - z.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def _reference(name, top, ws, bs, vs, cs, x, t, *, alpha, noise, rng, lr, lr_aux):
    """One TP/DTP step of a tanh net with learned tanh inverses, in plain NumPy.

    Returns the targets and the updated ``(W, b)`` of every layer and ``(V, c)`` of every
    inverse. Noise is drawn from ``rng`` in the rule's documented order (l ascending).
    """
    n, bsz = len(ws), len(x)
    xs, us, hs, h = [], [], [], x
    for l in range(n):
        xs.append(h)
        us.append(h @ ws[l].T + bs[l])
        h = np.tanh(us[l]) if l < n - 1 else us[l]
        hs.append(h)
    e = (_softmax(us[-1]) - t) / bsz
    new = {}
    for l in range(1, n if top == "inverse" else n - 1):
        xt = xs[l] + noise * rng.standard_normal(xs[l].shape, dtype=np.float32)
        ut = xt @ ws[l].T + bs[l]
        a = ut if l == n - 1 else np.tanh(ut)
        r = np.tanh(a @ vs[l].T + cs[l])
        power = max(np.mean(a.astype(np.float64) ** 2), 1.0)  # the step's input power
        d = (r - xt) * (1 - r * r) / (bsz * power)
        new[f"g{l}"] = (vs[l] - lr_aux * d.T @ a, cs[l] - lr_aux * d.sum(0))
    if top == "transpose":
        tg = {n - 2: np.clip(hs[n - 2] - alpha * bsz * (e @ ws[-1]), -1, 1)}
    else:
        tg = {n - 1: us[-1] - alpha * bsz * e}
    for l in range(max(tg), 0, -1):
        g_hat = np.tanh(tg[l] @ vs[l].T + cs[l])
        act = us[l] if l == n - 1 else hs[l]
        t_low = g_hat if name == "tp" else hs[l - 1] + g_hat - np.tanh(act @ vs[l].T + cs[l])
        tg[l - 1] = np.clip(t_low, -1, 1)  # a tanh unit's reachable range
    for l in range(n):
        d = e if l == n - 1 else (hs[l] - tg[l]) * (1 - hs[l] ** 2) / bsz
        new[f"W{l}"] = (ws[l] - lr * d.T @ xs[l], bs[l] - lr * d.sum(0))
    return tg, new


@pytest.mark.parametrize("top", ["inverse", "transpose"])
@pytest.mark.parametrize("name", ["tp", "dtp"])
def test_step_matches_numpy_reference(name, top):
    net = _digital()
    net.layers[-1].w *= 4  # logits with a mean square > 1: g_L's step is power-normalised
    rule = get_rule(name, top=top, top_lr=0.7, noise=0.2, seed=3)
    rule.build(net)
    ws = [la.w.copy() for la in net.layers]
    bs = [la.b.copy() for la in net.layers]
    vs = {int(k[1:]): g.w.copy() for k, g in rule.inverses.items()}
    cs = {int(k[1:]): 0.1 * np.arange(g.n_out, dtype=np.float32) for k, g in rule.inverses.items()}
    for k, g in rule.inverses.items():
        g.b[:] = cs[int(k[1:])]
    x, t = _batch()
    rng = copy.deepcopy(net.rng)
    _, ups = _compute(rule, net, x, t)
    SGD(lr=0.05, lr_aux=0.02).apply(ups)
    tg, new = _reference(name, top, ws, bs, vs, cs, x, t, alpha=0.7, noise=0.2, rng=rng,
                         lr=0.05, lr_aux=0.02)
    assert set(rule.targets) == set(tg)
    for l, target in tg.items():
        np.testing.assert_allclose(rule.targets[l], target, rtol=1e-5, atol=1e-6)
    mods = {f"W{l}": la for l, la in enumerate(net.layers)} | rule.inverses
    assert set(mods) == set(new)
    for key, (w, b) in new.items():
        np.testing.assert_allclose(mods[key].w, w, rtol=1e-5, atol=1e-6, err_msg=key)
        np.testing.assert_allclose(mods[key].b, b, rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("backend,inverse,hidden,preset", [
    ("digital", "learned", "tanh", "ideal"), ("analog", "learned", "tanh", "aihwkit_default"),
    ("digital", "exact", "smooth", "ideal"), ("analog", "exact", "tanh", "aihwkit_default")])
def test_dtp_top_target_equal_to_output_keeps_every_activity(backend, inverse, hidden, preset):
    cfg = ModelConfig(sizes=(6, 5, 5, 4, 3), hidden=hidden, backend=backend)
    net = build_network(cfg, get_preset(preset), seed=2)
    x, t = _batch()
    for name, fixed_point in (("dtp", True), ("tp", False)):
        rule = get_rule(name, inverse=inverse, seed=1)
        _compute(rule, net, x, t)
        c, n = net.cache, len(net)
        targets = rule.propagate(net, n - 1, c.u[-1].copy(), _sched(net))
        for l in range(n - 1):
            if fixed_point:
                np.testing.assert_array_equal(targets[l], c.h[l])
            else:  # TP's untrained inverse does not reproduce the activity
                assert np.max(np.abs(targets[l] - c.h[l])) > 1e-2
    # With a zero top step the whole DTP step leaves the hidden layers where they are.
    rule = get_rule("dtp", inverse=inverse, top_lr=0.0, seed=1)
    _, ups = _compute(rule, net, x, t)
    hidden_ups = [u for u in ups if not u.aux and u.target is not net.layers[-1]]
    assert len(hidden_ups) == len(net) - 1
    for up in hidden_ups:
        assert not np.any(up.delta)
    assert np.any([u.delta for u in ups if u.target is net.layers[-1]][0])


def test_transposed_top_step_of_size_one_gives_the_last_hidden_layer_bp_update():
    net = _digital(sizes=(6, 5, 4, 3))
    x, t = _batch()
    rule = get_rule("dtp", top="transpose", top_lr=1.0)
    _, ups = _compute(rule, net, x, t)
    _, bp = _compute(get_rule("bp"), net, x, t)
    # A target outside tanh's range (-1, 1) is clipped to it (unreachable), and there the
    # step is no longer BP's: compare where the last hidden layer's target stays inside.
    inside = np.abs(rule.targets[1]) < 1.0
    assert inside.mean() > 0.8
    for l, where in ((1, inside), (2, np.ones_like(inside[:, :3], dtype=bool))):
        got = next(u.delta for u in ups if u.target is net.layers[l])
        want = next(u.delta for u in bp if u.target is net.layers[l])
        np.testing.assert_allclose(got[where], want[where], rtol=1e-4, atol=1e-7)
    got0 = next(u.delta for u in ups if u.target is net.layers[0])
    want0 = next(u.delta for u in bp if u.target is net.layers[0])
    assert not np.allclose(got0, want0, rtol=0.1)  # below it, targets are not gradients


def _well_conditioned(n, rng):
    q1, _ = np.linalg.qr(rng.standard_normal((n, n)))
    q2, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (q1 * rng.uniform(0.6, 1.4, n)) @ q2


@pytest.mark.parametrize("top", ["inverse", "transpose"])
def test_tp_with_exact_inverses_maps_targets_onto_the_targets_above(top):
    net = _digital(sizes=(4, 4, 4, 4, 4), hidden="smooth", seed=5, eps0=0.2)
    rng = np.random.default_rng(7)
    for layer in net.layers:
        layer.w[...] = _well_conditioned(4, rng).astype(np.float32)
        layer.b += 1.0  # units well "on": every target has a preimage (none is clipped)
    rule = get_rule("tp", inverse="exact", top=top, top_lr=0.05)
    rule.build(net)
    x, t = _batch(n_in=4, n_out=4, b=6)
    for l in rule.inverted_layers(net):
        w, b = net.layers[l].w.astype(np.float64), net.layers[l].b.astype(np.float64)
        w_inv = np.linalg.inv(w)
        rule.set_inverse(l, w_inv, -w_inv @ b)
    _compute(rule, net, x, t)
    n, tg = len(net), rule.targets
    assert min(tg) == 0 and max(tg) == (n - 1 if top == "inverse" else n - 2)
    for l in range(1, max(tg) + 1):
        u, h = net.layers[l].forward(tg[l - 1])
        mapped = u if l == n - 1 else h
        np.testing.assert_allclose(mapped, tg[l], rtol=0, atol=1e-5)
    for l in range(max(tg) if top == "inverse" else max(tg) + 1):
        # The targets moved, and stayed where the activation inverse is not clipped.
        assert np.max(np.abs(tg[l] - net.cache.h[l])) > 1e-3
        assert np.all(tg[l] > np.sqrt(net.layers[l].act.eps / (_MAX_SLOPE - 1)))
    # The same network with untrained (learned) inverses does not map exactly.
    rule = get_rule("tp", inverse="exact", top=top, top_lr=0.05)
    _compute(rule, net, x, t)
    u, h = net.layers[1].forward(rule.targets[0])
    assert np.max(np.abs(h - rule.targets[1])) > 1e-2


def test_inverse_training_lowers_the_reconstruction_error():
    net = _digital(sizes=(6, 8, 8, 3), seed=6)
    rule = get_rule("dtp", noise=0.1, seed=2)
    tr = Trainer(net, rule, SGD(lr=0.0, lr_aux=0.5))
    x, t = _batch(b=64, seed=3)

    def recon():
        net.forward(x)
        _, r = rule.inverses["g2"].forward(net.cache.u[-1])
        _, r1 = rule.inverses["g1"].forward(net.cache.h[1])
        return (np.mean((r - net.cache.h[1]) ** 2), np.mean((r1 - net.cache.h[0]) ** 2))

    before = recon()
    for _ in range(200):
        tr.step(x, t)
    after = recon()
    assert after[0] < 0.3 * before[0] and after[1] < 0.3 * before[1]


def test_step_units_train_by_the_delta_rule():
    net = _digital(sizes=(6, 5, 4, 3), hidden="step", seed=1)
    assert not net.layers[0].act.has_deriv
    rule = get_rule("dtp", top_lr=2.0)
    x, t = _batch()
    _, ups = _compute(rule, net, x, t)
    assert rule.inverses["g1"].act.name == "sigmoid"  # the inverse outputs the unit's mean
    for l in range(len(net) - 1):
        up = next(u for u in ups if u.target is net.layers[l])
        np.testing.assert_allclose(up.delta, (net.cache.h[l] - rule.targets[l]) / 5, rtol=1e-6)
        assert np.any(up.delta)


@pytest.mark.parametrize("options,match", [
    ({"top": "gradient"}, "top = 'gradient'"), ({"inverse": "pinv"}, "inverse = 'pinv'"),
    ({"noise": -0.1}, "noise"), ({"top_lr": float("nan")}, "top_lr"),
    ({"top_lr": True}, "top_lr"), ({"headroom": 0.5}, "headroom"), ({"lr": 0.1}, "is unknown")])
@pytest.mark.parametrize("name", ["tp", "dtp"])
def test_bad_options_raise(name, options, match):
    with pytest.raises(ValueError, match=match):
        get_rule(name, **options)


def test_exact_inverse_needs_invertible_hidden_activations():
    net = _digital(sizes=(6, 5, 4, 3), hidden="relu")
    with pytest.raises(ValueError, match="exact inverse of layer1's activation 'relu'"):
        get_rule("dtp", inverse="exact").build(net)
    get_rule("dtp", inverse="learned").build(net)  # a learned inverse needs none


def test_set_inverse_rejects_layers_without_one():
    net = _digital()
    rule = get_rule("tp", top="transpose")
    rule.build(net)
    assert sorted(rule.inverses) == ["g1"]  # the output layer needs no inverse
    with pytest.raises(ValueError, match="l = 2"):
        rule.set_inverse(2, np.zeros((4, 3)))


def test_top_transpose_asks_the_runner_for_a_transpose_strategy():
    assert isinstance(get_rule("dtp"), DTP) and isinstance(get_rule("tp"), TP)
    assert not get_rule("dtp").needs_transpose
    assert get_rule("dtp", top="transpose").needs_transpose
    model = ModelConfig(sizes=(64, 16, 16, 10))
    cfg = TrainConfig(rule="dtp", transpose="probe", rule_options={"top": "transpose"})
    tr = build_run(IDEAL, model, cfg, 64, 10)
    assert all(la.transpose_kind == "probe" for la in tr.net.layers)
    tr = build_run(IDEAL, model, TrainConfig(rule="dtp"), 64, 10)
    assert all(la.transpose_kind is None for la in tr.net.layers)
    # A forward-only network refuses the transposed top step clearly.
    net = build_network(ModelConfig(sizes=(6, 5, 4, 3)), IDEAL, seed=0)
    x, t = _batch()
    with pytest.raises(TransposeRequiredError, match="transpose strategy"):
        _compute(get_rule("dtp", top="transpose"), net, x, t)


def test_targets_go_down_one_layer_after_another():
    net = build_network(ModelConfig(sizes=(6, 5, 5, 5, 5, 3)), IDEAL, seed=0)
    x, t = _batch()
    sched = _sched(net)
    rule = get_rule("dtp")
    _, ups = _compute(rule, net, x, t, sched)
    f = sched.finish
    for l in range(len(net) - 1, 0, -1):
        assert f[f"tgt{l - 1}"] > f[f"tgt{l}"] > f["loss"]
    for l in rule.inverted_layers(net):  # inverse training runs beside the chain
        assert f[f"inv{l}"] < f["tgt0"]
    for up in ups:
        assert up.after in f and up.after.startswith("ready:")
    # Every update waits for its target; the bottom one for the whole chain.
    w0 = next(u for u in ups if u.target is net.layers[0])
    assert f[w0.after] == f["tgt0"]
    cp = Trainer(net, get_rule("dtp"), SGD(lr=0.01)).step(x, t).critical_path_ns
    cp_dfa = Trainer(net, get_rule("dfa"), SGD(lr=0.01)).step(x, t).critical_path_ns
    assert cp > cp_dfa > 0


def test_inverses_are_checkpointed():
    net = build_network(ModelConfig(sizes=(6, 5, 4, 3)), IDEAL, seed=0)
    rule = get_rule("dtp", seed=1)
    tr = Trainer(net, rule, SGD(lr=0.05, lr_aux=0.1))
    x, t = _batch()
    tr.step(x, t)
    state = rule.state_dict()
    assert {k.split(".")[0] for k in state} == {"g1", "g2"}
    assert rule.ledger.child("g1").totals()["mvm"] > 0  # inverse reads are charged
    fresh = get_rule("dtp", seed=9)
    fresh.build(net)
    h = np.ones((2, 3), dtype=np.float32)
    assert not np.allclose(fresh.inverses["g2"].forward(h)[1], rule.inverses["g2"].forward(h)[1])
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.inverses["g2"].forward(h)[1],
                                  rule.inverses["g2"].forward(h)[1])


@pytest.mark.parametrize("name,preset", [("dtp", "ideal"), ("dtp", "aihwkit_default"),
                                         ("tp", "ideal"), ("tp", "aihwkit_default")])
def test_rule_learns_digits(name, preset):
    # TP (no difference correction) learns more slowly: one more epoch keeps a margin.
    cfg = TrainConfig(rule=name, epochs=2 if name == "dtp" else 3, lr=0.05, seed=0)
    out = train(get_preset(preset), ModelConfig(sizes=(64, 32, 10)), cfg)
    losses = [e["train_loss"] for e in out["epochs"]]
    assert losses[-1] < 0.8 * losses[0]
    assert out["metrics"]["test_accuracy"] > 0.6  # chance is 0.1
