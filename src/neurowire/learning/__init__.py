"""Learning rules: e-prop (online reference and factorised fast path), Adam, losses."""

from .eprop import EProp
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
    "Loss",
    "MeanSquaredError",
    "RateRegularizer",
    "SparseCategoricalCrossEntropy",
]
