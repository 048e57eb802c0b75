"""The built-in offline dataset of the main job: MNIST-1D as spike trains.

MNIST-1D (Greydanus & Kobak 2024, package ``mnist1d``) is a procedurally generated benchmark:
ten 1-D digit templates of 12 points are padded, shifted, scaled, sheared and mixed with
correlated and white noise into sequences of 40 samples. :func:`mnist1d` generates it offline
with the package's own generator (``mnist1d.data.make_dataset``; its ``get_dataset`` would
download instead and is not used) and encodes every sequence with
:func:`~neurowire.data.encoders.level_crossing`.

Defaults: the package's published arguments (5,000 samples, seed 42, 4,000 / 1,000 train / test
split, fixed), 128 levels over [-2.5, 2.5] (256 input channels), 4 steps per sample: trials of 157
steps (157 ms at ``dt = 1`` ms). It is hard enough that a recurrent network does not reach 100 %
(the package's authors report about 32 % for logistic regression, 68 % for an MLP and 91 % for a
GRU on the raw sequences), so dense, static sparse and rewired networks can be told apart.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from .batching import SpikeDataset
from .encoders import level_crossing


def mnist1d(
    n_samples: int = 5000,
    seed: int = 42,
    n_levels: int = 128,
    steps_per_point: int = 4,
    low: float = -2.5,
    high: float = 2.5,
) -> tuple[SpikeDataset, SpikeDataset]:
    """MNIST-1D generated offline and encoded as level-crossing spike trains.

    Args:
        n_samples: generated sequences (split 80 / 20 into train and test, as published).
        seed: the generator's seed (42 is the published dataset).
        n_levels, steps_per_point, low, high: see :func:`level_crossing`.

    Returns:
        ``(train, test)`` :class:`SpikeDataset` with ``spikes [n, T, 2 * n_levels]`` bool and
        int64 labels ``[n]`` in ``0 .. 9``.
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as err:  # a core dependency; only a broken install lacks it
        raise ImportError("the built-in dataset needs the 'mnist1d' package") from err
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 10:
        raise ValueError(f"n_samples must be an int >= 10, got {n_samples!r}")
    args = get_dataset_args()
    args.num_samples, args.seed = n_samples, int(seed)
    # the generator seeds numpy's and Python's global generators: leave them as they were
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)

    def encode(x: np.ndarray, y: np.ndarray) -> SpikeDataset:
        spikes = level_crossing(x, n_levels, steps_per_point, low, high)
        return SpikeDataset(spikes, torch.as_tensor(y, dtype=torch.int64))

    return encode(data["x"], data["y"]), encode(data["x_test"], data["y_test"])
