"""Read path against aihwkit's forward model: output-error std ratios per configuration.

aihwkit (PyTorch) is not installed here, so its forward pass is restated analytically for
the configurations below and our simulated error is compared with it. For a layer of
``n_out × n_in`` weights ``W`` (device units) read with inputs ``x`` (``B × n_in``), aihwkit
(rpucuda ``ForwardBackwardPassIOManaged::forwardVector`` per analog tile of a
``TileModuleArray``, partial results added digitally) computes per sample ``b``, tile ``k``
(inputs ``J_k``) and output ``i``::

    s_bk = max_{j ∈ J_k} |x_bj|                       NoiseManagementType.ABS_MAX, per tile
    q_bj = round(x_bj / s_bk · L) / L, L = 63           inp_res 1/(2^7-2) of the range 2
    v_bik = Σ_{j ∈ J_k} W_ij q_bj + n_bik + η_bik       η ~ N(0, out_noise²)
      n ~ N(0, w_noise² ‖q_k‖²)                         WeightNoiseType.ADDITIVE_CONSTANT
      n ~ N(0, w_noise² Σ_{j ∈ J_k} |W_ij| q_bj²)       WeightNoiseType.PCM_READ
    ŷ_bi = Σ_k s_bk · round(v_bik / Δ_a) Δ_a,  Δ_a = 24/510   out_res 1/(2^9-2) of 2·12

Its expected squared error against ``W x`` is, per output (ADC rounding as uniform noise of
variance ``Δ_a²/12``, exact when the pre-ADC values are spread over many steps, as here)::

    E (ŷ_bi - (W x_b)_i)² = (Σ_k s_bk (W_k q_bk)_i - (W x_b)_i)²
                            + Σ_k s_bk² (Var n_bik + out_noise² + Δ_a²/12)

and the table reports ``sqrt(mean over b, i of our squared error) / sqrt(mean of that
expectation)`` for our ``aihwkit_default`` preset with both DAC scaling modes (``maxabs``
= one scale per sample, the behaviour before per-tile scaling existed; ``maxabs_tile`` =
aihwkit's per-tile scale) and the matching read-noise model (``w_noise = w_max σ_r``
additive, ``w_noise = √w_max σ_r`` pcm). The last column compares ``maxabs_tile`` with
aihwkit's tiling: ``TileModuleArray.get_split_sizes`` splits a layer into *equal* tiles
(784 inputs at ``max_input_size = 512`` → 392 + 392), ours fills 512-row tiles (512 + 272).

Inputs are Gaussian; "mixed" scales the inputs beyond the first 512 by 0.05 (a second tile
whose inputs are 20× smaller, the case per-tile scaling is for), "uniform" does not.
Weights are uniform in ``±0.3 w_max``; outputs stay far below the ADC bound (no bound
management happens; saturations are counted and shown).

Usage::

    python benchmarks/aihwkit_read_compare.py [--reps N] [--samples B]
"""

from __future__ import annotations

import argparse

import numpy as np

from analogsim import oracle
from analogsim.hardware.array import make_array
from analogsim.hardware.config import HardwareConfig, replace_field
from analogsim.hardware.presets import get_preset
from analogsim.kernels import kernel_threads, set_threads

LAYERS = [(784, 256), (1024, 512)]
INPUTS = ("mixed", "uniform")
SMALL = 0.05          # scale of the inputs beyond the first 512 in "mixed"
W_FRACTION = 0.3      # weights uniform in ±W_FRACTION · w_max
# (label, aihwkit w_noise_type, w_noise, out_noise)
NOISE = [
    ("off", "none", 0.0, 0.0),
    ("out 0.06", "none", 0.0, 0.06),
    ("additive 0.02 + out", "additive", 0.02, 0.06),
    ("PCM_READ 0.0175 + out", "pcm", 0.0175, 0.06),
    ("PCM_READ 0.0175", "pcm", 0.0175, 0.0),
]


def hardware(scaling: str, model: str, w_noise: float, out_noise: float) -> HardwareConfig:
    """``aihwkit_default`` with the DAC scaling and aihwkit's ``w_noise`` mapped onto σ_r."""
    hw = get_preset("aihwkit_default")
    w_max = hw.device.w_max
    sigma_r = 0.0
    if model == "additive":
        sigma_r = w_noise / w_max              # w_noise = w_max σ_r
    elif model == "pcm":
        sigma_r = w_noise / np.sqrt(w_max)     # w_noise = √w_max σ_r
    hw = replace_field(hw, "dac.scaling", scaling)
    hw = replace_field(hw, "noise.read_noise_model", "pcm" if model == "pcm" else "additive")
    hw = replace_field(hw, "noise.read_noise", float(sigma_r))
    return replace_field(hw, "noise.out_noise", out_noise)


