r"""Error-propagating rules: BP (through a transpose strategy), FA, DFA, IFA and DRTP.

Notation: layer ``l`` computes :math:`u_l = W_l x_l + b_l`, :math:`h_l = f(u_l)`, the output
error is :math:`e = \partial E/\partial u_L`; every rule produces per-layer errors
:math:`\delta_l` and the update :math:`\Delta W_l = -\eta\,\delta_l^\top x_l`.

* **BP**: :math:`\delta_{l-1} = (W_l^\top \delta_l) \odot f'(u_{l-1})` — ``Wᵀδ`` only through the
  layer's transpose strategy (``probe``, ``shadow``, ``twin``, ``bidirectional``).
* **FA** (Lillicrap et al. 2016): :math:`\delta_{l-1} = (B_l \delta_l) \odot f'(u_{l-1})`
  with a fixed random :math:`B_l` of the shape of :math:`W_l^\top`.
* **DFA** (Nøkland 2016): :math:`\delta_l = (B_l e) \odot f'(u_l)` for every hidden layer,
  all in parallel.
* **IFA** (Nøkland 2016): :math:`\delta_0 = (B_0 e) \odot f'(u_0)`, then *forward* through the
  forward weights, :math:`\delta_l = (W_l \delta_{l-1}) \odot f'(u_l)` — a forward read of the
  array. Above the first layer a unit without a derivative passes the error unchanged
  (:math:`f' \to 1`), so step or stochastic units there do not block learning.
* **DRTP** (Frenkel et al. 2021): :math:`\delta_l = (B_l (-t)) \odot f'(u_l)` — the one-hot
  target stands in for the (sign of the) output error; no output error reaches hidden layers.

Feedback matrices :math:`B` are fixed layers: on their own forward-only arrays (programmed
once, read forward; ``feedback = "analog"``) or in digital memory (``"digital"``). Their
entries are Glorot-uniform times ``feedback_scale``.

**Conv layers** (:mod:`analogsim.layers.conv`) present flattened maps, so every rule runs on
them unchanged; ``δ_l`` is the error of the flattened output map. BP's ``Wᵀδ`` is the
transposed convolution through the kernels' transpose strategies. FA replaces each kernel
``W_j`` of the transposed convolution by a fixed random kernel ``B_j`` of the same shape
(:class:`~analogsim.layers.conv.ConvFeedback`; max pooling routes through the forward
pass's switches). DFA and DRTP project to the flattened output map through a dense fixed
matrix, as for any layer. IFA reads the error forward through the layers above the first,
so it refuses a layer that max-pools its input (not linear in the error).
``conv_layers = "bp"`` (FA, DFA, DRTP) is Crafton et al. (2019)'s hybrid: the conv layers
learn from the exact gradient — BP from the output through every layer above them, each
``Wᵀ`` through its transpose strategy (ops ``bp{l}``) — while the fully connected hidden
layers keep the rule's own signal.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..fields import Spec, check_fields, fail, param
from ..layers.conv import conv_feedback
from ..layers.linear import AnalogLinear, DigitalLinear, init_bound
from ..layers.network import Network
from ..seeding import derive_rng
from .base import OPTION_OWNER, Rule, Schedule, Update, act_deriv, eps_grad

__all__ = ["BP", "FA", "DFA", "IFA", "DRTP", "fixed_layer", "FeedbackOptions", "BPOptions",
           "DFAOptions", "FAOptions", "CONV_LAYERS"]

FEEDBACK = ("analog", "digital")
#: How the conv layers of a network learn under FA, DFA and DRTP (module notes).
CONV_LAYERS = ("same", "bp")
_CONV_DOC = ("how conv layers learn: `same` (this rule's signal) or `bp` (the exact gradient "
             "through the transpose strategies, fully connected layers keep this rule: "
             "Crafton et al. 2019's hybrid)")


def _is_conv(layer) -> bool:
    """A convolution (not a fully connected layer, pooled or not)."""
    return getattr(layer, "kind", "fc") == "conv"


def fixed_layer(net: Network, n_in: int, n_out: int, *, where: str, seed: int, scale: float,
                name: str, ledger, matrix: np.ndarray | None = None):
    """A fixed linear map ``n_in → n_out`` (no bias) on an array or in digital memory."""
    if where not in FEEDBACK:
        raise ValueError(f"feedback = {where!r} is invalid; allowed: {', '.join(FEEDBACK)}")
    if matrix is None:
        rng = derive_rng(seed, "matrix")
        b = init_bound(n_in, n_out, scale)
        matrix = rng.uniform(-b, b, (n_out, n_in)).astype(np.float32)
    kw = dict(activation="identity", bias=False, init=matrix, seed=seed, ledger=ledger,
              name=name)
    if where == "analog" and net.hw is not None:
        return AnalogLinear(n_in, n_out, hw=net.hw, headroom=1.0, **kw)
    return DigitalLinear(n_in, n_out, **kw)


@dataclass(frozen=True)
class FeedbackOptions:
    """Options of the rules with fixed random feedback matrices (FA, DFA, IFA, DRTP, DNI)."""

    feedback: str = param("analog", choices=FEEDBACK,
                          doc="where the fixed feedback matrices live: on their own "
                              "forward-only arrays (analog) or in digital memory")
    feedback_scale: float = param(1.0, lo=0, hi=1000, lo_open=True,
                                  doc="multiplies the Glorot bound of the feedback matrices' "
                                      "entries (sets the hidden layers' effective step)")

    def __post_init__(self) -> None:
        check_fields(self, OPTION_OWNER)


@dataclass(frozen=True)
class BPOptions(FeedbackOptions):
    """BP's options: FA's, accepted since BP shares their code, but unused — BP has no
    feedback matrices (``Wᵀδ`` goes through the transpose strategy) and trains every layer
    by BP anyway."""

    feedback: str = param("analog", choices=FEEDBACK,
                          doc="unused by bp (no feedback matrices); accepted as for fa")
    feedback_scale: float = param(1.0, lo=0, hi=1000, lo_open=True,
                                  doc="unused by bp (no feedback matrices); accepted as for fa")
    conv_layers: str = param("same", choices=CONV_LAYERS,
                             doc="unused by bp (every layer learns by BP); accepted as for fa, "
                                 "so one sweep key can set it for every rule")


@dataclass(frozen=True)
class _AutoOrBool(Spec):
    """A field holding ``"auto"`` or a bool (:mod:`analogsim.fields` has no kind for the mix)."""

    def check(self, owner: str, name: str, value: Any) -> Any:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if not (isinstance(value, str) and value == "auto"):
            fail(owner, name, value, self.allowed())
        return value


@dataclass(frozen=True)
class DFAOptions(FeedbackOptions):
    """DFA's options: the feedback rules', ``zero_init`` (see :class:`DFA`) and
    ``conv_layers`` (module notes)."""

    zero_init: bool | str = dataclasses.field(default="auto", metadata={"spec": _AutoOrBool(
        doc="start the hidden forward weights at zero: 'auto' only where the hidden "
            "activation's slope at 0 is non-zero (not ReLU), and never with conv_layers = "
            "'bp'",
        kind="str", allowed_text="'auto', true or false")})
    conv_layers: str = param("same", choices=CONV_LAYERS, doc=_CONV_DOC)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.zero_init is True and self.conv_layers == "bp":
            # Zero conv kernels see a zero gradient through zero fully connected weights,
            # and the fully connected layers see zero inputs: nothing ever moves.
            raise ValueError("rule.zero_init = True is invalid with rule.conv_layers = 'bp': "
                             "the BP-trained conv layers would start at zero and get no "
                             "gradient through the zero weights above them; allowed: "
                             "zero_init = 'auto' or False with conv_layers = 'bp'")


@dataclass(frozen=True)
class FAOptions(FeedbackOptions):
    """FA's and DRTP's options: the feedback rules' and ``conv_layers`` (module notes)."""

    conv_layers: str = param("same", choices=CONV_LAYERS, doc=_CONV_DOC)


