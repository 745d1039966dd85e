"""Losses: values, finite-difference gradients, stability and validation."""

from __future__ import annotations

import numpy as np
import pytest

from analogsim.layers.losses import SoftmaxCrossEntropy, SquaredError, get_loss, log_softmax


def _numeric_grad(loss, z, d, h=1e-6):
    g = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += h
        zm[idx] -= h
        g[idx] = (loss.value(zp, d) - loss.value(zm, d)) / (2 * h)
    return g


def _batch(seed=0, b=5, k=4):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, (b, k))
    y = rng.integers(0, k, b)
    return z, np.eye(k)[y], rng


@pytest.mark.parametrize("name", ["xent", "mse"])
def test_grad_matches_finite_differences(name):
    loss = get_loss(name)
    z, d, _ = _batch()
    np.testing.assert_allclose(loss.grad(z, d), _numeric_grad(loss, z, d), rtol=1e-6, atol=1e-9)


def test_xent_soft_targets_gradient():
    loss = SoftmaxCrossEntropy()
    z, _, rng = _batch(1)
    d = rng.random(z.shape)  # rows need not sum to 1 for the gradient formula to hold
    np.testing.assert_allclose(loss.grad(z, d), _numeric_grad(loss, z, d), rtol=1e-6, atol=1e-9)


def test_values():
    z = np.zeros((3, 4))
    d = np.eye(4)[[0, 1, 2]]
    assert SoftmaxCrossEntropy().value(z, d) == pytest.approx(np.log(4))
    assert SquaredError().value(z, d) == pytest.approx(0.5)  # 1/2 * 1 per sample, mean over 3
    z2, d2, _ = _batch(2)
    assert SquaredError().value(z2, d2) == pytest.approx(0.5 * np.sum((z2 - d2) ** 2) / 5)
    p = np.exp(z2) / np.exp(z2).sum(1, keepdims=True)
    assert SoftmaxCrossEntropy().value(z2, d2) == pytest.approx(-np.sum(d2 * np.log(p)) / 5)
    np.testing.assert_allclose(SoftmaxCrossEntropy().output(z2), p)


def test_xent_is_stable_for_huge_logits():
    z = np.array([[1e4, 0.0, -1e4], [-1e4, -1e4 + 1.0, -1e4]], dtype=np.float32)
    d = np.eye(3, dtype=np.float32)[[1, 1]]
    loss = SoftmaxCrossEntropy()
    assert loss.value(z, d) == pytest.approx((1e4 + np.log1p(2 * np.exp(-1.0))) / 2, rel=1e-6)
    g = loss.grad(z, d)
    assert g.dtype == np.float32 and np.all(np.isfinite(g))
    np.testing.assert_allclose(g.sum(axis=1), 0, atol=1e-7)
    assert np.all(np.isfinite(log_softmax(z)))


@pytest.mark.parametrize("name", ["xent", "mse"])
def test_grad_keeps_dtype_of_z(name):
    z, d, _ = _batch(3)
    assert get_loss(name).grad(z.astype(np.float32), d).dtype == np.float32


@pytest.mark.parametrize("name", ["xent", "mse"])
@pytest.mark.parametrize("z, d, err, match", [
    (np.zeros((2, 3)), np.zeros((2, 4)), ValueError, r"z.shape = \(2, 3\).*target.shape"),
    (np.zeros(3), np.zeros(3), ValueError, r"z.shape = \(3,\).*2-D"),
    (np.zeros((2, 3)), np.zeros((2, 3, 1)), ValueError, "target.shape"),
    (np.array([[0.0, np.nan]]), np.zeros((1, 2)), ValueError, "z has non-finite"),
    (np.zeros((1, 2)), np.array([[np.inf, 0.0]]), ValueError, "target has non-finite"),
    (np.array([["a", "b"]]), np.zeros((1, 2)), TypeError, "z has dtype"),
    (np.zeros((0, 2)), np.zeros((0, 2)), ValueError, "empty batch"),
])
def test_validation(name, z, d, err, match):
    loss = get_loss(name)
    for method in (loss.value, loss.grad):
        with pytest.raises(err, match=match):
            method(z, d)


def test_registry():
    assert isinstance(get_loss("xent"), SoftmaxCrossEntropy)
    assert isinstance(get_loss("mse"), SquaredError)
    with pytest.raises(ValueError, match="'hinge'.*xent, mse"):
        get_loss("hinge")
