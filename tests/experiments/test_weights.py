"""Weights in and out: safetensors/npz files, program_weights on pcm, export round trip.

The PyTorch-format state dict is written here by a minimal safetensors writer of the test's
own (struct + json, independent of analogsim.experiments.tensorfiles), with the key names
``nn.Sequential(Linear, Tanh, Linear).state_dict()`` has: ``0.weight``, ``0.bias``,
``2.weight``, ``2.bias`` (weights ``(out, in)``).
"""

from __future__ import annotations

import json
import struct
import warnings

import numpy as np
import pytest

import analogsim as asim
from analogsim.experiments.weights import NON_PHYSICAL, effective_weights


def torch_style_safetensors(path, tensors: dict[str, np.ndarray]) -> None:
    """What ``safetensors.torch.save_file`` writes, by hand: u64 header length, JSON, data."""
    header, blobs, pos = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):  # safetensors orders by name; the reader must not care
        raw = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [pos, pos + len(raw)]}
        blobs.append(raw)
        pos += len(raw)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


@pytest.fixture(scope="module")
def digital_mlp():
    """A 64-64-10 tanh MLP trained digitally (float32, BP) on the digits, with its data."""
    r = asim.train("bp", "ideal", "digits-small", epochs=10, lr=0.1, seed=0, quiet=True,
                   overrides={"model.backend": "digital"})
    w = [layer.w.copy() for layer in r.network.layers]
    b = [layer.b.copy() for layer in r.network.layers]
    x, y = r.dataset.get_split("test")
    return w, b, x, asim.onehot(y, 10), r.metrics["test_accuracy"]


def _net(hw: str, seed: int = 0):
    return asim.build_network(asim.load_model("digits-small"), asim.get_preset(hw), seed=seed)


def test_a_pytorch_state_dict_is_programmed_on_pcm_and_keeps_its_accuracy(tmp_path,
                                                                          digital_mlp) -> None:
    w, b, x, t, acc_digital = digital_mlp
    path = tmp_path / "mlp.safetensors"
    torch_style_safetensors(path, {"0.weight": w[0], "0.bias": b[0], "2.weight": w[1],
                                   "2.bias": b[1]})
    assert acc_digital > 0.93
    net = _net("pcm")
    with pytest.warns(asim.ProgrammingErrorWarning, match=r"layer[01]: .*% off.*'pcm'") as rec:
        report = asim.program_weights(net, path)
    assert [str(r.message)[:7] for r in rec] == ["layer0:", "layer1:"]  # one per layer
    assert [r.mapping for r in report] == ["column", "layer"]  # auto: row ranges differ
    assert all(0.1 < r.rel_error < 0.3 for r in report)  # pcm: 3.8 % programming noise
    np.testing.assert_array_equal(net.layers[1].b, b[1])  # biases are digital: exact
    _, acc_pcm = net.evaluate(x, t)
    assert acc_pcm > acc_digital - 0.03  # measured: 0.954 -> 0.950
    ideal = _net("ideal")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exact programming: no warning
        rep = asim.program_weights(ideal, path)
    assert max(r.rel_error for r in rep) < 1e-6
    assert ideal.evaluate(x, t)[1] == pytest.approx(acc_digital, abs=0.004)


def test_mappings_scales_and_the_warning_threshold(digital_mlp) -> None:
    w, b, _, _, _ = digital_mlp
    net = _net("pcm")
    layer = net.layers[0]
    rep = asim.program_weights(layer, w[0], b[0], mapping="layer", warn_above=np.inf)[0]
    assert rep.mapping == "layer" and rep.col_scale is None and layer.col_scale is None
    assert rep.scale == pytest.approx(np.abs(w[0]).max() / layer.hw.device.w_max)
    rep2 = asim.program_weights(layer, w[0], mapping="column", headroom=2.0,
                                warn_above=np.inf)[0]
    rows = np.abs(w[0]).max(axis=1)
    np.testing.assert_allclose(rep2.col_scale, rows / rows.max(), rtol=1e-6)
    assert rep2.rel_error > rep.rel_error  # half the range: the noise weighs twice as much
    assert "mapping='column'" in repr(rep2) and "rel_error=" in repr(rep2)
    err = np.linalg.norm(effective_weights(layer) - w[0]) / np.linalg.norm(w[0])
    assert err == pytest.approx(rep2.rel_error, rel=1e-6)  # the reported figure


