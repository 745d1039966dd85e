"""The forward-only crossbar array.

A :class:`CrossbarArray` stores an ``n_out × n_in`` weight matrix as differential pairs of
normalised conductances ``w = w_max (G+ - G-)`` split over tiles of ``tile.rows`` inputs ×
``tile.cols`` outputs, and offers exactly four physical operations:

``program(w)``              write-verify programming (noise, levels, stuck cells)
``mvm(x)``                  a forward read ``y ≈ W x`` through DAC → array → noise → ADC
``pulse_update(x, d, lr)``  an in-place rank-``B`` pulse update ``ΔW ≈ -lr Dᵀ X``
``pulse_cells(n)``          ``n_ij`` whole pulses per cell (mixed-precision programming)

plus ``advance_clock(seconds)`` for drift. **There is no transposed read** and no method that
returns the stored weights: ``Wᵀ δ`` is obtained only through a strategy in
:mod:`analogsim.hardware.transpose`, and inspection for tests lives in :mod:`analogsim.oracle`.
Hardware whose configuration says ``periphery.bidirectional = true`` is built as a
:class:`BidirectionalArray`, which adds ``mvm_transposed``.

Every operation charges the array's :class:`~analogsim.hardware.ledger.Ledger` (or the one
passed in) with exact counts.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from ..kernels import blas_single_thread, max_abs, pulse_update_expected
from ..kernels.stochastic import stochastic_update_unchecked
from ..resources import check_memory
from ..seeding import check_seed, derive_rng, derive_seed
from .config import HardwareConfig
from .inputs import as_rows, check_batch, to_float32
from .ledger import Ledger
from .readpath import analog_read
from .state import check_physics, checked_state, rng_from_array, rng_to_array

__all__ = ["CrossbarArray", "BidirectionalArray", "ArrayListener", "make_array", "check_batch",
           "to_float32"]


class ArrayListener(Protocol):
    """Receives the *intended* operations of an array (shadow copies, twin arrays)."""

    def on_program(self, w: np.ndarray) -> None: ...

    def on_update(self, x: np.ndarray, d: np.ndarray, lr: float) -> None: ...

    def on_clock(self, seconds: float) -> None: ...


def _check_real(name: str, v: object, *, positive: bool) -> None:
    """A finite real scalar (Python or NumPy, not bool) that is > 0 or >= 0."""
    ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
        v, (bool, np.bool_))
    if not ok or not math.isfinite(v) or v < 0 or (positive and v == 0):
        rel = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} = {v!r} is invalid; allowed: a finite real number {rel}")


def _requested_change(x: np.ndarray, d: np.ndarray, lr: float, peak_x: float, peak_d: float,
                      cap: float) -> tuple[np.ndarray, float]:
    """``(P, s)`` with ``ΔW = float32(P · float32(s)) = -lr dᵀx``, for finite ``x``, ``d``, ``lr``.

    Normally ``P = dᵀx`` (float32 BLAS) and ``s = -lr``: the expected-mode kernel applies the
    factor itself, saving a pass over ``n_out × n_in``. When the float32 product could
    overflow (bounded by ``B·max|d|·max|x|·lr``), ``ΔW`` is formed in float64 and cut at
    ``±cap`` (``s = 1``): the kernel caps each cell's pulse count at ``max_pulses`` anyway,
    so a cut at ``cap ≥ 2 (max_pulses + 1) dw_min`` changes nothing but keeps
    ``inf``/NaN out of the kernel.
    """
    peak = peak_x * peak_d * x.shape[0]
    if lr < 1e37 and peak < 1e37 and peak * lr < 1e37:
        return np.matmul(d.T, x), -lr
    with np.errstate(over="ignore"):
        dw = np.matmul(d.T.astype(np.float64), x.astype(np.float64)) * -lr
    return np.clip(dw, -cap, cap).astype(np.float32), 1.0


# Bytes of Dᵀ X per block of rows in the expected-mode update (fits the last-level cache).
_UPDATE_BLOCK_BYTES = 1 << 21


def _starts(n: int, size: int) -> np.ndarray:
    """Block boundaries ``[0, size, 2 size, …, n]`` of a tiled dimension (int64)."""
    return np.append(np.arange(0, n, size, dtype=np.int64), np.int64(n))


class CrossbarArray:
    """A forward-only analog array holding an ``n_out × n_in`` matrix.

    Parameters
    ----------
    n_in, n_out : int
        Inputs (rows driven by the DACs) and outputs (columns sensed by the ADCs), in the
        order of :class:`~analogsim.layers.linear.AnalogLinear` and ``torch.nn.Linear``; the
        stored matrix, :attr:`shape` and every weight argument are ``(n_out, n_in)``, like
        ``torch.nn.Linear.weight``.
    hw : HardwareConfig
        The physical description.
    seed : int
        Seeds device variation, stuck cells, programming noise and every read/update draw.
    ledger : Ledger, optional
        Where operations are charged (a fresh root ledger if omitted).
    """

    def __init__(self, n_in: int, n_out: int, hw: HardwareConfig, *, seed: int,
                 ledger: Ledger | None = None) -> None:
        for pname, v in (("n_in", n_in), ("n_out", n_out)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{pname} = {v!r} is invalid; allowed: an integer >= 1")
        if not isinstance(hw, HardwareConfig):
            raise TypeError(f"hw must be a HardwareConfig, got {type(hw).__name__}")
        check_memory(BYTES_PER_CELL * int(n_out) * int(n_in),
                     f"CrossbarArray(n_in={n_in}, n_out={n_out})", "fewer rows or columns")
        self.n_out, self.n_in, self.hw, self.seed = int(n_out), int(n_in), hw, check_seed(seed)
        self.ledger = ledger if ledger is not None else Ledger("array")
        # One counter-based stream per kind of random event (keys for the kernels' generator).
        self._read_key = derive_seed(self.seed, "read")
        self._update_key = derive_seed(self.seed, "update")
        self._read_counter = 0
        self._update_counter = 0
        self._listeners: list[ArrayListener] = []
        self._in_starts = _starts(self.n_in, hw.tile.rows)
        self._out_starts = _starts(self.n_out, hw.tile.cols)
        self._rng = derive_rng(self.seed, "devices")
        self._init_devices()
        self._bounds = np.full((len(self._out_starts) - 1, len(self._in_starts) - 1),
                               hw.adc.out_bound, dtype=np.float32)
        self._w_cache: np.ndarray | None = None
        self._w_buf: np.ndarray | None = None

    # ------------------------------------------------------------------ construction
    def _init_devices(self) -> None:
        """Draw device-to-device variation, stuck devices and drift exponents (once)."""
        dev, shape, rng = self.hw.device, (self.n_out, self.n_in), self._rng
        # Log-normal with median 1: a physical step is never negative. Nor can one pulse move
        # a device by more than its whole conductance range: the tail of the log-normal
        # (and up_down > 0 with a large dw_min) is cut at α = 1, a pulse that reaches the
        # bound in one step.
        f_up = np.exp(dev.dtod * rng.standard_normal(shape))
        f_dn = np.exp(dev.dtod * rng.standard_normal(shape))
        self._alpha_up = np.minimum(dev.alpha * (1.0 + dev.up_down) * f_up,
                                    1.0).astype(np.float32)
        self._alpha_down = np.minimum(dev.alpha * (1.0 - dev.up_down) * f_dn,
                                      1.0).astype(np.float32)
        self._gp = np.full(shape, 0.5, dtype=np.float32)
        self._gm = np.full(shape, 0.5, dtype=np.float32)
        self._frozen_p = np.zeros(shape, dtype=np.uint8)
        self._frozen_m = np.zeros(shape, dtype=np.uint8)
        for g, frozen in ((self._gp, self._frozen_p), (self._gm, self._frozen_m)):
            u = rng.random(shape)
            on = u < dev.stuck_on
            off = (u >= dev.stuck_on) & (u < dev.stuck_on + dev.stuck_off)
            g[on], g[off] = 1.0, 0.0
            frozen[on | off] = 1
        self._nu_p = self._nu_m = None
        if dev.drift_nu > 0.0 or dev.drift_nu_std > 0.0:
            # ν < 0 would mean conductances *grow* with time; physical spread is one-sided.
            self._nu_p = np.maximum(dev.drift_nu + dev.drift_nu_std * rng.standard_normal(shape),
                                    0.0).astype(np.float32)
            self._nu_m = np.maximum(dev.drift_nu + dev.drift_nu_std * rng.standard_normal(shape),
                                    0.0).astype(np.float32)
        if dev.up_down_dtod > 0.0:
            self._spread_asymmetry(f_up, f_dn)
        self.clock = 0.0

    def _spread_asymmetry(self, f_up: np.ndarray, f_dn: np.ndarray) -> None:
        """Per-cell asymmetry ``u_ij = clip(up_down + up_down_dtod ξ_ij, -1, 1)`` (aihwkit's
        ``up_down_dtod``), redrawing the steps with the same log-normal factors.

        Drawn after every other construction draw, so that arrays without the spread keep
        their draws (and results) bit for bit. The clip keeps both steps non-negative.
        """
        dev = self.hw.device
        u = np.clip(dev.up_down + dev.up_down_dtod * self._rng.standard_normal(self.shape),
                    -1.0, 1.0)
        self._alpha_up = np.minimum(dev.alpha * (1.0 + u) * f_up, 1.0).astype(np.float32)
        self._alpha_down = np.minimum(dev.alpha * (1.0 - u) * f_dn, 1.0).astype(np.float32)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_out, self.n_in)

    @property
    def n_tiles(self) -> int:
        return (len(self._in_starts) - 1) * (len(self._out_starts) - 1)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(n_in={self.n_in}, n_out={self.n_out}, "
                f"hw={self.hw.name!r}, seed={self.seed}, tiles={self.n_tiles} of "
                f"{self.hw.tile.rows} in x {self.hw.tile.cols} out, "
                f"reads={self._read_counter}, updates={self._update_counter}, "
                f"clock={self.clock:g} s)")

    def subscribe(self, listener: ArrayListener) -> None:
        """Register a listener for intended programs, updates and clock advances."""
        self._listeners.append(listener)

    # ------------------------------------------------------------------ programming
    @blas_single_thread()  # bit-identical and fast whatever the user's BLAS threads
    def program(self, w: np.ndarray, *, ledger: Ledger | None = None) -> None:
        """Write-verify programming of target weights ``w`` (device units).

        ``G± = clip((1 ± w/w_max)/2 + σ_prog ξ, 0, 1)``, then rounded to ``levels`` states;
        stuck devices keep their value; the drift clock restarts at 0. Charges
        ``2·n_cells·verify_iterations`` program-verify cycles.
        """
        w = self._check_weights(w)
        dev, noise = self.hw.device, self.hw.noise
        for g, frozen, sign in ((self._gp, self._frozen_p, 1.0), (self._gm, self._frozen_m, -1.0)):
            target = 0.5 * (1.0 + sign * w / dev.w_max)
            if noise.prog_noise > 0.0:
                target = target + noise.prog_noise * self._rng.standard_normal(w.shape)
            # The device's physical conductance range is [0, G_max]: a programming error
            # cannot push it outside.
            target = np.clip(target, 0.0, 1.0)
            if dev.levels is not None:
                target = np.rint(target * (dev.levels - 1)) / (dev.levels - 1)
            free = frozen == 0
            g[free] = target[free].astype(np.float32)
        self.clock = 0.0
        self._w_cache = None
        ledger = ledger or self.ledger
        if self.hw.adc.range_mode == "calibrated":
            self._calibrate(w, ledger)
        per = self.hw.periphery.verify_iterations
        n_cells = self.n_out * self.n_in
        ledger.charge(
            write_verify=2 * n_cells * per,
            verify_cycles=2 * per * min(self.n_in, self.hw.tile.rows),
            mem_bytes=n_cells * self.hw.periphery.digital_bits // 8,
        )
        for lst in self._listeners:
            lst.on_program(w.copy())

    def _check_weights(self, w: object) -> np.ndarray:
        if not isinstance(w, np.ndarray) or w.dtype.kind != "f":
            raise TypeError(f"w must be a floating numpy.ndarray, got {type(w).__name__}"
                            + (f" of {w.dtype}" if isinstance(w, np.ndarray) else ""))
        if w.shape != self.shape:
            raise ValueError(f"w.shape = {w.shape} is invalid; allowed: {self.shape}")
        if not np.all(np.isfinite(w)):
            raise ValueError("w contains NaN or Inf; allowed: finite values")
        wmax = self.hw.device.w_max
        peak = float(np.max(np.abs(w)))
        if peak > wmax:
            raise ValueError(f"w has max|w| = {peak:.6g} outside the device range; allowed: "
                             f"|w| <= device.w_max = {wmax} (scale the weights digitally)")
        return np.asarray(w, dtype=np.float64)

    def _calibrate(self, w: np.ndarray, ledger: Ledger) -> None:
        """Set each tile's ADC bound to a fraction of its worst-case output ``max_i Σ_j|w_ij|``."""
        frac = self.hw.adc.out_bound
        absw = np.abs(w)
        for r in range(len(self._out_starts) - 1):
            r0, r1 = self._out_starts[r], self._out_starts[r + 1]
            for c in range(len(self._in_starts) - 1):
                c0, c1 = self._in_starts[c], self._in_starts[c + 1]
                worst = float(absw[r0:r1, c0:c1].sum(axis=1).max())
                # An all-zero tile still needs a positive full scale: one LSB of a full cell.
                self._bounds[r, c] = max(frac * worst, 1e-6 * self.hw.device.w_max)
        ledger.charge(digital_adds=self.n_out * self.n_in)

    # ------------------------------------------------------------------ reading
    def _read_matrix(self) -> np.ndarray:
        """The matrix ``w_max (G+ - G-)`` that the read path multiplies by (cached).

        Used only by the read path inside this module (:meth:`mvm` and
        :meth:`BidirectionalArray.mvm_transposed`); never exposed. Tests and plots inspect
        the conductances through :mod:`analogsim.oracle` instead.
        """
        if self._w_cache is None:
            # Rebuilt in place after every update: no n_out × n_in temporaries per step.
            if self._w_buf is None:
                self._w_buf = np.empty_like(self._gp)
            np.subtract(self._gp, self._gm, out=self._w_buf)
            self._w_buf *= np.float32(self.hw.device.w_max)
            self._w_cache = self._w_buf
            # |W| (PCM-like read noise) belongs to the matrix just rebuilt: recompute it.
            self._abs_w_valid = False
        return self._w_cache

    def _abs_read_matrix(self) -> np.ndarray | None:
        """``|W|`` of :meth:`_read_matrix` for conductance-dependent read noise, else ``None``.

        Only the ``pcm`` read-noise model with ``read_noise > 0`` needs it. Cached in its own
        buffer until the matrix is rebuilt (between updates every read reuses it).
        """
        noise = self.hw.noise
        if noise.read_noise_model != "pcm" or noise.read_noise == 0.0:
            return None
        w = self._read_matrix()
        buf = getattr(self, "_abs_w_buf", None)
        if buf is None:
            buf = self._abs_w_buf = np.empty_like(w)
            self._abs_w_valid = False
        if not self._abs_w_valid:
            np.abs(w, out=buf)
            self._abs_w_valid = True
        return buf

    @blas_single_thread()
    def mvm(self, x: np.ndarray, *, ledger: Ledger | None = None) -> np.ndarray:
        """Forward read ``y = ADC(W · DAC(x) + noise)`` for a batch ``x`` of shape (B, n_in).

        Returns float32 (B, n_out); a single vector ``x`` of shape (n_in,) gives (n_out,).
        Each call draws fresh noise. With ``maxabs`` DAC scaling the result is rescaled
        digitally by each sample's ``max|x|``, with ``maxabs_tile`` each input tile's
        partial sum by that tile's ``max|x|``. Inputs: :func:`to_float32`.
        """
        x, one = as_rows("x", x, self.n_in)
        x = check_batch("x", x, self.n_in)
        y = analog_read(self, x, self._read_matrix(), self._in_starts, self._out_starts,
                         self._bounds, ledger or self.ledger, abs_w=self._abs_read_matrix())
        return y[0] if one else y

    # ------------------------------------------------------------------ updating
    @blas_single_thread()
    def pulse_update(self, x: np.ndarray, d: np.ndarray, lr: float, *,
                     ledger: Ledger | None = None) -> None:
        """In-place pulse update with expected value ``ΔW = -lr Dᵀ X`` (device units).

        Parameters
        ----------
        x : float32 (B, n_in) or (n_in,)
            Inputs (row/column drive on the input side).
        d : float32 (B, n_out) or (n_out,)
            Errors on the output side (1-D with a 1-D ``x``: a rank-one update).
        lr : float
            Learning rate (> 0) in device units per unit of ``d·x``.
        """
        x = check_batch("x", as_rows("x", x, self.n_in)[0], self.n_in)
        d = check_batch("d", as_rows("d", d, self.n_out)[0], self.n_out)
        if d.shape[0] != x.shape[0]:
            raise ValueError(f"d.shape[0] = {d.shape[0]} differs from x.shape[0] = "
                             f"{x.shape[0]}; allowed: the same batch size")
        _check_real("lr", lr, positive=True)
        # One pass over each batch, no temporaries: finiteness and the peaks in one go.
        peak_x, peak_d = max_abs(x), max_abs(d)
        if not (math.isfinite(peak_x) and math.isfinite(peak_d)):
            raise ValueError("x or d contains NaN or Inf; allowed: finite values")
        dev, upd = self.hw.device, self.hw.update
        soft, shared = dev.bounds == "soft", dev.kernel_ctoc_shared
        if upd.mode == "expected":
            common = dict(soft=soft, ctoc=dev.ctoc, key=self._update_key,
                          counter=self._update_counter, pow_gamma=dev.kernel_pow_gamma,
                          ctoc_shared=shared)
            n_pulses, n_clip = self._expected_update(x, d, float(lr), peak_x, peak_d, common)
        else:
            # Everything the kernel's checks would look at is checked above or owned by the
            # array (device state, key, the validated config): skip them on this hot path.
            n_pulses, n_clip = stochastic_update_unchecked(
                self._gp, self._gm, x, d, float(lr), upd.bl, dev.dw_min,
                upd.update_management, self._alpha_up, self._alpha_down, self._frozen_p,
                self._frozen_m, soft, dev.ctoc, dev.kernel_pow_gamma,
                np.uint64(self._update_key), np.uint64(self._update_counter), peak_x, peak_d,
                shared)
        self._update_counter += 1
        self._w_cache = None
        (ledger or self.ledger).charge(write_pulses=n_pulses, pulse_clips=n_clip,
                                       update_cycles=x.shape[0] * upd.bl,
                                       dac_conversions=x.shape[0] * (self.n_in + self.n_out))
        for lst in self._listeners:
            lst.on_update(x, d, float(lr))

    def pulse_cells(self, counts: np.ndarray, *, ledger: Ledger | None = None) -> None:
        """Apply ``|n_ij|`` whole pulses to cell ``(i, j)``: UP where ``n_ij > 0``, DOWN where
        ``n_ij < 0`` (the cell-by-cell programming of mixed-precision training).

        Each pulse goes through the device model once, as in :meth:`pulse_update`: soft or
        hard bounds, asymmetry, device-to-device steps, a fresh cycle-to-cycle factor per
        pulse, stuck devices. The counts are exact (no rounding), so the expected weight
        change of a cell on a linear device is ``n_ij Δw_min`` (device units).

        Parameters
        ----------
        counts : integer ndarray (n_out, n_in)
            Signed pulse counts, ``|n_ij| ≤ 2**24``.
        ledger : Ledger, optional
            Where to charge (default: the array's).

        Notes
        -----
        Charged: ``write_pulses = Σ |n_ij|`` and ``update_cycles`` for row-wise programming —
        one input line at a time with all its cells in parallel, UP and DOWN pulses in
        separate slots, the input tiles in parallel: ``max_k Σ_{j ∈ J_k} (max_i n⁺_ij +
        max_i n⁻_ij)``. Nothing is converted (the pulse enables are digital). Listeners
        receive the intended change ``ΔW = n Δw_min`` as the equivalent rank-``n_in`` update
        ``on_update(I, -(n Δw_min)ᵀ, 1)`` (a twin array gets it one input line per sample,
        so its own cap of ``bl · n_in`` pulses per cell applies).
        """
        counts = self._check_counts(counts)
        dev = self.hw.device
        peak = int(np.max(np.abs(counts), initial=0))
        n_pulses = 0
        if peak > 0:
            # dw_min = 1 and integer Δw: the kernel's stochastic rounding has nothing to round
            # (a - floor(a) = 0), so each cell gets exactly its count; the device step comes
            # from α, not from dw_min.
            n_pulses, _ = pulse_update_expected(
                self._gp, self._gm, counts.astype(np.float32), alpha_up=self._alpha_up,
                alpha_down=self._alpha_down, frozen_p=self._frozen_p, frozen_m=self._frozen_m,
                dw_min=1.0, soft=dev.bounds == "soft", ctoc=dev.ctoc, max_pulses=peak,
                key=self._update_key, counter=self._update_counter,
                pow_gamma=dev.kernel_pow_gamma, ctoc_shared=dev.kernel_ctoc_shared)
        self._update_counter += 1
        self._w_cache = None
        up = np.maximum(counts, 0).max(axis=0) + np.maximum(-counts, 0).max(axis=0)
        cycles = max(int(up[a:b].sum()) for a, b in zip(self._in_starts[:-1],
                                                         self._in_starts[1:], strict=True))
        (ledger or self.ledger).charge(write_pulses=int(n_pulses), update_cycles=cycles)
        if self._listeners and peak > 0:
            eye = np.eye(self.n_in, dtype=np.float32)
            d = np.ascontiguousarray((counts * -dev.dw_min).T.astype(np.float32))
            for lst in self._listeners:
                lst.on_update(eye, d, 1.0)

    def _check_counts(self, counts: object) -> np.ndarray:
        if not isinstance(counts, np.ndarray) or counts.dtype.kind not in "iu":
            raise TypeError("counts must be an integer numpy.ndarray, got "
                            f"{type(counts).__name__}"
                            + (f" of {counts.dtype}" if isinstance(counts, np.ndarray) else ""))
        if counts.shape != self.shape:
            raise ValueError(f"counts.shape = {counts.shape} is invalid; allowed: {self.shape}")
        counts = counts.astype(np.int64)
        if counts.size and int(np.max(np.abs(counts))) > 1 << 24:
            raise ValueError(f"counts has max|n| = {int(np.max(np.abs(counts)))}; allowed: "
                             "|n| <= 2**24 pulses per cell and call")
        return counts

    def _expected_update(self, x: np.ndarray, d: np.ndarray, lr: float, peak_x: float,
                         peak_d: float, common: dict) -> tuple[int, int]:
        """Expected-mode update in blocks of rows: ``Dᵀ X`` of a block (about 2 MB of float32)
        is formed and applied while it is still in cache, instead of a whole ``n_out × n_in``
        matrix going to memory and back. ``first_row`` keeps every row's random draws, so
        the result is that of one call on the whole matrix. A block whose kernel call raises
        (bad device state) does not stop the others; the first error is raised at the end.
        """
        dev = self.hw.device
        max_pulses = self.hw.update.bl * x.shape[0]
        cap = 2.0 * (max_pulses + 1) * dev.dw_min
        rows = max(1, _UPDATE_BLOCK_BYTES // (4 * self.n_in))
        n_pulses = n_clip = 0
        error: ValueError | None = None
        for r0 in range(0, self.n_out, rows):
            r1 = min(r0 + rows, self.n_out)
            block = slice(r0, r1)
            dw, scale = _requested_change(x, d[:, block], lr, peak_x, peak_d, cap)
            kw = dict(common, alpha_up=self._alpha_up[block], alpha_down=self._alpha_down[block],
                      frozen_p=self._frozen_p[block], frozen_m=self._frozen_m[block])
            try:
                p, c = pulse_update_expected(self._gp[block], self._gm[block], dw,
                                             dw_min=dev.dw_min, max_pulses=max_pulses,
                                             dw_scale=scale, first_row=r0, **kw)
            except ValueError as exc:
                error = error or exc
                continue
            n_pulses += p
            n_clip += c
        if error is not None:
            raise error
        return n_pulses, n_clip

    # ------------------------------------------------------------------ time
    def advance_clock(self, seconds: float) -> None:
        """Let ``seconds`` pass: ``G ← G ((t + Δt + t0)/(t + t0))^(-ν)`` per device (drift)."""
        _check_real("seconds", seconds, positive=False)
        seconds = float(seconds)
        t0 = self.hw.device.drift_t0
        if self._nu_p is not None and seconds > 0:
            ratio = (self.clock + seconds + t0) / (self.clock + t0)
            for g, nu, frozen in ((self._gp, self._nu_p, self._frozen_p),
                                  (self._gm, self._nu_m, self._frozen_m)):
                # A ratio beyond float32 (tiny drift_t0, huge seconds) is raised in float64.
                if ratio < 1e38:
                    factor = np.power(np.float32(ratio), -nu).astype(np.float32)
                else:
                    factor = np.power(ratio, -nu.astype(np.float64)).astype(np.float32)
                g *= np.where(frozen == 1, np.float32(1.0), factor)
            self._w_cache = None
        self.clock += float(seconds)
        for lst in self._listeners:
            lst.on_clock(float(seconds))

    # ------------------------------------------------------------------ checkpoints
    _STATE = ("_gp", "_gm", "_alpha_up", "_alpha_down", "_frozen_p", "_frozen_m", "_bounds")

    def state_dict(self) -> dict[str, np.ndarray]:
        """Device state as arrays (conductances, variation, stuck masks, drift, counters)."""
        out = {k.lstrip("_"): getattr(self, k).copy() for k in self._STATE}
        if self._nu_p is not None:
            out["nu_p"], out["nu_m"] = self._nu_p.copy(), self._nu_m.copy()
        out["counters"] = np.array([self._read_counter, self._update_counter], dtype=np.int64)
        out["clock"] = np.array(self.clock, dtype=np.float64)
        out["rng_state"] = rng_to_array(self._rng)
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict` output (shapes and dtypes are checked)."""
        for k in self._STATE:
            cur = getattr(self, k)
            new = checked_state(state, k.lstrip("_"), cur.shape, cur.dtype)
            setattr(self, k, new.copy())
        if self._nu_p is not None:
            self._nu_p = checked_state(state, "nu_p", self.shape, np.float32).copy()
            self._nu_m = checked_state(state, "nu_m", self.shape, np.float32).copy()
        counters = checked_state(state, "counters", (2,), np.int64)
        clock = checked_state(state, "clock", (), np.float64)
        check_physics(state, counters, clock)
        self._read_counter, self._update_counter = int(counters[0]), int(counters[1])
        self.clock = float(clock)
        rng_from_array(self._rng, checked_state(state, "rng_state", None, np.uint64))
        self._w_cache = None


class BidirectionalArray(CrossbarArray):
    """An array whose periphery can also drive columns and sense rows (``Wᵀ v`` at forward cost).

    Built by :func:`make_array` only when ``hw.periphery.bidirectional`` is true: this is the
    assumption most simulators make silently; here it is a hardware property you opt into.
    """

    def __init__(self, n_in: int, n_out: int, hw: HardwareConfig, *, seed: int,
                 ledger: Ledger | None = None) -> None:
        if not hw.periphery.bidirectional:
            raise ValueError("periphery.bidirectional = False: this hardware has no transposed "
                             "read; allowed: set periphery.bidirectional = true, or use a "
                             "transpose strategy ('probe', 'shadow', 'twin')")
        super().__init__(n_in, n_out, hw, seed=seed, ledger=ledger)

    @blas_single_thread()
    def mvm_transposed(self, d: np.ndarray, *, ledger: Ledger | None = None) -> np.ndarray:
        """Transposed read ``Wᵀ d`` through the same DAC/ADC path: (B, n_out) → (B, n_in)
        (a 1-D ``d`` gives a 1-D result)."""
        d, one = as_rows("d", d, self.n_out)
        d = check_batch("d", d, self.n_out)
        abs_w = self._abs_read_matrix()
        y = analog_read(self, d, self._read_matrix().T, self._out_starts, self._in_starts,
                         self._bounds.T, ledger or self.ledger, name="d",
                         abs_w=None if abs_w is None else abs_w.T)
        return y[0] if one else y


def make_array(n_in: int, n_out: int, hw: HardwareConfig, *, seed: int,
               ledger: Ledger | None = None) -> CrossbarArray:
    """Build the array kind the hardware describes (bidirectional only if the config says so).

    Parameters
    ----------
    n_in, n_out : int
        Inputs and outputs, in the order of the layers (``AnalogLinear(n_in, n_out)``); the
        array's matrix is ``(n_out, n_in)``.
    hw : HardwareConfig
        The physical description (e.g. ``get_preset("pcm")``).
    seed : int
        Seeds device variation, stuck cells, programming noise and every read/update draw.
    ledger : Ledger, optional
        Where operations are charged (a fresh root ledger if omitted).
    """
    if not isinstance(hw, HardwareConfig):
        raise TypeError(f"hw must be a HardwareConfig, got {type(hw).__name__}")
    cls = BidirectionalArray if hw.periphery.bidirectional else CrossbarArray
    return cls(n_in, n_out, hw, seed=seed, ledger=ledger)


#: Peak bytes per cell while an array is built and used: conductance pair, step sizes and
#: stuck masks (float32/uint8, 18 B), drift exponents (8 B), the weight and read caches
#: (8 B) and the float64 device-variation draws at construction (≈ 24 B).
BYTES_PER_CELL = 64
