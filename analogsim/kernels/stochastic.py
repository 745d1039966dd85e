"""Stochastic pulse-train update: coincidences of column and row trains, counted per cell.

Each pulse train is drawn per column/row from consecutive draws; for the columns the draws
of 64 columns are made together and packed straight into "which columns fire at bit
``(b, t)``" words. Coincidences are counted sparsely: for row ``i`` every firing bit
``(b, t)`` of its train adds that word vector into bit-sliced counters (Harley–Seal trees of
carry-save adders over eight vectors, 64 columns per machine word),
``O(density · B · bl · n_in / 64)`` word operations per row instead of
``O(B · bl · n_in / 64)`` for a dense AND-popcount product. The counts then go through the
device model of :mod:`.device` (UP pulses, then DOWN pulses, per cell).

:func:`pulse_update_stochastic` checks its arguments; :func:`stochastic_update_unchecked`
is the same update for callers that validated them once (the crossbar array, whose device
state is its own) and already know ``max|x|`` and ``max|d|``.
"""

from __future__ import annotations

import math
import sys
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ._numba import jit, pick, pick_groups, pjit, prange
from .device import apply_row
from .read import _check_array, _check_bool, _check_int, _check_real, max_abs
from .rng import _GAMMA, _mix, check_key, stream_key
from .update import _check_device_arrays, _raise_bad_alpha, _sub_keys

__all__ = ["pulse_update_stochastic", "stochastic_update_unchecked"]

_MASK32 = np.uint64(0xFFFFFFFF)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_ZERO = np.uint64(0)
_ONE = np.uint64(1)
_S32 = np.uint64(32)
_TWO32 = 4294967296.0


def pulse_update_stochastic(gp: np.ndarray, gm: np.ndarray, x: np.ndarray, d: np.ndarray,
                            lr: float, *, bl: int, dw_min: float, update_management: bool,
                            alpha_up: np.ndarray, alpha_down: np.ndarray,
                            frozen_p: np.ndarray, frozen_m: np.ndarray, soft: bool,
                            ctoc: float, key: int, counter: int,
                            pow_gamma: float = 0.0, ctoc_shared: bool = False
                            ) -> tuple[int, int]:
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
    alpha_up, alpha_down, frozen_p, frozen_m, soft, ctoc, key, counter, pow_gamma, ctoc_shared
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
    shared = _check_bool("ctoc_shared", ctoc_shared)
    gamma = _check_real("pow_gamma", pow_gamma, 0.0)
    k, c = check_key(key, counter)
    xmax, dmax = _max_abs("x", x), _max_abs("d", d)
    return stochastic_update_unchecked(gp, gm, x, d, rate, bl, step, um, alpha_up, alpha_down,
                                       frozen_p, frozen_m, soft, ctoc, gamma, k, c, xmax, dmax,
                                       shared)


def stochastic_update_unchecked(gp: np.ndarray, gm: np.ndarray, x: np.ndarray, d: np.ndarray,
                                lr: float, bl: int, dw_min: float, update_management: bool,
                                alpha_up: np.ndarray, alpha_down: np.ndarray,
                                frozen_p: np.ndarray, frozen_m: np.ndarray, soft: bool,
                                ctoc: float, pow_gamma: float, key: np.uint64,
                                counter: np.uint64, xmax: float, dmax: float,
                                ctoc_shared: bool = False) -> tuple[int, int]:
    """:func:`pulse_update_stochastic` on arguments that are already valid.

    For a caller that checked them once and owns the device arrays (types, shapes,
    contiguity, ranges as :func:`pulse_update_stochastic` requires; ``key``, ``counter`` as
    ``np.uint64``) and has ``xmax = max|x|``, ``dmax = max|d|`` (finite) from its own pass.
    Nothing is checked here but the steps of pulsed cells (in the kernel); wrong arguments
    give wrong numbers or a crash, not an error message. Same numbers as the checked call.
    """
    plan = update_plan(x, d.shape[1], lr, bl, dw_min, update_management, xmax, dmax)
    if plan is None:
        return 0, 0
    column_trains(plan, x, bl, key, counter)
    row_trains(plan, d, bl, key, counter)
    n_pulses, n_bad = coincidences(plan, gp, gm, d, bl, alpha_up, alpha_down, frozen_p,
                                   frozen_m, soft, ctoc, ctoc_shared, key, counter, pow_gamma)
    _raise_bad_alpha(n_bad)
    return n_pulses, int(plan.clips.sum())


