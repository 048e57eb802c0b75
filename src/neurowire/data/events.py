"""Event-based datasets: per-sample event lists binned into spike rasters on access.

Every sample is a list of events ``(time [ms], unit)``. :func:`bin_events` turns one into a
raster as mlGeNN's ``preprocess_tonic_spikes`` does with ``histogram_thresh`` (Knight et al.
2025): bin ``floor(t / dt)``, and a unit spikes in a bin when the bin holds at least
``threshold`` events (so several events of one unit in one bin are one spike). An event at or
after ``steps * dt`` is dropped. :class:`EventDataset` keeps the events (memory scales with
events, not with ``T x n_in``) and bins a sample when it is read, so a ``DataLoader`` with
workers parallelises the binning. :func:`group_folds` makes group-wise (e.g. speaker-wise)
validation folds for :meth:`EventDataset.split_by_group`.

A dataset read from files carries its ``source``; then every check of the events, labels and
groups raises :class:`~neurowire.data.errors.DataFileError` naming the file (and the sample at
fault) instead of a bare ``ValueError`` / ``TypeError``.
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .errors import DataFileError

#: Where a dataset's samples were read from: one file holding them all, one file per sample, or
#: None (built in memory).
Source = str | os.PathLike | Sequence[str | os.PathLike] | None


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def _bin_width(dt: Any) -> float:
    if isinstance(dt, bool) or not isinstance(dt, (int, float, np.integer, np.floating)):
        raise TypeError(f"dt must be a number of ms, got {type(dt).__name__}")
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a finite number of ms > 0, got {dt}")
    return float(dt)


def _as_source(source: Source) -> Path | list[Path] | None:
    if source is None:
        return None
    if isinstance(source, (str, os.PathLike)):
        return Path(source)
    return [Path(p) for p in source]


def _fault(
    problem: str,
    source: Path | list[Path] | None,
    sample: int | None = None,
    kind: type[Exception] = ValueError,
) -> Exception:
    """The error for ``problem`` at ``sample`` (None: the dataset as a whole): ``kind`` naming
    the sample for data built in memory, else a :class:`DataFileError` naming the file."""
    if source is None:
        return kind(problem if sample is None else f"sample {sample}: {problem}")
    if isinstance(source, Path):
        return DataFileError(source, problem, sample)
    if sample is not None:  # one file per sample: the file names the sample
        return DataFileError(source[sample], problem)
    return DataFileError(os.path.commonpath(source) if source else ".", problem)


def _check_events(
    t: np.ndarray,
    u: np.ndarray,
    n_units: int,
    sample: int | None = None,
    source: Path | list[Path] | None = None,
) -> None:
    """Raise on mismatched shapes, wrong dtypes, bad times or out-of-range units (naming the
    sample, and its file when ``source`` is given)."""
    if t.ndim != 1 or t.shape != u.shape:
        raise _fault(
            f"times and units must be 1-D of equal length, got shapes {t.shape} and {u.shape}",
            source,
            sample,
        )
    if not (np.issubdtype(t.dtype, np.floating) or np.issubdtype(t.dtype, np.integer)):
        problem = f"event times must be real numbers [ms], got dtype {t.dtype}"
        raise _fault(problem, source, sample, TypeError)
    if not np.issubdtype(u.dtype, np.integer):
        problem = f"event units must be integers, got dtype {u.dtype}"
        raise _fault(problem, source, sample, TypeError)
    if t.size and np.issubdtype(t.dtype, np.floating) and not np.isfinite(t).all():
        bad = t[~np.isfinite(t)][0]
        raise _fault(f"event times must be finite, got {bad}", source, sample)
    if t.size and t.min() < 0:
        raise _fault(f"event times must be >= 0 ms, got {t.min()}", source, sample)
    if u.size and (u.min() < 0 or u.max() >= n_units):
        bad = u[(u < 0) | (u >= n_units)][0]
        raise _fault(f"event unit {bad} is out of range [0, {n_units})", source, sample)


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
        times_ms: event times [ms] ``[n_events]``, >= 0, any real dtype (cast to float64 before
            any arithmetic, so float16 input loses nothing); events at or after ``steps * dt``
            are dropped.
        units: event unit ids ``[n_events]`` in ``[0, n_units)``.
        n_units: units (columns of the raster).
        dt: bin width [ms]; event ``t`` falls in bin ``floor(t / dt)``.
        steps: bins (rows of the raster).
        threshold: events of one unit needed in one bin for a spike.
    """
    n_units = _positive_int("n_units", n_units)
    steps = _positive_int("steps", steps)
    threshold = _positive_int("threshold", threshold)
    dt = _bin_width(dt)
    t, u = np.asarray(times_ms), np.asarray(units)
    _check_events(t, u, n_units)
    b = np.floor(t.astype(np.float64) / dt)
    keep = b < steps
    flat = b[keep].astype(np.int64) * n_units + u[keep].astype(np.int64)
    raster = np.zeros(steps * n_units, dtype=bool)
    if threshold == 1:
        raster[flat] = True
    else:
        cells, counts = np.unique(flat, return_counts=True)
        raster[cells[counts >= threshold]] = True
    return torch.from_numpy(raster.reshape(steps, n_units))


