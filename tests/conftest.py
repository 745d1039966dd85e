"""Shared test hooks for the property-based (hypothesis) fuzz tests.

:func:`fuzz` is their settings: ``n`` examples, derandomized (every run tries the same,
seeded cases) and no example database. ``ANALOGSIM_FUZZ_SCALE=10`` multiplies every ``n``
and ``ANALOGSIM_FUZZ_RANDOM=1`` draws fresh cases each run (for a deeper search by hand).

A fuzz test takes the session fixture ``fuzz_cases`` and calls ``fuzz_cases.tick(name)`` once
per example; the terminal summary then reports the number of cases per test and in total
(docs/robustness.md quotes it).
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings

_SCALE = float(os.environ.get("ANALOGSIM_FUZZ_SCALE", "1"))
_RANDOM = os.environ.get("ANALOGSIM_FUZZ_RANDOM", "0") == "1"


def fuzz(n: int) -> settings:
    """Settings of a fuzz test trying ``n`` cases (times ``ANALOGSIM_FUZZ_SCALE``)."""
    return settings(max_examples=max(1, int(n * _SCALE)), deadline=None,
                    derandomize=not _RANDOM, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


class FuzzCounter(Counter):
    def tick(self, name: str) -> None:
        self[name] += 1


_CASES = FuzzCounter()


@pytest.fixture(scope="session")
def fuzz_cases() -> FuzzCounter:
    return _CASES


def pytest_terminal_summary(terminalreporter) -> None:
    if not _CASES:
        return
    width = max(map(len, _CASES))
    terminalreporter.section("fuzz cases tried")
    for name, n in sorted(_CASES.items()):
        terminalreporter.write_line(f"{name:<{width}}  {n:>6}")
    terminalreporter.write_line(f"{'total':<{width}}  {sum(_CASES.values()):>6}")
