"""Running a network: the simulator, a facade over its step, block runner, schedule and
recorders (:mod:`neurowire.sim`)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .checks import ParameterError, check_number, check_seed
from .denormals import flush_denormals
from .network import Network, Population
from .neurons import PoissonState
from .poisson import CountState, TableCache, check_mean, poisson_counts
from .rng import stream_key, uniforms
from .sim.checks import check_inputs, check_network
from .sim.records import Recorder, SimulationResult
from .sim.runners import ENGINES, auto_runner, named_runner
from .sim.schedule import Schedule
from .sim.state import initial_state
from .sim.step import StepFunction
from .sim.timers import PhaseTimer, index_rebuild_s
from .structural.log import RewiringLog

__all__ = ["ENGINES", "SimulationResult", "Simulator"]


class Simulator:
    """Runs a :class:`~neurowire.Network`.

    Every step ``t`` runs five phases, in this order (DESIGN.md, step semantics):

    1. **delivery**: each projection delivers the spikes its presynaptic population emitted in
       step ``t-1`` through the connectivity as it is *now* (one step of delay). A projection
       with a delay of ``d > 1`` steps (``connect(..., delay=)``) holds this input for
       ``d - 1`` more steps in its buffer: the postsynaptic model receives it in step
       ``t + d - 1``, ``d`` steps after the spike, as NEST does with a delay of ``d dt``. Input in
       the buffer is already delivered: a synapse removed meanwhile still transmits it, one
       added meanwhile does not (NEST delivers a spike into its target's ring buffer before
       the next structural update as well). Spike counts (``PoissonGenerator``) deliver
       ``weight * count``;
    2. **postsynaptic**: postsynaptic models turn the delivered weights into input (``ExpCond``
       uses the membrane potential at the end of step ``t-1``);
    3. **neurons**: populations advance and emit the spikes of step ``t`` (``SpikeSource`` reads
       ``inputs[:, t]``, ``PoissonSource`` and ``PoissonGenerator`` draw);
    4. **plasticity**: STDP for the pre and post spikes of step ``t``;
    5. **structural rules** and callbacks that are due after step ``t`` (host code).

    The steps between two due rules or callbacks run as one *block* (:mod:`neurowire.sim.
    schedule`), by the block runner of one of four engines (:mod:`neurowire.sim.runners`),
    chosen once; the first three run the step function of :mod:`neurowire.sim.step`:

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
            neurons and Poisson generators draw from counter-based streams keyed by the seed
            and the population's name (:mod:`neurowire.rng`, :mod:`neurowire.poisson`): the
            same numbers on every engine, device and block length.
        engine: ``"auto"``, ``"torch"``, ``"compile"``, ``"graph"`` or ``"native"`` (see above).
        block_steps: block length when nothing is scheduled (default 10 steps; 1000 with the
            native engine).
        event_fraction: initial event budget as a fraction of ``B * n`` per population.
        time_phases: time phases 1-4 separately (not with ``"compile"``; synchronises CUDA;
            the native engine then calls one function per phase and step, which is slower).
        threads: CPU threads the native engine may use (default ``torch.get_num_threads()``).
            With two or more, a helper thread draws the spikes of ``PoissonSource``-like
            populations for a whole block ahead while the block steps (when a block draws at
            least ``native.ahead.AHEAD_MIN_DRAWS`` numbers and the load average leaves a core
            free); the step loop itself is one thread (a step takes microseconds, less than
            starting a parallel loop). Results do not depend on it.

    Timers (``result.timers_s``): ``delivery``, ``postsynaptic``, ``neurons``, ``plasticity``
    (with ``time_phases``), ``steps`` (all blocks), ``rules``, ``index_rebuild`` (live masks,
    column indices), ``callbacks``, ``inputs`` (random numbers, input slicing), ``recording``.

    Attributes:
        engine: the name of the engine that runs the blocks (``"auto"`` resolved).
        runner: its block runner; step_function: the step (all engines but ``"native"``).
        rule_runner: the host side of the structural rules; rewiring_log: their log.
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
        runner_class = named_runner(engine)
        if runner_class is not None:
            runner_class.check_options(torch.device(device), time_phases)
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
        #: seeds the stochastic neurons' streams (:mod:`neurowire.rng`) and the rules' generators
        self.seed = net.seed + 1 if seed is None else seed
        self.generator = torch.Generator(self.device).manual_seed(self.seed)
        self._populations = list(net.populations.values())
        #: the count tables of the Poisson generators' rates (neurowire.poisson)
        self.count_tables = TableCache(net.dt)
        check_network(net, batch_size)
        for proj in net.projections.values():
            if proj.sparse:
                proj.synapses.to(self.device)
            else:
                proj.weight = proj.weight.to(self.device)
        for pop in self._populations:
            pop.params = {k: v.to(self.device) for k, v in pop.params.items()}
        if runner_class is None:
            runner_class = auto_runner(self)
        timer = PhaseTimer(self.timers, time_phases, self.device)
        self.step_function = StepFunction(
            net,
            batch_size,
            self.device,
            event_fraction,
            runner_class.sparse_tensors,
            runner_class.name,
            timer,
        )
        self.state = initial_state(net, batch_size, self.device)
        self.schedule = Schedule(self)
        self.rule_runner = self.schedule.rule_runner
        self.runner = runner_class.build(self, threads)
        self.engine = self.runner.name
        self.block_steps = self.schedule.block_length(block_steps)
        net._bind("Simulator")

    # ------------------------------------------------------------------ public helpers
    def set_rates(self, population: str, rates_hz: Any, check: bool = True) -> None:
        """Set the rates [Hz] of a ``PoissonSource`` or ``PoissonGenerator``: a number, ``[n]``
        or ``[B, n]``.

        ``check=False`` skips the finiteness and sign checks (and a generator's bound on the
        mean count per step), for rates validated before (e.g. a precomputed table used every
        few milliseconds).
        """
        st = self._neuron_state(population)
        if not isinstance(st, (PoissonState, CountState)):
            raise TypeError(f"population {population!r} is not a PoissonSource or PoissonGenerator")
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
        if check and isinstance(st, CountState):
            check_mean(f"rates for {population!r}", rate, self.dt)
        self.state["neurons"][population] = st._replace(rate_hz=rate.clone())

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
        return self.runner.generated_source()

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

        Returns:
            the records (``[B, T, n]`` each), timers and the rewiring log.
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ParameterError(f"steps must be an int >= 0, got {steps!r}")
        recorder = Recorder(record or {}, self.state["neurons"])
        inputs = check_inputs(self.net, inputs or {}, steps, self.batch_size)
        before = dict(self.timers)
        projections = self.net.projections.values()
        rebuild_before = index_rebuild_s(projections)
        start = time.perf_counter()
        self.schedule.set_up()
        done = 0
        with (
            flush_denormals(),
            tqdm(total=steps, disable=not progress, unit="step", mininterval=0.5) as bar,
        ):
            while done < steps:
                k = min(steps - done, self.schedule.steps_to_next_event())
                ext = self._block_inputs(k, done, inputs)
                host_last = self.schedule.host_step(self.step_count + k)
                recs = self.runner.run_block(k, ext, recorder.keys, host_last)
                tic = time.perf_counter()
                recorder.add(recs)
                self.timers["recording"] += time.perf_counter() - tic
                done += k
                self.step_count += k
                self.schedule.run()
                bar.update(k)
        self.timers["index_rebuild"] += index_rebuild_s(projections) - rebuild_before
        wall = time.perf_counter() - start
        timers = {k: v - before.get(k, 0.0) for k, v in self.timers.items()}
        return SimulationResult(recorder.records(), timers, steps, self.dt, wall, self.rewiring_log)

    def _block_inputs(self, k: int, offset: int, inputs: Mapping[str, Tensor]) -> dict:
        """``[k, B, n]`` per population: the inputs of spike sources from step ``offset`` of
        ``inputs``, and the uniform numbers of stochastic populations and the counts of Poisson
        generators (unless the runner draws them in its blocks)."""
        tic = time.perf_counter()
        ext = {}
        for pop in self._populations:
            if pop.model.external:
                chunk = inputs[pop.name][:, offset : offset + k].to(self.device)
                ext[pop.name] = chunk.transpose(0, 1).to(torch.bool).contiguous()
            elif pop.model.stochastic and not self.runner.draws_random:
                ext[pop.name] = self._uniform(pop, k)
            elif pop.model.counting and not self.runner.draws_random:
                ext[pop.name] = self._counts(pop, k)
        self.timers["inputs"] += time.perf_counter() - tic
        return ext

    def _uniform(self, pop: Population, steps: int) -> Tensor:
        """``[steps, B, n]`` uniform numbers of a stochastic population for the steps from
        :attr:`step_count` on: its counter-based stream (:mod:`neurowire.rng`), the same numbers
        the native engine computes in its kernels, on any device and for any block lengths."""
        key = stream_key(self.seed, pop.name)
        return uniforms(
            key, self.step_count, steps, self.batch_size, pop.n, self.dtype, self.device
        )

    def _counts(self, pop: Population, steps: int) -> Tensor:
        """int32 ``[steps, B, n]``: the counts of a Poisson generator for the steps from
        :attr:`step_count` on, from its stream and current rates (:mod:`neurowire.poisson`)."""
        key = stream_key(self.seed, pop.name)
        table = self.count_tables(pop.name, self.state["neurons"][pop.name].rate_hz)
        return poisson_counts(key, self.step_count, steps, self.batch_size, table)
