"""Every random stream of a run comes from (run seed, stable name) through one helper, so no
two matrices, arrays or noise streams of one run share a seed (the feedback-seed bug: DFA's
``B0`` equalled ``B1`` and shared its device draws and noise keys with forward layer 1)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from analogsim import oracle
from analogsim.experiments.runner import TrainConfig, build_run
from analogsim.hardware.presets import get_preset
from analogsim.layers.linear import AnalogLinear
from analogsim.layers.network import ModelConfig
from analogsim.seeding import check_seed, derive_rng, derive_seed

# --------------------------------------------------------------------------- the helper


def test_derive_seed_is_stable_and_separates_paths():
    assert derive_seed(0, "layer", 1) == derive_seed(0, "layer", 1)
    names = [("layer", 0), ("layer", 1), ("layer", "1"), ("rule", "dfa", "B1"),
             ("rule", "dfa", "B0"), ("rule", "fa", "B1"), ("layer",), ("layer", 1, "array")]
    seeds = {derive_seed(s, *p) for s in (0, 1, 2**64 - 1) for p in names}
    assert len(seeds) == 3 * len(names)
    assert all(0 <= s < 2**64 for s in seeds)
    # Independent of where the generator is created: a fixed, documented value.
    assert derive_rng(5, "data", "order", 3).integers(0, 2**32, 4).tolist() == \
        derive_rng(5, "data", "order", 3).integers(0, 2**32, 4).tolist()
    assert check_seed(np.int64(3)) == 3


@pytest.mark.parametrize("bad", [-1, 2**64, 1.5, True, "3", None])
def test_bad_seeds_are_refused_with_the_allowed_range(bad):
    with pytest.raises(ValueError, match=r"seed = .* allowed: an integer in \[0, 2\*\*64\)"):
        derive_seed(bad, "x")


@pytest.mark.parametrize("path", [(), (1.5,), (True,), (None,)])
def test_bad_paths_are_refused(path):
    with pytest.raises((ValueError, TypeError), match="path"):
        derive_seed(0, *path)


# --------------------------------------------------------------------------- one whole run

MODEL = ModelConfig(sizes=(64, 48, 48, 48, 10))


def _modules(trainer):
    """Every linear module of a run: forward layers, then the rule's auxiliary modules."""
    mods = {f"W{i}": layer for i, layer in enumerate(trainer.net.layers)}
    mods.update(trainer.rule.modules())
    return mods


def _weights(mod) -> np.ndarray:
    if isinstance(mod, AnalogLinear):
        return oracle.weights(mod.array) * float(mod.scale)
    return np.asarray(mod.w, dtype=np.float64)


def _arrays(trainer):
    """Every crossbar array of the run, by name (forward, twin transposes, auxiliary)."""
    out = {}
    for name, mod in _modules(trainer).items():
        if isinstance(mod, AnalogLinear):
            out[name] = mod.array
            twin = getattr(mod.transpose, "twin", None)
            if twin is not None:
                out[f"{name}.twin"] = twin
    return out


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def _pairs(mats: dict[str, np.ndarray]):
    """Pairs of non-constant matrices with equal element counts (also transposed shapes)."""
    live = {k: v for k, v in mats.items() if np.ptp(v) > 0}
    for (ka, a), (kb, b) in itertools.combinations(live.items(), 2):
        if a.shape == b.shape:
            yield ka, kb, a, b
        elif a.shape == b.T.shape:
            yield ka, kb, a, b.T


CASES = [("fa", "ecram", 0), ("dfa", "pcm", 0), ("dfa", "ecram", 7), ("drtp", "ecram", 1),
         ("dtp", "pcm", 0), ("tp", "ecram", 3), ("dni", "ecram", 0), ("hybrid", "pcm", 2),
         ("bp", "ecram", 0), ("ifa", "ideal", 0)]


def _build(rule: str, preset: str, seed: int, **kw):
    cfg = TrainConfig(rule=rule, seed=seed, **kw)
    return build_run(get_preset(preset), MODEL, cfg, MODEL.sizes[0], MODEL.sizes[-1])


@pytest.mark.parametrize(("rule", "preset", "seed"), CASES)
def test_every_matrix_and_device_draw_of_a_run_is_independent(rule, preset, seed):
    tr = _build(rule, preset, seed, transpose="twin" if rule == "bp" else "probe")
    mats = {k: _weights(m) for k, m in _modules(tr).items()}
    arrays = _arrays(tr)
    checked = 0
    for ka, kb, a, b in _pairs(mats):
        assert not np.array_equal(a, b), (ka, kb)
        if a.size >= 1000:  # |corr| of independent draws has std 1/sqrt(size) <= 0.032
            assert abs(_corr(a, b)) < 0.1, (ka, kb, _corr(a, b))
            checked += 1
    assert checked >= 1
    # Device-to-device variation: no two arrays share their draws.
    draws = {f"{k}.{d}": np.log(v) for k, arr in arrays.items()
             for d, v in oracle.device_variation(arr).items()}
    for ka, kb, a, b in _pairs(draws):
        assert not np.array_equal(a, b), (ka, kb)
        if a.size >= 1000:
            assert abs(_corr(a, b)) < 0.1, (ka, kb, _corr(a, b))
    # Read and update noise: one key per stream, all distinct.
    keys = [k for arr in arrays.values() for k in oracle.noise_keys(arr)]
    assert len(set(keys)) == len(keys)
    assert len({arr.seed for arr in arrays.values()}) == len(arrays)


def test_dfa_feedback_matrices_differ_on_digits_deep():
    """The reported bug: on digits-deep (64-64-64-10) DFA's B0 equalled B1 (corr 1.0)."""
    model = ModelConfig(sizes=(64, 64, 64, 10))
    for seed in (0, 1):
        tr = build_run(get_preset("ecram"), model, TrainConfig(rule="dfa", seed=seed), 64, 10)
        fb = tr.rule.modules()
        b0, b1 = _weights(fb["B0"]), _weights(fb["B1"])
        assert abs(_corr(b0, b1)) < 0.15
        assert fb["B0"].array.seed != fb["B1"].array.seed
        assert fb["B1"].array.seed != tr.net.layers[1].array.seed


def test_same_seed_same_run_other_seed_other_run():
    a, b = _build("dfa", "ecram", 4), _build("dfa", "ecram", 4)
    c = _build("dfa", "ecram", 5)
    for name, mod in _modules(a).items():
        np.testing.assert_array_equal(_weights(mod), _weights(_modules(b)[name]))
        assert not np.array_equal(_weights(mod), _weights(_modules(c)[name]))
