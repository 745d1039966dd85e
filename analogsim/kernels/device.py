"""The device model of the pulse updates: what ``n`` pulses do to a pair of conductances.

Device model
------------
A cell ``(i, j)`` is a pair of normalised conductances ``G+ = gp``, ``G- = gm`` in ``[0, 1]``
with ``w = w_max (G+ - G-)``. An UP pulse (increases ``w``) potentiates ``G+`` and depresses
``G-``, a DOWN pulse the reverse, both with the cell's step ``α`` (``α_up`` for UP, ``α_down``
for DOWN pulses: per-cell arrays that already include asymmetry and device-to-device
variation). Per device, ``n`` same-sign pulses give:

* soft bounds: potentiation ``G ← G + (1 - G)(1 - (1 - α)^n)``, depression
  ``G ← G (1 - α)^n`` (the closed form of ``n`` single steps ``G + α(1 - G)`` resp.
  ``G - αG``). Written this way, a factor ``(1 - α)^0 = 1`` leaves ``G`` exactly as it was
  (for ``G`` in ``[0, 1]``), which is how cells without pulses and stuck devices are kept:
  no select on the stored value, so row loops store unconditionally;
* hard bounds: ``G ← clip(G ± n α/2, 0, 1)`` (exact for same-sign steps: once a bound is
  reached, further steps stay there).

* power step (``gamma > 0``, the ``pow`` step model; aihwkit's ``PowStepDevice`` with the
  device's range ``[0, 1]`` as its bounds): one pulse potentiates ``G ← G + α (1 - G)^γ``
  or depresses ``G ← G - α G^γ``, clamped to ``[0, 1]`` (for ``γ < 1`` a step near a
  bound can exceed the distance to it). ``γ = 1`` is soft bounds. There is no closed form
  for ``n`` pulses, so they are applied one by one (:func:`_pow_device`), always on the
  general per-cell path; ``gamma = 0`` (the default) means "no power step" and leaves
  every other path exactly as it was.

Cycle-to-cycle noise ``ctoc`` (relative std of one pulse's step) enters through an effective
pulse count ``n_eff = max(0, n + ctoc √n ξ)``, ``ξ ~ N(0, 1)`` drawn per device and per
direction (or, with ``shared``, once per cell and direction for both devices of the pair:
the pulse's step as a whole varies, so the weight step has relative std ``ctoc`` — with
independent devices it is ``ctoc/√2`` while neither device is at a bound), used in place
of ``n`` above. Before the floor this matches the mean and variance
of a sum of ``n`` i.i.d. steps ``α(1 + ctoc ξ_k)`` exactly for hard bounds; for soft bounds it
is a first-order approximation (each real step also depends on the state it meets; with the
power step a fractional ``n_eff`` ends in one partial pulse of relative size
``n_eff - ⌊n_eff⌋``). The
floor (rare unless ``ctoc ≳ √n``) keeps pulses from moving a device backwards.

Stuck devices (``frozen_p`` / ``frozen_m`` = 1) never change.

Order within a call: the pulse counts of all cells are formed first from the state at the
start of the call (expected mode: from ``Δw``; stochastic mode: coincidences summed over the
batch), then each cell receives its UP pulses and then its DOWN pulses. Both kernels end in
the same per-cell worker, :func:`_apply_cells`.

Rows are updated by one of four workers, all bit-identical for the same counts:
:func:`_apply_cells` visits only the pulsed cells (any counts, cycle-to-cycle noise);
the ``_dense_*`` loops run every cell of a row through branch-free straight-line code that
vectorises (no ctoc, counts < 256); the ``_one_way_*`` loops are the same for rows whose
cells are pulsed in one direction only (expected mode), with one power instead of two;
:func:`_dense_ctoc` takes rows with cycle-to-cycle noise of which at least a quarter is
pulsed: the normals of its pulsed cells in one vectorised pass, then a branch-free loop (soft bounds
through the polynomial ``exp``/``log`` of :mod:`.elementary`, which the per-cell path
uses too). Measured on 256 × 784 with ctoc 0.3 (one thread): 12.7 against 23.7 ns per cell
(hard bounds), 27 against 139 ns (soft bounds, where libm's ``pow`` was the cost).
"""

from __future__ import annotations

import math

import numpy as np

from ._numba import jit
from .elementary import log_unit, pow_from_log
from .rng import draw_normal, fill_normal_halves, fill_normal_pairs

__all__ = ["apply_row", "apply_one_way_row", "one_way_cell", "row_is_clean"]

