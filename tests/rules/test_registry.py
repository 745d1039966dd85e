"""The open rule API: register_rule, 'module:Class' references, entry points, Update.after,
and the example user rule (examples/kolen_pollack.py) through train, checkpoints and sweeps."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

import analogsim.rules as rules_pkg
from analogsim.experiments import checkpoint as ck
from analogsim.experiments.data import load_dataset
from analogsim.experiments.runner import TrainConfig, build_run, train
from analogsim.experiments.store import ResultsStore
from analogsim.experiments.sweep import SweepSpec, run_sweep
from analogsim.hardware.presets import get_preset
from analogsim.layers.network import ModelConfig, build_network
from analogsim.rules import RULES, SGD, Rule, Schedule, Trainer, get_rule, register_rule
from analogsim.rules.feedback import DFA

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KP = "kolen_pollack:KolenPollack"
HW = get_preset("aihwkit_default")
MODEL = ModelConfig(sizes=(64, 32, 10))


@pytest.fixture(autouse=True)
def _examples_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example's module is importable here and in spawned / dask workers."""
    paths = [str(EXAMPLES), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    monkeypatch.syspath_prepend(str(EXAMPLES))
    before = dict(RULES)
    yield
    RULES.clear()
    RULES.update(before)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


class Mine(DFA):
    name = "mine"


def test_register_rule_as_decorator_and_call() -> None:
    assert register_rule(Mine) is Mine and RULES["mine"] is Mine
    assert isinstance(get_rule("mine", seed=2), Mine)

    @register_rule(name="mine_too")
    class Other(DFA):
        pass

    assert RULES["mine_too"] is Other and Other.name == "mine_too"
    assert TrainConfig(rule="mine_too").rule == "mine_too"


@pytest.mark.parametrize(("cls", "kw", "error", "match"), [
    (Mine, {"name": "dfa"}, ValueError, "taken by .*DFA; allowed: a new name"),
    (Mine, {"name": "Bad Name"}, ValueError, "name = 'Bad Name' is invalid"),
    (int, {}, TypeError, "subclass of analogsim.rules.Rule"),
    (type("NoCompute", (Rule,), {"name": "nc"}), {}, TypeError, "does not implement compute"),
    (type("Thawed", (DFA,), {"name": "th", "Options": dataclasses.make_dataclass("O", [])}),
     {}, TypeError, "frozen dataclass"),
])
def test_bad_registrations_are_refused(cls, kw, error, match) -> None:
    with pytest.raises(error, match=match):
        register_rule(cls, **kw)


def test_a_user_name_is_replaced_only_when_asked() -> None:
    register_rule(Mine)

    class Again(DFA):
        name = "mine"

    with pytest.raises(ValueError, match="or replace=True"):
        register_rule(Again)
    assert register_rule(Again, replace=True) is Again and RULES["mine"] is Again


@pytest.mark.parametrize(("ref", "match"), [
    ("no_such_module_xyz:Rule", "cannot be imported"),
    ("kolen_pollack:Nope", "has no 'Nope'"),
    ("kolen_pollack:KPOptions", "subclass of analogsim.rules.Rule"),
    ("no-such-rule", "is unknown; allowed: bp"),
])
def test_bad_references_name_the_problem(ref: str, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        get_rule(ref)
    with pytest.raises(ValueError, match="train.rule = "):
        TrainConfig(rule=ref)


def test_entry_points_register_installed_rules(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "ep_rules.py").write_text(
        "from analogsim.rules.feedback import DFA\n\nclass EpRule(DFA):\n    name = 'x'\n")
    dist = tmp_path / "ep_rules-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-rules\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[analogsim.rules]\nep_rule = ep_rules:EpRule\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(rules_pkg, "_entry_points_loaded", False)
    assert type(get_rule("ep_rule")).__name__ == "EpRule"
    assert RULES["ep_rule"].name == "ep_rule"


class Misnamed(DFA):
    name = "misnamed"

    def compute(self, net, x, target, sched):
        loss, ups = super().compute(net, x, target, sched)
        ups[-1] = dataclasses.replace(ups[-1], after="fb_typo")
        return loss, ups


def test_an_update_after_an_unknown_op_is_an_error() -> None:
    net = build_network(MODEL, get_preset("ideal"), seed=0)
    trainer = Trainer(net, Misnamed(), SGD())
    x = np.zeros((4, 64), dtype=np.float32)
    t = np.eye(10, dtype=np.float32)[[0, 1, 2, 3]]
    with pytest.raises(ValueError, match="after = 'fb_typo', which is no op of this step; "
                                         "allowed: one of .*'loss'"):
        trainer.step(x, t)


def test_per_sample_loss_is_available_and_averages_to_the_loss() -> None:
    net = build_network(MODEL, get_preset("ideal"), seed=0)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((5, 10)).astype(np.float32)
    t = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 5)]
    per = net.loss.per_sample(z, t)
    assert per.shape == (5,) and np.isclose(per.mean(), net.loss.value(z, t), rtol=1e-12)


