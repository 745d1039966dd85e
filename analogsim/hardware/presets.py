"""Named hardware presets: *instances* of :class:`HardwareConfig`, each with its sources.

Every preset is a frozen ``HardwareConfig``; derive variants with
:func:`dataclasses.replace`, :func:`analogsim.hardware.config.replace_field` or a TOML file
with ``base = "<preset>"`` (see :mod:`analogsim.hardware.toml_io`). ``PRESET_NOTES`` holds a
one-line description plus sources per preset (used by the CLI's ``presets`` command); the
per-number provenance is in the comments next to each value below and in docs/hardware.md.

Conventions shared by all presets
---------------------------------
* Units follow :mod:`analogsim.hardware.config`. ``adc.out_bound`` and ``noise.out_noise``
  are in *output units*: the product of device-unit weights and DAC-normalised inputs
  (``y = W x`` with ``|x_j| <= 1``), exactly what the array compares against the bound.
  They therefore scale with ``device.w_max``; all device presets except
  ``aihwkit_default`` use ``w_max = 1`` so the literature values (quoted for a weight range
  of ±1) carry over unchanged.
* "choice" marks a number we picked where no source pins it down; change it freely.
* Realistic presets use 8-bit converters with per-sample max-abs input scaling, 256×256
  tiles (the core size of NeuRRAM and of IBM's HERMES PCM chip), the default
  :class:`CostModel`, and write-verify programming with 5 verify iterations.
"""

from __future__ import annotations

import dataclasses
import math

from .config import (
    ADCConfig,
    DACConfig,
    DeviceConfig,
    HardwareConfig,
    NoiseConfig,
    PeripheryConfig,
    TileConfig,
    UpdateConfig,
)

__all__ = ["PRESETS", "PRESET_NOTES", "get_preset", "list_presets"]

# A "realistic" periphery: 8-bit signed converters, max-abs input scaling, fixed ADC range.
# out_bound 10 and out_noise 0.04 (in units of w_max = 1 × full-scale input) are the
# StandardHWATrainingPreset of aihwkit (Rasch et al., Nat. Commun. 2023, arXiv:2302.08469),
# which models IBM's PCM-based HERMES chip; we use the same periphery for RRAM and ECRAM
# (choice: the converters are CMOS, not device, properties).
_DAC8 = DACConfig(bits=8, input_range=1.0, scaling="maxabs")
_ADC8 = ADCConfig(bits=8, out_bound=10.0, range_mode="fixed", manage_range=False,
                  max_retries=3)
_TILE256 = TileConfig(rows=256, cols=256)


# --------------------------------------------------------------------------- ideal
IDEAL = HardwareConfig(
    name="ideal",
    dac=DACConfig(bits=None, input_range=1.0, scaling="maxabs"),  # maxabs: nothing clips
    adc=ADCConfig(bits=None, out_bound=math.inf, range_mode="fixed", manage_range=False),
    noise=NoiseConfig(read_noise=0.0, out_noise=0.0, prog_noise=0.0),
    device=DeviceConfig(
        # w_max 10: Xavier/He-initialised layers stay two orders of magnitude inside it.
        w_max=10.0,
        levels=None,
        # α = dw_min / w_max = 1e-4: fine enough that stochastic rounding to whole pulses is
        # negligible, coarse enough that float32 conductances (ulp 6e-8 at G = 0.5) resolve
        # a step and that the pulse-train cap (bl·B pulses per cell per batch, bl·dw_min =
        # 0.064 per sample) is almost never reached by SGD updates.
        dw_min=1e-3,
        up_down=0.0,
        bounds="hard",
        ctoc=0.0, dtod=0.0,
        drift_nu=0.0, drift_nu_std=0.0, drift_t0=1.0,
        stuck_on=0.0, stuck_off=0.0,
    ),
    update=UpdateConfig(mode="expected", bl=64, update_management=True),
    tile=TileConfig(rows=512, cols=512),
    periphery=PeripheryConfig(bidirectional=True, verify_iterations=5, digital_bits=32),
)

