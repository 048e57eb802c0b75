"""The store's structural edits, :func:`remove` and :func:`add`, on every backend.

Each edit picks its backend once per call: the Triton compaction for a removal on CUDA
(:mod:`neurowire.gpu.compact`), the numba kernels on the CPU (:mod:`.numba_edits`), and
otherwise the PyTorch reference below. All give the same store: removal is stable (survivors
keep their order), additions append to their row in call order, and every variable moves with
its synapse. The functions here are the store's methods of the same names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .. import gpu
from ..errors import CapacityError, DuplicateSynapseError
from .arguments import check_pairs, prepare_values
from .numba_edits import native_kernels, remove_rows
from .sampling import rank_in_row, repeated_in_call
from .views import contains_pairs

if TYPE_CHECKING:
    from .core import RaggedSynapses


def remove(store: RaggedSynapses, mask: Tensor) -> Tensor:
    """Remove the live synapses where ``mask`` is True; every variable moves with its synapse.

    Args:
        mask: bool ``[n_pre, capacity]``; True on padding slots is ignored.

    Returns:
        int64 ``[n_pre]``: synapses removed per row.
    """
    store._check_sealed()
    mask = torch.as_tensor(mask, device=store.device)
    if mask.dtype != torch.bool:
        raise TypeError(f"{store.name}: remove() needs a bool mask, got dtype {mask.dtype}")
    if mask.shape != (store.n_pre, store.capacity):
        raise ValueError(
            f"{store.name}: remove() mask must have shape {(store.n_pre, store.capacity)}, got "
            f"{tuple(mask.shape)}"
        )
    if gpu.available(mask):  # CUDA with triton: the Triton compaction (neurowire.gpu.compact)
        from ..gpu.compact import remove as compact_remove

        removed = compact_remove(mask, store._row_length, [store._ind, *store.vars.values()])
        if bool(removed.any()):
            store._changed()
        return removed
    kernels = native_kernels(store)
    if kernels is not None:
        return remove_rows(store, kernels, mask)
    live = store.live
    gone = mask & live
    removed = gone.sum(1)
    rows = removed.nonzero().squeeze(1)
    if rows.numel() == 0:
        return removed
    # compact only the rows that lose synapses, in place
    keep = live[rows] & ~gone[rows]
    dest = torch.where(keep, torch.cumsum(keep, 1) - 1, store.capacity)
    store._ind[rows] = _compact(store._ind[rows], dest, store.capacity)
    for var in store.vars.values():
        var[..., rows, :] = _compact(var[..., rows, :], dest, store.capacity)
    store._row_length -= removed
    store._changed()
    return removed


def _compact(var: Tensor, dest: Tensor, capacity: int) -> Tensor:
    """``var [..., rows, capacity]`` with each slot moved to ``dest`` (``capacity``: dropped)."""
    out = torch.zeros(var.shape[:-1] + (capacity + 1,), dtype=var.dtype, device=var.device)
    out.scatter_(-1, dest.expand(var.shape), var)
    return out[..., :capacity].contiguous()


def add(
    store: RaggedSynapses,
    pre: Any,
    post: Any,
    on_full: str = "raise",
    on_duplicate: str = "raise",
    **values: Any,
) -> Tensor:
    """Append synapses ``(pre[k], post[k])``; variables not given start at zero.

    Args:
        pre, post: int ``[k]`` neuron indices; several may share a row.
        on_full: ``"raise"`` (:class:`CapacityError`) or ``"skip"`` when a row is full.
        on_duplicate: ``"raise"`` (:class:`DuplicateSynapseError`) or ``"skip"`` for pairs
            already connected or repeated within the call (the first occurrence is kept).
        **values: per variable a number, ``[k]``, or for a batched variable ``[k]`` (all
            copies) or ``[B, k]``.

    Returns:
        bool ``[k]``: which pairs were added. A call that raises changes nothing.
    """
    store._check_sealed()
    for arg, val in (("on_full", on_full), ("on_duplicate", on_duplicate)):
        if val not in ("raise", "skip"):
            raise ValueError(f"{store.name}: {arg} must be 'raise' or 'skip', got {val!r}")
    pre_t, post_t = check_pairs(store, pre, post)
    k = pre_t.numel()
    prepared = prepare_values(store, values, k)
    if not store.autapses and k and bool((pre_t == post_t).any()):
        bad = pre_t[pre_t == post_t][0].item()
        raise ValueError(f"{store.name}: autapse ({bad}, {bad}) is not allowed")
    if k == 0:
        return torch.zeros(0, dtype=torch.bool, device=store.device)

    kernels = native_kernels(store)
    if kernels is not None:
        dup_np, rank_np = kernels.empty_flags(k)
        kernels.classify_pairs(
            pre_t.numpy(),
            post_t.numpy(),
            store._ind.numpy(),
            store._row_length.numpy(),
            store.capacity,
            store.n_post,
            dup_np,
            rank_np,
        )
        dup, native_rank = torch.from_numpy(dup_np), torch.from_numpy(rank_np)
    else:
        dup = repeated_in_call(pre_t, post_t, store.n_post) | contains_pairs(store, pre_t, post_t)
    if on_duplicate == "raise" and bool(dup.any()):
        first = int(dup.nonzero()[0, 0])
        raise DuplicateSynapseError(
            f"{store.name}: synapse ({int(pre_t[first])}, {int(post_t[first])}) already "
            f"exists or is repeated in this call; use on_duplicate='skip' to ignore duplicates"
        )
    cand = ~dup
    rank = native_rank if kernels is not None else rank_in_row(torch.where(cand, pre_t, -1))
    free = store.capacity - store._row_length[pre_t]
    fits = rank < free
    if on_full == "raise" and bool((cand & ~fits).any()):
        first = int((cand & ~fits).nonzero()[0, 0])
        row = int(pre_t[first])
        need = int((cand & (pre_t == row)).sum())
        raise CapacityError(
            f"projection {store.name!r}: row {row} has {int(free[first])} free slots for "
            f"{need} new synapses (capacity {store.capacity}); raise capacity=/padding= or "
            f"use on_full='skip'"
        )
    added = cand & fits
    append(store, pre_t, post_t, rank, added, prepared)
    return added


def append(
    store: RaggedSynapses,
    pre: Tensor,
    post: Tensor,
    rank: Tensor,
    added: Tensor,
    values: Mapping[str, Tensor],
) -> None:
    """Append the pairs where ``added`` is True at slot ``row_length[pre] + rank`` of their
    row, with ``values[name][..., added]`` (or 0) for every variable; checks nothing."""
    if not bool(added.any()):
        return
    rows = pre[added]
    kernels = native_kernels(store)
    if kernels is not None:
        slot_all = torch.zeros(pre.numel(), dtype=torch.int64)
        kernels.append_pairs(
            pre.numpy(),
            post.numpy(),
            added.numpy(),
            store._ind.numpy(),
            store._row_length.numpy(),
            slot_all.numpy(),
        )
        slots = slot_all[added]
        for key, var in store.vars.items():
            val = values.get(key)
            var[..., rows, slots] = 0 if val is None else val[..., added]
        store._changed()
        return
    slots = store._row_length[rows] + rank[added]
    store._ind[rows, slots] = post[added]
    for key, var in store.vars.items():
        val = values.get(key)
        var[..., rows, slots] = 0 if val is None else val[..., added]
    store._row_length += torch.bincount(rows, minlength=store.n_pre)
    store._changed()
