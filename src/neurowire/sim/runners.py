"""Block runners: how a block of steps runs, one object per engine, chosen once.

* :class:`TorchRunner` (``"torch"``): the reference, :meth:`StepFunction.block` called eagerly;
  a block whose event lists overflow runs again from its start with doubled budgets;
* :class:`CompiledRunner` (``"compile"``): the same block through ``torch.compile``;
* :class:`GraphRunner` (``"graph"``, CUDA): the block captured as a CUDA graph and replayed
  (:mod:`neurowire.graphs`);
* :class:`NativeRunner` (``"native"``): generated numba blocks (:mod:`neurowire.native`).
"""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch
from torch import Tensor

from ..graphs import GraphedBlock
from ..native import unsupported
from .records import RecKeys
from .timers import index_rebuild_s

if TYPE_CHECKING:
    from ..simulator import Simulator

ENGINES = ("auto", "torch", "compile", "graph", "native")
#: reasons engine="auto" has already warned about
_AUTO_WARNED: set[str] = set()


class BlockRunner(Protocol):
    """Runs ``k`` steps of a simulator from its state, leaving the new state in it."""

    #: the engine's name (one of :data:`ENGINES` but ``"auto"``)
    name: ClassVar[str]
    #: whether blocks may use sparse CSR tensors (``delivery="csr"``)
    sparse_tensors: ClassVar[bool]
    #: whether blocks draw the random numbers of stochastic populations themselves
    draws_random: ClassVar[bool]
    #: block length when nothing is scheduled
    default_block_steps: ClassVar[int]

    @classmethod
    def check_options(cls, device: torch.device, time_phases: bool) -> None:
        """Raise ValueError if the engine cannot run on ``device`` or time the phases."""
        ...

    @classmethod
    def build(cls, sim: Simulator, threads: int | None) -> BlockRunner:
        """The runner of ``sim`` (``threads``: CPU threads it may use, if it uses several)."""
        ...

    @property
    def fused_rules(self) -> list[int]:
        """Indices (into ``net.rules``) of the rules run inside blocks."""
        ...

    def run_block(
        self, k: int, ext: dict[str, Tensor], rec_keys: RecKeys, host_last: bool
    ) -> dict[tuple[str, str], Tensor]:
        """``k`` steps; ``ext[pop] [k, B, n]``: spike-source inputs (and uniform numbers of
        stochastic populations unless :attr:`draws_random`); ``host_last``: host rules run
        after the last step. Returns records ``[k, B, n]`` per ``(pop, var)``."""
        ...

    def generated_source(self) -> str:
        """The source code the engine generated for the network."""
        ...


class TorchRunner:
    """Blocks of :meth:`~neurowire.sim.step.StepFunction.block`, called as PyTorch code."""

    name: ClassVar[str] = "torch"
    sparse_tensors: ClassVar[bool] = True
    draws_random: ClassVar[bool] = False
    default_block_steps: ClassVar[int] = 10

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.step = sim.step_function

    @classmethod
    def check_options(cls, device: torch.device, time_phases: bool) -> None:
        pass

    @classmethod
    def build(cls, sim: Simulator, threads: int | None) -> TorchRunner:
        return cls(sim)

    @property
    def fused_rules(self) -> list[int]:
        return []

    def generated_source(self) -> str:
        raise ValueError(
            f"engine={self.name!r} runs the models' update() as PyTorch code; only the "
            "native engine generates source"
        )

    def run_block(
        self, k: int, ext: dict[str, Tensor], rec_keys: RecKeys, host_last: bool
    ) -> dict[tuple[str, str], Tensor]:
        sim = self.sim
        projections = self.step.projections
        while True:
            tic = time.perf_counter()
            rebuild = index_rebuild_s(projections)
            structure = self.step.structure()
            tic += index_rebuild_s(projections) - rebuild  # rebuilds are timed on their own
            if sim.first_step_at is None:
                sim.first_step_at = time.perf_counter()
            new_state, recs, overflow = self._call(structure, ext, k, rec_keys)
            flagged = [name for name, flag in overflow.items() if bool(flag)]
            sim.timers["steps"] += time.perf_counter() - tic
            if not flagged:
                break
            budgets = self.step.budgets
            for name in flagged:
                cap = sim.batch_size * sim.net.populations[name].n
                budgets[name] = min(cap, 2 * budgets[name])
        self._commit(new_state)
        return recs

    def _call(self, structure: dict[str, Any], ext: dict[str, Tensor], k: int, rec_keys: RecKeys):
        return self.step.block(self.sim.state, structure, ext, k, rec_keys)

    def _commit(self, new_state: dict[str, Any]) -> None:
        """Keep the block's state; plastic weights are copied into the store's own tensor (in
        place, as the native engine writes them), so a tensor held by the user stays current."""
        for proj in self.step.projections:
            if proj.plasticity is not None:
                proj.synapses.vars["weight"].copy_(new_state["weight"][proj.name])
                proj.synapses.values_changed()
        self.sim.state = {k: v for k, v in new_state.items() if k != "weight"}


