r"""Analog update algorithms: *how* a weight change reaches the conductances.

A rule says *what* to change — :class:`~analogsim.rules.base.Update` records ``(layer, x, δ,
lr)`` asking for ``ΔW = -lr δᵀx`` (network units). An analog optimizer says *how* that change
is written to the layer's crossbar array. The two are orthogonal: every rule runs with every
optimizer (``--optimizer NAME``, ``--set optimizer.<option>=…``).

Each optimizer is a small object with explicit, per-layer state (optax-like):

``init(layer) -> state``
    the state of one analog layer (a dict of arrays; pure, charges nothing);
``apply(layer, x, delta, lr, state, ledger) -> state``
    write one update to ``layer``'s array and return the new state; digital work is charged
    to ``ledger`` (the layer's ``optimizer`` scope), array work by the array itself;
``step(layer, x, delta, lr)``
    what :meth:`AnalogLinear.update <analogsim.layers.linear.AnalogLinear.update>` calls:
    ``init`` on first use (charging the memory it holds), then ``apply``.

State is created lazily, on a layer's first update: fixed feedback arrays (never updated)
hold none; TP/DTP inverses and DNI predictors, which are updated, get theirs.
:meth:`AnalogOptimizer.state_dict` names it by the checkpoint's target names.

Optimizers touch an array only through its public operations — ``mvm``, ``program``,
``pulse_update``, ``pulse_cells`` — never a transposed read (checked by
``tests/hardware/test_array.py``). Equations, costs and sources: docs/rules.md, "Analog
update algorithms".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..fields import check_fields, fail, param, unknown_key
from ..hardware.array import make_array
from ..hardware.ledger import Ledger
from ..seeding import derive_rng, derive_seed

__all__ = ["AGAD", "OPTIMIZERS", "OPTION_OWNER", "AnalogOptimizer", "ChoppedTikiTakaV2",
           "DirectPulse", "MixedPrecision", "TikiTaka", "TikiTakaV2", "get_optimizer",
           "optimizer_options"]

#: Owner of every optimizer option in error messages, as in ``--set optimizer.<option>=…``.
OPTION_OWNER = "optimizer"
#: Bytes of one χ entry (a float32 accumulator).
_CHI_BYTES = 4
#: Largest pulse count per cell and step :meth:`CrossbarArray.pulse_cells` accepts.
_MAX_COUNT = 1 << 24


class AnalogOptimizer:
    """Base class: options, lazily created per-layer state, checkpoint state.

    Parameters
    ----------
    **options
        Fields of the optimizer's :attr:`Options`; an unknown name is a ``ValueError``
        naming the nearest option.
    """

    name = "base"
    #: Ledger scope (under the layer's) of the optimizer's digital work; None: it does none
    #: (no empty scope is created, so the ledger's shape stays what it was without one).
    scope: str | None = "optimizer"

    @dataclass(frozen=True)
    class Options:
        """No options."""

        def __post_init__(self) -> None:
            check_fields(self, OPTION_OWNER)

    def __init__(self, **options) -> None:
        self.options = self.make_options(options)
        # id(layer) -> (layer, state): the layer is kept so the id cannot be reused.
        self._states: dict[int, tuple[object, dict[str, np.ndarray]]] = {}

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls.Options) if f.init]

    @classmethod
    def make_options(cls, options: Mapping[str, object]) -> Options:
        allowed = cls.option_names()
        for key in options:
            if key not in allowed:
                raise unknown_key(f"optimizer {cls.name!r}", key, allowed or ["(no options)"],
                                  what="option")
        return cls.Options(**options)

    # ------------------------------------------------------------------ the algorithm
    def init(self, layer) -> dict[str, np.ndarray]:
        """Fresh state of ``layer`` (no side effects)."""
        return {}

    def apply(self, layer, x: np.ndarray, delta: np.ndarray, lr: float,
              state: dict[str, np.ndarray], ledger: Ledger) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def attach(self, layer, state: dict) -> None:
        """Called once when ``layer``'s state comes into use (first update, or restored from
        a checkpoint): the place for side effects ``init`` must not have."""
        self.check_layer(layer)

    def check_layer(self, layer) -> None:
        """Raise ``ValueError`` if this optimizer cannot drive ``layer`` (called at build
        time by the runner, so a bad combination fails before any training)."""

    def step(self, layer, x: np.ndarray, delta: np.ndarray, lr: float) -> None:
        """Apply ``ΔW = -lr δᵀx`` to analog ``layer`` (inputs already validated, lr > 0)."""
        ledger = layer.ledger.child(self.scope) if self.scope else layer.ledger
        entry = self._states.get(id(layer))
        if entry is None:
            state = self.init(layer)
            self.attach(layer, state)
            held = sum(v.nbytes for v in state.values() if isinstance(v, np.ndarray))
            if held:
                ledger.charge(mem_held_bytes=held)
        else:
            state = entry[1]
        self._states[id(layer)] = (layer, self.apply(layer, x, delta, lr, state, ledger))

    # ------------------------------------------------------------------ checkpoints
    def export(self, state: dict) -> dict[str, np.ndarray]:
        """A layer's state as named arrays (copies) for a checkpoint."""
        return {k: v.copy() for k, v in state.items()}

    def restore(self, layer, arrays: Mapping[str, np.ndarray]) -> dict:
        """The inverse of :meth:`export` (shapes and dtypes already checked)."""
        state = self.init(layer)
        state.update({k: np.array(v, copy=True) for k, v in arrays.items()})
        return state

    def state_dict(self, names: Mapping[int, str]) -> dict[str, np.ndarray]:
        """``{"<target>.<key>": array}`` for every layer with state; ``names`` maps
        ``id(layer)`` to its target name (``net.layer0``, ``rule.g1`` …)."""
        out = {}
        for key, (_, state) in self._states.items():
            out.update({f"{names[key]}.{k}": v for k, v in self.export(state).items()})
        return out

    def load_state_dict(self, state: Mapping[str, np.ndarray],
                        layers: Mapping[str, object]) -> None:
        """Restore :meth:`state_dict` output; ``layers`` maps target names to layers."""
        self._states = {}
        groups: dict[str, dict[str, np.ndarray]] = {}
        for full, value in state.items():
            # State keys may hold dots (``A.gp``); target names are ``net.layerN``/``rule.M``.
            parts = full.split(".")
            target, key = ".".join(parts[:2]), ".".join(parts[2:])
            if target not in layers or not key:
                raise ValueError(f"optimizer state {full!r} names no layer")
            ref = self.template(layers[target], key)
            if ref is None or value.shape != ref.shape or value.dtype != ref.dtype:
                raise ValueError(f"optimizer state {full!r} does not fit the layer")
            groups.setdefault(target, {})[key] = value
        for target, arrays in groups.items():
            layer = layers[target]
            st = self.restore(layer, arrays)
            self.attach(layer, st)
            self._states[id(layer)] = (layer, st)

    def template(self, layer, key: str) -> np.ndarray | None:
        """The array state ``key`` of ``layer`` must look like (None: no such state)."""
        return self.export(self.init(layer)).get(key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options})"


