"""Experiments: data, training, sweeps, results, plots and the command line."""
