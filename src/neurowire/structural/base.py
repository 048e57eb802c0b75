"""The structural-rule interface."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from ..native.rule_kernel import RuleKernel
    from .view import SynapseView


def rule_seed(base_seed: int, index: int) -> int:
    """Seed of the ``index``-th scheduled rule of a simulator or trainer seeded ``base_seed``."""
    return int(base_seed) * 7919 + 101 * (index + 1)


def rule_generators(
    base_seed: int, count: int, device: torch.device | str
) -> tuple[list[torch.Generator], list[np.random.Generator]]:
    """One seeded torch generator (on ``device``) and one numpy PCG64 generator per rule.

    The :class:`~neurowire.Simulator` and :class:`~neurowire.EProp` both draw their rules'
    random numbers from these, so the same seed gives the same rewiring in both.
    """
    seeds = [rule_seed(base_seed, i) for i in range(count)]
    torch_gens = [torch.Generator(device).manual_seed(s) for s in seeds]
    return torch_gens, [np.random.default_rng(s) for s in seeds]


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
        batch_size: trials per step (the simulator's batch, or the trials of the training
            batch that was just applied).
        learning_rate: the optimiser's learning rate when the rule runs inside a trainer
            (None in the simulator).

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
    rng: np.random.Generator | None = None
    batch_size: int = 1
    learning_rate: float | None = None

    def __post_init__(self) -> None:
        if self.rng is None:
            # derived from the torch generator's seed, so a context is never unseeded
            self.rng = np.random.default_rng(self.generator.initial_seed())

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
    removed, added and failed counts of every call. State that is not per synapse (DEEP R's
    sign of every *potential* pair, say) is returned by :meth:`state_dict` so that checkpoints
    keep it.

    Hooks, in the order a trainer calls them per batch: :meth:`adjust_gradient` (before the
    optimiser step), then :meth:`update` (after it). The simulator calls only :meth:`update`.
    """

    def setup(self, view: SynapseView, ctx: RuleContext) -> None:
        """Called once before the first step (e.g. to register store variables)."""

    def update(self, view: SynapseView, ctx: RuleContext) -> None:
        """Change the connectivity through ``view.remove``, ``view.add`` and ``view.grow``."""
        raise NotImplementedError

    def adjust_gradient(self, view: SynapseView, grad: Tensor, ctx: RuleContext) -> Tensor:
        """Called by a trainer before each optimiser step; return the gradient to apply.

        Args:
            grad: ``dE/dweight`` of the projection in slot layout ``[n_pre, capacity]`` (0 on
                padding), summed over the ``ctx.batch_size`` trials of the batch.

        The default returns ``grad`` unchanged (e.g. DEEP R adds its L1 term here).
        """
        return grad

    def atomic(self, view: SynapseView) -> bool:
        """Whether :meth:`update` needs no snapshot of ``view.store`` (asked for every view a
        call receives): True promises that the call changes stores only in one final step
        that either raises before it changes anything or completes, so a call that raises
        leaves every store as it was. The runner then skips its per-call copy of the store.
        Default False."""
        return False

    def native_kernel(self) -> RuleKernel | None:
        """The numba kernel with which the native engine may run this rule inside its blocks,
        tested equal to :meth:`update` (:class:`~neurowire.native.rule_kernel.RuleKernel`), or
        None. Fusion is decided per rule: a rule without one runs on the host between blocks
        while the others stay fused. Default None."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """The rule's own state beyond its hyperparameters (tensors, numbers, strings)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got keys {sorted(state)}")

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"
