"""Factorised e-prop: backward recursions over postsynaptic quantities, products at spike events.

For LIF/ALIF the e-prop gradient of Bellec et al. 2020 (:mod:`.online`) equals, exactly
(the sums over time reordered, "fully postsynaptic variant")::

    Lambda_t = L_t + kappa Lambda_{t+1} (+ R)           readout filter moved onto the signal
    Q_t      = psi_{t+1} Lambda_{t+1} + (rho - beta psi_{t+1}) Q_{t+1},   Q_{T} = 0
    G_t      = psi_t (Lambda_t - beta Q_t)
    H_t      = G_t + alpha H_{t+1}                       alpha-adjoint, per postsynaptic neuron
    g_in[i, j]  = sum_{b,t} x_{i,t} H_{j,t}
    g_rec[i, j] = sum_{b,t} z_{i,t-1} H_{j,t}

(indices here are ``[pre i, post j]``, the store's layout). Nothing per synapse is stored: the
forward pass keeps ``[T, B, N]`` tensors, the recursions run over them, and the products run
over presynaptic spike events, costing ``spikes x fan-out`` (:mod:`neurowire.propagate`).

Because ``Lambda = E_kappa B^T`` where ``E_kappa`` is the kappa-filtered error, the output
gradient is ``z^T E_kappa`` and the readout filter is applied once, to ``[T, B, K]``.

The regulariser ``R_j`` needs the firing rates of the *whole* batch. With one chunk it is folded
into ``Lambda``; with several, the gradient being linear in ``Lambda``, each chunk also runs the
recursions with ``Lambda = 1`` and the driver adds ``R_j`` times that part at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..events import SpikeEvents
from ..propagate import accumulate_dense, accumulate_slots
from .compiled import EPropNetwork, HiddenLayer
from .forward import hot_loop, leaky_scan_
from .losses import Loss, RateRegularizer
from .tables import ProjectionWeights, Weights

if TYPE_CHECKING:
    from .engine import EPropEngine, ForwardPass


@dataclass(eq=False)
class ChunkResult:
    """Sums over one chunk of trials.

    ``task[name]``: gradient part driven by the loss (dense ``[n_pre, n_post]`` or slot layout
    ``[n_pre, capacity]``), including output projections and the bias; ``unit[name]``: the part
    to be multiplied by ``R[post]`` (empty when the regulariser was folded in or absent);
    ``spikes [N]``: spike counts; ``inputs [n_in]``: input spike counts (int64); ``loss``:
    ``E`` summed; ``y [T, B, K]``: readout.
    """

    task: dict[str, Tensor] = field(default_factory=dict)
    unit: dict[str, Tensor] = field(default_factory=dict)
    spikes: Tensor | None = None
    inputs: Tensor | None = None
    loss: Tensor | None = None
    y: Tensor | None = None


def membrane_adjoint_(
    psi: Tensor, lam: Tensor, layer: HiddenLayer, threads: int | None = None
) -> Tensor:
    """``H [T, B, N]`` from ``psi`` and ``Lambda`` (regulariser included), in place on ``lam``:
    the hidden models' ``eprop_adjoint`` run backwards over all steps, vectorised over time
    (tested equal to the definition)."""
    steps = lam.shape[0]
    p = lam.mul_(psi)  # P_t = psi_t Lambda_t
    if layer.adaptive:
        d = torch.addcmul(layer.rho, psi, layer.beta, value=-1.0)  # rho - beta psi
        q = torch.empty_like(p)
        q[-1].zero_()
        with hot_loop(threads):
            for t in range(steps - 2, -1, -1):
                torch.addcmul(p[t + 1], d[t + 1], q[t + 1], out=q[t])
        del d
        p.sub_(q.mul_(psi).mul_(layer.beta))  # G_t = P_t - beta psi_t Q_t
        del q
    leaky_scan_(p, layer.alpha, reverse=True, threads=threads)
    return p


def spike_products(
    enet: EPropNetwork,
    w: Weights,
    adjoint: Tensor,
    x_events: SpikeEvents,
    z_events: list[SpikeEvents],
) -> dict[str, Tensor]:
    """Gradients of the plastic projections for one adjoint ``H [T, B, N]``.

    ``z_events[k]``: the spikes of hidden population ``k`` at ``t - 1`` on the rows of ``t``.
    """
    flat = adjoint.reshape(-1, adjoint.shape[-1])
    out = {}
    for pw in w.inputs:
        out[pw.spec.name] = _product(pw, x_events, flat)
    pops = enet.hidden.populations
    for pw in w.recurrent:
        k = pops.index(pw.spec.projection.pre)
        out[pw.spec.name] = _product(pw, z_events[k], flat)
    return out


def _product(pw: ProjectionWeights, events: SpikeEvents, flat: Tensor) -> Tensor:
    if pw.dense is not None:
        g = accumulate_dense(events, flat, pw.spec.post_offset, pw.spec.n_post)
    else:
        g = accumulate_slots(events, flat, pw.post)
    if pw.dense is None:
        return g.mul_(pw.mask)
    if pw.spec.self_loop:
        g.fill_diagonal_(0.0)
    return g


def recurrent_events(enet: EPropNetwork, z: SpikeEvents, batch: int) -> list[SpikeEvents]:
    """Per hidden population, the events of ``z_{t-1}`` on the rows of step ``t``."""
    lay = enet.hidden
    delayed = z.delayed(batch)
    return [delayed.select(*lay.span(pop)) for pop in lay.populations]


def reference_backward(
    enet: EPropNetwork,
    w: Weights,
    fwd: ForwardPass,
    e_kappa: Tensor,
    reg: Tensor | None,
    unit: bool,
    lap: Callable[[str], None],
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The backward pass in PyTorch ops (see :meth:`.engine.EPropEngine.backward`): the
    learning signal ``Lambda = E_kappa B^T (+ R)``, :func:`membrane_adjoint_` and
    :func:`spike_products`; consumes ``fwd.psi``."""
    steps, batch, _ = e_kappa.shape
    lay, threads = enet.hidden, enet.step_threads
    lam = (e_kappa.reshape(-1, enet.n_out) @ w.feedback.t()).view(steps, batch, lay.n)
    if reg is not None:
        lam.add_(reg)
    rec_ev = recurrent_events(enet, fwd.z_events, batch)
    psi, fwd.psi = fwd.psi, None
    h = membrane_adjoint_(psi, lam, lay, threads)  # psi is kept, lam becomes H
    h1 = membrane_adjoint_(psi, torch.ones_like(psi), lay, threads) if unit else None
    del psi
    lap("backward")
    task = spike_products(enet, w, h, fwd.x_events, rec_ev)
    del h, lam
    unit_part = spike_products(enet, w, h1, fwd.x_events, rec_ev) if unit else {}
    lap("products")
    return task, unit_part


