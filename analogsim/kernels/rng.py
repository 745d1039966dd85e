"""Counter-based random numbers: every draw is a pure function of ``(key, counter, index)``.

Why counter-based
-----------------
Parallel kernels split their loops over threads in a way that depends on the thread count.
A sequential generator would make results depend on that split; here element ``idx`` of the
draw numbered ``counter`` under ``key`` is ``F(key, counter, idx)`` whoever computes it, so a
kernel is bit-identical at 1 and N threads and any element can be recomputed alone (the
NumPy twins in the tests do exactly that through :func:`uniform` and :func:`normal`).

Construction
------------
``mix`` is the SplitMix64 finaliser (Stafford's variant 13, a bijection of uint64 with full
avalanche). A draw is SplitMix64 at position ``idx + 1`` of the stream whose seed is a
double-mixed combination of ``key`` and ``counter``::

    s(key, ctr)   = mix(key XOR mix(ctr·γ + c₀))             (once per kernel call)
    u64(key, ctr, idx) = mix(s + (idx + 1)·γ)                 γ = 0x9E3779B97F4A7C15

so drivers hoist ``s`` (:func:`stream_key`) and pay one ``mix`` per number
(:func:`draw_u64`). Two streams overlap only if their seeds differ by a small multiple of
``γ``: for pseudo-random seeds that has probability ~``n / 2**64``.

* uniform: the top 52 bits, ``(h >> 12 + 0.5) · 2**-52``, lies in ``[2**-53, 1 - 2**-53]``:
  never 0 or 1, symmetric about 1/2.
* normal: a 512-layer ziggurat (Marsaglia & Tsang 2000, in Doornik's 2005 "ZIGNOR"
  formulation, exact up to rounding). Normals come in pairs: normal ``idx`` uses the low
  (even ``idx``) or high (odd) 32 bits of draw ``idx >> 1``: bits 0–8 pick the layer, bits
  9–31 the abscissa (about float32 resolution, which is what the kernels store). The fast
  path accepts 99.2 %; rejected candidates continue with full 64-bit draws at the same
  ``idx`` of derived streams ``mix(s + k·c₁)``, ``k = 1, 2, …``, so every normal is still a
  pure function of ``(key, counter, idx)``. :func:`fill_normals` produces a run of them at
  about a third of the cost of drawing them one by one (draws in one integer loop, the fast
  path over all candidates without branches, the ≈0.8 % rejected ones finished after).

Kernels that need several independent kinds of numbers in one call (rounding uniforms and
cycle-to-cycle normals, say) give each kind its own key derived with :func:`sub_key`.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ._numba import jit, pjit, prange

__all__ = [
    "make_key",
    "sub_key",
    "uniform",
    "normal",
    "check_key",
    "rand_u64",
    "rand_uniform",
    "rand_normal",
    "stream_key",
    "draw_u64",
    "draw_uniform",
    "draw_normal",
    "fill_normals",
    "normal_scratch",
    "bits_to_f64",
    "f64_to_bits",
    "uniform_times_2_52",
]

_MASK64 = (1 << 64) - 1
_GAMMA_INT = 0x9E3779B97F4A7C15
_M1_INT = 0xBF58476D1CE4E5B9
_M2_INT = 0x94D049BB133111EB
_C0_INT = 0x6A09E667F3BCC909  # frac(sqrt 2): any odd constant ≠ γ separates ctr from idx
_C1_INT = 0xBB67AE8584CAA73B  # frac(sqrt 3): retry-stream offset of the ziggurat

# uint64 constants as numpy scalars: numba types Python ints as int64, and mixing int64 with
# uint64 promotes to float64, which would silently destroy the bit arithmetic.
_GAMMA = np.uint64(_GAMMA_INT)
_M1 = np.uint64(_M1_INT)
_M2 = np.uint64(_M2_INT)
_C0 = np.uint64(_C0_INT)
_C1 = np.uint64(_C1_INT)
_ONE = np.uint64(1)
_S9 = np.uint64(9)
_S12 = np.uint64(12)
_S27 = np.uint64(27)
_S30 = np.uint64(30)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_MASK32 = np.uint64(0xFFFFFFFF)
_TWO_M52 = 2.0**-52
_TWO_M51 = 2.0**-51
_TWO_M22 = 2.0**-22


# --------------------------------------------------------------------------- pure Python


def _mix_py(z: int) -> int:
    z &= _MASK64
    z = ((z ^ (z >> 30)) * _M1_INT) & _MASK64
    z = ((z ^ (z >> 27)) * _M2_INT) & _MASK64
    return z ^ (z >> 31)


def _check_u64(name: str, value: object) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not ok or not 0 <= int(value) <= _MASK64:
        raise ValueError(f"{name} = {value!r} is invalid; allowed: an integer in [0, 2**64)")
    return int(value)


def check_key(key: object, counter: object) -> tuple[np.uint64, np.uint64]:
    """Validate ``key`` and ``counter`` and return them as ``np.uint64`` (for the drivers).

    Passing ``np.uint64`` keeps one compiled signature: a Python int ≥ 2**63 would be typed
    as uint64 and a smaller one as int64 by numba.
    """
    if type(key) is int and type(counter) is int and 0 <= key <= _MASK64 \
            and 0 <= counter <= _MASK64:
        return np.uint64(key), np.uint64(counter)  # the common case, checked in one line
    return np.uint64(_check_u64("key", key)), np.uint64(_check_u64("counter", counter))


def make_key(seed: int, stream: int) -> int:
    """Mix a user seed and a stream id into a 64-bit key.

    Parameters
    ----------
    seed : int
        Non-negative integer below ``2**64`` (e.g. an experiment seed).
    stream : int
        Non-negative integer below ``2**64`` naming one kind of random event
        (reads, updates, ...), so that streams of one seed are independent.

    Returns
    -------
    int
        ``mix(mix(seed) + (stream + 1)·γ) ∈ [0, 2**64)``.
    """
    s = _check_u64("seed", seed)
    t = _check_u64("stream", stream)
    return _mix_py(_mix_py(s ^ _C0_INT) + (t + 1) * _GAMMA_INT)


def sub_key(key: int, tag: int) -> int:
    """Independent key for a second kind of draw inside one kernel call (``tag`` ≥ 0)."""
    k = _check_u64("key", key)
    t = _check_u64("tag", tag)
    return _mix_py(k ^ _mix_py((t + 1) * _C1_INT))


# --------------------------------------------------------------------------- jitted core


@jit(inline="always")
def _mix(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@jit(inline="always")
def stream_key(key, ctr):
    """Seed of the SplitMix64 stream of ``(key, ctr)``; hoist it out of element loops."""
    return _mix(np.uint64(key) ^ _mix(np.uint64(ctr) * _GAMMA + _C0))


@jit(inline="always")
def draw_u64(skey, idx):
    """Element ``idx`` of stream ``skey``: a uniformly distributed uint64."""
    return _mix(skey + (np.uint64(idx) + _ONE) * _GAMMA)


@jit(inline="always")
def _u64_to_uniform(h):
    return (np.float64(h >> _S12) + 0.5) * _TWO_M52


@jit(inline="always")
def draw_uniform(skey, idx):
    """Uniform float64 in ``(0, 1)`` (52 random bits, never 0 or 1) from stream ``skey``."""
    return _u64_to_uniform(draw_u64(skey, idx))


@intrinsic
def bits_to_f64(typingctx, v):
    """Reinterpret uint64 bits as a float64 (no conversion)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.uint64), codegen


