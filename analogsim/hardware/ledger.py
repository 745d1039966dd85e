"""Cost ledger: exact integer counts of every physical operation, scoped and summable.

A :class:`Ledger` is a node in a tree of scopes (``network / layer0 / forward`` …).
Charging a node adds to its own counts and to the totals of all its ancestors, so a
scope's :meth:`Ledger.totals` is always its subtree's sum. A :class:`CostModel`
turns counts into energy (pJ) and latency (ns); see :func:`energy_pj`, :func:`latency_ns`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from .config import CostModel

__all__ = ["COUNTERS", "Ledger", "energy_pj", "energy_breakdown_pj", "latency_ns"]

#: Every counter a ledger keeps, with its meaning. All are exact non-negative integers.
COUNTERS: dict[str, str] = {
    "mvm": "array reads: one input vector through one tile",
    "read_cycles": "sequential array read cycles (tiles of one layer read in parallel)",
    "dac_conversions": "DAC conversions: one per driven row per vector",
    "dac_bits": "DAC conversions weighted by their bit width",
    "dac_clips": "inputs clipped by a fixed-range DAC",
    "adc_conversions": "ADC conversions: one per tile column per vector",
    "adc_saturations": "ADC conversions that hit the output bound",
    "cell_reads": "device pairs read: tile cells × vectors",
    "write_pulses": "update pulses that reached a device pair",
    "pulse_clips": "cells whose requested pulses exceeded the train length (cut)",
    "update_cycles": "sequential pulse slots of parallel updates",
    "write_verify": "device program-and-verify cycles",
    "verify_cycles": "sequential program-verify row cycles",
    "digital_macs": "digital multiply-accumulates in the periphery",
    "digital_adds": "digital additions (partial sums, biases, errors)",
    "digital_mults": "digital multiplications (scaling, activations' derivatives)",
    "mem_bytes": "bytes of digital memory read or written",
    "mem_held_bytes": "bytes of digital memory allocated (charged once, when allocated)",
}


class Ledger:
    """A scope of the cost ledger.

    Parameters
    ----------
    name : str
        Scope name; the full path is ``parent.path + "/" + name``.
    parent : Ledger or None
        Charges to this scope are also added to every ancestor.
    """

    __slots__ = ("name", "parent", "_own", "_total", "_children")

    def __init__(self, name: str = "root", parent: Ledger | None = None) -> None:
        self.name = name
        self.parent = parent
        self._own = dict.fromkeys(COUNTERS, 0)
        self._total = dict.fromkeys(COUNTERS, 0)
        self._children: dict[str, Ledger] = {}

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self._total.items() if v) or "nothing charged"
        n = sum(1 for _ in self.walk()) - 1
        return f"Ledger({self.path!r}, {n} sub-scopes, totals: {counts})"

    # ------------------------------------------------------------------ scopes
    @property
    def path(self) -> str:
        return self.name if self.parent is None else f"{self.parent.path}/{self.name}"

    def child(self, name: str) -> Ledger:
        """Return the sub-scope ``name``, creating it on first use."""
        if not name or "/" in name:
            raise ValueError(f"ledger scope name {name!r} is invalid; allowed: a non-empty "
                             "string without '/'")
        node = self._children.get(name)
        if node is None:
            node = Ledger(name, self)
            self._children[name] = node
        return node

    @property
    def children(self) -> Mapping[str, Ledger]:
        return dict(self._children)

    def walk(self) -> Iterator[Ledger]:
        """This scope and all scopes below it, depth first."""
        yield self
        for c in self._children.values():
            yield from c.walk()

    # ------------------------------------------------------------------ charging
    def charge(self, **counts: int) -> None:
        """Add counts (keyword per counter name) to this scope and its ancestors."""
        # Called ~20 times per training step: validate and convert each count once, drop
        # zeros (adding 0 changes nothing), then add the short list up the scope chain.
        items = []
        for key, n in counts.items():
            if key not in COUNTERS:
                raise ValueError(f"ledger counter {key!r} is unknown; allowed: "
                                 + ", ".join(COUNTERS))
            n = int(n)
            if n < 0:
                raise ValueError(f"ledger counter {key} charged {n}; allowed: >= 0")
            if n:
                items.append((key, n))
        own = self._own
        for key, n in items:
            own[key] += n
        node: Ledger | None = self
        while node is not None:
            total = node._total
            for key, n in items:
                total[key] += n
            node = node.parent

    def totals(self) -> dict[str, int]:
        """Counts of this scope and everything below it."""
        return dict(self._total)

    def own(self) -> dict[str, int]:
        """Counts charged directly to this scope (not to sub-scopes)."""
        return dict(self._own)

    def reset(self) -> None:
        """Zero this subtree (ancestors' totals are reduced accordingly)."""
        sub = self.totals()
        node = self.parent
        while node is not None:
            for k, v in sub.items():
                node._total[k] -= v
            node = node.parent
        for n in self.walk():
            n._own = dict.fromkeys(COUNTERS, 0)
            n._total = dict.fromkeys(COUNTERS, 0)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, dict[str, int]]:
        """``{path: own_counts}`` for every scope of the subtree (for checkpoints)."""
        return {n.path: n.own() for n in self.walk()}

    def load_state_dict(self, state: Mapping[str, Mapping[str, int]]) -> None:
        """Restore counts saved by :meth:`state_dict` (scopes are created as needed)."""
        self.reset()
        prefix = self.path
        for path, counts in state.items():
            if path != prefix and not path.startswith(prefix + "/"):
                raise ValueError(f"ledger state path {path!r} is not under {prefix!r}")
            node = self
            for part in path[len(prefix):].split("/"):
                if part:
                    node = node.child(part)
            node.charge(**{k: int(v) for k, v in counts.items() if int(v)})

    def summary(self, cost: CostModel | None = None, depth: int = 2) -> str:
        """A readable table: one row per scope down to ``depth``, energy and latency."""
        cost = cost or CostModel()
        cols = ("mvm", "adc_conversions", "write_pulses", "digital_macs", "mem_bytes")
        head = f"{'scope':<34}" + "".join(f"{c:>16}" for c in cols)
        head += f"{'energy_pJ':>14}{'latency_ns':>14}"
        lines = [head, "-" * len(head)]
        base = self.path.count("/")
        for node in self.walk():
            level = node.path.count("/") - base
            if level > depth:
                continue
            t = node.totals()
            label = ("  " * level + node.name)[:34]
            row = f"{label:<34}" + "".join(f"{t[c]:>16,d}" for c in cols)
            row += f"{energy_pj(t, cost):>14.4g}{latency_ns(t, cost):>14.4g}"
            lines.append(row)
        return "\n".join(lines)


