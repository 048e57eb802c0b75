"""Spike data: in-memory datasets, seeded batching and built-in synthetic tasks."""

from .batching import Batches, SpikeDataset
from .builtin import frozen_poisson_patterns

__all__ = ["Batches", "SpikeDataset", "frozen_poisson_patterns"]