_ONE_BITS = np.uint32(0x3F800000)  # the bits of 1.0f


@jit(inline="always")
def _ipow(base, n, nbits):
    """``base**n`` by binary powering over a fixed ``nbits`` (≥ bit length of ``n``).

    Selects instead of branches: the trip count is the same for every cell of a row, so the
    loop predicts perfectly; one pulse costs one multiply, no libm ``pow``.
    """
    f = 1.0
    for k in range(nbits):
        f = f * base if (n >> k) & 1 else f
        base = base * base
    return f


@jit(inline="always")
def _ipow_unrolled(base, n, wide):
    """``_ipow(base, n, 8 if wide else 4)`` unrolled (``n < 256`` resp. ``< 16``).

    Straight-line code, so the dense row loop vectorises; same multiplications in the same
    order as :func:`_ipow`, hence bit-identical.
    """
    f = base if n & 1 else 1.0
    base = base * base
    f = f * base if n & 2 else f
    base = base * base
    f = f * base if n & 4 else f
    base = base * base
    f = f * base if n & 8 else f
    if wide:
        base = base * base
        f = f * base if n & 16 else f
        base = base * base
        f = f * base if n & 32 else f
        base = base * base
        f = f * base if n & 64 else f
        base = base * base
        f = f * base if n & 128 else f
    return f


@jit(inline="always")
def _soft(p, m, fp, fm, up):
    """Soft-bounds stage with factors ``fp`` (G+) and ``fm`` (G-): the potentiated device
    becomes ``G + (1 - G)(1 - f)``, the depressed one ``G f``; ``f = 1`` changes nothing."""
    if up:
        return p + (1.0 - p) * (1.0 - fp), m * fm
    return p * fp, m + (1.0 - m) * (1.0 - fm)


@jit(inline="always")
def _hard(p, m, dp, dm, up):
    """Hard-bounds stage: steps ``dp``, ``dm`` (≥ 0) towards the bound of each device."""
    if up:
        return min(p + dp, 1.0), max(m - dm, 0.0)
    return max(p - dp, 0.0), min(m + dm, 1.0)


@jit(inline="always")
def _pow_pulse(g, alpha, pot, gamma, s):
    """One power-step pulse of relative size ``s`` on one device (``pot``: potentiation).

    ``G + s α (1 - G)^γ`` resp. ``G - s α G^γ``, kept in ``[0, 1]`` (for ``γ < 1`` a step
    near a bound can exceed the distance to it).
    """
    if pot:
        return min(g + s * alpha * math.pow(1.0 - g, gamma), 1.0)
    return max(g - s * alpha * math.pow(g, gamma), 0.0)


@jit(inline="always")
def _pow_device(g, alpha, e, pot, gamma):
    """One device after ``e ≥ 0`` (effective, real) power-step pulses of one direction.

    There is no closed form for ``γ ≠ 1``: ``⌊e⌋`` whole pulses, one after another, then a
    pulse of relative size ``e - ⌊e⌋`` (only with cycle-to-cycle noise is ``e`` fractional).
    """
    k = int(e)
    for _ in range(k):
        g = _pow_pulse(g, alpha, pot, gamma, 1.0)
    if e > k:
        g = _pow_pulse(g, alpha, pot, gamma, e - k)
    return g


@jit(inline="always")
def _stage(p, m, alpha, n, up, soft, ctoc, shared, nk, idx0, nbits, stuck_p, stuck_m, gamma):
    """Pair ``(p, m)`` after ``n`` pulses of one direction (``n = 0``: unchanged).

    ``gamma > 0``: power-step response (:func:`_pow_device`) instead of soft/hard bounds.
    Cycle-to-cycle noise without it is :func:`_ctoc_stage`, the dense rows' stage, given
    this cell's two normals (drawn only when pulsed; with ``shared`` one, for both devices).
    """
    if ctoc > 0.0 and gamma == 0.0:
        z_p = draw_normal(nk, idx0) if n > 0 else 0.0
        z_m = z_p if shared else (draw_normal(nk, idx0 + 1) if n > 0 else 0.0)
        return _ctoc_stage(p, m, alpha, n, z_p, z_m, up, soft, ctoc, stuck_p, stuck_m)
    ep = em = np.float64(n)
    if ctoc > 0.0 and n > 0:
        sn = ctoc * math.sqrt(n)
        ep = max(n + sn * draw_normal(nk, idx0), 0.0)
        em = ep if shared else max(n + sn * draw_normal(nk, idx0 + 1), 0.0)
    if gamma > 0.0:
        p2 = p if stuck_p else _pow_device(p, alpha, ep, up, gamma)
        m2 = m if stuck_m else _pow_device(m, alpha, em, not up, gamma)
        return p2, m2
    if soft:
        fp = _ipow(1.0 - alpha, n, nbits)
        return _soft(p, m, 1.0 if stuck_p else fp, 1.0 if stuck_m else fp, up)
    p2, m2 = _hard(p, m, 0.5 * alpha * ep, 0.5 * alpha * em, up)
    # A hard-bounds step of 0 is not an identity at the bounds' sides of G: keep G exactly.
    return (p if n == 0 or stuck_p else p2), (m if n == 0 or stuck_m else m2)


