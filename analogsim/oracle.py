"""Non-physical inspection of crossbar arrays, for tests, plots and debugging only.

Why this module exists
----------------------
A :class:`~analogsim.hardware.array.CrossbarArray` deliberately offers no way to read its
weights or to compute ``Wᵀ v``: real hardware can only be read forward, through the DAC,
the noisy array and the ADC, and every such read costs energy that the ledger charges. A
simulator, however, knows the exact conductances, and tests, plots and debugging sessions
need them (does programming hit its target? how far has a shadow copy diverged from the
devices? how much did drift change the weights?). Those questions are answered here, in
one clearly named place, so that every non-physical access to device state can be found
with a single ``grep oracle``.

Rules
-----
* Nothing here charges a ledger, draws a random number, or changes the array: every
  function returns copies, and calling them does not alter any later read or update.
* **Library code must never call this module.** Only tests, plotting code
  (``analogsim/experiments/plots.py``) and the weight export and programming report
  (``analogsim/experiments/weights.py``, whose files and reports say they are
  non-physical) may import it; a learning rule, layer or transpose
  strategy that used it would get information the hardware cannot provide, for free. A test
  (``tests/hardware/test_array.py``) greps the package to enforce this.

This is the only module besides :mod:`analogsim.hardware.array` that touches the array's
private device state (``_gp``, ``_gm``, ``_frozen_p``, ``_frozen_m``, ``_alpha_up``,
``_alpha_down``).
"""

from __future__ import annotations

import numpy as np

from .hardware.array import CrossbarArray

__all__ = ["conductances", "weights", "stuck_mask", "shadow_divergence", "drift_clock",
           "device_variation", "noise_keys", "symmetry_point"]


def _check(array: object) -> CrossbarArray:
    if not isinstance(array, CrossbarArray):
        raise TypeError(f"array must be a CrossbarArray, got {type(array).__name__}")
    return array


def conductances(array: CrossbarArray) -> tuple[np.ndarray, np.ndarray]:
    """Copies of the normalised conductances ``(G+, G-)``: float32 ``(n_out, n_in)``, in [0, 1]."""
    a = _check(array)
    return a._gp.copy(), a._gm.copy()


def weights(array: CrossbarArray) -> np.ndarray:
    """The effective weights ``w_max (G+ - G-)`` in device units, as a float64 copy.

    This is the noise-free matrix behind every read (the read path uses the same values
    in float32); it includes programming error, level quantisation, pulse updates, drift
    and stuck devices, but no read noise, output noise or converter effects.
    """
    a = _check(array)
    return a.hw.device.w_max * (a._gp.astype(np.float64) - a._gm.astype(np.float64))


def stuck_mask(array: CrossbarArray, device: str = "any") -> np.ndarray:
    """Boolean ``(n_out, n_in)`` mask of stuck devices.

    Parameters
    ----------
    device : {"any", "both", "plus", "minus"}
        ``any``: cells with at least one stuck device; ``both``: cells whose two devices are
        stuck (the weight cannot change at all); ``plus`` / ``minus``: the ``G+`` / ``G-``
        device is stuck.
    """
    a = _check(array)
    p, m = a._frozen_p != 0, a._frozen_m != 0
    masks = {"any": p | m, "both": p & m, "plus": p, "minus": m}
    if device not in masks:
        raise ValueError(f"device = {device!r} is invalid; allowed: "
                         + ", ".join(repr(k) for k in masks))
    return masks[device].copy()


