"""analogsim: a forward-only analog crossbar simulator and the learning rules that train on it.

Layers of the package, lowest first (data flows one way, lower layers never import upper ones):

``kernels``      numba hot loops (the only package that imports numba)
``hardware``     configuration, cost ledger, crossbar arrays, transpose-emulation strategies
``oracle``       non-physical inspection for tests and plots (charges nothing)
``layers``       activations, losses, analog/digital linear layers, the network container
``rules``        learning rules (bp, fa, dfa, ifa, drtp, tp, dtp, dni, hybrids) and optimisers
``experiments``  data, training loop, sweeps, results store, plots, command line
"""

__version__ = "0.1.0"
