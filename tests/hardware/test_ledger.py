"""Ledger scopes: charging adds exact counts to a scope and its ancestors, nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from analogsim.hardware.ledger import COUNTERS, Ledger


def tree() -> tuple[Ledger, Ledger, Ledger, Ledger]:
    root = Ledger("network")
    layer = root.child("layer0")
    arr = layer.child("array")
    sibling = root.child("layer1")
    return root, layer, arr, sibling


def test_charge_adds_to_own_and_every_ancestor_total_only():
    root, layer, arr, sibling = tree()
    arr.charge(mvm=3, cell_reads=7)
    layer.charge(digital_adds=5)
    assert arr.own()["mvm"] == 3 and arr.totals()["cell_reads"] == 7
    assert layer.own()["mvm"] == 0 and layer.own()["digital_adds"] == 5
    assert layer.totals()["mvm"] == 3 and layer.totals()["digital_adds"] == 5
    assert root.totals()["mvm"] == 3 and root.totals()["cell_reads"] == 7
    assert root.own() == dict.fromkeys(COUNTERS, 0)
    assert sibling.totals() == dict.fromkeys(COUNTERS, 0)


def test_repeated_charges_accumulate_exactly():
    root, _, arr, _ = tree()
    for _ in range(1000):
        arr.charge(write_pulses=2**40, adc_conversions=1)
    assert root.totals()["write_pulses"] == 1000 * 2**40
    assert isinstance(root.totals()["write_pulses"], int)
    assert arr.own()["adc_conversions"] == 1000


def test_zero_and_numpy_integer_counts():
    root, _, arr, _ = tree()
    arr.charge(mvm=0, dac_clips=np.int64(4), adc_saturations=np.uint32(0))
    assert root.totals()["dac_clips"] == 4 and root.totals()["mvm"] == 0
    assert type(root.totals()["dac_clips"]) is int


@pytest.mark.parametrize("counts, match", [
    ({"mvm": 1, "reads": 2}, "'reads' is unknown"),
    ({"mvm": 1, "cell_reads": -1}, "charged -1"),
])
def test_bad_charge_raises_and_charges_nothing(counts, match):
    root, _, arr, _ = tree()
    with pytest.raises(ValueError, match=match):
        arr.charge(**counts)
    assert root.totals() == dict.fromkeys(COUNTERS, 0)
    assert arr.own() == dict.fromkeys(COUNTERS, 0)


def test_totals_are_copies():
    root, _, arr, _ = tree()
    arr.charge(mvm=1)
    snap = root.totals()
    snap["mvm"] = 99
    assert root.totals()["mvm"] == 1
