"""Postsynaptic models: how delivered weights become input to the postsynaptic neuron.

Each model's ``update`` (model language, :mod:`neurowire.codegen`) is its only definition: the
eager ``step`` runs it on tensors, the native engine translates it.

Each step a projection delivers ``w_sum [B, n_post]``, the sum of the weights of the synapses
whose presynaptic neuron spiked in the previous step. The model turns it into input ``I``:

* :class:`Delta`: ``I_t = w_sum_t`` (charge delivered in one step).
* :class:`ExpCurr`: ``x <- x + w_sum``; ``I_t = x``; then ``x <- x exp(-dt/tau)``.
* :class:`ExpCond`: ``g <- g + w_sum``; ``I_t = g (e_rev - V)`` with V from the previous step;
  then ``g <- g exp(-dt/tau)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from .checks import check_number, check_time
from .codegen import Constants, Definition, TorchState
from .neurons import decay


@dataclass(frozen=True)
class PostsynapticModel(Definition):
    """Base class; ``state`` is one tensor ``[len(state_vars), B, n_post]``, the variables named
    in ``state_vars`` in that order (``[0, B, n_post]`` for a stateless model)."""

    #: whether the input depends on the postsynaptic membrane potential
    needs_voltage: ClassVar[bool] = False
    #: names of the state variables in ``update`` (``s.<name>``), empty for a stateless model
    state_vars: ClassVar[tuple[str, ...]] = ()

    def init_state(
        self, batch: int, n_post: int, device: torch.device, dtype: torch.dtype
    ) -> Tensor:
        return torch.zeros(len(self.state_vars), batch, n_post, dtype=dtype, device=device)

    def bind(self, neuron: Any) -> PostsynapticModel:
        """The model as it drives ``neuron`` (the postsynaptic population's model), called once
        by ``Network.connect``; a model whose constants depend on the neuron fills them in here
        (see :class:`Alpha`). The default returns the model unchanged."""
        return self

    def update(self, s: TorchState, c: Constants, w_sum: Tensor, v: Tensor | None) -> Tensor:
        """Advance the state with the delivered ``w_sum``; return the input current."""
        raise NotImplementedError(f"{type(self).__name__} defines no update()")

    @classmethod
    def derives_code(cls) -> bool:
        return cls.step is PostsynapticModel.step and cls.update is not PostsynapticModel.update

    def step(
        self, state: Tensor, w_sum: Tensor, v: Tensor | None, dt: float
    ) -> tuple[Tensor, Tensor]:
        """Return (input ``[B, n_post]``, new state), by running :meth:`update` on tensors."""
        c = self.constants_for(dt)
        if not self.state_vars:
            return self.update(None, c, w_sum, v), state
        s = _PscState()
        for k, name in enumerate(self.state_vars):
            setattr(s, name, state[k])
        current = self.update(s, c, w_sum, v)
        return current, torch.stack([getattr(s, name) for name in self.state_vars])


class _PscState:
    """Namespace of a postsynaptic model's state inside :meth:`PostsynapticModel.step`."""


@dataclass(frozen=True)
class Delta(PostsynapticModel):
    """Instantaneous input: the delivered weight enters the neuron in this step only."""

    def update(self, s, c, w_sum, v):
        return w_sum


@dataclass(frozen=True)
class ExpCurr(PostsynapticModel):
    """Exponentially decaying current with time constant ``tau`` [ms]."""

    tau: float = 5.0
    state_vars = ("x",)
    coefficient_sources: ClassVar[dict[str, str]] = {"k": "tau"}

    def __post_init__(self) -> None:
        check_time("ExpCurr tau", self.tau)

    def constants(self, dt):
        return {"k": decay(self.tau, dt)}

    def update(self, s, c, w_sum, v):
        s.x = s.x + w_sum
        current = s.x
        s.x = s.x * c.k
        return current


@dataclass(frozen=True)
class ExpCond(PostsynapticModel):
    """Exponentially decaying conductance, time constant ``tau`` [ms], reversal ``e_rev`` [mV]."""

    tau: float = 5.0
    e_rev: float = 0.0
    needs_voltage = True
    state_vars = ("g",)
    coefficient_sources: ClassVar[dict[str, str]] = {"k": "tau"}

    def __post_init__(self) -> None:
        check_time("ExpCond tau", self.tau)
        check_number("ExpCond e_rev", self.e_rev)

    def constants(self, dt):
        return {"k": decay(self.tau, dt), "e_rev": float(self.e_rev)}

    def update(self, s, c, w_sum, v):
        s.g = s.g + w_sum
        current = s.g * (c.e_rev - v)
        s.g = s.g * c.k
        return current
