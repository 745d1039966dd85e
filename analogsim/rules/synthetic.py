r"""Synthetic gradients (DNI, Jaderberg et al. 2016) and the BP / synthetic-gradient hybrid.

Notation as in :mod:`analogsim.rules.feedback`: layer ``l`` computes
:math:`u_l = W_l x_l + b_l`, :math:`h_l = f(u_l)`; the network has layers ``0 … L`` and the
output error is :math:`e = \partial E/\partial u_L` (with the batch mean's ``1/B``).

**Predictors.** A *boundary* layer ``l`` owns a linear predictor ``M_l`` (an array on the
network's hardware for an analog network, digital otherwise; zero-initialised) of the
*per-sample* gradient of the loss with respect to the layer's output,

.. math:: \hat g_l = M_l\,[h_l;\,t] + c_l \;\approx\; g_l = B\,\partial E/\partial h_l ,

conditioned on the one-hot label ``t`` when ``label = True`` (Jaderberg et al. found the
label important). Predicting :math:`\partial E/\partial h_l` rather than
:math:`\partial E/\partial u_l` keeps the target close to linear in ``[h; t]`` (for the top
hidden layer it is :math:`W_L^\top(\mathrm{softmax}(u_L) - t)`); the factor ``B`` makes the
predictor independent of the batch size. The layer is updated *at once* with

.. math:: \hat\delta_l = \hat g_l \odot f'(u_l) / B, \qquad
          \Delta W_l = -\eta\,\hat\delta_l^\top x_l ,

which needs only its own forward pass and one predictor read (decoupled).

**Predictor targets.** ``M_l`` is trained by the squared error
:math:`\tfrac1{2B}\sum\lVert\hat g_l - g_l^\ast\rVert^2` — the :class:`Update` (``aux``) with
``delta = κ (ĝ_l − g*_l)/B`` on input ``[h_l; t]``, stepped with ``lr_aux`` (so the predictors'
learning rate is ``κ·lr_aux``, ``κ = predictor_lr_scale``) — against

.. math:: g_l^\ast = B\,\mathcal{T}_{l+1}(\delta_{l+1}),

where :math:`\delta_{l+1}` is the error the layer above was updated with (the true ``e`` above
the top hidden layer; the next layer's synthetic :math:`\hat\delta_{l+1}` below it —
*bootstrapping*, like TD learning) and :math:`\mathcal T_{l+1}` is the step through
:math:`W_{l+1}^\top`: the layer's transpose strategy (``target = "transpose"``; the network
must be built with one, see :attr:`needs_transpose`) or a fixed random feedback matrix
:math:`B_{l+1}` (``target = "feedback"``, default; a feedback-alignment approximation, no
transpose). With ``bootstrap = False`` the targets are the *true* gradients instead,
:math:`\delta_l^\ast = \mathcal T_{l+1}(\delta_{l+1}^\ast) \odot f'(u_l)` from
:math:`\delta_L^\ast = e` — a sequential chain, but only the predictors wait for it.

**Normalised step** (``predictor_step = "nlms"``). The predictors are linear and learn by
LMS, whose step is stable only while ``μ·λ_max < 2``, ``λ_max`` the largest eigenvalue of
the input covariance; ``λ_max ≤ P = E‖[h; t]‖²``, and the hidden units of a net share strong
common components, so ``λ_max`` is a large part of ``P``. With 256 tanh inputs ``P`` is
~50-100, so the plain step ``μ = κ·lr_aux = 0.05`` that suits the 64-wide digits nets can
diverge on 784-input nets (DNI at 0.10-0.14 on the MNIST subset on noisy presets).
NLMS divides the step by ``ε + mean_b ‖[h_b; t_b]‖²`` of the batch, so
``κ·lr_aux`` is the normalised step at any width (Haykin, *Adaptive Filter Theory*, ch. 6).

**Zero initialisation.** All ``M_l, c_l`` start at zero, so on the first step every hidden
layer's weights *and* biases are unchanged (:math:`\hat\delta_l = 0`); the output layer
learns from ``e``, the top predictor from its true target, and the bootstrapped lower
predictors (target :math:`\mathcal T(\hat\delta_{l+1}) = 0`) only from the second step on.

**Hybrid** (seed 000's last paragraph): the layers are cut, from the top, into blocks of
``blocks`` layers; inside a block BP runs through the transpose strategy; the top layer of each
lower block is a boundary layer with a predictor as above, bootstrapped from the error that
the block above back-propagated to its own bottom layer. The top block gets the true error.
``blocks = 1`` is DNI with ``target = "transpose"``; ``blocks ≥`` depth is BP.

**Tuning** (digits, 5 epochs, tanh): with ``target = "feedback"`` DNI behaves like a lagging
FA — the lag is the predictor's fit. With a predictor step ``κ·lr_aux = 0.01`` its cosine
with its target stays near 0.6 and the hidden layers barely beat frozen ones;
``κ·lr_aux ≈ 0.05–0.1`` fits it (cosine ≈ 0.9 on ideal hardware). On noisy arrays a
predictor's read noise does not shrink with the gradient, so larger steps stop helping
(``aihwkit_default`` is best near 0.03–0.05). Those were plain steps on inputs of power
~20-25 (32-64 tanh units and the label); the default is now the normalised step with
``κ = 100``, i.e. ``κ·lr_aux = 1`` at the runner's ``lr_aux = 0.01`` — about the same step
on the digits nets, and stable on wider ones (``predictor_step = "plain"`` with
``κ = 5`` is the former default).

**Schedule.** Ops per boundary layer: ``pred{l}`` after ``fwd{l}``, then ``upd:W{l}``;
``tgt{l}`` after the op that produced :math:`\delta_{l+1}`, then ``upd:M{l}``; inside hybrid
blocks ``bwd{l}`` as for BP. DNI's critical path is therefore the forward chain plus one
``Wᵀ`` step and a predictor update — not the backward chain; the hybrid's adds the
backward chain of one block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fields import check_fields, param
from ..layers.linear import AnalogLinear, DigitalLinear
from ..layers.network import Network
from .base import OPTION_OWNER, Rule, Schedule, Update, act_deriv, eps_grad
from .feedback import FeedbackOptions, fixed_layer

__all__ = ["DNI", "Hybrid", "DNIOptions", "HybridOptions", "TARGETS", "PREDICTOR_STEPS"]

TARGETS = ("feedback", "transpose")
#: Predictor step rules: plain LMS or normalised LMS (module notes).
PREDICTOR_STEPS = ("plain", "nlms")
#: Guards the NLMS step against an all-zero batch of inputs.
NLMS_EPS = 1e-6


@dataclass(frozen=True)
class _PredictorOptions:
    """Options of the gradient predictors, shared by DNI and the hybrid."""

    label: bool = param(True, doc="condition the predictors on the one-hot label (input "
                                  "[h_l; t])")
    headroom: float = param(2.0, lo=1, hi=1000,
                            doc="predictor arrays map the Glorot bound of their shape to "
                                "w_max / headroom")
    # κ = 100 with the runner's lr_aux = 0.01 gives the normalised step 1 (module notes on
    # tuning: what the plain step 0.05 was on the digits nets, input power ~20-25).
    predictor_lr_scale: float = param(100.0, lo=0, hi=1000,
                                      doc="κ: the predictors learn with lr_aux · κ")
    predictor_step: str = param("nlms", choices=PREDICTOR_STEPS,
                                doc="`plain`: step lr_aux·κ; `nlms`: step lr_aux·κ / (mean "
                                    "squared norm of the predictor inputs [h; t] in the "
                                    "batch), stable for lr_aux·κ < 2 at any width")

    def __post_init__(self) -> None:
        check_fields(self, OPTION_OWNER)


@dataclass(frozen=True)
class DNIOptions(_PredictorOptions, FeedbackOptions):
    """DNI's options: the predictors', the fixed feedback's (``target = "feedback"``), and how
    the predictor targets are formed."""

    target: str = param("feedback", choices=TARGETS,
                        doc="step of the predictor targets through W_{l+1}ᵀ: a fixed random "
                            "feedback matrix (no Wᵀ) or the transpose strategy")
    bootstrap: bool = param(True, doc="targets from the next layer's predicted error (true) or "
                                      "from the true error chain (false)")


@dataclass(frozen=True)
class HybridOptions(_PredictorOptions):
    """The hybrid's options: the predictors' and the block size."""

    blocks: int = param(2, lo=1, hi=100_000,
                        doc="layers per block, from the top: 1 is DNI with target = "
                            "transpose, >= the depth is BP")


class _Synthetic(Rule):
    """Shared engine: boundary layers with predictors, BP inside blocks, predictor targets.

    The engine reads :attr:`engine` (DNI's options: for DNI its own, for the hybrid fixed
    ones) and ``block`` layers per block (1: DNI), both set by :meth:`_engine`.
    """

    Options = DNIOptions

    def __init__(self, *, seed: int = 0, **options) -> None:
        super().__init__(seed=seed, **options)
        self.engine, self.block = self._engine()
        self.predictors: dict[str, object] = {}
        self.feedback: dict[str, object] = {}
        self.boundaries: tuple[int, ...] = ()

    def _engine(self) -> tuple[DNIOptions, int]:
        raise NotImplementedError

    @property
    def needs_transpose(self) -> bool:  # type: ignore[override]
        """True when a ``Wᵀ`` step goes through the network's transpose strategy."""
        return self.engine.target == "transpose" or self.block > 1

    def modules(self) -> dict[str, object]:
        return {**self.predictors, **self.feedback}

    # ------------------------------------------------------------------ build
    def build(self, net: Network) -> None:
        super().build(net)
        n = len(net)
        # Block tops below the top block, from the top down: n-1-k, n-1-2k, …
        self.boundaries = tuple(range(n - 1 - self.block, -1, -self.block))
        n_label = net.n_out if self.engine.label else 0
        self.predictors = {f"M{l}": self._predictor(net, l, n_label) for l in self.boundaries}
        self.feedback = {}
        if self.engine.target == "feedback":
            for l in self._feedback_layers(n):
                layer = net.layers[l]
                self.feedback[f"B{l}"] = fixed_layer(
                    net, layer.n_out, layer.n_in, where=self.engine.feedback,
                    seed=self.stream_seed(f"B{l}"), scale=self.engine.feedback_scale, name=f"B{l}",
                    ledger=self.ledger.child(f"B{l}"))

    def _feedback_layers(self, n: int) -> list[int]:
        """Layers whose ``Wᵀ`` a predictor target needs (all above a boundary, or the chain)."""
        if self.engine.bootstrap:
            return [l + 1 for l in self.boundaries]
        return list(range(1, n))

    def _predictor(self, net: Network, l: int, n_label: int):
        layer = net.layers[l]
        kw = dict(activation="identity", bias=True, init="zero", seed=self.stream_seed(f"M{l}"),
                  ledger=self.ledger.child(f"M{l}"), name=f"M{l}")
        if layer.backend == "analog" and net.hw is not None:
            return AnalogLinear(layer.n_out + n_label, layer.n_out, hw=net.hw,
                                headroom=self.engine.headroom, **kw)
        return DigitalLinear(layer.n_out + n_label, layer.n_out, **kw)

    # ------------------------------------------------------------------ step
    def _transport(self, net: Network, l: int, delta: np.ndarray) -> np.ndarray:
        """``W_lᵀ δ`` through the transpose strategy, or ``B_l δ`` (fixed feedback)."""
        if self.engine.target == "transpose":
            return net.layers[l].backward_input(delta)
        return self.feedback[f"B{l}"].read(delta)

    def _pred_input(self, h: np.ndarray, target: np.ndarray) -> np.ndarray:
        if not self.engine.label:
            return h
        return np.concatenate([h, np.asarray(target, dtype=h.dtype)], axis=1)

    def compute(self, net: Network, x: np.ndarray, target: np.ndarray,
                sched: Schedule) -> tuple[float, list[Update]]:
        z = self.forward(net, x, sched)
        loss, e = self.output_error(net, z, target, sched)
        c, n, bsz = net.cache, len(net), x.shape[0]
        top = net.layers[-1]
        if top.act.name != "identity":
            e = e * act_deriv(top, c.u[-1], c.h[-1], rule=self.name)
        deltas, after = {n - 1: e}, {n - 1: "loss"}
        ups = [Update(top, c.x[-1], e, "loss", eps_grad(top, e, c.h[-1]), name=f"W{n - 1}")]
        preds = {}
        for l in range(n - 2, -1, -1):
            if l in self.boundaries:
                op, dep = f"pred{l}", (f"fwd{l}",)
            else:
                op, dep = f"bwd{l}", (after[l + 1],)
            with sched.op(op, dep):
                if l in self.boundaries:
                    inp = self._pred_input(c.h[l], target)
                    s = self.predictors[f"M{l}"].forward(inp)[0]
                    preds[l] = (inp, s)
                    signal = s / np.float32(bsz)
                    self._charge(l, mults=s.size)
                else:
                    signal = net.layers[l + 1].backward_input(deltas[l + 1])
                deltas[l] = signal * act_deriv(net.layers[l], c.u[l], c.h[l], rule=self.name)
            after[l] = op
            ups.append(Update(net.layers[l], c.x[l], deltas[l], op,
                              eps_grad(net.layers[l], deltas[l], c.h[l]), name=f"W{l}"))
        return loss, ups + self._predictor_updates(net, deltas, after, preds, bsz, sched)

    def _predictor_updates(self, net, deltas, after, preds, bsz, sched) -> list[Update]:
        """Targets ``g*_l = B·T_{l+1}(δ_{l+1})`` and the predictors' squared-error updates."""
        ups, c = [], net.cache
        true, t_after = {len(net) - 1: deltas[len(net) - 1]}, {len(net) - 1: "loss"}
        src, src_after = (deltas, after) if self.engine.bootstrap else (true, t_after)
        for l in range(len(net) - 2, -1, -1):
            if l not in self.boundaries:
                continue
            with sched.op(f"tgt{l}", (src_after[l + 1],)):
                g = self._transport(net, l + 1, src[l + 1]) * np.float32(bsz)
                inp, s = preds[l]
                # lr_aux·scale is the predictors' step: folded into δ, as ΔM = −lr δᵀ[h; t].
                resid = (s - g) * np.float32(self._step_scale(l, inp) / bsz)
                self._charge(l, mults=2 * g.size, adds=g.size)
                if not self.engine.bootstrap:
                    # The true chain continues below: δ*_l = g*_l ⊙ f'(u_l) / B.
                    true[l] = g / np.float32(bsz) * act_deriv(net.layers[l], c.u[l], c.h[l],
                                                               rule=self.name)
                    t_after[l] = f"tgt{l}"
            ups.append(Update(self.predictors[f"M{l}"], inp, resid, f"tgt{l}", aux=True,
                              name=f"M{l}"))
        return ups

    def _step_scale(self, l: int, inp: np.ndarray) -> float:
        """κ, or with ``predictor_step = "nlms"`` κ / (ε + P), P = mean_b ‖[h_b; t_b]‖².

        The LMS step of a linear predictor is stable only for ``μ λ_max < 2`` with
        ``λ_max ≤ P``; at 256 tanh inputs P is ~50-100, so a fixed μ that suits a 64-wide net
        can diverge there (module notes).
        Normalising by the batch's input power (one digital dot product per sample,
        charged) makes ``lr_aux·κ`` the normalised step at any width.
        """
        kappa = self.engine.predictor_lr_scale
        if self.engine.predictor_step == "plain":
            return kappa
        power = float(np.mean(np.einsum("bi,bi->b", inp, inp, dtype=np.float64)))
        self._charge(l, mults=inp.size + 1, adds=inp.size)
        return kappa / (NLMS_EPS + power)

    def _charge(self, l: int, *, mults: int = 0, adds: int = 0) -> None:
        self.ledger.child(f"M{l}").child("periphery").charge(digital_mults=mults,
                                                             digital_adds=adds)


