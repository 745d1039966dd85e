"""Pulse-update kernels: expected-count and stochastic-coincidence updates of device pairs.

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

Stochastic mode: each pulse train is drawn per column/row from consecutive draws; for the
columns the draws of 64 columns are made together and packed straight into "which columns
fire at bit ``(b, t)``" words. Coincidences are counted sparsely: for row ``i`` every firing
bit ``(b, t)`` of its train adds that word vector into bit-sliced counters (Harley–Seal
trees of carry-save adders over eight vectors, 64 columns per machine word),
``O(density · B · bl · n_in / 64)`` word operations per row instead of
``O(B · bl · n_in / 64)`` for a dense AND-popcount product.

Drivers allocate their scratch once per group of rows (:func:`._numba.row_groups`), and
small calls run the serial build of the driver (:func:`._numba.pick`).
"""

from __future__ import annotations

import math
import sys

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ._numba import jit, pick, pjit, prange, row_groups
from .device import apply_one_way_row, apply_row, one_way_cell, row_is_clean
from .read import (
    _F32_MAX,
    _F32_MAX_BITS,
    _check_array,
    _check_bool,
    _check_int,
    _check_real,
    _f32_as_u32,
    _u32_as_f32,
    max_abs,
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

__all__ = ["pulse_update_expected", "pulse_update_stochastic"]

# Sub-key tags: each kind of draw in an update call has its own independent stream.
_TAG_CTOC, _TAG_X_BITS, _TAG_D_BITS = 1, 2, 3
_MASK32 = np.uint64(0xFFFFFFFF)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_ZERO = np.uint64(0)
_ONE = np.uint64(1)
_S32 = np.uint64(32)
_TWO32 = 4294967296.0
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


# --------------------------------------------------------------------------- expected mode


def pulse_update_expected(gp: np.ndarray, gm: np.ndarray, dw: np.ndarray, *,
                          alpha_up: np.ndarray, alpha_down: np.ndarray, frozen_p: np.ndarray,
                          frozen_m: np.ndarray, dw_min: float, soft: bool, ctoc: float,
                          max_pulses: int, key: int, counter: int,
                          dw_scale: float = 1.0, first_row: int = 0,
                          pow_gamma: float = 0.0) -> tuple[int, int]:
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
    gamma = _check_real("pow_gamma", pow_gamma, 0.0)
    max_pulses = _check_int("max_pulses", max_pulses, 1, 1 << 40)
    scale = _check_real("dw_scale", dw_scale, -math.inf)
    row0 = _check_int("first_row", first_row, 0, 1 << 40)
    if abs(scale) > _F32_MAX:
        raise ValueError(f"dw_scale = {dw_scale!r} is invalid; allowed: a finite float32 "
                         f"value, |dw_scale| <= {_F32_MAX:.4g}")
    k, c = check_key(key, counter)
    nkey = np.uint64(sub_key(int(k), _TAG_CTOC))
    drive = pick(_expected_driver, dw.size // 4)
    n_pulses, n_clip, n_bad_alpha, n_bad = drive(
        gp, gm, dw, np.float32(scale), alpha_up, alpha_down, frozen_p, frozen_m, 1.0 / step,
        soft, ctoc, max_pulses, k, c, nkey, row0, 1 if drive is _expected_driver.serial else
        row_groups(shape[0]), gamma)
    if n_bad:
        raise ValueError(f"dw contains {n_bad} NaN or Inf entries (after dw_scale); allowed: "
                         "finite values (those cells were left unchanged, the others were "
                         "updated)")
    _raise_bad_alpha(n_bad_alpha)
    return n_pulses, n_clip


@pjit
def _expected_driver(gp, gm, dw, dw_scale, a_up, a_dn, fp, fm, inv_min, soft, ctoc, max_pulses,
                     key, ctr, nkey, row0, n_groups, gamma):
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
                a_dn[i], fp[i], fm[i], soft, ctoc, nk, idx, nup, ndn, clean, gamma)
    return counts[:, 0].sum(), counts[:, 1].sum(), counts[:, 2].sum(), counts[:, 3].sum()


@jit
def _expected_row(dwr, dw_scale, inv_min, max_pulses, ukey, i, gpr, gmr, aur, adr, fpr, fmr,
                  soft, ctoc, nk, idx, nup, ndn, clean, gamma):
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
                                        soft, ctoc, nk, i * n, gamma)
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


