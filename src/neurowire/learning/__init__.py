"""Learning rules: e-prop (online reference and factorised fast path), Adam, losses, the
training loop with its callbacks (checkpoints, a lesion during training)."""

from .checkpoint import Checkpointer
from .eprop import EProp
from .l1_selection import L1Selection, select_l1
from .lesion import Lesion
from .loop import Callback, TrainingLoop
from .losses import (
    Loss,
    MeanSquaredError,
    RateRegularizer,
    SparseCategoricalCrossEntropy,
)
from .optim import Adam

__all__ = [
    "Adam",
    "Callback",
    "Checkpointer",
    "EProp",
    "L1Selection",
    "Lesion",
    "Loss",
    "MeanSquaredError",
    "RateRegularizer",
    "SparseCategoricalCrossEntropy",
    "TrainingLoop",
    "select_l1",
]
