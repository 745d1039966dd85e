"""Run functions for the crash tests (importable by spawned worker processes)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from sweep_dummy import slow


def kill_once(point: dict) -> dict:
    """SIGKILL this worker on ``point["victim"]``'s first attempt (marker file), else slow."""
    marker = Path(point["marker"])
    if point.get("seed") == point["victim"] and not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return slow(point)
