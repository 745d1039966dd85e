"""analogsim: a forward-only analog crossbar simulator and the learning rules that train on it.

``import analogsim as asim`` gives the names a user needs (docs/python-api.md), loaded on
first use so that the import itself stays cheap (no numba, no matplotlib)::

    hw = asim.get_preset("pcm")                       # hardware presets: asim.PRESETS
    arr = asim.make_array(64, 10, hw, seed=0)          # (n_in, n_out), like the layers
    result = asim.train("dfa", "pcm", epochs=3)        # -> asim.Result
    asim.program_weights(result.network, "mlp.safetensors")

Layers of the package, lowest first (data flows one way, lower layers never import upper ones;
this top-level module may name anything, and nothing imports it):

``kernels``      numba hot loops (the only package that imports numba)
``hardware``     configuration, cost ledger, crossbar arrays, transpose-emulation strategies
``oracle``       non-physical inspection for tests and plots (charges nothing)
``layers``       activations, losses, analog/digital linear layers, the network container
``rules``        learning rules (bp, fa, dfa, ifa, drtp, tp, dtp, dni, hybrids) and optimisers
``experiments``  data, training loop, sweeps, results store, plots, weights in and out,
                 command line
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__

#: Public name → the module (relative to the package) that defines it.
_API = {
    # hardware: presets, arrays, the cost ledger
    "HardwareConfig": "hardware.config", "PRESETS": "hardware.presets",
    "get_preset": "hardware.presets", "list_presets": "hardware.presets",
    "load_hardware": "hardware.toml_io", "CrossbarArray": "hardware.array",
    "make_array": "hardware.array", "Ledger": "hardware.ledger", "energy_pj": "hardware.ledger",
    # networks
    "ModelConfig": "layers.network", "Network": "layers.network",
    "build_network": "layers.network", "AnalogLinear": "layers.linear",
    "DigitalLinear": "layers.linear", "load_model": "experiments.models",
    "model_presets": "experiments.models",
    # learning rules and analog optimizers
    "RULES": "rules", "get_rule": "rules", "register_rule": "rules", "Rule": "rules",
    "Update": "rules", "Trainer": "rules", "SGD": "rules", "OPTIMIZERS": "rules",
    # training and results
    "train": "experiments.api", "Result": "experiments.result",
    "build_run": "experiments.runner", "load_dataset": "experiments.data",
    "Dataset": "experiments.data", "onehot": "experiments.data",
    # weights in and out
    "program_weights": "experiments.weights", "export_weights": "experiments.weights",
    "ProgrammingErrorWarning": "experiments.weights", "load_tensors": "experiments.tensorfiles",
    "save_tensors": "experiments.tensorfiles",
    # plots: each takes ax= and returns the Axes, saving only when given a path
    "plot_learning_curves": "experiments.plots", "plot_accuracy_vs_param": "experiments.plots",
    "plot_accuracy_vs_energy": "experiments.plots", "plot_ledger_breakdown": "experiments.plots",
    "plot_accuracy_bars": "experiments.plots", "plot_alignment": "experiments.plots",
}
#: Submodules reachable as attributes (``asim.oracle.weights(array)``).
_MODULES = ("oracle", "kernels", "hardware", "layers", "rules", "experiments", "seeding",
            "fields")

__all__ = ["__version__", *_API, *_MODULES]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562) and keep the name."""
    if name in _API:
        value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    elif name in _MODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'analogsim' has no attribute {name!r}; the public names "
                             "are in analogsim.__all__ (docs/python-api.md)")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
