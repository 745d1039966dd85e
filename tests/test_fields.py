"""The declarative field machinery (analogsim.fields) on a small config of its own."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from analogsim.fields import (
    apply_overrides,
    check_fields,
    document_fields,
    dumps_toml,
    fail,
    field_rows,
    from_mapping,
    markdown_table,
    nearest,
    numpydoc_params,
    param,
    parse_literal,
    parse_override,
    to_mapping,
)


@dataclass(frozen=True)
class Inner:
    bits: int | None = param(8, doc="resolution", kind="int", lo=2, hi=24, optional=True)
    bound: float = param(12.0, doc="saturation level", unit="output units", lo=0.0, hi=1e12,
                         lo_open=True, allow_inf=True, source="ISAAC (2016)")
    mode: str = param("soft", doc="bounds", choices=("soft", "hard"))
    on: bool = param(False, doc="switch")

    def __post_init__(self) -> None:
        check_fields(self, "inner")
        if self.bound == float("inf") and self.bits is not None:
            fail("inner", "bound", self.bound, "inf only with bits = none")


@dataclass(frozen=True)
class Outer:
    name: str = param("custom", doc="a name")
    sizes: tuple[int, ...] = param((4, 3), doc="layer sizes", lo=1, hi=100, min_len=2)
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self) -> None:
        check_fields(self, "outer")


def test_validation_names_field_value_and_allowed():
    with pytest.raises(ValueError, match=r"^inner\.bits = 1 is invalid; allowed: an integer "
                                         r"in \[2, 24\] or none$"):
        Inner(bits=1)
    with pytest.raises(ValueError, match=r"inner\.bound = 0\.0 .*real number in \(0\.0, "):
        Inner(bound=0.0)
    with pytest.raises(ValueError, match=r"inner\.mode = 'x' .*one of 'soft', 'hard'"):
        Inner(mode="x")
    with pytest.raises(ValueError, match=r"inner\.on = 1 .*true or false"):
        Inner(on=1)
    with pytest.raises(ValueError, match=r"inner\.bits = True"):
        Inner(bits=True)
    with pytest.raises(ValueError, match=r"inner\.bound = nan"):
        Inner(bound=float("nan"))
    with pytest.raises(ValueError, match=r"inner\.bound = inf .*inf only with bits = none"):
        Inner(bound=float("inf"))
    with pytest.raises(ValueError, match=r"outer\.sizes = \(4,\) .*list of >= 2 integers"):
        Outer(sizes=(4,))


def test_numpy_scalars_are_accepted_and_stored_as_python_values():
    cfg = Inner(bits=np.int64(6), bound=np.float32(3.5), on=np.bool_(True))
    assert (cfg.bits, cfg.bound, cfg.on) == (6, 3.5, True)
    assert type(cfg.bits) is int and type(cfg.bound) is float and type(cfg.on) is bool
    assert Inner(bound=3).bound == 3.0 and type(Inner(bound=3).bound) is float
    assert Outer(sizes=[np.int32(5), 2]).sizes == (5, 2)


def test_mapping_round_trip_and_none_convention():
    cfg = Outer(name="x", sizes=(5, 7, 2), inner=Inner(bits=None, bound=float("inf")))
    data = to_mapping(cfg)
    assert data == {"name": "x", "sizes": [5, 7, 2],
                    "inner": {"bound": float("inf"), "mode": "soft", "on": False}}
    back = from_mapping(Outer, {"inner": {"bits": "None", "bound": float("inf")},
                                "name": "x", "sizes": [5, 7, 2]})
    assert back == cfg
    import tomllib
    assert from_mapping(Outer, tomllib.loads(dumps_toml(cfg))) == cfg


def test_unknown_keys_suggest_the_nearest_name():
    with pytest.raises(ValueError, match=r"f\.toml: key 'mdoe' is unknown \(did you mean "
                                         r"'mode'\?\); allowed: bits, bound, mode, on"):
        from_mapping(Outer, {"inner": {"mdoe": "hard"}}, where="f.toml")
    with pytest.raises(ValueError, match=r"key 'zzz' is unknown; allowed: name, sizes, inner"):
        from_mapping(Outer, {"zzz": 1})
    with pytest.raises(ValueError, match=r"inner = 3 is invalid; allowed: a table \[inner\]"):
        from_mapping(Outer, {"inner": 3})


def test_overrides_apply_together_and_name_the_override():
    cfg = Outer(inner=Inner(bits=None, bound=float("inf")))
    out = apply_overrides(cfg, ["inner.bits=8", "inner.bound=10", "sizes=[3, 3]"])
    assert (out.inner.bits, out.inner.bound, out.sizes) == (8, 10.0, (3, 3))
    assert apply_overrides(out, ["inner.bits=none"]).inner.bits is None
    assert apply_overrides(out, ["inner.mode=hard"]).inner.mode == "hard"  # bare word
    with pytest.raises(ValueError, match=r"^override 'inner\.bits=1': inner\.bits = 1 is "
                                         r"invalid"):
        apply_overrides(out, ["inner.bits=1"])
    with pytest.raises(ValueError, match=r"override 'inner\.bitz=6': key 'bitz' is unknown "
                                         r"\(did you mean 'bits'\?\)"):
        apply_overrides(out, ["inner.bitz=6"])
    with pytest.raises(ValueError, match=r"override 'x' is invalid; allowed: 'key=value'"):
        apply_overrides(out, ["x"])
    with pytest.raises(ValueError, match=r"is not a TOML literal"):
        apply_overrides(out, ["name=[1,"])
    assert parse_literal("inf") == float("inf") and parse_literal("soft") == "soft"
    assert parse_literal("nets/a.toml") == "nets/a.toml" and parse_literal("1.5") == 1.5


def test_docs_come_from_the_declarations():
    rows = {r["field"]: r for r in field_rows(Outer)}
    assert list(rows) == ["name", "sizes", "inner.bits", "inner.bound", "inner.mode", "inner.on"]
    assert rows["inner.bound"]["unit"] == "output units"
    assert rows["inner.bound"]["source"] == "ISAAC (2016)"
    assert rows["inner.bits"]["default"] == '8'
    table = markdown_table(Outer, sources=True)
    assert "| `inner.mode` | `\"soft\"` |  | one of 'soft', 'hard' | bounds |  |" in table


# --------------------------------------------------------------------------- extensions


def test_allow_inf_admits_plus_inf_only_and_says_so() -> None:
    assert Inner(bits=None, bound=float("inf")).bound == float("inf")
    with pytest.raises(ValueError, match=r"^inner\.bound = -inf is invalid; allowed: a real "
                                         r"number in \(0\.0, 1000000000000\.0\] or inf$"):
        Inner(bits=None, bound=float("-inf"))

    @dataclass(frozen=True)
    class Free:
        x: float = param(0.0, doc="unbounded below", hi=1.0, allow_inf=True)

        def __post_init__(self) -> None:
            check_fields(self, "free")

    assert Free(x=float("-inf")).x == float("-inf")  # no lower bound: -inf is in range


def test_nearest_and_override_form() -> None:
    assert nearest("bitz", ["bits", "bound"]) == "bits"
    assert nearest("zzz", ["bits", "bound"]) is None and nearest("", ["bits"]) is None
    with pytest.raises(ValueError, match=r"^override 'a\.b' is invalid; allowed: "
                                         r"'section\.field=value' with a TOML literal value, "
                                         r"e\.g\. 'adc\.bits=6'$"):
        parse_override("a.b", form="section.field=value")


def test_numpydoc_params_and_document_fields() -> None:
    text = numpydoc_params(Outer)
    assert text.startswith("Parameters\n----------\nname : str\n    A name. Allowed: a non-empty "
                           "string. Default: \"custom\".\n")
    assert "inner : Inner\n" in text
    inner = numpydoc_params(Inner)
    assert "bits : int or None\n    Resolution. Allowed: an integer in [2, 24] or none." in inner
    assert "Unit: output units." in inner and "Source: ISAAC (2016)." in inner
    assert "mode : {'soft', 'hard'}\n" in inner

    @document_fields
    @dataclass(frozen=True)
    class Doc:
        """Summary.

        Physics stays here.
        """

        k: int = param(3, doc="a count", lo=0, hi=9)

    assert Doc.__doc__ == ("Summary.\n\nPhysics stays here.\n\nParameters\n----------\n"
                           "k : int\n    A count. Allowed: an integer in [0, 9]. Default: 3.")


def test_deeply_nested_toml_is_a_clear_error() -> None:
    from analogsim.fields import loads_toml

    with pytest.raises(ValueError, match="deep.toml: malformed TOML: arrays or tables nested "
                                         "too deeply"):
        loads_toml("a = " + "[" * 3000 + "]" * 3000, source="deep.toml")


def test_toml_files_are_read_only_when_regular_and_small(tmp_path) -> None:
    import os

    from analogsim.fields import read_text_file
    from analogsim.hardware.toml_io import load_hardware

    fifo = tmp_path / "hw.toml"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="hardware file .* is not a regular file"):
        load_hardware(fifo)  # would block if it were opened
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * 100)
    with pytest.raises(ValueError, match="has 102 bytes; allowed: a TOML file of at most 10"):
        read_text_file(big, "spec", max_bytes=10)
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"a = '\xff'")
    with pytest.raises(ValueError, match="bad.toml': not UTF-8 text"):
        read_text_file(bad, "spec")