def energy_breakdown_pj(counts: Mapping[str, int], cost: CostModel,
                        adc_bits: int | None = 8) -> dict[str, float]:
    """Energy per operation kind in pJ.

    ``E = n_adc·E_adc(bits) + n_dacbits·E_dac + n_cell·E_cell + n_pulse·E_pulse
    + n_verify·E_prog + n_mac·(E_add + E_mult) + n_add·E_add + n_mult·E_mult
    + n_byte·E_byte``. ADC conversions are costed at ``adc_bits`` (8 if ideal).
    """
    return {
        "adc": counts.get("adc_conversions", 0) * cost.adc_pj(adc_bits),
        "dac": counts.get("dac_bits", 0) * cost.dac_pj_per_bit,
        "cells": counts.get("cell_reads", 0) * cost.cell_read_fj * 1e-3,
        "pulses": counts.get("write_pulses", 0) * cost.write_pulse_pj,
        "programming": counts.get("write_verify", 0) * cost.program_cell_pj,
        "digital": (counts.get("digital_macs", 0) * (cost.digital_add_pj + cost.digital_mult_pj)
                    + counts.get("digital_adds", 0) * cost.digital_add_pj
                    + counts.get("digital_mults", 0) * cost.digital_mult_pj),
        "memory": counts.get("mem_bytes", 0) * cost.mem_pj_per_byte,
    }


def energy_pj(counts: Mapping[str, int], cost: CostModel, adc_bits: int | None = 8) -> float:
    """Total energy in pJ (sum of :func:`energy_breakdown_pj`)."""
    return float(sum(energy_breakdown_pj(counts, cost, adc_bits).values()))


def latency_ns(counts: Mapping[str, int], cost: CostModel) -> float:
    """Latency in ns if the counted operations run one after another.

    ``t = n_read_cycles·t_read + n_update_cycles·t_pulse + n_verify_cycles·t_verify
    + (n_mac + n_add + n_mult) / ops_per_ns``. Parallel structure (tiles, layers) is
    expressed by what is counted as a *cycle*; rules combine per-phase latencies into a
    critical path.
    """
    digital = (counts.get("digital_macs", 0) + counts.get("digital_adds", 0)
               + counts.get("digital_mults", 0))
    return (counts.get("read_cycles", 0) * cost.t_read_ns
            + counts.get("update_cycles", 0) * cost.t_pulse_ns
            + counts.get("verify_cycles", 0) * cost.t_verify_ns
            + digital / cost.digital_ops_per_ns)
