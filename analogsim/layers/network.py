"""The network container: a stack of weight layers plus a loss, caching what rules need.

Describe → build → run: a :class:`ModelConfig` (frozen, validated, TOML-mappable) describes
the network; :func:`build_network` builds it on a :class:`HardwareConfig`; rules run it.

A network is either fully connected, described by ``sizes``, or a list of layer strings on an
input map (``layers`` and ``input_shape``, :mod:`analogsim.layers.layerspec`): convolutions
(:mod:`analogsim.layers.conv`), pooling and fully connected layers. Either way every layer
reads and writes flattened activations ``(B, width)``, so the rules see one interface.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..fields import check_fields, document_fields, fail, param, text_param
from ..hardware.array import BYTES_PER_CELL
from ..hardware.config import HardwareConfig
from ..hardware.ledger import Ledger
from ..kernels import blas_single_thread
from ..resources import check_memory
from ..seeding import derive_rng, derive_seed
from .activations import ACTIVATIONS, SURROGATES, THETA_RULES, get_activation
from .conv import AnalogConv2d, DigitalConv2d
from .layerspec import LAYER_GRAMMAR, LayerPlan, plan_layers
from .linear import INITS, AnalogLinear, DigitalLinear, _Linear
from .losses import LOSSES, get_loss

__all__ = ["ModelConfig", "Network", "Cache", "build_network", "BACKENDS",
           "with_derived_sizes"]

BACKENDS = ("analog", "digital")
#: ``sizes`` when not given; with ``layers`` it stands for "derive them".
_DEFAULT_SIZES = (64, 64, 10)


@document_fields
@dataclass(frozen=True)
class ModelConfig:
    """A feed-forward network: layer sizes, activations, loss and initialisation.

    Every field is declared once with :func:`~analogsim.fields.param` (allowed values, unit,
    one-line doc); the TOML loader, ``--set model.<field>`` and docs/cli.md read the
    declarations. Invalid values raise ``ValueError`` naming field, value and what is allowed.
    """

    name: str = param("custom", doc="preset name (shown in reports and checkpoints)")
    sizes: tuple[int, ...] = param(
        _DEFAULT_SIZES, lo=1, hi=1_000_000, min_len=2,
        doc="layer widths (n_input, hidden..., n_output); the runner refuses data of other "
            "widths. With `layers` they are derived (the flattened width of the input and of "
            "every weight layer's output)")
    hidden: str = param("tanh", choices=ACTIVATIONS, doc="activation of the hidden layers")
    output: str = param("identity", choices=ACTIVATIONS,
                        doc="activation of the output layer (`identity` for `xent`)")
    loss: str = param("xent", choices=LOSSES,
                      doc="`xent` (softmax cross-entropy) or `mse` (squared error)")
    eps0: float = param(0.1, lo=0, hi=1_000_000, lo_open=True, hi_open=True,
                        doc="initial smoothing ε of the `smooth` activation")
    learnable_eps: bool = param(True, doc="whether the `smooth` activation learns its ε")
    theta_rule: str = param("text", choices=THETA_RULES,
                            doc="update of θ = log ε: `text` (the seed text's, step divided "
                                "by ε) or `chain` (gradient descent on θ)")
    surrogate: str | None = param(
        None, choices=SURROGATES, optional=True,
        doc="derivative that rules needing one use for `step`/`stochastic` units (none: "
            "such rules refuse them)")
    init: str = param("uniform", choices=INITS,
                      doc="forward weights: `uniform` (Glorot) or `zero` (the output layer "
                          "is never zeroed)")
    init_scale: float = param(1.0, lo=0, hi=100, lo_open=True,
                              doc="multiplies the Glorot bound of the initial weights")
    backend: str = param("analog", choices=BACKENDS,
                         doc="`analog` (weights on crossbar arrays) or `digital` (float32 "
                             "reference)")
    headroom: float = param(2.0, lo=1, hi=1000,
                            doc="the initial weight bound maps to `w_max / headroom` on the "
                                "device")
    input_shape: tuple[int, ...] | None = param(
        None, kind="ints", lo=1, hi=1_000_000, min_len=3, optional=True,
        doc="[channels, height, width] of the input map; needed with `layers`")
    layers: tuple[str, ...] = param(
        (), kind="strs",
        doc="the network as layer strings on `input_shape` (docs/conv.md), e.g. "
            "[\"conv:6x5x5,padding=2\", \"pool:max2\", \"fc:10\"]; empty: `sizes`",
        allowed=f"a list of layer strings: {LAYER_GRAMMAR}; convs and pools before the first "
                "fc, a weight layer last")
    description: str = text_param("", compare=False,
                                  doc="one line shown by `analogsim presets` (not compared)")

    def __post_init__(self) -> None:
        check_fields(self, "model")
        if not self.layers:
            if self.input_shape is not None:
                fail("model", "input_shape", self.input_shape, "none without layers (a fully "
                     "connected network's input width is sizes[0])")
            return
        widths = tuple(p.n_out for p in self.plan())  # checks input_shape and layers
        derived = (math.prod(self.input_shape), *widths)
        if self.sizes not in (derived, _DEFAULT_SIZES):
            fail("model", "sizes", self.sizes, f"{list(derived)} (what layers gives), or "
                 "sizes left out: with layers they are derived; layers = [] describes the "
                 "network by sizes")
        object.__setattr__(self, "sizes", derived)

    def plan(self) -> list[LayerPlan]:
        """The weight layers of a ``layers`` network (shapes, pools; empty for ``sizes``)."""
        if not self.layers:
            return []
        return plan_layers(self.input_shape, self.layers,
                           lambda name, value, allowed: fail("model", name, value, allowed))

    def replace(self, **changes) -> ModelConfig:
        """A copy with ``changes``; new ``layers`` or ``input_shape`` re-derive ``sizes``."""
        return dataclasses.replace(self, **with_derived_sizes(self, changes))

    def to_dict(self) -> dict:
        """Plain fields (lists for tuples); ``input_shape`` and ``layers`` only when set, so a
        fully connected network's dict (and a stored run's identity) is what it always was."""
        d = dataclasses.asdict(self)
        d["sizes"] = list(self.sizes)
        if self.layers:
            d["layers"], d["input_shape"] = list(self.layers), list(self.input_shape)
        else:
            del d["layers"], d["input_shape"]
        return d


def with_derived_sizes(base: ModelConfig, changes: Mapping[str, object]) -> dict:
    """``changes`` to ``base``, completed for the ``layers`` form.

    New ``layers`` (or ``input_shape``) without ``sizes`` of their own re-derive ``sizes``
    (the old derived ones belong to the old layers); ``layers = []`` on a ``layers`` network
    clears ``input_shape`` and needs ``sizes``.
    """
    changes = dict(changes)
    layers = changes.get("layers", base.layers)
    if layers and "sizes" not in changes and ("layers" in changes or "input_shape" in changes):
        changes["sizes"] = _DEFAULT_SIZES
    if not layers and base.layers:
        if "sizes" not in changes:
            fail("model", "layers", changes["layers"], "layers = [] together with sizes (the "
                 "fully connected description)")
        changes.setdefault("input_shape", None)
    return changes


def hidden_activation(cfg: ModelConfig, n_units: int):
    """A fresh instance of the hidden-layer activation ``cfg`` describes."""
    return _activation(cfg, cfg.hidden, n_units)


def _activation(cfg: ModelConfig, name: str, n_units: int):
    if name == "smooth":
        return get_activation(name, n_units=n_units, eps0=cfg.eps0,
                              learnable=cfg.learnable_eps, theta_rule=cfg.theta_rule)
    if name in ("step", "stochastic"):
        return get_activation(name, n_units=n_units, surrogate=cfg.surrogate)
    return get_activation(name, n_units=n_units)


@dataclass
class Cache:
    """What one forward pass leaves for the rules: per layer its input, ``u`` and ``h``."""

    x: list[np.ndarray] = field(default_factory=list)
    u: list[np.ndarray] = field(default_factory=list)
    h: list[np.ndarray] = field(default_factory=list)


class Network:
    """A stack of weight layers (linear or conv, analog or digital) and a loss.

    ``forward`` runs every layer in order and, when asked, caches inputs, pre-activations and
    outputs in :attr:`cache`. The output layer's ``u`` is the loss input (logits).
    """

    def __init__(self, layers: list[_Linear], loss: str = "xent", *,
                 ledger: Ledger | None = None, config: ModelConfig | None = None,
                 hw: HardwareConfig | None = None, seed: int = 0) -> None:
        if not layers:
            raise ValueError("layers is empty; allowed: at least one layer")
        for a, b in zip(layers, layers[1:], strict=False):
            if a.n_out != b.n_in:
                raise ValueError(f"layer sizes do not chain: {a.name} has n_out = {a.n_out} "
                                 f"but {b.name} has n_in = {b.n_in}")
        self.layers = layers
        self.loss = get_loss(loss)
        self.ledger = ledger if ledger is not None else Ledger("network")
        self.config, self.hw, self.seed = config, hw, seed
        self.cache = Cache()
        self.rng = derive_rng(seed, "network", "sampling")

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        where = f" on {self.hw.name!r}" if self.hw is not None else ""
        name = f"{self.config.name!r}" if self.config is not None else "custom"
        rows = []
        for layer in self.layers:
            extra = getattr(layer, "transpose_kind", None)
            rows.append(f"  {layer.name}: {type(layer).__name__}({layer.n_in} -> {layer.n_out}"
                        f", {layer.act.name}" + (f", Wᵀ by {extra}" if extra else "") + ")")
        return (f"Network({name}{where}, seed={self.seed}, loss={self.loss.name!r}, "
                f"{len(self.layers)} layers:\n" + "\n".join(rows) + ")")

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    @property
    def n_out(self) -> int:
        return self.layers[-1].n_out

    @blas_single_thread()  # digital layers' products: same bits at any BLAS thread count
    def forward(self, x: np.ndarray, *, cache: bool = True, op=None) -> np.ndarray:
        """Run the network on ``x`` (B, n_in) float32; return the output layer's ``u``.

        ``op(name, after)``, if given, is a context-manager factory wrapped around each
        layer's forward (op ``fwd{i}`` after ``fwd{i-1}``): rules use it to time the pass.
        """
        c = Cache()
        h = x
        for i, layer in enumerate(self.layers):
            if op is None:
                u, h_next = layer.forward(h, self.rng)
            else:
                with op(f"fwd{i}", (f"fwd{i - 1}",) if i else ()):
                    u, h_next = layer.forward(h, self.rng)
            c.x.append(h)
            c.u.append(u)
            c.h.append(h_next)
            h = h_next
        if cache:
            self.cache = c
        return c.u[-1]

    def predict(self, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Output layer's ``u`` for ``x`` in batches, without caching (reads are charged).

        ``x``: ``(B, n_in)``, or one sample ``(n_in,)`` (then the result is ``(n_out,)``).
        """
        if isinstance(x, np.ndarray) and x.ndim == 1:
            return self.predict(x[None, :], batch_size)[0]
        outs = [self.forward(x[i:i + batch_size], cache=False)
                for i in range(0, x.shape[0], batch_size)]
        return np.concatenate(outs, axis=0)

    def evaluate(self, x: np.ndarray, y_onehot: np.ndarray, batch_size: int = 512
                 ) -> tuple[float, float]:
        """Return ``(mean loss, accuracy)`` on a labelled set."""
        z = self.predict(x, batch_size)
        loss = self.loss.value(z, y_onehot)
        acc = float(np.mean(np.argmax(z, axis=1) == np.argmax(y_onehot, axis=1)))
        return float(loss), acc

    def state_dict(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i, layer in enumerate(self.layers):
            out.update({f"layer{i}.{k}": v for k, v in layer.state_dict().items()})
        from ..hardware.state import rng_to_array  # the one rng (de)serialiser
        out["net.rng"] = rng_to_array(self.rng)
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for i, layer in enumerate(self.layers):
            p = f"layer{i}."
            layer.load_state_dict({k[len(p):]: v for k, v in state.items() if k.startswith(p)})
        from ..hardware.state import rng_from_array
        rng_from_array(self.rng, np.asarray(state["net.rng"]))


def build_network(cfg: ModelConfig, hw: HardwareConfig, *, seed: int,
                  transpose: str | None = None, refresh: int = 1,
                  zero_hidden_init: bool | None = None, ledger: Ledger | None = None
                  ) -> Network:
    """Build :class:`Network` from a model config on hardware ``hw``.

    ``transpose`` gives every analog layer a transpose strategy (needed by BP-like rules);
    ``zero_hidden_init`` overrides ``cfg.init`` for the hidden layers (DFA's zero init).
    A ``layers`` description builds conv layers (:class:`~analogsim.layers.conv.AnalogConv2d`
    or its digital twin) with the pools before them as their input transform.
    """
    ledger = ledger if ledger is not None else Ledger("network")
    plans = cfg.plan() or [LayerPlan("fc", None, a, b)
                           for a, b in zip(cfg.sizes[:-1], cfg.sizes[1:], strict=True)]
    cells = sum(_cells(p) for p in plans)
    # A transpose strategy may hold a second copy (twin, shadow) of every array.
    copies = 2 if transpose in ("twin", "shadow") else 1
    check_memory(BYTES_PER_CELL * copies * cells, f"network {cfg.name!r} with sizes "
                 f"{list(cfg.sizes)} ({cells} weights)", "smaller model.sizes or layers")
    layers: list[_Linear] = []
    zero = cfg.init == "zero" if zero_hidden_init is None else zero_hidden_init
    for i, plan in enumerate(plans):
        last = i == len(plans) - 1
        act = _activation(cfg, cfg.output if last else cfg.hidden, plan.n_out)
        kw = dict(activation=act, init="zero" if (zero and not last) else "uniform",
                  init_scale=cfg.init_scale, seed=derive_seed(seed, "layer", i),
                  ledger=ledger.child(f"layer{i}"), name=f"layer{i}")
        if cfg.backend == "analog":
            kw.update(hw=hw, transpose=transpose, refresh=refresh, headroom=cfg.headroom)
        layers.append(_build_layer(plan, cfg.backend, kw))
    return Network(layers, cfg.loss, ledger=ledger, config=cfg, hw=hw, seed=seed)


def _cells(plan: LayerPlan) -> int:
    """Weights (array cells) of one planned layer."""
    if plan.kind == "fc":
        return plan.n_in * plan.n_out
    kh, kw = plan.window.kernel
    return plan.c_out * (plan.in_shape[0] // plan.groups) * kh * kw


def _build_layer(plan: LayerPlan, backend: str, kw: dict):
    """One layer of a planned network: linear, or conv (a pooled fc is a covering conv)."""
    if plan.kind == "fc":
        cls = AnalogLinear if backend == "analog" else DigitalLinear
        return cls(plan.n_in, plan.n_out, **kw)
    cls = AnalogConv2d if backend == "analog" else DigitalConv2d
    win = plan.window
    return cls(plan.in_shape, plan.c_out, win.kernel, stride=win.stride, padding=win.padding,
               dilation=win.dilation, groups=plan.groups, pool=plan.pool, **kw)
