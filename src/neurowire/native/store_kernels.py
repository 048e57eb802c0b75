"""Numba kernels for the synapse store's structural changes on the CPU.

They do, loop by loop, what :meth:`RaggedSynapses.remove` and :meth:`RaggedSynapses.add` do
with PyTorch ops, on numpy views of the store's tensors: a rule that changes a few synapses per
call then costs microseconds instead of dozens of small tensor ops. The store decides when to
use them (CPU tensors, numba importable) and ``tests/test_synapses_native.py`` checks both
paths give identical stores.
"""

from __future__ import annotations

import numpy as np
from numba import njit


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