class DirectPulse(AnalogOptimizer):
    r"""``sgd``: the direct pulse update (the default, as before this layer existed).

    ``array.pulse_update(x, δ, lr/s)`` with ``s`` the layer's scale: the array forms
    :math:`ΔW_{dev} = -(lr/s)\,δ^T x` (expected or stochastic mode, ``hw.update``) and pulses
    it. No state, no digital work beyond what the array charges.
    """

    name = "sgd"
    scope = None

    def apply(self, layer, x, delta, lr, state, ledger):
        layer.array.pulse_update(x, delta, lr / float(layer.scale))
        return state


class MixedPrecision(AnalogOptimizer):
    r"""``mixed_precision``: accumulate updates digitally, pulse only whole device steps.

    Per analog layer a float32 matrix χ (weight units) accumulates the requested change;
    cells whose accumulated change reaches the device granularity receive whole pulses:

    .. math::

        χ &← χ - lr\,δ^T x \\
        ε &= Δw_{min}\, s, \qquad n_{ij} = \operatorname{trunc}(χ_{ij}/ε)\
            \text{ if } |χ_{ij}| ≥ θ ε \text{ else } 0, \quad |n_{ij}| ≤ n_{max} \\
        χ &← χ - n ε

    ``n`` goes to :meth:`CrossbarArray.pulse_cells` (each pulse through the device model;
    ``ε`` is the *nominal* step — soft bounds, asymmetry and variability make the real one
    differ, which χ does not see: no read-back). Units: χ, ε in weight (network) units,
    ``Δw_min`` in device units, ``s`` the layer's scale (weight units per device unit).

    Source: Nandakumar et al., "Mixed-precision deep learning based on computational
    memory", Front. Neurosci. 14:406 (2020): 97.73 % test accuracy on MNIST with PCM
    hardware in the loop, within 0.6 % of the software baseline.

    Costs per update of an ``n_out × n_in`` layer and batch ``B`` (``optimizer`` scope):
    ``digital_macs = B n_in n_out`` (the outer product), ``digital_mults = 2 n_in n_out``
    (``lr`` scaling, ``χ/ε``), ``digital_adds = 2 n_in n_out + #pulsed cells`` (accumulate,
    threshold compare, remainder), ``mem_bytes = 2·4 n_in n_out`` (χ read and written);
    once, ``mem_held_bytes = 4 n_in n_out``. The pulses are charged by the array.
    """

    name = "mixed_precision"

    @dataclass(frozen=True)
    class Options:
        threshold: float = param(1.0, lo=1.0, hi=1e6, doc="pulse a cell once |χ| reaches "
                                 "this many device steps ε (1: as soon as one whole pulse "
                                 "is due)")
        max_pulses: int | None = param(None, kind="int", optional=True, lo=1, hi=_MAX_COUNT,
                                       unit="pulses", doc="cap on pulses per cell and "
                                       "update (the rest stays in χ); none: no cap")

        def __post_init__(self) -> None:
            check_fields(self, OPTION_OWNER)

    def init(self, layer):
        return {"chi": np.zeros(layer.shape, dtype=np.float32)}

    def granularity(self, layer) -> np.float32:
        """``ε = Δw_min · s``: the weight change of one nominal pulse (weight units)."""
        return np.float32(layer.hw.device.dw_min) * layer.scale

    def apply(self, layer, x, delta, lr, state, ledger):
        chi = state["chi"]
        chi -= np.float32(lr) * (delta.T @ x)
        eps = self.granularity(layer)
        cap = self.options.max_pulses or _MAX_COUNT
        due = np.abs(chi) >= np.float32(self.options.threshold) * eps
        n = np.where(due, np.trunc(chi / eps), np.float32(0.0))
        np.clip(n, -cap, cap, out=n)
        counts = n.astype(np.int64)
        chi -= n * eps
        layer.array.pulse_cells(counts)
        cells = chi.size
        ledger.charge(digital_macs=x.shape[0] * cells, digital_mults=2 * cells,
                      digital_adds=2 * cells + int(np.count_nonzero(counts)),
                      mem_bytes=2 * _CHI_BYTES * cells)
        return state


