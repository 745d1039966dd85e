"""Checkpoints: save a whole training state to one ``.npz`` file and resume it bit-exactly.

A checkpoint holds everything a :class:`~analogsim.rules.Trainer` changes while it trains —
so that training ``2`` epochs equals training ``1``, saving, loading into a freshly built
trainer and training ``1`` more, to the last bit:

* the network: every layer's ``state_dict`` — each array's conductances ``G±``, device
  variation ``α↑, α↓``, stuck masks, drift exponents and clock, ADC bounds, read/update
  counters of the counter-based generator and its programming-noise generator; transpose
  strategies (probe readout and counters, shadow weights, twin arrays); biases; activation
  θ — and the network's own generator (stochastic units, noise injection);
* the rule's modules (feedback matrices, TP/DTP inverses, DNI predictors);
* the optimizer's learning rates and the analog update algorithm's per-layer state (the
  ``mixed_precision`` accumulators χ);
* the trainer's staleness queue: updates computed but not yet applied;
* the cost ledger (every scope's counts), the runner's accounting and epoch records;
* the run configuration (hardware, model, train) and the number of epochs done.

Format
------
One ``.npz`` archive (``numpy.savez``, uncompressed) read with ``allow_pickle=False``:

``net.<key>``
    :meth:`Network.state_dict` arrays (``net.layer0.array.gp``, ``net.net.rng`` …).
``rule.<key>``
    :meth:`Rule.state_dict` arrays (``rule.B0.array.gp``, ``rule.g1.b`` …).
``opt.<target>.<key>``
    :meth:`AnalogOptimizer.state_dict <analogsim.rules.optimizers.AnalogOptimizer.state_dict>`
    arrays by what the optimizer drives (``opt.net.layer0.chi``, ``opt.rule.g1.chi``; a conv
    layer's kernel of group ``j``: ``opt.net.layer0_g<j>.chi``); only layers that have
    received an update hold state.
``queue.<i>.<j>.x``, ``queue.<i>.<j>.delta``, ``queue.<i>.<j>.grad_eps``
    Pending update ``j`` of step ``i`` (oldest first) of the staleness queue.
``__meta__``
    A ``uint8`` array holding UTF-8 JSON: ``format``, ``version``, ``epoch``, ``config``
    (``hardware``, ``model``, ``train``), ``progress`` (runner accounting), ``opt``
    (learning rates), ``ledger`` (:meth:`Ledger.state_dict`) and ``queue`` (per pending
    update its target — ``net.layer<i>`` or ``rule.<module>`` — op name, ``aux`` flag).

Loading builds the objects from the configuration (:func:`~analogsim.experiments.runner.
build_run`) and then overwrites their state: nothing in the file is executed, every array's
name, shape, dtype and finiteness is checked against the freshly built trainer, and any
problem — truncated or corrupted file (zip CRC), missing or extra arrays, a configuration
that differs from the one given — raises :class:`ValueError` naming the file and the problem.

Writes are atomic: the archive is written to a temporary file in the same directory, flushed
to disk (``fsync``) and renamed over the target with :func:`os.replace`. A crash during a save
leaves the previous checkpoint intact (and at most a stray ``.<name>.<pid>.*.tmp`` file, the
name cut to 32 characters, removed by the next save to that path once its writer is gone).
Only a regular file is ever replaced: a directory, device, FIFO or symlink at the path is
refused (:mod:`analogsim.experiments.paths`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..hardware.config import HardwareConfig
from ..hardware.ledger import COUNTERS
from ..layers.network import ModelConfig
from ..resources import check_memory
from ..rules import Trainer, Update
from ..rules.base import check_lr
from .paths import atomic_write
from .runner import TrainConfig, build_run, train

__all__ = ["FORMAT", "VERSION", "save", "load", "read_meta", "state_arrays",
           "train_with_checkpoints"]

FORMAT = "analogsim-checkpoint"
VERSION = 1
_META = "__meta__"
#: Train-config fields that may differ between the saved run and the resumed one.
_RESUMABLE_CHANGES = ("epochs", "data_dir")
_PROGRESS_COUNTS = ("setup", "setup_tr", "evaluation")


def _fail(path: str | os.PathLike, what: str) -> None:
    raise ValueError(f"checkpoint {str(path)!r}: {what}")


# --------------------------------------------------------------------------- save


def _targets(trainer: Trainer) -> dict[int, str]:
    """``id(module) → name`` of everything an :class:`Update` may target."""
    out = {id(layer): f"net.layer{i}" for i, layer in enumerate(trainer.net.layers)}
    out.update({id(mod): f"rule.{name}" for name, mod in trainer.rule.modules().items()})
    return out


def _driven(trainer: Trainer) -> dict[str, object]:
    """Target name → what the analog optimizer drives: a linear layer itself, each group's
    kernel of a conv layer (``net.layer<i>_g<j>``: the optimizer's state has the kernel's
    shape), a rule module."""
    out: dict[str, object] = {}
    for i, layer in enumerate(trainer.net.layers):
        kernels = getattr(layer, "kernels", None)
        if kernels is None:
            out[f"net.layer{i}"] = layer
        else:
            out.update({f"net.layer{i}_g{j}": k for j, k in enumerate(kernels)})
    out.update({f"rule.{name}": mod for name, mod in trainer.rule.modules().items()})
    return out


def _queue_state(trainer: Trainer) -> tuple[list[list[dict]], dict[str, np.ndarray]]:
    names = _targets(trainer)
    meta: list[list[dict]] = []
    arrays: dict[str, np.ndarray] = {}
    for i, step in enumerate(trainer._queue):
        meta.append([])
        for j, up in enumerate(step):
            if id(up.target) not in names:
                raise ValueError(f"pending update {up.name!r} targets {up.target!r}, which is "
                                 "neither a network layer nor a module of the rule; allowed: "
                                 "updates of layers a checkpoint can rebuild")
            meta[-1].append({"target": names[id(up.target)], "after": up.after,
                             "aux": bool(up.aux), "name": up.name,
                             "grad_eps": up.grad_eps is not None})
            arrays[f"queue.{i}.{j}.x"] = np.array(up.x)
            arrays[f"queue.{i}.{j}.delta"] = np.array(up.delta)
            if up.grad_eps is not None:
                arrays[f"queue.{i}.{j}.grad_eps"] = np.array(up.grad_eps)
    return meta, arrays


def state_arrays(trainer: Trainer) -> dict[str, np.ndarray]:
    """Every state array of ``trainer`` by checkpoint key (``net.…``, ``rule.…``); copies.

    Two trainers are in the same state exactly when these are equal (plus the pending
    updates and the ledger): the checkpoint tests compare them, and hashing them
    fingerprints a run.
    """
    out = {f"net.{k}": np.asarray(v) for k, v in trainer.net.state_dict().items()}
    out.update({f"rule.{k}": np.asarray(v) for k, v in trainer.rule.state_dict().items()})
    names = {id(obj): name for name, obj in _driven(trainer).items()}
    out.update({f"opt.{k}": v for k, v in trainer.opt.optimizer.state_dict(names).items()})
    return out


def save(path: str | os.PathLike, trainer: Trainer, meta: dict[str, Any] | None = None) -> Path:
    """Write ``trainer``'s whole state and ``meta`` to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Target file (conventionally ``*.npz``; the name is used as given).
    trainer : Trainer
        The training state (network, rule, optimizer, staleness queue, ledger).
    meta : dict, optional
        JSON-serialisable run information; :func:`load` expects ``config`` (``hardware``,
        ``model``, ``train`` dicts), ``epoch`` and ``progress`` — what
        :func:`train_with_checkpoints` passes. Keys ``format``, ``version``, ``opt``,
        ``ledger`` and ``queue`` are reserved.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    if not isinstance(trainer, Trainer):
        raise TypeError(f"trainer must be a Trainer, got {type(trainer).__name__}")
    meta = dict(meta or {})
    reserved = sorted({"format", "version", "opt", "ledger", "queue"} & set(meta))
    if reserved:
        raise ValueError(f"meta keys {reserved} are reserved; allowed: other keys")
    queue_meta, arrays = _queue_state(trainer)
    arrays.update(state_arrays(trainer))
    opt = trainer.opt
    meta.update(format=FORMAT, version=VERSION, queue=queue_meta,
                opt={"lr": opt.lr, "lr_eps": opt.lr_eps, "lr_aux": opt.lr_aux},
                ledger=trainer.net.ledger.state_dict())
    # float repr round-trips float64 exactly; NaN/inf use Python's JSON dialect.
    text = json.dumps(meta, sort_keys=True)
    arrays[_META] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    return _atomic_savez(Path(path), arrays)


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """``np.savez`` through :func:`~analogsim.experiments.paths.atomic_write`."""
    return atomic_write(path, lambda f: np.savez(f, **arrays), "checkpoint path")


