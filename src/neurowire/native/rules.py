"""Numba kernels of structural rules run inside native blocks, and the column-index rebuild.

:func:`distance_rewiring` reproduces :class:`~neurowire.DistanceRewiring` operation by operation
from the same random numbers (candidate sampling, elimination before formation, stable
compaction, appending in attempt order), so that a fused native block and the host-side PyTorch
rule produce identical connectivity and identical event logs.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def rebuild_columns(ind, row_length, n_post, col_indptr, col_slot):
    """Column index by counting sort: live slots per column, row-major within each column."""
    capacity = ind.shape[1]
    col_indptr[:] = 0
    for i in range(ind.shape[0]):
        for s in range(row_length[i]):
            col_indptr[ind[i, s] + 1] += 1
    for j in range(n_post):
        col_indptr[j + 1] += col_indptr[j]
    fill = col_indptr[:n_post].copy()
    for i in range(ind.shape[0]):
        for s in range(row_length[i]):
            j = ind[i, s]
            col_slot[fill[j]] = i * capacity + s
            fill[j] += 1


@njit(cache=True, nogil=True)
def build_column_lists(ind, row_length, n_post, col_len):
    """The engine's column lists of a store: ``col_pre[j, :col_len[j]]`` the presynaptic rows
    of column ``j`` (ascending here; :func:`apply_column_events` keeps them current in another
    order). Returns ``col_pre`` int32 ``[n_post, C]``, ``C`` a power of two with room to grow.

    Unlike the store's column index (flat slots), entries name rows, which row compaction does
    not move: a change of a few synapses costs a few list operations, not a rebuild.
    """
    col_len[:] = 0
    for i in range(ind.shape[0]):
        for s in range(row_length[i]):
            col_len[ind[i, s]] += 1
    longest = 0
    for j in range(n_post):
        longest = max(longest, col_len[j])
    width = 8
    while width < longest + longest // 2:
        width *= 2
    col_pre = np.empty((n_post, width), np.int32)
    col_len[:] = 0
    for i in range(ind.shape[0]):
        for s in range(row_length[i]):
            j = ind[i, s]
            col_pre[j, col_len[j]] = i
            col_len[j] += 1
    return col_pre


@njit(cache=True, nogil=True)
def apply_column_events(ev_pre, ev_post, ev_kind, start, end, col_pre, col_len):
    """Bring column lists up to date with the events ``start .. end - 1`` of a rule call
    (``ev_kind`` -1 elimination, +1 formation, in the order the store saw them). Returns
    ``col_pre``, or a wider copy when a column outgrew it."""
    for e in range(start, end):
        i, j = ev_pre[e], ev_post[e]
        length = col_len[j]
        if ev_kind[e] < 0:
            for c in range(length):
                if col_pre[j, c] == i:
                    col_pre[j, c] = col_pre[j, length - 1]
                    col_len[j] = length - 1
                    break
        else:
            if length == col_pre.shape[1]:
                wider = np.empty((col_pre.shape[0], 2 * col_pre.shape[1]), np.int32)
                wider[:, : col_pre.shape[1]] = col_pre
                col_pre = wider
            col_pre[j, length] = i
            col_len[j] = length + 1
    return col_pre


@njit(cache=True, nogil=True)
def _grid_distance(pre, post, n_rows, n_cols, periodic):
    """float32-exact periodic distance, as ``Grid.distance`` computes it."""
    dx = np.float32(post % n_cols - pre % n_cols)
    dy = np.float32(post // n_cols - pre // n_cols)
    if periodic:
        hx, hy = np.float32(n_cols / 2), np.float32(n_rows / 2)
        dx = np.float32((dx + hx) - np.float32(n_cols) * math.floor((dx + hx) / n_cols)) - hx
        dy = np.float32((dy + hy) - np.float32(n_rows) * math.floor((dy + hy) / n_rows)) - hy
    return np.float32(math.sqrt(np.float64(dx * dx + dy * dy)))


@njit(cache=True, nogil=True)
def _move_overflowing(pre, n_pre, n_post):
    """Attempts beyond ``n_post`` in a row move to the next row with room (in attempt order)."""
    attempts = pre.shape[0]
    per_row = np.zeros(n_pre, np.int64)
    over = np.zeros(attempts, np.bool_)
    for a in range(attempts):
        i = pre[a]
        if per_row[i] >= n_post:
            over[a] = True
        else:
            per_row[i] += 1
    for a in range(attempts):
        if over[a]:
            i = pre[a]
            while per_row[i] >= n_post:
                i = (i + 1) % n_pre
            pre[a] = i
            per_row[i] += 1


@njit(cache=True, nogil=True)
def _link_rows(pre, head, last, nxt, rank):
    """Per row, its attempts as a list in attempt order (``head``/``last`` per row, ``nxt``
    per attempt) and each attempt's rank in its row; returns the largest rank."""
    top = 0
    for a in range(pre.shape[0]):
        i = pre[a]
        nxt[a] = -1
        if head[i] < 0:
            head[i] = a
            rank[a] = 0
        else:
            nxt[last[i]] = a
            rank[a] = rank[last[i]] + 1
            top = max(top, rank[a])
        last[i] = a
    return top


