"""Run parameters: one flat ``{key: value}`` dict describes a training run.

The command line's ``train`` builds such a dict from its flags and ``--set`` options, and a
sweep point (see :mod:`analogsim.experiments.sweep`) *is* one; :func:`resolve_point` turns
it into the hardware, model and training configs, and :func:`run_point` (the sweep's run
function) trains it and returns the record the results store keeps.

Keys
----
``hardware``
    hardware preset name or TOML file (default ``"ideal"``).
``model``
    network preset name or TOML file (default ``"digits-small"``).
``rule``, ``dataset``, ``data_dir``, ``epochs``, ``batch_size``, ``lr``, ``lr_eps``,
``lr_aux``, ``seed``, ``transpose``, ``refresh``, ``staleness``, ``optimizer``
    fields of :class:`~analogsim.experiments.runner.TrainConfig` (``train.<field>`` works too).
``hw.<section>.<field>`` (or just ``<section>.<field>``)
    one hardware field, e.g. ``hw.noise.read_noise``; ``"none"`` sets an optional field to
    None; all fields of one section are applied together.
``model.<field>``
    one :class:`~analogsim.layers.network.ModelConfig` field, e.g. ``model.hidden``.
``rule.<option>``
    a constructor option of the rule, e.g. ``rule.feedback = "digital"``.
``optimizer``, ``optimizer.<option>``
    the analog update algorithm (a TrainConfig field, default ``"sgd"``) and one of its
    options, e.g. ``optimizer.threshold = 2``.
``alignment``
    ``true``: after every epoch record the angle between the rule's weight updates and the
    true gradient (:func:`analogsim.experiments.plots.alignment_angles`, on a copy; the run
    itself is not changed).
``drift_s``
    seconds of conductance drift after training; the test set is evaluated again and
    reported as ``test_accuracy_drift`` (0: skipped).
``"a+b"`` (a *bundle*)
    sets several keys together from a list, ``"rule+transpose" = ["bp", "shadow"]``; in a
    sweep grid a list of such lists varies them jointly instead of as a product.

Values are checked by the field declarations of the configs (:mod:`analogsim.fields`):
TOML conventions apply (``"none"`` is None, an integer for a float field is a float), and
an unknown key is an error that suggests the nearest valid name.

A network whose hidden units are the smooth activation (``model.hidden = "smooth"``) also
reports its final smoothing ε (see :func:`eps_summary`): ``eps_mean``, ``eps_min`` and
``eps_max`` over every hidden unit, and ``eps_mean_per_layer``, ``eps_min_per_layer``,
``eps_max_per_layer`` (one value per hidden layer, ``None`` for a hidden layer with another
activation). With ``model.learnable_eps = false`` they all equal ``model.eps0``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..fields import check_fields, field_names, from_mapping, param, specs, unknown_key
from ..hardware.config import HardwareConfig
from ..hardware.presets import PRESETS, get_preset
from ..hardware.toml_io import load_hardware
from ..layers.activations import SmoothReLU
from ..layers.network import ModelConfig
from ..rules import optimizer_options, rule_options
from .data import Dataset, load_dataset, onehot
from .models import MODEL_FIELDS, apply_model_overrides, load_model
from .runner import TrainConfig, build_run, evaluate, train

__all__ = ["TRAIN_KEYS", "RUN_KEYS", "HW_KEYS", "Run", "expand_bundles", "resolve_point",
           "execute", "eps_summary", "run_point", "warmup", "identity", "RESULTS_VERSION"]

ALIGNMENT_BATCH = 256
#: Prefix of every error :func:`resolve_point` raises about a key or value.
WHERE = "run parameters"


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class Run:
    """A resolved run: what :func:`execute` needs. The measurements are declared fields."""

    hw: HardwareConfig
    model: ModelConfig
    train: TrainConfig
    alignment: bool = param(False, doc="record the angle between the rule's updates and the "
                            "true gradient after every epoch")
    drift_s: float = param(0.0, unit="s", lo=0, hi=math.inf, hi_open=True,
                           doc="let the conductances drift this long after training and "
                               "report the test accuracy again; 0 skips it")

    def __post_init__(self) -> None:
        check_fields(self, "")  # the run keys are plain: `alignment`, not `run.alignment`


#: TrainConfig fields settable as plain keys (``rule_options`` goes through ``rule.<opt>``,
#: ``optimizer_options`` through ``optimizer.<opt>``).
TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig)
                   if f.name not in ("rule_options", "optimizer_options"))
#: The measurements a run may add (declared fields of :class:`Run`).
MEASURES = tuple(specs(Run))
#: Defaults of the keys that are not TrainConfig fields.
DEFAULTS = {"hardware": "ideal", "model": "digits-small",
            **{f.name: f.default for f in dataclasses.fields(Run) if f.name in MEASURES}}
#: Every plain (undotted) key a run accepts.
RUN_KEYS = ("hardware", "model", *TRAIN_KEYS, *MEASURES)
#: Every hardware field as a dotted key (``name``, ``adc.bits``, ...).
HW_KEYS = tuple(field_names(HardwareConfig))
#: The dotted forms, listed when a plain key is unknown.
_PATTERNS = ("hw.<section>.<field>", "model.<field>", "rule.<option>", "optimizer.<option>",
             "train.<field>", "a bundle 'a+b'")


def expand_bundles(point: Mapping[str, Any]) -> dict[str, Any]:
    """Replace every ``"a+b": [va, vb]`` entry by ``a = va, b = vb`` (later keys win)."""
    out: dict[str, Any] = {}
    for key, value in point.items():
        if "+" not in key:
            out[key] = value
            continue
        parts = [p.strip() for p in key.split("+")]
        if not all(parts) or not isinstance(value, list) or len(value) != len(parts):
            raise ValueError(f"bundle {key!r} = {value!r} is invalid; allowed: a list of "
                             f"{len(parts)} values, one per key of {parts}")
        out.update(zip(parts, value, strict=True))
    return out


def _unknown(key: str, prefix: str, names: Sequence[str]) -> ValueError:
    """Unknown ``key`` among ``prefix + names``, the nearest name suggested. The namespace
    and a known section go into the message's scope (``hw.adc: key 'bitz'``) and the name is
    compared without them: a shared ``model.`` would make any field look near."""
    scope, rest = prefix.rstrip("."), key[len(prefix):]
    section, dot, leaf = rest.rpartition(".")
    fields = [n[len(section) + 1:] for n in names if n.startswith(section + ".")] if dot else []
    if fields:
        scope, rest, names = f"{scope}.{section}".lstrip("."), leaf, fields
    extra = _PATTERNS if names is RUN_KEYS else ()  # a plain key may be meant as a dotted one
    return unknown_key(f"{WHERE}: {scope}" if scope else WHERE, rest, [*names, *extra])


def _namespace(key: str) -> tuple[str, str, Sequence[str] | None]:
    """``(namespace, prefix, allowed names)`` of a run key; rule options are checked once the
    rule is known (None)."""
    head, dot, _ = key.partition(".")
    if not dot:
        return "run", "", RUN_KEYS
    if head == "train":
        return "run", "train.", TRAIN_KEYS
    if head == "hw":
        return "hw", "hw.", HW_KEYS
    if head == "model":
        return "model", "model.", MODEL_FIELDS
    if head == "rule":
        return "rule", "rule.", None
    if head == "optimizer":
        return "optimizer", "optimizer.", None
    if head in HardwareConfig.SECTIONS:  # `--set noise.read_noise=…`: the `hw.` left out
        return "hw", "", HW_KEYS
    return "run", "", RUN_KEYS


def _sort_keys(point: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Split keys by namespace (``run``, ``hw``, ``model``, ``rule``, ``optimizer``),
    refusing unknown ones."""
    out: dict[str, dict[str, Any]] = {"run": {}, "hw": {}, "model": {}, "rule": {},
                                      "optimizer": {}}
    for key, value in expand_bundles(point).items():
        space, prefix, names = _namespace(key)
        name = key[len(prefix):]
        if names is not None and name not in names:
            raise _unknown(key, prefix, names)
        out[space][name] = value
    return out


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"adc.bits": 6}`` → ``{"adc": {"bits": 6}}`` (the keys are known field names)."""
    table: dict[str, Any] = {}
    for key, value in flat.items():
        *path, leaf = key.split(".")
        node = table
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return table


def _rule_options(rule: str, options: dict[str, Any], kind: str = "rule") -> dict[str, Any]:
    """``rule.<option>`` (or with ``kind = "optimizer"`` ``optimizer.<option>``) values
    checked by the declared ``Options`` of the rule or optimizer (TOML conventions:
    ``"none"`` is None, an integer for a float field is a float)."""
    declared = rule_options(rule) if kind == "rule" else optimizer_options(rule)
    names = [f.name for f in dataclasses.fields(declared) if f.init]
    for name in options:
        if name not in names:
            raise unknown_key(f"{WHERE}: {kind} {rule!r}", name, names or ["(no options)"],
                              what="option")
    checked = from_mapping(declared, options, where=WHERE)
    return {name: getattr(checked, name) for name in options}


# --------------------------------------------------------------------------- resolution


def _load_hardware(name: Any) -> HardwareConfig:
    if isinstance(name, HardwareConfig):  # from Python (analogsim.train); never from TOML
        return name
    if not isinstance(name, str):
        raise ValueError(f"hardware = {name!r} is invalid; allowed: a preset ("
                         + ", ".join(PRESETS) + ") or a path to a .toml file")
    if name in PRESETS:
        return get_preset(name)
    if not name.endswith(".toml"):
        raise ValueError(f"hardware preset {name!r} is unknown; allowed: "
                         + ", ".join(PRESETS) + " or a path to a .toml file")
    try:
        return load_hardware(name)
    except FileNotFoundError as e:
        raise ValueError(str(e) + "; allowed: an existing .toml file or a preset: "
                         + ", ".join(PRESETS)) from None


def resolve_point(point: Mapping[str, Any]) -> Run:
    """Turn a run-parameter dict into a :class:`Run` (see the module docstring for keys).

    Raises
    ------
    ValueError
        Unknown key (the nearest name suggested), unknown preset, malformed file or invalid
        value; the message says what is allowed.
    """
    if not isinstance(point, Mapping):
        raise ValueError(f"point = {point!r} is invalid; allowed: a table of run parameters")
    keys = _sort_keys(point)
    plain = {**DEFAULTS, **keys["run"]}
    hw = _load_hardware(plain.pop("hardware"))
    if keys["hw"]:  # one table: the fields of a section are applied together
        hw = from_mapping(HardwareConfig, _nest(keys["hw"]), where=WHERE, base=hw)
    model_name = plain.pop("model")
    if not isinstance(model_name, str | ModelConfig):
        raise ValueError(f"model = {model_name!r} is invalid; allowed: a preset name or a "
                         ".toml path")
    base_model = model_name if isinstance(model_name, ModelConfig) else load_model(model_name)
    model = apply_model_overrides(base_model, keys["model"], source=WHERE)
    measure = {name: plain.pop(name) for name in MEASURES}
    cfg = from_mapping(TrainConfig, plain, where=WHERE)
    if keys["rule"]:
        cfg = dataclasses.replace(cfg, rule_options=_rule_options(cfg.rule, keys["rule"]))
    if keys["optimizer"]:
        cfg = dataclasses.replace(cfg, optimizer_options=_rule_options(
            cfg.optimizer, keys["optimizer"], kind="optimizer"))
    return Run(hw, model, cfg, **measure)


# --------------------------------------------------------------------------- running


def _arrays(trainer) -> list[Any]:
    """Every crossbar array of the network and of the rule's modules (for drift)."""
    layers = [*trainer.net.layers, *trainer.rule.modules().values()]
    # A conv layer (and FA's conv feedback) keeps one array per group, in its kernels.
    parts = [k for layer in layers for k in getattr(layer, "kernels", [layer])]
    return [part.array for part in parts if hasattr(part, "array")]


