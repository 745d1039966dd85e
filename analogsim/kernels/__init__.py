"""Numba kernels: the only package that imports numba (options live in :mod:`._numba`).

Public functions validate their inputs (dtype, shape, contiguity, finiteness), allocate
outputs and call private parallel drivers; every random number comes from the
counter-based generator in :mod:`.rng`, so results do not depend on the thread count. The
library's own BLAS products run with BLAS at one thread (:func:`blas_single_thread`), so
they do not depend on BLAS's thread count either.
"""

from ._numba import (
    CACHE,
    blas_single_thread,
    get_threads,
    kernel_threads,
    set_threads,
    when_compiling,
)
from .read import adc_read, dac_encode, max_abs
from .rng import make_key, normal, uniform
from .stochastic import pulse_update_stochastic
from .update import pulse_update_expected

__all__ = [
    "make_key",
    "uniform",
    "normal",
    "dac_encode",
    "adc_read",
    "max_abs",
    "pulse_update_expected",
    "pulse_update_stochastic",
    "kernel_threads",
    "blas_single_thread",
    "set_threads",
    "get_threads",
    "when_compiling",
    "CACHE",
]
