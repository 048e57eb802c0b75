"""Numba kernels of DEEP R's fused CPU pass (:class:`~neurowire.DeepR`).

The sign test with the placements of new synapses (both ``regrow`` modes, from counter-based
streams of :mod:`neurowire.rng`) in one call (:func:`plan_rewiring`), the sign look-up of new
synapses and the L1 term, loop by loop on numpy views of the store's arrays. The removal and
the append are the store's edit: :func:`rewire_rows` composes the kernels of
:meth:`~neurowire.RaggedSynapses.replace_native` (its checks, its column draws, its row
edits) with the sign look-up in one call. ``tests/structural/test_deep_r_fused.py`` checks
that the fused pass gives exactly the stores of the reference path.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import literal_unroll, njit

from .rng import uniform64
from .store_kernels import check_edit, draw_free_columns, edit_rows, settle_lengths


def load(kernel: Any, *args: Any) -> None:
    """Compile ``kernel`` for the types of ``args``, or load that version from numba's cache,
    without running it (numba specialises a kernel per argument type on its first call)."""
    kernel.compile(tuple(numba.typeof(arg) for arg in args))


@njit(cache=True, nogil=True)
def pair_signs(bits, pre, post, out):
    """``out[k]`` = -1 (int8) where the packed sign bit of ``(pre[k], post[k])`` is set
    (bit ``post % 8``, LSB first, of byte ``post // 8`` of row ``pre``), else +1."""
    for k in range(pre.shape[0]):
        bit = (bits[pre[k], post[k] >> 3] >> (post[k] & 7)) & 1
        out[k] = 1 - 2 * bit


@njit(cache=True, nogil=True)
def place_pairs(key, dormant, room, n, counts):
    """DEEP R's ``"pair"`` placement: ``n`` placements one at a time, each uniform over the
    unconnected pairs of the rows that still have room (``counts[row] < room[row]``;
    ``counts`` is updated). Row ``i`` holds ``dormant[i]`` tickets (0 if it has no room), of
    which the first ``counts[i]`` are taken; a ticket ``floor(u * tickets)``, ``u`` from the
    counter-based stream ``key``, is accepted if it is still free and its row has room, so
    accepted tickets are uniform over the free ones. Returns the placements that found no
    free ticket."""
    n_pre = dormant.shape[0]
    start = np.zeros(n_pre + 1, dtype=np.int64)
    for i in range(n_pre):
        start[i + 1] = start[i] + (dormant[i] if room[i] > 0 else 0)
    tickets = start[n_pre]
    if tickets == 0:
        return n
    guide = np.empty(n_pre, dtype=np.int64)  # guide[b]: row of ticket b * tickets // n_pre
    i = 0
    for b in range(n_pre):
        while start[i + 1] <= b * tickets // n_pre:
            i += 1
        guide[b] = i
    free, need, position = tickets, n, np.uint64(0)
    while need > 0 and free > 0:
        t = min(int(uniform64(key, position) * tickets), tickets - 1)
        position += np.uint64(1)
        i = guide[t * n_pre // tickets]
        while start[i + 1] <= t:
            i += 1
        if counts[i] < room[i] and t - start[i] >= counts[i]:
            counts[i] += 1
            need -= 1
            free -= 1
            if counts[i] == room[i]:
                free -= dormant[i] - counts[i]
    return need


@njit(cache=True, nogil=True)
def place_rows(key, room, n, counts):
    """GeNN's ``"row"`` placement: per draw a uniform row ``floor(u * n_pre)``, ``u`` from the
    counter-based stream ``key``, accepted if it has room left (``counts[row] < room[row]``;
    ``counts`` is updated), else one failure and the draw is repeated, until ``n`` are
    accepted or no row has room. Returns the failures (rejected draws, plus the placements
    left when no row has room)."""
    n_pre = room.shape[0]
    left = 0
    for i in range(n_pre):
        left += room[i] - counts[i]
    failed, need, position = 0, n, np.uint64(0)
    while need > 0:
        if left <= 0:
            return failed + need
        i = min(int(uniform64(key, position) * n_pre), n_pre - 1)
        position += np.uint64(1)
        if counts[i] < room[i]:
            counts[i] += 1
            need -= 1
            left -= 1
        else:
            failed += 1
    return failed


@njit(cache=True, nogil=True)
def plan_rewiring(weight, sign, length, n_post, autapses, pair_mode, key, gone, counts):
    """The sign test and the placements of one DEEP R call on ``[n_pre, capacity]`` arrays.

    ``gone[i, j]`` is True where the live slot ``j < length[i]`` has ``weight * sign < 0``
    (False elsewhere, padding too). As many synapses as were crossed are then placed among
    the rows as they are without them (:func:`place_pairs` if ``pair_mode``, else
    :func:`place_rows`, from the stream ``key``): ``counts[i]`` per row. Returns
    ``(removed, failed)``."""
    n_pre, cap = weight.shape
    dormant = np.empty(n_pre, dtype=np.int64)
    room = np.empty(n_pre, dtype=np.int64)
    removed = 0
    for i in range(n_pre):
        c = 0
        for j in range(length[i]):
            hit = weight[i, j] * sign[i, j] < 0
            gone[i, j] = hit
            c += hit
        gone[i, length[i] :] = False
        removed += c
        kept = length[i] - c
        dormant[i] = max(n_post - kept - (0 if autapses else 1), 0)
        room[i] = min(cap - kept, dormant[i])
        counts[i] = 0
    if removed == 0:
        return 0, 0
    if pair_mode:
        return removed, place_pairs(key, dormant, room, removed, counts)
    return removed, place_rows(key, room, removed, counts)


@njit(cache=True, nogil=True)
def rewire_rows(bits, ind, sign, others, length, gone, counts, removed, n_post, autapses, key):
    """Remove the live slots where ``gone`` is True and add ``counts[i]`` synapses to every row
    ``i`` (the store edit of one fused DEEP R call, after :func:`plan_rewiring`): exactly
    :meth:`~neurowire.RaggedSynapses.replace_native` with the new synapses' ``sign`` from the
    packed ``bits`` (:func:`pair_signs`) and every other variable 0.

    Args:
        ind: int64 ``[1, n_pre, capacity]``; ``sign``: int8 ``[1, n_pre, capacity]``;
            ``others``: a tuple of the other variables, each ``[parts, n_pre, capacity]``.
        length: int64 ``[n_pre]`` row lengths, updated last.
        removed: int64 ``[n_pre]`` scratch: synapses removed per row.
        key: uint64 key of the columns' counter-based stream.

    Returns the synapses added, or -1 if a row lacks room (then nothing has changed).
    """
    if check_edit(gone, length, counts, n_post, autapses, removed) >= 0:
        return -1
    rows = np.repeat(np.arange(length.shape[0]), counts)
    k = rows.shape[0]
    post = np.empty(k, np.int64)
    if draw_free_columns(rows, ind[0], length, gone, n_post, autapses, key, post) < 0:
        return -1
    signs = np.empty(k, np.int8)
    pair_signs(bits, rows, post, signs)
    edit_rows(ind, post, length, gone, removed, counts)
    edit_rows(sign, signs, length, gone, removed, counts)
    for arr in literal_unroll(others):
        edit_rows(arr, np.zeros(k, arr.dtype), length, gone, removed, counts)
    settle_lengths(length, removed, counts)
    return k


@njit(cache=True, nogil=True)
def add_signed(grad, sign, alpha):
    """``grad + alpha * sign``, a new array, on ``[n_pre, capacity]`` arrays (``sign`` int8
    +1/-1/0, ``alpha`` a float cast to ``grad``'s dtype first): bit for bit what
    ``torch.add(grad, sign, alpha=alpha)`` gives, single-threaded."""
    out = np.empty_like(grad)
    a = out.dtype.type(alpha)
    zero = a - a
    for i in range(grad.shape[0]):
        for j in range(grad.shape[1]):
            s = sign[i, j]
            if s > 0:
                out[i, j] = grad[i, j] + a
            elif s < 0:
                out[i, j] = grad[i, j] - a
            else:
                out[i, j] = grad[i, j] + zero
    return out