# --------------------------------------------------------------------------- load

#: Largest metadata member (bytes), and the room a ``.npy`` header may take beside its data.
_META_MAX, _NPY_HEADER = 16 << 20, 4096


def _check_sizes(path, npz: Any, expected: Mapping[str, int] | None) -> None:
    """Refuse members whose declared (inflated) size is impossible, before inflating any.

    Every member's size must fit in memory together (:func:`check_memory`), the metadata
    must be small, and with ``expected`` (bytes of each array of the rebuilt trainer) a
    member may exceed its array by the ``.npy`` header only.
    """
    infos = {i.filename.removesuffix(".npy"): i.file_size for i in npz.zip.infolist()}
    try:
        check_memory(sum(infos.values()), f"checkpoint {str(path)!r}")
    except MemoryError as exc:
        _fail(path, f"declares more data than fits ({exc})")
    for name, size in infos.items():
        limit = _META_MAX if name == _META else (
            None if expected is None or name not in expected else expected[name] + _NPY_HEADER)
        if limit is not None and size > limit:
            _fail(path, f"member {name!r} declares {size} bytes; allowed: at most {limit} for "
                        "the rebuilt trainer's array")


def _read(path: str | os.PathLike, expected: Mapping[str, int] | None = None, *,
          meta_only: bool = False) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """All arrays and the metadata of a checkpoint file; ValueError if it is not one.

    ``expected``: the byte size of each array the rebuilt trainer holds, checked against
    the sizes the archive declares before anything is inflated."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    # Our own file object: np.load leaks its own if the zip directory is unreadable.
    with open(path, "rb") as f:
        try:
            npz = np.load(f, allow_pickle=False)
        except Exception as exc:  # any failure to open: a bad file
            _fail(path, "is truncated or corrupted, or not an .npz archive "
                        f"({type(exc).__name__}: {exc})")
        if not isinstance(npz, np.lib.npyio.NpzFile):
            _fail(path, "is a single .npy array, not an .npz checkpoint archive")
        _check_sizes(path, npz, expected)
        try:
            with npz:
                names = [_META] if meta_only and _META in npz.files else npz.files
                arrays = {k: npz[k] for k in names}
        except Exception as exc:
            # zipfile checks each member's CRC-32 as it is read: corruption lands here.
            _fail(path, "is truncated or corrupted, or holds arrays that need pickle "
                        f"({type(exc).__name__}: {exc})")
    raw = arrays.pop(_META, None)
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        _fail(path, f"has no metadata array {_META!r} (uint8 UTF-8 JSON); not an analogsim "
                    "checkpoint")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        _fail(path, f"metadata is not UTF-8 JSON ({type(exc).__name__}: {exc})")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        _fail(path, f"metadata format is {meta.get('format') if isinstance(meta, dict) else meta!r}"
                    f"; allowed: {FORMAT!r}")
    if meta.get("version") != VERSION:
        _fail(path, f"format version {meta.get('version')!r} is not supported; allowed: "
                    f"{VERSION}")
    return arrays, meta


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's metadata (config, epoch, progress …) without building anything:
    only the metadata member is inflated (after the archive's declared sizes are checked)."""
    return _read(path, meta_only=True)[1]