def eps_summary(net) -> dict[str, Any]:
    """Final smoothing ε of the hidden layers' smooth activations, as summary metrics.

    ε is digital periphery state of the activation (``ε = exp θ`` per unit), read from each
    hidden layer's activation object; the output layer is left out. Returns ``{}`` when no
    hidden layer uses the smooth activation, otherwise ``eps_mean``/``eps_min``/``eps_max``
    over all smooth hidden units and the same per hidden layer as lists
    (``eps_mean_per_layer``...; ``None`` where a hidden layer has another activation).
    """
    acts = [layer.act for layer in net.layers[:-1]]
    per_layer = [np.asarray(a.eps, dtype=np.float64) if isinstance(a, SmoothReLU) else None
                 for a in acts]
    smooth = [e for e in per_layer if e is not None]
    if not smooth:
        return {}
    every = np.concatenate(smooth)
    out: dict[str, Any] = {"eps_mean": float(every.mean()), "eps_min": float(every.min()),
                           "eps_max": float(every.max())}
    for name, fn in (("mean", np.mean), ("min", np.min), ("max", np.max)):
        out[f"eps_{name}_per_layer"] = [None if e is None else float(fn(e))
                                        for e in per_layer]
    return out


def _alignment_hook(trainer, ds: Dataset) -> Callable[[dict], None]:
    from .plots import alignment_angles  # plots may inspect device state; the run may not

    x = ds.x_train[:ALIGNMENT_BATCH]
    y = ds.y_train[:ALIGNMENT_BATCH]
    t = onehot(y, ds.n_classes) if ds.n_classes else y.astype(np.float32)

    def hook(record: dict) -> None:
        record["alignment_deg"] = alignment_angles(trainer, x, t)
    return hook


