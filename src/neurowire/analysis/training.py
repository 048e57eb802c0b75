"""Figures of the sparse-classifier experiment (``neurowire classify``).

Accuracy per epoch, proportion of synapses rewired per batch and connectivity (weight and in-degree
histograms) before vs after training. As in :mod:`.plots`, every function draws on a fresh
:class:`matplotlib.figure.Figure` with its own Agg canvas (no pyplot, no global backend change, no
display), writes a PNG to ``path``, releases the figure and returns the ``Path``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .plots import save_figure

__all__ = [
    "connectivity_snapshot",
    "in_degree",
    "plot_accuracy_history",
    "plot_connectivity_histograms",
    "plot_l1_selection",
    "plot_rewiring_proportion",
]

PathLike = str | os.PathLike

_SNAPSHOT_ARRAYS = ("pre", "post", "weight")
_SNAPSHOT_SIZES = ("n_pre", "n_post")


def _figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)  # render with Agg whatever the global backend is
    return fig


def _save(fig: Figure, path: PathLike) -> Path:
    out = save_figure(fig, path)
    fig.clear()  # never registered with pyplot: clearing releases it, nothing else holds it
    return out


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _vector(x: Any, name: str) -> np.ndarray:
    arr = _numpy(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    return arr


def _indices(x: Any, n: int, name: str) -> np.ndarray:
    arr = _vector(x, name)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{name} must hold integer neuron indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ValueError(f"{name} must lie in [0, {n}), got values in [{arr.min()}, {arr.max()}]")
    return arr


def _count(n: Any, name: str) -> int:
    if isinstance(n, bool) or int(n) != n or int(n) < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {n!r}")
    return int(n)


# --------------------------------------------------------------------------------------------
# accuracy


def plot_accuracy_history(
    histories: Mapping[str, Sequence[Mapping[str, float]]],
    path: PathLike,
    fraction: bool | None = None,
) -> Path:
    """Accuracy [%] against epoch, one colour per configuration.

    Args:
        histories: configuration name (e.g. ``"dense"``, ``"static"``, ``"deep_r"``) -> one dict
            per epoch with ``accuracy_train`` and optionally ``accuracy_test`` or
            ``accuracy_val`` (``accuracy_test`` wins when both are there) and ``epoch`` (1-based;
            else the position + 1). Train is drawn solid, test/val dashed in the same colour.
        path: PNG file to write.
        fraction: whether accuracies are fractions in [0, 1] (multiplied by 100) or already in %.
            None: fractions when every value is <= 1.
    """
    if not histories:
        raise ValueError("histories must name at least one configuration, got {}")
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for name, epochs in histories.items():
        curves[name] = {}
        for key in ("accuracy_train", "accuracy_test", "accuracy_val"):
            x, y = [], []
            for i, ep in enumerate(epochs):
                if key == "accuracy_train" and key not in ep:
                    raise ValueError(f"histories[{name!r}][{i}] lacks 'accuracy_train'")
                if key in ep and ep[key] is not None:
                    x.append(float(ep.get("epoch", i + 1)))
                    y.append(float(ep[key]))
            if y:
                curves[name][key] = (np.asarray(x), np.asarray(y))
        if "accuracy_test" in curves[name]:
            curves[name].pop("accuracy_val", None)
    values = np.concatenate([y for c in curves.values() for _, y in c.values()] + [np.zeros(0)])
    finite = values[np.isfinite(values)]
    if fraction is None:
        fraction = bool(np.all(finite <= 1.0))
    scale = 100.0 if fraction else 1.0

    fig = _figure((7, 4.5))
    ax = fig.subplots()
    for i, (name, c) in enumerate(curves.items()):
        colour = f"C{i % 10}"
        for key, (x, y) in c.items():
            split = key.removeprefix("accuracy_")
            ls = "-" if split == "train" else "--"
            ax.plot(x, y * scale, color=colour, ls=ls, marker=".", label=f"{name} ({split})")
    ax.set(title="accuracy per epoch", xlabel="epoch", ylabel="accuracy [%]")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if values.size:
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_l1_selection(selection: Mapping[str, Any], path: PathLike) -> Path:
    """The L1 sweep: validation accuracy [%] against L1 (log axis) after the last sweep epoch,
    the earlier epochs fainter, the chosen value marked.

    Args:
        selection: :meth:`L1Selection.to_dict() <neurowire.learning.l1_selection.L1Selection>`
            (``grid``, ``curves`` [one list of accuracies per value], ``chosen``, ``epochs``,
            ``n_validation``).
        path: PNG file to write.
    """
    try:
        grid = np.asarray(selection["grid"], dtype=float)
        curves = [np.asarray(c, dtype=float) for c in selection["curves"]]
        chosen = float(selection["chosen"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"selection must be an L1Selection record, got error {err}") from None
    if grid.size == 0 or len(curves) != grid.size or any(c.size == 0 for c in curves):
        raise ValueError("selection needs one non-empty validation curve per grid value")
    epochs = min(c.size for c in curves)
    # a zero L1 cannot sit on a log axis: draw it at a tenth of the smallest positive value
    positive = grid[grid > 0]
    x = np.where(grid > 0, grid, (positive.min() / 10) if positive.size else 1e-4)
    fig = _figure((6, 4))
    ax = fig.subplots()
    for e in range(epochs):
        last = e == epochs - 1
        acc = 100 * np.array([c[e] for c in curves])
        ax.plot(
            x,
            acc,
            marker="o" if last else ".",
            color="C0",
            alpha=1.0 if last else 0.25 + 0.5 * e / max(epochs - 1, 1),
            label=f"after epoch {e + 1}" if last or e == 0 else None,
        )
    ax.axvline(x[np.argmin(np.abs(grid - chosen))], color="C3", ls="--", label=f"chosen {chosen:g}")
    ax.set_xscale("log")
    n_val = selection.get("n_validation")
    ax.set(
        title="DEEP R's L1 chosen on validation data"
        + (f"\n({n_val} held-out training samples)" if n_val else ""),
        xlabel="L1 strength per trial",
        ylabel="validation accuracy [%]",
    )
    ax.legend(fontsize=8)
    return _save(fig, path)


# --------------------------------------------------------------------------------------------
# rewiring


def plot_rewiring_proportion(
    calls: Mapping[str, Mapping[str, np.ndarray]],
    nominal: Mapping[str, int],
    path: PathLike,
    labels: Mapping[str, str] | None = None,
) -> Path:
    """Proportion of synapses rewired per batch [%] against batch index, one line per projection.

    Proportion = ``removed / nominal * 100`` (rewirings per batch over the nominal synapse count).
    The y axis is logarithmic when the non-zero values span more than two decades (zeros are then
    left out), else linear. Projections without calls draw nothing; when none has any the figure
    says "no rewiring".

    Args:
        calls: projection -> arrays of equal length ``step`` (batch index) and ``removed``
            (synapses rewired in that batch), optionally ``failed`` (placements that failed; their
            total goes into the legend), e.g. ``RewiringLog.calls(name)``.
        nominal: projection -> nominal synapse count (> 0), for every projection in ``calls``.
        path: PNG file to write. labels: projection -> legend label (default: the name).
    """
    labels = labels or {}
    lines: list[tuple[str, np.ndarray, np.ndarray]] = []
    for name, c in calls.items():
        for key in ("step", "removed"):
            if key not in c:
                raise ValueError(f"calls[{name!r}] lacks {key!r}")
        if name not in nominal:
            raise ValueError(f"nominal lacks projection {name!r} (has {sorted(nominal)})")
        n = float(nominal[name])
        if not n > 0:
            raise ValueError(f"nominal[{name!r}] must be > 0 synapses, got {nominal[name]!r}")
        step = _vector(c["step"], f"calls[{name!r}]['step']")
        removed = _vector(c["removed"], f"calls[{name!r}]['removed']").astype(float)
        if step.shape != removed.shape:
            raise ValueError(
                f"calls[{name!r}]: 'step' and 'removed' differ in length "
                f"({step.size} vs {removed.size})"
            )
        label = str(labels.get(name, name))
        if "failed" in c and c["failed"] is not None:
            failed = _vector(c["failed"], f"calls[{name!r}]['failed']")
            if failed.shape != step.shape:
                raise ValueError(
                    f"calls[{name!r}]: 'failed' and 'step' differ in length "
                    f"({failed.size} vs {step.size})"
                )
            label = f"{label} (failed: {int(failed.sum())})"
        lines.append((label, step.astype(float), removed / n * 100.0))

    fig = _figure((7, 4.5))
    ax = fig.subplots()
    ax.set(
        title="synapses rewired per batch",
        xlabel="batch index",
        ylabel="synapses rewired per batch [% of nominal]",
    )
    if not any(p.size for _, _, p in lines):
        ax.text(0.5, 0.5, "no rewiring", ha="center", va="center", transform=ax.transAxes)
        return _save(fig, path)
    all_p = np.concatenate([p for _, _, p in lines])
    positive = all_p[np.isfinite(all_p) & (all_p > 0)]
    log = positive.size > 0 and positive.max() / positive.min() > 100.0
    for i, (label, step, p) in enumerate(lines):
        keep = p > 0 if log else slice(None)  # a log axis skips batches without rewiring
        ax.plot(step[keep], p[keep], color=f"C{i % 10}", lw=1, label=label)
    if log:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0.0)
    ax.legend(fontsize=8)
    return _save(fig, path)


# --------------------------------------------------------------------------------------------
# connectivity


def in_degree(post: Any, n_post: int) -> np.ndarray:
    """Synapses per postsynaptic neuron: ``bincount(post, minlength=n_post)``, shape (n_post,)."""
    n_post = _count(n_post, "n_post")
    return np.bincount(_indices(post, n_post, "post"), minlength=n_post)


def connectivity_snapshot(
    pre: Any, post: Any, weight: Any, n_pre: int, n_post: int
) -> dict[str, np.ndarray | int]:
    """The live synapses of one projection as CPU numpy, for :func:`plot_connectivity_histograms`.

    Args:
        pre, post: presynaptic / postsynaptic neuron indices, shape (n_syn,), torch or numpy.
        weight: synaptic weights, shape (n_syn,). n_pre, n_post: neurons in each population.

    Returns:
        ``{"pre": int64 (n_syn,), "post": int64 (n_syn,), "weight": float64 (n_syn,),
        "n_pre": int, "n_post": int}``.
    """
    return _check_snapshot(
        {"pre": pre, "post": post, "weight": weight, "n_pre": n_pre, "n_post": n_post}, "snapshot"
    )


def _check_snapshot(snap: Mapping[str, Any], name: str) -> dict[str, np.ndarray | int]:
    missing = [k for k in _SNAPSHOT_ARRAYS + _SNAPSHOT_SIZES if k not in snap]
    if missing:
        raise ValueError(f"{name} lacks key(s) {missing}")
    n_pre = _count(snap["n_pre"], f"{name}['n_pre']")
    n_post = _count(snap["n_post"], f"{name}['n_post']")
    pre = _indices(snap["pre"], n_pre, f"{name}['pre']")
    post = _indices(snap["post"], n_post, f"{name}['post']")
    weight = _vector(snap["weight"], f"{name}['weight']").astype(np.float64)
    if not pre.size == post.size == weight.size:
        raise ValueError(
            f"{name}: 'pre', 'post' and 'weight' must have equal lengths, got "
            f"{pre.size}, {post.size}, {weight.size}"
        )
    if not np.all(np.isfinite(weight)):
        raise ValueError(f"{name}['weight'] must be finite")
    return {"pre": pre, "post": post, "weight": weight, "n_pre": n_pre, "n_post": n_post}


def _degree_counts(deg: np.ndarray, top: int) -> np.ndarray:
    """Neurons with in-degree 0..top, shape (top + 1,)."""
    return np.bincount(deg, minlength=top + 1)


def _before_after(ax: Axes, edges: np.ndarray, before: np.ndarray, after: np.ndarray) -> None:
    ax.stairs(before, edges, fill=True, alpha=0.4, color="C0", label="before")
    ax.stairs(after, edges, color="C1", lw=1.5, label="after")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)


def plot_connectivity_histograms(
    before: Mapping[str, Mapping[str, np.ndarray]],
    after: Mapping[str, Mapping[str, np.ndarray]],
    path: PathLike,
    bins: int = 40,
) -> Path:
    """Weight and in-degree histograms before vs after training, one row per projection.

    Args:
        before, after: projection -> :func:`connectivity_snapshot` dict (live synapses ``pre``,
            ``post``, ``weight`` of equal length, ``n_pre``, ``n_post``). Both must name the same
            projections. path: PNG file to write. bins: weight bins (shared before/after).
    """
    if set(before) != set(after):
        raise ValueError(
            "before and after must name the same projections; only in before: "
            f"{sorted(set(before) - set(after))}, only in after: {sorted(set(after) - set(before))}"
        )
    if not before:
        raise ValueError("before and after must name at least one projection, got {}")
    names = list(before)
    snaps = [
        (
            _check_snapshot(before[n], f"before[{n!r}]"),
            _check_snapshot(after[n], f"after[{n!r}]"),
        )
        for n in names
    ]

    fig = _figure((10, 3.5 * len(names)))
    axes = fig.subplots(len(names), 2, squeeze=False)
    for r, (name, (b, a)) in enumerate(zip(names, snaps, strict=True)):
        w_edges = np.histogram_bin_edges(np.concatenate([b["weight"], a["weight"]]), bins=bins)
        ax = axes[r, 0]
        _before_after(
            ax,
            w_edges,
            np.histogram(b["weight"], w_edges)[0],
            np.histogram(a["weight"], w_edges)[0],
        )
        ax.set(title=f"{name}: weights", xlabel="weight", ylabel="synapses")

        d_b, d_a = in_degree(b["post"], b["n_post"]), in_degree(a["post"], a["n_post"])
        top = int(max(d_b.max(initial=0), d_a.max(initial=0)))
        d_edges = np.arange(top + 2) - 0.5
        ax = axes[r, 1]
        _before_after(ax, d_edges, _degree_counts(d_b, top), _degree_counts(d_a, top))
        ax.set(
            title=f"{name}: in-degree",
            xlabel="in-degree [synapses per postsynaptic neuron]",
            ylabel="neurons",
        )
    return _save(fig, path)