def inputs(kind: str, b: int, n_in: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal((b, n_in)).astype(np.float32)
    if kind == "mixed":
        x[:, 512:] *= np.float32(SMALL)
    return x


def aihwkit_mse(w: np.ndarray, x: np.ndarray, split: list[int], model: str, w_noise: float,
                out_noise: float, dac_bits: int = 7, adc_bits: int = 9,
                out_bound: float = 12.0) -> float:
    """Expected mean squared output error of aihwkit's forward model (see module doc)."""
    levels = 2 ** (dac_bits - 1) - 1
    step = out_bound / (2 ** (adc_bits - 1) - 1)
    x = x.astype(np.float64)
    y = np.zeros((x.shape[0], w.shape[0]))
    var = np.zeros_like(y)
    c0 = 0
    for size in split:
        xk, wk = x[:, c0:c0 + size], w[:, c0:c0 + size]
        c0 += size
        s = np.abs(xk).max(axis=1, keepdims=True)
        s[s == 0] = 1.0
        q = np.round(xk / s * levels) / levels
        y += s * (q @ wk.T)
        if model == "additive":
            read = w_noise ** 2 * (q * q).sum(axis=1, keepdims=True)
        elif model == "pcm":
            read = w_noise ** 2 * ((q * q) @ np.abs(wk).T)
        else:
            read = 0.0
        var += s * s * (read + out_noise ** 2 + step ** 2 / 12.0)
    return float(np.mean((y - x @ w.T) ** 2 + var))


def ours_mse(hw: HardwareConfig, w_target: np.ndarray, x: np.ndarray, reps: int,
             seed: int) -> tuple[float, np.ndarray, int]:
    """Our mean squared output error over ``reps`` reads of ``x``; the array's weights and
    the number of ADC saturations."""
    n_out, n_in = w_target.shape
    arr = make_array(n_in, n_out, hw, seed=seed)
    arr.program(w_target)
    w = oracle.weights(arr)
    ideal = x.astype(np.float64) @ w.T
    total = 0.0
    for _ in range(reps):
        total += float(np.sum((arr.mvm(x).astype(np.float64) - ideal) ** 2))
    return total / (reps * ideal.size), w, arr.ledger.totals()["adc_saturations"]


def equal_split(n: int, max_size: int) -> list[int]:
    """aihwkit's ``TileModuleArray.get_split_sizes``: equal pieces of at most ``max_size``."""
    n_splits = (n + max_size - 1) // max_size
    base, extra = divmod(n, n_splits)
    return [base + (i < extra) for i in range(n_splits)]


def our_split(n: int, rows: int) -> list[int]:
    return [min(rows, n - c) for c in range(0, n, rows)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=40, help="reads of each input batch")
    ap.add_argument("--samples", type=int, default=64, help="input vectors per batch")
    args = ap.parse_args(argv)
    # Results do not depend on the thread count; one numba thread and one BLAS thread keep
    # small reads from waiting on descheduled threads on a busy machine.
    set_threads(1)
    with kernel_threads():
        table(args.samples, args.reps)
    return 0


def table(samples: int, reps: int) -> None:
    rows = get_preset("aihwkit_default").tile.rows
    print("Output-error std, ours / aihwkit's model (aihwkit_default: 7-bit DAC, 9-bit ADC "
          f"at bound 12, {rows}-row tiles; {samples} inputs × {reps} reads)\n")
    print("| layer | inputs | noise (aihwkit) | maxabs / aihwkit | maxabs_tile / aihwkit "
          "| maxabs_tile / aihwkit, equal split | saturations |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n_in, n_out in LAYERS:
        for kind in INPUTS:
            rng = np.random.default_rng(n_in + n_out)
            x = inputs(kind, samples, n_in, rng)
            w_max = get_preset("aihwkit_default").device.w_max
            w_target = rng.uniform(-W_FRACTION, W_FRACTION, (n_out, n_in)) * w_max
            for label, model, w_noise, out_noise in NOISE:
                cells, n_sat = [], 0
                for scaling in ("maxabs", "maxabs_tile"):
                    hw = hardware(scaling, model, w_noise, out_noise)
                    mse, w, sat = ours_mse(hw, w_target, x, reps, seed=1)
                    n_sat += sat
                    want = aihwkit_mse(w, x, our_split(n_in, rows), model, w_noise, out_noise)
                    cells.append(np.sqrt(mse / want))
                want_eq = aihwkit_mse(w, x, equal_split(n_in, rows), model, w_noise,
                                      out_noise)
                cells.append(np.sqrt(mse / want_eq))
                print(f"| {n_in}→{n_out} | {kind} | {label} | "
                      + " | ".join(f"{c:.3f}" for c in cells) + f" | {n_sat} |")


if __name__ == "__main__":
    raise SystemExit(main())