@njit(cache=True, nogil=True)
def distance_rewiring(
    u,
    ind,
    row_length,
    w,
    n_post,
    n_rows,
    n_cols,
    periodic,
    p_peak,
    two_sigma_sq,
    p_elim_dep,
    p_elim_pot,
    w_threshold,
    w_init,
    ev_pre,
    ev_post,
    ev_kind,
    ev_dist,
    n_events,
    counts,
    scratch,
):
    """One call of DistanceRewiring on a store whose only variable is ``w`` (the calling
    convention of :class:`.rule_kernel.RuleKernel`, one store).

    ``u [3, attempts]`` float64 are the call's random numbers. Events are appended to the
    ``ev_*`` buffers from position ``n_events[0]``, which the call advances; ``counts[0:3]``
    receives removed, added, failed. ``scratch [2, n_pre]`` int64 are two rows filled with -1
    (and left so): the attempts of a row are found through them, so a call costs in proportion
    to its attempts, not to ``n_pre``.
    """
    head, last = scratch[0], scratch[1]
    events = n_events[0]
    n_pre, capacity = ind.shape
    attempts = min(u.shape[1], n_pre * n_post)
    # rows: first n_post attempts of a row stay, later ones move to the next row with room
    pre = np.empty(attempts, np.int64)
    for a in range(attempts):
        pre[a] = min(np.int64(u[0, a] * n_pre), n_pre - 1)
    nxt = np.empty(attempts, np.int64)
    rank = np.empty(attempts, np.int64)
    if attempts and _link_rows(pre, head, last, nxt, rank) >= n_post:  # rare
        for a in range(attempts):
            head[pre[a]] = -1
            last[pre[a]] = -1
        _move_overflowing(pre, n_pre, n_post)
        _link_rows(pre, head, last, nxt, rank)
    # targets: Floyd's algorithm per row, attempts in order
    post = np.full(attempts, -1, np.int64)
    for a in range(attempts):
        i = pre[a]
        j = n_post - (rank[last[i]] + 1) + rank[a]
        t = min(np.int64(u[1, a] * np.float64(j + 1)), j)
        b = head[i]
        for _ in range(rank[a]):  # the row's earlier attempts
            if post[b] == t:
                t = j
                break
            b = nxt[b]
        post[a] = t
    for a in range(attempts):  # leave the scratch rows as they came
        head[pre[a]] = -1
        last[pre[a]] = -1
    # decisions, all taken on the connectivity before this call
    slot = np.full(attempts, -1, np.int64)
    eliminate = np.zeros(attempts, np.bool_)
    form = np.zeros(attempts, np.bool_)
    dist = np.zeros(attempts, np.float32)
    n_elim = 0
    for a in range(attempts):
        i = pre[a]
        for s in range(row_length[i]):
            if ind[i, s] == post[a]:
                slot[a] = s
                break
        dist[a] = _grid_distance(i, post[a], n_rows, n_cols, periodic)
        if slot[a] >= 0:
            p = p_elim_dep if w[i, slot[a]] < w_threshold else p_elim_pot
            eliminate[a] = u[2, a] < p
            n_elim += eliminate[a]
        else:
            d = np.float64(dist[a])
            form[a] = u[2, a] < p_peak * math.exp(-(d * d) / two_sigma_sq)
    # eliminations: log in row-major slot order, compact rows stably
    keys = np.empty(n_elim, np.int64)
    e = 0
    for a in range(attempts):
        if eliminate[a]:
            keys[e] = pre[a] * capacity + slot[a]
            e += 1
    keys.sort()
    removed = 0
    o = 0
    while o < n_elim:
        i = keys[o] // capacity
        keep = 0
        for s in range(row_length[i]):
            if o < n_elim and keys[o] == i * capacity + s:
                o += 1
                ev_pre[events] = i
                ev_post[events] = ind[i, s]
                ev_kind[events] = -1
                ev_dist[events] = _grid_distance(i, ind[i, s], n_rows, n_cols, periodic)
                events += 1
                removed += 1
            else:
                ind[i, keep] = ind[i, s]
                w[i, keep] = w[i, s]
                keep += 1
        for s in range(keep, row_length[i]):
            ind[i, s] = 0
            w[i, s] = 0
        row_length[i] = keep
    # formations, appended in attempt order
    added = 0
    failed = 0
    for a in range(attempts):
        if not form[a]:
            continue
        i = pre[a]
        if row_length[i] >= capacity:
            failed += 1
            continue
        ind[i, row_length[i]] = post[a]
        w[i, row_length[i]] = w_init
        row_length[i] += 1
        ev_pre[events] = i
        ev_post[events] = post[a]
        ev_kind[events] = 1
        ev_dist[events] = dist[a]
        events += 1
        added += 1
    counts[0], counts[1], counts[2] = removed, added, failed
    n_events[0] = events


