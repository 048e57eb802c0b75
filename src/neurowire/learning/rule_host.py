"""The trainer's side of its structural rules: which rules it runs, each rule's view of its
projection after the last batch, the rules' clock, and the calls around the optimiser step."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import torch
from torch import Tensor

from ..network import Population
from ..structural.base import StructuralRule
from ..structural.runner import Clock
from ..structural.view import SynapseView

__all__ = ["RuleHost"]


class RuleHost:
    """The rule methods of :class:`~neurowire.EProp`.

    Uses the trainer's rules ``_rules`` (``(projection spec, rule)`` pairs), ``rule_runner``,
    ``rewiring_log``, batch counters (``step_count``, ``_trained_ms``, ``_batch_trials``), the
    last batch's rates ``_rates``, ``optimizer``, ``net``, ``network`` and ``device``.
    """

    @property
    def rules(self) -> Mapping[str, StructuralRule]:
        """The structural rules, read-only: ``{projection name: rule}`` in ``rewiring=``
        order."""
        return MappingProxyType({spec.name: rule for spec, rule in self._rules})

    def _make_view(self, name: str, generator: torch.Generator, log_events: bool) -> SynapseView:
        """A rule's view of a sparse plastic projection after the last batch.

        Neuron state: ``rate_hz`` ``[1, n]``, each neuron's mean firing rate over the last
        training batch [Hz] (zeros before the first batch).
        """
        proj = self.net.projections[name]
        return SynapseView(
            proj.synapses,
            pre_state=self._population_state(proj.pre),
            post_state=self._population_state(proj.post),
            pre_grid=proj.pre.grid,
            post_grid=proj.post.grid,
            log=self.rewiring_log,
            step=self.step_count,
            t_ms=self._trained_ms,
            log_events=log_events,
            generator=generator,
        )

    def _population_state(self, pop: Population) -> dict[str, Tensor]:
        rate = self._rates.of(pop.name)
        if rate is None:
            rate = torch.zeros(pop.n, dtype=self.network.dtype, device=self.device)
        return {"rate_hz": rate[None, :]}

    def _clock(self) -> Clock:
        """The rules' clock: ``step`` counts batches, ``t_ms`` the trained model time [ms],
        ``batch_size`` the trials of the last batch, ``learning_rate`` the optimiser's."""
        return Clock(
            self.step_count,
            self._trained_ms,
            self.net.dt,
            self._batch_trials,
            self.optimizer.lr,
        )

    def _adjust_gradients(self, grads: dict[str, Tensor]) -> dict[str, Tensor]:
        """Let every rule change its projection's gradient before the optimiser step."""
        clock = self._clock()
        for i, (spec, _) in enumerate(self._rules):
            grads[spec.name] = self.rule_runner.adjust_gradient(i, grads[spec.name], clock)
        return grads

    def _rewire(self) -> None:
        clock = self._clock()
        for i in range(len(self._rules)):
            self.rule_runner.update(i, clock)