def test_a_column_mapped_layer_trains_and_reads_consistently() -> None:
    # W = s diag(c) W_dev: reads, updates and Wᵀδ follow the per-column mapping.
    net = asim.build_network(asim.load_model("digits-small"), asim.get_preset("ideal"),
                             seed=0, transpose="shadow")
    layer = net.layers[1]
    rng = np.random.default_rng(0)
    w = (rng.uniform(-1, 1, (10, 64)) * np.linspace(0.1, 1, 10)[:, None]).astype(np.float32)
    asim.program_weights(layer, w, mapping="column", headroom=2.0)  # no cell at a bound
    x = rng.uniform(-1, 1, (4, 64)).astype(np.float32)
    np.testing.assert_allclose(layer.read(x), x @ w.T, rtol=0, atol=2e-2)
    d = rng.uniform(-1, 1, (4, 10)).astype(np.float32)
    np.testing.assert_allclose(layer.backward_input(d), d @ w, rtol=0, atol=2e-2)
    before = effective_weights(layer)
    layer.update(x, d, 1e-4)  # small: no cell needs more than bl = 64 pulses
    got, want = effective_weights(layer) - before, -1e-4 * d.T.astype(np.float64) @ x
    # whole pulses, rounded up or down: within one pulse, whose size scales with col_scale
    pulse = layer.hw.device.dw_min * float(layer.scale) * layer.col_scale.astype(np.float64)
    assert np.all(np.abs(got - want) <= 1.001 * pulse[:, None])
    state = layer.state_dict()
    assert state["col_scale"].shape == (10,)
    fresh = asim.build_network(asim.load_model("digits-small"), asim.get_preset("ideal"),
                               seed=0, transpose="shadow").layers[1]
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.col_scale, layer.col_scale)


@pytest.mark.parametrize("fmt", ["safetensors", "npz"])
def test_export_then_import_round_trips(tmp_path, fmt) -> None:
    pcm = _net("pcm", seed=3)
    path = asim.export_weights(pcm, tmp_path / f"w.{fmt}")
    tensors, meta = asim.load_tensors(path)
    assert list(tensors) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert tensors["0.weight"].shape == (64, 64) and tensors["1.weight"].dtype == np.float32
    assert meta["weights"] == NON_PHYSICAL and "NOT physically readable" in meta["weights"]
    assert meta["hardware"] == "pcm" and meta["sizes"] == "64,64,10"
    ideal = _net("ideal", seed=9)
    rep = asim.program_weights(ideal, path)
    assert max(r.rel_error for r in rep) < 1e-6
    for a, b in zip(ideal.layers, pcm.layers, strict=True):
        np.testing.assert_allclose(effective_weights(a), effective_weights(b), rtol=1e-6,
                                   atol=1e-7)
        np.testing.assert_array_equal(a.b, b.b)


def test_tensor_files_keep_dtypes_names_and_metadata(tmp_path) -> None:
    rng = np.random.default_rng(1)
    tensors = {"a": rng.standard_normal((2, 3)).astype(np.float64), "b.c": np.arange(5),
               "flag": np.array([True, False]), "h": rng.standard_normal(4).astype(np.float16),
               "u": np.arange(6, dtype=np.uint8).reshape(2, 3), "empty": np.zeros((0, 3))}
    for suffix in (".safetensors", ".npz"):
        p = asim.save_tensors(tmp_path / f"t{suffix}", tensors, {"k": "v"})
        got, meta = asim.load_tensors(p)
        assert meta == {"k": "v"} and set(got) == set(tensors)
        for k, v in tensors.items():
            assert got[k].dtype == v.dtype and got[k].shape == v.shape
            np.testing.assert_array_equal(got[k], v)
    raw = (tmp_path / "t.safetensors").read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    assert n % 8 == 0 and json.loads(raw[8:8 + n])["a"]["dtype"] == "F64"


def test_bf16_is_widened_exactly(tmp_path) -> None:
    x = np.array([1.0, -2.5, 3.140625, 0.0], dtype=np.float32)  # exact in bfloat16
    bits = (x.view(np.uint32) >> 16).astype("<u2").tobytes()
    head = json.dumps({"w": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]}}).encode()
    (tmp_path / "b.safetensors").write_bytes(struct.pack("<Q", len(head)) + head + bits)
    got, _ = asim.load_tensors(tmp_path / "b.safetensors")
    np.testing.assert_array_equal(got["w"], x)


def _st(path, header, data=b"", length=None) -> None:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(text) if length is None else length
    path.write_bytes(struct.pack("<Q", n) + text + data)


def _entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


