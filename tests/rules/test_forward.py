"""Forward-only rules: Forward-Forward, PEPITA, forward gradient, node perturbation.

NumPy references of one step, unbiasedness of the forward gradient (against a numerical
gradient), node perturbation's sign, label-by-goodness inference and its cost, the seeded
streams in checkpoints, learning on the digits, and option errors.
"""

import numpy as np
import pytest

from analogsim.experiments.data import load_dataset
from analogsim.experiments.runner import TrainConfig, build_run, train
from analogsim.hardware.config import replace_field
from analogsim.hardware.presets import get_preset
from analogsim.layers.activations import NotDifferentiableError
from analogsim.layers.network import ModelConfig, build_network
from analogsim.rules import SGD, Schedule, Trainer, get_rule
from analogsim.seeding import derive_rng

IDEAL = get_preset("ideal")
LR = 0.1
SIZES = (6, 5, 4, 3)


def _batch(n_in=6, n_out=3, b=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, n_in)).astype(np.float32)
    y = rng.integers(0, n_out, b)
    return x, np.eye(n_out, dtype=np.float32)[y], y


def _digital_net(hidden="tanh", sizes=SIZES, seed=4, f64=False):
    net = build_network(ModelConfig(sizes=sizes, hidden=hidden, backend="digital"), IDEAL,
                        seed=seed)
    rng = np.random.default_rng(seed + 100)
    for layer in net.layers:
        layer.b[:] = 0.3 * rng.standard_normal(layer.n_out)
        if f64:  # numerical gradients need float64 weights
            layer.w = layer.w.astype(np.float64)
            layer.b = layer.b.astype(np.float64)
    return net


def _params(net):
    return [(layer.w.copy(), layer.b.copy()) for layer in net.layers]


def _step(net, rule, x, t, lr=LR):
    Trainer(net, rule, SGD(lr)).step(x, t)
    return _params(net)


def _act(name, u):
    return np.tanh(u) if name == "tanh" else np.maximum(u, 0)


def _dact(name, u, h):
    return 1 - h * h if name == "tanh" else (u > 0).astype(u.dtype)


def _softmax_grad(z, t):
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return (p - t) / len(z)


def _xent(z, t):
    z = z - z.max(1, keepdims=True)
    return -np.sum(t * (z - np.log(np.exp(z).sum(1, keepdims=True))), axis=1)


def _forward(ps, x, hidden):
    xs, us, hs, h = [], [], [], x
    for i, (w, b) in enumerate(ps):
        xs.append(h)
        u = h @ w.T + b
        h = _act(hidden, u) if i < len(ps) - 1 else u
        us.append(u)
        hs.append(h)
    return xs, us, hs


