r"""Elementwise activations ``h = f(u)`` with derivatives, inverses and (for one) parameters.

Every activation follows the :class:`Activation` interface:

``name``            registry name (see :func:`get_activation`)
``forward(u, rng=None) -> h``
                    the output; ``rng`` (a :class:`numpy.random.Generator`) is used only by
                    stochastic activations and ignored by the others, so callers can pass it
                    unconditionally
``deriv(u, h=None) -> f'(u)``
                    elementwise derivative; ``h`` is the output of ``forward(u)`` and is used when
                    the derivative is cheapest from the output (tanh, sigmoid, smooth); when
                    omitted it is recomputed
``differentiable``  ``False`` for step and stochastic binary: their derivative is 0 almost
                    everywhere, so ``deriv`` raises :class:`NotDifferentiableError` unless the
                    activation was built with a documented ``surrogate`` (straight-through)
``has_deriv``       ``differentiable or surrogate is not None``: what a rule that needs ``f'``
                    should test before it starts
``inverse(h) -> u`` and ``has_inverse``
                    exact inverse where one exists (identity, tanh, sigmoid, smooth)
``params``          dict of live trainable arrays (empty except for :class:`SmoothReLU`)
``state_dict()`` / ``load_state_dict(state)``
                    numeric state for checkpoints; ``config()`` gives the constructor arguments

The smooth activation (seed document 004, A. Miyauchi) is

.. math:: f(x, \varepsilon) = \tfrac12\left(x + \sqrt{x^2 + 4\varepsilon}\right),
          \qquad \varepsilon = e^{\theta} > 0 \text{ per unit},

a smooth ReLU (``f -> max(0, x)`` as ``eps -> 0``) whose derivatives and inverse are written
with the output ``f`` alone: ``f' = f^2/(f^2+eps)``, ``df/deps = f/(f^2+eps)``,
``x = f - eps/f``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit, logit

__all__ = [
    "Activation",
    "NotDifferentiableError",
    "NoInverseError",
    "Identity",
    "Tanh",
    "Sigmoid",
    "ReLU",
    "Step",
    "StochasticBinary",
    "SmoothReLU",
    "smooth_relu",
    "smooth_relu_dx",
    "smooth_relu_deps",
    "smooth_relu_inverse",
    "get_activation",
    "ACTIVATIONS",
]

SURROGATES = ("identity", "clipped", "sigmoid")
THETA_RULES = ("text", "chain")
#: Range of θ that keeps ε = exp θ a normal float32 (the working precision of the layers).
_THETA_MIN = float(np.log(np.finfo(np.float32).tiny))
_THETA_MAX = float(np.log(np.finfo(np.float32).max))


class NotDifferentiableError(ValueError):
    """``deriv`` was called on an activation whose derivative is 0 a.e. without a surrogate."""


class NoInverseError(ValueError):
    """``inverse`` was called on an activation that has no inverse."""


# --------------------------------------------------------------------------- helpers


def _as_float(x: Any, owner: str, name: str) -> np.ndarray:
    """Return ``x`` as a floating array; float32/float64 are kept, ints and bools become float64.

    Keeping float32 matters: analog simulations run in float32 and an activation must not
    silently promote the whole network to float64.
    """
    arr = np.asarray(x)
    if arr.dtype.kind == "f":
        return arr
    if arr.dtype.kind in "iub":
        return arr.astype(np.float64)
    raise TypeError(f"{owner}: {name} has dtype {arr.dtype}; allowed: a real (float or int) array")


def _check_rng(rng: Any, owner: str) -> None:
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"{owner}: rng = {rng!r} is invalid; allowed: a numpy.random.Generator "
                        "(np.random.default_rng(seed)) or None")


def _check_choice(owner: str, name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        allowed = "one of " + ", ".join(repr(c) for c in choices)
        raise ValueError(f"{owner}: {name} = {value!r} is invalid; allowed: {allowed}")


def _surrogate_deriv(kind: str, u: np.ndarray) -> np.ndarray:
    """Straight-through surrogate derivatives for a 0/1 threshold unit.

    ``identity``  f' = 1 (straight-through estimator, Bengio et al. 2013, arXiv 1308.3432)
    ``clipped``   f' = 1[|u| <= 1] (Hubara et al. 2016: stop passing error for saturated units)
    ``sigmoid``   f' = s(u)(1 - s(u)), s the logistic sigmoid: the exact derivative of the mean
                  of a Bernoulli(s(u)) unit, and of the smooth step the hard step approximates
    """
    if kind == "identity":
        return np.ones_like(u)
    if kind == "clipped":
        return (np.abs(u) <= 1).astype(u.dtype)
    s = expit(u)
    return s * (1 - s)


# --------------------------------------------------------------------------- interface


class Activation:
    """Base class of all activations; see the module docstring for the interface."""

    name = "activation"
    differentiable = True
    has_inverse = False
    stochastic = False

    def __init__(self) -> None:
        self.surrogate: str | None = None

    def __call__(self, u: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        return self.forward(u, rng)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"

    @property
    def has_deriv(self) -> bool:
        """True when ``deriv`` returns a value (the true derivative or a chosen surrogate)."""
        return self.differentiable or self.surrogate is not None

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Live trainable arrays by name (none for fixed activations)."""
        return {}

    def forward(self, u: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        """Return ``h = f(u)`` elementwise (``rng`` is ignored by deterministic activations)."""
        _check_rng(rng, self.name)
        u = _as_float(u, self.name, "u")
        return self._forward(u)

    def deriv(self, u: Any, h: Any = None) -> np.ndarray:
        """Return ``f'(u)`` elementwise; ``h`` (the output for ``u``) is reused when given."""
        u = _as_float(u, self.name, "u")
        h = self._forward(u) if h is None else _as_float(h, self.name, "h")
        if h.shape != u.shape:
            raise ValueError(f"{self.name}.deriv: h.shape = {h.shape} differs from "
                             f"u.shape = {u.shape}; allowed: the output of forward(u)")
        return self._deriv(u, h)

    def inverse(self, h: Any) -> np.ndarray:
        """Return ``u`` with ``f(u) = h``; raises :class:`NoInverseError` if there is none."""
        raise NoInverseError(f"{self.name} has no inverse (has_inverse is False); activations "
                             "with one: identity, tanh, sigmoid, smooth")

    def state_dict(self) -> dict[str, np.ndarray]:
        """Numeric state for checkpoints (a copy; empty for fixed activations)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; fixed activations accept only an empty dict."""
        if dict(state):
            raise ValueError(f"{self.name}.load_state_dict: state has keys {sorted(state)}; "
                             "allowed: an empty dict (this activation has no state)")

    def config(self) -> dict[str, Any]:
        """Constructor arguments: ``get_activation(**act.config())`` rebuilds the activation."""
        return {"name": self.name}

    def _forward(self, u: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _deriv(self, u: np.ndarray, h: np.ndarray) -> np.ndarray:
        raise NotImplementedError


# --------------------------------------------------------------------------- fixed activations


class Identity(Activation):
    """``f(u) = u``, ``f' = 1``, inverse ``u = h``."""

    name = "identity"
    has_inverse = True

    def _forward(self, u):
        return u.copy()

    def _deriv(self, u, h):
        return np.ones_like(u)

    def inverse(self, h):
        return _as_float(h, self.name, "h").copy()


class Tanh(Activation):
    r"""``f(u) = tanh u``, ``f' = 1 - h^2``, inverse ``u = artanh h`` for ``h`` in (-1, 1)."""

    name = "tanh"
    has_inverse = True

    def _forward(self, u):
        return np.tanh(u)

    def _deriv(self, u, h):
        return 1 - h * h

    def inverse(self, h):
        h = _as_float(h, self.name, "h")
        if h.size and not np.all(np.abs(h) < 1):
            raise ValueError(f"tanh.inverse: h has values in [{np.nanmin(h)}, {np.nanmax(h)}]; "
                             "allowed: the open interval (-1, 1) (artanh is infinite at +-1)")
        return np.arctanh(h)


class Sigmoid(Activation):
    r"""``f(u) = 1/(1 + e^{-u})``, ``f' = h(1 - h)``, inverse ``u = log(h/(1-h))``, h in (0, 1)."""

    name = "sigmoid"
    has_inverse = True

    def _forward(self, u):
        return expit(u)  # overflow-free for large |u|, unlike 1/(1+exp(-u))

    def _deriv(self, u, h):
        return h * (1 - h)

    def inverse(self, h):
        h = _as_float(h, self.name, "h")
        if h.size and not np.all((h > 0) & (h < 1)):
            raise ValueError(f"sigmoid.inverse: h has values in [{np.nanmin(h)}, "
                             f"{np.nanmax(h)}]; allowed: the open interval (0, 1)")
        return logit(h)


class ReLU(Activation):
    """``f(u) = max(0, u)``, ``f' = 1[u > 0]`` (the convention ``f'(0) = 0``); no inverse."""

    name = "relu"

    def _forward(self, u):
        return np.maximum(u, 0)

    def _deriv(self, u, h):
        return (u > 0).astype(u.dtype)


class Step(Activation):
    """Heaviside step ``h = 1[u > 0]``; not differentiable (``f' = 0`` a.e., undefined at 0).

    Parameters
    ----------
    surrogate : {None, "identity", "clipped", "sigmoid"}
        ``None`` (default): :meth:`deriv` raises :class:`NotDifferentiableError`, so rules that
        need ``f'`` (bp, fa, dfa) refuse this activation instead of silently learning nothing.
        Otherwise ``deriv`` returns a straight-through surrogate:
        ``identity`` f' = 1; ``clipped`` f' = 1[|u| <= 1]; ``sigmoid`` f' = s(u)(1 - s(u)).
    """

    name = "step"
    differentiable = False

    def __init__(self, surrogate: str | None = None) -> None:
        super().__init__()
        _check_choice(self.name, "surrogate", surrogate, (None, *SURROGATES))
        self.surrogate = surrogate

    def config(self):
        return {"name": self.name, "surrogate": self.surrogate}

    def _forward(self, u):
        return (u > 0).astype(u.dtype)

    def _deriv(self, u, h):
        if self.surrogate is None:
            raise NotDifferentiableError(
                f"{self.name} outputs 0/1 values whose derivative is 0 almost everywhere, so "
                "deriv() is refused; a rule that needs f' must refuse this activation (check "
                "has_deriv), or "
                f"build it with surrogate in {SURROGATES}, e.g. get_activation({self.name!r}, "
                "surrogate='sigmoid') (the derivative of the mean, the standard choice for "
                "stochastic units; 'identity'/'clipped' are straight-through estimators)")
        return _surrogate_deriv(self.surrogate, u)


class StochasticBinary(Step):
    """Stochastic binary unit ``h ~ Bernoulli(s(u))``, ``s`` the logistic sigmoid.

    ``forward(u, rng)`` draws the sample from the given :class:`numpy.random.Generator` (so runs
    are reproducible and no global random state is touched); ``forward(u)`` with ``rng=None``
    returns the mean ``s(u)``.  A sample has derivative 0 a.e. with respect to ``u``, so the
    unit is flagged ``differentiable = False`` and ``deriv`` raises unless a surrogate is
    chosen.  The standard surrogate is ``surrogate="sigmoid"``: the derivative of the *mean*,
    ``f' = s(u)(1 - s(u))``, computed from ``u`` (never from a 0/1 sample ``h``).
    """

    name = "stochastic"
    stochastic = True

    def forward(self, u, rng=None):
        _check_rng(rng, self.name)
        p = expit(_as_float(u, self.name, "u"))
        if rng is None:
            return p
        return (rng.random(p.shape) < p).astype(p.dtype)

    def mean(self, u: Any) -> np.ndarray:
        """Return ``E[h] = s(u)``."""
        return expit(_as_float(u, self.name, "u"))

    def _forward(self, u):
        return expit(u)  # used by deriv() when h is not given; the surrogate ignores h anyway


# --------------------------------------------------------------------------- smooth activation


def _as_eps(eps: Any, dtype: np.dtype, owner: str) -> np.ndarray:
    """Return ``eps`` in the working dtype after checking it is finite and > 0."""
    eps = np.asarray(eps, dtype=np.float64)
    if eps.size and not np.all((eps > 0) & np.isfinite(eps)):
        raise ValueError(f"{owner}: eps has values in [{eps.min()}, {eps.max()}]; allowed: "
                         "finite values > 0")
    return eps.astype(dtype, copy=False)


def smooth_relu(x: np.ndarray, eps: np.ndarray) -> np.ndarray:
    r"""Evaluate :math:`f(x, \varepsilon) = \tfrac12(x + \sqrt{x^2 + 4\varepsilon})` stably.

    With :math:`r = \sqrt{x^2 + 4\varepsilon}` (``hypot``, no overflow of ``x^2``) and
    :math:`g = \tfrac12(|x| + r)`, the two roots of :math:`f^2 - x f - \varepsilon = 0` are
    :math:`g` and :math:`-\varepsilon/g`.  So

    .. math:: f = g \ (x \ge 0), \qquad f = \varepsilon / g = \frac{2\varepsilon}{r - x}
              \ (x < 0),

    which avoids the cancellation of ``x + r`` for large negative ``x`` (in float32 the naive
    form returns 0 for ``x = -1e4, eps = 1e-3``).  ``g >= sqrt(eps) > 0``, so there is no
    division by zero.  The result has the dtype of ``x`` and broadcasts ``eps``.
    """
    x = _as_float(x, "smooth_relu", "x")
    eps = _as_eps(eps, x.dtype, "smooth_relu")
    g = 0.5 * (np.abs(x) + np.hypot(x, 2 * np.sqrt(eps)))
    return np.where(x >= 0, g, eps / g)


def smooth_relu_dx(f: np.ndarray, eps: np.ndarray) -> np.ndarray:
    r""":math:`\partial f/\partial x = f/(f + \varepsilon/f) = f^2/(f^2 + \varepsilon)`.

    The second form stays finite when ``f^2`` underflows (denominator >= eps > 0).
    """
    f = _as_float(f, "smooth_relu_dx", "f")
    eps = _as_eps(eps, f.dtype, "smooth_relu_dx")
    f2 = f * f
    return f2 / (f2 + eps)


def smooth_relu_deps(f: np.ndarray, eps: np.ndarray) -> np.ndarray:
    r""":math:`\dot f = \partial f/\partial\varepsilon = 1/(f + \varepsilon/f)
    = f/(f^2 + \varepsilon)`."""
    f = _as_float(f, "smooth_relu_deps", "f")
    eps = _as_eps(eps, f.dtype, "smooth_relu_deps")
    return f / (f * f + eps)


def smooth_relu_inverse(f: np.ndarray, eps: np.ndarray) -> np.ndarray:
    r"""Inverse :math:`x = f - \varepsilon/f` for ``f > 0``.

    It solves :math:`f^2 - x f - \varepsilon = 0` for ``x``.
    """
    f = _as_float(f, "smooth_relu_inverse", "f")
    eps = _as_eps(eps, f.dtype, "smooth_relu_inverse")
    return f - eps / f


class SmoothReLU(Activation):
    r"""Smooth ReLU with a learnable per-unit smoothing :math:`\varepsilon_j = e^{\theta_j}`.

    .. math:: f(x, \varepsilon) = \tfrac12\left(x + \sqrt{x^2 + 4\varepsilon}\right), \quad
              f' = \frac{f^2}{f^2 + \varepsilon}, \quad
              \dot f = \frac{\partial f}{\partial \varepsilon} = \frac{f}{f^2 + \varepsilon},
              \quad x = f - \frac{\varepsilon}{f}.

    Inputs have shape ``(..., n_units)``; unit ``j`` uses ``eps[j]``.

    Parameters
    ----------
    n_units : int
        Number of units (length of ``theta``).
    eps0 : float
        Initial smoothing, ``theta = log(eps0)`` for every unit.
    learnable : bool
        If False, ``params`` is empty and :meth:`apply_theta_update` refuses.
    theta_rule : {"text", "chain"}
        How :meth:`theta_update` turns :math:`\partial E/\partial\varepsilon` into a step on
        :math:`\theta` (see there).

    Notes
    -----
    **The epsilon gradient.**  With :math:`\delta_j = \partial E/\partial u_j =
    (\partial E/\partial h_j) f'_j` the chain rule gives

    .. math:: \frac{\partial E}{\partial \varepsilon_j}
              = \sum_{\text{batch}} \frac{\partial E}{\partial h_j}\dot f_j
              = \sum_{\text{batch}} \frac{\delta_j}{f_j},

    because :math:`\dot f / f' = 1/f`.  The seed text prints :math:`f'` in place of
    :math:`\dot f` in this formula; the chain rule (and the finite-difference tests) give
    :math:`\dot f`.  Sums run over the batch; divide by the batch size for a mean.
    """

    name = "smooth"
    has_inverse = True

    def __init__(self, n_units: int, eps0: float = 0.1, learnable: bool = True,
                 theta_rule: str = "text") -> None:
        super().__init__()
        if not isinstance(n_units, (int, np.integer)) or isinstance(n_units, bool) or n_units < 1:
            raise ValueError(f"smooth: n_units = {n_units!r} is invalid; allowed: an integer >= 1")
        ok = isinstance(eps0, (int, float, np.floating)) and not isinstance(eps0, bool)
        if not ok or not np.isfinite(eps0) or eps0 <= 0:
            raise ValueError(f"smooth: eps0 = {eps0!r} is invalid; allowed: a finite real > 0")
        if not isinstance(learnable, bool):
            raise TypeError(f"smooth: learnable = {learnable!r} is invalid; allowed: True or False")
        _check_choice(self.name, "theta_rule", theta_rule, THETA_RULES)
        self.n_units = int(n_units)
        self.eps0 = float(eps0)
        self.learnable = learnable
        self.theta_rule = theta_rule
        self.theta = np.full(self.n_units, np.log(self.eps0), dtype=np.float64)

    @property
    def eps(self) -> np.ndarray:
        r""":math:`\varepsilon = e^\theta`, shape ``(n_units,)``, float64 (a new array)."""
        return np.exp(self.theta)

    @property
    def params(self):
        """``{"theta": theta}`` (the live array, so in-place optimiser steps take effect)."""
        return {"theta": self.theta} if self.learnable else {}

    def config(self):
        return {"name": self.name, "n_units": self.n_units, "eps0": self.eps0,
                "learnable": self.learnable, "theta_rule": self.theta_rule}

    def state_dict(self):
        return {"theta": self.theta.copy()}

    def load_state_dict(self, state):
        if set(state) != {"theta"}:
            raise ValueError(f"smooth.load_state_dict: state has keys {sorted(state)}; "
                             "allowed: exactly {'theta'}")
        theta = self._check_vector(state["theta"], "state['theta']")
        self.theta[...] = theta  # in place: params() handed out earlier stay valid

    def _check_units(self, x: np.ndarray, name: str) -> None:
        if x.ndim < 1 or x.shape[-1] != self.n_units:
            raise ValueError(f"smooth: {name}.shape = {x.shape} is invalid; allowed: "
                             f"(..., {self.n_units}) (last axis = n_units)")

    def _check_vector(self, v: Any, name: str) -> np.ndarray:
        v = _as_float(v, self.name, name)
        if v.shape != (self.n_units,) or not np.all(np.isfinite(v)):
            raise ValueError(f"smooth: {name} (shape {v.shape}) is invalid; allowed: a finite "
                             f"array of shape ({self.n_units},)")
        return v

    def _check_output(self, h: Any, name: str = "h") -> np.ndarray:
        h = _as_float(h, self.name, name)
        self._check_units(h, name)
        if h.size and not np.all(h > 0):
            raise ValueError(f"smooth: {name} has values <= 0 (min {np.nanmin(h)}); allowed: "
                             "outputs of this activation, which are > 0")
        return h

    def _forward(self, u):
        self._check_units(u, "u")
        return smooth_relu(u, self.eps)

    def _deriv(self, u, h):
        self._check_units(h, "h")
        return smooth_relu_dx(h, self.eps)

    def deps(self, h: Any) -> np.ndarray:
        r"""Return :math:`\dot f = \partial f/\partial\varepsilon = f/(f^2+\varepsilon)`."""
        return smooth_relu_deps(self._check_output(h), self.eps)

    def inverse(self, h):
        r"""Return :math:`x = f - \varepsilon/f` (exact; ``h`` must be > 0)."""
        return smooth_relu_inverse(self._check_output(h), self.eps)

    def grad_eps(self, delta_pre: Any, h: Any) -> np.ndarray:
        r"""Return :math:`\partial E/\partial\varepsilon_j = \sum_{\text{batch}} \delta_j / f_j`.

        ``delta_pre`` is :math:`\delta = \partial E/\partial u` (already multiplied by
        :math:`f'`) and ``h`` the outputs, both of shape ``(..., n_units)``.  The identity
        :math:`\delta\,\dot f/f' = \delta/f` follows from :math:`\dot f/f' = 1/f`.
        Summed over all leading axes in float64; result shape ``(n_units,)``.
        """
        h = self._check_output(h)
        delta = _as_float(delta_pre, self.name, "delta_pre")
        if delta.shape != h.shape:
            raise ValueError(f"smooth.grad_eps: delta_pre.shape = {delta.shape} differs from "
                             f"h.shape = {h.shape}; allowed: equal shapes")
        per_unit = delta.astype(np.float64) / h.astype(np.float64)
        return per_unit.reshape(-1, self.n_units).sum(axis=0)

    def grad_eps_from_dh(self, dE_dh: Any, h: Any) -> np.ndarray:
        r"""Return :math:`\partial E/\partial\varepsilon_j = \sum_{\text{batch}}
        (\partial E/\partial h_j)\,\dot f_j` (equal to :meth:`grad_eps` of ``dE_dh * f'``)."""
        h = self._check_output(h)
        g = _as_float(dE_dh, self.name, "dE_dh")
        if g.shape != h.shape:
            raise ValueError(f"smooth.grad_eps_from_dh: dE_dh.shape = {g.shape} differs from "
                             f"h.shape = {h.shape}; allowed: equal shapes")
        per_unit = g.astype(np.float64) * smooth_relu_deps(h.astype(np.float64), self.eps)
        return per_unit.reshape(-1, self.n_units).sum(axis=0)

    def grad_theta(self, grad_eps: Any) -> np.ndarray:
        r"""Return :math:`\partial E/\partial\theta = \varepsilon\,\partial E/\partial\varepsilon`.

        Use it to hand ``theta`` to a generic optimiser instead of :meth:`theta_update`.
        """
        return self.eps * self._check_vector(grad_eps, "grad_eps")

    def theta_update(self, grad_eps: Any, lr: float) -> np.ndarray:
        r"""Return the step :math:`\Delta\theta` for learning rate :math:`\eta` = ``lr``.

        ``"text"`` (seed document 004): :math:`\Delta\theta = -(\eta/\varepsilon)\,
        \partial E/\partial\varepsilon`.  To first order
        :math:`\Delta\varepsilon = \varepsilon\Delta\theta = -\eta\,\partial E/\partial\varepsilon`:
        plain SGD on :math:`\varepsilon` itself (the natural-gradient step for the
        parametrisation :math:`\varepsilon = e^\theta`, whose metric is :math:`\varepsilon^2`),
        while :math:`\varepsilon = e^\theta` stays positive.  Steps in :math:`\theta` grow like
        :math:`1/\varepsilon`, so a large ``lr`` with a small ``eps`` can jump far.

        ``"chain"``: plain gradient descent on :math:`\theta`,
        :math:`\Delta\theta = -\eta\,\partial E/\partial\theta = -\eta\,\varepsilon\,
        \partial E/\partial\varepsilon`, i.e. :math:`\Delta\varepsilon \approx
        -\eta\,\varepsilon^2\,\partial E/\partial\varepsilon`: ``eps`` moves slowly once small.

        The text's form divides by :math:`\varepsilon` where the chain rule multiplies.
        """
        g = self._check_vector(grad_eps, "grad_eps").astype(np.float64)
        ok = isinstance(lr, (int, float, np.floating)) and not isinstance(lr, bool)
        if not ok or not np.isfinite(lr) or lr < 0:
            raise ValueError(f"smooth.theta_update: lr = {lr!r} is invalid; allowed: a finite "
                             "real >= 0")
        eps = self.eps
        return -lr * g / eps if self.theta_rule == "text" else -lr * eps * g

    def apply_theta_update(self, dtheta: Any) -> None:
        """Add ``dtheta`` (from :meth:`theta_update`) to ``theta`` in place."""
        if not self.learnable:
            raise ValueError("smooth.apply_theta_update: this activation was built with "
                             "learnable=False; allowed: only learnable activations are updated")
        new = self.theta + self._check_vector(dtheta, "dtheta")
        # ε = exp θ is used in float32: outside its normal range it becomes 0 or inf and the
        # next forward fails far from the cause. Refuse the step (θ unchanged) and say why.
        if not np.all((new >= _THETA_MIN) & (new <= _THETA_MAX)):
            raise ValueError(
                f"smooth.apply_theta_update: the step takes theta to [{new.min():.4g}, "
                f"{new.max():.4g}]; allowed: theta in [{_THETA_MIN:.4g}, "
                f"{_THETA_MAX:.4g}] (eps a normal float32). The step diverged: lower lr_eps"
                + (", or use theta_rule = 'chain' (the text's rule divides by eps)"
                   if self.theta_rule == "text" else ""))
        self.theta[...] = new


# --------------------------------------------------------------------------- registry


ACTIVATIONS: dict[str, type[Activation]] = {
    "identity": Identity,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
    "relu": ReLU,
    "step": Step,
    "stochastic": StochasticBinary,
    "smooth": SmoothReLU,
}

_OPTIONS = {"step": ("surrogate",), "stochastic": ("surrogate",),
            "smooth": ("eps0", "learnable", "theta_rule")}


def get_activation(name: str, n_units: int | None = None, **kw: Any) -> Activation:
    """Build an activation by registry name.

    Parameters
    ----------
    name : str
        One of ``identity, tanh, sigmoid, relu, step, stochastic, smooth``.
    n_units : int, optional
        Required by ``smooth`` (one ``eps`` per unit); ignored by the others so that layer
        code can always pass it.
    **kw
        ``step``/``stochastic``: ``surrogate``; ``smooth``: ``eps0``, ``learnable``,
        ``theta_rule``.  Other names take no options.
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"activation name = {name!r} is unknown; allowed: "
                         + ", ".join(ACTIVATIONS))
    allowed = _OPTIONS.get(name, ())
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise TypeError(f"activation {name!r} got unknown options {unknown}; allowed: "
                        + (", ".join(allowed) if allowed else "none"))
    if name == "smooth":
        if n_units is None:
            raise ValueError("activation 'smooth' needs n_units = the layer width (one eps per "
                             "unit); got n_units = None")
        return SmoothReLU(n_units, **kw)
    return ACTIVATIONS[name](**kw)