@jit(inline="always")
def _alpha_ok(a):
    """A step must lie in [0, 1] (NaN fails): beyond 1 a soft-bound pulse overshoots."""
    return (a >= 0.0) & (a <= 1.0)


@jit
def _apply_cells(gpr, gmr, aur, adr, fpr, fmr, idx, k, nup, ndn, nbits, soft, ctoc, shared,
                 nk, base, gamma):
    """Apply ``nup[j]`` UP then ``ndn[j]`` DOWN pulses to the cells ``j = idx[:k]`` of a row.

    ctoc draws of cell ``c = base + j`` are ``4c + {0, 1, 2, 3}`` for (UP, G+), (UP, G-),
    (DOWN, G+), (DOWN, G-); with ``shared`` only ``4c`` (UP) and ``4c + 2`` (DOWN), each
    for both devices. Returns ``(pulses applied, cells refused for a bad α)``.
    """
    n_pulses = 0
    n_bad = 0
    for q in range(k):
        j = idx[q]
        nu = nup[j]
        nd = ndn[j]
        au = np.float64(aur[j])
        ad = np.float64(adr[j])
        if (nu > 0 and not _alpha_ok(au)) or (nd > 0 and not _alpha_ok(ad)):
            n_bad += 1
            continue
        sp, sm = fpr[j] != 0, fmr[j] != 0
        c4 = 4 * (base + j)
        p, m = _stage(np.float64(gpr[j]), np.float64(gmr[j]), au, nu, True, soft, ctoc, shared,
                      nk, c4, nbits, sp, sm, gamma)
        p, m = _stage(p, m, ad, nd, False, soft, ctoc, shared, nk, c4 + 2, nbits, sp, sm, gamma)
        gpr[j] = np.float32(p)
        gmr[j] = np.float32(m)
        n_pulses += nu + nd
    return n_pulses, n_bad


@jit
def apply_row(gpr, gmr, aur, adr, fpr, fmr, idx, k, nup, ndn, nmax, soft, ctoc, shared, nk, base,
              gamma=0.0):
    """Device update of one row given its counts: dense or compacted, same result.

    Dense (every cell, branch-free, vectorised) pays off once about a quarter of the row is
    pulsed; it needs ctoc = 0, counts < 256 and no power-step response (``gamma = 0``).
    Otherwise only the pulsed cells are visited.
    """
    if ctoc > 0.0 and gamma == 0.0 and 4 * k >= gpr.size:
        return _dense_ctoc(gpr, gmr, aur, adr, fpr, fmr, nup, ndn, soft, ctoc, shared, nk, base)
    if ctoc == 0.0 and gamma == 0.0 and nmax < 256 and 4 * k >= gpr.size:
        args = (gpr, gmr, aur, adr, fpr, fmr, nup, ndn)
        if not soft:
            return _dense_hard(*args)
        if row_is_clean(aur, adr, fpr, fmr):
            return _dense_soft4c(*args) if nmax < 16 else _dense_soft8c(*args)
        return _dense_soft4(*args) if nmax < 16 else _dense_soft8(*args)
    return _apply_cells(gpr, gmr, aur, adr, fpr, fmr, idx, k, nup, ndn, _bit_length(nmax), soft,
                        ctoc, shared, nk, base, gamma)


@jit(inline="always")
def _cell_counts(nup, ndn, aur, adr, j, check):
    """Counts and steps ``(n_up, n_down, α_up, α_down, refused)`` of cell ``j``; with
    ``check``, a cell whose step is bad for a direction it is pulsed in gets no pulse.

    Bitwise, not short-circuit, logic: keeps the row loops free of branches.
    """
    nu = nup[j]
    nd = ndn[j]
    au = np.float64(aur[j])
    ad = np.float64(adr[j])
    bad = False
    if check:
        bad = ((nu > 0) & (not _alpha_ok(au))) | ((nd > 0) & (not _alpha_ok(ad)))
        nu = 0 if bad else nu
        nd = 0 if bad else nd
    return nu, nd, au, ad, bad


