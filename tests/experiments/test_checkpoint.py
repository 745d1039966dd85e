"""Checkpoints: bit-exact resume, clear errors for bad files, atomic writes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from analogsim.experiments import checkpoint as ck
from analogsim.experiments.data import load_dataset
from analogsim.experiments.runner import TrainConfig, build_run, train
from analogsim.hardware.config import replace_field
from analogsim.hardware.presets import get_preset
from analogsim.layers.network import ModelConfig

HW = get_preset("aihwkit_default")  # noisy: read noise, pulse noise, d2d variation
MODEL = ModelConfig(sizes=(64, 32, 10))


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _cfg(rule: str, epochs: int, **kw) -> TrainConfig:
    return TrainConfig(rule=rule, epochs=epochs, batch_size=32, seed=3, **kw)


def _state(trainer) -> dict[str, np.ndarray]:
    return ck.state_arrays(trainer)


def _queue(trainer) -> list:
    return [[(u.name, u.after, u.aux, u.x.tobytes(), u.delta.tobytes(),
              None if u.grad_eps is None else u.grad_eps.tobytes()) for u in step]
            for step in trainer._queue]


def _metrics(out: dict) -> dict:
    return {k: v for k, v in out["metrics"].items() if k != "wall_time_s"}


def _trained(cfg: TrainConfig, digits, **kw) -> tuple[dict, object]:
    """``(record, trainer)`` of a run through the public runner API."""
    trainer = kw.pop("trainer", None) or build_run(HW, MODEL, cfg, digits.n_features,
                                                   digits.n_outputs)
    return train(HW, MODEL, cfg, dataset=digits, trainer=trainer, **kw), trainer


def _saved(record: dict, path: Path, cfg: TrainConfig, hw=HW) -> tuple[dict, object]:
    """``(record, trainer)`` of a finished :func:`ck.train_with_checkpoints` run: the trainer
    is the final checkpoint's state (saved after the last epoch)."""
    return record, ck.load(path, hw, MODEL, cfg)[0]