def execute(run: Run, *, dataset: Dataset | None = None,
            on_epoch: Callable[[dict], None] | None = None,
            on_checkpoint: Callable[[Any, dict], None] | None = None,
            resume: str | os.PathLike[str] | None = None,
            on_step: Callable[[int, int], None] | None = None,
            trainer: Any = None) -> dict[str, Any]:
    """Train ``run`` with :func:`analogsim.experiments.runner.train`, plus the optional
    alignment and drift measurements; returns the runner's record.

    ``resume``: a checkpoint written for the same run (see
    :mod:`analogsim.experiments.checkpoint`); training continues after its last epoch and
    reports what an uninterrupted run would have.

    ``on_epoch(record)``, ``on_step(done, total)`` and ``on_checkpoint(trainer, state)`` are
    passed to the runner (the alignment angles are added to ``record`` before ``on_epoch``
    sees it). ``trainer``: one built with :func:`~analogsim.experiments.runner.build_run`
    for this run, to keep a handle on the trained network (not with ``resume``).
    """
    cfg = run.train
    ds = dataset if dataset is not None else load_dataset(
        cfg.dataset, **({"data_dir": cfg.data_dir} if cfg.data_dir else {}))
    resumed: dict[str, Any] = {}
    if resume is not None:
        from .checkpoint import load  # imports the runner, as this module does

        trainer, meta = load(resume, run.hw, run.model, cfg)
        resumed = dict(start_epoch=meta["epoch"], progress=meta["progress"])
    elif trainer is None:
        trainer = build_run(run.hw, run.model, cfg, ds.n_features, ds.n_outputs)
    hooks = [h for h in (_alignment_hook(trainer, ds) if run.alignment else None, on_epoch) if h]

    def each_epoch(record: dict) -> None:
        for hook in hooks:
            hook(record)

    out = train(run.hw, run.model, cfg, dataset=ds, trainer=trainer, on_epoch=each_epoch,
                on_checkpoint=on_checkpoint, on_step=on_step, **resumed)
    out["metrics"].update(eps_summary(trainer.net))  # before drift: ε does not drift
    if run.drift_s > 0:
        for array in _arrays(trainer):
            array.advance_clock(run.drift_s)
        x, y = ds.get_split("test")
        t = onehot(y, ds.n_classes) if ds.n_classes else y.astype(np.float32)
        _, acc = evaluate(trainer, x, t)  # predicted the rule's way
        out["metrics"]["test_accuracy_drift"] = acc if ds.n_classes else float("nan")
    out["metrics"]["drift_s"] = run.drift_s
    return out


