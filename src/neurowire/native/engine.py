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
:class:`~neurowire.SharedFanInRewiring`; ``rule.native()``) are *fused*, each on its own: they
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
(``threads >= 2``, blocks of at least :data:`AHEAD_MIN_DRAWS` numbers, a core free by the
load average, :func:`spare_core`): the block takes each step's flags when the helper has
published them and draws the step itself otherwise (:func:`.delivery.take_spikes`), so results
never depend on the threads and a descheduled helper never holds the block up for more than a
short spin.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..codegen import generated_module
from ..rng import stream_key
from ..structural.distance import DistanceRewiring
from ..structural.fan_in import SharedFanInRewiring
from . import atomics, rules, unsupported
from . import codegen as gen
from . import delivery as spikes_out
from . import rng as nwrng

PHASES = ("delivery", "postsynaptic", "neurons", "plasticity")
EVENT_FIELDS = ("pre", "post", "kind", "dist")


def kernels_fingerprint() -> str:
    """Digest of the kernel modules a generated block calls into. numba's cache of a block is
    keyed on the block's own file, not on its callees: the digest, written into the block,
    gives every version of the kernels its own module (and compiled code)."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        digest = hashlib.sha1()
        for module in (spikes_out, rules, nwrng, atomics):
            digest.update(Path(module.__file__).read_bytes())
        _FINGERPRINT = digest.hexdigest()[:16]
    return _FINGERPRINT


_FINGERPRINT: str | None = None

#: the helper thread draws a block's source spikes ahead only from this many numbers on and up
#: to this many (the flags' buffer). In the step the numbers cost about 0.3-0.8 ns each, so the
#: helper saves at most that, and on this project's 2 shared cores it did not pay below a few
#: million numbers per block (scale 4: 0.8 M per 20 ms block); about 1 ms of drawing per block
AHEAD_MIN_DRAWS = 1 << 21
AHEAD_MAX_DRAWS = 1 << 26


def resolve_threads(threads: int | None) -> int:
    """Threads a native block may use: ``threads``, or by default as many as PyTorch uses
    (``torch.get_num_threads()``, which ``torch.set_num_threads`` limits, as for the e-prop
    trainer), at most the CPUs this process may run on."""
    if threads is None:
        threads = torch.get_num_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an int >= 1 or None, got {threads!r}")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(threads, cpus or 1))


_LOAD: list[float] = [-1.0, 0.0]  # when read, 1-minute load average


def spare_core(threads: int) -> bool:
    """Whether a core looks free for the helper: the 1-minute load average (this process's
    own thread included) below ``threads - 0.5``. On cores shared with other work the helper
    would only take time from the block, so it stays idle. Read at most once a second."""
    if not hasattr(os, "getloadavg"):
        return True
    now = time.monotonic()
    if now - _LOAD[0] > 1.0:
        _LOAD[0], _LOAD[1] = now, os.getloadavg()[0]
    return _LOAD[1] < threads - 0.5


class _Helper:
    """One daemon thread that runs kernels handed to it (the sources drawn ahead).

    A kernel it runs only writes buffers the block reads after an acquire (see
    :func:`.delivery.take_spikes`); the block never waits on it for long, so a helper that is
    descheduled, late or failing costs time, never results.
    """

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="neurowire-native", daemon=True)
        self.thread.start()

    def submit(self, fn, args) -> None:
        self.jobs.put((fn, args))

    def _loop(self) -> None:
        torch.set_flush_denormal(True)  # as the simulating thread (neurowire.denormals)
        while True:
            fn, args = self.jobs.get()
            try:
                fn(*args)
            except Exception:  # noqa: BLE001, S112 - the block draws what the helper did not
                continue


_HELPER: _Helper | None = None
_HELPER_LOCK = threading.Lock()


def helper() -> _Helper:
    global _HELPER
    with _HELPER_LOCK:
        if _HELPER is None or not _HELPER.thread.is_alive():
            _HELPER = _Helper()
        return _HELPER


def _rule_targets(sim, scheduled) -> list:
    """The projections a fusable rule changes (this one, and a fan-in partner)."""
    if isinstance(scheduled.rule, SharedFanInRewiring):
        return [scheduled.projection, sim.net._projection(scheduled.rule.partner)]
    return [scheduled.projection]


def fusable(sim, scheduled) -> bool:
    """Whether one scheduled rule can run inside native blocks: a built-in rule that offers a
    fused kernel (:meth:`~neurowire.StructuralRule.native`), on stores whose only variable is
    the weight, between populations on one grid. Decided per rule: other rules run on the host."""
    if not isinstance(scheduled.rule, DistanceRewiring | SharedFanInRewiring):
        return False
    if not scheduled.rule.native():
        return False
    for proj in _rule_targets(sim, scheduled):
        grids = proj.pre.grid, proj.post.grid
        if (
            set(proj.synapses.vars) != {"weight"}
            or grids[0] is None
            or grids[1] is None
            or grids[0].shape != grids[1].shape
            or grids[0].periodic != grids[1].periodic
            or proj.post is not scheduled.projection.post
        ):
            return False
    return True


class NativeEngine:
    """Runs blocks of a :class:`~neurowire.Simulator` through generated numba code."""

    def __init__(self, sim, threads: int | None = None) -> None:
        reason = unsupported(sim)
        if reason is not None:
            raise NotImplementedError(f"engine='native' does not support {reason}")
        self.sim = sim
        self.np_dtype = np.float32 if sim.dtype == torch.float32 else np.float64
        self.pops = list(sim.net.populations.values())
        self.projs = list(sim.net.projections.values())
        #: indices (into ``net.rules``) of the rules that run inside blocks
        self.fused = [r for r, sch in enumerate(sim.net.rules) if fusable(sim, sch)]
        self._proj_index = {p.name: q for q, p in enumerate(self.projs)}
        self._targets = {
            r: [self._proj_index[p.name] for p in _rule_targets(sim, sim.net.rules[r])]
            for r in self.fused
        }
        # Column indices. A fused fan-in rule reads the store's own (slot_columns, rebuilt in
        # the block after every change); other STDP projections use the engine's column lists
        # (rows per column), which rewiring updates by its events instead of a rebuild.
        self._slot_indexed: set[int] = set()
        for r in self.fused:
            if isinstance(sim.net.rules[r].rule, SharedFanInRewiring):
                self._slot_indexed.update(self._targets[r])
        self._listed = [
            q
            for q, p in enumerate(self.projs)
            if p.plasticity is not None and q not in self._slot_indexed
        ]
        #: q -> [col_pre, col_len, store version they describe]
        self._lists: dict[int, list] = {}
        #: each stochastic population's stream key (neurowire.rng), as a uint64 array
        self._keys = {
            i: np.array([stream_key(sim.seed, pop.name)], np.uint64)
            for i, pop in enumerate(self.pops)
            if pop.model.stochastic
        }
        ftype = self.np_dtype.__name__
        #: stochastic sources whose spikes a helper thread can draw ahead (PoissonSource)
        self._pure = [
            i for i, pop in enumerate(self.pops) if gen.pure_source(pop.model, sim.dt, ftype)
        ]
        self.threads = resolve_threads(threads)
        self._producers: dict[tuple, list] = {}
        self._rule_held: dict[int, tuple] = {}
        self._scratch = self._allocate_scratch()
        self._views: dict[int, tuple[Tensor, np.ndarray]] = {}
        self._drivers: dict[tuple, Any] = {}
        #: path of the generated module, per split mode (see ``Simulator.generated_source``)
        self.sources: dict[bool, str] = {}

    # ------------------------------------------------------------------ arrays
    def _allocate_scratch(self) -> dict[str, np.ndarray]:
        batch = self.sim.batch_size
        out = {}
        for i, pop in enumerate(self.pops):
            out[f"p{i}_isyn"] = np.zeros((batch, pop.n), self.np_dtype)
            if pop.model.spiking:  # this step's spikes as a list of b * n + i, persisting
                out[f"p{i}_spk"] = np.zeros(batch * pop.n, np.int64)  # across blocks
                out[f"p{i}_nspk"] = np.zeros(1, np.int64)
            else:
                out[f"p{i}_nospk"] = np.zeros(batch * pop.n, np.int64)
                out[f"p{i}_nonspk"] = np.zeros(1, np.int64)
        for q, proj in enumerate(self.projs):
            out[f"q{q}_wsum"] = np.zeros((batch, proj.post.n), self.np_dtype)
        for i, key in self._keys.items():
            out[f"p{i}_key"] = key
        for r in self.fused:  # grid of the rule's projection: sizes are arguments, not code
            grid = self.sim.net.rules[r].projection.post.grid
            out[f"g{r}"] = np.array([grid.n_rows, grid.n_cols], np.int64)
            if isinstance(self.sim.net.rules[r].rule, DistanceRewiring):  # its rows' scratch
                out[f"h{r}"] = np.full((2, self.sim.net.rules[r].projection.pre.n), -1, np.int64)
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
        for q, proj in enumerate(self.projs):
            args[f"q{q}_psc"] = view(sim.state["psc"][proj.name])
            if not proj.sparse:
                args[f"q{q}_w"] = view(proj.weight)
                continue
            s = proj.synapses
            args[f"q{q}_ind"], args[f"q{q}_len"] = view(s.ind), view(s.row_length)
            args[f"q{q}_w"] = view(s.vars["weight"])
            if proj.plasticity is not None:
                x_pre, x_post = sim.state["traces"][proj.name]
                args[f"q{q}_xpre"], args[f"q{q}_xpost"] = view(x_pre), view(x_post)
            if q in self._slot_indexed:  # the store's column index, cached there per version
                cptr, cslot = s.slot_columns()
                args[f"q{q}_cptr"], args[f"q{q}_cslot"] = view(cptr), view(cslot)
            elif proj.plasticity is not None:
                args[f"q{q}_cpre"], args[f"q{q}_clen"] = self._column_lists(q)
        self._views = fresh
        return args

    # ------------------------------------------------------------------ code generation
    def _incoming(self) -> dict[int, list[int]]:
        """Per population, the projections into it, in declaration order."""
        index = {pop.name: i for i, pop in enumerate(self.pops)}
        out: dict[int, list[int]] = {i: [] for i in range(len(self.pops))}
        for q, proj in enumerate(self.projs):
            out[index[proj.post.name]].append(q)
        return out

    def _fused_population(self, i: int) -> bool:
        """Whether population ``i``'s postsynaptic models run inside its neuron loop (blocks
        that are not split into timed phases; not for external spike sources)."""
        return not self.pops[i].model.external

    def _kernel_sources(self, split: bool) -> str:
        """numba source of every model's kernel, derived from its one definition."""
        dt, ftype = self.sim.dt, self.np_dtype.__name__
        parts = []
        incoming = self._incoming()
        for i, pop in enumerate(self.pops):
            if pop.model.external:
                continue
            if not split and i in self._pure:
                parts.append(gen.producer_kernel(pop.model, dt, f"produce_p{i}", ftype))
            if split or not self._fused_population(i):
                parts.append(gen.neuron_kernel(pop.model, dt, f"neuron_p{i}", ftype))
            else:
                pscs = [self.projs[q].psc for q in incoming[i]]
                parts.append(gen.population_kernel(pop.model, pscs, dt, f"neuron_p{i}", ftype))
        for q, proj in enumerate(self.projs):
            post = self.pops.index(proj.post)
            if split or not self._fused_population(post):
                parts.append(gen.psc_kernel(proj.psc, dt, f"psc_q{q}", ftype))
            if proj.plasticity is not None:
                columns = "slots" if q in self._slot_indexed else "lists"
                parts.append(gen.stdp_kernel(proj.plasticity, dt, f"stdp_q{q}", ftype, columns))
        return "\n\n".join(parts)

    def _phase_lines(self, split: bool) -> dict[str, list[str]]:
        index = {pop.name: i for i, pop in enumerate(self.pops)}
        lines: dict[str, list[str]] = {phase: [] for phase in PHASES}
        for q, proj in enumerate(self.projs):
            pre = index[proj.pre.name]
            spikes = f"p{pre}_spk, p{pre}_nspk, p{pre}_isyn.shape[1]"
            if proj.sparse:
                lines["delivery"].append(
                    f"spikes_out.deliver_spike_list({spikes}, q{q}_ind, q{q}_len, q{q}_w, "
                    f"q{q}_wsum)"
                )
            else:
                lines["delivery"].append(
                    f"spikes_out.deliver_spike_list_dense({spikes}, q{q}_w, q{q}_wsum)"
                )
        seen: set[int] = set()
        for q, proj in enumerate(self.projs):
            post = index[proj.post.name]
            first = post not in seen
            seen.add(post)
            if not split and self._fused_population(post):
                continue  # inside the population's kernel
            v = f"p{post}_v" if proj.psc.needs_voltage else f"q{q}_wsum"
            lines["postsynaptic"].append(
                f"psc_q{q}(q{q}_psc, q{q}_wsum, {v}, p{post}_isyn, {first})"
            )
        incoming = self._incoming()
        for i, pop in enumerate(self.pops):
            line = self._neuron_line(i, pop.model, split, incoming[i])
            if not split and i in self._pure:  # drawn ahead by the helper thread, if it was
                take = f"p{i}_zbuf, k, p{i}_ready, p{i}_next, p{i}_z, p{i}_spk, p{i}_nspk"
                lines["neurons"] += [f"if not spikes_out.take_spikes({take}):", f"    {line}"]
            else:
                lines["neurons"].append(line)
        for q, proj in enumerate(self.projs):
            if proj.plasticity is None:
                continue
            pre, post = index[proj.pre.name], index[proj.post.name]
            cols = f"q{q}_cptr, q{q}_cslot" if q in self._slot_indexed else f"q{q}_cpre, q{q}_clen"
            lines["plasticity"].append(
                f"stdp_q{q}(q{q}_w, q{q}_ind, q{q}_len, {cols}, p{pre}_spk, "
                f"p{pre}_nspk, p{post}_spk, p{post}_nspk, q{q}_xpre, q{q}_xpost)"
            )
        return lines

    def _neuron_line(self, i: int, model, split: bool, incoming: list[int]) -> str:
        spk = f"p{i}_spk, p{i}_nspk"
        if model.external:
            return f"spikes_out.source(p{i}_z, p{i}_ext[k], {spk})"
        fused = not split and self._fused_population(i)
        args = [f"p{i}_{f}" for f in model.state_type._fields]
        if not fused:
            args.append(f"p{i}_isyn")
        if model.stochastic:  # its stream's key and the global step (neurowire.rng)
            args += [f"p{i}_key[0]", "step0 + k"]
        args += [f"p{i}_{name}" for name in model.param_names]
        if model.spiking:
            args.append(spk)
        else:  # a non-spiking model has no spike list: pass scratch ones
            args.append(f"p{i}_nospk, p{i}_nonspk")
        if fused:
            args += [f"q{q}_psc, q{q}_wsum" for q in incoming]
            return f"neuron_p{i}({', '.join(args)})"
        return f"neuron_p{i}({', '.join(args)})"

    def _rule_call(self, r: int) -> tuple[list[str], list[str]]:
        """Generated lines of one call of fused rule ``r`` (setting ``ch{r}``, whether it
        changed anything) and of the column-index upkeep that must follow it (column lists
        from the call's events, or a rebuild of the store's column index after a change)."""
        scheduled = self.sim.net.rules[r]
        rule = scheduled.rule
        w_dtype = f"np.{self.np_dtype.__name__}"
        targets = self._targets[r]
        post = self.pops.index(scheduled.projection.post)
        periodic = scheduled.projection.post.grid.periodic
        geometry = f"p{post}_isyn.shape[1], g{r}[0], g{r}[1], {periodic}"
        ev = [
            f"ev{r}_{m}_pre, ev{r}_{m}_post, ev{r}_{m}_kind, ev{r}_{m}_dist"
            for m in range(len(targets))
        ]
        c = f"ctr{r}[0]"
        if isinstance(rule, DistanceRewiring):
            q = targets[0]
            call = [
                f"rem, add, fail, ne = rules.distance_rewiring(u{r}[{c}], q{q}_ind, q{q}_len, "
                f"q{q}_w, {geometry}, {rule.p_peak!r}, {2.0 * rule.sigma**2!r}, "
                f"{rule.p_elim_dep!r}, {rule.p_elim_pot!r}, {w_dtype}({rule.w_threshold!r}), "
                f"{w_dtype}({rule.w_init!r}), {ev[0]}, ctr{r}[1], h{r}[0], h{r}[1])",
                f"calls{r}[{c}, 0] = step0 + k + 1",
                f"calls{r}[{c}, 1] = rem",
                f"calls{r}[{c}, 2] = add",
                f"calls{r}[{c}, 3] = fail",
                f"calls{r}[{c}, 4] = ne",
                f"ne0{r} = ctr{r}[1]",  # the call's events are ne0{r} .. ne - 1
                f"ctr{r}[1] = ne",
                f"ctr{r}[0] += 1",
                f"ch{r} = rem + add > 0",
            ]
            upkeep = []
            if q in self._slot_indexed:
                upkeep = [
                    f"if ch{r}:",
                    f"    rules.rebuild_columns(q{q}_ind, q{q}_len, q{q}_cptr.shape[0] - 1, "
                    f"q{q}_cptr, q{q}_cslot)",
                ]
            elif self.projs[q].plasticity is not None:
                upkeep = [
                    f"q{q}_cpre = rules.apply_column_events(ev{r}_0_pre, ev{r}_0_post, "
                    f"ev{r}_0_kind, ne0{r}, ne, q{q}_cpre, q{q}_clen)"
                ]
            return call, upkeep
        stores = ", ".join(f"q{q}_ind, q{q}_len, q{q}_w, q{q}_cptr, q{q}_cslot" for q in targets)
        call = [
            f"ne0, ne1 = rules.shared_fan_in_rewiring(u{r}[{c}], {stores}, {geometry}, "
            f"{rule.max_fan_in}, {rule.p_peak[0]!r}, {rule.p_peak[1]!r}, "
            f"{2.0 * rule.sigma[0] ** 2!r}, {2.0 * rule.sigma[1] ** 2!r}, {rule.p_elim_dep!r}, "
            f"{rule.p_elim_pot!r}, {rule.w_threshold!r}, {w_dtype}({rule.w_init!r}), {ev[0]}, "
            f"{ev[1]}, ctr{r}[1], ctr{r}[2], cnt{r})",
            f"calls{r}[{c}, 0] = step0 + k + 1",
            f"calls{r}[{c}, 1:4] = cnt{r}[0:3]",
            f"calls{r}[{c}, 4] = ne0",
            f"calls{r}[{c}, 5:8] = cnt{r}[3:6]",
            f"calls{r}[{c}, 8] = ne1",
            f"ctr{r}[1] = ne0",
            f"ctr{r}[2] = ne1",
            f"ctr{r}[0] += 1",
            f"ch{r} = False",  # both column indices are rebuilt inside the kernel
        ]
        return call, []

    def _driver(self, names: tuple[str, ...], rec: tuple[tuple[int, str], ...], split: bool):
        key = (names, rec, split)
        if key in self._drivers:
            return self._drivers[key]
        phases = self._phase_lines(split)
        params = ", ".join(names)
        rec_params = "".join(f", rec{j}" for j in range(len(rec)))
        rec_lines = [f"rec{j}[k] = p{i}_{field}" for j, (i, field) in enumerate(rec)]
        lists = "".join(f"q{q}_cpre, " for q in self._listed)
        defs: list[tuple[str, str, list[str]]] = []  # (name, signature, body)
        if split:  # one function per phase and step, for per-phase timing
            for phase in PHASES:
                defs.append((phase, f"k, step0, {params}", phases[phase]))
            defs.append(("record", f"k{rec_params}, {params}", rec_lines))
            for r in self.fused:  # the host keeps the column indices (timed apart)
                call, _ = self._rule_call(r)
                due = f"if (step0 + k + 1) % {self.sim.net.rules[r].every}:\n        return False"
                defs.append((f"rule{r}", f"k, step0, {params}", [due, *call, f"return ch{r}"]))
        else:
            loop = [ln for phase in PHASES for ln in phases[phase]] + rec_lines
            for r in self.fused:  # the host runs every rule due at a host step (host_last)
                call, upkeep = self._rule_call(r)
                loop += [
                    f"if (step0 + k + 1) % {self.sim.net.rules[r].every} == 0 and not "
                    "(host_last and k == n_steps - 1):"
                ]
                loop += [f"    {ln}" for ln in call + upkeep]
            body = ["for k in range(n_steps):"] + [f"    {ln}" for ln in loop]
            body.append(f"return ({lists})")  # column lists, re-allocated when they grew
            defs.append(("block", f"n_steps, step0, host_last{rec_params}, {params}", body))
        source = self._module_source(defs, split)
        module = generated_module(source, "block")
        driver = tuple(getattr(module, n) for n, _, _ in defs) if split else module.block
        self.sources[split] = module.__file__
        self._drivers[key] = driver
        if not split:
            self._producers[key] = [getattr(module, f"produce_p{i}") for i in self._pure]
        return driver

    def source_text(self) -> str:
        """Text of the generated module of the last block (or the model kernels alone)."""
        path = self.sources.get(False) or self.sources.get(True)
        if path is None:
            return "# model kernels (no block generated yet)\n" + self._kernel_sources(False)
        with open(path) as f:
            return f"# {path}\n" + f.read()

    def _module_source(self, defs: list[tuple[str, str, list[str]]], split: bool) -> str:
        """The generated module: model kernels, then the driver functions (readable names:
        ``p<i>_<var>`` population ``i``'s variable, ``q<j>_*`` projection ``j``'s arrays).

        Its text depends on the network's structure, names and models only: sizes come from
        the arrays, so every size and seed of a network shares one module (and numba's cache).
        """
        legend = [
            f"# p{i}: population {p.name!r} ({type(p.model).__name__})"
            for i, p in enumerate(self.pops)
        ]
        legend += [f"# q{q}: projection {p.name!r}" for q, p in enumerate(self.projs)]
        out = [
            '"""Generated by neurowire.native.engine for one network; do not edit."""',
            *legend,
            f"# kernels {kernels_fingerprint()}",
            gen.MODULE_HEADER.strip(),
            "from neurowire.native import rules",
            "",
            "",
            self._kernel_sources(split),
        ]
        for name, signature, body in defs:
            lines = "".join(f"    {ln}\n" for ln in (body or ["pass"]))
            out.append(f"\n@njit(cache=True, nogil=True)\ndef {name}({signature}):\n{lines}")
        return "\n".join(out)

    # ------------------------------------------------------------------ fused rules
    def _rule_arguments(
        self, k: int, args: dict[str, np.ndarray], host_last: bool
    ) -> list[tuple[int, int]]:
        """Draw every fused rule call of the next ``k`` steps (not those of the last step when
        the host runs the rules due there); returns (rule, calls) pairs."""
        sim, plan = self.sim, []
        for r in self.fused:
            scheduled = sim.net.rules[r]
            every, rule = scheduled.every, scheduled.rule
            n_calls = (sim.step_count + k) // every - sim.step_count // every
            if host_last and (sim.step_count + k) % every == 0:
                n_calls -= 1
            targets = self._targets[r]
            args[f"u{r}"] = rule.draw(sim.rule_runner.rngs[r], n_calls)
            args.update(self._rule_buffers(r, n_calls, n_calls * rule.attempts, len(targets)))
            plan.append((r, n_calls))
        return plan

    def _rule_buffers(self, r: int, n_calls: int, size: int, n_targets: int) -> dict:
        """Event and per-call buffers of fused rule ``r`` for a block, reused across blocks
        (the log copies what it keeps); grown when a block needs more."""
        held = self._rule_held.get(r)
        if held is None or held[0] < max(1, size) or held[1] < max(1, n_calls):
            size, n_calls = max(1, 2 * size), max(1, 2 * n_calls)
            out = {}
            for m in range(n_targets):
                out[f"ev{r}_{m}_pre"] = np.empty(size, np.int64)
                out[f"ev{r}_{m}_post"] = np.empty(size, np.int64)
                out[f"ev{r}_{m}_kind"] = np.empty(size, np.int8)
                out[f"ev{r}_{m}_dist"] = np.empty(size, np.float32)
            out[f"calls{r}"] = np.zeros((n_calls, 1 + 4 * n_targets), np.int64)
            out[f"ctr{r}"] = np.zeros(1 + n_targets, np.int64)
            if n_targets == 2:
                out[f"cnt{r}"] = np.zeros(6, np.int64)
            held = self._rule_held[r] = (size, n_calls, out)
        held[2][f"ctr{r}"][:] = 0  # the kernels count calls and events from here
        return held[2]

    def _log_fused(self, plan: list[tuple[int, int]], args: dict[str, np.ndarray]) -> None:
        sim = self.sim
        for r, n_calls in plan:
            if not n_calls:
                continue
            scheduled = sim.net.rules[r]
            calls = args[f"calls{r}"][:n_calls]
            steps = calls[:, 0]
            t_ms = steps * sim.dt
            for m, q in enumerate(self._targets[r]):
                name = self.projs[q].name
                c = calls[:, 1 + 4 * m : 5 + 4 * m]  # removed, added, failed, events so far
                sim.rewiring_log.record_calls(name, steps, t_ms, c[:, 0], c[:, 1], c[:, 2])
                n_events = int(c[-1, 3])  # one event per synapse removed or added
                if not n_events:
                    continue
                if scheduled.log_events:
                    per_call = np.diff(c[:, 3], prepend=0)
                    sim.rewiring_log.record_events(
                        name,
                        np.repeat(t_ms, per_call),
                        *(args[f"ev{r}_{m}_{f}"][:n_events] for f in EVENT_FIELDS),
                    )
                # the store changed; the block kept its column index (or lists) current
                store = self.projs[q].synapses
                store._changed(rebuilt=("slot_columns",) if q in self._slot_indexed else ())
                if q in self._lists:
                    self._lists[q][2] = store.version

    # ------------------------------------------------------------------ drawing ahead
    def _ahead_arguments(self, k: int, args: dict[str, np.ndarray]) -> bool:
        """Buffers of the sources drawn ahead; returns whether the helper draws this block
        (two threads or more, and enough numbers to pay for the hand-over)."""
        sim = self.sim
        draws = sum(k * sim.batch_size * self.pops[i].n for i in self._pure)
        ahead = (
            self.threads > 1
            and not sim.time_phases
            and AHEAD_MIN_DRAWS <= draws <= AHEAD_MAX_DRAWS
            and spare_core(self.threads)
        )
        for i in self._pure:
            shape = (k if ahead else 0, sim.batch_size, self.pops[i].n)
            args[f"p{i}_zbuf"] = np.empty(shape, np.bool_)
            args[f"p{i}_ready"] = np.zeros(shape[0], np.int64)
            args[f"p{i}_next"] = np.zeros(1, np.int64)
        return ahead

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
        plan = self._rule_arguments(k, args, host_last) if self.fused else []
        ahead = self._ahead_arguments(k, args)
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
            compiled = (names, rec, False) in self._drivers
            driver = self._driver(names, rec, split=False)
            producers = self._producers[(names, rec, False)]
            if not compiled:  # numba compiles on the first call: time it apart (0 steps)
                tic = time.perf_counter()
                driver(0, sim.step_count, False, *buffers, *values)
                for i, fn in zip(self._pure, producers, strict=True):
                    fn(*self._producer_arguments(i, args, empty=True))
                sim.timers["compile"] += time.perf_counter() - tic
            if ahead:  # the helper thread draws the sources' spikes while the block runs
                for i, fn in zip(self._pure, producers, strict=True):
                    helper().submit(fn, self._producer_arguments(i, args))
            if sim.first_step_at is None:
                sim.first_step_at = time.perf_counter()
            lists = driver(k, sim.step_count, host_last, *buffers, *values)
            for q, col_pre in zip(self._listed, lists, strict=True):
                self._lists[q][0] = col_pre  # a wider copy if a column outgrew it
        if plan:
            self._log_fused(plan, args)
        for proj in self.projs:
            if proj.plasticity is not None:  # STDP wrote the weights through numpy
                proj.synapses.values_changed()
        return {key: torch.from_numpy(buf) for key, buf in zip(rec_keys, buffers, strict=True)}

    def _run_split(self, k, names, rec, buffers, values, args, plan, host_last) -> None:
        """Per-step, per-phase calls with timers (``time_phases=True``); the column indices
        are kept on the host after each rule call (timed as ``index_rebuild``)."""
        sim = self.sim
        funcs = self._driver(names, rec, split=True)
        if sim.first_step_at is None:
            sim.first_step_at = time.perf_counter()
        n = len(PHASES)
        step0 = sim.step_count
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
                start = int(args[f"ctr{r}"][1])
                tic = time.perf_counter()
                changed = funcs[n + 1 + self.fused.index(r)](step, step0, *values)
                sim.timers["rules"] += time.perf_counter() - tic
                q = self._targets[r][0]
                tic = time.perf_counter()
                if changed and q in self._slot_indexed:  # the fan-in kernel rebuilds its own
                    rules.rebuild_columns(
                        args[f"q{q}_ind"],
                        args[f"q{q}_len"],
                        self.projs[q].post.n,
                        args[f"q{q}_cptr"],
                        args[f"q{q}_cslot"],
                    )
                elif q in self._lists and isinstance(sim.net.rules[r].rule, DistanceRewiring):
                    col_pre = rules.apply_column_events(
                        args[f"ev{r}_0_pre"],
                        args[f"ev{r}_0_post"],
                        args[f"ev{r}_0_kind"],
                        start,
                        int(args[f"ctr{r}"][1]),
                        args[f"q{q}_cpre"],
                        args[f"q{q}_clen"],
                    )
                    # a wider copy if a column outgrew it
                    args[f"q{q}_cpre"] = values[position[f"q{q}_cpre"]] = col_pre
                    self._lists[q][0] = col_pre
                sim.timers["index_rebuild"] += time.perf_counter() - tic
