"""Transpose emulation: the only way to obtain ``Wᵀ·δ`` from a forward-only array.

A crossbar computes ``W·x``. Backprop (and the gradient step at the top of DTP, and DNI's
true-gradient training) needs ``Wᵀ·δ``. Each strategy here gets it a different physical way and
charges its own :class:`~analogsim.hardware.ledger.Ledger` scope (named ``"transpose"``) for
exactly what it does:

``probe``
    Read the array out column by column: ``n_in`` forward reads with one-hot inputs of full-scale
    amplitude ``a`` through the normal DAC → array → ADC path, so the readout ``R ≈ Wᵀ`` carries
    read noise, output noise and ADC quantisation. ``Wᵀδ = δ R`` is then computed digitally
    (``B·n_in·n_out`` MACs). The readout is held in digital memory and reused until the array
    has received ``refresh`` pulse updates (stale in between; ``refresh = 1`` re-reads after
    every update).
``shadow``
    A digital float32 copy of the *intended* weights: set on every ``program``, and mirrored on
    every ``pulse_update`` by the exact ``-lr·dᵀx`` (``B·n_in·n_out`` MACs per update). It never
    sees programming noise, pulse stochasticity, bounds, drift or stuck cells — it silently
    diverges from the conductances, which :func:`analogsim.oracle.shadow_divergence` measures.
``twin``
    A second forward-only array of shape ``(n_in, n_out)`` storing ``Wᵀ``: programmed with ``wᵀ``
    whenever the primary is programmed, receiving every update as its own pulses (``ΔWᵀ = -lr
    xᵀd``), drifting with the primary's clock. Its own device-to-device variation makes
    the two copies disagree. Twice the cells and pulses, all charged.
``bidirectional``
    A transposed read at forward cost (drive columns, sense rows) — the assumption most
    simulators make silently. Allowed only if ``hw.periphery.bidirectional`` is true.
"""

from __future__ import annotations

import numpy as np

from .array import BidirectionalArray, CrossbarArray, check_batch, make_array
from .ledger import Ledger

__all__ = ["STRATEGIES", "TransposeStrategy", "Probe", "Shadow", "Twin", "Bidirectional",
           "make_transpose"]


class TransposeStrategy:
    """Base class: ``matvec_t(δ) ≈ Wᵀ δ`` for a batch ``δ`` of shape (B, n_out) → (B, n_in)."""

    kind = "base"

    def __init__(self, array: CrossbarArray, *, ledger: Ledger | None = None) -> None:
        if not isinstance(array, CrossbarArray):
            raise TypeError(f"array must be a CrossbarArray, got {type(array).__name__}")
        self.array = array
        self.ledger = ledger if ledger is not None else Ledger("transpose")

    def matvec_t(self, d: np.ndarray, *, ledger: Ledger | None = None) -> np.ndarray:
        d = check_batch("d", d, self.array.n_out)
        return self._matvec_t(d, ledger or self.ledger)

    def _matvec_t(self, d: np.ndarray, ledger: Ledger) -> np.ndarray:
        raise NotImplementedError

    # Listener hooks (the array calls them); strategies that do not care ignore them.
    def on_program(self, w: np.ndarray) -> None:
        pass

    def on_update(self, x: np.ndarray, d: np.ndarray, lr: float) -> None:
        pass

    def on_clock(self, seconds: float) -> None:
        pass

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.array.n_out}x{self.array.n_in})"


def _digital_bytes(array: CrossbarArray) -> int:
    return array.n_out * array.n_in * array.hw.periphery.digital_bits // 8


class Probe(TransposeStrategy):
    """Column-by-column readout through the forward path, reused for ``refresh`` updates.

    Parameters
    ----------
    array : CrossbarArray
        The array to read out.
    refresh : int
        Number of pulse updates of ``array`` after which the readout is stale and redone
        (``1``: before every use that follows an update).
    chunk : int
        Probe vectors per read call (only bounds host memory; the charge is per probe).

    Notes
    -----
    Charges per refresh: ``n_in`` MVMs of one vector (their DAC/ADC/cell-read counts come
    from the array's read path), ``n_in·n_out·bits/8`` bytes written to digital memory;
    per use: ``B·n_in·n_out`` digital MACs and the same bytes read.
    """

    kind = "probe"

    def __init__(self, array: CrossbarArray, *, refresh: int = 1, chunk: int = 256,
                 ledger: Ledger | None = None) -> None:
        super().__init__(array, ledger=ledger)
        if not isinstance(refresh, (int, np.integer)) or isinstance(refresh, bool) or refresh < 1:
            raise ValueError(f"refresh = {refresh!r} is invalid; allowed: an integer >= 1")
        self.refresh, self.chunk = int(refresh), int(chunk)
        self._readout: np.ndarray | None = None
        self._updates_since = 0
        self.n_refreshes = 0
        array.subscribe(self)

    def on_program(self, w: np.ndarray) -> None:
        self._readout = None

    def on_update(self, x: np.ndarray, d: np.ndarray, lr: float) -> None:
        self._updates_since += 1

    def on_clock(self, seconds: float) -> None:
        # Drift changes the conductances, but the periphery cannot know; staleness is by count.
        pass

    def _read_out(self, ledger: Ledger) -> np.ndarray:
        arr = self.array
        amp = float(arr.hw.dac.input_range)
        out = np.empty((arr.n_in, arr.n_out), dtype=np.float32)
        for j0 in range(0, arr.n_in, self.chunk):
            j1 = min(j0 + self.chunk, arr.n_in)
            probes = np.zeros((j1 - j0, arr.n_in), dtype=np.float32)
            probes[np.arange(j1 - j0), np.arange(j0, j1)] = amp
            out[j0:j1] = arr.mvm(probes, ledger=ledger)
        out /= np.float32(amp)
        ledger.charge(mem_bytes=_digital_bytes(arr), digital_mults=arr.n_in * arr.n_out)
        self.n_refreshes += 1
        self._updates_since = 0
        return out

    def _matvec_t(self, d: np.ndarray, ledger: Ledger) -> np.ndarray:
        if self._readout is None:
            ledger.charge(mem_held_bytes=_digital_bytes(self.array))
        if self._readout is None or self._updates_since >= self.refresh:
            self._readout = self._read_out(ledger)
        arr = self.array
        ledger.charge(digital_macs=d.shape[0] * arr.n_in * arr.n_out,
                      mem_bytes=_digital_bytes(arr))
        return d @ self._readout.T

    def state_dict(self) -> dict[str, np.ndarray]:
        out = {"counters": np.array([self._updates_since, self.n_refreshes], dtype=np.int64)}
        if self._readout is not None:
            out["readout"] = self._readout.copy()
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        c = np.asarray(state["counters"])
        self._updates_since, self.n_refreshes = int(c[0]), int(c[1])
        self._readout = np.array(state["readout"], dtype=np.float32) if "readout" in state \
            else None