@pytest.mark.parametrize("make, match", [
    (lambda p: p.write_bytes(b"\x01\x00"), r"2 bytes, too few .*truncated"),
    (lambda p: _st(p, {"w": _entry()}, b"\0" * 8, length=2**40),
     r"header length is 1099511627776 bytes; allowed: at most 100000000"),
    (lambda p: _st(p, {"w": _entry()}, b"", length=500), r"only .* follow \(truncated"),
    (lambda p: _st(p, b'{"w": [1, 2'), r"not valid JSON"),
    (lambda p: _st(p, b"[1, 2]"), r"does not start with '\{'"),
    (lambda p: _st(p, b'{"w": {}, "w": {}}'), r"names tensor 'w' twice"),
    (lambda p: _st(p, b"\xff\xfe{}"), r"not valid JSON"),
    (lambda p: _st(p, {"w": _entry(dtype="F33")}, b"\0" * 8), r"dtype 'F33' is not a "
     r"safetensors dtype; allowed: BOOL, U8"),
    (lambda p: _st(p, {"w": _entry(dtype="F8_E4M3", offsets=(0, 2))}, b"\0" * 2),
     r"'F8_E4M3' has no NumPy type"),
    (lambda p: _st(p, {"w": _entry(shape=(3,))}, b"\0" * 8), r"hold 8 bytes but dtype F32 "
     r"and shape \[3\] need 12"),
    (lambda p: _st(p, {"w": _entry(shape=(-2,))}, b"\0" * 8), r"shape \[-2\] is invalid"),
    (lambda p: _st(p, {"w": _entry(offsets=(8, 16))}, b"\0" * 8), r"reach past the 8 data "
     r"bytes"),
    (lambda p: _st(p, {"w": _entry(offsets=(0, 8)), "v": _entry(offsets=(4, 12))},
                   b"\0" * 12), r"'v'.*overlaps the previous tensor"),
    (lambda p: _st(p, {"w": _entry(offsets=(4, 12))}, b"\0" * 12), r"leaves bytes 0..4"),
    (lambda p: _st(p, {"w": _entry()}, b"\0" * 9), r"1 bytes after the last tensor"),
    (lambda p: _st(p, {"w": {"dtype": "F32", "shape": [2]}}, b"\0" * 8),
     r"keys \['dtype', 'shape'\]; allowed: exactly"),
    (lambda p: _st(p, {"w": _entry(offsets=(0, True))}, b"\0" * 8), r"data_offsets"),
    (lambda p: _st(p, {"__metadata__": {"a": 1}}), r"__metadata__ is not a table of strings"),
])
def test_malformed_safetensors_files_give_clear_errors(tmp_path, make, match) -> None:
    p = tmp_path / "bad.safetensors"
    make(p)
    with pytest.raises(ValueError, match=match) as info:
        asim.load_tensors(p)
    assert str(p) in str(info.value)  # the message names the file
    with pytest.raises(ValueError, match=match):
        asim.program_weights(_net("ideal"), p)


def test_malformed_npz_and_paths_give_clear_errors(tmp_path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match=r"bad\.npz: not a readable \.npz"):
        asim.load_tensors(bad)
    obj = tmp_path / "obj.npz"
    np.savez(obj, w=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"obj\.npz: a member cannot be read.*pickle"):
        asim.load_tensors(obj)
    big = tmp_path / "big.npz"
    np.savez_compressed(big, w=np.zeros(1000))  # a small file that unpacks to 8 kB
    with pytest.raises(ValueError, match=r"unpacks to \d+ bytes; allowed: at most"):
        asim.load_tensors(big, max_bytes=2000)
    with pytest.raises(ValueError, match=r"suffix '\.pt' names no tensor format"):
        asim.load_tensors(tmp_path / "w.pt")
    with pytest.raises(ValueError, match=r"path = .* is invalid: .*No such file"):
        asim.load_tensors(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="it exists and is a directory"):
        asim.save_tensors(tmp_path, {"w": np.zeros(2)}, format="npz")
    with pytest.raises(ValueError, match=r"tensor 'w' has dtype object"):
        asim.save_tensors(tmp_path / "o.npz", {"w": np.array([None])})


def test_shape_mismatch_wrong_keys_and_bad_options(tmp_path, digital_mlp) -> None:
    w, b, _, _, _ = digital_mlp
    net = _net("ideal")
    with pytest.raises(ValueError, match=r"2\.weight has shape \(64, 10\); allowed: "
                       r"\(10, 64\)"):
        asim.program_weights(net, {"0.weight": w[0], "2.weight": w[1].T})
    with pytest.raises(ValueError, match=r"keys \['1.running_mean'\] are neither"):
        asim.program_weights(net, {"0.weight": w[0], "1.running_mean": b[0],
                                   "2.weight": w[1]})
    with pytest.raises(ValueError, match="1 weight matrices for 2 layers"):
        asim.program_weights(net, {"0.weight": w[0]})
    with pytest.raises(ValueError, match=r"weights\[1\] contains NaN"):
        asim.program_weights(net, [w[0], np.full_like(w[1], np.nan)])
    with pytest.raises(ValueError, match="mapping = 'rows' is invalid"):
        asim.program_weights(net, w, mapping="rows")
    with pytest.raises(ValueError, match="headroom = 0.5 is invalid"):
        asim.program_weights(net, w, headroom=0.5)
    before = effective_weights(net.layers[0])
    with pytest.raises(ValueError, match=r"bias of weights\[1\] has shape \(3,\)"):
        asim.program_weights(net, w, [b[0], np.zeros(3)])
    np.testing.assert_array_equal(effective_weights(net.layers[0]), before)  # all or nothing
    # a natural order: 10 after 2, as PyTorch numbers a long Sequential
    from analogsim.experiments.weights import _from_state_dict

    keys = [p for p, _, _ in _from_state_dict({f"{i}.weight": w[0] for i in (10, 2, 0)}, "x")]
    assert keys == ["0", "2", "10"]
