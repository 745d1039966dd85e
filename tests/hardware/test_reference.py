"""docs/hardware.md's field tables are generated from the declarations, and every field is
declared completely (doc, unit, source) — so a new field cannot go undocumented."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from analogsim.fields import (
    dumps_toml,
    from_mapping,
    markdown_table,
    numpydoc_params,
    param,
    spec_of,
)
from analogsim.hardware.config import ADCConfig, CostModel, HardwareConfig
from analogsim.hardware.reference import (
    BEGIN,
    END,
    hardware_reference_md,
    main,
    splice,
    update_docs,
)
from analogsim.hardware.toml_io import apply_overrides

REGEN = "regenerate with `python -m analogsim.hardware.reference`"
#: The checkout's page (beside tests/, also when the suite runs against an installed wheel).
DOCS = Path(__file__).resolve().parents[2] / "docs" / "hardware.md"
SECTION_CLASSES = {sec: type(getattr(HardwareConfig(), sec)) for sec in HardwareConfig.SECTIONS}


def test_docs_hardware_md_is_generated_from_the_declarations() -> None:
    committed = DOCS.read_text(encoding="utf-8")
    assert committed.count(BEGIN) == 1 and committed.count(END) == 1
    assert splice(committed, hardware_reference_md()) == committed, (
        f"docs/hardware.md's field tables are out of date; {REGEN}")


def test_generated_block_lists_every_field_once() -> None:
    text = hardware_reference_md()
    for sec, cls in SECTION_CLASSES.items():
        assert f"### `[{sec}]` (`{cls.__name__}`)" in text
        for f in dataclasses.fields(cls):
            assert text.count(f"| `{sec}.{f.name}` |") == 1, (sec, f.name)
    assert "| source |" in text  # the cost table carries its sources


# --------------------------------------------------------------------------- completeness


def _declared(cls: type) -> list[tuple[str, object]]:
    return [(f.name, spec_of(f)) for f in dataclasses.fields(cls)]


@pytest.mark.parametrize("sec", HardwareConfig.SECTIONS)
def test_every_field_is_declared_with_a_doc_and_units(sec: str) -> None:
    for name, spec in _declared(SECTION_CLASSES[sec]):
        where = f"{sec}.{name}"
        assert spec is not None, f"{where} is not declared with param(...)"
        assert spec.doc.strip() and "\n" not in spec.doc, f"{where} needs a one-line doc"
        if spec.kind == "float":  # every real number here is a physical quantity
            assert spec.unit.strip(), f"{where} needs a unit (or 'dimensionless')"
        if spec.kind == "str":
            assert spec.choices, f"{where}: a string field is a choice among named options"


def test_every_cost_coefficient_has_a_source() -> None:
    for name, spec in _declared(CostModel):
        assert spec.source.strip(), f"cost.{name} needs source= (paper, simulator or 'choice')"


def test_hardware_name_is_declared() -> None:
    spec = spec_of(dataclasses.fields(HardwareConfig)[0])
    assert spec is not None and spec.doc and spec.kind == "str"


def test_docstrings_carry_the_generated_parameters() -> None:
    # help() and numpydoc readers see a Parameters section that nobody writes by hand.
    for cls in (*SECTION_CLASSES.values(), HardwareConfig):
        doc = cls.__doc__ or ""
        assert doc.count("Parameters\n----------\n") == 1, cls.__name__
        assert doc.rstrip().endswith(numpydoc_params(cls)), cls.__name__
        for f in dataclasses.fields(cls):
            assert re.search(rf"^{f.name} : ", doc, re.M), (cls.__name__, f.name)


# --------------------------------------------------------------------------- the generator


def test_splice_and_update_docs(tmp_path: Path) -> None:
    page = tmp_path / "hw.md"
    page.write_text(f"# T\n\n{BEGIN}\nold\n{END}\n\nafter\n", encoding="utf-8")
    assert update_docs(page, check=True) is False
    assert "old" in page.read_text(encoding="utf-8")  # --check never writes
    assert main(["--check", str(page)]) == 1
    assert update_docs(page) is False
    text = page.read_text(encoding="utf-8")
    assert text.startswith(f"# T\n\n{BEGIN}\n<!-- Generated") and text.endswith(f"{END}\n\nafter\n")
    assert "old" not in text and update_docs(page) is True
    assert main(["--check", str(page)]) == 0
    assert main(["a.md", "b.md"]) == 2
    with pytest.raises(ValueError, match="marker lines"):
        splice("no markers here\n", "x")


# --------------------------------------------------------------------------- the docs example


def _example_line() -> str:
    """The one ``param(...)`` line of docs/hardware.md's "Adding a configuration field"."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.partition("## Adding a configuration field")[2].partition("\n## ")[0]
    lines = re.findall(r"^    \w+: \w+ = param\(.*\)$", section, re.M)
    assert len(lines) == 1, "the worked example must show exactly one param(...) line"
    return lines[0]


def _extended_adc() -> type:
    """ADCConfig plus the docs' example field (a test-only subclass, no real config changes)."""
    namespace: dict = {}
    source = "@dataclass(frozen=True)\nclass ADCWithOffset(ADCConfig):\n" + _example_line()
    exec(source, {"dataclass": dataclass, "param": param, "ADCConfig": ADCConfig}, namespace)
    return namespace["ADCWithOffset"]


def test_the_documented_example_field_works_end_to_end() -> None:
    cls = _extended_adc()
    # Validation, with the message the docs quote, and NumPy scalars stored as floats.
    with pytest.raises(ValueError, match=re.escape(
            "adc.offset_std = -1.0 is invalid; allowed: a real number in [0.0, 10.0]")):
        cls(offset_std=-1.0)
    assert type(cls(offset_std=np.float32(0.5)).offset_std) is float
    hw = dataclasses.replace(HardwareConfig(), adc=cls())
    # Overrides, including the nearest-name hint.
    assert apply_overrides(hw, ["adc.offset_std=0.02"]).adc.offset_std == 0.02
    with pytest.raises(ValueError, match=r"did you mean 'adc\.offset_std'\?"):
        apply_overrides(hw, ["adc.offset_sdt=0.02"])
    # TOML: dumped, loaded (an integer read as a float), misspellings refused.
    text = dumps_toml(apply_overrides(hw, ["adc.offset_std=0.02"]))
    assert "offset_std = 0.02" in text
    back = from_mapping(HardwareConfig, tomllib.loads(text), base=hw)
    assert back.adc.offset_std == 0.02
    assert from_mapping(HardwareConfig, {"adc": {"offset_std": 2}}, base=hw).adc.offset_std == 2.0
    with pytest.raises(ValueError, match=r"did you mean 'offset_std'\?"):
        from_mapping(HardwareConfig, {"adc": {"offset_sdt": 1.0}}, base=hw)
    # Docs: the generated table and docstring section gain the row.
    assert "| `adc.offset_std` | `0.0` | output units | a real number in [0.0, 10.0] |" in \
        markdown_table(cls, "adc.")
    assert "offset_std : float" in numpydoc_params(cls)
