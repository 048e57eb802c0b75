"""numba kernels of spike delivery and gradient accumulation: :mod:`neurowire.propagate` on the CPU.

The events are those of :class:`neurowire.events.SpikeEvents` in the two layouts the native
engines keep them in:

* a *spike list* (native simulator, one step): the flat indices ``b * n + i`` of the spikes in
  ascending order, written by the generated neuron kernels (``row = b``, ``pre = i``);
* *event rows* (native e-prop, a batch of trials): ``crow [R + 1]`` row pointers and ``pre [E]``
  on the time-major rows ``t * B + b``, one thread per block of rows.

Each kernel is the reference function of :mod:`neurowire.propagate` named in its docstring, over
one of these layouts; ``tests/native/test_engine.py`` and ``tests/learning/test_eprop_native.py``
test them against it. External spike input (``SpikeSource``) is copied here too.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import atomics

# ---------------------------------------------------------------------------- delivery


@njit(cache=True, nogil=True)
def deliver_spike_list(spk, nspk, n_pre, ind, row_length, w, out):
    """``out[b, ind[i, j]] += w[i, j]`` for every spike ``b * n_pre + i`` in the list ``spk``
    (``nspk[0]`` entries); ``out`` arrives zeroed (the postsynaptic kernels zero it again)."""
    for e in range(nspk[0]):
        b, i = spk[e] // n_pre, spk[e] % n_pre
        for j in range(row_length[i]):
            out[b, ind[i, j]] += w[i, j]


@njit(cache=True, nogil=True)
def deliver_spike_list_dense(spk, nspk, n_pre, w, out):
    """``out[b] += w[i]`` for every spike ``b * n_pre + i``, dense ``w [n_pre, n_post]``."""
    n_post = w.shape[1]
    for e in range(nspk[0]):
        b, i = spk[e] // n_pre, spk[e] % n_pre
        for j in range(n_post):
            out[b, j] += w[i, j]


@njit(cache=True, nogil=True)
def deliver_counts(count, z, ind, row_length, w, out):
    """``out[b, ind[i, j]] += w[i, j] * count[b, i]`` for the neurons of a
    :class:`~neurowire.PoissonGenerator` (``count [B, n_pre]``, ``z = count > 0``).

    A generator neuron often emits in every step (mean 1: 63 %), so a test per neuron would
    be mispredicted often: the rows are taken eight at a time, skipped together when none of
    the eight counts is nonzero (one test of their ``z`` bytes as a word), and otherwise all
    delivered, zero counts adding zeros."""
    batch, n_pre = count.shape
    whole = n_pre - n_pre % 8
    for b in range(batch):
        words = z[b, :whole].view(np.uint64)
        for k in range(words.shape[0]):
            if words[k]:
                for i in range(8 * k, 8 * k + 8):
                    c = count[b, i]
                    for j in range(row_length[i]):
                        out[b, ind[i, j]] += w[i, j] * c
        for i in range(whole, n_pre):
            c = count[b, i]
            for j in range(row_length[i]):
                out[b, ind[i, j]] += w[i, j] * c


@njit(cache=True, nogil=True)
def deliver_counts_dense(count, w, out):
    """``out[b] += w[i] * count[b, i]`` for every nonzero count, dense ``w [n_pre, n_post]``."""
    batch, n_pre = count.shape
    n_post = w.shape[1]
    for b in range(batch):
        for i in range(n_pre):
            c = count[b, i]
            if c:
                for j in range(n_post):
                    out[b, j] += w[i, j] * c


#: a word's byte ``k`` set alone (``1 << 8k``) times this has ``k`` in its top byte
_BYTE_INDEX = np.uint64(0x0001020304050607)
#: a word of 0/1 bytes times this has their sum in its top byte
_BYTE_SUM = np.uint64(0x0101010101010101)
_TOP = np.uint64(56)


@njit(cache=True, nogil=True)
def list_spikes(flags, out, offset, count):
    """Append ``offset + i`` for every nonzero ``flags[i]`` (``[n]``, one byte each, 0 or 1) to
    ``out`` from position ``count``, in ascending order; returns the new count. Reads eight
    flags at a time (few neurons spike in a step) and takes a word's set bytes lowest first
    without a test per byte."""
    n = flags.shape[0]
    whole = n - n % 8
    words = flags[:whole].view(np.uint64)
    for w in range(words.shape[0]):
        word = words[w]
        while word:
            low = word & (~word + np.uint64(1))  # the lowest set bit: byte k's, 1 << 8k
            out[count] = offset + 8 * w + np.int64((low * _BYTE_INDEX) >> _TOP)
            count += 1
            word ^= low
    for i in range(whole, n):
        if flags[i]:
            out[count] = offset + i
            count += 1
    return count


@njit(cache=True, nogil=True)
def count_spikes(flags):
    """The number of nonzero ``flags [n]`` (one byte each, 0 or 1), eight at a time: a word's
    bytes are summed by one multiply (no byte carries)."""
    n = flags.shape[0]
    whole = n - n % 8
    words = flags[:whole].view(np.uint64)
    count = 0
    for w in range(words.shape[0]):
        if words[w]:
            count += (words[w] * _BYTE_SUM) >> _TOP
    for i in range(whole, n):
        count += flags[i]
    return count


#: load attempts the block waits for a step its helper thread is drawing, then draws it itself
SPIN_LIMIT = 4096


@njit(cache=True, nogil=True)
def take_spikes(zbuf, t, ready, nxt, z, spk, nspk):
    """Step ``t``'s spikes of a population drawn ahead by a helper thread (flags ``zbuf[t]``,
    published by ``ready[t]``) into ``z`` and the spike list; returns False, claiming the step
    from the counter ``nxt[0]``, when the block must compute the step itself: the helper has
    not got there, or is slow to finish it (it never waits on a descheduled helper for long).
    With no helper, ``ready`` is empty and every step is the block's."""
    if t >= ready.shape[0]:
        return False
    if atomics.load_acquire(ready, t) == 0:
        c = atomics.load_acquire(nxt, 0)
        while c <= t:  # the helper has not claimed step t: take it
            if atomics.compare_exchange(nxt, 0, c, t + 1):
                return False
            c = atomics.load_acquire(nxt, 0)
        spins = 0
        while atomics.load_acquire(ready, t) == 0:  # the helper is drawing step t
            spins += 1
            if spins > SPIN_LIMIT:
                return False
    batch = z.shape[0]
    count = 0
    for b in range(batch):
        z[b, :] = zbuf[t, b, :]
        count = list_spikes(z[b], spk, b * z.shape[1], count)
    nspk[0] = count
    return True


