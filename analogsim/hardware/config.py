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

Every field is declared once with :func:`analogsim.fields.param` (type, range, unit,
one-line doc, source of its default). From that declaration come the validation on
construction (a ``ValueError`` naming the field, the value and what is allowed), the TOML
mapping and ``--set`` overrides (:mod:`analogsim.hardware.toml_io`), the ``Parameters``
section of each class docstring and the field tables of docs/hardware.md
(:mod:`analogsim.hardware.reference`). Only rules that tie several fields together are
written by hand in ``__post_init__``. Presets live in :mod:`analogsim.hardware.presets`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..fields import check_fields, document_fields, fail, nearest, param, to_mapping

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
    "field_key_error",
]


#: Smallest positive range/bound accepted: float32 (the kernels' precision) keeps it > 0.
_TINY = 1e-30

_BITS = "resolution of the signed converter"


# --------------------------------------------------------------------------- converters


@document_fields
@dataclass(frozen=True)
class DACConfig:
    """Input digital-to-analogue converter.

    A signed DAC with ``b`` bits has ``2**b - 1`` levels symmetric around zero, step
    ``Δ = 1 / (2**(b-1) - 1)`` of full scale (``b = 1`` would have no non-zero level, hence
    ``bits >= 2``). In ``fixed`` mode the DAC sees ``x / input_range`` and clips it to
    ``[-1, 1]`` (each clip is counted in the ledger). ``maxabs``: each sample is divided
    digitally by its own ``max|x|`` before the DAC and the outputs multiplied back (charged
    as digital work), so nothing clips. ``maxabs_tile``: the same per input tile — each
    tile's slice of ``tile.rows`` inputs is divided by its own ``max|x|`` and the tile's
    partial sum multiplied back before the partial sums are added (aihwkit's
    ``NoiseManagementType.ABS_MAX``, which every analog tile applies to its own input
    slice); one extra multiply per tile output is charged. Identical to ``maxabs`` on a
    single input tile.
    """

    bits: int | None = param(8, kind="int", optional=True, lo=2, hi=24, unit="bits",
                             doc=f"{_BITS}: step 1/(2**(bits-1) - 1) of full scale; none: ideal")
    # Lower limits here and below keep the value a positive float32 in the kernels.
    input_range: float = param(1.0, lo=_TINY, hi=1e12, unit="input units",
                               doc="full-scale input r of `fixed` mode: the DAC sees x / r, "
                                   "clipped to [-1, 1]")
    scaling: str = param("maxabs", choices=("fixed", "maxabs", "maxabs_tile"),
                         doc="input scaling: `fixed` range, `maxabs` per sample, or "
                             "`maxabs_tile` per sample and input tile")

    def __post_init__(self) -> None:
        check_fields(self, "dac")


