"""Figures of the topographic-map experiment (Knight, Senk & Nowotny 2025).

Every function draws on a fresh :class:`matplotlib.figure.Figure` (no pyplot, no global backend
change, no display), writes a PNG to ``path`` and returns the Figure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..io import atomic_path
from .rewiring import (
    ConnectivityTimeline,
    DisplacementMaps,
    check_event_log,
    event_rates,
    event_time_distance_histogram,
)

__all__ = [
    "plot_connectivity_evolution",
    "plot_displacement_maps",
    "plot_map_quality",
    "plot_scaling",
    "plot_timing_breakdown",
    "timing_fractions",
]

PathLike = str | os.PathLike


def save_figure(fig: Figure, path: PathLike) -> Path:
    """Save ``fig`` at 100 dpi to ``path`` (format from its suffix), creating the folder and
    writing atomically (:func:`neurowire.io.atomic_path`): a failed save leaves no file."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100)
    return out


def _save(fig: Figure, path: PathLike) -> Figure:
    save_figure(fig, path)
    return fig


def _timeline_arrays(timeline: ConnectivityTimeline | Mapping[str, Any]) -> dict[str, np.ndarray]:
    if isinstance(timeline, ConnectivityTimeline):
        return timeline.arrays()
    if isinstance(timeline, Mapping):
        return {k: np.asarray(v) for k, v in timeline.items()}
    raise ValueError(
        f"timeline must be a ConnectivityTimeline or its arrays(), got {type(timeline).__name__}"
    )


def _weight_label(weight_unit: str | None) -> str:
    return f"mean weight per synapse [{weight_unit}]" if weight_unit else "mean weight per synapse"


def _extent(offsets: np.ndarray) -> list[float]:
    return [float(offsets[0]) - 0.5, float(offsets[-1]) + 0.5]


def plot_displacement_maps(
    initial: DisplacementMaps,
    final: DisplacementMaps,
    path: PathLike,
    title: str | None = None,
    weight_unit: str | None = None,
) -> Figure:
    """2×2 panels: connection probability (top) and mean weight (bottom), initial | final.

    One call per projection. Colour scales are shared between initial and final; each row's
    colour bar is labelled (``weight_unit``, e.g. ``"µS"``, goes on the weight's).
    """
    fig = Figure(figsize=(9, 8), layout="constrained")
    axes = fig.subplots(2, 2)
    ext = _extent(initial.dx) + _extent(initial.dy)
    bar_labels = ("connection probability (fraction of pairs)", _weight_label(weight_unit))
    for r, (field, label) in enumerate(
        (("probability", "connection probability"), ("mean_weight", "mean weight"))
    ):
        a0, a1 = getattr(initial, field), getattr(final, field)
        vmax = np.nanmax(np.concatenate([a0.ravel(), a1.ravel(), [0.0]])) or 1.0
        for c, (arr, when) in enumerate(((a0, "initial"), (a1, "final"))):
            ax = axes[r, c]
            im = ax.imshow(arr, origin="lower", extent=ext, vmin=0.0, vmax=vmax, cmap="viridis")
            ax.set_title(f"{label}, {when}")
            ax.set_xlabel("Δx [grid units]")
            ax.set_ylabel("Δy [grid units]")
        fig.colorbar(im, ax=list(axes[r]), shrink=0.8, label=bar_labels[r])
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_connectivity_evolution(
    timeline: ConnectivityTimeline | Mapping[str, Any],
    log: Mapping[str, Any],
    duration_ms: float,
    path: PathLike,
    sigma_form: float | None = None,
    expected_degree: float | None = None,
    bin_ms: float = 200.0,
    distance_bin: float = 1.0,
    title: str | None = None,
    weight_unit: str | None = None,
) -> Figure:
    """Connectivity-evolution figure of one projection (Knight et al. 2025).

    Rows: eliminations | formations as time × distance heat maps (dashed line at ``sigma_form``);
    their rates [events/s] in ``bin_ms`` bins; in- | out-degree mean ± SD over time (dashed line at
    ``expected_degree``); probability | mean weight against Δy at Δx = 0 over time (images).

    Args:
        timeline: a :class:`ConnectivityTimeline` (or its ``arrays()``) of this projection.
        log: the event log of this projection. duration_ms: model time covered [ms].
        weight_unit: unit of the weights (e.g. ``"µS"``) for the mean-weight colour bar.
    """
    a = _timeline_arrays(timeline)
    ev = check_event_log(log)
    t_s = a["t_ms"] / 1000.0
    d_max = float(ev["distance"].max()) if ev["distance"].size else distance_bin
    fig = Figure(figsize=(11, 13), layout="constrained")
    axes = fig.subplots(4, 2)
    for c, (kind, label) in enumerate(((-1, "eliminations"), (1, "formations"))):
        te, de, counts = event_time_distance_histogram(
            ev, duration_ms, bin_ms, distance_bin, max(d_max, distance_bin), kind=kind
        )
        ax = axes[0, c]
        im = ax.imshow(
            counts.T,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=0,
            vmax=max(1, int(counts.max(initial=0))),
            extent=[te[0] / 1e3, te[-1] / 1e3, de[0], de[-1]],
        )
        if sigma_form is not None:
            ax.axhline(sigma_form, color="w", ls="--", lw=1, label="σ_form")
            ax.legend(loc="upper right", fontsize=8)
        ax.set(
            title=f"{label} per {bin_ms:g} ms bin",
            xlabel="time [s]",
            ylabel="distance [grid units]",
        )
        fig.colorbar(im, ax=ax, label=f"{label} per bin [count]")
        edges, rate = event_rates(ev, duration_ms, bin_ms, kind=kind)
        ax = axes[1, c]
        ax.stairs(rate, edges / 1e3, fill=True, color="C3" if kind < 0 else "C2")
        ax.set(title=f"{label} rate", xlabel="time [s]", ylabel="events / s")
    for c, which in enumerate(("in", "out")):
        ax = axes[2, c]
        mean, sd = a[f"{which}_mean"], a[f"{which}_sd"]
        ax.plot(t_s, mean, color="C0", label="mean")
        ax.fill_between(t_s, mean - sd, mean + sd, color="C0", alpha=0.3, label="± SD")
        if expected_degree is not None:
            ax.axhline(expected_degree, color="k", ls="--", lw=1, label="K = 2πpσ²")
        ax.set(title=f"{which}-degree", xlabel="time [s]", ylabel="synapses")
        ax.legend(fontsize=8)
    dy = a["dy"]
    # snapshot times are pixel centres; pad half a (median) interval at both ends
    half = max(0.5 * float(np.median(np.diff(t_s))), 5e-4) if t_s.size > 1 else 5e-4
    t_lo, t_hi = (float(t_s[0]) - half, float(t_s[-1]) + half) if t_s.size else (0.0, 1.0)
    rows = (
        ("p_dx0", "probability", "connection probability (fraction of pairs)"),
        ("w_dx0", "mean weight", _weight_label(weight_unit)),
    )
    for c, (key, label, bar_label) in enumerate(rows):
        ax = axes[3, c]
        img = np.asarray(a[key], dtype=float).reshape(-1, dy.size)
        im = ax.imshow(
            img.T, origin="lower", aspect="auto", cmap="viridis", extent=[t_lo, t_hi] + _extent(dy)
        )
        ax.set(title=f"{label} at Δx = 0", xlabel="time [s]", ylabel="Δy [grid units]")
        fig.colorbar(im, ax=ax, label=bar_label)
    if title or (isinstance(timeline, ConnectivityTimeline) and timeline.name):
        fig.suptitle(title or timeline.name)  # type: ignore[union-attr]
    return _save(fig, path)


