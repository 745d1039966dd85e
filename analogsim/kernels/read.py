"""Read path kernels: DAC encoding of the inputs and noisy ADC conversion of the outputs.

One batched read of a tiled array is::

    xq, scale, sqnorm, _ = dac_encode(x, ...)              # once per read
    for each input (column) block k:
        y = xq[:, block k] @ W[:, block k].T                # BLAS, all row tiles at once
        adc_read(y, out, sqnorm_block=sqnorm[:, k], ...)    # noise + ADC + digital sum

Read noise is drawn on the outputs, not on the cells: with i.i.d. per-cell weight noise of
std ``σ_r`` (device units), output ``i`` of block ``k`` receives ``Σ_j ε_ij x_j ~
N(0, σ_r² ‖x_k‖²)``, exactly. That is why :func:`dac_encode` returns ``‖xq_k‖²`` per block.

This module also holds the argument checks shared by the kernel modules (``_check_*``).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ._numba import jit, pjit, prange
from .rng import check_key, fill_normals, stream_key

__all__ = ["dac_encode", "adc_read"]

# Outputs per noise batch: the normals of one chunk are drawn together (vectorised), then
# consumed by the branch-free conversion loop while still in L1.
_CHUNK = 256
_F32_MAX = float(np.finfo(np.float32).max)
_F32_TINY = float(np.finfo(np.float32).tiny)
_ABS_MASK = np.uint32(0x7FFFFFFF)
_F32_MAX_BITS = np.uint32(0x7F7FFFFF)


# --------------------------------------------------------------------------- argument checks


def _check_array(name: str, a: object, dtype: type, shape: tuple[int | None, ...], *,
                 writeable: bool = False) -> np.ndarray:
    """``a``: C-contiguous ``dtype`` ndarray of ``len(shape)`` axes, each ≥ 1.

    Entries of ``shape`` that are not ``None`` must match. Nothing is cast or copied.
    """
    want = np.dtype(dtype)
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of {want}, got {type(a).__name__}")
    if a.dtype != want:
        raise TypeError(f"{name}.dtype = {a.dtype} is not allowed; allowed: {want} "
                        f"(convert explicitly with .astype(np.{want}))")
    allowed = tuple("n >= 1" if s is None else s for s in shape)
    if a.ndim != len(shape) or min(a.shape, default=1) < 1 or any(
            s is not None and g != s for g, s in zip(a.shape, shape, strict=False)):
        raise ValueError(f"{name}.shape = {a.shape} is invalid; allowed: {allowed}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} is not C-contiguous (strides {a.strides}); allowed: a "
                         "C-contiguous array (np.ascontiguousarray)")
    if writeable and not a.flags.writeable:
        raise ValueError(f"{name} is read-only; allowed: a writeable array (it is updated "
                         "in place)")
    return a


def _check_bits(name: str, bits: object) -> int:
    """``None`` (ideal converter) → 0; else bits in [2, 24] → levels ``L = 2**(bits-1) - 1``."""
    if bits is None:
        return 0
    if not _is_int(bits) or not 2 <= int(bits) <= 24:
        # bits = 1 has 2**0 - 1 = 0 non-zero levels: a converter that only outputs 0.
        raise ValueError(f"{name} = {bits!r} is invalid; allowed: None or an integer in [2, 24]")
    return (1 << (int(bits) - 1)) - 1


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


def _check_starts(name: str, starts: object, n: int) -> np.ndarray:
    """Block boundaries ``[0, s_1, …, n]``: int64, strictly increasing."""
    s = _check_array(name, starts, np.int64, (None,))
    if s.size < 2 or s[0] != 0 or s[-1] != n or np.any(np.diff(s) <= 0):
        raise ValueError(f"{name} = {s.tolist()} is invalid; allowed: strictly increasing "
                         f"block starts from 0 ending with the width {n}, e.g. [0, 512, {n}]")
    return s


def _raise_nonfinite(name: str, count: int) -> None:
    if count:
        raise ValueError(f"{name} contains {count} NaN or Inf entries; allowed: finite values")


# --------------------------------------------------------------------------- DAC


def dac_encode(x: np.ndarray, *, bits: int | None, input_range: float, maxabs: bool,
               col_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Scale, clip and quantise a batch of inputs for the DAC (per sample, in parallel).

    With ``maxabs`` each sample is divided by its own ``s_b = max_j |x_bj|`` (1 for an
    all-zero sample), so nothing clips; otherwise ``s_b = r`` (``input_range``) and
    ``x / r`` is clipped to ``[-1, 1]``. A ``bits``-bit signed DAC has levels ``k / L``,
    ``L = 2**(bits-1) - 1`` (step ``Δ = 1/L``)::

        x̂_bj = clip(x_bj / s_b, -1, 1)          xq_bj = rint(x̂_bj · L) / L

    (``rint``: round half to even; ``x̂ · L`` equals ``x̂ / Δ`` with one rounding fewer).

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

    Returns
    -------
    xq : float32 (B, n_in)
        DAC outputs in full-scale units, in ``[-1, 1]``.
    scale : float32 (B,)
        ``s_b``: the digital factor that brings outputs back to layer units.
    sqnorm : float32 (B, n_blocks)
        ``Σ_{j ∈ block} xq_bj²`` (summed in float64 in index order) for exact read noise.
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
    starts = _check_starts("col_starts", col_starts, x.shape[1])
    batch = x.shape[0]
    xq = np.empty_like(x)
    scale = np.empty(batch, dtype=np.float32)
    sqnorm = np.empty((batch, starts.size - 1), dtype=np.float32)
    counts = np.zeros((batch, 2), dtype=np.int64)
    # The uint32 view lets the max-abs and finiteness scan run on integer lanes: for
    # non-negative floats the bit pattern orders like the value, and Inf/NaN sort above
    # FLT_MAX, so one vectorised integer max/compare pass replaces a float reduction that
    # would have to stay sequential without fastmath.
    _dac_driver(x, x.view(np.uint32), float(levels), np.float32(rng_), maxabs, starts, xq,
                scale, sqnorm, counts)
    _raise_nonfinite("x", int(counts[:, 1].sum()))
    return xq, scale, sqnorm, int(counts[:, 0].sum())


@pjit
def _dac_driver(x, xbits, levels, fixed_scale, maxabs, starts, xq, scale, sqnorm, counts):
    for b in prange(x.shape[0]):
        m, n_bad = _abs_max_bits(xbits[b])
        s = fixed_scale
        if maxabs:
            s = _u32_as_f32(m) if m > 0 else np.float32(1.0)
        scale[b] = s
        n_clip = 0
        for k in range(starts.size - 1):
            j0, j1 = starts[k], starts[k + 1]
            n_clip += _dac_span(x[b, j0:j1], xq[b, j0:j1], np.float64(s), levels)
            sqnorm[b, k] = np.float32(_sum_squares(xq[b, j0:j1]))
        counts[b, 0] = 0 if maxabs else n_clip
        counts[b, 1] = n_bad


@jit
def _abs_max_bits(xb):
    """``(bits of max|x|, number of NaN/Inf)`` from the uint32 view of a float32 row."""
    m = np.uint32(0)
    n_bad = 0
    for j in range(xb.size):
        a = xb[j] & _ABS_MASK
        n_bad += a > _F32_MAX_BITS
        m = max(m, a)
    return m, n_bad


@jit
def _dac_span(xr, qr, s, levels):
    """``qr = rint(clip(xr / s) · L) · (1/L)`` (no quantisation if ``L = 0``); clip count."""
    n_clip = 0
    delta = 1.0 / levels if levels > 0.0 else 0.0
    for j in range(xr.size):
        v = np.float64(xr[j]) / s
        n_clip += abs(v) > 1.0
        v = min(max(v, -1.0), 1.0)
        if levels > 0.0:
            v = np.rint(v * levels) * delta
        qr[j] = np.float32(v)
    return n_clip


@jit
def _sum_squares(q):
    """``Σ q_j²`` in float64 over four interleaved lanes (``j mod 4``), combined pairwise.

    The fixed lane order is what lets the sum vectorise without fastmath, and is what the
    NumPy twin reproduces; each ``q²`` is exact in float64 (float32 squares have 48 bits).
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