class Shadow(TransposeStrategy):
    """A digital copy of the intended weights, mirrored on every update.

    Charges: ``n_in·n_out·bits/8`` bytes held once; per mirrored update ``B·n_in·n_out`` MACs
    plus a read-modify-write of the copy; per use ``B·n_in·n_out`` MACs and one read of it.
    """

    kind = "shadow"

    def __init__(self, array: CrossbarArray, *, ledger: Ledger | None = None) -> None:
        super().__init__(array, ledger=ledger)
        self.weights = np.zeros(array.shape, dtype=np.float32)
        self.ledger.charge(mem_held_bytes=_digital_bytes(array))
        array.subscribe(self)

    def on_program(self, w: np.ndarray) -> None:
        self.weights = np.asarray(w, dtype=np.float32).copy()
        self.ledger.charge(mem_bytes=_digital_bytes(self.array))

    def on_update(self, x: np.ndarray, d: np.ndarray, lr: float) -> None:
        self.weights -= np.float32(lr) * (d.T @ x)
        n = self.array.n_in * self.array.n_out
        self.ledger.charge(digital_macs=x.shape[0] * n, digital_adds=n,
                           mem_bytes=2 * _digital_bytes(self.array))

    def _matvec_t(self, d: np.ndarray, ledger: Ledger) -> np.ndarray:
        arr = self.array
        ledger.charge(digital_macs=d.shape[0] * arr.n_in * arr.n_out,
                      mem_bytes=_digital_bytes(arr))
        return d @ self.weights

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        w = np.asarray(state["weights"])
        if w.shape != self.array.shape:
            raise ValueError(f"shadow weights shape {w.shape} is invalid; allowed: "
                             f"{self.array.shape}")
        self.weights = w.astype(np.float32).copy()


class Twin(TransposeStrategy):
    """A second array storing ``Wᵀ`` that receives every program, update and clock tick.

    Parameters
    ----------
    seed : int
        Seed of the twin's devices (independent of the primary's: different device-to-device
        variation, stuck cells and pulse noise).
    """

    kind = "twin"

    def __init__(self, array: CrossbarArray, *, seed: int, ledger: Ledger | None = None) -> None:
        super().__init__(array, ledger=ledger)
        self.twin = make_array(array.n_out, array.n_in, array.hw, seed=seed,  # stores Wᵀ
                               ledger=self.ledger.child("twin_array"))
        array.subscribe(self)

    def on_program(self, w: np.ndarray) -> None:
        self.twin.program(np.ascontiguousarray(w.T))

    def on_update(self, x: np.ndarray, d: np.ndarray, lr: float) -> None:
        self.twin.pulse_update(d, x, lr)

    def on_clock(self, seconds: float) -> None:
        self.twin.advance_clock(seconds)

    def _matvec_t(self, d: np.ndarray, ledger: Ledger) -> np.ndarray:
        return self.twin.mvm(d, ledger=ledger)

    def state_dict(self) -> dict[str, np.ndarray]:
        return self.twin.state_dict()

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.twin.load_state_dict(state)


class Bidirectional(TransposeStrategy):
    """A transposed read through the array's own periphery (only on bidirectional hardware)."""

    kind = "bidirectional"

    def __init__(self, array: CrossbarArray, *, ledger: Ledger | None = None) -> None:
        if not isinstance(array, BidirectionalArray):
            raise ValueError("transpose = 'bidirectional' needs hardware with "
                             "periphery.bidirectional = true; this array is forward-only. "
                             "Allowed here: 'probe', 'shadow', 'twin'")
        super().__init__(array, ledger=ledger)

    def _matvec_t(self, d: np.ndarray, ledger: Ledger) -> np.ndarray:
        return self.array.mvm_transposed(d, ledger=ledger)


STRATEGIES = ("probe", "shadow", "twin", "bidirectional")


def make_transpose(kind: str, array: CrossbarArray, *, seed: int = 0, refresh: int = 1,
                   ledger: Ledger | None = None) -> TransposeStrategy:
    """Build a transpose strategy by name (one of :data:`STRATEGIES`)."""
    if kind == "probe":
        return Probe(array, refresh=refresh, ledger=ledger)
    if kind == "shadow":
        return Shadow(array, ledger=ledger)
    if kind == "twin":
        return Twin(array, seed=seed, ledger=ledger)
    if kind == "bidirectional":
        return Bidirectional(array, ledger=ledger)
    raise ValueError(f"transpose = {kind!r} is unknown; allowed: {', '.join(STRATEGIES)}")
