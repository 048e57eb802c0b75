"""Derived views of a :class:`~neurowire.store.core.RaggedSynapses` and their caches.

Every view (live mask, COO, CSR, column index, dense matrix) is rebuilt from ``ind`` and
``row_length`` and cached under the store's :attr:`~neurowire.RaggedSynapses.version` (value
views also under :attr:`~neurowire.RaggedSynapses.values_version`). A cached view records
torch's in-place version counters of its tensors, so a write into a shared view is caught
(:func:`cached`) instead of silently feeding later readers. The functions here are the store's
methods of the same names.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor

from ..errors import StoreError
from .arguments import check_finite, check_pairs

if TYPE_CHECKING:
    from collections.abc import Callable

    from .core import RaggedSynapses

_CONTAINS_CHUNK = 1 << 22  # elements of the [k, capacity] comparison done at once


class CSR(NamedTuple):
    """Row-major compressed view of the live synapses.

    Shapes: ``indptr [n_pre + 1]``, ``indices [nnz]`` (postsynaptic ids), ``slot [nnz]`` (flat
    slot index ``pre * capacity + j`` into the store's ``[n_pre, capacity]`` arrays).
    """

    indptr: Tensor
    indices: Tensor
    slot: Tensor


class ColumnIndex(NamedTuple):
    """Column (postsynaptic) index of the live synapses, row-major within each column.

    Shapes: ``indptr [n_post + 1]``, ``pre [nnz]``, ``slot [nnz]`` flat slot indices
    (``pre * capacity + j``), ``length [n_post]`` synapses per column.
    """

    indptr: Tensor
    pre: Tensor
    slot: Tensor
    length: Tensor


def stamp(value: Any) -> tuple[int, ...]:
    """torch's in-place version counters of a tensor or a tuple of tensors (-1 where a tensor
    does not track one, as inference tensors do not)."""
    parts = value if isinstance(value, tuple) else (value,)
    out = []
    for t in parts:
        try:
            out.append(t._version)
        except RuntimeError:
            out.append(-1)
    return tuple(out)


def cached(store: RaggedSynapses, key: str, build: Callable[[], Any], token: Any = None) -> Any:
    """``build()``, cached under ``key`` until :attr:`version` (or ``token``) changes.

    Checks the seal first; a cached value written in place raises :class:`StoreError`
    (and is dropped). Inside a mutation nothing is cached: views follow the edits.
    """
    if store._mutating:
        return build()
    store._check_sealed()
    token = store.version if token is None else token
    hit = store._cache.get(key)
    if hit is not None and hit[0] == token:
        if stamp(hit[1]) == hit[2]:
            return hit[1]
        del store._cache[key]
        raise StoreError(
            f"store {store.name!r}: the cached {key} view was written in place; derived "
            f"views are read-only (they are shared). Change the store with "
            f"remove/add/grow/set_values, or inside `with store.mutation():`"
        )
    start = time.perf_counter()
    value = build()
    store.index_rebuild_s += time.perf_counter() - start
    store._cache[key] = (token, value, stamp(value))
    return value


def live_mask(store: RaggedSynapses) -> Tensor:
    """bool ``[n_pre, capacity]`` rebuilt from ``row_length`` (uncached)."""
    slots = torch.arange(store.capacity, device=store.device)
    return slots[None, :] < store._row_length[:, None]


def coo(store: RaggedSynapses) -> tuple[Tensor, Tensor]:
    """(pre, post) int64 ``[nnz]`` of the live synapses in row-major slot order."""
    pre, slot = coo_slots(store)
    return pre, store._ind.view(-1)[slot]


def coo_slots(store: RaggedSynapses) -> tuple[Tensor, Tensor]:
    """(pre, flat slot) int64 ``[nnz]`` of the live synapses in :func:`coo` order (cached)."""

    def build():
        flat = store.live.view(-1).nonzero().squeeze(1)
        return flat // max(store.capacity, 1), flat

    return cached(store, "coo", build)


def values(store: RaggedSynapses, name: str) -> Tensor:
    """Variable ``name`` of live synapses in :meth:`coo` order, ``[nnz]`` or ``[B, nnz]``."""
    var = store._var(name)
    _, slot = coo_slots(store)
    return var.flatten(-2)[..., slot]


def set_values(store: RaggedSynapses, name: str, values: Tensor) -> None:
    """Overwrite variable ``name`` from values in :meth:`coo` order (``[nnz]``/``[B, nnz]``)."""
    var = store._var(name)
    _, slot = coo_slots(store)
    values = torch.as_tensor(values, device=store.device)
    expected = var.shape[:-2] + (slot.numel(),)
    if values.shape not in (expected, expected[-1:]):
        raise ValueError(
            f"{store.name}: values for {name!r} must have shape {tuple(expected)}, got "
            f"{tuple(values.shape)}"
        )
    check_finite(store.name, name, values)
    flat = var.flatten(-2)
    flat[..., slot] = values.to(var.dtype)
    store.vars[name] = flat.view(var.shape)
    store.values_version += 1


def to_dense(store: RaggedSynapses, name: str) -> Tensor:
    """Variable ``name`` as ``[n_pre, n_post]`` (or ``[B, n_pre, n_post]``), 0 where absent.

    A new tensor on every call; :meth:`dense` is the cached, read-only equivalent.
    """
    var = store._var(name)
    pre, post = coo(store)
    out = torch.zeros(
        var.shape[:-2] + (store.n_pre, store.n_post), dtype=var.dtype, device=store.device
    )
    out[..., pre, post] = values(store, name)
    return out


def dense(store: RaggedSynapses, name: str = "weight") -> Tensor:
    """:meth:`to_dense` cached on (:attr:`version`, :attr:`values_version`); read-only.

    The cache also refreshes when ``vars[name]`` is replaced or written by a torch in-place
    op; writes torch cannot see (through numpy views) need :meth:`values_changed`.
    """
    var = store._var(name)
    token = (store.version, store.values_version, id(var), *stamp(var))
    return cached(store, f"dense:{name}", lambda: to_dense(store, name), token)


def csr(store: RaggedSynapses) -> CSR:
    """Row-major compressed view (cached per :attr:`version`)."""

    def build():
        pre, post = coo(store)
        indptr = torch.zeros(store.n_pre + 1, dtype=torch.int64, device=store.device)
        indptr[1:] = torch.cumsum(store._row_length, 0)
        return CSR(indptr, post, coo_slots(store)[1])

    return cached(store, "csr", build)


def columns(store: RaggedSynapses) -> ColumnIndex:
    """Column index (cached per :attr:`version`); see :class:`ColumnIndex`."""

    def build():
        pre, post = coo(store)
        _, slot = coo_slots(store)
        order = torch.argsort(post, stable=True)
        length = torch.bincount(post, minlength=store.n_post)
        indptr = torch.zeros(store.n_post + 1, dtype=torch.int64, device=store.device)
        indptr[1:] = torch.cumsum(length, 0)
        return ColumnIndex(indptr, pre[order], slot[order], length)

    return cached(store, "columns", build)


def slot_columns(store: RaggedSynapses) -> tuple[Tensor, Tensor]:
    """The column index in fixed-size buffers, for kernels that rebuild it in place:
    ``indptr`` int64 ``[n_post + 1]`` and ``slot`` int64 ``[max(1, n_pre * capacity)]``
    (flat slot ``i * capacity + s`` of each synapse, grouped by column, row-major within;
    entries from ``nnz`` on are unused). Cached per :attr:`version`; a kernel that changes
    the structure and rebuilds these buffers itself reports it with
    ``_changed(rebuilt=("slot_columns",))``.
    """

    def build():
        cols = columns(store)
        slot = torch.zeros(max(1, store.n_pre * store.capacity), dtype=torch.int64)
        slot[: cols.slot.numel()] = cols.slot.cpu()
        return cols.indptr.cpu().clone(), slot

    return cached(store, "slot_columns", build)


def padded_columns(store: RaggedSynapses) -> Tensor:
    """int64 ``[n_post, col_capacity]``: each column's flat slot indices (row-major), padded
    with ``n_pre * capacity`` (cached per :attr:`version`). The width only grows, in powers
    of two, so shapes stay static across rewiring unless a column outgrows all earlier ones.
    """

    def build():
        cols = columns(store)
        longest = int(cols.length.max()) if cols.slot.numel() else 0
        if longest > store._col_capacity:
            store._col_capacity = min(store.n_pre, 1 << max(3, (longest - 1).bit_length()))
        post = torch.repeat_interleave(torch.arange(store.n_post, device=store.device), cols.length)
        rank = torch.arange(post.numel(), device=store.device) - cols.indptr[post]
        padded = torch.full(
            (store.n_post, store._col_capacity),
            store.n_pre * store.capacity,
            dtype=torch.int64,
            device=store.device,
        )
        padded[post, rank] = cols.slot
        return padded

    return cached(store, "padded_columns", build)


def contains(store: RaggedSynapses, pre: Any, post: Any) -> Tensor:
    """bool ``[k]``: whether each (pre, post) pair is a live synapse.

    Memory is ``O(k * capacity)``, never ``O(n_pre * n_post)``.
    """
    store._check_sealed()
    pre_t, post_t = check_pairs(store, pre, post)
    return contains_pairs(store, pre_t, post_t)


def contains_pairs(store: RaggedSynapses, pre: Tensor, post: Tensor) -> Tensor:
    """:func:`contains` for checked int64 index tensors ``[k]``, without the seal check."""
    out = torch.zeros(pre.numel(), dtype=torch.bool, device=store.device)
    if store.capacity == 0 or pre.numel() == 0:
        return out
    step = max(1, _CONTAINS_CHUNK // store.capacity)
    slots = torch.arange(store.capacity, device=store.device)
    for start in range(0, pre.numel(), step):
        p, q = pre[start : start + step], post[start : start + step]
        hit = (store._ind[p] == q[:, None]) & (slots < store._row_length[p][:, None])
        out[start : start + step] = hit.any(1)
    return out
