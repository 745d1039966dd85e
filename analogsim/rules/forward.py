r"""Rules that need only forward reads: Forward-Forward and PEPITA (this module), forward
gradients and node perturbation (:mod:`analogsim.rules.perturbation`).

None of them sends anything backwards through the network: every array is only ever read
forward, there is no ``Wᵀ`` and no fixed feedback matrix per layer. Notation as in
:mod:`analogsim.rules.feedback`: layer ``l`` computes :math:`u_l = W_l x_l + b_l`,
:math:`h_l = f(u_l)`; the network has layers ``0 … L`` (``L`` the output layer), ``B`` is the
batch size and an :class:`~analogsim.rules.base.Update` with ``(x, δ)`` asks for
:math:`\Delta W = -\eta\,\delta^\top x`, :math:`\Delta b = -\eta \sum_{batch} \delta`.

**Forward-Forward** (Hinton 2022, "The Forward-Forward Algorithm: Some Preliminary
Investigations", arXiv:2212.13345). Every hidden layer has its own objective, the
*goodness* of its activity; here per unit,

.. math:: G_l = \frac{1}{n_l}\sum_j h_{l,j}^2, \qquad
          p(\text{positive}) = \sigma(G_l - \theta)

(the paper's :math:`\sum_j h_j^2` against a threshold, divided by the width so that one
θ suits every layer). Positive data are the input with the true label written into its
first ``n_classes`` features (one-hot, hot value ``label_scale``; Hinton's supervised
MNIST net), negative data the same input with a wrong label drawn uniformly from the other
classes (the rule's seeded stream ``("rule", "forward_forward", "negatives")``). Each layer
descends :math:`\ell_l = \mathrm{softplus}(\theta - G_l^+) + \mathrm{softplus}(G_l^- - \theta)`
(mean over the batch); the rule steps on :math:`n_l \ell_l` (the per-unit goodness alone
would give every unit a gradient :math:`\propto 1/n_l` and tie the learning rate to the
width), so

.. math:: \delta_l = \frac{c}{B}\,2\,h_l \odot f'(u_l), \qquad
          c = -\sigma(\theta - G_l) \text{ (positive rows)}, \;
          c = \sigma(G_l - \theta) \text{ (negative rows)},

on the layer's own input (positive and negative rows stacked: one read and one pulse update
of ``2B`` rows). The next layer sees the *normalised* activity
:math:`x_{l+1} = h_l / \sqrt{G_l + \epsilon}` — the paper's length normalisation, scaled to
unit RMS (length :math:`\sqrt{n_l}`) so that the next array's inputs keep the data's scale
and its weights need not grow past the device range; only the direction of :math:`h_l` is
passed on, so a layer cannot win by copying its input's goodness. No gradient crosses a
layer: every δ is local.

*Inference* (``head = "goodness"``, the paper's): run the hidden layers once per class with
that label embedded and predict the class with the largest summed goodness
:math:`\sum_l (G_l - \theta)` (``skip_first``: without the first hidden layer, as Hinton does
for deeper nets). The output layer is neither trained nor read. Test-time cost:
``n_classes`` forward passes of the hidden layers per sample, charged to the ledger
(``inference_energy_per_sample_pj`` in the run record). ``head = "softmax"``: a third pass
per step with a *neutral* label (every label feature ``label_scale / n_classes``) feeds the
last hidden layer's normalised activity to the output layer, trained locally on the loss
(:math:`\delta_L = e`); inference is one neutral pass (Hinton's alternative, which reads all
hidden layers but the first; here the network's output layer reads the last one).

**PEPITA** (Dellaferrera & Kreiman 2022, "Error-driven Input Modulation: Solving the
Credit Assignment Problem without a Backward Pass", ICML, PMLR 162; Algorithm 1): a standard
pass gives :math:`h_l` and the per-sample output error :math:`e = p - t` (softmax output);
a second, *modulated* pass runs on :math:`x^{err} = x + F e` with a fixed random
:math:`F \in \mathbb{R}^{n_{in} \times n_{classes}}`, giving :math:`h_l^{err}`; then

.. math:: \Delta W_l = -\eta\,(h_l - h_l^{err})\,(h_{l-1}^{err})^\top \quad (l < L), \qquad
          \Delta W_L = -\eta\; e\,(h_{L-1}^{err})^\top ,

averaged over the batch, with :math:`h_{-1}^{err} = x^{err}`. In this package's terms
:math:`\delta_l = (h_l - h_l^{err})/B` on input :math:`x_l^{err}` and :math:`\delta_L = e/B`
(the loss gradient) on input :math:`h_{L-1}^{err}`. The official code
(github.com/GiorgiaD/PEPITA) adds :math:`F e` as written here; the sign is immaterial
(:math:`F` is zero-mean and symmetric, so :math:`-F` is as likely), and its last layer uses
the modulated pass's error instead of :math:`e` (we follow the paper's equation, which also
saves the modulated read of the output layer). :math:`F` is uniform in
``± feedback_scale · √(6/(n_classes + n_in))`` (the paper: ``0.05 · √(6/n_in)``) on its own
forward-only array (``feedback = "analog"``) or in digital memory. For small modulations
:math:`h_l - h_l^{err} \approx -f'(u_l) \odot W_l \cdots F e`, i.e. DFA with the feedback
:math:`-W_l \cdots W_0 F` that adapts as the forward weights learn (Srinivasan et al. 2023,
"Forward Learning with Top-Down Feedback", arXiv:2302.05440: an "adaptive feedback
alignment"). No derivative of any activation is needed, so step and stochastic units train.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from ..fields import check_fields, param
from ..hardware.state import rng_from_array, rng_to_array
from ..layers.network import Network
from ..seeding import derive_rng
from .base import OPTION_OWNER, Rule, Schedule, Update, act_deriv, eps_grad
from .feedback import FEEDBACK, FeedbackOptions, fixed_layer

__all__ = ["ForwardForward", "PEPITA", "FFOptions", "PEPITAOptions", "HEADS",
           "SeededRule", "class_labels", "top_error"]

#: Forward-Forward inference: label by goodness (the paper's) or a locally trained softmax.
HEADS = ("goodness", "softmax")
#: Guards the RMS normalisation of an all-zero activity (dead ReLU layer).
NORM_EPS = 1e-8


def class_labels(target: np.ndarray, n_classes: int, rule: str) -> np.ndarray:
    """The class index of every row of a one-hot ``target`` ``(B, n_classes)``.

    Raises
    ------
    ValueError
        If ``target`` is not one-hot class labels (a regression data set): the rule needs a
        label to embed or to compare.
    """
    t = np.asarray(target)
    if t.ndim != 2 or t.shape[1] != n_classes or not np.all((t == 0) | (t == 1)) \
            or not np.all(t.sum(axis=1) == 1):
        raise ValueError(f"rule {rule!r}: target of shape {t.shape} is not one-hot class "
                         f"labels; allowed: a classification data set with {n_classes} "
                         "classes (the rule embeds the label in the input)")
    return np.argmax(t, axis=1)


def top_error(rule: str, net: Network, e: np.ndarray) -> np.ndarray:
    """The output layer's δ from the loss gradient ``e`` (as every rule here: ``e ⊙ f'`` for
    a non-identity output activation)."""
    top, c = net.layers[-1], net.cache
    if top.act.name == "identity":
        return e
    return e * act_deriv(top, c.u[-1], c.h[-1], rule=rule)


def _periphery(layer):
    return layer.ledger.child("periphery")


class SeededRule(Rule):
    """A rule with its own random generator: seeded by ``(run seed, "rule", name, stream)``,
    created by :meth:`build`, saved in :meth:`state_dict` as ``rng.<stream>`` (PCG64 words)
    so a resumed run draws the same numbers as an uninterrupted one."""

    #: Name of the rule's random stream.
    stream = "rng"

    def build(self, net: Network) -> None:
        super().build(net)
        self.rng = derive_rng(self.seed, "rule", self.name, self.stream)

    def state_dict(self) -> dict[str, np.ndarray]:
        out = super().state_dict()
        if getattr(self, "rng", None) is not None:
            out[f"rng.{self.stream}"] = rng_to_array(self.rng)
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        super().load_state_dict(state)
        if getattr(self, "rng", None) is not None:
            rng_from_array(self.rng, np.asarray(state[f"rng.{self.stream}"]))


# --------------------------------------------------------------------------- Forward-Forward


@dataclass(frozen=True)
class FFOptions:
    """Options of Forward-Forward (see :class:`ForwardForward`)."""

    threshold: float = param(0.5, lo=0, hi=1000,
                             doc="θ: a sample is judged positive when its goodness per unit "
                                 "(mean squared activity) exceeds θ")
    label_scale: float = param(3.0, lo=0, hi=1000, lo_open=True,
                               doc="value written into the label's input feature (the other "
                                   "label features are set to 0)")
    head: str = param("goodness", choices=HEADS,
                      doc="inference: `goodness` (one pass per class, the largest summed "
                          "goodness wins; the output layer is unused) or `softmax` (the "
                          "output layer trained locally under a neutral label; one pass)")
    skip_first: bool = param(False, doc="leave the first hidden layer's goodness out of the "
                                        "inference sum (Hinton 2022, for deeper nets)")

    def __post_init__(self) -> None:
        check_fields(self, OPTION_OWNER)


class ForwardForward(SeededRule):
    r"""Forward-Forward (Hinton 2022): layer-local goodness objectives, no backward signal.

    See the module docstring for the equations. Ops per step: ``labels`` (draw the wrong
    labels, embed both), then for every hidden layer ``fwd{l}`` (one read of the ``2B``
    stacked positive and negative rows) and ``good{l}`` (goodness, δ, normalisation; the
    next layer's read waits for it), ``upd:W{l}`` after ``good{l}``. With
    ``head = "softmax"`` also ``neutral{l}`` (after the array's own ``fwd{l}``), ``fwd{L}``,
    ``loss`` and ``upd:W{L}``. The critical path is the forward chain plus one update: every
    layer may update as soon as its own goodness is known.
    """

    name = "forward_forward"
    stream = "negatives"
    Options = FFOptions

    def build(self, net: Network) -> None:
        if len(net) < 2:
            raise ValueError(f"rule {self.name!r}: the network has {len(net)} layer; "
                             "allowed: at least one hidden layer (goodness is a hidden "
                             "layer's)")
        if net.n_out > net.n_in:
            raise ValueError(f"rule {self.name!r}: {net.n_out} classes cannot be embedded in "
                             f"{net.n_in} input features; allowed: n_classes <= n_in")
        super().build(net)

    # ------------------------------------------------------------------ pieces
    def _embed(self, x: np.ndarray, labels: np.ndarray | None, k: int) -> np.ndarray:
        """``x`` with its first ``k`` (= n_classes) features replaced by the label (one-hot
        × ``label_scale``; ``labels=None``: the neutral label, every entry ``scale/k``)."""
        scale = self.options.label_scale
        out = np.array(x, copy=True)
        if labels is None:
            out[:, :k] = scale / k
        else:
            out[:, :k] = 0
            out[np.arange(len(x)), labels] = scale
        self.ledger.charge(mem_bytes=out.shape[0] * k * out.itemsize)
        return out

    def _goodness(self, layer, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Goodness per unit ``G`` (B,) and the normalised activity ``h / √(G + ε)``."""
        g = np.mean(h * h, axis=1)
        nxt = h / np.sqrt(g + NORM_EPS).astype(h.dtype)[:, None]
        # squares, their sum; one root per row and the division of every element
        _periphery(layer).charge(digital_mults=2 * h.size + len(h), digital_adds=h.size)
        return g, nxt

    def _local(self, layer, u: np.ndarray, h: np.ndarray, g: np.ndarray, n_pos: int
               ) -> tuple[float, np.ndarray]:
        """FF's loss and δ for ``n_pos`` positive rows followed by as many negative rows."""
        s = g.astype(np.float64) - self.options.threshold
        sign = np.where(np.arange(len(h)) < n_pos, 1.0, -1.0)  # positives: push G up
        loss = float(np.sum(np.logaddexp(0.0, -sign * s)) / n_pos)
        # the gradient of n_l·ℓ_l: 2/n_l per unit would tie the step to the width
        c = -sign * expit(-sign * s) * (2.0 / n_pos)
        delta = c.astype(h.dtype)[:, None] * h * act_deriv(layer, u, h, rule=self.name)
        _periphery(layer).charge(digital_mults=2 * h.size + 4 * len(h),
                                 digital_adds=4 * len(h))
        return loss, delta

    def _hidden_pass(self, net: Network, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Summed ``G_l − θ`` (B,) and the last hidden layer's normalised activity."""
        total = np.zeros(len(x), dtype=np.float64)
        h, skip = x, self.options.skip_first and len(net) > 2
        for l, layer in enumerate(net.layers[:-1]):
            _, a = layer.forward(h, net.rng)
            g, h = self._goodness(layer, a)
            if not (skip and l == 0):
                total += g - self.options.threshold
        return total, h

    # ------------------------------------------------------------------ training
    def compute(self, net: Network, x: np.ndarray, target: np.ndarray, sched: Schedule
                ) -> tuple[float, list[Update]]:
        y = class_labels(target, net.n_out, self.name)
        b = len(x)
        with sched.op("labels"):
            wrong = (y + self.rng.integers(1, net.n_out, size=b)) % net.n_out
            h = np.concatenate([self._embed(x, y, net.n_out), self._embed(x, wrong, net.n_out)])
        loss, ups, after = 0.0, [], "labels"
        for l, layer in enumerate(net.layers[:-1]):
            with sched.op(f"fwd{l}", (after,)):
                u, a = layer.forward(h, net.rng)
            with sched.op(f"good{l}", (f"fwd{l}",)):
                g, nxt = self._goodness(layer, a)
                ell, delta = self._local(layer, u, a, g, b)
            ups.append(Update(layer, h, delta, f"good{l}", eps_grad(layer, delta, a),
                              name=f"W{l}"))
            loss += ell
            h, after = nxt, f"good{l}"
        if self.options.head == "softmax":
            head_loss, up = self._train_head(net, x, target, sched)
            loss += head_loss
            ups.append(up)
        return loss, ups

    def _train_head(self, net: Network, x: np.ndarray, target: np.ndarray, sched: Schedule
                    ) -> tuple[float, Update]:
        """The neutral-label pass and the output layer's local softmax step."""
        h, after = self._embed(x, None, net.n_out), "labels"
        for l, layer in enumerate(net.layers[:-1]):
            # the array is free once its own positive/negative read is done
            with sched.op(f"neutral{l}", (after, f"fwd{l}")):
                _, a = layer.forward(h, net.rng)
                _, h = self._goodness(layer, a)
            after = f"neutral{l}"
        top, n = net.layers[-1], len(net) - 1
        with sched.op(f"fwd{n}", (after,)):
            z, hz = top.forward(h, net.rng)
        loss, e = self.output_error(net, z, target, sched)
        if top.act.name != "identity":
            e = e * act_deriv(top, z, hz, rule=self.name)
        return loss, Update(top, h, e, "loss", eps_grad(top, e, hz), name=f"W{n}")

    # ------------------------------------------------------------------ inference
    def predict(self, net: Network, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Scores ``(B, n_classes)``: per class the summed ``G_l − θ`` with that label
        embedded (``n_classes`` passes of the hidden layers, all charged), or with
        ``head = "softmax"`` the output layer's ``u`` after one neutral-label pass."""
        k, out = net.n_out, []
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size]
            if self.options.head == "softmax":
                _, h = self._hidden_pass(net, self._embed(xb, None, k))
                out.append(net.layers[-1].forward(h, net.rng)[0])
                continue
            # every class's copy of the batch in one read per layer
            stacked = np.concatenate([self._embed(xb, np.full(len(xb), c), k)
                                      for c in range(k)])
            score, _ = self._hidden_pass(net, stacked)
            out.append(score.reshape(k, len(xb)).T.astype(np.float32))
        return np.concatenate(out, axis=0)


# --------------------------------------------------------------------------- PEPITA


@dataclass(frozen=True)
class PEPITAOptions(FeedbackOptions):
    """PEPITA's options: where the fixed input projection ``F`` lives and its scale."""

    feedback: str = param("analog", choices=FEEDBACK,
                          doc="where F (n_classes → n_in) lives: its own forward-only array "
                              "(analog) or digital memory")
    # The paper's 0.05 was for [0, 1] pixels, 100 epochs and momentum; on this package's
    # standardised inputs it barely moves the hidden layers in a few epochs, and 1.0 lets
    # the 256-wide hidden layer of fc-256x2 blow up within a Fashion-MNIST epoch at lr 0.05
    # (docs/rules.md, PEPITA).
    feedback_scale: float = param(0.5, lo=0, hi=1000, lo_open=True,
                                  doc="F's entries are uniform in ± feedback_scale · "
                                      "√(6/(n_classes + n_in)) (the paper: 0.05 on [0, 1] "
                                      "pixels)")


class PEPITA(Rule):
    r"""PEPITA (Dellaferrera & Kreiman 2022): a second forward pass on ``x + F e``.

    See the module docstring for the equations. Ops per step: the standard pass
    ``fwd0 … fwdL``, ``loss``, ``mod`` (one read of ``F`` on the per-sample error and the
    digital sum ``x + F e``), then the modulated pass ``mod0 … mod{L−1}`` (the output layer
    is not read again); ``upd:W{l}`` after ``mod{l}``, the output layer's after
    ``mod{L−1}``. The critical path is two forward passes and one update.
    """

    name = "pepita"
    Options = PEPITAOptions

    def __init__(self, *, seed: int = 0, **options) -> None:
        super().__init__(seed=seed, **options)
        self.feedback: dict[str, object] = {}

    def modules(self) -> dict[str, object]:
        return dict(self.feedback)

    def build(self, net: Network) -> None:
        super().build(net)
        self.feedback = {"F": fixed_layer(
            net, net.n_out, net.n_in, where=self.options.feedback, seed=self.stream_seed("F"),
            scale=self.options.feedback_scale, name="F", ledger=self.ledger.child("F"))}

    def compute(self, net: Network, x: np.ndarray, target: np.ndarray, sched: Schedule
                ) -> tuple[float, list[Update]]:
        z = self.forward(net, x, sched)
        loss, e = self.output_error(net, z, target, sched)
        c, n, b = net.cache, len(net) - 1, x.shape[0]
        e_top = top_error(self.name, net, e)
        with sched.op("mod", ("loss",)):
            # the paper's e is per sample; e here is the batch mean's gradient (1/B)
            h = x + self.feedback["F"].read(e * np.float32(b))
            self.ledger.charge(digital_mults=e.size, digital_adds=h.size)
        ups, after = [], "mod"
        for l, layer in enumerate(net.layers[:-1]):
            with sched.op(f"mod{l}", (after,)):
                _, hm = layer.forward(h, net.rng)
                delta = (c.h[l] - hm) * np.float32(1.0 / b)
                _periphery(layer).charge(digital_adds=delta.size, digital_mults=delta.size)
            ups.append(Update(layer, h, delta, f"mod{l}", name=f"W{l}"))
            h, after = hm, f"mod{l}"
        ups.append(Update(net.layers[-1], h, e_top, after,
                          eps_grad(net.layers[-1], e_top, c.h[-1]), name=f"W{n}"))
        return loss, ups
