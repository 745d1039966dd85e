"""Activations: interface, derivatives and inverses, and the smooth ReLU of seed document 004."""

from __future__ import annotations

from decimal import Decimal, localcontext

import numpy as np
import pytest

from analogsim.layers.activations import (
    ACTIVATIONS,
    NoInverseError,
    NotDifferentiableError,
    SmoothReLU,
    get_activation,
    smooth_relu,
    smooth_relu_deps,
    smooth_relu_dx,
    smooth_relu_inverse,
)

SMOOTH_NAMES = ("identity", "tanh", "sigmoid", "smooth")
EPS_UNITS = np.array([1e-3, 0.05, 0.3, 2.0])


def _smooth(eps=EPS_UNITS, **kw):
    act = SmoothReLU(len(eps), **kw)
    act.load_state_dict({"theta": np.log(eps)})
    return act


def _central(f, x, h):
    return (f(x + h) - f(x - h)) / (2 * h)


# --------------------------------------------------------------------------- registry, interface


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_registry_builds_every_name_and_keeps_float32(name):
    act = get_activation(name, n_units=3)
    u = np.linspace(-2, 2, 12, dtype=np.float32).reshape(4, 3)
    h = act.forward(u)
    assert act.name == name and h.shape == u.shape and h.dtype == np.float32
    assert act(u).dtype == np.float32
    assert isinstance(act.params, dict) and isinstance(act.state_dict(), dict)
    assert repr(act).startswith(type(act).__name__)
    rebuilt = get_activation(**act.config())
    np.testing.assert_array_equal(rebuilt.forward(u), h)


def test_registry_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"'swish'.*identity, tanh, sigmoid, relu, step, "
                                         r"stochastic, smooth"):
        get_activation("swish")
    with pytest.raises(ValueError, match="n_units"):
        get_activation("smooth")
    with pytest.raises(TypeError, match=r"'tanh'.*\['eps0'\].*none"):
        get_activation("tanh", eps0=0.1)
    with pytest.raises(TypeError, match="surrogate"):
        get_activation("smooth", n_units=2, surrogate="identity")
    with pytest.raises(ValueError, match="surrogate = 'ste'.*'identity', 'clipped', 'sigmoid'"):
        get_activation("step", surrogate="ste")


def test_params_empty_except_smooth():
    for name in ACTIVATIONS:
        act = get_activation(name, n_units=2)
        assert (act.params == {}) == (name != "smooth")
    assert not get_activation("smooth", n_units=2, learnable=False).params


def test_bad_input_types():
    with pytest.raises(TypeError, match="u has dtype"):
        get_activation("tanh").forward(np.array(["a"]))
    with pytest.raises(TypeError, match="rng"):
        get_activation("tanh").forward(np.zeros(2), rng=0)
    with pytest.raises(ValueError, match="h.shape"):
        get_activation("tanh").deriv(np.zeros(3), np.zeros(2))
    # integer input is promoted, not truncated
    assert get_activation("sigmoid").forward(np.array([0]))[0] == 0.5


# --------------------------------------------------------------------------- derivatives, inverses