def _assert_same_run(a: tuple[dict, object], b: tuple[dict, object]) -> None:
    (a, ta), (b, tb) = a, b
    sa, sb = _state(ta), _state(tb)
    assert sorted(sa) == sorted(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and np.array_equal(sa[key], sb[key]), key
    assert _queue(ta) == _queue(tb)
    assert ta.net.ledger.state_dict() == tb.net.ledger.state_dict()
    assert _metrics(a) == _metrics(b)
    assert a["epochs"] == b["epochs"] and a["ledger"] == b["ledger"]
    assert a["energy_breakdown_pj"] == b["energy_breakdown_pj"]


CASES = [("bp", {"transpose": "probe"}), ("dfa", {"staleness": 2}), ("dtp", {}),
         # the forward-only rules: their own seeded streams (wrong labels, perturbations)
         # and PEPITA's F array are part of the state
         ("forward_forward", {"staleness": 1}), ("pepita", {}), ("node_perturbation", {})]


@pytest.mark.parametrize(("rule", "kw"), CASES, ids=[c[0] for c in CASES])
def test_resume_is_bit_exact(tmp_path: Path, digits, rule: str, kw: dict) -> None:
    path = tmp_path / "run.npz"
    straight = _trained(_cfg(rule, 2, **kw), digits)
    first = ck.train_with_checkpoints(HW, MODEL, _cfg(rule, 1, **kw), path, dataset=digits)
    assert len(first["epochs"]) == 1
    meta = ck.read_meta(path)
    assert meta["epoch"] == 1 and meta["config"]["train"]["rule"] == rule
    assert len(meta["queue"]) == kw.get("staleness", 0)  # pending updates are saved
    # Load into a freshly built trainer and go on through the public runner API.
    trainer, meta = ck.load(path, HW, MODEL, _cfg(rule, 2, **kw))
    resumed = _trained(_cfg(rule, 2, **kw), digits, trainer=trainer,
                       start_epoch=meta["epoch"], progress=meta["progress"])
    _assert_same_run(straight, resumed)


def test_resume_differs_without_the_saved_state(tmp_path: Path, digits) -> None:
    """The comparison above can fail: a fresh build trained for one epoch is not the same."""
    path = tmp_path / "run.npz"
    straight = _trained(_cfg("dfa", 2, staleness=2), digits)
    ck.train_with_checkpoints(HW, MODEL, _cfg("dfa", 1, staleness=2), path, dataset=digits)
    trainer, meta = ck.load(path, HW, MODEL, _cfg("dfa", 2, staleness=2))
    trainer._queue.clear()  # drop the pending updates only
    resumed = _trained(_cfg("dfa", 2, staleness=2), digits, trainer=trainer, start_epoch=1,
                       progress=meta["progress"])
    with pytest.raises(AssertionError):
        _assert_same_run(straight, resumed)


def test_train_with_checkpoints_resumes_after_a_kill(tmp_path: Path, digits) -> None:
    path = tmp_path / "run.npz"
    cfg = _cfg("dfa", 2)
    once = tmp_path / "straight.npz"
    straight = _saved(ck.train_with_checkpoints(HW, MODEL, cfg, once, dataset=digits), once, cfg)

    class Killed(Exception):
        pass

    def die_after_two(record: dict) -> None:
        if record["epoch"] == 2:
            raise Killed  # after epoch 2's record, before its checkpoint: epoch 2 is redone

    with pytest.raises(Killed):
        ck.train_with_checkpoints(HW, MODEL, cfg, path, dataset=digits, on_epoch=die_after_two)
    assert ck.read_meta(path)["epoch"] == 1
    resumed = ck.train_with_checkpoints(HW, MODEL, cfg, path, dataset=digits)
    _assert_same_run(straight, _saved(resumed, path, cfg))
    assert ck.read_meta(path)["epoch"] == 2


@pytest.fixture(scope="module")
def saved(tmp_path_factory, digits) -> tuple[Path, TrainConfig]:
    path = tmp_path_factory.mktemp("ck") / "good.npz"
    cfg = _cfg("bp", 1, staleness=1)
    ck.train_with_checkpoints(HW, MODEL, cfg, path, dataset=digits)
    return path, cfg


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _rewrite(path: Path, out: Path, change) -> Path:
    arrays = _arrays(path)
    meta = json.loads(arrays["__meta__"].tobytes())
    change(arrays, meta)
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(out, **arrays)
    return out


@pytest.mark.parametrize("cut", [0, 7, 100, 0.5, -1])
def test_truncated_file_is_a_clear_error(tmp_path: Path, saved, cut) -> None:
    raw = saved[0].read_bytes()
    n = int(len(raw) * cut) if isinstance(cut, float) else (cut % len(raw))
    bad = tmp_path / "cut.npz"
    bad.write_bytes(raw[:n])
    with pytest.raises(ValueError, match=r"checkpoint '.*cut\.npz': is truncated or corrupted"):
        ck.load(bad, HW, MODEL, saved[1])


def test_flipped_bytes_never_load_silently_wrong(tmp_path: Path, saved) -> None:
    raw = saved[0].read_bytes()
    ref = _state(ck.load(saved[0], HW, MODEL, saved[1])[0])
    rng = np.random.default_rng(0)
    bad = tmp_path / "flip.npz"
    n_errors = 0
    for pos in rng.integers(0, len(raw), 40):
        data = bytearray(raw)
        data[pos] ^= 1 << int(rng.integers(8))
        bad.write_bytes(bytes(data))
        try:
            state = _state(ck.load(bad, HW, MODEL, saved[1])[0])
        except ValueError as exc:
            assert "flip.npz" in str(exc)
            n_errors += 1
            continue
        # Only bytes no reader looks at (zip timestamps, …) may change without an error.
        assert all(np.array_equal(ref[k], state[k]) for k in ref)
    assert n_errors >= 30  # array data is CRC-checked: most flips are caught


@pytest.mark.parametrize(("change", "match"), [
    (lambda a, m: a.__setitem__("net.layer0.array.gp",
                                np.full_like(a["net.layer0.array.gp"], np.nan)),
     r"'net.layer0.array.gp' contains NaN"),
    (lambda a, m: a.__setitem__("net.layer1.b", np.zeros(3, np.float32)),
     r"'net.layer1.b' has shape \(3,\)"),
    (lambda a, m: a.__setitem__("net.layer0.array.counters", np.zeros(2, np.float64)),
     "dtype float64.*allowed.*int64"),
    (lambda a, m: a.pop("net.layer1.array.gm"), r"missing arrays \['net.layer1.array.gm'\]"),
    (lambda a, m: a.__setitem__("net.layer9.b", np.zeros(3, np.float32)),
     "unexpected array 'net.layer9.b'"),
    (lambda a, m: m.__setitem__("format", "other"), "format is 'other'"),
    (lambda a, m: m.__setitem__("version", 99), "version 99 is not supported"),
    (lambda a, m: m.__setitem__("epoch", -1), "epoch = -1"),
    (lambda a, m: m["ledger"].__setitem__("network", {"mvm": -5}), "ledger state is invalid"),
    (lambda a, m: m["queue"][0][0].__setitem__("target", "net.layer7"), "pending update"),
    (lambda a, m: m["queue"].append([]), "queue .* is invalid"),
    (lambda a, m: m["opt"].__setitem__("lr", -1.0), "lr = -1.0 is invalid"),
    (lambda a, m: m["progress"].__setitem__("epochs", []), "progress"),
    # Well-formed but impossible physics (the file format alone cannot tell):
    (lambda a, m: a.__setitem__("net.layer0.array.gp",
                                np.full_like(a["net.layer0.array.gp"], 1e6)),
     r"'gp' holds \d+ impossible values \(e.g. np.float32\(1e\+06\)\); allowed: values in "
     r"\[0.0, 1.0\]"),
    (lambda a, m: a.__setitem__("net.layer0.array.frozen_p",
                                np.full_like(a["net.layer0.array.frozen_p"], 7)),
     r"'frozen_p' holds .* allowed: one of \[0, 1\]"),
    (lambda a, m: a.__setitem__("net.layer0.array.clock", np.array(-1e300)),
     r"'clock' = -1e\+300 is invalid; allowed: seconds in \[0, 1e\+12\]"),
    (lambda a, m: a.__setitem__("net.layer0.array.counters", np.array([-1, 0], np.int64)),
     r"'counters' = \[-1, 0\] is invalid"),
    (lambda a, m: m["progress"].__setitem__("n_seen", 10**40), "progress"),
    (lambda a, m: m["progress"].__setitem__("cp_sum", -1.0), "progress"),
])
def test_tampered_content_is_a_clear_error(tmp_path: Path, saved, change, match) -> None:
    bad = _rewrite(saved[0], tmp_path / "bad.npz", change)
    with pytest.raises(ValueError, match=r"checkpoint '.*bad\.npz': .*" + match):
        ck.load(bad, HW, MODEL, saved[1])


def test_ideal_hardware_resumes_and_foreign_inf_is_still_rejected(tmp_path: Path,
                                                                  digits) -> None:
    """``ideal`` has ADC bounds of ``inf`` (from its config): they load; an inf elsewhere,
    or in a bound of a finite-bound preset, does not."""
    ideal = get_preset("ideal")
    path = tmp_path / "ideal.npz"
    cfg = _cfg("dfa", 2)
    once = tmp_path / "straight.npz"
    straight = _saved(ck.train_with_checkpoints(ideal, MODEL, cfg, once, dataset=digits), once,
                      cfg, ideal)
    ck.train_with_checkpoints(ideal, MODEL, _cfg("dfa", 1), path, dataset=digits)
    assert np.isinf(ck.state_arrays(ck.load(path, ideal, MODEL, cfg)[0])[
        "net.layer0.array.bounds"]).all()
    done = ck.train_with_checkpoints(ideal, MODEL, cfg, path, dataset=digits)
    _assert_same_run(straight, _saved(done, path, cfg, ideal))
    bad = _rewrite(path, tmp_path / "bad.npz", lambda a, m: a.__setitem__(
        "net.layer0.b", np.full_like(a["net.layer0.b"], np.inf)))
    with pytest.raises(ValueError, match="'net.layer0.b' contains NaN or Inf"):
        ck.load(bad, ideal, MODEL, cfg)


def test_inf_bound_on_a_finite_bound_preset_is_rejected(tmp_path: Path, saved) -> None:
    bad = _rewrite(saved[0], tmp_path / "bad.npz", lambda a, m: a.__setitem__(
        "net.layer0.array.bounds", np.full_like(a["net.layer0.array.bounds"], np.inf)))
    with pytest.raises(ValueError, match="'net.layer0.array.bounds' contains NaN or Inf"):
        ck.load(bad, HW, MODEL, saved[1])


def test_pickle_npy_and_foreign_files_are_rejected(tmp_path: Path, saved) -> None:
    obj = tmp_path / "obj.npz"
    np.savez(obj, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="need pickle"):
        ck.load(obj, HW, MODEL, saved[1])
    npy = tmp_path / "one.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(ValueError, match="single .npy array"):
        ck.load(npy, HW, MODEL, saved[1])
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.zeros(3))
    with pytest.raises(ValueError, match="no metadata array"):
        ck.load(foreign, HW, MODEL, saved[1])
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        ck.load(tmp_path / "nope.npz", HW, MODEL, saved[1])


