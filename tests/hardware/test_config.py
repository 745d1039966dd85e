"""Validation, frozen-ness and helpers of analogsim.hardware.config."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
import pytest

from analogsim.hardware.config import (
    ADCConfig,
    CostModel,
    DACConfig,
    DeviceConfig,
    HardwareConfig,
    NoiseConfig,
    PeripheryConfig,
    TileConfig,
    UpdateConfig,
    replace_field,
)

NAN, INF = math.nan, math.inf

SECTION_CLASSES = {
    "dac": DACConfig, "adc": ADCConfig, "noise": NoiseConfig, "device": DeviceConfig,
    "update": UpdateConfig, "tile": TileConfig, "periphery": PeripheryConfig,
    "cost": CostModel,
}

# (section, field, bad value): every one must raise a ValueError naming section.field,
# the value and what is allowed.
BAD_VALUES = [
    # DAC
    ("dac", "bits", 0), ("dac", "bits", 1), ("dac", "bits", -3), ("dac", "bits", 25),
    ("dac", "bits", 8.0),
    ("dac", "bits", True), ("dac", "bits", "8"), ("dac", "bits", NAN),
    ("dac", "input_range", 0.0), ("dac", "input_range", -1.0), ("dac", "input_range", NAN),
    ("dac", "input_range", INF), ("dac", "input_range", "1"), ("dac", "input_range", True),
    ("dac", "input_range", None),
    ("dac", "scaling", "none"), ("dac", "scaling", "MAXABS"), ("dac", "scaling", 1),
    ("dac", "scaling", None), ("dac", "scaling", "maxabs_tiles"), ("dac", "scaling", "tile"),
    # ADC
    ("adc", "bits", 0), ("adc", "bits", 1), ("adc", "bits", 100), ("adc", "bits", False),
    ("adc", "bits", 7.5),
    ("adc", "out_bound", 0.0), ("adc", "out_bound", -12.0), ("adc", "out_bound", NAN),
    ("adc", "out_bound", INF),  # inf only with bits=None
    ("adc", "out_bound", "12"), ("adc", "out_bound", True),
    ("adc", "range_mode", "auto"), ("adc", "range_mode", None),
    ("adc", "manage_range", 1), ("adc", "manage_range", "true"), ("adc", "manage_range", None),
    ("adc", "max_retries", -1), ("adc", "max_retries", 17), ("adc", "max_retries", 2.0),
    ("adc", "max_retries", True),
    # noise
    ("noise", "read_noise", -0.01), ("noise", "read_noise", NAN), ("noise", "read_noise", INF),
    ("noise", "read_noise", 11.0), ("noise", "read_noise", "0.1"),
    ("noise", "out_noise", -1e-9), ("noise", "out_noise", True), ("noise", "out_noise", None),
    ("noise", "prog_noise", -0.5), ("noise", "prog_noise", NAN),
    ("noise", "read_noise_model", "PCM"), ("noise", "read_noise_model", "none"),
    ("noise", "read_noise_model", None), ("noise", "read_noise_model", 1),
    # device
    ("device", "w_max", 0.0), ("device", "w_max", -1.0), ("device", "w_max", INF),
    ("device", "w_max", NAN), ("device", "w_max", "1"), ("device", "w_max", 2e6),
    ("device", "levels", 1), ("device", "levels", 0), ("device", "levels", 32.0),
    ("device", "levels", True), ("device", "levels", "none"),
    ("device", "dw_min", 0.0), ("device", "dw_min", -0.001), ("device", "dw_min", 1.5),
    ("device", "dw_min", NAN),
    ("device", "up_down", 1.0), ("device", "up_down", -1.0), ("device", "up_down", 2.0),
    ("device", "up_down", NAN),
    ("device", "bounds", "Soft"), ("device", "bounds", "none"), ("device", "bounds", None),
    ("device", "ctoc", -0.1), ("device", "ctoc", 11.0), ("device", "dtod", -0.1),
    ("device", "dtod", INF),
    ("device", "drift_nu", -0.01), ("device", "drift_nu", 1.5), ("device", "drift_nu_std", -1.0),
    ("device", "drift_t0", 0.0), ("device", "drift_t0", -1.0), ("device", "drift_t0", INF),
    ("device", "stuck_on", -0.1), ("device", "stuck_on", 1.1), ("device", "stuck_off", NAN),
    ("device", "stuck_off", True),
    # update
    ("update", "mode", "sgd"), ("update", "mode", None), ("update", "bl", 0),
    ("update", "bl", 65), ("update", "bl", 31.0), ("update", "bl", True),
    ("update", "update_management", 0), ("update", "update_management", "yes"),
    # tile
    ("tile", "rows", 0), ("tile", "rows", -256), ("tile", "rows", 1 << 17),
    ("tile", "rows", 256.0), ("tile", "cols", True), ("tile", "cols", None),
    # periphery
    ("periphery", "bidirectional", 1), ("periphery", "bidirectional", None),
    ("periphery", "verify_iterations", 0), ("periphery", "verify_iterations", 1001),
    ("periphery", "digital_bits", 0), ("periphery", "digital_bits", 65),
    ("periphery", "digital_bits", 32.0),
    # cost
    ("cost", "adc_pj_8bit", -1.0), ("cost", "adc_pj_8bit", NAN), ("cost", "adc_pj_8bit", INF),
    ("cost", "adc_bits_exponent", 1.5), ("cost", "adc_bits_exponent", -0.1),
    ("cost", "dac_pj_per_bit", "0.4"), ("cost", "cell_read_fj", True),
    ("cost", "write_pulse_pj", -2.0), ("cost", "mem_pj_per_byte", None),
    ("cost", "t_read_ns", -100.0), ("cost", "digital_ops_per_ns", 0.0),
    ("cost", "digital_ops_per_ns", -64.0),
]


def _ids(case: tuple) -> str:
    sec, name, value = case
    return f"{sec}.{name}={value!r}"


@pytest.mark.parametrize("case", BAD_VALUES, ids=[_ids(c) for c in BAD_VALUES])
def test_bad_value_names_field_value_and_allowed(case: tuple) -> None:
    sec, name, value = case
    with pytest.raises(ValueError) as info:
        SECTION_CLASSES[sec](**{name: value})
    msg = str(info.value)
    assert f"{sec}.{name}" in msg
    assert repr(value) in msg
    assert "allowed" in msg


@pytest.mark.parametrize("case", BAD_VALUES, ids=[_ids(c) for c in BAD_VALUES])
def test_bad_value_through_replace_field(case: tuple) -> None:
    sec, name, value = case
    with pytest.raises(ValueError, match=f"{sec}.{name}"):
        replace_field(HardwareConfig(), f"{sec}.{name}", value)


def test_defaults_are_valid_and_documented() -> None:
    hw = HardwareConfig()
    assert hw.name == "custom"
    for sec in HardwareConfig.SECTIONS:
        obj = getattr(hw, sec)
        assert isinstance(obj, SECTION_CLASSES[sec])
        doc = type(obj).__doc__ or ""
        assert doc.strip(), f"{sec} has no docstring"


@pytest.mark.parametrize("kwargs", [
    {"bits": None, "out_bound": INF},
    {"bits": 8, "out_bound": 12},  # int is accepted for a float field
    {"range_mode": "calibrated", "out_bound": 1.0},
    {"range_mode": "calibrated", "out_bound": 0.25},
    {"bits": 2}, {"bits": 24}, {"max_retries": 0}, {"max_retries": 16},
])
def test_valid_adc_settings(kwargs: dict) -> None:
    ADCConfig(**kwargs)


def test_read_path_options_and_their_defaults() -> None:
    # Defaults keep the behaviour from before the options existed.
    assert DACConfig().scaling == "maxabs"
    assert NoiseConfig().read_noise_model == "additive"
    for scaling in ("fixed", "maxabs", "maxabs_tile"):
        assert DACConfig(scaling=scaling).scaling == scaling
    for model in ("additive", "pcm"):
        assert NoiseConfig(read_noise=0.02, read_noise_model=model).read_noise_model == model
    with pytest.raises(ValueError, match=r"dac\.scaling = 'tile' is invalid; allowed: one of "
                                         r"'fixed', 'maxabs', 'maxabs_tile'"):
        DACConfig(scaling="tile")
    with pytest.raises(ValueError, match=r"noise\.read_noise_model = 'gauss' is invalid; "
                                         r"allowed: one of 'additive', 'pcm'"):
        NoiseConfig(read_noise_model="gauss")
    hw = replace_field(HardwareConfig(), "noise.read_noise_model", "pcm")
    assert hw.to_dict()["noise"]["read_noise_model"] == "pcm"


def test_calibrated_bound_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match=r"adc\.out_bound = 12\.0.*allowed: a fraction"):
        ADCConfig(range_mode="calibrated", out_bound=12.0)


def test_inf_bound_only_without_quantisation() -> None:
    with pytest.raises(ValueError, match=r"adc\.out_bound = inf"):
        ADCConfig(bits=8, out_bound=INF)
    with pytest.raises(ValueError, match=r"adc\.out_bound = nan"):
        ADCConfig(bits=None, out_bound=NAN)


def test_dw_min_is_bounded_by_w_max() -> None:
    DeviceConfig(w_max=0.5, dw_min=0.5)
    with pytest.raises(ValueError, match=r"device\.dw_min = 0\.6.*\(0\.0, 0\.5\]"):
        DeviceConfig(w_max=0.5, dw_min=0.6)


def test_stuck_fractions_sum_at_most_one() -> None:
    DeviceConfig(stuck_on=0.5, stuck_off=0.5)
    with pytest.raises(ValueError, match=r"stuck_on \+ stuck_off"):
        DeviceConfig(stuck_on=0.6, stuck_off=0.5)


def test_alpha() -> None:
    assert DeviceConfig(w_max=0.6, dw_min=0.001).alpha == pytest.approx(0.001 / 0.6)


@pytest.mark.parametrize("bad", ["", 3, None, b"x"])
def test_hardware_name(bad: object) -> None:
    with pytest.raises(ValueError, match=r"hardware\.name"):
        HardwareConfig(name=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("sec", HardwareConfig.SECTIONS)
def test_hardware_section_types(sec: str) -> None:
    wrong = NoiseConfig() if sec != "noise" else DACConfig()
    with pytest.raises(ValueError, match=rf"hardware\.{sec} = .*allowed: a "):
        HardwareConfig(**{sec: wrong})
    with pytest.raises(ValueError, match=rf"hardware\.{sec}"):
        HardwareConfig(**{sec: {}})


@pytest.mark.parametrize("sec", HardwareConfig.SECTIONS)
def test_sections_are_frozen(sec: str) -> None:
    obj = getattr(HardwareConfig(), sec)
    first = dataclasses.fields(obj)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, first, getattr(obj, first))


def test_hardware_is_frozen_and_hashable() -> None:
    hw = HardwareConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        hw.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        hw.dac = DACConfig()  # type: ignore[misc]
    assert hash(hw) == hash(HardwareConfig())
    assert hw == HardwareConfig()


def test_replace_field_returns_validated_copy() -> None:
    hw = HardwareConfig()
    hw2 = replace_field(hw, "adc.bits", 6)
    assert hw2.adc.bits == 6 and hw.adc.bits == 8
    assert hw2.dac == hw.dac
    assert replace_field(hw, "name", "x").name == "x"
    assert replace_field(hw, "device.levels", None).device.levels is None
    with pytest.raises(ValueError, match="hardware.name"):
        replace_field(hw, "name", "")


@pytest.mark.parametrize(("dotted", "hint"), [
    ("adc", ""), ("adc.bits.x", " (did you mean 'adc.bits'?)"), ("foo.bits", ""), ("", ""),
    ("bits", " (did you mean 'dac.bits'?)"),
    ("nosie.read_noise", " (did you mean 'noise.read_noise'?)"),
])
def test_replace_field_unknown_path(dotted: str, hint: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(
            f"hardware field {dotted!r} is unknown{hint}; allowed: 'name' or ")):
        replace_field(HardwareConfig(), dotted, 1)


@pytest.mark.parametrize(("dotted", "hint"), [("adc.bitz", " (did you mean 'adc.bits'?)"),
                                              ("adc.", "")])
def test_replace_field_unknown_field_lists_fields(dotted: str, hint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"is unknown{hint}; fields of [adc]: bits, "
                                                   "out_bound")):
        replace_field(HardwareConfig(), dotted, 1)


def test_to_dict_omits_none() -> None:
    hw = replace_field(HardwareConfig(), "dac.bits", None)
    d = hw.to_dict()
    assert d["name"] == "custom"
    assert set(d) == {"name", *HardwareConfig.SECTIONS}
    assert "bits" not in d["dac"]
    assert "levels" not in d["device"]
    assert d["adc"]["bits"] == 8


def test_adc_energy_scaling() -> None:
    c = CostModel()
    assert c.adc_pj(8) == pytest.approx(c.adc_pj_8bit)
    assert c.adc_pj(None) == c.adc_pj(8)
    assert c.adc_pj(9) / c.adc_pj(8) == pytest.approx(2 ** c.adc_bits_exponent)
    assert c.adc_pj(4) < c.adc_pj(6) < c.adc_pj(10)
    assert CostModel(adc_bits_exponent=0.0).adc_pj(12) == pytest.approx(c.adc_pj_8bit)


def test_cost_model_accepts_zero_energies() -> None:
    zero = {f.name: 0.0 for f in dataclasses.fields(CostModel)
            if f.name != "digital_ops_per_ns"}
    CostModel(**zero)


# --------------------------------------------------------------------------- declarations


def test_numpy_scalars_are_accepted_and_stored_as_python_values() -> None:
    adc = ADCConfig(bits=np.int64(6), out_bound=np.float32(3.5), max_retries=np.int32(2),
                    manage_range=np.bool_(True))
    assert (adc.bits, adc.out_bound, adc.max_retries, adc.manage_range) == (6, 3.5, 2, True)
    assert type(adc.bits) is int and type(adc.out_bound) is float
    assert type(adc.max_retries) is int and type(adc.manage_range) is bool
    dev = DeviceConfig(w_max=np.float64(2.0), dw_min=np.float32(0.25), levels=np.int16(16))
    assert type(dev.w_max) is float and type(dev.dw_min) is float and type(dev.levels) is int
    hw = replace_field(HardwareConfig(), "adc.bits", np.int64(6))
    assert type(hw.adc.bits) is int
    json.dumps(hw.to_dict())  # NumPy values would not serialise


def test_integers_for_float_fields_are_stored_as_floats() -> None:
    assert type(ADCConfig(out_bound=12).out_bound) is float
    assert type(CostModel(t_read_ns=100).t_read_ns) is float
    assert ADCConfig(out_bound=12) == ADCConfig(out_bound=12.0)


def test_minus_inf_is_refused_even_where_inf_is_allowed() -> None:
    ADCConfig(bits=None, out_bound=INF)
    with pytest.raises(ValueError, match=r"^adc\.out_bound = -inf is invalid; allowed: a real "
                                         r"number in \[1e-30, .*\] or inf$"):
        ADCConfig(bits=None, out_bound=-INF)


def test_to_dict_is_unchanged_for_every_preset() -> None:
    # Checkpoints compare to_dict(): same keys, order, values and types as the asdict-based
    # implementation it replaced.
    from analogsim.hardware.presets import PRESETS
    for hw in (HardwareConfig(), *PRESETS.values()):
        old = {"name": hw.name}
        for sec in HardwareConfig.SECTIONS:
            old[sec] = {k: v for k, v in dataclasses.asdict(getattr(hw, sec)).items()
                        if v is not None}
        assert json.dumps(hw.to_dict()) == json.dumps(old)
        assert repr(hw.to_dict()) == repr(old)


def test_only_cross_field_rules_are_hand_written() -> None:
    # Each one still names field, value and what is allowed, in the one message form.
    for make, fragment in [
        (lambda: ADCConfig(bits=8, out_bound=INF), "adc.out_bound = inf is invalid; allowed: "
                                                  "a finite bound with adc.bits = 8"),
        (lambda: ADCConfig(range_mode="calibrated", out_bound=2.0),
         "adc.out_bound = 2.0 is invalid; allowed: a fraction in (0, 1]"),
        (lambda: DeviceConfig(w_max=0.5, dw_min=0.6), "device.dw_min = 0.6 is invalid"),
        (lambda: DeviceConfig(stuck_on=0.6, stuck_off=0.5),
         "device.stuck_on + stuck_off = 1.1 is invalid; allowed: a total fraction of at most 1"),
        (lambda: HardwareConfig(adc=DACConfig()), "hardware.adc = DACConfig("),
    ]:
        with pytest.raises(ValueError) as info:
            make()
        assert fragment in str(info.value)