@jit(inline="always")
def _dense_body(gpr, gmr, aur, adr, fpr, fmr, nup, ndn, soft, wide, clean):
    """:func:`_apply_cells` over a whole row with full-length counts, no ctoc, counts < 256.

    Used when a large share of the row is pulsed: every cell goes through the same
    branch-free arithmetic (cells without pulses are rewritten with their own value).
    ``clean``: as in :func:`one_way_cell`.
    """
    n_pulses = 0
    n_bad = 0
    for j in range(gpr.size):
        nu, nd, au, ad, bad = _cell_counts(nup, ndn, aur, adr, j, not clean)
        sp, sm = fpr[j] != 0, fmr[j] != 0
        p = np.float64(gpr[j])
        m = np.float64(gmr[j])
        if soft:
            fu = _ipow_unrolled(1.0 - au, nu, wide)
            fd = _ipow_unrolled(1.0 - ad, nd, wide)
            if clean:
                p2, m2 = _soft(p, m, fu, fu, True)
                p2, m2 = _soft(p2, m2, fd, fd, False)
            else:
                p2, m2 = _soft(p, m, 1.0 if sp else fu, 1.0 if sm else fu, True)
                p2, m2 = _soft(p2, m2, 1.0 if sp else fd, 1.0 if sm else fd, False)
        else:
            p2, m2 = _hard(p, m, 0.5 * au * np.float64(nu), 0.5 * au * np.float64(nu), True)
            p2 = p if (nu == 0) | sp else p2
            m2 = m if (nu == 0) | sm else m2
            p3, m3 = _hard(p2, m2, 0.5 * ad * np.float64(nd), 0.5 * ad * np.float64(nd), False)
            p2 = p2 if (nd == 0) | sp else p3
            m2 = m2 if (nd == 0) | sm else m3
        gpr[j] = np.float32(p2)
        gmr[j] = np.float32(m2)
        n_pulses += nu + nd
        n_bad += bad
    return n_pulses, n_bad


# One compiled loop per case: constant flags let the loop body fold to straight-line code.
@jit
def _dense_soft4(gpr, gmr, aur, adr, fpr, fmr, nup, ndn):
    return _dense_body(gpr, gmr, aur, adr, fpr, fmr, nup, ndn, True, False, False)


@jit
def _dense_soft8(gpr, gmr, aur, adr, fpr, fmr, nup, ndn):
    return _dense_body(gpr, gmr, aur, adr, fpr, fmr, nup, ndn, True, True, False)


@jit
def _dense_soft4c(gpr, gmr, aur, adr, fpr, fmr, nup, ndn):
    return _dense_body(gpr, gmr, aur, adr, fpr, fmr, nup, ndn, True, False, True)


@jit
def _dense_soft8c(gpr, gmr, aur, adr, fpr, fmr, nup, ndn):
    return _dense_body(gpr, gmr, aur, adr, fpr, fmr, nup, ndn, True, True, True)


@jit
def _dense_hard(gpr, gmr, aur, adr, fpr, fmr, nup, ndn):
    return _dense_body(gpr, gmr, aur, adr, fpr, fmr, nup, ndn, False, False, False)


@jit(inline="always")
def _ctoc_stage(p, m, alpha, n, z_p, z_m, up, soft, ctoc, stuck_p, stuck_m):
    """:func:`_stage` with ctoc > 0 and no power step, given the pair's two normals, as
    selects: ``n = 0`` gives ``n_eff = 0`` (a factor of exactly 1, a step of 0, kept)."""
    nf = np.float64(n)
    sn = ctoc * math.sqrt(nf)
    ep = max(nf + sn * z_p, 0.0)
    em = max(nf + sn * z_m, 0.0)
    if soft:
        lg = log_unit(1.0 - alpha)
        fp = pow_from_log(lg, ep)
        fm = pow_from_log(lg, em)
        return _soft(p, m, 1.0 if stuck_p else fp, 1.0 if stuck_m else fm, up)
    p2, m2 = _hard(p, m, 0.5 * alpha * ep, 0.5 * alpha * em, up)
    return (p if (n == 0) | stuck_p else p2), (m if (n == 0) | stuck_m else m2)


