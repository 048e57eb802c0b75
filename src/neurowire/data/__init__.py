"""Spike data: datasets of ``(spikes [T, n_in], label)`` samples, encoders and batching.

* the built-in offline dataset of the main job, :func:`mnist1d` (MNIST-1D generated offline,
  level-crossing encoded), and the synthetic timing task :func:`frozen_poisson_patterns`;
* readers of published files: :func:`shd` / :func:`ssc` (HDF5), :func:`dvs_gesture` /
  :func:`nmnist` (through the optional ``tonic`` package, files already on disk);
* :class:`SpikeDataset` (in memory) and :class:`Batches` (a seeded ``DataLoader`` per epoch).

A malformed data file raises :class:`DataFileError` (a ``ValueError``) naming the file and, where
one is at fault, the sample; a missing split raises ``FileNotFoundError`` naming the paths tried.
"""

from .batching import Batches, SpikeDataset, epoch_loader
from .builtin import frozen_poisson_patterns
from .encoders import level_crossing
from .errors import DataFileError
from .events import EventDataset, bin_events, group_folds
from .mnist1d import mnist1d
from .shd import shd, speaker_folds, ssc
from .tonic_datasets import dvs_gesture, nmnist

__all__ = [
    "Batches",
    "DataFileError",
    "EventDataset",
    "bin_events",
    "dvs_gesture",
    "nmnist",
    "shd",
    "speaker_folds",
    "ssc",
    "SpikeDataset",
    "epoch_loader",
    "frozen_poisson_patterns",
    "group_folds",
    "level_crossing",
    "mnist1d",
]
