"""A trainer's state as tensors and plain data: what :meth:`EProp.state_dict
<neurowire.EProp.state_dict>` returns and :meth:`EProp.load_state_dict
<neurowire.EProp.load_state_dict>` restores (checkpoints, L1 selection, rank checks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .protocols import Stateful

__all__ = ["load_trainer_state", "trainer_state"]


def trainer_state(trainer: Stateful) -> dict[str, Any]:
    """Every projection (stores with their connectivity and Adam moments, dense weights), the
    readout bias, the optimiser, the random feedback, every rule's own state and random
    generators, the rewiring log and the batch counters of ``trainer``."""
    projections = {}
    for proj in trainer.net.projections.values():
        if proj.sparse:
            projections[proj.name] = {"store": proj.synapses.state_dict()}
        else:
            projections[proj.name] = {"weight": proj.weight.detach().cpu().clone()}
    return {
        "projections": projections,
        "bias": trainer.network.bias.detach().cpu().clone(),
        "optimizer": trainer.optimizer.state_dict(),
        "feedback": None if trainer.feedback_matrix is None else trainer.feedback_matrix.cpu(),
        **trainer.rule_runner.state_dict(),
        "rewiring_log": trainer.rewiring_log.state_dict(),
        "step_count": trainer.step_count,
        "trained_ms": trainer._trained_ms,
    }


def load_trainer_state(trainer: Stateful, state: Mapping[str, Any]) -> None:
    """Restore :func:`trainer_state` into ``trainer``, built on the same network.

    Raises ``ValueError`` naming the first mismatch (projection names, shapes, rules).
    """
    saved = state["projections"]
    if set(saved) != set(trainer.net.projections):
        raise ValueError(
            f"checkpoint projections {sorted(saved)} differ from the network's "
            f"{sorted(trainer.net.projections)}"
        )
    if set(state["rules"]) != set(trainer.rules):
        raise ValueError(
            f"checkpoint rewires {sorted(state['rules'])}, this trainer {sorted(trainer.rules)}"
        )
    for name, proj in trainer.net.projections.items():
        entry = saved[name]
        if proj.sparse != ("store" in entry):
            raise ValueError(f"projection {name!r} is sparse in one and dense in the other")
        if proj.sparse:
            proj.synapses.load_state_dict(entry["store"])
        else:
            w = torch.as_tensor(entry["weight"])
            if w.shape != proj.weight.shape:
                raise ValueError(
                    f"projection {name!r}: saved weight {tuple(w.shape)}, network "
                    f"{tuple(proj.weight.shape)}"
                )
            proj.weight.copy_(w)
    trainer.network.bias.copy_(torch.as_tensor(state["bias"]))
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.optimizer.state = {
        k: {n: t.to(trainer.device) for n, t in st.items()}
        for k, st in trainer.optimizer.state.items()
    }
    if state["feedback"] is not None:
        trainer.feedback_matrix = torch.as_tensor(state["feedback"]).to(trainer.device)
    for name, rule in trainer.rules.items():
        rule.load_state_dict(state["rules"][name])
    trainer.rule_runner.load_generators(state)
    trainer.rewiring_log.load_state_dict(state["rewiring_log"])
    trainer.step_count = int(state["step_count"])
    trainer._trained_ms = float(state["trained_ms"])
