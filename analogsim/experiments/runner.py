"""One training run: build the network on the hardware, train a rule, evaluate, report costs.

:func:`train` is what the CLI's ``train``, the main job and every sweep point call. It returns
a plain dict (JSON-serialisable) with the resolved config, per-epoch metrics, ledger totals and
the summary figures users compare rules by:

``test_accuracy``, ``train_loss``
    after the last epoch.
``energy_per_sample_pj``
    training energy (forward, error computation, transpose, feedback, updates; not the
    one-off programming nor evaluation) per training sample.
``transpose_energy_share``
    fraction of that energy spent in ``transpose`` scopes (BP's emulation of ``Wᵀδ``).
``critical_path_ns``
    mean critical-path latency of one training step (see :class:`~analogsim.rules.Schedule`).
``inference_energy_per_sample_pj``
    energy of predicting one test sample the rule's way (:meth:`Rule.predict
    <analogsim.rules.Rule.predict>`): one forward pass for most rules, ``n_classes`` passes
    of the hidden layers for Forward-Forward's label-by-goodness inference.
Each epoch record also holds ``adc_saturated``: the share of that epoch's training ADC
conversions that hit the ADC bound (re-reads of range management included).

``diverged`` (only when true), ``diverged_epoch``, ``diverged_step``, ``diverged_loss``,
``diverged_reason``
    training stopped because a step's loss was not finite or an epoch's mean training loss
    exceeded ``diverge_factor`` times the first step's; the epochs list keeps the finished
    finite epochs, and the test and validation figures are NaN (a sweep stores the point
    with status ``diverged``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..fields import check_fields, document_fields, fail, param
from ..hardware.config import HardwareConfig
from ..hardware.ledger import Ledger, energy_breakdown_pj, energy_pj
from ..kernels import kernel_threads
from ..layers.network import ModelConfig, build_network, hidden_activation
from ..rules import OPTIMIZERS, RULES, SGD, Trainer, get_optimizer, get_rule, is_rule
from ..seeding import derive_rng
from .data import Dataset, load_dataset, onehot

__all__ = ["TrainConfig", "train", "build_run", "check_io", "ledger_report", "evaluate"]

TRANSPOSES = ("probe", "shadow", "twin", "bidirectional")


@document_fields
@dataclass(frozen=True)
class TrainConfig:
    """What to train and how (validated on construction).

    Every field is declared once with :func:`~analogsim.fields.param`; ``rule`` is checked
    against the live :data:`~analogsim.rules.RULES` registry, which may grow at run time.
    ``transpose`` is used by rules that need ``Wᵀδ`` (``bp``, and the ``hybrid``/``dni``/``dtp``
    options that take a gradient step through a transpose); others ignore it.
    """

    rule: str = param("dfa", allowed="a registered learning rule (`analogsim presets` lists "
                      "them)", doc="learning rule")
    dataset: str = param("digits", doc="data set; `digits` is the embedded 8x8 digits")
    epochs: int = param(5, lo=1, hi=100_000, doc="training epochs")
    batch_size: int = param(32, lo=1, hi=1_000_000, doc="mini-batch size")
    lr: float = param(0.05, lo=0, hi=1000, doc="learning rate of the forward weights")
    lr_eps: float = param(0.01, lo=0, hi=1000,
                          doc="learning rate of the smooth activation's ε")
    lr_aux: float = param(0.01, lo=0, hi=1000, doc="learning rate of auxiliary modules: "
                          "TP/DTP inverses, DNI predictors")
    seed: int = param(0, lo=0, hi=2**31 - 1, doc="seed of weights, devices and data order")
    transpose: str = param("probe", choices=TRANSPOSES, doc="how BP (and rules using Wᵀδ) "
                           "obtain the transposed product")
    refresh: int = param(1, lo=1, hi=1_000_000,
                         doc="probe transpose: pulse updates between read-outs")
    staleness: int = param(0, lo=0, hi=1000, unit="steps",
                           doc="apply each update this many steps late, as a pipeline would")
    rule_options: dict = param(default_factory=dict, hash=False,
                               allowed="a table of rule options",
                               doc="options of the rule (`rule.<option>` keys)")
    diverge_factor: float = param(10.0, lo=1.0, hi=1e30, doc="stop the run as diverged when "
                                  "a step's loss is not finite or an epoch's mean training "
                                  "loss exceeds this many times the first step's loss")
    optimizer: str = param("sgd", choices=tuple(OPTIMIZERS), doc="analog update algorithm: "
                           "how each analog layer's update reaches its conductances "
                           "(docs/rules.md, Analog update algorithms)")
    optimizer_options: dict = param(default_factory=dict, hash=False,
                                    allowed="a table of optimizer options",
                                    doc="options of the optimizer (`optimizer.<option>` keys)")
    data_dir: str | None = param(None, kind="str", optional=True, doc="directory holding the "
                                 "IDX files of the data sets mnist and fashion (or the binary "
                                 "batches of cifar10)")

    def __post_init__(self) -> None:
        check_fields(self, "train")
        if not is_rule(self.rule):  # the registry may grow after this class was defined
            fail("train", "rule", self.rule, "one of " + ", ".join(map(repr, RULES))
                 + ", a rule registered with register_rule, or 'module:Class'")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_loss(model: ModelConfig, n_classes: int, dataset: str = "the data") -> None:
    """Refuse a classification loss on regression targets (``n_classes == 0``): softmax
    cross-entropy of real-valued targets is not a loss (it can be negative)."""
    if n_classes == 0 and model.loss == "xent":
        raise ValueError(f"model {model.name!r}: loss = 'xent' (softmax cross-entropy) needs "
                         f"class labels, but {dataset} has real-valued targets; allowed: "
                         "--set model.loss=mse")


def check_io(model: ModelConfig, n_in: int, n_out: int, dataset: str = "the data") -> None:
    """Refuse a model whose input or output width does not match the data set.

    A network of another shape than the user asked for is never built silently: the error
    names the model, its sizes, the data's widths and how to get a matching network.
    """
    if model.sizes[0] == n_in and model.sizes[-1] == n_out:
        return
    if model.layers:
        raise ValueError(
            f"model {model.name!r}: its layers {list(model.layers)} on input_shape = "
            f"{list(model.input_shape)} have {model.sizes[0]} inputs and {model.sizes[-1]} "
            f"outputs, but {dataset} has {n_in} features and {n_out} outputs; allowed: an "
            f"input_shape with {n_in} values and a last layer of {n_out} outputs")
    fit = [n_in, *model.sizes[1:-1], n_out]
    raise ValueError(
        f"model {model.name!r}: sizes = {list(model.sizes)} has {model.sizes[0]} inputs and "
        f"{model.sizes[-1]} outputs, but {dataset} has {n_in} features and {n_out} outputs; "
        f"allowed: a model with sizes[0] = {n_in} and sizes[-1] = {n_out}, e.g. "
        f"--set 'model.sizes={fit}' (or a preset made for this data set, see "
        "`analogsim presets`)")


def check_images(model: ModelConfig, image_shape: tuple[int, ...] | None,
                 dataset: str = "the data") -> None:
    """Refuse a convolutional model (``model.layers``) on data whose images have another
    shape than ``model.input_shape``, or on data that are no images: the rows would be read
    as maps of the wrong shape."""
    if not model.layers:
        return
    want = tuple(model.input_shape)
    if image_shape is not None and tuple(image_shape) == want:
        return
    have = "holds no images" if image_shape is None else \
        f"has images of shape {list(image_shape)}"
    raise ValueError(f"model {model.name!r}: input_shape = {list(want)} (its layers read "
                     f"maps of that shape), but {dataset} {have}; allowed: a model whose "
                     "input_shape is the data's image shape (and layers that fit it), or an "
                     "image data set of that shape")


def build_run(hw: HardwareConfig, model: ModelConfig, cfg: TrainConfig, n_in: int, n_out: int
              ) -> Trainer:
    """Build network, rule and trainer; the model must match the data's widths
    (:func:`check_io`)."""
    check_io(model, n_in, n_out)
    rule = get_rule(cfg.rule, seed=cfg.seed, **cfg.rule_options)
    transpose = cfg.transpose if rule.needs_transpose else None
    zero = model.init == "zero" or _zero_hidden_init(getattr(rule, "zero_init", False), model)
    net = build_network(model, hw, seed=cfg.seed, transpose=transpose, refresh=cfg.refresh,
                        zero_hidden_init=zero)
    rule.build(net)
    opt = get_optimizer(cfg.optimizer, **cfg.optimizer_options)
    for layer in net.layers:  # a combination the optimizer refuses fails now, not at step 1
        if getattr(layer, "backend", None) == "analog":
            opt.check_layer(layer)
    return Trainer(net, rule, SGD(cfg.lr, cfg.lr_eps, cfg.lr_aux, optimizer=opt),
                   staleness=cfg.staleness)


def _zero_hidden_init(want: bool | str, model: ModelConfig) -> bool:
    """Resolve a rule's ``zero_init``: ``"auto"`` means zero hidden weights only where the
    hidden activation has a non-zero slope at 0 (a zero start of ReLU units never moves)."""
    if want != "auto":
        return bool(want)
    act = hidden_activation(model, 1)
    if not act.has_deriv:  # the rule will refuse the units anyway, with a clear error
        return False
    zero = np.zeros((1, 1), dtype=np.float32)
    h = act.forward(zero, np.random.default_rng(0))  # rng: stochastic units sample
    return bool(act.deriv(zero, h)[0, 0] != 0)


def _transpose_counts(ledger: Ledger) -> dict[str, int]:
    out = dict.fromkeys(ledger.totals(), 0)
    for node in ledger.walk():
        if node.name == "transpose":
            for k, v in node.totals().items():
                out[k] += v
    return out


def _sub(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a[k] - b.get(k, 0) for k in a}


class _Accounting:
    """Training counts = totals − set-up (programming at build) − evaluation reads."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.setup = ledger.totals()
        self.setup_tr = _transpose_counts(ledger)
        self.evaluation = dict.fromkeys(self.setup, 0)

    def evaluate(self, fn: Callable[[], Any]) -> Any:
        before = self.ledger.totals()
        out = fn()
        for k, v in _sub(self.ledger.totals(), before).items():
            self.evaluation[k] += v
        return out

    def training(self) -> tuple[dict[str, int], dict[str, int]]:
        counts = _sub(_sub(self.ledger.totals(), self.setup), self.evaluation)
        return counts, _sub(_transpose_counts(self.ledger), self.setup_tr)

    def state(self) -> dict[str, dict[str, int]]:
        """What a checkpoint keeps so that a resumed run subtracts the same counts."""
        return {"setup": dict(self.setup), "setup_tr": dict(self.setup_tr),
                "evaluation": dict(self.evaluation)}

    def load(self, state: dict[str, dict[str, int]]) -> None:
        self.setup, self.setup_tr = dict(state["setup"]), dict(state["setup_tr"])
        self.evaluation = dict(state["evaluation"])


