"""Pulse-update kernels: expected-count and stochastic-coincidence updates of device pairs.

Device model
------------
A cell ``(i, j)`` is a pair of normalised conductances ``G+ = gp``, ``G- = gm`` in ``[0, 1]``
with ``w = w_max (G+ - G-)``. An UP pulse (increases ``w``) potentiates ``G+`` and depresses
``G-``, a DOWN pulse the reverse, both with the cell's step ``α`` (``α_up`` for UP, ``α_down``
for DOWN pulses: per-cell arrays that already include asymmetry and device-to-device
variation). Per device, ``n`` same-sign pulses give:

* soft bounds: potentiation ``G ← 1 - (1 - G)(1 - α)^n``, depression ``G ← G (1 - α)^n``
  (the closed form of ``n`` single steps ``G + α(1 - G)`` resp. ``G - αG``);
* hard bounds: ``G ← clip(G ± n α/2, 0, 1)`` (exact for same-sign steps: once a bound is
  reached, further steps stay there).

Cycle-to-cycle noise ``ctoc`` (relative std of one pulse's step) enters through an effective
pulse count ``n_eff = max(0, n + ctoc √n ξ)``, ``ξ ~ N(0, 1)`` drawn per device and per
direction, used in place of ``n`` above. Before the floor this matches the mean and variance
of a sum of ``n`` i.i.d. steps ``α(1 + ctoc ξ_k)`` exactly for hard bounds; for soft bounds it
is a first-order approximation (each real step also depends on the state it meets). The
floor (rare unless ``ctoc ≳ √n``) keeps pulses from moving a device backwards.

Stuck devices (``frozen_p`` / ``frozen_m`` = 1) never change.

Order within a call: the pulse counts of all cells are formed first from the state at the
start of the call (expected mode: from ``Δw``; stochastic mode: coincidences summed over the
batch), then each cell receives its UP pulses and then its DOWN pulses. Both kernels end in
the same per-cell worker, :func:`_apply_cells`.

Performance notes
-----------------
Both kernels first *compact* the pulsed cells of a row (index and counts, written
branch-free) and then run the device model only on those, so the many cells without a
pulse cost a few instructions and no mispredicted branch. Coincidences in stochastic mode
are counted sparsely: for row ``i`` every firing bit ``(b, t)`` of its train adds the
bit-vector "which columns fire at ``(b, t)``" into bit-sliced counters (carry-save adders,
64 columns per machine word), which costs ``O(density · B · bl · n_in / 64)`` word
operations per row instead of ``O(B · bl · n_in / 64)`` for a dense AND-popcount product.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ._numba import jit, pjit, prange
from .read import _check_array, _check_bool, _check_int, _check_real
from .rng import check_key, draw_normal, draw_u64, draw_uniform, stream_key, sub_key

__all__ = ["pulse_update_expected", "pulse_update_stochastic"]

# Sub-key tags: each kind of draw in an update call has its own independent stream.
_TAG_CTOC, _TAG_X_BITS, _TAG_D_BITS = 1, 2, 3
_MASK32 = np.uint64(0xFFFFFFFF)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_ZERO = np.uint64(0)
_ONE = np.uint64(1)
_S32 = np.uint64(32)
_TWO32 = 4294967296.0


# --------------------------------------------------------------------------- device worker


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
def _stage(p, m, alpha, n, up, soft, ctoc, nk, idx0, nbits):
    """Pair ``(p, m)`` after ``n`` pulses of one direction (``n = 0``: unchanged)."""
    ep = em = np.float64(n)
    if ctoc > 0.0 and n > 0:
        sn = ctoc * math.sqrt(n)
        ep = max(n + sn * draw_normal(nk, idx0), 0.0)
        em = max(n + sn * draw_normal(nk, idx0 + 1), 0.0)
    if soft:
        if ctoc > 0.0:
            fp = math.pow(1.0 - alpha, ep)
            fm = math.pow(1.0 - alpha, em)
        else:
            fp = fm = _ipow(1.0 - alpha, n, nbits)
        p2 = 1.0 - (1.0 - p) * fp if up else p * fp
        m2 = m * fm if up else 1.0 - (1.0 - m) * fm
    else:
        dp = 0.5 * alpha * ep
        dm = 0.5 * alpha * em
        p2 = min(p + dp, 1.0) if up else max(p - dp, 0.0)
        m2 = max(m - dm, 0.0) if up else min(m + dm, 1.0)
    # 1 - (1 - p) is not always p in floating point: keep the old value exactly.
    return (p if n == 0 else p2), (m if n == 0 else m2)


@jit(inline="always")
def _alpha_ok(a):
    """A step must lie in [0, 1] (NaN fails): beyond 1 a soft-bound pulse overshoots."""
    return (a >= 0.0) & (a <= 1.0)


@jit
def _apply_cells(gpr, gmr, aur, adr, fpr, fmr, idx, k, nup, ndn, nbits, soft, ctoc, nk, base):
    """Apply ``nup[j]`` UP then ``ndn[j]`` DOWN pulses to the cells ``j = idx[:k]`` of a row.

    ctoc draws of cell ``c = base + j`` are ``4c + {0, 1, 2, 3}`` for (UP, G+), (UP, G-),
    (DOWN, G+), (DOWN, G-). Returns ``(pulses applied, cells refused for a bad α)``.
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
        p = np.float64(gpr[j])
        m = np.float64(gmr[j])
        c4 = 4 * (base + j)
        p2, m2 = _stage(p, m, au, nu, True, soft, ctoc, nk, c4, nbits)
        p2, m2 = _stage(p2, m2, ad, nd, False, soft, ctoc, nk, c4 + 2, nbits)
        gpr[j] = np.float32(p if fpr[j] else p2)
        gmr[j] = np.float32(m if fmr[j] else m2)
        n_pulses += nu + nd
    return n_pulses, n_bad