@jit(inline="always")
def _ctoc_body(gpr, gmr, aur, adr, fpr, fmr, nup, ndn, z, soft, ctoc):
    """:func:`_apply_cells` over a whole row with ctoc, the normals given (``z[4j + k]``),
    branch-free; the same bits (the per-cell path runs the same :func:`_ctoc_stage`)."""
    n_pulses = 0
    n_bad = 0
    for j in range(gpr.size):
        nu, nd, au, ad, bad = _cell_counts(nup, ndn, aur, adr, j, True)
        sp, sm = fpr[j] != 0, fmr[j] != 0
        p, m = _ctoc_stage(np.float64(gpr[j]), np.float64(gmr[j]), au, nu, z[4 * j],
                           z[4 * j + 1], True, soft, ctoc, sp, sm)
        p, m = _ctoc_stage(p, m, ad, nd, z[4 * j + 2], z[4 * j + 3], False, soft, ctoc, sp, sm)
        gpr[j] = np.float32(p)
        gmr[j] = np.float32(m)
        n_pulses += nu + nd
        n_bad += bad
    return n_pulses, n_bad


@jit(error_model="numpy")
def _ctoc_soft(gpr, gmr, aur, adr, fpr, fmr, nup, ndn, z, ctoc):
    return _ctoc_body(gpr, gmr, aur, adr, fpr, fmr, nup, ndn, z, True, ctoc)


@jit(error_model="numpy")
def _ctoc_hard(gpr, gmr, aur, adr, fpr, fmr, nup, ndn, z, ctoc):
    return _ctoc_body(gpr, gmr, aur, adr, fpr, fmr, nup, ndn, z, False, ctoc)


@jit
def _dense_ctoc(gpr, gmr, aur, adr, fpr, fmr, nup, ndn, soft, ctoc, shared, nk, base):
    """Every cell of a row with cycle-to-cycle noise: the normals of the pulsed (cell,
    direction) pairs drawn in one vectorised pass (:func:`.rng.fill_normal_pairs`, the same
    numbers as ``draw_normal`` one by one), then the branch-free device loop. Pays off once
    a quarter of the row is pulsed.

    Normals ``4c + 2d + {0, 1}`` (cell ``c = base + j``, direction ``d``: 0 UP, 1 DOWN) are
    the two halves of 64-bit draw ``2c + d``; only the draws of pulsed pairs are made, the
    other entries of ``z`` stay 0 (a count of 0 ignores its normal). With ``shared`` only
    the first half is used (:func:`.rng.fill_normal_halves`), for both devices.
    """
    n = gpr.size
    pairs = np.empty(2 * n, dtype=np.int64)
    m = 0
    for j in range(n):
        pairs[m] = 2 * (base + j)
        m += nup[j] > 0
        pairs[m] = 2 * (base + j) + 1
        m += ndn[j] > 0
    # Normals per pulsed pair: 1 shared by both devices, or 2 (G+ then G-).
    per = 1 if shared else 2
    zc = np.empty(per * m, dtype=np.float64)
    scratch = np.empty(m, dtype=np.uint64)
    if shared:
        fill_normal_halves(nk, pairs[:m], zc, scratch)
    else:
        fill_normal_pairs(nk, pairs[:m], zc, scratch)
    z = np.zeros(4 * n, dtype=np.float64)
    for q in range(m):
        at = 2 * (pairs[q] - 2 * base)
        z[at] = zc[per * q]
        z[at + 1] = zc[per * q + per - 1]
    if soft:
        return _ctoc_soft(gpr, gmr, aur, adr, fpr, fmr, nup, ndn, z, ctoc)
    return _ctoc_hard(gpr, gmr, aur, adr, fpr, fmr, nup, ndn, z, ctoc)


@jit(inline="always")
def _bit_length(n):
    nb = 0
    while (n >> nb) > 0:
        nb += 1
    return nb


# --------------------------------------------------------------------------- one direction


