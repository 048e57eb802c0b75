"""Numba kernels of factorised e-prop on the CPU, each mirroring a PyTorch reference.

=======================  =============================================  =====================
kernel                   reference (PyTorch)                            parallel over
=======================  =============================================  =====================
``spike_events``         ``neurowire.propagate.SpikeEvents.from_dense``  rows ``t * B + b``
``deliver_*``            ``neurowire.propagate.deliver_dense/_slots``    rows ``t * B + b``
``forward`` (generated   :class:`.forward.HiddenDynamics` and           trials
from the models)         :func:`.forward.pseudo_derivative_`
``membrane_adjoint_``    :func:`.factorized.membrane_adjoint_`          trials
``accumulate_*``         ``neurowire.propagate.accumulate_dense/_slots``  blocks of rows
``leaky_scan_``          :func:`.forward.leaky_scan_`                   trials
=======================  =============================================  =====================

The delivery and accumulation kernels live in :mod:`neurowire.native.delivery`.
Each kernel is one parallel region without races: a thread owns whole rows or trials, and the
accumulations sum one private copy per block of rows (no sorting of events). The forward kernel
is generated from the hidden models' ``update`` (:func:`forward_source`); recurrent input is
delivered per spike (``spikes x N`` per step). Decaying state below the dtype's smallest normal
number is set to zero (what flushing denormals does), so worker threads never compute on
denormals. Numba uses as many threads as ``torch.get_num_threads()``.
``tests/learning/test_eprop_native.py`` checks every kernel against its reference.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

from ..codegen import ModelCodeError, Scalar, generated_module, translate
from ..native import delivery
from ..propagate import SpikeEvents
from .forward import GAMMA_PD


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
    """Same as :func:`neurowire.propagate.deliver_dense` (``out [R, N]``)."""
    _threads()
    if events.count:
        crow = events.row_pointers()
        delivery.deliver_event_rows_dense(
            _np(crow), _np(events.pre), _np(weight.contiguous()), post_offset, _np(out)
        )


def deliver_slots(out: Tensor, events, post: Tensor, length: Tensor, weight: Tensor) -> None:
    """Same as :func:`neurowire.propagate.deliver_slots`, over the first ``length[i]`` slots of
    row ``i``."""
    _threads()
    if events.count:
        crow = events.row_pointers()
        delivery.deliver_event_rows(
            _np(crow), _np(events.pre), _np(post), _np(length), _np(weight), _np(out)
        )


def _parts(n_rows: int) -> int:
    return max(1, min(numba.get_num_threads(), n_rows))


def accumulate_dense(events, adjoint: Tensor, post_offset: int, n_post: int) -> Tensor:
    """Same as :func:`neurowire.propagate.accumulate_dense`."""
    _threads()
    if not events.count:
        return torch.zeros(events.n, n_post, dtype=adjoint.dtype)
    parts = torch.zeros(_parts(events.n_rows), events.n, n_post, dtype=adjoint.dtype)
    crow = events.row_pointers()
    delivery.accumulate_event_rows_dense(
        _np(crow), _np(events.pre), _np(adjoint), post_offset, _np(parts)
    )
    return parts.sum(0)


def accumulate_slots(events, adjoint: Tensor, post: Tensor, length: Tensor) -> Tensor:
    """Same as :func:`neurowire.propagate.accumulate_slots` (slots beyond ``length`` stay 0)."""
    _threads()
    if not events.count:
        return torch.zeros(post.shape, dtype=adjoint.dtype)
    parts = torch.zeros(_parts(events.n_rows), *post.shape, dtype=adjoint.dtype)
    crow = events.row_pointers()
    delivery.accumulate_event_rows(
        _np(crow), _np(events.pre), _np(adjoint), _np(post), _np(length), _np(parts)
    )
    return parts.sum(0)


def spike_events(
    spikes: Tensor, batch_major: bool, shift: int = 0, start: int = 0, stop: int | None = None
) -> SpikeEvents:
    """Events of neurons ``start:stop`` of ``spikes`` (``[B, T, n]`` if ``batch_major`` else
    ``[T, B, n]``) on the time-major rows ``t * B + b``, spikes of step ``t - shift`` on row
    ``t``; same as :meth:`neurowire.propagate.SpikeEvents.from_dense` of the time-major array."""
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


def forward(current: Tensor, w_rec: Tensor, enet) -> tuple[Tensor, Tensor]:
    """``(psi, z)`` ``[T, B, N]`` for input current ``[T, B, N]``: the hidden populations'
    ``update`` (translated, see :func:`forward_source`) with recurrent input ``z_{t-1} W_rec``,
    then the pseudo-derivative, as :class:`.forward.HiddenDynamics` and
    :func:`.forward.pseudo_derivative_`."""
    _threads()
    layer = enet.hidden
    psi = torch.empty_like(current)
    z = torch.empty_like(current)
    kernel = forward_kernel(tuple(p.model for p in layer.populations), enet.net.dt, current.dtype)
    kernel(
        _np(current),
        _np(w_rec.contiguous()),
        _np(layer.v_th),
        _np(GAMMA_PD / layer.v_th),
        _tiny(current),
        _np(psi),
        _np(z),
    )
    return psi, z


_FORWARD_KERNELS: dict[tuple, object] = {}


def forward_kernel(models: tuple, dt: float, dtype: torch.dtype):
    """The compiled forward kernel of a hidden layer made of ``models`` (one per population,
    in layer order), generated once per (models, dt, dtype) and cached on disk by numba."""
    key = (models, dt, dtype)
    if key not in _FORWARD_KERNELS:
        source = forward_source(models, dt, "float32" if dtype == torch.float32 else "float64")
        _FORWARD_KERNELS[key] = generated_module(source, "eprop_forward").forward
    return _FORWARD_KERNELS[key]


def forward_source(models: tuple, dt: float, ftype: str) -> str:
    """numba source of ``forward(cur, w_rec, v_th, scale, tiny, psi, z)``, one thread per trial.

    Per step and neuron ``j`` of population ``k``: load the state, run population ``k``'s
    translated ``update`` with ``i_syn = cur[t, b, j] + rec[j]``, flush float state below
    ``tiny`` to 0 (threads do not inherit the caller's denormal flushing), store, and write
    ``psi`` (0 while refractory) and ``z``; then deliver the step's spikes through ``w_rec``
    into ``rec`` (``spikes x N`` per step).
    """
    body = [
        "steps, batch, n = cur.shape",
        "for b in prange(batch):",
        "    rec = np.zeros(n, cur.dtype)",
        "    zp = np.zeros(n, cur.dtype)",
    ]
    segments, lo = [], 0
    for k, model in enumerate(models):
        hi = lo + model.n
        probe = model.init_state(1, torch.device("cpu"), torch.float64)
        fields = [f for f in model.state_type._fields if f != "z"]
        for f in fields:
            kind = "np.int32" if not getattr(probe, f).is_floating_point() else "cur.dtype"
            body.append(f"    k{k}_{f} = np.zeros({model.n}, {kind})")
        spec = Scalar(
            state={f: f for f in model.state_type._fields},
            inputs={"i_syn": "(cur[t, b, j] + rec[j])"},
            constants=model.cached_constants(dt),
            float_type=ftype,
        )
        tr = translate(model, "update", spec, prefix=f"k{k}_s_")
        if tr.distance is None or "z" not in tr.assigned:
            raise ModelCodeError(
                f"{type(model).__name__}.update must set s.z = spike(distance, refractory) for "
                "e-prop"
            )
        loop = [f"jj = j - {lo}", f"k{k}_s_z_0 = zp[j]"]
        loop += [f"k{k}_s_{f}_0 = k{k}_{f}[jj]" for f in fields]
        loop += tr.lines
        for f in fields:
            if f in tr.assigned:
                final = tr.assigned[f]
                if getattr(probe, f).is_floating_point():
                    loop.append(f"k{k}_{f}[jj] = {final} if abs({final}) >= tiny else 0.0")
                else:
                    loop.append(f"k{k}_{f}[jj] = {final}")
        loop += [
            f"p = max(0.0, 1.0 - abs({tr.distance}) / v_th[j]) * scale[j]",
            f"psi[t, b, j] = 0.0 if {tr.refractory} else p",
            f"spiked = 1.0 if {tr.assigned['z']} else 0.0",
            "z[t, b, j] = spiked",
        ]
        segments.append((lo, hi, loop))
        lo = hi
    body.append("    for t in range(steps):")
    for lo, hi, loop in segments:
        body.append(f"        for j in range({lo}, {hi}):")
        body += [f"            {ln}" for ln in loop]
    body += [
        "        for j in range(n):",
        "            zp[j] = z[t, b, j]",
        "            rec[j] = 0.0",
        "        for i in range(n):",
        "            if zp[i] != 0.0:",
        "                for j in range(n):",
        "                    rec[j] += w_rec[i, j]",
    ]
    header = "\n".join(f"# population {k}: {type(m).__name__}" for k, m in enumerate(models))
    return (
        '"""Generated by neurowire.learning.native: e-prop forward pass of a hidden layer."""\n'
        f"{header}\nimport math\n\nimport numpy as np\nfrom numba import njit, prange\n\n\n"
        "@njit(parallel=True, cache=True, nogil=True)\n"
        "def forward(cur, w_rec, v_th, scale, tiny, psi, z):\n"
        + "".join(f"    {ln}\n" for ln in body)
    )


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
