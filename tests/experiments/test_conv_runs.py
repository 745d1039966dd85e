"""Conv networks in the experiment layer: presets, image data, checkpoints, CIFAR-10 files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analogsim.experiments import checkpoint as ck
from analogsim.experiments.data import (
    CIFAR10_TEST,
    CIFAR10_TRAIN,
    load_cifar10_dir,
    load_dataset,
    read_cifar10_bin,
)
from analogsim.experiments.models import apply_model_overrides, load_model, loads_model
from analogsim.experiments.runner import TrainConfig, build_run, train
from analogsim.fields import dumps_toml
from analogsim.hardware.presets import get_preset
from analogsim.layers.network import ModelConfig, build_network

HW = get_preset("aihwkit_default")
CONV = ModelConfig(input_shape=(1, 8, 8), hidden="tanh", layers=(
    "conv:4x3x3,padding=1", "pool:max2", "fc:16", "fc:10"))


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


# ---------------------------------------------------------------------------- presets

def test_lenet_presets_build_the_biotorch_shapes() -> None:
    lenet = load_model("lenet5")
    assert lenet.sizes == (784, 6 * 28 * 28, 16 * 10 * 10, 120, 84, 10)
    assert [p.kind for p in lenet.plan()] == ["conv", "conv", "pooled_fc", "fc", "fc"]
    assert loads_model(dumps_toml(lenet)) == lenet  # the TOML mapping is one-to-one
    net = build_network(lenet, HW, seed=0)
    assert [la.n_out for la in net.layers] == [4704, 1600, 120, 84, 10]
    assert net.layers[1].kernel_shape == (16, 6, 5, 5)
    assert net.layers[2].kernel_shape == (120, 16, 5, 5)  # a dense layer on the 5x5 map
    wide = load_model("lenet-wide")
    assert wide.sizes == (784, 20 * 24 * 24, 50 * 8 * 8, 500, 10)


def test_overrides_of_a_conv_preset_re_derive_the_sizes() -> None:
    lenet = load_model("lenet5")
    small = apply_model_overrides(lenet, {"layers": ["conv:2x5x5", "pool:avg4", "fc:10"]})
    assert small.sizes == (784, 2 * 24 * 24, 10)
    assert apply_model_overrides(lenet, {"hidden": "relu"}).sizes == lenet.sizes
    fc = apply_model_overrides(lenet, {"layers": [], "sizes": [784, 10]})
    assert fc.sizes == (784, 10) and fc.input_shape is None
    with pytest.raises(ValueError, match=r"^x: model.layers = \[\] is invalid; allowed: "
                                         r"layers = \[\] together with sizes"):
        apply_model_overrides(lenet, {"layers": []}, source="x")
    with pytest.raises(ValueError, match=r"model.layers\[0\] = 'conv:2x50' is invalid"):
        apply_model_overrides(lenet, {"layers": ["conv:2x50", "fc:10"]})


# ---------------------------------------------------------------------------- runner

def test_a_conv_model_needs_images_of_its_input_shape(digits) -> None:
    lenet = load_model("lenet5")
    with pytest.raises(ValueError, match=r"model 'lenet5': its layers .* have 784 inputs and "
                                         r"10 outputs, but data set 'digits' has 64 features"):
        train(HW, lenet, TrainConfig(epochs=1), dataset=digits)
    flat = ModelConfig(input_shape=(4, 4, 4), layers=("conv:2x3", "fc:10"))
    with pytest.raises(ValueError, match=r"input_shape = \[4, 4, 4\] .* but data set 'digits' "
                                         r"has images of shape \[1, 8, 8\]; allowed"):
        train(HW, flat, TrainConfig(epochs=1), dataset=digits)
    assert digits.images("train").shape == (1000, 1, 8, 8)


def test_a_conv_run_reports_costs_and_flat_models_are_unchanged(digits) -> None:
    out = train(HW, CONV, TrainConfig(rule="bp", epochs=1, lr=0.2, transpose="probe"),
                dataset=digits)
    m = out["metrics"]
    assert m["energy_per_sample_pj"] > 0 and 0 < m["transpose_energy_share"] < 1
    assert m["critical_path_ns"] > 0 and m["test_accuracy"] > 0.2
    assert out["config"]["model"]["layers"] == list(CONV.layers)


def test_drift_reaches_the_kernels_and_alignment_is_refused(digits) -> None:
    from analogsim.experiments.plots import alignment_angles
    from analogsim.experiments.points import _arrays

    tr = build_run(HW, CONV, TrainConfig(rule="fa"), 64, 10)
    arrays = _arrays(tr)
    assert tr.net.layers[0].kernels[0].array in arrays  # the conv kernel drifts too
    assert tr.rule.feedback["B1"].kernels[0].array in arrays  # and FA's conv feedback
    x, t = digits.x_train[:8], np.eye(10, dtype=np.float32)[digits.y_train[:8]]
    with pytest.raises(ValueError, match=r"alignment angles are measured on fully connected "
                                         r"layers, but layer0, layer1 are conv layers"):
        alignment_angles(tr, x, t)


# ---------------------------------------------------------------------------- checkpoints

@pytest.mark.parametrize(("rule", "kw"), [
    ("bp", {"transpose": "twin", "optimizer": "mixed_precision"}),
    ("fa", {"staleness": 1}),
])
def test_a_conv_network_resumes_bit_exactly(tmp_path: Path, digits, rule, kw) -> None:
    def cfg(epochs: int) -> TrainConfig:
        return TrainConfig(rule=rule, epochs=epochs, batch_size=64, lr=0.1, seed=3, **kw)

    straight_tr = build_run(HW, CONV, cfg(2), 64, 10)
    straight = train(HW, CONV, cfg(2), dataset=digits, trainer=straight_tr)
    path = tmp_path / "conv.npz"
    ck.train_with_checkpoints(HW, CONV, cfg(1), path, dataset=digits)
    trainer, meta = ck.load(path, HW, CONV, cfg(2))
    resumed = train(HW, CONV, cfg(2), dataset=digits, trainer=trainer,
                    start_epoch=meta["epoch"], progress=meta["progress"])
    sa, sb = ck.state_arrays(straight_tr), ck.state_arrays(trainer)
    assert sorted(sa) == sorted(sb)
    if kw.get("optimizer") == "mixed_precision":
        assert "opt.net.layer0_g0.chi" in sa  # the conv kernel's accumulator is saved
    if rule == "fa":
        assert "rule.B1.g0.array.gp" in sa  # the fixed conv feedback kernel is saved
    for key in sa:
        assert np.array_equal(sa[key], sb[key]), key
    assert straight["epochs"] == resumed["epochs"] and straight["ledger"] == resumed["ledger"]


# ---------------------------------------------------------------------------- CIFAR-10

def _write_cifar(directory: Path, n_train: int = 4, n_test: int = 3, seed: int = 0
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Six small CIFAR-10 binary batches: records of 1 label byte + 3072 pixel bytes."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in (*CIFAR10_TRAIN, CIFAR10_TEST):
        n = n_test if name == CIFAR10_TEST else n_train
        labels = rng.integers(0, 10, n).astype(np.uint8)
        pixels = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
        (directory / name).write_bytes(np.concatenate([labels[:, None], pixels], 1).tobytes())
        out[name] = (pixels.reshape(n, 3, 32, 32), labels)
    return out


def test_cifar10_binary_batches_load_without_pickle(tmp_path: Path) -> None:
    files = _write_cifar(tmp_path)
    images, labels = read_cifar10_bin(tmp_path / "data_batch_2.bin")
    np.testing.assert_array_equal(images, files["data_batch_2.bin"][0])  # R, G, B planes
    np.testing.assert_array_equal(labels, files["data_batch_2.bin"][1])
    ds = load_cifar10_dir(tmp_path, n_val=5)
    assert ds.image_shape == (3, 32, 32) and ds.n_features == 3072
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (15, 5, 3)
    train_px = np.concatenate([files[n][0] for n in CIFAR10_TRAIN])[:15] / 255
    # Per channel: zero mean, unit std over the training split.
    img = ds.images("train")
    np.testing.assert_allclose(img.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(img.std(axis=(0, 2, 3)), 1, atol=1e-4)
    z = (train_px - train_px.mean(axis=(0, 2, 3))[:, None, None]) \
        / train_px.std(axis=(0, 2, 3))[:, None, None]
    np.testing.assert_allclose(img, z, atol=1e-4)
    np.testing.assert_array_equal(ds.y_test, files[CIFAR10_TEST][1])
    # data_dir may name the directory of the batches or the one holding the unpacked folder.
    root = tmp_path / "root"
    (root / "cifar-10-batches-bin").mkdir(parents=True)
    _write_cifar(root / "cifar-10-batches-bin")
    for where in (tmp_path, root):
        assert load_dataset("cifar10", data_dir=str(where), n_val=5).x_val.shape == (5, 3072)


@pytest.mark.parametrize(("content", "match"), [
    (b"", r"length 0 bytes is not a positive multiple of the 3073-byte record"),
    (bytes(3073 + 5), r"length 3078 bytes is not a positive multiple"),
    (bytes([12]) + bytes(3072), r"label 12 in record 0 is invalid; allowed: 0..9"),
])
def test_bad_cifar10_files_are_named_in_clear_errors(tmp_path: Path, content, match) -> None:
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"CIFAR-10 file {path}: {match}"):
        read_cifar10_bin(path)


def test_cifar10_refuses_non_files_and_missing_batches(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "data_batch_1.bin").mkdir()
    with pytest.raises(ValueError, match=r"CIFAR-10 file .*data_batch_1.bin is not a regular "
                                         r"file"):
        read_cifar10_bin(tmp_path / "data_batch_1.bin")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"no file data_batch_1.bin; expected "
                                                r"data_batch_1.bin, .*test_batch.bin"):
        load_cifar10_dir(empty)
    monkeypatch.delenv("ANALOGSIM_DATA_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match=r"dataset 'cifar10': no CIFAR-10 binary "
                                                r"batches .* --data-dir"):
        load_dataset("cifar10")
