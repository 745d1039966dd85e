r"""Convolutional layers on forward-only crossbars (im2col), their digital twin and FA feedback.

A layer maps a batch of flattened input maps ``x`` ``(B, C·H·W)`` (C order) to flattened
output maps ``(B, C_o·H_o·W_o)``, in four steps — the last three as for any conv layer of
aihwkit or CrossSim:

1. **pool** (optional, digital): the input map is max- or average-pooled first
   (:class:`~analogsim.layers.unfold.Pool2d`). Pooling belongs to the *next* weight layer's
   input, so the layer below keeps an elementwise activation and every learning rule sees the
   same ``(u, h)`` interface as for a linear layer.
2. **unfold** (im2col, digital): every window becomes one row of
   :math:`K = (C/g)\,k_h k_w` entries per group (:func:`~analogsim.layers.unfold.unfold`).
3. **read**: the kernel of group ``j`` is a ``(C_o/g) × K`` matrix :math:`W_j` stored on
   forward-only tiles (an :class:`~analogsim.layers.linear.AnalogLinear` without bias, split
   over several tiles when larger than one), and all ``B·P`` windows of a batch
   (``P = H_o W_o`` positions) go through it as **one** batched read
   :math:`Y_j = X_j W_j^\top` — each window is one array read with its own DAC/ADC
   conversions, all charged by the array.
4. **bias and activation** (digital): :math:`u = Y + b` per output channel,
   :math:`h = f(u)` elementwise.

**Backward** (BP): :math:`\partial E/\partial x = \mathrm{pool}^\top(\mathrm{col2im}(
\Delta_j W_j))`, with :math:`\Delta` the ``(B·P, C_o)`` errors per position: the transposed
convolution is ``Wᵀ`` applied to every position, so it goes through the kernel's transpose
strategy (``probe``, ``shadow``, ``twin``, ``bidirectional``) exactly as for a linear layer,
charged to the kernel's ``transpose`` scope. Max-pooling's backward routes each error to the
winner of its window in the layer's *last forward pass* (its switches).

**Update**: :math:`\Delta W_j = -\eta \sum_{b,p} \delta_{bp}^{(j)} \otimes x_{bp}^{(j)}` — the
rank-``B·P`` outer product of the unfolded inputs and the per-position errors, applied as one
pulse update of the kernel array (or through the analog optimizer), so the device model and
the update algorithms act on it unchanged. The bias step is :math:`\Delta b = -\eta
\sum_{b,p}\delta_{bp}`.

Costs (besides the array's own reads, conversions and pulses): the unfold's memory traffic
(``2·B·P·(C·k_h·k_w)`` words per unfold, scope ``unfold``; none for a window covering the
whole map, a plain flatten), the col2im additions and traffic of the backward pass, the
pooling's comparisons/additions and traffic (scope ``pool``), the bias additions
(``periphery``). A layer whose window covers the whole pooled map is a fully connected layer
that pools its input (``P = 1``): that is how a dense layer after a pooled conv is built.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ..hardware.array import check_batch
from ..hardware.config import HardwareConfig
from ..hardware.ledger import Ledger
from ..seeding import check_seed, derive_seed
from .activations import Activation
from .linear import (
    AnalogLinear,
    DigitalLinear,
    _check_digital,
    _check_lr,
    _Linear,
    init_periphery,
    load_periphery_state,
    periphery_state,
)
from .unfold import Pool2d, Window, fold, fold_counts, pair, unfold, unfold_counts

__all__ = ["AnalogConv2d", "DigitalConv2d", "ConvFeedback", "conv_feedback"]

#: A per-group map ``(B·P, n) → (B·P, m)``: a kernel's transposed product, or a feedback read.
Reader = Callable[[np.ndarray], np.ndarray]


def _shape3(name: str, value: object) -> tuple[int, int, int]:
    ok = isinstance(value, (tuple, list)) and len(value) == 3 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in value)
    if not ok:
        raise ValueError(f"{name} = {value!r} is invalid; allowed: three integers >= 1 "
                         "(channels, height, width)")
    return int(value[0]), int(value[1]), int(value[2])


def _positive(name: str, value: object) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} = {value!r} is invalid; allowed: an integer >= 1")
    return int(value)


class _Conv2d:
    r"""Shared geometry, caches, forward, backward and update of the conv layers.

    Parameters
    ----------
    in_shape : (int, int, int)
        ``(C, H, W)`` of the input map, before pooling.
    c_out : int
        Output channels.
    kernel_size, stride, padding, dilation : int or (int, int)
        The sliding window (pixels).
    groups : int
        ``C`` and ``c_out`` are split into ``groups`` groups; group ``j``'s outputs see only
        its inputs, through its own kernel (its own array).
    pool : Pool2d, optional
        Pooling applied to the input map first.
    activation, bias, init, init_scale, seed, ledger, name
        As for :class:`~analogsim.layers.linear.AnalogLinear`. ``init = "uniform"`` draws
        Glorot-uniform kernels with the convolution's fans :math:`\sqrt{6/(K + (C_o/g) k_h
        k_w)}` (PyTorch's convention), or the matrix's for a window covering the whole map.
    """

    backend = "base"

    def __init__(self, in_shape: Sequence[int], c_out: int, kernel_size: object, *,
                 stride: object = 1, padding: object = 0, dilation: object = 1,
                 groups: int = 1, pool: Pool2d | None = None,
                 activation: Activation | str = "identity", bias: bool = True,
                 init: str = "uniform", init_scale: float = 1.0, seed: int,
                 ledger: Ledger | None = None, name: str = "layer", **kernel_kw) -> None:
        self.in_shape = _shape3("in_shape", in_shape)
        self.c_out, self.groups = _positive("c_out", c_out), _positive("groups", groups)
        if pool is not None and not isinstance(pool, Pool2d):
            raise TypeError(f"pool must be a Pool2d or None, got {type(pool).__name__}")
        self.pool, self.name = pool, name
        self.seed = check_seed(seed)
        self.window = Window(pair("kernel_size", kernel_size, 1), pair("stride", stride, 1),
                             pair("padding", padding, 0), pair("dilation", dilation, 1))
        self.map_shape = pool.out_shape(self.in_shape) if pool is not None else self.in_shape
        c_in, h, w = self.map_shape
        if c_in % self.groups or self.c_out % self.groups:
            raise ValueError(f"{name}: groups = {self.groups} is invalid; allowed: a divisor "
                             f"of both the input channels ({c_in}) and c_out ({self.c_out})")
        ho, wo = self.window.out_size(h, w)
        self.out_shape = (self.c_out, ho, wo)
        self.n_positions = ho * wo
        self.n_in, self.n_out = math.prod(self.in_shape), self.c_out * ho * wo
        self.covers = self.window.covers(h, w)
        kh, kw = self.window.kernel
        self.k_in, self.k_out = c_in // self.groups * kh * kw, self.c_out // self.groups
        init_periphery(self, activation, ledger, name, bias, n_act=self.n_out, n_bias=self.c_out)
        # Glorot with the convolution's fans: a kernel entry feeds k_h·k_w outputs per
        # output channel (a covering window is a dense layer: the matrix's fans).
        fan_out = self.k_out * (1 if self.covers else kh * kw)
        scale = float(init_scale) * math.sqrt((self.k_in + self.k_out) / (self.k_in + fan_out))
        self.kernels: list[_Linear] = [
            self._make_kernel(init=init, init_scale=scale, seed=derive_seed(self.seed, "group", j),
                              ledger=self.ledger if self.groups == 1 else
                              self.ledger.child(f"group{j}"),
                              name=name if self.groups == 1 else f"{name}.g{j}", **kernel_kw)
            for j in range(self.groups)]
        # The last forward pass's input, unfolded columns and max-pool switches.
        self._fwd: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None

    def _make_kernel(self, **kw) -> _Linear:
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers
    @property
    def kind(self) -> str:
        """``"conv"``, or ``"fc"`` for a window covering the whole (pooled) map."""
        return "fc" if self.covers else "conv"

    @property
    def linear_read(self) -> bool:
        """Whether :meth:`read` is linear in its input (not with max pooling)."""
        return self.pool is None or self.pool.kind != "max"

    @property
    def kernel_shape(self) -> tuple[int, int, int, int]:
        """``(C_o, C/g, k_h, k_w)``: the weight tensor's shape (PyTorch's layout)."""
        return (self.c_out, self.map_shape[0] // self.groups, *self.window.kernel)

    @property
    def transpose_kind(self) -> str | None:
        return self.kernels[0].transpose_kind

    @property
    def _word(self) -> int:
        return 4

    def _check(self, name: str, x: object, width: int) -> np.ndarray:
        return check_batch(name, x, width)

    def _group(self, a: np.ndarray, j: int, width: int) -> np.ndarray:
        """Group ``j``'s block of columns (the whole array for one group)."""
        return a if self.groups == 1 else np.ascontiguousarray(a[:, j * width:(j + 1) * width])

    def _pooled(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(B, C, H, W)`` map of the window step's input, and max-pool switches."""
        x4 = x.reshape(x.shape[0], *self.in_shape)
        if self.pool is None:
            return x4, None
        self.ledger.child("pool").charge(**self.pool.counts(
            x.shape[0], self.in_shape, backward=False, word=self._word))
        return self.pool.forward(x4)

    def _columns(self, x: np.ndarray, *, keep: bool) -> np.ndarray:
        """Pooled and unfolded ``x``: ``(B·P, C·k_h·k_w)``, charged; reused (unfold charged
        again, as the periphery streams the windows again) when ``x`` is the last forward's."""
        batch = x.shape[0]
        if self._fwd is not None and x is self._fwd[0]:
            cols = self._fwd[1]
        else:
            x4, switches = self._pooled(x)
            cols = unfold(x4, self.window)
            if keep:
                self._fwd = (x, cols, switches)
        self.ledger.child("unfold").charge(**unfold_counts(
            batch, self.n_positions, cols.shape[1], self.covers, self._word))
        return cols

    def _to_map(self, y: np.ndarray, batch: int) -> np.ndarray:
        """``(B·P, C_o)`` position-major → ``(B, C_o·P)`` flattened maps (C order)."""
        if self.n_positions == 1:
            return y
        return y.reshape(batch, self.n_positions, self.c_out).transpose(0, 2, 1).reshape(
            batch, self.n_out)

    def _to_positions(self, d: np.ndarray) -> np.ndarray:
        """``(B, C_o·P)`` → ``(B·P, C_o)``: the inverse of :meth:`_to_map`."""
        if self.n_positions == 1:
            return d
        batch = d.shape[0]
        return np.ascontiguousarray(d.reshape(batch, self.c_out, self.n_positions).transpose(
            0, 2, 1)).reshape(batch * self.n_positions, self.c_out)

    # ------------------------------------------------------------------ forward
    def read(self, x: np.ndarray) -> np.ndarray:
        """The layer's linear part, :math:`\\mathrm{conv}(\\mathrm{pool}(x))` ``(B, n_out)``
        (no bias): pool, unfold, one batched read of every group's kernel."""
        x = self._check("x", x, self.n_in)
        cols = self._columns(x, keep=True)
        ys = [k.read(self._group(cols, j, self.k_in)) for j, k in enumerate(self.kernels)]
        y = ys[0] if self.groups == 1 else np.concatenate(ys, axis=1)
        return self._to_map(y, x.shape[0])

    def forward(self, x: np.ndarray, rng: np.random.Generator | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(u, h)``: ``u = conv(pool(x)) + b`` and ``h = f(u)``, both ``(B, n_out)``."""
        u = self.read(x)
        if self.has_bias:
            u3 = u.reshape(u.shape[0], self.c_out, self.n_positions)
            u3 += self.b.astype(u.dtype, copy=False)[:, None]
            self.ledger.child("periphery").charge(digital_adds=u.size)
        h = self.act.forward(u, rng)
        return u, h.astype(u.dtype, copy=False)

    # ------------------------------------------------------------------ backward
    def transposed(self, delta: np.ndarray, readers: Sequence[Reader]) -> np.ndarray:
        """:math:`\\mathrm{pool}^\\top(\\mathrm{col2im}(\\Delta_j \\mapsto R_j(\\Delta_j)))`:
        the transposed convolution with each group's map ``R_j`` (``(B·P, C_o/g) → (B·P,
        K)``) in place of ``W_jᵀ`` — the kernel's transpose strategy for BP, a fixed random
        kernel for FA. Max pooling routes through the last forward pass's switches."""
        delta = self._check("delta", delta, self.n_out)
        batch = delta.shape[0]
        switches = None
        if self.pool is not None and self.pool.kind == "max":
            if self._fwd is None or self._fwd[0].shape[0] != batch:
                raise ValueError(f"{self.name}: the backward pass through max pooling needs "
                                 f"the switches of a forward pass of the same batch (size "
                                 f"{batch}); allowed: call forward first")
            switches = self._fwd[2]
        dpos = self._to_positions(delta)
        gs = [r(self._group(dpos, j, self.k_out)) for j, r in enumerate(readers)]
        g = gs[0] if self.groups == 1 else np.concatenate(gs, axis=1)
        c, h, w = self.map_shape
        self.ledger.child("unfold").charge(**fold_counts(
            batch, self.n_positions, g.shape[1], c * h * w, self.covers, self._word))
        gx = fold(g, self.window, (batch, c, h, w))
        if self.pool is not None:
            self.ledger.child("pool").charge(**self.pool.counts(
                batch, self.in_shape, backward=True, word=self._word))
            gx = self.pool.backward(gx, switches, (batch, *self.in_shape))
        return np.ascontiguousarray(gx).reshape(batch, self.n_in)

    def backward_input(self, delta: np.ndarray) -> np.ndarray:
        """``∂E/∂x`` ``(B, n_in)`` for ``δ = ∂E/∂u`` ``(B, n_out)``: the transposed
        convolution, every ``W_jᵀ`` through the kernel's transpose strategy (see
        :meth:`transposed`); raises TransposeRequiredError without one."""
        return self.transposed(delta, [k.backward_input for k in self.kernels])

    # ------------------------------------------------------------------ update
    def update(self, x: np.ndarray, delta: np.ndarray, lr: float, *,
               optimizer: object | None = None) -> None:
        """Apply :math:`W_j \\leftarrow W_j - \\eta \\sum_{b,p} \\delta_{bp} \\otimes x_{bp}`
        (one rank-``B·P`` pulse update per group, through ``optimizer`` if given) and
        :math:`b \\leftarrow b - \\eta \\sum_{b,p} \\delta_{bp}`; ``δ = ∂E/∂u`` ``(B, n_out)``."""
        lr = _check_lr(lr)
        x = check_batch("x", x, self.n_in)
        delta = check_batch("delta", delta, self.n_out)
        if x.shape[0] != delta.shape[0]:
            raise ValueError(f"delta.shape[0] = {delta.shape[0]} differs from x.shape[0] = "
                             f"{x.shape[0]}; allowed: the same batch size")
        if lr == 0.0:
            return
        cols = self._columns(x, keep=False)
        dpos = self._to_positions(delta)
        for j, k in enumerate(self.kernels):
            k.update(self._group(cols, j, self.k_in), self._group(dpos, j, self.k_out), lr,
                     optimizer=optimizer)
        if self.has_bias:
            self.b -= np.float32(lr) * dpos.sum(axis=0)
            self.ledger.child("periphery").charge(digital_adds=delta.size + self.c_out,
                                                  digital_mults=self.c_out)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, np.ndarray]:
        out = periphery_state(self)
        for j, k in enumerate(self.kernels):
            out.update({f"g{j}.{key}": v for key, v in k.state_dict().items()})
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        load_periphery_state(self, state)
        for j, k in enumerate(self.kernels):
            p = f"g{j}."
            k.load_state_dict({key[len(p):]: v for key, v in state.items()
                               if key.startswith(p)})
        self._fwd = None


class AnalogConv2d(_Conv2d):
    """A convolution whose kernels live on forward-only crossbar tiles (see the module doc).

    Parameters
    ----------
    in_shape, c_out, kernel_size, stride, padding, dilation, groups, pool
        Geometry, as for :class:`_Conv2d`.
    hw : HardwareConfig
        The hardware the kernels live on (``(C_o/g) × K`` arrays, tiled by ``hw.tile``).
    transpose : {"probe", "shadow", "twin", "bidirectional"} or None
        How each kernel's ``Wᵀ`` is obtained for :meth:`backward_input`; None: it cannot be.
    refresh, headroom
        As for :class:`~analogsim.layers.linear.AnalogLinear`.
    activation, bias, init, init_scale, seed, ledger, name
        As for :class:`_Conv2d`.
    """

    backend = "analog"

    def __init__(self, in_shape: Sequence[int], c_out: int, kernel_size: object, *,
                 hw: HardwareConfig, transpose: str | None = None, refresh: int = 1,
                 headroom: float = 2.0, **kw) -> None:
        super().__init__(in_shape, c_out, kernel_size, hw=hw, transpose=transpose,
                         refresh=refresh, headroom=headroom, **kw)
        self.hw = hw

    def _make_kernel(self, **kw) -> _Linear:
        return AnalogLinear(self.k_in, self.k_out, activation="identity", bias=False, **kw)

    @property
    def _word(self) -> int:
        return self.hw.periphery.digital_bits // 8


class DigitalConv2d(_Conv2d):
    """The float reference of :class:`AnalogConv2d`: the same unfold, pooling and charges,
    kernels as :class:`~analogsim.layers.linear.DigitalLinear` (``w`` float32, or float64 for
    numerical checks, as are the inputs then)."""

    backend = "digital"

    def _make_kernel(self, **kw) -> _Linear:
        return DigitalLinear(self.k_in, self.k_out, activation="identity", bias=False, **kw)

    def _check(self, name: str, x: object, width: int) -> np.ndarray:
        return _check_digital(name, x, width)

    @property
    def weight(self) -> np.ndarray:
        """The kernels as one ``(C_o, C/g, k_h, k_w)`` tensor (a copy)."""
        return np.concatenate([k.w for k in self.kernels], axis=0).reshape(self.kernel_shape)

    @property
    def transpose_kind(self) -> str:
        return "digital"


class ConvFeedback:
    """FA's fixed feedback for a conv layer: a fixed random kernel ``B_j`` ``(K × C_o/g)`` per
    group in place of ``W_jᵀ`` in the transposed convolution (:meth:`_Conv2d.transposed`),
    on its own forward-only array (read forward: ``B_j δ``) or in digital memory.

    Presents what FA needs of a feedback matrix: :meth:`read` ``(B, n_out_l) → (B, n_in_l)``
    and checkpoint state.
    """

    def __init__(self, layer: _Conv2d, kernels: Sequence[_Linear], name: str) -> None:
        self.layer, self.kernels, self.name = layer, list(kernels), name
        self.n_in, self.n_out = layer.n_out, layer.n_in
        self.backend = kernels[0].backend

    def read(self, delta: np.ndarray) -> np.ndarray:
        return self.layer.transposed(delta, [k.read for k in self.kernels])

    def state_dict(self) -> dict[str, np.ndarray]:
        out = {}
        for j, k in enumerate(self.kernels):
            out.update({f"g{j}.{key}": v for key, v in k.state_dict().items()})
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for j, k in enumerate(self.kernels):
            p = f"g{j}."
            k.load_state_dict({key[len(p):]: v for key, v in state.items()
                               if key.startswith(p)})


def conv_feedback(layer: _Conv2d, *, hw: HardwareConfig | None, seed: int, scale: float,
                  name: str, ledger: Ledger, kernel: np.ndarray | None = None
                  ) -> ConvFeedback:
    """Fixed transposed-convolution feedback for ``layer`` (FA): analog if ``hw`` is given.

    ``kernel`` (``layer.kernel_shape``, PyTorch's ``(C_o, C/g, k_h, k_w)`` layout) replaces
    the random one: the forward kernels make FA equal BP. Random entries are uniform in
    ``±scale·√(6/(K + C_o/g))`` (the matrix's Glorot bound).
    """
    if kernel is not None and (np.shape(kernel) != layer.kernel_shape
                               or not np.all(np.isfinite(kernel))):
        raise ValueError(f"{name}: kernel has shape {np.shape(kernel)}; allowed: a finite "
                         f"array of shape {layer.kernel_shape} (C_out, C_in/groups, k_h, k_w)")
    parts = []
    for j in range(layer.groups):
        kw = dict(activation="identity", bias=False, seed=derive_seed(seed, "group", j),
                  ledger=ledger if layer.groups == 1 else ledger.child(f"group{j}"),
                  name=name if layer.groups == 1 else f"{name}.g{j}", init_scale=scale)
        if kernel is not None:
            w = np.asarray(kernel, dtype=np.float32)[j * layer.k_out:(j + 1) * layer.k_out]
            kw["init"] = np.ascontiguousarray(w.reshape(layer.k_out, layer.k_in).T)
        if hw is not None:
            parts.append(AnalogLinear(layer.k_out, layer.k_in, hw=hw, headroom=1.0, **kw))
        else:
            parts.append(DigitalLinear(layer.k_out, layer.k_in, **kw))
    return ConvFeedback(layer, parts, name)