@jit
def _apply_row(gpr, gmr, aur, adr, fpr, fmr, idx, k, nup, ndn, nmax, soft, ctoc, nk, base):
    """Device update of one row given its counts: dense or compacted, same result.

    Dense (every cell, branch-free, vectorised) pays off once about a quarter of the row is
    pulsed; it needs ctoc = 0 and counts < 256. Otherwise only the pulsed cells are visited.
    """
    if ctoc == 0.0 and nmax < 256 and 4 * k >= gpr.size:
        return _apply_dense(gpr, gmr, aur, adr, fpr, fmr, nup, ndn, soft, nmax >= 16)
    return _apply_cells(gpr, gmr, aur, adr, fpr, fmr, idx, k, nup, ndn, _bit_length(nmax), soft,
                        ctoc, nk, base)


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
def _stage_dense(p, m, alpha, n, up, soft, wide):
    """:func:`_stage` without ctoc for ``n < 256`` (``< 16`` unless ``wide``), branch-free."""
    if soft:
        f = _ipow_unrolled(1.0 - alpha, n, wide)
        p2 = 1.0 - (1.0 - p) * f if up else p * f
        m2 = m * f if up else 1.0 - (1.0 - m) * f
    else:
        dd = 0.5 * alpha * np.float64(n)
        p2 = min(p + dd, 1.0) if up else max(p - dd, 0.0)
        m2 = max(m - dd, 0.0) if up else min(m + dd, 1.0)
    return (p if n == 0 else p2), (m if n == 0 else m2)


@jit
def _apply_dense(gpr, gmr, aur, adr, fpr, fmr, nup, ndn, soft, wide):
    """:func:`_apply_cells` over a whole row with full-length counts, no ctoc, counts < 256.

    Used when a large share of the row is pulsed: every cell goes through the same
    branch-free arithmetic (cells without pulses are rewritten with their own value).
    """
    n_pulses = 0
    n_bad = 0
    for j in range(gpr.size):
        nu = nup[j]
        nd = ndn[j]
        au = np.float64(aur[j])
        ad = np.float64(adr[j])
        # Bitwise, not short-circuit, logic: keeps the loop free of branches.
        ok_u = _alpha_ok(au)
        ok_d = _alpha_ok(ad)
        bad = ((nu > 0) & (not ok_u)) | ((nd > 0) & (not ok_d))
        nu = 0 if bad else nu
        nd = 0 if bad else nd
        p = np.float64(gpr[j])
        m = np.float64(gmr[j])
        p2, m2 = _stage_dense(p, m, au, nu, True, soft, wide)
        p2, m2 = _stage_dense(p2, m2, ad, nd, False, soft, wide)
        gpr[j] = np.float32(p if fpr[j] else p2)
        gmr[j] = np.float32(m if fmr[j] else m2)
        n_pulses += nu + nd
        n_bad += bad
    return n_pulses, n_bad


@jit(inline="always")
def _bit_length(n):
    nb = 0
    while (n >> nb) > 0:
        nb += 1
    return nb


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