@document_fields
@dataclass(frozen=True)
class ADCConfig:
    """Output analogue-to-digital converter (one per tile column, shared in time).

    Step ``Δ = out_bound / (2**(bits-1) - 1)``. In ``fixed`` mode ``out_bound`` is the
    saturation level ``b_o`` of each tile's ADC in *output units*, the unit of
    ``y_i = Σ_j w_ij x̃_j`` with weights ``w_ij`` in device units (``[-w_max, w_max]``) and
    DAC-normalised inputs ``x̃_j ∈ [-1, 1]``; a conversion saturates when ``|y_i| > b_o``.
    It is compared before the digital rescaling by the input range or max-abs factor, and
    it does not rescale with ``device.w_max``. ``inf`` is allowed only with ``bits=None``.
    In ``calibrated`` mode ``out_bound`` is a dimensionless *fraction* in ``(0, 1]`` of the
    worst-case tile output ``max_i Σ_j |w_ij|`` (output units), measured from the target
    weights when the tile is programmed. With ``manage_range`` every re-read of a
    saturated sample is charged as a full read.
    """

    bits: int | None = param(8, kind="int", optional=True, lo=2, hi=24, unit="bits",
                             doc=f"{_BITS}: step out_bound/(2**(bits-1) - 1); none: ideal")
    out_bound: float = param(12.0, lo=_TINY, hi=1e12, allow_inf=True,
                             unit="output units (`fixed`), fraction (`calibrated`)",
                             doc="saturation level b_o of each tile's ADC, or in `calibrated` "
                                 "mode a fraction in (0, 1] of the worst-case tile output; "
                                 "inf only with bits = none",
                             source="aihwkit IOParameters.out_bound (Gokmen & Vlasov 2016)")
    range_mode: str = param("fixed", choices=("fixed", "calibrated"),
                            doc="`fixed`: out_bound is absolute; `calibrated`: a fraction of "
                                "the worst-case tile output, measured when programming")
    manage_range: bool = param(False, doc="re-read a saturated sample with its input halved, "
                                          "up to max_retries times")
    max_retries: int = param(3, lo=0, hi=16, unit="re-reads",
                             doc="re-reads allowed per saturated sample when manage_range is on")

    def __post_init__(self) -> None:
        check_fields(self, "adc")
        if self.out_bound == math.inf and self.bits is not None:
            fail("adc", "out_bound", self.out_bound, f"a finite bound with adc.bits = "
                 f"{self.bits}; inf only with adc.bits = none (an ideal ADC)")
        if self.range_mode == "calibrated" and self.out_bound > 1.0:
            fail("adc", "out_bound", self.out_bound,
                 "a fraction in (0, 1] of the worst-case output when range_mode='calibrated'")


# --------------------------------------------------------------------------- noise and device


@document_fields
@dataclass(frozen=True)
class NoiseConfig:
    """Stochastic non-idealities of reading and programming.

    Read noise is sampled exactly on the outputs: ``N(0, (w_max·σ_r)² ‖x‖²)`` per output
    with ``read_noise_model = "additive"``, where the cell noise std is ``w_max σ_r`` for
    every cell (aihwkit's ``WeightNoiseType.ADDITIVE_CONSTANT`` with
    ``w_noise = w_max σ_r``). With ``"pcm"`` it grows with the weight's magnitude, variance
    ``(w_max σ_r)² |w_ij| / w_max`` (equal to ``additive`` at ``|w| = w_max``), so output
    ``i`` gets variance ``w_max σ_r² Σ_j |w_ij| x_j²`` (aihwkit's
    ``WeightNoiseType.PCM_READ`` with ``w_noise = σ_r √w_max``). Derivation in
    docs/hardware.md.
    """

    read_noise: float = param(0.0, lo=0.0, hi=10.0, unit="fraction of w_max",
                              doc="std σ_r of the Gaussian weight noise per cell and read "
                                  "(cell noise w_max σ_r)")
    out_noise: float = param(0.0, lo=0.0, hi=10.0, unit="output units",
                             doc="std σ_out of the additive Gaussian noise at each tile column "
                                 "before the ADC")
    prog_noise: float = param(0.0, lo=0.0, hi=10.0, unit="fraction of G_max",
                              doc="std σ_p of the write-verify programming error per device")
    read_noise_model: str = param("additive", choices=("additive", "pcm"),
                                  doc="`additive`: one cell noise std for all weights; `pcm`: "
                                      "variance ∝ |w| (equal at |w| = w_max)")

    def __post_init__(self) -> None:
        check_fields(self, "noise")