class TikiTaka(AnalogOptimizer):
    r"""``tiki_taka``: updates on a fast array A, periodically transferred to the slow C.

    Each analog layer's weight is held on two arrays of the same hardware, read together:

    .. math::

        W = s\,(C + γ A)

    ``C`` is the layer's own array, ``A`` a second one created on the layer's first update
    at ``A = 0`` (both devices at ``G = 0.5``), with its own device variation. Per update

    .. math::

        A &← A - \frac{lr}{s}\, δ^T x                 \quad\text{(pulse update on A)} \\
        \text{every } k \text{ updates:}\quad v &= \mathrm{mvm}_A(e_j)   \quad
            (j \text{ cycling over the inputs}) \\
        C &← C + η_t\, v\, e_j^T                    \quad\text{(pulse update on C)}

    The column ``A e_j`` is read with a one-hot *forward* read (read noise, output noise,
    ADC quantisation, charged as a read), never a transposed one; A is not reset (TTv1:
    with symmetric soft-bound devices A decays to its symmetry point by itself). Every
    forward read of the layer reads both arrays and adds ``γ A x`` digitally
    (:meth:`AnalogLinear.add_read_term <analogsim.layers.linear.AnalogLinear.add_read_term>`).

    Source: Gokmen & Haensch, "Algorithm for training neural networks on resistive device
    arrays", Front. Neurosci. 14:103 (2020).

    Costs: A's pulses and one-hot reads go to the layer's ``optimizer/fast_array`` scope,
    the transfer pulses to the layer's array, the digital sum of the two reads to its
    periphery. The transfer is a one-sample pulse update, so it moves a cell by at most
    ``bl`` pulses (cut and counted as ``pulse_clips`` beyond). Limits: A does not drift
    with ``drift_s`` (only the network's arrays do), and with ``γ > 0`` a layer with a transpose
    strategy refuses (the strategy would see C only). With ``γ = 0`` (the default of ``ttv2``,
    always for ``c_ttv2`` and ``agad``) the weight is C alone and C's transfer pulses reach
    every transpose strategy like any other update, so backprop can use these optimizers.
    """

    name = "tiki_taka"
    #: Name of A's random stream under the layer's seed.
    _seed_tag = "tiki_taka"

    @dataclass(frozen=True)
    class Options:
        gamma: float = param(1.0, lo=0.0, hi=1000.0, doc="γ: weight of the fast array A in "
                             "the layer's weight W = s (C + γ A)")
        transfer_every: int = param(1, lo=1, hi=1_000_000, unit="updates",
                                    doc="k: move one column of A to C every k updates")
        transfer_lr: float = param(0.1, lo=0.0, hi=1000.0, lo_open=True,
                                   doc="η_t: learning rate of the transfer C += η_t A e_j e_jᵀ "
                                       "(device units per device unit read)")

        def __post_init__(self) -> None:
            check_fields(self, OPTION_OWNER)

    def init(self, layer):
        fast = make_array(layer.n_in, layer.n_out, layer.hw, ledger=Ledger("fast_array"),
                          seed=derive_seed(layer.seed, "optimizer", self._seed_tag, "A"))
        return {"A": fast, "count": np.zeros(2, dtype=np.int64)}  # [updates, next column]

    def check_layer(self, layer):
        gamma = getattr(self.options, "gamma", 0.0)  # chopped A is never read forward
        kind = getattr(layer, "transpose_kind", None)
        if kind is not None and gamma > 0:
            # Wᵀδ would see C only while the forward pass reads C + γ A.
            raise ValueError(f"{layer.name}: optimizer {self.name!r} with gamma = {gamma} reads "
                             f"the fast array in the forward pass while transpose = {kind!r} "
                             "emulates Wᵀ of one array only; allowed: gamma = 0 (ttv2, c_ttv2, "
                             "agad), a rule that needs no Wᵀδ, or sgd / mixed_precision")

    def attach(self, layer, state):
        self.check_layer(layer)
        gamma = getattr(self.options, "gamma", 0.0)
        if gamma > 0:
            layer.add_read_term(state["A"], gamma)
        state["A"].ledger = layer.ledger.child(self.scope).child("fast_array")

    def apply(self, layer, x, delta, lr, state, ledger):
        fast, count = state["A"], state["count"]
        fast.pulse_update(x, delta, lr / float(layer.scale))
        count[0] += 1
        if count[0] % self.options.transfer_every == 0:
            j = int(count[1])
            amp = np.float32(layer.hw.dac.input_range)
            probe = np.zeros((1, layer.n_in), dtype=np.float32)
            probe[0, j] = amp
            v = fast.mvm(probe) / amp
            layer.array.pulse_update(probe / amp, -v, self.options.transfer_lr)
            count[1] = (j + 1) % layer.n_in
        return state

    def export(self, state):
        out = {f"A.{k}": v for k, v in state["A"].state_dict().items()}
        out["count"] = state["count"].copy()
        return out

    def restore(self, layer, arrays):
        state = self.init(layer)
        state["A"].load_state_dict({k[2:]: v for k, v in arrays.items() if k.startswith("A.")})
        state["count"] = np.array(arrays["count"], dtype=np.int64)
        return state


