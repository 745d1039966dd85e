"""DNI and the BP/DNI hybrid: NumPy references, reductions, zero init, schedule, training."""

import numpy as np
import pytest

from analogsim.hardware.presets import get_preset
from analogsim.layers.linear import TransposeRequiredError
from analogsim.layers.network import ModelConfig, build_network
from analogsim.rules import SGD, Schedule, Trainer, get_rule

IDEAL = get_preset("ideal")
LR, LR_AUX = 0.05, 0.02


def _batch(n_in=6, n_out=3, b=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, n_in)).astype(np.float32)
    t = np.eye(n_out, dtype=np.float32)[rng.integers(0, n_out, b)]
    return x, t


def _digital_net(sizes=(6, 5, 4, 3), seed=4):
    net = build_network(ModelConfig(sizes=sizes, hidden="tanh", backend="digital"), IDEAL,
                        seed=seed)
    rng = np.random.default_rng(seed + 100)
    for layer in net.layers:
        layer.b[:] = rng.standard_normal(layer.n_out)
    return net


def _randomise_predictors(rule, seed=7):
    # Zero predictors would make most of the step trivially zero: give them values.
    rng = np.random.default_rng(seed)
    for m in rule.predictors.values():
        m.w[...] = rng.uniform(-0.5, 0.5, m.w.shape)
        m.b[...] = rng.uniform(-0.2, 0.2, m.b.shape)