@document_fields
@dataclass(frozen=True)
class DeviceConfig:
    """Resistive device pair: range, levels, pulse response, variability, drift, defects.

    Write-verify programming reaches ``G ∈ {0, 1/(L-1), …, 1}`` with ``L = levels``. Per
    device the normalised pulse step is ``α = dw_min / w_max``; up-pulses use ``α(1 + u)``,
    down-pulses ``α(1 - u)`` with ``u = up_down`` (per cell
    ``u_ij = clip(up_down + up_down_dtod ξ_ij, -1, 1)``, ``ξ_ij ~ N(0, 1)``). ``soft``
    bounds: potentiation ``ΔG = α(1 - G)``, depression ``ΔG = -αG`` per device (so at
    ``G+ + G- = 1``:
    ``Δw = dw_min (1 ∓ w / w_max)``); ``hard``: constant ``±α/2`` per device, clipped to the
    device's physical range ``[0, 1]``; ``step_model = "pow"`` (soft bounds only): per
    device and pulse ``ΔG = α(1 - G)^γ`` up, ``-αG^γ`` down, ``γ = pow_gamma`` (aihwkit
    ``PowStepDevice``). Drift after programming:
    ``G(t) = G(t_0) ((t + t_0) / t_0)^(-ν)``, ``ν ~ max(0, N(drift_nu, drift_nu_std²))``.
    """

    w_max: float = param(1.0, lo=_TINY, hi=1e6, unit="device units",
                         doc="weight range [-w_max, w_max] of a differential pair")
    levels: int | None = param(None, kind="int", optional=True, lo=2, hi=1 << 20,
                               unit="levels", doc="conductance levels per device reachable by "
                                                  "write-verify programming; none: continuous")
    dw_min: float = param(0.001, lo=0.0, hi=math.inf, lo_open=True, unit="device units",
                          doc="weight change of one pulse at w = 0, at most w_max (α = dw_min / "
                              "w_max)",
                          source="aihwkit ConstantStepDevice.dw_min (Gokmen & Vlasov 2016)")
    up_down: float = param(0.0, lo=-1.0, hi=1.0, lo_open=True, hi_open=True,
                           unit="dimensionless", doc="asymmetry u: up-pulses step α(1 + u), "
                                                     "down-pulses α(1 - u)")
    bounds: str = param("soft", choices=("soft", "hard"),
                        doc="pulse response: `soft` (step ∝ distance to the bound) or `hard` "
                            "(constant step, clipped to [0, 1])")
    ctoc: float = param(0.0, lo=0.0, hi=10.0, unit="fraction of the step",
                        doc="cycle-to-cycle relative std of each pulse's step")
    ctoc_scope: str = param("device", choices=("device", "cell"),
                            doc="`device`: each device of the pair draws its own "
                                "cycle-to-cycle factor, so the weight step's relative std is "
                                "ctoc/√2 while neither device is at a bound; `cell`: one draw "
                                "per cell and pulse direction moves both devices (relative "
                                "std ctoc, like a single-device weight; half the draws)",
                            source="aihwkit PulsedDevice.dw_min_std is the std of a "
                                   "single-device weight's step, i.e. `cell`")
    dtod: float = param(0.0, lo=0.0, hi=10.0, unit="fraction of the step",
                        doc="device-to-device relative std of the step (log-normal, drawn "
                            "once per cell)")
    up_down_dtod: float = param(0.0, lo=0.0, hi=10.0, unit="dimensionless",
                                doc="device-to-device std of the asymmetry: cell ij steps "
                                    "α(1 ± u_ij), u_ij = clip(up_down + up_down_dtod ξ, -1, 1) "
                                    "(drawn once), so each cell has its own symmetry point",
                                source="aihwkit PulsedDevice.up_down_dtod")
    step_model: str = param("bounds", choices=("bounds", "pow"),
                            doc="`bounds`: the step set by `bounds`; `pow`: power step, "
                                "ΔG = α(1 - G)^γ up, -αG^γ down per device (needs soft "
                                "bounds; γ = pow_gamma)",
                            source="aihwkit PowStepDevice")
    pow_gamma: float = param(1.0, lo=0.0, hi=10.0, lo_open=True, unit="dimensionless",
                             doc="exponent γ of the `pow` step model (γ = 1: soft bounds)",
                             source="aihwkit PowStepDevice.pow_gamma")
    drift_nu: float = param(0.0, lo=0.0, hi=1.0, unit="dimensionless",
                            doc="mean drift exponent ν after programming")
    drift_nu_std: float = param(0.0, lo=0.0, hi=1.0, unit="dimensionless",
                                doc="device-to-device std of ν")
    drift_t0: float = param(1.0, lo=0.0, hi=1e9, lo_open=True, unit="s",
                            doc="drift reference time t_0")
    stuck_on: float = param(0.0, lo=0.0, hi=1.0, unit="fraction of devices",
                            doc="devices stuck at G = 1")
    stuck_off: float = param(0.0, lo=0.0, hi=1.0, unit="fraction of devices",
                             doc="devices stuck at G = 0")

    def __post_init__(self) -> None:
        check_fields(self, "device")
        if self.dw_min > self.w_max:
            fail("device", "dw_min", self.dw_min, f"a real number in (0.0, {self.w_max}], "
                 "at most device.w_max (one pulse cannot exceed the weight range)")
        if self.stuck_on + self.stuck_off > 1.0:
            fail("device", "stuck_on + stuck_off", self.stuck_on + self.stuck_off,
                 "a total fraction of at most 1")
        if self.step_model == "pow" and self.bounds != "soft":
            fail("device", "bounds", self.bounds, "'soft' with step_model = 'pow' (the power "
                 "step vanishes at the bounds)")

    @property
    def alpha(self) -> float:
        """Normalised conductance step ``α = dw_min / w_max`` of one pulse."""
        return self.dw_min / self.w_max

    @property
    def kernel_pow_gamma(self) -> float:
        """``pow_gamma`` with the `pow` step model, else 0 (the kernels' "no power step")."""
        return self.pow_gamma if self.step_model == "pow" else 0.0

    @property
    def kernel_ctoc_shared(self) -> bool:
        """The kernels' ``ctoc_shared``: one cycle-to-cycle draw per cell (scope `cell`)."""
        return self.ctoc_scope == "cell"