def _assert_params(got, want):
    for (gw, gb), (ww, wb) in zip(got, want, strict=True):
        np.testing.assert_allclose(gw, ww, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(gb, wb, rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- Forward-Forward


def _ff_reference(ps, x, y, wrong, *, hidden, theta, scale, n_classes, lr, head=None):
    """New (W, b) per layer after one FF step (positive rows, then negative)."""
    def embed(labels):
        e = x.copy()
        e[:, :n_classes] = 0
        e[np.arange(len(x)), labels] = scale
        return e

    b, new = len(x), []
    h = np.concatenate([embed(y), embed(wrong)])
    for w, bias in ps[:-1]:
        u = h @ w.T + bias
        a = _act(hidden, u)
        g = np.mean(a * a, 1)
        s = g - theta
        sign = np.r_[np.ones(b), -np.ones(b)]
        c = -sign / (1 + np.exp(sign * s)) * 2 / b
        d = c[:, None] * a * _dact(hidden, u, a)
        new.append((w - lr * d.T @ h, bias - lr * d.sum(0)))
        h = a / np.sqrt(g + 1e-8)[:, None]
    if head is None:
        new.append(ps[-1])
        return new
    h = x.copy()
    h[:, :n_classes] = scale / n_classes
    for w, bias in ps[:-1]:
        a = _act(hidden, h @ w.T + bias)
        h = a / np.sqrt(np.mean(a * a, 1) + 1e-8)[:, None]
    w, bias = ps[-1]
    e = _softmax_grad(h @ w.T + bias, head)
    new.append((w - lr * e.T @ h, bias - lr * e.sum(0)))
    return new


@pytest.mark.parametrize("hidden,head", [("tanh", "goodness"), ("relu", "goodness"),
                                         ("tanh", "softmax")])
def test_forward_forward_step_matches_numpy_reference(hidden, head):
    net = _digital_net(hidden)
    x, t, y = _batch()
    before = _params(net)
    rule = get_rule("forward_forward", seed=3, threshold=0.3, label_scale=2.0, head=head)
    got = _step(net, rule, x, t)
    # The wrong labels come from the rule's own stream, drawn as the rule documents.
    wrong = (y + derive_rng(3, "rule", "forward_forward", "negatives").integers(1, 3, len(y))
             ) % 3
    assert np.all(wrong != y)
    want = _ff_reference(before, x, y, wrong, hidden=hidden, theta=0.3, scale=2.0,
                         n_classes=3, lr=LR, head=t if head == "softmax" else None)
    _assert_params(got, want)


def test_ff_goodness_inference_picks_the_embedded_label():
    """A hand-built net whose hidden unit j fires only when the embedded label j agrees with
    the sample's class feature: the goodness is largest for the true class."""
    k, d = 3, 3 + 3
    net = build_network(ModelConfig(sizes=(d, k, k), hidden="relu", backend="digital"),
                        IDEAL, seed=0)
    w = np.zeros((k, d), np.float32)
    w[np.arange(k), np.arange(k)] = 1.0  # the label slot j
    w[np.arange(k), k + np.arange(k)] = 1.0  # the class feature j
    net.layers[0].w[...] = w
    net.layers[0].b[:] = -1.5  # both must be on
    rule = get_rule("forward_forward")
    rule.build(net)
    y = np.array([0, 1, 2, 2, 1, 0])
    x = np.zeros((len(y), d), np.float32)
    x[np.arange(len(y)), k + y] = 1.0
    scores = rule.predict(net, x)
    assert scores.shape == (len(y), k)
    np.testing.assert_array_equal(np.argmax(scores, 1), y)


def test_ff_inference_costs_n_classes_passes_of_the_hidden_layers():
    cfg = ModelConfig(sizes=(8, 6, 5, 4), hidden="relu")
    net = build_network(cfg, IDEAL, seed=1)
    x = np.random.default_rng(0).standard_normal((7, 8)).astype(np.float32)

    def cycles(fn):
        before = {i: layer.ledger.totals()["read_cycles"] for i, layer in enumerate(net.layers)}
        fn()
        return [layer.ledger.totals()["read_cycles"] - before[i]
                for i, layer in enumerate(net.layers)]

    plain = cycles(lambda: get_rule("dfa").predict(net, x))
    ff = get_rule("forward_forward")
    ff.build(net)
    assert cycles(lambda: ff.predict(net, x)) == [4 * plain[0], 4 * plain[1], 0]
    soft = get_rule("forward_forward", head="softmax")
    soft.build(net)
    assert cycles(lambda: soft.predict(net, x)) == plain


def test_runner_reports_the_test_time_energy(digits):
    model = ModelConfig(sizes=(64, 32, 10))
    out = {r: train(IDEAL, model, TrainConfig(rule=r, epochs=1, seed=0), dataset=digits)
           for r in ("dfa", "forward_forward")}
    e = {r: o["metrics"]["inference_energy_per_sample_pj"] for r, o in out.items()}
    assert e["dfa"] > 0
    # ten passes of the 64→32 layer against one pass of 64→32 and 32→10
    assert 5 < e["forward_forward"] / e["dfa"] < 10


# --------------------------------------------------------------------------- PEPITA


def test_pepita_step_matches_numpy_reference():
    net = _digital_net("tanh")
    x, t, _ = _batch()
    before = _params(net)
    rule = get_rule("pepita", feedback="digital", feedback_scale=2.0, seed=5)
    rule.build(net)
    f = rule.feedback["F"].w.astype(np.float64)
    assert f.shape == (SIZES[0], SIZES[-1])
    got = _step(net, rule, x, t)
    xs, _, hs = _forward(before, x, "tanh")
    e = _softmax_grad(hs[-1], t)
    h = x + (e * len(x)) @ f.T  # x + F e with the per-sample error (Algorithm 1)
    want = []
    for (w, b), h_clean in zip(before[:-1], hs[:-1], strict=True):
        hm = np.tanh(h @ w.T + b)
        d = (h_clean - hm) / len(x)
        want.append((w - LR * d.T @ h, b - LR * d.sum(0)))
        h = hm
    w, b = before[-1]
    want.append((w - LR * e.T @ h, b - LR * e.sum(0)))  # ΔW_L = e (h_{L-1}^err)ᵀ
    _assert_params(got, want)


def test_pepita_schedule_has_two_passes_and_the_F_read():
    net = build_network(ModelConfig(sizes=SIZES), IDEAL, seed=0)
    rule = get_rule("pepita")
    rule.build(net)
    x, t, _ = _batch()
    sched = Schedule(net.ledger, IDEAL.cost)
    _, ups = rule.compute(net, x, t, sched)
    assert [u.after for u in ups] == ["mod0", "mod1", "mod1"]
    assert {"fwd2", "loss", "mod", "mod0", "mod1"} <= set(sched.finish)
    assert "mod2" not in sched.finish  # the output layer is not read a second time
    assert rule.ledger.child("F").totals()["read_cycles"] == len(x)


# --------------------------------------------------------------------------- perturbation


def _fg_reference(ps, x, t, vs, *, perturb, directional, sigma, samples):
    """Hidden δ per layer for the draws ``vs`` (list per draw of {layer: v})."""
    xs, us, hs = _forward(ps, x, "tanh")
    e = _softmax_grad(hs[-1], t)
    ell = _xent(hs[-1], t)
    n = len(ps) - 1
    deltas = [np.zeros_like(us[l]) for l in range(n)]
    for v in vs:
        j0 = min(v)
        if directional == "jvp":
            tang = v[j0]
            for j in range(j0 + 1, n + 1):
                tang = (tang * (1 - hs[j - 1] ** 2)) @ ps[j][0].T + v.get(j, 0)
            d = np.sum(e * tang, 1) * len(x)
        else:
            u = us[j0] + sigma * v[j0]
            h = np.tanh(u)
            for j in range(j0 + 1, n + 1):
                u = h @ ps[j][0].T + ps[j][1] + sigma * v.get(j, 0)
                h = np.tanh(u)
            d = (_xent(u, t) - ell) / sigma
        for l in v:
            deltas[l] += d[:, None] * v[l] / (samples * len(x))
    return xs, e, deltas


def _draws(rng, net, b, *, perturb, samples):
    """The perturbations in the order the rule draws them (float32 normal)."""
    n = len(net) - 1
    groups = [[l] for l in range(n)] if perturb == "layer" else [list(range(n))]
    return [{l: rng.standard_normal((b, net.layers[l].n_out), dtype=np.float32)
             .astype(np.float64) for l in g} for g in groups for _ in range(samples)]


@pytest.mark.parametrize("perturb", ["layer", "joint"])
@pytest.mark.parametrize("directional", ["difference", "jvp"])
def test_forward_gradient_step_matches_numpy_reference(perturb, directional):
    net = _digital_net("tanh")
    x, t, _ = _batch()
    before = [(w.astype(np.float64), b.astype(np.float64)) for w, b in _params(net)]
    rule = get_rule("forward_gradient", seed=2, perturb=perturb, directional=directional,
                    sigma=0.05, samples=2)
    got = _step(net, rule, x, t)
    vs = _draws(derive_rng(2, "rule", "forward_gradient", "perturbation"), net, len(x),
                perturb=perturb, samples=2)
    xs, e, deltas = _fg_reference(before, x.astype(np.float64), t, vs, perturb=perturb,
                                  directional=directional, sigma=0.05, samples=2)
    want = [(w - LR * d.T @ xi, b - LR * d.sum(0))
            for (w, b), d, xi in zip(before, [*deltas, e], xs, strict=True)]
    _assert_params(got, want)


def _numerical_grads(net, x, t, h=1e-6):
    """Central differences of the batch loss with respect to every hidden weight."""
    out = []
    for layer in net.layers[:-1]:
        g = np.zeros_like(layer.w)
        for idx in np.ndindex(*layer.w.shape):
            old = layer.w[idx]
            layer.w[idx] = old + h
            lp = net.loss.value(net.forward(x, cache=False), t)
            layer.w[idx] = old - h
            lm = net.loss.value(net.forward(x, cache=False), t)
            layer.w[idx] = old
            g[idx] = (lp - lm) / (2 * h)
        out.append(g)
    return out


def _mean_estimate(rule, net, x, t):
    rule.build(net)
    _, ups = rule.compute(net, x, t, Schedule(net.ledger, IDEAL.cost))
    by_layer = {u.name: u.delta.T @ u.x for u in ups}
    return [by_layer[f"W{l}"] for l in range(len(net) - 1)]


def _cos(a, b):
    return float(np.sum(a * b) / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.parametrize("options", [dict(directional="difference", sigma=1e-4),
                                     dict(directional="jvp"),
                                     dict(directional="difference", sigma=1e-4,
                                          perturb="joint")])
def test_forward_gradient_is_unbiased(options):
    """The mean over 1000 draws is the gradient (checked numerically), not just aligned."""
    net = _digital_net("tanh", f64=True)
    x, t, _ = _batch(b=4)
    x = x.astype(np.float64)
    true = _numerical_grads(net, x, t)
    est = _mean_estimate(get_rule("forward_gradient", samples=1000, **options), net, x, t)
    for g, m in zip(true, est, strict=True):
        assert _cos(g, m) > 0.9
        assert np.linalg.norm(m) / np.linalg.norm(g) == pytest.approx(1.0, abs=0.25)
    one = _mean_estimate(get_rule("forward_gradient", samples=1, seed=1, **options), net, x, t)
    assert min(_cos(g, m) for g, m in zip(true, one, strict=True)) < 0.9  # one draw is noisy


def test_node_perturbation_is_joint_difference_forward_gradient():
    x, t, _ = _batch()
    nets = [_digital_net("tanh") for _ in range(2)]
    nodep = get_rule("node_perturbation", sigma=0.2)
    nodep.build(nets[0])
    nodep.rng = derive_rng(0, "rule", "forward_gradient", "perturbation")  # same draws
    fg = get_rule("forward_gradient", sigma=0.2, perturb="joint")
    for a, b in zip(_step(nets[0], nodep, x, t), _step(nets[1], fg, x, t), strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_node_perturbation_sign_agrees_with_the_gradient():
    net = _digital_net("tanh", f64=True)
    x, t, _ = _batch(b=4)
    x = x.astype(np.float64)
    true = _numerical_grads(net, x, t)
    bp = _bp_deltas(net, x, t)
    rule = get_rule("node_perturbation", sigma=1e-3)
    rule.build(net)
    for _ in range(20):
        # per sample: Δℓ_b/σ² · Σ_l ξ_l·g_l ≥ 0, i.e. the loss change has the sign of the
        # directional derivative along the injected noise
        _, ups = rule.compute(net, x, t, Schedule(net.ledger, IDEAL.cost))
        by_name = {u.name: u.delta for u in ups}
        agree = sum(np.sum(by_name[f"W{l}"] * bp[l], axis=1) for l in range(len(net) - 1))
        assert np.all(agree > 0)
    many = _mean_estimate(get_rule("node_perturbation", sigma=1e-3, samples=1000), net, x, t)
    assert all(_cos(g, m) > 0.9 for g, m in zip(true, many, strict=True))


def test_node_perturbation_by_read_noise():
    """With noise = read the perturbation is the arrays' own noise: nothing on noise-free
    hardware, a descent direction (preconditioned gradient) on noisy hardware."""
    x, t, _ = _batch(b=8)
    clean = build_network(ModelConfig(sizes=SIZES), IDEAL, seed=0)
    rule = get_rule("node_perturbation", noise="read")
    rule.build(clean)
    _, ups = rule.compute(clean, x, t, Schedule(clean.ledger, IDEAL.cost))
    assert all(not u.delta.any() for u in ups if u.name != "W2")  # only the output learns
    noisy = build_network(ModelConfig(sizes=SIZES), replace_field(IDEAL, "noise.out_noise",
                                                                   0.05), seed=0)
    # the same initial weights in digital (same seed, no programming noise): the gradient
    true = _bp_deltas(build_network(ModelConfig(sizes=SIZES, backend="digital"), IDEAL,
                                    seed=0), x, t)
    est = _mean_estimate(get_rule("node_perturbation", noise="read", samples=300), noisy, x, t)
    xs = _hidden_inputs(noisy, x)
    for l, m in enumerate(est):  # measured 0.69 and 0.81
        assert _cos(true[l].T @ xs[l], m) > 0.3


def _bp_deltas(net, x, t):
    """BP's δ per layer (rows: each sample's ∂ℓ_b/∂u_l divided by B)."""
    rule = get_rule("bp")
    rule.build(net)
    _, ups = rule.compute(net, x, t, Schedule(net.ledger, IDEAL.cost))
    by_name = {u.name: u.delta for u in ups}
    return [by_name[f"W{l}"] for l in range(len(net))]


def _hidden_inputs(net, x):
    net.forward(x)
    return net.cache.x


# --------------------------------------------------------------------------- all four


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


#: Digits-deep (64-64-64-10 tanh), 3 epochs, ideal, seed 0. With frozen hidden layers (only
#: the output layer learning) this reaches 0.688, so every floor below needs hidden learning.
LEARNS = {"forward_forward": (0.05, {}, 0.85), "pepita": (0.1, {}, 0.8),
          "forward_gradient": (0.05, {}, 0.85), "node_perturbation": (0.05, {}, 0.85)}


@pytest.mark.parametrize("rule", sorted(LEARNS))
def test_each_rule_learns_the_digits(digits, rule):
    lr, options, floor = LEARNS[rule]
    cfg = TrainConfig(rule=rule, epochs=3, lr=lr, seed=0, rule_options=options)
    out = train(IDEAL, ModelConfig(sizes=(64, 64, 64, 10)), cfg, dataset=digits)
    assert out["metrics"]["test_accuracy"] > floor
    assert out["metrics"]["transpose_energy_share"] == 0.0


@pytest.mark.parametrize("rule", sorted(LEARNS))
def test_each_rule_runs_on_a_noisy_preset_and_resumes_its_stream(digits, rule):
    hw = get_preset("aihwkit_default")
    cfg = TrainConfig(rule=rule, epochs=1, seed=1)
    tr = build_run(hw, ModelConfig(sizes=(64, 16, 10)), cfg, 64, 10)
    x, t = digits.x_train[:32], np.eye(10, dtype=np.float32)[digits.y_train[:32]]
    res = tr.step(x, t)
    assert np.isfinite(res.loss) and res.critical_path_ns > 0
    state = tr.rule.state_dict()
    if rule != "pepita":  # a seeded stream of its own, saved as PCG64 words
        key = next(k for k in state if k.startswith("rng."))
        assert state[key].dtype == np.uint64
        draws = tr.rule.rng.random(3)
        tr.rule.load_state_dict(state)
        np.testing.assert_array_equal(tr.rule.rng.random(3), draws)
    else:
        assert any(k.startswith("F.array.") for k in state)  # F on its own array


# --------------------------------------------------------------------------- errors


def test_options_and_misuse_give_clear_errors():
    with pytest.raises(ValueError, match=r"^rule\.head = 'soft' is invalid; allowed: one of "):
        get_rule("forward_forward", head="soft")
    with pytest.raises(ValueError, match=r"^rule\.sigma = 0 is invalid"):
        get_rule("forward_gradient", sigma=0)
    with pytest.raises(ValueError, match=r"^rule\.noise = 'shot' is invalid"):
        get_rule("node_perturbation", noise="shot")
    with pytest.raises(ValueError, match=r"^rule\.samples = 0 is invalid"):
        get_rule("node_perturbation", samples=0)
    x, t, _ = _batch()
    ff = get_rule("forward_forward")
    with pytest.raises(ValueError, match="at least one hidden layer"):
        ff.build(build_network(ModelConfig(sizes=(6, 3), backend="digital"), IDEAL, seed=0))
    with pytest.raises(ValueError, match=r"12 classes cannot be embedded in 6 input"):
        ff.build(build_network(ModelConfig(sizes=(6, 4, 12), backend="digital"), IDEAL,
                               seed=0))
    net = _digital_net()
    ff.build(net)
    with pytest.raises(ValueError, match=r"not one-hot class labels; allowed: a "
                                         "classification data set with 3 classes"):
        ff.compute(net, x, t * 0.5, Schedule(net.ledger, IDEAL.cost))
    step_net = build_network(ModelConfig(sizes=SIZES, hidden="step", backend="digital"),
                             IDEAL, seed=0)
    jvp = get_rule("forward_gradient", directional="jvp")
    jvp.build(step_net)
    with pytest.raises(NotDifferentiableError, match="forward_gradient"):
        jvp.compute(step_net, x, t, Schedule(step_net.ledger, IDEAL.cost))
    # without a derivative anywhere: the difference estimate and PEPITA train step units
    for name in ("forward_gradient", "node_perturbation", "pepita"):
        rule = get_rule(name)
        rule.build(step_net)
        loss, ups = rule.compute(step_net, x, t, Schedule(step_net.ledger, IDEAL.cost))
        assert np.isfinite(loss) and len(ups) == len(step_net)

