"""Presets: valid, documented, and carrying the numbers their sources give."""

from __future__ import annotations

import dataclasses
import math

import pytest

from analogsim.hardware import presets as P
from analogsim.hardware.config import CostModel, HardwareConfig
from analogsim.hardware.presets import PRESET_NOTES, PRESETS, get_preset, list_presets

REQUIRED = ("ideal", "aihwkit_default", "rram", "pcm", "ecram", "ecram_aihwkit",
            "reram_sb_aihwkit")
REALISTIC = ("rram", "pcm", "ecram")
#: aihwkit device presets on aihwkit's default tile (docs/hardware.md, "aihwkit device presets").
AIHWKIT_DEVICES = ("ecram_aihwkit", "reram_sb_aihwkit")


def test_required_presets_exist() -> None:
    for name in REQUIRED:
        assert name in PRESETS


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_is_a_valid_instance(name: str) -> None:
    hw = PRESETS[name]
    assert type(hw) is HardwareConfig  # an instance, not a subclass
    assert hw.name == name
    # Rebuilding from its own fields re-runs every validator.
    rebuilt = HardwareConfig(name=hw.name, **{s: dataclasses.replace(getattr(hw, s))
                                              for s in HardwareConfig.SECTIONS})
    assert rebuilt == hw


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_is_documented(name: str) -> None:
    note = PRESET_NOTES[name]
    assert len(note) > 40
    assert "ource" in note  # "Source:"/"Sources:"
    assert "\n" not in note


def test_notes_and_presets_match() -> None:
    assert set(PRESET_NOTES) == set(PRESETS)
    assert list_presets() == [(n, PRESET_NOTES[n]) for n in PRESETS]
    assert all(isinstance(n, str) and isinstance(d, str) for n, d in list_presets())


def test_get_preset_returns_the_instance() -> None:
    for name, hw in PRESETS.items():
        assert get_preset(name) is hw


@pytest.mark.parametrize("bad", ["PCM", "nope", "", None, 3])
def test_unknown_preset_lists_allowed(bad: object) -> None:
    with pytest.raises(ValueError) as info:
        get_preset(bad)  # type: ignore[arg-type]
    msg = str(info.value)
    assert repr(bad) in msg
    for name in PRESETS:
        assert name in msg


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_use_the_default_cost_model(name: str) -> None:
    assert PRESETS[name].cost == CostModel()


def test_presets_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        P.PCM.name = "x"  # type: ignore[misc]


def test_ideal_is_ideal() -> None:
    hw = get_preset("ideal")
    assert hw.dac.bits is None and hw.adc.bits is None
    assert hw.adc.out_bound == math.inf and not hw.adc.manage_range
    assert hw.dac.scaling == "maxabs"  # a fixed-range DAC would clip
    assert (hw.noise.read_noise, hw.noise.out_noise, hw.noise.prog_noise) == (0, 0, 0)
    d = hw.device
    assert d.levels is None and d.bounds == "hard" and d.up_down == 0
    assert d.ctoc == d.dtod == d.drift_nu == d.drift_nu_std == 0
    assert d.stuck_on == d.stuck_off == 0
    assert d.w_max >= 10 and d.alpha <= 1e-4
    assert hw.update.mode == "expected"
    assert hw.periphery.bidirectional


def test_aihwkit_default_mirrors_aihwkit() -> None:
    hw = get_preset("aihwkit_default")
    # inp_res 1/(2^7-2) of the range 2·inp_bound: step 1/63 = our 7-bit signed DAC.
    assert hw.dac.bits == 7 and 1 / (2 ** (hw.dac.bits - 1) - 1) == pytest.approx(2 / 126)
    # out_res 1/(2^9-2) of 2·out_bound: step 24/510 = our 9-bit ADC at bound 12.
    assert hw.adc.bits == 9
    assert hw.adc.out_bound / (2 ** (hw.adc.bits - 1) - 1) == pytest.approx(24 / 510)
    assert hw.adc.out_bound == 12.0 and hw.noise.out_noise == 0.06
    assert hw.noise.read_noise == 0.0
    assert hw.adc.manage_range and hw.adc.max_retries == 4
    # ABS_MAX noise management, run by every analog tile on its own slice of the input.
    assert hw.dac.scaling == "maxabs_tile"
    assert hw.noise.read_noise_model == "additive"  # w_noise = 0 anyway
    d = hw.device
    assert (d.dw_min, d.w_max, d.ctoc, d.dtod, d.up_down, d.bounds) == (
        0.001, 0.6, 0.3, 0.3, 0.0, "hard")
    assert hw.update == dataclasses.replace(hw.update, mode="stochastic", bl=31,
                                            update_management=True)
    assert (hw.tile.rows, hw.tile.cols) == (512, 512)