@document_fields
@dataclass(frozen=True)
class UpdateConfig:
    """How rank-1 updates reach the devices.

    ``expected``: the outer product ``-lr Dᵀ X`` is formed (BLAS) and each cell receives
    ``round_stochastic(Δw / dw_min)`` pulses, at most ``bl`` per sample (more are cut and
    counted as ``pulse_clips``). ``stochastic``: per sample, stochastic pulse trains of
    length ``bl`` on rows and columns; a device is stepped at each coincidence
    (parallel-update hardware).
    """

    mode: str = param("expected", choices=("expected", "stochastic"),
                      doc="`expected`: rounded expected pulse counts; `stochastic`: "
                          "coincidences of stochastic pulse trains")
    bl: int = param(31, lo=1, hi=64, unit="pulses",
                    doc="pulse-train length; also the cap on pulses per cell and sample in "
                        "`expected` mode", source="aihwkit UpdateParameters.desired_bl")
    update_management: bool = param(True, doc="balance row/column pulse probabilities by "
                                               "max|x| and max|d|",
                                    source="aihwkit UpdateParameters.update_management")

    def __post_init__(self) -> None:
        check_fields(self, "update")


@document_fields
@dataclass(frozen=True)
class TileConfig:
    """Physical array size; larger matrices are split over several tiles.

    A layer of ``n_out × n_in`` weights uses ``ceil(n_in/rows) × ceil(n_out/cols)`` tiles.
    """

    rows: int = param(512, lo=1, hi=1 << 16, unit="cells", doc="array rows (= inputs) per tile",
                      source="aihwkit MappingParameter.max_input_size")
    cols: int = param(512, lo=1, hi=1 << 16, unit="cells",
                      doc="array columns (= outputs) per tile",
                      source="aihwkit MappingParameter.max_output_size")

    def __post_init__(self) -> None:
        check_fields(self, "tile")


@document_fields
@dataclass(frozen=True)
class PeripheryConfig:
    """Capabilities of the array periphery.

    Without ``bidirectional`` the `bidirectional` transpose strategy refuses to run.
    """

    bidirectional: bool = param(False, doc="the hardware can drive columns and sense rows, "
                                           "i.e. read Wᵀ v at forward cost")
    verify_iterations: int = param(5, lo=1, hi=1000, unit="cycles",
                                   doc="program-and-verify cycles per device in write-verify "
                                       "programming", source="choice")
    digital_bits: int = param(32, lo=1, hi=64, unit="bits",
                              doc="width of digital periphery words (memory bytes are charged "
                                  "at this width)")

    def __post_init__(self) -> None:
        check_fields(self, "periphery")