@intrinsic
def f64_to_bits(typingctx, v):
    """Reinterpret a float64 as its uint64 bits (no conversion)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.uint64(types.float64), codegen


_EXP52 = np.uint64(0x4330000000000000)  # the bits of 2**52
_TWO52_MINUS_HALF = 2.0**52 - 0.5


@jit(inline="always")
def uniform_times_2_52(h):
    """``_u64_to_uniform(h) · 2**52 = (h >> 12) + 0.5``, exactly, without an int conversion.

    ``bits_to_f64(m | bits(2**52)) = 2**52 + m`` for ``m < 2**52``; subtracting ``2**52 - 1/2``
    (representable, and within a factor 2: exact) leaves ``m + 1/2``. AVX2 has no vector
    uint64 → float64 conversion, so this keeps loops that draw uniforms vectorised.
    """
    return bits_to_f64((h >> _S12) | _EXP52) - _TWO52_MINUS_HALF


def _zignor_tables(n: int, r: float, v: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layer edges ``X`` (``X[0] = V/f(R)``, ``X[1] = R``, ``X[n] = 0``), ``X[i+1]/X[i]`` and
    ``F = f(X) = exp(-X²/2)``, for ``n`` layers of area ``v`` under ``f``.

    Computed with :mod:`math` (the platform libm, as used by the kernels) rather than NumPy's
    SIMD loops so the tables, hence every normal draw, do not depend on the CPU's vector ISA.
    """
    x = [0.0] * (n + 1)
    f = math.exp(-0.5 * r * r)
    x[0], x[1] = v / f, r
    for i in range(2, n):
        x[i] = math.sqrt(-2.0 * math.log(v / x[i - 1] + f))
        f = math.exp(-0.5 * x[i] * x[i])
    ratio = [x[i + 1] / x[i] for i in range(n)]
    dens = [math.exp(-0.5 * xi * xi) for xi in x]
    return (np.array(x, dtype=np.float64), np.array(ratio, dtype=np.float64),
            np.array(dens, dtype=np.float64))


