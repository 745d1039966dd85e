"""Analog update algorithms: a NumPy twin of mixed precision, its limit, sgd's identity,
option validation, costs and the run-parameter / CLI wiring."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from analogsim import oracle
from analogsim.experiments import cli
from analogsim.experiments.points import resolve_point
from analogsim.hardware.config import HardwareConfig
from analogsim.hardware.presets import get_preset
from analogsim.layers.linear import AnalogLinear
from analogsim.rules import OPTIMIZERS, SGD, Trainer, get_optimizer, get_rule
from analogsim.rules.optimizers import DirectPulse, MixedPrecision

IDEAL = get_preset("ideal")


def hw_with(base: HardwareConfig = IDEAL, **sections: dict) -> HardwareConfig:
    kw = {sec: dataclasses.replace(getattr(base, sec), **f) for sec, f in sections.items()}
    return dataclasses.replace(base, **kw)


# Noise-free, hard bounds far away, w_max and dw_min powers of two: from G = 0.5 (zero
# weights) every pulse moves a device by exactly 2^-14, so weights are exact pulse sums.
EXACT = hw_with(device={"w_max": 8.0, "dw_min": 2.0**-10, "bounds": "hard", "ctoc": 0.0})


def batches(n_in: int, n_out: int, steps: int, batch: int = 6, seed: int = 1):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        yield (rng.standard_normal((batch, n_in)).astype(np.float32),
               rng.standard_normal((batch, n_out)).astype(np.float32))


def recording(layer: AnalogLinear) -> list[np.ndarray]:
    """Record every count matrix handed to the layer's array (the pulses still happen)."""
    seen: list[np.ndarray] = []
    apply = layer.array.pulse_cells

    def spy(counts, **kw):
        seen.append(counts.copy())
        return apply(counts, **kw)

    layer.array.pulse_cells = spy
    return seen


def test_mixed_precision_matches_a_numpy_twin_exactly() -> None:
    layer = AnalogLinear(5, 4, hw=EXACT, init="zero", bias=False, seed=0)
    opt = get_optimizer("mixed_precision", threshold=1.5, max_pulses=3)
    seen = recording(layer)
    lr = 0.05
    eps = np.float32(EXACT.device.dw_min) * layer.scale
    chi = np.zeros((4, 5), np.float32)
    total = np.zeros((4, 5), np.int64)
    for step, (x, d) in enumerate(batches(5, 4, 8)):
        layer.update(x, d, lr, optimizer=opt)
        chi -= np.float32(lr) * (d.T @ x)
        n = np.where(np.abs(chi) >= np.float32(1.5) * eps, np.trunc(chi / eps), 0)
        n = np.clip(n, -3, 3).astype(np.float32)
        chi -= n * eps
        total += n.astype(np.int64)
        np.testing.assert_array_equal(seen[step], n.astype(np.int64))
        np.testing.assert_array_equal(opt._states[id(layer)][1]["chi"], chi)
    assert np.abs(total).sum() > 0 and np.abs(seen[-1]).max() <= 3
    # Every pulse landed whole: the device weights are the pulse sums, exactly.
    np.testing.assert_array_equal(oracle.weights(layer.array),
                                  (total * EXACT.device.dw_min).astype(np.float32))


def test_mixed_precision_tends_to_sgd_as_the_granularity_vanishes() -> None:
    # w_max 1, dw_min 2^-14: float32 conductances still resolve a pulse (2^-15 per device
    # around G = 0.5); a small lr keeps the direct update's pulse trains uncut.
    fine = hw_with(device={"w_max": 1.0, "dw_min": 2.0**-14})
    mp, sgd = (AnalogLinear(6, 5, hw=fine, bias=False, seed=4) for _ in range(2))
    w0 = oracle.weights(mp.array) * mp.scale
    np.testing.assert_array_equal(w0, oracle.weights(sgd.array) * sgd.scale)
    opt = get_optimizer("mixed_precision")
    exact = w0.astype(np.float64)
    for x, d in batches(6, 5, 6):
        mp.update(x, d, 0.001, optimizer=opt)
        sgd.update(x, d, 0.001)
        exact -= 0.001 * d.T.astype(np.float64) @ x
    assert sgd.ledger.totals()["pulse_clips"] == 0
    # Each differs from the exact float update by at most a few pulses' worth.
    step = fine.device.dw_min * float(mp.scale)
    w_mp = oracle.weights(mp.array) * mp.scale
    w_sgd = oracle.weights(sgd.array) * sgd.scale
    assert np.max(np.abs(w_mp - exact)) < 2 * step
    assert np.max(np.abs(w_sgd - exact)) < 8 * step
    np.testing.assert_allclose(w_mp, w_sgd, rtol=0, atol=8 * step)


