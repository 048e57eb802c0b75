"""Spike events and the two products that run over them: delivery and gradient accumulation.

A batch of spike trains is a list of events ``(row, pre)``: ``row = t * B + b`` indexes a
time-major ``[T * B, n]`` array, ``pre`` the spiking neuron. Work on events costs
``spikes x fan-out``:

* :func:`deliver` adds each event's outgoing weights to the postsynaptic rows
  (``I[row, post] += w[pre, post]``);
* :func:`accumulate` sums an adjoint at the postsynaptic targets of each event
  (``g[pre, post] += H[row, post]``), the fully postsynaptic e-prop product
  (reference/algorithms.md §2, alpha-adjoint variant).

Dense weight matrices use a CSR matrix of the events (a sparse-dense matmul); sparse stores
gather at their stored slots only, in blocks so that index buffers stay bounded.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

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
        self, row: Tensor | None, pre: Tensor, n_rows: int, n: int, crow: Tensor | None = None
    ) -> None:
        if row is None and crow is None:
            raise ValueError("SpikeEvents needs row or crow")
        self._row, self.pre, self.n_rows, self.n = row, pre, n_rows, n
        self._crow = crow
        self._by_row: dict[torch.dtype, Tensor] = {}
        self._by_pre: dict[torch.dtype, Tensor] = {}
        self._by_pre_index: tuple[Tensor, Tensor] | None = None

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
    (padding slots must hold a valid index and a zero weight).
    """
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
        flat.index_add_(0, idx.view(-1), weight[pre].view(-1))


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
