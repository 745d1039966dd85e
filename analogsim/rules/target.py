r"""Target propagation (TP, Bengio 2014) and difference target propagation (DTP, Lee et al. 2015).

Notation as in :mod:`analogsim.rules.feedback`: layer ``l`` (``0 … L``) computes
:math:`u_l = W_l x_l + b_l`, :math:`h_l = f_l(u_l)`, :math:`x_{l+1} = h_l`; the loss is taken
on the output layer's :math:`u_L` and :math:`e = \partial E/\partial u_L` carries the ``1/B``
of the batch mean. Instead of errors, these rules send *targets* :math:`\hat h_l` down the
network and move every hidden layer towards its own target — no ``Wᵀ`` and no ``f'`` of any
layer but the one being updated.

**Inverses.** Layer ``l ≥ 1`` owns a learned approximate inverse :math:`g_l` from its activity
to its input (an array on the network's hardware for an analog network, digital otherwise;
its bias lives in the periphery). With ``inverse = "learned"`` (Lee et al. 2015)

.. math:: g_l(a) = \tilde f_{l-1}(V_l\,a + c_l), \qquad a = h_l,

:math:`\tilde f_{l-1}` the lower layer's activation (for step and stochastic units the
logistic sigmoid: the unit's mean). With ``inverse = "exact"`` the periphery first applies
the *exact* inverse of the layer's own activation (tanh, sigmoid, the smooth activation's
:math:`u = f - \varepsilon/f`, identity), so the array only has to invert the linear part:

.. math:: g_l(a) = V_l\,a + c_l, \qquad a = f_l^{-1}(h_l) = u_l ;

with :math:`V_l = W_l^{-1},\ c_l = -W_l^{-1} b_l` (square invertible ``W_l``) this is the exact
inverse, and TP's targets are then mapped by the forward pass exactly onto the targets above
(tested with inverses set through :meth:`TP.set_inverse`). For a target :math:`\hat h_l` the
periphery forms :math:`\hat a = u_l + f_l^{-1}(\hat h_l) - f_l^{-1}(h_l)`, both arguments
clipped where the inverse's slope :math:`du/dh` reaches 100 (it is infinite at the ends of
tanh and sigmoid and at the smooth activation's 0), so that a target equal to the activity
gives :math:`\hat a = u_l` exactly. For the output layer ``L`` the activity is the loss input
:math:`u_L` in both modes. Caveat: the linear part must invert a square, often
ill-conditioned ``W_l``; with an unbounded activation (smooth, whose targets are not clipped
from above) the resulting large targets destabilise deep networks at the default ``top_lr``
— use a smaller one (e.g. 2) or learned inverses.

**Training the inverses** (noise injection, Lee et al. 2015): corrupt the layer's input,
:math:`\tilde x = x_l + \sigma\eta`, :math:`\eta \sim \mathcal N(0, I)` (``noise`` = σ, drawn
from the network's generator, ``l`` ascending), run the forward layer on it (a charged forward
read), and step :math:`g_l` on :math:`\tfrac1{2B}\lVert g_l(\tilde a) - \tilde x\rVert^2` —
an ``aux`` :class:`Update` with :math:`\delta = (g_l(\tilde a) - \tilde x) \odot
\tilde f'_{l-1}/(B\,p)` on input :math:`\tilde a` (no :math:`\tilde f'` in ``exact`` mode),
stepped with ``lr_aux``. :math:`p = \max(1, \overline{\tilde a^2})` is the inputs' mean square:
this is a regression on :math:`\tilde a`, whose plain gradient step diverges once
``lr_aux`` times the inputs' power exceeds 2 — which the unbounded pre-activations read in
``exact`` mode, and the logits read by :math:`g_L`, reach quickly; with ``p`` the step is that
of unit-RMS inputs (bounded activities, ``p = 1``, are unchanged).

**Top target.** With ``top = "transpose"`` the last hidden layer's target is a gradient step
taken through the output layer's transpose strategy (charged; the runner builds the network
with one, see :attr:`needs_transpose`; Lee et al. 2015's DTP takes this gradient step):

.. math:: \hat h_{L-1} = h_{L-1} - \alpha B\, W_L^\top e .

With ``top = "inverse"`` (default, no ``Wᵀ``; Bartunov et al. 2018's "simplified DTP",
which never transports a gradient) the output gets the target
:math:`\hat u_L = u_L - \alpha B e` (for softmax cross-entropy :math:`u - \alpha(p - t)`) and
:math:`\hat h_{L-1}` comes through the output layer's inverse :math:`g_L`. ``top_lr`` is α; the
factor ``B`` makes it a per-sample step, independent of the batch size.

**Propagation**, for ``l = L−1 … 1``:

.. math:: \text{TP: } \hat h_{l-1} = g_l(\hat h_l), \qquad
          \text{DTP: } \hat h_{l-1} = h_{l-1} + g_l(\hat h_l) - g_l(h_l).

DTP's difference correction cancels the reconstruction error of an imperfect :math:`g_l`: a
target equal to the activity stays equal to it, so no layer moves when the output is right.
The array reads the *difference* of the inputs, :math:`\Delta = \hat a - a`:
:math:`g_l(\hat h_l) - g_l(h_l) = \tilde f(v + V_l\Delta) - \tilde f(v)` with
:math:`v = V_l a + c_l` (one more read; none in ``exact`` mode, where the correction is just
:math:`V_l\Delta`). With max-abs input scaling the read noise then scales with
:math:`|\Delta|` instead of :math:`|a|`, and a sample whose target did not move is not read
at all — the fixed point holds exactly on noisy hardware too.

A hidden target outside its activation's range (tanh, sigmoid, relu, smooth, step) cannot be
reached and is clipped to the range.

**Updates.** The output layer learns from its true error ``e`` (as every rule). Hidden layer
``l`` descends the local loss :math:`\tfrac1{2B}\lVert h_l - \hat h_l\rVert^2`:

.. math:: \delta_l = (h_l - \hat h_l) \odot f_l'(u_l) / B, \qquad
          \Delta W_l = -\eta\,\delta_l^\top x_l .

Units without a derivative (step, stochastic binary, no surrogate) use the *delta rule*
:math:`f' \to 1`: the target says which way the unit should move, so no derivative is needed —
this is what lets TP/DTP train threshold and stochastic units (seed problems 1 and 2). With
``top = "transpose"`` and α = 1 the last hidden layer's update is exactly BP's (where its
target is not clipped).

**Schedule.** ``tgt{l}`` is the op that produces :math:`\hat h_l`; the ``tgt`` ops form one
sequential chain down the network (``tgt{L-1}`` after ``loss``). ``inv{l}`` (the
noise-injection read and the inverse's error) runs after ``fwd{l}``, in parallel with
everything else. A weight update waits for its target and for the last read of its array
(zero-cost join ops ``ready:…``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fields import check_fields, param
from ..layers.activations import Activation, SmoothReLU, get_activation
from ..layers.linear import AnalogLinear, DigitalLinear
from ..layers.network import Network
from .base import OPTION_OWNER, Rule, Schedule, Update, act_deriv, eps_grad

__all__ = ["TP", "DTP", "TPOptions", "TOPS", "INVERSES"]

TOPS = ("inverse", "transpose")
INVERSES = ("learned", "exact")

#: ``exact`` mode clips targets where the activation inverse's slope ``du/dh`` reaches this:
#: the inverse is finite there, and a target near saturation (tanh, sigmoid) or near "off"
#: (smooth) cannot move ``u`` by more than this many times its own move.
_MAX_SLOPE = 100.0


def _inverse_activation(lower: Activation) -> Activation:
    """Output activation of a learned inverse: the lower layer's, smooth for threshold units."""
    if isinstance(lower, SmoothReLU):
        # A fixed ε: the inverse's output only has to land in the lower layer's range.
        return SmoothReLU(lower.n_units, eps0=float(np.exp(np.mean(lower.theta))),
                          learnable=False)
    if not lower.differentiable:
        return get_activation("sigmoid")  # the mean of a stochastic unit / a smooth step
    return get_activation(lower.name)


