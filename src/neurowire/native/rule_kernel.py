"""What a structural rule tells the native engine about its fused kernel (no numba here).

A rule that can run inside native blocks returns a :class:`RuleKernel` from
:meth:`~neurowire.StructuralRule.native_kernel`; the engine (:mod:`.fused_rules`) generates the
call from it and allocates what it names, without knowing the rule's class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RuleKernel:
    """One structural rule's numba kernel in :mod:`neurowire.native.rules`.

    The engine calls it once per due step, with the rule's random numbers of that call and,
    per store it changes (the rule's projection, then ``partner``), that store's arrays::

        kernel(u, *stores, n_post, n_rows, n_cols, periodic, *constants, *weight_constants,
               *events, n_events, counts[, scratch])

    ``stores``: per store ``ind, row_length, w`` (and ``col_indptr, col_slot``, the store's
    column index, with ``slot_columns``); ``events``: per store ``ev_pre, ev_post, ev_kind,
    ev_dist`` buffers, appended from ``n_events[m]`` (int64 ``[n_stores]``, advanced by the
    call); ``counts``: int64 ``[3 * n_stores]`` receives removed, added, failed per store;
    ``scratch``: int64 ``[scratch_rows, n_pre]`` filled with -1, which every call leaves so.

    Args:
        kernel: name of the function in :mod:`neurowire.native.rules`.
        draw: ``draw(rng, calls)`` the random numbers of ``calls`` calls (indexed by call),
            equal to what the rule's ``update`` draws from the same generator per call.
        constants: numbers written into the call as literals (float64 or int).
        weight_constants: numbers written as literals of the weight's float type.
        events_per_call: most events one call appends per store.
        partner: name of a second projection the rule changes, or None.
        slot_columns: the kernel reads the stores' column index (``slot_columns``) and keeps
            it current; otherwise the engine updates its column lists from the call's events.
        scratch_rows: rows of the ``scratch`` argument (0: none passed).
    """

    kernel: str
    draw: Callable[[np.random.Generator, int], np.ndarray]
    constants: tuple[float | int, ...]
    weight_constants: tuple[float, ...]
    events_per_call: int
    partner: str | None = None
    slot_columns: bool = False
    scratch_rows: int = 0
