r"""Perturbation rules: forward gradients by activity perturbation, and node perturbation.

Both estimate each hidden layer's error :math:`g_l = \partial E/\partial u_l` from forward
reads alone (notation of :mod:`analogsim.rules.forward`); the output layer learns from the
loss gradient :math:`e = \partial E/\partial u_L`, which needs no backward step.

**Forward gradient** (Baydin et al. 2022, "Gradients without Backpropagation",
arXiv:2202.08587; activity perturbation as in Ren, Kornblith, Liao & Hinton 2023, "Scaling
Forward Gradient with Local Losses", ICLR). Draw :math:`v \sim \mathcal N(0, I)` of the
shape of :math:`u_l` (the rule's seeded stream ``("rule", "forward_gradient",
"perturbation")``), obtain every sample's directional derivative
:math:`d_b = \nabla_{u_{l,b}} \ell_b \cdot v_b` of its own loss :math:`\ell_b` and use

.. math:: \hat g_{l,b} = d_b\, v_b, \qquad
          \mathbb E_v[\hat g_l] = \mathbb E_v[v v^\top]\,g_l = g_l ,

unbiased; :math:`\delta_l = \frac{1}{KB}\sum_{k=1}^{K} d^{(k)} \odot v^{(k)}` averages
``samples`` = K draws. The directional derivative comes from forward reads only:

* ``directional = "difference"`` (default): a second pass from layer ``l`` upwards on the
  perturbed pre-activation :math:`u_l + \sigma v` (the clean read of layer ``l`` is reused;
  layers ``l+1 … L`` are read again), :math:`d_b = (\ell_b(u_l + \sigma v) - \ell_b)/\sigma`
  (bias :math:`O(\sigma)`). No derivative of any activation is needed.
* ``directional = "jvp"``: forward-mode differentiation on the arrays — the tangent
  :math:`t_l = v`, :math:`t_{j} = W_j\,(f'(u_{j-1}) \odot t_{j-1})` (a forward read of
  layer ``j``'s array without bias), :math:`d_b = \nabla_z \ell_b \cdot t_{L,b}`; exact on
  ideal hardware, needs :math:`f'` of the layers above ``l``.

``perturb = "layer"`` (Ren et al.'s per-layer activity perturbation) perturbs one hidden
layer per pass (``L`` passes of decreasing length per draw); ``perturb = "joint"`` perturbs
every hidden layer at once with independent :math:`v_l` and one pass per draw,
:math:`d = \sum_l \nabla_{u_l}\ell \cdot v_l` (still unbiased for every layer, the other
layers' terms adding variance). Variance: per sample, :math:`\mathbb E\|\hat g\|^2 = (n+2)
\|g\|^2` for ``n`` perturbed units, so the estimate's cosine with the gradient is about
:math:`1/\sqrt{n}` per draw and the learning rate must be smaller than BP's.

**Node perturbation** (Williams 1992's REINFORCE for Gaussian units; Cauwenberghs 1993 and
Flower & Jabri 1993 for analog VLSI): the simplest case, ``joint`` ``difference``: one noisy
pass with :math:`\xi_l \sim \mathcal N(0, \sigma^2 I)` added to every hidden
pre-activation, :math:`\delta_l = \frac{\ell^{noisy} - \ell^{clean}}{\sigma^2}\,\xi_l / B`.
With ``noise = "read"`` no noise is injected: the second pass is a plain re-read of every
array on the same input, and the perturbation is the arrays' own read noise, *measured* as
:math:`\Delta u_l = u_l^{(2)} - u_l^{(1)}` and normalised by its batch power
:math:`\hat\sigma_l^2 = \mathrm{mean}(\Delta u_l^2)`:
:math:`\delta_l = (\ell^{(2)} - \ell^{(1)})\,\Delta u_l / (\hat\sigma_l^2 B)`. Because
:math:`\Delta u_l` also carries the noise of the layers below, its expectation is
:math:`\mathrm{Cov}(\Delta u_l)\,g_l/\hat\sigma_l^2` — a positive semi-definite
preconditioning of the gradient (a descent direction), not the gradient itself. On
noise-free hardware (``ideal``, digital) :math:`\Delta u = 0` and only the output layer
learns.

**Hardware and schedule.** Perturbations are added digitally in the periphery (one
multiply and one add per perturbed unit; the generator's own cost is not modelled). The
extra passes reuse the network's arrays, so they are timed one after another after the
clean ``loss``: ops ``pert{l}.{k}`` (``layer``) or ``pert.{k}`` (``joint``, node
perturbation), each containing all reads of its pass, and ``upd:W{l}`` after the last pass
that estimates layer ``l``. Per step and draw ``layer`` mode reads ``L(L+1)/2`` layer
arrays, ``joint`` mode ``L`` (node perturbation with read noise ``L + 1``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fields import check_fields, param
from ..layers.network import Network
from .base import OPTION_OWNER, Schedule, Update, act_deriv, eps_grad
from .forward import SeededRule, top_error

__all__ = ["ForwardGradient", "NodePerturbation", "ForwardGradientOptions",
           "NodePerturbationOptions", "DIRECTIONAL", "PERTURB", "NOISE"]

#: How the directional derivative is read: a finite difference of the loss, or a tangent pass.
DIRECTIONAL = ("difference", "jvp")
#: Which pre-activations one pass perturbs: one hidden layer, or all at once.
PERTURB = ("layer", "joint")
#: Node perturbation's noise: injected Gaussian noise, or the arrays' own read noise.
NOISE = ("injected", "read")


@dataclass(frozen=True)
class ForwardGradientOptions:
    """Options of the forward-gradient rule (see :mod:`analogsim.rules.perturbation`)."""

    sigma: float = param(0.1, lo=0, hi=100, lo_open=True,
                         doc="σ: size of the perturbation σv of the pre-activations (the "
                             "finite-difference step; unused by jvp)")
    directional: str = param("difference", choices=DIRECTIONAL,
                             doc="`difference`: a perturbed second pass, (ℓ(u+σv) − ℓ)/σ; "
                                 "`jvp`: a tangent pass through the arrays (needs f′)")
    perturb: str = param("layer", choices=PERTURB,
                         doc="`layer`: one hidden layer per pass (Ren et al. 2023); "
                             "`joint`: every hidden layer at once, one pass per draw")
    samples: int = param(1, lo=1, hi=1000,
                         doc="K: perturbation draws averaged per step (K times the passes)")

    def __post_init__(self) -> None:
        check_fields(self, OPTION_OWNER)


@dataclass(frozen=True)
class NodePerturbationOptions:
    """Options of node perturbation (see :mod:`analogsim.rules.perturbation`)."""

    sigma: float = param(0.1, lo=0, hi=100, lo_open=True,
                         doc="σ: std of the noise injected into every hidden pre-activation "
                             "(unused with noise = read)")
    noise: str = param("injected", choices=NOISE,
                       doc="`injected`: Gaussian noise from the rule's stream; `read`: the "
                           "arrays' own read noise of a second read, measured as u₂ − u₁")
    samples: int = param(1, lo=1, hi=1000,
                         doc="K: noisy passes averaged per step")

    def __post_init__(self) -> None:
        check_fields(self, OPTION_OWNER)


class ForwardGradient(SeededRule):
    r"""Forward gradient by activity perturbation (Baydin et al. 2022; Ren et al. 2023).

    See :mod:`analogsim.rules.perturbation` for the estimator, its modes and its schedule.
    """

    name = "forward_gradient"
    stream = "perturbation"
    Options = ForwardGradientOptions

    @property
    def mode(self) -> tuple[str, str]:
        """``(perturb, directional)``."""
        return self.options.perturb, self.options.directional

    def compute(self, net: Network, x: np.ndarray, target: np.ndarray, sched: Schedule
                ) -> tuple[float, list[Update]]:
        z = self.forward(net, x, sched)
        n = len(net) - 1
        with sched.op("loss", (f"fwd{n}",)):
            loss = float(net.loss.value(z, target))
            e = net.loss.grad(z, target).astype(z.dtype, copy=False)
            ell = net.loss.per_sample(z, target)
            net.layers[-1].ledger.child("periphery").charge(digital_adds=3 * e.size,
                                                            digital_mults=3 * e.size)
        c, top = net.cache, net.layers[-1]
        e_top = top_error(self.name, net, e)
        ups = [Update(top, c.x[-1], e_top, "loss", eps_grad(top, e_top, c.h[-1]),
                      name=f"W{n}")]
        deltas, afters = self._estimate(net, target, e, ell, sched)
        for l in range(n):
            layer = net.layers[l]
            ups.append(Update(layer, c.x[l], deltas[l], afters[l],
                              eps_grad(layer, deltas[l], c.h[l]), name=f"W{l}"))
        return loss, ups

    def _estimate(self, net: Network, target: np.ndarray, e: np.ndarray, ell: np.ndarray,
                  sched: Schedule) -> tuple[list[np.ndarray], list[str]]:
        """Every hidden layer's δ (averaged over K draws) and the op it waits for."""
        perturb, directional = self.mode
        c, n, k = net.cache, len(net) - 1, self.options.samples
        deltas = [np.zeros_like(c.u[l]) for l in range(n)]
        groups = [[l] for l in range(n)] if perturb == "layer" else [list(range(n))]
        afters, after = ["loss"] * n, "loss"
        for group in groups:
            for i in range(k):
                op = f"pert{group[0]}.{i}" if perturb == "layer" else f"pert.{i}"
                with sched.op(op, (after,)):
                    vs = {l: self.rng.standard_normal(c.u[l].shape, dtype=np.float32)
                          .astype(c.u[l].dtype, copy=False) for l in group}
                    if directional == "jvp":
                        d = self._jvp(net, e, vs)
                    else:
                        d = self._difference(net, target, ell, vs)
                    scale = (d / (k * len(d))).astype(c.u[group[0]].dtype)[:, None]
                    for l in group:
                        deltas[l] += scale * vs[l]
                        net.layers[l].ledger.child("periphery").charge(
                            digital_mults=2 * vs[l].size, digital_adds=vs[l].size)
                after = op
            for l in group:
                afters[l] = after
        return deltas, afters

    def _difference(self, net: Network, target: np.ndarray, ell: np.ndarray,
                    vs: dict[int, np.ndarray]) -> np.ndarray:
        """Per-sample ``(ℓ_b(perturbed) − ℓ_b)/σ``: the perturbed pass from the lowest
        perturbed layer up (that layer's clean read is reused, the others are read again)."""
        c, sigma = net.cache, self.options.sigma
        j0 = min(vs)
        u, h = c.u[j0], c.h[j0]
        for j in range(j0, len(net)):
            layer = net.layers[j]
            if j > j0:
                u, h = layer.forward(h, net.rng)
            if j in vs:
                u = u + np.asarray(sigma, dtype=u.dtype) * vs[j]
                h = layer.act.forward(u, net.rng).astype(u.dtype, copy=False)
                layer.ledger.child("periphery").charge(digital_mults=u.size,
                                                       digital_adds=u.size)
        return (net.loss.per_sample(u, target) - ell) / sigma

    def _jvp(self, net: Network, e: np.ndarray, vs: dict[int, np.ndarray]) -> np.ndarray:
        """Per-sample ``∇_z ℓ_b · t_b``: the tangent pass ``t_j = W_j (f'(u_{j−1}) ⊙
        t_{j−1}) (+ v_j)`` through forward reads of the arrays (no bias)."""
        c = net.cache
        j0 = min(vs)
        t = vs[j0]
        for j in range(j0 + 1, len(net)):
            below = net.layers[j - 1]
            t = net.layers[j].read(t * act_deriv(below, c.u[j - 1], c.h[j - 1], rule=self.name))
            if j in vs:
                t = t + vs[j]
            below.ledger.child("periphery").charge(digital_mults=c.u[j - 1].size,
                                                   digital_adds=t.size if j in vs else 0)
        # e is the gradient of the batch mean: B·e_b is sample b's own gradient
        return np.sum(e.astype(np.float64) * t, axis=1) * len(e)


