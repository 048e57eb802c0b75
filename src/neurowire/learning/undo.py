"""Undo one training batch: everything a batch changes, saved before it, put back if it fails.

:meth:`~neurowire.EProp.train_step` takes a :class:`BatchUndo` before a batch of a trainer
with structural rules (only rules can fail once the gradients are computed). If anything
raises before the batch completes (a rule, the optimiser, Ctrl-C), the trainer is put back
exactly as it was: weights, Adam moments and step counter, connectivity and every per-synapse
variable, the rules' random generators, the rewiring log, the batch counters and the firing
rates the rules read. The batch can then be retried, or training stopped, from a consistent
state.

Cost: one copy of every trained parameter per batch (for the sparse stores, of their slots:
at 1 % density a small fraction of the dense weights).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..store import RaggedSynapses, StoreSnapshot

if TYPE_CHECKING:
    from .protocols import Stateful

__all__ = ["BatchUndo"]


class BatchUndo:
    """The state of ``trainer`` that one batch may change, copied now (:meth:`restore`)."""

    def __init__(self, trainer: Stateful) -> None:
        self.trainer = trainer
        self.stores: list[StoreSnapshot] = []
        self.tensors: list[tuple[torch.Tensor, torch.Tensor]] = []
        for param in trainer._parameters().values():
            if isinstance(param, RaggedSynapses):
                self.stores.append(StoreSnapshot(param))
            else:
                self.tensors.append((param, param.detach().clone()))
        self.optimizer = trainer.optimizer.state_dict()
        runner = trainer.rule_runner
        self.generators = [g.get_state() for g in runner.generators]
        self.rngs = [r.bit_generator.state for r in runner.rngs]
        self.log_mark = trainer.rewiring_log.mark()
        self.counters = (
            trainer.step_count,
            trainer._trained_ms,
            trainer._batch_trials,
            trainer._rates,
        )

    def restore(self) -> None:
        """Put every saved part back in place (the same tensor objects)."""
        t = self.trainer
        for snapshot in self.stores:
            snapshot.restore()
        for param, saved in self.tensors:
            with torch.no_grad():
                param.copy_(saved)
        t.optimizer.load_state_dict(self.optimizer)
        t.optimizer.state = {
            k: {n: v.to(t.device) for n, v in st.items()} for k, st in t.optimizer.state.items()
        }
        runner = t.rule_runner
        for g, st in zip(runner.generators, self.generators, strict=True):
            g.set_state(st)
        for r, st in zip(runner.rngs, self.rngs, strict=True):
            r.bit_generator.state = st
        t.rewiring_log.rollback(self.log_mark)
        t.step_count, t._trained_ms, t._batch_trials, t._rates = self.counters
