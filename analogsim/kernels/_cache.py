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

Staleness across modules: numba checks only the timestamp of a function's *own* source
file, so a kernel compiled against an older version of a helper from another module (an
inlined device worker, the generator) would be loaded stale after only that module
changed — in a source checkout, where modules are edited one at a time. :func:`purge_stale`
keeps a digest of every kernel source beside the cached kernels and removes them when it
changes (an installed package replaces all its files at once; there the check only costs
the ~0.1 ms digest).

:func:`configure` applies the choice to ``numba.config`` before any kernel is decorated
(:mod:`analogsim.kernels._numba` calls it at import).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = ["choose", "configure", "purge_stale", "source_salt", "writable_dir"]

SALT_FILE = "analogsim-kernels.salt"


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


def source_salt(source_dir: Path) -> str:
    """Digest (16 hex digits) of the names and contents of the ``*.py`` files in
    ``source_dir``."""
    h = hashlib.sha256()
    for path in sorted(source_dir.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def kernel_cache_dir(cache_dir: str, source_dir: str) -> Path:
    """Where numba puts the cached kernels of the modules in ``source_dir`` (an absolute
    path as in the modules' ``__file__``): beside them (``__pycache__``) for numba's default,
    else ``<cache_dir>/<dir name>_<sha1 of the path>`` (numba's ``UserProvidedCacheLocator``,
    numba 0.57–0.61)."""
    if not cache_dir:
        return Path(source_dir) / "__pycache__"
    digest = hashlib.sha1(source_dir.encode()).hexdigest()
    return Path(cache_dir) / f"{os.path.basename(source_dir)}_{digest}"


def purge_stale(where: Path, salt: str) -> int:
    """Remove numba's index and data files (``*.nbi``, ``*.nbc``) in ``where`` unless the
    digest stored there equals ``salt``; then store ``salt``. Returns the files removed.

    Never raises: a cache that cannot be cleaned (read-only, a concurrent process) is left
    to numba, which recompiles what it cannot load.
    """
    stamp = where / SALT_FILE
    try:
        if stamp.read_text() == salt:
            return 0
    except OSError:
        pass
    removed = 0
    try:
        for path in list(where.glob("*.nb[ic]")):
            path.unlink(missing_ok=True)
            removed += 1
        where.mkdir(parents=True, exist_ok=True)
        stamp.write_text(salt)
    except OSError:
        pass
    return removed
