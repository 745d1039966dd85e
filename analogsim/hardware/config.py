"""Hardware configuration: one small frozen dataclass per physical concern.

Units used throughout the hardware model
----------------------------------------
* Weights are in *device units*: the differential pair stores
  ``w = w_max * (G+ - G-)`` with normalised conductances ``G+, G-`` in ``[0, 1]``,
  so ``w`` lies in ``[-w_max, w_max]``.
* DAC inputs are normalised to ``[-1, 1]`` (full scale) before the array; an array
  output ``y = W x̃`` is therefore in *output units*: device-unit weights times
  DAC-normalised inputs (not normalised by ``w_max``). ``adc.out_bound`` and
  ``noise.out_noise`` are in output units, so they scale with ``device.w_max``.
* Times are in seconds, energies in picojoules (pJ), latencies in nanoseconds (ns).

Every dataclass validates itself on construction and raises ``ValueError`` that names
the field, the value and what is allowed.  Presets live in :mod:`analogsim.hardware.presets`,
TOML mapping in :mod:`analogsim.hardware.toml_io`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DACConfig",
    "ADCConfig",
    "NoiseConfig",
    "DeviceConfig",
    "UpdateConfig",
    "TileConfig",
    "PeripheryConfig",
    "CostModel",
    "HardwareConfig",
    "replace_field",
]


# --------------------------------------------------------------------------- validation


#: Smallest positive range/bound accepted: float32 (the kernels' precision) keeps it > 0.
_TINY = 1e-30


def _fail(owner: str, name: str, value: Any, allowed: str) -> None:
    raise ValueError(f"{owner}.{name} = {value!r} is invalid; allowed: {allowed}")


def _check_real(owner: str, name: str, value: Any, lo: float, hi: float, *,
                lo_open: bool = False, hi_open: bool = False) -> None:
    """Check that ``value`` is a finite real number inside the given interval."""
    ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
    lb = "(" if lo_open else "["
    rb = ")" if hi_open else "]"
    allowed = f"a real number in {lb}{lo}, {hi}{rb}"
    if not ok_type or not math.isfinite(value):
        _fail(owner, name, value, allowed)
    if value < lo or (lo_open and value == lo) or value > hi or (hi_open and value == hi):
        _fail(owner, name, value, allowed)


def _check_int(owner: str, name: str, value: Any, lo: int, hi: int, *, optional: bool = False
               ) -> None:
    if optional and value is None:
        return
    allowed = f"an integer in [{lo}, {hi}]" + (" or None" if optional else "")
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        _fail(owner, name, value, allowed)


def _check_choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        _fail(owner, name, value, "one of " + ", ".join(repr(c) for c in choices))


def _check_bool(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        _fail(owner, name, value, "true or false")


# --------------------------------------------------------------------------- converters


@dataclass(frozen=True)
class DACConfig:
    """Input digital-to-analogue converter.

    Parameters
    ----------
    bits : int or None
        Resolution. A signed DAC with ``b`` bits has ``2**b - 1`` levels symmetric
        around zero, step ``Δ = 1 / (2**(b-1) - 1)`` of full scale. ``None``: ideal.
    input_range : float
        Full-scale input ``r`` (same unit as the layer input) in ``fixed`` mode; the DAC
        sees ``x / r`` and clips it to ``[-1, 1]`` (each clip is counted in the ledger).
    scaling : {"fixed", "maxabs", "maxabs_tile"}
        ``maxabs``: each sample is divided digitally by its own ``max|x|`` before the
        DAC and the outputs multiplied back (charged as digital work), so nothing clips.
        ``maxabs_tile``: the same per input tile — each tile's slice of ``tile.rows``
        inputs is divided by its own ``max|x|`` and the tile's partial sum multiplied
        back before the partial sums are added (aihwkit's ``NoiseManagementType.ABS_MAX``,
        which every analog tile applies to its own input slice); one extra multiply per
        tile output is charged. Identical to ``maxabs`` on a single input tile.
    """

    bits: int | None = 8
    input_range: float = 1.0
    scaling: str = "maxabs"

    def __post_init__(self) -> None:
        # A signed converter of b bits has 2**(b-1) - 1 non-zero levels: b = 1 has none.
        _check_int("dac", "bits", self.bits, 2, 24, optional=True)
        # Lower limits here and below keep the value a positive float32 in the kernels.
        _check_real("dac", "input_range", self.input_range, _TINY, 1e12)
        _check_choice("dac", "scaling", self.scaling, ("fixed", "maxabs", "maxabs_tile"))


@dataclass(frozen=True)
class ADCConfig:
    """Output analogue-to-digital converter (one per tile column, shared in time).

    Parameters
    ----------
    bits : int or None
        Resolution; step ``Δ = bound / (2**(bits-1) - 1)``. ``None``: ideal (no quantisation).
    out_bound : float
        ``fixed`` mode: saturation level ``b_o`` of each tile's ADC in *output units*, the
        unit of ``y_i = Σ_j w_ij x̃_j`` with weights ``w_ij`` in device units (``[-w_max,
        w_max]``) and DAC-normalised inputs ``x̃_j ∈ [-1, 1]``; a conversion saturates when
        ``|y_i| > b_o``. It is compared before the digital rescaling by the input range or
        max-abs factor, and it does not rescale with ``device.w_max``. ``inf`` is allowed
        only with ``bits=None``. ``calibrated`` mode: a dimensionless *fraction* in
        ``(0, 1]`` of the worst-case tile output ``max_i Σ_j |w_ij|`` (output units),
        measured from the target weights when the tile is programmed.
    range_mode : {"fixed", "calibrated"}
    manage_range : bool
        Re-read a saturated sample with its input halved, up to ``max_retries`` times
        (every re-read is charged as a full read).
    max_retries : int
    """

    bits: int | None = 8
    out_bound: float = 12.0
    range_mode: str = "fixed"
    manage_range: bool = False
    max_retries: int = 3

    def __post_init__(self) -> None:
        _check_int("adc", "bits", self.bits, 2, 24, optional=True)
        if isinstance(self.out_bound, float) and self.out_bound == math.inf:
            if self.bits is not None:
                _fail("adc", "out_bound", self.out_bound, f"a real number in (0, 1e12] with "
                      f"adc.bits = {self.bits}; inf only with bits = None (an ideal ADC)")
        else:
            _check_real("adc", "out_bound", self.out_bound, _TINY, 1e12)
        _check_choice("adc", "range_mode", self.range_mode, ("fixed", "calibrated"))
        _check_bool("adc", "manage_range", self.manage_range)
        _check_int("adc", "max_retries", self.max_retries, 0, 16)
        if self.range_mode == "calibrated" and self.out_bound > 1.0:
            _fail("adc", "out_bound", self.out_bound,
                  "a fraction in (0, 1] of the worst-case output when range_mode='calibrated'")


# --------------------------------------------------------------------------- noise and device


@dataclass(frozen=True)
class NoiseConfig:
    """Stochastic non-idealities of reading and programming.

    Parameters
    ----------
    read_noise : float
        Std ``σ_r`` of i.i.d. Gaussian weight noise per cell per read, in units of
        ``w_max``. Sampled exactly on the outputs: ``N(0, (w_max·σ_r)² ‖x‖²)`` per output
        with ``read_noise_model = "additive"``, ``N(0, w_max σ_r² Σ_j |w_ij| x_j²)`` with
        ``"pcm"``.
    out_noise : float
        Std of additive Gaussian noise at each column before the ADC (output units).
    prog_noise : float
        Std of the programming (write-verify) error per device, in conductance units
        (fraction of ``G_max``).
    read_noise_model : {"additive", "pcm"}
        ``additive``: the cell noise std is ``w_max σ_r`` for every cell (aihwkit's
        ``WeightNoiseType.ADDITIVE_CONSTANT`` with ``w_noise = w_max σ_r``). ``pcm``: it
        grows with the weight's magnitude, variance ``(w_max σ_r)² |w_ij| / w_max`` (equal
        to ``additive`` at ``|w| = w_max``), so output ``i`` gets variance
        ``w_max σ_r² Σ_j |w_ij| x_j²`` (aihwkit's ``WeightNoiseType.PCM_READ`` with
        ``w_noise = σ_r √w_max``). Derivation in docs/hardware.md.
    """

    read_noise: float = 0.0
    out_noise: float = 0.0
    prog_noise: float = 0.0
    read_noise_model: str = "additive"

    def __post_init__(self) -> None:
        for name in ("read_noise", "out_noise", "prog_noise"):
            _check_real("noise", name, getattr(self, name), 0.0, 10.0)
        _check_choice("noise", "read_noise_model", self.read_noise_model, ("additive", "pcm"))


@dataclass(frozen=True)
class DeviceConfig:
    """Resistive device pair: range, levels, pulse response, variability, drift, defects.

    Parameters
    ----------
    w_max : float
        Weight range ``[-w_max, w_max]`` (device units).
    levels : int or None
        Conductance levels per device reachable by write-verify programming
        (``G ∈ {0, 1/(L-1), …, 1}``); ``None``: continuous.
    dw_min : float
        Weight change of one pulse at ``w = 0`` (device units). Per device the
        normalised step is ``α = dw_min / w_max``.
    up_down : float
        Asymmetry: up-pulses use ``α(1 + up_down)``, down-pulses ``α(1 - up_down)``.
    bounds : {"soft", "hard"}
        ``soft``: potentiation ``ΔG = α(1 - G)``, depression ``ΔG = -αG`` per device
        (so at ``G+ + G- = 1``: ``Δw = dw_min (1 ∓ w / w_max)``); ``hard``: constant
        ``±α/2`` per device, clipped to the device's physical range ``[0, 1]``.
    ctoc : float
        Cycle-to-cycle relative std of each pulse's step.
    dtod : float
        Device-to-device relative std of the step (drawn once per cell, log-normal).
    drift_nu : float
        Drift exponent ν: ``G(t) = G(t_0) ((t + t_0) / t_0)^(-ν)`` after programming.
    drift_nu_std : float
        Device-to-device std of ν.
    drift_t0 : float
        Reference time ``t_0`` in seconds.
    stuck_on : float
        Fraction of devices stuck at ``G = 1``.
    stuck_off : float
        Fraction of devices stuck at ``G = 0``.
    """

    w_max: float = 1.0
    levels: int | None = None
    dw_min: float = 0.001
    up_down: float = 0.0
    bounds: str = "soft"
    ctoc: float = 0.0
    dtod: float = 0.0
    drift_nu: float = 0.0
    drift_nu_std: float = 0.0
    drift_t0: float = 1.0
    stuck_on: float = 0.0
    stuck_off: float = 0.0

    def __post_init__(self) -> None:
        _check_real("device", "w_max", self.w_max, _TINY, 1e6)
        _check_int("device", "levels", self.levels, 2, 1 << 20, optional=True)
        _check_real("device", "dw_min", self.dw_min, 0.0, math.inf, lo_open=True)
        if self.dw_min > self.w_max:
            _fail("device", "dw_min", self.dw_min, f"a real number in (0.0, {self.w_max}], "
                  "at most device.w_max (one pulse cannot exceed the weight range)")
        _check_real("device", "up_down", self.up_down, -1.0, 1.0, lo_open=True, hi_open=True)
        _check_choice("device", "bounds", self.bounds, ("soft", "hard"))
        _check_real("device", "ctoc", self.ctoc, 0.0, 10.0)
        _check_real("device", "dtod", self.dtod, 0.0, 10.0)
        _check_real("device", "drift_nu", self.drift_nu, 0.0, 1.0)
        _check_real("device", "drift_nu_std", self.drift_nu_std, 0.0, 1.0)
        _check_real("device", "drift_t0", self.drift_t0, 0.0, 1e9, lo_open=True)
        _check_real("device", "stuck_on", self.stuck_on, 0.0, 1.0)
        _check_real("device", "stuck_off", self.stuck_off, 0.0, 1.0)
        if self.stuck_on + self.stuck_off > 1.0:
            _fail("device", "stuck_on + stuck_off", self.stuck_on + self.stuck_off,
                  "a total fraction of at most 1")

    @property
    def alpha(self) -> float:
        """Normalised conductance step ``α = dw_min / w_max`` of one pulse."""
        return self.dw_min / self.w_max


@dataclass(frozen=True)
class UpdateConfig:
    """How rank-1 updates reach the devices.

    Parameters
    ----------
    mode : {"expected", "stochastic"}
        ``expected``: the outer product ``-lr Dᵀ X`` is formed (BLAS) and each cell
        receives ``round_stochastic(Δw / dw_min)`` pulses. ``stochastic``: per sample,
        stochastic pulse trains of length ``bl`` on rows and columns; a device is
        stepped at each coincidence (parallel-update hardware).
    bl : int
        Pulse-train length; also the largest number of pulses one cell receives per
        sample in ``expected`` mode (more are cut and counted as ``pulse_clips``).
    update_management : bool
        Balance row/column pulse probabilities by ``max|x|`` and ``max|d|``.
    """

    mode: str = "expected"
    bl: int = 31
    update_management: bool = True

    def __post_init__(self) -> None:
        _check_choice("update", "mode", self.mode, ("expected", "stochastic"))
        _check_int("update", "bl", self.bl, 1, 64)
        _check_bool("update", "update_management", self.update_management)


@dataclass(frozen=True)
class TileConfig:
    """Physical array size; larger matrices are split over ``ceil(n/rows)×ceil(m/cols)`` tiles.

    ``rows`` counts array rows (= inputs), ``cols`` array columns (= outputs).
    """

    rows: int = 512
    cols: int = 512

    def __post_init__(self) -> None:
        _check_int("tile", "rows", self.rows, 1, 1 << 16)
        _check_int("tile", "cols", self.cols, 1, 1 << 16)


@dataclass(frozen=True)
class PeripheryConfig:
    """Capabilities of the array periphery.

    Parameters
    ----------
    bidirectional : bool
        The hardware can drive columns and sense rows, i.e. read ``Wᵀ v`` at forward
        cost. Off by default: the `bidirectional` transpose strategy refuses to run
        unless this is true.
    verify_iterations : int
        Program-and-verify cycles per device in write-verify programming.
    digital_bits : int
        Width of digital periphery words (memory bytes are charged at this width).
    """

    bidirectional: bool = False
    verify_iterations: int = 5
    digital_bits: int = 32

    def __post_init__(self) -> None:
        _check_bool("periphery", "bidirectional", self.bidirectional)
        _check_int("periphery", "verify_iterations", self.verify_iterations, 1, 1000)
        _check_int("periphery", "digital_bits", self.digital_bits, 1, 64)


@dataclass(frozen=True)
class CostModel:
    """Energy and latency coefficients that turn ledger counts into pJ and ns.

    Defaults are for a 32 nm ISAAC-like design. Sources (see docs/hardware.md):

    * ``adc_pj_8bit`` 1.67 pJ: ISAAC (Shafiee et al., ISCA 2016, Table 6): 8 ADCs of
      8 bits at 1.2 GS/s per IMA, 16 mW → 2 mW / 1.2 GHz. Scaled by ``2**(0.27 (N - 8))``
      for N bits; this reproduces the SAR-ADC scaling of the Accelergy/hwcomponents ISAAC
      model (0.79 pJ at 4 b … 2.38 pJ at 10 b) within 5 %.
    * ``dac_pj_per_bit`` 0.42 pJ per driven row per input bit: ISAAC Table 6 (8×128 1-bit
      DACs, 4 mW → 3.9 µW each; 0.39 pJ per 100 ns cycle, 0.417 pJ in the hwcomponents
      derivation that accounts for ADC-limited utilisation).
    * ``cell_read_fj`` 1.8 fJ per cell per read: ISAAC Table 6 (eight 128×128 arrays at
      2.4 mW → 0.3 mW each, 100 ns per read → 30 pJ / 16384 cells). ISAAC reads one input
      bit per cycle, so this is per bit-slice; one read is charged once (optimistic).
    * ``program_cell_pj`` 1.28 pJ per device per verify cycle: PUMA (Ankit et al.,
      ASPLOS 2019) simulator constants, 676 nJ / 32 ≈ 21 nJ to write a 128×128 crossbar.
      ``write_pulse_pj`` 2 pJ per device pulse: a choice of the same order (device
      dependent: fJ for ECRAM, pJ for RRAM/PCM SET pulses).
    * ``digital_add_pj`` 0.21 pJ, ``digital_mult_pj`` 0.8 pJ (a MAC costs one of each,
      1.01 pJ): at the cheap, 16-bit fixed-point end. For comparison, the PUMA simulator's
      ALU (45 nm figures scaled ×32/45) gives add 0.27 pJ, multiply 0.57 pJ; Horowitz
      (ISSCC 2014, 45 nm) gives int32 add 0.1 / mult 3.1 pJ and fp32 add 0.9 / mult 3.7 pJ.
      Cheap digital work favours the digital transpose strategies.
    * ``mem_pj_per_byte`` 20.45 pJ per 256-bit eDRAM access → 0.64 pJ/byte: derived from
      ISAAC Table 6's 64 KB eDRAM at 20.7 mW (derivation of the hwcomponents ISAAC model).
    * ``t_read_ns`` 100 ns per array read cycle incl. conversion of its columns (ISAAC).
    * ``t_pulse_ns`` 10 ns per pulse slot; ``t_verify_ns`` 1000 ns per program-verify
      cycle of one row (choices); ``digital_ops_per_ns`` 64 (a 64-lane periphery at 1 GHz).
    """

    adc_pj_8bit: float = 1.67
    adc_bits_exponent: float = 0.27
    dac_pj_per_bit: float = 0.42
    cell_read_fj: float = 1.8
    write_pulse_pj: float = 2.0
    program_cell_pj: float = 1.28
    digital_add_pj: float = 0.21
    digital_mult_pj: float = 0.8
    mem_pj_per_byte: float = 20.45 / 32.0
    t_read_ns: float = 100.0
    t_pulse_ns: float = 10.0
    t_verify_ns: float = 1000.0
    digital_ops_per_ns: float = 64.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            hi = 1.0 if f.name == "adc_bits_exponent" else 1e9
            _check_real("cost", f.name, getattr(self, f.name), 0.0, hi)
        if self.digital_ops_per_ns <= 0:
            _fail("cost", "digital_ops_per_ns", self.digital_ops_per_ns, "a positive number")

    def adc_pj(self, bits: int | None) -> float:
        """Energy of one conversion at ``bits`` (an ideal ADC is costed as 8 bits)."""
        b = 8 if bits is None else bits
        return self.adc_pj_8bit * 2.0 ** (self.adc_bits_exponent * (b - 8))


# --------------------------------------------------------------------------- composition


@dataclass(frozen=True)
class HardwareConfig:
    """Everything that describes one kind of array; composed of the concern dataclasses."""

    name: str = "custom"
    dac: DACConfig = field(default_factory=DACConfig)
    adc: ADCConfig = field(default_factory=ADCConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    update: UpdateConfig = field(default_factory=UpdateConfig)
    tile: TileConfig = field(default_factory=TileConfig)
    periphery: PeripheryConfig = field(default_factory=PeripheryConfig)
    cost: CostModel = field(default_factory=CostModel)

    SECTIONS = ("dac", "adc", "noise", "device", "update", "tile", "periphery", "cost")

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            _fail("hardware", "name", self.name, "a non-empty string")
        types = {"dac": DACConfig, "adc": ADCConfig, "noise": NoiseConfig,
                 "device": DeviceConfig, "update": UpdateConfig, "tile": TileConfig,
                 "periphery": PeripheryConfig, "cost": CostModel}
        for sec, typ in types.items():
            if not isinstance(getattr(self, sec), typ):
                _fail("hardware", sec, getattr(self, sec), f"a {typ.__name__}")

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (TOML- and JSON-ready; ``None`` fields are omitted)."""
        out: dict[str, Any] = {"name": self.name}
        for sec in self.SECTIONS:
            d = dataclasses.asdict(getattr(self, sec))
            out[sec] = {k: v for k, v in d.items() if v is not None}
        return out


def replace_field(hw: HardwareConfig, dotted: str, value: Any) -> HardwareConfig:
    """Return a copy of ``hw`` with ``section.field`` set to ``value`` (validated).

    >>> replace_field(HardwareConfig(), "adc.bits", 6).adc.bits
    6
    """
    if dotted == "name":
        return dataclasses.replace(hw, name=value)
    parts = dotted.split(".")
    if len(parts) != 2 or parts[0] not in HardwareConfig.SECTIONS:
        raise ValueError(f"hardware field {dotted!r} is unknown; allowed: 'name' or "
                         f"'<section>.<field>' with section in {HardwareConfig.SECTIONS}")
    sec_name, fname = parts
    sec = getattr(hw, sec_name)
    names = [f.name for f in dataclasses.fields(sec)]
    if fname not in names:
        raise ValueError(f"hardware field {dotted!r} is unknown; fields of [{sec_name}]: "
                         + ", ".join(names))
    new_sec = dataclasses.replace(sec, **{fname: value})
    return dataclasses.replace(hw, **{sec_name: new_sec})
