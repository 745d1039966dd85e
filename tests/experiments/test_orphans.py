"""Workers of a SIGKILLed driver exit by themselves, even when it dies while they start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
DRIVER = """
import sys
from analogsim.experiments.sweep import SweepSpec, run_sweep
if __name__ == "__main__":
    spec = SweepSpec(name="orphans", base={"sleep": 5.0}, grid={"seed": list(range(4))})
    run_sweep(spec, sys.argv[1], "sweep_dummy:slow", "local", max_workers=2, progress=False)
"""


def _with_marker(marker: str) -> list[int]:
    """Pids of live processes whose environment holds ``marker`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if marker.encode() in env and state != "Z":
            out.append(int(entry.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("delay", [0.0, 0.3, 1.0])
def test_no_orphans_after_a_driver_kill_in_the_first_seconds(tmp_path, delay) -> None:
    marker = f"ANALOGSIM_ORPHAN_TEST={uuid.uuid4().hex}"
    key, value = marker.split("=")
    env = {**os.environ, key: value, "PYTHONPATH": os.pathsep.join(
        [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])}
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "r.sqlite")], env=env)
    # Kill it `delay` s after its first worker appears: 0 is while the workers still import
    # (before their start-up code runs), the worst case.
    deadline = time.monotonic() + 60
    while len(_with_marker(marker)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30  # a worker may still be importing numpy on a busy box
    left = _with_marker(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.25)
        left = _with_marker(marker)
    for pid in left:  # do not leave them behind if the test fails
        os.kill(pid, signal.SIGKILL)
    assert left == []