def ledger_report(counts: dict[str, int], tr_counts: dict[str, int], hw: HardwareConfig,
                  n_samples: int) -> dict[str, Any]:
    """Energy per sample, transpose share and per-kind breakdown of training counts."""
    bits = hw.adc.bits
    total = energy_pj(counts, hw.cost, bits)
    tr = energy_pj(tr_counts, hw.cost, bits)
    return {
        "energy_per_sample_pj": total / max(n_samples, 1),
        "transpose_energy_share": tr / total if total > 0 else 0.0,
        "energy_breakdown_pj": energy_breakdown_pj(counts, hw.cost, bits),
    }


def _labels(ds: Dataset, y: np.ndarray) -> np.ndarray:
    return onehot(y, ds.n_classes) if ds.n_classes else y.astype(np.float32)


def evaluate(trainer: Trainer, x: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """``(mean loss, accuracy)`` of the trained network on a labelled set, predicted the
    rule's way (:meth:`~analogsim.rules.Rule.predict`: one forward pass for most rules,
    one per class for Forward-Forward); every read is charged to the network's ledger."""
    z = trainer.rule.predict(trainer.net, x)
    loss = trainer.net.loss.value(z, target)
    acc = float(np.mean(np.argmax(z, axis=1) == np.argmax(target, axis=1)))
    return float(loss), acc


def _evaluate(trainer: Trainer, ds: Dataset, split: str) -> tuple[float, float]:
    x, y = ds.get_split(split)
    loss, acc = evaluate(trainer, x, _labels(ds, y))
    return loss, (acc if ds.n_classes else float("nan"))


def _saturated_share(acct: _Accounting, before: dict[str, int]) -> float:
    """Share of this epoch's training ADC conversions that hit the ADC bound (0 without
    conversions): the periphery's clipping, observable per epoch."""
    now = acct.training()[0]
    conv = now["adc_conversions"] - before["adc_conversions"]
    return (now["adc_saturations"] - before["adc_saturations"]) / conv if conv > 0 else 0.0


def _diverged(epoch: int, step: int, loss: float, ref: float | None, cfg: TrainConfig
              ) -> dict[str, Any]:
    """The record of a divergence, with the reason in words."""
    if not math.isfinite(loss):
        why = f"the loss of step {step} is {loss}"
    else:
        why = (f"the mean training loss of epoch {epoch} is {loss:.4g}, more than "
               f"diverge_factor = {cfg.diverge_factor:g} times the first step's {ref:.4g}")
    return {"diverged_epoch": epoch, "diverged_step": step,
            "diverged_loss": loss if math.isfinite(loss) else None,
            "diverged_reason": f"training diverged: {why} (lr = {cfg.lr:g}); allowed: a "
                               "smaller lr, or a larger train.diverge_factor"}


def train(hw: HardwareConfig, model: ModelConfig, cfg: TrainConfig, *,
          dataset: Dataset | None = None, on_epoch: Callable[[dict], None] | None = None,
          trainer: Trainer | None = None, start_epoch: int = 0,
          progress: dict[str, Any] | None = None,
          on_checkpoint: Callable[[Trainer, dict], None] | None = None,
          on_step: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Train ``cfg.rule`` on ``model`` built on ``hw``; return the run record (see module doc).

    ``on_step(done, total)`` is called after every training step with the number of steps
    (batches) done and the run's total (``epochs × batches per epoch``; the epochs a resumed
    run skips count as done): a progress bar's hook.

    ``trainer``/``start_epoch``/``progress`` resume a run restored from a checkpoint
    (``progress``: the accounting and epoch records the interrupted run had, so the resumed
    run reports what an uninterrupted one would). ``on_checkpoint(trainer, state)`` is called
    after every epoch with ``state = {"epoch": epochs done, "progress": {...}}``; see
    :mod:`analogsim.experiments.checkpoint`. The loop runs with BLAS single-threaded (see
    :func:`analogsim.kernels.kernel_threads`).

    The record holds plain data only (``json.dumps`` works on it). To keep a handle on the
    trained network, build the trainer first and pass it in::

        tr = build_run(hw, model, cfg, ds.n_features, ds.n_outputs)
        record = train(hw, model, cfg, dataset=ds, trainer=tr)   # tr is now trained
    """
    with kernel_threads():
        return _train(hw, model, cfg, dataset, on_epoch, trainer, start_epoch, progress,
                      on_checkpoint, on_step)


def _train(hw, model, cfg, dataset, on_epoch, trainer, start_epoch, progress=None,
           on_checkpoint=None, on_step=None) -> dict[str, Any]:
    ds = dataset if dataset is not None else load_dataset(
        cfg.dataset, **({"data_dir": cfg.data_dir} if cfg.data_dir else {}))
    check_io(model, ds.n_features, ds.n_outputs, f"data set {ds.name!r}")
    check_images(model, ds.image_shape, f"data set {ds.name!r}")
    check_loss(model, ds.n_classes, f"data set {ds.name!r}")
    tr = trainer or build_run(hw, model, cfg, ds.n_features, ds.n_outputs)
    net = tr.net
    acct = _Accounting(net.ledger)
    t0 = time.perf_counter()
    epochs: list[dict[str, Any]] = []
    n_seen, cp_sum, n_steps = 0, 0.0, 0
    if progress is not None:
        acct.load(progress)
        epochs = [dict(r) for r in progress["epochs"]]
        n_seen, cp_sum, n_steps = progress["n_seen"], progress["cp_sum"], progress["n_steps"]
    loss_ref = progress.get("loss_ref") if progress is not None else None
    seen_conv = acct.training()[0]  # training counts so far: per-epoch shares subtract them
    diverged: dict[str, Any] | None = None
    for epoch in range(start_epoch, cfg.epochs):
        rng = derive_rng(cfg.seed, "data", "order", epoch)
        loss_sum = 0.0
        per_epoch = -(-len(ds.x_train) // cfg.batch_size)
        for k, (xb, yb) in enumerate(ds.batches("train", cfg.batch_size, rng)):
            res = tr.step(xb, _labels(ds, yb))
            if on_step is not None:
                on_step(epoch * per_epoch + k + 1, cfg.epochs * per_epoch)
            if not math.isfinite(res.loss):
                diverged = _diverged(epoch + 1, n_steps + 1, res.loss, loss_ref, cfg)
                break
            loss_ref = res.loss if loss_ref is None else loss_ref
            loss_sum += res.loss * len(xb)
            n_seen += len(xb)
            cp_sum += res.critical_path_ns
            n_steps += 1
        if diverged is None and loss_sum / len(ds.x_train) > cfg.diverge_factor * loss_ref:
            diverged = _diverged(epoch + 1, n_steps, loss_sum / len(ds.x_train), loss_ref, cfg)
        if diverged is not None:
            break
        record = {"epoch": epoch + 1, "train_loss": loss_sum / len(ds.x_train),
                  "adc_saturated": _saturated_share(acct, seen_conv)}
        seen_conv = acct.training()[0]
        record["val_loss"], record["val_accuracy"] = acct.evaluate(
            lambda: _evaluate(tr, ds, "val"))
        epochs.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if on_checkpoint is not None:
            on_checkpoint(tr, {"epoch": epoch + 1, "progress": {
                **acct.state(), "epochs": [dict(r) for r in epochs], "n_seen": n_seen,
                "cp_sum": cp_sum, "n_steps": n_steps, "loss_ref": loss_ref}})
    nan = float("nan")
    if diverged is None:
        before = net.ledger.totals()
        test_loss, test_acc = acct.evaluate(lambda: _evaluate(tr, ds, "test"))
        # the test split's evaluation is one inference per test sample (FF: n_classes passes)
        inference_pj = energy_pj(_sub(net.ledger.totals(), before), hw.cost,
                                 hw.adc.bits) / max(len(ds.get_split("test")[0]), 1)
    else:  # no accuracy of a diverged network passes as a result
        test_loss = test_acc = inference_pj = nan
    counts, tr_counts = acct.training()
    rep = ledger_report(counts, tr_counts, hw, n_seen)
    return {
        "config": {"hardware": hw.to_dict(), "model": net.config.to_dict(),
                   "train": cfg.to_dict()},
        "metrics": {
            "test_accuracy": test_acc, "test_loss": test_loss,
            "train_loss": epochs[-1]["train_loss"] if epochs else nan,
            "val_accuracy": epochs[-1]["val_accuracy"] if epochs and not diverged else nan,
            "energy_per_sample_pj": rep["energy_per_sample_pj"],
            "transpose_energy_share": rep["transpose_energy_share"],
            "critical_path_ns": cp_sum / max(n_steps, 1),
            "inference_energy_per_sample_pj": inference_pj,
            "wall_time_s": time.perf_counter() - t0,
            **({"diverged": True, **diverged} if diverged else {}),
        },
        "epochs": epochs,
        "ledger": counts,
        "energy_breakdown_pj": rep["energy_breakdown_pj"],
    }
