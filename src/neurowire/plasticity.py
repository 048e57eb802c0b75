"""Synaptic plasticity rules applied in phase 4 of every step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from . import gpu
from .checks import ParameterError, check_number, check_time
from .codegen import Definition, clip
from .events import SpikeEvents
from .neurons import decay


@dataclass(frozen=True)
class STDP(Definition):
    """Additive, all-to-all, trace-based STDP with weights clipped to ``[w_min, w_max]``.

    Each step, traces decay (``x_pre`` with ``tau_plus``, ``x_post`` with ``tau_minus``); a
    presynaptic spike depresses its row by ``a_minus * x_post[post]``; a postsynaptic spike
    potentiates its column by ``a_plus * x_pre[pre]``; then the spikes of the step are added to
    the traces (``+1``). Simultaneous pre and post spikes therefore do not interact, and a pair
    ``pre`` then ``post`` after ``dt_ms`` changes the weight by ``a_plus * exp(-dt_ms/tau_plus)``
    (``-a_minus * exp(-dt_ms/tau_minus)`` for the reverse order).

    These dynamics are written once, in the model language (:meth:`decay_pre`,
    :meth:`decay_post`, :meth:`depress`, :meth:`potentiate`, :meth:`count_spikes`):
    :meth:`torch_step` runs them on tensors, and the native engine's kernel is generated from
    them (:func:`neurowire.native.codegen.stdp_kernel`).

    Args:
        tau_plus: potentiation window [ms].
        tau_minus: depression window [ms].
        a_plus, a_minus: amplitudes (weight units, >= 0).
        w_min, w_max: weight bounds.
    """

    coefficient_sources: ClassVar[dict[str, str]] = {"k_plus": "tau_plus", "k_minus": "tau_minus"}

    tau_plus: float = 20.0
    tau_minus: float = 64.0
    a_plus: float = 0.02
    a_minus: float = 0.0075
    w_min: float = 0.0
    w_max: float = 0.2

    def __post_init__(self) -> None:
        check_time("STDP tau_plus", self.tau_plus)
        check_time("STDP tau_minus", self.tau_minus)
        for name in ("a_plus", "a_minus"):
            value = getattr(self, name)
            check_number(f"STDP {name}", value)
            if value < 0:
                raise ParameterError(f"STDP {name} must be a finite number >= 0, got {value!r}")
        check_number("STDP w_min", self.w_min)
        check_number("STDP w_max", self.w_max)
        if self.w_max < self.w_min:
            raise ParameterError(f"STDP needs w_min <= w_max, got {self.w_min}, {self.w_max}")

    def constants(self, dt):
        return {
            "k_plus": decay(self.tau_plus, dt),
            "k_minus": decay(self.tau_minus, dt),
            "a_plus": float(self.a_plus),
            "a_minus": float(self.a_minus),
            "w_min": float(self.w_min),
            "w_max": float(self.w_max),
        }

    # the rule's only definition: every engine derives its step from these methods
    def decay_pre(self, c, x_pre):
        """Presynaptic trace after one step's decay, before this step's spikes."""
        return x_pre * c.k_plus

    def decay_post(self, c, x_post):
        """Postsynaptic trace after one step's decay, before this step's spikes."""
        return x_post * c.k_minus

    def count_spikes(self, c, x, z):
        """A trace after the weight updates of a step: ``z`` its neuron's spikes (0 or 1)."""
        return x + z

    def depress(self, c, w, x_post):
        """New weight of a synapse whose presynaptic neuron spiked."""
        return clip(w - c.a_minus * x_post, c.w_min, c.w_max)

    def potentiate(self, c, w, x_pre):
        """New weight of a synapse whose postsynaptic neuron spiked."""
        return clip(w + c.a_plus * x_pre, c.w_min, c.w_max)

    def torch_step(
        self,
        w: Tensor,
        ind: Tensor,
        live: Tensor,
        columns: Tensor,
        pre: SpikeEvents,
        post: SpikeEvents,
        x_pre: Tensor,
        x_post: Tensor,
        z_pre: Tensor,
        z_post: Tensor,
        dt: float = 1.0,
    ) -> tuple[Tensor, Tensor]:
        """One step of the rule for batch 1: decay the traces, depress the rows of ``pre``'s
        spikes, potentiate the columns of ``post``'s spikes (``w`` in place), count the spikes
        into the traces.

        Shapes: ``w, ind, live [n_pre, capacity]``; ``columns`` as for
        :func:`stdp_potentiate_columns`; ``x_pre, z_pre [n_pre]``; ``x_post, z_post [n_post]``
        (``z`` bool). Returns the new ``(x_pre, x_post)``.
        """
        c = self.constants_for(dt)
        x_pre = self.decay_pre(c, x_pre)
        x_post = self.decay_post(c, x_post)
        stdp_depress_rows(w, ind, live, pre, x_post, self, dt)
        stdp_potentiate_columns(w, columns, post, x_pre, self, dt)
        return self.count_spikes(c, x_pre, z_pre), self.count_spikes(c, x_post, z_post)