# --------------------------------------------------------------------------- aihwkit
# IBM aihwkit defaults (checked in src/aihwkit/simulator/parameters/io.py, training.py,
# mapping.py, configs/devices.py and src/rpucuda/rpu_pulsed_meta_parameter.cpp):
#   IOParameters: inp_bound 1, inp_res 1/(2^7-2), out_bound 12, out_res 1/(2^9-2),
#     out_noise 0.06, w_noise 0, noise_management ABS_MAX, bound_management ITERATIVE,
#     max_bm_res 0.25.  rpucuda multiplies the resolutions by the full range 2·bound, so the
#     input step is 2/126 = 1/63 → 127 levels = a 7-bit signed DAC in our convention, and
#     the output step is 24/510 = 12/255 → 511 levels = a 9-bit signed ADC.
#   UpdateParameters: desired_bl 31, update_bl_management True, update_management True,
#     pulse_type STOCHASTIC_COMPRESSED.  MappingParameter: max_input/output_size 512.
#   PulsedDevice/ConstantStepDevice: dw_min 0.001, w_max 0.6, w_min -0.6, dw_min_dtod 0.3,
#     dw_min_std 0.3, up_down 0, up_down_dtod 0.01, w_max_dtod = w_min_dtod = 0.3.
AIHWKIT_DEFAULT = HardwareConfig(
    name="aihwkit_default",
    # noise_management = ABS_MAX is the IOParameters default, so also that of
    # SingleRPUConfig's and InferenceRPUConfig's forward io. It is applied per analog tile:
    # a layer mapped onto several tiles (MappingParameter.max_input_size = 512) is a
    # TileModuleArray whose tiles each run their own forward IO on their slice of the input
    # (rpucuda computeNoiseManagement over the tile's x_size), and the partial results are
    # added digitally — hence one max-abs scale per input tile, not per sample.
    dac=DACConfig(bits=7, input_range=1.0, scaling="maxabs_tile"),
    # aihwkit weights are in device units like ours, so out_bound / out_noise map 1:1.
    # Iterative bound management halves the input until the output fits, stopping once
    # the reduction exceeds max_bm_res / inp_res = 0.25 · 63 = 15.75 → at most 4 halvings.
    adc=ADCConfig(bits=9, out_bound=12.0, range_mode="fixed", manage_range=True,
                  max_retries=4),
    noise=NoiseConfig(read_noise=0.0, out_noise=0.06, prog_noise=0.0),
    device=DeviceConfig(
        w_max=0.6, levels=None, dw_min=0.001, up_down=0.0, bounds="hard",
        # dw_min_std (relative, per pulse). Kept per device (ctoc_scope "device", the default)
        # as every published table used it: the weight step's std is then 0.3/√2; aihwkit's
        # single-device weight has 0.3, i.e. ctoc_scope = "cell" (docs/hardware.md).
        ctoc=0.3,
        dtod=0.3,   # dw_min_dtod (aihwkit: Gaussian; here log-normal with median 1)
        drift_nu=0.0, drift_nu_std=0.0, drift_t0=1.0, stuck_on=0.0, stuck_off=0.0,
    ),
    update=UpdateConfig(mode="stochastic", bl=31, update_management=True),
    tile=TileConfig(rows=512, cols=512),
    # aihwkit's backward pass is an analog transposed read of the same tile.
    periphery=PeripheryConfig(bidirectional=True, verify_iterations=5, digital_bits=32),
)

