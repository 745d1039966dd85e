"""The network container: a stack of linear layers plus a loss, caching what rules need.

Describe → build → run: a :class:`ModelConfig` (frozen, validated, TOML-mappable) describes
the network; :func:`build_network` builds it on a :class:`HardwareConfig`; rules run it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..fields import check_fields, document_fields, param, text_param
from ..hardware.array import BYTES_PER_CELL
from ..hardware.config import HardwareConfig
from ..hardware.ledger import Ledger
from ..kernels import blas_single_thread
from ..resources import check_memory
from ..seeding import derive_rng, derive_seed
from .activations import ACTIVATIONS, SURROGATES, THETA_RULES, get_activation
from .linear import INITS, AnalogLinear, DigitalLinear, _Linear
from .losses import LOSSES, get_loss

__all__ = ["ModelConfig", "Network", "Cache", "build_network", "BACKENDS"]

BACKENDS = ("analog", "digital")


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
        (64, 64, 10), lo=1, hi=1_000_000, min_len=2,
        doc="layer widths (n_input, hidden..., n_output); the runner refuses data of other "
            "widths")
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
    description: str = text_param("", compare=False,
                                  doc="one line shown by `analogsim presets` (not compared)")

    def __post_init__(self) -> None:
        check_fields(self, "model")

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["sizes"] = list(self.sizes)
        return d


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
    """A stack of linear layers (analog or digital) and a loss.

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
        """Output layer's ``u`` for ``x`` in batches, without caching (reads are charged)."""
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
        from ..hardware.array import _rng_to_array  # the one rng (de)serialiser
        out["net.rng"] = _rng_to_array(self.rng)
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for i, layer in enumerate(self.layers):
            p = f"layer{i}."
            layer.load_state_dict({k[len(p):]: v for k, v in state.items() if k.startswith(p)})
        from ..hardware.array import _rng_from_array
        _rng_from_array(self.rng, np.asarray(state["net.rng"]))


def build_network(cfg: ModelConfig, hw: HardwareConfig, *, seed: int,
                  transpose: str | None = None, refresh: int = 1,
                  zero_hidden_init: bool | None = None, ledger: Ledger | None = None
                  ) -> Network:
    """Build :class:`Network` from a model config on hardware ``hw``.

    ``transpose`` gives every analog layer a transpose strategy (needed by BP-like rules);
    ``zero_hidden_init`` overrides ``cfg.init`` for the hidden layers (DFA's zero init).
    """
    ledger = ledger if ledger is not None else Ledger("network")
    cells = sum(a * b for a, b in zip(cfg.sizes[:-1], cfg.sizes[1:], strict=True))
    # A transpose strategy may hold a second copy (twin, shadow) of every array.
    copies = 2 if transpose in ("twin", "shadow") else 1
    check_memory(BYTES_PER_CELL * copies * cells, f"network {cfg.name!r} with sizes "
                 f"{list(cfg.sizes)} ({cells} weights)", "smaller model.sizes")
    layers: list[_Linear] = []
    n = len(cfg.sizes) - 1
    zero = cfg.init == "zero" if zero_hidden_init is None else zero_hidden_init
    for i in range(n):
        last = i == n - 1
        act = _activation(cfg, cfg.output if last else cfg.hidden, cfg.sizes[i + 1])
        kw = dict(activation=act, init="zero" if (zero and not last) else "uniform",
                  init_scale=cfg.init_scale, seed=derive_seed(seed, "layer", i),
                  ledger=ledger.child(f"layer{i}"), name=f"layer{i}")
        if cfg.backend == "analog":
            layers.append(AnalogLinear(cfg.sizes[i], cfg.sizes[i + 1], hw=hw,
                                       transpose=transpose, refresh=refresh,
                                       headroom=cfg.headroom, **kw))
        else:
            layers.append(DigitalLinear(cfg.sizes[i], cfg.sizes[i + 1], **kw))
    return Network(layers, cfg.loss, ledger=ledger, config=cfg, hw=hw, seed=seed)