def to_record(out: Mapping[str, Any]) -> dict[str, Any]:
    """The runner's record in the shape a sweep stores."""
    return {
        "config": out["config"],
        "metrics": out["epochs"],
        "ledger": {"counts": out["ledger"], "energy_breakdown_pj": out["energy_breakdown_pj"]},
        "summary": out["metrics"],
    }


def run_point(point: dict[str, Any]) -> dict[str, Any]:
    """Sweep run function (``"analogsim.experiments.points:run_point"``)."""
    return to_record(execute(resolve_point(point)))


#: Bumped when a code change alters what a run computes for the same configuration (so stored
#: results of the old code are not reused); part of every point's identity.
RESULTS_VERSION = 1


def identity(point: dict[str, Any]) -> dict[str, Any]:
    """What determines a point's result (sweep ``identity_fn``): the resolved configuration.

    Hardware *values* (not a file's path: an edited hardware TOML is a new point), the
    model, the training config with rule and optimizer options, the measurements, and
    :data:`RESULTS_VERSION`. Two spellings of one run (a preset's default written out, a
    bundle) have one identity.
    """
    run = resolve_point(point)
    return {"hardware": run.hw.to_dict(), "model": run.model.to_dict(),
            "train": run.train.to_dict(), "alignment": run.alignment, "drift_s": run.drift_s,
            "results_version": RESULTS_VERSION}


def warmup() -> None:
    """Compile (or load from numba's cache) the kernels every run uses, once, in the driver."""
    from ..hardware.array import CrossbarArray

    rng = np.random.default_rng(0)
    for name in ("aihwkit_default", "pcm"):  # stochastic and expected pulse updates
        arr = CrossbarArray(3, 4, get_preset(name), seed=0)
        x = rng.uniform(-1, 1, (2, 3)).astype(np.float32)
        arr.mvm(x)
        arr.pulse_update(x, rng.uniform(-1, 1, (2, 4)).astype(np.float32), 0.01)
