"""Helpers of the training loop: batch iteration, callback hooks, per-epoch metrics."""

from __future__ import annotations

import math

from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..data.batching import Batches, epoch_loader


def iterate_batches(data, batch_size: int, shuffle: bool, seed: int, epoch: int):
    """The batches of ``epoch``: a map-style ``Dataset`` (a :class:`SpikeDataset`, an SHD
    reader's dataset, ...) goes through a ``DataLoader`` shuffled from ``(seed, epoch)``, a
    :class:`Batches` is set to ``epoch``, a ``DataLoader`` whose sampler has ``set_epoch`` (a
    ``DistributedSampler``) is told the epoch, one ``(spikes, labels)`` pair is one batch,
    anything else is iterated as given."""
    if isinstance(data, Batches):
        data.set_epoch(epoch)
    elif isinstance(data, DataLoader):
        if hasattr(data.sampler, "set_epoch"):
            data.sampler.set_epoch(epoch)
    elif isinstance(data, Dataset) and hasattr(data, "__len__"):
        data = epoch_loader(data, batch_size, shuffle, seed, epoch)
    elif isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], Tensor):
        data = [data]
    return data


def call_hooks(callbacks, hook: str, *args) -> None:
    """Call ``cb.<hook>(*args)`` on every callback that defines it."""
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(*args)


class EpochTotals:
    """Running sums of batch metrics and the per-epoch summary."""

    def __init__(self) -> None:
        self.loss = 0.0
        self.correct = 0
        self.trials = 0
        self.trial_steps = 0
        self.spikes = 0.0
        self.classification = False

    def add(self, m: dict[str, float]) -> None:
        self.loss += m["loss"] * m["trials"] * m["steps"]
        self.trials += m["trials"]
        self.trial_steps += m["trials"] * m["steps"]
        self.spikes += m["spikes"]
        if "correct" in m:
            self.classification = True
            self.correct += m["correct"]

    def postfix(self) -> dict[str, str]:
        out = {"loss": f"{self.loss / max(self.trial_steps, 1):.4f}"}
        if self.classification:
            out["acc"] = f"{self.correct / max(self.trials, 1):.3f}"
        return out

    def summary(self, n_hidden: int, dt: float, seconds: float) -> dict[str, float]:
        out = {
            "loss": self.loss / max(self.trial_steps, 1),
            "trials": self.trials,
            "time_s": seconds,
            "spikes_per_neuron_per_s": self.spikes
            / max(n_hidden * self.trial_steps * dt / 1000.0, math.ulp(1.0)),
        }
        if self.classification:
            out["accuracy"] = self.correct / max(self.trials, 1)
        return out
