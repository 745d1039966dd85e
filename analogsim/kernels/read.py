"""Read path kernels: DAC encoding of the inputs and noisy ADC conversion of the outputs.

One batched read of a tiled array is::

    xq, scale, sqnorm, _ = dac_encode(x, ...)              # once per read
    for each input (column) block k:
        y = xq[:, block k] @ W[:, block k].T                # BLAS, all row tiles at once
        adc_read(y, out, sqnorm_block=sqnorm[:, k], ...)    # noise + ADC + digital sum

Read noise is drawn on the outputs, not on the cells: with i.i.d. per-cell weight noise of
std ``σ_r`` (device units), output ``i`` of block ``k`` receives ``Σ_j ε_ij x_j ~
N(0, σ_r² ‖x_k‖²)``, exactly. That is why :func:`dac_encode` returns ``‖xq_k‖²`` per block.
Conductance-dependent (PCM-like) read noise has a variance per output instead,
``σ² Σ_j |w_ij| x_j²``; the caller forms that product and passes it as ``read_var``.

With ``per_block`` max-abs scaling every input block of a sample gets its own scale
(``scale`` is then ``(B, n_blocks)``) and each block's outputs are rescaled by it before
they are added, as a layer split over tiles that each manage their own input range.

Performance notes: the DAC quantises by one multiply per input (``x · L/s``) and falls back
to the exact quotient only for runs holding a near-tie, so it is bit-identical to
``rint(x/s · L)``; the squared norms of quantised blocks are exact integer sums of the
levels. The ADC draws each chunk of normals in one vectorised pass (:func:`.rng.fill_normals`)
and converts it in a branch-free loop. Small calls run the serial build of each driver.

This module also holds the argument checks shared by the kernel modules (``_check_*``) and
:func:`max_abs`, a one-pass ``max|a|`` with NaN/Inf detection.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ._numba import jit, pick, pick_groups, pjit, prange
from .rng import check_key, fill_normals, normal_scratch, stream_key

__all__ = ["dac_encode", "adc_read", "max_abs", "dac_encode_unchecked", "adc_read_unchecked",
           "converter_levels"]

# Outputs per noise batch: the normals of one chunk are drawn together (vectorised), then
# consumed by the branch-free conversion loop while still in L1.
_CHUNK = 256
# DAC inputs per exact integer partial sum of squared levels: 4096 · (2**23)² < 2**63.
_SQ_CHUNK = 4096
_F32_MAX = float(np.finfo(np.float32).max)
_F32_TINY = float(np.finfo(np.float32).tiny)
_ABS_MASK = np.uint32(0x7FFFFFFF)
_F32_MAX_BITS = np.uint32(0x7F7FFFFF)


# --------------------------------------------------------------------------- argument checks


def _check_array(name: str, a: object, dtype: type, shape: tuple[int | None, ...], *,
                 writeable: bool = False) -> np.ndarray:
    """``a``: C-contiguous ``dtype`` ndarray of ``len(shape)`` axes, each ≥ 1.

    Entries of ``shape`` that are not ``None`` must match. Nothing is cast or copied.
    Written as a few plain comparisons: it runs several times per kernel call.
    """
    if not isinstance(a, np.ndarray) or a.dtype != dtype:
        _raise_array_type(name, a, dtype)
    got = a.shape
    bad = len(got) != len(shape) or 0 in got
    if not bad:
        for g, s in zip(got, shape, strict=True):
            if s is not None and g != s:
                bad = True
    if bad:
        allowed = tuple("n >= 1" if s is None else s for s in shape)
        raise ValueError(f"{name}.shape = {got} is invalid; allowed: {allowed}")
    flags = a.flags
    if not flags.c_contiguous:
        raise ValueError(f"{name} is not C-contiguous (strides {a.strides}); allowed: a "
                         "C-contiguous array (np.ascontiguousarray)")
    if writeable and not flags.writeable:
        raise ValueError(f"{name} is read-only; allowed: a writeable array (it is updated "
                         "in place)")
    return a


def _raise_array_type(name: str, a: object, dtype: type) -> None:
    want = np.dtype(dtype)
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of {want}, got {type(a).__name__}")
    raise TypeError(f"{name}.dtype = {a.dtype} is not allowed; allowed: {want} "
                    f"(convert explicitly with .astype(np.{want}))")


def _check_bits(name: str, bits: object) -> int:
    """``None`` (ideal converter) → 0; else bits in [2, 24] → :func:`converter_levels`."""
    if bits is not None and (not _is_int(bits) or not 2 <= int(bits) <= 24):
        # bits = 1 has 2**0 - 1 = 0 non-zero levels: a converter that only outputs 0.
        raise ValueError(f"{name} = {bits!r} is invalid; allowed: None or an integer in [2, 24]")
    return converter_levels(bits)


def converter_levels(bits: int | None) -> int:
    """Non-zero levels per sign of a ``bits``-bit signed converter, ``L = 2**(bits-1) - 1``
    (0: an ideal converter), as the kernels take them; ``bits`` already valid."""
    return 0 if bits is None else (1 << (int(bits) - 1)) - 1


def _is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _check_real(name: str, value: object, lo: float, *, lo_open: bool = False) -> float:
    """A finite real number ``≥ lo`` (``> lo`` if ``lo_open``)."""
    ok = _is_int(value) or isinstance(value, (float, np.floating))
    v = float(value) if ok else math.nan
    if not math.isfinite(v) or v < lo or (lo_open and v == lo):
        rel = ">" if lo_open else ">="
        raise ValueError(f"{name} = {value!r} is invalid; allowed: a finite real number "
                         f"{rel} {lo}")
    return v


def _check_int(name: str, value: object, lo: int, hi: int) -> int:
    if not _is_int(value) or not lo <= int(value) <= hi:
        raise ValueError(f"{name} = {value!r} is invalid; allowed: an integer in [{lo}, {hi}]")
    return int(value)


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} = {value!r} is invalid; allowed: True or False")
    return bool(value)


def _raise_nonfinite(name: str, count: int) -> None:
    if count:
        raise ValueError(f"{name} contains {count} NaN or Inf entries; allowed: finite values")


# --------------------------------------------------------------------------- helpers


def max_abs(a: np.ndarray) -> float:
    """``max|a|`` of a C-contiguous float32 array in one vectorised pass, no temporaries.

    Returns ``nan`` if any entry is NaN, else ``inf`` if any is ±Inf, so a single
    ``math.isfinite`` on the result checks every entry.
    """
    ndim = a.ndim if isinstance(a, np.ndarray) else 1
    a = _check_array("a", a, np.float32, (None,) * max(ndim, 1))
    m = int(_abs_max_bits(a.reshape(-1).view(np.uint32)))
    if m > 0x7F800000:
        return math.nan
    return float(np.uint32(m).view(np.float32))


# --------------------------------------------------------------------------- DAC


def dac_encode(x: np.ndarray, *, bits: int | None, input_range: float, maxabs: bool,
               col_starts: np.ndarray, per_block: bool = False
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Scale, clip and quantise a batch of inputs for the DAC (per sample, in parallel).

    With ``maxabs`` each sample is divided by its own ``s_b = max_j |x_bj|`` (1 for an
    all-zero sample), so nothing clips; otherwise ``s_b = r`` (``input_range``) and
    ``x / r`` is clipped to ``[-1, 1]``. With ``per_block`` and ``maxabs`` the maximum is
    taken per input block instead, ``s_bk = max_{j ∈ block k} |x_bj|`` (1 for an all-zero
    block), and block ``k`` of sample ``b`` is divided by ``s_bk``. A ``bits``-bit signed
    DAC has levels ``k Δ``, ``Δ = 1/L``, ``L = 2**(bits-1) - 1``::

        x̂_bj = clip(x_bj / s_b, -1, 1)          k_bj = rint(x̂_bj · L)          xq_bj = k_bj · (1/L)

    (``rint``: round half to even of the float64 quotient times ``L``; ``x̂ · L`` equals
    ``x̂ / Δ`` with one rounding fewer).

    Parameters
    ----------
    x : float32 ndarray, shape (B, n_in), C-contiguous, B ≥ 1
        Inputs in layer units; must be finite (checked in the same pass).
    bits : int in [2, 24] or None
        DAC resolution; ``None``: no quantisation.
    input_range : float > 0
        Full scale ``r`` in ``fixed`` mode (layer units). Stored as float32 in ``scale`` and
        that float32 value is the divisor, so ``scale · xq`` is consistent.
    maxabs : bool
        Per-sample max-abs scaling instead of the fixed range.
    col_starts : int64 ndarray, shape (n_blocks + 1,)
        Input-dimension tile boundaries, e.g. ``[0, 512, 784]``.
    per_block : bool
        One scale per sample and input block (max-abs over the block) instead of one per
        sample. With a fixed range every block's scale is ``r``.

    Returns
    -------
    xq : float32 (B, n_in)
        DAC outputs in full-scale units, in ``[-1, 1]``.
    scale : float32 (B,), or (B, n_blocks) with ``per_block``
        ``s_b`` (``s_bk``): the digital factor that brings block outputs back to layer units.
    sqnorm : float32 (B, n_blocks)
        Squared norm of the block's DAC levels, for exact read noise. With ``bits``:
        ``Δ² Σ_{j ∈ block} k_bj²`` (integer sums, exact; float64 partial sums over runs of
        4096 inputs), i.e. the norm of the exact levels ``k Δ``. Without: ``Σ xq_bj²`` in
        float64 over four interleaved lanes (``j mod 4``), combined pairwise.
    n_clipped : int
        Number of entries clipped in fixed mode (always 0 with ``maxabs``).
    """
    x = _check_array("x", x, np.float32, (None, None))
    levels = _check_bits("bits", bits)
    rng_ = _check_real("input_range", input_range, 0.0, lo_open=True)
    if not _F32_TINY <= rng_ <= _F32_MAX:
        # It is the float32 divisor: 0 (underflow) or inf (overflow) would give NaN or 0.
        raise ValueError(f"input_range = {input_range!r} is invalid; allowed: a positive "
                         f"float32 normal number, in [{_F32_TINY:.4g}, {_F32_MAX:.4g}]")
    maxabs = _check_bool("maxabs", maxabs)
    per_block = _check_bool("per_block", per_block)
    starts = _check_array("col_starts", col_starts, np.int64, (None,))
    return dac_encode_unchecked(x, levels, np.float32(rng_), maxabs, per_block, starts)


