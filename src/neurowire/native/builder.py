"""Source generation and compilation of native blocks (see :mod:`.engine` for the engine).

The generated module holds every model's kernel (derived by :mod:`.codegen`) and a driver that
calls them per phase and step, with the fused rules' calls (:mod:`.fused_rules`) after their due
steps. Its text depends on the network's structure, names and models only, plus a digest of the
kernel modules it calls (:func:`kernels_fingerprint`), so every size and seed of a network
shares one module and numba's cache.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..codegen import generated_module
from . import atomics, rules
from . import codegen as gen
from . import delivery as spikes_out
from . import rng as nwrng
from .fused_rules import RuleDriver

PHASES = ("delivery", "postsynaptic", "neurons", "plasticity")


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


class KernelBuilder:
    """Generates and compiles the block drivers of one network (one per set of arguments,
    recordings and split mode), and keeps them.

    Args:
        sim: the :class:`~neurowire.Simulator`.
        ftype: the float type's numpy name (``"float32"``).
        rule_driver: the fused rules.
        pure: populations whose spikes a helper thread may draw ahead (``produce_p<i>``).
        listed: projections whose STDP finds columns through the engine's column lists.
    """

    def __init__(
        self, sim, ftype: str, rule_driver: RuleDriver, pure: list[int], listed: list[int]
    ) -> None:
        self.sim = sim
        self.ftype = ftype
        self.pops = list(sim.net.populations.values())
        self.projs = list(sim.net.projections.values())
        self.rules = rule_driver
        self.pure = pure
        self.listed = listed
        self.drivers: dict[tuple, Any] = {}
        #: per driver key, the producer kernels of the ``pure`` populations
        self.producers: dict[tuple, list] = {}
        #: path of the generated module, per split mode (see ``Simulator.generated_source``)
        self.sources: dict[bool, str] = {}

    def _incoming(self) -> dict[int, list[int]]:
        """Per population, the projections into it, in declaration order."""
        index = {pop.name: i for i, pop in enumerate(self.pops)}
        out: dict[int, list[int]] = {i: [] for i in range(len(self.pops))}
        for q, proj in enumerate(self.projs):
            out[index[proj.post.name]].append(q)
        return out

    def _fused_population(self, i: int) -> bool:
        """Whether population ``i``'s postsynaptic models run inside its neuron loop (blocks
        that are not split into timed phases; not for external spike sources and Poisson
        generators)."""
        model = self.pops[i].model
        return not (model.external or model.counting)

    def _kernel_sources(self, split: bool) -> str:
        """numba source of every model's kernel, derived from its one definition."""
        dt, ftype = self.sim.dt, self.ftype
        parts = []
        incoming = self._incoming()
        for i, pop in enumerate(self.pops):
            if pop.model.external or pop.model.counting:
                continue
            if not split and i in self.pure:
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
            rule = proj.plasticity
            if rule is not None:
                columns = "slots" if q in self.rules.slot_indexed else "lists"
                parts.append(gen.stdp_kernel(rule, dt, f"stdp_q{q}", ftype, columns))
        return "\n\n".join(parts)

    def ring_lines(self) -> list[str]:
        """Per projection, the slots of its ring of delivered input (``q<j>_wsum``, ``[d, B,
        n_post]`` for a delay of ``d`` steps) in global step ``step0 + k``: ``q<j>_in``, which
        delivery adds to and the postsynaptic model reads ``d - 1`` steps later, and
        ``q<j>_out``, which it reads now (and zeroes). One slot when ``d = 1``."""
        out = []
        for q in range(len(self.projs)):
            ring, d = f"q{q}_wsum", f"q{q}_wsum.shape[0]"
            out.append(f"q{q}_in = {ring}[(step0 + k + {d} - 1) % {d}]")
            out.append(f"q{q}_out = {ring}[(step0 + k) % {d}]")
        return out

    def _phase_lines(self, split: bool) -> dict[str, list[str]]:
        index = {pop.name: i for i, pop in enumerate(self.pops)}
        lines: dict[str, list[str]] = {phase: [] for phase in PHASES}
        for q, proj in enumerate(self.projs):
            pre = index[proj.pre.name]
            spikes = f"p{pre}_spk, p{pre}_nspk, p{pre}_isyn.shape[1]"
            if proj.pre.model.counting:  # weight times count (neurowire.poisson)
                if proj.sparse:
                    call = f"deliver_counts(p{pre}_count, p{pre}_z, q{q}_ind, q{q}_len, q{q}_w"
                else:
                    call = f"deliver_counts_dense(p{pre}_count, q{q}_w"
                lines["delivery"].append(f"spikes_out.{call}, q{q}_in)")
            elif proj.sparse:
                lines["delivery"].append(
                    f"spikes_out.deliver_spike_list({spikes}, q{q}_ind, q{q}_len, q{q}_w, q{q}_in)"
                )
            else:
                lines["delivery"].append(
                    f"spikes_out.deliver_spike_list_dense({spikes}, q{q}_w, q{q}_in)"
                )
        seen: set[int] = set()
        for q, proj in enumerate(self.projs):
            post = index[proj.post.name]
            first = post not in seen
            seen.add(post)
            if not split and self._fused_population(post):
                continue  # inside the population's kernel
            v = f"p{post}_v" if proj.psc.needs_voltage else f"q{q}_out"
            lines["postsynaptic"].append(
                f"psc_q{q}(q{q}_psc, q{q}_out, {v}, p{post}_isyn, {first})"
            )
        incoming = self._incoming()
        for i, pop in enumerate(self.pops):
            line = self._neuron_line(i, pop.model, split, incoming[i])
            if not split and i in self.pure:  # drawn ahead by the helper thread, if it was
                take = f"p{i}_zbuf, k, p{i}_ready, p{i}_next, p{i}_z, p{i}_spk, p{i}_nspk"
                lines["neurons"] += [f"if not spikes_out.take_spikes({take}):", f"    {line}"]
            else:
                lines["neurons"].append(line)
        for q, proj in enumerate(self.projs):
            if proj.plasticity is None:
                continue
            pre, post = index[proj.pre.name], index[proj.post.name]
            cols = (
                f"q{q}_cptr, q{q}_cslot"
                if q in self.rules.slot_indexed
                else f"q{q}_cpre, q{q}_clen"
            )
            lines["plasticity"].append(
                f"stdp_q{q}(q{q}_w, q{q}_ind, q{q}_len, {cols}, p{pre}_spk, "
                f"p{pre}_nspk, p{post}_spk, p{post}_nspk, q{q}_xpre, q{q}_xpost)"
            )
        return lines

    def _neuron_line(self, i: int, model, split: bool, incoming: list[int]) -> str:
        spk = f"p{i}_spk, p{i}_nspk"
        if model.external:
            return f"spikes_out.source(p{i}_z, p{i}_ext[k], {spk})"
        if model.counting:
            table = f"p{i}_mean, p{i}_cdf, p{i}_last"
            return (
                f"nwrng.poisson_counts(p{i}_key[0], step0 + k, {table}, p{i}_count, p{i}_z, p{i}_u)"
            )
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
            args += [f"q{q}_psc, q{q}_out" for q in incoming]
        return f"neuron_p{i}({', '.join(args)})"

    def driver(self, names: tuple[str, ...], rec: tuple[tuple[int, str], ...], split: bool):
        """The compiled driver for arguments ``names`` and recordings ``rec`` (population,
        field): ``block(n_steps, step0, host_last, *recordings, *arguments)`` returning the
        column lists, or with ``split`` one function per phase, the recording and each fused
        rule (returning whether the host must keep a column index)."""
        key = (names, rec, split)
        if key in self.drivers:
            return self.drivers[key]
        phases = self._phase_lines(split)
        params = ", ".join(names)
        rec_params = "".join(f", rec{j}" for j in range(len(rec)))
        rec_lines = [f"rec{j}[k] = p{i}_{field}" for j, (i, field) in enumerate(rec)]
        lists = "".join(f"q{q}_cpre, " for q in self.listed)
        listed = set(self.listed)
        w_dtype = f"np.{self.ftype}"
        defs: list[tuple[str, str, list[str]]] = []  # (name, signature, body)
        ring = self.ring_lines()
        if split:  # one function per phase and step, for per-phase timing
            for phase in PHASES:
                defs.append((phase, f"k, step0, {params}", ring + phases[phase]))
            defs.append(("record", f"k{rec_params}, {params}", rec_lines))
            for r in self.rules.fused:  # the host keeps the column indices (timed apart)
                call, _ = self.rules.call_lines(r, w_dtype, listed)
                due = f"if (step0 + k + 1) % {self.sim.net.rules[r].every}:\n        return False"
                defs.append((f"rule{r}", f"k, step0, {params}", [due, *call, f"return ch{r}"]))
        else:
            loop = ring + [ln for phase in PHASES for ln in phases[phase]] + rec_lines
            for r in self.rules.fused:  # the host runs every rule due at a host step (host_last)
                call, upkeep = self.rules.call_lines(r, w_dtype, listed)
                loop += [
                    f"if (step0 + k + 1) % {self.sim.net.rules[r].every} == 0 and not "
                    "(host_last and k == n_steps - 1):"
                ]
                loop += [f"    {ln}" for ln in call + upkeep]
            body = ["for k in range(n_steps):"] + [f"    {ln}" for ln in loop]
            body.append(f"return ({lists})")  # column lists, re-allocated when they grew
            defs.append(("block", f"n_steps, step0, host_last{rec_params}, {params}", body))
        module = generated_module(self._module_source(defs, split), "block")
        driver = tuple(getattr(module, n) for n, _, _ in defs) if split else module.block
        self.sources[split] = module.__file__
        self.drivers[key] = driver
        if not split:
            self.producers[key] = [getattr(module, f"produce_p{i}") for i in self.pure]
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
            '"""Generated by neurowire.native.builder for one network; do not edit."""',
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