# 512 layers: the base-layer edge R and the layer area V = R f(R) + ∫_R^∞ f solved so that
# the top layer closes (to 4e-15; checked in the tests). 99.2 % of draws take the fast path.
_ZIG_N = 512
_ZIG_R = 3.8520461503683916
_ZIG_V = 0.002456766351541353
_ZIG_X, _ZIG_RATIO, _ZIG_F = _zignor_tables(_ZIG_N, _ZIG_R, _ZIG_V)
_LAYER_MASK = np.uint64(_ZIG_N - 1)


@jit
def _normal_tail(skey, idx, k, negative):
    """Marsaglia's exact tail sampler beyond ``R``; continues the retry sequence at ``k``."""
    while True:
        s1 = _mix(skey + np.uint64(k) * _C1)
        s2 = _mix(skey + np.uint64(k + 1) * _C1)
        k += 2
        x = math.log(draw_uniform(s1, idx)) / _ZIG_R
        y = math.log(draw_uniform(s2, idx))
        if -2.0 * y >= x * x:
            return x - _ZIG_R if negative else _ZIG_R - x


@jit
def _normal_slow(skey, idx, i, u):
    """Wedge test of a rejected candidate (layer ``i``, ``u``) and redraws (rare: ~0.8 %).

    Redraws take full 64-bit draws (52-bit ``u``, bits 12–63; layer: bits 0–8).
    """
    k = 1
    while True:
        if abs(u) < _ZIG_RATIO[i]:
            return u * _ZIG_X[i]
        if i == 0:
            return _normal_tail(skey, idx, k, u < 0.0)
        x = u * _ZIG_X[i]
        # y uniform over the layer's height [f(X_i), f(X_i+1)]; accept under the curve.
        y = _ZIG_F[i + 1] + draw_uniform(_mix(skey + np.uint64(k) * _C1), idx) * (
            _ZIG_F[i] - _ZIG_F[i + 1])
        if y < math.exp(-0.5 * x * x):
            return x
        h = draw_u64(_mix(skey + np.uint64(k + 1) * _C1), idx)
        i = np.int64(h & _LAYER_MASK)
        u = (np.float64(h >> _S12) + 0.5) * _TWO_M51 - 1.0
        k += 2


@jit(inline="always")
def _half_word(skey, idx):
    """The 32 random bits of normal ``idx``: one half of the 64-bit draw ``idx >> 1``."""
    h = draw_u64(skey, np.uint64(idx) >> _ONE)
    return (h >> ((np.uint64(idx) & _ONE) * _S32)) & _MASK32


@jit(inline="always")
def _candidate(w):
    """Layer and abscissa from 32 random bits: bits 0–8 the layer, bits 9–31 give
    ``u = (2k + 1)/2**23 - 1`` (symmetric about 0, never 0)."""
    return np.int64(w & _LAYER_MASK), (np.float64(np.int64(w >> _S9)) + 0.5) * _TWO_M22 - 1.0


@jit(inline="always")
def _fast_normal(w):
    """Fast-path candidate ``(z, accepted)`` from 32 random bits."""
    i, u = _candidate(w)
    return u * _ZIG_X[i], abs(u) < _ZIG_RATIO[i]


@jit
def _slow_normal(skey, idx, w):
    """Finish a rejected fast-path draw; same result as :func:`draw_normal`."""
    i, u = _candidate(w)
    return _normal_slow(skey, idx, i, u)


@jit(inline="always")
def draw_normal(skey, idx):
    """Standard normal float64 (ziggurat) from stream ``skey`` at ``idx``."""
    w = _half_word(skey, idx)
    z, ok = _fast_normal(w)
    if ok:
        return z
    return _slow_normal(skey, idx, w)


@jit
def _draw_run(skey, idx0, out):
    """``out[k] = draw_u64(skey, idx0 + k)``: a pure integer loop (kept on its own so it
    vectorises without the table lookups). The stream position advances by adding ``γ``,
    which is the same sum as ``(idx + 1)·γ`` mod 2**64 without a 64-bit multiply per draw."""
    c = skey + (np.uint64(idx0) + _ONE) * _GAMMA
    for k in range(out.size):
        out[k] = _mix(c)
        c += _GAMMA