def _cost(default: float, unit: str, doc: str, source: str, hi: float = 1e9,
          lo_open: bool = False) -> Any:
    """A cost coefficient: a finite real number in ``[0, hi]`` (or ``(0, hi]``)."""
    return param(default, lo=0.0, hi=hi, lo_open=lo_open, unit=unit, doc=doc, source=source)


_ISAAC = "ISAAC (Shafiee et al., ISCA 2016) Table 6"
_HWC = "Accelergy/hwcomponents ISAAC model"


@document_fields
@dataclass(frozen=True)
class CostModel:
    """Energy and latency coefficients that turn ledger counts into pJ and ns.

    Defaults are for a 32 nm ISAAC-like design; each coefficient's source is part of its
    declaration (the ``source`` column of docs/hardware.md, which also says how each was
    checked). The energy of one ``N``-bit conversion is
    ``adc_pj_8bit · 2**(adc_bits_exponent (N - 8))`` (:meth:`adc_pj`); a MAC costs one
    add and one multiply. Cheap digital work favours the digital transpose strategies.
    """

    adc_pj_8bit: float = _cost(1.67, "pJ per conversion", "energy of one 8-bit ADC conversion",
                               f"{_ISAAC}: 8 ADCs of 8 b at 1.2 GS/s, 16 mW per IMA → 2 mW / "
                               "1.2 GHz")
    adc_bits_exponent: float = _cost(
        0.27, "log2 per bit", "ADC energy grows by 2**adc_bits_exponent per bit",
        f"fit to the {_HWC}'s SAR-ADC scaling (0.79 pJ at 4 b … 2.38 pJ at 10 b, within 5 %)",
        hi=1.0)
    dac_pj_per_bit: float = _cost(0.42, "pJ per driven row and input bit",
                                  "DAC energy per driven row and input bit",
                                  f"{_ISAAC}: 8×128 1-bit DACs, 4 mW (0.39 pJ per 100 ns "
                                  f"cycle; 0.417 pJ in the {_HWC})")
    cell_read_fj: float = _cost(1.8, "fJ per cell and read", "energy of reading one cell once",
                                f"{_ISAAC}: eight 128×128 arrays, 2.4 mW, 100 ns per read → "
                                "30 pJ / 16384 cells (per input bit-slice; charged once per "
                                "read)")
    write_pulse_pj: float = _cost(2.0, "pJ per device pulse", "energy of one update pulse on "
                                  "one device", "choice, same order as PUMA's per-cell write "
                                  "(fJ for ECRAM, pJ for RRAM/PCM SET pulses)")
    program_cell_pj: float = _cost(1.28, "pJ per device and verify cycle",
                                   "energy of one program-and-verify cycle of one device",
                                   "PUMA (Ankit et al., ASPLOS 2019) simulator constants: 676 "
                                   "nJ / 32 ≈ 21 nJ to write a 128×128 crossbar")
    digital_add_pj: float = _cost(0.21, "pJ", "energy of one digital add",
                                  "16-bit fixed-point periphery (PUMA ALU scaled to 32 nm: "
                                  "0.27 pJ; Horowitz ISSCC 2014, 45 nm: int32 0.1 pJ)")
    digital_mult_pj: float = _cost(0.8, "pJ", "energy of one digital multiply",
                                   "16-bit fixed-point periphery (PUMA ALU scaled to 32 nm: "
                                   "0.57 pJ; Horowitz ISSCC 2014, 45 nm: int32 3.1 pJ)")
    mem_pj_per_byte: float = _cost(20.45 / 32.0, "pJ per byte",
                                   "energy of moving one byte to or from periphery memory",
                                   f"{_ISAAC}: 64 KB eDRAM at 20.7 mW → 20.45 pJ per 256-bit "
                                   f"access (derivation of the {_HWC})")
    t_read_ns: float = _cost(100.0, "ns per read cycle", "latency of one array read cycle, "
                             "conversion of its columns included", "ISAAC crossbar read "
                             "cycle; PUMA simulator xbar_ip_lat = 100")
    t_pulse_ns: float = _cost(10.0, "ns per pulse slot", "latency of one update pulse slot",
                              "choice")
    t_verify_ns: float = _cost(1000.0, "ns per row and verify cycle",
                               "latency of one program-verify cycle of one row", "choice")
    digital_ops_per_ns: float = _cost(64.0, "operations per ns", "throughput of the digital "
                                      "periphery", "choice: 64 lanes at 1 GHz", lo_open=True)

    def __post_init__(self) -> None:
        check_fields(self, "cost")

    def adc_pj(self, bits: int | None) -> float:
        """Energy of one conversion at ``bits`` (an ideal ADC is costed as 8 bits)."""
        b = 8 if bits is None else bits
        return self.adc_pj_8bit * 2.0 ** (self.adc_bits_exponent * (b - 8))


