"""Schedule: per-op latency from ledger deltas and the critical path through ``after``."""

from __future__ import annotations

import pytest

from analogsim.hardware.config import CostModel
from analogsim.hardware.ledger import Ledger
from analogsim.rules import Schedule

COST = CostModel()


def sched() -> tuple[Schedule, Ledger]:
    root = Ledger("network")
    return Schedule(root, COST), root.child("layer0")


def test_op_latency_is_what_its_block_charges():
    s, led = sched()
    led.charge(read_cycles=50)  # before the op: not counted
    with s.op("fwd0"):
        led.charge(read_cycles=2, update_cycles=3, digital_adds=128)
    expect = 2 * COST.t_read_ns + 3 * COST.t_pulse_ns + 128 / COST.digital_ops_per_ns
    assert s.finish["fwd0"] == pytest.approx(expect, rel=1e-12)
    assert s.critical_path_ns == s.finish["fwd0"]


def test_chain_and_fan_out():
    s, led = sched()
    with s.op("a"):
        led.charge(read_cycles=1)
    with s.op("b", ("a",)):
        led.charge(read_cycles=2)
    with s.op("c", ("a",)):  # parallel to b
        led.charge(read_cycles=1)
    with s.op("d", ("b", "c")):
        led.charge(read_cycles=1)
    t = COST.t_read_ns
    assert s.finish == pytest.approx({"a": t, "b": 3 * t, "c": 2 * t, "d": 4 * t})
    assert s.critical_path_ns == pytest.approx(4 * t)


def test_repeated_name_keeps_the_later_finish_and_unknown_after_starts_at_zero():
    s, led = sched()
    with s.op("x", ("never",)):
        led.charge(read_cycles=3)
    with s.op("x"):
        led.charge(read_cycles=1)
    assert s.finish["x"] == pytest.approx(3 * COST.t_read_ns)


def test_nested_ops_each_see_their_own_delta():
    s, led = sched()
    with s.op("outer"):
        led.charge(read_cycles=1)
        with s.op("inner"):
            led.charge(read_cycles=2)
    assert s.finish["inner"] == pytest.approx(2 * COST.t_read_ns)
    assert s.finish["outer"] == pytest.approx(3 * COST.t_read_ns)


def test_op_that_raises_is_not_recorded_and_the_error_propagates():
    s, led = sched()
    with pytest.raises(RuntimeError, match="boom"), s.op("bad"):
        led.charge(read_cycles=1)
        raise RuntimeError("boom")
    assert "bad" not in s.finish
    assert s.critical_path_ns == 0.0
