"""The 8x8 digits shipped in the package: checksums, shape, and scikit-learn's copy bit for bit.

The comparison with scikit-learn runs where scikit-learn is installed (it is no dependency)
and is skipped elsewhere; the checksums pin the shipped file everywhere.
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import pytest

from analogsim.data import DIGITS_FILE
from analogsim.experiments import data as data_module
from analogsim.experiments.data import digits_arrays, load_dataset, load_digits

#: SHA-256 of analogsim/data/datasets/digits.npz (also in the README beside it).
FILE_SHA256 = "f10b077e7e3037d11006b85b6b71a63e15b2bf746d91c4e4122e42d304e5e54b"
#: SHA-256 of the uint8 pixels then the uint8 labels (stable if the file is rewritten).
CONTENT_SHA256 = "87ff0c9e40dc7e2c0e34e7257799c2e3f3aec1a016363bb11cad869ec428a826"
CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
SPLITS = ("train", "val", "test")


def test_shipped_file_checksum_and_notice() -> None:
    assert hashlib.sha256(DIGITS_FILE.read_bytes()).hexdigest() == FILE_SHA256
    notice = (DIGITS_FILE.parent / "README.md").read_text(encoding="utf-8")
    for text in (FILE_SHA256, CONTENT_SHA256, "CC BY 4.0", "10.24432/C50P49"):
        assert text in notice


def test_arrays_shape_dtype_and_content() -> None:
    x, y = digits_arrays()
    assert x.shape == (1797, 64) and x.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert x.min() == 0 and x.max() == 16 and np.array_equal(x, np.round(x))
    assert np.bincount(y).tolist() == CLASS_COUNTS
    digest = hashlib.sha256(x.astype(np.uint8).tobytes() + y.astype(np.uint8).tobytes())
    assert digest.hexdigest() == CONTENT_SHA256


def test_arrays_equal_scikit_learns_bit_for_bit() -> None:
    sk = pytest.importorskip("sklearn.datasets")
    xs, ys = sk.load_digits(return_X_y=True)
    x, y = digits_arrays()
    assert (x.dtype, x.shape, y.dtype, y.shape) == (xs.dtype, xs.shape, ys.dtype, ys.shape)
    assert x.tobytes() == np.ascontiguousarray(xs).tobytes()
    assert y.tobytes() == np.ascontiguousarray(ys).tobytes()


@pytest.mark.parametrize("seed", [0, 7])
def test_load_digits_equals_the_scikit_learn_loader(monkeypatch, seed) -> None:
    """The data set as the loader built it from sklearn.datasets.load_digits before."""
    sk = pytest.importorskip("sklearn.datasets")
    shipped = load_digits(seed=seed)
    monkeypatch.setattr(data_module, "digits_arrays",
                        lambda: sk.load_digits(return_X_y=True))
    before = load_digits(seed=seed)
    for s in SPLITS:
        for a, b in zip(shipped.get_split(s), before.get_split(s), strict=True):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), s
        np.testing.assert_array_equal(shipped.meta["indices"][s], before.meta["indices"][s])
    for key in ("mean", "std"):
        np.testing.assert_array_equal(shipped.meta[key], before.meta[key])


def test_load_dataset_digits_needs_no_scikit_learn(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)  # `import sklearn` fails
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    assert load_dataset("digits").meta["source"] == "analogsim/data/datasets/digits.npz"


@pytest.mark.parametrize("kind", ["missing", "garbage", "shape"])
def test_a_damaged_file_is_a_clear_error(tmp_path, monkeypatch, kind) -> None:
    path = tmp_path / "digits.npz"
    if kind == "garbage":
        path.write_bytes(b"not a zip")
    elif kind == "shape":
        np.savez_compressed(path, x=np.zeros((10, 64), np.uint8), y=np.zeros(10, np.uint8))
    monkeypatch.setattr(data_module, "DIGITS_FILE", path)
    with pytest.raises(ValueError, match=r"digits file '.*digits\.npz' (is unreadable|holds x "
                       r"uint8\(10, 64\)).*allowed: .*the file shipped with analogsim"):
        digits_arrays()
