"""Homeostatic structural plasticity (Butz & van Ooyen 2013) as NEST 3.10 runs it.

Neurons (:class:`~neurowire.ElementNeuron`) grow and retract synaptic elements (axonal boutons,
dendritic spines) as their calcium, a trace of their firing, departs from a target; this rule
turns elements into synapses and back. Every call is one of NEST's element updates (NEST updates
elements at the end of every ``Simulate`` call too): element counts are clipped at 0 and NEST's
Euler calcium restarts from the calcium. At calls whose time is a multiple of
``update_interval``, the connectivity follows the elements, as ``SPManager`` updates it: for each
structural-plasticity synapse, in the alphabetical order of their names,

1. every neuron with fewer axonal elements than outgoing synapses (``floor(z) < connected``)
   loses that many of them, drawn uniformly without replacement among its synapses onto
   targets that offer postsynaptic elements (``z != 0``, or ``floor(z) != 0`` when not
   ``continuous``);
2. then every neuron with fewer dendritic elements than incoming synapses loses that many,
   drawn among all its incoming synapses;
3. then the free elements (``floor(z) - connected``) of all neurons are listed, once per free
   element, the longer list (axonal or dendritic) shuffled and cut to the length of the shorter,
   and the two paired in order; a pair of a neuron with itself is skipped unless
   ``allow_autapses`` (its elements stay free);

and after all synapses, every element type of every neuron loses ``tau_vacant`` of its free
elements (``z -= tau_vacant * (floor(z) - connected)``). Connected counts are read from the
stores: a neuron's connected elements of a type are its synapses in every projection whose
structural-plasticity synapse uses that element, so they never drift from the connectivity.
The neurons updated are those of the populations of the rule's projections (NEST updates every
neuron of the network: give one rule every population that has elements).

**Multapses.** NEST 3.10 creates a second synapse between a pair that is already connected (its
structural plasticity ignores ``allow_multapses``). A store holds one synapse per pair, so with
``allow_multapses=True`` (NEST's behaviour) a pair's synapse carries a ``multiplicity`` variable
(int32, the number of NEST synapses it stands for) and their summed weight: forming one more
adds the synapse's ``weight``, deleting one of ``m`` scales the weight by ``(m - 1) / m``, and
deletion draws among the ``m`` copies as NEST draws among its synapses. This is exact when the
synapses of a pair have equal weights (NEST's static synapses, as in its example); projections
with STDP are refused. ``allow_multapses=False`` (not available in NEST's structural plasticity)
skips a pair that is already connected, leaving its elements free.

Timing: a call after step ``N`` is NEST's update at ``t = N dt``, which NEST makes before the
next step; NEST also updates at ``t = 0``, which :meth:`HomeostaticRewiring.setup` does. The
rewiring log counts synapses (NEST connections, multapses included) removed and added per call,
and as failed the pairs skipped. Element counts of the element neurons (e.g. what NEST records
as ``z_connected``) can be read through :meth:`HomeostaticRewiring.connected`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..checks import ParameterError, check_number, check_time
from ..network import Population, Projection
from .base import RuleContext, StructuralRule
from .elements import CALCIUM, CALCIUM_EULER, ElementNeuron
from .pairing import choose_in_groups, pair_vacancies
from .view import SynapseView

#: the store variable counting the NEST synapses a synapse stands for (``allow_multapses``)
MULTIPLICITY = "multiplicity"


@dataclass(frozen=True, eq=False)
class SPSynapse:
    """A structural-plasticity synapse: which elements pair, and the projections that hold the
    synapses (NEST's ``structural_plasticity_synapses`` entry; its synapse model becomes the
    projections and ``weight``).

    Args:
        pre_synaptic_element: element name of the source neurons (e.g. ``"Axon_ex"``).
        post_synaptic_element: element name of the target neurons (e.g. ``"Den_ex"``).
        projections: the sparse projections, exactly one for every pair of a source population
            and a target population among them (NEST pairs elements across the whole network;
            the neurons of these populations are the ones that pair). A pair's multapses share
            one slot, so ``capacity=n_post`` never fills; a full row raises ``CapacityError``.
        weight: weight of a new synapse (NEST's synapse-model default).
        allow_autapses: whether a neuron may connect to itself.
        allow_multapses: whether a connected pair may connect again (see the module docstring).
    """

    pre_synaptic_element: str
    post_synaptic_element: str
    projections: Sequence[Projection]
    weight: float = 1.0
    allow_autapses: bool = True
    allow_multapses: bool = True

    def __post_init__(self) -> None:
        for key in ("pre_synaptic_element", "post_synaptic_element"):
            if not isinstance(getattr(self, key), str):
                raise ParameterError(f"{key} must be a name, got {getattr(self, key)!r}")
        check_number("weight", self.weight)
        for key in ("allow_autapses", "allow_multapses"):
            if not isinstance(getattr(self, key), bool):
                raise ParameterError(f"{key} must be True or False, got {getattr(self, key)!r}")
        projections = (
            (self.projections,) if isinstance(self.projections, Projection) else self.projections
        )
        if not isinstance(projections, Sequence) or not projections:
            raise ParameterError(f"projections must be a list of projections, got {projections!r}")
        for proj in projections:
            if not isinstance(proj, Projection):
                raise TypeError(
                    f"projections must be Projection objects, got {type(proj).__name__}"
                )
            if not proj.sparse:
                raise ParameterError(f"projection {proj.name!r} is dense; it needs a store")
            if self.allow_autapses and proj.pre is proj.post and not proj.synapses.autapses:
                raise ParameterError(
                    f"projection {proj.name!r} stores no autapses; connect it with autapses "
                    "allowed (e.g. FixedProbability(p, autapses=True)) or pass "
                    "allow_autapses=False"
                )
            if self.allow_multapses and proj.plasticity is not None:
                raise ParameterError(
                    f"projection {proj.name!r} has {type(proj.plasticity).__name__}: multapses "
                    "are kept as one synapse of summed weight, which needs static weights; "
                    "pass allow_multapses=False"
                )
        object.__setattr__(self, "projections", tuple(projections))
        self._check_elements()

    @property
    def pre_populations(self) -> tuple[Population, ...]:
        """The source populations, in the order of the projections."""
        return _unique(p.pre for p in self.projections)

    @property
    def post_populations(self) -> tuple[Population, ...]:
        """The target populations, in the order of the projections."""
        return _unique(p.post for p in self.projections)

    def projection(self, pre: Population, post: Population) -> Projection:
        """The projection from ``pre`` to ``post``."""
        for p in self.projections:
            if p.pre is pre and p.post is post:
                return p
        raise ValueError(f"no projection {pre.name!r} -> {post.name!r}")

    def _check_elements(self) -> None:
        for side, pops, element in (
            ("source", self.pre_populations, self.pre_synaptic_element),
            ("target", self.post_populations, self.post_synaptic_element),
        ):
            for pop in pops:
                if not isinstance(pop.model, ElementNeuron):
                    raise ParameterError(
                        f"{side} population {pop.name!r} ({type(pop.model).__name__}) has no "
                        "synaptic elements; make its model an ElementNeuron"
                    )
                if element not in pop.model.element_names:
                    raise ParameterError(
                        f"{side} population {pop.name!r} has no synaptic element {element!r}; "
                        f"it has {pop.model.element_names}"
                    )
        pairs = [(p.pre.name, p.post.name) for p in self.projections]
        for pre in self.pre_populations:
            for post in self.post_populations:
                count = pairs.count((pre.name, post.name))
                if count != 1:
                    raise ParameterError(
                        f"elements {self.pre_synaptic_element!r} -> "
                        f"{self.post_synaptic_element!r} pair across all of {pairs}, so they "
                        f"need exactly one projection {pre.name!r} -> {post.name!r}, got {count}"
                    )


def _unique(pops: Any) -> tuple[Population, ...]:
    out: list[Population] = []
    for pop in pops:
        if all(pop is not seen for seen in out):
            out.append(pop)
    return tuple(out)


class HomeostaticRewiring(StructuralRule):
    """NEST 3.10's structural plasticity (Butz & van Ooyen's model of synaptic elements; see the
    module docstring for what one call does).

    Schedule it on any projection of its synapses, every ``K`` steps: each call updates the
    elements, and calls at multiples of ``update_interval`` also rewire. To reproduce a NEST
    script that runs ``Simulate(T_chunk)`` in a loop with
    ``structural_plasticity_update_interval = T_update``, call it every ``T_chunk / dt`` steps
    with ``update_interval=T_update``. Simulate with ``batch_size=1``, in float64
    (``nw.Network(dtype=torch.float64)``) to compute in NEST's precision.

    Args:
        synapses: name -> :class:`SPSynapse` or its keyword dictionary (NEST's
            ``structural_plasticity_synapses``, with ``projections`` and ``weight``); handled in
            the alphabetical order of the names, as NEST does.
        update_interval: time between rewirings [ms], a multiple of the rule's period; None
            rewires at every call.

    Example (two populations as in NEST's ``structural_plasticity.py``)::

        rule = nw.HomeostaticRewiring(
            {"synapse_ex": nw.SPSynapse("Axon_ex", "Den_ex", [ee, ei], weight=585.0),
             "synapse_in": nw.SPSynapse("Axon_in", "Den_in", [ie, ii], weight=-585.0)},
            update_interval=10000.0)
        net.add_rule(rule, ee, every=round(1000.0 / net.dt))
    """

    def __init__(
        self,
        synapses: Mapping[str, SPSynapse | Mapping[str, Any]],
        update_interval: float | None = None,
    ) -> None:
        if not isinstance(synapses, Mapping) or not synapses:
            raise ParameterError(f"synapses must map names to SPSynapse, got {synapses!r}")
        specs = {}
        for name in sorted(synapses):
            spec = synapses[name]
            if isinstance(spec, Mapping):
                try:
                    spec = SPSynapse(**spec)
                except TypeError as err:
                    raise ParameterError(f"synapse {name!r}: {err}") from None
            if not isinstance(spec, SPSynapse):
                raise TypeError(f"synapse {name!r} must be an SPSynapse, got {type(spec).__name__}")
            specs[name] = spec
        seen: dict[str, str] = {}
        for name, spec in specs.items():
            for proj in spec.projections:
                if proj.name in seen:
                    raise ParameterError(
                        f"projection {proj.name!r} belongs to synapses {seen[proj.name]!r} and "
                        f"{name!r}; give each structural-plasticity synapse its own projections"
                    )
                seen[proj.name] = name
        if update_interval is not None:
            check_time("update_interval", update_interval)
        self.synapses = specs
        self.update_interval = None if update_interval is None else float(update_interval)
        self._interval_steps: int | None = None
        self._last_step = 0

    # ------------------------------------------------------------------ the hooks
    def setup(self, view: SynapseView, ctx: RuleContext) -> None:
        """Checks, the ``multiplicity`` variables, NEST's connect-time element counts of the
        initial synapses, and NEST's update at ``t = 0``."""
        if ctx.batch_size != 1:
            raise ParameterError(
                f"HomeostaticRewiring needs batch_size=1 (one calcium per neuron), got "
                f"{ctx.batch_size}"
            )
        names = {p.name for spec in self.synapses.values() for p in spec.projections}
        if view.store.name not in names:
            raise ParameterError(
                f"HomeostaticRewiring is scheduled on {view.store.name!r}, which is none of its "
                f"synapses' projections {sorted(names)}"
            )
        self._interval_steps = self._steps(ctx.dt)
        self._last_step = ctx.step
        net = _Call(self, view, ctx)
        for spec in self.synapses.values():
            if spec.allow_multapses:
                for proj in spec.projections:
                    store = net.views[proj.name].store
                    if MULTIPLICITY not in store.vars:
                        store.add_var(MULTIPLICITY, init=1, dtype=torch.int32)
        connected = net.connected()
        for (pop, element), count in connected.items():
            z = net.elements[pop][element]  # NEST's connect(): z rises to the connected count
            z.copy_(torch.where(count > z.floor(), count + (z - z.floor()), z))
        if ctx.step % self._interval_steps == 0:
            net.update_elements()
            net.rewire()

    def update(self, view: SynapseView, ctx: RuleContext) -> None:
        steps = self._interval_steps
        skipped = ctx.step // steps > self._last_step // steps and ctx.step % steps
        if skipped:
            raise ParameterError(
                f"HomeostaticRewiring: update_interval={self.update_interval} ms is not a "
                f"multiple of the rule's period ({ctx.step - self._last_step} steps of "
                f"{ctx.dt} ms); schedule it with an every= that divides the interval"
            )
        self._last_step = ctx.step
        net = _Call(self, view, ctx)
        net.update_elements()
        if ctx.step % steps == 0:
            net.rewire()

    def _steps(self, dt: float) -> int:
        """Steps per update interval (1 when every call rewires)."""
        if self.update_interval is None:
            return 1
        steps = round(self.update_interval / dt)
        if steps < 1 or not math.isclose(steps * dt, self.update_interval, rel_tol=1e-9):
            raise ParameterError(
                f"update_interval={self.update_interval} ms must be a whole number of steps of "
                f"{dt} ms"
            )
        return steps

    # ------------------------------------------------------------------ reading
    def connected(self) -> dict[tuple[str, str], Tensor]:
        """Connected elements per ``(population, element)``: int64 ``[n]``, the synapses (NEST
        connections, multapses counted) of every projection whose synapse uses the element
        (what NEST reports as ``z_connected``)."""
        out: dict[tuple[str, str], Tensor] = {}
        for spec in self.synapses.values():
            for proj in spec.projections:
                _count_connected(out, proj, spec)
        return out


def _multiplicity(store: Any, spec: SPSynapse) -> Tensor:
    """int64 ``[n_pre, capacity]``: NEST synapses per slot (0 on padding)."""
    live = store.live
    if not spec.allow_multapses or MULTIPLICITY not in store.vars:
        return live.long()
    return torch.where(live, store.vars[MULTIPLICITY].long(), 0)


def _count_connected(out: dict[tuple[str, str], Tensor], proj: Projection, spec: SPSynapse) -> None:
    """Add ``proj``'s synapses to the connected counts ``out`` of its source and target
    elements."""
    store = proj.synapses
    m = _multiplicity(store, spec)
    rows = m.sum(1)
    cols = torch.zeros(store.n_post, dtype=torch.int64, device=m.device)
    cols.index_add_(0, store.ind[store.live], m[store.live])
    for key, count in (
        ((proj.pre.name, spec.pre_synaptic_element), rows),
        ((proj.post.name, spec.post_synaptic_element), cols),
    ):
        out[key] = out[key] + count if key in out else count


class _Call:
    """What one call sees: every projection's view, every element population's state."""

    def __init__(self, rule: HomeostaticRewiring, view: SynapseView, ctx: RuleContext) -> None:
        self.rule, self.generator = rule, ctx.generator
        self.views: dict[str, SynapseView] = {}
        self.populations: dict[str, Population] = {}
        #: population -> element -> its count ``z`` (float64 ``[n]``, the state itself)
        self.elements: dict[str, dict[str, Tensor]] = {}
        #: population -> calcium state (``Ca``, ``Ca_euler``) ``[n]``
        self.calcium: dict[str, dict[str, Tensor]] = {}
        for spec in rule.synapses.values():
            for proj in spec.projections:
                v = view if proj.name == view.store.name else ctx.view(proj.name)
                self.views[proj.name] = v
                for pop, state in ((proj.pre, v.pre_state), (proj.post, v.post_state)):
                    if pop.name in self.populations:
                        continue
                    self.populations[pop.name] = pop
                    self.elements[pop.name] = {e: state[e][0] for e in pop.model.element_names}
                    self.calcium[pop.name] = {
                        k: state[k][0] for k in (CALCIUM, CALCIUM_EULER) if k in state
                    }

    def connected(self) -> dict[tuple[str, str], Tensor]:
        return self.rule.connected()

    def vacant(self, pop: str, element: str, connected: dict) -> Tensor:
        """int64 ``[n]``: ``floor(z) - connected``."""
        z = self.elements[pop][element].floor().long()
        count = connected.get((pop, element))
        return z if count is None else z - count

    # ------------------------------------------------------------------ element updates
    def update_elements(self) -> None:
        """NEST's element update at an event: counts clipped at 0, Euler calcium restarted."""
        for pop in self.populations:
            for z in self.elements[pop].values():
                z.clamp_(min=0.0)
            calcium = self.calcium[pop]
            if CALCIUM_EULER in calcium:
                calcium[CALCIUM_EULER].copy_(calcium[CALCIUM])

    def rewire(self) -> None:
        """NEST's connectivity update (the module docstring's steps 1-3), then the decay of
        vacant elements."""
        for spec in self.rule.synapses.values():
            self._delete(spec, "pre")
            self._delete(spec, "post")
            self._pair(spec)
        connected = self.connected()
        for pop, elements in self.elements.items():
            model = self.populations[pop].model
            for element, z in elements.items():
                vacant = self.vacant(pop, element, connected)
                tau = model.element(element).tau_vacant
                z.sub_(torch.where(vacant > 0, vacant.to(z.dtype) * tau, 0.0))

    # ------------------------------------------------------------------ deletion
    def _delete(self, spec: SPSynapse, side: str) -> None:
        """Synapses of the neurons with too few elements on ``side`` (``"pre"``: axonal,
        ``"post"``: dendritic), drawn among their synapses (NEST's ``delete_synapses_from_*``)."""
        connected = self.connected()
        pre_side = side == "pre"
        pops = spec.pre_populations if pre_side else spec.post_populations
        element = spec.pre_synaptic_element if pre_side else spec.post_synaptic_element
        offsets, total = _offsets(pops)
        need = torch.cat(
            [(-self.vacant(pop.name, element, connected)).clamp(min=0) for pop in pops]
        )
        if not bool((need > 0).any()):
            return
        groups, entries = [], []
        for k, proj in enumerate(spec.projections):
            store = self.views[proj.name].store
            m = _multiplicity(store, spec)
            owner = (
                torch.arange(store.n_pre, device=m.device)[:, None].expand_as(m)
                if pre_side
                else store.ind
            )
            group = owner + offsets[proj.pre.name if pre_side else proj.post.name]
            candidate = (m > 0) & (need[group.clamp(0, total - 1)] > 0)
            if pre_side:  # targets that offer postsynaptic elements (NEST's get_targets)
                z = self.elements[proj.post.name][spec.post_synaptic_element]
                continuous = proj.post.model.element(spec.post_synaptic_element).continuous
                offered = (z if continuous else z.floor())[store.ind.clamp(0, store.n_post - 1)]
                candidate &= offered != 0
            slots = candidate.reshape(-1).nonzero().squeeze(1)
            copies = m.reshape(-1)[slots]
            entries.append(
                torch.stack([torch.full_like(slots, k), slots]).repeat_interleave(copies, 1)
            )
            groups.append(group.reshape(-1)[slots].repeat_interleave(copies))
        chosen = choose_in_groups(torch.cat(groups), need, self.generator)
        picked = torch.cat(entries, 1)[:, chosen]
        for k, proj in enumerate(spec.projections):
            slots = picked[1, picked[0] == k]
            if slots.numel():
                self._remove_copies(proj, spec, slots)

    def _remove_copies(self, proj: Projection, spec: SPSynapse, slots: Tensor) -> None:
        """Remove one NEST synapse per entry of ``slots`` (flat slot indices, repeated for
        several copies of one synapse)."""
        view = self.views[proj.name]
        store = view.store
        count = torch.bincount(slots, minlength=store.n_pre * store.capacity).view_as(store.live)
        m = _multiplicity(store, spec)
        left = m - count
        gone = (count > 0) & (left == 0)
        if spec.allow_multapses:
            kept = (count > 0) & (left > 0)
            weight, mult = store.vars["weight"], store.vars[MULTIPLICITY]
            weight[kept] *= left[kept].to(weight.dtype) / m[kept].to(weight.dtype)
            mult[kept] = left[kept].to(mult.dtype)
            store.values_changed()
        removed = view.remove(gone)
        view.removed += int(count.sum()) - int(removed.sum())  # copies of kept synapses

    # ------------------------------------------------------------------ formation
    def _pair(self, spec: SPSynapse) -> None:
        """NEST's ``create_synapses``: free elements paired at random across the network."""
        connected = self.connected()
        pre_pops, post_pops = spec.pre_populations, spec.post_populations
        pre_vacant = torch.cat(
            [self.vacant(p.name, spec.pre_synaptic_element, connected) for p in pre_pops]
        )
        post_vacant = torch.cat(
            [self.vacant(p.name, spec.post_synaptic_element, connected) for p in post_pops]
        )
        pre, post = pair_vacancies(pre_vacant, post_vacant, self.generator)
        if pre.numel() == 0:
            return
        pre_at, _ = _offsets(pre_pops)
        post_at, _ = _offsets(post_pops)
        pre_start = torch.tensor([pre_at[p.name] for p in pre_pops], device=pre.device)
        post_start = torch.tensor([post_at[p.name] for p in post_pops], device=pre.device)
        pre_pop = torch.searchsorted(pre_start, pre, right=True) - 1
        post_pop = torch.searchsorted(post_start, post, right=True) - 1
        for a, source in enumerate(pre_pops):
            for b, target in enumerate(post_pops):
                here = (pre_pop == a) & (post_pop == b)
                if bool(here.any()):
                    i, j = pre[here] - pre_start[a], post[here] - post_start[b]
                    self._connect(spec.projection(source, target), spec, i, j)

    def _connect(self, proj: Projection, spec: SPSynapse, pre: Tensor, post: Tensor) -> None:
        """Connect the pairs ``(pre[k], post[k])`` of ``proj`` (NEST's ``SPBuilder``)."""
        view = self.views[proj.name]
        store = view.store
        if proj.pre is proj.post and not spec.allow_autapses:
            keep = pre != post
            view.failed += int((~keep).sum())
            pre, post = pre[keep], post[keep]
        key, copies = torch.unique(pre * store.n_post + post, return_counts=True)
        pre, post = key // store.n_post, key % store.n_post
        hit = (store.ind[pre] == post[:, None]) & store.live[pre]  # [pairs, capacity]
        exists = hit.any(1)
        if not spec.allow_multapses:
            view.failed += int(copies.sum()) - int((~exists).sum())
            new = ~exists
            if bool(new.any()):
                view.add(pre[new], post[new], weight=spec.weight)
            return
        if bool(exists.any()):
            rows, slots = pre[exists], hit[exists].to(torch.int8).argmax(1)
            extra = copies[exists]
            weight, mult = store.vars["weight"], store.vars[MULTIPLICITY]
            weight[rows, slots] += extra.to(weight.dtype) * spec.weight
            mult[rows, slots] += extra.to(mult.dtype)
            store.values_changed()
            view.added += int(extra.sum())
        new = ~exists
        if bool(new.any()):
            n = copies[new]
            view.add(
                pre[new],
                post[new],
                weight=n.to(store.vars["weight"].dtype) * spec.weight,
                multiplicity=n.to(torch.int32),
            )
            view.added += int(n.sum()) - int(new.sum())


def _offsets(pops: Sequence[Population]) -> tuple[dict[str, int], int]:
    """First index of every population in the concatenation of ``pops``, and the total."""
    out, total = {}, 0
    for pop in pops:
        out[pop.name] = total
        total += pop.n
    return out, total