def _trainer(optimizer=None):
    from analogsim.layers.network import ModelConfig, build_network

    net = build_network(ModelConfig(sizes=(8, 6, 3)), get_preset("aihwkit_default"), seed=2)
    return Trainer(net, get_rule("dfa", seed=2), SGD(0.05, optimizer=optimizer))


def test_sgd_optimizer_is_the_default_path_bit_for_bit() -> None:
    a, b = _trainer(), _trainer(get_optimizer("sgd"))
    assert isinstance(a.opt.optimizer, DirectPulse)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.standard_normal((4, 8)).astype(np.float32)
        t = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 4)]
        a.step(x, t)
        b.step(x, t)
    for la, lb in zip(a.net.layers, b.net.layers, strict=True):
        np.testing.assert_array_equal(oracle.weights(la.array), oracle.weights(lb.array))
    assert a.net.ledger.state_dict() == b.net.ledger.state_dict()
    # …and equal to calling the layer without any optimizer (the pre-optimizer path).
    layer = AnalogLinear(5, 4, hw=get_preset("aihwkit_default"), seed=1)
    other = AnalogLinear(5, 4, hw=get_preset("aihwkit_default"), seed=1)
    for x, d in batches(5, 4, 3):
        layer.update(x, d, 0.1)
        other.update(x, d, 0.1, optimizer=DirectPulse())
    np.testing.assert_array_equal(oracle.weights(layer.array), oracle.weights(other.array))
    assert layer.ledger.state_dict() == other.ledger.state_dict()


def test_mixed_precision_charges_its_digital_work_to_an_optimizer_scope() -> None:
    layer = AnalogLinear(5, 4, hw=EXACT, seed=0)
    opt = MixedPrecision()
    x, d = next(batches(5, 4, 1, batch=3))
    layer.update(x, d, 0.5, optimizer=opt)
    got = layer.ledger.child("optimizer").totals()
    assert got["digital_macs"] == 3 * 5 * 4
    assert got["mem_held_bytes"] == 4 * 5 * 4  # charged once
    assert got["mem_bytes"] == 2 * 4 * 5 * 4 and got["digital_mults"] == 2 * 20
    assert got["digital_adds"] >= 2 * 20
    arr = layer.ledger.child("array").totals()
    assert arr["write_pulses"] > 0 and arr["update_cycles"] > 0
    layer.update(x, d, 0.5, optimizer=opt)
    assert layer.ledger.child("optimizer").totals()["mem_held_bytes"] == 4 * 5 * 4
    # A digital layer takes its exact step: no optimizer state, no optimizer charges.
    from analogsim.layers.linear import DigitalLinear
    dig = DigitalLinear(5, 4, seed=0)
    dig.update(x, d, 0.5, optimizer=opt)
    assert id(dig) not in opt._states
    assert dig.ledger.child("optimizer").totals()["digital_macs"] == 0


def test_fixed_feedback_arrays_hold_no_optimizer_state() -> None:
    tr = _trainer(get_optimizer("mixed_precision"))
    x = np.ones((2, 8), np.float32)
    tr.step(x, np.eye(3, dtype=np.float32)[[0, 1]])
    layers = {id(layer) for layer in tr.net.layers}
    assert set(tr.opt.optimizer._states) == layers
    assert tr.rule.modules()  # analog feedback arrays exist, and are never updated


