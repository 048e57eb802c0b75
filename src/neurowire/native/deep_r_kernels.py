"""Numba kernels of DEEP R's fused CPU pass (:class:`~neurowire.DeepR`).

The sign test with the placements of new synapses (both ``regrow`` modes, from counter-based
streams of :mod:`neurowire.rng`) in one call, the sign look-up of new synapses and the L1
term, loop by loop on numpy views of the store's arrays; the removal and the append
themselves are the store's :meth:`~neurowire.RaggedSynapses.replace_native`.
``tests/structural/test_deep_r_fused.py`` checks that the fused pass gives exactly the
stores of the reference path.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .rng import uniform64


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
        for j in range(cap):
            hit = j < length[i] and weight[i, j] * sign[i, j] < 0
            gone[i, j] = hit
            c += hit
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
def add_signed(grad, sign, alpha, out):
    """``out = grad + alpha * sign`` on ``[n_pre, capacity]`` arrays (``sign`` int8 +1/-1/0,
    ``alpha`` of ``grad``'s dtype): bit for bit what ``torch.add(grad, sign, alpha=alpha)``
    gives, single-threaded."""
    zero = alpha - alpha
    for i in range(grad.shape[0]):
        for j in range(grad.shape[1]):
            s = sign[i, j]
            if s > 0:
                out[i, j] = grad[i, j] + alpha
            elif s < 0:
                out[i, j] = grad[i, j] - alpha
            else:
                out[i, j] = grad[i, j] + zero
