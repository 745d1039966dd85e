"""The one place random streams come from: ``(run seed, stable name) → independent stream``.

Every random quantity of a run — forward weights, device-to-device variation, stuck cells,
read and update noise keys, feedback matrices, inverses, predictors, data order — is drawn
from a stream named by a *path* of strings and integers under the run seed, e.g.
``("layer", 3, "array")`` or ``("rule", "dfa", "B1")``::

    rng = derive_rng(seed, "data", "order", epoch)       # a numpy Generator
    key = derive_seed(seed, "layer", 0)                   # a 64-bit integer seed

The path is hashed (BLAKE2b, type-tagged so ``1`` and ``"1"`` differ) into the ``spawn_key``
of a :class:`numpy.random.SeedSequence` whose entropy is the run seed, so two different
paths give statistically independent streams, and the same path gives the same stream in
every process, thread count and Python version. Seeds are never combined by arithmetic at
the call site: salting a seed with a constant plus an index collides as soon as two call
sites pick overlapping ranges (two layers, or a layer and a feedback matrix, end up with
one seed and share weights, device variation and noise).

Derived seeds are plain ``int`` in ``[0, 2**64)``, so a component seeded with one can derive
its own sub-streams in turn (a layer derives ``"init"`` and ``"array"``; an array derives
``"devices"``, ``"read"`` and ``"update"``).

This module is the foundation of the package: it imports nothing from it.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["derive_seed", "derive_rng", "check_seed"]

_U64 = 1 << 64


def check_seed(seed: object, name: str = "seed") -> int:
    """Return ``seed`` as an ``int`` if it is an integer in ``[0, 2**64)``, else raise."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) \
            or not 0 <= int(seed) < _U64:
        raise ValueError(f"{name} = {seed!r} is invalid; allowed: an integer in [0, 2**64)")
    return int(seed)


def _path_word(part: object) -> int:
    """A 128-bit integer naming one path element (type-tagged BLAKE2b of its text)."""
    if isinstance(part, (bool, np.bool_)):
        raise TypeError(f"random-stream path element {part!r} is invalid; allowed: str or int")
    if isinstance(part, str):
        data = b"s" + part.encode("utf-8")
    elif isinstance(part, (int, np.integer)):
        data = b"i" + str(int(part)).encode("ascii")
    else:
        raise TypeError(f"random-stream path element {part!r} is invalid; allowed: str or int")
    return int.from_bytes(hashlib.blake2b(data, digest_size=16).digest(), "little")


def _sequence(seed: object, path: tuple[object, ...]) -> np.random.SeedSequence:
    if not path:
        raise ValueError("a random-stream path is empty; allowed: at least one name, e.g. "
                         "derive_seed(seed, 'layer', 0)")
    return np.random.SeedSequence(check_seed(seed), spawn_key=tuple(_path_word(p) for p in path))


def derive_seed(seed: int, *path: str | int) -> int:
    """The 64-bit seed of the stream ``path`` under ``seed``.

    Parameters
    ----------
    seed : int
        Run seed (or a seed derived by this function), ``0 <= seed < 2**64``.
    *path : str or int
        Stable name of the stream, e.g. ``"layer", 2, "array"``.

    Returns
    -------
    int
        ``SeedSequence(seed, spawn_key=H(path)).generate_state(2, uint32)`` as one integer in
        ``[0, 2**64)``.
    """
    lo, hi = _sequence(seed, path).generate_state(2, np.uint32)
    return int(lo) | (int(hi) << 32)


def derive_rng(seed: int, *path: str | int) -> np.random.Generator:
    """A fresh :class:`numpy.random.Generator` (PCG64) on the stream ``path`` under ``seed``."""
    return np.random.Generator(np.random.PCG64(_sequence(seed, path)))