@jit(inline="always")
def _draw_at(skey, idx, scratch):
    """``scratch[k] = draw_u64(skey, idx[k])`` for any set of draws (gathered, not a run);
    returns that part of ``scratch``."""
    draws = scratch[:idx.size]
    for k in range(idx.size):
        draws[k] = draw_u64(skey, idx[k])
    return draws


# The fast path of the ziggurat on the integer abscissa ``t = 2·(w >> 9) + 1 - 2**23`` (odd,
# |t| < 2**23), so that ``u = t·2**-23``: ``u·X[i] = t·(X[i]·2**-23)`` and ``|u| < RATIO[i]
# ⇔ |t| < RATIO[i]·2**23`` hold exactly (power-of-two scaling), so these tables give the
# same numbers and decisions as :func:`_fast_normal` with one multiply fewer.
_ZIG_XS = _ZIG_X[:_ZIG_N] * 2.0**-23
_ZIG_RS = _ZIG_RATIO * 2.0**23
_T_OFFSET = (1 << 23) - 1


@jit
def _fast_run(w32, z):
    """Fast-path normals of the 32-bit words ``w32`` into ``z``, NaN where rejected.

    Returns the number rejected. Selects only: the loop runs without branches.
    """
    rejected = 0
    for q in range(w32.size):
        w = np.uint64(w32[q])
        i = np.int64(w & _LAYER_MASK)
        t = np.float64(np.int64(w >> _S9) * 2 - _T_OFFSET)
        # Both table loads happen unconditionally: a load inside the select would be
        # compiled as a branch.
        v = t * _ZIG_XS[i]
        ok = abs(t) < _ZIG_RS[i]
        z[q] = v if ok else np.nan
        rejected += not ok
    return rejected


_NO_PAIRS = np.empty(0, dtype=np.int64)  # "a contiguous run" for _finish_rejected


@jit(inline="always")
def _normal_index(idx0, pairs, halves, q):
    """Index of entry ``q`` of a run: ``idx0 + q``; with ``pairs`` (non-empty) the
    ``q mod 2``-th half of draw ``pairs[q // 2]``, i.e. normal ``2·pairs[q // 2] + q mod 2``;
    with ``halves`` the low half of draw ``pairs[q]``, normal ``2·pairs[q]``."""
    if pairs.size == 0:
        return idx0 + q
    if halves:
        return 2 * pairs[q]
    return 2 * pairs[q >> 1] + (q & 1)


@jit
def _finish_rejected(skey, idx0, z, words, left, pairs, halves):
    """Replace the ``left`` NaNs of ``z`` (rejected fast-path candidates) by the slow path;
    entry ``q`` is normal :func:`_normal_index` (its 32 bits: ``words[q]``).

    Tests eight entries at a time (one branch per eight, taken only where a NaN is): a
    chunk of 256 holds about two.
    """
    n8 = z.size - z.size % 8
    q0 = 0
    while left > 0 and q0 < n8:
        hit = False
        for q in range(q0, q0 + 8):
            hit |= z[q] != z[q]
        if hit:
            for q in range(q0, q0 + 8):
                if z[q] != z[q]:
                    z[q] = _slow_normal(skey, _normal_index(idx0, pairs, halves, q),
                                        np.uint64(words[q]))
                    left -= 1
        q0 += 8
    for q in range(n8, z.size):
        if z[q] != z[q]:
            z[q] = _slow_normal(skey, _normal_index(idx0, pairs, halves, q),
                                np.uint64(words[q]))


@jit
def fill_normal_pairs(skey, pairs, z, scratch):
    """``z[2k + h] = draw_normal(skey, 2·pairs[k] + h)`` for ``h = 0, 1``: the two normals
    that share 64-bit draw ``pairs[k]``, for any set of draws (not only a run).

    The same numbers as :func:`fill_normals` gives for those indices; rows that need the
    normals of only some cells draw just those. ``pairs``: int64 (≥ 0); ``z``: float64,
    ``2·pairs.size`` entries;
    ``scratch``: uint64 array of at least ``pairs.size`` entries.
    """
    draws = _draw_at(skey, pairs, scratch)
    words = draws.view(np.uint32)
    left = _fast_run(words, z)
    if left > 0:
        _finish_rejected(skey, 0, z, words, left, pairs, False)


