"""Figures of homeostatic structural plasticity (NEST's structural plasticity example and lesions
of its network): calcium, connections, firing rates and synapses over time.

Every plot function draws on a fresh :class:`matplotlib.figure.Figure` (no pyplot), writes a PNG
to ``path`` and returns the Figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .plots import PathLike, save_figure

__all__ = ["MSP_PANELS", "curve_bands", "plot_lesion_recovery", "plot_msp_curves"]

#: the panels of :func:`plot_msp_curves`: (curve key, population, y label)
MSP_PANELS = (
    ("mean_ca_e", "E", "mean calcium of E"),
    ("mean_ca_i", "I", "mean calcium of I"),
    ("total_connections_e", "E", "connections from E (synapses)"),
    ("total_connections_i", "I", "connections from I (synapses)"),
)

#: the panels of :func:`plot_lesion_recovery`: (group curve key, y label)
LESION_PANELS = (
    ("ca", "mean calcium"),
    ("rate_hz", "mean firing rate [Hz]"),
    ("in_ex", "incoming excitatory synapses per neuron"),
    ("in_in", "incoming inhibitory synapses per neuron"),
)


def curve_bands(runs: Sequence[Mapping[str, Sequence[float]]], key: str) -> dict[str, np.ndarray]:
    """Mean and standard deviation over runs of curve ``key`` at every record time.

    Args:
        runs: the runs (seeds), each a mapping with ``t_ms`` and ``key``, lists of one length
            and the same ``t_ms`` in every run.
        key: the curve, e.g. ``"mean_ca_e"``.

    Returns:
        ``{"t_ms", "mean", "sd"}``, float64 ``[T]`` each; ``sd`` is the sample SD (``ddof=1``),
        0 for a single run.
    """
    if not runs:
        raise ValueError("curve_bands needs at least one run, got none")
    t = np.asarray(runs[0]["t_ms"], dtype=np.float64)
    rows = []
    for i, run in enumerate(runs):
        if not np.array_equal(np.asarray(run["t_ms"], dtype=np.float64), t):
            raise ValueError(f"run {i} records at other times than run 0 (t_ms differs)")
        values = np.asarray(run[key], dtype=np.float64)
        if values.shape != t.shape:
            raise ValueError(f"run {i}: {key!r} has {values.size} values for {t.size} record times")
        rows.append(values)
    data = np.stack(rows)
    sd = data.std(0, ddof=1) if len(rows) > 1 else np.zeros_like(t)
    return {"t_ms": t, "mean": data.mean(0), "sd": sd}


def plot_msp_curves(
    runs: Mapping[str, Sequence[Mapping[str, Sequence[float]]]],
    path: PathLike,
    targets: Mapping[str, float] | None = None,
    title: str | None = None,
) -> Figure:
    """Mean calcium and total connections of the excitatory (E) and inhibitory (I) populations
    over time, one colour per group of runs (a simulator, a configuration).

    Args:
        runs: group name -> its runs (seeds), each ``{"t_ms": [T], "mean_ca_e", "mean_ca_i",
            "total_connections_e", "total_connections_i": [T]}``. One run is drawn as a line,
            several as their mean with +-1 SD shaded.
        path: PNG file to write.
        targets: calcium target per population (``{"E": 0.05, "I": 0.2}``), drawn dotted.
        title: the figure's title.
    """
    if not runs or any(len(group) == 0 for group in runs.values()):
        raise ValueError("runs must give at least one run per group")
    fig = Figure(figsize=(11, 7), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2, sharex=True).ravel()
    seeds = set()
    for i, (name, group) in enumerate(runs.items()):
        colour = f"C{i % 10}"
        seeds.add(len(group))
        for ax, (key, _, _) in zip(axes, MSP_PANELS, strict=True):
            band = curve_bands(group, key)
            t_s = band["t_ms"] / 1000.0
            label = name if len(group) == 1 else f"{name} (mean +- SD, {len(group)} runs)"
            ax.plot(t_s, band["mean"], color=colour, lw=1.5, label=label)
            if len(group) > 1:
                lo, hi = band["mean"] - band["sd"], band["mean"] + band["sd"]
                ax.fill_between(t_s, lo, hi, color=colour, alpha=0.25, lw=0)
    for ax, (key, pop, ylabel) in zip(axes, MSP_PANELS, strict=True):
        if targets and key.startswith("mean_ca") and pop in targets:
            ax.axhline(targets[pop], color="0.3", ls=":", lw=1.2, label=f"target {targets[pop]:g}")
        ax.set(ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[2:]:
        ax.set(xlabel="model time [s]")
    fig.suptitle(title or "homeostatic structural plasticity: calcium and connections")
    save_figure(fig, path)
    return fig


def plot_lesion_recovery(
    t_ms: Sequence[float],
    groups: Mapping[str, Mapping[str, Sequence[float]]],
    lesion_t_ms: float,
    path: PathLike,
    targets: Mapping[str, float] | None = None,
    title: str | None = None,
) -> Figure:
    """Calcium, firing rate and incoming synapses of groups of neurons (lesioned and intact, E
    and I) over time, with the lesion marked.

    Args:
        t_ms: record times [ms], ``[T]``.
        groups: group name (starting with its population, e.g. ``"E lesioned"``) -> ``{"ca",
            "rate_hz", "in_ex", "in_in": [T]}``, means over the group's neurons. Names ending in
            ``"lesioned"`` are drawn solid, the others dashed.
        lesion_t_ms: when the lesion was made [ms] (a vertical line).
        path: PNG file to write.
        targets: calcium target per population (``{"E": 0.05, "I": 0.2}``), drawn dotted.
        title: the figure's title.
    """
    t_s = np.asarray(t_ms, dtype=np.float64) / 1000.0
    if not groups:
        raise ValueError("groups must name at least one group of neurons")
    fig = Figure(figsize=(11, 7), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2, sharex=True).ravel()
    populations = sorted({name.split()[0] for name in groups})
    for name, curves in groups.items():
        colour = f"C{populations.index(name.split()[0]) % 10}"
        style = "-" if name.endswith("lesioned") else "--"
        for ax, (key, _) in zip(axes, LESION_PANELS, strict=True):
            values = np.asarray(curves[key], dtype=np.float64)
            if values.shape != t_s.shape:
                raise ValueError(
                    f"group {name!r}: {key!r} has {values.size} values for {t_s.size} times"
                )
            ax.plot(t_s, values, color=colour, ls=style, lw=1.5, label=name)
    for ax, (key, ylabel) in zip(axes, LESION_PANELS, strict=True):
        if key == "ca" and targets:
            for pop in populations:
                if pop in targets:
                    colour = f"C{populations.index(pop) % 10}"
                    ax.axhline(targets[pop], color=colour, ls=":", lw=1, label=f"{pop} target")
        ax.axvline(lesion_t_ms / 1000.0, color="0.3", ls="-.", lw=1, label="lesion")
        ax.set(ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[2:]:
        ax.set(xlabel="model time [s]")
    fig.suptitle(title or "lesion and recovery: lesioned vs intact neurons")
    save_figure(fig, path)
    return fig
