"""What a run records: the variables asked for, collected block by block, and the result."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..structural.log import RewiringLog

RecKeys = tuple[tuple[str, str], ...]


@dataclass
class SimulationResult:
    """What :meth:`~neurowire.Simulator.run` returns.

    Attributes:
        records: ``records[pop][var]`` tensors ``[B, T, n]`` on the CPU (``"spikes"`` is bool),
            laid out as the inputs are.
        timers_s: wall-clock seconds per component (see :class:`~neurowire.Simulator`).
        steps: steps simulated; dt: step [ms]; wall_s: seconds of wall-clock time.
        rewiring_log: the simulator's log of structural changes.
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


class Recorder:
    """Collects the recorded variables of one run, block by block.

    Args:
        record: ``{population: var or [var, ...]}`` as given to ``run``.
        neurons: the current neuron states by population (to check the names against).
    """

    def __init__(self, record: Mapping[str, Any], neurons: Mapping[str, Any]) -> None:
        self.record = _check_record(record, neurons)
        #: ``(population, var)`` pairs a block records, in order
        self.keys: RecKeys = tuple(
            (pop, var) for pop, names in self.record.items() for var in names
        )
        self._chunks: dict[tuple[str, str], list[Tensor]] = defaultdict(list)

    def add(self, recs: Mapping[tuple[str, str], Tensor]) -> None:
        """Keep a block's records (``[k, B, n]`` each, on any device) on the CPU."""
        for key, value in recs.items():
            self._chunks[key].append(value.cpu())

    def records(self) -> dict[str, dict[str, Tensor]]:
        """``records[pop][var] [B, T, n]`` of all blocks so far (empty if no step ran)."""
        records: dict[str, dict[str, Tensor]] = defaultdict(dict)
        for (pop, var), parts in self._chunks.items():  # blocks are step-major: [k, B, n] each
            records[pop][var] = torch.cat([part.transpose(0, 1) for part in parts], dim=1)
        for pop, names in self.record.items():
            for var in names:
                if var not in records[pop]:
                    records[pop][var] = torch.zeros(0)
        return dict(records)


def _check_record(record: Mapping[str, Any], neurons: Mapping[str, Any]) -> dict[str, list[str]]:
    out = {}
    for pop, names in record.items():
        if pop not in neurons:
            raise ValueError(f"unknown population {pop!r}; known: {sorted(neurons)}")
        st = neurons[pop]
        names = [names] if isinstance(names, str) else list(names)
        for var in names:
            if var != "spikes" and var not in st._fields:
                raise ValueError(
                    f"cannot record {var!r} of {pop!r}; choose from {['spikes', *st._fields]}"
                )
        out[pop] = names
    return out
