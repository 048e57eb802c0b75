"""bin_events, EventDataset and group folds: binning rules, storage, validation, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from neurowire.data.events import EventDataset, bin_events, group_folds


def test_bin_events_floors_at_bin_edges_and_drops_events_at_the_end():
    t = np.array([0.0, 0.49, 0.5, 1.0, 1.49, 1.5])
    s = bin_events(t, np.arange(6), n_units=6, dt=0.5, steps=3)
    assert s.shape == (3, 6) and s.dtype == torch.bool
    assert s.nonzero().tolist() == [[0, 0], [0, 1], [1, 2], [2, 3], [2, 4]]  # 1.5 ms = end


def test_bin_events_threshold_counts_events_of_one_unit_in_one_bin():
    t = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 1.1, 1.2])
    u = np.array([0, 0, 0, 1, 1, 0, 1])
    assert bin_events(t, u, 2, 1.0, 2).sum() == 4  # duplicates merge into one spike
    assert bin_events(t, u, 2, 1.0, 2, threshold=2).nonzero().tolist() == [[0, 0], [0, 1]]
    assert bin_events(t, u, 2, 1.0, 2, threshold=3).nonzero().tolist() == [[0, 0]]
    empty = bin_events(np.zeros(0), np.zeros(0, dtype=np.int64), 2, 1.0, 4)
    assert empty.shape == (4, 2) and not empty.any()


def test_bin_events_rejects_bad_arguments():
    t, u = np.array([0.5]), np.array([0])
    with pytest.raises(ValueError, match="threshold must be an int >= 1"):
        bin_events(t, u, 1, 1.0, 2, threshold=0)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        bin_events(t, u, 1, 1.0, 0)
    with pytest.raises(ValueError, match="dt must be a finite number of ms > 0"):
        bin_events(t, u, 1, 0.0, 2)
    with pytest.raises(TypeError, match="units must be integers"):
        bin_events(t, np.array([0.0]), 1, 1.0, 2)
    with pytest.raises(ValueError, match="finite"):
        bin_events(np.array([np.nan]), u, 1, 1.0, 2)
    with pytest.raises(ValueError, match="equal length"):
        bin_events(np.array([0.5, 1.0]), u, 1, 1.0, 2)
    with pytest.raises(ValueError, match=r"unit 700 is out of range \[0, 700\)"):
        bin_events(t, np.array([700], dtype=np.uint16), 700, 1.0, 2)


def _dataset(**kw):
    times = [np.array([0.2, 0.7, 2.5]), np.array([1.0, 3.9]), np.array([], dtype=np.float64)]
    units = [np.array([0, 0, 3]), np.array([1, 2]), np.array([], dtype=np.int64)]
    kw.setdefault("groups", [7, 8, 7])
    return EventDataset(times, units, [0, 2, 1], n_in=4, **kw)


def test_event_dataset_default_steps_items_and_dataloader_batches():
    ds = _dataset()
    assert ds.steps == 4 and ds.max_time == 3.9 and ds.n_classes == 3 and len(ds) == 3
    spikes, label = ds[np.int64(0)]
    assert spikes.nonzero().tolist() == [[0, 0], [2, 3]]
    assert label.dtype == torch.int64 and label.dim() == 0 and int(label) == 0
    x, y = next(iter(DataLoader(ds, batch_size=3)))
    assert x.shape == (3, 4, 4) and x.dtype == torch.bool
    assert [b.nonzero().tolist() for b in x] == [[[0, 0], [2, 3]], [[1, 1], [3, 2]], []]
    assert y.shape == (3,) and y.dtype == torch.int64 and y.tolist() == [0, 2, 1]
    assert repr(ds) == "EventDataset(n=3, steps=4, n_in=4, dt=1.0, classes=3)"


def test_default_steps_drop_an_event_exactly_at_the_end_as_documented():
    ds = EventDataset([np.array([0.0, 3.0])], [np.array([0, 1])], [0], n_in=2)
    assert ds.steps == 3 and ds[0][0].nonzero().tolist() == [[0, 0]]


def test_event_dataset_stores_compact_exact_dtypes():
    t16 = np.array([0.25, 1395.0], dtype=np.float16)
    inexact = np.array([0.1, 2.0])  # 0.1 is not a float32
    ds = EventDataset([t16, inexact], [np.array([0, 1]), np.array([1, 0])], [0, 0], n_in=2)
    assert ds.times_ms[0].dtype == np.float32 and ds.times_ms[1].dtype == np.float64
    assert ds.units[0].dtype == np.int16
    assert EventDataset([[1.0]], [[0]], [0], n_in=40_000).units[0].dtype == np.int32


def test_event_dataset_names_the_bad_sample():
    with pytest.raises(ValueError, match=r"sample 1: event unit 4 is out of range \[0, 4\)"):
        EventDataset([[0.0], [1.0]], [[0], [4]], [0, 0], n_in=4)
    with pytest.raises(ValueError, match="sample 0: event times must be >= 0 ms"):
        EventDataset([[-1.0]], [[0]], [0], n_in=4)
    with pytest.raises(ValueError, match="labels must be >= 0"):
        EventDataset([[0.0]], [[0]], [-1], n_in=4)
    with pytest.raises(ValueError, match="label 3 is out of range for 2 classes"):
        EventDataset([[0.0]], [[0]], [3], n_in=4, classes=["a", "b"])
    with pytest.raises(ValueError, match="groups needs one entry per sample"):
        EventDataset([[0.0]], [[0]], [0], n_in=4, groups=[1, 2])


def test_subset_takes_ints_or_a_mask_and_keeps_steps_and_classes():
    ds = _dataset(steps=10, classes=["a", "b", "c"])
    sub = ds.subset([2, 0])
    assert sub.labels.tolist() == [1, 0] and sub.groups.tolist() == [7, 7]
    assert sub.steps == 10 and sub.classes == ["a", "b", "c"] and sub.n_classes == 3
    masked = ds.subset(np.array([False, True, False]))
    assert masked.labels.tolist() == [2] and len(masked) == 1
    assert _dataset(n_classes=5).subset([0]).n_classes == 5
    with pytest.raises(ValueError, match="bool index needs shape"):
        ds.subset(np.array([True]))


def test_group_folds_and_split_by_group_partition_the_samples():
    assert group_folds([3, 1, 3, 2]) == [[1], [2], [3]]
    assert group_folds([5, 1, 4, 2, 3], n_folds=2) == [[1, 3, 5], [2, 4]]
    with pytest.raises(ValueError, match="exceeds the 3 distinct groups"):
        group_folds([1, 2, 3], n_folds=4)
    ds = _dataset()
    train, val = ds.split_by_group([7])
    assert train.labels.tolist() == [2] and val.labels.tolist() == [0, 1]
    assert train.steps == val.steps == ds.steps
    with pytest.raises(ValueError, match=r"held_out groups \[9\] are not in this dataset"):
        ds.split_by_group([9])