def _clip_domain(act: Activation, h: np.ndarray) -> np.ndarray:
    """Clip ``h`` to where ``act.inverse`` has slope ``du/dh ≤ _MAX_SLOPE`` (targets may leave
    the activation's range; the inverse is infinite at its ends)."""
    k = _MAX_SLOPE
    if act.name == "tanh":  # du/dh = 1/(1 − h²)
        lim = np.sqrt(1.0 - 1.0 / k)
        return np.clip(h, -lim, lim)
    if act.name == "sigmoid":  # du/dh = 1/(h(1 − h))
        lo = 0.5 * (1.0 - np.sqrt(1.0 - 4.0 / k))
        return np.clip(h, lo, 1.0 - lo)
    if isinstance(act, SmoothReLU):  # du/dh = 1 + ε/h²
        return np.maximum(h, np.sqrt(act.eps / (k - 1.0)).astype(h.dtype))
    return h


#: Output range of bounded activations: a hidden target outside it cannot be reached and is
#: clipped to it (otherwise a far target makes δ, and the smooth activation's ε step, large).
_RANGES = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0), "relu": (0.0, None),
           "smooth": (0.0, None), "step": (0.0, 1.0), "stochastic": (0.0, 1.0)}


def _clip_range(act: Activation, t: np.ndarray) -> np.ndarray:
    lo, hi = _RANGES.get(act.name, (None, None))
    return t if lo is None and hi is None else np.clip(t, lo, hi)