def _compact_times(t: np.ndarray) -> np.ndarray:
    """Times [ms] as float32 when that is exact (float16 always is), else float64."""
    if t.dtype == np.float32 or t.dtype == np.float16:
        return t.astype(np.float32, copy=False)
    t64 = t.astype(np.float64, copy=False)
    t32 = t64.astype(np.float32)
    return t32 if np.array_equal(t32, t64) else t64


def _unit_dtype(n_in: int) -> type:
    return np.int16 if n_in <= np.iinfo(np.int16).max + 1 else np.int32


def group_folds(groups: Any, n_folds: int | None = None) -> list[list[int]]:
    """Validation folds of whole groups (e.g. speakers), for :meth:`EventDataset.split_by_group`.

    Args:
        groups: group id per sample ``[n]`` (repeats allowed).
        n_folds: None: one fold per distinct group (leave-one-group-out). An int ``k``: the
            sorted distinct groups dealt round-robin into ``k`` folds (group ``j`` goes to fold
            ``j % k``).

    Returns:
        ``k`` lists of group ids, every distinct group in exactly one.
    """
    distinct = [int(g) for g in np.unique(np.asarray(groups))]
    if not distinct:
        raise ValueError("groups is empty: there is nothing to make folds of")
    if n_folds is None:
        return [[g] for g in distinct]
    n_folds = _positive_int("n_folds", n_folds)
    if n_folds > len(distinct):
        raise ValueError(f"n_folds ({n_folds}) exceeds the {len(distinct)} distinct groups")
    return [distinct[k::n_folds] for k in range(n_folds)]


