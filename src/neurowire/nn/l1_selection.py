"""Choosing DEEP R's L1 strength for a ``torch.nn`` model on held-out training data.

The same selection as the e-prop trainer's (:func:`neurowire.learning.l1_selection.sweep`: a
stratified, seeded validation split of the training set, every value of a log grid trained
from the same start, best final validation accuracy, ties to the lower validation loss, then
the smaller L1); the user supplies how to build, train and score a model::

    def build(l1):
        torch.manual_seed(0)                        # the same start for every value
        model = Net()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        return model, opt, nw.nn.DeepR(model, opt, l1=l1)

    sel = nw.nn.select_l1(build, train_one_epoch, evaluate, train_set)
    model, opt, rewirer = build(sel.chosen)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..learning.l1_selection import (
    L1_GRID,
    SWEEP_EPOCHS,
    VALIDATION_FRACTION,
    L1Selection,
    sweep,
)


def select_l1(
    build: Callable[[float], Any],
    train_fn: Callable[[Any, Any], None],
    score_fn: Callable[[Any, Any], Mapping[str, float]],
    train: Any,
    *,
    grid: Sequence[float] = L1_GRID,
    epochs: int = SWEEP_EPOCHS,
    validation_fraction: float = VALIDATION_FRACTION,
    seed: int = 0,
) -> L1Selection:
    """The L1 strength (per trial, see :class:`neurowire.nn.DeepR`) with the best validation
    accuracy after ``epochs`` epochs on a split of ``train``.

    Args:
        build: ``build(l1)`` returns whatever the other two take (say model, optimiser and
            rewirer with ``DeepR(..., l1=l1)``), the same start for every value.
        train_fn: ``train_fn(built, data)`` trains one epoch on ``data`` (the fitting part).
        score_fn: ``score_fn(built, data)`` returns ``{"accuracy": ..., "loss": ...}`` on
            ``data`` (the validation part).
        train: the training set, a map-style dataset with integer labels (``labels``
            attribute or ``(x, label)`` samples). Only it is read.
        grid: L1 values to try.
        epochs: ``train_fn`` calls per value, each followed by ``score_fn``.
        validation_fraction: share of every class held out for validation.
        seed: seeds the split.

    Returns the :class:`~neurowire.learning.L1Selection` (``chosen``, per-value validation
    accuracy, loss and curves); the same data, seed and ``build`` give the same selection.
    """

    def trial(value: float, fit_part: Any, val_part: Any) -> list[Mapping[str, float]]:
        built = build(value)
        curve = []
        for _ in range(epochs):
            train_fn(built, fit_part)
            curve.append(score_fn(built, val_part))
        return curve

    return sweep(train, grid, epochs, validation_fraction, seed, trial)
