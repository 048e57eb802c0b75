"""Helpers of the training loop: batch iteration, callback hooks, per-epoch metrics."""

from __future__ import annotations

import math

from torch import Tensor

from ..data.batching import Batches, SpikeDataset


def iterate_batches(data, batch_size: int, shuffle: bool, seed: int, epoch: int):
    """The batches of ``epoch``: a :class:`SpikeDataset` is batched (and shuffled from
    ``(seed, epoch)``), a :class:`Batches` is set to ``epoch``, one ``(spikes, labels)`` pair is
    one batch, anything else is iterated as given."""
    if isinstance(data, SpikeDataset):
        data = Batches(data, batch_size, shuffle=shuffle, seed=seed)
    if isinstance(data, Batches):
        data.set_epoch(epoch)
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