def factorized_chunk(
    enet: EPropNetwork,
    w: Weights,
    x: Tensor,
    targets: Tensor,
    loss: Loss,
    regularizer: RateRegularizer | None,
    fold: bool,
    engine: EPropEngine,
    timers: dict[str, float] | None = None,
    whole_batch: Callable[[Tensor], tuple[Tensor, int]] | None = None,
) -> ChunkResult:
    """Factorised e-prop over one chunk of trials.

    Args:
        x: input spikes ``[B, T, n_in]`` (bool).
        targets: as prepared by ``loss`` for these trials.
        regularizer: None for no rate regulariser.
        fold: ``R`` is known after the forward pass and folded into ``Lambda``: the chunk is
            the whole batch, or ``whole_batch`` gives the batch's spike counts; otherwise the
            unit-``Lambda`` part is returned in ``ChunkResult.unit``.
        engine: the :class:`~.engine.EPropEngine` that runs the steps.
        timers: if given, wall-clock seconds are added to its ``forward``, ``backward`` and
            ``products`` entries (``products``: where the engine runs them apart).
        whole_batch: maps this chunk's spike counts ``[N]`` to the whole batch's and its
            number of trials (data-parallel training: a sum over processes); None when the
            chunk is the batch.
    """
    clock = _Stopwatch(timers)
    batch, steps, _ = x.shape
    res = ChunkResult()
    fwd = engine.hidden_pass(enet, w, x)
    threads = enet.step_threads
    y = engine.readout(fwd.z_events, w, enet.kappa, steps, threads)
    err = loss.error(y, targets)
    res.y, res.loss = y, loss.value(y, targets)
    res.spikes, res.inputs = fwd.z_events.counts().to(y.dtype), fwd.x_events.counts()
    res.task[enet.bias_name] = err.sum((0, 1))
    clock.lap("forward")
    e_kappa = engine.scan_(err, enet.kappa, True, threads)  # sum_t'>=t kappa^(t'-t) err_t'
    del err  # e_kappa is err, filtered in place
    g_out = engine.accumulate(fwd.z_events, e_kappa.reshape(-1, enet.n_out))  # z^T E_kappa
    for spec in enet.outputs:
        res.task[spec.name] = g_out[spec.pre_offset : spec.pre_offset + spec.n_pre].clone()
    reg = None
    if regularizer is not None and fold:
        counts, trials = (res.spikes, batch) if whole_batch is None else whole_batch(res.spikes)
        reg = regularizer.factor(counts, trials, steps, enet.net.dt)
    unit = regularizer is not None and not fold
    task, unit_part = engine.backward(enet, w, fwd, e_kappa, reg, unit, clock.lap)
    res.task.update(task)
    res.unit.update(unit_part)
    return res


class _Stopwatch:
    """Adds the seconds since the last lap to ``timers[key]`` (nothing if ``timers`` is None)."""

    def __init__(self, timers: dict[str, float] | None) -> None:
        self.timers, self.tic = timers, time.perf_counter()

    def lap(self, key: str) -> None:
        if self.timers is not None:
            toc = time.perf_counter()
            self.timers[key] = self.timers.get(key, 0.0) + toc - self.tic
            self.tic = toc
