"""Learning rules: e-prop (online reference and factorised fast path), Adam, losses."""

from .eprop import EProp
from .l1_selection import L1Selection, select_l1
from .losses import (
    Loss,
    MeanSquaredError,
    RateRegularizer,
    SparseCategoricalCrossEntropy,
)
from .optim import Adam

__all__ = [
    "Adam",
    "EProp",
    "L1Selection",
    "Loss",
    "MeanSquaredError",
    "RateRegularizer",
    "SparseCategoricalCrossEntropy",
    "select_l1",
]