@pytest.mark.parametrize(("name", "options", "match"), [
    ("adam", {}, r"^optimizer = 'adam' is unknown; allowed: sgd, mixed_precision, tiki_taka, "
     r"ttv2, c_ttv2, agad$"),
    ("mixed_precision", {"thresh": 2.0},
     r"^optimizer 'mixed_precision': option 'thresh' is unknown \(did you mean "
     r"'threshold'\?\); allowed: threshold, max_pulses$"),
    ("sgd", {"threshold": 2.0}, r"^optimizer 'sgd': option 'threshold' is unknown; "
                                r"allowed: \(no options\)$"),
    ("mixed_precision", {"threshold": 0.5},
     r"^optimizer\.threshold = 0\.5 is invalid; allowed: a real number in \[1\.0, "),
    ("mixed_precision", {"max_pulses": 0}, r"^optimizer\.max_pulses = 0 is invalid"),
    ("mixed_precision", {"max_pulses": 2.5}, r"^optimizer\.max_pulses = 2\.5 is invalid"),
])
def test_options_are_validated_with_clear_messages(name, options, match) -> None:
    with pytest.raises(ValueError, match=match):
        get_optimizer(name, **options)


def test_registry_and_run_parameters() -> None:
    assert list(OPTIMIZERS) == ["sgd", "mixed_precision", "tiki_taka", "ttv2", "c_ttv2",
                              "agad"]
    run = resolve_point({"optimizer": "mixed_precision", "optimizer.threshold": 2,
                         "optimizer.max_pulses": "none"})
    assert run.train.optimizer == "mixed_precision"
    assert run.train.optimizer_options == {"threshold": 2.0, "max_pulses": None}
    with pytest.raises(ValueError, match=r"optimizer 'mixed_precision': option 'thresh' is "
                                         r"unknown \(did you mean 'threshold'\?\)"):
        resolve_point({"optimizer": "mixed_precision", "optimizer.thresh": 2})
    with pytest.raises(ValueError, match=r"optimizer = 'adam' is invalid; allowed: one of "
                                         r"'sgd', 'mixed_precision'"):
        resolve_point({"optimizer": "adam"})
    with pytest.raises(ValueError, match=r"optimizer\.threshold = 0\.1 is invalid"):
        resolve_point({"optimizer": "mixed_precision", "optimizer.threshold": 0.1})


def test_cli_trains_with_mixed_precision(capsys) -> None:
    argv = ["train", "--rule", "dfa", "--hardware", "pcm", "--optimizer", "mixed_precision",
            "--set", "optimizer.threshold=1", "--epochs", "1", "--json"]
    assert cli.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["train"]["optimizer"] == "mixed_precision"
    assert out["config"]["train"]["optimizer_options"] == {"threshold": 1.0}
    assert out["ledger"]["mem_held_bytes"] > 0 and out["ledger"]["write_pulses"] > 0


@pytest.mark.parametrize("kind", ["shadow", "twin", "probe"])
def test_transpose_strategies_follow_whole_pulse_updates(kind) -> None:
    hw = hw_with(EXACT, periphery={"bidirectional": False})
    layer = AnalogLinear(5, 4, hw=hw, init="zero", bias=False, seed=0, transpose=kind)
    # A twin takes the counts as a rank-n_in pulse update, capped at bl·n_in = 320 pulses.
    opt = get_optimizer("mixed_precision", max_pulses=64)
    for x, d in batches(5, 4, 3):
        layer.update(x, d, 0.05, optimizer=opt)
    w = oracle.weights(layer.array)
    assert np.abs(w).max() > 0
    if kind == "shadow":  # the intended change n Δw_min, mirrored exactly
        np.testing.assert_array_equal(layer.transpose.weights, w)
    elif kind == "twin":  # its own pulses, one input line per sample: close, not equal
        np.testing.assert_allclose(oracle.weights(layer.transpose.twin).T, w, rtol=0,
                                   atol=2 * EXACT.device.dw_min)
    else:  # the probe counts the updates: its readout is refreshed
        assert layer.transpose._updates_since == 3


