"""Numba kernels of factorised e-prop on the CPU, each mirroring a PyTorch reference.

=======================  ==============================================  ====================
kernel                   reference (PyTorch)                             parallel over
=======================  ==============================================  ====================
``forward`` (generated   :func:`.forward.input_events`,                  trials
from the models)         :func:`.forward.input_currents`,
                         :class:`.forward.HiddenDynamics`,
                         :func:`.forward.pseudo_derivative_`,
                         :func:`.forward.hidden_events`
``backward`` (generated the learning signal ``E_kappa B^T``,            blocks of trials
from the models)         :func:`.factorized.membrane_adjoint_`,          (dense tables'
                         :func:`.factorized.spike_products`              products: column
                                                                         tiles)
``deliver_*``,           ``neurowire.propagate.deliver_dense/_slots``,   rows ``t * B + b``
``accumulate_*``         ``accumulate_dense/_slots`` (readout, outputs)  blocks of rows
``leaky_scan_``          :func:`.forward.leaky_scan_`                    trials
=======================  ==============================================  ====================

The cost of a batch is the synaptic events (spikes x row length, padding included) plus a lean
per-neuron term: the input and recurrent projections are read as :class:`Layout` tables (the
stores' own slot rows when sparse, no ``N x N`` matrix); the forward kernel lists each step's
input and hidden spikes as it goes and delivers them row by row; the backward kernel computes
the learning signal, the recursions and the gradient products in one pass backwards in time
without storing ``H``; a dense table's products instead read ``H``, written over ``psi``, one
cache-sized column tile of the gradient at a time (a spike adds a whole row of an ``N x N``
gradient: event by event, each row would come from memory). Per neuron and step only ``psi`` is
stored, in arrays kept from batch to batch (:meth:`.compiled.EPropNetwork.buffer`); spikes are
kept only as events. The per-neuron loops have no branches, so they vectorise; spikes are
listed afterwards, 8 neurons tested at once. The kernels let LLVM fuse multiply-adds
(``fastmath={'contract'}``, nothing else), so they round slightly differently from PyTorch.

The delivery and accumulation kernels live in :mod:`neurowire.native.delivery`. Each kernel is
one parallel region without races: a thread owns whole rows, trials or column tiles, and
accumulations over rows or trials sum one private copy per block (no sorting of events).
Decaying state below the dtype's smallest normal number is set to zero (what flushing denormals
does), so worker threads never compute on denormals. Numba uses as many threads as
``torch.get_num_threads()``. ``tests/learning/test_eprop_native.py`` checks every kernel against
its reference.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

from ..codegen import generated_module
from ..events import SpikeEvents
from ..native import delivery
from ..native.builder import kernels_fingerprint
from .segments import Dialect, adjoint_groups, adjoint_lines, segment
from .tables import Layout, Weights, layouts


@njit(parallel=True, cache=True, nogil=True)
def _gather_events(lists, crow, pre):
    """``pre`` in time-major row order from per-trial lists ``lists [B, cap]`` (each trial's
    events in step order; row ``t * B + b`` holds ``crow[r + 1] - crow[r]`` of them)."""
    batch = lists.shape[0]
    steps = (crow.shape[0] - 1) // batch
    for b in prange(batch):
        src = 0
        for t in range(steps):
            r = t * batch + b
            for e in range(crow[r], crow[r + 1]):
                pre[e] = lists[b, src]
                src += 1


@njit(parallel=True, cache=True, nogil=True)
def _leaky_scan(u, decay, reverse, tiny):
    steps, batch, k = u.shape
    for b in prange(batch):
        for s in range(1, steps):
            t, prev = (steps - 1 - s, steps - s) if reverse else (s, s - 1)
            for j in range(k):
                x = u[t, b, j] + decay * u[prev, b, j]
                u[t, b, j] = 0.0 if abs(x) < tiny else x


# ---------------------------------------------------------------------- wrappers on tensors
def _threads() -> None:
    """Use as many numba threads as torch would (the trainer may limit them)."""
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


def _np(t: Tensor) -> np.ndarray:
    if t.device.type != "cpu" or not t.is_contiguous():
        raise ValueError("native kernels need contiguous CPU tensors")
    return t.numpy()


def _tiny(t: Tensor) -> np.floating:
    """The smallest normal number of ``t``'s dtype, as a numpy scalar of that dtype (so that
    float32 kernels compare in float32)."""
    return np.finfo(np.float32 if t.dtype == torch.float32 else np.float64).tiny


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


def _events(lists: Tensor, counts: Tensor, n: int) -> SpikeEvents:
    """:class:`SpikeEvents` on the rows ``t * B + b`` from per-trial lists ``lists [B, cap]``
    (int32, step order) and ``counts [T * B]`` (events per row)."""
    crow = torch.zeros(counts.numel() + 1, dtype=torch.int64)
    torch.cumsum(counts, 0, out=crow[1:])
    pre = torch.empty(int(crow[-1]), dtype=torch.int64)
    _gather_events(_np(lists), _np(crow), _np(pre))
    return SpikeEvents(None, pre, counts.numel(), n, crow=crow)


def forward(x: Tensor, w: Weights, enet) -> tuple[SpikeEvents, Tensor, SpikeEvents]:
    """``(input events, psi [T, B, N], hidden spike events)`` for input spikes
    ``x [B, T, n_in]`` (bool or 0/1 uint8), events on the rows ``t * B + b``.

    ``psi`` is the time-major view of trial-major ``[B, T, N]`` storage: each thread then
    writes one contiguous run per trial (about 1.6x faster than rows ``T`` strides apart,
    measured).

    One fused kernel (:func:`forward_source`), one thread per trial: per step it lists the
    input spikes of ``x[b, t]``, adds their table rows, runs the hidden populations' ``update``
    with ``i_syn`` = input + recurrent current and the pseudo-derivative, lists the step's
    spikes and delivers them through the recurrent rows; as :func:`.forward.input_events`,
    :func:`.forward.input_currents`, :class:`.forward.HiddenDynamics`,
    :func:`.forward.pseudo_derivative_` and :func:`.forward.hidden_events`. Both event lists
    are written per trial while ``x[b, t]`` and the step's spikes are in cache, then gathered
    into row order: no spike array is stored or scanned again. Cost: events x row length plus
    a per-neuron term.
    """
    _threads()
    layer = enet.hidden
    inp, rec = layouts(w, enet)
    pd = layer.pseudo_derivative_constants()
    batch, steps, n_in = x.shape
    x = _np(x.contiguous().view(torch.uint8) if x.dtype == torch.bool else x.contiguous())
    psi = enet.buffer("psi", (batch, steps, layer.n), enet.dtype)
    # room for every neuron spiking at every step: pages only become memory when written
    x_list = enet.buffer("x_list", (batch, steps * n_in), torch.int32)
    z_list = enet.buffer("z_list", (batch, steps * layer.n), torch.int32)
    x_count = torch.empty(steps * batch, dtype=torch.int64)
    z_count = torch.empty(steps * batch, dtype=torch.int64)
    kernel = forward_kernel(
        tuple(p.model for p in layer.populations), enet.net.dt, enet.dtype, inp.dense, rec.dense
    )
    kernel(
        x,
        _np(inp.weight),
        _np(inp.post),
        _np(inp.length),
        _np(rec.weight),
        _np(rec.post),
        _np(rec.length),
        _np(pd["inv_v_th"]),
        _np(pd["psi_scale"]),
        _tiny(psi),
        _np(psi),
        _np(x_list),
        _np(x_count),
        _np(z_list),
        _np(z_count),
    )
    x_ev = _events(x_list, x_count, n_in)
    return x_ev, psi.transpose(0, 1), _events(z_list, z_count, layer.n)


def prepare(enet) -> None:
    """Start numba's thread pool, compile (or load) the network's forward kernel and generate
    its backward kernel.

    Starting numba's OpenMP pool resets the process-wide OpenMP thread count, which PyTorch
    reads too: the caller's ``torch.get_num_threads()`` is restored afterwards.
    """
    threads = torch.get_num_threads()
    _events(torch.zeros(1, 1, dtype=torch.int32), torch.zeros(1, dtype=torch.int64), 1)
    torch.set_num_threads(threads)
    models = tuple(p.model for p in enet.hidden.populations)
    input_dense = any(not p.sparse for p in enet.inputs)
    recurrent_dense = any(not p.sparse for p in enet.recurrent)
    forward_kernel(models, enet.net.dt, enet.dtype, input_dense, recurrent_dense)
    backward_kernel(models, enet.net.dt, enet.dtype)


_FORWARD_KERNELS: dict[tuple, object] = {}


def forward_kernel(
    models: tuple, dt: float, dtype: torch.dtype, input_dense: bool, recurrent_dense: bool
):
    """The compiled forward kernel of a hidden layer made of ``models`` (one per population,
    in layer order) with dense or slot input and recurrent tables, generated once per key and
    cached on disk by numba."""
    key = (models, dt, dtype, input_dense, recurrent_dense)
    if key not in _FORWARD_KERNELS:
        ftype = "float32" if dtype == torch.float32 else "float64"
        source = forward_source(models, dt, ftype, input_dense, recurrent_dense)
        _FORWARD_KERNELS[key] = generated_module(source, "eprop_forward").forward
    return _FORWARD_KERNELS[key]


def _delivery(target: str, prefix: str, dense: bool) -> list[str]:
    """Lines adding row ``i`` of a :class:`Layout` (arrays ``{prefix}_w/_post/_len``) to
    ``target``."""
    if dense:
        return ["for j in range(n):", f"    {target}[j] += {prefix}_w[i, j]"]
    return [
        f"for s in range({prefix}_len[i]):",
        f"    {target}[{prefix}_post[i, s]] += {prefix}_w[i, s]",
    ]


def forward_source(
    models: tuple, dt: float, ftype: str, input_dense: bool = False, recurrent_dense: bool = False
) -> str:
    """numba source of ``forward(x, in_w, in_post, in_len, rec_w, rec_post, rec_len, inv_v_th,
    scale, tiny, psi, x_list, x_count, z_list, z_count)``, one thread per trial.

    Per step: the input spikes of ``x[b, t]`` are appended to the trial's list ``x_list[b]``
    (their number to ``x_count[t * B + b]``) and add their table rows to ``acc``; then for
    each neuron ``j`` of population ``k``: load the state, run population ``k``'s translated
    ``update`` with ``i_syn = acc[j] + rec[j]``, flush float state below ``tiny`` to 0 (threads
    do not inherit the caller's denormal flushing), store, write ``psi`` (0 while refractory)
    and the spike flag; then the step's spikes are appended to ``z_list[b]`` (counted in
    ``z_count``) and add their recurrent rows to ``rec``.
    """
    body = [
        "batch, steps, n = psi.shape",
        f"zero, one = np.{ftype}(0.0), np.{ftype}(1.0)",
        "for b in prange(batch):",
        "    acc = np.zeros(n, psi.dtype)",
        "    rec = np.zeros(n, psi.dtype)",
        "    zp = np.zeros(n, psi.dtype)",
        "    zrow = np.zeros(n, np.uint8)",
        "    xl, zl = x_list[b], z_list[b]",
        "    nx, nz = 0, 0",
    ]
    dialect = Dialect(
        target="numba",
        i_syn="(acc[j] + rec[j])",
        prev_z="zp[j]",
        ref="k{k}_{f}[jj]",
        alloc_float="    k{k}_{f} = np.zeros({n}, psi.dtype)",
        alloc_int="    k{k}_{f} = np.zeros({n}, np.int32)",
        store_float="{ref} = {final} if abs({final}) >= tiny else zero",
        store_int="{ref} = {final}",
        arrays={"inv_v_th": "inv_v_th[j]", "psi_scale": "scale[j]"},
    )
    segments, lo = [], 0
    for k, model in enumerate(models):
        seg = segment(k, model, dt, ftype, dialect)
        body += seg.alloc
        loop = [f"jj = j - {lo}", *seg.lines]
        loop += [  # no branches: the loop vectorises; the spikes are listed afterwards
            f"p = {seg.psi}",
            f"psi[b, t, j] = zero if {seg.refractory} else p",
            f"spiked = {seg.spiked}",
            "zrow[j] = spiked",
            "zp[j] = one if spiked else zero",
        ]
        segments.append((lo, lo + model.n, loop))
        lo += model.n
    body += [
        "    for t in range(steps):",
        "        acc[:] = 0.0",
        "        r = t * batch + b",
        "        first = nx",
        "        nx = list_spikes(x[b, t], xl, 0, nx)",
        "        x_count[r] = nx - first",
        "        for e in range(first, nx):",
        "            i = xl[e]",
    ]
    body += [f"            {ln}" for ln in _delivery("acc", "in", input_dense)]
    for lo, hi, loop in segments:
        body.append(f"        for j in range({lo}, {hi}):")
        body += [f"            {ln}" for ln in loop]
    body += [
        "        first = nz",
        "        nz = list_spikes(zrow, zl, 0, nz)",
        "        z_count[r] = nz - first",
        "        rec[:] = 0.0",
        "        for e in range(first, nz):",
        "            i = zl[e]",
    ]
    body += [f"            {ln}" for ln in _delivery("rec", "rec", recurrent_dense)]
    header = "\n".join(f"# population {k}: {type(m).__name__}" for k, m in enumerate(models))
    tables = f"# input table: {'dense' if input_dense else 'slots'}; recurrent table: " + (
        "dense" if recurrent_dense else "slots"
    )
    # the kernels' digest: numba's cache of this module would not see an edit of list_spikes
    return (
        '"""Generated by neurowire.learning.native: e-prop forward pass of a hidden layer."""\n'
        f"{header}\n{tables}\n# kernels {kernels_fingerprint()}\n"
        "import math\n\nimport numpy as np\nfrom numba import njit, prange\n\n"
        "from neurowire.native.delivery import list_spikes\n\n\n"
        "@njit(parallel=True, cache=True, nogil=True, fastmath={'contract'})\n"
        "def forward(x, in_w, in_post, in_len, rec_w, rec_post, rec_len, inv_v_th, scale, "
        "tiny, psi, x_list, x_count, z_list, z_count):\n" + "".join(f"    {ln}\n" for ln in body)
    )


#: the largest ``m * n * k`` of a matrix product that OpenBLAS (scipy's, which numba calls)
#: runs on the calling thread: larger ones would call for helper threads from each kernel thread
BLAS_SINGLE_THREAD = 65536 * 4

#: bytes of one column tile of a dense gradient ``[n_pre, width]`` (about a core's L2)
TILE_BYTES = 1 << 20

#: columns of a tile are a multiple of this: LLVM vectorises the row loop 64 floats at a time
#: (a shorter row runs its scalar remainder loop: 16 columns measured 1.6x slower per column)
TILE_QUANTUM = 64


def signal_block(n_out: int, n: int) -> int:
    """Steps of the learning signal computed at once: one product ``[steps, K] @ [K, N]`` on
    the calling thread, at least 8 and at most 64 steps."""
    return max(8, min(64, BLAS_SINGLE_THREAD // max(1, n_out * n)))


def signal_strips(n_out: int, n: int, block: int) -> int:
    """Column strips of ``B^T [K, N]`` multiplied one by one, so that every product
    ``[block, K] @ [K, width]`` stays within :data:`BLAS_SINGLE_THREAD` (1 while ``N`` allows)."""
    strips = 1
    while strips < n and block * n_out * -(-n // strips) > BLAS_SINGLE_THREAD:
        strips += 1
    return strips


def tile_width(n_pre: int, n: int, itemsize: int, threads: int) -> int:
    """Columns of one tile of a dense gradient ``[n_pre, n]``: a multiple of
    :data:`TILE_QUANTUM` with ``n_pre x width`` within :data:`TILE_BYTES` where that allows
    one quantum, and at least as many tiles as threads where ``n`` allows."""
    q = TILE_QUANTUM
    width = max(q, TILE_BYTES // max(1, n_pre * itemsize) // q * q)
    tiles = max(threads, -(-n // width))
    per_tile = -(-n // tiles)
    return min(n, -(-per_tile // q) * q)


BACKWARD_TEMPLATE = """
@njit(parallel=True, cache=True, nogil=True, fastmath={'contract'})
def backward(
    psi, e_kappa, fb_strips, reg, alpha, rho, beta, tiny, block,
    in_crow, in_pre, in_dense, in_post, in_len,
    z_crow, z_pre, rec_dense, rec_post, rec_len,
    unit, g_in, g_rec, g_in1, g_rec1, h_out, h1_out,
):
    batch, steps, n = psi.shape
    n_strips, n_out, width = fb_strips.shape
    keep_h = in_dense or rec_dense
    zero = np.zeros(1, psi.dtype)[0]
    one = zero + 1
    n_parts = g_in.shape[0]
    for k in prange(n_parts):  # part k owns a block of trials and its own gradient copies
        lam = np.zeros((block, n), psi.dtype)
        strip = np.zeros((block, width if n_strips > 1 else 1), psi.dtype)
        q = np.zeros(n, psi.dtype)
        h = np.zeros(n, psi.dtype)
        q1 = np.zeros(n, psi.dtype)
        h1 = np.zeros(n, psi.dtype)
        for b in range(batch * k // n_parts, batch * (k + 1) // n_parts):
            q[:] = zero
            h[:] = zero
            q1[:] = zero
            h1[:] = zero
            for t in range(steps - 1, -1, -1):
                s = t % block
                if n_out and (s == block - 1 or t == steps - 1):  # steps t - s .. t
                    if n_strips == 1:
                        np.dot(e_kappa[b, t - s : t + 1], fb_strips[0], lam[: s + 1])
                    else:
                        for c in range(n_strips):
                            np.dot(e_kappa[b, t - s : t + 1], fb_strips[c], strip[: s + 1])
                            j1 = min(n, (c + 1) * width)
                            lam[: s + 1, c * width : j1] = strip[: s + 1, : j1 - c * width]
@ADJOINT@
                if unit:
@UNIT@
                if keep_h:
                    h_out[b, t] = h
                    if unit:
                        h1_out[b, t] = h1
                r = t * batch + b  # input spikes of step t drive H_t
                if not in_dense:
                    for e in range(in_crow[r], in_crow[r + 1]):
                        i = in_pre[e]
                        for c in range(in_len[i]):
                            g_in[k, i, c] += h[in_post[i, c]]
                        if unit:
                            for c in range(in_len[i]):
                                g_in1[k, i, c] += h1[in_post[i, c]]
                if t == 0 or rec_dense:
                    continue
                r -= batch  # hidden spikes of step t - 1 drive H_t
                for e in range(z_crow[r], z_crow[r + 1]):
                    i = z_pre[e]
                    for c in range(rec_len[i]):
                        g_rec[k, i, c] += h[rec_post[i, c]]
                    if unit:
                        for c in range(rec_len[i]):
                            g_rec1[k, i, c] += h1[rec_post[i, c]]
"""


_BACKWARD_KERNELS: dict[tuple, object] = {}


def backward_kernel(models: tuple, dt: float, dtype: torch.dtype):
    """The compiled backward kernel of a hidden layer made of ``models`` (see
    :func:`backward_source`), generated once per key and cached on disk by numba."""
    key = (models, dt, dtype)
    if key not in _BACKWARD_KERNELS:
        ftype = "float32" if dtype == torch.float32 else "float64"
        source = backward_source(models, dt, ftype)
        _BACKWARD_KERNELS[key] = generated_module(source, "eprop_backward").backward
    return _BACKWARD_KERNELS[key]


def backward_source(models: tuple, dt: float, ftype: str) -> str:
    """numba source of ``backward(psi, e_kappa, fb_strips, reg, alpha, rho, beta, tiny, block,
    in_crow, in_pre, in_dense, in_post, in_len, z_crow, z_pre, rec_dense, rec_post, rec_len,
    unit, g_in, g_rec, g_in1, g_rec1, h_out, h1_out)``, the pass of :func:`backward`: one
    thread per block of trials, each with its own gradient copy of the slot tables
    (``g_* [parts, n_pre, width]``); ``psi [B, T, N]``, ``e_kappa [B, T, K]``,
    ``fb_strips [S, K, width]`` (``B^T`` in column strips, zero-padded).

    Per trial, backwards in time: every ``block`` steps the learning signal
    ``Lambda = E_kappa B^T`` of the block's steps (one BLAS product per strip into a
    ``[block, N]`` array that stays in cache); per step and neuron the models' translated
    ``eprop_adjoint`` with ``Lambda_t + R`` (and, if ``unit``, with ``Lambda = 1``), adjoint
    state flushed below ``tiny``; then the input events of step ``t`` and the hidden events of
    step ``t - 1`` add ``H_t`` at their rows' slots. A dense table's products are left to
    :func:`_accumulate_tiles`: ``H_t`` (and ``H1_t``) are written to ``h_out[b, t]``
    (``h1_out``) instead, when a table is dense.
    """
    arrays = {"alpha": "alpha[j]", "rho": "rho[j]", "beta": "beta[j]"}
    store = "{ref} = zero if abs({final}) < tiny else {final}"
    groups = adjoint_groups(models)
    task, unit = [], []
    for g, (model, lo, hi) in enumerate(groups):
        # one definition for the whole layer: a loop over all neurons, the same for every size
        loop = "for j in range(n):" if len(groups) == 1 else f"for j in range({lo}, {hi}):"
        refs = {"h": "h[j]", "q": "q[j]"}
        lines = ["lm = lam[s, j] + reg[j]  # Lambda_t + R", "p = psi[b, t, j]"]
        lines += adjoint_lines(model, dt, ftype, "numba", refs, "p", "lm", arrays, store, f"a{g}_")
        task += [loop] + [f"    {ln}" for ln in lines]
        refs = {"h": "h1[j]", "q": "q1[j]"}
        lines = ["p = psi[b, t, j]"]
        lines += adjoint_lines(model, dt, ftype, "numba", refs, "p", "one", arrays, store, f"u{g}_")
        unit += [loop] + [f"    {ln}" for ln in lines]
    header = "\n".join(
        f"# neurons {lo}..{hi - 1}: {type(m).eprop_adjoint.__qualname__}" for m, lo, hi in groups
    )
    if len(groups) == 1:
        header = f"# all neurons: {type(groups[0][0]).eprop_adjoint.__qualname__}"
    code = BACKWARD_TEMPLATE.lstrip("\n")
    code = code.replace("@ADJOINT@", "\n".join(" " * 16 + ln for ln in task))
    code = code.replace("@UNIT@", "\n".join(" " * 20 + ln for ln in unit))
    return (
        '"""Generated by neurowire.learning.native: factorised e-prop backward pass."""\n'
        f"{header}\n"
        "import numpy as np\nfrom numba import njit, prange\n\n\n" + code
    )


@njit(parallel=True, cache=True, nogil=True, fastmath={"contract"})
def _accumulate_tiles(crow, pre, shift, h, g):
    """``g[c, i, j - c w] += H[r + shift, j]`` for every event ``(r, i)`` and every column ``j``
    of tile ``c`` (rows ``r = t * B + b``; ``h [B, T, N]`` trial-major; ``g [tiles, n_pre, w]``,
    one contiguous block per tile, so that no power-of-two row stride maps a tile onto a few
    cache sets), one thread per tile: a tile stays in cache while every event adds its row,
    and every entry is summed in row order whatever the number of threads."""
    batch, steps, n = h.shape
    n_tiles, _, width = g.shape
    rows = batch * steps - shift
    for c in prange(n_tiles):
        j0 = c * width
        w = min(n, j0 + width) - j0
        tile = g[c]
        for r in range(rows):
            hr = h[(r + shift) % batch, (r + shift) // batch, j0 : j0 + w]
            for e in range(crow[r], crow[r + 1]):
                row = tile[pre[e]]
                for j in range(w):
                    row[j] += hr[j]


def _dense_product(events: SpikeEvents, shift: int, h: Tensor, n_pre: int) -> Tensor:
    """``g [n_pre, N]``: every event ``(r, i)`` adds ``H`` of row ``r + shift`` (``h [B, T, N]``)
    to row ``i``; see :func:`_accumulate_tiles`."""
    n = h.shape[2]
    if not events.count:
        return torch.zeros(n_pre, n, dtype=h.dtype)
    width = tile_width(n_pre, n, h.element_size(), numba.get_num_threads())
    tiles = torch.zeros(-(-n // width), n_pre, width, dtype=h.dtype)
    crow = events.row_pointers()
    _accumulate_tiles(_np(crow), _np(events.pre), shift, _np(h), _np(tiles))
    return tiles.transpose(0, 1).reshape(n_pre, -1)[:, :n].contiguous()


def _strips(feedback: Tensor, n: int, block: int, dtype: torch.dtype) -> Tensor:
    """``B^T [K, N]`` (``feedback [N, K]``) as ``[S, K, width]`` column strips, zero-padded; see
    :func:`signal_strips`."""
    n_out = feedback.shape[1]
    strips = signal_strips(n_out, n, block)
    width = -(-n // strips)
    out = torch.zeros(strips * width, n_out, dtype=dtype)
    out[:n] = feedback
    return out.view(strips, width, n_out).transpose(1, 2).contiguous()


def backward(
    psi: Tensor,
    e_kappa: Tensor,
    reg: Tensor | None,
    x_events: SpikeEvents,
    z_events: SpikeEvents,
    w: Weights,
    enet,
    unit: bool,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Gradients of the input and recurrent projections in one pass backwards in time.

    ``psi [T, B, N]`` as :func:`forward` returns it (a view of trial-major storage). Per trial:
    the learning signal ``Lambda_t = B E_kappa,t`` (``e_kappa [T, B, K]``, the
    kappa-filtered error; ``B^T = w.feedback``) plus ``reg [N]`` (``R``, or None), the
    recursions of :func:`.factorized.membrane_adjoint_` giving ``H_t [N]``, and at once the
    products of :func:`.factorized.spike_products` for slot tables: input events of step ``t``
    and hidden events (``z_events``, not delayed) of step ``t - 1`` add ``H_t`` at their rows'
    targets. A dense table instead gets ``H`` written over ``psi`` (which is consumed) and
    its products from :func:`_dense_product`, column tile by column tile. Returns
    ``(task, unit)`` gradients by projection name (``unit``: the part for ``Lambda = 1``,
    empty unless ``unit``); trials are split into one block per thread.
    """
    _threads()
    layer = enet.hidden
    inp, rec = layouts(w, enet)
    steps, batch, n = psi.shape
    psi = psi.transpose(0, 1)  # [B, T, N], contiguous when it comes from forward()
    parts = _parts(batch)
    none = torch.zeros(1, 1, 1, dtype=psi.dtype)

    def slot_grad(lay: Layout, on: bool) -> Tensor:
        return torch.zeros(parts, *lay.weight.shape, dtype=psi.dtype) if on else none

    g_in, g_rec = slot_grad(inp, not inp.dense), slot_grad(rec, not rec.dense)
    g_in1, g_rec1 = slot_grad(inp, unit and not inp.dense), slot_grad(rec, unit and not rec.dense)
    dense = inp.dense or rec.dense
    h1 = enet.buffer("h1", tuple(psi.shape), psi.dtype) if dense and unit else none
    reg = torch.zeros(n, dtype=psi.dtype) if reg is None else reg.to(psi.dtype).contiguous()
    block = signal_block(w.feedback.shape[1], n)
    fb = _strips(w.feedback.to(psi.dtype), n, block, psi.dtype)
    e_kappa = e_kappa.to(psi.dtype).transpose(0, 1).contiguous()  # [B, T, K]: one run per trial
    models = tuple(p.model for p in layer.populations)
    backward_kernel(models, enet.net.dt, psi.dtype)(
        _np(psi), _np(e_kappa), _np(fb), _np(reg),
        _np(layer.alpha), _np(layer.rho), _np(layer.beta), _tiny(psi), block,
        _np(x_events.row_pointers()), _np(x_events.pre), inp.dense, _np(inp.post),
        _np(inp.length),
        _np(z_events.row_pointers()), _np(z_events.pre), rec.dense, _np(rec.post),
        _np(rec.length),
        unit, _np(g_in), _np(g_rec), _np(g_in1), _np(g_rec1), _np(psi if dense else none),
        _np(h1),
    )  # fmt: skip

    def grads(lay: Layout, g: Tensor, h: Tensor, events: SpikeEvents, shift: int) -> dict:
        if lay.dense:
            return lay.split(_dense_product(events, shift, h, lay.weight.shape[0]))
        return lay.split(g.sum(0))

    task = {**grads(inp, g_in, psi, x_events, 0), **grads(rec, g_rec, psi, z_events, batch)}
    if not unit:
        return task, {}
    return task, {**grads(inp, g_in1, h1, x_events, 0), **grads(rec, g_rec1, h1, z_events, batch)}


def leaky_scan_(u: Tensor, decay: float, reverse: bool = False) -> Tensor:
    """Same as :func:`.forward.leaky_scan_` for a scalar decay (``u [T, B, K]``)."""
    _threads()
    if u.shape[0] > 1:
        _leaky_scan(_np(u), decay, reverse, _tiny(u))
    return u
