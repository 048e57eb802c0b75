"""When host code runs between blocks: the structural rules and the callbacks that are due.

The steps between two due host rules or callbacks run as one block. A rule the block runner
runs inside its blocks (the native engine's fused rules) does not end a block.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import torch

from ..structural.runner import Clock, RuleRunner
from ..structural.view import SynapseView
from .timers import index_rebuild_s

if TYPE_CHECKING:
    from ..simulator import Simulator


class Schedule:
    """The rule schedule of a simulator: the rule runner (contexts, all-or-nothing calls,
    logging into ``sim.rewiring_log``), block lengths and the host work after a block."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.net = sim.net
        #: the host side of the rules (their generators, contexts and views)
        self.rule_runner = RuleRunner(
            [(sch.projection.name, sch.rule) for sch in sim.net.rules],
            sim.seed,
            sim.device,
            self._make_view,
            sim.rewiring_log,
        )
        self._set_up = False
        self._host_rules: list[int] | None = None

    def host_rules(self) -> list[int]:
        """Indices of the rules that run on the host (all but those run inside blocks)."""
        if self._host_rules is None:
            fused = set(self.sim.runner.fused_rules)
            self._host_rules = [r for r in range(len(self.net.rules)) if r not in fused]
        return self._host_rules

    def block_length(self, default: int | None) -> int:
        """Steps per block: up to the next due host rule or callback, else ``default`` (the
        runner's own default when None)."""
        periods = [c.every for c in self.net.callbacks]
        periods += [self.net.rules[r].every for r in self.host_rules()]
        if periods:
            return math.gcd(*periods)
        if default is not None:
            return default
        return self.sim.runner.default_block_steps

    def steps_to_next_event(self) -> int:
        """Steps from now to the end of the current block."""
        k = self.sim.block_steps
        return k - (self.sim.step_count % k)

    def host_step(self, step: int) -> bool:
        """Whether a host rule is due after ``step``; then the host runs every rule due."""
        rules = self.net.rules
        return any(step % rules[r].every == 0 for r in self.host_rules())

    def run(self) -> None:
        """After a block: the rules (when a host rule is due) and the callbacks due now."""
        sim = self.sim
        tic = time.perf_counter()
        rebuild = index_rebuild_s(self.net.projections.values())
        if self.host_step(sim.step_count):
            clock = self._clock()
            for i, scheduled in enumerate(self.net.rules):
                if sim.step_count % scheduled.every == 0:
                    self.rule_runner.update(i, clock, scheduled.log_events)
        rebuilt = index_rebuild_s(self.net.projections.values()) - rebuild
        sim.timers["rules"] += time.perf_counter() - tic - rebuilt
        tic = time.perf_counter()
        for cb in self.net.callbacks:
            if sim.step_count % cb.every == 0:
                cb.fn(sim)
        sim.timers["callbacks"] += time.perf_counter() - tic

    def set_up(self) -> None:
        """Call the rules' ``setup`` once, before the first step."""
        if not self._set_up:
            self.rule_runner.setup(self._clock())
            self._set_up = True

    def _clock(self) -> Clock:
        sim = self.sim
        return Clock(sim.step_count, sim.t, sim.dt, sim.batch_size)

    def _make_view(self, name: str, generator: torch.Generator, log_events: bool) -> SynapseView:
        sim = self.sim
        proj = self.net._projection(name)
        if not proj.sparse:
            raise ValueError(f"projection {proj.name!r} is dense and has no synapse view")
        return SynapseView(
            proj.synapses,
            pre_state=sim.neuron_state(proj.pre.name),
            post_state=sim.neuron_state(proj.post.name),
            pre_grid=proj.pre.grid,
            post_grid=proj.post.grid,
            log=sim.rewiring_log,
            step=sim.step_count,
            t_ms=sim.t,
            log_events=log_events,
            generator=generator,
        )
