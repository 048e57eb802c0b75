"""Declaring networks: populations, projections, structural-rule and callback schedules.

A :class:`Network` only declares; a :class:`~neurowire.Simulator` runs it and a learning rule
such as :class:`~neurowire.EProp` compiles it into a trainer. Connectivity is drawn when a
projection is declared, so ``proj.synapses`` can be inspected (and changed through its API or
``with proj.synapses.mutation():``) before simulating.

Engines size their state, random streams and code for the network they are built on, so once
one is built the network's declarations are frozen: :meth:`Network.population`,
:meth:`Network.connect` and :meth:`Network.add_rule` raise. Callbacks may still be added.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .checks import ParameterError, check_number, check_seed, check_time
from .connectivity import Connectivity, Dense, FromArrays, check_padding, default_capacity
from .errors import CapacityError
from .initializers import Initializer, as_initializer
from .neurons import NeuronModel
from .plasticity import STDP
from .psc import Delta, PostsynapticModel
from .store import RaggedSynapses

DELIVERY_STRATEGIES = ("auto", "dense", "rows", "slots", "csr")


@dataclass(eq=False)
class Population:
    """A named group of ``model.n`` neurons; ``params`` holds trainable per-neuron tensors."""

    name: str
    model: NeuronModel
    params: dict[str, Tensor] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.model.n

    @property
    def grid(self):
        return self.model.grid

    def __repr__(self) -> str:
        return f"Population({self.name!r}, {type(self.model).__name__}, n={self.n})"


@dataclass(eq=False)
class Projection:
    """Connections from ``pre`` to ``post``.

    Sparse projections keep connectivity and every per-synapse variable (``"weight"`` first) in
    ``synapses``; dense ones (``Dense()``) keep a ``weight [n_pre, n_post]`` tensor instead.
    ``plasticity`` is the rule given as ``connect(synapse=...)`` (``STDP``), or None.
    """

    name: str
    pre: Population
    post: Population
    connectivity: Connectivity
    psc: PostsynapticModel
    plasticity: STDP | None
    synapses: RaggedSynapses | None
    weight: Tensor | None
    delivery: str = "auto"
    #: synaptic delay in steps (1: a spike of step ``t`` reaches the postsynaptic model in
    #: step ``t + 1``)
    delay_steps: int = 1

    @property
    def sparse(self) -> bool:
        return self.synapses is not None

    @property
    def recurrent(self) -> bool:
        return self.pre is self.post

    def dense_weight(self) -> Tensor:
        """The weight matrix ``[n_pre, n_post]`` (0 where no synapse)."""
        return self.synapses.to_dense("weight") if self.sparse else self.weight

    def __repr__(self) -> str:
        if self.sparse:
            s = self.synapses
            text = f"Projection({self.name!r}, nnz={s.nnz}, capacity={s.capacity}"
        else:
            text = f"Projection({self.name!r}, dense {self.pre.n}x{self.post.n}"
        delay = f", delay_steps={self.delay_steps}" if self.delay_steps != 1 else ""
        return f"{text}{delay})"


def delay_steps(name: str, delay: Any, dt: float) -> int:
    """The steps of ``delay`` [ms] (None: one step) for projection ``name``; a delay that is
    not a whole number >= 1 of steps of ``dt`` [ms] raises :class:`~neurowire.checks.
    ParameterError`."""
    if delay is None:
        return 1
    ratio = check_number(f"{name}: delay", delay) / dt
    steps = round(ratio) if math.isfinite(ratio) else 0
    if steps < 1 or abs(ratio - steps) > 1e-9 * steps:
        raise ParameterError(
            f"{name}: delay must be a whole number >= 1 of steps of dt={dt!r} ms, got "
            f"delay={delay!r} ms ({ratio:g} steps)"
        )
    return steps


@dataclass(eq=False)
class ScheduledRule:
    """A structural rule run after every ``every``-th step on ``projection``."""

    rule: Any
    projection: Projection
    every: int
    log_events: bool = False


@dataclass(eq=False)
class ScheduledCallback:
    """``fn(sim)`` run after every ``every``-th step (e.g. to change input rates)."""

    fn: Callable
    every: int
    name: str


class Network:
    """Populations and projections to be simulated or trained.

    Args:
        dt: time step [ms], a finite number > 0.
        seed: seeds connectivity and weight initialisation (and, by default, the simulator);
            an int in ``[0, 2**32 - 1]``.
        dtype: floating dtype of state and weights (float32 or float64).

    Raises :class:`~neurowire.checks.ParameterError` (a ``ValueError``) naming a bad argument.
    """

    def __init__(self, dt: float = 1.0, seed: int = 0, dtype: torch.dtype = torch.float32):
        dt = check_time("dt", dt)
        seed = check_seed("seed", seed)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.dt = dt
        self.seed = seed
        self.dtype = dtype
        self.populations: dict[str, Population] = {}
        self.projections: dict[str, Projection] = {}
        self.rules: list[ScheduledRule] = []
        self.callbacks: list[ScheduledCallback] = []
        self.generator = torch.Generator().manual_seed(self.seed)
        #: names of the engines built on this network (see :meth:`_bind`)
        self._bound_to: list[str] = []

    def _bind(self, owner_name: str) -> None:
        """Record that an engine (``"Simulator"``, ``"EProp"``, ...) was built on this network;
        from then on declarations that would invalidate it raise ``RuntimeError``."""
        self._bound_to.append(str(owner_name))

    def _check_unbound(self, what: str, things: str) -> None:
        if self._bound_to:
            owner = self._bound_to[0]
            raise RuntimeError(
                f"cannot {what}: network is bound to a {owner} built earlier; add {things} "
                f"before building it, or build a new {owner}"
            )

    def __repr__(self) -> str:
        return (
            f"Network(dt={self.dt}, populations={list(self.populations)}, "
            f"projections={list(self.projections)})"
        )

    def population(self, name: str, model: NeuronModel) -> Population:
        """Declare a population ``name`` of neurons described by ``model``."""
        self._check_unbound(f"add population {name!r}", "populations")
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(
                f"population name must be a non-empty string without '.', got {name!r}"
            )
        if name in self.populations:
            raise ValueError(f"population {name!r} already exists")
        if not isinstance(model, NeuronModel):
            raise TypeError(f"model must be a neuron model, got {type(model).__name__}")
        params = model.params(torch.device("cpu"), self.dtype, self.generator)
        for key, value in params.items():
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise ParameterError(
                    f"population {name!r} ({type(model).__name__}): parameter {key} is not "
                    f"finite in {self.dtype} (a value too large for it?)"
                )
        pop = Population(name, model, params)
        self.populations[name] = pop
        return pop

    def connect(
        self,
        pre: Population | str,
        post: Population | str,
        connectivity: Connectivity,
        weight: float | Initializer | Tensor = 0.0,
        synapse: STDP | None = None,
        psc: PostsynapticModel | None = None,
        capacity: int | None = None,
        padding: float = 1.0,
        name: str | None = None,
        delivery: str = "auto",
        delay: float | None = None,
    ) -> Projection:
        """Declare a projection and draw its connectivity and weights.

        Args:
            pre, post: populations (or their names).
            connectivity: an initialiser such as ``FixedProbability(0.1)`` or ``Dense()``.
            weight: a number, an initialiser, a tensor ``[nnz]`` matching ``FromArrays`` or a
                tensor ``[n_pre, n_post]`` for ``Dense()``.
            synapse: plasticity rule (``STDP``) or None for static weights.
            psc: postsynaptic model (default ``Delta()``), as bound to the postsynaptic
                neuron model (:meth:`PostsynapticModel.bind`).
            capacity: row capacity; default the connectivity's row-length bound times
                ``padding``, capped at ``n_post``.
            padding: capacity multiplier (>= 1) for room to grow.
            name: default ``"pre->post"``.
            delivery: ``"auto"``, ``"dense"``, ``"rows"`` (event-driven), ``"slots"`` or ``"csr"``.
            delay: synaptic delay [ms], a whole number ``d >= 1`` of steps of ``dt``; None (the
                default) is one step. A spike of step ``t`` reaches the postsynaptic model in
                step ``t + d`` (NEST's delay ``d dt``): it is delivered through the
                connectivity as it is in step ``t + 1``, and the delivered input waits ``d - 1``
                steps in the projection's buffer (so a synapse removed after that delivery
                still transmits the spikes it carried; see the Simulator's step semantics).
                Not with STDP (``synapse=``) when ``d > 1``.
        """
        self._check_unbound("connect a projection", "projections")
        pre = self._resolve(pre)
        post = self._resolve(post)
        name = name if name is not None else f"{pre.name}->{post.name}"
        if name in self.projections:
            raise ValueError(f"projection {name!r} already exists")
        if not isinstance(connectivity, Connectivity):
            raise TypeError(
                f"{name}: connectivity must be a Connectivity, got {type(connectivity).__name__}"
            )
        psc = Delta() if psc is None else psc
        if not isinstance(psc, PostsynapticModel):
            raise TypeError(f"{name}: psc must be a postsynaptic model, got {type(psc).__name__}")
        try:
            psc = psc.bind(post.model)
        except ParameterError as err:
            raise ParameterError(f"{name}: {err}") from None
        if synapse is not None and not isinstance(synapse, STDP):
            raise TypeError(f"{name}: synapse must be STDP or None, got {type(synapse).__name__}")
        if delivery not in DELIVERY_STRATEGIES:
            raise ValueError(
                f"{name}: delivery must be one of {DELIVERY_STRATEGIES}, got {delivery!r}"
            )
        if capacity is not None and (
            isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0
        ):
            raise ValueError(f"{name}: capacity must be an int >= 0, got {capacity!r}")
        try:
            check_padding(padding)
        except ParameterError as err:
            raise ParameterError(f"{name}: {err}") from None
        if not pre.model.spiking:
            raise ValueError(f"{name}: presynaptic population {pre.name!r} does not spike")
        if synapse is not None and pre.model.counting:
            raise NotImplementedError(
                f"{name}: STDP from {type(pre.model).__name__} {pre.name!r} is not supported "
                "(it emits spike counts); use synapse=None"
            )
        steps = delay_steps(name, delay, self.dt)
        if steps > 1 and synapse is not None:
            raise NotImplementedError(
                f"{name}: STDP with a delay of {steps} steps is not supported; STDP needs "
                "delay=None (one step)"
            )

        if isinstance(connectivity, Dense):
            if synapse is not None:
                raise NotImplementedError(
                    f"{name}: plasticity on Dense() projections is not "
                    "supported; use a sparse AllToAll() projection"
                )
            w = self._dense_weight(name, weight, pre.n, post.n)
            proj = Projection(name, pre, post, connectivity, psc, synapse, None, w, "dense", steps)
        else:
            store = self._build_store(name, pre, post, connectivity, weight, capacity, padding)
            proj = Projection(
                name, pre, post, connectivity, psc, synapse, store, None, delivery, steps
            )
        self.projections[name] = proj
        return proj

    def _resolve(self, pop: Population | str) -> Population:
        if isinstance(pop, str):
            if pop not in self.populations:
                raise ValueError(f"unknown population {pop!r}; known: {sorted(self.populations)}")
            return self.populations[pop]
        if not isinstance(pop, Population) or self.populations.get(pop.name) is not pop:
            raise ValueError(f"{pop!r} is not a population of this network")
        return pop

    def _dense_weight(self, name: str, weight: Any, n_pre: int, n_post: int) -> Tensor:
        if isinstance(weight, Tensor):
            if weight.shape != (n_pre, n_post):
                raise ValueError(
                    f"{name}: dense weight must have shape {(n_pre, n_post)}, got "
                    f"{tuple(weight.shape)}"
                )
            w = weight.to(self.dtype).clone()
        else:
            w = as_initializer(weight).sample(
                (n_pre, n_post), generator=self.generator, dtype=self.dtype
            )
        if not bool(torch.isfinite(w).all()):
            raise ParameterError(f"{name}: weight contains NaN or infinity")
        return w

    def _build_store(self, name, pre, post, conn, weight, capacity, padding) -> RaggedSynapses:
        same = pre is post
        kwargs = dict(pre_grid=pre.grid, post_grid=post.grid)
        pre_idx, post_idx = conn.build(
            pre.n, post.n, generator=self.generator, same_population=same, **kwargs
        )
        bound = conn.max_row_length(pre.n, post.n, **kwargs)
        longest = int(torch.bincount(pre_idx, minlength=pre.n).max()) if pre_idx.numel() else 0
        if capacity is None:
            capacity = max(default_capacity(bound, padding, post.n), longest)
        elif longest > capacity:
            row = int(torch.bincount(pre_idx, minlength=pre.n).argmax())
            raise CapacityError(
                f"projection {name!r}: row {row} starts with {longest} synapses "
                f"but capacity={capacity}; raise capacity="
            )
        autapses = not same or conn.allows_autapses()
        store = RaggedSynapses(pre.n, post.n, capacity, name=name, autapses=autapses)
        store.add_var("weight", dtype=self.dtype)
        if isinstance(weight, Tensor):
            if not isinstance(conn, FromArrays):
                raise ValueError(
                    f"{name}: a weight tensor needs FromArrays connectivity "
                    "(or Dense() with [n_pre, n_post])"
                )
            if weight.shape != pre_idx.shape:
                raise ValueError(
                    f"{name}: weight must have shape {tuple(pre_idx.shape)} to "
                    f"match FromArrays, got {tuple(weight.shape)}"
                )
            values = weight.to(self.dtype)
        else:
            values = as_initializer(weight).sample(
                pre_idx.shape, generator=self.generator, dtype=self.dtype
            )
        store.add(pre_idx, post_idx, weight=values)
        return store

    def add_rule(
        self, rule: Any, projection: Projection | str, every: int = 1, log_events: bool = False
    ) -> ScheduledRule:
        """Run ``rule.update(view, ctx)`` on ``projection`` after every ``every``-th step.

        ``log_events=True`` records every formation and elimination (time, pre, post, distance).
        Raises ``RuntimeError`` once a simulator or trainer was built on the network.
        """
        from .structural.base import StructuralRule

        self._check_unbound("add a rule", "rules")
        if not isinstance(rule, StructuralRule):
            raise TypeError(f"rule must be a StructuralRule, got {type(rule).__name__}")
        proj = self._projection(projection)
        if not proj.sparse:
            raise ValueError(
                f"projection {proj.name!r} is dense; structural rules need a sparse projection"
            )
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1 (steps), got {every!r}")
        scheduled = ScheduledRule(rule, proj, every, log_events)
        self.rules.append(scheduled)
        return scheduled

    def add_callback(self, fn: Callable, every: int, name: str | None = None) -> ScheduledCallback:
        """Run ``fn(sim)`` after every ``every``-th step (host code between blocks)."""
        if not callable(fn):
            raise TypeError("fn must be callable")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1 (steps), got {every!r}")
        cb = ScheduledCallback(fn, every, name or getattr(fn, "__name__", "callback"))
        self.callbacks.append(cb)
        return cb

    def _projection(self, projection: Projection | str) -> Projection:
        if isinstance(projection, str):
            if projection not in self.projections:
                raise ValueError(
                    f"unknown projection {projection!r}; known: {sorted(self.projections)}"
                )
            return self.projections[projection]
        if self.projections.get(getattr(projection, "name", None)) is not projection:
            raise ValueError(f"{projection!r} is not a projection of this network")
        return projection
