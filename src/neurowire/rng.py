"""Counter-based random numbers for stochastic neurons: one definition, every engine.

A stochastic population (``PoissonSource``) draws one uniform number per neuron and step. The
numbers are not taken from a sequential generator but computed from a *counter*: the ``k``-th
number of a stream with key ``key`` is

    u_k = top bits of mix64(key + (k + 1) * GAMMA)

which is SplitMix64 (Steele, Lea & Flood 2014; the generator that seeds xoshiro) read at
position ``k``: consecutive ``k`` give SplitMix64's own sequence, which passes BigCrush, and any
position is computed directly, in any order, by any thread. A population's stream is keyed by
:func:`stream_key` (the simulation seed and the population's name) and its draw for batch element
``b``, neuron ``i`` in step ``t`` is position ``k = t * (B * n) + b * n + i``. A float32 number
is the top 24 bits times 2**-24, a float64 one the top 53 bits times 2**-53: exact, in [0, 1).

So the numbers depend only on (seed, population, step, batch element, neuron): not on the engine,
the device, the block lengths or the number of threads. :func:`uniforms` is the PyTorch reference
(the torch engine, any device); the native engine computes the same numbers inside its generated
kernels (:mod:`neurowire.native.rng`), and ``tests/test_rng.py`` checks both bit for bit.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor

MASK64 = (1 << 64) - 1
#: SplitMix64's increment (the odd integer closest to 2**64 / golden ratio) and mixing constants
GAMMA = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
#: bits kept per float type, and the scale that maps them to [0, 1)
FLOAT_BITS = {torch.float32: 24, torch.float64: 53}


def mix64(z: int) -> int:
    """SplitMix64's output function on a Python int (mod 2**64)."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * MIX1) & MASK64
    z = ((z ^ (z >> 27)) * MIX2) & MASK64
    return z ^ (z >> 31)


def stream_key(seed: int, name: str) -> int:
    """The key (uint64, as a Python int) of the stream of population ``name`` under ``seed``.

    The name (not the position in the network) keys the stream, so adding a population leaves
    the others' numbers unchanged.
    """
    word = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
    return mix64(mix64(int(seed) & MASK64) ^ word)


def _signed(x: int) -> int:
    """A uint64 constant as the int64 with the same bits (torch has no uint64 arithmetic)."""
    x &= MASK64
    return x - (1 << 64) if x >= 1 << 63 else x


def _shr(z: Tensor, s: int) -> Tensor:
    """Logical right shift of int64 bits (torch's ``>>`` is arithmetic)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def uniform(key: int, position: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Numbers ``u_k`` at int64 ``position`` ``k`` of stream ``key``, in [0, 1) (see above).

    int64 multiplication wraps modulo 2**64 in PyTorch, as uint64 does in the native kernels.
    """
    if dtype not in FLOAT_BITS:
        raise ValueError(f"uniform numbers are float32 or float64, got {dtype}")
    z = position.to(torch.int64)
    z = (z + 1) * _signed(GAMMA) + _signed(key)
    z = (z ^ _shr(z, 30)) * _signed(MIX1)
    z = (z ^ _shr(z, 27)) * _signed(MIX2)
    z = z ^ _shr(z, 31)
    bits = FLOAT_BITS[dtype]
    return _shr(z, 64 - bits).to(dtype) * (2.0**-bits)


def uniforms(
    key: int,
    step0: int,
    steps: int,
    batch: int,
    n: int,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> Tensor:
    """``[steps, batch, n]``: a population's numbers for steps ``step0 .. step0 + steps - 1``.

    Element ``[t, b, i]`` is position ``(step0 + t) * batch * n + b * n + i`` of the stream.
    """
    per_step = batch * n
    start = int(step0) * per_step
    position = torch.arange(start, start + steps * per_step, dtype=torch.int64, device=device)
    return uniform(key, position, dtype).reshape(steps, batch, n)
