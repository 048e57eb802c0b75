"""Event-based datasets: per-sample event lists binned into spike rasters on access.

Every sample is a list of events ``(time [ms], unit)``. :func:`bin_events` turns one into a
raster as mlGeNN's ``preprocess_tonic_spikes`` does for Knight et al. 2025: bin ``floor(t / dt)``,
and a unit spikes in a bin when the bin holds at least ``threshold`` events (so several events of
one unit in one bin are one spike). :class:`EventDataset` keeps the events (memory scales with
events, not with ``T x n_in``) and bins a sample when it is read, so a ``DataLoader`` with
workers parallelises the binning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset


def bin_events(
    times_ms: np.ndarray,
    units: np.ndarray,
    n_units: int,
    dt: float,
    steps: int,
    threshold: int = 1,
) -> Tensor:
    """Spike raster bool ``[steps, n_units]`` of one sample's events.

    Args:
        times_ms: event times [ms], any float dtype (float16 is cast to float64 before any
            arithmetic); events at or after ``steps * dt`` are dropped.
        units: event unit ids in ``[0, n_units)``.
        dt: bin width [ms].
        threshold: events needed in a bin for a spike.
    """
    t = np.asarray(times_ms).astype(np.float64)
    u = np.asarray(units).astype(np.int64)
    if t.shape != u.shape or t.ndim != 1:
        raise ValueError(f"times and units must be 1-D of equal length, got {t.shape}, {u.shape}")
    if t.size and (not np.isfinite(t).all() or t.min() < 0):
        raise ValueError("event times must be finite and >= 0 ms")
    if u.size and (u.min() < 0 or u.max() >= n_units):
        bad = u[(u < 0) | (u >= n_units)][0]
        raise ValueError(f"event unit {bad} is out of range [0, {n_units})")
    b = np.floor(t / dt).astype(np.int64)
    keep = b < steps
    counts = np.bincount(b[keep] * n_units + u[keep], minlength=steps * n_units)
    return torch.from_numpy(counts.reshape(steps, n_units) >= threshold)


class EventDataset(Dataset):
    """Samples of events with integer labels; ``dataset[i]`` is ``(spikes [T, n_in], label)``.

    Args:
        times_ms: per sample, event times [ms].
        units: per sample, event unit ids.
        labels: int per sample.
        n_in: input units.
        dt: bin width [ms].
        steps: trial length in bins; None: ``ceil(latest event time over the dataset / dt)``.
        threshold: events per bin for a spike.
        groups: optional int per sample (speaker, user) for group-wise validation folds.
        classes: optional class names.
    """

    def __init__(
        self,
        times_ms: Sequence[np.ndarray],
        units: Sequence[np.ndarray],
        labels: Any,
        n_in: int,
        dt: float = 1.0,
        steps: int | None = None,
        threshold: int = 1,
        groups: Any = None,
        classes: Sequence[str] | None = None,
    ) -> None:
        if len(times_ms) != len(units) or len(units) != len(labels):
            raise ValueError(
                f"times ({len(times_ms)}), units ({len(units)}) and labels ({len(labels)}) "
                "need one entry per sample"
            )
        if not dt > 0:
            raise ValueError(f"dt must be > 0 ms, got {dt}")
        self.times_ms = [np.asarray(t).astype(np.float64) for t in times_ms]
        self.units = [np.asarray(u).astype(np.int64) for u in units]
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        self.n_in, self.dt, self.threshold = int(n_in), float(dt), int(threshold)
        if steps is None:
            latest = max((float(t.max()) for t in self.times_ms if t.size), default=0.0)
            steps = max(1, math.ceil(latest / self.dt))
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be None or an int >= 1, got {steps!r}")
        self.steps = steps
        self.groups = None if groups is None else np.asarray(groups)
        self.classes = list(classes) if classes is not None else None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        spikes = bin_events(
            self.times_ms[i], self.units[i], self.n_in, self.dt, self.steps, self.threshold
        )
        return spikes, self.labels[i]

    def __repr__(self) -> str:
        return (
            f"EventDataset(n={len(self)}, steps={self.steps}, n_in={self.n_in}, dt={self.dt}, "
            f"classes={self.n_classes})"
        )

    @property
    def n_classes(self) -> int:
        if self.classes is not None:
            return len(self.classes)
        return int(self.labels.max()) + 1 if len(self) else 0

    def subset(self, index: Any) -> EventDataset:
        """The samples at ``index`` (same ``steps``, ``dt`` and classes)."""
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        return EventDataset(
            [self.times_ms[i] for i in idx],
            [self.units[i] for i in idx],
            self.labels.numpy()[idx],
            self.n_in,
            self.dt,
            self.steps,
            self.threshold,
            None if self.groups is None else self.groups[idx],
            self.classes,
        )

    def split_by_group(self, held_out: Sequence[int]) -> tuple[EventDataset, EventDataset]:
        """``(train, validation)``: validation holds the samples whose group is in
        ``held_out`` (e.g. one speaker of SHD)."""
        if self.groups is None:
            raise ValueError("this dataset has no groups (speakers/users) to split by")
        val = np.isin(self.groups, np.asarray(held_out))
        return self.subset(np.flatnonzero(~val)), self.subset(np.flatnonzero(val))