@jit
def apply_one_way_row(gpr, gmr, aur, adr, fpr, fmr, idx, k, nup, ndn, nmax, soft, ctoc, shared,
                      nk, base, gamma=0.0):
    """:func:`apply_row` for counts where no cell has both UP and DOWN pulses.

    Then a cell's UP-then-DOWN update is a single stage, so the dense path computes one
    power per cell. Sparse rows, ctoc, the power-step response and counts ≥ 256 take the
    general path (after compacting the pulsed cells into ``idx``; ``k`` is their number).
    """
    if ctoc > 0.0 and gamma == 0.0 and 4 * k >= gpr.size:
        return _dense_ctoc(gpr, gmr, aur, adr, fpr, fmr, nup, ndn, soft, ctoc, shared, nk, base)
    if ctoc == 0.0 and gamma == 0.0 and nmax < 256 and 4 * k >= gpr.size:
        if not soft:
            return _one_way_hard(gpr, gmr, aur, adr, fpr, fmr, nup, ndn)
        if nmax < 16:
            return _one_way_soft4(gpr, gmr, aur, adr, fpr, fmr, nup, ndn)
        return _one_way_soft8(gpr, gmr, aur, adr, fpr, fmr, nup, ndn)
    q = 0
    for j in range(gpr.size):
        idx[q] = j
        q += (nup[j] | ndn[j]) != 0
    return _apply_cells(gpr, gmr, aur, adr, fpr, fmr, idx, q, nup, ndn, _bit_length(nmax), soft,
                        ctoc, shared, nk, base, gamma)


@jit(inline="always")
def one_way_cell(p, m, au, ad, sp, sm, n, up, soft, wide, clean=False):
    """One cell pulsed ``n`` times in one direction; ``sp``/``sm``: stuck devices.

    Returns ``(G+, G-, pulses applied, refused)``: a cell whose step for its direction is
    bad gets no pulse. Both steps come in loaded and one is selected (a load under a select
    would be compiled per lane). ``clean`` (a constant): the caller has checked that the row
    has no stuck device and only valid steps, so neither test is made per cell.
    """
    alpha = au if up else ad
    bad = False
    if not clean:
        bad = (n > 0) & (not _alpha_ok(alpha))
        n = 0 if bad else n
    if soft:
        f = _ipow_unrolled(1.0 - alpha, n, wide)
        if clean:
            p2, m2 = _soft(p, m, f, f, up)
        else:
            p2, m2 = _soft(p, m, 1.0 if sp else f, 1.0 if sm else f, up)
    else:
        dd = 0.5 * alpha * np.float64(n)
        p2, m2 = _hard(p, m, dd, dd, up)
        p2 = p if (n == 0) | sp else p2
        m2 = m if (n == 0) | sm else m2
    return p2, m2, n, bad


@jit
def row_is_clean(aur, adr, fpr, fmr):
    """No stuck device and every step in ``[+0, 1]`` (compared as float32 bits, vectorised:
    non-negative floats order like their bits; -0.0, negatives and NaN fail)."""
    au = aur.view(np.uint32)
    ad = adr.view(np.uint32)
    m = np.uint32(0)
    stuck = np.uint8(0)
    # Explicit narrow types: numba would widen them to 64 bits (fewer lanes per vector).
    for j in range(au.size):
        m = max(m, np.uint32(max(au[j], ad[j])))
        stuck = np.uint8(stuck | fpr[j] | fmr[j])
    return m <= _ONE_BITS and stuck == 0


@jit(inline="always")
def _one_way_body(gpr, gmr, aur, adr, fpr, fmr, nup, ndn, soft, wide):
    """Every cell of a row, one stage per cell (``nup[j] · ndn[j] = 0``), branch-free.

    Equal to :func:`_dense_body`: the stage of the direction without pulses leaves the pair
    unchanged.
    """
    n_pulses = 0
    n_bad = 0
    for j in range(gpr.size):
        nu = nup[j]
        p2, m2, n, bad = one_way_cell(np.float64(gpr[j]), np.float64(gmr[j]),
                                      np.float64(aur[j]), np.float64(adr[j]), fpr[j] != 0,
                                      fmr[j] != 0, nu + ndn[j], nu > 0, soft, wide)
        gpr[j] = np.float32(p2)
        gmr[j] = np.float32(m2)
        n_pulses += n
        n_bad += bad
    return n_pulses, n_bad


@jit
def _one_way_soft4(gpr, gmr, aur, adr, fpr, fmr, nup, ndn):
    return _one_way_body(gpr, gmr, aur, adr, fpr, fmr, nup, ndn, True, False)


@jit
def _one_way_soft8(gpr, gmr, aur, adr, fpr, fmr, nup, ndn):
    return _one_way_body(gpr, gmr, aur, adr, fpr, fmr, nup, ndn, True, True)


@jit
def _one_way_hard(gpr, gmr, aur, adr, fpr, fmr, nup, ndn):
    return _one_way_body(gpr, gmr, aur, adr, fpr, fmr, nup, ndn, False, False)