def test_config_must_match_except_epochs(saved) -> None:
    path, cfg = saved
    trainer, meta = ck.load(path, HW, MODEL, dataclasses.replace(cfg, epochs=7))
    assert meta["epoch"] == 1 and len(trainer._queue) == 1
    with pytest.raises(ValueError, match=r"different hardware \(sections \['noise'\]\)"):
        ck.load(path, replace_field(HW, "noise.out_noise", 0.01), MODEL, cfg)
    with pytest.raises(ValueError, match=r"different train config \(fields \['lr'\]\)"):
        ck.load(path, HW, MODEL, dataclasses.replace(cfg, lr=0.1))
    with pytest.raises(ValueError, match="different model"):
        ck.load(path, HW, MODEL.replace(sizes=(64, 16, 10)), cfg)
    with pytest.raises(ValueError, match="different model"):
        ck.load(path, HW, MODEL.replace(hidden="relu"), cfg)


def test_crash_mid_save_keeps_the_previous_checkpoint(tmp_path: Path, saved, monkeypatch
                                                      ) -> None:
    path, cfg = saved
    target = tmp_path / "c.npz"
    trainer, meta = ck.load(path, HW, MODEL, cfg)
    ck.save(target, trainer, {k: meta[k] for k in ("epoch", "progress", "config")})
    before = target.read_bytes()
    real_savez = np.savez

    def savez_then_crash(file, **arrays):
        real_savez(file, **{k: arrays[k] for k in list(arrays)[:3]})  # part of the archive
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(np, "savez", savez_then_crash)
    trainer.opt.lr = 0.5  # a different state, which must not reach the file
    with pytest.raises(OSError, match="simulated"):
        ck.save(target, trainer, {k: meta[k] for k in ("epoch", "progress", "config")})
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]  # no temporary left
    assert ck.load(target, HW, MODEL, cfg)[0].opt.lr == cfg.lr


