"""Spike events and everything that runs over them: delivery and gradient accumulation.

One event format serves simulation and training. A batch of spikes is a list of events
``(row, pre)``: ``pre`` the spiking neuron, ``row`` the row of a ``[R, n]`` spike array. In the
Simulator a step's spikes have ``R = B`` rows (one per batch element); in e-prop a trial batch
has the time-major rows ``row = t * B + b``. The flat index ``row * n + pre`` is the same event
as the native engines' spike lists (``b * n + i``, :mod:`neurowire.native`). Work on events
costs ``spikes x fan-out``:

* :func:`deliver_slots` adds each event's outgoing weights at a store's slots
  (``I[row, post[pre, s]] += w[pre, s]``); the Simulator's ``rows`` strategy
  (:func:`deliver_rows`) and e-prop's input currents both use it;
* :func:`deliver_dense` does the same for a dense weight matrix (a CSR matrix of the events
  times the weights);
* :func:`accumulate_slots` / :func:`accumulate_dense` sum an adjoint at the postsynaptic targets
  of each event (``g[pre, post] += H[row, post]``), the fully postsynaptic e-prop product
  (reference/algorithms.md §2, alpha-adjoint variant).

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

#: elements (events x slots) handled per block by the slot-wise products
BLOCK_ELEMENTS = 1 << 21


def _csr(crow: Tensor, col: Tensor, shape: tuple[int, int], dtype: torch.dtype) -> Tensor:
    values = torch.ones(col.numel(), dtype=dtype, device=col.device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


class SpikeEvents:
    """Events of a time-major spike array ``[n_rows, n]`` (``n_rows = T * B``).

    Shapes: ``pre [E]`` sorted by row, with either ``row [E]`` or the row pointers
    ``crow [n_rows + 1]`` (the other is derived on first use); CSR views likewise.

    Args:
        row: int64 row of each event (ascending), or None if ``crow`` is given.
        pre: int64 neuron of each event.
        n_rows: rows of the dense array.
        n: neurons (columns).
        crow: row pointers, or None if ``row`` is given.
    """

    def __init__(
        self,
        row: Tensor | None,
        pre: Tensor,
        n_rows: int,
        n: int,
        crow: Tensor | None = None,
        valid: Tensor | None = None,
        overflow: Tensor | None = None,
    ) -> None:
        if row is None and crow is None:
            raise ValueError("SpikeEvents needs row or crow")
        self._row, self.pre, self.n_rows, self.n = row, pre, n_rows, n
        self.valid, self.overflow = valid, overflow
        self._crow = crow
        self._by_row: dict[torch.dtype, Tensor] = {}
        self._by_pre: dict[torch.dtype, Tensor] = {}
        self._by_pre_index: tuple[Tensor, Tensor] | None = None

    @classmethod
    def fixed(cls, z: Tensor, budget: int) -> SpikeEvents:
        """Up to ``budget`` spikes of ``z [R, n]`` (bool) in row-major order, shape-static (the
        replacement of ``nonzero`` inside compiled blocks): padding events have ``valid`` False
        (row 0, neuron 0); ``overflow`` (0-d bool) is True if more than ``budget`` occurred."""
        r, n = z.shape
        flat = z.reshape(-1)
        total = flat.numel()
        idx = torch.nonzero_static(flat, size=budget, fill_value=total).squeeze(1)
        valid = idx < total
        idx = torch.where(valid, idx, 0)
        row = torch.div(idx, n, rounding_mode="floor")
        return cls(row, idx - row * n, r, n, valid=valid, overflow=flat.sum() > budget)

    @classmethod
    def from_dense(cls, spikes: Tensor, row_offset: int = 0, n_rows: int | None = None):
        """Events of ``spikes [R, n]`` (bool or 0/1); row indices shifted by ``row_offset``."""
        r, n = spikes.shape
        flat = spikes.reshape(-1).nonzero().squeeze(1)
        row = torch.div(flat, n, rounding_mode="floor") + row_offset
        return cls(row, flat - (row - row_offset) * n, r if n_rows is None else n_rows, n)

    def select(self, start: int, stop: int) -> SpikeEvents:
        """Events of neurons ``start <= pre < stop``, renumbered from 0."""
        if start == 0 and stop == self.n:
            return self
        keep = (self.pre >= start) & (self.pre < stop)
        return SpikeEvents(self.row[keep], self.pre[keep] - start, self.n_rows, stop - start)

    def delayed(self, rows: int) -> SpikeEvents:
        """The same spikes ``rows`` rows later (one step is ``B`` rows); later ones are dropped."""
        crow = self.row_pointers()
        kept = int(crow[self.n_rows - rows]) if rows < self.n_rows else 0
        shifted = torch.zeros_like(crow)
        shifted[rows:] = crow[: self.n_rows + 1 - rows]
        return SpikeEvents(None, self.pre[:kept], self.n_rows, self.n, crow=shifted)

    def counts(self) -> Tensor:
        """int64 ``[n]``: events per neuron."""
        return torch.bincount(self.pre, minlength=self.n)

    @property
    def count(self) -> int:
        return self.pre.numel()

    @property
    def row(self) -> Tensor:
        """int64 ``[E]``: the row of each event."""
        if self._row is None:
            rows = torch.arange(self.n_rows, device=self.pre.device)
            self._row = torch.repeat_interleave(rows, self._crow.diff())
        return self._row

    def row_pointers(self) -> Tensor:
        """``crow [n_rows + 1]``: events of row ``r`` are ``crow[r]:crow[r + 1]``."""
        if self._crow is None:
            self._crow = torch.zeros(self.n_rows + 1, dtype=torch.int64, device=self.pre.device)
            torch.cumsum(torch.bincount(self._row, minlength=self.n_rows), 0, out=self._crow[1:])
        return self._crow

    def pre_pointers(self) -> tuple[Tensor, Tensor]:
        """``(crow [n + 1], rows [E])``: events grouped by neuron, rows ascending within."""
        if self._by_pre_index is None:
            order = torch.argsort(self.pre, stable=True)
            crow = torch.zeros(self.n + 1, dtype=torch.int64, device=self.pre.device)
            torch.cumsum(torch.bincount(self.pre, minlength=self.n), 0, out=crow[1:])
            self._by_pre_index = crow, self.row[order]
        return self._by_pre_index

    def by_row(self, dtype: torch.dtype) -> Tensor:
        """CSR ``[n_rows, n]`` of ones (the spike array itself)."""
        if dtype not in self._by_row:
            shape = (self.n_rows, self.n)
            self._by_row[dtype] = _csr(self.row_pointers(), self.pre, shape, dtype)
        return self._by_row[dtype]

    def by_pre(self, dtype: torch.dtype) -> Tensor:
        """CSR ``[n, n_rows]`` of ones (the transposed spike array)."""
        if dtype not in self._by_pre:
            crow, rows = self.pre_pointers()
            self._by_pre[dtype] = _csr(crow, rows, (self.n, self.n_rows), dtype)
        return self._by_pre[dtype]


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
