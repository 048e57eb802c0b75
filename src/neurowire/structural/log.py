"""Logs of structural changes: counts per rule call and, optionally, every event."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

FORMATION = 1
ELIMINATION = -1
_FIELDS = ("t_ms", "pre", "post", "kind", "distance")
_DTYPES = (np.float64, np.int64, np.int64, np.int8, np.float32)


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


@dataclass(frozen=True)
class LogMark:
    """A position in a :class:`RewiringLog` (see :meth:`RewiringLog.mark`): per projection the
    number of calls and of events recorded so far."""

    calls: dict[str, int]
    events: dict[str, int]
    epoch: int


class RewiringLog:
    """Counts per rule call for every projection, plus event lists where enabled.

    ``calls(projection)`` gives arrays ``step``, ``t_ms``, ``removed``, ``added``, ``failed``;
    ``events(projection)`` gives ``t_ms``, ``pre``, ``post``, ``kind`` (+1 formation,
    -1 elimination) and ``distance`` (grid units; NaN without grids), in time order.

    :meth:`mark` and :meth:`rollback` undo everything recorded since a mark (what
    :func:`~neurowire.structural.transaction.rule_transaction` does when a rule raises).
    """

    def __init__(self) -> None:
        self._calls: dict[str, list[tuple[int, float, int, int, int]]] = defaultdict(list)
        self._call_arrays: dict[str, list[np.ndarray]] = defaultdict(list)
        self._events: dict[str, list[tuple[np.ndarray, ...]]] = defaultdict(list)
        # running counts per projection, so that mark() costs O(projections)
        self._n_calls: dict[str, int] = defaultdict(int)
        self._n_events: dict[str, int] = defaultdict(int)
        self._epoch = 0  # bumped by load_state_dict: older marks no longer apply

    def record_call(
        self, projection: str, step: int, t_ms: float, removed: int, added: int, failed: int
    ) -> None:
        if self._calls[projection] and len(self._calls[projection]) >= 4096:
            self._flush(projection)
        self._calls[projection].append((step, t_ms, removed, added, failed))
        self._n_calls[projection] += 1

    def _flush(self, projection: str) -> None:
        rows = self._calls.pop(projection, [])
        if rows:
            self._call_arrays[projection].append(np.array(rows, dtype=np.float64))

    def record_calls(
        self, projection: str, step: Any, t_ms: Any, removed: Any, added: Any, failed: Any
    ) -> None:
        """Append many calls at once (arrays of equal length)."""
        self._flush(projection)  # pending single calls came first: keep the order
        rows = np.stack(
            [np.asarray(x, dtype=np.float64) for x in (step, t_ms, removed, added, failed)], 1
        )
        self._call_arrays[projection].append(rows)
        self._n_calls[projection] += len(rows)

    def record_events(
        self, projection: str, t_ms: Any, pre: Any, post: Any, kind: Any, distance: Any
    ) -> None:
        """Append events; ``t_ms`` and ``kind`` may be scalars or per-event arrays."""
        pre = _numpy(pre).astype(np.int64).reshape(-1)
        if pre.size == 0:
            return
        chunk = []
        for value, dtype in zip((t_ms, pre, post, kind, distance), _DTYPES, strict=True):
            arr = _numpy(value)
            if arr.shape != pre.shape:
                arr = np.broadcast_to(arr, pre.shape)
            chunk.append(np.array(arr, dtype=dtype))
        chunk = tuple(chunk)
        self._events[projection].append(chunk)
        self._n_events[projection] += pre.size

    # ------------------------------------------------------------------ undo
    def mark(self) -> LogMark:
        """The current position, for :meth:`rollback` (cheap: O(projections))."""
        return LogMark(dict(self._n_calls), dict(self._n_events), self._epoch)

    def rollback(self, mark: LogMark) -> None:
        """Drop every call and event recorded after ``mark`` (totals follow, as they are sums
        over the calls); projections first seen after it disappear. Raises ``ValueError`` for
        a mark taken before the last :meth:`load_state_dict`."""
        if mark.epoch != self._epoch:
            raise ValueError("this log mark predates a load_state_dict(); it cannot be rolled back")
        for name in set(self._n_calls) | set(self._calls) | set(self._call_arrays):
            if name not in mark.calls:
                for table in (self._calls, self._call_arrays, self._n_calls):
                    table.pop(name, None)
            elif self._n_calls.get(name, 0) != mark.calls[name]:
                self._flush(name)
                rows = np.concatenate(self._call_arrays.pop(name, []) or [np.zeros((0, 5))])
                self._call_arrays[name] = [rows[: mark.calls[name]]]
                self._n_calls[name] = mark.calls[name]
        for name in set(self._n_events) | set(self._events):
            if name not in mark.events:
                self._events.pop(name, None)
                self._n_events.pop(name, None)
            elif self._n_events.get(name, 0) != mark.events[name]:
                keep, kept, total = mark.events[name], [], 0
                for chunk in self._events.get(name, []):
                    if total + chunk[0].size > keep:
                        if keep > total:
                            kept.append(tuple(a[: keep - total] for a in chunk))
                        break
                    kept.append(chunk)
                    total += chunk[0].size
                self._events[name] = kept
                self._n_events[name] = keep

    def state_dict(self) -> dict[str, Any]:
        """Every call and event as tensors (for checkpoints)."""
        calls = {}
        for name in self.projections:
            c = self.calls(name)
            calls[name] = torch.from_numpy(np.stack([c[k].astype(np.float64) for k in c], 1))
        events = {
            name: {
                f: torch.from_numpy(np.ascontiguousarray(v)) for f, v in self.events(name).items()
            }
            for name in self._events
        }
        return {"calls": calls, "events": events}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace the log's contents with a :meth:`state_dict`."""
        self._calls.clear()
        self._call_arrays.clear()
        self._events.clear()
        self._n_calls.clear()
        self._n_events.clear()
        self._epoch += 1
        for name, rows in state["calls"].items():
            rows = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
            self._call_arrays[name].append(rows)
            self._n_calls[name] += len(rows)
        for name, ev in state["events"].items():
            chunk = tuple(np.asarray(ev[f], dtype=d) for f, d in zip(_FIELDS, _DTYPES, strict=True))
            self._events[name].append(chunk)
            self._n_events[name] += chunk[0].size

    @property
    def projections(self) -> list[str]:
        return sorted(set(self._calls) | set(self._call_arrays) | set(self._events))

    def calls(self, projection: str) -> dict[str, np.ndarray]:
        self._flush(projection)
        parts = self._call_arrays.get(projection, [])
        arr = np.concatenate(parts) if parts else np.zeros((0, 5))
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
            return {f: np.zeros(0, dtype) for f, dtype in zip(_FIELDS, _DTYPES, strict=True)}
        return {f: np.concatenate([c[k] for c in chunks]) for k, f in enumerate(_FIELDS)}
