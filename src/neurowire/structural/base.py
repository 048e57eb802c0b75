"""The structural-rule interface."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from .view import SynapseView


@dataclass
class RuleContext:
    """What a rule may know about the simulation when it runs.

    Attributes:
        generator: seeded torch generator on the simulation device (one per scheduled rule).
        step: steps completed so far (the rule runs after this step).
        t: model time [ms] at the end of that step.
        dt: time step [ms].
        projection: name of the projection the rule acts on.
        rng: seeded numpy ``Generator`` (PCG64) of the same rule, for host-side draws whose
            stream must not depend on how draws are batched (``rng.random(2 * k)`` equals two
            calls of ``rng.random(k)``).

    ``ctx.view(name)`` gives a :class:`SynapseView` of another projection of the network (for
    rules that couple projections, such as a fan-in shared by two); its changes are logged
    under that projection.
    """

    generator: torch.Generator
    step: int
    t: float
    dt: float
    projection: str
    view_factory: Callable[[str], SynapseView] | None = None
    views: dict[str, SynapseView] = field(default_factory=dict)
    rng: np.random.Generator = field(default_factory=np.random.default_rng)

    def view(self, projection: str) -> SynapseView:
        if self.view_factory is None:
            raise ValueError("this context gives no access to other projections")
        if projection not in self.views:
            self.views[projection] = self.view_factory(projection)
        return self.views[projection]


class StructuralRule:
    """Base class of structural plasticity rules; override :meth:`update`.

    A rule keeps only hyperparameters. Per-synapse state it needs is a variable of the store
    (``view.store.add_var``), so it moves with removals and additions; the simulator logs the
    removed, added and failed counts of every call.
    """

    def setup(self, view: SynapseView, ctx: RuleContext) -> None:
        """Called once before the first step (e.g. to register store variables)."""

    def update(self, view: SynapseView, ctx: RuleContext) -> None:
        """Change the connectivity through ``view.remove``, ``view.add`` and ``view.grow``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"
