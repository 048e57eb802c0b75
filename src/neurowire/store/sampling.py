"""Random growth of a store: :func:`grow` draws uniform unconnected targets per row.

:func:`rank_in_row` (each entry's position among the entries of its row) is the one definition
the store's additions and the structural rules use to place new synapses row by row;
:func:`repeated_in_call` finds the pairs drawn (or given) twice in one call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..initializers import Initializer
from . import edits
from .arguments import prepare_values
from .views import contains_pairs

if TYPE_CHECKING:
    from .core import RaggedSynapses


def rank_in_row(rows: Tensor) -> Tensor:
    """Position of each entry among the entries with the same row value, in order.

    Shapes: ``rows`` int64 ``[k]`` -> int64 ``[k]``. Entries to leave out of every row's count
    can share a row value no row uses (``torch.where(keep, rows, -1)``).
    """
    order = torch.argsort(rows, stable=True)
    sorted_rows = rows[order]
    start = torch.ones_like(sorted_rows, dtype=torch.bool)
    start[1:] = sorted_rows[1:] != sorted_rows[:-1]
    idx = torch.arange(rows.numel(), device=rows.device)
    first = torch.cummax(torch.where(start, idx, 0), 0).values
    rank = torch.empty_like(rows)
    rank[order] = idx - first
    return rank


def repeated_in_call(pre: Tensor, post: Tensor, n_post: int) -> Tensor:
    """bool ``[k]``: True where the pair ``(pre, post)`` occurred earlier in the call."""
    key = pre * n_post + post
    order = torch.argsort(key, stable=True)
    sk = key[order]
    rep_sorted = torch.zeros_like(sk, dtype=torch.bool)
    rep_sorted[1:] = sk[1:] == sk[:-1]
    rep = torch.empty_like(rep_sorted)
    rep[order] = rep_sorted
    return rep


def grow(
    store: RaggedSynapses,
    per_row: Any,
    generator: torch.Generator | None = None,
    **values: Any,
) -> Tensor:
    """Add ``per_row[i]`` synapses to each row ``i`` at uniformly drawn unconnected targets.

    Targets are distinct, never already connected (nor ``i`` itself without autapses).
    Requests beyond a row's free capacity or free columns are not added.

    Args:
        per_row: int ``[n_pre]`` requested new synapses per row.
        generator: torch generator on the store's device.
        **values: per variable a number or an initialiser (sampled per new synapse).

    Returns:
        int64 ``[n_pre]``: synapses actually added per row.
    """
    store._check_sealed()
    counts = torch.as_tensor(per_row, device=store.device)
    if counts.dtype == torch.bool or counts.is_floating_point():
        raise TypeError(f"{store.name}: per_row must be integer, got dtype {counts.dtype}")
    if counts.shape != (store.n_pre,):
        raise ValueError(
            f"{store.name}: per_row must have shape ({store.n_pre},), got {tuple(counts.shape)}"
        )
    if bool((counts < 0).any()):
        raise ValueError(f"{store.name}: per_row must be >= 0")
    for key, val in values.items():
        store._var(key)
        if not isinstance(val, (int, float, bool, Initializer)):
            raise TypeError(
                f"{store.name}: grow() values must be numbers or initialisers, got "
                f"{type(val).__name__} for {key!r}"
            )
    if not bool(counts.any()):
        return torch.zeros_like(store._row_length)
    free_cols = store.n_post - store._row_length
    if not store.autapses:
        rows = torch.arange(store.n_pre, device=store.device)
        free_cols = free_cols - 1 + contains_pairs(store, rows, rows).long()
    target = torch.minimum(
        counts.long(), torch.minimum(store.capacity - store._row_length, free_cols)
    )
    target = target.clamp(min=0)
    if not bool(target.any()):
        return torch.zeros_like(store._row_length)
    before = store._row_length.clone()
    pending = torch.repeat_interleave(torch.arange(store.n_pre, device=store.device), target)
    for _ in range(16):
        if pending.numel() == 0:
            break
        cand = torch.randint(
            0, store.n_post, (pending.numel(),), device=store.device, generator=generator
        )
        ok = ~contains_pairs(store, pending, cand) & ~repeated_in_call(pending, cand, store.n_post)
        if not store.autapses:
            ok &= pending != cand
        _add_unchecked(store, pending[ok], cand[ok], values, generator)
        pending = pending[~ok]
    if pending.numel():
        _grow_by_enumeration(store, pending, generator, values)
    return store._row_length - before


def _grow_by_enumeration(
    store: RaggedSynapses,
    pending: Tensor,
    generator: torch.Generator | None,
    values: Mapping[str, Any],
) -> None:
    """Exact fallback for nearly full rows: choose among the explicitly listed free columns."""
    rows, need = torch.unique(pending, return_counts=True)
    for row, n in zip(rows.tolist(), need.tolist(), strict=False):
        free = torch.ones(store.n_post, dtype=torch.bool, device=store.device)
        free[store._ind[row, : int(store._row_length[row])]] = False
        if not store.autapses:
            free[row] = False
        cols = free.nonzero().squeeze(1)
        pick = cols[torch.randperm(cols.numel(), device=store.device, generator=generator)[:n]]
        _add_unchecked(store, torch.full_like(pick, row), pick, values, generator)


def _add_unchecked(
    store: RaggedSynapses,
    pre: Tensor,
    post: Tensor,
    values: Mapping[str, Any],
    generator: torch.Generator | None = None,
) -> None:
    """Append pairs known to be new and to fit, with ``values`` (numbers or initialisers)."""
    if pre.numel() == 0:
        return
    everything = torch.ones_like(pre, dtype=torch.bool)
    prepared = prepare_values(store, values, pre.numel(), generator)
    edits.append(store, pre, post, rank_in_row(pre), everything, prepared)