def _plain(obj: Any) -> Any:
    """JSON round trip, so tuples compare equal to the lists a checkpoint holds."""
    return json.loads(json.dumps(obj, sort_keys=True))


def _diff(a: dict, b: dict) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _with_later_defaults(table: dict, current: Any, *, keep_none: bool = False) -> dict:
    """A saved config ``table`` of the flat dataclass ``current``, with fields that a later
    version added filled in where ``current`` has them at their default: a checkpoint
    written before a field existed was made with the behaviour that the default keeps (e.g.
    ``noise.read_noise_model = "additive"``, ``optimizer = "sgd"``). ``None`` values count
    only with ``keep_none`` (hardware tables omit them)."""
    out, default = dict(table), type(current)()
    for f in dataclasses.fields(current):
        value = getattr(current, f.name)
        if f.name not in out and (keep_none or value is not None) \
                and value == getattr(default, f.name):
            out[f.name] = _plain(value)
    return out


def _saved_hardware(saved: dict, hw: HardwareConfig) -> dict:
    """``saved`` hardware with each section's later fields filled in (see above)."""
    return {k: _with_later_defaults(v, getattr(hw, k)) if k in HardwareConfig.SECTIONS
            and isinstance(v, dict) else v for k, v in saved.items()}


def _check_config(path, meta: dict, hw: HardwareConfig, model: ModelConfig,
                  cfg: TrainConfig) -> tuple[int, int]:
    """The saved config must be the one given (but ``train.epochs`` may grow); (n_in, n_out)."""
    conf = meta.get("config")
    if not isinstance(conf, dict) or not all(isinstance(conf.get(k), dict)
                                             for k in ("hardware", "model", "train")):
        _fail(path, "metadata 'config' must hold 'hardware', 'model' and 'train' tables")
    diff = _diff(_plain(hw.to_dict()), _saved_hardware(conf["hardware"], hw))
    if diff:
        _fail(path, f"was saved with different hardware (sections {diff}); allowed: the "
                    "hardware config it was saved with")
    saved_train = {k: v for k, v in _with_later_defaults(conf["train"], cfg,
                                                          keep_none=True).items()
                   if k not in _RESUMABLE_CHANGES}
    given = {k: v for k, v in _plain(cfg.to_dict()).items() if k not in _RESUMABLE_CHANGES}
    diff = _diff(given, saved_train)
    if diff:
        _fail(path, f"was saved with a different train config (fields {diff}); allowed: "
                    f"changes to {', '.join(_RESUMABLE_CHANGES)} only")
    sizes = conf["model"].get("sizes")
    try:
        resolved = model.replace(sizes=tuple(sizes))
    except (TypeError, ValueError) as exc:
        _fail(path, f"model sizes {sizes!r:.80} are invalid ({exc})")
    diff = _diff(_plain(resolved.to_dict()), conf["model"])
    if diff or len(sizes) != len(model.sizes) or list(model.sizes[1:-1]) != sizes[1:-1]:
        _fail(path, f"was saved with a different model (fields {diff or ['sizes']}); allowed: "
                    "the model config it was saved with")
    return sizes[0], sizes[-1]