class _ErrorRule(Rule):
    """Common: output error, the top layer's update, the scheduling names."""

    Options = FeedbackOptions

    def __init__(self, *, seed: int = 0, **options) -> None:
        super().__init__(seed=seed, **options)
        self.feedback: dict[str, object] = {}

    def modules(self):
        return dict(self.feedback)

    def _fixed(self, net: Network, n_in: int, n_out: int, key: str, matrix=None):
        return fixed_layer(net, n_in, n_out, where=self.options.feedback,
                           seed=self.stream_seed(key),
                           scale=self.options.feedback_scale, name=key,
                           ledger=self.ledger.child(key), matrix=matrix)

    def _top(self, net: Network, x, target, sched) -> tuple[float, np.ndarray, list[Update]]:
        z = self.forward(net, x, sched)
        loss, e = self.output_error(net, z, target, sched)
        c, top = net.cache, net.layers[-1]
        if top.act.name != "identity":
            e = e * act_deriv(top, c.u[-1], c.h[-1], rule=self.name)
        up = Update(top, c.x[-1], e, "loss", eps_grad(top, e, c.h[-1]), name=f"W{len(net) - 1}")
        return loss, e, [up]

    def _hidden(self, net: Network, l: int, signal: np.ndarray, after: str,
                deriv: bool = True) -> Update:
        layer, c = net.layers[l], net.cache
        if deriv or layer.act.has_deriv:
            delta = signal * act_deriv(layer, c.u[l], c.h[l], rule=self.name)
        else:
            delta = signal
        return Update(layer, c.x[l], delta, after, eps_grad(layer, delta, c.h[l]), name=f"W{l}")

    # ------------------------------------------------------------------ conv_layers = "bp"
    @property
    def needs_transpose(self) -> bool:  # type: ignore[override]
        """True with ``conv_layers = "bp"``: the conv layers' gradient needs ``Wᵀ`` above them."""
        return getattr(self.options, "conv_layers", "same") == "bp"

    def _bp_layers(self, net: Network) -> frozenset[int]:
        """Hidden layers that learn by BP: the conv layers with ``conv_layers = "bp"``."""
        if getattr(self.options, "conv_layers", "same") != "bp":
            return frozenset()
        return frozenset(l for l in range(len(net) - 1) if _is_conv(net.layers[l]))

    def _conv_bp(self, net: Network, e: np.ndarray, sched: Schedule) -> list[Update]:
        """Updates of the BP-trained conv layers: the exact gradient chain from the output
        error ``e`` down to the lowest of them, each ``Wᵀ`` through the transpose strategy
        (ops ``bp{l}``); the fully connected layers' BP errors only pass through."""
        bp = self._bp_layers(net)
        ups, delta, after = [], e, "loss"
        for l in range(len(net) - 1, min(bp, default=len(net)), -1):
            with sched.op(f"bp{l - 1}", (after,)):
                up = self._hidden(net, l - 1, net.layers[l].backward_input(delta), f"bp{l - 1}")
            delta, after = up.delta, f"bp{l - 1}"
            if l - 1 in bp:
                ups.append(up)
        return ups


