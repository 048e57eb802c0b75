"""Running a network: the step loop, blocks, recording, rule schedule and timers."""

from __future__ import annotations

import math
import time
import warnings
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .checks import ParameterError, check_number, check_seed
from .denormals import flush_denormals
from .events import SpikeEvents
from .graphs import GraphedBlock
from .native import unsupported
from .network import Network, Population, Projection
from .neurons import PoissonState, SourceState, check_coefficients
from .plasticity import stdp_depress_rows, stdp_potentiate_columns
from .propagate import (
    csc_matrix,
    deliver_all_slots,
    deliver_csr,
    deliver_matmul,
    deliver_rows,
)
from .rng import stream_key, uniforms
from .structural.log import RewiringLog
from .structural.runner import Clock, RuleRunner
from .structural.view import SynapseView

ENGINES = ("auto", "torch", "compile", "graph", "native")
#: reasons engine="auto" has already warned about
_AUTO_WARNED: set[str] = set()


@dataclass
class SimulationResult:
    """What :meth:`Simulator.run` returns.

    Attributes:
        records: ``records[pop][var]`` tensors ``[B, T, n]`` on the CPU (``"spikes"`` is bool),
            laid out as the inputs are.
        timers_s: wall-clock seconds per component (see :class:`Simulator`).
        steps: steps simulated; dt: step [ms]; wall_s: seconds of wall-clock time.
    """

    records: dict[str, dict[str, Tensor]]
    timers_s: dict[str, float]
    steps: int
    dt: float
    wall_s: float
    rewiring_log: RewiringLog = field(repr=False, default_factory=RewiringLog)

    @property
    def model_ms(self) -> float:
        return self.steps * self.dt

    @property
    def real_time_factor(self) -> float:
        """Wall-clock time per model time (< 1: faster than real time)."""
        return self.wall_s / (self.model_ms * 1e-3) if self.steps else math.nan

    def __getitem__(self, pop: str) -> dict[str, Tensor]:
        return self.records[pop]