def shadow_divergence(array: CrossbarArray, shadow_weights: np.ndarray) -> dict[str, float]:
    """How far a digital copy of the intended weights is from the devices.

    With ``W = weights(array)`` and ``S = shadow_weights`` (device units, shape
    ``(n_out, n_in)``)::

        rel_fro = ‖W − S‖_F / ‖S‖_F        (0 if both are 0, inf if only S is 0)
        max_abs = max_ij |W_ij − S_ij|     (device units)
    """
    a = _check(array)
    s = np.asarray(shadow_weights)
    if s.dtype.kind != "f":
        raise TypeError(f"shadow_weights.dtype = {s.dtype} is not allowed; allowed: a "
                        "floating dtype")
    if s.shape != a.shape:
        raise ValueError(f"shadow_weights.shape = {s.shape} is invalid; allowed: {a.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("shadow_weights contains NaN or Inf; allowed: finite values")
    s = s.astype(np.float64)
    diff = weights(a) - s
    num = float(np.linalg.norm(diff))
    den = float(np.linalg.norm(s))
    if den > 0.0:
        rel = num / den
    else:
        rel = 0.0 if num == 0.0 else float("inf")
    return {"rel_fro": rel, "max_abs": float(np.max(np.abs(diff)))}


def drift_clock(array: CrossbarArray) -> float:
    """Seconds since the array was last programmed (the time the drift model has applied)."""
    return float(_check(array).clock)


def device_variation(array: CrossbarArray) -> dict[str, np.ndarray]:
    """Copies of the per-device step factors drawn at construction (device-to-device spread).

    ``alpha_up`` / ``alpha_down``: float32 ``(n_out, n_in)`` step sizes of a potentiating /
    depressing pulse, as fractions of the conductance range (``device.alpha`` times the
    log-normal spread ``exp(dtod · ξ)``, cut at 1).
    """
    a = _check(array)
    return {"alpha_up": a._alpha_up.copy(), "alpha_down": a._alpha_down.copy()}


def noise_keys(array: CrossbarArray) -> tuple[int, int]:
    """The 64-bit keys of the array's read-noise and update-noise streams (independence tests)."""
    a = _check(array)
    return int(a._read_key), int(a._update_key)


def symmetry_point(array: CrossbarArray) -> np.ndarray:
    """Per-cell symmetry point ``w*`` (device units, float64 ``(n_out, n_in)``).

    ``w*`` is the weight where an UP and a DOWN pulse cancel on average, so a long sequence
    of random UP/DOWN pulses (equally likely) settles around it; Tiki-Taka-type algorithms
    depend on it. With the cell's steps ``α_up``, ``α_down`` (asymmetry, ``up_down_dtod``
    and the log-normal ``dtod`` included) and soft bounds, each device is at equilibrium
    when its mean step vanishes: for ``G+`` (potentiated by UP, depressed by DOWN pulses)
    ``α_up (1 − G+) = α_down G+``, for ``G-`` ``α_down (1 − G-) = α_up G-``, so

    ::

        G+* = α_up / (α_up + α_down),     G-* = α_down / (α_up + α_down),
        w*  = w_max (G+* − G-*) = w_max (α_up − α_down) / (α_up + α_down)

    (``= up_down · w_max`` without dtod spread). With the ``pow`` step model (exponent
    ``γ = pow_gamma``) the balance ``α_up (1 − G+)^γ = α_down G+^γ`` gives, again in closed
    form, ``G+* = 1 / (1 + (α_down/α_up)^(1/γ))`` and ``G-* = 1 / (1 + (α_up/α_down)^(1/γ))``
    (``γ = 1``: the soft-bounds values). A stuck device stays at its stuck value. Hard
    bounds have no interior fixed point (the step does not depend on ``G``): the devices
    drift to the bound that the larger step points to, ``w* = ±w_max`` up to stuck devices,
    and cells with exactly equal steps random-walk without a restoring force (``NaN``).
    Derivation: docs/hardware.md, "Symmetry point".
    """
    a = _check(array)
    au = a._alpha_up.astype(np.float64)
    ad = a._alpha_down.astype(np.float64)
    dev = a.hw.device
    if dev.step_model == "pow":
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            gp = 1.0 / (1.0 + (ad / au) ** (1.0 / dev.pow_gamma))
            gm = 1.0 / (1.0 + (au / ad) ** (1.0 / dev.pow_gamma))
    elif dev.bounds == "soft":
        with np.errstate(invalid="ignore", divide="ignore"):
            gp = au / (au + ad)  # 0/0 (a cell whose steps are both 0) gives NaN: no w*
        gm = 1.0 - gp
    else:
        gp = np.where(au > ad, 1.0, np.where(au < ad, 0.0, np.nan))
        gm = 1.0 - gp
    gp = np.where(a._frozen_p != 0, a._gp, gp)
    gm = np.where(a._frozen_m != 0, a._gm, gm)
    return a.hw.device.w_max * (gp - gm)
