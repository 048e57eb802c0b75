"""Choosing DEEP R's L1 strength on held-out training data.

The right L1 depends on the task, the weight scale, the learning rate and the batch size, so it
is chosen, not guessed: :func:`select_l1` holds out a stratified, seeded validation split of the
*training* set, trains the trainer from its current state for a few epochs at every value of a
log grid, keeps the value with the best validation accuracy (ties: the lower validation loss,
then the smaller L1) and puts the trainer back exactly as it was, with that value set on every
``nw.DeepR(l1="auto")`` rule. Nothing but the training set is ever read.

:meth:`EProp.fit <neurowire.EProp.fit>` calls it by itself when a rule still has ``l1="auto"``.
:func:`sweep` is the part shared with :func:`neurowire.nn.select_l1`, which trains a model the
user builds and trains.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

if TYPE_CHECKING:
    from .protocols import Trainer

#: The default grid: half-decade steps from 1e-4 to 0.1 per trial. On the built-in task the
#: best values lay at 1e-3 and below, and 1.0 trained to chance; the paper's cross-validated
#: values (0.01-0.5, on DVS Gesture and N-MNIST) are reached with ``grid=``.
L1_GRID: tuple[float, ...] = (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1)
#: Training epochs per grid value.
SWEEP_EPOCHS = 3
#: Share of the training set held out for validation.
VALIDATION_FRACTION = 0.2


@dataclass
class L1Selection:
    """The outcome of :func:`select_l1`.

    Attributes:
        grid: the L1 values tried (per trial, see :class:`~neurowire.DeepR`).
        val_accuracy: final-epoch validation accuracy per value, in grid order.
        val_loss: final-epoch validation loss per value.
        curves: validation accuracy after every sweep epoch, one list per value.
        chosen: the selected L1.
        epochs, validation_fraction, seed, n_train, n_validation: how it was run.
        class_counts: validation samples per class.
        wall_s: seconds the sweep took.
    """

    grid: list[float]
    val_accuracy: list[float]
    val_loss: list[float]
    curves: list[list[float]]
    chosen: float
    epochs: int
    validation_fraction: float
    seed: int
    n_train: int
    n_validation: int
    class_counts: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (for ``summary.json`` and checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> L1Selection:
        try:
            return cls(**d)
        except TypeError as err:
            raise ValueError(f"not an L1 selection record ({err})") from None


def dataset_labels(data: Any) -> np.ndarray:
    """int64 ``[n]``: one class label per sample of a map-style dataset (its ``labels``
    attribute when it has one, else read sample by sample)."""
    labels = getattr(data, "labels", None)
    if labels is None:
        labels = [int(data[i][1]) for i in range(len(data))]
    labels = np.asarray(torch.as_tensor(labels).cpu()).reshape(-1)
    if labels.size != len(data) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"L1 selection needs one integer class label per sample, got {labels.dtype} "
            f"{labels.shape} for {len(data)} samples"
        )
    return labels.astype(np.int64)


def stratified_split(
    labels: Sequence[int] | np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(train_index, validation_index)``, each sorted: ``round(fraction * n_c)`` samples of
    every class ``c`` (at least one, and at least one left for training, where the class has two
    or more) go to validation, drawn from a generator seeded ``seed``."""
    if not (isinstance(fraction, float | int) and 0.0 < fraction < 1.0):
        raise ValueError(f"validation fraction must lie in (0, 1), got {fraction!r}")
    labels = np.asarray(labels).reshape(-1)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    val = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = int(round(fraction * members.size))
        k = min(max(k, 1), members.size - 1) if members.size >= 2 else 0
        val.append(rng.choice(members, size=k, replace=False))
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    keep = np.ones(labels.size, dtype=bool)
    keep[val_idx] = False
    return np.flatnonzero(keep), val_idx.astype(np.int64)


def holdout(data: Any, fraction: float, seed: int) -> tuple[Any, Any]:
    """``(train_part, validation_part)`` of a map-style dataset by :func:`stratified_split`
    (the dataset's own ``subset`` where it has one, else ``torch.utils.data.Subset``)."""
    if not isinstance(data, Dataset) and not hasattr(data, "subset"):
        raise TypeError(
            "L1 selection needs a map-style dataset (SpikeDataset, an event dataset, ...), "
            f"got {type(data).__name__}"
        )
    fit_idx, val_idx = stratified_split(dataset_labels(data), fraction, seed)
    if val_idx.size == 0 or fit_idx.size == 0:
        raise ValueError(f"{len(data)} samples are too few to hold out a validation split")
    if hasattr(data, "subset"):
        return data.subset(torch.from_numpy(fit_idx)), data.subset(torch.from_numpy(val_idx))
    return Subset(data, fit_idx.tolist()), Subset(data, val_idx.tolist())


def check_grid(grid: Sequence[float]) -> list[float]:
    """The grid as a sorted list of distinct finite values >= 0 (ValueError otherwise)."""
    values = [float(v) for v in grid]
    if not values:
        raise ValueError("the L1 grid is empty")
    bad = [v for v in values if not (math.isfinite(v) and v >= 0)]
    if bad:
        raise ValueError(f"L1 grid values must be finite and >= 0, got {bad}")
    return sorted(set(values))


