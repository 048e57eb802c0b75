"""The native CPU engine: a block of steps as one generated, numba-compiled function.

Like GeNN, the engine generates code for the network at hand: a driver that calls one kernel
per phase and model (derived from the models by :mod:`.codegen`; delivery from
:mod:`.delivery`) with every model constant written in as a literal, compiled by numba. It
works in place on numpy views of the simulator's tensors and of each projection's store,
delivers and learns event-driven (cost proportional to spikes times fan-out) and needs no event
budget. Phases follow :class:`~neurowire.Simulator` exactly; the pure-PyTorch engine is the
reference it is tested against. Outside ``time_phases``, each population's postsynaptic models
run inside its neuron loop (one pass over its neurons per step), and stochastic neurons compute
their numbers in the loop from the counter-based generator (:mod:`neurowire.rng`).

**Caching.** The generated text holds the models and the structure (populations, projections,
rules, their constants), never sizes, grids or seeds, which the driver reads from its arrays;
plus a digest of the kernel modules it calls (:func:`kernels_fingerprint`). So every seed and
every size of a network share one module file, and numba's cache (``cache=True``) loads its
compiled code instead of compiling again: from the second run of a network on, at any scale,
the first step comes after construction and a cache load of a few tens of milliseconds.

Structural rules with a native kernel (:class:`~neurowire.DistanceRewiring`,
:class:`~neurowire.SharedFanInRewiring`; ``rule.native_kernel()``) are *fused*, each on its own
(:mod:`.fused_rules`): they
run inside the block after their due steps, from random numbers drawn on the host with the
rule's own generator exactly as the host-side rule would draw them. STDP finds a column's
synapses through the engine's column lists (rows per column, :func:`.rules.build_column_lists`),
which a fused distance rule updates from the events of each call; a fused fan-in rule reads and
rebuilds the store's own column index. A block then only ends where a callback or a host rule is
due, so a long run needs few Python calls. At a step where a host rule is due, the host runs
every rule due there in declaration order (fused ones through their ``update``, drawing the same
random numbers), so the order of rules never depends on fusion.

**Threads.** A step of the networks this engine is for takes microseconds (2-15 us for the
topographic map at scales 1-4), less than numba's thread pools take to start a parallel loop
(7-290 us measured here, omp or workqueue), so the step loop runs on one thread. The one part
that does not depend on the step before it, the spikes of ``PoissonSource``-like populations
(:func:`.codegen.pure_source`), can be drawn for a whole block ahead by a helper thread
(``threads >= 2``, blocks of at least :data:`.ahead.AHEAD_MIN_DRAWS` numbers, a core free by
the load average, :func:`.ahead.spare_core`): the block takes each step's flags when the helper
has published them and draws the step itself otherwise (:func:`.delivery.take_spikes`), so
results never depend on the threads and a descheduled helper never holds the block up for more
than a short spin.

**Delays and counts.** Each projection delivers into a ring of ``delay_steps`` slots of input
``[B, n_post]``, allocated once (:meth:`.builder.KernelBuilder.ring_lines`): delivery adds to
the slot its postsynaptic model reads ``d - 1`` steps later. Between blocks the input in flight
is the simulator's ``state["pending"]``, as on the torch engine. A
:class:`~neurowire.PoissonGenerator` draws its counts in the block (:func:`.rng.poisson_counts`)
from the table of its current rates, and its projections deliver weight times count.

**Parts.** :class:`NativeEngine` holds the arrays and runs blocks; :class:`.builder.KernelBuilder`
generates and compiles the drivers; :class:`.fused_rules.RuleDriver` runs the fused rules.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numba
import numpy as np
import torch
from torch import Tensor

from ..rng import stream_key
from . import ahead, rules, unsupported
from . import codegen as gen
from .builder import PHASES, KernelBuilder
from .fused_rules import RuleDriver


class NativeEngine:
    """Runs blocks of a :class:`~neurowire.Simulator` through generated numba code, in place
    on numpy views of the simulator's state and of the projections' stores."""

    def __init__(self, sim, threads: int | None = None) -> None:
        reason = unsupported(sim)
        if reason is not None:
            raise NotImplementedError(f"engine='native' does not support {reason}")
        self.sim = sim
        self.np_dtype = np.float32 if sim.dtype == torch.float32 else np.float64
        self.pops = list(sim.net.populations.values())
        self.projs = list(sim.net.projections.values())
        self.rules = RuleDriver(sim, self.projs)
        # Column indices. A fused fan-in rule reads the store's own (slot_columns, rebuilt in
        # the block after every change); other STDP projections use the engine's column lists
        # (rows per column), which rewiring updates by its events instead of a rebuild.
        self._listed = [
            q
            for q, p in enumerate(self.projs)
            if p.plasticity is not None and q not in self.rules.slot_indexed
        ]
        #: q -> [col_pre, col_len, store version they describe]
        self._lists: dict[int, list] = {}
        #: each stochastic population's and Poisson generator's stream key (neurowire.rng),
        #: as a uint64 array
        self._keys = {
            i: np.array([stream_key(sim.seed, pop.name)], np.uint64)
            for i, pop in enumerate(self.pops)
            if pop.model.stochastic or pop.model.counting
        }
        ftype = self.np_dtype.__name__
        #: stochastic sources whose spikes a helper thread can draw ahead (PoissonSource)
        self._pure = [
            i for i, pop in enumerate(self.pops) if gen.pure_source(pop.model, sim.dt, ftype)
        ]
        self.threads = ahead.resolve_threads(threads)
        self.builder = KernelBuilder(sim, ftype, self.rules, self._pure, self._listed)
        self._scratch = self._allocate_scratch()
        self._views: dict[int, tuple[Tensor, np.ndarray]] = {}

    @property
    def fused(self) -> list[int]:
        """Indices (into ``net.rules``) of the rules that run inside blocks."""
        return self.rules.fused

    def source_text(self) -> str:
        """Text of the generated module of the last block (or the model kernels alone)."""
        return self.builder.source_text()

    # ------------------------------------------------------------------ arrays
    def _allocate_scratch(self) -> dict[str, np.ndarray]:
        batch = self.sim.batch_size
        out = {}
        for i, pop in enumerate(self.pops):
            out[f"p{i}_isyn"] = np.zeros((batch, pop.n), self.np_dtype)
            if pop.model.counting:  # the uniform numbers of a step of one batch element
                out[f"p{i}_u"] = np.zeros(pop.n, np.float64)
            if pop.model.spiking:  # this step's spikes as a list of b * n + i, persisting
                out[f"p{i}_spk"] = np.zeros(batch * pop.n, np.int64)  # across blocks
                out[f"p{i}_nspk"] = np.zeros(1, np.int64)
            else:
                out[f"p{i}_nospk"] = np.zeros(batch * pop.n, np.int64)
                out[f"p{i}_nonspk"] = np.zeros(1, np.int64)
        for q, proj in enumerate(self.projs):  # delivered input, a ring of delay_steps slots
            shape = (proj.delay_steps, batch, proj.post.n)  # (builder.ring_lines)
            out[f"q{q}_wsum"] = np.zeros(shape, self.np_dtype)
        for i, key in self._keys.items():
            out[f"p{i}_key"] = key
        out.update(self.rules.scratch())
        return out

    def _column_lists(self, q: int) -> tuple[np.ndarray, np.ndarray]:
        """Projection ``q``'s column lists, rebuilt when its store changed outside a block."""
        s = self.projs[q].synapses
        entry = self._lists.get(q)
        if entry is None or entry[2] != s.version:
            tic = time.perf_counter()
            col_len = np.zeros(s.n_post, np.int64)
            ind, length = s.ind.numpy(), s.row_length.numpy()
            col_pre = rules.build_column_lists(ind, length, s.n_post, col_len)
            entry = self._lists[q] = [col_pre, col_len, s.version]
            self.sim.timers["index_rebuild"] += time.perf_counter() - tic
        return entry[0], entry[1]

    def _arguments(self, ext: Mapping[str, Tensor]) -> dict[str, np.ndarray]:
        """numpy views of every array the driver needs, reusing views of unchanged tensors."""
        sim, args = self.sim, dict(self._scratch)
        old, fresh = self._views, {}

        def view(t: Tensor) -> np.ndarray:
            hit = old.get(id(t))
            if hit is None or hit[0] is not t:
                hit = (t, t.detach().numpy())
            fresh[id(t)] = hit
            return hit[1]

        for i, pop in enumerate(self.pops):
            st = sim.state["neurons"][pop.name]
            for field in st._fields:
                args[f"p{i}_{field}"] = view(getattr(st, field))
            for name in pop.model.param_names:
                args[f"p{i}_{name}"] = view(pop.params[name])
            if pop.model.external:
                args[f"p{i}_ext"] = ext[pop.name].numpy()
            if pop.model.counting:  # the table of the current rates (neurowire.poisson)
                table = sim.count_tables(pop.name, st.rate_hz)
                args[f"p{i}_mean"], args[f"p{i}_cdf"] = view(table.mean), view(table.cdf)
                args[f"p{i}_last"] = view(table.last)
        for q, proj in enumerate(self.projs):
            args[f"q{q}_psc"] = view(sim.state["psc"][proj.name])
            if not proj.sparse:
                args[f"q{q}_w"] = view(proj.weight)
                continue
            s = proj.synapses
            args[f"q{q}_ind"], args[f"q{q}_len"] = view(s.ind), view(s.row_length)
            args[f"q{q}_w"] = view(s.vars["weight"])
            plastic = proj.plasticity is not None
            if plastic:
                x_pre, x_post = sim.state["traces"][proj.name]
                args[f"q{q}_xpre"], args[f"q{q}_xpost"] = view(x_pre), view(x_post)
            if q in self.rules.slot_indexed:  # the store's column index, cached per version
                cptr, cslot = s.slot_columns()
                args[f"q{q}_cptr"], args[f"q{q}_cslot"] = view(cptr), view(cslot)
            elif plastic:
                args[f"q{q}_cpre"], args[f"q{q}_clen"] = self._column_lists(q)
        self._views = fresh
        return args

    # ------------------------------------------------------------------ delayed input
    def _pending_rings(self):
        """(the simulator's ``pending [d - 1, B, n_post]``, the ring ``[d, B, n_post]``) of
        every projection with a delay of ``d > 1`` steps."""
        pending = self.sim.state["pending"]
        for q, proj in enumerate(self.projs):
            if proj.delay_steps > 1:
                yield pending[proj.name].numpy(), self._scratch[f"q{q}_wsum"]

    def _load_pending(self, step: int) -> None:
        """Before a block from global step ``step``: the simulator's pending input (in order of
        arrival) into the rings' slots of steps ``step, step + 1, ...``; the slot that
        delivery fills in ``step`` is zero."""
        for pending, ring in self._pending_rings():
            d = ring.shape[0]
            ring[(step + np.arange(d - 1)) % d] = pending
            ring[(step + d - 1) % d] = 0

    def _store_pending(self, step: int) -> None:
        """After a block that ends before global step ``step``: the rings' input back into the
        simulator's state, in order of arrival (the state is the same on every engine)."""
        for pending, ring in self._pending_rings():
            d = ring.shape[0]
            pending[...] = ring[(step + np.arange(d - 1)) % d]

    # ------------------------------------------------------------------ drawing ahead
    def _ahead_arguments(self, k: int, args: dict[str, np.ndarray]) -> bool:
        """Buffers of the sources drawn ahead; returns whether the helper draws this block
        (two threads or more, and enough numbers to pay for the hand-over)."""
        sim = self.sim
        draws = sum(k * sim.batch_size * self.pops[i].n for i in self._pure)
        drawn = (
            self.threads > 1
            and not sim.time_phases
            and ahead.AHEAD_MIN_DRAWS <= draws <= ahead.AHEAD_MAX_DRAWS
            and ahead.spare_core(self.threads)
        )
        for i in self._pure:
            shape = (k if drawn else 0, sim.batch_size, self.pops[i].n)
            args[f"p{i}_zbuf"] = np.empty(shape, np.bool_)
            args[f"p{i}_ready"] = np.zeros(shape[0], np.int64)
            args[f"p{i}_next"] = np.zeros(1, np.int64)
        return drawn

    def _producer_arguments(self, i: int, args: dict[str, np.ndarray], empty: bool = False):
        model = self.pops[i].model
        fields = [args[f"p{i}_{f}"] for f in model.state_type._fields if f != "z"]
        params = [args[f"p{i}_{name}"] for name in model.param_names]
        bufs = [args[f"p{i}_zbuf"], args[f"p{i}_ready"], args[f"p{i}_next"]]
        if empty:  # compiles (or loads) the kernel; draws nothing
            z = args[f"p{i}_z"]
            bufs = [
                np.empty((0,) + z.shape, np.bool_),
                np.zeros(0, np.int64),
                np.zeros(1, np.int64),
            ]
        return (*fields, self._keys[i][0], self.sim.step_count, *params, *bufs)

    # ------------------------------------------------------------------ running
    def run_block(
        self,
        k: int,
        ext: Mapping[str, Tensor],
        rec_keys: tuple[tuple[str, str], ...],
        host_last: bool = False,
    ) -> dict[tuple[str, str], Tensor]:
        """Advance ``k`` steps in place; returns recordings ``[k, B, n]`` per (pop, var).

        ``host_last``: the host runs the rules due after the last step (a host rule is due
        there), so fused rules skip that step and keep the declared order of rules.
        """
        sim = self.sim
        args = self._arguments(ext)
        self._load_pending(sim.step_count)
        plan = self.rules.arguments(k, args, host_last)
        drawn_ahead = self._ahead_arguments(k, args)
        names = tuple(sorted(args))
        index = {pop.name: i for i, pop in enumerate(self.pops)}
        rec = tuple((index[pop], "z" if var == "spikes" else var) for pop, var in rec_keys)
        buffers = []
        for i, field in rec:
            src = args[f"p{i}_{field}"]
            buffers.append(np.zeros((k,) + src.shape, src.dtype))
        values = [args[n] for n in names]
        if sim.time_phases:
            self._run_split(k, names, rec, buffers, values, args, plan, host_last)
        else:
            compiled = (names, rec, False) in self.builder.drivers
            driver = self.builder.driver(names, rec, split=False)
            producers = self.builder.producers[(names, rec, False)]
            if not compiled:  # numba compiles on the first call: time it apart (0 steps)
                tic = time.perf_counter()
                driver(0, sim.step_count, False, *buffers, *values)
                for i, fn in zip(self._pure, producers, strict=True):
                    fn(*self._producer_arguments(i, args, empty=True))
                sim.timers["compile"] += time.perf_counter() - tic
            if drawn_ahead:  # the helper thread draws the sources' spikes while the block runs
                for i, fn in zip(self._pure, producers, strict=True):
                    ahead.helper().submit(fn, self._producer_arguments(i, args))
            if sim.first_step_at is None:
                sim.first_step_at = time.perf_counter()
            lists = driver(k, sim.step_count, host_last, *buffers, *values)
            for q, col_pre in zip(self._listed, lists, strict=True):
                self._lists[q][0] = col_pre  # a wider copy if a column outgrew it
        self._store_pending(sim.step_count + k)
        if plan:
            self.rules.log(plan, args, self._lists)
        for proj in self.projs:
            if proj.plasticity is not None:  # STDP wrote the weights through numpy
                proj.synapses.values_changed()
        return {key: torch.from_numpy(buf) for key, buf in zip(rec_keys, buffers, strict=True)}

    def _run_split(self, k, names, rec, buffers, values, args, plan, host_last) -> None:
        """Per-step, per-phase calls with timers (``time_phases=True``); the column indices
        are kept on the host after each rule call (timed as ``index_rebuild``)."""
        sim = self.sim
        compiled = (names, rec, True) in self.builder.drivers
        funcs = self.builder.driver(names, rec, split=True)
        n = len(PHASES)
        step0 = sim.step_count
        if not compiled:  # numba compiles on the first call: compile (or load) apart, timed
            tic = time.perf_counter()
            step_args = (0, step0, *values)
            for j, fn in enumerate(funcs):
                call = (0, *buffers, *values) if j == n else step_args
                fn.compile(tuple(numba.typeof(a) for a in call))
            sim.timers["compile"] += time.perf_counter() - tic
        if sim.first_step_at is None:
            sim.first_step_at = time.perf_counter()
        position = {name: j for j, name in enumerate(names)}
        for step in range(k):
            for phase, fn in zip(PHASES, funcs[:n], strict=True):
                tic = time.perf_counter()
                fn(step, step0, *values)
                sim.timers[phase] += time.perf_counter() - tic
            funcs[n](step, *buffers, *values)
            for r, _ in plan:
                if (step0 + step + 1) % sim.net.rules[r].every or (host_last and step == k - 1):
                    continue
                starts = [int(e) for e in args[f"ctr{r}"][1:]]
                tic = time.perf_counter()
                changed = funcs[n + 1 + self.fused.index(r)](step, step0, *values)
                sim.timers["rules"] += time.perf_counter() - tic
                tic = time.perf_counter()
                self.rules.host_upkeep(r, changed, starts, args, self._lists)
                for q in self.rules.targets[r]:  # a wider copy if a column outgrew it
                    if q in self._lists:
                        values[position[f"q{q}_cpre"]] = args[f"q{q}_cpre"]
                sim.timers["index_rebuild"] += time.perf_counter() - tic