# --------------------------------------------------------------------------- stochastic mode


def pulse_update_stochastic(gp: np.ndarray, gm: np.ndarray, x: np.ndarray, d: np.ndarray,
                            lr: float, *, bl: int, dw_min: float, update_management: bool,
                            alpha_up: np.ndarray, alpha_down: np.ndarray,
                            frozen_p: np.ndarray, frozen_m: np.ndarray, soft: bool,
                            ctoc: float, key: int, counter: int,
                            pow_gamma: float = 0.0) -> tuple[int, int]:
    """Stochastic pulse-train update with coincidence counting, in place.

    Intended update ``Δw_ij = -lr Σ_b d_bi x_bj``. Per sample ``b`` and bit ``t < bl``,
    column ``j`` fires with probability ``p_bj = min(1, A |x_bj|)`` and row ``i`` with
    ``q_bi = min(1, C |d_bi|)``; every coincidence is one pulse, DOWN where
    ``x_bj d_bi > 0`` and UP where ``x_bj d_bi < 0``. ``A C bl Δw_min = lr`` gives
    ``E[n_ij] = lr |x_bj d_bi| / Δw_min`` per sample while no probability is cut at 1::

        A = C = sqrt(lr / (bl Δw_min))                                (plain)
        A = sqrt(lr / (bl Δw_min) · d_max / x_max),  C = lr / (bl Δw_min A)
                                                                      (update management)

    with ``x_max = max|x|``, ``d_max = max|d|`` over the batch (nothing happens if either is
    0). A bit fires when 32 random bits are below ``round(p · 2**32)``: probabilities are
    resolved to ``2**-33``. Draw ``(b·n + j)·⌈bl/2⌉ + ⌊t/2⌋`` of the column (row) stream gives
    bits ``t`` (low half) and ``t + 1`` (high half). Counts are summed over the batch, then
    each cell gets its UP pulses and then its DOWN pulses (module docstring).

    Parameters
    ----------
    gp, gm : float32 (n_out, n_in)
        Normalised conductances, updated in place.
    x : float32 (B, n_in)
        Inputs (column side), finite.
    d : float32 (B, n_out)
        Errors (row side), finite.
    lr : float > 0
        Learning rate (device units per unit of ``d·x``).
    bl : int in [1, 64]
        Pulse-train length per sample.
    dw_min : float > 0
        Weight change of one pulse (device units).
    update_management : bool
        Balance ``A`` and ``C`` by ``x_max`` and ``d_max``.
    alpha_up, alpha_down, frozen_p, frozen_m, soft, ctoc, key, counter, pow_gamma
        As in :func:`pulse_update_expected`.

    Returns
    -------
    n_pulses : int
        Total pulses applied (coincidences of both signs).
    n_prob_clipped : int
        Entries of ``x`` and ``d`` whose firing probability was cut to 1.
    """
    shape = _check_device_arrays(gp, gm, alpha_up, alpha_down, frozen_p, frozen_m)
    x = _check_array("x", x, np.float32, (None, shape[1]))
    d = _check_array("d", d, np.float32, (x.shape[0], shape[0]))
    rate = _check_real("lr", lr, 0.0, lo_open=True)
    bl = _check_int("bl", bl, 1, 64)
    step = _check_real("dw_min", dw_min, 0.0, lo_open=True)
    um = _check_bool("update_management", update_management)
    soft = _check_bool("soft", soft)
    ctoc = _check_real("ctoc", ctoc, 0.0)
    gamma = _check_real("pow_gamma", pow_gamma, 0.0)
    k, c = check_key(key, counter)
    xmax, dmax = _max_abs("x", x), _max_abs("d", d)
    if xmax == 0.0 or dmax == 0.0:
        return 0, 0
    # lr / (bl Δw_min) can leave the float range for extreme (valid) arguments: at 0 nothing
    # can fire; beyond the largest float every non-zero entry fires surely (cut, counted).
    base = min(rate / (bl * step), sys.float_info.max)
    if base == 0.0:
        return 0, 0
    ax = math.sqrt(base)
    if um:
        ax = math.sqrt(base * dmax / xmax)
        if not 0.0 < ax < math.inf:  # the product left the float range: split the root
            ax = math.sqrt(base) * math.sqrt(dmax / xmax)
    cd = base / ax
    batch, n_in = x.shape
    n_words = -(-n_in // 64)
    # One extra all-zero row in each table: padding target for incomplete adder groups.
    xt = np.empty((batch * bl + 1, n_words), dtype=np.uint64)
    xneg = np.empty((batch + 1, n_words), dtype=np.uint64)
    xt[-1] = 0
    xneg[-1] = 0
    dt = np.empty((batch, shape[0]), dtype=np.uint64)
    clips = np.zeros((batch, 2), dtype=np.int64)
    xkey = np.uint64(sub_key(int(k), _TAG_X_BITS))
    dkey = np.uint64(sub_key(int(k), _TAG_D_BITS))
    pick(_pack_columns, x.size * bl)(x, ax, bl, xkey, c, xt, xneg, clips[:, 0])
    pick(_pack_trains, d.size * bl)(d, cd, bl, dkey, c, dt, clips[:, 1])
    nkey = np.uint64(sub_key(int(k), _TAG_CTOC))
    # Counts reach batch·bl: that many bits, but never fewer than the three planes (ones,
    # twos, fours) the adders always write (a smaller table would be indexed past its end).
    n_planes = max(3, (batch * bl).bit_length())
    # Work in cell updates: with cycle-to-cycle noise each cell draws four normals (~4x).
    drive = pick(_coincidence_driver, gp.size if ctoc > 0.0 else gp.size // 4)
    n_pulses, n_bad = drive(gp, gm, xt, xneg, dt, d, bl, alpha_up, alpha_down, frozen_p,
                            frozen_m, soft, ctoc, nkey, c, n_planes,
                            1 if drive is _coincidence_driver.serial else row_groups(shape[0]),
                            gamma)
    _raise_bad_alpha(n_bad)
    return n_pulses, int(clips.sum())


def _max_abs(name: str, v: np.ndarray) -> float:
    """``max|v|``, finite exactly when every entry is (NaN and Inf propagate)."""
    m = max_abs(v)
    if not math.isfinite(m):
        n_bad = int(np.count_nonzero(~np.isfinite(v)))
        raise ValueError(f"{name} contains {n_bad} NaN or Inf entries; allowed: finite values")
    return m


@jit(inline="always")
def _threshold(v, scale):
    """``(round(p · 2**32), cut)`` for ``p = min(1, scale |v|)``; ``P(u32 < thr) = thr/2**32``."""
    p = scale * abs(np.float64(v))
    cut = p > 1.0
    return np.uint64(min(p, 1.0) * _TWO32 + 0.5), cut


@jit(inline="always")
def _train(skey, idx0, thr, per, bl):
    """Bits ``t < bl`` of one pulse train: draw ``idx0 + ⌊t/2⌋`` gives bits ``t`` (low
    half) and ``t + 1`` (high half), each set when its 32 bits are below ``thr``."""
    train = _ZERO
    if thr > 0:
        pos = skey + (np.uint64(idx0) + _ONE) * _GAMMA  # draw_u64(skey, idx0 + tp) below
        for tp in range(per):
            # The position from tp, not carried from the previous draw: the draws are then
            # independent and the loop vectorises (1.8x on LeNet's conv1 rows, 50 176 × 6).
            h = _mix(pos + np.uint64(tp) * _GAMMA)
            bits = np.uint64((h & _MASK32) < thr) | (np.uint64((h >> _S32) < thr) << _ONE)
            train |= bits << np.uint64(2 * tp)
        # An odd bl leaves one surplus bit from the last draw.
        train &= _ALL >> np.uint64(64 - bl)
    return train


@jit
def _column_words(skey, idx0, per, thr, width, lo, hi):
    """One block of ``width ≤ 64`` columns: ``lo[tp]`` (``hi[tp]``) has bit ``jj`` set when column
    ``jj`` fires at bit ``2tp`` (``2tp + 1``), i.e. when the low (high) 32 bits of draw
    ``idx0 + jj·per + tp`` are below ``thr[jj]``.

    The words are built directly, a block of columns at a time: every draw of the block is
    independent of the others, so the loop over ``jj`` vectorises (AVX-512: eight SplitMix
    draws, compares and shifts per instruction) and no bit transpose is needed. Columns with
    ``thr = 0`` (zero inputs, padding up to a multiple of 8) are drawn too and never fire:
    cheaper than a branch.
    """
    for tp in range(per):
        lw = _ZERO
        hw = _ZERO
        for jj in range(width):
            h = _mix(skey + (np.uint64(idx0 + jj * per + tp) + _ONE) * _GAMMA)
            lw |= np.uint64((h & _MASK32) < thr[jj]) << np.uint64(jj)
            hw |= np.uint64((h >> _S32) < thr[jj]) << np.uint64(jj)
        lo[tp] = lw
        hi[tp] = hw


@pjit
def _pack_columns(x, scale, bl, key, ctr, xt, xneg, clips):
    """Column trains, transposed: bit ``j mod 64`` of ``xt[b·bl + t, j // 64]`` = column ``j``
    fires at bit ``t`` of sample ``b``; ``xneg[b]`` marks the columns with ``x_bj < 0``.

    Column ``j``'s bits are the same draws as a row's train (:func:`_train`: draw
    ``(b·n + j)·per + ⌊t/2⌋``, low half for even ``t``), made 64 columns at a time
    (:func:`_column_words`).
    """
    skey = stream_key(key, ctr)
    n = x.shape[1]
    per = (bl + 1) // 2
    for b in prange(x.shape[0]):
        thr = np.empty(64, dtype=np.uint64)
        lo = np.empty(per, dtype=np.uint64)
        hi = np.empty(per, dtype=np.uint64)
        n_clip = 0
        for w in range(xneg.shape[1]):
            j0 = 64 * w
            m = min(64, n - j0)
            neg = _ZERO
            for jj in range(m):
                v = x[b, j0 + jj]
                t, cut = _threshold(v, scale)
                thr[jj] = t
                n_clip += cut
                neg |= np.uint64(v < 0.0) << np.uint64(jj)
            thr[m:] = 0
            xneg[b, w] = neg
            # A narrow last block (conv1 of LeNet: 25 columns) draws whole vectors, not 64.
            _column_words(skey, (b * n + j0) * per, per, thr, min(64, (m + 7) & ~7), lo, hi)
            for t in range(bl):
                xt[b * bl + t, w] = hi[t >> 1] if t & 1 else lo[t >> 1]
        clips[b] = n_clip


@pjit
def _pack_trains(d, scale, bl, key, ctr, dt, clips):
    """Row trains: bit ``t`` of ``dt[b, i]`` = row ``i`` fires at bit ``t`` of sample ``b``."""
    skey = stream_key(key, ctr)
    n = d.shape[1]
    per = (bl + 1) // 2
    for b in prange(d.shape[0]):
        n_clip = 0
        for i in range(n):
            thr, cut = _threshold(d[b, i], scale)
            n_clip += cut
            dt[b, i] = _train(skey, (b * n + i) * per, thr, per, bl)
        clips[b] = n_clip


@intrinsic
def _ctz(typingctx, v):
    """Index of the lowest set bit of a non-zero uint64 (LLVM ``cttz``, one ``tzcnt``)."""
    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))
    return types.uint64(types.uint64), codegen