@dataclass(frozen=True)
class TPOptions:
    """Options of TP and DTP (the module docstring has the equations)."""

    top: str = param("inverse", choices=TOPS,
                     doc="top target through the output layer's learned inverse (no Wᵀ) or by "
                         "a gradient step through its transpose strategy (charged)")
    # α scales the hidden layers' step relative to the output layer's (top = "transpose" and
    # α = 1 give the last hidden layer BP's update); 8 was tuned on digits with lr = 0.05
    # (tanh, smooth, relu and step units).
    top_lr: float = param(8.0, lo=0, hi=1000,
                          doc="target step α (per sample) at the top; 0 makes every target "
                              "the activity")
    inverse: str = param("learned", choices=INVERSES,
                         doc="form of the inverses: learned, or the exact activation inverse "
                             "in the periphery and a learned linear part")
    # σ of the order of the activities: the inverse is fitted over a wide neighbourhood, and
    # DTP's difference correction removes its offset at the data.
    noise: float = param(1.0, lo=0, hi=1000,
                         doc="std σ of the noise injected into a layer's input to train its "
                             "inverse")
    headroom: float = param(2.0, lo=1, hi=1000,
                            doc="device headroom of the inverses' arrays (as model.headroom)")

    def __post_init__(self) -> None:
        check_fields(self, OPTION_OWNER)


