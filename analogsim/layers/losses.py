r"""Output losses on a batch of network outputs ``z`` (shape ``(B, K)``) and targets ``d``.

Both losses report the *mean over the batch* of a per-sample loss, and ``grad`` is the gradient
of that mean, so it already carries the factor ``1/B``:

``xent`` (:class:`SoftmaxCrossEntropy`)
    :math:`E = \frac1B\sum_b \left(\operatorname{lse}(z_b) \sum_k d_{bk} - \sum_k d_{bk} z_{bk}
    \right)` with :math:`\operatorname{lse}(z) = \log\sum_k e^{z_k}`, i.e. the cross-entropy
    of softmax(z) against target distributions ``d`` (one-hot or soft);
    :math:`\partial E/\partial z_{bk} = (p_{bk}\sum_j d_{bj} - d_{bk})/B`,
    :math:`p = \operatorname{softmax}(z)`, which is :math:`(p - d)/B` for rows that sum to 1.
``mse`` (:class:`SquaredError`)
    the seed text's :math:`E = \frac1B\sum_b \tfrac12\sum_k (z_{bk} - d_{bk})^2`;
    :math:`\partial E/\partial z = (z - d)/B`.

``grad`` has the dtype of ``z``; ``value`` is accumulated in float64.  Inputs are validated:
``z`` and ``target`` must be 2-D real arrays of the same shape with finite entries; otherwise
``ValueError``/``TypeError`` naming the parameter.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Loss", "SoftmaxCrossEntropy", "SquaredError", "get_loss", "LOSSES", "log_softmax"]


def _check_pair(owner: str, z: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``(z, target)`` and return them as float arrays (float32 stays float32)."""
    out = []
    for name, x in (("z", z), ("target", target)):
        arr = np.asarray(x)
        if arr.dtype.kind in "iub":
            arr = arr.astype(np.float64)
        elif arr.dtype.kind != "f":
            raise TypeError(f"{owner}: {name} has dtype {arr.dtype}; allowed: a real array")
        if arr.ndim != 2:
            raise ValueError(f"{owner}: {name}.shape = {arr.shape} is invalid; allowed: 2-D "
                             "(batch, outputs)")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{owner}: {name} has non-finite entries (nan or inf); allowed: "
                             "finite values")
        out.append(arr)
    if out[0].shape != out[1].shape:
        raise ValueError(f"{owner}: z.shape = {out[0].shape} differs from target.shape = "
                         f"{out[1].shape}; allowed: equal shapes (use onehot() for labels)")
    if out[0].shape[0] == 0:
        raise ValueError(f"{owner}: z has an empty batch (shape {out[0].shape}); allowed: B >= 1")
    return out[0], out[1]


def log_softmax(z: np.ndarray) -> np.ndarray:
    r"""Row-wise :math:`\log\operatorname{softmax}(z) = z - \operatorname{lse}(z)`.

    The log-sum-exp subtracts the row maximum first, :math:`\operatorname{lse}(z) = m +
    \log\sum_k e^{z_k - m}`, so no exponent overflows and the largest term is exactly 1.
    It is evaluated as :math:`(z - m) - \log\sum_k e^{z_k - m}`: adding the small log-sum to a
    large ``m`` first would round it away in float32.
    """
    shifted = z - np.max(z, axis=1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))


class Loss:
    """Interface: ``value(z, target) -> float`` and ``grad(z, target) -> dE/dz``."""

    name = "loss"

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def value(self, z: Any, target: Any) -> float:
        """Return the batch-mean loss as a Python float."""
        raise NotImplementedError

    def grad(self, z: Any, target: Any) -> np.ndarray:
        """Return the gradient of :meth:`value` with respect to ``z`` (includes ``1/B``)."""
        raise NotImplementedError

    def per_sample(self, z: Any, target: Any) -> np.ndarray:
        """Return each sample's loss, float64 ``(B,)``; :meth:`value` is their mean (up to
        rounding). For rules that need it (node perturbation, per-sample weighting)."""
        raise NotImplementedError

    def output(self, z: Any) -> np.ndarray:
        """Return the prediction the loss compares with the target (probabilities or ``z``)."""
        raise NotImplementedError


class SoftmaxCrossEntropy(Loss):
    """Softmax cross-entropy of logits ``z`` against target distributions (see module doc)."""

    name = "xent"

    def value(self, z, target_onehot):
        z, d = _check_pair("xent.value", z, target_onehot)
        z, d = z.astype(np.float64), d.astype(np.float64)  # a float32 batch sum loses digits
        return float(-np.sum(d * log_softmax(z)) / z.shape[0])

    def per_sample(self, z, target_onehot):
        z, d = _check_pair("xent.per_sample", z, target_onehot)
        return -np.sum(d.astype(np.float64) * log_softmax(z.astype(np.float64)), axis=1)

    def grad(self, z, target_onehot):
        z, d = _check_pair("xent.grad", z, target_onehot)
        p = np.exp(log_softmax(z))
        # general form: equals p - d when every target row sums to 1
        g = (p * d.sum(axis=1, keepdims=True) - d) / z.shape[0]
        return g.astype(z.dtype, copy=False)

    def output(self, z):
        return np.exp(log_softmax(np.asarray(z)))


class SquaredError(Loss):
    r"""The seed text's squared error :math:`E = \frac1B\sum_b \tfrac12\lVert z_b - d_b\rVert^2`."""

    name = "mse"

    def value(self, z, target):
        z, d = _check_pair("mse.value", z, target)
        r = z.astype(np.float64) - d
        return float(0.5 * np.sum(r * r) / z.shape[0])

    def per_sample(self, z, target):
        z, d = _check_pair("mse.per_sample", z, target)
        r = z.astype(np.float64) - d
        return 0.5 * np.sum(r * r, axis=1)

    def grad(self, z, target):
        z, d = _check_pair("mse.grad", z, target)
        return ((z - d) / z.shape[0]).astype(z.dtype, copy=False)

    def output(self, z):
        return np.asarray(z)


LOSSES: dict[str, type[Loss]] = {"xent": SoftmaxCrossEntropy, "mse": SquaredError}


def get_loss(name: str) -> Loss:
    """Build a loss by name: ``"xent"`` (softmax cross-entropy) or ``"mse"`` (squared error)."""
    if name not in LOSSES:
        raise ValueError(f"loss name = {name!r} is unknown; allowed: " + ", ".join(LOSSES))
    return LOSSES[name]()
