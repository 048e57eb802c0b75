"""numba kernels of the sparse linear layer (:mod:`neurowire.nn.functional`) on the CPU.

The layer computes ``y[r, ind[i, s]] += x[r, i] * w[i, s]`` over the live slots ``s <
length[i]`` of a store's rows (input features ``i``) for every row ``r`` of an input ``x [R,
n_in]``. Its input arrives in one of two forms:

* *events*, for spikes (every nonzero input is 1): ``crow [R + 1]`` row pointers and ``feat
  [E]`` the active features of each row, ascending (:func:`count_row_events`,
  :func:`fill_row_events`); the forward pass is
  :func:`neurowire.native.delivery.deliver_event_rows`, the weight gradient
  :func:`accumulate_feature_blocks`;
* *values*, any real input ``x [R, n_in]`` read in place, zeros skipped
  (:func:`deliver_value_rows`, :func:`accumulate_value_blocks`).

Row-parallel kernels (forward, input gradient) write only their own rows of the output, and the
weight-gradient kernels give each thread a block of input features, so none needs atomics.
Every kernel reads only live slots; the weight gradient arrives zeroed, so padding slots stay
exactly 0.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

#: rows of the input handled together by the row-blocked kernels: each weight row is read once
#: per block, and the block's rows of the output (or its gradient) stay in cache
ROW_BLOCK = 16


@njit(parallel=True, cache=True, nogil=True)
def count_row_events(x, count):
    """``count[r]`` = nonzero entries of row ``r`` of ``x [R, n]``; returns how many of them
    differ from 1 (0 for spikes)."""
    rows, n = x.shape
    other = 0
    for r in prange(rows):
        c = 0
        o = 0
        for i in range(n):
            v = x[r, i]
            if v != 0:
                c += 1
                if v != 1:
                    o += 1
        count[r] = c
        other += o
    return other


@njit(parallel=True, cache=True, nogil=True)
def fill_row_events(x, crow, feat):
    """``feat[crow[r]:crow[r + 1]]`` = the nonzero columns of row ``r`` of ``x``, ascending."""
    rows, n = x.shape
    for r in prange(rows):
        e = crow[r]
        for i in range(n):
            if x[r, i] != 0:
                feat[e] = i
                e += 1


@njit(parallel=True, cache=True, nogil=True)
def deliver_value_rows(x, post, length, w, out):
    """``out[r, post[i, s]] += x[r, i] * w[i, s]`` for every nonzero ``x [R, n_in]``; a block
    of rows per thread."""
    rows, n_in = x.shape
    blocks = (rows + ROW_BLOCK - 1) // ROW_BLOCK
    for b in prange(blocks):
        r0 = b * ROW_BLOCK
        r1 = min(rows, r0 + ROW_BLOCK)
        for i in range(n_in):
            for r in range(r0, r1):
                v = x[r, i]
                if v != 0:
                    for s in range(length[i]):
                        out[r, post[i, s]] += v * w[i, s]


@njit(parallel=True, cache=True, nogil=True)
def gather_rows(grad_out, post, length, w, grad_in):
    """``grad_in[r, i] = sum_s grad_out[r, post[i, s]] * w[i, s]`` (``grad_in [R, n_in]``,
    every entry written); a block of rows per thread."""
    rows, n_in = grad_in.shape
    zero = np.zeros(1, grad_in.dtype)[0]
    blocks = (rows + ROW_BLOCK - 1) // ROW_BLOCK
    for b in prange(blocks):
        r0 = b * ROW_BLOCK
        r1 = min(rows, r0 + ROW_BLOCK)
        for i in range(n_in):
            for r in range(r0, r1):
                acc = zero
                for s in range(length[i]):
                    acc += grad_out[r, post[i, s]] * w[i, s]
                grad_in[r, i] = acc


@njit(parallel=True, cache=True, nogil=True)
def accumulate_feature_blocks(crow, feat, grad_out, post, length, bounds, chunk, grad_w):
    """``grad_w[i, s] += sum over events (r, i) of grad_out[r, post[i, s]]``.

    Rows are taken ``chunk`` at a time (a chunk of ``grad_out`` stays in cache while every
    thread reads it); within a chunk thread ``k`` owns the features ``bounds[k] <= i <
    bounds[k + 1]`` and finds them in each row by bisection (``feat`` ascending within a row).
    """
    rows = crow.shape[0] - 1
    for c0 in range(0, rows, chunk):
        c1 = min(rows, c0 + chunk)
        for k in prange(bounds.shape[0] - 1):
            lo, hi = bounds[k], bounds[k + 1]
            for r in range(c0, c1):
                start, stop = crow[r], crow[r + 1]
                if start == stop:
                    continue
                e = start + np.searchsorted(feat[start:stop], lo)
                while e < stop and feat[e] < hi:
                    i = feat[e]
                    for s in range(length[i]):
                        grad_w[i, s] += grad_out[r, post[i, s]]
                    e += 1


@njit(parallel=True, cache=True, nogil=True)
def accumulate_value_blocks(x, grad_out, post, length, bounds, chunk, grad_w):
    """``grad_w[i, s] += sum_r x[r, i] * grad_out[r, post[i, s]]`` over nonzero ``x [R,
    n_in]``, ``chunk`` rows at a time; thread ``k`` owns the features ``bounds[k] <= i <
    bounds[k + 1]``."""
    rows = x.shape[0]
    for c0 in range(0, rows, chunk):
        c1 = min(rows, c0 + chunk)
        for k in prange(bounds.shape[0] - 1):
            lo, hi = bounds[k], bounds[k + 1]
            for r in range(c0, c1):
                for i in range(lo, hi):
                    v = x[r, i]
                    if v != 0:
                        for s in range(length[i]):
                            grad_w[i, s] += v * grad_out[r, post[i, s]]