class BP(_ErrorRule):
    """Backpropagation; each ``Wᵀδ`` goes through the layer's transpose strategy (charged)."""

    name = "bp"
    needs_transpose = True
    Options = BPOptions

    def compute(self, net, x, target, sched: Schedule):
        loss, delta, ups = self._top(net, x, target, sched)
        after = "loss"
        for l in range(len(net) - 1, 0, -1):
            with sched.op(f"bwd{l - 1}", (after,)):
                g = net.layers[l].backward_input(delta)
                ups.append(self._hidden(net, l - 1, g, f"bwd{l - 1}"))
            delta, after = ups[-1].delta, f"bwd{l - 1}"
        return loss, ups


class FA(_ErrorRule):
    """Feedback alignment: a fixed random ``B_l`` replaces ``W_lᵀ`` at every layer (for a
    conv layer, fixed random kernels in the transposed convolution)."""

    name = "fa"
    Options = FAOptions

    def build(self, net):
        super().build(net)
        bp = self._bp_layers(net)
        self.feedback = {f"B{l}": self._feedback(net, l) for l in range(1, len(net))
                         if l - 1 not in bp}

    def _feedback(self, net, l: int, matrix: np.ndarray | None = None):
        layer = net.layers[l]
        if not hasattr(layer, "transposed"):
            return self._fixed(net, layer.n_out, layer.n_in, f"B{l}", matrix=matrix)
        hw = net.hw if self.options.feedback == "analog" else None
        return conv_feedback(layer, hw=hw, seed=self.stream_seed(f"B{l}"),
                             scale=self.options.feedback_scale, name=f"B{l}",
                             ledger=self.ledger.child(f"B{l}"), kernel=matrix)

    def set_feedback(self, l: int, matrix: np.ndarray) -> None:
        """Replace ``B_l``: shape ``(n_in_l, n_out_l)`` (e.g. ``W_lᵀ``), or for a conv layer a
        kernel of its ``kernel_shape`` ``(C_o, C/g, k_h, k_w)`` (e.g. its own kernel) — either
        way the forward weights recover BP."""
        self.feedback[f"B{l}"] = self._feedback(self.net, l,
                                                np.asarray(matrix, dtype=np.float32))

    def compute(self, net, x, target, sched):
        loss, delta, ups = self._top(net, x, target, sched)
        bp, after = self._bp_layers(net), "loss"
        for l in range(len(net) - 1, 0, -1):
            if l - 1 in bp:
                break  # below: the conv layers, trained by BP
            with sched.op(f"bwd{l - 1}", (after,)):
                g = self.feedback[f"B{l}"].read(delta)
                ups.append(self._hidden(net, l - 1, g, f"bwd{l - 1}"))
            delta, after = ups[-1].delta, f"bwd{l - 1}"
        return loss, ups + self._conv_bp(net, ups[0].delta, sched)


