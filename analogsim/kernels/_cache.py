"""Where numba's on-disk cache goes: never a reason for ``import analogsim`` to fail.

numba writes compiled kernels next to their sources (``analogsim/kernels/__pycache__``) or
under ``NUMBA_CACHE_DIR``; if neither is writable, decorating a ``cache=True`` function
raises ``RuntimeError: cannot cache function ...: no locator available`` — at import, so
even ``analogsim --help`` would fail on a read-only install. :func:`choose` picks, in order:

1. ``ANALOGSIM_NUMBA_CACHE=0`` in the environment: no cache (compile in every process);
2. ``NUMBA_CACHE_DIR``, if it is (or can be made) a writable directory;
3. the package's own ``__pycache__`` beside the kernel sources, if writable (numba's default;
   a source checkout or a user's venv);
4. a per-user cache, ``$XDG_CACHE_HOME/analogsim/numba`` (default ``~/.cache/...``);
5. ``<temp dir>/analogsim-numba-<uid>``;
6. none of these: no cache, with one :class:`RuntimeWarning` naming what was tried.

:func:`configure` applies the choice to ``numba.config`` before any kernel is decorated
(:mod:`analogsim.kernels._numba` calls it at import).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = ["choose", "configure", "writable_dir"]


def writable_dir(path: Path) -> bool:
    """``path`` is (or could be created as) a directory this process can write into."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        return False
    try:  # access() says yes to root on a read-only mount: really write
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError:
        return False
    return True


def _user_dirs(env: Mapping[str, str]) -> list[Path]:
    out = []
    base = env.get("XDG_CACHE_HOME") or (str(Path(env["HOME"]) / ".cache")
                                         if env.get("HOME") else "")
    if base:
        out.append(Path(base) / "analogsim" / "numba")
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    out.append(Path(tempfile.gettempdir()) / f"analogsim-numba-{uid}")
    return out


def choose(env: Mapping[str, str], package_cache: Path,
           usable: Callable[[Path], bool] = writable_dir) -> tuple[bool, str | None, list[str]]:
    """``(cache on, NUMBA_CACHE_DIR to use or None for numba's default, paths tried)``."""
    if env.get("ANALOGSIM_NUMBA_CACHE", "1") == "0":
        return False, None, []
    tried: list[str] = []
    if env.get("NUMBA_CACHE_DIR"):
        path = Path(env["NUMBA_CACHE_DIR"])
        tried.append(f"NUMBA_CACHE_DIR={path}")
        if usable(path):
            return True, str(path), tried
    tried.append(str(package_cache))
    if usable(package_cache):
        return True, None, tried
    for path in _user_dirs(env):
        tried.append(str(path))
        if usable(path):
            return True, str(path), tried
    return False, None, tried


def configure(numba_config, package_cache: Path, env: Mapping[str, str] | None = None,
              usable: Callable[[Path], bool] = writable_dir) -> bool:
    """Set ``numba_config.CACHE_DIR`` from :func:`choose`; return whether to cache."""
    on, cache_dir, tried = choose(os.environ if env is None else env, package_cache, usable)
    numba_config.CACHE_DIR = cache_dir or ""
    if not on and tried:
        warnings.warn("analogsim: no writable directory for numba's kernel cache (tried "
                      + ", ".join(tried) + "); kernels compile in every process. Set "
                      "NUMBA_CACHE_DIR to a writable directory to cache them.",
                      RuntimeWarning, stacklevel=2)
    return on