def test_tiki_taka_updates_the_fast_array_and_transfers_one_column_at_a_time() -> None:
    layer = AnalogLinear(3, 4, hw=EXACT, bias=False, seed=0)
    c0 = oracle.weights(layer.array).copy()
    opt = get_optimizer("tiki_taka", gamma=0.5, transfer_every=2, transfer_lr=0.1)
    x, d = next(batches(3, 4, 1))
    # lr small enough that a transfer (one sample: at most bl = 64 pulses) is not cut.
    layer.update(x, d, 0.01, optimizer=opt)  # update 1: A only
    fast = opt._states[id(layer)][1]["A"]
    a1 = oracle.weights(fast)
    assert np.abs(a1).max() > 0
    np.testing.assert_array_equal(oracle.weights(layer.array), c0)
    # The layer now reads W = s (C + γ A), both arrays through their own (ideal) path.
    xs = np.eye(3, dtype=np.float32)
    w = (c0 + np.float32(0.5) * a1) * layer.scale
    np.testing.assert_allclose(layer.read(xs), xs @ w.T, rtol=0, atol=1e-5)
    layer.update(x, d, 0.01, optimizer=opt)  # update 2: A, then column 0 of A → C
    a2 = oracle.weights(fast)
    dc = oracle.weights(layer.array) - c0
    assert np.all(dc[:, 1:] == 0)
    np.testing.assert_allclose(dc[:, 0], 0.1 * a2[:, 0], rtol=0,
                               atol=EXACT.device.dw_min)
    assert list(opt._states[id(layer)][1]["count"]) == [2, 1]
    assert layer.ledger.child("array").totals()["pulse_clips"] == 0
    # The fast array's reads and pulses are the optimizer's costs.
    scope = layer.ledger.child("optimizer").child("fast_array").totals()
    assert scope["mvm"] == 3 + 1 and scope["write_pulses"] > 0  # 3 read vectors + 1 probe


def test_tiki_taka_refuses_a_layer_with_a_transpose_strategy() -> None:
    layer = AnalogLinear(3, 4, hw=EXACT, seed=0, transpose="shadow")
    x, d = next(batches(3, 4, 1))
    with pytest.raises(ValueError, match="transpose = 'shadow'"):
        layer.update(x, d, 0.05, optimizer=get_optimizer("tiki_taka"))


def _tt_state(opt, layer) -> dict:
    return opt._states[id(layer)][1]


def test_ttv2_matches_a_numpy_twin_of_its_transfer_exactly() -> None:
    layer = AnalogLinear(3, 4, hw=EXACT, bias=False, seed=0)
    opt = get_optimizer("ttv2", transfer_every=2, transfer_lr=0.3)
    seen = recording(layer)
    scale = np.float32(0.3) / np.float32(EXACT.device.dw_min)
    h = np.zeros((4, 3), np.float32)
    c = oracle.weights(layer.array).copy()
    transfers = 0
    for step, (x, d) in enumerate(batches(3, 4, 10)):
        layer.update(x, d, 0.01, optimizer=opt)
        if step % 2 == 0:  # no transfer on odd updates
            assert len(seen) == transfers
            continue
        j = transfers % 3
        a = oracle.weights(_tt_state(opt, layer)["A"])  # A's column, read noise-free
        h[:, j] += scale * a[:, j]
        n = np.trunc(h[:, j])
        h[:, j] -= n
        want = np.zeros((4, 3), np.int64)
        want[:, j] = n.astype(np.int64)
        np.testing.assert_array_equal(seen[transfers], want)
        np.testing.assert_array_equal(_tt_state(opt, layer)["H"], h)
        c += want.astype(np.float32) * np.float32(EXACT.device.dw_min)
        transfers += 1
    assert transfers == 5 and sum(np.abs(s).sum() for s in seen) > 0
    assert np.all(np.abs(h) < 1)
    # Whole pulses on a linear, noise-free device: C moved by exactly n Δw_min.
    np.testing.assert_array_equal(oracle.weights(layer.array), c)
    scope = layer.ledger.child("optimizer")
    fast = scope.child("fast_array").totals()
    got = {k: v - fast[k] for k, v in scope.totals().items()}  # the digital work only
    assert got["mem_held_bytes"] == 4 * 12 + 16  # H and the counters, once
    assert got["mem_bytes"] == 5 * 2 * 4 * 4 and got["digital_mults"] == 5 * 4
    assert got["digital_adds"] == 5 * 2 * 4 + sum(np.count_nonzero(s) for s in seen)
    assert fast["mvm"] == 5  # γ = 0: A is read by the probes only, not by the forward pass


