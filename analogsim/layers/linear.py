r"""Linear layers: weights on forward-only crossbar tiles (analog) or in float32 (digital).

Both compute :math:`u = W x + b`, :math:`h = f(u)` for a batch ``x`` of shape ``(B, n_in)``.

Analog layers keep ``W = s·W_dev``: the device weights ``W_dev`` live on a
:class:`~analogsim.hardware.array.CrossbarArray` (tiled as the hardware config says) and the
digital periphery multiplies each output by the fixed scale ``s`` and adds the bias ``b``.
``s`` is chosen once, at construction, so that the initial weight bound maps to
``w_max / headroom`` — room for the weights to grow. A weight step ``ΔW = -η δᵀx`` is
therefore the device step ``ΔW_dev = -(η/s) δᵀx``, delivered as pulses.

What a layer offers the learning rules — and nothing else:

* :meth:`forward` / :meth:`read` (forward array reads),
* :meth:`update` (pulses on the array; digital bias step),
* :meth:`backward_input` (``Wᵀδ``), **only** through the transpose strategy the layer was
  built with; without one it raises :class:`TransposeRequiredError`.
"""

from __future__ import annotations

import math

import numpy as np

from ..hardware.array import check_batch, make_array
from ..hardware.config import HardwareConfig
from ..hardware.ledger import Ledger
from ..hardware.transpose import STRATEGIES, make_transpose
from ..seeding import check_seed, derive_rng, derive_seed
from .activations import Activation, get_activation

__all__ = ["TransposeRequiredError", "AnalogLinear", "DigitalLinear", "INITS", "init_bound"]

INITS = ("uniform", "zero")


class TransposeRequiredError(RuntimeError):
    """A rule asked a forward-only layer for ``Wᵀδ`` but the layer has no transpose strategy."""


def init_bound(n_in: int, n_out: int, scale: float = 1.0) -> float:
    """Glorot-uniform bound ``scale·√(6/(n_in+n_out))`` (dimensionless weights)."""
    return float(scale) * math.sqrt(6.0 / (n_in + n_out))


def _check_digital(name: str, x: object, width: int) -> np.ndarray:
    """Digital layers are a float reference: float32, or float64 for numerical checks."""
    if isinstance(x, np.ndarray) and x.dtype == np.float64:
        check_batch(name, x.astype(np.float32), width)
        return x
    return check_batch(name, x, width)


def _check_lr(lr: float) -> float:
    if not isinstance(lr, (int, float, np.floating)) or isinstance(lr, bool) \
            or not math.isfinite(lr) or lr < 0:
        raise ValueError(f"lr = {lr!r} is invalid; allowed: a finite number >= 0")
    return float(lr)


