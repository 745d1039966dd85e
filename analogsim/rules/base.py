"""Rule machinery: updates as data, an SGD step, a timing schedule and the trainer loop.

A rule (optax-like) is a small object with explicit state. Per batch it runs the network
forward, computes a list of :class:`Update` records — *what* to change, not how — and hands
them to an :class:`SGD` step that turns them into pulse updates on the arrays (and digital
bias / ε steps). Everything a rule does to obtain its updates is a physical operation of the
layers (forward reads, transpose strategies, feedback arrays), charged to the ledger.

The :class:`Schedule` records each operation of a step as a node of a dependency graph with the
latency of the ledger counts it charged; the longest path is the step's **critical path**.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..fields import unknown_key
from ..hardware.config import CostModel
from ..hardware.ledger import Ledger, latency_ns
from ..kernels import blas_single_thread
from ..layers.activations import NotDifferentiableError, SmoothReLU
from ..layers.network import Network
from ..seeding import check_seed, derive_seed
from .optimizers import AnalogOptimizer, DirectPulse

__all__ = ["Update", "SGD", "Schedule", "Rule", "Trainer", "StepResult", "act_deriv",
           "check_lr", "OPTION_OWNER"]


def check_lr(name: str, value: float) -> float:
    if not isinstance(value, (int, float, np.floating)) or isinstance(value, bool) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} = {value!r} is invalid; allowed: a finite number >= 0")
    return float(value)


@dataclass
class Update:
    """``target.update(x, delta, lr·lr_scale)`` plus an optional ε gradient for its activation.

    ``after`` names the schedule op whose result the update needs (for the critical path).
    """

    target: object
    x: np.ndarray
    delta: np.ndarray
    after: str
    grad_eps: np.ndarray | None = None
    aux: bool = False
    name: str = ""


class Schedule:
    """Dependency graph of one training step's operations, timed from ledger deltas.

    ``with sched.op("bwd2", after=("bwd3",)):`` measures the latency of what the block charges
    to ``ledger`` (:func:`~analogsim.hardware.ledger.latency_ns`). The critical path is the
    longest chain through the graph: sequential backward for BP, one parallel fan-out for DFA.
    """

    def __init__(self, ledger: Ledger, cost: CostModel) -> None:
        self.ledger, self.cost = ledger, cost
        self.finish: dict[str, float] = {}

    def op(self, name: str, after: Sequence[str] = ()) -> contextlib.AbstractContextManager:
        """Context manager timing one operation; an op that raises is not recorded."""
        # A small class instead of @contextmanager: a step opens ~10 ops, and the generator
        # machinery was a visible share of the per-step Python overhead.
        return _Op(self, name, after)

    def _record(self, name: str, after: Sequence[str], before: dict[str, int]) -> None:
        now = self.ledger.totals()
        delta = {k: now[k] - before[k] for k in now}
        finish = self.finish
        start = max((finish.get(a, 0.0) for a in after), default=0.0)
        finish[name] = max(finish.get(name, 0.0), start + latency_ns(delta, self.cost))

    @property
    def critical_path_ns(self) -> float:
        return max(self.finish.values(), default=0.0)


class _Op:
    """One :meth:`Schedule.op` block: ledger totals on entry, latency recorded on clean exit."""

    __slots__ = ("sched", "name", "after", "before")

    def __init__(self, sched: Schedule, name: str, after: Sequence[str]) -> None:
        self.sched, self.name, self.after = sched, name, after

    def __enter__(self) -> None:
        self.before = self.sched.ledger.totals()

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.sched._record(self.name, self.after, self.before)
        return False


def act_deriv(layer, u: np.ndarray, h: np.ndarray, *, rule: str) -> np.ndarray:
    """``f'(u)`` of a layer's activation, or a clear error naming the rule and the remedy."""
    act = layer.act
    if not act.has_deriv:
        raise NotDifferentiableError(
            f"rule {rule!r} needs the derivative of {layer.name}'s activation {act.name!r}, "
            "which has none; allowed: give the model a surrogate (model.surrogate = identity, "
            "clipped or sigmoid), or use a rule that does not need it (ifa above the first "
            "layer, tp, dtp)")
    return act.deriv(u, h).astype(u.dtype, copy=False)


def eps_grad(layer, delta: np.ndarray, h: np.ndarray) -> np.ndarray | None:
    """∂E/∂ε for a learnable smooth activation from its per-unit error δ = ∂E/∂u."""
    act = layer.act
    if isinstance(act, SmoothReLU) and act.learnable:
        return act.grad_eps(delta, h)
    return None


class SGD:
    """Apply :class:`Update` records: pulses on arrays, digital steps for biases and θ.

    Parameters
    ----------
    lr : float
        Forward-weight learning rate η (network units).
    lr_eps : float
        Learning rate of the smooth activation's ε (through its θ rule).
    lr_aux : float
        Learning rate of auxiliary modules (TP/DTP inverses, DNI predictors).
    optimizer : AnalogOptimizer, optional
        How the weight change of every analog layer — forward layers and the auxiliary
        modules that receive updates alike — reaches its conductances
        (:mod:`analogsim.rules.optimizers`); default ``sgd``, the direct pulse update.
        Digital layers take their exact float32 step whatever it is.
    """

    def __init__(self, lr: float = 0.05, lr_eps: float = 0.01, lr_aux: float = 0.01,
                 optimizer: AnalogOptimizer | None = None) -> None:
        self.lr = check_lr("lr", lr)
        self.lr_eps = check_lr("lr_eps", lr_eps)
        self.lr_aux = check_lr("lr_aux", lr_aux)
        if optimizer is not None and not isinstance(optimizer, AnalogOptimizer):
            raise TypeError(f"optimizer must be an AnalogOptimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer if optimizer is not None else DirectPulse()

    def apply(self, updates: Sequence[Update], sched: Schedule | None = None) -> None:
        for up in updates:
            cm = sched.op(f"upd:{up.name}", (up.after,)) if sched else contextlib.nullcontext()
            with cm:
                up.target.update(up.x, up.delta, self.lr_aux if up.aux else self.lr,
                                 optimizer=self.optimizer)
                if up.grad_eps is not None and self.lr_eps > 0:
                    act = up.target.act
                    act.apply_theta_update(act.theta_update(up.grad_eps, self.lr_eps))
                    up.target.ledger.child("periphery").charge(
                        digital_mults=3 * act.n_units, digital_adds=up.delta.size)


#: Owner of every rule option in error messages, as in ``--set rule.<option>=…``.
OPTION_OWNER = "rule"


class Rule:
    """Base class. Subclasses set ``name`` and ``Options`` and implement :meth:`build` and
    :meth:`compute`. ``needs_transpose``: the network must be built with a transpose strategy.

    Parameters
    ----------
    seed : int
        The run's seed; the rule's random streams derive from it (:meth:`stream_seed`).
    **options
        Fields of the rule's :attr:`Options`, validated on construction and kept, frozen, as
        ``self.options``. An unknown name is a ``ValueError`` naming the nearest option.
    """

    name = "rule"
    needs_transpose = False

    @dataclass(frozen=True)
    class Options:
        """Options of a rule: frozen, each field declared with :func:`analogsim.fields.param`
        and validated by ``check_fields(self, OPTION_OWNER)`` in ``__post_init__``. The base
        rule has none."""

    def __init__(self, *, seed: int = 0, **options) -> None:
        self.seed = check_seed(seed)
        self.options = self.make_options(options)
        self.net: Network | None = None

    @classmethod
    def option_names(cls) -> list[str]:
        """The rule's option names, in declaration order."""
        return [f.name for f in dataclasses.fields(cls.Options) if f.init]

    @classmethod
    def make_options(cls, options: Mapping[str, object]) -> Options:
        """Validated :attr:`Options` from keyword options (unknown names are refused first,
        so the error never is the dataclass's ``TypeError``)."""
        allowed = cls.option_names()
        for key in options:
            if key not in allowed:
                raise unknown_key(f"rule {cls.name!r}", key, allowed, what="option")
        return cls.Options(**options)

    def stream_seed(self, *path: str | int) -> int:
        """Seed of this rule's random stream ``path`` (e.g. ``"B1"``): derived from the run
        seed under ``("rule", name, *path)``, so it never equals a forward layer's or another
        module's seed (see :mod:`analogsim.seeding`)."""
        return derive_seed(self.seed, "rule", self.name, *path)

    def build(self, net: Network) -> None:
        """Create the rule's state for ``net`` (feedback arrays, inverses, predictors)."""
        self.net = net

    def compute(self, net: Network, x: np.ndarray, target: np.ndarray,
                sched: Schedule) -> tuple[float, list[Update]]:
        raise NotImplementedError

    @property
    def ledger(self) -> Ledger:
        assert self.net is not None
        return self.net.ledger.child("rule")

    def modules(self) -> dict[str, object]:
        """Auxiliary layers the rule owns (saved in checkpoints), by name."""
        return {}

    def state_dict(self) -> dict[str, np.ndarray]:
        out = {}
        for name, mod in self.modules().items():
            out.update({f"{name}.{k}": v for k, v in mod.state_dict().items()})
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for name, mod in self.modules().items():
            p = name + "."
            mod.load_state_dict({k[len(p):]: v for k, v in state.items() if k.startswith(p)})

    def forward(self, net: Network, x: np.ndarray, sched: Schedule) -> np.ndarray:
        return net.forward(x, op=sched.op)

    def predict(self, net: Network, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Class scores ``(B, n_out)`` of ``x`` at test time (the argmax is the prediction;
        the runner's evaluation loss is ``net.loss`` of them). Default: the output layer's
        ``u`` from one plain forward pass (:meth:`Network.predict`). A rule whose inference
        differs overrides it (Forward-Forward: one pass per class); its reads go to the
        network's ledger like the default's, so the test-time cost is charged."""
        return net.predict(x, batch_size)

    def output_error(self, net: Network, z: np.ndarray, target: np.ndarray,
                     sched: Schedule) -> tuple[float, np.ndarray]:
        """Loss and ``e = ∂E/∂z`` (mean over the batch), computed digitally and charged."""
        n = len(net) - 1
        with sched.op("loss", (f"fwd{n}",)):
            loss = net.loss.value(z, target)
            e = net.loss.grad(z, target).astype(z.dtype, copy=False)
            net.layers[-1].ledger.child("periphery").charge(digital_adds=2 * e.size,
                                                            digital_mults=2 * e.size)
        return float(loss), e


def _check_after(rule: Rule, updates: Sequence[Update], sched: Schedule) -> None:
    """Every ``Update.after`` must name an op of this step's schedule: a misspelt name would
    silently start the update at time 0 and give a wrong critical path."""
    for up in updates:
        if up.after not in sched.finish:
            raise ValueError(
                f"rule {rule.name!r}: Update {up.name or '(unnamed)'!r} has after = "
                f"{up.after!r}, which is no op of this step; allowed: one of "
                + ", ".join(map(repr, sched.finish)))


@dataclass
class StepResult:
    loss: float
    critical_path_ns: float


@dataclass
class Trainer:
    """Run a rule on a network: forward, compute updates, apply (optionally ``staleness`` late).

    With ``staleness = k`` the updates computed at step t are applied at step t + k, so each
    applied update was computed with parameters k steps old (the pipelining problem).

    :meth:`step` runs with BLAS at one thread (:func:`analogsim.kernels.blas_single_thread`),
    so a seeded run gives the same bits whatever ``OPENBLAS_NUM_THREADS`` is, and OpenBLAS
    workers do not spin against numba's threads; a loop written against the library needs
    no ``kernel_threads()`` of its own.
    """

    net: Network
    rule: Rule
    opt: SGD
    staleness: int = 0
    _queue: deque = field(default_factory=deque, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.staleness, int) or not 0 <= self.staleness <= 1000:
            raise ValueError(f"staleness = {self.staleness!r} is invalid; allowed: an integer "
                             "in [0, 1000]")
        if self.rule.net is not self.net:
            self.rule.build(self.net)

    @blas_single_thread()
    def step(self, x: np.ndarray, target: np.ndarray) -> StepResult:
        """One training step on the batch ``x`` with targets ``target``; loss and latency."""
        hw = self.net.hw
        sched = Schedule(self.net.ledger, hw.cost if hw is not None else CostModel())
        loss, updates = self.rule.compute(self.net, x, target, sched)
        _check_after(self.rule, updates, sched)
        self._queue.append(updates)
        if len(self._queue) > self.staleness:
            self.opt.apply(self._queue.popleft(), sched)
        if not math.isfinite(loss):
            raise FloatingPointError(f"training diverged: loss = {loss}; allowed: lower lr")
        return StepResult(loss, sched.critical_path_ns)
