"""The counter-based generator of :mod:`neurowire.rng` inside numba kernels.

The generated neuron kernels of stochastic models call :func:`uniform32` / :func:`uniform64`
for every neuron and step instead of reading numbers drawn on the host: the same numbers as
:func:`neurowire.rng.uniforms` (``tests/test_rng.py`` checks every bit), computed where they are
used, in any order. Every operation is on uint64 (numba would turn a mixed int64/uint64
expression into float64).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..rng import GAMMA, MIX1, MIX2

_GAMMA = np.uint64(GAMMA)
_MIX1 = np.uint64(MIX1)
_MIX2 = np.uint64(MIX2)
_ONE = np.uint64(1)


@njit(cache=True, nogil=True, inline="always")
def mix64(z):
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True, inline="always")
def uniform32(key, position):
    """float32 number at uint64 ``position`` of stream ``key`` (uint64)."""
    z = mix64(key + (position + _ONE) * _GAMMA)
    return np.float32(z >> np.uint64(40)) * np.float32(5.9604644775390625e-08)  # 2**-24


@njit(cache=True, nogil=True, inline="always")
def uniform64(key, position):
    """float64 number at uint64 ``position`` of stream ``key`` (uint64)."""
    z = mix64(key + (position + _ONE) * _GAMMA)
    return np.float64(z >> np.uint64(11)) * 1.1102230246251565e-16  # 2**-53


@njit(cache=True, nogil=True)
def fill_uniform32(key, start, out):
    """``out[k] = uniform32(key, start + k)`` (tests and benchmarks)."""
    base = np.uint64(start)
    for k in range(out.shape[0]):
        out[k] = uniform32(key, base + np.uint64(k))


@njit(cache=True, nogil=True)
def fill_uniform64(key, start, out):
    base = np.uint64(start)
    for k in range(out.shape[0]):
        out[k] = uniform64(key, base + np.uint64(k))