@jit
def fill_normal_halves(skey, pairs, z, scratch):
    """``z[k] = draw_normal(skey, 2·pairs[k])``: the first normal of each 64-bit draw
    ``pairs[k]`` (its low 32 bits), for rows that need one normal where a pair is drawn.

    The same numbers as :func:`fill_normal_pairs` gives at even entries, with half the
    fast-path work. ``pairs``: int64 (≥ 0); ``z``: float64, ``pairs.size`` entries;
    ``scratch``: uint64 array of at least ``pairs.size`` entries.
    """
    draws = _draw_at(skey, pairs, scratch)
    low = draws.view(np.uint32)[::2]  # little-endian: word 2k is the low half of draw k
    left = _fast_run(low, z)
    if left > 0:
        _finish_rejected(skey, 0, z, low, left, pairs, True)


@jit(inline="always")
def normal_scratch(n):
    """Length of the uint64 scratch :func:`fill_normals` needs for ``n`` normals."""
    return n // 2 + 1


@jit
def fill_normals(skey, idx0, z, scratch):
    """``z[k] = draw_normal(skey, idx0 + k)``, about three times as fast as one by one.

    Pairs share a 64-bit draw; the draws are made in a pure integer loop, the fast path
    runs over their 32-bit halves without branches and marks rejected candidates (≈0.8 %),
    which are finished last. ``scratch``: uint64 array of at least
    ``normal_scratch(z.size)`` entries.
    """
    n = z.size
    k = 0
    if n > 0 and idx0 % 2 == 1:
        z[0] = draw_normal(skey, idx0)
        k = 1
    n_pairs = (n - k) // 2
    draws = scratch[:n_pairs]
    _draw_run(skey, (idx0 + k) // 2, draws)
    # Little-endian: word 2p is the low half of draw p, i.e. normal idx0 + k + 2p.
    words = draws.view(np.uint32)
    run = z[k:k + 2 * n_pairs]
    left = _fast_run(words, run)
    if left > 0:
        _finish_rejected(skey, idx0 + k, run, words, left, _NO_PAIRS, False)
    if k + 2 * n_pairs < n:
        z[n - 1] = draw_normal(skey, idx0 + n - 1)


@jit(inline="always")
def rand_u64(key, ctr, idx):
    """Random uint64 as a pure function of ``(key, ctr, idx)`` (all uint64)."""
    return draw_u64(stream_key(key, ctr), idx)


@jit(inline="always")
def rand_uniform(key, ctr, idx):
    """Uniform float64 in ``(0, 1)``, never exactly 0 or 1, from ``(key, ctr, idx)``."""
    return draw_uniform(stream_key(key, ctr), idx)


@jit(inline="always")
def rand_normal(key, ctr, idx):
    """Standard normal float64 from ``(key, ctr, idx)``."""
    return draw_normal(stream_key(key, ctr), idx)


# --------------------------------------------------------------------------- public arrays


@pjit
def _uniform_driver(key, ctr, out):
    s = stream_key(key, ctr)
    for i in prange(out.size):
        out[i] = draw_uniform(s, i)


@pjit
def _normal_driver(key, ctr, out):
    s = stream_key(key, ctr)
    chunk = 1024
    for c in prange((out.size + chunk - 1) // chunk):
        i0 = c * chunk
        fill_normals(s, i0, out[i0:min(i0 + chunk, out.size)],
                     np.empty(normal_scratch(chunk), dtype=np.uint64))


def _check_n(n: object) -> int:
    ok = isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_))
    if not ok or int(n) < 0:
        raise ValueError(f"n = {n!r} is invalid; allowed: an integer >= 0")
    return int(n)


def uniform(key: int, counter: int, n: int) -> np.ndarray:
    """Draws ``u[idx] = rand_uniform(key, counter, idx)`` for ``idx = 0 … n-1``.

    Returns
    -------
    numpy.ndarray
        float64 of shape ``(n,)``, values in ``(0, 1)``.
    """
    k, c = check_key(key, counter)
    out = np.empty(_check_n(n), dtype=np.float64)
    _uniform_driver(k, c, out)
    return out


def normal(key: int, counter: int, n: int) -> np.ndarray:
    """Draws ``z[idx] = rand_normal(key, counter, idx)`` for ``idx = 0 … n-1``.

    Returns
    -------
    numpy.ndarray
        float64 of shape ``(n,)``, standard normal.
    """
    k, c = check_key(key, counter)
    out = np.empty(_check_n(n), dtype=np.float64)
    _normal_driver(k, c, out)
    return out
