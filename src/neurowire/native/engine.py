"""The native CPU engine: a block of steps as one generated, numba-compiled function.

Like GeNN, the engine generates code for the network at hand: a driver that calls one kernel
per phase and model (``kernels.py``) with every parameter written in as a literal, compiled by
numba. It works in place on numpy views of the simulator's tensors and of each projection's
store, delivers and learns event-driven (cost proportional to spikes times fan-out) and needs no
event budget. Phases follow :class:`~neurowire.Simulator` exactly; the pure-PyTorch engine is
the reference it is tested against.

Structural rules with a native kernel (:class:`~neurowire.DistanceRewiring`) are *fused*: they
run inside the block after their due steps, from random numbers drawn on the host with the
rule's own generator exactly as the host-side rule would draw them, and the column index of
plastic projections is rebuilt in the block after every change. A block then only ends where a
callback is due, so a long run needs few Python calls.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import neurons as nrn
from .. import psc as psc_models
from ..structural.distance import DistanceRewiring
from . import kernels, rules, unsupported

PHASES = ("delivery", "postsynaptic", "neurons", "plasticity")


def fusable(sim) -> bool:
    """Whether every scheduled rule of ``sim`` can run inside native blocks."""
    for scheduled in sim.net.rules:
        proj = scheduled.projection
        grids = proj.pre.grid, proj.post.grid
        if (
            type(scheduled.rule) is not DistanceRewiring
            or set(proj.synapses.vars) != {"weight"}
            or grids[0] is None
            or grids[1] is None
            or grids[0] != grids[1]
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
        self.fused = fusable(sim) and bool(sim.net.rules)
        self._proj_index = {p.name: q for q, p in enumerate(self.projs)}
        self._scratch = self._allocate_scratch()
        self._col_version: dict[int, int] = {}
        self._views: dict[int, tuple[Tensor, np.ndarray]] = {}
        self._drivers: dict[tuple, Any] = {}

    # ------------------------------------------------------------------ arrays
    def _allocate_scratch(self) -> dict[str, np.ndarray]:
        batch = self.sim.batch_size
        out = {}
        for i, pop in enumerate(self.pops):
            out[f"p{i}_isyn"] = np.zeros((batch, pop.n), self.np_dtype)
            if pop.model.spiking:  # this step's spikes as a list of b * n + i, persisting
                out[f"p{i}_spk"] = np.zeros(batch * pop.n, np.int64)  # across blocks
                out[f"p{i}_nspk"] = np.zeros(1, np.int64)
        for q, proj in enumerate(self.projs):
            out[f"q{q}_wsum"] = np.zeros((batch, proj.post.n), self.np_dtype)
            if proj.synapse is not None:
                s = proj.synapses
                out[f"q{q}_cptr"] = np.zeros(s.n_post + 1, np.int64)
                out[f"q{q}_cslot"] = np.zeros(max(1, s.n_pre * s.capacity), np.int64)
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
            if "bias" in pop.params:
                args[f"p{i}_bias"] = view(pop.params["bias"])
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
                self._refresh_columns(q, args)
        self._views = fresh
        return args

    def _refresh_columns(self, q: int, args: dict[str, np.ndarray]) -> None:
        s = self.projs[q].synapses
        if self._col_version.get(q) == s.version:
            return
        tic = time.perf_counter()
        rules.rebuild_columns(
            args[f"q{q}_ind"], args[f"q{q}_len"], s.n_post, args[f"q{q}_cptr"], args[f"q{q}_cslot"]
        )
        s.index_rebuild_s += time.perf_counter() - tic
        self._col_version[q] = s.version

    # ------------------------------------------------------------------ code generation
    def _lit(self, x: float) -> str:
        return f"np.{self.np_dtype.__name__}({float(x)!r})"

    def _phase_lines(self) -> dict[str, list[str]]:
        dt = self.sim.dt
        index = {pop.name: i for i, pop in enumerate(self.pops)}
        lines: dict[str, list[str]] = {phase: [] for phase in PHASES}
        for q, proj in enumerate(self.projs):
            pre = index[proj.pre.name]
            spikes = f"p{pre}_spk, p{pre}_nspk, {proj.pre.n}"
            if proj.sparse:
                lines["delivery"].append(
                    f"kernels.deliver_rows({spikes}, q{q}_ind, q{q}_len, q{q}_w, q{q}_wsum)"
                )
            else:
                lines["delivery"].append(f"kernels.deliver_dense({spikes}, q{q}_w, q{q}_wsum)")
        seen: set[int] = set()
        for q, proj in enumerate(self.projs):
            post, model = index[proj.post.name], proj.psc
            first = post not in seen
            seen.add(post)
            k = self._lit(nrn.decay(model.tau, dt)) if hasattr(model, "tau") else None
            if isinstance(model, psc_models.Delta):
                lines["postsynaptic"].append(f"kernels.psc_delta(q{q}_wsum, p{post}_isyn, {first})")
            elif isinstance(model, psc_models.ExpCurr):
                lines["postsynaptic"].append(
                    f"kernels.psc_exp_curr(q{q}_psc, q{q}_wsum, p{post}_isyn, {first}, {k})"
                )
            else:
                lines["postsynaptic"].append(
                    f"kernels.psc_exp_cond(q{q}_psc, q{q}_wsum, p{post}_v, p{post}_isyn, "
                    f"{first}, {k}, {self._lit(model.e_rev)})"
                )
        for i, pop in enumerate(self.pops):
            lines["neurons"].append(self._neuron_line(i, pop.model))
        for q, proj in enumerate(self.projs):
            rule = proj.synapse
            if rule is None:
                continue
            pre, post, lit = index[proj.pre.name], index[proj.post.name], self._lit
            lines["plasticity"].append(
                f"kernels.stdp(q{q}_w, q{q}_ind, q{q}_len, q{q}_cptr, q{q}_cslot, p{pre}_spk, "
                f"p{pre}_nspk, p{post}_spk, p{post}_nspk, q{q}_xpre, q{q}_xpost, "
                f"{lit(nrn.decay(rule.tau_plus, dt))}, "
                f"{lit(nrn.decay(rule.tau_minus, dt))}, {lit(rule.a_plus)}, "
                f"{lit(rule.a_minus)}, {lit(rule.w_min)}, {lit(rule.w_max)})"
            )
        return lines

    def _neuron_line(self, i: int, model) -> str:
        dt, lit, isyn = self.sim.dt, self._lit, f"p{i}_isyn"
        spk = f"p{i}_spk, p{i}_nspk"
        if isinstance(model, nrn.SpikeSource):
            return f"kernels.source(p{i}_z, p{i}_ext[k], {spk})"
        if isinstance(model, nrn.PoissonSource):
            return f"kernels.poisson(p{i}_z, p{i}_rate_hz, p{i}_rand[k], {spk}, {lit(dt * 1e-3)})"
        if isinstance(model, nrn.LeakyIntegrator):
            return (
                f"kernels.leaky_integrator(p{i}_y, {isyn}, p{i}_bias, "
                f"{lit(nrn.decay(model.tau, dt))})"
            )
        n_ref = nrn.refractory_steps(model.tau_refrac, dt)
        alpha = nrn.decay(model.tau_m, dt)
        if isinstance(model, nrn.ALIF):
            return (
                f"kernels.alif(p{i}_v, p{i}_a, p{i}_r, p{i}_z, {isyn}, {spk}, {lit(alpha)}, "
                f"{lit(nrn.decay(model.tau_a, dt))}, {lit(model.beta)}, {lit(model.v_th)}, "
                f"{n_ref})"
            )
        if model.v_reset is None:
            return (
                f"kernels.lif_subtractive(p{i}_v, p{i}_r, p{i}_z, {isyn}, {spk}, {lit(alpha)}, "
                f"{lit(model.v_th)}, {n_ref})"
            )
        return (
            f"kernels.lif_reset(p{i}_v, p{i}_r, p{i}_z, {isyn}, {spk}, {lit(alpha)}, "
            f"{lit(1 - alpha)}, {lit(model.input_gain(dt))}, {lit(model.v_rest)}, "
            f"{lit(model.v_th)}, {lit(model.v_reset)}, {n_ref})"
        )

    def _rule_lines(self, r: int) -> list[str]:
        """Driver lines running fused rule ``r`` after step ``k`` when it is due."""
        scheduled = self.sim.net.rules[r]
        rule, proj = scheduled.rule, scheduled.projection
        q, grid = self._proj_index[proj.name], proj.post.grid
        w_dtype = "np.float32" if self.np_dtype is np.float32 else "np.float64"
        lines = [
            f"if (step0 + k + 1) % {scheduled.every} == 0:",
            f"    rem, add, fail, ne{r} = rules.distance_rewiring(u{r}[c{r}], q{q}_ind, "
            f"q{q}_len, q{q}_w, {proj.post.n}, {grid.n_rows}, {grid.n_cols}, {grid.periodic}, "
            f"{rule.p_peak!r}, {2.0 * rule.sigma**2!r}, {rule.p_elim_dep!r}, "
            f"{rule.p_elim_pot!r}, {w_dtype}({rule.w_threshold!r}), {w_dtype}({rule.w_init!r}), "
            f"evpre{r}, evpost{r}, evkind{r}, evdist{r}, ne{r})",
            f"    calls{r}[c{r}, 0] = step0 + k + 1",
            f"    calls{r}[c{r}, 1] = rem",
            f"    calls{r}[c{r}, 2] = add",
            f"    calls{r}[c{r}, 3] = fail",
            f"    calls{r}[c{r}, 4] = ne{r}",
            f"    c{r} += 1",
        ]
        if proj.synapse is not None:
            lines += [
                "    if rem + add > 0:",
                f"        rules.rebuild_columns(q{q}_ind, q{q}_len, {proj.post.n}, q{q}_cptr, "
                f"q{q}_cslot)",
            ]
        return lines

    def _driver(self, names: tuple[str, ...], rec: tuple[tuple[int, str], ...], split: bool):
        key = (names, rec, split)
        if key in self._drivers:
            return self._drivers[key]
        from numba import njit

        phases = self._phase_lines()
        params = ", ".join(names)
        rec_params = "".join(f", rec{j}" for j in range(len(rec)))
        rec_lines = [f"rec{j}[k] = p{i}_{field}" for j, (i, field) in enumerate(rec)]
        namespace = {"np": np, "kernels": kernels, "rules": rules}

        def define(name: str, header: str, body: list[str], indent: str = "    "):
            src = header + "".join(f"{indent}{ln}\n" for ln in (body or ["pass"]))
            exec(compile(src, f"<neurowire native {name}>", "exec"), namespace)
            return njit(nogil=True)(namespace[name])

        if split:  # one function per phase and step, for per-phase timing
            driver = tuple(
                define(phase, f"def {phase}(k, {params}):\n", phases[phase]) for phase in PHASES
            ) + (define("record", f"def record(k{rec_params}, {params}):\n", rec_lines),)
        else:
            n_rules = len(self.sim.net.rules) if self.fused else 0
            body = [f"c{r} = 0\nne{r} = 0" for r in range(n_rules)]
            loop = [ln for phase in PHASES for ln in phases[phase]] + rec_lines
            for r in range(n_rules):
                loop += self._rule_lines(r)
            body += ["for k in range(n_steps):"] + [f"    {ln}" for ln in loop]
            body = [ln for chunk in body for ln in chunk.split("\n")]
            driver = define("block", f"def block(n_steps, step0{rec_params}, {params}):\n", body)
        self._drivers[key] = driver
        return driver

    # ------------------------------------------------------------------ fused rules
    def _rule_arguments(self, k: int, args: dict[str, np.ndarray]) -> list[tuple[int, int]]:
        """Draw every fused rule call of the next ``k`` steps; returns (rule, calls) pairs."""
        sim, plan = self.sim, []
        for r, scheduled in enumerate(sim.net.rules):
            every, rule = scheduled.every, scheduled.rule
            n_calls = (sim.step_count + k) // every - sim.step_count // every
            size = max(1, n_calls * rule.attempts)
            args[f"u{r}"] = rule.draw(sim._rule_rngs[r], n_calls)
            args[f"evpre{r}"] = np.empty(size, np.int64)
            args[f"evpost{r}"] = np.empty(size, np.int64)
            args[f"evkind{r}"] = np.empty(size, np.int8)
            args[f"evdist{r}"] = np.empty(size, np.float32)
            args[f"calls{r}"] = np.zeros((max(1, n_calls), 5), np.int64)
            plan.append((r, n_calls))
        return plan

    def _log_fused(self, plan: list[tuple[int, int]], args: dict[str, np.ndarray]) -> None:
        sim = self.sim
        for r, n_calls in plan:
            scheduled = sim.net.rules[r]
            name = scheduled.projection.name
            calls = args[f"calls{r}"][:n_calls]
            sim.rewiring.record_calls(
                name, calls[:, 0], calls[:, 0] * sim.dt, calls[:, 1], calls[:, 2], calls[:, 3]
            )
            n_events = int(calls[-1, 4]) if n_calls else 0
            if scheduled.log_events and n_events:
                per_call = np.diff(calls[:, 4], prepend=0)
                t_ms = np.repeat(calls[:, 0] * sim.dt, per_call)
                sl = slice(0, n_events)
                sim.rewiring.record_events(
                    name,
                    t_ms,
                    args[f"evpre{r}"][sl],
                    args[f"evpost{r}"][sl],
                    args[f"evkind{r}"][sl],
                    args[f"evdist{r}"][sl],
                )
            if n_calls and int(calls[:, 1].sum() + calls[:, 2].sum()):
                q = self._proj_index[name]
                self.projs[q].synapses._changed()
                if self.projs[q].synapse is not None:
                    self._col_version[q] = self.projs[q].synapses.version

    # ------------------------------------------------------------------ running
    def run_block(
        self, k: int, ext: Mapping[str, Tensor], rec_keys: tuple[tuple[str, str], ...]
    ) -> dict[tuple[str, str], Tensor]:
        """Advance ``k`` steps in place; returns recordings ``[k, B, n]`` per (pop, var)."""
        sim = self.sim
        args = self._arguments(ext)
        plan = self._rule_arguments(k, args) if self.fused else []
        names = tuple(sorted(args))
        index = {pop.name: i for i, pop in enumerate(self.pops)}
        rec = tuple((index[pop], "z" if var == "spikes" else var) for pop, var in rec_keys)
        buffers = []
        for i, field in rec:
            src = args[f"p{i}_{field}"]
            buffers.append(np.zeros((k,) + src.shape, src.dtype))
        values = [args[n] for n in names]
        if sim.time_phases:
            self._run_split(k, names, rec, buffers, values, args, plan)
        else:
            compiled = (names, rec, False) in self._drivers
            driver = self._driver(names, rec, split=False)
            if not compiled:  # numba compiles on the first call: time it apart (0 steps)
                tic = time.perf_counter()
                driver(0, sim.step_count, *buffers, *values)
                sim.timers["compile"] += time.perf_counter() - tic
            driver(k, sim.step_count, *buffers, *values)
        if plan:
            self._log_fused(plan, args)
        return {key: torch.from_numpy(buf) for key, buf in zip(rec_keys, buffers, strict=True)}

    def _run_split(self, k, names, rec, buffers, values, args, plan) -> None:
        """Per-step, per-phase calls with timers (``time_phases=True``)."""
        sim = self.sim
        funcs = self._driver(names, rec, split=True)
        counters = {r: [0, 0] for r, _ in plan}  # calls made, events written
        for step in range(k):
            for phase, fn in zip(PHASES, funcs[:-1], strict=True):
                tic = time.perf_counter()
                fn(step, *values)
                sim.timers[phase] += time.perf_counter() - tic
            funcs[-1](step, *buffers, *values)
            for r, _ in plan:
                scheduled = sim.net.rules[r]
                if (sim.step_count + step + 1) % scheduled.every:
                    continue
                self._call_rule(r, sim.step_count + step + 1, args, counters[r])

    def _call_rule(self, r: int, step_no: int, args, counter: list[int]) -> None:
        sim, scheduled = self.sim, self.sim.net.rules[r]
        rule, proj = scheduled.rule, scheduled.projection
        q, grid = self._proj_index[proj.name], proj.post.grid
        cast = self.np_dtype
        tic = time.perf_counter()
        rem, add, fail, ne = rules.distance_rewiring(
            args[f"u{r}"][counter[0]],
            args[f"q{q}_ind"],
            args[f"q{q}_len"],
            args[f"q{q}_w"],
            proj.post.n,
            grid.n_rows,
            grid.n_cols,
            grid.periodic,
            rule.p_peak,
            2.0 * rule.sigma**2,
            rule.p_elim_dep,
            rule.p_elim_pot,
            cast(rule.w_threshold),
            cast(rule.w_init),
            args[f"evpre{r}"],
            args[f"evpost{r}"],
            args[f"evkind{r}"],
            args[f"evdist{r}"],
            counter[1],
        )
        sim.timers["rules"] += time.perf_counter() - tic
        args[f"calls{r}"][counter[0]] = (step_no, rem, add, fail, ne)
        counter[0] += 1
        counter[1] = ne
        if proj.synapse is not None and rem + add:
            tic = time.perf_counter()
            rules.rebuild_columns(
                args[f"q{q}_ind"],
                args[f"q{q}_len"],
                proj.post.n,
                args[f"q{q}_cptr"],
                args[f"q{q}_cslot"],
            )
            sim.timers["index_rebuild"] += time.perf_counter() - tic
