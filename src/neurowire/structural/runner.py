"""Running structural rules on the host: one context factory for every engine.

The :class:`~neurowire.Simulator` and :class:`~neurowire.EProp` both hold a :class:`RuleRunner`.
It owns each rule's seeded generators (:func:`~.base.rule_generators`), builds its
:class:`~.base.RuleContext` (seeded ``rng``, views of other projections through ``ctx.view``,
neuron state, time and step, batch size, learning rate) and its :class:`~.view.SynapseView`
from the engine's ``make_view``, and makes every :meth:`~.base.StructuralRule.update` call
all-or-nothing (:func:`~.transaction.rule_transaction`): if the rule raises, every store it
touched through a view and the rewiring log are restored, so store, per-call log and event log
agree. A store is copied when its view is handed out, unless the rule declares the call
:meth:`~.base.StructuralRule.atomic` for it (it then raises only before changing anything).
Engines differ only in ``make_view`` (which neuron state a view carries) and the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .base import RuleContext, StructuralRule, rule_generators
from .log import RewiringLog
from .transaction import rule_transaction
from .view import SynapseView

#: ``make_view(projection, generator, log_events) -> SynapseView``
ViewMaker = Callable[[str, torch.Generator, bool], SynapseView]


@dataclass(frozen=True)
class Clock:
    """When a rule runs: ``step`` (steps or batches done), ``t_ms`` (model time [ms]), ``dt``
    [ms], ``batch_size`` (trials per step or in the last batch), ``learning_rate`` (trainers)."""

    step: int
    t_ms: float
    dt: float
    batch_size: int = 1
    learning_rate: float | None = None


class RuleRunner:
    """Contexts and all-or-nothing calls for the rules ``rules`` (``(projection, rule)``).

    Args:
        rules: projection name and rule, in schedule order.
        base_seed: seeds rule ``i``'s generators with :func:`~.base.rule_seed`.
        device: device of the torch generators.
        make_view: the engine's view of a projection (see :data:`ViewMaker`).
        log: the log every call records into.
        known: projection names ``ctx.view`` accepts (None: any ``make_view`` accepts).
    """

    def __init__(
        self,
        rules: Sequence[tuple[str, StructuralRule]],
        base_seed: int,
        device: torch.device | str,
        make_view: ViewMaker,
        log: RewiringLog,
        known: Sequence[str] | None = None,
    ) -> None:
        self.rules = list(rules)
        self.generators, self.rngs = rule_generators(base_seed, len(self.rules), device)
        self.make_view = make_view
        self.log = log
        self.known = None if known is None else set(known)

    def __len__(self) -> int:
        return len(self.rules)

    def context(
        self, i: int, clock: Clock, log_events: bool = False, on_view=None
    ) -> tuple[SynapseView, RuleContext]:
        """Rule ``i``'s view of its projection and its context; ``on_view(view)`` is called for
        every view handed out (a transaction protects its store)."""
        name, _ = self.rules[i]
        gen = self.generators[i]

        def view_of(projection: str) -> SynapseView:
            if self.known is not None and projection not in self.known:
                raise ValueError(
                    f"no sparse projection {projection!r} for rules; known: {sorted(self.known)}"
                )
            view = self.make_view(projection, gen, log_events)
            if on_view is not None:
                on_view(view)
            return view

        ctx = RuleContext(
            gen,
            clock.step,
            clock.t_ms,
            clock.dt,
            name,
            view_of,
            rng=self.rngs[i],
            batch_size=clock.batch_size,
            learning_rate=clock.learning_rate,
        )
        return view_of(name), ctx

    def setup(self, clock: Clock) -> None:
        """Every rule's :meth:`~.base.StructuralRule.setup`, once before the first step."""
        for i, (_, rule) in enumerate(self.rules):
            rule.setup(*self.context(i, clock))

    def update(self, i: int, clock: Clock, log_events: bool = False) -> None:
        """One all-or-nothing call of rule ``i``'s update, recorded per projection touched."""
        _, rule = self.rules[i]
        with rule_transaction([], self.log) as tx:

            def protect(v: SynapseView) -> None:
                if not rule.atomic(v):
                    tx.protect(v.store)

            view, ctx = self.context(i, clock, log_events, on_view=protect)
            rule.update(view, ctx)
            for name, v in [(ctx.projection, view), *ctx.views.items()]:
                self.log.record_call(name, clock.step, clock.t_ms, v.removed, v.added, v.failed)

    def adjust_gradient(self, i: int, grad: torch.Tensor, clock: Clock) -> torch.Tensor:
        """Rule ``i``'s gradient hook; the result is checked to keep the gradient's shape."""
        name, rule = self.rules[i]
        view, ctx = self.context(i, clock)
        out = rule.adjust_gradient(view, grad, ctx)
        if not isinstance(out, torch.Tensor) or out.shape != grad.shape:
            raise ValueError(
                f"{type(rule).__name__}.adjust_gradient for {name!r} must return a tensor "
                f"{list(grad.shape)}, got {getattr(out, 'shape', type(out))}"
            )
        return out

    def state_dict(self) -> dict[str, Any]:
        """Generators' states and every rule's own state (for checkpoints)."""
        return {
            "rules": {name: rule.state_dict() for name, rule in self.rules},
            "rule_generators": [g.get_state() for g in self.generators],
            "rule_rngs": [r.bit_generator.state for r in self.rngs],
        }
