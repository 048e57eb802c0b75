"""One batch's e-prop gradients: the input check, the thread scope, the chunking of trials and
the per-chunk runs whose sums make a :class:`BatchOutput`.

:class:`~neurowire.EProp` runs these functions on itself for every batch (its forward-only
helpers in :mod:`.inference` share the thread scope and the chunking); they read the trainer's
configuration (:class:`~.protocols.GradientHost`) and change nothing but its ``timers``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from . import distributed as _dist
from .factorized import ChunkResult, factorized_chunk
from .forward import hot_loop
from .losses import readout_value
from .online import online_chunk
from .tables import gather_weights

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from .protocols import GradientHost

__all__ = [
    "CPU_CHUNK_BUDGET",
    "NEURON_CHUNK_BUDGET",
    "SMALL_WORK",
    "BatchOutput",
    "batch_gradients",
    "chunk_size",
    "chunks",
    "prepare",
    "thread_scope",
]

#: default working-memory budget per chunk of trials [bytes] on the CPU
CPU_CHUNK_BUDGET = 1 << 30

#: the budget on the CPU for the factorised method without a regulariser [bytes]: a split batch
#: then costs next to nothing more, and the per-neuron arrays a chunk keeps (``[T, B, N]``)
#: are most of a sparse network's memory
NEURON_CHUNK_BUDGET = 1 << 28

#: below this many elements per [T, B, N] tensor, a whole batch runs with ``step_threads``
SMALL_WORK = 1 << 20


@dataclass(eq=False)
class BatchOutput:
    """Result of one batch: gradients (sparse projections in slot layout ``[n_pre, capacity]``),
    the summed loss ``E``, readout summaries ``[B, K]``, spike counts ``[N]``."""

    grads: dict[str, Tensor]
    loss: float
    scores: Tensor
    spikes: Tensor
    trials: int
    steps: int
    #: input spike counts ``[n_in]`` (int64) of this process's trials
    inputs: Tensor | None = None


# ---------------------------------------------------------------------- inputs and threads
def prepare(trainer: GradientHost, spikes: Any, labels: Any) -> tuple[Tensor, Tensor]:
    """Checked input spikes ``x [B, T, n_in]`` (bool, on the trainer's device) and the loss's
    targets (int labels ``[B]`` or float targets ``[B, T, n_out]``)."""
    x = trainer._check_spikes(spikes)
    batch, steps, _ = x.shape
    if labels is None:
        raise ValueError("labels (or targets) are required")
    n = trainer.network
    tgt = trainer.loss.prepare(labels, batch, steps, n.n_out, trainer.device, n.dtype)
    return x, tgt


def thread_scope(trainer: GradientHost, spikes: Any) -> AbstractContextManager[None]:
    """Thread scope of a batch ``spikes [B, T, n_in]``: problems under :data:`SMALL_WORK`
    elements per ``[T, B, N]`` chunk tensor run entirely with ``step_threads``."""
    shape = getattr(spikes, "shape", ())
    batch, steps = (shape[0], shape[1]) if len(shape) == 3 else (1, 1)
    size = min(batch, trainer.chunk_size or batch) * steps * trainer.network.hidden.n
    return hot_loop(trainer.network.step_threads if size < SMALL_WORK else None)


# ---------------------------------------------------------------------- chunking
def chunk_size(trainer: GradientHost, steps: int) -> int:
    """Trials simulated at once for trials of ``steps`` steps: the trainer's ``chunk_size``,
    or as many as a memory budget holds (:func:`_auto_chunk`)."""
    return trainer.chunk_size or _auto_chunk(trainer, steps)


def chunks(batch: int, size: int) -> list[slice]:
    """``batch`` trials as consecutive slices of at most ``size`` trials."""
    return [slice(s, min(batch, s + size)) for s in range(0, batch, size)]


def _auto_chunk(trainer: GradientHost, steps: int) -> int:
    """Trials whose working memory fits the budget: half the free memory on a GPU,
    :data:`NEURON_CHUNK_BUDGET` for the factorised method without a regulariser on the CPU,
    else :data:`CPU_CHUNK_BUDGET` [bytes]; at least 1."""
    n = trainer.network
    item = torch.finfo(n.dtype).bits // 8
    if trainer.method == "online":
        synapses = sum(
            p.n_pre * (p.projection.synapses.capacity if p.sparse else p.n_post) for p in n.plastic
        )
        per_trial = 5 * synapses * item
    else:
        per_trial = trainer._engine.trial_bytes(n, steps)
    if trainer.device.type == "cuda":
        budget = torch.cuda.mem_get_info(trainer.device)[0] // 2
    elif trainer.method == "factorized" and trainer.regularization is None:
        budget = NEURON_CHUNK_BUDGET  # with a regulariser, a split costs Lambda = 1's pass
    else:
        budget = CPU_CHUNK_BUDGET
    return max(1, budget // max(per_trial, 1))


# ---------------------------------------------------------------------- gradients
def batch_gradients(trainer: GradientHost, x: Tensor, tgt: Tensor) -> BatchOutput:
    """Gradients of the global batch ``x [B, T, n_in]``: this rank's shard in chunks, the
    chunks' sums added, then (several ranks) summed over the ranks, then the regulariser's
    unit part scaled by ``R`` from the whole batch's spike counts. The regulariser is folded
    into the backward pass when each rank's shard is one chunk."""
    n = trainer.network
    loss, reg, world_size = trainer.loss, trainer.regularization, trainer.world_size
    batch, steps, _ = x.shape
    w = gather_weights(n, trainer.feedback_matrix)
    own = _dist.shard(batch, trainer.rank, world_size)
    size = chunk_size(trainer, steps)
    parts = [
        slice(own.start + c.start, own.start + c.stop) for c in chunks(own.stop - own.start, size)
    ]
    # the regulariser folds into the backward pass when every rank's shard is one chunk:
    # the whole batch's spike counts are then summed between forward and backward passes
    fold = -(-batch // world_size) <= size
    whole_batch = None
    if world_size > 1 and fold:

        def whole_batch(counts: Tensor) -> tuple[Tensor, int]:
            return _dist.sum_identical([counts])[0], batch

    total: ChunkResult | None = None
    scores = []
    for sl in parts:
        xs, ts = x[sl], loss.select(tgt, sl)
        if trainer.method == "online":
            res = online_chunk(n, w, xs, ts, loss, reg)
        else:
            res = factorized_chunk(
                n, w, xs, ts, loss, reg, fold, trainer._engine, trainer.timers, whole_batch
            )
        scores.append(readout_value(res.y, trainer.readout))
        res.y = None
        total = res if total is None else _add(total, res)
    score = torch.cat(scores)
    if world_size > 1:
        task, unit = sorted(total.task), sorted(total.unit)
        summed = _dist.sum_identical(
            [total.task[k] for k in task]
            + [total.unit[k] for k in unit]
            + [total.spikes, total.loss, _dist.spread_rows(score, own, batch)]
        )
        total.task = dict(zip(task, summed[: len(task)], strict=True))
        total.unit = dict(zip(unit, summed[len(task) : len(task) + len(unit)], strict=True))
        total.spikes, total.loss, score = summed[-3:]
    grads = total.task
    if total.unit:
        r = reg.factor(total.spikes, batch, steps, trainer.net.dt)
        for pw in w.inputs + w.recurrent:
            name, spec = pw.spec.name, pw.spec
            if pw.dense is not None:
                r_post = r[spec.post_offset : spec.post_offset + spec.n_post]
                grads[name] = grads[name] + total.unit[name] * r_post
            else:
                grads[name] = grads[name] + total.unit[name] * r[pw.post]
    return BatchOutput(grads, float(total.loss), score, total.spikes, batch, steps, total.inputs)


def _add(a: ChunkResult, b: ChunkResult) -> ChunkResult:
    """``a + b`` term by term, into ``a``."""
    for key, val in b.task.items():
        a.task[key] = a.task[key] + val
    for key, val in b.unit.items():
        a.unit[key] = a.unit[key] + val
    a.spikes = a.spikes + b.spikes
    a.inputs = a.inputs + b.inputs
    a.loss = a.loss + b.loss
    return a