def plot_map_quality(
    timeline: ConnectivityTimeline | Mapping[str, Any],
    path: PathLike,
    reference: tuple[float, float] | None = (0.82, 2.36),
) -> Figure:
    """AD and σ_aff over time, by connectivity and by weight (Bamford et al. 2010).

    ``reference`` = (AD, σ_aff) of Bamford's initial state, drawn as dotted lines (None: omit).
    """
    a = _timeline_arrays(timeline)
    t_s = a["t_ms"] / 1000.0
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    for i, (key, label) in enumerate((("ad", "AD"), ("sigma_aff", "σ_aff"))):
        ax = axes[i]
        ax.plot(t_s, a[f"{key}_conn"], label="by connectivity")
        ax.plot(t_s, a[f"{key}_weight"], label="by weight")
        if reference is not None:
            ax.axhline(reference[i], color="k", ls=":", lw=1, label="initial reference")
        ax.set(title=label, xlabel="time [s]", ylabel=f"{label} [grid units]")
        ax.legend(fontsize=8)
    return _save(fig, path)


def _check_timers(timers_s: Mapping[str, float], name: str) -> dict[str, float]:
    out = {str(k): float(v) for k, v in timers_s.items()}
    bad = {k: v for k, v in out.items() if not np.isfinite(v) or v < 0}
    if bad:
        raise ValueError(f"{name} must hold finite times >= 0 [s], got {bad}")
    return out


def timing_fractions(timers_s: Mapping[str, float]) -> dict[str, float]:
    """Each component's share of the summed time: ``v / sum(timers_s.values())`` (all 0 when
    the sum is 0). The fractions that :func:`plot_timing_breakdown` shows."""
    timers = _check_timers(timers_s, "timers_s")
    total = sum(timers.values())
    return {k: (v / total if total > 0 else 0.0) for k, v in timers.items()}


