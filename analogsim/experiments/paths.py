"""Output paths, checked before any work: nothing is written where it is not ours to write.

Every file the package writes (checkpoint, results store, report, plots, comparison folder)
goes through :func:`check_output_file` or :func:`check_output_dir` when the command starts —
not after the first epoch — and checkpoints are replaced only through :func:`atomic_write`,
which never renames over anything but a regular file (a device node such as ``/dev/null``,
a directory, a FIFO or a symlink is refused, with the path in the message).

Temporary files are named ``.<name>.<pid>.<random>.tmp`` beside the target; a writer that
died (killed mid-save) leaves one behind, and the next save to the same target removes those
whose process no longer exists (:func:`clean_stale_temps`).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["check_output_file", "check_output_dir", "atomic_write", "clean_stale_temps",
           "check_input_file"]

#: Longest file name component most filesystems accept (bytes).
NAME_MAX = 255
#: Prefix length of the target name inside a temporary name (keeps it valid).
_PREFIX = 32


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symbolic link"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _nearest_existing(path: Path) -> Path:
    p = path
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def _check_parent(param: str, path: Path, parent: Path) -> None:
    base = _nearest_existing(parent)
    if not base.is_dir():
        raise ValueError(f"{param} = {str(path)!r} is invalid: {str(base)!r} is not a "
                         "directory; allowed: a path inside a writable directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"{param} = {str(path)!r} is invalid: directory {str(base)!r} is not "
                         "writable; allowed: a path inside a writable directory")


def _check_name(param: str, path: Path) -> None:
    if len(os.fsencode(path.name)) > NAME_MAX:
        raise ValueError(f"{param} = {str(path)[:60]!r}... is invalid: its name has "
                         f"{len(os.fsencode(path.name))} bytes; allowed: at most {NAME_MAX}")


def _named(path: str | os.PathLike[str] | None, param: str, allowed: str) -> tuple[str, Path]:
    """``(text, Path)`` of a non-empty path whose last name the filesystem can hold."""
    text = os.fspath(path) if path is not None else ""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{param} = {text!r} is invalid; allowed: {allowed}")
    p = Path(text)
    _check_name(param, p)
    return text, p


def check_output_file(path: str | os.PathLike[str], param: str) -> Path:
    """``path`` as a Path if it is a regular file or a new name in a writable directory
    (missing parent directories are created later by the writer); else ``ValueError``."""
    text, p = _named(path, param, "a file path")
    if os.path.lexists(p):
        mode = os.lstat(p).st_mode
        if not stat.S_ISREG(mode):
            raise ValueError(f"{param} = {text!r} is invalid: it exists and is {_kind(mode)}; "
                             "allowed: a regular file (replaced) or a new name")
        if not os.access(p, os.W_OK):
            raise ValueError(f"{param} = {text!r} is invalid: the file is not writable")
    _check_parent(param, p, p.parent if str(p.parent) else Path("."))
    return p


def check_output_dir(path: str | os.PathLike[str], param: str) -> Path:
    """``path`` as a Path if it is a writable directory or can be created as one."""
    text, p = _named(path, param, "a directory path")
    if os.path.lexists(p):
        mode = os.lstat(p).st_mode
        if stat.S_ISLNK(mode) and p.is_dir():
            mode = os.stat(p).st_mode  # a symlink to a directory is a directory to write in
        if not stat.S_ISDIR(mode):
            raise ValueError(f"{param} = {text!r} is invalid: it exists and is {_kind(mode)}; "
                             "allowed: a directory or a new name")
        if not os.access(p, os.W_OK | os.X_OK):
            raise ValueError(f"{param} = {text!r} is invalid: the directory is not writable")
        return p
    _check_parent(param, p, p.parent if str(p.parent) else Path("."))
    return p


def check_input_file(path: str | os.PathLike[str], param: str, max_bytes: int) -> Path:
    """``path`` if it is a regular file (after symlinks) of at most ``max_bytes``; a FIFO, a
    device (``/dev/zero``) or a directory is refused before anything is read."""
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError as exc:
        raise ValueError(f"{param} = {str(p)!r} is invalid: {exc.strerror}; allowed: an "
                         "existing regular file") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{param} = {str(p)!r} is invalid: it is {_kind(st.st_mode)}; "
                         "allowed: a regular file")
    if st.st_size > max_bytes:
        raise ValueError(f"{param} = {str(p)!r} is invalid: {st.st_size} bytes; allowed: at "
                         f"most {max_bytes}")
    return p


_TEMP = re.compile(r"^\.(?P<name>.*)\.(?P<pid>\d+)\.[^.]+\.tmp$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def clean_stale_temps(path: Path) -> int:
    """Remove the temporary files of dead writers of ``path``; returns how many."""
    directory = path.parent if str(path.parent) else Path(".")
    removed = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            m = _TEMP.match(entry.name)
            if (m and m["name"] == path.name[:_PREFIX] and entry.is_file(follow_symlinks=False)
                    and not _alive(int(m["pid"]))):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed += 1
    return removed


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None],
                 param: str = "path") -> Path:
    """Write ``path`` through ``write(file)`` into a temporary file beside it, fsync, and
    rename it over ``path`` — only if ``path`` is absent or a regular file."""
    path = check_output_file(path, param)
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name[:_PREFIX]}.{os.getpid()}.",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        check_output_file(path, param)  # it may have become something else meanwhile
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # Make the rename itself durable (POSIX; not possible on every platform/filesystem).
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return path