def test_save_rejects_reserved_meta_and_non_trainers(tmp_path: Path, saved) -> None:
    trainer, _ = ck.load(saved[0], HW, MODEL, saved[1])
    with pytest.raises(ValueError, match=r"meta keys \['queue'\] are reserved"):
        ck.save(tmp_path / "x.npz", trainer, {"queue": []})
    with pytest.raises(TypeError, match="trainer must be a Trainer"):
        ck.save(tmp_path / "x.npz", object(), {})


def test_long_file_names_save(tmp_path: Path, saved) -> None:
    """The temporary file's name must not be longer than the target's (found by fuzzing)."""
    trainer, meta = ck.load(saved[0], HW, MODEL, saved[1])
    target = tmp_path / ("c" * 250 + ".npz")
    ck.save(target, trainer, {k: meta[k] for k in ("epoch", "progress", "config")})
    assert ck.read_meta(target)["epoch"] == 1


def test_checkpoint_from_before_a_new_field_loads_where_the_field_is_at_its_default(
        tmp_path: Path, saved) -> None:
    """A field added later (here ``noise.read_noise_model``) is absent from older
    checkpoints: they load while the hardware keeps the field's default behaviour, and are
    refused where it does not."""
    path, cfg = saved
    old = _rewrite(path, tmp_path / "old.npz", lambda a, m: m["config"]["hardware"][
        "noise"].pop("read_noise_model"))
    assert HW.noise.read_noise_model == "additive"
    ck.load(old, HW, MODEL, cfg)
    pcm_noise = replace_field(HW, "noise.read_noise_model", "pcm")
    with pytest.raises(ValueError, match=r"different hardware \(sections \['noise'\]\)"):
        ck.load(old, pcm_noise, MODEL, cfg)


