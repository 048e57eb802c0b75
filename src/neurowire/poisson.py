"""Poisson-count drive: every neuron of a :class:`PoissonGenerator` emits a Poisson-distributed
*count* of spikes per step.

A :class:`~neurowire.PoissonSource` emits at most one spike per step (``P = rate dt``), which is
a Poisson train only while ``rate dt << 1``. A drive of 10 kHz at ``dt = 0.1`` ms (NEST's
``poisson_generator`` in its structural plasticity example) gives ``Poisson(1.0)`` spikes per
step: a generator neuron emits that count, and a projection from it delivers its weight times
the count. Connected ``OneToOne()``, each target gets its own independent train, as NEST's
``poisson_generator`` connected ``all_to_all`` gives every target its own.

**Counts.** Neuron ``i`` of batch element ``b`` in step ``t`` inverts the Poisson distribution
of mean ``lam = rate_hz dt / 1000`` at one float64 number ``u`` of the population's
counter-based stream (:mod:`neurowire.rng`, position ``t B n + b n + i``, as for stochastic
neurons)::

    count = min{k : u < F_k},   F_k = p_0 + ... + p_k,   p_0 = exp(-lam),   p_k = p_{k-1} lam / k

The first :data:`TABLE_WIDTH` sums ``F_k`` of each rate are tabulated once per rate
(:func:`count_table`, on the host; every engine reads the same table), and a count that reaches
the table's end continues the recursion from its last term in the same float64 operations in
every engine, so the counts depend only on (seed, population, step, batch element, neuron and
rate), not on the engine. :func:`poisson_counts` is the PyTorch reference; the native engine
computes the same counts in its blocks (:func:`neurowire.native.rng.poisson_counts`).

Means above :data:`MAX_MEAN_COUNT` per step are refused (``exp(-lam)`` would approach float64's
smallest numbers, and the inversion's cost grows with the mean).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .checks import ParameterError
from .neurons import NeuronModel, check_rates
from .rng import uniforms

#: sums ``F_0 .. F_{W-1}`` tabulated per rate (covers all but 1e-5 of the counts at mean 1)
TABLE_WIDTH = 8
#: largest mean count per step (``rate_hz * dt / 1000``) a generator accepts
MAX_MEAN_COUNT = 500.0


class CountState(NamedTuple):
    rate_hz: Tensor  # [B or 1, n] rate [Hz]
    count: Tensor  # [B, n] int32, spikes of this step per neuron
    z: Tensor  # [B, n] bool, count > 0


def check_mean(name: str, rate_hz: Tensor | float, dt: float) -> None:
    """Raise :class:`~neurowire.checks.ParameterError` naming ``name`` if a rate [Hz] gives a
    mean count per step of ``dt`` [ms] above :data:`MAX_MEAN_COUNT`."""
    top = float(torch.as_tensor(rate_hz, dtype=torch.float64).max())
    if top * dt * 1e-3 > MAX_MEAN_COUNT:
        raise ParameterError(
            f"{name}: rate {top!r} Hz gives {top * dt * 1e-3:g} spikes per step of dt={dt!r} "
            f"ms; a PoissonGenerator draws at most {MAX_MEAN_COUNT:g} per step on average"
        )


@dataclass(frozen=True)
class PoissonGenerator(NeuronModel):
    """``n`` independent Poisson trains that emit their count of spikes per step (module
    docstring); projections from it deliver ``weight * count``.

    Args:
        n: trains (one per neuron of the population).
        rate_hz: one rate [Hz] for all, or a tensor ``[n]``; settable at run time with
            ``Simulator.set_rates``. ``rate_hz * dt / 1000`` at most :data:`MAX_MEAN_COUNT`.

    State: ``rate_hz`` ``[1, n]`` (or ``[B, n]`` once set per batch element), ``count``
    ``[B, n]`` int32 (record ``"count"``), ``z`` ``[B, n]`` bool, ``count > 0`` (record
    ``"spikes"``). Projections from a generator are static (no STDP) and do not use
    ``delivery="rows"``.
    """

    state_type = CountState
    counting = True

    rate_hz: Any = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_rates("PoissonGenerator rate_hz", self.rate_hz, self.n)

    def init_state(self, batch, device, dtype, generator=None):
        rate = torch.as_tensor(self.rate_hz, dtype=dtype).to(device)
        return CountState(
            rate.expand(self.n).reshape(1, self.n).clone(),
            torch.zeros(batch, self.n, dtype=torch.int32, device=device),
            torch.zeros(batch, self.n, dtype=torch.bool, device=device),
        )

    def constants(self, dt):
        check_mean("PoissonGenerator rate_hz", torch.as_tensor(self.rate_hz), dt)
        return {}

    def step(self, state, i_syn, dt, rand=None, params=None):
        raise RuntimeError("PoissonGenerator counts are drawn by the simulator, not by step()")


@dataclass(frozen=True)
class CountTable:
    """The inversion table of a population's rates (float64, ``R`` rows: 1 or ``B``).

    Shapes: ``mean [R, n]`` (``lam``), ``cdf [R, TABLE_WIDTH, n]`` (``F_0 .. F_{W-1}``),
    ``last [R, n]`` (``p_{W-1}``).
    """

    mean: Tensor
    cdf: Tensor
    last: Tensor


def count_table(rate_hz: Tensor, dt: float) -> CountTable:
    """The table of rates ``rate_hz [R, n]`` [Hz] for steps of ``dt`` [ms] (module docstring)."""
    mean = rate_hz.to(torch.float64) * (dt * 1e-3)
    p = torch.exp(-mean)
    f = p
    sums = [f]
    for k in range(1, TABLE_WIDTH):
        p = p * mean / k
        f = f + p
        sums.append(f)
    return CountTable(mean, torch.stack(sums, 1), p)


class TableCache:
    """:func:`count_table` per population, computed again only when its rate tensor changed
    (another tensor, or the same one written in place)."""

    def __init__(self, dt: float) -> None:
        self.dt = dt
        self._tables: dict[str, tuple[Tensor, int, CountTable]] = {}

    def __call__(self, name: str, rate_hz: Tensor) -> CountTable:
        hit = self._tables.get(name)
        if hit is None or hit[0] is not rate_hz or hit[1] != rate_hz._version:
            hit = (rate_hz, rate_hz._version, count_table(rate_hz, self.dt))
            self._tables[name] = hit
        return hit[2]


def poisson_counts(key: int, step0: int, steps: int, batch: int, table: CountTable) -> Tensor:
    """int32 ``[steps, batch, n]``: the counts of steps ``step0 .. step0 + steps - 1`` of the
    population whose stream is ``key`` (:func:`neurowire.rng.stream_key`) and rates ``table``.
    """
    rows, width, n = table.cdf.shape
    u = uniforms(key, step0, steps, batch, n, torch.float64, table.cdf.device)
    count = (u[:, :, None, :] >= table.cdf[None]).sum(2, dtype=torch.int32)
    tail = (count == width).nonzero(as_tuple=True)
    if tail[0].numel():
        t, b, i = tail
        r = b if rows > 1 else torch.zeros_like(b)
        count[t, b, i] = _tail_counts(
            u[t, b, i], table.mean[r, i], table.cdf[r, width - 1, i], table.last[r, i], width
        )
    return count


def _tail_counts(u: Tensor, mean: Tensor, f: Tensor, p: Tensor, width: int) -> Tensor:
    """Counts ``>= width``: the recursion continued from ``F_{W-1} = f``, ``p_{W-1} = p`` (the
    native kernel's operations, in the same order)."""
    count = torch.full(u.shape, width, dtype=torch.int32, device=u.device)
    p = p * mean / count.to(torch.float64)
    f = f + p
    active = (u >= f) & (p > 0)
    while bool(active.any()):
        count = count + active.to(torch.int32)
        p = torch.where(active, p * mean / count.to(torch.float64), p)
        f = torch.where(active, f + p, f)
        active = active & (u >= f) & (p > 0)
    return count