def _reference(ws, bs, ms, cs, fb, x, t, *, boundaries, label, bootstrap, kappa, nlms=False):
    """Plain NumPy step: new (W, b) per layer and (M, c) per predictor (tanh, xent).

    ``nlms``: the predictor step is divided by the batch's mean ‖[h; t]‖² (normalised LMS).
    """
    n, bsz = len(ws), len(x)
    xs, hs, us, h = [], [], [], x
    for l in range(n):
        xs.append(h)
        u = h @ ws[l].T + bs[l]
        h = np.tanh(u) if l < n - 1 else u
        us.append(u)
        hs.append(h)
    p = np.exp(us[-1] - us[-1].max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d = {n - 1: (p - t) / bsz}
    back = (lambda l, v: v @ fb[l].T) if fb is not None else (lambda l, v: v @ ws[l])
    pin, s = {}, {}
    for l in range(n - 2, -1, -1):
        fp = 1 - hs[l] ** 2
        if l in boundaries:
            pin[l] = np.concatenate([hs[l], t], 1) if label else hs[l]
            s[l] = pin[l] @ ms[l].T + cs[l]
            d[l] = s[l] / bsz * fp
        else:  # hybrid: BP inside the block (always through Wᵀ)
            d[l] = (d[l + 1] @ ws[l + 1]) * fp
    true = {n - 1: d[n - 1]}
    new = {}
    for l in range(n - 2, -1, -1):
        if l not in boundaries:
            continue
        src = d if bootstrap else true
        g = back(l + 1, src[l + 1]) * bsz
        true[l] = g / bsz * (1 - hs[l] ** 2)
        step = kappa / (1e-6 + np.mean(np.sum(pin[l] ** 2, 1))) if nlms else kappa
        r = step * (s[l] - g) / bsz
        new[f"M{l}"] = (ms[l] - LR_AUX * r.T @ pin[l], cs[l] - LR_AUX * r.sum(0))
    for l in range(n):
        new[f"W{l}"] = (ws[l] - LR * d[l].T @ xs[l], bs[l] - LR * d[l].sum(0))
    return new


def _check_step(rule, net, *, boundaries, bootstrap, label, use_fb):
    x, t = _batch(n_out=net.n_out)
    rule.build(net)
    _randomise_predictors(rule)
    ws = [la.w.astype(np.float64) for la in net.layers]
    bs = [la.b.astype(np.float64) for la in net.layers]
    ms = {int(k[1:]): m.w.astype(np.float64) for k, m in rule.predictors.items()}
    cs = {int(k[1:]): m.b.astype(np.float64) for k, m in rule.predictors.items()}
    fb = {int(k[1:]): m.w.astype(np.float64) for k, m in rule.feedback.items()} \
        if use_fb else None
    ref = _reference(ws, bs, ms, cs, fb, x.astype(np.float64), t.astype(np.float64),
                     boundaries=boundaries, label=label, bootstrap=bootstrap,
                     kappa=rule.options.predictor_lr_scale,
                     nlms=rule.engine.predictor_step == "nlms")
    _, ups = rule.compute(net, x, t, Schedule(net.ledger, IDEAL.cost))
    SGD(lr=LR, lr_aux=LR_AUX).apply(ups)
    got = {f"W{l}": (la.w, la.b) for l, la in enumerate(net.layers)}
    got.update({k: (m.w, m.b) for k, m in rule.predictors.items()})
    assert set(got) == set(ref)
    for key, (w, b) in ref.items():
        np.testing.assert_allclose(got[key][0], w, rtol=1e-4, atol=1e-6, err_msg=key)
        np.testing.assert_allclose(got[key][1], b, rtol=1e-4, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("target,bootstrap,label", [
    ("feedback", True, True), ("transpose", True, True), ("feedback", False, True),
    ("transpose", False, False), ("feedback", True, False)])
def test_dni_step_matches_numpy_reference(target, bootstrap, label):
    rule = get_rule("dni", target=target, bootstrap=bootstrap, label=label,
                    feedback="digital", seed=5)
    _check_step(rule, _digital_net(), boundaries={0, 1}, bootstrap=bootstrap, label=label,
                use_fb=target == "feedback")


def test_hybrid_step_matches_numpy_reference():
    # 4 layers in blocks of 2 from the top: {2, 3} with the true error, {0, 1} below with a
    # predictor at layer 1 and BP from layer 1 to layer 0.
    rule = get_rule("hybrid", blocks=2, seed=5)
    net = _digital_net(sizes=(6, 5, 4, 4, 3))
    _check_step(rule, net, boundaries={1}, bootstrap=True, label=True, use_fb=False)


@pytest.mark.parametrize("step", ["plain", "nlms"])
@pytest.mark.parametrize("name,boundaries", [("dni", {0, 1}), ("hybrid", {1})])
def test_predictor_steps_match_numpy_reference(name, boundaries, step):
    options = {"target": "feedback", "feedback": "digital"} if name == "dni" else {"blocks": 2}
    rule = get_rule(name, predictor_step=step, predictor_lr_scale=3.0, seed=5, **options)
    net = _digital_net() if name == "dni" else _digital_net(sizes=(6, 5, 4, 4, 3))
    _check_step(rule, net, boundaries=boundaries, bootstrap=True, label=True,
                use_fb=name == "dni")


def test_nlms_step_is_stable_where_the_plain_step_diverges():
    # A linear predictor fit by LMS on 266 correlated tanh inputs (one shared factor, as the
    # hidden units of a trained net share one): the input covariance's largest eigenvalue is
    # most of the input power P ~ 100, so the plain step μ = 0.05 has μ·λ_max far beyond 2
    # and blows up; NLMS with the same μ (μ·λ_max / P < μ) converges.
    rng = np.random.default_rng(3)
    n_in, n_out, b = 266, 8, 32
    m_true = rng.standard_normal((n_out, n_in)).astype(np.float32) * 0.05
    v = rng.standard_normal(n_in)
    errors = {}
    for step in ("plain", "nlms"):
        m = np.zeros((n_out, n_in), dtype=np.float32)
        for _ in range(200):
            s = rng.standard_normal((b, 1)) * 2.0
            u = np.tanh(s * v + 0.3 * rng.standard_normal((b, n_in))).astype(np.float32)
            scale = 0.05 / (1e-6 + np.mean(np.sum(u * u, 1))) if step == "nlms" else 0.05
            with np.errstate(over="ignore", invalid="ignore"):
                r = u @ m.T - u @ m_true.T
                m = m - scale * (r.T @ u) / b
        errors[step] = float(np.linalg.norm(m - m_true) / np.linalg.norm(m_true))
    assert not errors["plain"] < 1.0  # diverged (inf/NaN or growing)
    assert errors["nlms"] < 1.0


def _updates(name, net, **options):
    rule = get_rule(name, **options)
    rule.build(net)
    if hasattr(rule, "predictors"):
        _randomise_predictors(rule)
    x, t = _batch(n_out=net.n_out)
    _, ups = rule.compute(net, x, t, Schedule(net.ledger, IDEAL.cost))
    return {u.name: u.delta for u in ups}


def test_hybrid_with_one_layer_blocks_is_dni_through_the_transpose():
    net = _digital_net(sizes=(6, 5, 4, 4, 3))
    a = _updates("hybrid", net, blocks=1)
    b = _updates("dni", net, target="transpose")
    assert set(a) == set(b) == {"W0", "W1", "W2", "W3", "M0", "M1", "M2"}
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.parametrize("blocks", [4, 9])
def test_hybrid_with_one_block_is_bp(blocks):
    net = _digital_net(sizes=(6, 5, 4, 4, 3))
    hy = _updates("hybrid", net, blocks=blocks)
    bp = _updates("bp", net)
    assert set(hy) == set(bp)
    for k in hy:
        np.testing.assert_array_equal(hy[k], bp[k])


@pytest.mark.parametrize("backend", ["digital", "analog"])
def test_zero_predictors_leave_hidden_layers_unchanged_on_the_first_step(backend):
    """δ̂_l = 0 ⇒ hidden W and b unchanged; output layer and top predictor learn; bootstrapped
    lower predictors see the target T(δ̂) = 0 and stay at zero too."""
    net = build_network(ModelConfig(sizes=(6, 5, 4, 4, 3), backend=backend), IDEAL, seed=1)
    rule = get_rule("dni", seed=2)
    tr = Trainer(net, rule, SGD(lr=0.1, lr_aux=0.1))
    before = [la.state_dict() for la in net.layers]
    m_before = {k: m.state_dict() for k, m in rule.predictors.items()}
    x, t = _batch(n_out=3, b=8)
    tr.step(x, t)

    def same(a, b):  # weights (w or conductances) and biases; not the arrays' op counters
        return all(np.array_equal(a[k], b[k]) for k in a if not k.endswith("counters"))

    assert [same(b, la.state_dict()) for b, la in zip(before, net.layers, strict=True)] \
        == [True, True, True, False]
    assert {k: same(m_before[k], m.state_dict()) for k, m in rule.predictors.items()} \
        == {"M2": False, "M1": True, "M0": True}
    tr.step(x, t)  # now M2 ≠ 0: the top hidden layer and M1 learn
    assert not same(before[2], net.layers[2].state_dict())
    assert not same(m_before["M1"], rule.predictors["M1"].state_dict())


def _step_schedule(name, sizes, **options):
    net = build_network(ModelConfig(sizes=sizes), IDEAL, seed=0,
                        transpose="bidirectional" if name == "bp" else None)
    rule = get_rule(name, **options)
    rule.build(net)
    x, t = _batch(n_in=sizes[0], n_out=sizes[-1], b=16)
    sched = Schedule(net.ledger, IDEAL.cost)
    _, ups = rule.compute(net, x, t, sched)
    SGD(lr=0.01).apply(ups, sched)
    return sched


def test_dni_critical_path_is_shorter_than_bp_and_decoupled():
    deep, shallow = (64, 32, 32, 32, 10), (64, 32, 10)
    dni, bp = _step_schedule("dni", deep), _step_schedule("bp", deep)
    assert 0 < dni.critical_path_ns < bp.critical_path_ns
    # Decoupled: layer 0's update waits only for its own forward read and its predictor,
    # so it finishes at the same time however many layers follow; BP's waits for them all.
    assert dni.finish["upd:W0"] == pytest.approx(_step_schedule("dni", shallow).finish["upd:W0"])
    assert bp.finish["upd:W0"] > _step_schedule("bp", shallow).finish["upd:W0"]
    assert dni.finish["upd:W0"] < bp.finish["upd:W0"]


def test_transpose_target_asks_for_a_transpose_strategy():
    assert get_rule("dni").needs_transpose is False
    assert get_rule("dni", target="transpose").needs_transpose is True
    assert get_rule("hybrid").needs_transpose is True
    net = build_network(ModelConfig(sizes=(6, 5, 4, 3)), IDEAL, seed=0)
    x, t = _batch()
    rule = get_rule("dni", target="transpose")
    rule.build(net)
    with pytest.raises(TransposeRequiredError, match="transpose strategy"):
        rule.compute(net, x, t, Schedule(net.ledger, IDEAL.cost))


def test_predictors_live_on_arrays_and_are_charged_and_checkpointed():
    net = build_network(ModelConfig(sizes=(6, 5, 4, 3)), IDEAL, seed=0)
    rule = get_rule("dni", label=False, seed=3)
    tr = Trainer(net, rule, SGD(lr=0.05, lr_aux=0.1))
    assert [m.backend for m in rule.predictors.values()] == ["analog", "analog"]
    assert rule.predictors["M1"].shape == (4, 4)  # no label: input h_1 only
    x, t = _batch(b=8)
    for _ in range(3):
        tr.step(x, t)
    scope = net.ledger.child("rule")
    for k in ("M0", "M1", "B1", "B2"):
        assert scope.child(k).totals()["mvm"] > 0, k
    assert scope.child("M1").totals()["write_pulses"] > 0
    state = rule.state_dict()
    fresh = get_rule("dni", label=False, seed=3)
    fresh.build(build_network(ModelConfig(sizes=(6, 5, 4, 3)), IDEAL, seed=0))
    fresh.load_state_dict(state)
    for k, v in fresh.state_dict().items():
        np.testing.assert_array_equal(v, state[k], err_msg=k)


@pytest.mark.parametrize("name,options,match", [
    ("dni", {"target": "oracle"}, "target"),
    ("dni", {"bootstrap": "yes"}, "bootstrap"),
    ("dni", {"label": 1}, "label"),
    ("dni", {"feedback": "optical"}, "feedback"),
    ("dni", {"feedback_scale": 0}, "feedback_scale"),
    ("dni", {"headroom": 0.5}, "headroom"),
    ("dni", {"predictor_lr_scale": -1}, "predictor_lr_scale"),
    ("dni", {"blocks": 2}, "is unknown"),
    ("hybrid", {"blocks": 0}, "blocks"),
    ("hybrid", {"blocks": 1.5}, "blocks"),
    ("hybrid", {"target": "feedback"}, "is unknown"),
])
def test_bad_options_raise(name, options, match):
    with pytest.raises(ValueError, match=match):
        get_rule(name, **options)


@pytest.mark.parametrize("name,sizes,epochs", [("dni", (64, 64, 10), 3),
                                               ("hybrid", (64, 64, 64, 10), 2)])
@pytest.mark.parametrize("preset", ["ideal", "aihwkit_default"])
def test_rule_learns_digits(name, sizes, epochs, preset):
    from analogsim.experiments.runner import TrainConfig, train

    # Default options and the runner's default lr_aux; the hybrid cuts 3 layers into {1, 2}
    # (true error) and {0} (synthetic gradient). Both presets allow bidirectional reads.
    cfg = TrainConfig(rule=name, epochs=epochs, lr=0.05, seed=0, transpose="bidirectional")
    out = train(get_preset(preset), ModelConfig(sizes=sizes), cfg)
    losses = [e["train_loss"] for e in out["epochs"]]
    assert losses[-1] < 0.8 * losses[0]
    assert out["metrics"]["test_accuracy"] > 0.6  # chance is 0.1


def test_synthetic_gradients_beat_frozen_hidden_layers():
    """With lr_aux = 0 the predictors stay zero and only the output layer learns; a trained
    predictor (here of the exact gradient, through Wᵀ) must do clearly better."""
    from analogsim.experiments.runner import TrainConfig, train

    model = ModelConfig(sizes=(64, 64, 64, 10), backend="digital")
    final = {}
    for lr_aux in (0.0, 0.01):
        cfg = TrainConfig(rule="dni", epochs=2, lr_aux=lr_aux, seed=0,
                          rule_options={"target": "transpose"})
        final[lr_aux] = train(IDEAL, model, cfg)["metrics"]["train_loss"]
    assert final[0.01] < 0.75 * final[0.0]
