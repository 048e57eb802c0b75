"""Numba kernels for the synapse store's structural changes on the CPU.

They do, loop by loop, what :meth:`RaggedSynapses.remove` and :meth:`RaggedSynapses.add` do
with PyTorch ops, on numpy views of the store's tensors: a rule that changes a few synapses per
call then costs microseconds instead of dozens of small tensor ops. The store decides when to
use them (CPU tensors, numba importable) and ``tests/store/test_numba_edits.py`` checks both
paths give identical stores. :func:`replace_rows` is the single call that changes the store in
:meth:`RaggedSynapses.replace_native` (a removal and additions at once).
"""

from __future__ import annotations

import numpy as np
from numba import literal_unroll, njit

from .rng import uniform64


@njit(cache=True, nogil=True)
def removed_per_row(mask, length, out):
    """``out[i]`` = live slots of row ``i`` where ``mask`` is True; returns the total."""
    total = 0
    for i in range(length.shape[0]):
        c = 0
        for j in range(length[i]):
            if mask[i, j]:
                c += 1
        out[i] = c
        total += c
    return total


@njit(cache=True, nogil=True)
def compact_rows(arr, mask, length, removed):
    """Drop the masked live slots of every row with ``removed[i] > 0``, keeping order; the
    freed tail of the row (up to the capacity) becomes 0. ``arr`` is ``[n_pre, capacity]``."""
    cap = arr.shape[1]
    for i in range(arr.shape[0]):
        if removed[i] == 0:
            continue
        w = 0
        for j in range(length[i]):
            if not mask[i, j]:
                arr[i, w] = arr[i, j]
                w += 1
        for j in range(w, cap):
            arr[i, j] = 0


@njit(cache=True, nogil=True)
def classify_pairs(pre, post, ind, length, capacity, n_post, dup, rank):
    """For candidate pairs in call order: ``dup[k]`` if already connected or repeated earlier
    in the call; ``rank[k]`` the position among the call's non-duplicate candidates of its row.
    """
    k = pre.shape[0]
    keys = pre * n_post + post
    order = np.argsort(keys, kind="mergesort")  # stable: call order within equal keys
    for e in range(1, k):
        if keys[order[e]] == keys[order[e - 1]]:
            dup[order[e]] = True
    count = np.zeros(length.shape[0], dtype=np.int64)
    for e in range(k):
        i, j = pre[e], post[e]
        if not dup[e]:
            for s in range(length[i]):
                if ind[i, s] == j:
                    dup[e] = True
                    break
        if dup[e]:
            rank[e] = 0
        else:
            rank[e] = count[i]
            count[i] += 1


@njit(cache=True, nogil=True)
def append_pairs(pre, post, added, ind, length, slots):
    """Append the ``added`` pairs to their rows; ``slots[k]`` receives each one's slot."""
    for e in range(pre.shape[0]):
        if added[e]:
            i = pre[e]
            slots[e] = length[i]
            ind[i, length[i]] = post[e]
            length[i] += 1


def empty_flags(k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(k, dtype=np.bool_), np.zeros(k, dtype=np.int64)


@njit(cache=True, nogil=True)
def check_edit(gone, length, per_row, n_post, autapses, removed):
    """``removed[i]`` = live slots of row ``i`` where ``gone`` is True; returns the first row
    whose ``per_row`` entry is negative or exceeds its room once those are removed (free
    slots, unconnected columns), or -1."""
    cap = gone.shape[1]
    bad = -1
    for i in range(length.shape[0]):
        c = 0
        for j in range(length[i]):
            c += gone[i, j]
        removed[i] = c
        kept = length[i] - c
        limit = min(cap - kept, n_post - kept - (0 if autapses else 1))
        if bad < 0 and (per_row[i] < 0 or per_row[i] > limit):
            bad = i
    return bad


@njit(cache=True, nogil=True)
def draw_free_columns(rows, ind, length, gone, n_post, autapses, key, post):
    """For each entry of ``rows`` (sorted, so a row's entries are contiguous), a column not
    connected in that row once the slots where ``gone`` is True are removed (the live slots
    ``ind[row, :length[row]]`` less those), not drawn before for the same row and not the row
    itself without autapses: candidates ``floor(u * n_post)``, ``u`` the numbers at positions
    0, 1, 2, ... of the counter-based stream ``key`` (uint64; :mod:`neurowire.rng`), rejected
    until one fits (uniform over the free columns). Returns how many numbers were used, or -1
    if a row has no free column left for its next entry (the caller asked for too many)."""
    taken = np.full(n_post, -1, dtype=np.int64)  # taken[c] == i: column c is used in row i
    position = np.uint64(0)
    free = 0
    for e in range(rows.shape[0]):
        i = rows[e]
        post[e] = -1
        if e == 0 or rows[e - 1] != i:
            free = n_post
            for s in range(length[i]):
                if not gone[i, s]:
                    taken[ind[i, s]] = i
                    free -= 1
            if not autapses and taken[i] != i:
                taken[i] = i
                free -= 1
        if free <= 0:
            return -1
        while True:
            c = min(int(uniform64(key, position) * n_post), n_post - 1)
            position += np.uint64(1)
            if taken[c] != i:
                taken[c] = i
                post[e] = c
                free -= 1
                break
    return int(position)


@njit(cache=True, nogil=True)
def edit_rows(arr, new, length, gone, removed, per_row):
    """One array's part of :func:`replace_rows` (``length`` not yet updated): in every row
    with ``removed[i] > 0`` the live slots where ``gone`` is True are dropped, the rest keep
    their order and the tail up to the capacity becomes 0; then ``new``'s next ``per_row[i]``
    values (``new`` holds every row's in row order) are appended. ``arr`` is
    ``[parts, n_pre, capacity]``; every part gets the same values."""
    offset = 0
    for i in range(length.shape[0]):
        k = per_row[i]
        if removed[i] == 0 and k == 0:
            continue
        drop = gone[i]
        first = 0  # slots before the first removed one stay where they are
        if removed[i] > 0:
            while not drop[first]:
                first += 1
        for b in range(arr.shape[0]):
            row = arr[b, i]
            w = length[i]
            if removed[i] > 0:
                w = first
                for j in range(first, length[i]):  # branch-free: write always, advance if kept
                    row[w] = row[j]
                    w += not drop[j]
                row[w:] = 0
            row[w : w + k] = new[offset : offset + k]
        offset += k


@njit(cache=True, nogil=True)
def settle_lengths(length, removed, per_row):
    """The row lengths after an edit by :func:`edit_rows` (the last step of one)."""
    for i in range(length.shape[0]):
        length[i] += per_row[i] - removed[i]


@njit(cache=True, nogil=True)
def replace_rows(length, gone, removed, per_row, arrays):
    """Remove and append in one call (the edit of :meth:`RaggedSynapses.replace_native`).

    In every row with ``removed[i] > 0`` the live slots where ``gone`` is True are dropped
    (order kept, the tail up to the capacity zeroed, as :func:`compact_rows`); then
    ``per_row[i]`` synapses are appended to row ``i`` (:func:`edit_rows`). ``arrays`` is a
    tuple of ``(target [parts, n_pre, capacity], new [k])`` pairs, ``new`` holding the appended
    values of every row in row order; ``length`` is updated last
    (:func:`settle_lengths`). The caller has checked that every row has room.
    """
    for pair in literal_unroll(arrays):
        arr, new = pair
        edit_rows(arr, new, length, gone, removed, per_row)
    settle_lengths(length, removed, per_row)
