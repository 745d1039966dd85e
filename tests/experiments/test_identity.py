"""A point's identity is its resolved content; sweeps list points, and share them."""

from __future__ import annotations

from analogsim.experiments.cli import IDENTITY_FN, RUN_FN
from analogsim.experiments.points import identity
from analogsim.experiments.report import load_summaries
from analogsim.experiments.store import ResultsStore, to_json
from analogsim.experiments.sweep import SweepSpec, point_id, run_sweep
from analogsim.hardware.presets import get_preset
from analogsim.hardware.toml_io import dumps_hardware

BASE = {"epochs": 1, "model.sizes": [64, 8, 10]}


def sweep(store, name: str, grid: dict, base: dict | None = None, **kw):
    spec = SweepSpec(name=name, base={**BASE, **(base or {})}, grid=grid)
    return run_sweep(spec, store, RUN_FN, "serial", identity_fn=IDENTITY_FN,
                     **{"progress": False, **kw})


def test_two_spellings_of_one_run_have_one_identity() -> None:
    bits = get_preset("pcm").adc.bits
    plain = {"hardware": "pcm", **BASE}
    spelled = {**plain, "hw.adc.bits": bits, "rule": "dfa"}  # preset's and TrainConfig's default
    assert point_id(plain) != point_id(spelled)
    assert to_json(identity(plain)) == to_json(identity(spelled))
    assert to_json(identity({**plain, "hw.adc.bits": bits - 1})) != to_json(identity(plain))


def test_an_edited_hardware_file_is_a_new_point(tmp_path) -> None:
    hw = tmp_path / "hw.toml"
    hw.write_text(dumps_hardware(get_preset("pcm")))
    store = tmp_path / "s.sqlite"
    first = sweep(store, "hw", {"seed": [0]}, {"hardware": str(hw)})
    assert first.done == 1
    text = hw.read_text()
    assert "bits = " in text
    head, adc = text.split("[adc]", 1)
    bits = f"bits = {get_preset('pcm').adc.bits}"
    assert bits in adc
    hw.write_text(head + "[adc]" + adc.replace(bits, "bits = 4", 1))
    second = sweep(store, "hw", {"seed": [0]}, {"hardware": str(hw)})
    assert (second.done, second.skipped) == (1, 0)  # not the stale result
    with ResultsStore(store) as st:
        rows = st.rows("hw")
    assert [r["config"]["hardware"]["adc"]["bits"] for r in rows] == [4]


def test_a_point_shared_by_two_sweeps_runs_once_and_is_in_both_reports(tmp_path, capsys
                                                                      ) -> None:
    store = tmp_path / "s.sqlite"
    a = sweep(store, "a", {"seed": [0, 1]})
    b = sweep(store, "b", {"seed": [1, 2]})
    assert (a.done, b.done, b.skipped) == (2, 1, 1)
    seeds = {s.name: sorted(r["point"]["seed"] for g in s.groups for r in g.rows)
             for s in load_summaries(store)}
    assert seeds == {"a": [0, 1], "b": [1, 2]}
    # An edit of sweep a drops seed 0 from it: said on stderr, kept in the store.
    edited = sweep(store, "a", {"seed": [1]}, progress=True)
    assert (edited.done, edited.skipped) == (0, 1)
    assert "1 point(s) of an earlier version of this sweep are no longer in it" in \
        capsys.readouterr().err
    assert [r["point"]["seed"] for r in load_summaries(store, "a")[0].groups[0].rows] == [1]
    with ResultsStore(store) as st:
        assert len(st.rows()) == 3
