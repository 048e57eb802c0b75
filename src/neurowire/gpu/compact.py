"""Row compaction after a removal (Triton), behind
:meth:`neurowire.store.RaggedSynapses.remove`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl
from torch import Tensor

#: largest block of slots handled at once; longer rows are looped over
MAX_BLOCK_SLOTS = 1024


@triton.jit
def _removed_kernel(mask_ptr, length_ptr, removed_ptr, capacity, BLOCK: tl.constexpr):
    # one program per row: live slots (s < row_length) where mask is True
    r = tl.program_id(0).to(tl.int64)
    length = tl.load(length_ptr + r)
    count = tl.zeros((BLOCK,), dtype=tl.int64)
    for start in range(0, capacity, BLOCK):
        s = start + tl.arange(0, BLOCK)
        gone = tl.load(mask_ptr + r * capacity + s, mask=s < length, other=0) != 0
        count += gone.to(tl.int64)
    tl.store(removed_ptr + r, tl.sum(count, 0))


@triton.jit
def _compact_kernel(
    data_ptr, mask_ptr, length_ptr, removed_ptr, n_rows, capacity, BLOCK: tl.constexpr
):
    # one program per (row, leading index of a batched variable); rows that lose nothing are
    # left as they are. Kept slots move to the front in order, block by block: a block is
    # read whole before any of it is written (barrier), and it writes only at or before its
    # own slots, so no write reaches a slot still to be read. Then the tail is zeroed.
    r = tl.program_id(0).to(tl.int64)
    if tl.load(removed_ptr + r) != 0:
        length = tl.load(length_ptr + r)
        base = data_ptr + (tl.program_id(1).to(tl.int64) * n_rows + r) * capacity
        kept = length * 0
        for start in range(0, capacity, BLOCK):
            s = start + tl.arange(0, BLOCK)
            live = s < length
            gone = tl.load(mask_ptr + r * capacity + s, mask=live, other=0) != 0
            keep = live & ~gone
            dest = kept + tl.cumsum(keep.to(tl.int64), 0) - 1
            value = tl.load(base + s, mask=keep, other=0)
            tl.debug_barrier()
            tl.store(base + dest, value, mask=keep)
            kept += tl.sum(keep.to(tl.int64), 0)
        tl.debug_barrier()
        for start in range(0, capacity, BLOCK):
            s = start + tl.arange(0, BLOCK)
            zero = tl.zeros((BLOCK,), dtype=data_ptr.dtype.element_ty)
            tl.store(base + s, zero, mask=(s >= kept) & (s < capacity))


def remove(mask: Tensor, row_length: Tensor, arrays: Sequence[Tensor]) -> Tensor:
    """Remove the live slots where ``mask`` is True, in place, and return int64 ``[n_pre]``
    removed per row.

    Shapes: ``mask [n_pre, capacity]`` (bool; True on padding slots is ignored), ``row_length
    [n_pre]`` (int64, decreased by the removed counts), ``arrays`` each ``[..., n_pre, capacity]``
    (the store's ``ind`` and every variable). In each row that loses synapses the kept slots
    move to the front in order and the freed tail is zeroed (False for bool arrays), as the
    PyTorch path does; other rows are not touched.
    """
    n_pre, capacity = mask.shape
    removed = torch.zeros(n_pre, dtype=torch.int64, device=mask.device)
    if capacity == 0:
        return removed
    mask, length = mask.contiguous(), row_length.contiguous()
    block = min(triton.next_power_of_2(capacity), MAX_BLOCK_SLOTS)
    _removed_kernel[(n_pre,)](mask, length, removed, capacity, BLOCK=block)
    if not bool(removed.any()):
        return removed
    for array in arrays:
        data = array if array.is_contiguous() else array.contiguous()
        lead = data.numel() // (n_pre * capacity)
        _compact_kernel[(n_pre, lead)](data, mask, length, removed, n_pre, capacity, BLOCK=block)
        if data is not array:
            array.copy_(data)
    row_length -= removed
    return removed
