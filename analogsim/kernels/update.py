"""Pulse-update kernels: the expected-count update of device pairs, and the checks shared
with the stochastic mode (:mod:`.stochastic`).

The device model (what ``n`` pulses do to a pair of conductances) is in :mod:`.device`.

Performance notes
-----------------
Expected mode: each row is first scanned (``max|Δw|`` and how many cells reach a quarter
pulse, on the float32 bits). A row whose counts must stay below 16 (or 256) and below
``max_pulses``, with finite ``Δw`` and enough pulsed cells, is counted and updated in one
fused, vectorised loop (one draw and one power per cell, no count arrays); rows without
stuck devices and with valid steps (checked per row) skip the per-cell tests. Other rows
(sparse, ctoc, large counts, non-finite ``Δw``) are counted first and the pulsed cells are
*compacted* (index and counts) so that only those run the device model. Callers holding
``Dᵀ X`` pass ``dw_scale = -lr`` instead of forming ``-lr Dᵀ X``, and may update a large
matrix in cache-sized blocks of rows (``first_row``) with the same bits.

The stochastic (pulse-train coincidence) mode is in :mod:`.stochastic`.

Drivers allocate their scratch once per group of rows (:func:`._numba.row_groups`), and
small calls run the serial build of the driver (:func:`._numba.pick_groups`).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ._numba import jit, pick_groups, pjit, prange
from .device import apply_one_way_row, one_way_cell, row_is_clean
from .read import (
    _F32_MAX,
    _F32_MAX_BITS,
    _check_array,
    _check_bool,
    _check_int,
    _check_real,
    _f32_as_u32,
    _u32_as_f32,
)
from .rng import (
    _GAMMA,
    _mix,
    check_key,
    f64_to_bits,
    stream_key,
    sub_key,
    uniform_times_2_52,
)

__all__ = ["pulse_update_expected"]

# Sub-key tags: each kind of draw in an update call (expected or stochastic mode) has its
# own independent stream.
_TAG_CTOC, _TAG_X_BITS, _TAG_D_BITS = 1, 2, 3

_ONE = np.uint64(1)
_BITS52 = np.uint64(0x4330000000000000)  # the bits of 2**52
_ABS32 = np.uint32(0x7FFFFFFF)
_CLEAN_ROWS = 8  # rows per stuck-device / step-range check in expected mode


# --------------------------------------------------------------------------- shared checks


def _check_device_arrays(gp: object, gm: object, alpha_up: object, alpha_down: object,
                         frozen_p: object, frozen_m: object) -> tuple[int, int]:
    g = _check_array("gp", gp, np.float32, (None, None), writeable=True)
    shape = g.shape
    _check_array("gm", gm, np.float32, shape, writeable=True)
    _check_array("alpha_up", alpha_up, np.float32, shape)
    _check_array("alpha_down", alpha_down, np.float32, shape)
    _check_array("frozen_p", frozen_p, np.uint8, shape)
    _check_array("frozen_m", frozen_m, np.uint8, shape)
    if np.shares_memory(gp, gm):
        raise ValueError("gp and gm share memory; allowed: two distinct arrays")
    return shape


@functools.lru_cache(maxsize=64)
def _sub_keys(key: int) -> tuple[np.uint64, np.uint64, np.uint64]:
    """The column-train, row-train and cycle-noise keys of ``key`` (an array's update key
    is fixed: derive them once, not per update, in either mode)."""
    return tuple(np.uint64(sub_key(key, tag)) for tag in (_TAG_X_BITS, _TAG_D_BITS, _TAG_CTOC))


# --------------------------------------------------------------------------- expected mode


def pulse_update_expected(gp: np.ndarray, gm: np.ndarray, dw: np.ndarray, *,
                          alpha_up: np.ndarray, alpha_down: np.ndarray, frozen_p: np.ndarray,
                          frozen_m: np.ndarray, dw_min: float, soft: bool, ctoc: float,
                          max_pulses: int, key: int, counter: int,
                          dw_scale: float = 1.0, first_row: int = 0,
                          pow_gamma: float = 0.0, ctoc_shared: bool = False
                          ) -> tuple[int, int]:
    """Pulse each cell ``round_stochastic(Δw / Δw_min)`` times, in place.

    Per cell, with ``Δw_ij = dw_ij · float32(dw_scale)`` (a float32 product, as
    ``dw * np.float32(dw_scale)`` would give), ``a = |Δw_ij| · (1/Δw_min)`` and
    ``u = rand_uniform(key, counter, i·n_in + j)``::

        n_ij = floor(a) + [u < a - floor(a)]          (unbiased: E[n_ij] = a)
        n_ij ← min(n_ij, max_pulses)                  (cut cells are counted)

    UP pulses where ``Δw > 0``, DOWN pulses where ``Δw < 0`` (device model: :mod:`.device`).

    Parameters
    ----------
    gp, gm : float32 (n_out, n_in)
        Normalised conductances in ``[0, 1]``; updated in place.
    dw : float32 (n_out, n_in)
        Requested weight change (device units) before ``dw_scale``, e.g. ``Dᵀ X`` with
        ``dw_scale = -lr``. Cells with non-finite ``Δw`` are left unchanged and the call
        then raises ``ValueError``.
    alpha_up, alpha_down : float32 (n_out, n_in)
        Per-cell step of one UP / DOWN pulse (fraction of ``G_max``), in ``[0, 1]``.
    frozen_p, frozen_m : uint8 (n_out, n_in)
        1 where the device is stuck.
    dw_min : float > 0
        Weight change of one pulse (device units): the rounding unit.
    soft : bool
        Soft (True) or hard (False) bounds.
    ctoc : float ≥ 0
        Cycle-to-cycle relative step std.
    ctoc_shared : bool, default False
        One cycle-to-cycle draw per cell and direction for both devices of the pair
        (``DeviceConfig.ctoc_scope = "cell"``) instead of one per device.
    max_pulses : int ≥ 1
        Cap on pulses per cell per call.
    key, counter : int
        Counter-RNG key and draw number.
    dw_scale : float, default 1
        Finite factor applied to ``dw`` in float32 inside the kernel, so that a caller
        holding ``Dᵀ X`` needs no separate pass to form ``-lr Dᵀ X``.
    first_row : int ≥ 0, default 0
        Index of the first row of these arrays in the whole matrix: the random draws of row
        ``i`` are those of row ``first_row + i``, so updating a matrix in blocks of rows
        (with the same key and counter) gives exactly the bits of one call on all of it.
    pow_gamma : float ≥ 0, default 0
        0: the response given by ``soft``. ``γ > 0``: power-step response per pulse and
        device, potentiation ``ΔG = α (1 - G)^γ``, depression ``ΔG = -α G^γ`` (aihwkit's
        ``PowStepDevice`` on the device's range ``[0, 1]``; :mod:`.device`).

    Returns
    -------
    n_pulses : int
        Total pulses applied, ``Σ n_ij`` (a pulse on a pair counts once, stuck or not).
    n_clipped : int
        Cells whose count was cut to ``max_pulses``.
    """
    shape = _check_device_arrays(gp, gm, alpha_up, alpha_down, frozen_p, frozen_m)
    _check_array("dw", dw, np.float32, shape)
    step = _check_real("dw_min", dw_min, 0.0, lo_open=True)
    soft = _check_bool("soft", soft)
    ctoc = _check_real("ctoc", ctoc, 0.0)
    shared = _check_bool("ctoc_shared", ctoc_shared)
    gamma = _check_real("pow_gamma", pow_gamma, 0.0)
    max_pulses = _check_int("max_pulses", max_pulses, 1, 1 << 40)
    scale = _check_real("dw_scale", dw_scale, -math.inf)
    row0 = _check_int("first_row", first_row, 0, 1 << 40)
    if abs(scale) > _F32_MAX:
        raise ValueError(f"dw_scale = {dw_scale!r} is invalid; allowed: a finite float32 "
                         f"value, |dw_scale| <= {_F32_MAX:.4g}")
    k, c = check_key(key, counter)
    nkey = _sub_keys(int(k))[2]
    # Work in cells: at 2 threads the parallel build wins from 256 x 256 cells on, with and
    # without cycle noise (256 x 784, ctoc 0.3, hard bounds: 1.67 ms serial, 1.00 ms
    # parallel; noiseless 0.34 against 0.22 ms).
    drive, n_groups = pick_groups(_expected_driver, dw.size, shape[0])
    n_pulses, n_clip, n_bad_alpha, n_bad = drive(
        gp, gm, dw, np.float32(scale), alpha_up, alpha_down, frozen_p, frozen_m, 1.0 / step,
        soft, ctoc, shared, max_pulses, k, c, nkey, row0, n_groups, gamma)
    if n_bad:
        raise ValueError(f"dw contains {n_bad} NaN or Inf entries (after dw_scale); allowed: "
                         "finite values (those cells were left unchanged, the others were "
                         "updated)")
    _raise_bad_alpha(n_bad_alpha)
    return n_pulses, n_clip


@pjit
def _expected_driver(gp, gm, dw, dw_scale, a_up, a_dn, fp, fm, inv_min, soft, ctoc, shared,
                     max_pulses, key, ctr, nkey, row0, n_groups, gamma):
    """Returns the totals ``(pulses, cut cells, cells with a bad α, non-finite Δw)``."""
    ukey = stream_key(key, ctr)
    nk = stream_key(nkey, ctr)
    n_out, n_in = dw.shape
    counts = np.zeros((n_out, 4), dtype=np.int64)
    for g in prange(n_groups):
        idx = np.empty(n_in, dtype=np.int64)
        nup = np.empty(n_in, dtype=np.int64)
        ndn = np.empty(n_in, dtype=np.int64)
        r1 = (g + 1) * n_out // n_groups
        for i in range(g * n_out // n_groups, r1):
            if (i - g * n_out // n_groups) % _CLEAN_ROWS == 0:
                # Several rows checked in one pass over contiguous memory: streams better
                # than row by row; an unclean block just takes the checked loops.
                e = min(i + _CLEAN_ROWS, r1)
                clean = row_is_clean(a_up[i:e].reshape(-1), a_dn[i:e].reshape(-1),
                                     fp[i:e].reshape(-1), fm[i:e].reshape(-1))
            counts[i, 0], counts[i, 1], counts[i, 2], counts[i, 3] = _expected_row(
                dw[i], dw_scale, inv_min, max_pulses, ukey, row0 + i, gp[i], gm[i], a_up[i],
                a_dn[i], fp[i], fm[i], soft, ctoc, shared, nk, idx, nup, ndn, clean, gamma)
    return counts[:, 0].sum(), counts[:, 1].sum(), counts[:, 2].sum(), counts[:, 3].sum()


@jit
def _expected_row(dwr, dw_scale, inv_min, max_pulses, ukey, i, gpr, gmr, aur, adr, fpr, fmr,
                  soft, ctoc, shared, nk, idx, nup, ndn, clean, gamma):
    """Row ``i``: ``(pulses, cut cells, cells with a bad α, non-finite Δw)``.

    ``clean``: the row is known to have no stuck device and only valid steps.

    A row whose counts are known in advance to stay below 256 and ``max_pulses`` (from
    ``max|Δw|``), with finite ``Δw``, no ctoc, no power step and enough pulsed cells, is
    counted and
    updated in one fused loop (``_fused_*``); any other row is counted first and then
    handed to the device worker. Both give the same bits.
    """
    n = dwr.size
    pos = ukey + (np.uint64(i * n) + _ONE) * _GAMMA  # draw_u64(ukey, i·n): the row's first
    if ctoc == 0.0 and gamma == 0.0:
        a_max, n_big = _row_scan(dwr, dw_scale, inv_min)
        bound = np.floor(a_max) + 1.0  # ≥ every count of the row; NaN/Inf fail the tests
        if bound < 256.0 and bound <= max_pulses and 4 * n_big >= n:
            args = (dwr, dw_scale, inv_min, pos, gpr, gmr, aur, adr, fpr, fmr)
            if not soft:
                n_pulses, n_bad = _fused_hard(*args)
            elif clean:
                n_pulses, n_bad = _fused_soft4c(*args) if bound < 16.0 else _fused_soft8c(*args)
            else:
                n_pulses, n_bad = _fused_soft4(*args) if bound < 16.0 else _fused_soft8(*args)
            return n_pulses, 0, n_bad, 0
    k, nmax, n_clip, n_bad_dw = _expected_counts(dwr, dw_scale, inv_min, max_pulses, pos, nup,
                                                 ndn)
    n_pulses, n_bad = apply_one_way_row(gpr, gmr, aur, adr, fpr, fmr, idx, k, nup, ndn, nmax,
                                        soft, ctoc, shared, nk, i * n, gamma)
    return n_pulses, n_clip, n_bad, n_bad_dw


@jit(inline="always")
def _rounded_count(a, h):
    """``floor(a) + [u < a - floor(a)]``, ``u = _u64_to_uniform(h)``: stochastic rounding
    (``E = a``), compared as ``u·2**52 < (a - floor(a))·2**52`` (both exact). Float64."""
    fl = np.floor(a)
    return fl + (1.0 if uniform_times_2_52(h) < (a - fl) * 2.0**52 else 0.0)


@jit(inline="always")
def _as_int(n):
    """Exact float64 → int64 for integers ``0 ≤ n < 2**52``: add ``2**52``, reinterpret,
    subtract its bits (AVX2 has no vector float64 → int64 conversion)."""
    return np.int64(f64_to_bits(n + 2.0**52) - _BITS52)


@jit
def _row_scan(dwr, dw_scale, inv_min):
    """``(max_j a_j, #{j: a_j ≥ 1/4})`` of a row, ``a = |Δw| / Δw_min`` (Inf/NaN: ``inf``).

    On the float32 bits (integer lanes, vectorised): non-negative floats order like their
    bits. The count only steers the choice of loop (fused when ≥ a quarter), not results.
    """
    bits = dwr.view(np.uint32)
    scale = abs(dw_scale)
    # |Δw| ≥ 1/(4 inv_min) as bits; +inf (all ones after the cast) when nothing can reach it.
    thr = np.float32(0.25 / (inv_min * np.float64(scale))) if scale > 0 else np.float32(math.inf)
    thr_bits = _f32_as_u32(thr)
    m = np.uint32(0)
    n_big = np.uint32(0)
    for j in range(bits.size):
        b = np.uint32(bits[j] & _ABS32)
        m = max(m, b)
        n_big += np.uint32(b >= thr_bits)
    if m > _F32_MAX_BITS:
        return math.inf, 0
    # |float32(dw · s)| = float32(|dw| · |s|), and a is monotone in it: the max is exact.
    return np.float64(_u32_as_f32(m) * scale) * inv_min, np.int64(n_big)


@jit(inline="always")
def _fused_body(dwr, dw_scale, inv_min, pos, gpr, gmr, aur, adr, fpr, fmr, soft, wide, clean):
    """:func:`_expected_counts` and the one-way device update of each cell in one pass.

    Only for rows checked by :func:`_expected_row`: finite, counts below 256 (``wide``) or
    16 and never above ``max_pulses`` (so nothing is cut). ``pos``: the row's first draw.
    """
    n_pulses = 0
    n_bad = 0
    for j in range(dwr.size):
        d = np.float64(dwr[j] * dw_scale)
        n = _as_int(_rounded_count(abs(d) * inv_min, _mix(pos)))
        pos += _GAMMA
        p2, m2, n, bad = one_way_cell(np.float64(gpr[j]), np.float64(gmr[j]),
                                      np.float64(aur[j]), np.float64(adr[j]), fpr[j] != 0,
                                      fmr[j] != 0, n, d > 0.0, soft, wide, clean)
        gpr[j] = np.float32(p2)
        gmr[j] = np.float32(m2)
        n_pulses += n
        n_bad += bad
    return n_pulses, n_bad


# One compiled loop per case: constant flags fold the loop body to straight-line code.
@jit
def _fused_soft4(dwr, dw_scale, inv_min, pos, gpr, gmr, aur, adr, fpr, fmr):
    return _fused_body(dwr, dw_scale, inv_min, pos, gpr, gmr, aur, adr, fpr, fmr, True, False,
                       False)


@jit
def _fused_soft8(dwr, dw_scale, inv_min, pos, gpr, gmr, aur, adr, fpr, fmr):
    return _fused_body(dwr, dw_scale, inv_min, pos, gpr, gmr, aur, adr, fpr, fmr, True, True,
                       False)


@jit
def _fused_soft4c(dwr, dw_scale, inv_min, pos, gpr, gmr, aur, adr, fpr, fmr):
    return _fused_body(dwr, dw_scale, inv_min, pos, gpr, gmr, aur, adr, fpr, fmr, True, False,
                       True)


@jit
def _fused_soft8c(dwr, dw_scale, inv_min, pos, gpr, gmr, aur, adr, fpr, fmr):
    return _fused_body(dwr, dw_scale, inv_min, pos, gpr, gmr, aur, adr, fpr, fmr, True, True,
                       True)


@jit
def _fused_hard(dwr, dw_scale, inv_min, pos, gpr, gmr, aur, adr, fpr, fmr):
    return _fused_body(dwr, dw_scale, inv_min, pos, gpr, gmr, aur, adr, fpr, fmr, False, False,
                       False)


@jit
def _expected_counts(dwr, dw_scale, inv_min, max_pulses, pos, nup, ndn):
    """Stochastically rounded UP/DOWN counts of one row (``nup``, ``ndn``, full length).

    ``pos``: the row's first draw. Branch-free and vectorised: every cell costs one draw,
    whether it is pulsed or not. The rare cases are handled after the loop, so the loop
    does not carry them: a row with a non-finite ``Δw`` is recounted by
    :func:`_checked_counts`, counts above ``max_pulses`` are cut by :func:`_cut_counts`.
    Returns ``(pulsed cells, max count, cells cut, non-finite cells)``; non-finite cells get
    no pulse.
    """
    k = 0
    nmax = 0
    finite = True
    # Counts beyond max_pulses + 1 are cut anyway; capping first keeps the conversion exact.
    cap = max_pulses + 1.0
    p = pos
    for j in range(dwr.size):
        d = np.float64(dwr[j] * dw_scale)
        a = abs(d) * inv_min
        finite &= a <= 1.0e300
        c = _as_int(_rounded_count(min(a, cap), _mix(p)))
        p += _GAMMA
        nup[j] = c if d > 0.0 else 0
        ndn[j] = 0 if d > 0.0 else c
        k += c > 0
        nmax = max(nmax, c)
    if not finite:
        return _checked_counts(dwr, dw_scale, inv_min, max_pulses, pos, nup, ndn)
    if nmax > max_pulses:
        return k, max_pulses, _cut_counts(nup, ndn, max_pulses), 0
    return k, nmax, 0, 0


@jit
def _cut_counts(nup, ndn, max_pulses):
    """Cut counts to ``max_pulses``; returns the number of cells cut."""
    n_clip = 0
    for j in range(nup.size):
        n_clip += (nup[j] > max_pulses) | (ndn[j] > max_pulses)
        nup[j] = min(nup[j], max_pulses)
        ndn[j] = min(ndn[j], max_pulses)
    return n_clip


@jit
def _checked_counts(dwr, dw_scale, inv_min, max_pulses, pos, nup, ndn):
    """:func:`_expected_counts` for a row with non-finite ``Δw``: those cells get 0 pulses."""
    k = 0
    nmax = 0
    n_clip = 0
    n_bad = 0
    cap = max_pulses + 1.0
    for j in range(dwr.size):
        d = np.float64(dwr[j] * dw_scale)
        a = abs(d) * inv_min
        bad = not a <= 1.0e300  # NaN or Inf
        c = _as_int(_rounded_count(0.0 if bad else min(a, cap), _mix(pos)))
        pos += _GAMMA
        n_clip += c > max_pulses
        c = min(c, max_pulses)
        nup[j] = c if d > 0.0 else 0
        ndn[j] = 0 if d > 0.0 else c
        k += c > 0
        nmax = max(nmax, c)
        n_bad += bad
    return k, nmax, n_clip, n_bad


def _raise_bad_alpha(n_bad: int) -> None:
    if n_bad:
        raise ValueError(f"alpha_up/alpha_down: {n_bad} pulsed cells have a step outside [0, 1] "
                         "or NaN; allowed: 0 <= alpha <= 1 (those cells were left unchanged, "
                         "the other cells were updated)")
