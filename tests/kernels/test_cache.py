"""numba's cache directory: a read-only install still imports, runs and caches elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import analogsim
from analogsim.kernels import _cache

PKG = Path(analogsim.__file__).resolve().parent


def test_choice_order() -> None:
    ok = {Path("/env"), Path("/pkg"), Path("/home/u/.cache/analogsim/numba")}
    usable = ok.__contains__
    env = {"NUMBA_CACHE_DIR": "/env", "HOME": "/home/u"}
    assert _cache.choose(env, Path("/pkg"), usable)[:2] == (True, "/env")
    assert _cache.choose({**env, "NUMBA_CACHE_DIR": "/ro"}, Path("/pkg"), usable)[:2] == (
        True, None)  # numba's default: beside the sources
    on, where, tried = _cache.choose({"HOME": "/home/u"}, Path("/ro"), usable)
    assert (on, where) == (True, "/home/u/.cache/analogsim/numba")
    on, where, tried = _cache.choose({"HOME": "/nope"}, Path("/ro"), lambda p: False)
    assert (on, where) == (False, None) and tried[0] == "/ro" and len(tried) == 3
    assert _cache.choose({"ANALOGSIM_NUMBA_CACHE": "0"}, Path("/pkg"), usable) == (
        False, None, [])


def test_writable_dir(tmp_path) -> None:
    assert _cache.writable_dir(tmp_path / "new" / "dir")
    (tmp_path / "file").write_text("x")
    assert not _cache.writable_dir(tmp_path / "file")
    assert not _cache.writable_dir(tmp_path / "file" / "below")


def _read_only_copy(tmp_path: Path) -> Path:
    """A copy of the package whose kernel ``__pycache__`` cannot be a directory (as root,
    permissions do not stop writes; a regular file in its place does)."""
    root = tmp_path / "site"
    shutil.copytree(PKG, root / "analogsim",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    (root / "analogsim" / "kernels" / "__pycache__").write_text("not a directory")
    return root


def test_no_writable_directory_warns_once_and_runs_uncached() -> None:
    class Config:
        CACHE_DIR = "/old"

    with pytest.warns(RuntimeWarning, match="no writable directory for numba's kernel cache "
                      r"\(tried NUMBA_CACHE_DIR=/x, /pkg, "):
        on = _cache.configure(Config, Path("/pkg"), {"NUMBA_CACHE_DIR": "/x"},
                              lambda p: False)
    assert on is False and Config.CACHE_DIR == ""


@pytest.mark.parametrize("home_ok", [True, False])
def test_read_only_install_imports_and_runs(tmp_path, home_ok) -> None:
    root = _read_only_copy(tmp_path)
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    home = tmp_path / "home" if home_ok else blocker / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_CACHE_HOME", "PYTHONPATH")}
    env.update(PYTHONPATH=str(root), HOME=str(home), NUMBA_CACHE_DIR=str(blocker / "numba"),
               TMPDIR=str(blocker / "tmp"), NUMBA_NUM_THREADS="1")
    code = ("import warnings, numpy as np\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    from analogsim.kernels import _numba, read\n"
            "print('cache', _numba.CACHE, [str(x.message)[:40] for x in w])\n"
            "print('max', read.max_abs(np.array([1.0, -3.0], dtype=np.float32)))\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "max 3.0" in out.stdout
    assert "cache True []" in out.stdout
    if home_ok:  # else the system temp dir (TMPDIR is unusable: tempfile falls back to /tmp)
        assert list((home / ".cache" / "analogsim" / "numba").rglob("*.nbi"))


def test_kernel_cache_dir_is_where_numba_puts_the_kernels(tmp_path) -> None:
    from numba.core.caching import UserProvidedCacheLocator

    src = str(tmp_path / "pkg" / "kernels")
    sub = UserProvidedCacheLocator.get_suitable_cache_subpath(os.path.join(src, "update.py"))
    assert _cache.kernel_cache_dir("/c", src) == Path("/c") / sub
    assert _cache.kernel_cache_dir("", src) == Path(src) / "__pycache__"


def test_source_salt_follows_every_kernel_source(tmp_path) -> None:
    (tmp_path / "read.py").write_text("a = 1\n")
    (tmp_path / "device.py").write_text("b = 2\n")
    salt = _cache.source_salt(tmp_path)
    (tmp_path / "notes.txt").write_text("not a source")
    assert _cache.source_salt(tmp_path) == salt
    (tmp_path / "device.py").write_text("b = 3\n")
    assert _cache.source_salt(tmp_path) != salt


def test_purge_stale_drops_kernels_built_on_other_sources(tmp_path) -> None:
    """numba would load update.py's kernels built against an older device.py: a changed
    digest removes the cached kernels (only numba's files) and records the new digest."""
    for name in ("update.f-1.py311.nbi", "update.f-1.py311.1.nbc"):
        (tmp_path / name).write_text("x")
    (tmp_path / "update.cpython-311.pyc").write_text("python's, not numba's")
    assert _cache.purge_stale(tmp_path, "aaaa") == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [_cache.SALT_FILE,
                                                          "update.cpython-311.pyc"]
    (tmp_path / "read.g-2.py311.nbi").write_text("x")
    assert _cache.purge_stale(tmp_path, "aaaa") == 0                  # same sources: kept
    assert (tmp_path / "read.g-2.py311.nbi").exists()
    assert _cache.purge_stale(tmp_path, "bbbb") == 1
    assert (tmp_path / _cache.SALT_FILE).read_text() == "bbbb"


def test_purge_stale_never_raises(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert _cache.purge_stale(blocker / "sub", "s") == 0
