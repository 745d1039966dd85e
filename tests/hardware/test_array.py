"""The forward-only crossbar array: physics, costs, errors, and what it must not offer.

Device settings with power-of-two ``w_max`` and ``dw_min`` (``EXACT``) make the pulse
arithmetic exact in float32, so deterministic update tests compare bit for bit.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import re
from pathlib import Path

import numpy as np
import pytest

import analogsim
from analogsim import oracle
from analogsim.hardware.array import BidirectionalArray, CrossbarArray, make_array
from analogsim.hardware.config import HardwareConfig
from analogsim.hardware.ledger import COUNTERS, Ledger
from analogsim.hardware.presets import get_preset

IDEAL = get_preset("ideal")


def hw_with(base: HardwareConfig = IDEAL, **sections: dict) -> HardwareConfig:
    """``base`` with ``section={field: value}`` overrides (validated by the dataclasses)."""
    kw = {sec: dataclasses.replace(getattr(base, sec), **f) for sec, f in sections.items()}
    return dataclasses.replace(base, **kw)


# w_max = 8, dw_min = 2^-10: α = 2^-13, one hard-bound pulse moves each device by 2^-14,
# exactly representable around G = 0.5, so pulse sums are exact.
EXACT = hw_with(device={"w_max": 8.0, "dw_min": 2.0**-10, "bounds": "hard"})
DW = 2.0**-10


def f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def programmed(shape=(5, 7), hw=IDEAL, seed=0, scale=0.3):
    arr = make_array(*shape[::-1], hw, seed=seed)  # shape is (n_out, n_in)
    rng = np.random.default_rng(seed + 100)
    w = rng.uniform(-scale, scale, shape) * hw.device.w_max
    arr.program(w)
    return arr, w, rng


def zero_counts(**nonzero: int) -> dict[str, int]:
    out = dict.fromkeys(COUNTERS, 0)
    out.update(nonzero)
    return out


# =========================================================================== (a) no transpose

ALLOWED_PUBLIC = {
    "n_out", "n_in", "hw", "seed", "ledger", "clock", "shape", "n_tiles",
    "subscribe", "program", "mvm", "pulse_update", "pulse_cells", "advance_clock",
    "state_dict", "load_state_dict",
}


def _all_names(obj: object) -> set[str]:
    return set(dir(obj)) | set(getattr(obj, "__dict__", {}))


def test_array_has_no_transposed_read_under_any_name():
    arr, _, _ = programmed(hw=hw_with(periphery={"bidirectional": False}))
    for name in _all_names(CrossbarArray) | _all_names(arr):
        low = name.lower()
        assert not any(s in low for s in ("transpose", "mvm_t", "rmatvec")), name
        assert "T_" not in name and name != "T", name


def test_public_surface_is_exactly_the_physical_operations():
    arr, _, _ = programmed(hw=hw_with(periphery={"bidirectional": False}))
    public = {n for n in _all_names(arr) if not n.startswith("_")}
    assert public == ALLOWED_PUBLIC
    for name in public:
        assert "weight" not in name and "conduct" not in name
        value = getattr(arr, name)
        # Nothing public *is* a matrix (the only arrays leave through state_dict, a checkpoint).
        assert not isinstance(value, np.ndarray), name
    # No flag on the operations selects another direction or returns the weights.
    sig = {n: list(inspect.signature(getattr(CrossbarArray, n)).parameters)
           for n in ("mvm", "program", "pulse_update", "pulse_cells", "advance_clock")}
    assert sig == {"mvm": ["self", "x", "ledger"], "program": ["self", "w", "ledger"],
                   "pulse_update": ["self", "x", "d", "lr", "ledger"],
                   "pulse_cells": ["self", "counts", "ledger"],
                   "advance_clock": ["self", "seconds"]}
    assert arr.mvm(np.zeros((1, 7), np.float32)).shape == (1, 5)  # (B, n_out) only


def test_make_array_builds_bidirectional_only_when_configured():
    plain = make_array(4, 3, hw_with(periphery={"bidirectional": False}), seed=0)
    assert type(plain) is CrossbarArray
    assert not hasattr(plain, "mvm_transposed")
    bidi = make_array(4, 3, IDEAL, seed=0)
    assert type(bidi) is BidirectionalArray and hasattr(bidi, "mvm_transposed")
    with pytest.raises(ValueError, match="bidirectional = False"):
        BidirectionalArray(4, 3, hw_with(periphery={"bidirectional": False}), seed=0)


#: What an analog update algorithm may call on a layer's array: forward-only operations.
OPTIMIZER_ARRAY_OPS = {"mvm", "program", "pulse_update", "pulse_cells"}
#: Names that would mean a transposed read (or the weights) in an optimizer.
TRANSPOSED_NAMES = ("transpose", "mvm_t", "rmatvec", "matvec_t", "backward_input", "oracle")


def _array_calls(tree: ast.AST) -> tuple[set[str], list[str]]:
    """``(methods called on some ``….array``, names that look like a transposed read)``."""
    calls, bad = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Attribute) and node.value.attr == "array":
                calls.add(node.attr)
            if any(t in node.attr.lower() for t in TRANSPOSED_NAMES):
                bad.append(ast.unparse(node))
        elif isinstance(node, ast.Name) and any(t in node.id.lower() for t in TRANSPOSED_NAMES):
            bad.append(node.id)
    return calls, bad


def test_optimizers_use_only_forward_array_operations():
    path = Path(analogsim.__file__).resolve().parent / "rules" / "optimizers.py"
    calls, bad = _array_calls(ast.parse(path.read_text(encoding="utf-8")))
    assert bad == []
    assert calls and calls <= OPTIMIZER_ARRAY_OPS, calls - OPTIMIZER_ARRAY_OPS
    # The detector sees what it should.
    calls, bad = _array_calls(ast.parse("layer.array.mvm_transposed(d); layer.transpose.x"))
    assert calls == {"mvm_transposed"} and len(bad) == 2


def test_pulse_cells_applies_exact_counts_and_charges_rows():
    arr = make_array(4, 3, EXACT, seed=0)
    arr.program(np.zeros((3, 4)))
    n = np.array([[1, -2, 0, 3], [0, 0, 5, -1], [2, 2, 2, 2]])
    ledger = Ledger("t")
    arr.pulse_cells(n, ledger=ledger)
    np.testing.assert_array_equal(oracle.weights(arr), n * DW)
    # Per input line: max UP count + max DOWN count, the lines one after another.
    assert ledger.totals() == zero_counts(write_pulses=20, update_cycles=2 + 4 + 5 + 4)
    with pytest.raises(TypeError, match="integer"):
        arr.pulse_cells(n.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        arr.pulse_cells(n[:2])
    with pytest.raises(ValueError, match="2\\*\\*24"):
        arr.pulse_cells(n * (1 << 24))


# =========================================================================== (b) oracle use

PKG = Path(analogsim.__file__).resolve().parent
ORACLE_OK = {"oracle.py", "experiments/plots.py", "experiments/weights.py"}
PRIVATE_OK = {"hardware/array.py", "oracle.py"}
PRIVATE_STATE = {"_gp", "_gm", "_read_matrix", "_w_cache", "_frozen_p", "_frozen_m"}


def _module_name(rel: str) -> list[str]:
    parts = ["analogsim", *rel[:-3].split("/")]
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imports_oracle(tree: ast.AST, rel: str) -> list[str]:
    here = _module_name(rel)
    package = here if rel.endswith("__init__.py") else here[:-1]
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            hits += [a.name for a in node.names if a.name.split(".")[:2] == ["analogsim", "oracle"]]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            mod = base + (node.module.split(".") if node.module else [])
            names = [a.name for a in node.names]
            if mod[:2] == ["analogsim", "oracle"] or (mod == ["analogsim"] and "oracle" in names):
                hits.append(f"from {'.' * node.level}{node.module or ''} import {names}")
        elif (isinstance(node, ast.Call) and any(isinstance(a, ast.Constant)
              and isinstance(a.value, str) and "oracle" in a.value for a in node.args)
              and ast.unparse(node.func).split(".")[-1] in ("import_module", "__import__")):
            hits.append(ast.unparse(node))
    return hits


def _touches_private_state(tree: ast.AST) -> list[str]:
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_STATE:
            hits.append(ast.unparse(node))
        elif (isinstance(node, ast.Call) and ast.unparse(node.func) in ("getattr", "setattr")
              and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
              and node.args[1].value in PRIVATE_STATE):
            hits.append(ast.unparse(node))
        elif (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
              and node.slice.value in ("gp", "gm")):
            # The conductances inside an array's state_dict (a checkpoint, not a readout).
            hits.append(ast.unparse(node))
    return hits


def _package_sources():
    files = sorted(PKG.rglob("*.py"))
    assert len(files) > 10
    for path in files:
        rel = path.relative_to(PKG).as_posix()
        yield rel, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_library_code_never_uses_the_oracle_or_array_internals():
    bad_imports, bad_access = {}, {}
    for rel, tree in _package_sources():
        if rel not in ORACLE_OK and (hits := _imports_oracle(tree, rel)):
            bad_imports[rel] = hits
        if rel not in PRIVATE_OK and (hits := _touches_private_state(tree)):
            bad_access[rel] = hits
    assert bad_imports == {}, ("only tests, experiments/plots.py and experiments/weights.py (its "
                               "export, labelled non-physical) may import analogsim.oracle")
    assert bad_access == {}, "only hardware/array.py and oracle.py may touch device state"


def test_grep_helpers_detect_what_they_should():
    # The checks above are only as good as these detectors.
    for src in ("from analogsim import oracle", "import analogsim.oracle as o",
                "from analogsim.oracle import weights", "from .. import oracle",
                "from ..oracle import weights", "importlib.import_module('analogsim.oracle')"):
        assert _imports_oracle(ast.parse(src), "layers/linear.py"), src
    for src in ("from . import oracle",):  # inside the top-level package
        assert _imports_oracle(ast.parse(src), "rules/__init__.py") == [], src
        assert _imports_oracle(ast.parse(src), "something.py"), src
    for src in ("from . import linear", "from ..hardware import array", "x = 'oracle'"):
        assert _imports_oracle(ast.parse(src), "layers/linear.py") == [], src
    for src in ("a._gp", "self.array._gm[0]", "arr._read_matrix()", "getattr(a, '_w_cache')",
                "s['gp']", "a._frozen_p"):
        assert _touches_private_state(ast.parse(src)), src
    assert _touches_private_state(ast.parse("a._gpx; a.gp; a._weights")) == []


# =========================================================================== (c) ideal reads


@pytest.mark.parametrize("shape", [(5, 7), (1, 1), (33, 3)])
def test_ideal_mvm_is_the_matrix_product(shape):
    arr, w, rng = programmed(shape)
    np.testing.assert_allclose(oracle.weights(arr), w, rtol=0, atol=1e-5)
    x = f32(rng.standard_normal((4, shape[1])))
    y = arr.mvm(x)
    assert y.dtype == np.float32 and y.shape == (4, shape[0])
    np.testing.assert_allclose(y, x @ w.T, rtol=1e-5, atol=1e-5)


def test_oracle_returns_copies_and_charges_nothing():
    hw = hw_with(noise={"read_noise": 0.02, "prog_noise": 0.01})
    arr, w, rng = programmed(hw=hw)
    twin, _, _ = programmed(hw=hw)  # same seed and history, never inspected
    before = arr.ledger.totals()
    gp, gm = oracle.conductances(arr)
    assert gp.dtype == gm.dtype == np.float32 and gp.shape == (5, 7)
    gp[:] = 0.0
    gm[:] = 1.0
    wt = oracle.weights(arr)
    assert wt.dtype == np.float64
    wt[:] = 0.0
    oracle.stuck_mask(arr)[:] = True
    assert oracle.drift_clock(arr) == 0.0
    oracle.shadow_divergence(arr, w)
    assert arr.ledger.totals() == before
    np.testing.assert_array_equal(oracle.weights(arr), oracle.weights(twin))
    assert not oracle.stuck_mask(arr).any()
    x = f32(rng.standard_normal((2, 7)))
    np.testing.assert_array_equal(arr.mvm(x), twin.mvm(x))  # no random draw was consumed


def test_oracle_shadow_divergence_and_stuck_mask():
    arr, w, _ = programmed()
    d = oracle.shadow_divergence(arr, w)
    assert set(d) == {"rel_fro", "max_abs"} and d["rel_fro"] < 1e-6 and d["max_abs"] < 1e-5
    d2 = oracle.shadow_divergence(arr, 2 * w)
    assert d2["rel_fro"] == pytest.approx(0.5, rel=1e-5)
    assert d2["max_abs"] == pytest.approx(np.max(np.abs(w)), rel=1e-5)
    assert oracle.shadow_divergence(arr, np.zeros((5, 7)))["rel_fro"] == math.inf
    with pytest.raises(ValueError, match="shadow_weights.shape"):
        oracle.shadow_divergence(arr, w.T)
    with pytest.raises(ValueError, match="device"):
        oracle.stuck_mask(arr, "left")
    with pytest.raises(TypeError, match="CrossbarArray"):
        oracle.weights(w)
    assert not oracle.stuck_mask(arr).any()


# =========================================================================== (d) read noise


@pytest.mark.parametrize("tile_rows", [512, 8])
@pytest.mark.parametrize("read_noise,out_noise", [(0.01, 0.0), (0.0, 0.05), (0.02, 0.05)])
def test_read_noise_is_exact_on_the_outputs(tile_rows, read_noise, out_noise):
    hw = hw_with(noise={"read_noise": read_noise, "out_noise": out_noise},
                 tile={"rows": tile_rows})
    arr, _, rng = programmed((6, 20), hw=hw)
    w = oracle.weights(arr)
    x = f32(rng.uniform(-1.5, 1.5, 20))
    reps, calls = 1000, 4
    y = np.concatenate([arr.mvm(np.tile(x, (reps, 1))) for _ in range(calls)])
    res = y.astype(np.float64) - x.astype(np.float64) @ w.T
    n = reps * calls
    # Per output, in layer units: σ_r w_max ‖x‖ from the cells, plus σ_out times the max-abs
    # factor s = max|x| once per input tile (each tile converts its own partial sum).
    s, in_tiles = float(np.max(np.abs(x))), -(-20 // tile_rows)
    sigma = math.sqrt((read_noise * hw.device.w_max) ** 2 * float(x @ x)
                      + in_tiles * (s * out_noise) ** 2)
    std = res.std(axis=0, ddof=1)
    assert np.all(np.abs(std / sigma - 1) < 5 / math.sqrt(2 * (n - 1))), std / sigma
    assert np.all(np.abs(res.mean(axis=0)) < 5 * sigma / math.sqrt(n))
    corr = np.corrcoef(res.T)[np.triu_indices(6, 1)]  # independent across outputs
    assert np.all(np.abs(corr) < 5 / math.sqrt(n))
    kurt = ((res - res.mean(0)) ** 4).mean(0) / res.var(0) ** 2  # Gaussian: 3
    assert np.all(np.abs(kurt - 3) < 5 * math.sqrt(24 / n))


def test_each_read_draws_fresh_noise_and_seeds_reproduce():
    hw = hw_with(noise={"read_noise": 0.02, "out_noise": 0.01})
    x = f32(np.random.default_rng(1).standard_normal((3, 7)))
    a, w, _ = programmed(hw=hw, seed=4)
    y1, y2 = a.mvm(x), a.mvm(x)
    assert not np.any(y1 == y2)
    b, _, _ = programmed(hw=hw, seed=4)
    np.testing.assert_array_equal(b.mvm(x), y1)
    np.testing.assert_array_equal(b.mvm(x), y2)
    c = make_array(7, 5, hw, seed=5)
    c.program(w)
    assert not np.any(c.mvm(x) == y1)


# =========================================================================== (e) updates


def test_expected_update_with_whole_pulses_is_exactly_minus_lr_dtx():
    arr = make_array(4, 3, EXACT, seed=0)
    arr.program(np.zeros((3, 4)))
    x = f32([[1, -2, 3, 0], [2, 1, 0, -1]])
    d = f32([[1, -1, 2], [0, 3, -1]])
    lr = DW  # every cell gets an integer number of pulses: no rounding
    arr.pulse_update(x, d, lr)
    expect = -lr * d.T.astype(np.float64) @ x
    np.testing.assert_array_equal(oracle.weights(arr), expect)
    t = arr.ledger.totals()
    assert t["write_pulses"] == int(np.abs(d.T @ x).sum())
    assert t["pulse_clips"] == 0
    assert t["update_cycles"] == 2 * EXACT.update.bl
    assert t["dac_conversions"] == 2 * (4 + 3)


@pytest.mark.parametrize("preset", ["ideal", "rram"])
def test_expected_update_in_row_blocks_equals_one_block(preset, monkeypatch):
    """The array forms Dᵀ X block by block (cache-sized); the blocks' seeds (first_row)
    make the result independent of the block size, bit for bit."""
    import analogsim.hardware.array as array_mod

    hw = get_preset(preset)
    if hw.update.mode != "expected":
        hw = hw_with(hw, update={"mode": "expected"})
    rng = np.random.default_rng(3)
    x = f32(rng.standard_normal((8, 30)))
    d = f32(rng.standard_normal((8, 21)) * 0.05)
    states = []
    for block_bytes in (1 << 30, 4 * 30 * 4):  # one block; blocks of 4 rows (and a rest)
        monkeypatch.setattr(array_mod, "_UPDATE_BLOCK_BYTES", block_bytes)
        arr, _, _ = programmed((21, 30), hw=hw, seed=4)
        for _ in range(3):
            arr.pulse_update(x, d, 0.01)
        states.append((arr.state_dict(), arr.ledger.totals()))
    (s1, t1), (s2, t2) = states
    assert t1 == t2
    for k in ("gp", "gm"):
        assert s1[k].tobytes() == s2[k].tobytes()


def test_expected_update_is_unbiased_with_fractional_pulses():
    # 3 × 4 distinct requests, each repeated on 20 × 20 cells: every cell is rounded
    # independently, so a class mean over 400 cells and 5 calls is a mean over 2000 roundings.
    rep, calls = 20, 5
    arr = make_array(4 * rep, 3 * rep, EXACT, seed=1)
    arr.program(np.zeros(arr.shape))
    rng = np.random.default_rng(7)
    x0, d0 = f32(rng.uniform(-1, 1, 4)), f32(rng.uniform(-1, 1, 3))
    x, d = np.repeat(x0, rep)[None, :], np.repeat(d0, rep)[None, :]
    lr = 3.3 * DW
    for _ in range(calls):
        arr.pulse_update(x, d, lr)
    per_call = oracle.weights(arr).reshape(3, rep, 4, rep) / calls
    mean_dw = per_call.mean(axis=(1, 3))
    want = -lr * np.outer(d0, x0).astype(np.float64)  # as float32 BLAS forms it, to 1e-7
    # Stochastic rounding: per cell and call std <= dw_min / 2.
    n = rep * rep * calls
    assert np.all(np.abs(mean_dw - want) < 5 * 0.5 * DW / math.sqrt(n) + 1e-6)
    # The device model is exact here: every cell moved by a whole number of pulses, each
    # call by floor or ceil of its request.
    pulses = per_call * calls / DW
    np.testing.assert_array_equal(pulses, np.round(pulses))
    req = np.abs(want / DW)[:, None, :, None]
    assert np.all(np.abs(pulses) >= calls * np.floor(req))
    assert np.all(np.abs(pulses) <= calls * np.ceil(req))
    assert arr.ledger.totals()["write_pulses"] == int(np.abs(pulses).sum())
    assert not np.allclose(mean_dw / DW, np.round(mean_dw / DW))  # really fractional


def test_stochastic_update_has_the_intended_expectation():
    hw = hw_with(EXACT, update={"mode": "stochastic", "bl": 64, "update_management": True})
    arr = make_array(4, 3, hw, seed=2)
    arr.program(np.zeros((3, 4)))
    x = f32([[0.5, -1.0, 0.8, 0.3]])
    d = f32([[0.6, -0.4, 1.0]])
    reps, calls = 256, 20
    xb, db = np.tile(x, (reps, 1)), np.tile(d, (reps, 1))
    for _ in range(calls):
        arr.pulse_update(xb, db, DW)
    n = reps * calls
    expect_pulses = n * np.abs(d.T @ x).astype(np.float64)  # E[n_ij] = lr|d x| / dw_min
    got = oracle.weights(arr) / DW
    want = -np.sign(d.T @ x) * expect_pulses
    # Pulses per cell per sample ~ Binomial(bl, p q): variance below the mean.
    assert np.all(np.abs(got - want) < 5 * np.sqrt(expect_pulses) + 1), got / want
    # All cells together: the total pulse count has relative std <= 1 / sqrt(Σ E[n]).
    assert abs(np.abs(got).sum() / expect_pulses.sum() - 1) < 5 / math.sqrt(expect_pulses.sum())
    t = arr.ledger.totals()
    assert t["write_pulses"] == int(np.abs(got).sum())  # hard bounds, far from them
    assert t["pulse_clips"] == 0


@pytest.mark.parametrize("mode", ["expected", "stochastic"])
def test_ctoc_scope_reaches_the_kernels(mode):
    """``ctoc_scope = "cell"``: one cycle-to-cycle draw moves both devices, so hard-bound
    pulses leave ``G+ + G-`` as programmed and the weight steps spread by ``ctoc`` (not
    ``ctoc/√2``); the default per-device draws change the sum."""
    x = np.random.default_rng(0).standard_normal((16, 40)).astype(np.float32)
    d = np.random.default_rng(1).standard_normal((16, 30)).astype(np.float32)
    sums = {}
    for scope in ("device", "cell"):
        hw = hw_with(EXACT, device={"w_max": 8.0, "dw_min": DW, "bounds": "hard", "ctoc": 0.3,
                                    "ctoc_scope": scope},
                     update={"mode": mode, "bl": 31})
        arr = make_array(40, 30, hw, seed=3)
        arr.program(np.zeros((30, 40)))
        gp0, gm0 = (g.astype(np.float64) for g in oracle.conductances(arr))
        arr.pulse_update(x, d, 20 * DW)
        gp, gm = (g.astype(np.float64) for g in oracle.conductances(arr))
        assert arr.ledger.totals()["write_pulses"] > 0
        sums[scope] = np.abs((gp + gm) - (gp0 + gm0)).max()
    assert sums["cell"] < 1e-6 < sums["device"]


def test_up_down_asymmetry_scales_the_two_directions():
    hw = hw_with(EXACT, device={"w_max": 8.0, "dw_min": DW, "bounds": "hard", "up_down": 0.5})
    arr = make_array(2, 1, hw, seed=0)
    arr.program(np.zeros((1, 2)))
    arr.pulse_update(f32([[1, -1]]), f32([[-1]]), 4 * DW)  # 4 UP pulses, 4 DOWN pulses
    np.testing.assert_array_equal(oracle.weights(arr), [[4 * 1.5 * DW, -4 * 0.5 * DW]])


def test_soft_bounds_saturate_below_w_max():
    hw = hw_with(device={"w_max": 1.0, "dw_min": 2.0**-4, "bounds": "soft"})
    arr = make_array(1, 1, hw, seed=0)
    arr.program(np.zeros((1, 1)))
    alpha, ws = 2.0**-4, [0.0]
    for _ in range(30):  # each call asks for +0.25 = 4 pulses; 7.5 in total
        arr.pulse_update(f32([[1.0]]), f32([[-1.0]]), 0.25)
        ws.append(float(oracle.weights(arr)[0, 0]))
    steps = np.diff(ws)
    assert ws[-1] < 1.0 and np.all(steps > 0) and np.all(np.diff(steps) < 0)
    closed = [1.0 - (1.0 - alpha) ** (4 * k) for k in range(31)]  # w_n = w_max(1 - (1-α)^n)
    np.testing.assert_allclose(ws, closed, atol=5e-6)
    assert arr.ledger.totals()["write_pulses"] == 120


def test_pulse_requests_beyond_the_train_are_cut_and_counted():
    arr = make_array(2, 1, EXACT, seed=0)
    arr.program(np.zeros((1, 2)))
    bl = EXACT.update.bl
    arr.pulse_update(f32([[bl + 10, 1]]), f32([[-1]]), DW)
    np.testing.assert_array_equal(oracle.weights(arr), [[bl * DW, DW]])
    t = arr.ledger.totals()
    assert t["pulse_clips"] == 1 and t["write_pulses"] == bl + 1


def test_large_device_variation_never_gives_a_step_above_the_range():
    # rram: α_up = 0.095 · 1.26 · LogNormal(0, 0.78) exceeds 1 for ~0.3 % of cells; such
    # a cell used to make every pulse_update on a realistic array raise.
    arr = make_array(128, 128, get_preset("rram"), seed=0)
    st = arr.state_dict()
    assert st["alpha_up"].max() == 1.0 and st["alpha_down"].max() <= 1.0
    arr.program(np.zeros((128, 128)))
    rng = np.random.default_rng(0)
    arr.pulse_update(f32(rng.standard_normal((4, 128))), f32(rng.standard_normal((4, 128))),
                     0.1)
    assert arr.ledger.totals()["write_pulses"] > 0


# =========================================================================== (f) tiling


def test_tiled_array_matches_untiled_and_charges_partial_sums():
    tiled_hw = hw_with(tile={"rows": 16, "cols": 8})
    big, w, rng = programmed((40, 20), hw=tiled_hw)
    one, _, _ = programmed((40, 20))
    assert big.n_tiles == 2 * 5 and one.n_tiles == 1
    b = 4
    x = f32(rng.standard_normal((b, 20)))
    big.ledger.reset()
    one.ledger.reset()
    y = big.mvm(x)
    np.testing.assert_allclose(y, one.mvm(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y, x @ w.T, rtol=1e-5, atol=1e-5)
    common = dict(read_cycles=b, cell_reads=b * 20 * 40, digital_mults=b * (20 + 40),
                  mem_bytes=b * 60 * 4)
    # Each tile converts its own inputs and outputs; 2 input blocks → one digital partial-sum
    # addition per output, plus the max-abs comparison per input.
    assert big.ledger.totals() == zero_counts(
        mvm=b * 10, dac_conversions=b * 20 * 5, dac_bits=b * 20 * 5 * 8,
        adc_conversions=b * 40 * 2, digital_adds=b * 40 + b * 20, **common)
    assert one.ledger.totals() == zero_counts(
        mvm=b, dac_conversions=b * 20, dac_bits=b * 20 * 8, adc_conversions=b * 40,
        digital_adds=b * 20, **common)
    d = f32(rng.standard_normal((2, 40)))
    np.testing.assert_allclose(big.mvm_transposed(d), d @ w, rtol=1e-5, atol=1e-5)


# =========================================================================== (g) ledger


def test_single_read_charges_the_documented_counts():
    arr, _, rng = programmed((5, 7))
    arr.ledger.reset()
    arr.mvm(f32(rng.standard_normal((1, 7))))
    assert arr.ledger.totals() == zero_counts(
        mvm=1, read_cycles=1, dac_conversions=7, dac_bits=7 * 8, adc_conversions=5,
        cell_reads=35, digital_adds=7, digital_mults=7 + 5, mem_bytes=(7 + 5) * 4)
    arr.mvm(f32(rng.standard_normal((6, 7))))
    assert arr.ledger.totals()["mvm"] == 7 and arr.ledger.totals()["cell_reads"] == 7 * 35


def test_fixed_dac_range_counts_clips_and_no_scaling_work():
    hw = hw_with(dac={"bits": 6, "input_range": 1.0, "scaling": "fixed"})
    arr, _, _ = programmed((5, 7), hw=hw)
    arr.ledger.reset()
    x = f32([[0.5, 2.0, -3.0, 0.1, 0.0, 1.0, -1.0]])
    arr.mvm(x)
    assert arr.ledger.totals() == zero_counts(
        mvm=1, read_cycles=1, dac_conversions=7, dac_bits=7 * 6, dac_clips=2,
        adc_conversions=5, cell_reads=35, mem_bytes=12 * 4)


def test_program_and_update_charges_and_explicit_ledger():
    arr = make_array(7, 5, EXACT, seed=0)
    mine = Ledger("mine")
    arr.program(np.zeros((5, 7)), ledger=mine)
    per = EXACT.periphery.verify_iterations
    assert mine.totals() == zero_counts(write_verify=2 * 35 * per, verify_cycles=2 * per * 7,
                                        mem_bytes=35 * 4)
    assert arr.ledger.totals() == zero_counts()
    x, d = f32([[1, 0, 2, 0, 0, 0, 1]]), f32([[1, -1, 0, 0, 2]])
    arr.pulse_update(x, d, DW)
    assert arr.ledger.totals() == zero_counts(
        write_pulses=int(np.abs(d.T @ x).sum()), update_cycles=EXACT.update.bl,
        dac_conversions=7 + 5)


def test_calibrated_range_is_charged_to_the_given_ledger():
    hw = hw_with(adc={"bits": 8, "out_bound": 0.5, "range_mode": "calibrated"})
    arr = make_array(7, 5, hw, seed=0)
    mine = Ledger("mine")
    arr.program(np.full((5, 7), 1.0), ledger=mine)
    assert arr.ledger.totals() == zero_counts()
    assert mine.totals()["digital_adds"] == 35
    # Bound = half the worst-case output 7 · 1.0: an all-ones input saturates every output.
    y = arr.mvm(np.ones((2, 7), np.float32))
    np.testing.assert_allclose(y, 3.5, rtol=1e-6)
    assert arr.ledger.totals()["adc_saturations"] == 10


# =========================================================================== (h) ADC range


def _saturating(manage: bool, retries: int = 3):
    hw = hw_with(adc={"bits": 8, "out_bound": 1.0, "manage_range": manage,
                      "max_retries": retries})
    arr = make_array(3, 4, hw, seed=0)
    w = np.array([[0.2, 0.2, 0.1], [0.5, 0.5, 0.5], [-1, -1, -1], [0.3, 0.3, 0.3]])
    arr.program(w)  # row sums 0.5, 1.5, -3.0, 0.9 against a bound of 1
    arr.ledger.reset()
    return arr, arr.mvm(np.ones((5, 3), np.float32)), arr.ledger.totals()


def test_adc_saturation_is_counted_per_conversion():
    _, y, t = _saturating(False)
    step = 1.0 / 127
    np.testing.assert_allclose(y, np.tile([0.5, 1.0, -1.0, 0.9], (5, 1)), atol=step / 2 + 1e-6)
    assert t["adc_saturations"] == 2 * 5 and t["mvm"] == 5


def test_range_management_rereads_and_charges_each_reread():
    _, y, t = _saturating(True)
    # Read 1: two outputs saturate; input halved: -1.5 still does; quartered: none does.
    np.testing.assert_allclose(y, np.tile([0.5, 1.5, -3.0, 0.9], (5, 1)), atol=4 / 254 + 1e-6)
    assert t["mvm"] == 3 * 5 and t["read_cycles"] == 3 * 5
    assert t["adc_conversions"] == 3 * 5 * 4 and t["cell_reads"] == 3 * 5 * 12
    assert t["adc_saturations"] == 2 * 5 + 5
    _, y1, t1 = _saturating(True, retries=1)  # gives up after one re-read
    np.testing.assert_allclose(y1[:, 2], -2.0, atol=1e-6)
    assert t1["mvm"] == 2 * 5 and t1["adc_saturations"] == 3 * 5


# =========================================================================== (i) drift, stuck


def test_pcm_drift_shrinks_weights_and_ideal_does_not_drift():
    pcm = get_preset("pcm")
    arr, _, _ = programmed((12, 10), hw=pcm, scale=0.5)
    ok = ~oracle.stuck_mask(arr)
    w0 = oracle.weights(arr)
    arr.advance_clock(1e4)
    assert oracle.drift_clock(arr) == 1e4
    w1 = oracle.weights(arr)
    assert np.abs(w1[ok]).mean() < 0.8 * np.abs(w0[ok]).mean()
    arr.program(w0.clip(-1, 1))
    assert oracle.drift_clock(arr) == 0.0

    ideal, _, _ = programmed()
    g0 = oracle.conductances(ideal)
    ideal.advance_clock(1e6)
    assert oracle.drift_clock(ideal) == 1e6
    for a, b in zip(g0, oracle.conductances(ideal), strict=True):
        np.testing.assert_array_equal(a, b)


def test_drift_follows_the_power_law_and_composes():
    hw = hw_with(get_preset("pcm"), device={"drift_nu_std": 0.0, "stuck_on": 0.1})
    nu, t0 = hw.device.drift_nu, hw.device.drift_t0
    a, w, _ = programmed((8, 6), hw=hw, seed=3)
    b, _, _ = programmed((8, 6), hw=hw, seed=3)
    frozen = oracle.stuck_mask(a, "plus"), oracle.stuck_mask(a, "minus")
    g0 = oracle.conductances(a)
    a.advance_clock(1000.0)
    b.advance_clock(100.0)
    b.advance_clock(np.float32(900.0))
    factor = ((1000.0 + t0) / t0) ** -nu
    for g_before, g_after, g_b, fr in zip(g0, oracle.conductances(a), oracle.conductances(b),
                                          frozen, strict=True):
        want = np.where(fr, g_before, g_before * factor)
        np.testing.assert_allclose(g_after, want, rtol=2e-6)
        np.testing.assert_allclose(g_b, g_after, rtol=2e-6)


@pytest.mark.parametrize("which", ["stuck_off", "stuck_on"])
def test_fully_stuck_array_holds_zero_weights(which):
    hw = hw_with(device={which: 1.0})
    arr, w, rng = programmed((4, 5), hw=hw)
    assert oracle.stuck_mask(arr, "both").all()
    np.testing.assert_array_equal(oracle.weights(arr), 0.0)
    x = f32(rng.standard_normal((3, 5)))
    arr.pulse_update(x, f32(rng.standard_normal((3, 4))), 0.5)
    np.testing.assert_array_equal(oracle.weights(arr), 0.0)
    np.testing.assert_array_equal(arr.mvm(x), 0.0)
    assert arr.ledger.totals()["write_pulses"] > 0  # pulses are sent (and paid) regardless


def test_stuck_devices_keep_their_value_through_everything():
    hw = hw_with(get_preset("pcm"), device={"stuck_off": 0.3, "stuck_on": 0.2})
    arr, _, rng = programmed((10, 12), hw=hw, scale=0.5)
    fp, fm = oracle.stuck_mask(arr, "plus"), oracle.stuck_mask(arr, "minus")
    assert 0.3 < fp.mean() < 0.7 and 0.3 < fm.mean() < 0.7
    gp, gm = oracle.conductances(arr)
    assert set(np.unique(gp[fp])) <= {0.0, 1.0} and set(np.unique(gm[fm])) <= {0.0, 1.0}
    for _ in range(3):
        arr.pulse_update(f32(rng.standard_normal((2, 12))), f32(rng.standard_normal((2, 10))),
                         0.05)
    arr.advance_clock(1e3)
    gp2, gm2 = oracle.conductances(arr)
    np.testing.assert_array_equal(gp2[fp], gp[fp])
    np.testing.assert_array_equal(gm2[fm], gm[fm])
    assert not np.array_equal(gp2[~fp], gp[~fp])


# =========================================================================== (j) bad input


def test_bad_reads_raise_clear_errors():
    arr, _, _ = programmed((5, 7))
    good = np.zeros((2, 7), np.float32)
    cases = [
        (good.astype(np.float64) + 0.1, TypeError, r"x\.dtype = float64 .*14 of 14 values "
                                                   r"would round.*allowed: float32"),
        (good.astype(np.int64) + 2**24 + 1, TypeError, r"x\.dtype = int64 .*2\*\*24"),
        (good.astype(bool), TypeError, r"x\.dtype = bool"),
        (good.tolist(), TypeError, r"x must be a numpy\.ndarray"),
        (np.zeros((2, 6), np.float32), ValueError, r"x\.shape = \(2, 6\).*\(batch >= 1, 7\)"),
        (np.zeros((0, 7), np.float32), ValueError, r"x\.shape = \(0, 7\)"),
        (np.zeros(6, np.float32), ValueError, r"x\.shape = \(6,\).*\(7,\) or"),
        (np.zeros((1, 1, 7), np.float32), ValueError, r"x\.shape"),
        (f32([[0, 0, np.nan, 0, 0, 0, 0]]), ValueError, "x contains 1 NaN or Inf"),
        (f32([[0, 0, np.inf, 0, 0, 0, -np.inf]]), ValueError, "x contains 2 NaN or Inf"),
    ]
    for x, err, msg in cases:
        with pytest.raises(err, match=msg):
            arr.mvm(x)
    assert arr.ledger.totals()["mvm"] == 0  # refused reads are not charged
    x = f32([[3.0, -2.0, 0.5, 0, 0, 0, 1]])
    keep = x.copy()
    arr.mvm(x)
    np.testing.assert_array_equal(x, keep)  # inputs are never modified or clipped in place


def test_lossless_dtypes_and_single_vectors_are_accepted():
    # The one input rule: another dtype is converted only when float32 holds every value
    # exactly; a 1-D vector is a batch of one and gives a 1-D result.
    a, b = programmed((5, 7))[0], programmed((5, 7))[0]  # same seed: same draws
    x = f32(np.random.default_rng(3).uniform(-1, 1, (2, 7)))
    want = a.mvm(x)
    np.testing.assert_array_equal(b.mvm(x.astype(np.float64)), want)
    y1 = a.mvm(x[0])
    assert y1.shape == (5,) and y1.dtype == np.float32
    for exact in (x.astype(np.float16), np.arange(14).reshape(2, 7), x.astype(np.longdouble)):
        assert a.mvm(exact).shape == (2, 5)
    arr = programmed((5, 7))[0]
    arr.pulse_update(x[0], np.ones(5, np.float32), 0.1)  # a rank-one update
    assert arr.ledger.totals()["write_pulses"] > 0
    assert repr(arr).startswith("BidirectionalArray(n_in=7, n_out=5, hw='ideal', seed=0, ")


def test_bad_updates_raise_clear_errors():
    arr, _, _ = programmed((5, 7))
    x, d = np.ones((2, 7), np.float32), np.ones((2, 5), np.float32)
    g0 = oracle.conductances(arr)
    for lr in (0.0, -0.1, math.nan, math.inf, True, "0.1", None):
        with pytest.raises(ValueError, match=r"lr = .* allowed: a finite real number > 0"):
            arr.pulse_update(x, d, lr)
    with pytest.raises(TypeError, match=r"d\.dtype = float64 .*would round"):
        arr.pulse_update(x, d.astype(np.float64) / 3, 0.1)
    with pytest.raises(ValueError, match=r"d\.shape = \(2, 7\)"):
        arr.pulse_update(x, np.ones((2, 7), np.float32), 0.1)
    with pytest.raises(ValueError, match=r"d\.shape\[0\] = 3 differs from x\.shape\[0\] = 2"):
        arr.pulse_update(x, np.ones((3, 5), np.float32), 0.1)
    with pytest.raises(ValueError, match="NaN or Inf"):
        arr.pulse_update(x, f32([[1, 1, np.nan, 1, 1]] * 2), 0.1)
    for a, b in zip(g0, oracle.conductances(arr), strict=True):
        np.testing.assert_array_equal(a, b)  # nothing was applied
    assert arr.ledger.totals()["write_pulses"] == 0
    arr.pulse_update(x, d, np.float32(1e-3))  # NumPy scalars are fine
    arr.pulse_update(x, d, 1)


def test_bad_programs_clocks_and_shapes_raise_clear_errors():
    arr = make_array(7, 5, IDEAL, seed=0)
    wmax = IDEAL.device.w_max
    with pytest.raises(ValueError, match=r"max\|w\| = 10\.5 .*\|w\| <= device\.w_max = 10"):
        arr.program(np.full((5, 7), 1.05 * wmax))
    with pytest.raises(ValueError, match=r"w\.shape = \(7, 5\) is invalid; allowed: \(5, 7\)"):
        arr.program(np.zeros((7, 5)))
    with pytest.raises(TypeError, match="floating numpy.ndarray.*int64"):
        arr.program(np.zeros((5, 7), np.int64))
    with pytest.raises(ValueError, match="NaN or Inf"):
        arr.program(np.full((5, 7), np.nan))
    assert arr.ledger.totals()["write_verify"] == 0
    for s in (-1.0, math.inf, math.nan, True, "1"):
        with pytest.raises(ValueError, match=r"seconds = .* allowed: a finite real number >= 0"):
            arr.advance_clock(s)
    arr.advance_clock(0)
    for n in (0, -3, 2.5, True, "4", None):
        with pytest.raises(ValueError, match=r"n_out = .* allowed: an integer >= 1"):
            CrossbarArray(7, n, IDEAL, seed=0)
        with pytest.raises(ValueError, match=r"n_in = .* allowed: an integer >= 1"):
            CrossbarArray(n, 5, IDEAL, seed=0)
    with pytest.raises(ValueError, match=r"seed = -1 .*integer in \[0, 2\*\*64\)"):
        make_array(7, 5, IDEAL, seed=-1)
    with pytest.raises(TypeError, match="HardwareConfig"):
        make_array(7, 5, IDEAL.to_dict(), seed=0)  # type: ignore[arg-type]


# =========================================================================== (k) checkpoints


def _continue(arr, rng_seed: int):
    """A fixed sequence of every operation; returns everything observable."""
    rng = np.random.default_rng(rng_seed)
    n_out, n_in = arr.shape
    x = f32(rng.standard_normal((3, n_in)))
    d = f32(0.3 * rng.standard_normal((3, n_out)))
    out = [arr.mvm(x)]
    arr.pulse_update(x, d, 0.05)
    out.append(arr.mvm(x))
    arr.advance_clock(50.0)
    out.append(arr.mvm(x))
    arr.program(rng.uniform(-0.4, 0.4, arr.shape))  # programming noise from the saved RNG
    arr.pulse_update(x, d, 0.05)
    out.append(arr.mvm(x))
    out.extend(oracle.conductances(arr))
    out.append(np.array([oracle.drift_clock(arr)]))
    return out


@pytest.mark.parametrize("preset", ["pcm", "rram", "aihwkit_default"])
def test_state_dict_round_trip_is_bit_identical(preset):
    hw = get_preset(preset)
    a, _, _ = programmed((6, 5), hw=hw, seed=3)
    a.pulse_update(np.ones((1, 5), np.float32), np.ones((1, 6), np.float32), 0.05)
    a.mvm(np.ones((2, 5), np.float32))
    a.advance_clock(10.0)
    state = a.state_dict()
    b = make_array(5, 6, hw, seed=3)
    _continue(b, 99)  # a different history before loading
    b.load_state_dict(state)
    for key in state:
        state[key][...] = 0  # the array holds its own copies
    want, got = _continue(a, 1), _continue(b, 1)
    for u, v in zip(want, got, strict=True):
        np.testing.assert_array_equal(u, v)


def test_load_state_dict_checks_keys_shapes_and_dtypes():
    a = make_array(4, 3, get_preset("pcm"), seed=0)
    st = a.state_dict()
    for key, bad in (("gp", np.zeros((4, 3), np.float32)), ("gm", st["gm"].astype(np.float64)),
                     ("counters", np.zeros(3, np.int64))):
        with pytest.raises(ValueError, match=re.escape(repr(key))):
            a.load_state_dict({**st, key: bad})
    missing = {k: v for k, v in st.items() if k != "nu_p"}
    with pytest.raises(ValueError, match="missing 'nu_p'"):
        a.load_state_dict(missing)