class EventDataset(Dataset):
    """Samples of events with integer labels; ``dataset[i]`` is ``(spikes [T, n_in], label)``.

    ``spikes`` is a bool tensor ``[steps, n_in]`` (:func:`bin_events`) and ``label`` a 0-d int64
    tensor, so a default ``torch.utils.data.DataLoader`` yields ``([B, steps, n_in], [B])``.

    Args:
        times_ms: per sample, event times [ms] ``[n_events]``, >= 0. Kept as float32 where that
            is exact (always for float16 or float32 input), else float64.
        units: per sample, event unit ids ``[n_events]`` in ``[0, n_in)``.
        labels: int per sample, >= 0.
        n_in: input units.
        dt: bin width [ms].
        steps: trial length in bins; None: ``ceil(max_time / dt)`` with ``max_time`` the latest
            event over the whole dataset (at least 1). An event exactly at ``steps * dt`` is then
            dropped, as in mlGeNN. Pass ``steps`` explicitly to give two datasets one length.
        threshold: events of one unit in one bin needed for a spike.
        groups: optional int per sample (speaker, user) for group-wise validation folds.
        classes: optional class names; labels must lie below their number.
        n_classes: number of classes when ``classes`` is None (default ``max(labels) + 1``).
        source: where the samples were read from: one file (path) holding them all, or one
            path per sample. Then a bad event, label or group raises
            :class:`~neurowire.data.errors.DataFileError` naming the file (and the sample in a
            file of many) instead of ``ValueError`` / ``TypeError``.

    Attributes ``n_in``, ``dt``, ``steps``, ``threshold``, ``labels`` (int64 tensor ``[n]``),
    ``groups`` (array ``[n]`` or None), ``classes``, ``n_classes``, ``max_time`` [ms] and
    ``source`` (a ``Path``, a list of them or None).
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
        n_classes: int | None = None,
        source: Source = None,
    ) -> None:
        labels = np.asarray(labels)
        self.n_in = _positive_int("n_in", n_in)
        self.dt = _bin_width(dt)
        self.threshold = _positive_int("threshold", threshold)
        self.source = source = _as_source(source)
        if labels.ndim != 1 or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
            problem = f"labels must be one int per sample, got {labels.dtype} {labels.shape}"
            raise _fault(problem, source, kind=TypeError)
        n = len(labels)
        if len(times_ms) != len(units) or len(units) != n:
            raise _fault(
                f"times ({len(times_ms)}), units ({len(units)}) and labels ({n}) need one entry "
                "per sample",
                source,
            )
        if isinstance(source, list) and len(source) != n:
            raise ValueError(f"source needs one path per sample ({n}), got {len(source)}")
        if labels.size and labels.min() < 0:
            i = int(np.argmax(labels < 0))
            raise _fault(f"label {labels[i]} is out of range: labels must be >= 0", source, i)
        self.labels = torch.as_tensor(labels.astype(np.int64).reshape(-1))
        self.times_ms: list[np.ndarray] = []
        self.units: list[np.ndarray] = []
        latest = 0.0
        unit_dtype = _unit_dtype(self.n_in)
        for i, (t, u) in enumerate(zip(times_ms, units, strict=True)):
            t, u = np.asarray(t), np.asarray(u)
            _check_events(t, u, self.n_in, i, source)
            self.times_ms.append(_compact_times(t))
            self.units.append(u.astype(unit_dtype, copy=False))
            if t.size:
                latest = max(latest, float(t.max()))
        self.max_time = latest
        if steps is None:
            steps = max(1, math.ceil(latest / self.dt))
        self.steps = _positive_int("steps", steps)
        self.groups = None if groups is None else np.asarray(groups).reshape(-1)
        if self.groups is not None and len(self.groups) != n:
            problem = f"groups needs one entry per sample ({n}), got {len(self.groups)}"
            raise _fault(problem, source)
        self.classes = None if classes is None else [str(c) for c in classes]
        if self.classes is not None:
            if n_classes is not None and n_classes != len(self.classes):
                raise ValueError(f"n_classes ({n_classes}) != number of classes names")
            n_classes = len(self.classes)
        elif n_classes is not None:
            n_classes = _positive_int("n_classes", n_classes)
        if n_classes is not None and labels.size and labels.max() >= n_classes:
            i = int(np.argmax(labels >= n_classes))
            problem = f"label {labels[i]} is out of range for {n_classes} classes"
            raise _fault(problem, source, i)
        top = int(labels.max()) if labels.size else -1
        self.n_classes = n_classes if n_classes is not None else top + 1

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        i = operator.index(i)
        spikes = bin_events(
            self.times_ms[i], self.units[i], self.n_in, self.dt, self.steps, self.threshold
        )
        return spikes, self.labels[i]

    def __repr__(self) -> str:
        return (
            f"EventDataset(n={len(self)}, steps={self.steps}, n_in={self.n_in}, dt={self.dt}, "
            f"classes={self.n_classes})"
        )

    def subset(self, index: Any) -> EventDataset:
        """The samples at ``index`` (ints or a bool mask ``[n]``), same ``steps``, ``dt`` and
        classes."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(f"a bool index needs shape ({len(self)},), got {idx.shape}")
            idx = np.flatnonzero(idx)
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"index must hold ints or bools, got dtype {idx.dtype}")
        idx = idx.astype(np.int64).reshape(-1)
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
            None if self.classes is not None else self.n_classes or None,
            None if self.source is None else self._source_of(idx),
        )

    def _source_of(self, idx: np.ndarray) -> Path | list[Path]:
        if isinstance(self.source, Path):
            return self.source
        return [self.source[i] for i in idx]

    def split_by_group(self, held_out: Sequence[int]) -> tuple[EventDataset, EventDataset]:
        """``(train, validation)``: validation holds the samples whose group is in
        ``held_out`` (e.g. one fold of :func:`group_folds`, such as one SHD speaker)."""
        if self.groups is None:
            raise ValueError("this dataset has no groups (speakers/users) to split by")
        held_out = np.asarray(held_out).reshape(-1)
        unknown = np.setdiff1d(held_out, self.groups)
        if unknown.size:
            raise ValueError(
                f"held_out groups {unknown.tolist()} are not in this dataset; its groups are "
                f"{np.unique(self.groups).tolist()}"
            )
        val = np.isin(self.groups, held_out)
        return self.subset(np.flatnonzero(~val)), self.subset(np.flatnonzero(val))