def stdp_reference(
    w: Tensor,
    ind: Tensor,
    live: Tensor,
    z_pre: Tensor,
    z_post: Tensor,
    x_pre: Tensor,
    x_post: Tensor,
    rule: STDP,
    dt: float = 1.0,
) -> Tensor:
    """All-slots STDP update (the reference); traces must already be decayed.

    Shapes: ``w, ind, live [n_pre, capacity]``; ``z_pre, x_pre [n_pre]``; ``z_post, x_post
    [n_post]``. Returns the new weights; padding slots are left unchanged.
    """
    c = rule.constants_for(dt)
    w = torch.where(z_pre[:, None] & live, rule.depress(c, w, x_post[ind]), w)
    return torch.where(z_post[ind] & live, rule.potentiate(c, w, x_pre[:, None]), w)


def stdp_depress_rows(
    w: Tensor,
    ind: Tensor,
    live: Tensor,
    pre: SpikeEvents,
    x_post: Tensor,
    rule: STDP,
    dt: float = 1.0,
) -> None:
    """Depress, in place, the rows of the spiking presynaptic neurons in ``pre`` (batch 1)."""
    if gpu.available(w):  # CUDA with triton: a kernel generated from rule.depress, if it can be
        from .gpu import stdp

        if stdp.supports(rule, dt):
            return stdp.stdp_depress_rows(w, ind, live, pre, x_post, rule, dt)
    rows = pre.pre
    old = w[rows]
    new = rule.depress(rule.constants_for(dt), old, x_post[ind[rows]])
    w.index_add_(0, rows, torch.where(live[rows] & pre.valid[:, None], new - old, 0))


def stdp_potentiate_columns(
    w: Tensor, columns: Tensor, post: SpikeEvents, x_pre: Tensor, rule: STDP, dt: float = 1.0
) -> None:
    """Potentiate, in place, the synapses onto the spiking postsynaptic neurons in ``post``.

    ``columns [n_post, col_capacity]`` holds flat slot indices padded with ``w.numel()``.
    """
    if gpu.available(w):  # CUDA with triton: a kernel generated from rule.potentiate, if it can be
        from .gpu import stdp

        if stdp.supports(rule, dt):
            return stdp.stdp_potentiate_columns(w, columns, post, x_pre, rule, dt)
    capacity = w.shape[1]
    slots = columns[post.pre]
    ok = (slots < w.numel()) & post.valid[:, None]
    slots = torch.where(ok, slots, 0)
    flat = w.view(-1)
    old = flat[slots]
    new = rule.potentiate(rule.constants_for(dt), old, x_pre[slots // capacity])
    flat.index_add_(0, slots.reshape(-1), torch.where(ok, new - old, 0).reshape(-1))
