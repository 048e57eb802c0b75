"""Logs of structural changes: counts per rule call and, optionally, every event."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from torch import Tensor

FORMATION = 1
ELIMINATION = -1


class RewiringLog:
    """Counts per rule call for every projection, plus event lists where enabled.

    ``calls(projection)`` gives arrays ``step``, ``t_ms``, ``removed``, ``added``, ``failed``;
    ``events(projection)`` gives ``t_ms``, ``pre``, ``post``, ``kind`` (+1 formation,
    -1 elimination) and ``distance`` (grid units; NaN without grids), in time order.
    """

    def __init__(self) -> None:
        self._calls: dict[str, list[tuple[int, float, int, int, int]]] = defaultdict(list)
        self._events: dict[str, list[tuple[float, Tensor, Tensor, int, Tensor]]] = defaultdict(list)

    def record_call(
        self, projection: str, step: int, t_ms: float, removed: int, added: int, failed: int
    ) -> None:
        self._calls[projection].append((step, t_ms, removed, added, failed))

    def record_events(
        self, projection: str, t_ms: float, pre: Tensor, post: Tensor, kind: int, distance: Tensor
    ) -> None:
        if pre.numel():
            self._events[projection].append(
                (t_ms, pre.detach().cpu(), post.detach().cpu(), kind, distance.detach().cpu())
            )

    @property
    def projections(self) -> list[str]:
        return sorted(set(self._calls) | set(self._events))

    def calls(self, projection: str) -> dict[str, np.ndarray]:
        rows = self._calls.get(projection, [])
        arr = np.array(rows, dtype=np.float64).reshape(-1, 5)
        return {
            "step": arr[:, 0].astype(np.int64),
            "t_ms": arr[:, 1],
            "removed": arr[:, 2].astype(np.int64),
            "added": arr[:, 3].astype(np.int64),
            "failed": arr[:, 4].astype(np.int64),
        }

    def totals(self, projection: str) -> dict[str, int]:
        c = self.calls(projection)
        return {k: int(c[k].sum()) for k in ("removed", "added", "failed")}

    def events(self, projection: str) -> dict[str, np.ndarray]:
        chunks = self._events.get(projection, [])
        if not chunks:
            return {
                "t_ms": np.zeros(0),
                "pre": np.zeros(0, np.int64),
                "post": np.zeros(0, np.int64),
                "kind": np.zeros(0, np.int8),
                "distance": np.zeros(0, np.float32),
            }
        return {
            "t_ms": np.concatenate([np.full(p.numel(), t) for t, p, _, _, _ in chunks]),
            "pre": torch.cat([p for _, p, _, _, _ in chunks]).numpy().astype(np.int64),
            "post": torch.cat([q for _, _, q, _, _ in chunks]).numpy().astype(np.int64),
            "kind": np.concatenate([np.full(p.numel(), k, np.int8) for _, p, _, k, _ in chunks]),
            "distance": torch.cat([d.float() for *_, d in chunks]).numpy(),
        }