class CompiledRunner(TorchRunner):
    """Full-length blocks through one ``torch.compile``-d call (meant for CUDA; compiling
    takes minutes on a CPU); a shorter last block runs eagerly."""

    name: ClassVar[str] = "compile"
    sparse_tensors: ClassVar[bool] = False

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        self._compiled = torch.compile(self.step.block, fullgraph=True, dynamic=False)

    @classmethod
    def check_options(cls, device: torch.device, time_phases: bool) -> None:
        if time_phases:
            raise ValueError(f"time_phases=True cannot time phases inside a {cls.name!r} block")

    def _call(self, structure: dict[str, Any], ext: dict[str, Tensor], k: int, rec_keys: RecKeys):
        fn = self._compiled if k == self.sim.block_steps else self.step.block
        return fn(self.sim.state, structure, ext, k, rec_keys)


class GraphRunner(TorchRunner):
    """Blocks captured once per key as CUDA graphs and replayed (:class:`GraphedBlock`).

    Args:
        sim: the simulator.
        graphed: the captured blocks of ``sim``'s step function (default: CUDA graphs).
    """

    name: ClassVar[str] = "graph"
    sparse_tensors: ClassVar[bool] = False

    def __init__(self, sim: Simulator, graphed: GraphedBlock | None = None) -> None:
        super().__init__(sim)
        #: the captured blocks
        self.graphed = GraphedBlock(self.step.block) if graphed is None else graphed

    @classmethod
    def check_options(cls, device: torch.device, time_phases: bool) -> None:
        if time_phases:
            raise ValueError(f"time_phases=True cannot time phases inside a {cls.name!r} block")
        if device.type != "cuda":
            raise ValueError(
                f"engine='graph' replays CUDA graphs and needs a CUDA device, got {device}"
            )

    def _call(self, structure: dict[str, Any], ext: dict[str, Tensor], k: int, rec_keys: RecKeys):
        return self.graphed(self.sim.state, structure, ext, k, rec_keys, self.step.graph_key())


class NativeRunner:
    """Generated numba blocks working in place, event-driven without budgets; built-in models
    only. Wraps :class:`neurowire.native.engine.NativeEngine`."""

    name: ClassVar[str] = "native"
    sparse_tensors: ClassVar[bool] = True
    draws_random: ClassVar[bool] = True
    default_block_steps: ClassVar[int] = 1000

    def __init__(self, sim: Simulator, threads: int | None = None) -> None:
        from ..native.engine import NativeEngine

        self.sim = sim
        #: the generated engine
        self.engine = NativeEngine(sim, threads=threads)

    @classmethod
    def check_options(cls, device: torch.device, time_phases: bool) -> None:
        pass

    @classmethod
    def build(cls, sim: Simulator, threads: int | None) -> NativeRunner:
        return cls(sim, threads)

    @property
    def fused_rules(self) -> list[int]:
        return self.engine.fused

    def generated_source(self) -> str:
        return self.engine.source_text()

    def run_block(
        self, k: int, ext: dict[str, Tensor], rec_keys: RecKeys, host_last: bool
    ) -> dict[tuple[str, str], Tensor]:
        sim, timers = self.sim, self.sim.timers
        projections = sim.net.projections.values()
        tic = time.perf_counter()
        rebuild = index_rebuild_s(projections)
        compile_s, lists_s = timers["compile"], timers["index_rebuild"]
        rules_s = timers["rules"]
        recs = self.engine.run_block(k, ext, rec_keys, host_last)
        timers["steps"] += (  # compilation, index rebuilds and (timing phases) fused rules
            time.perf_counter()  # are timed on their own
            - tic
            - (index_rebuild_s(projections) - rebuild)
            - (timers["index_rebuild"] - lists_s)  # the engine's column lists
            - (timers["compile"] - compile_s)
            - (timers["rules"] - rules_s)
        )
        return recs


_RUNNERS: dict[str, type[BlockRunner]] = {
    r.name: r for r in (TorchRunner, CompiledRunner, GraphRunner, NativeRunner)
}


def named_runner(engine: str) -> type[BlockRunner] | None:
    """The runner of an engine named by the user; None for ``"auto"``."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    return _RUNNERS.get(engine)


def auto_runner(sim: Simulator) -> type[BlockRunner]:
    """``engine="auto"``: the native engine on the CPU when it can run ``sim``'s network, else
    the torch engine (warning once per reason and process)."""
    if sim.device.type != "cpu":
        return TorchRunner
    reason = unsupported(sim)
    if reason is None:
        return NativeRunner
    if reason not in _AUTO_WARNED:
        _AUTO_WARNED.add(reason)
        warnings.warn(
            f"engine='auto' runs the torch engine: the native engine cannot run {reason}",
            stacklevel=3,
        )
    return TorchRunner
