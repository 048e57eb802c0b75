"""The two implementations of the sparse linear products: numba kernels and PyTorch ops.

Both compute, over the live slots of a store (rows = input features ``i``, ``ind[i, s]`` the
output of slot ``s``), the same three products for an input ``x [R, n_in]``:

* forward ``y[r, ind[i, s]] += x[r, i] * w[i, s]``;
* weight gradient ``g[i, s] = sum_r x[r, i] * gy[r, ind[i, s]]`` (0 on padding slots);
* input gradient ``gx[r, i] = sum_s gy[r, ind[i, s]] * w[i, s]``.

Spike input (every nonzero entry is 1) travels as :class:`Events`, the active features of each
row; any other input is read as values. :class:`NumbaBackend` (CPU, float32/float64) runs the
kernels of :mod:`neurowire.native.linear`; :class:`TorchBackend` runs anywhere, through the
delivery products of :mod:`neurowire.propagate` and sparse matrix products. A backend is chosen
once per call by :func:`resolve_backend`.
"""

from __future__ import annotations

import functools
import importlib.util
import warnings
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from .. import propagate
from ..events import SpikeEvents
from ..store import RaggedSynapses

#: weight-gradient tasks per numba thread (feature blocks; more than one per thread balances
#: features with many events against features with few)
BLOCKS_PER_THREAD = 4
#: below this many multiply-adds (or input entries scanned) a call runs on one thread: starting
#: the thread pool costs more than it saves for the small per-step calls of a time loop, and on
#: a busy machine waiting for the pool's threads can take milliseconds
SERIAL_WORK = 1 << 20
#: bytes of the output gradient the weight-gradient kernels keep in cache at a time
CHUNK_BYTES = 1 << 22


class Events(NamedTuple):
    """Spike input as events: the active features of each row, ascending within a row.

    Shapes: ``crow`` int64 ``[R + 1]`` (row ``r``'s events are ``crow[r]:crow[r + 1]``),
    ``feat`` ``[E]`` int16 when ``n_in <= 32767`` else int32.
    """

    crow: Tensor
    feat: Tensor


def feature_dtype(n_in: int) -> torch.dtype:
    """The smallest integer dtype that holds a feature index below ``n_in``."""
    return torch.int16 if n_in <= torch.iinfo(torch.int16).max else torch.int32


