"""Named tensors in ``.npz`` and ``.safetensors`` files, with NumPy only (no torch).

:func:`load_tensors` and :func:`save_tensors` read and write ``{name: ndarray}`` plus a
``{str: str}`` metadata table, the shape of a PyTorch ``state_dict`` (``"0.weight"``,
``"0.bias"``, …). The format follows the file's suffix:

``.safetensors``
    Hugging Face's format, implemented here from its specification: an 8-byte little-endian
    unsigned header length ``N``, ``N`` bytes of UTF-8 JSON ``{name: {"dtype", "shape",
    "data_offsets": [begin, end]}, "__metadata__": {str: str}}``, then the raw little-endian
    tensor bytes, ``begin``/``end`` counted from the start of that byte buffer. The reader
    checks everything before it trusts it: the header length against the file and
    :data:`MAX_HEADER_BYTES`, JSON syntax, duplicate names, every entry's keys, dtype name,
    shape and byte count, offsets in range, neither overlapping nor leaving holes (the
    buffer must be covered exactly, as the reference implementation requires). ``BF16``
    tensors are widened exactly to float32; the 8-bit float formats have no NumPy type and
    are refused.
``.npz``
    NumPy's zip of ``.npy`` files, read with ``allow_pickle=False``; metadata is stored as
    the JSON text of the array ``__metadata__``. Each member's size is checked before it is
    decompressed.

Every error is a ``ValueError`` naming the file, what is wrong and what is allowed.
Writes go through :func:`analogsim.experiments.paths.atomic_write` (a temporary file beside
the target, renamed over it; never over something that is not a regular file).
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .paths import atomic_write, check_input_file, check_output_file

__all__ = ["load_tensors", "save_tensors", "tensor_format", "FORMATS", "DTYPES",
           "MAX_HEADER_BYTES", "MAX_FILE_BYTES"]

#: File formats by suffix.
FORMATS = {".safetensors": "safetensors", ".npz": "npz"}
#: safetensors dtype names → NumPy dtypes (little-endian); BF16 is decoded separately.
DTYPES = {"BOOL": np.dtype("?"), "U8": np.dtype("u1"), "I8": np.dtype("i1"),
          "I16": np.dtype("<i2"), "U16": np.dtype("<u2"), "F16": np.dtype("<f2"),
          "I32": np.dtype("<i4"), "U32": np.dtype("<u4"), "F32": np.dtype("<f4"),
          "F64": np.dtype("<f8"), "I64": np.dtype("<i8"), "U64": np.dtype("<u8")}
#: Names the specification defines that NumPy cannot hold (refused by name).
_UNSUPPORTED = ("F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64")
#: Largest JSON header accepted (the reference implementation's limit).
MAX_HEADER_BYTES = 100_000_000
#: Largest file read by default (bytes); ``max_bytes=`` raises it.
MAX_FILE_BYTES = 4 << 30
_ENTRY_KEYS = {"dtype", "shape", "data_offsets"}


def tensor_format(path: str | os.PathLike[str], format: str | None = None) -> str:
    """``"safetensors"`` or ``"npz"``: ``format`` if given, else from the file's suffix."""
    if format is not None:
        if format not in FORMATS.values():
            raise ValueError(f"format = {format!r} is invalid; allowed: "
                             + ", ".join(map(repr, FORMATS.values())))
        return format
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"path = {os.fspath(path)!r} is invalid: its suffix {suffix!r} names "
                         "no tensor format; allowed: a file ending in "
                         + " or ".join(FORMATS) + " (or pass format=)")
    return FORMATS[suffix]


# --------------------------------------------------------------------------- reading