# ---------------------------------------------------------------------------- inputs


@njit(cache=True, nogil=True)
def source(z, ext, spk, nspk):
    """Spikes given from outside (``SpikeSource``)."""
    batch, n = z.shape
    count = 0
    for b in range(batch):
        for i in range(n):
            z[b, i] = ext[b, i]
            if ext[b, i]:
                spk[count] = b * n + i
                count += 1
    nspk[0] = count


# ---------------------------------------------------------------------------- event rows


@njit(parallel=True, cache=True, nogil=True)
def deliver_event_rows_dense(crow, pre, w, offset, out):
    rows = out.shape[0]
    n_post = w.shape[1]
    for r in prange(rows):
        for e in range(crow[r], crow[r + 1]):
            i = pre[e]
            for s in range(n_post):
                out[r, offset + s] += w[i, s]


@njit(parallel=True, cache=True, nogil=True)
def deliver_event_rows(crow, pre, post, length, w, out):
    rows = out.shape[0]
    for r in prange(rows):
        for e in range(crow[r], crow[r + 1]):
            i = pre[e]
            for s in range(length[i]):
                out[r, post[i, s]] += w[i, s]


@njit(parallel=True, cache=True, nogil=True)
def accumulate_event_rows_dense(crow, pre, adjoint, offset, parts):
    n_parts, _, n_post = parts.shape
    rows = crow.shape[0] - 1
    for k in prange(n_parts):  # each part sums a block of rows: no races, no sorting
        for r in range(rows * k // n_parts, rows * (k + 1) // n_parts):
            for e in range(crow[r], crow[r + 1]):
                i = pre[e]
                for s in range(n_post):
                    parts[k, i, s] += adjoint[r, offset + s]


@njit(parallel=True, cache=True, nogil=True)
def accumulate_event_rows(crow, pre, adjoint, post, length, parts):
    n_parts = parts.shape[0]
    rows = crow.shape[0] - 1
    for k in prange(n_parts):
        for r in range(rows * k // n_parts, rows * (k + 1) // n_parts):
            for e in range(crow[r], crow[r + 1]):
                i = pre[e]
                for s in range(length[i]):
                    parts[k, i, s] += adjoint[r, post[i, s]]