def _raise_bad_alpha(counts: np.ndarray) -> None:
    n_bad = int(counts[:, 2].sum())
    if n_bad:
        raise ValueError(f"alpha_up/alpha_down: {n_bad} pulsed cells have a step outside [0, 1] "
                         "or NaN; allowed: 0 <= alpha <= 1 (those cells were left unchanged, "
                         "the other cells were updated)")


# --------------------------------------------------------------------------- expected mode


def pulse_update_expected(gp: np.ndarray, gm: np.ndarray, dw: np.ndarray, *,
                          alpha_up: np.ndarray, alpha_down: np.ndarray, frozen_p: np.ndarray,
                          frozen_m: np.ndarray, dw_min: float, soft: bool, ctoc: float,
                          max_pulses: int, key: int, counter: int) -> tuple[int, int]:
    """Pulse each cell ``round_stochastic(Δw / Δw_min)`` times, in place.

    Per cell, with ``a = |Δw_ij| · (1/Δw_min)`` and ``u = rand_uniform(key, counter,
    i·n_in + j)``::

        n_ij = floor(a) + [u < a - floor(a)]          (unbiased: E[n_ij] = a)
        n_ij ← min(n_ij, max_pulses)                  (cut cells are counted)

    UP pulses where ``Δw > 0``, DOWN pulses where ``Δw < 0`` (device model: module docstring).

    Parameters
    ----------
    gp, gm : float32 (n_out, n_in)
        Normalised conductances in ``[0, 1]``; updated in place.
    dw : float32 (n_out, n_in)
        Requested weight change (device units), e.g. ``-lr Dᵀ X``. Cells with non-finite
        ``dw`` are left unchanged and the call then raises ``ValueError``.
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
    max_pulses = _check_int("max_pulses", max_pulses, 1, 1 << 40)
    k, c = check_key(key, counter)
    nkey = np.uint64(sub_key(int(k), _TAG_CTOC))
    counts = np.zeros((shape[0], 4), dtype=np.int64)
    _expected_driver(gp, gm, dw, alpha_up, alpha_down, frozen_p, frozen_m, 1.0 / step, soft,
                     ctoc, max_pulses, k, c, nkey, counts)
    n_bad = int(counts[:, 3].sum())
    if n_bad:
        raise ValueError(f"dw contains {n_bad} NaN or Inf entries; allowed: finite values "
                         "(those cells were left unchanged, the others were updated)")
    _raise_bad_alpha(counts)
    return int(counts[:, 0].sum()), int(counts[:, 1].sum())


@pjit
def _expected_driver(gp, gm, dw, a_up, a_dn, fp, fm, inv_min, soft, ctoc, max_pulses, key, ctr,
                     nkey, counts):
    ukey = stream_key(key, ctr)
    nk = stream_key(nkey, ctr)
    n_in = dw.shape[1]
    for i in prange(dw.shape[0]):
        idx = np.empty(n_in, dtype=np.int64)
        nup = np.empty(n_in, dtype=np.int64)
        ndn = np.empty(n_in, dtype=np.int64)
        k, nmax, n_clip, n_bad = _expected_counts(dw[i], inv_min, max_pulses, ukey, i * n_in,
                                                  idx, nup, ndn)
        n_pulses, n_bad_alpha = _apply_row(gp[i], gm[i], a_up[i], a_dn[i], fp[i], fm[i], idx, k,
                                           nup, ndn, nmax, soft, ctoc, nk, i * n_in)
        counts[i, 0] = n_pulses
        counts[i, 1] = n_clip
        counts[i, 2] = n_bad_alpha
        counts[i, 3] = n_bad


@jit
def _expected_counts(dwr, inv_min, max_pulses, ukey, base, idx, nup, ndn):
    """Stochastically rounded UP/DOWN counts of one row (``nup``, ``ndn``, full length).

    Branch-free: every cell costs one uniform draw and no mispredicted branch, whether it
    is pulsed or not. ``idx[:k]`` lists the pulsed cells. Returns ``(k, max count, cells
    cut, non-finite cells)``; non-finite cells get no pulse.
    """
    k = 0
    nmax = 0
    n_clip = 0
    n_bad = 0
    # Counts beyond max_pulses + 1 are cut anyway; capping first keeps the int64 cast safe.
    cap = max_pulses + 1.0
    for j in range(dwr.size):
        d = np.float64(dwr[j])
        a = abs(d) * inv_min
        bad = not a <= 1.0e300  # NaN or Inf
        a = 0.0 if bad else min(a, cap)
        fl = np.floor(a)
        n = np.int64(fl) + np.int64(draw_uniform(ukey, base + j) < a - fl)
        n_clip += n > max_pulses
        n = min(n, max_pulses)
        nup[j] = n if d > 0.0 else 0
        ndn[j] = 0 if d > 0.0 else n
        idx[k] = j
        k += n > 0
        nmax = max(nmax, n)
        n_bad += bad
    return k, nmax, n_clip, n_bad


# --------------------------------------------------------------------------- stochastic mode


def pulse_update_stochastic(gp: np.ndarray, gm: np.ndarray, x: np.ndarray, d: np.ndarray,
                            lr: float, *, bl: int, dw_min: float, update_management: bool,
                            alpha_up: np.ndarray, alpha_down: np.ndarray,
                            frozen_p: np.ndarray, frozen_m: np.ndarray, soft: bool,
                            ctoc: float, key: int, counter: int) -> tuple[int, int]:
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
    alpha_up, alpha_down, frozen_p, frozen_m, soft, ctoc, key, counter
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
    k, c = check_key(key, counter)
    xmax, dmax = _max_abs("x", x), _max_abs("d", d)
    if xmax == 0.0 or dmax == 0.0:
        return 0, 0
    base = rate / (bl * step)
    ax = math.sqrt(base * dmax / xmax) if um else math.sqrt(base)
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
    _pack_columns(x, ax, bl, xkey, c, xt, xneg, clips[:, 0])
    _pack_trains(d, cd, bl, dkey, c, dt, clips[:, 1])
    nkey = np.uint64(sub_key(int(k), _TAG_CTOC))
    counts = np.zeros((shape[0], 3), dtype=np.int64)
    # Counts reach batch·bl: that many bits, but never fewer than the two planes (ones,
    # twos) the adders always write (batch·bl = 1 indexed past the end).
    n_planes = max(2, (batch * bl).bit_length())
    _coincidence_driver(gp, gm, xt, xneg, dt, d, bl, alpha_up, alpha_down, frozen_p, frozen_m,
                        soft, ctoc, nkey, c, n_planes, counts)
    _raise_bad_alpha(counts)
    return int(counts[:, 0].sum()), int(clips.sum())


def _max_abs(name: str, v: np.ndarray) -> float:
    """``max|v|``, finite exactly when every entry is (NaN and Inf propagate)."""
    m = float(np.max(np.abs(v)))
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


@pjit
def _pack_columns(x, scale, bl, key, ctr, xt, xneg, clips):
    """Column trains, transposed: bit ``j mod 64`` of ``xt[b·bl + t, j // 64]`` = column ``j``
    fires at bit ``t`` of sample ``b``; ``xneg[b]`` marks the columns with ``x_bj < 0``."""
    skey = stream_key(key, ctr)
    n = x.shape[1]
    per = (bl + 1) // 2
    for b in prange(x.shape[0]):
        thr = np.empty(64, dtype=np.uint64)
        n_clip = 0
        for w in range(xneg.shape[1]):
            j0 = 64 * w
            m = min(64, n - j0)
            neg = _ZERO
            for jj in range(m):
                thr[jj], cut = _threshold(x[b, j0 + jj], scale)
                n_clip += cut
                neg |= np.uint64(x[b, j0 + jj] < 0.0) << np.uint64(jj)
            xneg[b, w] = neg
            for tp in range(per):
                lo = _ZERO
                hi = _ZERO
                for jj in range(m):
                    h = draw_u64(skey, (b * n + j0 + jj) * per + tp)
                    lo |= np.uint64((h & _MASK32) < thr[jj]) << np.uint64(jj)
                    hi |= np.uint64((h >> _S32) < thr[jj]) << np.uint64(jj)
                xt[b * bl + 2 * tp, w] = lo
                if 2 * tp + 1 < bl:
                    xt[b * bl + 2 * tp + 1, w] = hi
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
            train = _ZERO
            if thr > 0:
                for tp in range(per):
                    h = draw_u64(skey, (b * n + i) * per + tp)
                    bits = np.uint64((h & _MASK32) < thr) | (np.uint64((h >> _S32) < thr) << _ONE)
                    train |= bits << np.uint64(2 * tp)
                # An odd bl leaves one surplus bit from the last draw.
                train &= _ALL >> np.uint64(64 - bl)
            dt[b, i] = train
        clips[b] = n_clip


@intrinsic
def _ctz(typingctx, v):
    """Index of the lowest set bit of a non-zero uint64 (LLVM ``cttz``, one ``tzcnt``)."""
    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))
    return types.uint64(types.uint64), codegen


@pjit
def _coincidence_driver(gp, gm, xt, xneg, dt, d, bl, a_up, a_dn, fp, fm, soft, ctoc, nkey, ctr,
                        n_planes, counts):
    nk = stream_key(nkey, ctr)
    n_out, n_in = gp.shape
    nw = xneg.shape[1]
    for i in prange(n_out):
        planes = np.zeros((2, n_planes, nw), dtype=np.uint64)
        top = _accumulate_row(xt, xneg, dt, d, i, bl, planes)
        tot = np.zeros(64 * nw, dtype=np.int64)
        up = np.zeros(64 * nw, dtype=np.int64)
        _planes_to_counts(planes[0], top, tot)
        _planes_to_counts(planes[1], top, up)
        idx = np.empty(n_in, dtype=np.int64)
        k, nmax = _compact_counts(tot, up, n_in, idx)
        n_pulses, n_bad = _apply_row(gp[i], gm[i], a_up[i], a_dn[i], fp[i], fm[i], idx, k, up,
                                     tot, nmax, soft, ctoc, nk, i * n_in)
        counts[i, 0] = n_pulses
        counts[i, 2] = n_bad


@jit
def _accumulate_row(xt, xneg, dt, d, i, bl, planes):
    """Add, for every firing bit ``(b, t)`` of row ``i``, column vector ``xt[b·bl + t]`` into
    the total counters and its opposite-sign part into the UP counters (groups of four).

    Returns the number of counter planes in use.
    """
    pos = np.empty(4, dtype=np.int64)
    smp = np.empty(4, dtype=np.int64)
    flip = np.empty(4, dtype=np.uint64)
    k = 0
    top = 2
    for b in range(dt.shape[0]):
        train = dt[b, i]
        # UP where x and d have opposite signs: x < 0 if d > 0, x > 0 if d < 0.
        f = _ALL if d[b, i] < 0.0 else _ZERO
        while train:
            pos[k] = b * bl + np.int64(_ctz(train))
            smp[k] = b
            flip[k] = f
            k += 1
            train &= train - _ONE
            if k == 4:
                top = max(top, _add_group(xt, xneg, pos, smp, flip, planes))
                k = 0
    if k:
        for q in range(k, 4):
            pos[q] = xt.shape[0] - 1
            smp[q] = xneg.shape[0] - 1
            flip[q] = _ZERO
        top = max(top, _add_group(xt, xneg, pos, smp, flip, planes))
    return top


@jit(inline="always")
def _csa(a, b, c):
    """Carry-save adder on 64 bit lanes: ``(carry, sum)`` of ``a + b + c``."""
    u = a ^ b
    return (a & b) | (u & c), u ^ c


@jit(inline="always")
def _add4(ones, twos, v0, v1, v2, v3):
    """Add four bit-vectors to the (ones, twos) planes; returns ``(ones, twos, fours)``."""
    twos_a, ones = _csa(ones, v0, v1)
    twos_b, ones = _csa(ones, v2, v3)
    fours, twos = _csa(twos, twos_a, twos_b)
    return ones, twos, fours


@jit
def _add_group(xt, xneg, pos, smp, flip, planes):
    """Four column vectors into both counters; the fours carry ripples up. Returns top plane."""
    p0, p1, p2, p3 = pos[0], pos[1], pos[2], pos[3]
    s0, s1, s2, s3 = smp[0], smp[1], smp[2], smp[3]
    f0, f1, f2, f3 = flip[0], flip[1], flip[2], flip[3]
    nw = xt.shape[1]
    carry = np.empty((2, nw), dtype=np.uint64)
    for w in range(nw):
        v0, v1, v2, v3 = xt[p0, w], xt[p1, w], xt[p2, w], xt[p3, w]
        planes[0, 0, w], planes[0, 1, w], carry[0, w] = _add4(
            planes[0, 0, w], planes[0, 1, w], v0, v1, v2, v3)
        planes[1, 0, w], planes[1, 1, w], carry[1, w] = _add4(
            planes[1, 0, w], planes[1, 1, w], v0 & (xneg[s0, w] ^ f0), v1 & (xneg[s1, w] ^ f1),
            v2 & (xneg[s2, w] ^ f2), v3 & (xneg[s3, w] ^ f3))
    return max(_ripple(planes[0], carry[0]), _ripple(planes[1], carry[1]))


@jit(inline="always")
def _ripple(pl, c):
    """Add carry vector ``c`` at plane 2 and propagate; returns planes in use (≥ 2)."""
    level = 2
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
