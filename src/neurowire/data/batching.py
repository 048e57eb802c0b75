"""In-memory spike datasets and seeded batch iteration.

A dataset holds ``spikes [n, T, n_in]`` (bool) and one target per sample: an integer label
(classification) or a ``[T, n_out]`` float trace (regression). Batches are
``(spikes [B, T, n_in], labels [B])`` (or targets ``[B, T, n_out]``), as DESIGN.md's trainers take.

Sample format of every neurowire dataset (a ``torch.utils.data.Dataset``): ``dataset[i]`` is
``(spikes, label)`` with ``spikes`` bool ``[T, n_in]`` and ``label`` an int64 0-d tensor, so
that a ``torch.utils.data.DataLoader`` (any sampler, workers, a seeded ``generator``) stacks
them into the batches the trainers take. :class:`Batches` is such a loader, reshuffled per epoch
from ``(seed, epoch)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator that shuffles epoch ``epoch`` of a run seeded ``seed``."""
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))


def epoch_loader(
    dataset: Dataset, batch_size: int, shuffle: bool, seed: int, epoch: int, drop_last=False
) -> DataLoader:
    """A ``DataLoader`` over ``dataset`` whose order depends only on ``(seed, epoch)``."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        generator=epoch_generator(seed, epoch) if shuffle else None,
    )


class SpikeDataset(Dataset):
    """Spike trains and their labels, kept in memory.

    Args:
        spikes: bool (or 0/1) tensor ``[n, T, n_in]``.
        labels: int ``[n]`` class labels or float ``[n, T, n_out]`` targets.

    ``dataset[i]`` gives ``(spikes [T, n_in], label)``; ``dataset.subset(idx)`` a new dataset.
    """

    @property
    def n_classes(self) -> int:
        """``max(label) + 1`` for integer labels."""
        return int(self.labels.max()) + 1 if self.labels.numel() else 0

    def __init__(self, spikes: Tensor, labels: Tensor) -> None:
        spikes = torch.as_tensor(spikes)
        labels = torch.as_tensor(labels)
        if spikes.dim() != 3:
            raise ValueError(f"spikes must be [n, T, n_in] (3-D), got shape {tuple(spikes.shape)}")
        if spikes.is_floating_point() or spikes.is_complex():
            if not bool(((spikes == 0) | (spikes == 1)).all()):
                raise ValueError("spikes must be 0/1 (or bool); got other values or NaN")
        elif spikes.dtype != torch.bool and bool(((spikes != 0) & (spikes != 1)).any()):
            raise ValueError("spikes must be 0/1 (or bool); got other values")
        if labels.dim() == 0 or labels.shape[0] != spikes.shape[0]:
            raise ValueError(
                f"labels must have one entry per sample ({spikes.shape[0]}), got shape "
                f"{tuple(labels.shape)}"
            )
        self.spikes = spikes.to(torch.bool)
        self.labels = labels

    def __len__(self) -> int:
        return self.spikes.shape[0]

    def __getitem__(self, i):
        return self.spikes[i], self.labels[i]

    def __repr__(self) -> str:
        n, steps, n_in = self.spikes.shape
        return f"SpikeDataset(n={n}, steps={steps}, n_in={n_in})"

    @property
    def steps(self) -> int:
        return self.spikes.shape[1]

    @property
    def n_in(self) -> int:
        return self.spikes.shape[2]

    def subset(self, index: Tensor) -> SpikeDataset:
        index = torch.as_tensor(index)
        return SpikeDataset(self.spikes[index], self.labels[index])

    def batches(
        self, batch_size: int, shuffle: bool = False, seed: int = 0, drop_last: bool = False
    ) -> Batches:
        return Batches(self, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)


class Batches:
    """Re-iterable batches of a :class:`SpikeDataset`, reshuffled every epoch from a seed.

    The order of epoch ``e`` depends only on ``(seed, e)``. A trainer calls
    :meth:`set_epoch` before each epoch; without it, each iteration starts the next epoch.

    Args:
        dataset: the samples.
        batch_size: samples per batch (the last batch may be smaller unless ``drop_last``).
        shuffle: draw a new permutation every epoch.
        seed: seeds the permutations.
        drop_last: skip a final incomplete batch.
    """

    def __init__(
        self,
        dataset: SpikeDataset,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if not isinstance(dataset, Dataset) or not hasattr(dataset, "__len__"):
            raise TypeError(
                f"dataset must be a torch Dataset with a length (e.g. a SpikeDataset), got "
                f"{type(dataset).__name__}"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        self.dataset, self.batch_size = dataset, batch_size
        self.shuffle, self.seed, self.drop_last = shuffle, int(seed), drop_last
        self.epoch = 0
        self._epoch_set = False

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._epoch_set = int(epoch), True

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch: int) -> Tensor:
        """Sample order of ``epoch`` (the order the epoch's ``DataLoader`` draws)."""
        n = len(self.dataset)
        if not self.shuffle:
            return torch.arange(n)
        return torch.randperm(n, generator=epoch_generator(self.seed, epoch))

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        epoch = self.epoch
        if not self._epoch_set:
            self.epoch += 1
        self._epoch_set = False
        return iter(
            epoch_loader(
                self.dataset, self.batch_size, self.shuffle, self.seed, epoch, self.drop_last
            )
        )

    def __repr__(self) -> str:
        return (
            f"Batches({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"seed={self.seed})"
        )
