"""Spike delivery through sparse (ragged) connectivity, and event lists.

Every strategy computes the same quantity, ``w_sum[b, j] = sum_i z[b, i] * W[i, j]``, for a
store with rows ``ind [n_pre, capacity]``, weights ``w [n_pre, capacity]`` and ``live`` mask:

* ``dense``: one matmul with the dense weight matrix (built from the store, cached by version);
* ``slots``: scatter every slot masked by its row's spike (shape-static, ``O(B n_pre capacity)``);
* ``rows``: event-driven, gathers only the rows of spiking neurons from a fixed-size event list
  (shape-static, ``O(budget * capacity)``);
* ``csr``: sparse CSR (column-major) matrix product (eager only).

:func:`event_list` is the shape-static replacement of ``nonzero``: it returns a fixed number of
flat spike indices padded with an out-of-range value, plus an overflow flag when more spikes
occurred than the budget holds (the simulator then repeats the block with a larger budget).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
from torch import Tensor


class Events(NamedTuple):
    """Fixed-size spike list of a ``[B, n]`` spike tensor.

    Shapes: ``batch [S]``, ``neuron [S]`` (0 where invalid), ``valid [S]`` bool;
    ``overflow`` is a 0-d bool tensor, True if more than ``S`` spikes occurred.
    """

    batch: Tensor
    neuron: Tensor
    valid: Tensor
    overflow: Tensor


def event_list(z: Tensor, budget: int) -> Events:
    """Up to ``budget`` spikes of ``z [B, n]`` (bool) in row-major order, shape-static."""
    n = z.shape[-1]
    flat = z.reshape(-1)
    total = flat.numel()
    idx = torch.nonzero_static(flat, size=budget, fill_value=total).squeeze(1)
    valid = idx < total
    idx = torch.where(valid, idx, 0)
    overflow = flat.sum() > budget
    return Events(idx // n, idx % n, valid, overflow)


def deliver_dense(z: Tensor, w_dense: Tensor) -> Tensor:
    """``z [B, n_pre] @ w_dense [n_pre, n_post]``."""
    return z.to(w_dense.dtype) @ w_dense


def deliver_slots(z: Tensor, ind: Tensor, w: Tensor, live: Tensor, n_post: int) -> Tensor:
    """Scatter all slots, masked by presynaptic spikes; shape-static."""
    batch = z.shape[0]
    contrib = z.to(w.dtype)[:, :, None] * torch.where(live, w, 0)[None]
    out = torch.zeros(batch, n_post, dtype=w.dtype, device=w.device)
    return out.scatter_add_(1, ind.reshape(1, -1).expand(batch, -1), contrib.reshape(batch, -1))


def deliver_rows(
    events: Events, ind: Tensor, w: Tensor, live: Tensor, batch: int, n_post: int
) -> Tensor:
    """Gather the rows of the spiking neurons in ``events`` and scatter-add them; shape-static."""
    rows_w = torch.where(live[events.neuron] & events.valid[:, None], w[events.neuron], 0)
    target = events.batch[:, None] * n_post + ind[events.neuron]
    out = torch.zeros(batch * n_post, dtype=w.dtype, device=w.device)
    out.index_add_(0, target.reshape(-1), rows_w.reshape(-1))
    return out.view(batch, n_post)


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
