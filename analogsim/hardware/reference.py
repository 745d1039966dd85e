"""Generate the field reference of docs/hardware.md from the declarations in config.py.

The tables between the marker comments :data:`BEGIN` and :data:`END` of docs/hardware.md
are produced by :func:`hardware_reference_md` from each field's :func:`analogsim.fields.
param` declaration (default, unit, allowed values, doc, source), so they cannot drift from
the code: ``tests/hardware/test_reference.py`` fails when the committed file differs.
Regenerate with::

    python -m analogsim.hardware.reference            # rewrites docs/hardware.md
    python -m analogsim.hardware.reference --check    # exit 1 if it is out of date
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

from ..fields import field_rows, markdown_table, specs
from .config import HardwareConfig

__all__ = ["BEGIN", "END", "DOCS", "hardware_reference_md", "splice", "update_docs"]

BEGIN = "<!-- BEGIN GENERATED: hardware fields -->"
END = "<!-- END GENERATED: hardware fields -->"

#: docs/hardware.md of a source checkout (the package lives in ``<repo>/analogsim``).
DOCS = Path(__file__).resolve().parents[2] / "docs" / "hardware.md"

_NOTE = ("<!-- Generated from the declarations in analogsim/hardware/config.py by "
         "`python -m analogsim.hardware.reference`; do not edit by hand "
         "(tests/hardware/test_reference.py checks it). -->")


def _summary(cls: type) -> str:
    return (inspect.getdoc(cls) or "").partition("\n")[0].rstrip(".")


def hardware_reference_md() -> str:
    """The Markdown between the markers: the top-level key, then one table per section."""
    name = next(r for r in field_rows(HardwareConfig) if r["field"] == "name")
    out = [_NOTE, "",
           f"Top level: `name` (default `{name['default']}`, {name['allowed']}): {name['doc']}. "
           "A TOML file may also start from a preset with `base = \"<preset>\"`.", ""]
    hw = HardwareConfig()
    for sec in HardwareConfig.SECTIONS:
        cls = type(getattr(hw, sec))
        sources = any(s.source for s in specs(cls).values())
        out += [f"### `[{sec}]` (`{cls.__name__}`)", "", f"{_summary(cls)}.", "",
                markdown_table(cls, f"{sec}.", sources=sources)]
    return "\n".join(out)


def splice(text: str, generated: str) -> str:
    """``text`` with everything between the :data:`BEGIN`/:data:`END` lines replaced."""
    head, found, rest = text.partition(BEGIN + "\n")
    _, found_end, tail = rest.partition(END)
    if not (found and found_end):
        raise ValueError(f"docs: marker lines {BEGIN!r} and {END!r} are missing")
    return f"{head}{BEGIN}\n{generated.rstrip()}\n{END}{tail}"


def update_docs(path: str | Path = DOCS, *, check: bool = False) -> bool:
    """Regenerate the marked block of ``path``; return True if it was already up to date.

    With ``check`` the file is only compared, never written.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    new = splice(text, hardware_reference_md())
    if new != text and not check:
        path.write_text(new, encoding="utf-8")
    return new == text


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    paths = [a for a in args if a != "--check"] or [str(DOCS)]
    if len(paths) != 1:
        print("usage: python -m analogsim.hardware.reference [--check] [docs/hardware.md]",
              file=sys.stderr)
        return 2
    fresh = update_docs(paths[0], check=check)
    if check and not fresh:
        print(f"{paths[0]} is out of date; run `python -m analogsim.hardware.reference`",
              file=sys.stderr)
    return 0 if fresh or not check else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