class _Linear:
    """Shared parts: sizes, bias, activation, ledger scopes, initial weights."""

    backend = "base"

    def __init__(self, n_in: int, n_out: int, *, activation: Activation | str = "identity",
                 bias: bool = True, init: str | np.ndarray = "uniform", init_scale: float = 1.0,
                 seed: int, ledger: Ledger | None = None, name: str = "layer") -> None:
        for pname, v in (("n_in", n_in), ("n_out", n_out)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{pname} = {v!r} is invalid; allowed: an integer >= 1")
        self.n_in, self.n_out, self.name = int(n_in), int(n_out), name
        self.seed = check_seed(seed)
        init_periphery(self, activation, ledger, name, bias, n_act=self.n_out, n_bias=self.n_out)
        self.bound = init_bound(self.n_in, self.n_out, init_scale)
        self._w0 = self._initial_weights(init, derive_rng(self.seed, "init"))

    def _initial_weights(self, init: str | np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if isinstance(init, np.ndarray):
            if init.shape != (self.n_out, self.n_in) or not np.all(np.isfinite(init)):
                raise ValueError(f"init has shape {init.shape}; allowed: a finite array of "
                                 f"shape {(self.n_out, self.n_in)}")
            # A given matrix (e.g. a feedback matrix) sets the range the device must hold.
            self.bound = max(self.bound, float(np.max(np.abs(init), initial=0.0)))
            return init.astype(np.float32)
        if init == "uniform":
            return rng.uniform(-self.bound, self.bound, (self.n_out, self.n_in)).astype(
                np.float32)
        if init == "zero":
            return np.zeros((self.n_out, self.n_in), dtype=np.float32)
        raise ValueError(f"init = {init!r} is invalid; allowed: {', '.join(INITS)} or an array")

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_out, self.n_in)

    # ------------------------------------------------------------------ forward
    def forward(self, x: np.ndarray, rng: np.random.Generator | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(u, h)`` with ``u = W x + b`` (B, n_out) and ``h = f(u)``."""
        u = self.read(x)
        if self.has_bias:
            u += self.b
            self._periphery.charge(digital_adds=u.size)
        h = self.act.forward(u, rng)
        return u, h.astype(u.dtype, copy=False)

    @property
    def _periphery(self) -> Ledger:
        return self.ledger.child("periphery")

    def read(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # ------------------------------------------------------------------ update
    def update(self, x: np.ndarray, delta: np.ndarray, lr: float, *,
               optimizer: object | None = None) -> None:
        """Apply ``W ← W - lr·δᵀx`` and ``b ← b - lr·Σ_batch δ`` (δ = ∂E/∂u, shape (B, n_out)).

        ``optimizer``: an analog update algorithm (:mod:`analogsim.rules.optimizers`) that
        decides how an analog layer's weight change reaches its conductances, called as
        ``optimizer.step(layer, x, delta, lr)``; None is the direct pulse update. Digital
        layers ignore it (their float32 step is exact already). The bias is always digital.
        """
        lr = _check_lr(lr)
        x = check_batch("x", x, self.n_in)
        delta = check_batch("delta", delta, self.n_out)
        if x.shape[0] != delta.shape[0]:
            raise ValueError(f"delta.shape[0] = {delta.shape[0]} differs from x.shape[0] = "
                             f"{x.shape[0]}; allowed: the same batch size")
        if lr == 0.0:
            return
        self._update_weights(x, delta, lr, optimizer)
        if self.has_bias:
            self.b -= np.float32(lr) * delta.sum(axis=0)
            self._periphery.charge(digital_adds=delta.size + self.n_out,
                                   digital_mults=self.n_out)

    def _update_weights(self, x: np.ndarray, delta: np.ndarray, lr: float,
                        optimizer: object | None = None) -> None:
        raise NotImplementedError

    def backward_input(self, delta: np.ndarray) -> np.ndarray:
        """Return ``Wᵀ δ`` (B, n_in) for ``δ`` of shape (B, n_out)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, np.ndarray]:
        return periphery_state(self)

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        load_periphery_state(self, state)


def init_periphery(layer, activation, ledger: Ledger | None, name: str, bias: bool, *,
                   n_act: int, n_bias: int) -> None:
    """Set a layer's digital periphery: ``act`` (an :class:`Activation` or its name, for
    ``n_act`` units), ``ledger`` (a new one named ``name`` if None), ``has_bias`` and a zero
    float32 bias ``b`` of ``n_bias`` entries."""
    if isinstance(activation, str):
        activation = get_activation(activation, n_units=n_act)
    if not isinstance(activation, Activation):
        raise TypeError(f"activation must be an Activation or a name, got {activation!r}")
    layer.act = activation
    layer.ledger = ledger if ledger is not None else Ledger(name)
    layer.has_bias = bool(bias)
    layer.b = np.zeros(n_bias, dtype=np.float32)


def periphery_state(layer) -> dict[str, np.ndarray]:
    """The digital periphery's state of a layer: bias ``b`` and the activation's (``act.*``)."""
    out = {"b": layer.b.copy()}
    out.update({f"act.{k}": v for k, v in layer.act.state_dict().items()})
    return out


def load_periphery_state(layer, state: dict[str, np.ndarray]) -> None:
    """Restore :func:`periphery_state` (the bias shape is checked, named in the error)."""
    b = np.asarray(state["b"])
    if b.shape != layer.b.shape:
        raise ValueError(f"{layer.name}: bias shape {b.shape} is invalid; allowed: "
                         f"{layer.b.shape}")
    layer.b[...] = b
    layer.act.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("act.")})


