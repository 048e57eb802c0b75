"""In-memory spike datasets, seeded batches and the built-in frozen-pattern task."""

from __future__ import annotations

import pytest
import torch

from neurowire.data import Batches, SpikeDataset, frozen_poisson_patterns


def dataset(n=10, steps=5, n_in=3):
    gen = torch.Generator().manual_seed(0)
    return SpikeDataset(torch.rand(n, steps, n_in, generator=gen) < 0.3, torch.arange(n) % 2)


def test_dataset_basics():
    ds = dataset()
    assert len(ds) == 10 and ds.steps == 5 and ds.n_in == 3
    x, y = ds[3]
    assert x.shape == (5, 3) and int(y) == 1 and torch.equal(x, ds.spikes[3])
    sub = ds.subset(torch.tensor([1, 4]))
    assert len(sub) == 2 and torch.equal(sub.labels, torch.tensor([1, 0]))
    assert repr(ds) == "SpikeDataset(n=10, steps=5, n_in=3)"
    assert SpikeDataset(torch.ones(2, 3, 1), torch.zeros(2)).spikes.dtype == torch.bool


def test_dataset_rejects_bad_inputs():
    with pytest.raises(ValueError, match="3-D"):
        SpikeDataset(torch.zeros(4, 5, dtype=torch.bool), torch.zeros(4))
    with pytest.raises(ValueError, match="0/1"):
        SpikeDataset(torch.full((2, 3, 1), 0.5), torch.zeros(2))
    with pytest.raises(ValueError, match="one entry per sample"):
        SpikeDataset(torch.zeros(2, 3, 1, dtype=torch.bool), torch.zeros(3))


def test_batches_cover_every_sample_once_per_epoch_and_reshuffle():
    ds = dataset()
    b = Batches(ds, batch_size=4, shuffle=True, seed=1)
    assert len(b) == 3
    orders = []
    for epoch in range(2):
        b.set_epoch(epoch)
        labels = []
        sizes = []
        for x, y in b:
            sizes.append(x.shape[0])
            labels.append(y)
        assert sizes == [4, 4, 2]
        orders.append(b.order(epoch))
        assert sorted(b.order(epoch).tolist()) == list(range(10))
    assert not torch.equal(orders[0], orders[1])


def test_batches_are_a_function_of_seed_and_epoch():
    ds = dataset()
    a, b = Batches(ds, 3, seed=7), Batches(ds, 3, seed=7)
    assert torch.equal(a.order(2), b.order(2))
    assert not torch.equal(a.order(2), Batches(ds, 3, seed=8).order(2))
    # without set_epoch, each iteration is the next epoch
    first = [x for x, _ in a]
    second = [x for x, _ in a]
    b.set_epoch(1)
    assert all(torch.equal(p, q) for p, q in zip(second, [x for x, _ in b], strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(first, second, strict=True))


def test_batches_without_shuffle_and_drop_last():
    ds = dataset()
    b = Batches(ds, 4, shuffle=False, drop_last=True)
    assert len(b) == 2
    ys = torch.cat([y for _, y in b])
    assert torch.equal(ys, ds.labels[:8])
    with pytest.raises(ValueError, match="batch_size"):
        Batches(ds, 0)
    with pytest.raises(TypeError, match="SpikeDataset"):
        Batches([1, 2], 2)


def test_frozen_patterns_are_deterministic_balanced_and_timing_only():
    train, test = frozen_poisson_patterns(n_classes=3, n_inputs=8, steps=50, n_train=30, n_test=12)
    again, _ = frozen_poisson_patterns(n_classes=3, n_inputs=8, steps=50, n_train=30, n_test=12)
    assert torch.equal(train.spikes, again.spikes) and torch.equal(train.labels, again.labels)
    other, _ = frozen_poisson_patterns(n_classes=3, n_inputs=8, steps=50, n_train=30, seed=1)
    assert not torch.equal(train.spikes, other.spikes)
    assert train.spikes.shape == (30, 50, 8) and test.spikes.shape == (12, 50, 8)
    assert torch.bincount(train.labels).tolist() == [10, 10, 10]
    assert train.spikes.dtype == torch.bool and train.labels.dtype == torch.int64
    # without noise the samples are exact class patterns with equal per-channel counts
    clean, _ = frozen_poisson_patterns(
        n_classes=3,
        n_inputs=8,
        steps=50,
        n_train=6,
        n_test=1,
        p_drop=0.0,
        jitter=0,
        noise_hz=0.0,
    )
    counts = clean.spikes.sum(1)  # [n, n_in]
    assert bool((counts == counts[0]).all())
    by_class = {int(y): x for x, y in zip(clean.spikes, clean.labels, strict=True)}
    assert not torch.equal(by_class[0], by_class[1])


def test_frozen_patterns_bad_arguments():
    with pytest.raises(ValueError, match="n_classes"):
        frozen_poisson_patterns(n_classes=0)
    with pytest.raises(ValueError, match="p_drop"):
        frozen_poisson_patterns(p_drop=1.0)
