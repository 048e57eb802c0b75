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

Rules run once per batch or every few steps, and a call's own work can be a few microseconds,
so the runner makes each context and view once and renews it for later calls (a context and
its views are valid during one call): a renewed view asks ``make_view`` again only when the
rule reads neuron state (:meth:`~.view.SynapseView.renew`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .base import RuleContext, StructuralRule, rule_generators
from .log import RewiringLog
from .transaction import rule_transaction
from .view import SynapseView

#: ``make_view(projection, generator, log_events) -> SynapseView``: a view at the engine's
#: current step and time (those of its :class:`Clock`), of the same store and grids every time
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
        #: (rule, projection, log_events, through ctx.view) -> (view, its make_view call)
        self._views: dict[tuple[int, str, bool, bool], tuple[SynapseView, Callable]] = {}
        self._contexts: dict[int, RuleContext] = {}

    def __len__(self) -> int:
        return len(self.rules)

    def context(
        self, i: int, clock: Clock, log_events: bool = False, on_view=None
    ) -> tuple[SynapseView, RuleContext]:
        """Rule ``i``'s view of its projection and its context for a call at ``clock`` (made on
        the first call, renewed later); ``on_view(view)`` is called for every view handed out
        (a transaction protects its store)."""
        name, _ = self.rules[i]

        def view_of(projection: str, own: bool = False) -> SynapseView:
            if self.known is not None and projection not in self.known:
                raise ValueError(
                    f"no sparse projection {projection!r} for rules; known: {sorted(self.known)}"
                )
            view = self._view(i, projection, clock, log_events, own)
            if on_view is not None:
                on_view(view)
            return view

        ctx = self._contexts.get(i)
        if ctx is None:
            ctx = self._contexts[i] = RuleContext(
                self.generators[i], 0, 0.0, 0.0, name, rng=self.rngs[i]
            )
        ctx.step, ctx.t, ctx.dt = clock.step, clock.t_ms, clock.dt
        ctx.batch_size, ctx.learning_rate = clock.batch_size, clock.learning_rate
        ctx.view_factory, ctx.views = view_of, {}
        return view_of(name, own=True), ctx

    def _view(
        self, i: int, projection: str, clock: Clock, log_events: bool, own: bool
    ) -> SynapseView:
        """Rule ``i``'s view of ``projection`` for a call at ``clock``: made by ``make_view``
        the first time, renewed afterwards. A call's own view (``own``) and the views it asks
        for through ``ctx.view`` are distinct objects, as ``ctx.view`` may name its own
        projection."""
        key = (i, projection, log_events, own)
        cached = self._views.get(key)
        if cached is None:
            make = functools.partial(self.make_view, projection, self.generators[i], log_events)
            cached = self._views[key] = (make(), make)
        else:
            cached[0].renew(clock.step, clock.t_ms, cached[1])
        return cached[0]

    def setup(self, clock: Clock) -> None:
        """Every rule's :meth:`~.base.StructuralRule.setup`, once before the first step."""
        for i, (_, rule) in enumerate(self.rules):
            rule.setup(*self.context(i, clock))

    def update(
        self, i: int, clock: Clock, log_events: bool = False
    ) -> dict[str, tuple[int, int, int]]:
        """One all-or-nothing call of rule ``i``'s update, recorded per projection touched;
        returns what it recorded, ``{projection: (removed, added, failed)}``."""
        _, rule = self.rules[i]
        counts = {}
        with rule_transaction([], self.log) as tx:

            def protect(v: SynapseView) -> None:
                if not rule.atomic(v):
                    tx.protect(v.store)

            view, ctx = self.context(i, clock, log_events, on_view=protect)
            rule.update(view, ctx)
            for name, v in [(ctx.projection, view), *ctx.views.items()]:
                self.log.record_call(name, clock.step, clock.t_ms, v.removed, v.added, v.failed)
                before = counts.get(name, (0, 0, 0))
                counts[name] = (before[0] + v.removed, before[1] + v.added, before[2] + v.failed)
        return counts

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

    def load_generators(self, state: Mapping[str, Any]) -> None:
        """Put the rules' generators back as a :meth:`state_dict` saved them
        (``rule_generators`` and ``rule_rngs``, one per rule)."""
        for g, st in zip(self.generators, state["rule_generators"], strict=True):
            g.set_state(st)
        for r, st in zip(self.rngs, state["rule_rngs"], strict=True):
            r.bit_generator.state = st