def plot_timing_breakdown(
    timers_s: Mapping[str, float], path: PathLike, model_s: float | None = None
) -> Figure:
    """Per-component wall time: a stacked bar (with real time ``model_s`` dashed) and a pie.

    The components should be disjoint (no timer nested in another); the total is their sum and
    every share is :func:`timing_fractions` of it. The legend lists every component as
    ``name: seconds (share)``, zeros included; the pie leaves zero components out.

    Args:
        timers_s: component name -> wall time [s]. model_s: simulated model time [s], or None.
    """
    timers = _check_timers(timers_s, "timers_s")
    if not timers:
        raise ValueError("timers_s must name at least one component, got {}")
    fractions = timing_fractions(timers)
    colours = {k: f"C{i % 10}" for i, k in enumerate(timers)}
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_bar, ax_pie = fig.subplots(1, 2, width_ratios=[1, 1.3])
    bottom = 0.0
    handles = []  # the legend in component order, then real time
    for k, v in timers.items():
        label = f"{k}: {v:.3g} s ({100 * fractions[k]:.1f} %)"
        handles.append(ax_bar.bar(0, v, bottom=bottom, color=colours[k], label=label, width=0.6))
        bottom += v
    if model_s is not None:
        handles.append(
            ax_bar.axhline(model_s, color="k", ls="--", lw=1, label=f"real time: {model_s:.3g} s")
        )
    ax_bar.set(xticks=[], ylabel="wall-clock time [s]", title=f"total {bottom:.3g} s")
    ax_bar.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    shown = [k for k, v in timers.items() if v > 0]
    if shown:
        ax_pie.pie(
            [timers[k] for k in shown],
            labels=[k if fractions[k] >= 0.02 else "" for k in shown],  # the legend has all
            autopct=lambda pct: f"{pct:.1f}%" if pct >= 2 else "",
            colors=[colours[k] for k in shown],
            textprops={"fontsize": 8},
        )
    ax_pie.set_title("share of wall time")
    return _save(fig, path)


def plot_scaling(results: Sequence[Mapping[str, Any]], path: PathLike) -> Figure:
    """Wall-clock time and real-time factor against neurons per layer (performance figure of
    Knight et al. 2025).

    Args:
        results: one dict per run with ``neurons`` (per layer), ``real_time_factor`` (wall / model
            time), ``timers_s`` (component -> wall time [s]) and optionally ``genn_rtf`` (a
            reference real-time factor) and ``model_s``. Runs with equal ``neurons`` (seeds) are
            averaged; the real-time factor gets ± SD error bars.

    Left: per-component wall time stacked against N, with the total wall time (RTF × ``model_s``,
    mean ± SD) and a dashed real-time line at ``model_s`` when every run gives it. Right:
    real-time factor with a dashed line at 1 and the GeNN reference if given.
    """
    if not results:
        raise ValueError("results must hold at least one run, got []")
    for i, r in enumerate(results):
        missing = [k for k in ("neurons", "real_time_factor", "timers_s") if k not in r]
        if missing:
            raise ValueError(f"results[{i}] lacks key(s) {missing}")
        _check_timers(r["timers_s"], f"results[{i}]['timers_s']")
    sizes = sorted({int(r["neurons"]) for r in results})
    components: list[str] = []
    for r in results:
        components += [k for k in r["timers_s"] if k not in components]
    groups = [[r for r in results if int(r["neurons"]) == n] for n in sizes]
    timers = np.array(
        [
            [np.mean([float(r["timers_s"].get(c, 0.0)) for r in g]) for c in components]
            for g in groups
        ]
    ).reshape(len(sizes), len(components))
    rtf = [np.array([float(r["real_time_factor"]) for r in g]) for g in groups]
    x = np.asarray(sizes, dtype=float)

    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax_t, ax_r = fig.subplots(1, 2)
    if components:
        ax_t.stackplot(
            x, timers.T, labels=components, colors=[f"C{i % 10}" for i in range(len(components))]
        )
    model_s = [float(r["model_s"]) for r in results if "model_s" in r]
    if model_s:
        ax_t.axhline(np.mean(model_s), color="k", ls="--", lw=1, label="real time")
    if len(model_s) == len(results):  # total wall time = RTF x model time, mean ± SD over seeds
        wall = [
            np.array([float(r["real_time_factor"]) * float(r["model_s"]) for r in g])
            for g in groups
        ]
        ax_t.errorbar(
            x,
            [v.mean() for v in wall],
            yerr=[v.std() for v in wall],
            color="k",
            marker=".",
            capsize=3,
            label="total",
        )
    ax_t.set(xlabel="neurons per layer", ylabel="wall-clock time [s]", title="time by component")
    ax_t.legend(fontsize=7, loc="upper left")

    ax_r.errorbar(
        x,
        [v.mean() for v in rtf],
        yerr=[v.std() for v in rtf],
        marker="o",
        capsize=3,
        label="neurowire",
    )
    genn = [(int(r["neurons"]), float(r["genn_rtf"])) for r in results if "genn_rtf" in r]
    if genn:
        gx = sorted({n for n, _ in genn})
        gy = [np.mean([v for n, v in genn if n == k]) for k in gx]
        ax_r.plot(gx, gy, marker="s", color="C1", label="GeNN")
    ax_r.axhline(1.0, color="k", ls="--", lw=1, label="real time")
    ax_r.set(xlabel="neurons per layer", ylabel="real-time factor (wall / model)", title="speed")
    ax_r.legend(fontsize=8)
    return _save(fig, path)
