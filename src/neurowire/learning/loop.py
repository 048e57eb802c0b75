"""The training loop: epochs of batches, callbacks, progress, history and validation.

:class:`TrainingLoop` drives any trainer that offers ``train_step(spikes, labels)`` and
``evaluate_step(spikes, labels)`` (each returning one batch's metrics) over data sets;
:meth:`EProp.fit <neurowire.EProp.fit>` and :meth:`EProp.evaluate <neurowire.EProp.evaluate>`
run one. Callbacks (:class:`Callback`) see every epoch and batch and may stop training.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..data.batching import Batches, epoch_loader
from . import distributed as _dist
from . import l1_selection as _l1

if TYPE_CHECKING:
    from .protocols import Trainer

__all__ = ["Callback", "EpochTotals", "TrainingLoop", "iterate_batches"]


class Callback:
    """Base of the loop's callbacks; override any hook (each does nothing here).

    ``epoch`` counts from 0; ``metrics`` are one batch's (:meth:`on_batch_end`) or the
    epoch's history entry (:meth:`on_epoch_end`). Setting ``trainer.stop_training = True``
    ends training after the current batch or epoch.
    """

    def on_epoch_begin(self, epoch: int, trainer: Any) -> None:
        """Before the first batch of ``epoch``."""

    def on_batch_end(self, batch: int, metrics: dict[str, float], trainer: Any) -> None:
        """After batch ``batch`` (counted from 0 within the epoch)."""

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], trainer: Any) -> None:
        """After ``epoch`` and its validation; ``metrics`` is its history entry."""


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


def _call(callbacks: list[Any], hook: str, *args) -> None:
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


class TrainingLoop:
    """Epochs and batches of one trainer: :meth:`fit` trains, :meth:`evaluate` measures."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer

    def evaluate(self, data, batch_size: int = 64) -> dict[str, float]:
        """The whole of ``data``'s metrics (unshuffled batches of ``batch_size``)."""
        t = self.trainer
        tic = time.perf_counter()
        totals = EpochTotals()
        for spikes, labels in iterate_batches(data, batch_size, shuffle=False, seed=0, epoch=0):
            totals.add(t.evaluate_step(spikes, labels))
        return self._summary(totals, time.perf_counter() - tic)

    def fit(
        self,
        train,
        epochs: int,
        validation=None,
        callbacks: Iterable[Any] | None = None,
        progress: bool = True,
        batch_size: int = 32,
        initial_epoch: int = 0,
    ) -> list[dict[str, float]]:
        """Train for ``epochs`` passes over ``train``; returns one metrics dict per epoch.

        Args:
            train: a :class:`SpikeDataset` (batched by ``batch_size`` and shuffled from the
                trainer's ``seed``), a :class:`Batches` (reshuffled per epoch from its own seed) or
                any re-iterable of ``(spikes, labels)`` batches (used as given).
            epochs: passes over the data.
            validation: evaluated after every epoch (keys prefixed ``val_``), or None.
            callbacks: :class:`Callback` objects, or any others with some
                of ``on_epoch_begin(epoch, trainer)``, ``on_batch_end(batch, metrics,
                trainer)``, ``on_epoch_end(epoch, metrics, trainer)``; setting
                ``trainer.stop_training = True`` ends training. A
                :class:`~neurowire.learning.checkpoint.Checkpointer` saves checkpoints.
            progress: show a tqdm progress bar.
            batch_size: for a plain :class:`SpikeDataset`.
            initial_epoch: epochs already trained (after
                :meth:`Checkpointer.resume <neurowire.learning.checkpoint.Checkpointer.resume>`
                or ``load_state_dict``): training runs epochs ``initial_epoch .. epochs -
                1``, shuffled as an uninterrupted run would be.

        A ``nw.DeepR(l1="auto")`` rule whose L1 is not chosen yet is resolved first by
        :func:`~neurowire.learning.l1_selection.select_l1` on a validation split held out of
        ``train`` (a map-style dataset); the outcome is kept in ``trainer.l1_selection``, and
        training then starts from the unchanged initial state on the whole of ``train``.

        Each epoch's dict has ``epoch``, ``loss``, ``accuracy`` (classification), ``time_s``,
        ``spikes_per_neuron_per_s`` (hidden mean rate [Hz]) and ``trials``.

        Distributed: every rank passes the same ``train`` (not a ``DistributedSampler``: the
        trainer splits each global batch itself); a batch with fewer trials than ranks is
        refused before training where the sizes are known. Only rank 0 shows progress; the
        callbacks run on every rank with the same (global) metrics and must decide alike.
        """
        _check_epochs(epochs, initial_epoch)
        t = self.trainer
        if t.world_size > 1:
            _dist.check_batches(train, batch_size, t.world_size)
        if _l1.unresolved(t):
            _l1.select_l1(t, train, batch_size=batch_size, progress=progress)
        callbacks = list(callbacks or [])
        history = []
        t.stop_training = False
        for epoch in range(initial_epoch, epochs):
            _call(callbacks, "on_epoch_begin", epoch, t)
            tic = time.perf_counter()
            totals = self._epoch(train, epoch, epochs, callbacks, progress, batch_size)
            metrics = {"epoch": epoch + 1}
            metrics.update(self._summary(totals, time.perf_counter() - tic))
            if validation is not None:
                val = self.evaluate(validation, batch_size=batch_size)
                metrics.update({f"val_{k}": v for k, v in val.items()})
            history.append(metrics)
            _call(callbacks, "on_epoch_end", epoch, metrics, t)
            if t.stop_training:
                break
        return history

    def _summary(self, totals: EpochTotals, seconds: float) -> dict[str, float]:
        t = self.trainer
        return totals.summary(t.network.hidden.n, t.net.dt, seconds)

    def _epoch(self, train, epoch, epochs, callbacks, progress, batch_size) -> EpochTotals:
        from tqdm.auto import tqdm

        t = self.trainer
        totals = EpochTotals()
        batches = iterate_batches(train, batch_size, shuffle=True, seed=t.seed, epoch=epoch)
        total = len(batches) if hasattr(batches, "__len__") else None
        with tqdm(
            batches,
            total=total,
            disable=not progress or t.rank != 0,
            desc=f"epoch {epoch + 1}/{epochs}",
        ) as bar:
            for i, (spikes, labels) in enumerate(bar):
                m = t.train_step(spikes, labels)
                totals.add(m)
                bar.set_postfix(totals.postfix())
                _call(callbacks, "on_batch_end", i, m, t)
                if t.stop_training:
                    break
        return totals


def _check_epochs(epochs: Any, initial_epoch: Any) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
    if (
        isinstance(initial_epoch, bool)
        or not isinstance(initial_epoch, int)
        or not (0 <= initial_epoch <= epochs)
    ):
        raise ValueError(f"initial_epoch must be an int in [0, epochs], got {initial_epoch!r}")
