"""Event-driven spike delivery over a store's slot rows (Triton), behind
:func:`neurowire.propagate.deliver_slots`."""

from __future__ import annotations

import triton
import triton.language as tl
from torch import Tensor

from ..events import SpikeEvents

#: events per program
BLOCK_EVENTS = 16
#: largest block of slots read at once; longer rows are looped over
MAX_BLOCK_SLOTS = 128


@triton.jit
def _deliver_slots_kernel(
    out_ptr,
    row_ptr,
    pre_ptr,
    valid_ptr,
    post_ptr,
    weight_ptr,
    n_events,
    capacity,
    out_s0,
    out_s1,
    post_s0,
    post_s1,
    weight_s0,
    weight_s1,
    HAS_VALID: tl.constexpr,
    BLOCK_E: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    # one program per BLOCK_E events; each loops over its neurons' slots, BLOCK_S at a time
    e = tl.program_id(0) * BLOCK_E + tl.arange(0, BLOCK_E)
    ok = e < n_events
    if HAS_VALID:
        ok = ok & (tl.load(valid_ptr + e, mask=ok, other=0) != 0)
    pre = tl.load(pre_ptr + e, mask=ok, other=0)
    target = tl.load(row_ptr + e, mask=ok, other=0) * out_s0
    for start in range(0, capacity, BLOCK_S):
        s = start + tl.arange(0, BLOCK_S)
        m = ok[:, None] & (s < capacity)[None, :]
        w = tl.load(weight_ptr + pre[:, None] * weight_s0 + s[None, :] * weight_s1, mask=m, other=0)
        m = m & (w != 0)  # padding slots carry no weight: no atomic for them
        col = tl.load(post_ptr + pre[:, None] * post_s0 + s[None, :] * post_s1, mask=m, other=0)
        dst = out_ptr + target[:, None] + col * out_s1
        tl.atomic_add(dst, w.to(out_ptr.dtype.element_ty), mask=m)


def deliver_slots(out: Tensor, events: SpikeEvents, post: Tensor, weight: Tensor) -> None:
    """``out[row, post[pre, s]] += weight[pre, s]`` for every event and slot ``s`` (in place).

    Shapes: ``out [R, N]``; ``post, weight [n, capacity]`` with ``post`` global column indices.
    Events with ``valid`` False deliver nothing; slots of zero weight (padding) are skipped.
    The sums are formed by atomic additions, so their order (and the last bits of a float sum)
    may differ from the reference's.
    """
    cap = post.shape[1]
    if events.count == 0 or cap == 0:
        return
    valid = events.valid
    block_s = min(triton.next_power_of_2(cap), MAX_BLOCK_SLOTS)
    grid = (triton.cdiv(events.count, BLOCK_EVENTS),)
    _deliver_slots_kernel[grid](
        out,
        events.row,
        events.pre,
        events.pre if valid is None else valid,
        post,
        weight,
        events.count,
        cap,
        out.stride(0),
        out.stride(1),
        post.stride(0),
        post.stride(1),
        weight.stride(0),
        weight.stride(1),
        HAS_VALID=valid is not None,
        BLOCK_E=BLOCK_EVENTS,
        BLOCK_S=block_s,
    )