def test_mixed_precision_resume_restores_the_accumulators_bit_exactly(tmp_path: Path,
                                                                      digits) -> None:
    """χ of every updated analog layer (DTP: forward layers and inverses) is saved as
    ``opt.<target>.chi`` and restored; without it the resumed run differs."""
    kw = {"optimizer": "mixed_precision", "optimizer_options": {"threshold": 1.5}}
    path = tmp_path / "run.npz"
    straight = _trained(_cfg("dtp", 2, **kw), digits)
    ck.train_with_checkpoints(HW, MODEL, _cfg("dtp", 1, **kw), path, dataset=digits)
    trainer, meta = ck.load(path, HW, MODEL, _cfg("dtp", 2, **kw))
    chi = {k for k in _state(trainer) if k.startswith("opt.")}
    assert {"opt.net.layer0.chi", "opt.net.layer1.chi"} <= chi
    assert any(k.startswith("opt.rule.") for k in chi)  # the inverses get updates too
    assert any(np.any(_state(trainer)[k] != 0) for k in chi)
    resumed = _trained(_cfg("dtp", 2, **kw), digits, trainer=trainer,
                       start_epoch=meta["epoch"], progress=meta["progress"])
    _assert_same_run(straight, resumed)
    trainer, meta = ck.load(path, HW, MODEL, _cfg("dtp", 2, **kw))
    trainer.opt.optimizer._states.clear()  # drop χ only
    lost = _trained(_cfg("dtp", 2, **kw), digits, trainer=trainer, start_epoch=1,
                    progress=meta["progress"])
    with pytest.raises(AssertionError):
        _assert_same_run(straight, lost)


def test_optimizer_state_is_checked_on_load(tmp_path: Path, digits) -> None:
    cfg = _cfg("dfa", 1, optimizer="mixed_precision")
    path = tmp_path / "run.npz"
    ck.train_with_checkpoints(HW, MODEL, cfg, path, dataset=digits)
    bad = _rewrite(path, tmp_path / "bad.npz", lambda a, m: a.update(
        {"opt.net.layer0.chi": np.zeros((3, 3), np.float32)}))
    with pytest.raises(ValueError, match=r"opt\.net\.layer0\.chi.*shape"):
        ck.load(bad, HW, MODEL, cfg)
    bad = _rewrite(path, tmp_path / "bad2.npz", lambda a, m: a.update(
        {"opt.net.layer9.chi": np.zeros((3, 3), np.float32)}))
    with pytest.raises(ValueError, match=r"unexpected array 'opt\.net\.layer9\.chi'"):
        ck.load(bad, HW, MODEL, cfg)
    with pytest.raises(ValueError, match=r"different train config \(fields \['optimizer'"):
        ck.load(path, HW, MODEL, _cfg("dfa", 1))