class UpdatePlan(NamedTuple):
    """Firing scales and work buffers of one stochastic update (:func:`update_plan`)."""

    ax: float             #: column scale ``A``
    cd: float             #: row scale ``C``
    xt: np.ndarray        #: column trains, (B·bl + 1, ⌈n_in/64⌉) uint64
    xneg: np.ndarray      #: columns with ``x < 0``, (B + 1, ⌈n_in/64⌉) uint64
    dt: np.ndarray        #: row trains, (B, n_out) uint64
    clips: np.ndarray     #: cut probabilities per sample, columns then rows, (B, 2) int64
    n_planes: int         #: bit planes of the coincidence counters


def update_plan(x: np.ndarray, n_out: int, lr: float, bl: int, dw_min: float,
                update_management: bool, xmax: float, dmax: float) -> UpdatePlan | None:
    """Firing scales and work buffers of one update, or ``None`` when nothing can fire.

    The scales ``A``, ``C`` are those of :func:`pulse_update_stochastic`; the tables are
    uninitialised. The update's three kernel stages, :func:`column_trains`,
    :func:`row_trains` and :func:`coincidences`, run on it in that order (a profiler can
    time them one by one: ``benchmarks/profile_step.py``).
    """
    if xmax == 0.0 or dmax == 0.0:
        return None
    # lr / (bl Δw_min) can leave the float range for extreme (valid) arguments: at 0 nothing
    # can fire; beyond the largest float every non-zero entry fires surely (cut, counted).
    base = min(lr / (bl * dw_min), sys.float_info.max)
    if base == 0.0:
        return None
    ax = math.sqrt(base)
    if update_management:
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
    dt = np.empty((batch, n_out), dtype=np.uint64)
    clips = np.zeros((batch, 2), dtype=np.int64)
    # Counts reach batch·bl: that many bits, but never fewer than the three planes (ones,
    # twos, fours) the adders always write (a smaller table would be indexed past its end).
    n_planes = max(3, (batch * bl).bit_length())
    return UpdatePlan(ax, cd, xt, xneg, dt, clips, n_planes)


def column_trains(plan: UpdatePlan, x: np.ndarray, bl: int, key: np.uint64,
                  counter: np.uint64) -> None:
    """Stage 1: the column trains of ``x`` (and its signs) into ``plan.xt``, ``plan.xneg``."""
    pack, n_groups = pick_groups(_pack_columns, x.size * bl, x.shape[0])
    pack(x, plan.ax, bl, _sub_keys(int(key))[0], counter, plan.xt, plan.xneg,
         plan.clips[:, 0], n_groups)


def row_trains(plan: UpdatePlan, d: np.ndarray, bl: int, key: np.uint64,
               counter: np.uint64) -> None:
    """Stage 2: the row trains of ``d`` into ``plan.dt``."""
    pick(_pack_trains, d.size * bl)(d, plan.cd, bl, _sub_keys(int(key))[1], counter, plan.dt,
                                    plan.clips[:, 1])