class TP(Rule):
    """Target propagation through learned inverses: :math:`\\hat h_{l-1} = g_l(\\hat h_l)`.

    Parameters
    ----------
    seed : int
        Seeds the inverses' initial weights (and their arrays' devices).
    **options
        Fields of :class:`TPOptions`: ``top``, ``top_lr``, ``inverse`` (``exact`` needs every
        inverted hidden layer's activation to have an exact inverse), ``noise``, ``headroom``.
    """

    name = "tp"
    Options = TPOptions

    def __init__(self, *, seed: int = 0, **options) -> None:
        super().__init__(seed=seed, **options)
        self.inverses: dict[str, object] = {}
        #: Targets of the last step, by layer index (for inspection and tests).
        self.targets: dict[int, np.ndarray] = {}

    @property
    def needs_transpose(self) -> bool:  # type: ignore[override]
        """True when the top target's gradient step goes through a transpose strategy."""
        return self.options.top == "transpose"

    def modules(self) -> dict[str, object]:
        return dict(self.inverses)

    # ------------------------------------------------------------------ build
    def inverted_layers(self, net: Network) -> range:
        """Layers that own an inverse: every hidden layer above the first, and the output
        layer when the top target goes through its inverse."""
        return range(1, len(net) if self.options.top == "inverse" else len(net) - 1)

    def build(self, net: Network) -> None:
        super().build(net)
        if self.options.inverse == "exact":
            for l in range(1, len(net) - 1):
                act = net.layers[l].act
                if not act.has_inverse:
                    raise ValueError(
                        f"inverse = 'exact' needs the exact inverse of {net.layers[l].name}'s "
                        f"activation {act.name!r}, which has none; allowed: inverse = 'learned', "
                        "or hidden activations identity, tanh, sigmoid, smooth")
        self.inverses = {f"g{l}": self._make_inverse(net, l) for l in self.inverted_layers(net)}

    def _make_inverse(self, net: Network, l: int, matrix: np.ndarray | None = None):
        layer, lower = net.layers[l], net.layers[l - 1]
        act = _inverse_activation(lower.act) if self.options.inverse == "learned" else "identity"
        kw = dict(activation=act, bias=True, init="uniform" if matrix is None else matrix,
                  seed=self.stream_seed(f"g{l}"), ledger=self.ledger.child(f"g{l}"), name=f"g{l}")
        if layer.backend == "analog" and net.hw is not None:
            return AnalogLinear(layer.n_out, layer.n_in, hw=net.hw,
                                headroom=self.options.headroom, **kw)
        return DigitalLinear(layer.n_out, layer.n_in, **kw)

    def set_inverse(self, l: int, matrix: np.ndarray, bias: np.ndarray | None = None) -> None:
        """Replace :math:`g_l`'s weights ``V_l`` (shape ``(n_in_l, n_out_l)``) and bias ``c_l``.

        E.g. ``W_l⁻¹`` and ``−W_l⁻¹ b_l`` with ``inverse = "exact"`` give the exact inverse.
        On an analog network the new matrix is programmed onto a fresh array (charged).
        """
        if self.net is None or f"g{l}" not in self.inverses:
            raise ValueError(f"l = {l!r} is invalid; allowed: a layer with an inverse after "
                             f"build(): {sorted(int(k[1:]) for k in self.inverses)}")
        g = self._make_inverse(self.net, l, np.asarray(matrix, dtype=np.float32))
        if bias is not None:
            g.b[...] = np.asarray(bias, dtype=np.float32)
        self.inverses[f"g{l}"] = g

    # ------------------------------------------------------------------ inverses
    def _activity(self, net: Network, l: int, u: np.ndarray, h: np.ndarray) -> np.ndarray:
        """What :math:`g_l` reads for the activity ``(u, h)`` of layer ``l``."""
        return u if (l == len(net) - 1 or self.options.inverse == "exact") else h

    def _target_input(self, net: Network, l: int, target: np.ndarray) -> np.ndarray:
        """What :math:`g_l` reads for a target :math:`\\hat h_l` (the module's :math:`\\hat a`)."""
        if l == len(net) - 1 or self.options.inverse == "learned":
            return target
        return net.cache.u[l] + self._input_shift(net, l, target)

    def _input_shift(self, net: Network, l: int, target: np.ndarray) -> np.ndarray:
        """:math:`\\hat a - a`: how far the target moves :math:`g_l`'s input."""
        c = net.cache
        if l == len(net) - 1:
            return target - c.u[l]
        if self.options.inverse == "learned":
            return target - c.h[l]
        act = net.layers[l].act
        d = act.inverse(_clip_domain(act, target)) - act.inverse(_clip_domain(act, c.h[l]))
        self.ledger.child(f"g{l}").child("periphery").charge(digital_mults=4 * d.size,
                                                             digital_adds=4 * d.size)
        return d.astype(c.u[l].dtype, copy=False)

    def _train_inverse(self, net: Network, l: int, sched: Schedule) -> Update:
        """Noise-injection step of :math:`g_l` (module docstring); op ``inv{l}``."""
        g, layer, x = self.inverses[f"g{l}"], net.layers[l], net.cache.x[l]
        with sched.op(f"inv{l}", (f"fwd{l}",)):
            eta = net.rng.standard_normal(x.shape, dtype=np.float32)
            xt = x + np.float32(self.options.noise) * eta
            u, h = layer.forward(xt, net.rng)
            a = self._activity(net, l, u, h)
            v, r = g.forward(a)
            err = r - xt
            if self.options.inverse == "learned" and g.act.has_deriv:
                err = err * act_deriv(g, v, r, rule=self.name)
            # Power normalisation: inputs with a mean square p > 1 (pre-activations, logits)
            # get the step of unit-RMS inputs, so that lr_aux is stable at any input scale.
            power = max(float(np.mean(np.square(a, dtype=np.float64))), 1.0)
            delta = err / np.float32(x.shape[0] * power)
            g.ledger.child("periphery").charge(digital_mults=3 * x.size + a.size,
                                               digital_adds=2 * x.size + a.size)
        # ``after`` is set once the target chain has run (the update waits for tgt{l-1}).
        return Update(g, a, delta.astype(a.dtype, copy=False), f"inv{l}", aux=True,
                      name=f"g{l}")

    # ------------------------------------------------------------------ targets
    def _step_down(self, net: Network, l: int, target: np.ndarray) -> np.ndarray:
        """:math:`\\hat h_{l-1}` from :math:`\\hat h_l` through :math:`g_l` (TP form)."""
        _, out = self.inverses[f"g{l}"].forward(self._target_input(net, l, target))
        return out

    def propagate(self, net: Network, l_top: int, target: np.ndarray, sched: Schedule
                  ) -> dict[int, np.ndarray]:
        """Targets of layers ``l_top−1 … 0`` from a target for layer ``l_top``'s activity.

        For ``l_top = L`` (the output layer) the target is one for :math:`u_L`. Runs on the
        activities cached by the last forward pass; op ``tgt{l−1}`` follows ``tgt{l}``.
        """
        targets = {l_top: target}
        for l in range(l_top, 0, -1):
            with sched.op(f"tgt{l - 1}", (f"tgt{l}",)):
                t = self._step_down(net, l, targets[l])
                targets[l - 1] = _clip_range(net.layers[l - 1].act, t)
                self.ledger.child("targets").charge(digital_adds=2 * t.size)
        return targets

    def _top_target(self, net: Network, e: np.ndarray, sched: Schedule) -> tuple[int, np.ndarray]:
        """Layer index and target at the top of the chain (module docstring), op ``tgt{·}``."""
        c, n, bsz = net.cache, len(net), e.shape[0]
        step = np.float32(self.options.top_lr * bsz)
        led = self.ledger.child("targets")
        if self.options.top == "transpose":
            with sched.op(f"tgt{n - 2}", ("loss",)):
                grad = net.layers[-1].backward_input(e)
                t = c.h[n - 2] - step * grad.astype(c.h[n - 2].dtype, copy=False)
                t = _clip_range(net.layers[n - 2].act, t)
                led.charge(digital_mults=t.size, digital_adds=3 * t.size)
            return n - 2, t
        with sched.op(f"tgt{n - 1}", ("loss",)):
            t = c.u[-1] - step * e
            led.charge(digital_mults=t.size, digital_adds=t.size)
        return n - 1, t

    # ------------------------------------------------------------------ step
    @staticmethod
    def _ready(sched: Schedule, name: str, after: tuple[str, ...]) -> str:
        """A zero-cost join op, done when all of ``after`` are; returns its name."""
        with sched.op(f"ready:{name}", after):
            pass
        return f"ready:{name}"

    def _hidden_update(self, net: Network, l: int, target: np.ndarray, sched: Schedule
                       ) -> Update:
        """Step layer ``l`` towards its target: δ = (h − ĥ) ⊙ f′ / B (delta rule without f′)."""
        layer, c = net.layers[l], net.cache
        delta = (c.h[l] - target) / np.float32(target.shape[0])
        if layer.act.has_deriv:
            delta = delta * act_deriv(layer, c.u[l], c.h[l], rule=self.name)
        delta = delta.astype(c.u[l].dtype, copy=False)
        self.ledger.child("targets").charge(digital_adds=delta.size, digital_mults=2 * delta.size)
        # The array's last read before its update: the noise-injection read of inv{l}.
        reads = (f"inv{l}",) if l in self.inverted_layers(net) else ()
        after = self._ready(sched, f"W{l}", (f"tgt{l}", *reads))
        return Update(layer, c.x[l], delta, after, eps_grad(layer, delta, c.h[l]), name=f"W{l}")

    def compute(self, net: Network, x: np.ndarray, target: np.ndarray, sched: Schedule
                ) -> tuple[float, list[Update]]:
        if self.net is not net:
            self.build(net)
        z = self.forward(net, x, sched)
        loss, e = self.output_error(net, z, target, sched)
        c, n, top = net.cache, len(net), net.layers[-1]
        if top.act.name != "identity":
            e = e * act_deriv(top, c.u[-1], c.h[-1], rule=self.name)
        self.targets = {}
        if n == 1:
            return loss, [Update(top, c.x[-1], e, "loss", eps_grad(top, e, c.h[-1]),
                                 name="W0")]
        aux = [self._train_inverse(net, l, sched) for l in self.inverted_layers(net)]
        l_top, t_top = self._top_target(net, e, sched)
        self.targets = self.propagate(net, l_top, t_top, sched)
        for up in aux:  # g_l is read by tgt{l-1} and by its own training read
            l = int(up.name[1:])
            up.after = self._ready(sched, up.name, (up.after, f"tgt{l - 1}"))
        # W_L is read by tgt{L-1} (transpose step) or by inv{L} (noise injection).
        reads = (f"tgt{n - 2}",) if self.options.top == "transpose" else (f"inv{n - 1}",)
        after = self._ready(sched, f"W{n - 1}", ("loss", *reads))
        ups = [Update(top, c.x[-1], e, after, eps_grad(top, e, c.h[-1]), name=f"W{n - 1}")]
        ups += [self._hidden_update(net, l, self.targets[l], sched) for l in range(n - 2, -1, -1)]
        return loss, ups + aux