def _expected(template: dict[str, np.ndarray], key: str,
              trainer: Trainer | None = None) -> np.ndarray | None:
    """Template array for ``key``, or for an optional probe readout or optimizer state (held
    only by layers that were updated) the shape it must have."""
    if key in template:
        return template[key]
    if key.startswith("opt.") and trainer is not None:
        parts = key[4:].split(".")  # opt.<net.layerN | rule.M>.<state key, may hold dots>
        target, name = ".".join(parts[:2]), ".".join(parts[2:])
        layer = _driven(trainer).get(target)
        return None if layer is None else trainer.opt.optimizer.template(layer, name)
    if key.endswith(".transpose.readout"):
        gp = template.get(key[: -len("transpose.readout")] + "array.gp")
        if gp is not None:
            return np.empty(gp.shape[::-1], dtype=np.float32)
    return None


def _check_arrays(path, arrays: dict[str, np.ndarray], template: dict[str, np.ndarray],
                  trainer: Trainer | None = None) -> None:
    state_keys = {k for k in arrays if not k.startswith("queue.")}
    missing = sorted(k for k in set(template) - state_keys)
    if missing:
        _fail(path, f"is missing arrays {missing[:5]}{' …' if len(missing) > 5 else ''} of the "
                    "rebuilt trainer (was it saved from a different rule or model?)")
    for key in sorted(state_keys):
        ref = _expected(template, key, trainer)
        if ref is None:
            _fail(path, f"has an unexpected array {key!r}; allowed: the rebuilt trainer's "
                        "state arrays")
        val = arrays[key]
        if val.shape != ref.shape or val.dtype != ref.dtype:
            _fail(path, f"array {key!r} has shape {val.shape} and dtype {val.dtype}; allowed: "
                        f"shape {ref.shape} and dtype {ref.dtype}")
        if val.dtype.kind == "f":
            _check_finite(path, key, val, template.get(key, ref if key.startswith("opt.")
                                                       else None))