# --------------------------------------------------------------------------- RRAM
RRAM = HardwareConfig(
    name="rram",
    dac=_DAC8,
    adc=_ADC8,
    noise=NoiseConfig(
        # aihwkit's ReRAM noise models: "short-term read noise (about 1%)".
        read_noise=0.01,
        out_noise=0.04,
        # Wan et al., Nature 2022 (NeuRRAM), 1 s after write-verify, as fitted in
        # aihwkit's ReRamWan2022NoiseModel: σ(G) ≈ 2.0 µS of G_max = 40 µS at G = G_max/2
        # (where complementary programming puts small weights), 1.1–2.3 µS elsewhere.
        prog_noise=0.05,
    ),
    device=DeviceConfig(
        w_max=1.0,
        # choice: 5 bits per device, between 4-bit weights (NeuRRAM) and the 64 levels
        # reported for Ta/HfO2 1T1R arrays (Li et al., Nat. Electron. 2018).
        levels=32,
        # Gong & Rasch et al., IEDM 2022, optimised-material HfOx array fit (aihwkit
        # ReRamArrayOMPresetDevice): dw_min 0.0949, soft bounds, dw_min_std 0.4158,
        # log-normal dw_min_dtod 0.7829 (the same distribution as ours).
        dw_min=0.0949,
        bounds="soft",
        ctoc=0.42,
        dtod=0.78,
        # Gong et al., Nat. Commun. 2018 exp-step fit (aihwkit ReRamESPresetDevice):
        # up_down 0.259. The 2022 fit assumes a reference device subtracts the symmetry
        # point; we model none, so the uncorrected asymmetry is the honest stand-in
        # (symmetry point at w = up_down · w_max).
        up_down=0.26,
        # Filamentary RRAM shows relaxation, not power-law drift (aihwkit's ReRAM models
        # have no ν); relaxation within 1 s is in prog_noise.
        drift_nu=0.0, drift_nu_std=0.0, drift_t0=1.0,
        # choice: a screened array. Unscreened arrays in Gong & Rasch 2022 had 9.8 %
        # (HfO2) and 13.5 % (optimised) corrupt devices.
        stuck_on=0.005, stuck_off=0.01,
    ),
    update=UpdateConfig(mode="stochastic", bl=31, update_management=True),
    tile=_TILE256,
    # NeuRRAM's transposable neurosynaptic array reads in both directions.
    periphery=PeripheryConfig(bidirectional=True, verify_iterations=5, digital_bits=32),
)

# --------------------------------------------------------------------------- PCM
PCM = HardwareConfig(
    name="pcm",
    dac=_DAC8,
    adc=_ADC8,
    noise=NoiseConfig(
        # Rasch et al. 2023 StandardHWATrainingPreset: w_noise 0.0175 with w_noise_type
        # PCM_READ, i.e. conductance-dependent read noise of std w_noise·sqrt(Σ_j |w_ij|
        # x_j²) per output (rpucuda applyOutputWeightNoise) on weights remapped to
        # [-1, 1]: our "pcm" model, whose w_noise is read_noise·sqrt(w_max) = read_noise
        # at w_max = 1.
        read_noise=0.0175,
        read_noise_model="pcm",
        out_noise=0.04,
        # aihwkit PCMLikeNoiseModel (Nandakumar et al., ICECS 2019; used by Joshi et al.,
        # Nat. Commun. 2020): σ_prog = 0.263 + 1.965 g − 1.173 g² µS of G_max = 25 µS,
        # i.e. 1.1 % (g = 0) … 4.2 % (g = 1); 3.8 % at g = 0.5 where complementary
        # programming puts small weights.
        prog_noise=0.038,
    ),
    device=DeviceConfig(
        w_max=1.0,
        levels=None,  # iterative programming to arbitrary targets; the error is prog_noise
        # choice: coarse gradual SET, ~20 pulses to reach ~2/3 of the range from G = 0
        # (order of magnitude of the PCM SET trains in Boybat et al., Nat. Commun. 2018
        # and Nandakumar et al. 2018/2020); soft bounds = step shrinks as G grows.
        dw_min=0.05,
        bounds="soft",
        # choice: depression (partial RESET) steps larger and less controlled than SET.
        up_down=-0.3,
        # aihwkit PCMPresetDevice (fit to Nandakumar et al., Front. Neurosci. 2020):
        # dw_min_std 0.6, dw_min_dtod 0.2.
        ctoc=0.6,
        dtod=0.2,
        # aihwkit PCMLikeNoiseModel: mean ν = clamp(−0.0155 ln g + 0.0244, 0.049, 0.1)
        # → 0.049–0.06 for g in [0.1, 1]; σ_ν = clamp(−0.0125 ln g − 0.0059, 0.008, 0.045)
        # → 0.008–0.023 (we take 0.01); t_0 = 20 s. Joshi et al. 2020 quote ν ≈ 0.05.
        drift_nu=0.05, drift_nu_std=0.01, drift_t0=20.0,
        # choice: a small fraction of failed cells.
        stuck_on=0.001, stuck_off=0.004,
    ),
    # Mixed-precision PCM training (Nandakumar et al. 2018/2020) computes ΔW digitally and
    # sends integer pulse counts per device: the expected mode.
    update=UpdateConfig(mode="expected", bl=31, update_management=True),
    tile=_TILE256,  # HERMES (Le Gallo et al., Nat. Electron. 2023): 256×256 cores
    periphery=PeripheryConfig(bidirectional=False, verify_iterations=5, digital_bits=32),
)