class NodePerturbation(ForwardGradient):
    r"""Node perturbation: one noisy pass, :math:`\delta_l = \Delta\ell\,\xi_l/(\sigma^2 B)`.

    ``noise = "injected"`` is :class:`ForwardGradient` with ``perturb = "joint"`` and
    ``directional = "difference"`` (identical updates for the same draws); ``noise = "read"``
    uses the arrays' own read noise of a second read (see the module docstring).
    """

    name = "node_perturbation"
    stream = "noise"
    Options = NodePerturbationOptions

    @property
    def mode(self) -> tuple[str, str]:
        return "joint", "difference"

    def _estimate(self, net: Network, target: np.ndarray, e: np.ndarray, ell: np.ndarray,
                  sched: Schedule) -> tuple[list[np.ndarray], list[str]]:
        """Injected noise: :meth:`ForwardGradient._estimate` (joint, difference). Read noise:
        K plain re-reads of every array; ``δ_l = Δℓ Δu_l / (σ̂_l² K B)``."""
        if self.options.noise == "injected":
            return super()._estimate(net, target, e, ell, sched)
        c, n, k = net.cache, len(net) - 1, self.options.samples
        deltas = [np.zeros_like(c.u[l]) for l in range(n)]
        after = "loss"
        for i in range(k):
            with sched.op(f"pert.{i}", (after,)):
                h, us = c.x[0], []
                for layer in net.layers:  # a plain re-read of every array, same input
                    u, h = layer.forward(h, net.rng)
                    us.append(u)
                dl = net.loss.per_sample(us[-1], target) - ell
                for l in range(n):
                    du = (us[l] - c.u[l]).astype(np.float64)
                    power = float(np.mean(du * du))
                    if power > 0:  # noise-free hardware: nothing measured, no update
                        deltas[l] += (dl[:, None] * du / (power * k * len(dl))).astype(
                            deltas[l].dtype)
                    net.layers[l].ledger.child("periphery").charge(
                        digital_mults=3 * du.size, digital_adds=3 * du.size)
            after = f"pert.{i}"
        return deltas, [after] * n