class DigitalLinear(_Linear):
    """A float32 linear layer computed in the digital periphery (a reference; all MACs charged).

    ``Wᵀδ`` is available digitally (charged as MACs to the layer's ``backward`` scope).
    """

    backend = "digital"

    def __init__(self, n_in: int, n_out: int, **kw) -> None:
        super().__init__(n_in, n_out, **kw)
        self.w = self._w0
        self.ledger.charge(mem_held_bytes=self.w.nbytes)

    def read(self, x: np.ndarray) -> np.ndarray:
        x = _check_digital("x", x, self.n_in)
        n = x.shape[0] * self.n_in * self.n_out
        self.ledger.child("forward").charge(digital_macs=n, mem_bytes=self.w.nbytes)
        return x @ self.w.T

    def _update_weights(self, x, delta, lr, optimizer=None):
        self.w -= np.float32(lr) * (delta.T @ x)
        self.ledger.child("update").charge(digital_macs=x.shape[0] * self.w.size,
                                           digital_adds=self.w.size, mem_bytes=2 * self.w.nbytes)

    def backward_input(self, delta: np.ndarray) -> np.ndarray:
        delta = _check_digital("delta", delta, self.n_out)
        self.ledger.child("backward").charge(digital_macs=delta.shape[0] * self.w.size,
                                             mem_bytes=self.w.nbytes)
        return delta @ self.w

    @property
    def transpose_kind(self) -> str:
        return "digital"

    def state_dict(self):
        return {"w": self.w.copy(), **super().state_dict()}

    def load_state_dict(self, state):
        w = np.asarray(state["w"])
        if w.shape != self.shape:
            raise ValueError(f"{self.name}: w shape {w.shape} is invalid; allowed: {self.shape}")
        self.w[...] = w
        super().load_state_dict({k: v for k, v in state.items() if k != "w"})


