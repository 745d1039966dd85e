"""docs/python-api.md runs: every ```python block, in order, in one namespace.

A ```text block right after a code block is what that block prints, compared loosely: ``…``
inside a line stands for any characters, a line that is only ``…`` for any number of lines,
and trailing spaces do not count. Blocks may also assert. The guide's ProgrammingErrorWarning
is expected (it shows the warning); any other warning fails, as everywhere in the suite.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import tempfile
import types
import warnings
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)


def guide_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """``[(line, code, expected output or None), …]`` of the Python blocks, in order."""
    found = [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 2, m.start(), m.end())
             for m in FENCE.finditer(text)]
    out = []
    for i, (lang, body, line, _, end) in enumerate(found):
        if lang != "python":
            continue
        nxt = found[i + 1] if i + 1 < len(found) else None
        follows = nxt is not None and nxt[0] == "text" and not text[end:nxt[3]].strip()
        out.append((line, body, nxt[1] if follows else None))
    return out


def loosely(expected: str, actual: str) -> bool:
    """``actual`` matches ``expected`` with ``…`` wildcards (module docstring)."""
    parts = []
    for line in expected.rstrip("\n").split("\n"):
        line = line.rstrip()
        if line == "…":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*?".join(map(re.escape, line.split("…"))) + r"[ \t]*\n")
    text = "\n".join(ln.rstrip() for ln in actual.rstrip("\n").split("\n")) + "\n"
    return re.fullmatch("".join(parts), text, re.S) is not None


def test_the_loose_matcher() -> None:
    assert loosely("a 0.9…\n…\nend\n", "a 0.93\nx\ny\nend\n")
    assert loosely("a 0.9…\n…\nend\n", "a 0.91   \nend\n")
    assert not loosely("a 0.9…\n", "a 0.8\n")
    assert not loosely("x\n", "x\ny\n")
    assert loosely("p … q\n", "p anything q\n")


def test_the_python_api_guide_runs(tmp_path, monkeypatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import analogsim as asim

    blocks = guide_blocks(GUIDE.read_text(encoding="utf-8"))
    assert len(blocks) == 9, "the guide gained or lost code blocks: update this count"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the guide's mkdtemp goes here
    module = types.ModuleType("python_api_guide")  # a real module: dataclasses need one
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("error")
        warnings.filterwarnings("always", category=asim.ProgrammingErrorWarning)
        try:
            for line, code, expected in blocks:
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    exec(compile(code, f"{GUIDE}:{line}", "exec"), namespace)  # noqa: S102
                if expected is not None:
                    assert loosely(expected, out.getvalue()), (
                        f"{GUIDE.name}, block at line {line} printed\n{out.getvalue()}\n"
                        f"which does not match\n{expected}")
        finally:
            asim.RULES.pop("sign_dfa", None)  # the guide's own rule: not for other tests
            plt.close("all")
    assert any(issubclass(w.category, asim.ProgrammingErrorWarning) for w in caught)


@pytest.mark.parametrize("doc", ["README.md", "docs/getting-started.md"])
def test_the_guide_is_linked(doc) -> None:
    assert "python-api.md" in (GUIDE.parents[1] / doc).read_text(encoding="utf-8")