def _check_finite(path, key: str, val: np.ndarray, ref: np.ndarray | None) -> None:
    """Finite values, except an ±inf that the rebuilt trainer has at the same place: the
    configuration puts it there (an ideal ADC's bound is ``inf``), so it is not state."""
    bad = ~np.isfinite(val)
    if bad.any() and not (ref is not None and np.array_equal(val[bad], ref[bad])):
        _fail(path, f"array {key!r} contains NaN or Inf; allowed: finite values (±inf only "
                    "where the configuration puts it, e.g. an ideal ADC's bound)")


def _restore_queue(path, trainer: Trainer, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    by_name = {v: k for k, v in _targets(trainer).items()}
    objects = {id(layer): layer for layer in trainer.net.layers}
    objects.update({id(m): m for m in trainer.rule.modules().values()})
    steps = meta.get("queue")
    if not isinstance(steps, list) or len(steps) > trainer.staleness:
        _fail(path, f"pending-update queue {steps!r:.80} is invalid; allowed: a list of at most "
                    f"staleness = {trainer.staleness} steps")
    queue: deque = deque()
    used = set()
    for i, step in enumerate(steps):
        if not isinstance(step, list):
            _fail(path, f"queue step {i} is not a list")
        ups = []
        for j, rec in enumerate(step):
            ups.append(_restore_update(path, f"queue.{i}.{j}", rec, by_name, objects, arrays))
            used.update(f"queue.{i}.{j}.{part}" for part in ("x", "delta", "grad_eps"))
        queue.append(ups)
    extra = sorted(k for k in arrays if k.startswith("queue.") and k not in used)
    if extra:
        _fail(path, f"has queue arrays {extra[:5]} that no pending update uses")
    trainer._queue = queue


def _restore_update(path, key: str, rec: Any, by_name: dict, objects: dict,
                    arrays: dict[str, np.ndarray]) -> Update:
    ok = isinstance(rec, dict) and isinstance(rec.get("target"), str) \
        and isinstance(rec.get("after"), str) and isinstance(rec.get("name"), str) \
        and isinstance(rec.get("aux"), bool) and isinstance(rec.get("grad_eps"), bool)
    if not ok or rec["target"] not in by_name:
        _fail(path, f"pending update {key} = {rec!r:.120} is invalid; allowed: a record with "
                    "target (a layer or rule module name), after, name, aux, grad_eps")
    target = objects[by_name[rec["target"]]]
    parts = {}
    for part in ("x", "delta") + (("grad_eps",) if rec["grad_eps"] else ()):
        a = arrays.get(f"{key}.{part}")
        if a is None or a.dtype not in (np.float32, np.float64) or not np.all(np.isfinite(a)):
            _fail(path, f"pending update array {key}.{part} is missing, not float32/float64 "
                        "or not finite")
        parts[part] = a
    x, d = parts["x"], parts["delta"]
    if x.ndim != 2 or d.ndim != 2 or len(x) < 1 or x.shape != (len(x), target.n_in) \
            or d.shape != (len(x), target.n_out):
        _fail(path, f"pending update {key} has x {x.shape} and delta {d.shape}; allowed: "
                    f"(B >= 1, {target.n_in}) and (B, {target.n_out})")
    return Update(target, x, d, rec["after"], parts.get("grad_eps"), aux=rec["aux"],
                  name=rec["name"])


def _restore_ledger(path, trainer: Trainer, state: Any) -> None:
    ok = isinstance(state, dict) and all(
        isinstance(p, str) and isinstance(c, dict) and set(c) <= set(COUNTERS)
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in c.values())
        for p, c in state.items())
    if not ok:
        _fail(path, "ledger state is invalid; allowed: {scope path: {counter: integer >= 0}}")
    trainer.net.ledger.load_state_dict(state)


def _check_progress(path, meta: dict) -> None:
    epoch, prog = meta.get("epoch"), meta.get("progress")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        _fail(path, f"epoch = {epoch!r} is invalid; allowed: an integer >= 0")
    if prog is None:
        return
    ok = isinstance(prog, dict) and isinstance(prog.get("epochs"), list) \
        and len(prog["epochs"]) == epoch and all(isinstance(r, dict) for r in prog["epochs"])
    ok = ok and all(isinstance(prog.get(k), dict) and set(prog[k]) == set(COUNTERS)
                    and all(isinstance(v, int) for v in prog[k].values())
                    for k in _PROGRESS_COUNTS)
    # Plausible, not only well-typed: at most 2**40 samples or steps, a non-negative critical
    # path sum, a finite positive divergence reference if there is one.
    ok = ok and all(isinstance(prog.get(k), int) and 0 <= prog[k] <= 2**40
                    for k in ("n_seen", "n_steps")) and prog["n_steps"] <= prog["n_seen"]
    ok = ok and isinstance(prog.get("cp_sum"), float) and 0.0 <= prog["cp_sum"] < math.inf
    ref = prog.get("loss_ref") if isinstance(prog, dict) else None
    ok = ok and (ref is None or (isinstance(ref, float) and 0.0 <= ref < math.inf))
    if not ok:
        _fail(path, "progress (runner accounting) is invalid; allowed: what runner.train's "
                    "on_checkpoint passes, with one epoch record per epoch done")