# --------------------------------------------------------------------------- ECRAM
ECRAM = HardwareConfig(
    name="ecram",
    dac=_DAC8,
    adc=_ADC8,
    noise=NoiseConfig(
        read_noise=0.005,  # choice: low read noise reported for ECRAM channels
        out_noise=0.04,
        prog_noise=0.005,  # choice: write-verify reaches a few of ~1000 states
    ),
    device=DeviceConfig(
        w_max=1.0,
        levels=1000,  # choice: ~2/α, the ~1000 states reported by Tang et al., IEDM 2018
        # aihwkit EcRamPresetDevice (fit to Tang et al., IEDM 2018, Li-ion ECRAM):
        # dw_min 0.002, up_down 0 (range shifted to the symmetry point), dw_min_std 0.3,
        # dw_min_dtod 0.1; slope γ_up 0.12 / γ_down 0.51 (linear-step model), closer to a
        # constant step than to soft bounds, hence hard bounds here.
        dw_min=0.002,
        bounds="hard",
        up_down=0.0,
        ctoc=0.3,
        dtod=0.1,
        drift_nu=0.0, drift_nu_std=0.0, drift_t0=1.0,  # retention loss is not power law
        stuck_on=0.0, stuck_off=0.0,  # choice: no array statistics published
    ),
    update=UpdateConfig(mode="stochastic", bl=31, update_management=True),
    tile=_TILE256,  # choice: no large ECRAM arrays have been demonstrated
    periphery=PeripheryConfig(bidirectional=False, verify_iterations=5, digital_bits=32),
)

# --------------------------------------------------------------------------- RPU spec
RPU_IDEAL_DEVICE = HardwareConfig(
    name="rpu_ideal_device",
    dac=_DAC8,  # choice: 8-bit, like the other presets
    # Gokmen & Vlasov 2016: analog noise σ = 0.06 and output bound |y| ≤ 12 in weight
    # units (the origin of aihwkit's out_noise / out_bound defaults).
    adc=ADCConfig(bits=8, out_bound=12.0, range_mode="fixed", manage_range=False,
                  max_retries=3),
    noise=NoiseConfig(read_noise=0.0, out_noise=0.06, prog_noise=0.0),
    device=DeviceConfig(
        # Gokmen & Vlasov 2016 device specification as encoded in aihwkit's defaults:
        # dw_min 0.001 over |w| ≤ 0.6 (≈1200 steps), 30 % device-to-device and 30 %
        # cycle-to-cycle variation of the step, constant step (hard bounds), symmetric.
        w_max=0.6, levels=None, dw_min=0.001, up_down=0.0, bounds="hard",
        ctoc=0.3, dtod=0.3,
        drift_nu=0.0, drift_nu_std=0.0, drift_t0=1.0, stuck_on=0.0, stuck_off=0.0,
    ),
    # Stochastic pulse trains of length BL = 10, no update management (introduced later,
    # Gokmen, Onen & Haensch, Front. Neurosci. 2017).
    update=UpdateConfig(mode="stochastic", bl=10, update_management=False),
    tile=TileConfig(rows=4096, cols=4096),  # the 4096×4096 arrays of the RPU study
    # The RPU concept runs forward, backward (transposed) and update cycles on one array.
    periphery=PeripheryConfig(bidirectional=True, verify_iterations=5, digital_bits=32),
)


