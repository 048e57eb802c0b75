"""The structural rules that run inside native blocks: which ones, their generated calls, their
random numbers and buffers, and the rewiring log they leave.

A rule runs fused when it offers a kernel (:meth:`~neurowire.StructuralRule.native_kernel`,
described by a :class:`.rule_kernel.RuleKernel`) and its stores suit it; everything here is
derived from that description, never from the rule's class.
"""

from __future__ import annotations

import numpy as np

from . import rules
from .rule_kernel import RuleKernel

EVENT_FIELDS = ("pre", "post", "kind", "dist")


def rule_targets(sim, scheduled, kernel: RuleKernel) -> list:
    """The projections a fused rule changes: its own, then its kernel's partner if any."""
    if kernel.partner is None:
        return [scheduled.projection]
    return [scheduled.projection, sim.net._projection(kernel.partner)]


def fused_kernel(sim, scheduled) -> RuleKernel | None:
    """The kernel with which one scheduled rule runs inside native blocks, or None: the rule
    must offer one, on stores whose only variable is the weight, between populations on one
    grid. Decided per rule: other rules run on the host."""
    kernel = scheduled.rule.native_kernel()
    if kernel is None:
        return None
    for proj in rule_targets(sim, scheduled, kernel):
        grids = proj.pre.grid, proj.post.grid
        if (
            set(proj.synapses.vars) != {"weight"}
            or grids[0] is None
            or grids[1] is None
            or grids[0].shape != grids[1].shape
            or grids[0].periodic != grids[1].periodic
            or proj.post is not scheduled.projection.post
        ):
            return None
    return kernel