@njit(cache=True, nogil=True)
def _remove_slot(ind, row_length, w, i, s):
    """Remove slot ``s`` of row ``i``, shifting the rest of the row down (stable)."""
    for t in range(s, row_length[i] - 1):
        ind[i, t] = ind[i, t + 1]
        w[i, t] = w[i, t + 1]
    row_length[i] -= 1
    ind[i, row_length[i]] = 0
    w[i, row_length[i]] = 0


@njit(cache=True, nogil=True)
def shared_fan_in_rewiring(
    u,
    ind0,
    len0,
    w0,
    cptr0,
    cslot0,
    ind1,
    len1,
    w1,
    cptr1,
    cslot1,
    n_post,
    n_rows,
    n_cols,
    periodic,
    max_fan_in,
    p_peak0,
    p_peak1,
    two_sigma_sq0,
    two_sigma_sq1,
    p_elim_dep,
    p_elim_pot,
    w_threshold,
    w_init,
    ev0_pre,
    ev0_post,
    ev0_kind,
    ev0_dist,
    ev1_pre,
    ev1_post,
    ev1_kind,
    ev1_dist,
    n_events,
    counts,
):
    """One call of SharedFanInRewiring on two stores (this projection 0, partner 1) whose only
    variable is the weight, keeping both column indices current after every change (the
    calling convention of :class:`.rule_kernel.RuleKernel`, two stores with their columns).

    ``u [attempts, 4]`` are the call's random numbers; events go to the ``ev*`` buffers from
    ``n_events[0]``/``n_events[1]``, which the call advances; ``counts[6]`` receives
    removed/added/failed of projection 0 then 1.
    """
    ne0, ne1 = n_events[0], n_events[1]
    n_pre0, n_pre1 = ind0.shape[0], ind1.shape[0]
    counts[:] = 0
    for a in range(u.shape[0]):
        j = min(np.int64(u[a, 0] * n_post), n_post - 1)
        slot = min(np.int64(u[a, 1] * max_fan_in), max_fan_in - 1)
        c0 = cptr0[j + 1] - cptr0[j]
        c1 = cptr1[j + 1] - cptr1[j]
        occupied = slot < c0 + c1
        if occupied:  # the slot's synapse, in projection 0 or 1
            k = 0 if slot < c0 else 1
            pos = slot if k == 0 else slot - c0
        else:  # empty slot: a candidate from either presynaptic population
            c = min(np.int64(u[a, 2] * (n_pre0 + n_pre1)), n_pre0 + n_pre1 - 1)
            k = 0 if c < n_pre0 else 1
            i = c if k == 0 else c - n_pre0
        ind, length, w, cptr, cslot = (
            (ind0, len0, w0, cptr0, cslot0) if k == 0 else (ind1, len1, w1, cptr1, cslot1)
        )
        ev_pre, ev_post, ev_kind, ev_dist = (
            (ev0_pre, ev0_post, ev0_kind, ev0_dist)
            if k == 0
            else (ev1_pre, ev1_post, ev1_kind, ev1_dist)
        )
        ne = ne0 if k == 0 else ne1
        if occupied:
            flat = cslot[cptr[j] + pos]
            i, s = flat // ind.shape[1], flat % ind.shape[1]
            p = p_elim_dep if np.float64(w[i, s]) < w_threshold else p_elim_pot
            if not u[a, 3] < p:
                continue
            ev_pre[ne], ev_post[ne], ev_kind[ne] = i, ind[i, s], -1
            ev_dist[ne] = _grid_distance(i, ind[i, s], n_rows, n_cols, periodic)
            _remove_slot(ind, length, w, i, s)
            counts[3 * k] += 1
        else:
            connected = False
            for s in range(length[i]):
                if ind[i, s] == j:
                    connected = True
                    break
            if connected:
                continue
            d32 = _grid_distance(i, j, n_rows, n_cols, periodic)
            d = np.float64(d32)
            p_peak, two_sigma_sq = (p_peak0, two_sigma_sq0) if k == 0 else (p_peak1, two_sigma_sq1)
            if not u[a, 3] < p_peak * math.exp(-d * d / two_sigma_sq):
                continue
            if length[i] >= ind.shape[1]:
                counts[3 * k + 2] += 1
                continue
            ind[i, length[i]] = j
            w[i, length[i]] = w_init
            length[i] += 1
            ev_pre[ne], ev_post[ne], ev_kind[ne], ev_dist[ne] = i, j, 1, d32
            counts[3 * k + 1] += 1
        rebuild_columns(ind, length, n_post, cptr, cslot)
        if k == 0:
            ne0 = ne + 1
        else:
            ne1 = ne + 1
    n_events[0], n_events[1] = ne0, ne1