def _rng_words(rng: np.random.Generator) -> np.ndarray:
    """A PCG64 generator's state as uint64 words (checkpointable without pickle)."""
    st = rng.bit_generator.state
    s, inc = st["state"]["state"], st["state"]["inc"]
    mask = (1 << 64) - 1
    return np.array([s >> 64, s & mask, inc >> 64, inc & mask, st["has_uint32"],
                     st["uinteger"]], dtype=np.uint64)


def _set_rng_words(rng: np.random.Generator, words: np.ndarray) -> None:
    w = [int(v) for v in words]
    rng.bit_generator.state = {"bit_generator": "PCG64",
                               "state": {"state": (w[0] << 64) | w[1], "inc": (w[2] << 64) | w[3]},
                               "has_uint32": w[4], "uinteger": w[5]}


class TikiTakaV2(TikiTaka):
    r"""``ttv2``: Tiki-Taka v2, the transfer filtered through a digital buffer H.

    As :class:`TikiTaka` (A receives the pulse updates, one column of A is read every ``k``
    updates with a one-hot forward read), but the read is accumulated digitally and only
    whole device steps reach C:

    .. math::

        v &= \mathrm{mvm}_A(e_j) \\
        H_{:,j} &← H_{:,j} + \frac{η_t}{Δw_{min}}\, v \qquad (H \text{ in device steps of C}) \\
        n &= \operatorname{trunc}(H_{:,j}), \qquad H_{:,j} ← H_{:,j} - n \\
        C_{:,j} &← C_{:,j} + n\,Δw_{min} \quad\text{(pulse\_cells: } |n_i| \text{ pulses)}

    H is float32, one per analog layer, the shape of W. The forward weight is
    ``W = s (C + γ A)`` with ``γ = 0`` by default (then A is not read in the forward pass).

    Source: Gokmen, "Enabling training of neural networks on noisy hardware", Front. Artif.
    Intell. 4:699148 (2021).

    Costs per transfer (``optimizer`` scope): ``digital_mults = n_out`` (η_t/Δw_min scaling),
    ``digital_adds = 2 n_out + #pulsed cells`` (accumulate, truncate, remainder),
    ``mem_bytes = 2·4 n_out`` (H's column read and written); once, ``mem_held_bytes =
    4 n_in n_out``; C's pulses are charged by the array (no ``bl`` cut: exact counts).
    """

    name = "ttv2"
    _seed_tag = "ttv2"
    #: Whether the chopper (c_ttv2, agad) is active.
    _chopped = False

    @dataclass(frozen=True)
    class Options:
        gamma: float = param(0.0, lo=0.0, hi=1000.0, doc="γ: weight of the fast array A in "
                             "the layer's weight W = s (C + γ A); 0: A is not read forward")
        transfer_every: int = param(1, lo=1, hi=1_000_000, unit="updates",
                                    doc="k: read one column of A into H every k updates")
        transfer_lr: float = param(0.1, lo=0.0, hi=1000.0, lo_open=True,
                                   doc="η_t: H += η_t A e_j / Δw_min (device steps of C per "
                                       "device unit read)")

        def __post_init__(self) -> None:
            check_fields(self, OPTION_OWNER)

    def init(self, layer):
        state = super().init(layer)
        state["H"] = np.zeros(layer.shape, dtype=np.float32)
        return state

    def apply(self, layer, x, delta, lr, state, ledger):
        fast, count = state["A"], state["count"]
        if self._chopped:  # x → c ⊙ x: the gradient reaches A modulated by the chopper
            x = x * state["c"]
            ledger.charge(digital_mults=x.size)
        fast.pulse_update(x, delta, lr / float(layer.scale))
        count[0] += 1
        if count[0] % self.options.transfer_every == 0:
            j = int(count[1])
            amp = np.float32(layer.hw.dac.input_range)
            probe = np.zeros((1, layer.n_in), dtype=np.float32)
            probe[0, j] = amp
            v = fast.mvm(probe)[0] / amp
            self._accumulate(layer, state, j, self._signal(state, j, v, ledger), ledger)
            count[1] = (j + 1) % layer.n_in
            if self._chopped:
                transfers = int(count[0]) // self.options.transfer_every
                self._chop(state, j, (transfers - 1) // layer.n_in + 1, v, ledger)
        return state

    def _signal(self, state, j: int, v: np.ndarray, ledger: Ledger) -> np.ndarray:
        """What column ``j``'s read ``v`` contributes to H (before the η_t/Δw_min scaling)."""
        if not self._chopped:
            return v
        ledger.charge(digital_mults=v.size)
        return v * state["c"][j]

    def _accumulate(self, layer, state, j, signal, ledger) -> None:
        h = state["H"][:, j]
        h += (np.float32(self.options.transfer_lr) / np.float32(layer.hw.device.dw_min)) * signal
        n = np.clip(np.trunc(h), -_MAX_COUNT, _MAX_COUNT)
        h -= n
        counts = np.zeros(layer.shape, dtype=np.int64)
        counts[:, j] = n.astype(np.int64)
        layer.array.pulse_cells(counts)
        pulsed = int(np.count_nonzero(n))
        ledger.charge(digital_mults=h.size, digital_adds=2 * h.size + pulsed,
                      mem_bytes=2 * _CHI_BYTES * h.size)

    def _chop(self, state, j: int, reads: int, v: np.ndarray, ledger: Ledger) -> bool:
        """After column ``j``'s ``reads``-th read: flip its chopper sign if it is due."""
        return False

    def export(self, state):
        out = super().export(state)
        out.update({k: v.copy() for k, v in state.items()
                    if isinstance(v, np.ndarray) and k != "count"})
        if "rng" in state:
            out["chopper_rng"] = _rng_words(state["rng"])
        return out

    def restore(self, layer, arrays):
        state = super().restore(layer, arrays)
        for key in state:
            if key in arrays and key not in ("A", "count"):
                state[key] = np.array(arrays[key], copy=True)
        if "rng" in state:
            _set_rng_words(state["rng"], arrays["chopper_rng"])
        return state


class ChoppedTikiTakaV2(TikiTakaV2):
    r"""``c_ttv2``: TTv2 with a chopper on A's inputs.

    Each input column ``j`` has a sign :math:`c_j ∈ \{±1\}` (initially +1). The gradient is
    written to A modulated, and demodulated when read:

    .. math::

        A &← A - \frac{lr}{s}\, δ^T (c ⊙ x) \\
        H_{:,j} &← H_{:,j} + \frac{η_t}{Δw_{min}}\, c_j\, \mathrm{mvm}_A(e_j)

    then whole pulses from H to C as in :class:`TikiTakaV2`. Right after column ``j`` is read
    its sign flips: every ``chop_every``-th read of that column (every ``chop_every · n_in ·
    k`` updates), or with probability ``chop_prob`` per read, drawn from the stream
    ``derive_seed(layer seed, "optimizer", "ttv2", "chopper")``. A's drift towards its
    symmetry point (or any offset of A) enters H with alternating sign and cancels on
    average, while the gradient does not. ``chop_every = 0`` and ``chop_prob = 0``: no
    chopper, exactly ``ttv2`` (with ``γ = 0``). There is no ``γ``: A holds the chopped
    gradient, so it is never part of the forward weight (``W = s C``).

    Source: Rasch, Carta, Fagbohungbe & Gokmen, "Fast and robust analog in-memory deep
    neural network training", Nat. Commun. 15:7133 (2024).

    Costs on top of ``ttv2``: ``digital_mults = B n_in`` per update (the sign on x) and
    ``n_out`` per transfer (the sign on the read); ``mem_held_bytes += 4 n_in`` (c).
    """

    name = "c_ttv2"
    _chopped = True

    @dataclass(frozen=True)
    class Options:
        transfer_every: int = param(1, lo=1, hi=1_000_000, unit="updates",
                                    doc="k: read one column of A into H every k updates")
        transfer_lr: float = param(0.1, lo=0.0, hi=1000.0, lo_open=True,
                                   doc="η_t: H += η_t c_j A e_j / Δw_min (device steps of C "
                                       "per device unit read)")
        chop_every: int = param(1, lo=0, hi=1_000_000, unit="reads",
                                doc="flip column j's chopper sign after every this many reads "
                                    "of column j; 0: not periodically")
        chop_prob: float = param(0.0, lo=0.0, hi=1.0, doc="instead: flip column j's sign "
                                 "with this probability after each read of column j (needs "
                                 "chop_every = 0)")

        def __post_init__(self) -> None:
            check_fields(self, OPTION_OWNER)
            if self.chop_prob > 0 and self.chop_every > 0:
                fail(OPTION_OWNER, "chop_prob", self.chop_prob,
                     "0 while chop_every > 0 (set chop_every = 0 to flip at random)")

    def init(self, layer):
        state = super().init(layer)
        state["c"] = np.ones(layer.n_in, dtype=np.float32)
        state["rng"] = derive_rng(layer.seed, "optimizer", self._seed_tag, "chopper")
        return state

    def _chop(self, state, j, reads, v, ledger):
        opt = self.options
        if opt.chop_every:
            flip = reads % opt.chop_every == 0
        else:
            flip = opt.chop_prob > 0 and bool(state["rng"].random() < opt.chop_prob)
        if flip:
            state["c"][j] = -state["c"][j]
        return flip


class AGAD(ChoppedTikiTakaV2):
    r"""``agad``: chopped TTv2 with an on-the-fly reference instead of A's symmetry point.

    As ``c_ttv2``, but what enters H is the read minus a digital reference per column,
    the average of that column's reads during the previous chopper half-period:

    .. math::

        H_{:,j} &← H_{:,j} + \frac{η_t}{Δw_{min}}\, c_j\,(v - R_{:,j}), \qquad
            v = \mathrm{mvm}_A(e_j) \\
        M_{:,j} &← M_{:,j} + (v - M_{:,j}) / m_j \quad (m_j: \text{reads of } j
            \text{ in this half-period}) \\
        \text{at a flip of } c_j:\quad R_{:,j} &← M_{:,j}, \quad m_j ← 0

    With ``chop_every = 1`` the reference is the previous read: H integrates ``c_j`` times
    the change of A's column since then, i.e. the gradient written to it, and A's offset or
    drift cancels without any assumption on where A rests (no reference array, no
    symmetry-point calibration).

    Source: Rasch, Carta, Fagbohungbe & Gokmen, "Fast and robust analog in-memory deep
    neural network training", Nat. Commun. 15:7133 (2024) (AGAD).

    Costs on top of ``c_ttv2``, per transfer: ``digital_adds = 3 n_out`` (difference,
    running mean), ``digital_mults = n_out``, ``mem_bytes = 3·4 n_out`` (R read, M read and
    written; at a flip ``2·4 n_out`` more); ``mem_held_bytes += 8 n_in n_out + 8 n_in``.
    """

    name = "agad"

    def init(self, layer):
        state = super().init(layer)
        state["R"] = np.zeros(layer.shape, dtype=np.float32)
        state["M"] = np.zeros(layer.shape, dtype=np.float32)
        state["m"] = np.zeros(layer.n_in, dtype=np.int64)
        return state

    def _signal(self, state, j, v, ledger):
        ledger.charge(digital_adds=v.size, mem_bytes=_CHI_BYTES * v.size)
        return super()._signal(state, j, v - state["R"][:, j], ledger)

    def _chop(self, state, j, reads, v, ledger):
        mean, m = state["M"][:, j], state["m"]
        m[j] += 1
        mean += (v - mean) / np.float32(m[j])
        ledger.charge(digital_adds=2 * v.size, digital_mults=v.size,
                      mem_bytes=2 * _CHI_BYTES * v.size)
        flip = super()._chop(state, j, reads, v, ledger)
        if flip:
            state["R"][:, j] = mean
            m[j] = 0
            ledger.charge(mem_bytes=2 * _CHI_BYTES * v.size)
        return flip


OPTIMIZERS: dict[str, type[AnalogOptimizer]] = {"sgd": DirectPulse,
                                                "mixed_precision": MixedPrecision,
                                                "tiki_taka": TikiTaka, "ttv2": TikiTakaV2,
                                                "c_ttv2": ChoppedTikiTakaV2, "agad": AGAD}


def _optimizer_class(name: str) -> type[AnalogOptimizer]:
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer = {name!r} is unknown; allowed: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name]


def get_optimizer(name: str = "sgd", **options) -> AnalogOptimizer:
    """Build an analog optimizer by registry name (:data:`OPTIMIZERS`).

    Raises
    ------
    ValueError
        Unknown optimizer; unknown option (the nearest name is suggested); or an invalid
        value (``optimizer.<option> = value is invalid; allowed: …``).
    """
    return _optimizer_class(name)(**options)


def optimizer_options(name: str) -> type:
    """The ``Options`` dataclass of optimizer ``name`` (for validation and docs)."""
    return _optimizer_class(name).Options
