"""Everything that runs over spike events: delivery and gradient accumulation.

One event format (:class:`~neurowire.events.SpikeEvents`) serves simulation and training. A
batch of spikes is a list of events ``(row, pre)``: ``pre`` the spiking neuron, ``row`` the row
of a ``[R, n]`` spike array. In the Simulator a step's spikes have ``R = B`` rows (one per batch
element); in e-prop a trial batch has the time-major rows ``row = t * B + b``. The flat index
``row * n + pre`` is the same event as the native engines' spike lists (``b * n + i``,
:mod:`neurowire.native`). Work on events costs ``spikes x fan-out``:

* :func:`deliver_slots` adds each event's outgoing weights at a store's slots
  (``I[row, post[pre, s]] += w[pre, s]``); the Simulator's ``rows`` strategy
  (:func:`deliver_rows`) and e-prop's input currents both use it;
* :func:`deliver_dense` does the same for a dense weight matrix (a CSR matrix of the events
  times the weights);
* :func:`accumulate_slots` / :func:`accumulate_dense` sum an adjoint at the postsynaptic targets
  of each event (``g[pre, post] += H[row, post]``), the fully postsynaptic e-prop product
  (alpha-adjoint variant, :mod:`neurowire.learning.factorized`).

The Simulator's other strategies compute the same ``w_sum[b, j] = sum_i z[b, i] W[i, j]`` without
events: :func:`deliver_matmul` (a dense matmul), :func:`deliver_all_slots` (every slot masked by
its row's spike) and :func:`deliver_csr` (a sparse CSR matrix). Inside compiled blocks,
:meth:`SpikeEvents.fixed` is the shape-static replacement of ``nonzero``: a fixed number of
events, padded, with an overflow flag (the simulator then repeats the block with a larger
budget). The numba engines run the same products in :mod:`neurowire.native.delivery`.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from . import gpu
from .events import SpikeEvents

#: elements (events x slots) handled per block by the slot-wise products
BLOCK_ELEMENTS = 1 << 21


def deliver_dense(out: Tensor, events: SpikeEvents, weight: Tensor, post_offset: int) -> None:
    """``out[:, off:off+n_post] += spikes @ weight`` for ``weight [n, n_post]``, ``out [R, N]``."""
    if events.count == 0:
        return
    cur = events.by_row(weight.dtype) @ weight
    n_post = weight.shape[1]
    if post_offset == 0 and n_post == out.shape[1]:
        out.add_(cur)
    else:
        out[:, post_offset : post_offset + n_post].add_(cur)


def deliver_slots(out: Tensor, events: SpikeEvents, post: Tensor, weight: Tensor) -> None:
    """``out[row, post[pre, s]] += weight[pre, s]`` for every event and slot ``s``.

    Shapes: ``out [R, N]``; ``post, weight [n, capacity]`` with ``post`` global column indices
    (padding slots must hold a valid index and a zero weight). Events with ``valid`` False
    (padding of :meth:`SpikeEvents.fixed`) deliver nothing.
    """
    if gpu.available(out):  # CUDA with triton: the Triton kernel (neurowire.gpu.delivery)
        from .gpu.delivery import deliver_slots as triton_deliver_slots

        return triton_deliver_slots(out, events, post, weight)
    cap = post.shape[1]
    if events.count == 0 or cap == 0:
        return
    n_cols = out.shape[1]
    flat = out.view(-1)
    step = max(1, BLOCK_ELEMENTS // cap)
    for start in range(0, events.count, step):
        row = events.row[start : start + step]
        pre = events.pre[start : start + step]
        idx = post[pre].add_(row[:, None] * n_cols)
        w = weight[pre]
        if events.valid is not None:
            w = w * events.valid[start : start + step, None]
        flat.index_add_(0, idx.view(-1), w.view(-1))


def accumulate_dense(events: SpikeEvents, adjoint: Tensor, post_offset: int, n_post: int) -> Tensor:
    """``g [n, n_post] = spikes^T @ adjoint[:, off:off+n_post]`` for ``adjoint [R, N]``."""
    cols = adjoint[:, post_offset : post_offset + n_post]
    if events.count == 0:
        return torch.zeros(events.n, n_post, dtype=adjoint.dtype, device=adjoint.device)
    return events.by_pre(adjoint.dtype) @ cols


def accumulate_slots(events: SpikeEvents, adjoint: Tensor, post: Tensor) -> Tensor:
    """``g [n, capacity]``: ``g[pre, s] = sum over events of adjoint[row, post[pre, s]]``.

    Padding slots get arbitrary values; mask them afterwards.
    """
    n, cap = post.shape
    g = torch.zeros(n, cap, dtype=adjoint.dtype, device=adjoint.device)
    if events.count == 0 or cap == 0:
        return g
    n_cols = adjoint.shape[1]
    flat = adjoint.reshape(-1)
    step = max(1, BLOCK_ELEMENTS // cap)
    for start in range(0, events.count, step):
        row = events.row[start : start + step]
        pre = events.pre[start : start + step]
        idx = post[pre].add_(row[:, None] * n_cols)
        g.index_add_(0, pre, flat[idx])
    return g


def deliver_matmul(z: Tensor, w_dense: Tensor) -> Tensor:
    """``z [B, n_pre] @ w_dense [n_pre, n_post]`` for a dense spike tensor (no events)."""
    return z.to(w_dense.dtype) @ w_dense


def deliver_all_slots(z: Tensor, ind: Tensor, w: Tensor, live: Tensor, n_post: int) -> Tensor:
    """Scatter all slots of a store, masked by the presynaptic spikes ``z [B, n_pre]``;
    shape-static, ``O(B n_pre capacity)``."""
    batch = z.shape[0]
    contrib = z.to(w.dtype)[:, :, None] * torch.where(live, w, 0)[None]
    out = torch.zeros(batch, n_post, dtype=w.dtype, device=w.device)
    return out.scatter_add_(1, ind.reshape(1, -1).expand(batch, -1), contrib.reshape(batch, -1))


def deliver_rows(
    events: SpikeEvents, ind: Tensor, w: Tensor, live: Tensor, batch: int, n_post: int
) -> Tensor:
    """``[B, n_post]``: the rows of the spiking neurons of a store, event-driven
    (:func:`deliver_slots` on the store's slots, dead slots carrying no weight)."""
    out = torch.zeros(batch, n_post, dtype=w.dtype, device=w.device)
    deliver_slots(out, events, ind, torch.where(live, w, 0))
    return out


def csc_matrix(
    col_indptr: Tensor, col_pre: Tensor, col_slot: Tensor, w: Tensor, n_pre: int
) -> Tensor:
    """Sparse CSR tensor of ``W^T`` (``[n_post, n_pre]``) from a store's column index."""
    values = w.reshape(-1)[col_slot]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            col_indptr,
            col_pre,
            values,
            size=(col_indptr.numel() - 1, n_pre),
            check_invariants=False,
        )


def deliver_csr(z: Tensor, w_t_csr: Tensor) -> Tensor:
    """``(W^T @ z^T)^T`` with a sparse CSR ``W^T``; eager only."""
    return (w_t_csr @ z.to(w_t_csr.dtype).T).T
