"""Spike events: the one event format of delivery, plasticity and e-prop's products.

A batch of spikes is a list of events ``(row, pre)``: ``pre`` the spiking neuron, ``row`` the row
of a ``[R, n]`` spike array (``R = B`` for one Simulator step, ``R = T * B`` time-major in
e-prop). A leaf module: the kernels that consume events import it without the modules above them.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor


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