# --------------------------------------------------------------------------- ADC


def adc_read(y: np.ndarray, out: np.ndarray, *, sqnorm_block: np.ndarray, scale: np.ndarray,
             read_std: float, out_std: float, bits: int | None, bounds: np.ndarray,
             row_tile: int, key: int, counter: int) -> tuple[int, np.ndarray]:
    """Add read and output noise to one column block's products, convert, accumulate.

    Per sample ``b`` and output ``i`` (row tile ``t = i // row_tile``, bound ``β_t``)::

        σ_b = sqrt(σ_r² ‖xq_b‖² + σ_o²)                  (exact output-referred read noise)
        v   = y_bi + σ_b · z_bi,   z_bi = rand_normal(key, counter, b·n_out + i)
        v   = clip(v, -β_t, β_t)                           (counted as saturation)
        v   = rint(v · L/β_t) · (β_t/L),   L = 2**(bits-1) - 1   (step Δ = β_t/L)
        out_bi += scale_b · v                              (digital partial-sum addition)

    Without ``bits`` there is neither saturation nor quantisation. Arithmetic is float64;
    ``out`` is rounded to float32 once per call.

    Parameters
    ----------
    y : float32 (B, n_out)
        Raw products ``xq_block @ W_block.T`` in output units (device-unit weights ×
        DAC-normalised inputs).
    out : float32 (B, n_out)
        Accumulator in layer units, updated in place.
    sqnorm_block : float32 (B,)
        ``‖xq_b‖²`` over this block (from :func:`dac_encode`).
    scale : float32 (B,)
        Per-sample digital scale from :func:`dac_encode`.
    read_std : float ≥ 0
        ``σ_r = w_max · read_noise``: per-cell read-noise std in device units.
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
    sq = _check_array("sqnorm_block", sqnorm_block, np.float32, (batch,))
    sc = _check_array("scale", scale, np.float32, (batch,))
    rs = _check_real("read_std", read_std, 0.0)
    os_ = _check_real("out_std", out_std, 0.0)
    levels = _check_bits("bits", bits)
    tile = _check_int("row_tile", row_tile, 1, 1 << 62)
    bnd = _check_array("bounds", bounds, np.float32, (-(-n_out // tile),))
    if levels and not (np.all(np.isfinite(bnd)) and np.all(bnd > 0)):
        raise ValueError(f"bounds = {bnd.tolist()} is invalid with bits = {bits}; allowed: "
                         "finite values > 0")
    if not (np.all(np.isfinite(sq)) and np.all(sq >= 0) and np.all(np.isfinite(sc))):
        raise ValueError("sqnorm_block or scale contains NaN/Inf (or a negative norm); allowed: "
                         "finite values, norms >= 0")
    k, c = check_key(key, counter)
    counts = np.zeros((batch, 2), dtype=np.int64)
    _adc_driver(y, out, sq, sc, rs, os_, levels, bnd, tile, k, c, counts)
    _raise_nonfinite("y", int(counts[:, 1].sum()))
    return int(counts[:, 0].sum()), counts[:, 0] > 0


@pjit
def _adc_driver(y, out, sqnorm, scale, read_std, out_std, levels, bounds, row_tile, key, ctr,
                counts):
    n_out = y.shape[1]
    skey = stream_key(key, ctr)
    for b in prange(y.shape[0]):
        sigma = math.sqrt(read_std * read_std * np.float64(sqnorm[b]) + out_std * out_std)
        z = np.empty(_CHUNK if sigma > 0.0 else 0)
        scratch = np.empty(_CHUNK // 2 if sigma > 0.0 else 0, dtype=np.uint64)
        n_sat = 0
        n_bad = 0
        for t in range(bounds.size):
            i1_tile = min((t + 1) * row_tile, n_out)
            for i0 in range(t * row_tile, i1_tile, _CHUNK):
                i1 = min(i0 + _CHUNK, i1_tile)
                if sigma > 0.0:
                    fill_normals(skey, b * n_out + i0, z[:i1 - i0], scratch)
                s, f = _adc_span(y[b, i0:i1], out[b, i0:i1], z, sigma, np.float64(scale[b]),
                                 levels, np.float64(bounds[t]))
                n_sat += s
                n_bad += f
        counts[b, 0] = n_sat
        counts[b, 1] = n_bad


@jit
def _adc_span(yr, outr, z, sigma, s, levels, bound):
    """A run of outputs of one sample under one ADC bound; ``z`` holds their normals.

    Branch-free in the common case so the loop vectorises.
    """
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