class RuleDriver:
    """The fused rules of one network: their scratch, calls, random numbers and logs.

    Array names in generated code: ``u<r>`` rule ``r``'s random numbers of a block,
    ``ev<r>_<m>_<field>`` its events on target ``m``, ``calls<r>`` one row per call (step, then
    removed, added, failed, events so far per target), ``ctr<r>`` calls made then events per
    target, ``cnt<r>`` the counts of the last call, ``g<r>`` its grid, ``h<r>`` its scratch.
    """

    def __init__(self, sim, projs: list) -> None:
        self.sim = sim
        self.projs = projs
        kernels = {r: fused_kernel(sim, sch) for r, sch in enumerate(sim.net.rules)}
        #: rule index (into ``net.rules``) -> kernel, for the rules that run inside blocks
        self.kernels = {r: kernel for r, kernel in kernels.items() if kernel is not None}
        #: indices of the rules that run inside blocks
        self.fused = list(self.kernels)
        index = {p.name: q for q, p in enumerate(projs)}
        #: rule -> indices of the projections it changes
        self.targets = {
            r: [index[p.name] for p in rule_targets(sim, sim.net.rules[r], kernel)]
            for r, kernel in self.kernels.items()
        }
        #: projections whose column index a kernel reads and keeps (the store's slot_columns)
        self.slot_indexed = {
            q for r, kernel in self.kernels.items() if kernel.slot_columns for q in self.targets[r]
        }
        self._held: dict[int, tuple] = {}

    def scratch(self) -> dict[str, np.ndarray]:
        """Arrays each fused rule keeps for the engine's life (grid sizes are arguments, not
        code, so that every size shares the generated module)."""
        out = {}
        for r, kernel in self.kernels.items():
            projection = self.sim.net.rules[r].projection
            grid = projection.post.grid
            out[f"g{r}"] = np.array([grid.n_rows, grid.n_cols], np.int64)
            if kernel.scratch_rows:
                out[f"h{r}"] = np.full((kernel.scratch_rows, projection.pre.n), -1, np.int64)
        return out

    # ------------------------------------------------------------------ generated calls
    def call_lines(self, r: int, w_dtype: str, listed: set[int]) -> tuple[list[str], list[str]]:
        """Generated lines of one call of fused rule ``r`` (setting ``ch<r>``, whether the
        engine must rebuild a column index) and of the column-index upkeep that follows it
        (column lists from the call's events, or a rebuild of the store's column index).

        ``w_dtype``: the weight's numpy type (``"np.float32"``); ``listed``: the projections
        whose column lists the engine keeps.
        """
        scheduled, kernel = self.sim.net.rules[r], self.kernels[r]
        targets = self.targets[r]
        post = list(self.sim.net.populations.values()).index(scheduled.projection.post)
        periodic = scheduled.projection.post.grid.periodic
        stores = []
        for q in targets:
            stores.append(f"q{q}_ind, q{q}_len, q{q}_w")
            if kernel.slot_columns:
                stores.append(f"q{q}_cptr, q{q}_cslot")
        events = [", ".join(f"ev{r}_{m}_{f}" for f in EVENT_FIELDS) for m in range(len(targets))]
        args = [
            f"u{r}[ctr{r}[0]]",
            *stores,
            f"p{post}_isyn.shape[1], g{r}[0], g{r}[1], {periodic}",
            *(repr(value) for value in kernel.constants),
            *(f"{w_dtype}({value!r})" for value in kernel.weight_constants),
            *events,
            f"ctr{r}[1:], cnt{r}",
        ]
        if kernel.scratch_rows:
            args.append(f"h{r}")
        call = [f"ne{r}_{m} = ctr{r}[{1 + m}]" for m in range(len(targets))]
        call.append(f"rules.{kernel.kernel}({', '.join(args)})")
        call.append(f"calls{r}[ctr{r}[0], 0] = step0 + k + 1")
        for m in range(len(targets)):
            call += [
                f"calls{r}[ctr{r}[0], {1 + 4 * m}:{4 + 4 * m}] = cnt{r}[{3 * m}:{3 + 3 * m}]",
                f"calls{r}[ctr{r}[0], {4 + 4 * m}] = ctr{r}[{1 + m}]",
            ]
        call.append(f"ctr{r}[0] += 1")
        if kernel.slot_columns:  # the kernel keeps the column indices itself
            call.append(f"ch{r} = False")
            return call, []
        changed = " + ".join(f"cnt{r}[{3 * m}] + cnt{r}[{3 * m + 1}]" for m in range(len(targets)))
        call.append(f"ch{r} = {changed} > 0")
        upkeep = []
        for m, q in enumerate(targets):
            if q in self.slot_indexed:
                upkeep += [
                    f"if ch{r}:",
                    f"    rules.rebuild_columns(q{q}_ind, q{q}_len, q{q}_cptr.shape[0] - 1, "
                    f"q{q}_cptr, q{q}_cslot)",
                ]
            elif q in listed:
                upkeep.append(
                    f"q{q}_cpre = rules.apply_column_events(ev{r}_{m}_pre, ev{r}_{m}_post, "
                    f"ev{r}_{m}_kind, ne{r}_{m}, ctr{r}[{1 + m}], q{q}_cpre, q{q}_clen)"
                )
        return call, upkeep

    # ------------------------------------------------------------------ blocks
    def arguments(self, k: int, args: dict[str, np.ndarray], host_last: bool) -> list:
        """Draw every fused rule call of the next ``k`` steps (not those of the last step when
        the host runs the rules due there) into ``args``; returns (rule, calls) pairs."""
        sim, plan = self.sim, []
        for r, kernel in self.kernels.items():
            every = sim.net.rules[r].every
            n_calls = (sim.step_count + k) // every - sim.step_count // every
            if host_last and (sim.step_count + k) % every == 0:
                n_calls -= 1
            args[f"u{r}"] = kernel.draw(sim.rule_runner.rngs[r], n_calls)
            size = n_calls * kernel.events_per_call
            args.update(self._buffers(r, n_calls, size, len(self.targets[r])))
            plan.append((r, n_calls))
        return plan

    def _buffers(self, r: int, n_calls: int, size: int, n_targets: int) -> dict:
        """Event and per-call buffers of fused rule ``r`` for a block, reused across blocks
        (the log copies what it keeps); grown when a block needs more."""
        held = self._held.get(r)
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
            out[f"cnt{r}"] = np.zeros(3 * n_targets, np.int64)
            held = self._held[r] = (size, n_calls, out)
        held[2][f"ctr{r}"][:] = 0  # the kernels count calls and events from here
        return held[2]

    def log(self, plan: list, args: dict[str, np.ndarray], lists: dict[int, list]) -> None:
        """Record a block's fused calls in the simulator's rewiring log and mark the changed
        stores (whose column index, or the engine's column ``lists``, the block kept)."""
        sim = self.sim
        for r, n_calls in plan:
            if not n_calls:
                continue
            scheduled = sim.net.rules[r]
            calls = args[f"calls{r}"][:n_calls]
            steps = calls[:, 0]
            t_ms = steps * sim.dt
            for m, q in enumerate(self.targets[r]):
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
                store = self.projs[q].synapses
                store._changed(rebuilt=("slot_columns",) if q in self.slot_indexed else ())
                if q in lists:
                    lists[q][2] = store.version

    def host_upkeep(self, r: int, changed: bool, starts: list[int], args, lists) -> None:
        """After one call of rule ``r`` in a split block: the column-index upkeep that the
        unsplit block generates (:meth:`call_lines`), on the host. ``starts``: each target's
        event count before the call."""
        if self.kernels[r].slot_columns:
            return
        for m, q in enumerate(self.targets[r]):
            if changed and q in self.slot_indexed:
                rules.rebuild_columns(
                    args[f"q{q}_ind"],
                    args[f"q{q}_len"],
                    self.projs[q].post.n,
                    args[f"q{q}_cptr"],
                    args[f"q{q}_cslot"],
                )
            elif q in lists:
                col_pre = rules.apply_column_events(
                    args[f"ev{r}_{m}_pre"],
                    args[f"ev{r}_{m}_post"],
                    args[f"ev{r}_{m}_kind"],
                    starts[m],
                    int(args[f"ctr{r}"][1 + m]),
                    args[f"q{q}_cpre"],
                    args[f"q{q}_clen"],
                )
                args[f"q{q}_cpre"] = lists[q][0] = col_pre  # a wider copy if a column grew