def test_checkpoint_from_before_the_optimizer_field_loads_with_sgd(tmp_path: Path,
                                                                   saved) -> None:
    path, cfg = saved
    old = _rewrite(path, tmp_path / "old.npz", lambda a, m: [
        m["config"]["train"].pop(k) for k in ("optimizer", "optimizer_options")])
    ck.load(old, HW, MODEL, cfg)
    with pytest.raises(ValueError, match=r"different train config \(fields \['optimizer'"):
        ck.load(old, HW, MODEL, dataclasses.replace(cfg, optimizer="mixed_precision"))


def test_tiki_taka_resume_restores_the_fast_arrays_bit_exactly(tmp_path: Path,
                                                                digits) -> None:
    kw = {"optimizer": "tiki_taka", "optimizer_options": {"transfer_every": 3}}
    path = tmp_path / "run.npz"
    straight = _trained(_cfg("dfa", 2, **kw), digits)
    ck.train_with_checkpoints(HW, MODEL, _cfg("dfa", 1, **kw), path, dataset=digits)
    trainer, meta = ck.load(path, HW, MODEL, _cfg("dfa", 2, **kw))
    keys = set(_state(trainer))
    assert {"opt.net.layer0.A.gp", "opt.net.layer1.count"} <= keys
    resumed = _trained(_cfg("dfa", 2, **kw), digits, trainer=trainer,
                       start_epoch=meta["epoch"], progress=meta["progress"])
    _assert_same_run(straight, resumed)


@pytest.mark.parametrize(("name", "options"), [
    ("c_ttv2", {"transfer_every": 2, "chop_every": 0, "chop_prob": 0.3}),
    ("agad", {"chop_every": 2}),
])
def test_chopped_tiki_taka_resume_is_bit_exact(tmp_path: Path, digits, name, options) -> None:
    kw = {"optimizer": name, "optimizer_options": options}
    path = tmp_path / "run.npz"
    straight = _trained(_cfg("dfa", 2, **kw), digits)
    ck.train_with_checkpoints(HW, MODEL, _cfg("dfa", 1, **kw), path, dataset=digits)
    trainer, meta = ck.load(path, HW, MODEL, _cfg("dfa", 2, **kw))
    keys = set(_state(trainer))
    want = {"opt.net.layer0.A.gp", "opt.net.layer0.H", "opt.net.layer0.c",
            "opt.net.layer0.chopper_rng", "opt.net.layer1.count"}
    if name == "agad":
        want |= {"opt.net.layer0.R", "opt.net.layer0.M", "opt.net.layer0.m"}
    assert want <= keys
    resumed = _trained(_cfg("dfa", 2, **kw), digits, trainer=trainer,
                       start_epoch=meta["epoch"], progress=meta["progress"])
    _assert_same_run(straight, resumed)
    # The chopper's state matters: losing its signs and random stream changes the run.
    trainer, meta = ck.load(path, HW, MODEL, _cfg("dfa", 2, **kw))
    for _, state in trainer.opt.optimizer._states.values():
        state["c"][:] = 1.0
        state["rng"] = np.random.default_rng(0)
    lost = _trained(_cfg("dfa", 2, **kw), digits, trainer=trainer, start_epoch=1,
                    progress=meta["progress"])
    with pytest.raises(AssertionError):
        _assert_same_run(straight, lost)