def auto_rules(trainer: Trainer) -> list[Any]:
    """The trainer's rules that ask for ``l1="auto"`` (resolved or not)."""
    return [rule for rule in trainer.rules.values() if getattr(rule, "l1_auto", False)]


def unresolved(trainer: Trainer) -> bool:
    """Whether some rule of ``trainer`` still waits for its L1."""
    return any(rule.l1 is None for rule in auto_rules(trainer))


def resolve(trainer: Trainer, value: float) -> None:
    """Set ``value`` as the L1 of every ``l1="auto"`` rule of ``trainer`` (e.g. a selection
    restored from a checkpoint)."""
    for rule in auto_rules(trainer):
        rule.resolve_l1(value)


def sweep(
    train: Any,
    grid: Sequence[float],
    epochs: int,
    validation_fraction: float,
    seed: int,
    trial: Callable[[float, Any, Any], Sequence[Mapping[str, float]]],
) -> L1Selection:
    """The selection shared by the trainer's and the ``torch.nn`` user's L1 choice.

    Holds out a stratified validation split of ``train`` (:func:`holdout`, seeded ``seed``),
    runs ``trial(value, fit_part, validation_part)`` for every value of the checked ``grid``
    in increasing order, and keeps the value with the best final validation accuracy (ties:
    the lower final validation loss, then the smaller value).

    Args:
        trial: trains from the same start at ``value`` and returns one metrics mapping per
            epoch (``epochs`` of them), each with ``"accuracy"`` and ``"loss"`` on the
            validation part.
    """
    values = check_grid(grid)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    tic = time.perf_counter()
    fit_part, val_part = holdout(train, validation_fraction, seed)
    accuracy, loss, curves = [], [], []
    for value in values:
        curve = list(trial(value, fit_part, val_part))
        if len(curve) != epochs or not all(
            isinstance(m, Mapping) and {"accuracy", "loss"} <= m.keys() for m in curve
        ):
            raise ValueError(
                f"an L1 trial must give {epochs} mappings with 'accuracy' and 'loss', got {curve!r}"
            )
        curves.append([float(m["accuracy"]) for m in curve])
        accuracy.append(float(curve[-1]["accuracy"]))
        loss.append(float(curve[-1]["loss"]))
    best = min(range(len(values)), key=lambda i: (-accuracy[i], loss[i], values[i]))
    classes = np.unique(dataset_labels(val_part), return_counts=True)
    return L1Selection(
        grid=values,
        val_accuracy=accuracy,
        val_loss=loss,
        curves=curves,
        chosen=values[best],
        epochs=epochs,
        validation_fraction=float(validation_fraction),
        seed=seed,
        n_train=len(fit_part),
        n_validation=len(val_part),
        class_counts={str(c): int(n) for c, n in zip(*classes, strict=True)},
        wall_s=time.perf_counter() - tic,
    )


def select_l1(
    trainer: Trainer,
    train: Any,
    grid: Sequence[float] = L1_GRID,
    epochs: int = SWEEP_EPOCHS,
    validation_fraction: float = VALIDATION_FRACTION,
    batch_size: int = 32,
    seed: int | None = None,
    progress: bool = False,
) -> L1Selection:
    """Choose the L1 of ``trainer``'s ``nw.DeepR(l1="auto")`` rules on a validation split of
    ``train``, and set it.

    Args:
        trainer: an :class:`~neurowire.EProp` with at least one ``DeepR(l1="auto")`` rule.
            Every grid value starts from the trainer's state at the call; afterwards the
            trainer is in that state again (weights, connectivity, optimiser, generators, log,
            counters), with the chosen L1 set on those rules.
        train: the training set, a map-style dataset with integer labels. Only it is read.
        grid: L1 values to try (per trial).
        epochs: training epochs per value.
        validation_fraction: share of every class held out for validation.
        batch_size: trials per batch in the sweep (use the run's own).
        seed: seeds the split; None takes the trainer's seed.
        progress: show progress bars.

    Returns the :class:`L1Selection` (:func:`sweep`), also kept in ``trainer.l1_selection``;
    the same seed and data give the same selection.
    """
    rules = auto_rules(trainer)
    if not rules:
        raise ValueError('select_l1 needs a trainer with at least one nw.DeepR(l1="auto") rule')
    seed = trainer.seed if seed is None else int(seed)
    start = copy.deepcopy(trainer.state_dict())
    timers = dict(trainer.timers)
    previous = [rule.l1 for rule in rules]

    def trial(value: float, fit_part: Any, val_part: Any) -> list[dict[str, float]]:
        for rule in rules:
            rule.l1 = value
        curve = []
        for epoch in range(epochs):
            trainer.fit(
                fit_part,
                epochs=epoch + 1,
                initial_epoch=epoch,
                batch_size=batch_size,
                progress=progress,
            )
            curve.append(trainer.evaluate(val_part, batch_size=max(batch_size, 64)))
        trainer.load_state_dict(copy.deepcopy(start))
        return curve

    try:
        selection = sweep(train, grid, epochs, validation_fraction, seed, trial)
    finally:
        trainer.load_state_dict(start)
        trainer.timers.update(timers)
        for rule, l1 in zip(rules, previous, strict=True):
            rule.l1 = l1
    resolve(trainer, selection.chosen)
    trainer.l1_selection = selection
    return selection
