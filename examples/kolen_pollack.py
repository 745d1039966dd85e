"""Kolen-Pollack feedback alignment (Akrout et al., NeurIPS 2019), written as a user rule.

FA sends δ_l back through a fixed random ``B_l``; Kolen-Pollack also *learns* ``B_l``, with
the outer product that updates ``W_l`` plus weight decay, so ``B_l`` comes to track ``W_l``
without ``W_l`` ever being read transposed::

    δ_{l-1} = (δ_l B_l) ⊙ f'(u_{l-1}),     B_l ← (1 - λ) B_l - η_B δ_lᵀ h_{l-1}

``B_l`` is digital (float32), charged as digital multiply-adds. Run it with this folder on
``PYTHONPATH``: ``analogsim train --rule kolen_pollack:KolenPollack``.
"""

from dataclasses import dataclass

import numpy as np

from analogsim.fields import check_fields, param
from analogsim.rules import Rule, Update
from analogsim.rules.base import OPTION_OWNER, act_deriv


@dataclass(frozen=True)
class KPOptions:
    lr_b: float = param(0.05, lo=0, hi=10, doc="η_B: learning rate of the feedback matrices")
    decay: float = param(1e-3, lo=0, hi=1, doc="λ: weight decay of the feedback per step")

    def __post_init__(self) -> None:
        check_fields(self, OPTION_OWNER)


class KolenPollack(Rule):
    name = "kolen_pollack"
    Options = KPOptions

    def build(self, net):
        super().build(net)
        self.b = {}
        for l in range(1, len(net)):
            n_out, n_in = net.layers[l].n_out, net.layers[l].n_in
            rng = np.random.default_rng(self.stream_seed("B", l))  # its own named stream
            bound = np.sqrt(6.0 / (n_in + n_out))
            self.b[l] = rng.uniform(-bound, bound, (n_out, n_in)).astype(np.float32)

    def compute(self, net, x, target, sched):
        z = self.forward(net, x, sched)
        loss, delta = self.output_error(net, z, target, sched)
        c, after, ups = net.cache, "loss", []
        for l in range(len(net) - 1, -1, -1):
            ups.append(Update(net.layers[l], c.x[l], delta, after, name=f"W{l}"))
            if l == 0:
                return loss, ups
            with sched.op(f"bwd{l - 1}", (after,)):
                b, o = self.b[l], self.options
                g = delta @ b
                b *= np.float32(1.0 - o.decay)
                b -= np.float32(o.lr_b) * (delta.T @ c.x[l])
                self.ledger.charge(digital_mults=2 * delta.size * b.shape[1] + b.size,
                                   digital_adds=2 * delta.size * b.shape[1])
                delta = g * act_deriv(net.layers[l - 1], c.u[l - 1], c.h[l - 1], rule=self.name)
            after = f"bwd{l - 1}"

    def state_dict(self):
        return {f"B{l}": b.copy() for l, b in self.b.items()}

    def load_state_dict(self, state):
        for l, b in self.b.items():
            b[...] = state[f"B{l}"]
