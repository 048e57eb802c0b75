"""The counter-based generator of :mod:`neurowire.rng` inside numba kernels.

The generated neuron kernels of stochastic models call :func:`uniform32` / :func:`uniform64`
for every neuron and step instead of reading numbers drawn on the host: the same numbers as
:func:`neurowire.rng.uniforms` (``tests/test_rng.py`` checks every bit), computed where they are
used, in any order. Every operation is on uint64 (numba would turn a mixed int64/uint64
expression into float64). :func:`poisson_counts` draws a :class:`~neurowire.PoissonGenerator`'s
counts from them, as :func:`neurowire.poisson.poisson_counts` does (``tests/test_poisson.py``
checks every count).
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


@njit(cache=True, nogil=True)
def poisson_tail(u, mean, f, p, width):
    """A count ``>= width`` (:func:`neurowire.poisson._tail_counts`): the inversion continued
    from the table's last sum ``f`` and term ``p``."""
    k = width
    p = p * mean / k
    f = f + p
    while u >= f and p > 0.0:
        k += 1
        p = p * mean / k
        f += p
    return k


@njit(cache=True, nogil=True)
def poisson_counts(key, step, mean, cdf, last, count, z, u):
    """One step of a :class:`~neurowire.PoissonGenerator` (:mod:`neurowire.poisson`): the
    counts ``count [B, n]`` (int32) and ``z = count > 0`` for global step ``step`` of stream
    ``key``, from the rates' table (``mean [R, n]``, ``cdf [R, W, n]``, ``last [R, n]``,
    ``R`` 1 or ``B``); ``u [n]`` float64 scratch. The uniform numbers and the comparisons with
    the table run over all neurons before the rare counts beyond it (vectorised loops)."""
    batch, n = count.shape
    width = cdf.shape[1]
    base = np.uint64(step) * np.uint64(batch * n)
    for b in range(batch):
        r = b if mean.shape[0] > 1 else 0
        row = count[b]
        for i in range(n):
            u[i] = uniform64(key, base + np.uint64(b * n + i))
            row[i] = 0
        for j in range(width):
            for i in range(n):
                row[i] += np.int32(u[i] >= cdf[r, j, i])
        for i in range(n):
            if row[i] == width:
                row[i] = poisson_tail(u[i], mean[r, i], cdf[r, width - 1, i], last[r, i], width)
            z[b, i] = row[i] > 0