# --------------------------------------------------------------------------- aihwkit devices
# aihwkit's device presets (src/aihwkit/simulator/presets/devices.py) on aihwkit's default
# tile (SingleRPUConfig: the periphery of `aihwkit_default` above, unchanged). aihwkit's
# weight range [w_min, w_max] may be off-centre; ours is [-w_max, w_max], so we keep its
# width (w_max - w_min = 2 → w_max = 1) and drop the offset. Both devices below are
# "calibrated to the symmetry point" (up_down 0): the offset moves the bounds, not w*.
# Not mapped (no counterpart here): w_max_dtod / w_min_dtod (per-cell bounds),
# write_noise_std, additive (mult_noise = False) cycle-to-cycle noise, which we model as
# multiplicative, and LinearStep's γ slopes (approximated by hard bounds).


def _on_aihwkit_tile(name: str, device: DeviceConfig) -> HardwareConfig:
    """``aihwkit_default`` with another device: aihwkit's SingleRPUConfig(device=…)."""
    return dataclasses.replace(AIHWKIT_DEFAULT, name=name, device=device)


ECRAM_AIHWKIT = _on_aihwkit_tile("ecram_aihwkit", DeviceConfig(
    # EcRamPresetDevice (LinearStepDevice fit to Tang et al., IEDM 2018, Li-ion ECRAM).
    w_max=1.0,      # w_max 1.1724, w_min -0.8276: width 2, offset 0.17 dropped
    levels=None,
    dw_min=0.002,   # dw_min 0.002
    up_down=0.0,    # up_down 0 ("assumed shifted onto range")
    # gamma_up 0.1153, gamma_down 0.5085 (mean_bound_reference): the step shrinks by 12 %
    # (up) / 51 % (down) at the bounds; closer to constant than to soft bounds (which
    # shrink by 100 %), hence hard bounds, as in `ecram`.
    bounds="hard",
    ctoc=0.3,       # dw_min_std 0.3 (mult_noise True: relative to the step, as ours)
    dtod=0.1,       # dw_min_dtod 0.1 (aihwkit: Gaussian; here log-normal, median 1)
    up_down_dtod=0.01,  # up_down_dtod 0.01
    drift_nu=0.0, drift_nu_std=0.0, drift_t0=1.0,  # the preset has no drift
    stuck_on=0.0, stuck_off=0.0,  # corrupt_devices_prob 0 (PulsedDevice default)
))

RERAM_SB_AIHWKIT = _on_aihwkit_tile("reram_sb_aihwkit", DeviceConfig(
    # ReRamSBPresetDevice (SoftBoundsDevice, loose fit to Gong et al., Nat. Commun. 2018).
    w_max=1.0,      # w_max 1.25, w_min -0.75: width 2, offset 0.25 dropped
    levels=None,
    dw_min=0.002,   # dw_min 0.002
    up_down=0.0,    # up_down 0 ("calibrated to the symmetry point")
    bounds="soft",  # SoftBoundsDevice
    # dw_min_std 3.75 with mult_noise False: aihwkit adds dw_min·3.75·ξ per pulse
    # (additive); ours multiplies the step by (1 + 3.75 ξ): the same std at w = 0.
    ctoc=3.75,
    dtod=0.3,       # dw_min_dtod 0.3 (aihwkit: Gaussian; here log-normal, median 1)
    up_down_dtod=0.01,  # up_down_dtod 0.01 ("assumes symmetry point corrected")
    drift_nu=0.0, drift_nu_std=0.0, drift_t0=1.0,  # the preset has no drift
    stuck_on=0.0, stuck_off=0.0,  # corrupt_devices_prob 0 (PulsedDevice default)
))