class DNI(_Synthetic):
    """Synthetic gradients: every hidden layer learns from its own linear gradient predictor.

    Parameters
    ----------
    seed : int
        Seeds the predictors' arrays and the feedback matrices.
    **options
        Fields of :class:`DNIOptions`. With ``target = "transpose"`` :attr:`needs_transpose`
        becomes True, and the runner builds the network with a transpose strategy.
    """

    name = "dni"
    Options = DNIOptions

    def _engine(self) -> tuple[DNIOptions, int]:
        return self.options, 1


class Hybrid(_Synthetic):
    """BP inside blocks of ``blocks`` layers (from the top), synthetic gradients between.

    Parameters
    ----------
    seed : int
        Seeds the predictors' arrays.
    **options
        Fields of :class:`HybridOptions`.
    """

    name = "hybrid"
    Options = HybridOptions

    def _engine(self) -> tuple[DNIOptions, int]:
        o = self.options
        # BP inside the blocks needs the transpose strategy anyway, so the predictor targets
        # use it too (no feedback matrices), bootstrapped from the block above.
        return DNIOptions(label=o.label, target="transpose", bootstrap=True,
                          headroom=o.headroom, predictor_lr_scale=o.predictor_lr_scale,
                          predictor_step=o.predictor_step), o.blocks

    @property
    def needs_transpose(self) -> bool:  # type: ignore[override]
        return True