# --------------------------------------------------------------------------- composition


@document_fields
@dataclass(frozen=True)
class HardwareConfig:
    """Everything that describes one kind of array; composed of the concern dataclasses."""

    name: str = param("custom", doc="name of the hardware description (a preset's name, or "
                                    "a TOML file's `name`, else its `base`)")
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
        check_fields(self, "hardware")
        # The sections are not declared with param(): a wrong object must still be named.
        for sec in self.SECTIONS:
            typ = _SECTION_TYPES[sec]
            if not isinstance(getattr(self, sec), typ):
                fail("hardware", sec, getattr(self, sec), f"a {typ.__name__}")

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (TOML- and JSON-ready; ``None`` fields are omitted)."""
        return to_mapping(self)


#: Section name → its dataclass, read off the declarations of :class:`HardwareConfig`.
_SECTION_TYPES: dict[str, type] = {f.name: f.default_factory
                                   for f in dataclasses.fields(HardwareConfig)
                                   if f.name in HardwareConfig.SECTIONS}


def field_key_error(hw: HardwareConfig, dotted: str) -> str | None:
    """Why ``dotted`` is not a field of ``hw`` (``name`` or ``section.field``), else None.

    The message names the key, suggests the nearest valid one and lists the allowed keys;
    :func:`replace_field` and :func:`analogsim.hardware.toml_io.apply_overrides` prefix it.
    """
    if dotted == "name":
        return None
    parts = dotted.split(".")
    if len(parts) == 2 and parts[0] in HardwareConfig.SECTIONS:
        sec, fname = parts
        names = [f.name for f in dataclasses.fields(getattr(hw, sec))]
        if fname in names:
            return None
        near = nearest(fname, names)
        hint = f" (did you mean '{sec}.{near}'?)" if near else ""
        return f"field {dotted!r} is unknown{hint}; fields of [{sec}]: " + ", ".join(names)
    keys = ["name"] + [f"{sec}.{f.name}" for sec in HardwareConfig.SECTIONS
                       for f in dataclasses.fields(getattr(hw, sec))]
    if len(parts) == 2:  # a misspelt section: suggest it only with a field it really has
        sec = nearest(parts[0], HardwareConfig.SECTIONS)
        near = f"{sec}.{parts[1]}" if sec and f"{sec}.{parts[1]}" in keys else None
    else:
        near = nearest(dotted, keys)
    hint = f" (did you mean {near!r}?)" if near else ""
    return (f"field {dotted!r} is unknown{hint}; allowed: 'name' or '<section>.<field>' with "
            "section in " + ", ".join(HardwareConfig.SECTIONS))


def replace_field(hw: HardwareConfig, dotted: str, value: Any) -> HardwareConfig:
    """Return a copy of ``hw`` with ``section.field`` set to ``value`` (validated).

    ``value`` is a Python value, used as is (no TOML conventions: ``"none"`` stays a
    string); use :func:`analogsim.hardware.toml_io.apply_overrides` for text.

    >>> replace_field(HardwareConfig(), "adc.bits", 6).adc.bits
    6
    """
    error = field_key_error(hw, dotted)
    if error:
        raise ValueError(f"hardware {error}")
    if dotted == "name":
        return dataclasses.replace(hw, name=value)
    sec, fname = dotted.split(".")
    new_sec = dataclasses.replace(getattr(hw, sec), **{fname: value})
    return dataclasses.replace(hw, **{sec: new_sec})
