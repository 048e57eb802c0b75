"""Wall-clock timers of a simulation: per phase of the step, and the stores' index rebuilds."""

from __future__ import annotations

import time
from collections.abc import Iterable, MutableMapping

import torch

from ..network import Projection


class PhaseTimer:
    """Adds the seconds of each step phase to ``timers[name]`` when ``enabled`` (synchronising
    a CUDA ``device`` around each phase); a no-op otherwise."""

    def __init__(
        self, timers: MutableMapping[str, float], enabled: bool, device: torch.device
    ) -> None:
        self.timers = timers
        self.enabled = enabled
        self.cuda = device.type == "cuda"
        self.device = device

    def tic(self) -> float | None:
        if not self.enabled:
            return None
        if self.cuda:
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def toc(self, name: str, tic: float | None) -> None:
        if tic is not None:
            if self.cuda:
                torch.cuda.synchronize(self.device)
            self.timers[name] += time.perf_counter() - tic


def index_rebuild_s(projections: Iterable[Projection]) -> float:
    """Seconds the sparse projections' stores have spent rebuilding their cached indices."""
    return sum(p.synapses.index_rebuild_s for p in projections if p.sparse)
