"""Numba kernels of factorised e-prop on the CPU, each mirroring a PyTorch reference.

=======================  ===========================================  ========================
kernel                   reference (PyTorch)                          parallel over
=======================  ===========================================  ========================
``spike_events``         :meth:`.events.SpikeEvents.from_dense`       rows ``t * B + b``
``deliver_*``            :func:`.events.deliver_dense` / ``_slots``   rows ``t * B + b``
``forward``              :class:`.forward.HiddenDynamics` and         trials
                         :func:`.forward.pseudo_derivative_`
``membrane_adjoint_``    :func:`.factorized.membrane_adjoint_`        trials
``accumulate_*``         :func:`.events.accumulate_dense` / ``_slots``  blocks of rows, summed
``leaky_scan_``          :func:`.forward.leaky_scan_`                 trials
=======================  ===========================================  ========================

Each kernel is one parallel region without races: a thread owns whole rows or trials, and the
accumulations sum one private copy per block of rows (no sorting of events). Recurrent input is
delivered per spike (``spikes x N`` per step) from the effective matrix ``w_rec`` whose diagonal
holds the reset ``-v_th``. Decaying state below the dtype's smallest normal number is set to
zero (what flushing denormals does), so worker threads never compute on denormals. Numba uses as
many threads as ``torch.get_num_threads()``. ``tests/learning/test_eprop_native.py`` checks every
kernel against its reference.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

from .events import SpikeEvents
from .forward import GAMMA_PD


@njit(parallel=True, cache=True, nogil=True)
def _deliver_dense(crow, pre, w, offset, out):
    rows = out.shape[0]
    n_post = w.shape[1]
    for r in prange(rows):
        for e in range(crow[r], crow[r + 1]):
            i = pre[e]
            for s in range(n_post):
                out[r, offset + s] += w[i, s]


@njit(parallel=True, cache=True, nogil=True)
def _deliver_slots(crow, pre, post, length, w, out):
    rows = out.shape[0]
    for r in prange(rows):
        for e in range(crow[r], crow[r + 1]):
            i = pre[e]
            for s in range(length[i]):
                out[r, post[i, s]] += w[i, s]


@njit(parallel=True, cache=True, nogil=True)
def _accumulate_dense(crow, pre, adjoint, offset, parts):
    n_parts, _, n_post = parts.shape
    rows = crow.shape[0] - 1
    for k in prange(n_parts):  # each part sums a block of rows: no races, no sorting
        for r in range(rows * k // n_parts, rows * (k + 1) // n_parts):
            for e in range(crow[r], crow[r + 1]):
                i = pre[e]
                for s in range(n_post):
                    parts[k, i, s] += adjoint[r, offset + s]


@njit(parallel=True, cache=True, nogil=True)
def _accumulate_slots(crow, pre, adjoint, post, length, parts):
    n_parts = parts.shape[0]
    rows = crow.shape[0] - 1
    for k in prange(n_parts):
        for r in range(rows * k // n_parts, rows * (k + 1) // n_parts):
            for e in range(crow[r], crow[r + 1]):
                i = pre[e]
                for s in range(length[i]):
                    parts[k, i, s] += adjoint[r, post[i, s]]


@njit(parallel=True, cache=True, nogil=True)
def _count_events(a, batch_major, shift, lo, hi, counts):
    if batch_major:
        batch, steps = a.shape[0], a.shape[1]
    else:
        steps, batch = a.shape[0], a.shape[1]
    for r in prange(steps * batch):
        t = r // batch - shift
        b = r % batch
        c = 0
        if t >= 0:
            row = a[b, t] if batch_major else a[t, b]
            for j in range(lo, hi):
                c += row[j] != 0
        counts[r] = c


@njit(parallel=True, cache=True, nogil=True)
def _fill_events(a, batch_major, shift, lo, hi, crow, pre):
    if batch_major:
        batch, steps = a.shape[0], a.shape[1]
    else:
        steps, batch = a.shape[0], a.shape[1]
    for r in prange(steps * batch):
        t = r // batch - shift
        b = r % batch
        k = crow[r]
        if t >= 0 and crow[r + 1] > k:
            row = a[b, t] if batch_major else a[t, b]
            for j in range(lo, hi):
                if row[j] != 0:
                    pre[k] = j - lo
                    k += 1


@njit(parallel=True, cache=True, nogil=True)
def _forward(cur, w_rec, alpha, rho, beta, v_th, n_ref, scale, tiny, psi, z):
    steps, batch, n = cur.shape
    for b in prange(batch):
        v = np.zeros(n, cur.dtype)
        a = np.zeros(n, cur.dtype)
        z_prev = np.zeros(n, cur.dtype)
        rec = np.zeros(n, cur.dtype)  # W_rec z_{t-1} - v_th z_{t-1}
        until = np.full(n, -1.0, cur.dtype)  # last refractory step
        for t in range(steps):
            for j in range(n):  # branch-free, so that it vectorises
                vj = alpha[j] * v[j] + cur[t, b, j] + rec[j]
                aj = rho[j] * a[j] + z_prev[j]
                vj = vj if abs(vj) >= tiny else 0.0
                aj = aj if abs(aj) >= tiny else 0.0
                v[j] = vj
                a[j] = aj
                rec[j] = 0.0
                d = vj - v_th[j] - beta[j] * aj
                free = until[j] < t
                p = max(0.0, 1.0 - abs(d) / v_th[j]) * scale[j]
                psi[t, b, j] = p if free else 0.0
                s = 1.0 if (d > 0.0) and free else 0.0
                z[t, b, j] = s
                z_prev[j] = s
                until[j] = t + n_ref[j] if s != 0.0 else until[j]
            for i in range(n):
                if z_prev[i] != 0.0:
                    for j in range(n):
                        rec[j] += w_rec[i, j]


@njit(parallel=True, cache=True, nogil=True)
def _leaky_scan(u, decay, reverse, tiny):
    steps, batch, k = u.shape
    for b in prange(batch):
        for s in range(1, steps):
            t, prev = (steps - 1 - s, steps - s) if reverse else (s, s - 1)
            for j in range(k):
                x = u[t, b, j] + decay * u[prev, b, j]
                u[t, b, j] = 0.0 if abs(x) < tiny else x


@njit(parallel=True, cache=True, nogil=True)
def _adjoint(psi, lam, alpha, rho, beta, tiny, unit, h_unit):
    steps, batch, n = psi.shape
    for b in prange(batch):
        q = np.zeros(n, psi.dtype)
        h = np.zeros(n, psi.dtype)
        q1 = np.zeros(n, psi.dtype)
        h1 = np.zeros(n, psi.dtype)
        for t in range(steps - 1, -1, -1):
            for j in range(n):
                p = psi[t, b, j]
                lm = lam[t, b, j]
                hj = p * (lm - beta[j] * q[j]) + alpha[j] * h[j]  # G_t + alpha H_{t+1}
                qj = p * lm + (rho[j] - beta[j] * p) * q[j]  # Q_{t-1}
                h[j] = 0.0 if -tiny < hj < tiny else hj
                q[j] = 0.0 if -tiny < qj < tiny else qj
                lam[t, b, j] = h[j]
                if unit:
                    hj = p * (1.0 - beta[j] * q1[j]) + alpha[j] * h1[j]
                    qj = p + (rho[j] - beta[j] * p) * q1[j]
                    h1[j] = 0.0 if -tiny < hj < tiny else hj
                    q1[j] = 0.0 if -tiny < qj < tiny else qj
                    h_unit[t, b, j] = h1[j]


# ---------------------------------------------------------------------- wrappers on tensors
def _threads() -> None:
    """Use as many numba threads as torch would (the trainer may limit them)."""
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


def _np(t: Tensor) -> np.ndarray:
    if t.device.type != "cpu" or not t.is_contiguous():
        raise ValueError("native kernels need contiguous CPU tensors")
    return t.numpy()


def _tiny(t: Tensor) -> float:
    return float(torch.finfo(t.dtype).tiny)


def deliver_dense(out: Tensor, events, weight: Tensor, post_offset: int) -> None:
    """Same as :func:`.events.deliver_dense` (``out [R, N]``)."""
    _threads()
    if events.count:
        crow = events.row_pointers()
        _deliver_dense(_np(crow), _np(events.pre), _np(weight.contiguous()), post_offset, _np(out))


def deliver_slots(out: Tensor, events, post: Tensor, length: Tensor, weight: Tensor) -> None:
    """Same as :func:`.events.deliver_slots`, over the first ``length[i]`` slots of row ``i``."""
    _threads()
    if events.count:
        crow = events.row_pointers()
        _deliver_slots(_np(crow), _np(events.pre), _np(post), _np(length), _np(weight), _np(out))


def _parts(n_rows: int) -> int:
    return max(1, min(numba.get_num_threads(), n_rows))


def accumulate_dense(events, adjoint: Tensor, post_offset: int, n_post: int) -> Tensor:
    """Same as :func:`.events.accumulate_dense`."""
    _threads()
    if not events.count:
        return torch.zeros(events.n, n_post, dtype=adjoint.dtype)
    parts = torch.zeros(_parts(events.n_rows), events.n, n_post, dtype=adjoint.dtype)
    crow = events.row_pointers()
    _accumulate_dense(_np(crow), _np(events.pre), _np(adjoint), post_offset, _np(parts))
    return parts.sum(0)


def accumulate_slots(events, adjoint: Tensor, post: Tensor, length: Tensor) -> Tensor:
    """Same as :func:`.events.accumulate_slots` (slots beyond ``length`` stay 0)."""
    _threads()
    if not events.count:
        return torch.zeros(post.shape, dtype=adjoint.dtype)
    parts = torch.zeros(_parts(events.n_rows), *post.shape, dtype=adjoint.dtype)
    crow = events.row_pointers()
    _accumulate_slots(_np(crow), _np(events.pre), _np(adjoint), _np(post), _np(length), _np(parts))
    return parts.sum(0)


def spike_events(
    spikes: Tensor, batch_major: bool, shift: int = 0, start: int = 0, stop: int | None = None
) -> SpikeEvents:
    """Events of neurons ``start:stop`` of ``spikes`` (``[B, T, n]`` if ``batch_major`` else
    ``[T, B, n]``) on the time-major rows ``t * B + b``, spikes of step ``t - shift`` on row
    ``t``; same as :meth:`.events.SpikeEvents.from_dense` of the time-major array."""
    _threads()
    stop = spikes.shape[2] if stop is None else stop
    if batch_major:
        batch, steps = spikes.shape[0], spikes.shape[1]
    else:
        steps, batch = spikes.shape[0], spikes.shape[1]
    rows = steps * batch
    a = _np(spikes)
    counts = torch.empty(rows, dtype=torch.int64)
    _count_events(a, batch_major, shift, start, stop, _np(counts))
    crow = torch.zeros(rows + 1, dtype=torch.int64)
    torch.cumsum(counts, 0, out=crow[1:])
    pre = torch.empty(int(crow[-1]), dtype=torch.int64)
    _fill_events(a, batch_major, shift, start, stop, _np(crow), _np(pre))
    return SpikeEvents(None, pre, rows, stop - start, crow=crow)


def forward(current: Tensor, w_rec: Tensor, layer) -> tuple[Tensor, Tensor]:
    """``(psi, z)`` ``[T, B, N]`` for input current ``[T, B, N]``: the hidden dynamics of
    :class:`.forward.HiddenDynamics` followed by :func:`.forward.pseudo_derivative_`."""
    _threads()
    psi = torch.empty_like(current)
    z = torch.empty_like(current)
    _forward(
        _np(current),
        _np(w_rec.contiguous()),
        _np(layer.alpha),
        _np(layer.rho),
        _np(layer.beta),
        _np(layer.v_th),
        _np(layer.n_ref),
        _np(GAMMA_PD / layer.v_th),
        _tiny(current),
        _np(psi),
        _np(z),
    )
    return psi, z


def membrane_adjoint_(psi: Tensor, lam: Tensor, layer, unit: bool) -> tuple[Tensor, Tensor | None]:
    """``H`` in place on ``lam`` (and, if ``unit``, ``H`` for ``Lambda = 1``), as
    :func:`.factorized.membrane_adjoint_`."""
    _threads()
    h_unit = torch.empty_like(psi) if unit else torch.empty(1, 1, 1, dtype=psi.dtype)
    _adjoint(
        _np(psi),
        _np(lam),
        _np(layer.alpha),
        _np(layer.rho),
        _np(layer.beta),
        _tiny(psi),
        unit,
        _np(h_unit),
    )
    return lam, (h_unit if unit else None)


def leaky_scan_(u: Tensor, decay: float, reverse: bool = False) -> Tensor:
    """Same as :func:`.forward.leaky_scan_` for a scalar decay (``u [T, B, K]``)."""
    _threads()
    if u.shape[0] > 1:
        _leaky_scan(_np(u), decay, reverse, _tiny(u))
    return u