@pjit
def _coincidence_driver(gp, gm, xt, xneg, dt, d, bl, a_up, a_dn, fp, fm, soft, ctoc, nkey, ctr,
                        n_planes, n_groups, gamma):
    """Returns the totals ``(pulses, cells with a bad α)``."""
    nk = stream_key(nkey, ctr)
    n_out, n_in = gp.shape
    nw = xneg.shape[1]
    counts = np.zeros((n_out, 2), dtype=np.int64)
    for g in prange(n_groups):
        planes = np.empty((2, n_planes, nw), dtype=np.uint64)
        carry = np.empty((2, nw), dtype=np.uint64)
        tot = np.empty(64 * nw, dtype=np.int64)
        up = np.empty(64 * nw, dtype=np.int64)
        idx = np.empty(n_in, dtype=np.int64)
        group = np.empty((3, 8), dtype=np.int64)
        for i in range(g * n_out // n_groups, (g + 1) * n_out // n_groups):
            planes[:] = 0
            tot[:] = 0
            up[:] = 0
            top = _accumulate_row(xt, xneg, dt, d, i, bl, planes, carry, group)
            _planes_to_counts(planes[0], top, tot)
            _planes_to_counts(planes[1], top, up)
            k, nmax = _compact_counts(tot, up, n_in, idx)
            counts[i, 0], counts[i, 1] = apply_row(gp[i], gm[i], a_up[i], a_dn[i], fp[i], fm[i],
                                                   idx, k, up, tot, nmax, soft, ctoc, nk,
                                                   i * n_in, gamma)
    return counts[:, 0].sum(), counts[:, 1].sum()


@jit
def _accumulate_row(xt, xneg, dt, d, i, bl, planes, carry, group):
    """Add, for every firing bit ``(b, t)`` of row ``i``, column vector ``xt[b·bl + t]`` into
    the total counters and its opposite-sign part into the UP counters (groups of eight).

    ``carry``, ``group``: scratch. Returns the number of counter planes in use.
    """
    pos, smp, flip = group[0], group[1], group[2]
    k = 0
    top = 3
    for b in range(dt.shape[0]):
        train = dt[b, i]
        # UP where x and d have opposite signs: x < 0 if d > 0, x > 0 if d < 0 (all-ones).
        f = -1 if d[b, i] < 0.0 else 0
        while train:
            pos[k] = b * bl + np.int64(_ctz(train))
            smp[k] = b
            flip[k] = f
            k += 1
            train &= train - _ONE
            if k == 8:
                top = max(top, _add_group(xt, xneg, pos, smp, flip, planes, carry))
                k = 0
    if k:
        for q in range(k, 8):
            pos[q] = xt.shape[0] - 1
            smp[q] = xneg.shape[0] - 1
            flip[q] = 0
        top = max(top, _add_group(xt, xneg, pos, smp, flip, planes, carry))
    return top


@jit(inline="always")
def _csa(a, b, c):
    """Carry-save adder on 64 bit lanes: ``(carry, sum)`` of ``a + b + c``."""
    u = a ^ b
    return (a & b) | (u & c), u ^ c


@jit(inline="always")
def _add8(ones, twos, fours, v0, v1, v2, v3, v4, v5, v6, v7):
    """Add eight bit-vectors to the (ones, twos, fours) planes (Harley–Seal tree of seven
    carry-save adders); returns ``(ones, twos, fours, eights)``."""
    twos_a, ones = _csa(ones, v0, v1)
    twos_b, ones = _csa(ones, v2, v3)
    fours_a, twos = _csa(twos, twos_a, twos_b)
    twos_a, ones = _csa(ones, v4, v5)
    twos_b, ones = _csa(ones, v6, v7)
    fours_b, twos = _csa(twos, twos_a, twos_b)
    eights, fours = _csa(fours, fours_a, fours_b)
    return ones, twos, fours, eights


@jit
def _add_group(xt, xneg, pos, smp, flip, planes, carry):
    """Eight column vectors into both counters; the eights carry ripples up. Returns the top
    plane. Rows ``pos``, samples ``smp`` and sign flips ``flip`` (0 or -1) per vector."""
    # Locals, not array reads in the word loop: the stores to planes could alias them.
    p0, p1, p2, p3, p4, p5, p6, p7 = pos[0], pos[1], pos[2], pos[3], pos[4], pos[5], pos[6], pos[7]
    s0, s1, s2, s3, s4, s5, s6, s7 = smp[0], smp[1], smp[2], smp[3], smp[4], smp[5], smp[6], smp[7]
    f0, f1, f2, f3 = np.uint64(flip[0]), np.uint64(flip[1]), np.uint64(flip[2]), np.uint64(flip[3])
    f4, f5, f6, f7 = np.uint64(flip[4]), np.uint64(flip[5]), np.uint64(flip[6]), np.uint64(flip[7])
    for w in range(xt.shape[1]):
        v0, v1, v2, v3 = xt[p0, w], xt[p1, w], xt[p2, w], xt[p3, w]
        v4, v5, v6, v7 = xt[p4, w], xt[p5, w], xt[p6, w], xt[p7, w]
        planes[0, 0, w], planes[0, 1, w], planes[0, 2, w], carry[0, w] = _add8(
            planes[0, 0, w], planes[0, 1, w], planes[0, 2, w], v0, v1, v2, v3, v4, v5, v6, v7)
        planes[1, 0, w], planes[1, 1, w], planes[1, 2, w], carry[1, w] = _add8(
            planes[1, 0, w], planes[1, 1, w], planes[1, 2, w],
            v0 & (xneg[s0, w] ^ f0), v1 & (xneg[s1, w] ^ f1), v2 & (xneg[s2, w] ^ f2),
            v3 & (xneg[s3, w] ^ f3), v4 & (xneg[s4, w] ^ f4), v5 & (xneg[s5, w] ^ f5),
            v6 & (xneg[s6, w] ^ f6), v7 & (xneg[s7, w] ^ f7))
    return max(_ripple(planes[0], carry[0]), _ripple(planes[1], carry[1]))


@jit(inline="always")
def _ripple(pl, c):
    """Add carry vector ``c`` at plane 3 and propagate; returns planes in use (≥ 3)."""
    level = 3
    live = _ZERO
    for w in range(c.size):
        live |= c[w]
    while live and level < pl.shape[0]:
        live = _ZERO
        for w in range(c.size):
            cw = c[w]
            t = pl[level, w] & cw
            pl[level, w] ^= cw
            c[w] = t
            live |= t
        level += 1
    return level


@jit
def _planes_to_counts(pl, top, cnt):
    """``cnt[64 w + b] = Σ_l bit b of pl[l, w] · 2**l`` for the planes ``l < top``."""
    for w in range(pl.shape[1]):
        for level in range(top):
            word = pl[level, w]
            if word:
                for b in range(64):
                    cnt[64 * w + b] += np.int64((word >> np.uint64(b)) & _ONE) << level


@jit
def _compact_counts(tot, up, n_in, idx):
    """Turn ``tot`` into the DOWN counts (``tot - up``) and list the pulsed cells in ``idx``.

    Returns ``(k, max count)`` with ``idx[:k]`` the cells with at least one pulse.
    """
    k = 0
    nmax = 0
    for j in range(n_in):
        t = tot[j]
        tot[j] = t - up[j]
        idx[k] = j
        k += t > 0
        nmax = max(nmax, t)
    return k, nmax
