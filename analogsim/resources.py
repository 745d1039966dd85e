"""Memory checked before it is allocated: a clear error with the estimate, not an OOM kill.

Arrays, networks and sweep expansions estimate what they will hold and call
:func:`check_memory` before allocating it. The budget is what this process may still take:
the smaller of ``MemAvailable`` (``/proc/meminfo``; the physical memory elsewhere) and the
address-space limit (``ulimit -v``, ``RLIMIT_AS``) minus what the process already uses.
``ANALOGSIM_MEMORY_LIMIT`` (bytes, e.g. ``8e9``) overrides it, for a cluster job whose
scheduler enforces a smaller limit than the machine shows. Like :mod:`analogsim.seeding`,
this module imports nothing from the package.
"""

from __future__ import annotations

import os
import resource

__all__ = ["available_bytes", "check_memory", "format_bytes", "InsufficientMemory"]


class InsufficientMemory(MemoryError, ValueError):
    """What was asked for would not fit: a usage error (the CLI exits 2), not a crash."""

_ENV = "ANALOGSIM_MEMORY_LIMIT"


def format_bytes(n: float) -> str:
    """``1536`` → ``'1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.3g} TiB"  # pragma: no cover


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _address_space_left() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        used = 0
    return max(soft - used, 0)


def available_bytes() -> int | None:
    """Bytes this process may still allocate (``None``: unknown, not checked)."""
    env = os.environ.get(_ENV)
    if env:
        try:
            return int(float(env))
        except ValueError:
            raise ValueError(f"{_ENV} = {env!r} is invalid; allowed: a number of bytes, "
                             "e.g. 8e9") from None
    limits = [v for v in (_meminfo_available(), _address_space_left()) if v is not None]
    return min(limits) if limits else None


def check_memory(nbytes: float, what: str, hint: str = "") -> None:
    """Raise :class:`InsufficientMemory` naming ``what`` if ``nbytes`` exceed
    :func:`available_bytes`."""
    budget = available_bytes()
    if budget is not None and nbytes > budget:
        raise InsufficientMemory(f"{what} needs about {format_bytes(nbytes)} but this process can "
                          f"allocate about {format_bytes(budget)} (available memory, ulimit "
                          f"-v, or {_ENV}); allowed: something smaller"
                          + (f" ({hint})" if hint else ""))