def coincidences(plan: UpdatePlan, gp: np.ndarray, gm: np.ndarray, d: np.ndarray, bl: int,
                 alpha_up: np.ndarray, alpha_down: np.ndarray, frozen_p: np.ndarray,
                 frozen_m: np.ndarray, soft: bool, ctoc: float, ctoc_shared: bool,
                 key: np.uint64, counter: np.uint64, pow_gamma: float) -> tuple[int, int]:
    """Stage 3: coincidence counts of the trains, then the device model on every pulsed
    cell, in place; returns ``(pulses, cells with a bad α)``."""
    # Work in cells: the coincidence counting and the device stage both visit every cell
    # (a noiseless 256 x 784 update at 2 threads: 0.74 ms serial, 0.35-0.49 ms parallel).
    drive, n_groups = pick_groups(_coincidence_driver, gp.size, gp.shape[0])
    return drive(gp, gm, plan.xt, plan.xneg, plan.dt, d, bl, alpha_up, alpha_down, frozen_p,
                 frozen_m, soft, ctoc, ctoc_shared, _sub_keys(int(key))[2], counter,
                 plan.n_planes, n_groups, pow_gamma)


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
    cheaper than a branch (blocks of mostly such columns take :func:`_sparse_column_words`).
    """
    for tp in range(per):
        lw = _ZERO
        hw = _ZERO
        for jj in range(width):
            lo_bit, hi_bit = _fire_bits(skey, idx0 + jj * per + tp, thr[jj], jj)
            lw |= lo_bit
            hw |= hi_bit
        lo[tp] = lw
        hi[tp] = hw


@jit(inline="always")
def _fire_bits(skey, idx, thr, jj):
    """Column ``jj``'s bits from draw ``idx``: the low and high 32 bits compared with
    ``thr``, each placed at bit ``jj`` of its word."""
    h = _mix(skey + (np.uint64(idx) + _ONE) * _GAMMA)
    return (np.uint64((h & _MASK32) < thr) << np.uint64(jj),
            np.uint64((h >> _S32) < thr) << np.uint64(jj))


@jit
def _sparse_column_words(skey, idx0, per, cols, thc, k, lo, hi):
    """:func:`_column_words` for a block of which only the columns ``cols[:k]`` (thresholds
    ``thc[:k]``) can fire: only their draws are made. The other columns have ``thr = 0``
    and never fire, so the words are the same bits (a first layer's zero pixels, a
    convolution's zero padding)."""
    for tp in range(per):
        lw = _ZERO
        hw = _ZERO
        for q in range(k):
            lo_bit, hi_bit = _fire_bits(skey, idx0 + cols[q] * per + tp, thc[q], cols[q])
            lw |= lo_bit
            hw |= hi_bit
        lo[tp] = lw
        hi[tp] = hw


@pjit
def _pack_columns(x, scale, bl, key, ctr, xt, xneg, clips, n_groups):
    """Column trains, transposed: bit ``j mod 64`` of ``xt[b·bl + t, j // 64]`` = column ``j``
    fires at bit ``t`` of sample ``b``; ``xneg[b]`` marks the columns with ``x_bj < 0``.

    Column ``j``'s bits are the same draws as a row's train (:func:`_train`: draw
    ``(b·n + j)·per + ⌊t/2⌋``, low half for even ``t``), made 64 columns at a time
    (:func:`_column_words`). Samples in ``n_groups`` groups (scratch once per group).
    """
    skey = stream_key(key, ctr)
    batch, n = x.shape
    per = (bl + 1) // 2
    for g in prange(n_groups):
        thr = np.empty(64, dtype=np.uint64)
        thc = np.empty(64, dtype=np.uint64)
        cols = np.empty(64, dtype=np.int64)
        lo = np.empty(per, dtype=np.uint64)
        hi = np.empty(per, dtype=np.uint64)
        for b in range(g * batch // n_groups, (g + 1) * batch // n_groups):
            _pack_sample(x, scale, bl, skey, per, xt, xneg, clips, thr, thc, cols, lo, hi, b)


@jit(inline="always")
def _pack_sample(x, scale, bl, skey, per, xt, xneg, clips, thr, thc, cols, lo, hi, b):
    """Sample ``b`` of :func:`_pack_columns`."""
    n = x.shape[1]
    n_clip = 0
    for w in range(xneg.shape[1]):
        j0 = 64 * w
        m = min(64, n - j0)
        neg = _ZERO
        k = 0
        for jj in range(m):
            v = x[b, j0 + jj]
            t, cut = _threshold(v, scale)
            thr[jj] = t
            n_clip += cut
            neg |= np.uint64(v < 0.0) << np.uint64(jj)
            k += t > 0
        thr[m:] = 0
        xneg[b, w] = neg
        # A narrow last block (conv1 of LeNet: 25 columns) draws whole vectors, not 64.
        width = min(64, (m + 7) & ~7)
        if 4 * k <= width:
            # Mostly zero inputs: list the columns that can fire and draw only theirs (the
            # list is built here, not in the loop above, which then stays vectorised).
            k = 0
            for jj in range(m):
                cols[k] = jj
                thc[k] = thr[jj]
                k += thr[jj] > 0
            _sparse_column_words(skey, (b * n + j0) * per, per, cols, thc, k, lo, hi)
        else:
            _column_words(skey, (b * n + j0) * per, per, thr, width, lo, hi)
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
def _coincidence_driver(gp, gm, xt, xneg, dt, d, bl, a_up, a_dn, fp, fm, soft, ctoc, shared,
                        nkey, ctr, n_planes, n_groups, gamma):
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
                                                   idx, k, up, tot, nmax, soft, ctoc, shared,
                                                   nk, i * n_in, gamma)
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