def load(path: str | os.PathLike, hw: HardwareConfig, model: ModelConfig,
         cfg: TrainConfig) -> tuple[Trainer, dict[str, Any]]:
    """Rebuild the trainer from ``hw``/``model``/``cfg`` and restore the state saved at ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save`.
    hw, model, cfg : HardwareConfig, ModelConfig, TrainConfig
        The run's configuration; it must equal the saved one, except that ``cfg.epochs``
        (and ``cfg.data_dir``) may differ — resume with more epochs.

    Returns
    -------
    (Trainer, dict)
        The restored trainer and the metadata (``epoch`` done, ``progress``, ``config`` …):
        continue with ``runner.train(hw, model, cfg, trainer=tr, start_epoch=meta["epoch"],
        progress=meta["progress"])``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is truncated, corrupted or not a checkpoint, or does not match the given
        configuration; the message names the file and the problem.
    """
    meta = read_meta(path)  # the metadata member only: small, and checked to be
    n_in, n_out = _check_config(path, meta, hw, model, cfg)
    _check_progress(path, meta)
    trainer = build_run(hw, model, cfg, n_in, n_out)
    template = {f"net.{k}": np.asarray(v) for k, v in trainer.net.state_dict().items()}
    template.update({f"rule.{k}": np.asarray(v) for k, v in trainer.rule.state_dict().items()})
    # Optimizer state (opt.*) is not in the template: only the total is bounded for it.
    arrays, meta = _read(path, {k: v.nbytes for k, v in template.items()})
    _check_arrays(path, arrays, template, trainer)
    try:
        trainer.net.load_state_dict({k[4:]: v for k, v in arrays.items() if k.startswith("net.")})
        trainer.rule.load_state_dict({k[5:]: v for k, v in arrays.items()
                                      if k.startswith("rule.")})
        trainer.opt.optimizer.load_state_dict(
            {k[4:]: v for k, v in arrays.items() if k.startswith("opt.")},
            _driven(trainer))
        opt = meta.get("opt")
        if not isinstance(opt, dict):
            _fail(path, "metadata 'opt' (learning rates) is missing")
        for name in ("lr", "lr_eps", "lr_aux"):
            setattr(trainer.opt, name, check_lr(name, opt.get(name)))
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith("checkpoint "):
            raise
        _fail(path, f"state does not fit the rebuilt trainer ({type(exc).__name__}: {exc})")
    _restore_ledger(path, trainer, meta.get("ledger"))
    _restore_queue(path, trainer, meta, arrays)
    return trainer, meta


# --------------------------------------------------------------------------- training


def train_with_checkpoints(hw: HardwareConfig, model: ModelConfig, cfg: TrainConfig,
                           path: str | os.PathLike, *, dataset=None,
                           on_epoch: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """:func:`runner.train` that saves after every epoch and resumes from ``path`` if present.

    Killing the process at any time and calling this again with the same arguments gives the
    same result, bit for bit (``wall_time_s`` aside), as an uninterrupted run.
    """
    conf = {"hardware": hw.to_dict(), "train": cfg.to_dict()}
    kwargs: dict[str, Any] = {}
    if os.path.exists(path):
        trainer, meta = load(path, hw, model, cfg)
        kwargs = dict(trainer=trainer, start_epoch=meta["epoch"], progress=meta["progress"])

    def checkpoint(trainer: Trainer, state: dict) -> None:
        save(path, trainer, {**state, "config": {**conf, "model": trainer.net.config.to_dict()}})

    return train(hw, model, cfg, dataset=dataset, on_epoch=on_epoch, on_checkpoint=checkpoint,
                 **kwargs)
