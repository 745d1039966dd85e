"""The read path of a crossbar array: DAC, per-tile BLAS products, noise and ADC, range
management, and what one read is charged.

Functions of an array's read state (:class:`ReadState`: its hardware, read key and
counter); :class:`~analogsim.hardware.array.CrossbarArray` calls them for ``mvm`` and the
transposed read.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from ..kernels.read import adc_read_unchecked, converter_levels, dac_encode_unchecked
from .config import HardwareConfig
from .ledger import Ledger

__all__ = ["analog_read", "read_encoded", "charge_read"]


class ReadState(Protocol):
    """What a read needs of the array: its hardware and its read draws' key and counter
    (the counter advances by one per input block read)."""

    hw: HardwareConfig
    _read_key: int
    _read_counter: int


def _overflow(name: str, x: np.ndarray) -> ValueError:
    peak = max(float(x.max()), -float(x.min()))
    return ValueError(f"{name}: the read result overflows float32 (max|{name}| = {peak:.3g}); "
                      f"allowed: inputs small enough that W·{name} stays below 3.4e38")


def analog_read(arr: ReadState, x: np.ndarray, w: np.ndarray, in_starts: np.ndarray,
                out_starts: np.ndarray, bounds: np.ndarray, ledger: Ledger, name: str = "x",
                abs_w: np.ndarray | None = None) -> np.ndarray:
    """DAC → per input block BLAS product → noise + ADC accumulate; range management; charge.

    ``abs_w`` (``|w|``, same layout as ``w``) selects conductance-dependent read noise.
    Raises ValueError naming the input ``name`` if a finite input gives a result beyond
    float32 (the digital rescaling by a huge ``max|x|``), instead of returning ``inf``.
    """
    hw = arr.hw
    per_tile = hw.dac.scaling == "maxabs_tile"
    # The kernels' unchecked entries: the configuration is validated when it is built, the
    # batch by the public call, the layout and the state by the array (per read, the
    # kernels' own checks were a visible share of a small training step).
    levels = converter_levels(hw.dac.bits)
    xq, scale, sqnorm, n_clip = dac_encode_unchecked(
        x, levels, np.float32(hw.dac.input_range), hw.dac.scaling != "fixed", per_tile,
        in_starts)
    out, sat_rows, n_sat = read_encoded(arr, xq, scale, sqnorm, w, in_starts, out_starts,
                                        bounds, abs_w)
    n_reads = x.shape[0]
    tries = 0
    while hw.adc.manage_range and tries < hw.adc.max_retries and sat_rows.any():
        # Re-read saturated samples with the DAC input halved; the digital periphery
        # doubles their result. Each re-read is a full read and is charged as one. With
        # per-tile scaling every tile of the sample is halved (not only the saturated one).
        idx = np.flatnonzero(sat_rows)
        xq2, _, sq2, _ = dac_encode_unchecked(np.ascontiguousarray(xq[idx] * np.float32(0.5)),
                                              levels, np.float32(1.0), False, False, in_starts)
        with np.errstate(over="ignore"):
            sc2 = np.ascontiguousarray(scale[idx] * np.float32(2.0))
        if not np.all(np.isfinite(sc2)):
            raise _overflow(name, x)
        out2, sat2, n2 = read_encoded(arr, xq2, sc2, sq2, w, in_starts, out_starts, bounds,
                                      abs_w)
        out[idx] = out2
        n_sat += n2
        sat_rows = np.zeros_like(sat_rows)
        sat_rows[idx] = sat2
        xq[idx], scale[idx] = xq2, sc2
        n_reads += idx.size
        tries += 1
    charge_read(arr, ledger, n_reads, x.shape[1], out.shape[1], len(in_starts) - 1,
                len(out_starts) - 1, n_sat, n_clip)
    if not np.all(np.isfinite(out)):
        raise _overflow(name, x)
    return out


def read_encoded(arr: ReadState, xq: np.ndarray, scale: np.ndarray, sqnorm: np.ndarray,
                 w: np.ndarray, in_starts: np.ndarray, out_starts: np.ndarray,
                 bounds: np.ndarray, abs_w: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, int]:
    """Per input block: BLAS product ``xq_k W_kᵀ``, then noise + ADC accumulated into ``out``.

    ``scale`` is ``(B,)`` or, with per-tile scaling, ``(B, n_blocks)``. With ``abs_w`` the
    read noise of output ``i`` has variance ``σ_r² w_max Σ_j |w_ij| xq_j²`` over the block
    (PCM-like, see docs/hardware.md), formed by a second product ``xq_k² |W_k|ᵀ``.
    """
    hw = arr.hw
    batch, n_out = xq.shape[0], w.shape[0]
    n_blocks = len(in_starts) - 1
    out = np.zeros((batch, n_out), dtype=np.float32)
    sat_rows = np.zeros(batch, dtype=np.bool_)
    n_sat = 0
    row_tile = int(out_starts[1] - out_starts[0]) if len(out_starts) > 2 else n_out
    # Loop invariants, set up once per read: one product buffer for every block, the
    # per-block norms, scales and ADC bounds as contiguous rows, the noise and converter
    # settings.
    y = np.empty((batch, n_out), dtype=np.float32)
    sq_blocks = np.ascontiguousarray(sqnorm.T)
    bound_blocks = np.ascontiguousarray(bounds.T)
    scale_blocks = np.ascontiguousarray(scale.T) if scale.ndim == 2 else None
    read_std = hw.device.w_max * hw.noise.read_noise
    var = xsq = None
    if abs_w is not None:
        # Per-cell variance (w_max σ_r)² |w_ij| / w_max: output variance
        # (σ_r √w_max)² Σ_j |w_ij| xq_j² (aihwkit's PCM_READ with w_noise = σ_r √w_max).
        read_std = math.sqrt(hw.device.w_max) * hw.noise.read_noise
        var = np.empty((batch, n_out), dtype=np.float32)
        xsq = xq * xq
    out_std, levels = hw.noise.out_noise, converter_levels(hw.adc.bits)
    key = np.uint64(arr._read_key)
    no_var = np.zeros((1, 1), dtype=np.float32)  # the driver's argument without read_var
    for k in range(n_blocks):
        c0, c1 = in_starts[k], in_starts[k + 1]
        if n_blocks == 1:
            np.matmul(xq, w.T, out=y)
        else:
            np.matmul(xq[:, c0:c1], w[:, c0:c1].T, out=y)
        sc = scale if scale_blocks is None else scale_blocks[k]
        if var is not None:
            np.matmul(xsq[:, c0:c1], abs_w[:, c0:c1].T, out=var)
        # With read_var the per-sample norms are unused (the kernel reads the variances).
        n, rows = adc_read_unchecked(y, out, sq_blocks[k], no_var if var is None else var,
                                     var is not None, sc, read_std, out_std, levels,
                                     bound_blocks[k], row_tile, key,
                                     np.uint64(arr._read_counter))
        arr._read_counter += 1
        n_sat += int(n)
        sat_rows |= rows
    return out, sat_rows, n_sat


def charge_read(arr: ReadState, ledger: Ledger, n_vec: int, n_in: int, n_out: int,
                 in_tiles: int, out_tiles: int, n_sat: int, n_clip: int) -> None:
    """Charge one batched read: every tile converts its own inputs and columns.

    Max-abs scaling costs one comparison per input (the max-abs pass; per tile it covers
    that tile's inputs) and one multiply per input (``x / s``). The outputs are rescaled
    once per output with one scale per sample, once per output *and input tile* with
    per-tile scales (each partial sum has its own scale, so the multiply cannot wait for
    the sum). Conductance-dependent read noise costs nothing: it is a property of the
    devices, not an operation (the simulator's extra product is not hardware work).
    """
    hw = arr.hw
    dac = n_vec * n_in * out_tiles
    scaling = hw.dac.scaling
    word = hw.periphery.digital_bits // 8
    compare = n_vec * n_in if scaling != "fixed" else 0
    mults = 0
    if scaling == "maxabs":
        mults = n_vec * (n_in + n_out)
    elif scaling == "maxabs_tile":
        mults = n_vec * (n_in + n_out * in_tiles)
    ledger.charge(
        mvm=n_vec * in_tiles * out_tiles,
        read_cycles=n_vec,
        dac_conversions=dac,
        dac_bits=dac * (hw.dac.bits or 8),
        dac_clips=n_clip,
        adc_conversions=n_vec * n_out * in_tiles,
        adc_saturations=n_sat,
        cell_reads=n_vec * n_in * n_out,
        # Partial sums of input tiles are added digitally; max-abs scaling costs a
        # comparison per input and multiplies (see the docstring).
        digital_adds=n_vec * n_out * (in_tiles - 1) + compare,
        digital_mults=mults,
        mem_bytes=n_vec * (n_in + n_out) * word,
    )