class NumbaBackend:
    """numba kernels on CPU tensors of float32 or float64 (:mod:`neurowire.native.linear`)."""

    name = "numba"

    def __init__(self) -> None:
        import numba

        from ..native import delivery, linear

        self._numba, self._delivery, self._k = numba, delivery, linear

    @staticmethod
    def unsupported(weight: Tensor) -> str | None:
        """Why this backend cannot run ``weight``, or None if it can."""
        if not _numba_installed():
            return "numba is not installed"
        if weight.device.type != "cpu":
            return f"it runs on the CPU, the weight is on {weight.device}"
        if weight.dtype not in (torch.float32, torch.float64):
            return f"it takes float32 or float64, the weight is {weight.dtype}"
        return None

    def _threads(self, work: int) -> None:
        """One numba thread for a call of less than :data:`SERIAL_WORK` multiply-adds, else as
        many as torch uses (``torch.set_num_threads`` limits both)."""
        limit = self._numba.config.NUMBA_NUM_THREADS
        threads = 1 if work < SERIAL_WORK else min(torch.get_num_threads(), limit)
        self._numba.set_num_threads(max(1, threads))

    def events(self, x: Tensor) -> Events | None:
        """The events of ``x [R, n_in]`` if it holds spikes (nonzero entries all 1), else None."""
        self._threads(x.numel())
        arr = _np(x.view(torch.uint8) if x.dtype == torch.bool else x)
        crow = torch.zeros(x.shape[0] + 1, dtype=torch.int64)
        counts = crow.numpy()
        if self._k.count_row_events(arr, counts[1:]):
            return None
        np.cumsum(counts, out=counts)
        feat = torch.empty(int(counts[-1]), dtype=feature_dtype(x.shape[1]))
        self._k.fill_row_events(arr, crow.numpy(), feat.numpy())
        return Events(crow, feat)

    def forward_events(self, ev: Events, syn: RaggedSynapses, weight: Tensor, out: Tensor) -> None:
        """``out [R, n_out] +=`` the spikes' weights."""
        self._threads(ev.feat.numel() * syn.nnz // syn.n_pre)
        self._delivery.deliver_event_rows(
            ev.crow.numpy(), ev.feat.numpy(), *_structure(syn), _np(weight), out.numpy()
        )

    def forward_values(self, x: Tensor, syn: RaggedSynapses, weight: Tensor, out: Tensor) -> None:
        """``out [R, n_out] += x W`` for real input ``x [R, n_in]``."""
        self._threads(x.shape[0] * syn.nnz)
        self._k.deliver_value_rows(_np(x), *_structure(syn), _np(weight), out.numpy())

    def grad_weight_events(self, ev: Events, grad_out: Tensor, syn: RaggedSynapses) -> Tensor:
        """``[n_in, capacity]``: the weight gradient of spike input."""
        self._threads(ev.feat.numel() * syn.nnz // syn.n_pre)
        g = torch.zeros(syn.n_pre, syn.capacity, dtype=grad_out.dtype)
        self._k.accumulate_feature_blocks(
            ev.crow.numpy(),
            ev.feat.numpy(),
            _np(grad_out),
            *_structure(syn),
            self._bounds(syn.n_pre),
            _chunk(grad_out),
            g.numpy(),
        )
        return g

    def grad_weight_values(self, x: Tensor, grad_out: Tensor, syn: RaggedSynapses) -> Tensor:
        """``[n_in, capacity]``: the weight gradient of real input ``x [R, n_in]``."""
        self._threads(x.shape[0] * syn.nnz)
        g = torch.zeros(syn.n_pre, syn.capacity, dtype=grad_out.dtype)
        self._k.accumulate_value_blocks(
            _np(x),
            _np(grad_out),
            *_structure(syn),
            self._bounds(syn.n_pre),
            _chunk(grad_out),
            g.numpy(),
        )
        return g

    def grad_input(self, grad_out: Tensor, syn: RaggedSynapses, weight: Tensor) -> Tensor:
        """``[R, n_in]``: the input gradient."""
        self._threads(grad_out.shape[0] * syn.nnz)
        gx = torch.empty(grad_out.shape[0], syn.n_pre, dtype=grad_out.dtype)
        self._k.gather_rows(_np(grad_out), *_structure(syn), _np(weight), gx.numpy())
        return gx

    def _bounds(self, n_in: int) -> np.ndarray:
        """Feature-block bounds of the weight-gradient kernels, ``[blocks + 1]``."""
        blocks = min(n_in, BLOCKS_PER_THREAD * self._numba.get_num_threads())
        return np.linspace(0, n_in, blocks + 1).astype(np.int64)


class TorchBackend:
    """PyTorch ops on any device and floating dtype (event products of
    :mod:`neurowire.propagate`, sparse CSR matrix products for real input and gradients)."""

    name = "torch"

    @staticmethod
    def unsupported(weight: Tensor) -> str | None:
        """Always None: PyTorch ops run every device and dtype the layer takes."""
        return None

    def events(self, x: Tensor) -> Events | None:
        """The events of ``x [R, n_in]`` if it holds spikes (nonzero entries all 1), else None."""
        if x.dtype != torch.bool and bool(((x != 0) & (x != 1)).any()):
            return None
        rows, n_in = x.shape
        flat = x.reshape(-1).nonzero().squeeze(1)
        row = torch.div(flat, n_in, rounding_mode="floor")
        crow = torch.zeros(rows + 1, dtype=torch.int64, device=x.device)
        torch.cumsum(torch.bincount(row, minlength=rows), 0, out=crow[1:])
        return Events(crow, (flat - row * n_in).to(feature_dtype(n_in)))

    def forward_events(self, ev: Events, syn: RaggedSynapses, weight: Tensor, out: Tensor) -> None:
        """``out [R, n_out] +=`` the spikes' weights."""
        ind, w = _live_slots(syn, weight)
        propagate.deliver_slots(out, _spike_events(ev, syn.n_pre), ind, w)

    def forward_values(self, x: Tensor, syn: RaggedSynapses, weight: Tensor, out: Tensor) -> None:
        """``out [R, n_out] += x W`` for real input ``x [R, n_in]``."""
        cols = syn.columns()
        w_t = propagate.csc_matrix(cols.indptr, cols.pre, cols.slot, weight, syn.n_pre)
        out.add_(propagate.deliver_csr(x, w_t))

    def grad_weight_events(self, ev: Events, grad_out: Tensor, syn: RaggedSynapses) -> Tensor:
        """``[n_in, capacity]``: the weight gradient of spike input."""
        ind, _ = _live_slots(syn)
        g = propagate.accumulate_slots(_spike_events(ev, syn.n_pre), grad_out, ind)
        return g.masked_fill_(~syn.live, 0)

    def grad_weight_values(self, x: Tensor, grad_out: Tensor, syn: RaggedSynapses) -> Tensor:
        """``[n_in, capacity]``: the weight gradient of real input ``x [R, n_in]`` (``x^T gy``
        sampled at the synapses)."""
        indptr, indices, slot = syn.csr()
        zeros = torch.zeros(slot.numel(), dtype=x.dtype, device=x.device)
        pattern = _csr(indptr, indices, zeros, (syn.n_pre, syn.n_post))
        sampled = torch.sparse.sampled_addmm(pattern, x.T, grad_out, beta=0.0)
        g = torch.zeros(syn.n_pre, syn.capacity, dtype=grad_out.dtype, device=grad_out.device)
        g.view(-1)[slot] = sampled.values()
        return g

    def grad_input(self, grad_out: Tensor, syn: RaggedSynapses, weight: Tensor) -> Tensor:
        """``[R, n_in]``: the input gradient, ``(W gy^T)^T`` with ``W`` a CSR matrix."""
        indptr, indices, slot = syn.csr()
        w = _csr(indptr, indices, weight.reshape(-1)[slot], (syn.n_pre, syn.n_post))
        return (w @ grad_out.T).T


def _csr(indptr: Tensor, indices: Tensor, values: Tensor, size: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(indptr, indices, values, size, check_invariants=False)


def _live_slots(syn: RaggedSynapses, weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``ind`` with padding slots pointing at column 0, and ``weight`` 0 on padding slots (the
    slot layout :func:`neurowire.propagate.deliver_slots` takes)."""
    live = syn.live
    ind = torch.where(live, syn.ind, 0)
    return ind, (None if weight is None else torch.where(live, weight, 0))


def _spike_events(ev: Events, n_in: int) -> SpikeEvents:
    return SpikeEvents(None, ev.feat.long(), ev.crow.numel() - 1, n_in, crow=ev.crow)


def _structure(syn: RaggedSynapses) -> tuple[np.ndarray, np.ndarray]:
    """numpy views of the store's ``ind`` and ``row_length``."""
    return syn.ind.numpy(), syn.row_length.numpy()


@functools.cache
def _numba_installed() -> bool:
    return importlib.util.find_spec("numba") is not None


def _chunk(grad_out: Tensor) -> int:
    """Rows of ``grad_out [R, n_out]`` in :data:`CHUNK_BYTES`."""
    return max(1, CHUNK_BYTES // max(1, grad_out.shape[1] * grad_out.element_size()))


def _np(t: Tensor) -> np.ndarray:
    return t.contiguous().numpy()


BACKENDS = {"numba": NumbaBackend, "torch": TorchBackend}
_INSTANCES: dict[str, NumbaBackend | TorchBackend] = {}


def resolve_backend(name: str | None, weight: Tensor) -> NumbaBackend | TorchBackend:
    """The backend named ``name`` (``"numba"``, ``"torch"``), or with None the numba kernels
    where they run (CPU, float32/float64, numba installed) and PyTorch ops elsewhere."""
    if name is None:
        name = "numba" if NumbaBackend.unsupported(weight) is None else "torch"
    elif name not in BACKENDS:
        raise ValueError(
            f"sparse_linear: backend must be one of {sorted(BACKENDS)} or None, got {name!r}"
        )
    reason = BACKENDS[name].unsupported(weight)
    if reason is not None:
        raise ValueError(f"sparse_linear: the {name!r} backend cannot run this layer: {reason}")
    if name not in _INSTANCES:
        _INSTANCES[name] = BACKENDS[name]()
    return _INSTANCES[name]
