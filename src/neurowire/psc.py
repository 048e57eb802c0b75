"""Postsynaptic models: how delivered weights become input to the postsynaptic neuron.

Each step a projection delivers ``w_sum [B, n_post]``, the sum of the weights of the synapses
whose presynaptic neuron spiked in the previous step. The model turns it into input ``I``:

* :class:`Delta`: ``I_t = w_sum_t`` (charge delivered in one step).
* :class:`ExpCurr`: ``x <- x + w_sum``; ``I_t = x``; then ``x <- x exp(-dt/tau)``.
* :class:`ExpCond`: ``g <- g + w_sum``; ``I_t = g (e_rev - V)`` with V from the previous step;
  then ``g <- g exp(-dt/tau)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .neurons import decay


@dataclass(frozen=True)
class PostsynapticModel:
    """Base class; ``state`` is one ``[B, n_post]`` tensor (unused by :class:`Delta`)."""

    #: whether the input depends on the postsynaptic membrane potential
    needs_voltage = False

    def init_state(
        self, batch: int, n_post: int, device: torch.device, dtype: torch.dtype
    ) -> Tensor:
        return torch.zeros(batch, n_post, dtype=dtype, device=device)

    def step(
        self, state: Tensor, w_sum: Tensor, v: Tensor | None, dt: float
    ) -> tuple[Tensor, Tensor]:
        """Return (input ``[B, n_post]``, new state)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Delta(PostsynapticModel):
    """Instantaneous input: the delivered weight enters the neuron in this step only."""

    def init_state(self, batch, n_post, device, dtype):
        return torch.zeros(batch, 0, dtype=dtype, device=device)

    def step(self, state, w_sum, v, dt):
        return w_sum, state


@dataclass(frozen=True)
class ExpCurr(PostsynapticModel):
    """Exponentially decaying current with time constant ``tau`` [ms]."""

    tau: float = 5.0

    def __post_init__(self) -> None:
        decay(self.tau, 1.0)

    def step(self, state, w_sum, v, dt):
        x = state + w_sum
        return x, x * decay(self.tau, dt)


@dataclass(frozen=True)
class ExpCond(PostsynapticModel):
    """Exponentially decaying conductance, time constant ``tau`` [ms], reversal ``e_rev`` [mV]."""

    tau: float = 5.0
    e_rev: float = 0.0
    needs_voltage = True

    def __post_init__(self) -> None:
        decay(self.tau, 1.0)

    def step(self, state, w_sum, v, dt):
        g = state + w_sum
        return g * (self.e_rev - v), g * decay(self.tau, dt)
