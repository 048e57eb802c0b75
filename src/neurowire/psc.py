"""Postsynaptic models: how delivered weights become input to the postsynaptic neuron.

Each model's ``update`` (model language, :mod:`neurowire.codegen`) is its only definition: the
eager ``step`` runs it on tensors, the native engine translates it.

Each step a projection delivers ``w_sum [B, n_post]``, the sum of the weights of the synapses
whose presynaptic neuron spiked in the previous step. The model turns it into input ``I``:

* :class:`Delta`: ``I_t = w_sum_t`` (charge delivered in one step).
* :class:`ExpCurr`: ``x <- x + w_sum``; ``I_t = x``; then ``x <- x exp(-dt/tau)``.
* :class:`ExpCond`: ``g <- g + w_sum``; ``I_t = g (e_rev - V)`` with V from the previous step;
  then ``g <- g exp(-dt/tau)``.
* :class:`Alpha`: an alpha-shaped current, integrated exactly with the membrane it drives
  (NEST's ``iaf_psc_alpha``); ``I_t`` comes from the state before ``w_sum`` is added, so a
  weight acts on the membrane from the step after its delivery.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from torch import Tensor

from .checks import ParameterError, check_number, check_time
from .codegen import Constants, Definition, TorchState
from .neurons import decay
from .propagators import alpha_gains, membrane_gain


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


@dataclass(frozen=True)
class Alpha(PostsynapticModel):
    """Alpha-shaped current (NEST's ``iaf_psc_alpha`` synapse), time constant ``tau_syn`` [ms].

    A weight ``w`` [pA] delivered at time 0 gives the current ``I(t) = w (e/tau_syn) t
    exp(-t/tau_syn)`` [pA] (peak ``w`` at ``t = tau_syn``). State: ``di`` [pA/ms] and ``i`` [pA],
    advanced exactly each step::

        current = (g_rise di + g_current i) / membrane_gain      (from the state at t)
        i  <- dt exp(-dt/tau_syn) di + exp(-dt/tau_syn) i
        di <- exp(-dt/tau_syn) di + (e/tau_syn) w_sum

    ``current`` is the constant current that moves the membrane as much over the step as the
    alpha current does (:mod:`neurowire.propagators`), so a membrane that integrates a constant
    current exactly (:class:`~neurowire.IafPsc`, :meth:`~neurowire.LIF.biophysical`) reproduces
    the exact solution; weights delivered in a step act on ``V`` from the next step on, as in
    NEST.

    Args:
        tau_syn: time constant of the current [ms] (NEST's ``tau_syn_ex``/``tau_syn_in``;
            give excitatory and inhibitory projections their own ``Alpha``).
        tau_m: membrane time constant [ms] the current is integrated against; None (the
            default): the postsynaptic neuron's ``tau_m``, filled in by ``Network.connect``.
    """

    tau_syn: float = 2.0
    tau_m: float | None = None
    state_vars = ("di", "i")
    coefficient_sources: ClassVar[dict[str, str]] = {
        "p_decay": "tau_syn",
        "p_rise": "tau_syn",
        "q_rise": "tau_m",
        "q_current": "tau_m",
        "jump": "tau_syn",
    }

    def __post_init__(self) -> None:
        check_time("Alpha tau_syn", self.tau_syn)
        if self.tau_m is not None:
            check_time("Alpha tau_m", self.tau_m)

    def bind(self, neuron: Any) -> Alpha:
        tau_m = getattr(neuron, "tau_m", None)
        if isinstance(tau_m, bool) or not isinstance(tau_m, numbers.Real):
            raise ParameterError(
                f"Alpha needs a postsynaptic neuron with a membrane time constant tau_m, "
                f"got {type(neuron).__name__}"
            )
        if self.tau_m is None:
            return replace(self, tau_m=float(tau_m))
        if self.tau_m != tau_m:
            raise ParameterError(
                f"Alpha tau_m={self.tau_m!r} ms differs from the postsynaptic neuron's "
                f"tau_m={tau_m!r} ms; leave Alpha's tau_m unset"
            )
        return self

    def constants(self, dt):
        if self.tau_m is None:
            raise ParameterError(
                "Alpha tau_m is unset: connect the model to a neuron (Network.connect) or "
                "give tau_m="
            )
        decay_syn = math.exp(-dt / self.tau_syn)
        g_rise, g_current = alpha_gains(self.tau_syn, self.tau_m, dt)
        gain = membrane_gain(self.tau_m, dt)
        return {
            "p_decay": decay_syn,
            "p_rise": dt * decay_syn,
            "q_rise": g_rise / gain,
            "q_current": g_current / gain,
            "jump": math.e / self.tau_syn,
        }

    def update(self, s, c, w_sum, v):
        current = c.q_rise * s.di + c.q_current * s.i
        s.i = c.p_rise * s.di + c.p_decay * s.i
        s.di = c.p_decay * s.di + c.jump * w_sum
        return current