class DTP(TP):
    """Difference target propagation: :math:`\\hat h_{l-1} = h_{l-1} + g_l(\\hat h_l) -
    g_l(h_l)` (options as :class:`TP`; the correction is read as in the module docstring)."""

    name = "dtp"

    @staticmethod
    def _read_rows(g, d: np.ndarray) -> np.ndarray:
        """``V d`` per sample; all-zero rows are known to give 0 and are not read."""
        out = np.zeros((d.shape[0], g.n_out), dtype=d.dtype)
        rows = np.flatnonzero(np.any(d != 0, axis=1))
        if rows.size == d.shape[0]:
            out[...] = g.read(d)
        elif rows.size:
            out[rows] = g.read(np.ascontiguousarray(d[rows]))
        return out

    def _step_down(self, net: Network, l: int, target: np.ndarray) -> np.ndarray:
        c, g = net.cache, self.inverses[f"g{l}"]
        dv = self._read_rows(g, self._input_shift(net, l, target))
        if g.act.name == "identity":  # exact mode: g is affine, the bias cancels
            corr = dv
        else:
            v, gh = g.forward(self._activity(net, l, c.u[l], c.h[l]))
            corr = g.act.forward(v + dv).astype(v.dtype, copy=False) - gh
        t = c.h[l - 1] + corr
        self.ledger.child("targets").charge(digital_adds=3 * t.size)
        return t
