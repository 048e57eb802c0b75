"""The e-prop forward pass: hidden dynamics, pseudo-derivative and readout.

The hidden neurons' equations are not written here: each hidden population runs its model's
``update`` (eagerly on tensors here, translated to numba in :mod:`.native`), fed with the input
current and the recurrent spikes. For the built-in LIF and ALIF this gives the convention below
(Bellec et al. 2020). State is zero at the start of every
trial; for steps ``t = 1..T``::

    v_t = alpha v_{t-1} + W_in x_t + W_rec z_{t-1} - v_th z_{t-1}
    a_t = rho a_{t-1} + z_{t-1};   A_t = v_th + beta a_t          (LIF: beta = 0)
    z_t = [v_t - A_t > 0] unless refractory (n_ref = round(tau_refrac/dt) steps after a spike)
    psi_t = (0.3 / v_th) max(0, 1 - |v_t - A_t| / v_th), 0 while refractory
    y_t = kappa y_{t-1} + W_out z_t + b

Unlike :class:`~neurowire.Simulator`, whose spikes reach their targets one step after emission,
the input ``x_t`` enters ``v_t`` in the *same* step (the e-prop convention); recurrent spikes
arrive one step later as above.

Only per-neuron quantities are stored, time-major: ``d = v - A`` ``[T, B, N]`` (``-inf`` while
refractory, so that ``psi`` and ``z`` vanish there; it becomes ``psi`` in place), spikes
``z [T, B, N]`` and ``y [T, B, K]``. Input currents for all steps are computed before the step
loop from the input spike events, the readout after it from the hidden spike events.
:mod:`.native` and :mod:`.triton` hold fused kernels of the same steps; :mod:`.engines`
chooses between them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import Tensor

from ..codegen import recording_spike_tests
from ..denormals import flush_denormals
from ..events import SpikeEvents
from ..neurons import LIF
from ..propagate import deliver_dense, deliver_slots
from .compiled import GAMMA_PD, EPropNetwork, HiddenLayer
from .tables import Weights, gather_weights

__all__ = [
    "HiddenDynamics",
    "HiddenState",
    "check_vectorised",
    "flush_denormals",
    "gather_weights",
    "hidden_events",
    "hidden_forward",
    "hidden_pass",
    "hot_loop",
    "input_currents",
    "input_events",
    "leaky_scan_",
    "pseudo_derivative_",
    "readout",
    "simulate",
]


@contextmanager
def hot_loop(threads: int | None = None) -> Iterator[None]:
    """Context for a Python loop of many small tensor ops.

    Flushes denormals and, if ``threads`` is given, limits intra-op threads for the duration:
    ops on ``[B, N]`` tensors are too small to gain from threads, and when cores are shared
    every multi-threaded op can wait a whole scheduler time slice for its second thread.
    """
    old = torch.get_num_threads()
    change = threads is not None and threads != old
    if change:
        torch.set_num_threads(threads)
    try:
        with flush_denormals():
            yield
    finally:
        if change:
            torch.set_num_threads(old)


# ---------------------------------------------------------------------- hidden dynamics
@dataclass(eq=False)
class HiddenState:
    """Each hidden population's model state as a namespace of ``[B, n_pop]`` tensors (the
    ``s`` its ``update`` reads and writes) and ``z [B, N]``, the whole layer's spikes of the
    previous step as numbers."""

    populations: list[SimpleNamespace]
    z: Tensor


class HiddenDynamics:
    """One step of the hidden layer, in place: each population's own ``update`` (the models'
    one definition), fed with the input current plus the recurrent input ``z_{t-1} W_rec``.

    The update runs as :meth:`NeuronModel.step` runs it (the same method and constants); only
    the bookkeeping around it is lighter: each population's state stays a namespace of float
    tensors from step to step, and its ``s.z`` is set to its columns of the layer's spikes.

    Args:
        enet: the arranged network (hidden populations, ``dt``).
        w_rec: recurrent matrix ``[N, N]`` in ``[pre, post]`` layout, see :class:`Weights`.
    """

    def __init__(self, enet: EPropNetwork, w_rec: Tensor) -> None:
        self.layer = enet.hidden
        self.w_rec = w_rec
        whole = len(self.layer.populations) == 1
        self.segments = [
            (
                pop.model,
                pop.model.constants_for(enet.net.dt),
                slice(None) if whole else slice(*self.layer.span(pop)),
            )
            for pop in self.layer.populations
        ]

    def initial_state(self, batch: int) -> HiddenState:
        dev, dtype = self.w_rec.device, self.w_rec.dtype
        states = [
            SimpleNamespace(**m.init_state(batch, dev, dtype)._asdict())
            for m, _, _ in self.segments
        ]
        return HiddenState(states, torch.zeros(batch, self.layer.n, dtype=dtype, device=dev))

    def step(self, st: HiddenState, current: Tensor, d_out: Tensor, z_out: Tensor) -> None:
        """Advance one step with input current ``[B, N]`` (overwritten).

        Writes ``v - A`` (``-inf`` while refractory) to ``d_out`` and the spikes (0/1 floats) to
        ``z_out``; ``d_out`` may be ``current`` itself. ``z_out`` becomes ``st.z``.
        """
        current.addmm_(st.z, self.w_rec)
        for (model, consts, cols), s in zip(self.segments, st.populations, strict=True):
            s.z = st.z[:, cols]  # the previous spikes as numbers (the model language's rule)
            with recording_spike_tests() as tests:
                model.update(s, consts, current[:, cols])
            distance, refractory = tests[0]
            if isinstance(refractory, Tensor):
                d_out[:, cols] = distance
                d_out[:, cols].masked_fill_(refractory, -torch.inf)
            else:
                d_out[:, cols] = distance
            z_out[:, cols] = s.z
        st.z = z_out


def input_events(x: Tensor) -> SpikeEvents:
    """Events of input spikes ``x [B, T, n_in]`` (bool) on the time-major rows ``t * B + b``."""
    b, t, n = x.shape
    return SpikeEvents.from_dense(x.transpose(0, 1).reshape(t * b, n))


def input_currents(enet: EPropNetwork, w: Weights, events: SpikeEvents, steps: int) -> Tensor:
    """``I [T, B, N]``: the input projections' drive for every step, from the input events."""
    rows = events.n_rows
    out = torch.zeros(rows, enet.hidden.n, dtype=enet.dtype, device=enet.device)
    for pw in w.inputs:
        if pw.dense is not None:
            deliver_dense(out, events, pw.dense, pw.spec.post_offset)
        else:
            deliver_slots(out, events, pw.post, pw.weight)
    return out.view(steps, rows // steps, enet.hidden.n)


def hidden_pass(
    enet: EPropNetwork, w: Weights, x: Tensor
) -> tuple[SpikeEvents, Tensor, SpikeEvents]:
    """``(input events, psi [T, B, N], hidden spike events)`` for input spikes
    ``x [B, T, n_in]`` (one chunk of trials): :func:`input_events`, :func:`hidden_forward` and
    :func:`hidden_events`."""
    x_ev = input_events(x)
    psi, z = hidden_forward(enet, w, x_ev, x.shape[1])
    return x_ev, psi, hidden_events(z)


def hidden_forward(
    enet: EPropNetwork, w: Weights, events: SpikeEvents, steps: int
) -> tuple[Tensor, Tensor]:
    """``(psi, z)`` ``[T, B, N]`` of the hidden layer for input events (one chunk of trials);
    ``z`` holds 0/1 floats."""
    d, z = simulate(enet, w, input_currents(enet, w, events, steps))
    return pseudo_derivative_(d, enet.hidden), z


def simulate(enet: EPropNetwork, w: Weights, current: Tensor) -> tuple[Tensor, Tensor]:
    """Run the hidden layer over ``current [T, B, N]``; returns ``(d, z)``, both ``[T, B, N]``.

    ``d`` overwrites ``current`` (``v - A``, ``-inf`` while refractory).
    """
    dyn = HiddenDynamics(enet, w.w_rec)
    steps, batch, _ = current.shape
    z = torch.empty_like(current)
    st = dyn.initial_state(batch)
    with hot_loop(enet.step_threads):
        for t in range(steps):
            dyn.step(st, current[t], current[t], z[t])
    return current, z


def check_vectorised(layer: HiddenLayer) -> None:
    """Refuse hidden models whose e-prop quantities differ from the ones the vectorised torch
    forms implement (:func:`pseudo_derivative_`, :func:`.factorized.membrane_adjoint_`,
    :class:`.online.SynapseTraces`: LIF's and ALIF's ``pseudo_derivative`` and
    ``eprop_adjoint``), rather than run other equations."""
    for pop in layer.populations:
        cls = type(pop.model)
        if cls.pseudo_derivative is LIF.pseudo_derivative and (
            cls.eprop_adjoint is LIF.eprop_adjoint
        ):
            continue
        raise NotImplementedError(
            f"population {pop.name!r} ({cls.__name__}) defines its own pseudo_derivative or "
            "eprop_adjoint; the torch engine and the online method implement LIF's and ALIF's: "
            "use method='factorized' with engine='native' or 'triton'"
        )


def pseudo_derivative_(d: Tensor, layer: HiddenLayer) -> Tensor:
    """``psi = (0.3/v_th) max(0, 1 - |d|/v_th)`` in place on ``d`` (``-inf`` gives 0): LIF's
    and ALIF's ``pseudo_derivative`` as vectorised ops (tested equal to the definition)."""
    return d.abs_().div_(layer.v_th).neg_().add_(1.0).clamp_(min=0.0).mul_(GAMMA_PD / layer.v_th)


def leaky_scan_(
    u: Tensor, decay: float | Tensor, reverse: bool = False, threads: int | None = None
) -> Tensor:
    """In place along dim 0: ``u_t += decay u_{t-1}`` (or ``u_t += decay u_{t+1}`` if reverse)."""
    steps = u.shape[0]
    order = range(steps - 2, -1, -1) if reverse else range(1, steps)
    prev = 1 if reverse else -1
    with hot_loop(threads):
        if isinstance(decay, Tensor):
            for t in order:
                u[t].addcmul_(decay, u[t + prev])
        else:
            for t in order:
                u[t].add_(u[t + prev], alpha=decay)
    return u


def readout(
    z: SpikeEvents, w: Weights, kappa: float, steps: int, threads: int | None = None
) -> Tensor:
    """``y [T, B, K]`` with ``y_t = kappa y_{t-1} + W_out z_t + b``, from hidden spike events."""
    y = w.bias.expand(z.n_rows, w.bias.shape[0]).clone()
    deliver_dense(y, z, w.w_out, 0)
    return leaky_scan_(y.view(steps, z.n_rows // steps, -1), kappa, False, threads)


def hidden_events(z: Tensor) -> SpikeEvents:
    """Events of hidden spikes ``z [T, B, N]``."""
    steps, batch, n = z.shape
    return SpikeEvents.from_dense(z.reshape(-1, n))