@pytest.mark.parametrize("name", ["c_ttv2", "agad"])
def test_chopper_signs_flip_at_the_configured_period(name) -> None:
    layer = AnalogLinear(3, 4, hw=EXACT, bias=False, seed=0)
    opt = get_optimizer(name, chop_every=2)
    signs = []
    for x, d in batches(3, 4, 12):
        layer.update(x, d, 0.01, optimizer=opt)
        signs.append(_tt_state(opt, layer)["c"].copy())
    # Column j is read at updates j+1, j+4, j+7, j+10 and flips after every second read.
    want = np.ones((12, 3), np.float32)
    for j in range(3):
        for t in range(12):
            reads = (t - j) // 3 + 1 if t >= j else 0
            want[t, j] = (-1.0) ** (reads // 2)
    np.testing.assert_array_equal(np.array(signs), want)


def test_random_chopper_is_seeded_and_flips_at_about_its_rate() -> None:
    flips = []
    for _ in range(2):
        layer = AnalogLinear(4, 3, hw=EXACT, bias=False, seed=5)
        opt = get_optimizer("c_ttv2", chop_every=0, chop_prob=0.25)
        signs = []
        for x, d in batches(4, 3, 200, batch=1):
            layer.update(x, d, 0.001, optimizer=opt)
            signs.append(_tt_state(opt, layer)["c"].copy())
        flips.append(np.array(signs))
    np.testing.assert_array_equal(flips[0], flips[1])  # derived stream: reproducible
    rate = np.count_nonzero(np.diff(flips[0], axis=0)) / 199
    assert 0.15 < rate < 0.35


@pytest.mark.parametrize("off", [{"chop_every": 0}, {"chop_every": 0, "chop_prob": 0.0}])
def test_c_ttv2_without_chopper_is_ttv2_bit_for_bit(off) -> None:
    hw = get_preset("aihwkit_default")  # noisy reads, device variation, stochastic pulses
    layers = [AnalogLinear(5, 4, hw=hw, bias=False, seed=3) for _ in range(2)]
    opts = [get_optimizer("ttv2", transfer_lr=2.0),
            get_optimizer("c_ttv2", transfer_lr=2.0, **off)]
    for x, d in batches(5, 4, 12):
        for layer, opt in zip(layers, opts, strict=True):
            layer.update(x, d, 0.05, optimizer=opt)
            layer.read(x)
    a, b = (_tt_state(o, la) for o, la in zip(opts, layers, strict=True))
    np.testing.assert_array_equal(a["H"], b["H"])
    np.testing.assert_array_equal(oracle.weights(a["A"]), oracle.weights(b["A"]))
    np.testing.assert_array_equal(oracle.weights(layers[0].array),
                                  oracle.weights(layers[1].array))
    assert np.abs(a["H"]).max() > 0 and np.all(b["c"] == 1)


def test_chopper_cancels_an_offset_of_the_fast_array() -> None:
    # An offset on A (as from drift towards its symmetry point) and zero gradient: ttv2
    # transfers it to C again at every read; c_ttv2 with alternating signs, so it cancels;
    # AGAD once (a step of A looks like a gradient), then never again.
    moved = {}
    for name in ("ttv2", "c_ttv2", "agad"):
        layer = AnalogLinear(2, 2, hw=EXACT, bias=False, seed=0)
        opt = get_optimizer(name, transfer_lr=1.0)
        c0 = oracle.weights(layer.array).copy()
        zero = np.zeros((1, 2), np.float32)
        layer.update(zero, zero, 0.01, optimizer=opt)
        fast = _tt_state(opt, layer)["A"]
        fast.pulse_cells(np.full((2, 2), 40, np.int64))  # the offset
        for _ in range(20):
            layer.update(zero, zero, 0.01, optimizer=opt)
        moved[name] = np.abs(oracle.weights(layer.array) - c0).max() / EXACT.device.dw_min
    assert moved["ttv2"] > 300
    assert moved["c_ttv2"] <= 40 and moved["agad"] <= 40


def test_agad_learns_a_small_problem_on_ecram() -> None:
    hw = get_preset("ecram")
    rng = np.random.default_rng(0)
    w_true = rng.standard_normal((3, 6)).astype(np.float32) * 0.5
    layer = AnalogLinear(6, 3, hw=hw, bias=False, seed=1, init="zero")
    opt = get_optimizer("agad")
    xs = rng.standard_normal((64, 6)).astype(np.float32)

    def loss() -> float:
        return float(np.mean((layer.read(xs) - xs @ w_true.T) ** 2))

    before = loss()
    for _ in range(300):
        x = rng.standard_normal((8, 6)).astype(np.float32)
        layer.update(x, (layer.read(x) - x @ w_true.T) / 8, 0.1, optimizer=opt)
    assert loss() < 0.1 * before


@pytest.mark.parametrize(("name", "options", "match"), [
    ("c_ttv2", {"chop_prob": 0.1},
     r"^optimizer\.chop_prob = 0\.1 is invalid; allowed: 0 while chop_every > 0"),
    ("agad", {"chop_prob": 1.5}, r"^optimizer\.chop_prob = 1\.5 is invalid"),
    ("c_ttv2", {"chop_every": -1}, r"^optimizer\.chop_every = -1 is invalid"),
    ("ttv2", {"transfer_lr": 0.0}, r"^optimizer\.transfer_lr = 0\.0 is invalid"),
    ("ttv2", {"chop_every": 2}, r"^optimizer 'ttv2': option 'chop_every' is unknown; "
                                r"allowed: gamma, transfer_every, transfer_lr$"),
    ("agad", {"gamma": 1.0}, r"^optimizer 'agad': option 'gamma' is unknown; allowed: "
                             r"transfer_every, transfer_lr, chop_every, chop_prob$"),
])
def test_tiki_taka_family_options_are_validated(name, options, match) -> None:
    with pytest.raises(ValueError, match=match):
        get_optimizer(name, **options)


def test_ttv2_with_gamma_refuses_a_layer_with_a_transpose_strategy() -> None:
    layer = AnalogLinear(3, 4, hw=EXACT, seed=0, transpose="shadow")
    x, d = next(batches(3, 4, 1))
    with pytest.raises(ValueError, match="gamma = 0.5 .* transpose = 'shadow'"):
        layer.update(x, d, 0.05, optimizer=get_optimizer("ttv2", gamma=0.5))


@pytest.mark.parametrize("kind", ["shadow", "twin", "probe"])
@pytest.mark.parametrize("name", ["ttv2", "c_ttv2", "agad"])
def test_transpose_strategies_follow_the_transfers_when_a_is_not_read(name, kind) -> None:
    # γ = 0: the weight is C alone, and C changes only by transfer pulses (pulse_cells),
    # which every strategy sees — so backprop may use these optimizers.
    hw = hw_with(EXACT, periphery={"bidirectional": False})
    layer = AnalogLinear(5, 4, hw=hw, init="zero", bias=False, seed=0, transpose=kind)
    opt = get_optimizer(name, transfer_lr=1.0)
    for x, d in batches(5, 4, 12):
        layer.update(x, d, 0.05, optimizer=opt)
    w = oracle.weights(layer.array) * layer.scale
    assert np.abs(w).max() > 0  # transfers happened
    d = np.eye(4, dtype=np.float32)
    got = layer.backward_input(d)
    if kind == "twin":  # its own stochastic pulses, capped at bl per cell: same trend only
        assert np.corrcoef(got.ravel(), w.ravel())[0, 1] > 0.5
    else:
        np.testing.assert_allclose(got, d @ w, rtol=0, atol=1e-6)