def load_tensors(path: str | os.PathLike[str], *, format: str | None = None,
                 max_bytes: int = MAX_FILE_BYTES) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read ``({name: array}, metadata)`` from a ``.safetensors`` or ``.npz`` file.

    Parameters
    ----------
    path : str or PathLike
        The file (a regular file of at most ``max_bytes`` bytes).
    format : {"safetensors", "npz"}, optional
        Overrides the suffix.
    max_bytes : int
        Largest file (and, for ``.npz``, largest decompressed member) accepted, in bytes.

    Returns
    -------
    tensors : dict of str to ndarray
        In file order (safetensors: by offset). Arrays are C-contiguous, native byte order.
    metadata : dict of str to str
        The file's ``__metadata__`` table (empty if it has none).

    Raises
    ------
    ValueError
        A malformed, truncated or oversized file; the message names the file.
    """
    fmt = tensor_format(path, format)
    p = check_input_file(path, "path", max_bytes)
    data = p.read_bytes()
    if fmt == "safetensors":
        return _parse_safetensors(data, str(p))
    return _parse_npz(data, str(p), max_bytes)


def _bad(where: str, what: str, allowed: str) -> ValueError:
    return ValueError(f"{where}: {what}; allowed: {allowed}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise KeyError(k)
        out[k] = v
    return out


def _header(data: bytes, where: str) -> tuple[dict[str, Any], int]:
    """The parsed JSON header and where the byte buffer starts."""
    if len(data) < 8:
        raise _bad(where, f"the file has {len(data)} bytes, too few for the 8-byte header "
                   "length (truncated?)", "a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER_BYTES:
        raise _bad(where, f"the header length is {n} bytes", f"at most {MAX_HEADER_BYTES}")
    if 8 + n > len(data):
        raise _bad(where, f"the header length is {n} bytes but only {len(data) - 8} follow "
                   "(truncated?)", "a complete safetensors file")
    raw = data[8:8 + n]
    try:
        text = raw.decode("utf-8")
        if not text.startswith("{"):
            raise ValueError("the header does not start with '{'")
        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except KeyError as e:
        raise _bad(where, f"the header names tensor {e.args[0]!r} twice",
                   "unique names") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise _bad(where, f"the header is not valid JSON ({e})", "a UTF-8 JSON object "
                   "padded with spaces") from None
    if not isinstance(header, dict):
        raise _bad(where, "the header is not a JSON object", "a JSON object")
    return header, 8 + n


def _metadata(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _bad(where, "__metadata__ is not a table of strings", "{str: str}")
    return dict(value)


def _entry(name: str, entry: Any, where: str) -> tuple[str, tuple[int, ...], int, int]:
    """``(dtype name, shape, begin, end)`` of one checked header entry."""
    at = f"{where}: tensor {name!r}"
    if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
        keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        raise _bad(at, f"its entry has keys {keys}", f"exactly {sorted(_ENTRY_KEYS)}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in DTYPES and dtype != "BF16":
        why = "has no NumPy type" if dtype in _UNSUPPORTED else "is not a safetensors dtype"
        raise _bad(at, f"dtype {dtype!r} {why}", ", ".join([*DTYPES, "BF16"]))
    if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise _bad(at, f"shape {shape!r} is invalid", "a list of integers >= 0")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(
            isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)):
        raise _bad(at, f"data_offsets {offsets!r} is invalid", "[begin, end], integers >= 0")
    begin, end = offsets
    size = 2 if dtype == "BF16" else DTYPES[dtype].itemsize
    if end < begin or end - begin != math.prod(shape) * size:
        raise _bad(at, f"data_offsets {offsets} hold {end - begin} bytes but dtype {dtype} "
                   f"and shape {shape} need {math.prod(shape) * size}",
                   "end - begin = product(shape) × the dtype's size")
    return dtype, tuple(shape), begin, end


def _decode(buf: bytes, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if dtype == "BF16":  # the upper half of a float32: widen exactly
        bits = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    return np.frombuffer(buf, dtype=DTYPES[dtype]).astype(
        DTYPES[dtype].newbyteorder("="), copy=True).reshape(shape)


def _parse_safetensors(data: bytes, where: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    header, start = _header(data, where)
    meta = _metadata(header.pop("__metadata__"), where) if "__metadata__" in header else {}
    entries = sorted(((_entry(name, e, where), name) for name, e in header.items()),
                     key=lambda t: (t[0][2], t[0][3]))
    n_buf, pos, out = len(data) - start, 0, {}
    for (dtype, shape, begin, end), name in entries:
        if end > n_buf:
            raise _bad(f"{where}: tensor {name!r}", f"data_offsets [{begin}, {end}] reach "
                       f"past the {n_buf} data bytes (truncated?)", "offsets inside the file")
        if begin != pos:
            what = "overlaps the previous tensor" if begin < pos else \
                f"leaves bytes {pos}..{begin} unused"
            raise _bad(f"{where}: tensor {name!r}", f"data_offsets [{begin}, {end}] {what}",
                       "tensors stored back to back, covering the data exactly")
        out[name] = _decode(data[start + begin:start + end], dtype, shape)
        pos = end
    if pos != n_buf:
        raise _bad(where, f"{n_buf - pos} bytes after the last tensor are not part of any",
                   "tensors covering the data exactly")
    return out, meta


def _parse_npz(data: bytes, where: str, max_bytes: int
               ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        for info in zf.infolist():
            if info.file_size > max_bytes:
                raise _bad(where, f"member {info.filename!r} unpacks to {info.file_size} "
                           "bytes", f"at most max_bytes = {max_bytes}")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except zipfile.BadZipFile as e:
        raise _bad(where, f"not a readable .npz file ({e})", "a NumPy .npz file") from None
    except (ValueError, OSError, EOFError) as e:
        if str(e).startswith(where):
            raise
        raise _bad(where, f"a member cannot be read ({e})", "arrays of numbers, no pickled "
                   "objects") from None
    meta: dict[str, str] = {}
    if "__metadata__" in arrays:
        raw = arrays.pop("__metadata__")
        try:
            meta = _metadata(json.loads(str(raw[()])), where)
        except (ValueError, TypeError, IndexError):
            raise _bad(where, "__metadata__ is not JSON text of a table of strings",
                       "{str: str} as JSON") from None
    for name, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise _bad(where, f"array {name!r} has dtype {a.dtype}",
                       "booleans, integers or floats")
    return {k: np.ascontiguousarray(a) for k, a in arrays.items()}, meta


# --------------------------------------------------------------------------- writing


def _dtype_name(name: str, a: np.ndarray) -> str:
    for key, dt in DTYPES.items():
        if a.dtype.newbyteorder("<") == dt or (a.dtype == dt):
            return key
    raise ValueError(f"tensor {name!r} has dtype {a.dtype}; allowed: "
                     + ", ".join(str(d) for d in DTYPES.values()))


def _check_tensors(tensors: Mapping[str, Any], metadata: Mapping[str, str] | None
                   ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    if not isinstance(tensors, Mapping) or not tensors:
        raise ValueError(f"tensors = {type(tensors).__name__} is invalid; allowed: a non-empty "
                         "mapping of names to arrays")
    out = {}
    for name, a in tensors.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"tensor name {name!r} is invalid; allowed: a non-empty string "
                             "other than '__metadata__'")
        if not isinstance(a, np.ndarray):
            raise ValueError(f"tensor {name!r} is a {type(a).__name__}; allowed: a numpy "
                             "ndarray")
        _dtype_name(name, a)
        out[name] = a
    meta = _metadata(dict(metadata or {}), "metadata")
    return out, meta


def _safetensors_bytes(tensors: dict[str, np.ndarray], meta: dict[str, str]) -> bytes:
    header: dict[str, Any] = {"__metadata__": meta} if meta else {}
    blobs, pos = [], 0
    for name, a in tensors.items():
        raw = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": _dtype_name(name, a), "shape": list(a.shape),
                        "data_offsets": [pos, pos + len(raw)]}
        blobs.append(raw)
        pos += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the specification's alignment padding
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def save_tensors(path: str | os.PathLike[str], tensors: Mapping[str, np.ndarray],
                 metadata: Mapping[str, str] | None = None, *, format: str | None = None
                 ) -> Path:
    """Write ``tensors`` (and a ``{str: str}`` metadata table) to a ``.safetensors`` or
    ``.npz`` file, atomically; returns the path.

    Parameters
    ----------
    path : str or PathLike
        A new file, or a regular file (replaced); anything else is refused.
    tensors : mapping of str to ndarray
        Booleans, integers or floats; written little-endian.
    metadata : mapping of str to str, optional
        Stored as ``__metadata__``.
    format : {"safetensors", "npz"}, optional
        Overrides the suffix.
    """
    fmt = tensor_format(path, format)
    check_output_file(path, "path")
    arrays, meta = _check_tensors(tensors, metadata)
    if fmt == "safetensors":
        blob = _safetensors_bytes(arrays, meta)
        return atomic_write(path, lambda f: f.write(blob), "path")
    extra = {"__metadata__": np.array(json.dumps(meta))} if meta else {}
    return atomic_write(path, lambda f: np.savez(f, **arrays, **extra), "path")