@pytest.mark.parametrize("name", REALISTIC)
def test_realistic_presets_have_realistic_periphery(name: str) -> None:
    hw = get_preset(name)
    assert hw.dac.bits == 8 and hw.adc.bits == 8
    assert math.isfinite(hw.adc.out_bound)
    assert (hw.tile.rows, hw.tile.cols) == (256, 256)
    assert hw.noise.out_noise > 0 and hw.noise.read_noise > 0 and hw.noise.prog_noise > 0
    assert hw.device.w_max == 1.0  # literature values are quoted for w in [-1, 1]
    assert hw.device.ctoc > 0 and hw.device.dtod > 0


def test_rram_character() -> None:
    d = get_preset("rram").device
    assert d.bounds == "soft" and abs(d.up_down) >= 0.2 and d.ctoc >= 0.3
    assert 32 <= d.levels <= 64
    assert d.drift_nu == 0 and d.stuck_on + d.stuck_off > 0


def test_pcm_character() -> None:
    hw = get_preset("pcm")
    d = hw.device
    assert d.drift_nu == pytest.approx(0.05) and d.drift_nu_std > 0
    assert d.drift_t0 == 20.0
    assert d.up_down != 0 and d.alpha >= 0.01  # asymmetric, coarse
    assert 0 < d.stuck_on + d.stuck_off < 0.01
    assert hw.noise.prog_noise > hw.noise.read_noise
    # StandardHWATrainingPreset: w_noise 0.0175 with w_noise_type PCM_READ, weights in
    # [-1, 1]: aihwkit's w_noise = read_noise · sqrt(w_max) = read_noise here.
    assert hw.noise.read_noise_model == "pcm" and hw.noise.read_noise == 0.0175
    assert d.w_max == 1.0


@pytest.mark.parametrize("name", [n for n in PRESETS
                                  if n not in ("aihwkit_default", "pcm", *AIHWKIT_DEVICES)])
def test_other_presets_keep_the_original_read_path(name: str) -> None:
    hw = get_preset(name)
    assert hw.dac.scaling == "maxabs"
    assert hw.noise.read_noise_model == "additive"


def test_ecram_character() -> None:
    hw = get_preset("ecram")
    d = hw.device
    assert d.up_down == 0 and d.levels >= 1000 and d.alpha <= 0.002
    assert d.drift_nu == 0
    assert hw.noise.read_noise <= 0.005 and hw.noise.prog_noise <= 0.005


def test_device_steps_are_ordered_by_technology() -> None:
    a = {n: get_preset(n).device.alpha for n in REALISTIC}
    assert a["ecram"] < a["pcm"] < a["rram"]


@pytest.mark.parametrize("name", list(PRESETS))
def test_pulse_trains_can_move_a_weight(name: str) -> None:
    # One sample's maximal update (bl pulses) must be representable on the device range.
    hw = get_preset(name)
    assert hw.update.bl * hw.device.dw_min <= 64 * hw.device.w_max
    # float32 conductances: a per-device step must be far above the ulp (2^-24) at
    # G = 0.5, so rounding changes it by well under 1 %.
    assert hw.device.alpha / 2 > 50 * 2.0 ** -24


def test_module_docstring_states_conventions() -> None:
    doc = P.__doc__ or ""
    assert "choice" in doc and "out_bound" in doc


@pytest.mark.parametrize("name", AIHWKIT_DEVICES)
def test_aihwkit_device_presets_sit_on_aihwkit_default_tile(name: str) -> None:
    hw, base = get_preset(name), get_preset("aihwkit_default")
    for sec in HardwareConfig.SECTIONS:
        if sec != "device":
            assert getattr(hw, sec) == getattr(base, sec), sec
    d = hw.device
    # aihwkit ranges of width 2 (w_max - w_min), recentred; symmetry point calibrated.
    assert d.w_max == 1.0 and d.up_down == 0.0 and d.up_down_dtod == 0.01
    assert d.dw_min == 0.002 and d.levels is None
    assert d.drift_nu == d.stuck_on == d.stuck_off == 0.0


def test_aihwkit_device_preset_numbers() -> None:
    """EcRamPresetDevice / ReRamSBPresetDevice (aihwkit presets/devices.py)."""
    e = get_preset("ecram_aihwkit").device
    assert (e.bounds, e.ctoc, e.dtod) == ("hard", 0.3, 0.1)
    r = get_preset("reram_sb_aihwkit").device
    assert (r.bounds, r.ctoc, r.dtod) == ("soft", 3.75, 0.3)


@pytest.mark.parametrize("name", [n for n in PRESETS if n not in AIHWKIT_DEVICES])
def test_older_presets_have_no_asymmetry_spread(name: str) -> None:
    # up_down_dtod = 0 draws nothing: these presets give the results they gave before.
    assert get_preset(name).device.up_down_dtod == 0.0
