"""The native CPU engine: a block of steps as one generated, numba-compiled function.

Like GeNN, the engine generates code for the network at hand: a driver that calls one kernel
per phase and model (derived from the models by :mod:`.codegen`; delivery from
:mod:`.delivery`) with every parameter written in as a literal, compiled by
numba. It works in place on numpy views of the simulator's tensors and of each projection's
store, delivers and learns event-driven (cost proportional to spikes times fan-out) and needs no
event budget. Phases follow :class:`~neurowire.Simulator` exactly; the pure-PyTorch engine is
the reference it is tested against.

Structural rules with a native kernel (:class:`~neurowire.DistanceRewiring`,
:class:`~neurowire.SharedFanInRewiring`; ``rule.native()``) are *fused*, each on its own: they
run inside the block after their due steps, from random numbers drawn on the host with the
rule's own generator exactly as the host-side rule would draw them, and the column index of
plastic projections is rebuilt in the block after every change. A block then only ends where a
callback or a host rule is due, so a long run needs few Python calls. At a step where a host rule
is due, the host runs every rule due there in declaration order (fused ones through their
``update``, drawing the same random numbers), so the order of rules never depends on fusion.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..codegen import generated_module
from ..structural.distance import DistanceRewiring
from ..structural.fan_in import SharedFanInRewiring
from . import codegen as gen
from . import rules, unsupported

PHASES = ("delivery", "postsynaptic", "neurons", "plasticity")


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

    def __init__(self, sim) -> None:
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
        # projections that need a column index: STDP, or a fused rule that reads columns
        self._indexed = {q for q, p in enumerate(self.projs) if p.synapse is not None}
        for r in self.fused:
            if isinstance(sim.net.rules[r].rule, SharedFanInRewiring):
                self._indexed.update(self._targets[r])
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
        return out

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
            if pop.model.stochastic:
                args[f"p{i}_rand"] = ext[pop.name].numpy()
            elif pop.model.external:
                args[f"p{i}_ext"] = ext[pop.name].numpy()
        for q, proj in enumerate(self.projs):
            args[f"q{q}_psc"] = view(sim.state["psc"][proj.name])
            if not proj.sparse:
                args[f"q{q}_w"] = view(proj.weight)
                continue
            s = proj.synapses
            args[f"q{q}_ind"], args[f"q{q}_len"] = view(s.ind), view(s.row_length)
            args[f"q{q}_w"] = view(s.vars["weight"])
            if proj.synapse is not None:
                x_pre, x_post = sim.state["traces"][proj.name]
                args[f"q{q}_xpre"], args[f"q{q}_xpost"] = view(x_pre), view(x_post)
            if q in self._indexed:  # the store's column index, cached there per version
                cptr, cslot = s.slot_columns()
                args[f"q{q}_cptr"], args[f"q{q}_cslot"] = view(cptr), view(cslot)
        self._views = fresh
        return args

    # ------------------------------------------------------------------ code generation
    def _lit(self, x: float) -> str:
        return f"np.{self.np_dtype.__name__}({float(x)!r})"

    def _kernel_sources(self) -> str:
        """numba source of every model's kernel, derived from its one definition."""
        dt, ftype = self.sim.dt, self.np_dtype.__name__
        parts = []
        for i, pop in enumerate(self.pops):
            if not pop.model.external:
                parts.append(gen.neuron_kernel(pop.model, dt, f"neuron_p{i}", ftype))
        for q, proj in enumerate(self.projs):
            parts.append(gen.psc_kernel(proj.psc, dt, f"psc_q{q}", ftype))
            if proj.synapse is not None:
                parts.append(gen.stdp_kernel(proj.synapse, dt, f"stdp_q{q}", ftype))
        return "\n\n".join(parts)

    def _phase_lines(self) -> dict[str, list[str]]:
        index = {pop.name: i for i, pop in enumerate(self.pops)}
        lines: dict[str, list[str]] = {phase: [] for phase in PHASES}
        for q, proj in enumerate(self.projs):
            pre = index[proj.pre.name]
            spikes = f"p{pre}_spk, p{pre}_nspk, {proj.pre.n}"
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
            v = f"p{post}_v" if proj.psc.needs_voltage else f"q{q}_wsum"
            lines["postsynaptic"].append(
                f"psc_q{q}(q{q}_psc, q{q}_wsum, {v}, p{post}_isyn, {first})"
            )
        for i, pop in enumerate(self.pops):
            lines["neurons"].append(self._neuron_line(i, pop.model))
        for q, proj in enumerate(self.projs):
            if proj.synapse is None:
                continue
            pre, post = index[proj.pre.name], index[proj.post.name]
            lines["plasticity"].append(
                f"stdp_q{q}(q{q}_w, q{q}_ind, q{q}_len, q{q}_cptr, q{q}_cslot, p{pre}_spk, "
                f"p{pre}_nspk, p{post}_spk, p{post}_nspk, q{q}_xpre, q{q}_xpost)"
            )
        return lines

    def _neuron_line(self, i: int, model) -> str:
        spk = f"p{i}_spk, p{i}_nspk"
        if model.external:
            return f"spikes_out.source(p{i}_z, p{i}_ext[k], {spk})"
        args = [f"p{i}_{f}" for f in model.state_type._fields] + [f"p{i}_isyn"]
        if model.stochastic:
            args.append(f"p{i}_rand[k]")
        args += [f"p{i}_{name}" for name in model.param_names]
        if model.spiking:
            args.append(spk)
        else:  # a non-spiking model has no spike list: pass scratch ones
            args.append(f"p{i}_nospk, p{i}_nonspk")
        return f"neuron_p{i}({', '.join(args)})"

    def _rule_call(self, r: int) -> tuple[list[str], list[str]]:
        """Generated lines of one call of fused rule ``r`` (setting ``ch{r}``, whether it
        changed anything) and of the column-index rebuild that must follow a change."""
        scheduled = self.sim.net.rules[r]
        rule, grid = scheduled.rule, scheduled.projection.post.grid
        w_dtype = f"np.{self.np_dtype.__name__}"
        targets = self._targets[r]
        geometry = f"{scheduled.projection.post.n}, {grid.n_rows}, {grid.n_cols}, {grid.periodic}"
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
                f"{w_dtype}({rule.w_init!r}), {ev[0]}, ctr{r}[1])",
                f"calls{r}[{c}, 0] = step0 + k + 1",
                f"calls{r}[{c}, 1] = rem",
                f"calls{r}[{c}, 2] = add",
                f"calls{r}[{c}, 3] = fail",
                f"calls{r}[{c}, 4] = ne",
                f"ctr{r}[1] = ne",
                f"ctr{r}[0] += 1",
                f"ch{r} = rem + add > 0",
            ]
            rebuild = []
            if q in self._indexed:
                n_post = self.projs[q].post.n
                rebuild = [
                    f"rules.rebuild_columns(q{q}_ind, q{q}_len, {n_post}, q{q}_cptr, q{q}_cslot)"
                ]
            return call, rebuild
        q0, q1 = targets
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
        phases = self._phase_lines()
        params = ", ".join(names)
        rec_params = "".join(f", rec{j}" for j in range(len(rec)))
        rec_lines = [f"rec{j}[k] = p{i}_{field}" for j, (i, field) in enumerate(rec)]
        defs: list[tuple[str, str, list[str]]] = []  # (name, signature, body)
        if split:  # one function per phase and step, for per-phase timing
            for phase in PHASES:
                defs.append((phase, f"k, {params}", phases[phase]))
            defs.append(("record", f"k{rec_params}, {params}", rec_lines))
            for r in self.fused:
                call, _ = self._rule_call(r)
                due = f"if (step0 + k + 1) % {self.sim.net.rules[r].every}:\n        return False"
                defs.append((f"rule{r}", f"k, step0, {params}", [due, *call, f"return ch{r}"]))
        else:
            loop = [ln for phase in PHASES for ln in phases[phase]] + rec_lines
            for r in self.fused:  # the host runs every rule due at a host step (host_last)
                call, rebuild = self._rule_call(r)
                loop += [
                    f"if (step0 + k + 1) % {self.sim.net.rules[r].every} == 0 and not "
                    "(host_last and k == n_steps - 1):"
                ]
                loop += [f"    {ln}" for ln in call]
                if rebuild:
                    loop += [f"    if ch{r}:"] + [f"        {ln}" for ln in rebuild]
            body = ["for k in range(n_steps):"] + [f"    {ln}" for ln in loop]
            defs.append(("block", f"n_steps, step0, host_last{rec_params}, {params}", body))
        source = self._module_source(defs)
        module = generated_module(source, "block")
        driver = tuple(getattr(module, n) for n, _, _ in defs) if split else module.block
        self.sources[split] = module.__file__
        self._drivers[key] = driver
        return driver

    def source_text(self) -> str:
        """Text of the generated module of the last block (or the model kernels alone)."""
        path = self.sources.get(False) or self.sources.get(True)
        if path is None:
            return "# model kernels (no block generated yet)\n" + self._kernel_sources()
        with open(path) as f:
            return f"# {path}\n" + f.read()

    def _module_source(self, defs: list[tuple[str, str, list[str]]]) -> str:
        """The generated module: model kernels, then the driver functions (readable names:
        ``p<i>_<var>`` population ``i``'s variable, ``q<j>_*`` projection ``j``'s arrays)."""
        legend = [
            f"# p{i}: population {p.name!r} ({type(p.model).__name__})"
            for i, p in enumerate(self.pops)
        ]
        legend += [f"# q{q}: projection {p.name!r}" for q, p in enumerate(self.projs)]
        out = [
            '"""Generated by neurowire.native.engine for one network; do not edit."""',
            *legend,
            gen.MODULE_HEADER.strip(),
            "from neurowire.native import delivery as spikes_out",
            "from neurowire.native import rules",
            "",
            "",
            self._kernel_sources(),
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
            size = max(1, n_calls * rule.attempts)
            targets = self._targets[r]
            args[f"u{r}"] = rule.draw(sim.rules.rngs[r], n_calls)
            for m in range(len(targets)):
                args[f"ev{r}_{m}_pre"] = np.empty(size, np.int64)
                args[f"ev{r}_{m}_post"] = np.empty(size, np.int64)
                args[f"ev{r}_{m}_kind"] = np.empty(size, np.int8)
                args[f"ev{r}_{m}_dist"] = np.empty(size, np.float32)
            args[f"calls{r}"] = np.zeros((max(1, n_calls), 1 + 4 * len(targets)), np.int64)
            args[f"ctr{r}"] = np.zeros(1 + len(targets), np.int64)
            if len(targets) == 2:
                args[f"cnt{r}"] = np.zeros(6, np.int64)
            plan.append((r, n_calls))
        return plan

    def _log_fused(self, plan: list[tuple[int, int]], args: dict[str, np.ndarray]) -> None:
        sim = self.sim
        for r, n_calls in plan:
            if not n_calls:
                continue
            scheduled = sim.net.rules[r]
            calls = args[f"calls{r}"][:n_calls]
            steps = calls[:, 0]
            for m, q in enumerate(self._targets[r]):
                name = self.projs[q].name
                rem, add, fail, ends = (calls[:, 1 + 4 * m + i] for i in range(4))
                sim.rewiring.record_calls(name, steps, steps * sim.dt, rem, add, fail)
                n_events = int(ends[-1])
                if scheduled.log_events and n_events:
                    t_ms = np.repeat(steps * sim.dt, np.diff(ends, prepend=0))
                    sl = slice(0, n_events)
                    sim.rewiring.record_events(
                        name,
                        t_ms,
                        *(args[f"ev{r}_{m}_{f}"][sl] for f in ("pre", "post", "kind", "dist")),
                    )
                if int(rem.sum() + add.sum()):  # the block rebuilt the column index in place
                    rebuilt = ("slot_columns",) if q in self._indexed else ()
                    self.projs[q].synapses._changed(rebuilt=rebuilt)

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
            if not compiled:  # numba compiles on the first call: time it apart (0 steps)
                tic = time.perf_counter()
                driver(0, sim.step_count, False, *buffers, *values)
                sim.timers["compile"] += time.perf_counter() - tic
            driver(k, sim.step_count, host_last, *buffers, *values)
        if plan:
            self._log_fused(plan, args)
        for proj in self.projs:
            if proj.synapse is not None:  # STDP wrote the weights through numpy
                proj.synapses.values_changed()
        return {key: torch.from_numpy(buf) for key, buf in zip(rec_keys, buffers, strict=True)}

    def _run_split(self, k, names, rec, buffers, values, args, plan, host_last) -> None:
        """Per-step, per-phase calls with timers (``time_phases=True``)."""
        sim = self.sim
        funcs = self._driver(names, rec, split=True)
        n = len(PHASES)
        step0 = sim.step_count
        for step in range(k):
            for phase, fn in zip(PHASES, funcs[:n], strict=True):
                tic = time.perf_counter()
                fn(step, *values)
                sim.timers[phase] += time.perf_counter() - tic
            funcs[n](step, *buffers, *values)
            for r, _ in plan:
                if (step0 + step + 1) % sim.net.rules[r].every or (host_last and step == k - 1):
                    continue
                tic = time.perf_counter()
                changed = funcs[n + 1 + self.fused.index(r)](step, step0, *values)
                sim.timers["rules"] += time.perf_counter() - tic
                q = self._targets[r][0]
                if changed and q in self._indexed:  # the fan-in kernel rebuilds its own
                    tic = time.perf_counter()
                    rules.rebuild_columns(
                        args[f"q{q}_ind"],
                        args[f"q{q}_len"],
                        self.projs[q].post.n,
                        args[f"q{q}_cptr"],
                        args[f"q{q}_cslot"],
                    )
                    sim.timers["index_rebuild"] += time.perf_counter() - tic
