"""The built-in dataset: MNIST-1D generated offline, level-crossing encoder."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from neurowire.data import SpikeDataset
from neurowire.data.encoders import level_crossing
from neurowire.data.mnist1d import mnist1d


def test_level_crossing_spikes_where_the_signal_crosses_each_level():
    # levels -1, 0, 1; signal 0.5 -> 1.5 -> -1.5 sampled at 3 points, 2 steps per point
    s = level_crossing(
        np.array([[0.5, 1.5, -1.5]]), n_levels=3, steps_per_point=2, low=-1.0, high=1.0
    )
    assert s.shape == (1, 5, 6) and s.dtype == torch.bool
    fine = [0.5, 1.0, 1.5, 0.0, -1.5]  # linear interpolation
    up, down = s[0, :, :3], s[0, :, 3:]
    assert up.nonzero().tolist() == [[2, 2]]  # 1.0 -> 1.5 crosses level 1 (s(t-1) <= 1 < s(t))
    assert sorted(down.nonzero().tolist()) == [[3, 1], [3, 2], [4, 0]]
    assert not s[0, 0].any() and len(fine) == s.shape[1]


def test_level_crossing_rejects_bad_input():
    with pytest.raises(ValueError, match="P >= 2"):
        level_crossing(np.zeros((3, 1)))
    with pytest.raises(ValueError, match="NaN"):
        level_crossing(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="n_levels"):
        level_crossing(np.zeros((1, 4)), n_levels=0)
    with pytest.raises(ValueError, match="high > low"):
        level_crossing(np.zeros((1, 4)), low=1.0, high=1.0)


def test_mnist1d_is_offline_deterministic_balanced_and_leaves_global_rngs_alone():
    np_state, py_state = np.random.get_state()[1].copy(), random.getstate()  # noqa: NPY002
    train, test = mnist1d()
    assert np.array_equal(np.random.get_state()[1], np_state)  # noqa: NPY002
    assert random.getstate() == py_state
    assert isinstance(train, SpikeDataset) and (len(train), len(test)) == (4000, 1000)
    assert train.spikes.shape[1:] == (157, 256) and train.n_classes == 10
    counts = torch.bincount(train.labels, minlength=10)
    assert counts.min() > 300  # 500 per class overall, shuffled before the split
    again, _ = mnist1d()
    assert torch.equal(again.spikes, train.spikes) and torch.equal(again.labels, train.labels)
    x, y = train[0]
    assert x.shape == (157, 256) and x.dtype == torch.bool and y.dtype == torch.int64
    assert torch.equal(x, train.spikes[0]) and int(y) == int(train.labels[0])
    assert 100 < train.spikes[:100].sum((1, 2)).float().mean() < 2000


def test_mnist1d_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n_samples"):
        mnist1d(n_samples=3)