@pytest.mark.parametrize("name", ["identity", "tanh", "sigmoid", "relu", "smooth"])
def test_deriv_matches_central_difference(name):
    act = get_activation(name, n_units=4)
    rng = np.random.default_rng(0)
    u = rng.normal(0, 2, (5, 4))
    u[np.abs(u) < 1e-3] = 0.5  # keep relu away from its kink
    numeric = _central(act.forward, u, 1e-6)
    np.testing.assert_allclose(act.deriv(u, act.forward(u)), numeric, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(act.deriv(u), numeric, rtol=1e-6, atol=1e-9)  # h recomputed


@pytest.mark.parametrize("name", SMOOTH_NAMES)
def test_inverse_round_trip(name):
    act = get_activation(name, n_units=4)
    assert act.has_inverse
    u = np.random.default_rng(1).normal(0, 1.5, (6, 4))
    np.testing.assert_allclose(act.inverse(act.forward(u)), u, rtol=1e-9, atol=1e-9)


def test_inverse_domain_errors():
    with pytest.raises(ValueError, match=r"tanh.inverse.*\(-1, 1\)"):
        get_activation("tanh").inverse(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match=r"sigmoid.inverse.*\(0, 1\)"):
        get_activation("sigmoid").inverse(np.array([0.0, 0.5]))
    with pytest.raises(ValueError, match="values <= 0"):
        get_activation("smooth", n_units=2).inverse(np.array([[0.1, 0.0]]))
    for name in ("relu", "step", "stochastic"):
        act = get_activation(name)
        assert not act.has_inverse
        with pytest.raises(NoInverseError, match="no inverse"):
            act.inverse(np.array([0.5]))


@pytest.mark.parametrize("name", ["step", "stochastic"])
def test_non_differentiable_refuse_deriv_without_surrogate(name):
    act = get_activation(name)
    assert not act.differentiable and not act.has_deriv
    with pytest.raises(NotDifferentiableError, match=r"is 0 almost everywhere.*surrogate"):
        act.deriv(np.zeros(3))
    assert get_activation(name, surrogate="identity").has_deriv


def test_step_forward_and_surrogates():
    u = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    np.testing.assert_array_equal(get_activation("step").forward(u), [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(get_activation("step", surrogate="identity").deriv(u), 1)
    np.testing.assert_array_equal(get_activation("step", surrogate="clipped").deriv(u),
                                  [0, 1, 1, 1, 0])
    s = 1 / (1 + np.exp(-u))
    np.testing.assert_allclose(get_activation("step", surrogate="sigmoid").deriv(u), s * (1 - s))


def test_stochastic_binary_samples_mean_and_surrogate():
    act = get_activation("stochastic", surrogate="sigmoid")
    assert act.stochastic and not act.differentiable
    u = np.array([-1.0, 0.0, 2.0])
    p = 1 / (1 + np.exp(-u))
    np.testing.assert_allclose(act.forward(u), p)  # rng None -> the mean
    uu = np.tile(u, (20000, 1))
    h1 = act.forward(uu, rng=np.random.default_rng(3))
    h2 = act.forward(uu, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(h1, h2)
    assert set(np.unique(h1)) <= {0.0, 1.0}
    np.testing.assert_allclose(h1.mean(axis=0), p, atol=4 * 0.5 / np.sqrt(20000))
    # the surrogate is the derivative of the mean, from u, whatever the 0/1 sample was
    np.testing.assert_allclose(act.deriv(uu[:2], h1[:2]), np.tile(p * (1 - p), (2, 1)))


def test_fixed_activations_have_no_state():
    act = get_activation("relu")
    act.load_state_dict({})
    with pytest.raises(ValueError, match="no state"):
        act.load_state_dict({"theta": [0.0]})


# --------------------------------------------------------------------------- smooth activation


def test_smooth_float32_large_negative_is_accurate():
    x, eps = np.float32(-1e4), np.float32(1e-3)
    with localcontext() as ctx:
        ctx.prec = 50
        xd, ed = Decimal(float(x)), Decimal(float(eps))
        ref = float((xd + (xd * xd + 4 * ed).sqrt()) / 2)
    naive = 0.5 * (x + np.sqrt(x * x + 4 * eps))
    assert naive == 0  # the cancellation the stable form avoids
    for got in (smooth_relu(np.array([x]), eps)[0],
                SmoothReLU(1, eps0=1e-3).forward(np.array([[x]], dtype=np.float32))[0, 0]):
        assert got.dtype == np.float32 and got > 0
        assert abs(float(got) - ref) / ref < 1e-5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_smooth_matches_high_precision_everywhere(dtype):
    x = np.concatenate([-np.logspace(-6, 30, 40), [0.0], np.logspace(-6, 30, 40)]).astype(dtype)
    eps = 0.01
    f = smooth_relu(x, eps)
    assert f.dtype == dtype and np.all(f > 0) and np.all(np.isfinite(f))
    with localcontext() as ctx:
        ctx.prec = 80  # x^2 spans 60 digits at |x| = 1e30; the cancellation needs the rest
        ref = [float((Decimal(float(v)) + (Decimal(float(v)) ** 2 + 4 * Decimal(eps)).sqrt()) / 2)
               for v in x]
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(f.astype(np.float64), ref, rtol=tol)


def test_smooth_derivatives_from_output_match_finite_differences():
    x = np.linspace(-5, 5, 41)
    for eps in (1e-3, 0.1, 3.0):
        f = smooth_relu(x, eps)
        np.testing.assert_allclose(smooth_relu_dx(f, eps),
                                   _central(lambda t, e=eps: smooth_relu(t, e), x, 1e-6), rtol=1e-7)
        h = 1e-4 * eps
        fd_eps = (smooth_relu(x, eps + h) - smooth_relu(x, eps - h)) / (2 * h)
        np.testing.assert_allclose(smooth_relu_deps(f, eps), fd_eps, rtol=1e-7)
        np.testing.assert_allclose(smooth_relu_inverse(f, eps), x, atol=1e-12 + 1e-9 * eps)


def test_smooth_methods_use_per_unit_eps():
    act = _smooth()
    x = np.random.default_rng(2).normal(0, 2, (7, 4))
    h = act.forward(x)
    np.testing.assert_allclose(h, smooth_relu(x, EPS_UNITS))
    np.testing.assert_allclose(act.deps(h), smooth_relu_deps(h, EPS_UNITS))
    np.testing.assert_allclose(act.inverse(h), x, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(act.eps, EPS_UNITS)


def test_smooth_tends_to_relu():
    x = np.linspace(-3, 3, 61)
    for eps in (1e-2, 1e-6, 1e-12):
        gap = np.abs(smooth_relu(x, eps) - np.maximum(x, 0))
        assert gap.max() <= np.sqrt(eps) * (1 + 1e-12)  # the largest gap is sqrt(eps), at x = 0


def test_grad_eps_identity_and_batch_sum():
    act = _smooth()
    rng = np.random.default_rng(4)
    u = rng.normal(0, 2, (3, 5, 4))  # leading axes are all summed
    h = act.forward(u)
    dE_dh = rng.normal(size=u.shape)
    delta = dE_dh * act.deriv(u, h)
    g = act.grad_eps(delta, h)
    assert g.shape == (4,) and g.dtype == np.float64
    np.testing.assert_allclose(g, act.grad_eps_from_dh(dE_dh, h), rtol=1e-12)
    np.testing.assert_allclose(g, (dE_dh * act.deps(h)).reshape(-1, 4).sum(0), rtol=1e-12)
    with pytest.raises(ValueError, match="delta_pre.shape"):
        act.grad_eps(delta[0], h)


# A tiny 2-layer network x -> W1 -> smooth -> W2 -> smooth -> z with E = 1/2 sum (z - d)^2.


def _mlp_forward(x, w1, w2, act1, act2):
    u1 = x @ w1.T
    h1 = act1.forward(u1)
    u2 = h1 @ w2.T
    return u1, h1, u2, act2.forward(u2)


def _mlp_loss(x, d, w1, w2, act1, act2):
    z = _mlp_forward(x, w1, w2, act1, act2)[-1]
    return 0.5 * np.sum((z - d) ** 2)


def _mlp_eps_grads(x, d, w1, w2, act1, act2):
    u1, h1, u2, z = _mlp_forward(x, w1, w2, act1, act2)
    delta2 = (z - d) * act2.deriv(u2, z)  # output layer: (z - d) f'
    dE_dh1 = delta2 @ w2
    delta1 = dE_dh1 * act1.deriv(u1, h1)
    g1 = act1.grad_eps(delta1, h1)
    np.testing.assert_allclose(g1, act1.grad_eps_from_dh(dE_dh1, h1), rtol=1e-12)
    return g1, act2.grad_eps(delta2, z)


@pytest.fixture
def mlp():
    rng = np.random.default_rng(5)
    x, d = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    w1, w2 = rng.normal(size=(4, 3)), rng.normal(size=(2, 4))
    return x, d, w1, w2, _smooth(), _smooth(np.array([0.02, 0.7]))


def test_mlp_eps_gradient_matches_finite_differences(mlp):
    x, d, w1, w2, act1, act2 = mlp
    grads = _mlp_eps_grads(*mlp)
    for act, g in zip((act1, act2), grads, strict=True):
        for j in range(act.n_units):
            eps0, step = act.eps[j], 1e-5 * act.eps[j]
            losses = []
            for e in (eps0 + step, eps0 - step):
                act.theta[j] = np.log(e)
                losses.append(_mlp_loss(*mlp))
            act.theta[j] = np.log(eps0)
            np.testing.assert_allclose(g[j], (losses[0] - losses[1]) / (2 * step),
                                       rtol=1e-6, atol=1e-10)


def test_mlp_theta_gradient_is_eps_times_eps_gradient(mlp):
    x, d, w1, w2, act1, act2 = mlp
    for act, g in zip((act1, act2), _mlp_eps_grads(*mlp), strict=True):
        g_theta = act.grad_theta(g)
        np.testing.assert_allclose(g_theta, act.eps * g)
        for j in range(act.n_units):
            act.theta[j] += 1e-6
            up = _mlp_loss(*mlp)
            act.theta[j] -= 2e-6
            down = _mlp_loss(*mlp)
            act.theta[j] += 1e-6
            np.testing.assert_allclose(g_theta[j], (up - down) / 2e-6, rtol=1e-6, atol=1e-10)


def test_theta_update_rules():
    g = np.array([0.5, -2.0, 1.0, 0.0])
    text, chain = _smooth(theta_rule="text"), _smooth(theta_rule="chain")
    np.testing.assert_allclose(text.theta_update(g, 0.1), -0.1 * g / EPS_UNITS)
    np.testing.assert_allclose(chain.theta_update(g, 0.1), -0.1 * EPS_UNITS * g)
    # the text's step is SGD on eps to first order: eps' - eps ~ -lr dE/deps, and eps stays > 0
    lr = 1e-6
    text.apply_theta_update(text.theta_update(g, lr))
    np.testing.assert_allclose(text.eps - EPS_UNITS, -lr * g, rtol=1e-3, atol=1e-15)
    assert np.all(text.eps > 0)
    with pytest.raises(ValueError, match="lr = -1"):
        text.theta_update(g, -1)
    with pytest.raises(ValueError, match=r"grad_eps.*shape \(4,\)"):
        text.theta_update(g[:3], 0.1)


@pytest.mark.parametrize("rule", ["text", "chain"])
def test_diverging_theta_step_is_refused_and_theta_kept(rule):
    act = _smooth(theta_rule=rule)
    before = act.theta.copy()
    step = act.theta_update(np.array([1e6, 0.0, 0.0, -1e6]), 1e3)  # eps -> 0 and -> inf
    with pytest.raises(ValueError, match="lower lr_eps") as info:
        act.apply_theta_update(step)
    assert ("theta_rule = 'chain'" in str(info.value)) == (rule == "text")
    np.testing.assert_array_equal(act.theta, before)
    act.apply_theta_update(np.full(4, 1e-3))  # an ordinary step still works
    np.testing.assert_allclose(act.theta, before + 1e-3)


def test_theta_state_and_params():
    act = SmoothReLU(3, eps0=0.2)
    np.testing.assert_allclose(act.theta, np.log(0.2))
    live = act.params["theta"]
    act.apply_theta_update(np.array([0.1, 0.0, -0.1]))
    assert live is act.theta and live[0] == pytest.approx(np.log(0.2) + 0.1)
    state = act.state_dict()
    state["theta"][0] = 99.0  # a copy: editing it leaves the activation alone
    assert act.theta[0] != 99.0
    other = SmoothReLU(3)
    other.load_state_dict(act.state_dict())
    np.testing.assert_array_equal(other.theta, act.theta)
    assert all(isinstance(v, np.ndarray) and v.dtype.kind == "f" for v in state.values())
    with pytest.raises(ValueError, match="exactly"):
        other.load_state_dict({"theta": act.theta, "eps": act.eps})
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        other.load_state_dict({"theta": [0.0, np.nan, 0.0]})
    frozen = SmoothReLU(3, learnable=False)
    with pytest.raises(ValueError, match="learnable=False"):
        frozen.apply_theta_update(np.zeros(3))


@pytest.mark.parametrize("kw, match", [
    ({"n_units": 0}, "n_units = 0"),
    ({"n_units": 2.0}, "n_units = 2.0"),
    ({"n_units": 2, "eps0": 0.0}, "eps0 = 0.0"),
    ({"n_units": 2, "eps0": np.inf}, "eps0 = inf"),
    ({"n_units": 2, "theta_rule": "adam"}, "theta_rule = 'adam'.*'text', 'chain'"),
])
def test_smooth_constructor_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        SmoothReLU(**kw)


def test_smooth_shape_validation():
    act = SmoothReLU(3)
    with pytest.raises(ValueError, match=r"u.shape = \(2, 4\).*\(\.\.\., 3\)"):
        act.forward(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="values <= 0"):
        act.grad_eps(np.ones((1, 3)), np.array([[1.0, -1.0, 1.0]]))


def test_smooth_functions_reject_bad_eps():
    for eps in (0.0, -1.0, np.nan, np.array([0.1, -0.1])):
        with pytest.raises(ValueError, match="eps has values"):
            smooth_relu(np.zeros(2), eps)
