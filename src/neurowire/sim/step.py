"""One simulation step as PyTorch code, phase by phase, and a block of such steps.

The step is pure: it returns a new state and never writes into the one it was given (the
plastic weights of a block are a copy, committed by the block runner afterwards). It is
shape-static (event lists of a fixed ``budget`` per population with an overflow flag, no host
reads), so the same code runs eagerly, under ``torch.compile`` and captured as a CUDA graph.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..events import SpikeEvents
from ..network import Network, Projection
from ..neurons import SourceState
from ..propagate import (
    csc_matrix,
    deliver_all_slots,
    deliver_csr,
    deliver_matmul,
    deliver_rows,
)
from .state import State
from .timers import PhaseTimer

Events = dict[str, SpikeEvents]


class StepFunction:
    """The step of a network: :meth:`deliver` (then :meth:`delay`), :meth:`advance_psc`,
    :meth:`advance_neurons`, :meth:`plasticity`, in this order (structural rules run on the
    host, between blocks).

    Args:
        net: the network (its stores already on ``device``).
        batch_size: ``B``.
        device: device of every tensor.
        event_fraction: initial event budget as a fraction of ``B * n`` per population.
        sparse_tensors: whether the block may use sparse CSR tensors (``delivery="csr"``).
        engine: the engine's name, for error messages.
        timer: times the phases (when enabled).

    Attributes:
        strategies: delivery strategy per projection (``"dense"``, ``"rows"``, ``"slots"``,
            ``"csr"``).
        budgets: events listed per step of each population that needs event lists; the block
            runner doubles a budget after an overflow.
    """

    def __init__(
        self,
        net: Network,
        batch_size: int,
        device: torch.device,
        event_fraction: float,
        sparse_tensors: bool,
        engine: str,
        timer: PhaseTimer,
    ) -> None:
        self.projections = list(net.projections.values())
        self.populations = list(net.populations.values())
        self.batch_size = batch_size
        self.device = device
        self.dtype = net.dtype
        self.dt = net.dt
        self.timer = timer
        self.strategies = {
            p.name: _choose_strategy(p, sparse_tensors, engine) for p in self.projections
        }
        self.delayed = [p for p in self.projections if p.delay_steps > 1]
        self.event_pops = self._populations_needing_events()
        self.budgets = {
            name: min(
                batch_size * net.populations[name].n,
                max(16, math.ceil(event_fraction * batch_size * net.populations[name].n)),
            )
            for name in self.event_pops
        }

    def _populations_needing_events(self) -> list[str]:
        names = set()
        for proj in self.projections:
            if self.strategies[proj.name] == "rows":
                names.add(proj.pre.name)
            if proj.plasticity is not None:
                names.update((proj.pre.name, proj.post.name))
        return [p.name for p in self.populations if p.name in names]

    # ------------------------------------------------------------------ block inputs
    def structure(self) -> dict[str, Any]:
        """The connectivity a block reads, from the stores as they are now: per projection
        ``ind``, ``live``, the static weights ``w`` or the column index of a plastic store, and
        what its strategy needs (dense matrix, CSR); ``"params"``: per-neuron parameters."""
        out: dict[str, Any] = {}
        for proj in self.projections:
            strategy = self.strategies[proj.name]
            entry: dict[str, Any] = {}
            if proj.sparse:
                s = proj.synapses
                entry["ind"], entry["live"] = s.ind, s.live
                if proj.plasticity is None:
                    entry["w"] = s.vars["weight"]
                else:
                    entry["columns"] = s.padded_columns()
                if strategy == "dense":
                    entry["dense"] = s.dense("weight")  # cached by the store
                elif strategy == "csr" and proj.plasticity is None:
                    cols = s.columns()
                    entry["csr"] = csc_matrix(
                        cols.indptr, cols.pre, cols.slot, s.vars["weight"], s.n_pre
                    )
                elif strategy == "csr":
                    cols = s.columns()
                    entry["col_indptr"], entry["col_pre"], entry["col_slot"] = (
                        cols.indptr,
                        cols.pre,
                        cols.slot,
                    )
            else:
                entry["dense"] = proj.weight
            out[proj.name] = entry
        out["params"] = {p.name: p.params for p in self.populations}
        return out

    def graph_key(self) -> tuple:
        """What a captured block bakes in besides its inputs' shapes: the spike-list budgets
        and the weight tensors of plastic stores, which :meth:`block` reads directly."""
        weights = tuple(
            p.synapses.vars["weight"].data_ptr()
            for p in self.projections
            if p.plasticity is not None
        )
        return tuple(sorted(self.budgets.items())), weights

    # ------------------------------------------------------------------ a block
    def block(
        self,
        state: State,
        structure: dict[str, Any],
        ext: dict[str, Tensor],
        k: int,
        rec_keys: tuple[tuple[str, str], ...],
    ) -> tuple[State, dict[tuple[str, str], Tensor], dict[str, Tensor]]:
        """``k`` steps from ``state`` (not modified); ``ext[pop] [k, B, n]`` holds the inputs of
        spike sources and the uniform numbers of stochastic populations. Returns (state,
        records ``[k, B, n]`` per ``(pop, var)``, overflow flag per event population)."""
        weights = {
            p.name: p.synapses.vars["weight"].clone()
            for p in self.projections
            if p.plasticity is not None
        }
        state = {**state, "weight": weights}
        events = {
            name: SpikeEvents.fixed(state["neurons"][name].z, self.budgets[name])
            for name in self.event_pops
        }
        overflow = {
            name: torch.zeros((), dtype=torch.bool, device=self.device) for name in self.event_pops
        }
        recs: dict[tuple[str, str], list[Tensor]] = {key: [] for key in rec_keys}
        for i in range(k):
            state, events = self.step(state, structure, {n: x[i] for n, x in ext.items()}, events)
            for name, ev in events.items():
                overflow[name] = overflow[name] | ev.overflow
            for pop, var in rec_keys:
                st = state["neurons"][pop]
                recs[(pop, var)].append(st.z if var == "spikes" else getattr(st, var))
        return state, {key: torch.stack(v) for key, v in recs.items()}, overflow

    # ------------------------------------------------------------------ one step
    def step(
        self, state: State, structure: dict[str, Any], ext_t: dict[str, Tensor], events: Events
    ) -> tuple[State, Events]:
        """One step: the phases in order; ``events`` are the spikes of the previous step."""
        neurons, weights = state["neurons"], state["weight"]
        timer = self.timer
        tic = timer.tic()
        w_sums = self.deliver(neurons, structure, weights, events)
        w_sums, pending = self.delay(state["pending"], w_sums)
        timer.toc("delivery", tic)
        tic = timer.tic()
        i_syn, psc = self.advance_psc(state["psc"], neurons, w_sums)
        timer.toc("postsynaptic", tic)
        tic = timer.tic()
        new_neurons, events = self.advance_neurons(neurons, i_syn, ext_t, structure["params"])
        timer.toc("neurons", tic)
        tic = timer.tic()
        traces = self.plasticity(state["traces"], structure, weights, events, new_neurons)
        timer.toc("plasticity", tic)
        new_state = {"neurons": new_neurons, "psc": psc, "traces": traces, "pending": pending}
        return {**new_state, "weight": weights}, events

    def deliver(
        self,
        neurons: dict[str, Any],
        structure: dict[str, Any],
        weights: dict[str, Tensor],
        events: Events,
    ) -> dict[str, Tensor]:
        """Phase 1: ``w_sum [B, n_post]`` per projection, the previous step's spikes through
        the connectivity as it is now."""
        return {
            p.name: self._deliver(p, neurons, structure[p.name], weights, events)
            for p in self.projections
        }

    def delay(
        self, pending: dict[str, Tensor], w_sums: dict[str, Tensor]
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Phase 1, second part: the input of a projection with a delay of ``d > 1`` steps
        waits ``d - 1`` steps. ``pending[name] [d - 1, B, n_post]`` holds it in order of
        arrival; returns (the inputs reaching the postsynaptic models now, the new buffers)."""
        out, new = dict(w_sums), {}
        for p in self.delayed:
            buf = pending[p.name]
            out[p.name] = buf[0]
            new[p.name] = torch.cat([buf[1:], w_sums[p.name][None]])
        return out, new

    def _deliver(self, proj: Projection, neurons, st, weights, events) -> Tensor:
        pre = neurons[proj.pre.name]
        z = pre.count if proj.pre.model.counting else pre.z  # spikes per neuron
        strategy = self.strategies[proj.name]
        if strategy == "dense":
            return deliver_matmul(z, st["dense"])
        w = weights[proj.name] if proj.plasticity is not None else st["w"]
        n_post = proj.post.n
        if strategy == "rows":
            return deliver_rows(
                events[proj.pre.name], st["ind"], w, st["live"], self.batch_size, n_post
            )
        if strategy == "slots":
            return deliver_all_slots(z, st["ind"], w, st["live"], n_post)
        csr = st.get("csr")
        if csr is None:
            csr = csc_matrix(st["col_indptr"], st["col_pre"], st["col_slot"], w, proj.pre.n)
        return deliver_csr(z, csr)

    def advance_psc(
        self, psc_state: dict[str, Any], neurons: dict[str, Any], w_sums: dict[str, Tensor]
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Phase 2: the postsynaptic models; returns (input current ``[B, n]`` per postsynaptic
        population, new postsynaptic state per projection)."""
        i_syn: dict[str, Tensor] = {}
        psc = {}
        for p in self.projections:
            v = neurons[p.post.name].v if p.psc.needs_voltage else None
            current, psc[p.name] = p.psc.step(psc_state[p.name], w_sums[p.name], v, self.dt)
            i_syn[p.post.name] = (
                current if p.post.name not in i_syn else i_syn[p.post.name] + current
            )
        return i_syn, psc

    def advance_neurons(
        self,
        neurons: dict[str, Any],
        i_syn: dict[str, Tensor],
        ext_t: dict[str, Tensor],
        params: dict[str, dict[str, Tensor]],
    ) -> tuple[dict[str, Any], Events]:
        """Phase 3: every population advances; returns (new states, this step's event lists)."""
        new_neurons = {}
        for pop in self.populations:
            old = neurons[pop.name]
            model = pop.model
            if model.external:
                new_neurons[pop.name] = SourceState(ext_t[pop.name])
            elif model.counting:
                count = ext_t[pop.name]
                new_neurons[pop.name] = old._replace(count=count, z=count > 0)
            elif model.stochastic:
                new_neurons[pop.name] = model.step(old, None, self.dt, rand=ext_t[pop.name])
            else:
                drive = i_syn.get(pop.name)
                if drive is None:
                    drive = torch.zeros(
                        self.batch_size, pop.n, dtype=self.dtype, device=self.device
                    )
                new_neurons[pop.name] = model.step(old, drive, self.dt, params=params[pop.name])
        events = {
            name: SpikeEvents.fixed(new_neurons[name].z, self.budgets[name])
            for name in self.event_pops
        }
        return new_neurons, events

    def plasticity(
        self,
        traces: dict[str, tuple[Tensor, Tensor]],
        structure: dict[str, Any],
        weights: dict[str, Tensor],
        events: Events,
        new_neurons: dict[str, Any],
    ) -> dict[str, tuple[Tensor, Tensor]]:
        """Phase 4: STDP for this step's spikes (``weights`` updated in place, the block's
        copy); returns the new traces ``(x_pre [n_pre], x_post [n_post])`` per projection."""
        out = {}
        for p in self.projections:
            if p.plasticity is None:
                continue
            st = structure[p.name]
            out[p.name] = p.plasticity.torch_step(
                weights[p.name],
                st["ind"],
                st["live"],
                st["columns"],
                events[p.pre.name],
                events[p.post.name],
                *traces[p.name],
                new_neurons[p.pre.name].z[0],
                new_neurons[p.post.name].z[0],
                self.dt,
            )
        return out


def _choose_strategy(proj: Projection, sparse_tensors: bool, engine: str) -> str:
    if not proj.sparse:
        return "dense"
    plastic = proj.plasticity is not None
    strategy = proj.delivery
    if strategy == "auto":
        # Event-driven rows win whenever few rows spike (benchmarks/bench_store.py); a dense
        # matmul only pays for small static matrices.
        s = proj.synapses
        if not plastic and s.n_pre * s.n_post <= 1 << 18:
            strategy = "dense"
        elif proj.pre.model.counting:  # most generator neurons emit in every step
            strategy = "slots"
        else:
            strategy = "rows"
    if proj.pre.model.counting and strategy == "rows":
        raise ValueError(
            f"{proj.name}: delivery='rows' lists spikes, not the counts of "
            f"{type(proj.pre.model).__name__} {proj.pre.name!r}; use 'slots', 'dense' or 'csr'"
        )
    if plastic and strategy == "dense":
        raise ValueError(
            f"{proj.name}: delivery='dense' needs static weights (STDP changes "
            "them every step); use 'rows', 'slots' or 'csr'"
        )
    if not sparse_tensors and strategy == "csr":
        raise ValueError(
            f"{proj.name}: delivery='csr' uses sparse tensors, which the {engine!r} "
            "engine does not support; use 'rows' or 'slots'"
        )
    return strategy