class AnalogLinear(_Linear):
    """A linear layer whose weights live on forward-only crossbar tiles.

    Parameters
    ----------
    n_in, n_out : int
        Layer sizes (the array is ``n_out × n_in``, tiled by ``hw.tile``).
    hw : HardwareConfig
        The hardware the weights live on.
    activation : Activation or str
        Applied digitally to ``u``.
    transpose : {"probe", "shadow", "twin", "bidirectional"} or None
        How ``Wᵀδ`` is obtained; None (default) means it cannot be (rules that never need it).
    refresh : int
        Probe refresh period (pulse updates between readouts).
    headroom : float
        Initial weight bound is mapped to ``w_max / headroom`` (> 1 leaves room to grow).
    seed : int
        Seeds the initial weights and the array's devices.
    """

    backend = "analog"

    def __init__(self, n_in: int, n_out: int, *, hw: HardwareConfig, transpose: str | None = None,
                 refresh: int = 1, headroom: float = 2.0, **kw) -> None:
        super().__init__(n_in, n_out, **kw)
        if not isinstance(hw, HardwareConfig):
            raise TypeError(f"hw must be a HardwareConfig, got {type(hw).__name__}")
        if not isinstance(headroom, (int, float)) or not 1.0 <= headroom <= 1e3:
            raise ValueError(f"headroom = {headroom!r} is invalid; allowed: a number in [1, 1000]")
        if transpose is not None and transpose not in STRATEGIES:
            raise ValueError(f"transpose = {transpose!r} is unknown; allowed: None, "
                             + ", ".join(STRATEGIES))
        self.hw = hw
        self.scale = np.float32(headroom * self.bound / hw.device.w_max)
        self.array = make_array(self.n_in, self.n_out, hw, seed=derive_seed(self.seed, "array"),
                                ledger=self.ledger.child("array"))
        self.transpose = None
        if transpose is not None:
            # Built before programming, so that shadow and twin see the initial program.
            self.transpose = make_transpose(transpose, self.array,
                                            seed=derive_seed(self.seed, "transpose"),
                                            refresh=refresh,
                                            ledger=self.ledger.child("transpose"))
        self.array.program(self._w0 / self.scale)
        del self._w0
        # Further arrays whose reads are added to this one's (tiki-taka's fast array).
        self._read_terms: list[tuple[object, np.float32]] = []
        #: Per-output digital factor on top of ``scale`` (None: one scale for the layer),
        #: ``W = scale · diag(col_scale) · W_dev``; set by :meth:`reprogram`.
        self.col_scale: np.ndarray | None = None
        self._remapped = False

    def reprogram(self, w_dev: np.ndarray, scale: float,
                  col_scale: np.ndarray | None = None) -> None:
        """Program device weights ``w_dev`` and set the digital mapping to weights.

        Afterwards the layer computes with ``W = scale · diag(col_scale) · W_dev`` (weight
        units), where ``W_dev`` is what programming (its noise, levels and stuck cells)
        made of ``w_dev``. Reads, updates (``ΔW_dev = -(lr/scale) (δ/col_scale)ᵀ x``) and
        ``Wᵀδ`` all follow the new mapping; the bias is untouched.

        Parameters
        ----------
        w_dev : ndarray (n_out, n_in)
            Target device weights, ``|w_dev| <= hw.device.w_max`` (device units).
        scale : float
            Weight units per device unit (> 0, finite).
        col_scale : ndarray (n_out,), optional
            Per-output factors (> 0, finite); None: one scale for the layer.
        """
        if not (isinstance(scale, (int, float, np.floating)) and math.isfinite(scale)
                and scale > 0):
            raise ValueError(f"scale = {scale!r} is invalid; allowed: a finite number > 0")
        if col_scale is not None:
            col_scale = np.asarray(col_scale, dtype=np.float32)
            if col_scale.shape != (self.n_out,) or not np.all(np.isfinite(col_scale)) \
                    or not np.all(col_scale > 0):
                raise ValueError(f"col_scale has shape {col_scale.shape}; allowed: finite "
                                 f"values > 0 of shape ({self.n_out},)")
        self.array.program(w_dev)
        self.scale = np.float32(scale)
        self.col_scale = col_scale
        self._remapped = True

    @property
    def transpose_kind(self) -> str | None:
        return None if self.transpose is None else self.transpose.kind

    def add_read_term(self, array, gain: float) -> None:
        """Hold part of the weight on another forward-only ``array`` of the same shape:
        from now on every read returns ``s (W_dev x + Σ_k γ_k A_k x)``, each array read
        through its own DAC/ADC path (charged to its own ledger) and the results combined
        digitally (one multiply and one add per output and term). Used by analog update
        algorithms that split a weight over several arrays (tiki-taka's ``W = γA + C``);
        a transpose strategy would see only ``W_dev``, so a layer with one refuses."""
        if self.transpose is not None:
            raise ValueError(f"{self.name}: its weight cannot be split over several arrays "
                             f"while transpose = {self.transpose.kind!r} emulates Wᵀ of one "
                             "array only; allowed: a rule that needs no Wᵀδ, or an optimizer "
                             "that keeps the weight on one array (sgd, mixed_precision)")
        if getattr(array, "shape", None) != self.shape:
            raise ValueError(f"{self.name}: a read term must have shape {self.shape}")
        self._read_terms.append((array, np.float32(gain)))

    def read(self, x: np.ndarray) -> np.ndarray:
        y = self.array.mvm(x)
        for arr, gain in self._read_terms:
            y += gain * arr.mvm(x)
            self._periphery.charge(digital_mults=y.size, digital_adds=y.size)
        y *= self.scale
        self._periphery.charge(digital_mults=y.size)
        if self.col_scale is not None:
            y *= self.col_scale
            self._periphery.charge(digital_mults=y.size)
        return y

    def _update_weights(self, x, delta, lr, optimizer=None):
        if self.col_scale is not None:  # per-output mapping: the device sees δ / col_scale
            delta = delta / self.col_scale
            self._periphery.charge(digital_mults=delta.size)
        if optimizer is not None:
            optimizer.step(self, x, delta, lr)
            return
        self.array.pulse_update(x, delta, lr / float(self.scale))

    def backward_input(self, delta: np.ndarray) -> np.ndarray:
        if self.transpose is None:
            raise TransposeRequiredError(
                f"{self.name}: this rule needs Wᵀδ but the layer's array is forward-only and "
                "has no transpose strategy; allowed: build the layer with transpose = one of "
                + ", ".join(STRATEGIES) + " (bidirectional only if the hardware supports it)")
        if self.col_scale is not None:  # Wᵀδ = scale · W_devᵀ (col_scale ⊙ δ)
            delta = delta * self.col_scale
            self._periphery.charge(digital_mults=delta.size)
        g = self.transpose.matvec_t(delta)
        g *= self.scale
        self._periphery.charge(digital_mults=g.size)
        return g

    def state_dict(self):
        out = {f"array.{k}": v for k, v in self.array.state_dict().items()}
        if self.transpose is not None:
            out.update({f"transpose.{k}": v for k, v in self.transpose.state_dict().items()})
        if self._remapped:  # only after reprogram: other checkpoints keep their arrays
            out["scale"] = np.array(self.scale, dtype=np.float32)
            out["col_scale"] = (self.col_scale.copy() if self.col_scale is not None
                                else np.zeros(0, dtype=np.float32))
        return {**out, **super().state_dict()}

    def load_state_dict(self, state):
        self.array.load_state_dict({k[6:]: v for k, v in state.items()
                                    if k.startswith("array.")})
        if self.transpose is not None:
            self.transpose.load_state_dict({k[10:]: v for k, v in state.items()
                                            if k.startswith("transpose.")})
        if "scale" in state:  # saved after reprogram
            cols = np.asarray(state["col_scale"], dtype=np.float32)
            self.scale = np.float32(state["scale"])
            self.col_scale = cols.copy() if cols.size else None
            self._remapped = True
        super().load_state_dict({k: v for k, v in state.items()
                                 if not k.startswith(("array.", "transpose."))
                                 and k not in ("scale", "col_scale")})
