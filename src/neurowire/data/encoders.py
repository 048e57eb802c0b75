"""Encoders that turn real-valued signals into spike trains.

:func:`level_crossing` is a send-on-delta code with many levels: a signal sampled at ``P``
points is interpolated linearly onto ``(P - 1) * steps_per_point + 1`` time steps, and each of
``n_levels`` thresholds evenly spaced over ``[low, high]`` owns two input channels, one that
spikes in the step where the signal crosses the threshold upwards and one for downward
crossings. Which channel fires says where the signal is; when it fires says how fast it
changes. The code is deterministic (no random numbers) and sparse: a step carries a spike only
where the signal moves across a level.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..checks import ParameterError, check_number


def level_crossing(
    signals: np.ndarray | Tensor,
    n_levels: int = 32,
    steps_per_point: int = 4,
    low: float = -2.5,
    high: float = 2.5,
) -> Tensor:
    """Spike trains of up- and down-crossings of evenly spaced levels.

    Args:
        signals: float ``[n, P]``, ``n`` signals of ``P >= 2`` samples.
        n_levels: thresholds ``linspace(low, high, n_levels)``.
        steps_per_point: time steps between two samples (linear interpolation between them).
        low, high: the lowest and highest threshold (signal units).

    Returns:
        bool ``[n, T, 2 * n_levels]`` with ``T = (P - 1) * steps_per_point + 1``: channel
        ``k`` spikes at step ``t`` when ``s(t - 1) <= c_k < s(t)`` (upward crossing of
        threshold ``c_k``), channel ``n_levels + k`` when ``s(t - 1) > c_k >= s(t)``
        (downward). Step 0 carries no spikes.
    """
    x = np.asarray(signals.cpu().numpy() if isinstance(signals, Tensor) else signals)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"signals must be [n, P] with P >= 2 samples, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("signals contain NaN or infinity")
    for name, val in (("n_levels", n_levels), ("steps_per_point", steps_per_point)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ParameterError(f"{name} must be an int >= 1, got {val!r}")
    check_number("low", low)
    check_number("high", high)
    if not high > low:
        raise ParameterError(f"need high > low, got low={low}, high={high}")
    n, points = x.shape
    steps = (points - 1) * steps_per_point + 1
    frac = np.arange(steps) / steps_per_point
    left = np.minimum(frac.astype(np.int64), points - 2)
    w = (frac - left)[None, :]
    fine = x[:, left] * (1.0 - w) + x[:, left + 1] * w  # [n, T]
    levels = np.linspace(low, high, n_levels)
    above = fine[:, :, None] > levels  # [n, T, L]
    spikes = np.zeros((n, steps, 2 * n_levels), dtype=bool)
    spikes[:, 1:, :n_levels] = above[:, 1:] & ~above[:, :-1]
    spikes[:, 1:, n_levels:] = ~above[:, 1:] & above[:, :-1]
    return torch.from_numpy(spikes)
