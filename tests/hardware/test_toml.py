"""TOML mapping: round trips, the preset files, errors and overrides."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path

import pytest

from analogsim.data import HARDWARE_DIR
from analogsim.hardware.config import HardwareConfig, replace_field
from analogsim.hardware.presets import PRESETS, get_preset
from analogsim.hardware.toml_io import (
    NONE,
    apply_overrides,
    dumps_hardware,
    load_hardware,
    loads_hardware,
    preset_comment,
    save_hardware,
    write_preset_files,
)

#: The preset copies inside the package (a checkout's models/hardware links there).
MODELS = HARDWARE_DIR
REGEN = "regenerate with `python -m analogsim.hardware.toml_io analogsim/data/models/hardware`"


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", list(PRESETS))
def test_round_trip_every_preset(name: str) -> None:
    hw = PRESETS[name]
    text = dumps_hardware(hw)
    back = load_hardware(text)
    assert back == hw
    assert repr(back) == repr(hw)  # same types too (float stays float, None stays None)
    assert dumps_hardware(back) == text


def test_round_trip_default_and_odd_values(tmp_path: Path) -> None:
    odd = HardwareConfig(name='quote " back\\slash\nnewline ünï')
    odd = replace_field(odd, "device.w_max", 1e-3)
    odd = replace_field(odd, "device.dw_min", 1.25e-7)
    odd = replace_field(odd, "device.levels", 1 << 20)
    odd = replace_field(odd, "cost.adc_pj_8bit", 1e9)
    odd = replace_field(odd, "cost.adc_bits_exponent", 0.0)
    odd = replace_field(odd, "device.up_down", -0.999999)
    for hw in (HardwareConfig(), odd):
        assert load_hardware(dumps_hardware(hw)) == hw
        p = tmp_path / "hw.toml"
        save_hardware(hw, p, comment="line one\nline two")
        assert load_hardware(p) == hw
        assert load_hardware(str(p)) == hw


@pytest.mark.parametrize(("scaling", "model"), [("maxabs_tile", "pcm"), ("fixed", "pcm"),
                                              ("maxabs", "additive")])
def test_round_trip_read_path_options(scaling: str, model: str, tmp_path: Path) -> None:
    hw = replace_field(HardwareConfig(), "dac.scaling", scaling)
    hw = replace_field(hw, "noise.read_noise_model", model)
    text = dumps_hardware(hw)
    assert f'scaling = "{scaling}"' in text and f'read_noise_model = "{model}"' in text
    assert load_hardware(text) == hw
    p = tmp_path / "hw.toml"
    save_hardware(hw, p)
    assert load_hardware(p) == hw


def test_read_path_options_from_toml_and_overrides() -> None:
    hw = load_hardware('base = "rram"\n[dac]\nscaling = "maxabs_tile"\n'
                       '[noise]\nread_noise_model = "pcm"\n')
    assert hw.dac.scaling == "maxabs_tile" and hw.noise.read_noise_model == "pcm"
    assert hw.noise.read_noise == get_preset("rram").noise.read_noise
    # A file without the new keys keeps the defaults (files written before they existed).
    old = load_hardware('[noise]\nread_noise = 0.01\n')
    assert old.noise.read_noise_model == "additive" and old.dac.scaling == "maxabs"
    hw = apply_overrides(get_preset("aihwkit_default"),
                         ["dac.scaling=maxabs", "noise.read_noise_model=pcm"])
    assert hw.dac.scaling == "maxabs" and hw.noise.read_noise_model == "pcm"
    with pytest.raises(ValueError, match=r"noise\.read_noise_model = 'PCM' is invalid"):
        apply_overrides(hw, ["noise.read_noise_model=PCM"])
    with pytest.raises(ValueError, match=r"x\.toml: dac\.scaling = 'per_tile' is invalid"):
        loads_hardware('[dac]\nscaling = "per_tile"\n', source="x.toml")


def test_none_convention() -> None:
    hw = get_preset("ideal")
    text = dumps_hardware(hw)
    data = tomllib.loads(text)
    assert data["dac"]["bits"] == NONE == "none"
    assert data["adc"]["bits"] == NONE
    assert data["device"]["levels"] == NONE
    assert data["adc"]["out_bound"] == math.inf
    assert "out_bound = inf" in text


def test_dump_writes_every_field_in_order() -> None:
    text = dumps_hardware(get_preset("pcm"))
    data = tomllib.loads(text)
    assert list(data) == ["name", *HardwareConfig.SECTIONS]
    for sec in HardwareConfig.SECTIONS:
        assert list(data[sec]) == [f.name for f in
                                   dataclasses.fields(getattr(get_preset("pcm"), sec))]


def test_floats_are_written_as_floats() -> None:
    data = tomllib.loads(dumps_hardware(get_preset("pcm")))
    assert isinstance(data["device"]["w_max"], float)
    assert isinstance(data["cost"]["t_read_ns"], float)
    assert isinstance(data["tile"]["rows"], int)


def test_dumps_rejects_non_config() -> None:
    with pytest.raises(TypeError):
        dumps_hardware({"name": "x"})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- preset files


@pytest.mark.parametrize("name", list(PRESETS))
def test_model_files_equal_presets(name: str) -> None:
    path = MODELS / f"{name}.toml"
    assert path.is_file(), f"{path} is missing; {REGEN}"
    assert load_hardware(path) == PRESETS[name], f"{path} drifted; {REGEN}"
    expected = dumps_hardware(PRESETS[name], comment=preset_comment(name))
    assert path.read_text(encoding="utf-8") == expected, f"{path} drifted; {REGEN}"


def test_no_stray_model_files() -> None:
    assert {p.stem for p in MODELS.glob("*.toml")} == set(PRESETS)


def test_write_preset_files(tmp_path: Path) -> None:
    paths = write_preset_files(tmp_path / "out")
    assert {p.stem for p in paths} == set(PRESETS)
    for p in paths:
        assert load_hardware(p) == PRESETS[p.stem]


# --------------------------------------------------------------------------- base


def test_base_then_override() -> None:
    hw = load_hardware('base = "pcm"\n[adc]\nbits = 6\n[device]\nlevels = 16\n')
    pcm = get_preset("pcm")
    assert hw.adc.bits == 6 and hw.device.levels == 16
    assert hw.adc.out_bound == pcm.adc.out_bound
    assert hw.noise == pcm.noise and hw.update == pcm.update
    assert hw.name == "pcm"
    named = load_hardware('name = "pcm6"\nbase = "pcm"\n[adc]\nbits = 6\n')
    assert named.name == "pcm6"


def test_base_alone_is_the_preset() -> None:
    for name, hw in PRESETS.items():
        assert load_hardware(f'base = "{name}"') == hw


def test_override_to_none_and_int_for_float() -> None:
    hw = load_hardware('base = "rram"\n[device]\nlevels = "none"\nw_max = 2\ndw_min = 1\n'
                       '[adc]\nout_bound = 12\n')
    assert hw.device.levels is None
    assert hw.device.w_max == 2.0 and isinstance(hw.device.w_max, float)
    assert isinstance(hw.device.dw_min, float) and isinstance(hw.adc.out_bound, float)


def test_without_base_defaults_apply() -> None:
    hw = load_hardware('[dac]\nbits = 4\n')
    assert hw == replace_field(HardwareConfig(), "dac.bits", 4)
    assert load_hardware("") == HardwareConfig()


def test_unknown_base_lists_presets() -> None:
    with pytest.raises(ValueError) as info:
        load_hardware('base = "flash"\n')
    msg = str(info.value)
    assert "'flash'" in msg and "<string>" in msg
    for name in PRESETS:
        assert name in msg
    with pytest.raises(ValueError, match="base = 3"):
        load_hardware("base = 3\n")


# --------------------------------------------------------------------------- errors


def test_unknown_top_level_key() -> None:
    with pytest.raises(ValueError) as info:
        load_hardware('nmae = "x"\n')
    msg = str(info.value)
    assert "'nmae'" in msg and "allowed" in msg
    for key in ("name", "base", *HardwareConfig.SECTIONS):
        assert key in msg


def test_unknown_section() -> None:
    with pytest.raises(ValueError, match=r"'converter' is unknown; allowed: name, base, dac"):
        load_hardware("[converter]\nbits = 8\n")


def test_unknown_key_in_section_names_section_and_fields() -> None:
    with pytest.raises(ValueError) as info:
        load_hardware("[adc]\nbitz = 8\n")
    msg = str(info.value)
    assert "'bitz'" in msg and "[adc]" in msg
    for f in ("bits", "out_bound", "range_mode", "manage_range", "max_retries"):
        assert f in msg


def test_section_must_be_a_table() -> None:
    with pytest.raises(ValueError, match=r"adc = 8 is invalid; allowed: a table \[adc\]"):
        load_hardware("adc = 8\n")


@pytest.mark.parametrize("body, field, value", [
    ("[adc]\nbits = 8.0\n", "adc.bits", "8.0"),
    ("[adc]\nbits = true\n", "adc.bits", "True"),
    ('[adc]\nbits = "8"\n', "adc.bits", "'8'"),
    ("[adc]\nbits = 99\n", "adc.bits", "99"),
    ("[dac]\ninput_range = -1.0\n", "dac.input_range", "-1.0"),
    ("[dac]\ninput_range = nan\n", "dac.input_range", "nan"),
    ('[device]\nbounds = "none"\n', "device.bounds", "'none'"),
    ('[device]\nbounds = "squishy"\n', "device.bounds", "'squishy'"),
    ("[device]\nw_max = inf\n", "device.w_max", "inf"),
    ("[noise]\nread_noise = -0.1\n", "noise.read_noise", "-0.1"),
    ('[update]\nmode = "sgd"\n', "update.mode", "'sgd'"),
    ("[update]\nbl = 1000\n", "update.bl", "1000"),
    ("[tile]\nrows = [256]\n", "tile.rows", "[256]"),
    ('[periphery]\nbidirectional = "yes"\n', "periphery.bidirectional", "'yes'"),
    ("[periphery]\nbidirectional = 1\n", "periphery.bidirectional", "1"),
    ("[cost]\nt_read_ns = -1\n", "cost.t_read_ns", "-1.0"),
    ('[adc]\nbits = 8\nout_bound = inf\n', "adc.out_bound", "inf"),
    ("name = 3\n", "hardware.name", "3"),
    ('name = ""\n', "hardware.name", "''"),
])
def test_bad_types_give_the_dataclass_error(body: str, field: str, value: str) -> None:
    with pytest.raises(ValueError) as info:
        load_hardware(body)
    msg = str(info.value)
    assert f"{field} = {value}" in msg
    assert "allowed" in msg
    assert msg.startswith("<string>: ")


def test_bad_value_in_file_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text('base = "pcm"\n[adc]\nbits = 0\n', encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{p.name}: adc\.bits = 0 is invalid"):
        load_hardware(p)


@pytest.mark.parametrize("text", ["[adc\nbits = 8\n", "name = \n", "[dac]\nbits = 8\nbits = 7\n",
                                  "x = 'unterminated\n"])
def test_malformed_toml(text: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="<string>: malformed TOML: "):
        load_hardware(text)
    p = tmp_path / "broken.toml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as info:
        load_hardware(p)
    msg = str(info.value)
    assert msg.startswith(f"{p}: malformed TOML: ")


def test_missing_file() -> None:
    with pytest.raises(FileNotFoundError, match="no_such.toml"):
        load_hardware("no_such.toml")
    with pytest.raises(FileNotFoundError):
        load_hardware(Path("/nonexistent/dir/x.toml"))


def test_load_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        load_hardware(3)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- overrides


def test_apply_overrides_literals() -> None:
    hw = apply_overrides(get_preset("pcm"), [
        "adc.bits=6", "noise.read_noise=0.02", "device.bounds=\"hard\"",
        "adc.manage_range=true", "periphery.bidirectional = false", "update.mode=stochastic",
        "device.w_max=2", "name=pcm-variant",
    ])
    assert hw.adc.bits == 6 and hw.noise.read_noise == 0.02
    assert hw.device.bounds == "hard" and hw.adc.manage_range is True
    assert hw.update.mode == "stochastic" and hw.name == "pcm-variant"
    assert hw.device.w_max == 2.0 and isinstance(hw.device.w_max, float)
    assert hw.noise.prog_noise == get_preset("pcm").noise.prog_noise


def test_apply_overrides_none_and_inf() -> None:
    hw = apply_overrides(get_preset("pcm"), ["adc.bits=none", "adc.out_bound=inf",
                                             'device.levels="none"'])
    assert hw.adc.bits is None and hw.adc.out_bound == math.inf and hw.device.levels is None


def test_apply_overrides_same_section_applied_together() -> None:
    hw = apply_overrides(get_preset("ideal"), ["adc.out_bound=10", "adc.bits=8"])
    assert (hw.adc.bits, hw.adc.out_bound) == (8, 10.0)
    with pytest.raises(ValueError, match=r"override 'adc\.bits=8': adc\.out_bound = inf"):
        apply_overrides(get_preset("ideal"), ["adc.bits=8"])


def test_apply_overrides_later_wins_and_empty_is_identity() -> None:
    hw = apply_overrides(get_preset("pcm"), ["adc.bits=6", "adc.bits=7"])
    assert hw.adc.bits == 7
    assert apply_overrides(get_preset("pcm"), []) is get_preset("pcm")


@pytest.mark.parametrize("item, fragment", [
    ("adc.bits", "'adc.bits' is invalid; allowed: 'section.field=value'"),
    ("adc.bitz=6", "field 'adc.bitz' is unknown (did you mean 'adc.bits'?); fields of [adc]: "
                   "bits"),
    ("adc=6", "field 'adc' is unknown; allowed: 'name'"),
    ("converter.bits=6", "field 'converter.bits' is unknown"),
    ("adc.bits=6.5", "adc.bits = 6.5 is invalid"),
    ("adc.bits=0", "adc.bits = 0 is invalid"),
    ("device.bounds=squishy", "device.bounds = 'squishy' is invalid"),
    ("adc.bits=[6", "is not a TOML literal"),
    ("noise.read_noise=0.1 0.2", "is not a TOML literal"),
    ("noise.read_noise=", "is not a TOML literal"),
])
def test_apply_overrides_errors_name_the_override(item: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        apply_overrides(get_preset("pcm"), [item])
    msg = str(info.value)
    assert repr(item) in msg
    assert fragment in msg


def test_apply_overrides_rejects_a_single_string() -> None:
    with pytest.raises(TypeError):
        apply_overrides(get_preset("pcm"), "adc.bits=6")  # type: ignore[arg-type]


def test_loads_names_source() -> None:
    with pytest.raises(ValueError, match="^mine.toml: "):
        loads_hardware("[adc]\nbits = 0\n", source="mine.toml")


# --------------------------------------------------------------------------- none, hints


@pytest.mark.parametrize("spelling", ["none", "None", "NONE"])
def test_none_in_any_case_for_optional_fields(spelling: str) -> None:
    rram = get_preset("rram")
    assert rram.device.levels == 32 and rram.adc.bits == 8
    for item in (f'device.levels="{spelling}"', f"device.levels={spelling}"):
        assert apply_overrides(rram, [item]).device.levels is None, item
    hw = load_hardware(f'base = "rram"\n[device]\nlevels = "{spelling}"\n'
                       f'[adc]\nbits = "{spelling}"\nout_bound = inf\n')
    assert hw.device.levels is None and hw.adc.bits is None
    # Only optional fields: elsewhere the word is an ordinary (here invalid) string.
    with pytest.raises(ValueError, match=rf"device\.bounds = '{spelling}' is invalid"):
        apply_overrides(rram, [f"device.bounds={spelling}"])
    assert apply_overrides(rram, [f"name={spelling}"]).name == spelling


def test_unknown_names_suggest_the_nearest_one() -> None:
    with pytest.raises(ValueError, match=r"^<string>: \[adc\] key 'bitz' is unknown \(did you "
                                         r"mean 'bits'\?\); allowed: bits, out_bound, "):
        load_hardware("[adc]\nbitz = 8\n")
    with pytest.raises(ValueError, match=r"^<string>: top-level key 'nmae' is unknown \(did "
                                         r"you mean 'name'\?\); allowed: name, base, dac"):
        load_hardware('nmae = "x"\n')
    with pytest.raises(ValueError, match=r"^<string>: top-level key 'devise' is unknown \(did "
                                         r"you mean 'device'\?\)"):
        load_hardware("[devise]\nlevels = 8\n")
    with pytest.raises(ValueError, match=r"^<string>: base preset 'pmc' is unknown \(did you "
                                         r"mean 'pcm'\?\); allowed: ideal, "):
        load_hardware('base = "pmc"\n')
    with pytest.raises(ValueError, match=r"^override 'noise\.read_nosie=0\.1': field "
                                         r"'noise\.read_nosie' is unknown \(did you mean "
                                         r"'noise\.read_noise'\?\); fields of \[noise\]: "):
        apply_overrides(get_preset("pcm"), ["noise.read_nosie=0.1"])
    with pytest.raises(ValueError, match=r"field 'nosie\.read_noise' is unknown \(did you mean "
                                         r"'noise\.read_noise'\?\); allowed: 'name' or "):
        apply_overrides(get_preset("pcm"), ["nosie.read_noise=0.1"])


def test_override_error_names_only_the_failing_section() -> None:
    with pytest.raises(ValueError) as info:
        apply_overrides(get_preset("pcm"), ["adc.bits=6", "noise.read_noise=-1",
                                            "noise.out_noise=0.1"])
    msg = str(info.value)
    assert msg.startswith("overrides ['noise.read_noise=-1', 'noise.out_noise=0.1']: "
                          "noise.read_noise = -1.0 is invalid")


def test_generated_files_round_trip_through_the_old_layout() -> None:
    # Every committed preset file is a plain table per section in declaration order.
    for name in PRESETS:
        data = tomllib.loads((MODELS / f"{name}.toml").read_text(encoding="utf-8"))
        assert data["name"] == name
        assert loads_hardware(dumps_hardware(load_hardware(MODELS / f"{name}.toml"))) == \
            PRESETS[name]
