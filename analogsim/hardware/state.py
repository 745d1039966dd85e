"""Checkpoint helpers of the array state: shape/dtype and physical-range checks of restored
arrays, and the PCG64 generator state as plain uint64 words (no pickle)."""

from __future__ import annotations

import numpy as np

__all__ = ["check_physics", "checked_state", "rng_to_array", "rng_from_array"]

#: Physical range of each restored state array: ``(low, high)`` or a set of allowed values.
_PHYSICS = {"gp": (0.0, 1.0), "gm": (0.0, 1.0), "alpha_up": (0.0, 1.0),
            "alpha_down": (0.0, 1.0), "frozen_p": {0, 1}, "frozen_m": {0, 1},
            "bounds": (0.0, np.inf), "nu_p": (0.0, 1e3), "nu_m": (0.0, 1e3)}
#: Read/update counters and the clock beyond these are not a plausible history.
_MAX_COUNTER, _MAX_CLOCK_S = 2**62, 1e12


def check_physics(state: dict[str, np.ndarray], counters: np.ndarray, clock: np.ndarray
                   ) -> None:
    """Refuse restored values that no device can have (a tampered or corrupted file)."""
    for key, allowed in _PHYSICS.items():
        if key not in state:
            continue
        v = np.asarray(state[key])
        if isinstance(allowed, set):
            bad = ~np.isin(v, list(allowed))
            what = f"one of {sorted(allowed)}"
        else:
            lo, hi = allowed  # NaN fails both comparisons; +inf passes only hi = inf
            bad = ~((v >= lo) & (v <= hi))
            what = f"values in [{lo}, {hi}]"
        if bad.any():
            raise ValueError(f"array state {key!r} holds {int(bad.sum())} impossible values "
                             f"(e.g. {v[bad].flat[0]!r}); allowed: {what}")
    if counters.min() < 0 or counters.max() > _MAX_COUNTER:
        raise ValueError(f"array state 'counters' = {counters.tolist()} is invalid; allowed: "
                         f"integers in [0, {_MAX_COUNTER}]")
    if not 0.0 <= float(clock) <= _MAX_CLOCK_S:
        raise ValueError(f"array state 'clock' = {float(clock)!r} is invalid; allowed: "
                         f"seconds in [0, {_MAX_CLOCK_S:g}]")


def checked_state(state: dict[str, np.ndarray], key: str, shape: tuple | None,
                   dtype: object) -> np.ndarray:
    if key not in state:
        raise ValueError(f"array state is missing {key!r}")
    v = np.asarray(state[key])
    if (shape is not None and v.shape != tuple(shape)) or v.dtype != np.dtype(dtype):
        raise ValueError(f"array state {key!r} has shape {v.shape} and dtype {v.dtype}; "
                         f"allowed: shape {shape} and dtype {np.dtype(dtype)}")
    return v


def rng_to_array(rng: np.random.Generator) -> np.ndarray:
    """PCG64 state as uint64 words (checkpointable without pickle)."""
    st = rng.bit_generator.state
    s, inc = st["state"]["state"], st["state"]["inc"]
    words = [s >> 64, s & (2**64 - 1), inc >> 64, inc & (2**64 - 1),
             st["has_uint32"], st["uinteger"]]
    return np.array(words, dtype=np.uint64)


def rng_from_array(rng: np.random.Generator, a: np.ndarray) -> None:
    w = [int(v) for v in a]
    if len(w) != 6:
        raise ValueError(f"rng_state has {len(w)} words; allowed: 6")
    rng.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (w[0] << 64) | w[1], "inc": (w[2] << 64) | w[3]},
        "has_uint32": w[4], "uinteger": w[5],
    }
