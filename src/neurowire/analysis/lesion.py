"""What training restores after a lesion: accuracy before and after the cut, the epochs to
recover, and the figure of test accuracy per epoch with the cut marked.

Accuracies are fractions in [0, 1]; ``accuracy[i]`` is the test accuracy after epoch ``i + 1``,
the lesion is made after epoch ``epoch`` (so ``accuracy[epoch - 1]`` is the accuracy just before
it) and ``after`` is the accuracy measured just after it, before any further training.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .plots import save_figure

__all__ = [
    "NOT_RECOVERED",
    "lesion_curve",
    "lesion_recovery",
    "lesion_summary",
    "plot_lesion_accuracy",
]

PathLike = str | os.PathLike

#: ``epochs_to_recover`` of a run that never came back within the tolerance.
NOT_RECOVERED = "not recovered"
#: Slack for comparing accuracies that are ratios of counts (0.75 - 0.01 is not exactly 0.74).
_ROUNDING = 1e-9


def _accuracies(accuracy: Sequence[float], epoch: int) -> np.ndarray:
    acc = np.asarray(accuracy, dtype=np.float64)
    if acc.ndim != 1:
        raise ValueError(f"accuracy must be one value per epoch, got shape {acc.shape}")
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)):
        raise TypeError(f"epoch must be an int, got {epoch!r}")
    if not 1 <= epoch <= acc.size:
        raise ValueError(f"epoch must be in [1, {acc.size}] (epochs recorded), got {epoch}")
    return acc


def lesion_recovery(
    accuracy: Sequence[float], epoch: int, after: float, tolerance: float = 0.01
) -> int | None:
    """Epochs of training after a lesion until the test accuracy is back within ``tolerance``
    of its value just before the lesion: 0 if the accuracy just after the lesion already is,
    else the smallest ``n >= 1`` with ``accuracy[epoch - 1 + n] >= accuracy[epoch - 1] -
    tolerance``, or None if no recorded epoch gets there.

    Args:
        accuracy: test accuracy after every epoch, fractions.
        epoch: the lesion was made after this epoch (1-based).
        after: test accuracy just after the lesion.
        tolerance: how far below the pre-lesion accuracy counts as recovered (0.01: one
            percentage point).
    """
    acc = _accuracies(accuracy, epoch)
    floor = acc[epoch - 1] - tolerance - _ROUNDING
    if after >= floor:
        return 0
    later = np.nonzero(acc[epoch:] >= floor)[0]
    return int(later[0]) + 1 if later.size else None


def lesion_summary(
    accuracy: Sequence[float], epoch: int, after: float, tolerance: float = 0.01
) -> dict[str, Any]:
    """The lesion's measurements of one run: ``accuracy_before`` (just before), ``accuracy_after``
    (just after), ``accuracy_final`` (after the last epoch), ``drop_points`` (before - after, in
    percentage points), ``epochs_to_recover`` (:func:`lesion_recovery`, or
    :data:`NOT_RECOVERED`) and ``tolerance_points``."""
    acc = _accuracies(accuracy, epoch)
    n = lesion_recovery(acc, epoch, after, tolerance)
    return {
        "accuracy_before": float(acc[epoch - 1]),
        "accuracy_after": float(after),
        "accuracy_final": float(acc[-1]),
        "drop_points": 100.0 * float(acc[epoch - 1] - after),
        "epochs_to_recover": NOT_RECOVERED if n is None else n,
        "tolerance_points": 100.0 * tolerance,
    }


def lesion_curve(
    accuracy: Sequence[float], epoch: int, after: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of the accuracy per epoch with the value just after the lesion inserted at
    ``x = epoch``, so that the curve drops vertically at the cut. Shapes: ``[n_epochs + 1]``."""
    acc = _accuracies(accuracy, epoch)
    x = np.concatenate([np.arange(1, epoch + 1), [epoch], np.arange(epoch + 1, acc.size + 1)])
    y = np.concatenate([acc[:epoch], [after], acc[epoch:]])
    return x.astype(np.float64), y


def plot_lesion_accuracy(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    epoch: int,
    fraction: float,
    path: PathLike,
) -> Path:
    """Test accuracy [%] per epoch with the lesion marked, one colour per configuration.

    Args:
        runs: configuration name -> its runs (seeds), each ``{"accuracy": [per epoch],
            "after": float}`` as fractions, all of one length. One run is drawn as a line;
            several as their mean with the range (min to max) shaded.
        epoch: the lesion was made after this epoch (a dashed vertical line).
        fraction: the share of synapses cut, for the labels.
        path: PNG file to write.
    """
    if not runs or any(len(r) == 0 for r in runs.values()):
        raise ValueError("runs must give at least one run per configuration")
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    seeds = set()
    for i, (name, group) in enumerate(runs.items()):
        curves = [lesion_curve(r["accuracy"], epoch, r["after"]) for r in group]
        lengths = {c[1].size for c in curves}
        if len(lengths) != 1:
            raise ValueError(f"runs[{name!r}] have different numbers of epochs: {sorted(lengths)}")
        x = curves[0][0]
        y = 100.0 * np.stack([c[1] for c in curves])
        colour = f"C{i % 10}"
        ax.plot(x, y.mean(0), color=colour, marker=".", label=name)
        if len(curves) > 1:
            ax.fill_between(x, y.min(0), y.max(0), color=colour, alpha=0.2, lw=0)
        seeds.add(len(curves))
    ax.axvline(epoch, color="0.3", ls="--", lw=1, label=f"lesion: {_percent(fraction)} cut")
    title = f"test accuracy, {_percent(fraction)} of synapses cut after epoch {epoch}"
    if seeds != {1}:
        title += f"\n(mean, shaded: range over {'/'.join(str(n) for n in sorted(seeds))} seeds)"
    ax.set(title=title, xlabel="epoch", ylabel="test accuracy [%]")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    out = save_figure(fig, path)
    fig.clear()
    return out


def _percent(fraction: float) -> str:
    value = 100.0 * fraction
    return f"{value:.0f} %" if math.isclose(value, round(value)) else f"{value:.3g} %"
