"""What the training helpers need of a trainer, as protocols: :class:`~neurowire.EProp`
satisfies them, and the helpers (the loop, L1 selection, state, batch undo, the gradient pass)
import nothing from it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from torch import Tensor

from ..structural.base import StructuralRule
from ..structural.log import RewiringLog
from ..structural.runner import RuleRunner
from .optim import Adam


class Trainer(Protocol):
    """A trainer run by :class:`~neurowire.learning.loop.TrainingLoop` and
    :func:`~neurowire.learning.l1_selection.select_l1`."""

    seed: int
    rank: int
    world_size: int
    stop_training: bool
    network: Any  # its ``hidden.n``: hidden neurons, for the mean rate
    net: Any  # its ``dt`` [ms]
    timers: dict[str, float]
    l1_selection: Any

    @property
    def rules(self) -> Mapping[str, StructuralRule]: ...

    def train_step(self, spikes: Tensor, labels: Tensor) -> dict[str, float]: ...

    def evaluate_step(self, spikes: Tensor, labels: Tensor) -> dict[str, float]: ...

    def fit(
        self,
        train: Any,
        epochs: int,
        validation: Any = None,
        callbacks: Iterable[Any] | None = None,
        progress: bool = True,
        batch_size: int = 32,
        initial_epoch: int = 0,
    ) -> list[dict[str, float]]: ...

    def evaluate(self, data: Any, batch_size: int = 64, progress: bool = False) -> dict: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


class GradientHost(Protocol):
    """The configuration that :mod:`~neurowire.learning.gradient_pass` reads of a trainer to
    compute one batch's gradients (it changes nothing but ``timers`` [s])."""

    net: Any  # the declared Network: its ``dt`` [ms]
    network: Any  # the compiled network
    device: Any
    loss: Any
    readout: str
    method: str
    regularization: Any
    feedback_matrix: Tensor | None
    chunk_size: int | None
    rank: int
    world_size: int
    timers: dict[str, float]
    _engine: Any

    def _check_spikes(self, spikes: Any) -> Tensor: ...


class Stateful(Protocol):
    """A trainer's state that training changes: its parameters, optimiser, random feedback,
    rules with their runner and log, and batch counters (:mod:`~neurowire.learning.state`,
    :class:`~neurowire.learning.undo.BatchUndo`)."""

    net: Any  # the declared Network: its ``projections``
    network: Any  # the compiled network: its readout ``bias``
    device: Any
    optimizer: Adam
    feedback_matrix: Tensor | None
    rule_runner: RuleRunner
    rewiring_log: RewiringLog
    step_count: int
    _trained_ms: float
    _batch_trials: int
    _rates: Any

    @property
    def rules(self) -> Mapping[str, StructuralRule]: ...

    def _parameters(self) -> dict[str, Any]: ...