#: All presets by name.
PRESETS: dict[str, HardwareConfig] = {
    hw.name: hw for hw in (IDEAL, AIHWKIT_DEFAULT, RRAM, PCM, ECRAM, RPU_IDEAL_DEVICE,
                           ECRAM_AIHWKIT, RERAM_SB_AIHWKIT)
}

#: One line per preset: what it is, then its sources.
PRESET_NOTES: dict[str, str] = {
    "ideal": "Perfect physics for tests: no noise or quantisation, hard bounds far away, "
             "free transposed reads (bidirectional); the ledger still counts. "
             "Source: none (reference).",
    "aihwkit_default": "IBM aihwkit's default training tile: 7-bit DAC with per-tile "
                       "max-abs scaling, 9-bit ADC (bound 12, noise 0.06), iterative bound "
                       "management, constant-step device (dw_min 0.001, w_max 0.6, 30 % "
                       "ctoc/dtod), stochastic BL 31 with update management, 512×512, "
                       "transposed reads. Source: aihwkit IOParameters / UpdateParameters / "
                       "ConstantStepDevice defaults.",
    "rram": "HfOx RRAM: soft bounds with strong up/down asymmetry and cycle noise, 32 "
            "write-verify levels, 5 % programming noise, a few stuck cells, 256×256, "
            "bidirectional. Sources: Gong & Rasch et al. IEDM 2022 and Gong et al. Nat. "
            "Commun. 2018 (aihwkit fits), Wan et al. Nature 2022 (NeuRRAM).",
    "pcm": "Phase-change memory: drift ν = 0.05 ± 0.01 (t0 = 20 s), 3.8 % programming "
           "noise, 1.75 % conductance-dependent read noise, coarse asymmetric soft-bounded "
           "pulses, expected (mixed-precision) updates, 256×256. Sources: Joshi et al. Nat. "
           "Commun. 2020 / Nandakumar et al. 2019–2020 (aihwkit PCM models), Rasch et al. "
           "Nat. Commun. 2023.",
    "ecram": "Electrochemical RAM: near-symmetric constant steps (dw_min 0.002, ~1000 "
             "states), low noise, no drift, 256×256. Sources: Tang et al. IEDM 2018 "
             "(aihwkit EcRamPresetDevice fit); noise levels are choices.",
    "rpu_ideal_device": "The resistive processing unit (RPU) device specification: ~1200 "
                        "constant steps, 30 % ctoc/dtod, BL 10 without update management, "
                        "analog noise 0.06 and bound 12, 4096×4096 arrays, transposed "
                        "reads. Source: Gokmen & Vlasov, Front. Neurosci. 2016 (as encoded "
                        "in aihwkit's defaults).",
    "ecram_aihwkit": "aihwkit's EcRamPresetDevice on aihwkit's default tile: dw_min 0.002, "
                     "hard bounds (LinearStep γ 0.12/0.51 approximated), ctoc 0.3, dtod "
                     "0.1, up_down_dtod 0.01, range width 2. Sources: aihwkit "
                     "presets/devices.py (fit to Tang et al. IEDM 2018), aihwkit defaults.",
    "reram_sb_aihwkit": "aihwkit's ReRamSBPresetDevice on aihwkit's default tile: soft "
                        "bounds, dw_min 0.002, ctoc 3.75, dtod 0.3, up_down_dtod 0.01, range "
                        "width 2. Sources: aihwkit presets/devices.py (loose fit to Gong et "
                        "al. Nat. Commun. 2018), aihwkit defaults.",
}


def get_preset(name: str) -> HardwareConfig:
    """Return the preset called ``name`` (a shared frozen instance).

    Raises
    ------
    ValueError
        If ``name`` is not a preset; the message lists the allowed names.
    """
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"hardware preset {name!r} is unknown; allowed: "
                         + ", ".join(PRESETS)) from None


def list_presets() -> list[tuple[str, str]]:
    """``[(name, description), …]`` in definition order (description = ``PRESET_NOTES``)."""
    return [(name, PRESET_NOTES[name]) for name in PRESETS]
