"""The native CPU engine: a block of steps as one generated, numba-compiled function.

Like GeNN, the engine generates code for the network at hand: a driver that calls one kernel
per phase and model (``kernels.py``) with every parameter written in as a literal, compiled by
numba. It works in place on numpy views of the simulator's tensors and of each projection's
store, delivers and learns event-driven (cost proportional to spikes times fan-out) and needs no
event budget. Phases follow :class:`~neurowire.Simulator` exactly; the pure-PyTorch engine is
the reference it is tested against.
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
from . import kernels, unsupported

PHASES = ("delivery", "postsynaptic", "neurons", "plasticity")


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
        self._scratch = self._allocate_scratch()
        self._views: dict[int, tuple[Tensor, np.ndarray]] = {}
        self._drivers: dict[tuple, Any] = {}

    # ------------------------------------------------------------------ arrays
    def _allocate_scratch(self) -> dict[str, np.ndarray]:
        batch = self.sim.batch_size
        out = {}
        for i, pop in enumerate(self.pops):
            out[f"p{i}_isyn"] = np.zeros((batch, pop.n), self.np_dtype)
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
                cols = s.columns()
                args[f"q{q}_cptr"], args[f"q{q}_cslot"] = view(cols.indptr), view(cols.slot)
                x_pre, x_post = sim.state["traces"][proj.name]
                args[f"q{q}_xpre"], args[f"q{q}_xpost"] = view(x_pre), view(x_post)
        self._views = fresh
        return args

    # ------------------------------------------------------------------ code generation
    def _lit(self, x: float) -> str:
        return f"np.{self.np_dtype.__name__}({float(x)!r})"

    def _phase_lines(self) -> dict[str, list[str]]:
        dt = self.sim.dt
        index = {pop.name: i for i, pop in enumerate(self.pops)}
        lines: dict[str, list[str]] = {phase: [] for phase in PHASES}
        for q, proj in enumerate(self.projs):
            pre = index[proj.pre.name]
            if proj.sparse:
                lines["delivery"].append(
                    f"kernels.deliver_rows(p{pre}_z, q{q}_ind, q{q}_len, q{q}_w, q{q}_wsum)"
                )
            else:
                lines["delivery"].append(f"kernels.deliver_dense(p{pre}_z, q{q}_w, q{q}_wsum)")
        receiving = sorted({index[p.post.name] for p in self.projs})
        for i in receiving:
            lines["postsynaptic"].append(f"p{i}_isyn[:] = 0")
        for q, proj in enumerate(self.projs):
            post, model = index[proj.post.name], proj.psc
            if isinstance(model, psc_models.Delta):
                lines["postsynaptic"].append(f"kernels.psc_delta(q{q}_wsum, p{post}_isyn)")
            elif isinstance(model, psc_models.ExpCurr):
                lines["postsynaptic"].append(
                    f"kernels.psc_exp_curr(q{q}_psc, q{q}_wsum, p{post}_isyn, "
                    f"{self._lit(nrn.decay(model.tau, dt))})"
                )
            else:
                lines["postsynaptic"].append(
                    f"kernels.psc_exp_cond(q{q}_psc, q{q}_wsum, p{post}_v, p{post}_isyn, "
                    f"{self._lit(nrn.decay(model.tau, dt))}, {self._lit(model.e_rev)})"
                )
        for i, pop in enumerate(self.pops):
            lines["neurons"].append(self._neuron_line(i, pop.model))
        for q, proj in enumerate(self.projs):
            rule = proj.synapse
            if rule is None:
                continue
            pre, post = index[proj.pre.name], index[proj.post.name]
            lit = self._lit
            lines["plasticity"].append(
                f"kernels.stdp(q{q}_w, q{q}_ind, q{q}_len, q{q}_cptr, q{q}_cslot, p{pre}_z, "
                f"p{post}_z, q{q}_xpre, q{q}_xpost, {lit(nrn.decay(rule.tau_plus, dt))}, "
                f"{lit(nrn.decay(rule.tau_minus, dt))}, {lit(rule.a_plus)}, "
                f"{lit(rule.a_minus)}, {lit(rule.w_min)}, {lit(rule.w_max)})"
            )
        return lines

    def _neuron_line(self, i: int, model) -> str:
        dt, lit, isyn = self.sim.dt, self._lit, f"p{i}_isyn"
        if isinstance(model, nrn.SpikeSource):
            return f"p{i}_z[:] = p{i}_ext[k]"
        if isinstance(model, nrn.PoissonSource):
            return f"kernels.poisson(p{i}_z, p{i}_rate_hz, p{i}_rand[k], {lit(dt * 1e-3)})"
        if isinstance(model, nrn.LeakyIntegrator):
            return (
                f"kernels.leaky_integrator(p{i}_y, {isyn}, p{i}_bias, "
                f"{lit(nrn.decay(model.tau, dt))})"
            )
        n_ref = nrn.refractory_steps(model.tau_refrac, dt)
        alpha = nrn.decay(model.tau_m, dt)
        if isinstance(model, nrn.ALIF):
            return (
                f"kernels.alif(p{i}_v, p{i}_a, p{i}_r, p{i}_z, {isyn}, {lit(alpha)}, "
                f"{lit(nrn.decay(model.tau_a, dt))}, {lit(model.beta)}, {lit(model.v_th)}, "
                f"{n_ref})"
            )
        if model.v_reset is None:
            return (
                f"kernels.lif_subtractive(p{i}_v, p{i}_r, p{i}_z, {isyn}, {lit(alpha)}, "
                f"{lit(model.v_th)}, {n_ref})"
            )
        return (
            f"kernels.lif_reset(p{i}_v, p{i}_r, p{i}_z, {isyn}, {lit(alpha)}, "
            f"{lit(1 - alpha)}, {lit(model.input_gain(dt))}, {lit(model.v_rest)}, "
            f"{lit(model.v_th)}, {lit(model.v_reset)}, {n_ref})"
        )

    def _driver(self, names: tuple[str, ...], rec: tuple[tuple[int, str], ...], split: bool):
        key = (names, rec, split)
        if key in self._drivers:
            return self._drivers[key]
        from numba import njit

        phases = self._phase_lines()
        params = ", ".join(names)
        rec_params = "".join(f", rec{j}" for j in range(len(rec)))
        rec_lines = [f"rec{j}[k] = p{i}_{field}" for j, (i, field) in enumerate(rec)]
        namespace = {"np": np, "kernels": kernels}
        if split:  # one function per phase and step, for per-phase timing
            funcs = []
            for phase in PHASES:
                body = phases[phase] or ["pass"]
                src = f"def {phase}(k, {params}):\n" + "".join(f"    {ln}\n" for ln in body)
                exec(compile(src, f"<neurowire native {phase}>", "exec"), namespace)
                funcs.append(njit(nogil=True)(namespace[phase]))
            src = f"def record(k{rec_params}, {params}):\n" + "".join(
                f"    {ln}\n" for ln in (rec_lines or ["pass"])
            )
            exec(compile(src, "<neurowire native record>", "exec"), namespace)
            funcs.append(njit(nogil=True)(namespace["record"]))
            driver = tuple(funcs)
        else:
            body = [ln for phase in PHASES for ln in phases[phase]] + rec_lines
            src = f"def block(n_steps{rec_params}, {params}):\n    for k in range(n_steps):\n"
            src += "".join(f"        {ln}\n" for ln in body)
            exec(compile(src, "<neurowire native block>", "exec"), namespace)
            driver = njit(nogil=True)(namespace["block"])
        self._drivers[key] = driver
        return driver

    # ------------------------------------------------------------------ running
    def run_block(
        self, k: int, ext: Mapping[str, Tensor], rec_keys: tuple[tuple[str, str], ...]
    ) -> dict[tuple[str, str], Tensor]:
        """Advance ``k`` steps in place; returns recordings ``[k, B, n]`` per (pop, var)."""
        sim = self.sim
        args = self._arguments(ext)
        names = tuple(sorted(args))
        index = {pop.name: i for i, pop in enumerate(self.pops)}
        rec = tuple((index[pop], "z" if var == "spikes" else var) for pop, var in rec_keys)
        buffers = []
        for pop, var in rec_keys:
            src = args[f"p{index[pop]}_{'z' if var == 'spikes' else var}"]
            buffers.append(np.zeros((k,) + src.shape, src.dtype))
        values = [args[n] for n in names]
        if sim.time_phases:
            funcs = self._driver(names, rec, split=True)
            for step in range(k):
                for phase, fn in zip(PHASES, funcs[:-1], strict=True):
                    tic = time.perf_counter()
                    fn(step, *values)
                    sim.timers[phase] += time.perf_counter() - tic
                funcs[-1](step, *buffers, *values)
        else:
            self._driver(names, rec, split=False)(k, *buffers, *values)
        return {key: torch.from_numpy(buf) for key, buf in zip(rec_keys, buffers, strict=True)}