class DFA(_ErrorRule):
    """Direct feedback alignment: ``δ_l = (B_l e) ⊙ f'(u_l)`` for all hidden layers at once.

    ``zero_init`` asks the runner to start the hidden forward weights at zero, as Nøkland
    did with tanh; the feedback alone then breaks the symmetry. ``"auto"`` (default) does so
    only when the hidden activation's slope at 0 is non-zero: with ReLU (``f'(0) = 0``) a
    zero start leaves every hidden δ at 0 forever. ``True``/``False`` force it.
    """

    name = "dfa"
    Options = DFAOptions

    @property
    def zero_init(self) -> bool | str:
        """The ``zero_init`` option (read by the runner before it builds the network);
        ``"auto"`` is False with ``conv_layers = "bp"`` (Crafton's hybrid starts from the
        usual random weights: zero conv kernels would never get a BP gradient through the
        zero fully connected weights above them, nor those an input)."""
        if self.options.zero_init == "auto" and self.options.conv_layers == "bp":
            return False
        return self.options.zero_init

    def build(self, net):
        super().build(net)
        bp = self._bp_layers(net)
        self.feedback = {f"B{l}": self._fixed(net, net.n_out, net.layers[l].n_out, f"B{l}")
                         for l in range(len(net) - 1) if l not in bp}

    def compute(self, net, x, target, sched):
        loss, e, ups = self._top(net, x, target, sched)
        for l in range(len(net) - 1):
            if f"B{l}" not in self.feedback:
                continue  # a conv layer trained by BP
            with sched.op(f"fb{l}", ("loss",)):
                ups.append(self._hidden(net, l, self.feedback[f"B{l}"].read(e), f"fb{l}"))
        return loss, ups + self._conv_bp(net, e, sched)


class IFA(_ErrorRule):
    """Indirect feedback alignment: error to the first hidden layer, then forward through W."""

    name = "ifa"

    def build(self, net):
        for layer in net.layers[1:-1]:
            if not getattr(layer, "linear_read", True):
                raise ValueError(
                    f"rule 'ifa' carries the error forward through {layer.name}'s forward "
                    f"read, but {layer.name} max-pools its input, which is not linear in the "
                    "error; allowed: average pooling there (pool:avg…), or another rule (bp, "
                    "fa, dfa, drtp)")
        super().build(net)
        self.feedback = {"B0": self._fixed(net, net.n_out, net.layers[0].n_out, "B0")}

    def compute(self, net, x, target, sched):
        loss, e, ups = self._top(net, x, target, sched)
        after = "fb0"
        with sched.op("fb0", ("loss",)):
            ups.append(self._hidden(net, 0, self.feedback["B0"].read(e), "fb0"))
        for l in range(1, len(net) - 1):
            with sched.op(f"ifa{l}", (after,)):
                # A forward read of layer l's own array carries the error upwards.
                sig = net.layers[l].read(ups[-1].delta)
                ups.append(self._hidden(net, l, sig, f"ifa{l}", deriv=False))
            after = f"ifa{l}"
        return loss, ups


class DRTP(_ErrorRule):
    """Direct random target projection: ``δ_l = (B_l (−t)) ⊙ f'(u_l)``; no error feedback."""

    name = "drtp"
    Options = FAOptions

    def build(self, net):
        super().build(net)
        bp = self._bp_layers(net)
        self.feedback = {f"B{l}": self._fixed(net, net.n_out, net.layers[l].n_out, f"B{l}")
                         for l in range(len(net) - 1) if l not in bp}

    def compute(self, net, x, target, sched):
        t = -np.asarray(target, dtype=np.float32) / np.float32(x.shape[0])
        ups = []
        # Hidden updates need only the label: they can start before the forward pass ends.
        loss, e, top = self._top(net, x, target, sched)
        for l in range(len(net) - 1):
            if f"B{l}" not in self.feedback:
                continue  # a conv layer trained by BP
            with sched.op(f"fb{l}", (f"fwd{l}",)):
                ups.append(self._hidden(net, l, self.feedback[f"B{l}"].read(t), f"fb{l}"))
        return loss, top + ups + self._conv_bp(net, e, sched)