class Simulator:
    """Runs a :class:`~neurowire.Network`.

    Every step ``t`` runs five phases, in this order (DESIGN.md, step semantics):

    1. **delivery**: each projection delivers the spikes its presynaptic population emitted in
       step ``t-1`` through the connectivity as it is *now* (one step of delay);
    2. **postsynaptic**: postsynaptic models turn the delivered weights into input (``ExpCond``
       uses the membrane potential at the end of step ``t-1``);
    3. **neurons**: populations advance and emit the spikes of step ``t`` (``SpikeSource`` reads
       ``inputs[:, t]``, ``PoissonSource`` draws);
    4. **plasticity**: STDP for the pre and post spikes of step ``t``;
    5. **structural rules** and callbacks that are due after step ``t`` (host code).

    The steps between two due rules or callbacks run as one *block*, by one of four engines:

    * ``"torch"``: the reference. Phases 1-4 are shape-static PyTorch code; event-driven work
      uses fixed-size spike lists of ``budget`` entries per population, and if a step has more
      spikes the block is repeated from its saved start with a doubled budget.
    * ``"compile"``: the same code, one ``torch.compile``-d call per block (meant for CUDA,
      where the static shapes allow CUDA-graph capture; compiling takes minutes on a CPU).
    * ``"graph"`` (CUDA): the torch block captured once as a CUDA graph and replayed, one
      launch per block; inputs, connectivity and weights are copied into the graph's buffers
      before each replay, so rewiring needs no new capture (:mod:`neurowire.graphs`).
    * ``"native"``: a block as one generated, numba-compiled CPU function working in place,
      event-driven without budgets (:mod:`neurowire.native`); built-in models only.

    ``engine="auto"`` picks ``"native"`` on the CPU when the network only uses built-in models,
    else ``"torch"``.

    Args:
        net: the network.
        device: torch device for every tensor (stores are moved there).
        batch_size: independent copies simulated in parallel (``B``).
        seed: seeds the simulation's random numbers (default ``net.seed + 1``). Stochastic
            neurons draw from counter-based streams keyed by the seed and the population's name
            (:mod:`neurowire.rng`): the same numbers on every engine, device and block length.
        engine: ``"auto"``, ``"torch"``, ``"compile"``, ``"graph"`` or ``"native"`` (see above).
        block_steps: block length when nothing is scheduled (default 10 steps; 1000 with the
            native engine).
        event_fraction: initial event budget as a fraction of ``B * n`` per population.
        time_phases: time phases 1-4 separately (not with ``"compile"``; synchronises CUDA;
            the native engine then calls one function per phase and step, which is slower).
        threads: CPU threads the native engine may use (default ``torch.get_num_threads()``).
            With two or more, a helper thread draws the spikes of ``PoissonSource``-like
            populations for a whole block ahead while the block steps (when a block draws at
            least ``native.engine.AHEAD_MIN_DRAWS`` numbers and the load average leaves a core
            free); the step loop itself is one thread (a step takes microseconds, less than
            starting a parallel loop). Results do not depend on it.

    Timers (``result.timers_s``): ``delivery``, ``postsynaptic``, ``neurons``, ``plasticity``
    (with ``time_phases``), ``steps`` (all blocks), ``rules``, ``index_rebuild`` (live masks,
    column indices), ``callbacks``, ``inputs`` (random numbers, input slicing), ``recording``.
    """

    def __init__(
        self,
        net: Network,
        device: str | torch.device = "cpu",
        batch_size: int = 1,
        seed: int | None = None,
        engine: str = "auto",
        block_steps: int | None = None,
        event_fraction: float = 0.05,
        time_phases: bool = False,
        threads: int | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ParameterError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if seed is not None:
            check_seed("seed", seed)
        check_number("event_fraction", event_fraction, low=0.0, low_open=True, high=1.0)
        if block_steps is not None and (
            isinstance(block_steps, bool) or not isinstance(block_steps, int) or block_steps < 1
        ):
            raise ParameterError(f"block_steps must be None or an int >= 1, got {block_steps!r}")
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        if engine in ("compile", "graph") and time_phases:
            raise ValueError(f"time_phases=True cannot time phases inside a {engine!r} block")
        if engine == "graph" and torch.device(device).type != "cuda":
            raise ValueError(
                f"engine='graph' replays CUDA graphs and needs a CUDA device, got {device!r}"
            )
        self.net = net
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.dtype = net.dtype
        self.dt = net.dt
        self.time_phases = time_phases
        self.step_count = 0
        #: ``time.perf_counter()`` when the first step began (after compilation), or None
        self.first_step_at: float | None = None
        self.timers: dict[str, float] = defaultdict(float)
        self.rewiring_log = RewiringLog()
        base_seed = net.seed + 1 if seed is None else seed
        #: seeds the stochastic neurons' streams (:mod:`neurowire.rng`) and the rules' generators
        self.seed = base_seed
        self.generator = torch.Generator(self.device).manual_seed(base_seed)
        self._projections = list(net.projections.values())
        self._populations = list(net.populations.values())
        self._check_network()
        for proj in self._projections:
            if proj.sparse:
                proj.synapses.to(self.device)
            else:
                proj.weight = proj.weight.to(self.device)
        for pop in self._populations:
            pop.params = {k: v.to(self.device) for k, v in pop.params.items()}
        self.engine = self._resolve_engine(engine)
        self.strategies = {p.name: self._choose_strategy(p) for p in self._projections}
        self._event_pops = self._populations_needing_events()
        self.budgets = {
            name: min(
                batch_size * net.populations[name].n,
                max(16, math.ceil(event_fraction * batch_size * net.populations[name].n)),
            )
            for name in self._event_pops
        }
        self.state = self._initial_state()
        #: the host side of the rule schedule (contexts, all-or-nothing calls, logging)
        self.rule_runner = RuleRunner(
            [(sch.projection.name, sch.rule) for sch in net.rules],
            base_seed,
            self.device,
            self._make_view,
            self.rewiring_log,
        )
        self._rules_set_up = False
        self._compiled = (
            torch.compile(self._block, fullgraph=True, dynamic=False)
            if self.engine == "compile"
            else None
        )
        #: the CUDA-graph engine's captured blocks (:mod:`neurowire.graphs`)
        self._graphed = GraphedBlock(self._block) if self.engine == "graph" else None
        self._native = None
        self._host_rule_ids: list[int] | None = None
        if self.engine == "native":
            from .native.engine import NativeEngine

            self._native = NativeEngine(self, threads=threads)
        self.block_steps = self._block_length(block_steps)
        net._bind("Simulator")

    # ------------------------------------------------------------------ construction helpers
    def _resolve_engine(self, engine: str) -> str:
        if engine != "auto":
            return engine
        if self.device.type != "cpu":
            return "torch"
        reason = unsupported(self)
        if reason is None:
            return "native"
        if reason not in _AUTO_WARNED:  # once per reason and process
            _AUTO_WARNED.add(reason)
            warnings.warn(
                f"engine='auto' runs the torch engine: the native engine cannot run {reason}",
                stacklevel=3,
            )
        return "torch"

    def _uniform(self, pop: Population, steps: int) -> Tensor:
        """``[steps, B, n]`` uniform numbers of a stochastic population for the steps from
        :attr:`step_count` on: its counter-based stream (:mod:`neurowire.rng`), the same numbers
        the native engine computes in its kernels, on any device and for any block lengths."""
        key = stream_key(self.seed, pop.name)
        return uniforms(
            key, self.step_count, steps, self.batch_size, pop.n, self.dtype, self.device
        )

    def _host_rules(self) -> list[int]:
        """Indices of the rules that run on the host (all but the native engine's fused)."""
        if self._host_rule_ids is None:
            fused = set(self._native.fused) if self._native is not None else set()
            self._host_rule_ids = [r for r in range(len(self.net.rules)) if r not in fused]
        return self._host_rule_ids

    def _block_length(self, default: int | None) -> int:
        """Steps per block: up to the next due host rule or callback."""
        periods = [c.every for c in self.net.callbacks]
        periods += [self.net.rules[r].every for r in self._host_rules()]
        if periods:
            return math.gcd(*periods)
        if default is not None:
            return default
        return 1000 if self._native is not None else 10

    def _check_network(self) -> None:
        # every coefficient derived from dt (decays, refractory steps, ...) must be a number
        for pop in self._populations:
            owner = f"population {pop.name!r} ({type(pop.model).__name__})"
            check_coefficients(pop.model, self.dt, self.dtype, owner)
        for proj in self._projections:
            owner = f"projection {proj.name!r}"
            check_coefficients(
                proj.psc, self.dt, self.dtype, f"{owner} ({type(proj.psc).__name__})"
            )
            if proj.plasticity is not None:
                rule = proj.plasticity
                check_coefficients(rule, self.dt, self.dtype, f"{owner} ({type(rule).__name__})")
        for proj in self._projections:
            if proj.psc.needs_voltage and not hasattr(
                proj.post.model.init_state(1, torch.device("cpu"), self.dtype), "v"
            ):
                raise ValueError(
                    f"{proj.name}: {type(proj.psc).__name__} needs a postsynaptic "
                    f"membrane potential; {type(proj.post.model).__name__} has none"
                )
            if proj.plasticity is not None and self.batch_size > 1:
                raise NotImplementedError(
                    f"{proj.name}: STDP with batch_size > 1 would need one weight copy per batch "
                    "element; simulate batch elements in separate simulators"
                )

    def _choose_strategy(self, proj: Projection) -> str:
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
            else:
                strategy = "rows"
        if plastic and strategy == "dense":
            raise ValueError(
                f"{proj.name}: delivery='dense' needs static weights (STDP changes "
                "them every step); use 'rows', 'slots' or 'csr'"
            )
        if self.engine in ("compile", "graph") and strategy == "csr":
            raise ValueError(
                f"{proj.name}: delivery='csr' uses sparse tensors, which the {self.engine!r} "
                "engine does not support; use 'rows' or 'slots'"
            )
        return strategy

    def _populations_needing_events(self) -> list[str]:
        names = set()
        for proj in self._projections:
            if self.strategies[proj.name] == "rows":
                names.add(proj.pre.name)
            if proj.plasticity is not None:
                names.update((proj.pre.name, proj.post.name))
        return [p.name for p in self._populations if p.name in names]

    def _initial_state(self) -> dict[str, Any]:
        gen = torch.Generator().manual_seed(self.net.seed + 2)
        neurons = {}
        for pop in self._populations:
            st = pop.model.init_state(self.batch_size, torch.device("cpu"), self.dtype, gen)
            for var, x in st._asdict().items():
                if x.is_floating_point() and not bool(torch.isfinite(x).all()):
                    raise ParameterError(
                        f"population {pop.name!r} ({type(pop.model).__name__}): initial {var} "
                        f"is not finite in {self.dtype} (a parameter too large for it?)"
                    )
            neurons[pop.name] = type(st)(*(x.to(self.device) for x in st))
        psc = {
            p.name: p.psc.init_state(self.batch_size, p.post.n, self.device, self.dtype)
            for p in self._projections
        }
        traces = {
            p.name: (
                torch.zeros(p.pre.n, dtype=self.dtype, device=self.device),
                torch.zeros(p.post.n, dtype=self.dtype, device=self.device),
            )
            for p in self._projections
            if p.plasticity is not None
        }
        return {"neurons": neurons, "psc": psc, "traces": traces}

    # ------------------------------------------------------------------ public helpers
    def set_rates(self, population: str, rates_hz: Any, check: bool = True) -> None:
        """Set the rates [Hz] of a ``PoissonSource``: a number, ``[n]`` or ``[B, n]``.

        ``check=False`` skips the finiteness and sign checks, for rates validated before (e.g.
        a precomputed table used every few milliseconds).
        """
        st = self._neuron_state(population)
        if not isinstance(st, PoissonState):
            raise TypeError(f"population {population!r} is not a PoissonSource")
        n = self.net.populations[population].n
        rate = torch.as_tensor(rates_hz, dtype=self.dtype, device=self.device)
        if rate.dim() == 0:
            rate = rate.expand(1, n)
        elif rate.shape == (n,):
            rate = rate[None]
        elif rate.shape != (self.batch_size, n):
            raise ValueError(
                f"rates for {population!r} must be a number, [{n}] or "
                f"[{self.batch_size}, {n}], got {tuple(rate.shape)}"
            )
        if check and (not bool((rate >= 0).all()) or not bool(torch.isfinite(rate).all())):
            raise ParameterError(f"rates for {population!r} must be finite and >= 0 Hz")
        self.state["neurons"][population] = PoissonState(rate.clone(), st.z)

    def _neuron_state(self, population: str):
        if population not in self.state["neurons"]:
            raise ValueError(
                f"unknown population {population!r}; known: {sorted(self.state['neurons'])}"
            )
        return self.state["neurons"][population]

    def generated_source(self) -> str:
        """The numba source the native engine generated for this network (its models' kernels,
        derived from their ``update``, and the block driver). Before the first run, only the
        model kernels. The file it was imported from is named in the first line."""
        if self._native is None:
            raise ValueError(
                f"engine={self.engine!r} runs the models' update() as PyTorch code; only the "
                "native engine generates source"
            )
        return self._native.source_text()

    def neuron_state(self, population: str) -> dict[str, Tensor]:
        """Current state variables of a population by name, ``[B, n]`` each."""
        return self._neuron_state(population)._asdict()

    @property
    def t(self) -> float:
        """Model time [ms] simulated so far."""
        return self.step_count * self.dt

    # ------------------------------------------------------------------ running
    def run(
        self,
        steps: int,
        record: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Tensor] | None = None,
        progress: bool = False,
    ) -> SimulationResult:
        """Simulate ``steps`` steps; state, connectivity and time carry over between calls.

        On the CPU, denormal floats are flushed to zero during the run (decaying traces would
        otherwise slow arithmetic many-fold on their way to zero).

        Args:
            steps: number of steps of ``net.dt`` ms.
            record: ``{population: ["spikes", "v", ...]}`` variables to record every step.
            inputs: ``{spike_source: spikes [B, T >= steps, n]}`` (bool or 0/1).
            progress: show a progress bar.
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ParameterError(f"steps must be an int >= 0, got {steps!r}")
        record = self._check_record(record or {})
        inputs = self._check_inputs(inputs or {}, steps)
        before = dict(self.timers)
        rebuild_before = self._index_rebuild_total()
        start = time.perf_counter()
        if not self._rules_set_up:
            self._setup_rules()
        chunks: dict[tuple[str, str], list[Tensor]] = defaultdict(list)
        done = 0
        with (
            flush_denormals(),
            tqdm(total=steps, disable=not progress, unit="step", mininterval=0.5) as bar,
        ):
            while done < steps:
                k = min(steps - done, self._steps_to_next_event())
                recs = self._run_block(k, done, inputs, record)
                tic = time.perf_counter()
                for key, value in recs.items():
                    chunks[key].append(value.cpu())
                self.timers["recording"] += time.perf_counter() - tic
                done += k
                self.step_count += k
                self._run_schedule()
                bar.update(k)
        self.timers["index_rebuild"] += self._index_rebuild_total() - rebuild_before
        wall = time.perf_counter() - start
        records: dict[str, dict[str, Tensor]] = defaultdict(dict)
        for (pop, var), parts in chunks.items():  # blocks are step-major: [k, B, n] each
            records[pop][var] = torch.cat([part.transpose(0, 1) for part in parts], dim=1)
        for pop, names in record.items():
            for var in names:
                if var not in records[pop]:
                    records[pop][var] = torch.zeros(0)
        timers = {k: v - before.get(k, 0.0) for k, v in self.timers.items()}
        return SimulationResult(dict(records), timers, steps, self.dt, wall, self.rewiring_log)

    def _check_record(self, record: Mapping[str, Any]) -> dict[str, list[str]]:
        out = {}
        for pop, names in record.items():
            st = self._neuron_state(pop)
            names = [names] if isinstance(names, str) else list(names)
            for var in names:
                if var != "spikes" and var not in st._fields:
                    raise ValueError(
                        f"cannot record {var!r} of {pop!r}; choose from {['spikes', *st._fields]}"
                    )
            out[pop] = names
        return out

    def _check_inputs(self, inputs: Mapping[str, Tensor], steps: int) -> dict[str, Tensor]:
        out = {}
        for pop in self._populations:
            if pop.model.external and pop.name not in inputs and steps:
                raise ValueError(
                    f"SpikeSource {pop.name!r} needs inputs={{{pop.name!r}: "
                    f"spikes [B, T, {pop.n}]}}"
                )
        for name, spikes in inputs.items():
            pop = self.net.populations.get(name)
            if pop is None or not pop.model.external:
                raise ValueError(f"inputs given for {name!r}, which is not a SpikeSource")
            spikes = torch.as_tensor(spikes)
            expected = (self.batch_size, f">={steps}", pop.n)
            if (
                spikes.dim() != 3
                or spikes.shape[0] != self.batch_size
                or spikes.shape[1] < steps
                or spikes.shape[2] != pop.n
            ):
                raise ValueError(
                    f"inputs for {name!r} must have shape {expected}, got {tuple(spikes.shape)}"
                )
            if spikes.is_floating_point() and not bool(((spikes == 0) | (spikes == 1)).all()):
                raise ValueError(f"inputs for {name!r} must be 0/1 spikes")
            out[name] = spikes
        return out

    def _steps_to_next_event(self) -> int:
        k = self.block_steps
        return k - (self.step_count % k)

    def _index_rebuild_total(self) -> float:
        return sum(p.synapses.index_rebuild_s for p in self._projections if p.sparse)

    # ------------------------------------------------------------------ blocks
    def _run_block(
        self, k: int, offset: int, inputs: Mapping[str, Tensor], record: Mapping[str, list[str]]
    ) -> dict[tuple[str, str], Tensor]:
        tic = time.perf_counter()
        ext = {}
        for pop in self._populations:
            if pop.model.external:
                chunk = inputs[pop.name][:, offset : offset + k].to(self.device)
                ext[pop.name] = chunk.transpose(0, 1).to(torch.bool).contiguous()
            elif pop.model.stochastic and self._native is None:  # native: in its kernels
                ext[pop.name] = self._uniform(pop, k)
        self.timers["inputs"] += time.perf_counter() - tic
        rec_keys = tuple((pop, var) for pop, names in record.items() for var in names)
        if self._native is not None:
            tic = time.perf_counter()
            rebuild = self._index_rebuild_total()
            compile_s, lists_s = self.timers["compile"], self.timers["index_rebuild"]
            host_last = self._host_step(self.step_count + k)
            recs = self._native.run_block(k, ext, rec_keys, host_last)
            self.timers["steps"] += (  # compilation and index rebuilds are timed on their own
                time.perf_counter()
                - tic
                - (self._index_rebuild_total() - rebuild)
                - (self.timers["index_rebuild"] - lists_s)  # the engine's column lists
                - (self.timers["compile"] - compile_s)
            )
            return recs
        while True:
            tic = time.perf_counter()
            rebuild = self._index_rebuild_total()
            structure = self._structure()
            tic += self._index_rebuild_total() - rebuild  # rebuilds are timed on their own
            fn = (
                self._compiled
                if (self._compiled is not None and k == self.block_steps)
                else self._block
            )
            if self.first_step_at is None:
                self.first_step_at = time.perf_counter()
            if self._graphed is not None:
                new_state, recs, overflow = self._graphed(
                    self.state, structure, ext, k, rec_keys, self._graph_key()
                )
            else:
                new_state, recs, overflow = fn(self.state, structure, ext, k, rec_keys)
            flagged = [name for name, flag in overflow.items() if bool(flag)]
            self.timers["steps"] += time.perf_counter() - tic
            if not flagged:
                break
            for name in flagged:
                cap = self.batch_size * self.net.populations[name].n
                self.budgets[name] = min(cap, 2 * self.budgets[name])
        self._commit(new_state)
        return recs

    def _graph_key(self) -> tuple:
        """What a captured block bakes in besides its inputs' shapes: the spike-list budgets
        and the weight tensors of plastic stores, which :meth:`_block` reads directly."""
        weights = tuple(
            p.synapses.vars["weight"].data_ptr()
            for p in self._projections
            if p.plasticity is not None
        )
        return tuple(sorted(self.budgets.items())), weights

    def _structure(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for proj in self._projections:
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
        out["params"] = {p.name: p.params for p in self._populations}
        return out

    def _commit(self, new_state: dict[str, Any]) -> None:
        """Keep the block's state; plastic weights are copied into the store's own tensor (in
        place, as the native engine writes them), so a tensor held by the user stays current."""
        for proj in self._projections:
            if proj.plasticity is not None:
                proj.synapses.vars["weight"].copy_(new_state["weight"][proj.name])
                proj.synapses.values_changed()
        self.state = {k: v for k, v in new_state.items() if k != "weight"}

    def _block(
        self,
        state: dict[str, Any],
        structure: dict[str, Any],
        ext: dict[str, Tensor],
        k: int,
        rec_keys: tuple[tuple[str, str], ...],
    ):
        """``k`` steps from ``state`` (not modified); returns (state, records, overflow)."""
        weights = {
            p.name: p.synapses.vars["weight"].clone()
            for p in self._projections
            if p.plasticity is not None
        }
        state = {**state, "weight": weights}
        events = {
            name: SpikeEvents.fixed(state["neurons"][name].z, self.budgets[name])
            for name in self._event_pops
        }
        overflow = {
            name: torch.zeros((), dtype=torch.bool, device=self.device) for name in self._event_pops
        }
        recs: dict[tuple[str, str], list[Tensor]] = {key: [] for key in rec_keys}
        for i in range(k):
            state, events = self._step(state, structure, {n: x[i] for n, x in ext.items()}, events)
            for name, ev in events.items():
                overflow[name] = overflow[name] | ev.overflow
            for pop, var in rec_keys:
                st = state["neurons"][pop]
                recs[(pop, var)].append(st.z if var == "spikes" else getattr(st, var))
        return state, {key: torch.stack(v) for key, v in recs.items()}, overflow

    # ------------------------------------------------------------------ one step
    def _tic(self) -> float | None:
        if not self.time_phases:
            return None
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _toc(self, name: str, tic: float | None) -> None:
        if tic is not None:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.timers[name] += time.perf_counter() - tic

    def _step(self, state, structure, ext_t, events):
        neurons, weights = state["neurons"], state["weight"]
        # 1. delivery of the spikes emitted in the previous step
        tic = self._tic()
        w_sums = {
            p.name: self._deliver(p, neurons, structure[p.name], weights, events)
            for p in self._projections
        }
        self._toc("delivery", tic)
        # 2. postsynaptic models
        tic = self._tic()
        i_syn: dict[str, Tensor] = {}
        psc = {}
        for p in self._projections:
            v = neurons[p.post.name].v if p.psc.needs_voltage else None
            current, psc[p.name] = p.psc.step(state["psc"][p.name], w_sums[p.name], v, self.dt)
            i_syn[p.post.name] = (
                current if p.post.name not in i_syn else i_syn[p.post.name] + current
            )
        self._toc("postsynaptic", tic)
        # 3. neurons
        tic = self._tic()
        new_neurons = {}
        for pop in self._populations:
            old = neurons[pop.name]
            model = pop.model
            if model.external:
                new_neurons[pop.name] = SourceState(ext_t[pop.name])
            elif model.stochastic:
                new_neurons[pop.name] = model.step(old, None, self.dt, rand=ext_t[pop.name])
            else:
                drive = i_syn.get(pop.name)
                if drive is None:
                    drive = torch.zeros(
                        self.batch_size, pop.n, dtype=self.dtype, device=self.device
                    )
                new_neurons[pop.name] = model.step(
                    old, drive, self.dt, params=structure["params"][pop.name]
                )
        events = {
            name: SpikeEvents.fixed(new_neurons[name].z, self.budgets[name])
            for name in self._event_pops
        }
        self._toc("neurons", tic)
        # 4. plasticity for this step's spikes
        tic = self._tic()
        traces = {}
        for p in self._projections:
            if p.plasticity is None:
                continue
            rule = p.plasticity
            x_pre, x_post = state["traces"][p.name]
            c = rule.cached_constants(self.dt)
            x_pre = x_pre * c["k_plus"]
            x_post = x_post * c["k_minus"]
            st = structure[p.name]
            w = weights[p.name]
            stdp_depress_rows(w, st["ind"], st["live"], events[p.pre.name], x_post, rule, self.dt)
            stdp_potentiate_columns(w, st["columns"], events[p.post.name], x_pre, rule, self.dt)
            traces[p.name] = (
                x_pre + new_neurons[p.pre.name].z[0],
                x_post + new_neurons[p.post.name].z[0],
            )
        self._toc("plasticity", tic)
        return {"neurons": new_neurons, "psc": psc, "traces": traces, "weight": weights}, events

    def _deliver(self, proj: Projection, neurons, st, weights, events) -> Tensor:
        z = neurons[proj.pre.name].z
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

    # ------------------------------------------------------------------ rules and callbacks
    def _make_view(self, name: str, generator, log_events: bool) -> SynapseView:
        proj = self.net._projection(name)
        if not proj.sparse:
            raise ValueError(f"projection {proj.name!r} is dense and has no synapse view")
        return SynapseView(
            proj.synapses,
            pre_state=self.neuron_state(proj.pre.name),
            post_state=self.neuron_state(proj.post.name),
            pre_grid=proj.pre.grid,
            post_grid=proj.post.grid,
            log=self.rewiring_log,
            step=self.step_count,
            t_ms=self.t,
            log_events=log_events,
            generator=generator,
        )

    def _clock(self) -> Clock:
        return Clock(self.step_count, self.t, self.dt, self.batch_size)

    def _setup_rules(self) -> None:
        self.rule_runner.setup(self._clock())
        self._rules_set_up = True

    def _host_step(self, step: int) -> bool:
        """Whether a host rule is due after ``step``; then the host runs every rule due."""
        rules = self.net.rules
        return any(step % rules[r].every == 0 for r in self._host_rules())

    def _run_schedule(self) -> None:
        tic = time.perf_counter()
        rebuild = self._index_rebuild_total()
        if self._host_step(self.step_count):
            clock = self._clock()
            for i, scheduled in enumerate(self.net.rules):
                if self.step_count % scheduled.every == 0:
                    self.rule_runner.update(i, clock, scheduled.log_events)
        self.timers["rules"] += time.perf_counter() - tic - (self._index_rebuild_total() - rebuild)
        tic = time.perf_counter()
        for cb in self.net.callbacks:
            if self.step_count % cb.every == 0:
                cb.fn(self)
        self.timers["callbacks"] += time.perf_counter() - tic