# --------------------------------------------------------------------------- the example


def test_example_with_frozen_feedback_equal_to_w_is_bp(digits) -> None:
    """Reduction: with η_B = λ = 0 and B_l = W_l, Kolen-Pollack's δ is BP's, exactly."""
    ideal = get_preset("ideal")
    model = dataclasses.replace(MODEL, backend="digital")
    nets = [build_network(model, ideal, seed=1) for _ in range(2)]
    kp = get_rule(KP, lr_b=0.0, decay=0.0)
    kp.build(nets[0])
    for l, b in kp.b.items():
        b[...] = nets[0].layers[l].w
    x, t = digits.x_train[:16], np.eye(10, dtype=np.float32)[digits.y_train[:16]]
    for net, rule in zip(nets, (kp, get_rule("bp")), strict=True):
        _, ups = rule.compute(net, x, t, Schedule(net.ledger, ideal.cost))
        SGD(lr=0.1).apply(ups)
    for a, b in zip(nets[0].layers, nets[1].layers, strict=True):
        np.testing.assert_allclose(a.w, b.w, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(a.b, b.b, rtol=1e-5, atol=1e-7)


def test_example_learns_through_train_and_resumes_bit_exactly(tmp_path: Path, digits) -> None:
    cfg = lambda n: TrainConfig(rule=KP, epochs=n, batch_size=32, seed=3)  # noqa: E731
    straight = build_run(HW, MODEL, cfg(2), 64, 10)
    record = train(HW, MODEL, cfg(2), dataset=digits, trainer=straight)
    assert record["metrics"]["test_accuracy"] > 0.5
    path = tmp_path / "kp.npz"
    ck.train_with_checkpoints(HW, MODEL, cfg(1), path, dataset=digits)
    trainer, meta = ck.load(path, HW, MODEL, cfg(2))
    resumed = train(HW, MODEL, cfg(2), dataset=digits, trainer=trainer,
                    start_epoch=meta["epoch"], progress=meta["progress"])
    wall = {"wall_time_s": resumed["metrics"]["wall_time_s"]}
    assert resumed["metrics"] == record["metrics"] | wall
    for l, b in straight.rule.b.items():  # the rule's own state came back with the file
        assert np.array_equal(b, trainer.rule.b[l])


@pytest.mark.parametrize("executor", ["local", "dask-local"])
def test_example_runs_in_a_two_worker_sweep(tmp_path: Path, executor: str) -> None:
    if executor == "dask-local":
        pytest.importorskip("distributed")
    spec = SweepSpec(name="kp", base={"dataset": "digits", "rule": KP, "epochs": 1},
                     grid={"seed": [0, 1]})
    report = run_sweep(spec, tmp_path / "kp.sqlite", "analogsim.experiments.points:run_point",
                       executor, max_workers=2, progress=False)
    assert (report.total, report.done, report.failed) == (2, 2, 0)
    with ResultsStore(tmp_path / "kp.sqlite") as store:
        rows = store.rows()
    assert {r["config"]["train"]["rule"] for r in rows} == {KP}
    assert all(r["summary"]["test_accuracy"] > 0.3 for r in rows)


def test_docs_show_the_example_as_it_is() -> None:
    docs = (EXAMPLES.parent / "docs" / "rules.md").read_text(encoding="utf-8")
    block = docs.split("## Write your own rule", 1)[1].split("```python\n", 1)[1]
    assert block.split("```", 1)[0] == (EXAMPLES / "kolen_pollack.py").read_text("utf-8")