def dac_encode_unchecked(x: np.ndarray, levels: int, input_range: np.float32, maxabs: bool,
                         per_block: bool, starts: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """:func:`dac_encode` for arguments whose types and ranges are already valid.

    ``levels = 2**(bits - 1) - 1`` (0: no quantisation), ``input_range`` the float32 full
    scale; ``x`` a C-contiguous float32 batch, ``starts`` C-contiguous int64. Still checked
    (in the kernel's own pass): finite ``x`` and valid block starts. Same numbers as the
    checked call; for callers that validate once (the crossbar array's read path).
    """
    batch = x.shape[0]
    n_blocks = max(starts.size - 1, 1)
    xq = np.empty_like(x)
    scale = np.empty((batch, n_blocks if per_block else 1), dtype=np.float32)
    sqnorm = np.empty((batch, n_blocks), dtype=np.float32)
    # The uint32 view lets the max-abs and finiteness scan run on integer lanes: for
    # non-negative floats the bit pattern orders like the value, and Inf/NaN sort above
    # FLT_MAX, so one vectorised integer max replaces a float reduction that would have to
    # stay sequential without fastmath.
    n_clip, n_bad = pick(_dac_driver, x.size)(x, x.view(np.uint32), float(levels),
                                              input_range, maxabs, per_block, starts, xq,
                                              scale, sqnorm)
    if n_clip < 0:
        raise ValueError(f"col_starts = {starts.tolist()} is invalid; allowed: strictly "
                         f"increasing block starts from 0 ending with the width {x.shape[1]}, "
                         f"e.g. [0, 512, {x.shape[1]}]")
    _raise_nonfinite("x", n_bad)
    return xq, (scale if per_block else scale.reshape(batch)), sqnorm, n_clip


@jit
def _starts_ok(starts, n):
    """``[0, s_1, …, n]`` strictly increasing (checked here: cheaper than in NumPy)."""
    ok = starts.size >= 2 and starts[0] == 0 and starts[-1] == n
    for k in range(starts.size - 1):
        ok &= starts[k] < starts[k + 1]
    return ok


@pjit
def _dac_driver(x, xbits, levels, fixed_scale, maxabs, per_block, starts, xq, scale, sqnorm):
    """Returns ``(clipped, non-finite)`` totals, or ``(-1, 0)`` for bad ``starts``.

    ``scale`` is ``(B, n_blocks)`` with ``per_block``, else ``(B, 1)``.
    """
    if not _starts_ok(starts, x.shape[1]):
        return -1, 0
    batch = x.shape[0]
    n_blocks = starts.size - 1
    block_max = maxabs and per_block
    counts = np.zeros((batch, 2), dtype=np.int64)
    for b in prange(batch):
        if block_max:
            # One pass per block gives the block maxima (kept in scale as floats for now)
            # and, through their maximum, the finiteness check of the whole sample.
            m = np.uint32(0)
            for k in range(n_blocks):
                mk = _abs_max_bits(xbits[b, starts[k]:starts[k + 1]])
                scale[b, k] = _u32_as_f32(mk)
                m = max(m, mk)
        else:
            m = _abs_max_bits(xbits[b])
        if m > _F32_MAX_BITS:
            # The sample is rejected: count its NaN/Inf and skip the encoding.
            counts[b, 1] = _count_nonfinite(xbits[b])
            scale[b, :] = np.float32(1.0)
            continue
        s = fixed_scale
        if maxabs:
            s = _u32_as_f32(m) if m > 0 else np.float32(1.0)
        # Only a sample whose max|x| exceeds s has inputs to clip (never with maxabs).
        may_clip = _u32_as_f32(m) > s
        n_clip = 0
        for k in range(n_blocks):
            j0, j1 = starts[k], starts[k + 1]
            sk = s
            if block_max:
                sk = scale[b, k] if scale[b, k] > 0.0 else np.float32(1.0)
            if per_block:
                scale[b, k] = sk
            c, sq = _dac_block(x[b, j0:j1], xq[b, j0:j1], sk, levels, may_clip)
            n_clip += c
            sqnorm[b, k] = sq
        if not per_block:
            scale[b, 0] = s
        counts[b, 0] = n_clip
    return counts[:, 0].sum(), counts[:, 1].sum()


@jit
def _abs_max_bits(xb):
    """Bits of ``max|x|`` from the uint32 view of a float32 row (> FLT_MAX: NaN or Inf)."""
    m = np.uint32(0)
    for j in range(xb.size):
        # Explicit uint32: numba would widen the mask result to 64 bits (4 lanes, not 8).
        m = max(m, np.uint32(xb[j] & _ABS_MASK))
    return m


@jit
def _count_nonfinite(xb):
    n_bad = 0
    for j in range(xb.size):
        n_bad += (xb[j] & _ABS_MASK) > _F32_MAX_BITS
    return n_bad


@jit
def _dac_block(xr, qr, s, levels, may_clip):
    """Encode one input block of one sample; returns ``(clipped, squared norm)``."""
    if levels == 0.0:
        n_clip = _dac_ideal(xr, qr, np.float64(s))
        return n_clip, np.float32(_sum_squares(qr))
    n_clip = 0
    total = 0.0
    for c0 in range(0, xr.size, _SQ_CHUNK):
        c1 = min(c0 + _SQ_CHUNK, xr.size)
        if may_clip:
            c, near, ksq = _dac_levels_clip(xr[c0:c1], qr[c0:c1], s, levels)
        else:
            c, near, ksq = _dac_levels(xr[c0:c1], qr[c0:c1], s, levels)
        if near:
            c, ksq = _dac_levels_exact(xr[c0:c1], qr[c0:c1], s, levels)
        n_clip += c
        total += np.float64(ksq)
    return n_clip, np.float32(total / (levels * levels))


@jit
def _dac_levels(xr, qr, s, levels):
    """Quantise inputs with ``|x| ≤ s`` by one multiply each instead of a division.

    ``t = x · RN(L/s)`` and the reference ``RN(RN(x/s) · L)`` are both within ``2·2**-53 |t|
    ≤ 2**-51 L`` of ``x L / s``, so they round to the same level unless ``t`` lies within
    ``2**-50 L`` of a half-integer; ``near`` reports such inputs (margin ``2**-48 (L + 1)``)
    and the caller redoes the run with :func:`_dac_levels_exact`. Returns
    ``(0 clipped, near, Σ k²)``.
    """
    c = levels / np.float64(s)
    delta = 1.0 / levels
    edge = 0.5 - (levels + 1.0) * 2.0**-48
    near = False
    ksq = 0
    for j in range(xr.size):
        t = np.float64(xr[j]) * c
        k = np.rint(t)
        near |= abs(t - k) > edge
        qr[j] = np.float32(k * delta)
        ki = np.int64(np.int32(k))
        ksq += ki * ki
    return 0, near, ksq


@jit
def _dac_levels_clip(xr, qr, s, levels):
    """:func:`_dac_levels` for a run that may hold inputs beyond ``s`` (fixed range).

    ``|x| > s`` (float32 compare) is exactly the reference's ``RN(x/s) > 1`` for float32
    ``x`` and ``s`` (their quotient is either 1 or at least ``2**-24`` away from it); those
    inputs clip to ``±L``. Returns ``(clipped, near, Σ k²)``.
    """
    c = levels / np.float64(s)
    delta = 1.0 / levels
    edge = 0.5 - (levels + 1.0) * 2.0**-48
    n_clip = 0
    near = False
    ksq = 0
    for j in range(xr.size):
        xv = xr[j]
        t = np.float64(xv) * c
        k = np.rint(t)
        clip = abs(xv) > s
        near |= (abs(t - k) > edge) & (not clip)
        k = math.copysign(levels, t) if clip else k
        n_clip += clip
        qr[j] = np.float32(k * delta)
        ki = np.int64(np.int32(k))
        ksq += ki * ki
    return n_clip, near, ksq


@jit
def _dac_levels_exact(xr, qr, s, levels):
    """The reference quantiser (float64 division); returns ``(clipped, Σ k²)``."""
    delta = 1.0 / levels
    sd = np.float64(s)
    n_clip = 0
    ksq = 0
    for j in range(xr.size):
        v = np.float64(xr[j]) / sd
        n_clip += abs(v) > 1.0
        k = np.rint(min(max(v, -1.0), 1.0) * levels)
        qr[j] = np.float32(k * delta)
        ki = np.int64(k)
        ksq += ki * ki
    return n_clip, ksq


@jit
def _dac_ideal(xr, qr, s):
    """``qr = clip(xr / s)`` without quantisation; returns the clip count."""
    n_clip = 0
    for j in range(xr.size):
        v = np.float64(xr[j]) / s
        n_clip += abs(v) > 1.0
        qr[j] = np.float32(min(max(v, -1.0), 1.0))
    return n_clip


@jit
def _sum_squares(q):
    """``Σ q_j²`` in float64 over four interleaved lanes (``j mod 4``), combined pairwise.

    A fixed order that the NumPy twin reproduces; each ``q²`` is exact in float64 (float32
    squares have 48 bits).
    """
    a0 = a1 = a2 = a3 = 0.0
    n4 = q.size - q.size % 4
    for j in range(0, n4, 4):
        a0 += np.float64(q[j]) * np.float64(q[j])
        a1 += np.float64(q[j + 1]) * np.float64(q[j + 1])
        a2 += np.float64(q[j + 2]) * np.float64(q[j + 2])
        a3 += np.float64(q[j + 3]) * np.float64(q[j + 3])
    r = q.size - n4
    if r > 0:
        a0 += np.float64(q[n4]) * np.float64(q[n4])
    if r > 1:
        a1 += np.float64(q[n4 + 1]) * np.float64(q[n4 + 1])
    if r > 2:
        a2 += np.float64(q[n4 + 2]) * np.float64(q[n4 + 2])
    return (a0 + a1) + (a2 + a3)


@intrinsic
def _u32_as_f32(typingctx, v):
    """Reinterpret uint32 bits as a float32 (no conversion)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.uint32), codegen


@intrinsic
def _f32_as_u32(typingctx, v):
    """Reinterpret a float32 as its uint32 bits (no conversion)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.uint32(types.float32), codegen


# --------------------------------------------------------------------------- ADC


def adc_read(y: np.ndarray, out: np.ndarray, *, sqnorm_block: np.ndarray | None = None,
             scale: np.ndarray, read_std: float, out_std: float, bits: int | None,
             bounds: np.ndarray, row_tile: int, key: int, counter: int,
             read_var: np.ndarray | None = None) -> tuple[int, np.ndarray]:
    """Add read and output noise to one column block's products, convert, accumulate.

    Per sample ``b`` and output ``i`` (row tile ``t = i // row_tile``, bound ``β_t``)::

        σ_bi = sqrt(σ_r² q_bi + σ_o²)                    (exact output-referred read noise)
        v   = y_bi + σ_bi · z_bi,   z_bi = rand_normal(key, counter, b·n_out + i)
        v   = clip(v, -β_t, β_t)                           (counted as saturation)
        v   = rint(v · L/β_t) · (β_t/L),   L = 2**(bits-1) - 1   (step Δ = β_t/L)
        out_bi += scale_b · v                              (digital partial-sum addition)

    where ``q_bi = ‖xq_b‖²`` (``sqnorm_block``, the same for every output: i.i.d. cell
    noise) or ``q_bi = read_var[b, i]`` (a per-output variance factor, e.g.
    ``Σ_j |w_ij| xq_bj²`` for PCM-like read noise). Exactly one of the two is given.
    Without ``bits`` there is neither saturation nor quantisation. Arithmetic is float64;
    ``out`` is rounded to float32 once per call.

    Parameters
    ----------
    y : float32 (B, n_out)
        Raw products ``xq_block @ W_block.T`` in output units (device-unit weights ×
        DAC-normalised inputs).
    out : float32 (B, n_out)
        Accumulator in layer units, updated in place.
    sqnorm_block : float32 (B,), optional
        ``‖xq_b‖²`` over this block (from :func:`dac_encode`).
    scale : float32 (B,)
        Per-sample digital scale from :func:`dac_encode` (this block's column of it with
        per-block scaling).
    read_std : float ≥ 0
        ``σ_r``: read-noise std per unit of ``sqrt(q)``. With ``sqnorm_block`` the per-cell
        std in device units (``w_max · read_noise``); with ``read_var`` whatever makes
        ``σ_r² q_bi`` the output variance in output units².
    out_std : float ≥ 0
        ``σ_o``: output-noise std per conversion, in output units.
    bits : int in [2, 24] or None
        ADC resolution.
    bounds : float32 (n_row_tiles,)
        ADC bound per row tile; finite and > 0 when ``bits`` is set (unused otherwise).
    row_tile : int ≥ 1
        Outputs per row tile; ``n_row_tiles = ceil(n_out / row_tile)``.
    key, counter : int
        Counter-RNG key and draw number (use a fresh counter per call).
    read_var : float32 (B, n_out), optional
        Per-output variance factors ``q_bi``, finite and ≥ 0.

    Returns
    -------
    n_sat : int
        Number of saturated conversions.
    sat_rows : bool (B,)
        Samples with at least one saturated output.
    """
    y = _check_array("y", y, np.float32, (None, None))
    batch, n_out = y.shape
    out = _check_array("out", out, np.float32, (batch, n_out), writeable=True)
    if (sqnorm_block is None) == (read_var is None):
        raise ValueError("sqnorm_block and read_var are both "
                         + ("None" if read_var is None else "given")
                         + "; allowed: exactly one of them")
    per_output = read_var is not None
    if per_output:
        var = _check_array("read_var", read_var, np.float32, (batch, n_out))
        # The per-sample norms are unused; zeros keep one driver signature.
        sq = np.zeros(batch, dtype=np.float32)
    else:
        sq = _check_array("sqnorm_block", sqnorm_block, np.float32, (batch,))
        var = np.zeros((1, 1), dtype=np.float32)
    sc = _check_array("scale", scale, np.float32, (batch,))
    rs = _check_real("read_std", read_std, 0.0)
    os_ = _check_real("out_std", out_std, 0.0)
    levels = _check_bits("bits", bits)
    tile = _check_int("row_tile", row_tile, 1, 1 << 62)
    bnd = _check_array("bounds", bounds, np.float32, (-(-n_out // tile),))
    k, c = check_key(key, counter)
    return adc_read_unchecked(y, out, sq, var, per_output, sc, rs, os_, levels, bnd, tile, k, c)


def adc_read_unchecked(y: np.ndarray, out: np.ndarray, sq: np.ndarray, var: np.ndarray,
                       per_output: bool, sc: np.ndarray, rs: float, os_: float, levels: int,
                       bnd: np.ndarray, tile: int, k: np.uint64, c: np.uint64
                       ) -> tuple[int, np.ndarray]:
    """:func:`adc_read` for arguments whose types, shapes and ranges are already valid.

    ``sq`` (B,) and ``var`` ((B, n_out) with ``per_output``, else any float32 array) as the
    driver takes them, ``levels = 2**(bits - 1) - 1`` (0: ideal ADC), ``k``, ``c`` the key
    and counter as ``np.uint64``. Still checked (in the kernel, before anything is
    written): finite norms, scales, variances and bounds, finite ``y``. Same numbers as
    the checked call; for callers that validate once (the crossbar array's read path).
    """
    batch = y.shape[0]
    sat_rows = np.empty(batch, dtype=np.bool_)
    drive, n_groups = pick_groups(_adc_driver, y.size, batch)
    n_sat, n_bad = drive(y, out, sq, var, per_output, sc, rs, os_, levels, bnd, tile, k, c,
                         sat_rows, n_groups)
    if n_sat == -1:
        raise ValueError(f"bounds = {bnd.tolist()} is invalid with bits = "
                         f"{levels.bit_length() + 1}; allowed: finite values > 0")
    if n_sat == -2:
        raise ValueError("sqnorm_block or scale contains NaN/Inf (or a negative norm); allowed: "
                         "finite values, norms >= 0")
    if n_sat == -3:
        raise ValueError("read_var contains NaN/Inf or a negative value; allowed: finite "
                         "values >= 0")
    _raise_nonfinite("y", n_bad)
    return n_sat, sat_rows


@jit
def _adc_arg_error(sqnorm, var, per_output, scale, bounds, levels):
    """0, or -1 for a bound that is not finite and > 0 (with ``bits``), -2 for a norm that is
    not finite and ≥ 0 or a scale that is not finite, -3 for a per-output variance factor
    that is not finite and ≥ 0. Checked before anything is written."""
    if levels:
        for t in range(bounds.size):
            if not (bounds[t] > 0.0 and bounds[t] <= _F32_MAX):
                return -1
    for b in range(sqnorm.size):
        if not (sqnorm[b] >= 0.0 and sqnorm[b] <= _F32_MAX and abs(scale[b]) <= _F32_MAX):
            return -2
    if per_output:
        flat = var.reshape(-1)
        for i in range(flat.size):
            if not (flat[i] >= 0.0 and flat[i] <= _F32_MAX):
                return -3
    return 0


@pjit
def _adc_driver(y, out, sqnorm, var, per_output, scale, read_std, out_std, levels, bounds,
                row_tile, key, ctr, sat_rows, n_groups):
    """Returns ``(saturated, non-finite y)`` totals, or ``(error code, 0)``."""
    err = _adc_arg_error(sqnorm, var, per_output, scale, bounds, levels)
    if err:
        return err, 0
    batch = y.shape[0]
    skey = stream_key(key, ctr)
    counts = np.zeros((batch, 2), dtype=np.int64)
    noisy = read_std > 0.0 or out_std > 0.0
    n_out = y.shape[1]
    # Narrow outputs (a conv layer's few channels over B·P windows): one short call per
    # sample, and the normals of several samples drawn in one pass (their indices
    # b·n_out + i are consecutive), not a short pass per sample; same numbers and order.
    narrow = bounds.size == 1 and 2 * n_out <= _CHUNK
    rows = _CHUNK // n_out if narrow else 1
    for g in prange(n_groups):
        z = np.empty(_CHUNK)
        scratch = np.empty(normal_scratch(_CHUNK), dtype=np.uint64)
        r1 = (g + 1) * batch // n_groups
        z0 = 0
        for b in range(g * batch // n_groups, r1):
            if per_output:
                # The normals are scaled by their own σ_bi in place (see _adc_chunk); the
                # conversion then adds them with unit factor, which is exact.
                sigma = 1.0 if noisy else 0.0
                var_row = var[b]
            else:
                sigma = math.sqrt(read_std * read_std * np.float64(sqnorm[b])
                                  + out_std * out_std)
                var_row = var[0]
            if narrow:
                if (b - g * batch // n_groups) % rows == 0:
                    if noisy:
                        fill_normals(skey, b * n_out, z[:min(rows, r1 - b) * n_out], scratch)
                    z0 = 0
                n_sat, n_bad = _adc_chunk(y[b], out[b], z[z0:z0 + n_out], sigma, var_row,
                                          per_output, read_std, out_std, np.float64(scale[b]),
                                          levels, np.float64(bounds[0]))
                z0 += n_out
            else:
                n_sat, n_bad = _adc_row(y[b], out[b], b * n_out, sigma, var_row, per_output,
                                        read_std, out_std, np.float64(scale[b]), levels,
                                        bounds, row_tile, skey, z, scratch)
            counts[b, 0] = n_sat
            counts[b, 1] = n_bad
            sat_rows[b] = n_sat > 0
    return counts[:, 0].sum(), counts[:, 1].sum()


@jit
def _adc_row(yr, outr, idx0, sigma, var_r, per_output, read_std, out_std, s, levels, bounds,
             row_tile, skey, z, scratch):
    """One sample: noise chunk by chunk (normals ``idx0 + i``), then convert each chunk."""
    n_out = yr.size
    n_sat = 0
    n_bad = 0
    for t in range(bounds.size):
        i1_tile = min((t + 1) * row_tile, n_out)
        bound = np.float64(bounds[t])
        for i0 in range(t * row_tile, i1_tile, _CHUNK):
            i1 = min(i0 + _CHUNK, i1_tile)
            if sigma > 0.0:
                fill_normals(skey, idx0 + i0, z[:i1 - i0], scratch)
            # Without per_output var_r is a placeholder the chunk never reads.
            sat, bad = _adc_chunk(yr[i0:i1], outr[i0:i1], z[:i1 - i0], sigma, var_r[i0:i1],
                                  per_output, read_std, out_std, s, levels, bound)
            n_sat += sat
            n_bad += bad
    return n_sat, n_bad


@jit
def _adc_chunk(yr, outr, zr, sigma, var_r, per_output, read_std, out_std, s, levels, bound):
    """Convert a run of one sample's outputs under one ADC bound, with their normals ``zr``
    (drawn by the caller; unused, and need not be drawn, when ``sigma = 0``). With
    ``per_output`` each normal is first multiplied by ``sqrt(σ_r² var_r[i] + σ_o²)``."""
    if per_output and sigma > 0.0:
        rs2 = read_std * read_std
        os2 = out_std * out_std
        for i in range(zr.size):
            zr[i] *= math.sqrt(rs2 * np.float64(var_r[i]) + os2)
    if levels > 0 and sigma > 0.0:
        return _convert_noisy(yr, outr, zr, sigma, s, levels / bound, bound / levels, bound)
    return _adc_span(yr, outr, zr, sigma, s, levels, bound)


@jit
def _convert_noisy(yr, outr, z, sigma, s, inv, step, bound):
    """:func:`_adc_span` with noise and an ADC (the common case), without its branches."""
    n_sat = 0
    n_bad = 0
    for i in range(yr.size):
        v = np.float64(yr[i])
        n_bad += not abs(v) <= _F32_MAX
        v += sigma * z[i]
        n_sat += abs(v) > bound
        v = min(max(v, -bound), bound)
        v = np.rint(v * inv) * step
        outr[i] = np.float32(np.float64(outr[i]) + s * v)
    return n_sat, n_bad


@jit
def _adc_span(yr, outr, z, sigma, s, levels, bound):
    """A run of outputs of one sample under one ADC bound; ``z`` holds their normals."""
    n_sat = 0
    n_bad = 0
    inv = 0.0
    step = 0.0
    if levels > 0:
        inv = levels / bound
        step = bound / levels
    for i in range(yr.size):
        v = np.float64(yr[i])
        n_bad += not abs(v) <= _F32_MAX
        if sigma > 0.0:
            v += sigma * z[i]
        if levels > 0:
            n_sat += abs(v) > bound
            v = min(max(v, -bound), bound)
            v = np.rint(v * inv) * step
        outr[i] = np.float32(np.float64(outr[i]) + s * v)
    return n_sat, n_bad
