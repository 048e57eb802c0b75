"""Where the synapses go: placement of a sparse projection's synapses against channel usefulness.

After DEEP R rewiring the question is whether synapses moved towards useful presynaptic neurons.
This module scores every presynaptic neuron and relates its synapse count to the score:

* scores of input channels from spike data: :func:`channel_information` (mutual information
  between a channel's spike count per trial and the class label, bits) and :func:`channel_rates`
  (mean rate, Hz; works for recorded hidden spikes too);
* synapse counts of any projection (a :class:`neurowire.RaggedSynapses` store, a
  ``(pre, post, n_pre, n_post)`` COO tuple or a dense weight matrix): :func:`synapses_per_pre`
  (out-degree, synapses in a presynaptic neuron's row) and :func:`synapses_per_post` (in-degree);
* the relation, before vs after training: :func:`placement_stats` / :func:`placement_report`
  (Spearman rank correlation, share of synapses on the top-scoring presynaptic neurons) and the
  figure :func:`plot_synapse_placement`.

Spike data can be a ``[B, T, n]`` tensor/array with labels ``[B]``, a dataset (anything with
``len()`` and indexing) yielding ``(spikes [T, n], label)`` samples, or an iterable of such samples
or of ``(spikes [B, T, n], labels [B])`` batches (e.g. a ``DataLoader``). Only the spike count of
every trial and channel is kept (:class:`TrialCounts`, int64 ``[n_trials, n]``), so a dataset is
read one sample or batch at a time; :func:`trial_counts` does this once for several analyses.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator
from scipy import stats

from .training import PathLike, _figure, _save

__all__ = [
    "PlacementReport",
    "PlacementStats",
    "TrialCounts",
    "channel_information",
    "channel_rates",
    "placement_report",
    "placement_stats",
    "plot_synapse_placement",
    "synapses_per_post",
    "synapses_per_pre",
    "trial_counts",
]

_CORRECTIONS = (None, "miller_madow", "shuffle")


# --------------------------------------------------------------------------------------------
# spike counts per trial


@dataclass(frozen=True)
class TrialCounts:
    """Spike counts of every trial and channel.

    Attributes:
        counts: int64 ``[n_trials, n_channels]``, spikes of each channel summed over a trial.
        steps: int64 ``[n_trials]``, time steps of each trial.
        labels: int64 ``[n_trials]`` class labels, or None when the data had none.
    """

    counts: np.ndarray
    steps: np.ndarray
    labels: np.ndarray | None

    @property
    def n_trials(self) -> int:
        return int(self.counts.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.counts.shape[1])


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _is_array(x: Any) -> bool:
    return isinstance(x, (torch.Tensor, np.ndarray))


def _spike_counts(spikes: Any, name: str) -> tuple[np.ndarray, int]:
    """Counts ``spikes [..., T, n]`` over T: (int64 ``[..., n]``, T); checks the values."""
    if isinstance(spikes, torch.Tensor):
        if spikes.dtype == torch.bool:
            return spikes.sum(dim=-2).cpu().numpy().astype(np.int64), int(spikes.shape[-2])
        x = spikes.detach()
        if x.is_complex():
            raise ValueError(f"{name} must hold spike counts (bool or numbers), got complex")
        if x.numel() and (not bool(torch.isfinite(x).all()) or bool((x < 0).any())):
            raise ValueError(f"{name} must hold finite, non-negative spike counts")
        if x.is_floating_point() and x.numel() and bool((x != torch.round(x)).any()):
            raise ValueError(f"{name} must hold whole spike counts (0/1 or integers)")
        return x.sum(dim=-2).cpu().numpy().astype(np.int64), int(x.shape[-2])
    x = np.asarray(spikes)
    if x.dtype == bool:
        return x.sum(axis=-2, dtype=np.int64), int(x.shape[-2])
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"{name} must hold spike counts (bool or numbers), got dtype {x.dtype}")
    if x.size and (not np.all(np.isfinite(x)) or x.min() < 0):
        raise ValueError(f"{name} must hold finite, non-negative spike counts")
    if np.issubdtype(x.dtype, np.floating) and x.size and np.any(x != np.round(x)):
        raise ValueError(f"{name} must hold whole spike counts (0/1 or integers)")
    return x.sum(axis=-2).astype(np.int64), int(x.shape[-2])


def _label_array(labels: Any, name: str) -> np.ndarray:
    arr = _numpy(labels)
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise ValueError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and arr.size:
        if not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise ValueError(f"{name} must hold integer class labels, got non-integral floats")
    return arr.astype(np.int64)


def _from_array(spikes: Any, labels: Any) -> TrialCounts:
    shape = tuple(spikes.shape)
    if len(shape) != 3:
        raise ValueError(f"spikes must be [B, T, n_channels] (3-D), got shape {shape}")
    counts, steps = _spike_counts(spikes, "spikes")
    lab = None
    if labels is not None:
        lab = _label_array(labels, "labels")
        if lab.shape != (shape[0],):
            raise ValueError(
                f"labels must have shape ({shape[0]},), one class per trial of spikes "
                f"{shape}, got {lab.shape}"
            )
    return TrialCounts(counts, np.full(shape[0], steps, dtype=np.int64), lab)


def _items(data: Any) -> Iterable[Any]:
    if hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        return (data[i] for i in range(len(data)))
    if isinstance(data, Iterable):
        return data
    raise ValueError(
        "spikes must be a [B, T, n] tensor/array, a dataset of (spikes, label) samples or an "
        f"iterable of (spikes, labels) batches, got {type(data).__name__}"
    )


def _from_items(data: Any) -> TrialCounts:
    counts: list[np.ndarray] = []
    steps: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    n_ch = None
    for i, item in enumerate(_items(data)):
        name = f"spikes[{i}]"
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ValueError(f"{name} must be a (spikes, label) pair, got {type(item).__name__}")
        x, y = item
        ndim = len(getattr(x, "shape", np.shape(x)))
        if ndim not in (2, 3):
            raise ValueError(
                f"{name}: spikes must be [T, n] (one trial) or [B, T, n] (a batch), got shape "
                f"{tuple(np.shape(x))}"
            )
        c, t = _spike_counts(x, name)
        c = c.reshape(-1, c.shape[-1])
        lab = _label_array(y, f"{name} label").reshape(-1)
        if lab.size != c.shape[0] or (ndim == 2 and _numpy(y).ndim != 0):
            raise ValueError(
                f"{name}: expected one class label per trial ({c.shape[0]}), got label shape "
                f"{_numpy(y).shape} (labels must be class ids, not per-step targets)"
            )
        if n_ch is None:
            n_ch = c.shape[1]
        elif c.shape[1] != n_ch:
            raise ValueError(f"{name} has {c.shape[1]} channels, earlier samples {n_ch}")
        counts.append(c)
        steps.append(np.full(c.shape[0], t, dtype=np.int64))
        labels.append(lab)
    if not counts:
        raise ValueError("spikes holds no trials")
    return TrialCounts(np.concatenate(counts), np.concatenate(steps), np.concatenate(labels))


def trial_counts(spikes: Any, labels: Any = None) -> TrialCounts:
    """Spike count of every trial and channel, read one sample or batch at a time.

    Args:
        spikes: bool/integer/0-1 float ``[B, T, n]`` tensor or array (then ``labels`` is
            ``[B]`` or None), a dataset with ``len()`` and indexing that yields
            ``(spikes [T, n], label)`` (e.g. :class:`neurowire.data.SpikeDataset`), or an
            iterable of such samples or of ``(spikes [B, T, n], labels [B])`` batches; a
            :class:`TrialCounts` is returned as it is.
        labels: class labels ``[B]`` for an array ``spikes``; must be None otherwise.

    Returns:
        :class:`TrialCounts` (counts int64 ``[n_trials, n]``, steps ``[n_trials]``, labels).
    """
    if isinstance(spikes, TrialCounts):
        if labels is not None:
            raise ValueError("labels must be None when spikes is a TrialCounts (it has its own)")
        return spikes
    if _is_array(spikes):
        out = _from_array(spikes, labels)
    else:
        if labels is not None:
            raise ValueError(
                "labels must be None when spikes is a dataset or an iterable: its "
                "(spikes, label) items carry the labels"
            )
        out = _from_items(spikes)
    if out.n_trials == 0:
        raise ValueError("spikes holds no trials")
    return out


# --------------------------------------------------------------------------------------------
# channel scores


def channel_rates(spikes: Any, dt: float, labels: Any = None) -> np.ndarray:
    """Mean firing rate [Hz] of every channel over all trials, float64 ``[n]``.

    ``rate = total spikes / (total steps * dt / 1000)``. Any spike data :func:`trial_counts`
    accepts: input spikes, or recorded hidden spikes ``[B, T, n_hidden]`` for neuron rates.

    Args:
        spikes: spike data or :class:`TrialCounts`. dt: time step [ms], > 0.
        labels: only for an array ``spikes`` (checked, not used).
    """
    dt = float(dt)
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a time step > 0 in ms, got {dt!r}")
    tc = trial_counts(spikes, labels)
    duration_s = float(tc.steps.sum()) * dt / 1000.0
    return tc.counts.sum(axis=0).astype(np.float64) / duration_s


def _levels(counts: np.ndarray, bins: int | None) -> np.ndarray:
    """Discretised counts, int64 ``[N, C]``: per channel a level in ``[0, min(bins, N))``."""
    out = np.empty(counts.shape, dtype=np.int64)
    q = None if bins is None else np.linspace(0.0, 1.0, bins + 1)[1:-1]
    for ch in range(counts.shape[1]):
        col = counts[:, ch]
        values = np.unique(col)
        if q is None or values.size <= bins:
            out[:, ch] = np.searchsorted(values, col)
        else:
            edges = np.unique(np.quantile(col, q))
            out[:, ch] = np.searchsorted(edges, col, side="right")
    return out


def _plugin_information(
    levels: np.ndarray, labels: np.ndarray, n_levels: int, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Plug-in MI [bits] per channel and the first-order (Miller-Madow) bias per channel."""
    n, n_ch = levels.shape
    idx = (np.arange(n_ch)[None, :] * n_levels + levels) * n_classes + labels[:, None]
    joint = np.bincount(idx.ravel(), minlength=n_ch * n_levels * n_classes)
    joint = joint.reshape(n_ch, n_levels, n_classes).astype(np.float64) / n
    p_level = joint.sum(axis=2, keepdims=True)
    p_class = joint.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = joint * np.log2(joint / (p_level * p_class))
    mi = np.where(joint > 0, terms, 0.0).sum(axis=(1, 2))
    occupied_per_class = (joint > 0).sum(axis=1)  # [n_ch, n_classes]: R_c
    occupied = (p_level[..., 0] > 0).sum(axis=1)  # [n_ch]: R
    present = occupied_per_class > 0
    bias = (np.where(present, occupied_per_class - 1, 0).sum(axis=1) - (occupied - 1)) / (
        2.0 * n * math.log(2.0)
    )
    return mi, bias


def channel_information(
    spikes: Any,
    labels: Any = None,
    n_classes: int | None = None,
    bins: int | None = 8,
    correction: str | None = None,
    n_shuffles: int = 20,
    seed: int | None = 0,
) -> np.ndarray:
    """Mutual information [bits] between each channel's spike count per trial and the class.

    Discretisation: per channel, the count of every trial is replaced by its level. A channel
    with at most ``bins`` distinct counts keeps them (one level per count); otherwise the levels
    are ``bins`` equal-occupancy bins between the count quantiles ``1/bins, ..., (bins-1)/bins``
    over all trials (equal counts always share a level, so a bin may hold more than ``1/bins``
    of the trials). ``bins=None`` keeps every distinct count.

    Estimator: plug-in ``I = sum p(x, y) log2(p(x, y) / (p(x) p(y)))`` over the empirical joint
    distribution of level ``x`` and class ``y``. It lies in ``[0, log2(n_classes)]`` and is
    biased upwards with few trials: to first order by
    ``(sum_c (R_c - 1) - (R - 1)) / (2 N ln 2)`` bits (``R_c``: occupied levels in class ``c``,
    ``R``: occupied levels, ``N``: trials), at most about
    ``(bins - 1)(n_classes - 1) / (2 N ln 2)`` for an uninformative channel, e.g. 0.019 bits for
    8 bins, 4 classes and 800 trials. ``correction`` subtracts an estimate of it.

    Args:
        spikes: any data :func:`trial_counts` accepts (``[B, T, n]`` with ``labels``, a dataset,
            an iterable of samples or batches, a :class:`TrialCounts` with labels).
        labels: int class labels ``[B]`` for an array ``spikes``; None otherwise.
        n_classes: number of classes; labels must lie in ``[0, n_classes)``. None: max label + 1.
        bins: most levels per channel (>= 2), or None for every distinct count.
        correction: None (plug-in), ``"miller_madow"`` (subtract the first-order bias above) or
            ``"shuffle"`` (subtract the mean plug-in MI over ``n_shuffles`` random permutations
            of the labels, drawn from ``seed``; this null bias exceeds the bias of a strongly
            informative channel, which it therefore slightly underestimates). Corrected values
            of uninformative channels scatter around 0 and can be negative.

    Returns:
        float64 ``[n]``, bits per channel.
    """
    if bins is not None and (isinstance(bins, bool) or int(bins) != bins or bins < 2):
        raise ValueError(f"bins must be an integer >= 2 or None, got {bins!r}")
    if correction not in _CORRECTIONS:
        raise ValueError(f"correction must be one of {_CORRECTIONS}, got {correction!r}")
    if correction == "shuffle" and (isinstance(n_shuffles, bool) or int(n_shuffles) < 1):
        raise ValueError(f"n_shuffles must be an integer >= 1, got {n_shuffles!r}")
    tc = trial_counts(spikes, labels)
    if tc.labels is None:
        raise ValueError("labels are needed: pass labels [B] with a spike array")
    lab = tc.labels
    if lab.size and lab.min() < 0:
        raise ValueError(f"labels must be class ids >= 0, got {int(lab.min())}")
    top = int(lab.max()) if lab.size else -1
    if n_classes is None:
        n_classes = top + 1
    elif isinstance(n_classes, bool) or int(n_classes) != n_classes or n_classes < 1:
        raise ValueError(f"n_classes must be an integer >= 1, got {n_classes!r}")
    elif top >= n_classes:
        raise ValueError(f"labels must lie in [0, n_classes={n_classes}), got label {top}")
    n_classes = int(n_classes)

    levels = _levels(tc.counts, None if bins is None else int(bins))
    n_levels = int(levels.max()) + 1 if levels.size else 1
    mi, bias = _plugin_information(levels, lab, n_levels, n_classes)
    if correction == "miller_madow":
        mi = mi - bias
    elif correction == "shuffle":
        rng = np.random.default_rng(seed)
        null = np.zeros_like(mi)
        for _ in range(int(n_shuffles)):
            null += _plugin_information(levels, rng.permutation(lab), n_levels, n_classes)[0]
        mi = mi - null / int(n_shuffles)
    return mi


# --------------------------------------------------------------------------------------------
# synapse counts


def _ids(x: Any, n: int, name: str) -> np.ndarray:
    arr = _numpy(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of neuron ids, got shape {arr.shape}")
    if arr.size and (arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer)):
        if arr.dtype == bool or not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise ValueError(f"{name} must hold integer neuron ids, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ValueError(f"{name} must lie in [0, {n}), got ids in [{arr.min()}, {arr.max()}]")
    return arr


def _size(n: Any, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {n!r}")
    return int(n)


def _pairs(projection: Any, recurrent: bool) -> tuple[np.ndarray, np.ndarray, int, int]:
    """``(pre, post, n_pre, n_post)`` of the synapses of any supported projection form."""
    from ..store import RaggedSynapses

    if isinstance(projection, RaggedSynapses):
        pre_t, post_t = projection.coo()
        pre, post = pre_t.cpu().numpy(), post_t.cpu().numpy()
        n_pre, n_post = projection.n_pre, projection.n_post
    elif isinstance(projection, Mapping):
        missing = [k for k in ("pre", "post", "n_pre", "n_post") if k not in projection]
        if missing:
            raise ValueError(f"projection lacks key(s) {missing}")
        n_pre = _size(projection["n_pre"], "projection['n_pre']")
        n_post = _size(projection["n_post"], "projection['n_post']")
        pre = _ids(projection["pre"], n_pre, "projection['pre']")
        post = _ids(projection["post"], n_post, "projection['post']")
    elif isinstance(projection, tuple):
        if len(projection) != 4:
            raise ValueError(
                f"projection tuple must be (pre, post, n_pre, n_post), got {len(projection)} items"
            )
        n_pre = _size(projection[2], "projection n_pre")
        n_post = _size(projection[3], "projection n_post")
        pre = _ids(projection[0], n_pre, "projection pre")
        post = _ids(projection[1], n_post, "projection post")
    elif _is_array(projection):
        w = _numpy(projection)
        if w.ndim != 2:
            raise ValueError(
                f"projection as a dense matrix must be [n_pre, n_post] (2-D), got shape {w.shape}"
            )
        n_pre, n_post = w.shape
        pre, post = np.nonzero(w)
    else:
        raise ValueError(
            "projection must be a RaggedSynapses store, a (pre, post, n_pre, n_post) tuple, a "
            f"snapshot mapping or a dense [n_pre, n_post] matrix, got {type(projection).__name__}"
        )
    if pre.size != post.size:
        raise ValueError(
            f"projection pre and post must have equal lengths, got {pre.size} and {post.size}"
        )
    if recurrent:
        if n_pre != n_post:
            raise ValueError(
                "recurrent=True needs a square projection (n_pre == n_post), got "
                f"{n_pre} x {n_post}"
            )
        keep = pre != post
        pre, post = pre[keep], post[keep]
    return pre.astype(np.int64), post.astype(np.int64), int(n_pre), int(n_post)


def synapses_per_pre(projection: Any, recurrent: bool = False) -> np.ndarray:
    """Synapses leaving each presynaptic neuron (out-degree, the row length), int64 ``[n_pre]``.

    For an input projection: how many hidden neurons each input channel feeds.

    Args:
        projection: a :class:`neurowire.RaggedSynapses` store (its live synapses), a
            ``(pre, post, n_pre, n_post)`` COO tuple (or a mapping with those keys, e.g. a
            :func:`connectivity_snapshot`), or a dense weight matrix ``[n_pre, n_post]`` (tensor
            or array; every nonzero entry is a synapse).
        recurrent: the projection maps a population onto itself and self-connections are no
            synapses: pairs ``(i, i)`` are not counted (the diagonal of a dense recurrent matrix
            is masked in simulation whatever it holds). Needs ``n_pre == n_post``.
    """
    pre, _, n_pre, _ = _pairs(projection, recurrent)
    return np.bincount(pre, minlength=n_pre)


def synapses_per_post(projection: Any, recurrent: bool = False) -> np.ndarray:
    """Synapses arriving at each postsynaptic neuron (in-degree), int64 ``[n_post]``.

    Arguments as :func:`synapses_per_pre`.
    """
    _, post, _, n_post = _pairs(projection, recurrent)
    return np.bincount(post, minlength=n_post)


# --------------------------------------------------------------------------------------------
# placement statistics


@dataclass(frozen=True)
class PlacementStats:
    """How the synapses of one projection sit relative to a score of its presynaptic neurons.

    Attributes:
        rho: Spearman rank correlation of synapses per presynaptic neuron with the score (nan
            when either is constant). p_value: its two-sided p-value (nan likewise).
        top_share: fraction of the synapses whose presynaptic neuron is in the top set (nan
            without synapses).
        chance_share: fraction of presynaptic neurons in the top set, the ``top_share`` of
            synapses spread without regard to the score.
        n_top: presynaptic neurons in the top set. n_synapses: synapses counted.
    """

    rho: float
    p_value: float
    top_share: float
    chance_share: float
    n_top: int
    n_synapses: int


def _top_set(score: np.ndarray, top_fraction: float) -> np.ndarray:
    """Mask of the ``ceil(top_fraction * n)`` highest scores; ties at the boundary all join."""
    k = max(1, math.ceil(top_fraction * score.size - 1e-9))
    threshold = np.sort(score)[::-1][k - 1]
    return score >= threshold


def _score(score: Any, n: int, name: str) -> np.ndarray:
    arr = _numpy(score).astype(np.float64)
    if arr.shape != (n,):
        raise ValueError(
            f"{name} must have shape ({n},), one value per presynaptic neuron, got {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


def _check_fraction(top_fraction: float) -> float:
    f = float(top_fraction)
    if not 0.0 < f <= 1.0:
        raise ValueError(f"top_fraction must lie in (0, 1], got {top_fraction!r}")
    return f


def _stats(degree: np.ndarray, score: np.ndarray, top_fraction: float) -> PlacementStats:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: nan, which is what we report
        res = stats.spearmanr(degree, score)
    top = _top_set(score, top_fraction)
    total = int(degree.sum())
    return PlacementStats(
        rho=float(res.statistic),
        p_value=float(res.pvalue),
        top_share=float(degree[top].sum() / total) if total else float("nan"),
        chance_share=float(top.mean()),
        n_top=int(top.sum()),
        n_synapses=total,
    )


def placement_stats(
    projection: Any,
    score: Any,
    top_fraction: float = 0.1,
    recurrent: bool = False,
    name: str = "score",
) -> PlacementStats:
    """Synapses per presynaptic neuron (:func:`synapses_per_pre`) against a score of that neuron.

    Args:
        projection: any form :func:`synapses_per_pre` accepts. recurrent: as there.
        score: float ``[n_pre]``, e.g. :func:`channel_information` [bits] or a rate [Hz].
        top_fraction: the top set is the ``ceil(top_fraction * n_pre)`` highest-scoring
            presynaptic neurons, plus any tied with the last of them (0.1: top decile).
        name: names ``score`` in error messages.
    """
    top_fraction = _check_fraction(top_fraction)
    degree = synapses_per_pre(projection, recurrent)
    return _stats(degree, _score(score, degree.size, name), top_fraction)


@dataclass(frozen=True)
class PlacementReport:
    """Placement before vs after training; a field is None when its score was not given.

    Attributes:
        information_before, information_after: input synapses per channel vs channel
            information [bits].
        rate_before, rate_after: input synapses per channel vs channel rate [Hz].
        recurrent_before, recurrent_after: recurrent synapses per hidden neuron (as presynaptic
            source) vs that neuron's rate [Hz].
        top_fraction: fraction of presynaptic neurons in each top set.
    """

    information_before: PlacementStats | None
    information_after: PlacementStats | None
    rate_before: PlacementStats | None
    rate_after: PlacementStats | None
    recurrent_before: PlacementStats | None
    recurrent_after: PlacementStats | None
    top_fraction: float

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (floats, ints, None), e.g. for JSON."""
        return asdict(self)


def placement_report(
    before: Any,
    after: Any,
    information: Any = None,
    rate: Any = None,
    *,
    recurrent_before: Any = None,
    recurrent_after: Any = None,
    hidden_rate: Any = None,
    top_fraction: float = 0.1,
) -> PlacementReport:
    """Did rewiring move synapses towards informative / active presynaptic neurons?

    Args:
        before, after: the input projection before and after training, any form
            :func:`synapses_per_pre` accepts (same ``n_pre``).
        information: channel information [bits] ``[n_in]`` (:func:`channel_information`).
        rate: channel rate [Hz] ``[n_in]`` (:func:`channel_rates`).
        recurrent_before, recurrent_after: the recurrent projection (self-connections are not
            counted), both or neither; then ``hidden_rate`` [Hz] ``[n_hidden]`` is needed, the
            rates of the hidden neurons (one set, used for both, e.g. of the trained network).
        top_fraction: fraction of presynaptic neurons in the top set (0.1: top decile).

    Returns:
        :class:`PlacementReport` of :class:`PlacementStats` per score and state.
    """
    top_fraction = _check_fraction(top_fraction)
    if information is None and rate is None and recurrent_before is None:
        raise ValueError("give at least one of information, rate or the recurrent projections")
    fields: dict[str, PlacementStats | None] = {}
    deg_b, deg_a = synapses_per_pre(before), synapses_per_pre(after)
    if deg_b.size != deg_a.size:
        raise ValueError(
            f"before and after must have the same presynaptic size, got {deg_b.size} and "
            f"{deg_a.size}"
        )
    for key, score in (("information", information), ("rate", rate)):
        s = None if score is None else _score(score, deg_b.size, key)
        fields[f"{key}_before"] = None if s is None else _stats(deg_b, s, top_fraction)
        fields[f"{key}_after"] = None if s is None else _stats(deg_a, s, top_fraction)
    fields["recurrent_before"] = fields["recurrent_after"] = None
    names = ("recurrent_before", "recurrent_after", "hidden_rate")
    missing = [
        n
        for n, x in zip(names, (recurrent_before, recurrent_after, hidden_rate), strict=True)
        if x is None
    ]
    if 0 < len(missing) < 3:
        raise ValueError(f"{', '.join(names)} go together; missing: {', '.join(missing)}")
    if not missing:
        rec_b = synapses_per_pre(recurrent_before, recurrent=True)
        rec_a = synapses_per_pre(recurrent_after, recurrent=True)
        if rec_b.size != rec_a.size:
            raise ValueError(
                "recurrent_before and recurrent_after must have the same size, got "
                f"{rec_b.size} and {rec_a.size}"
            )
        s = _score(hidden_rate, rec_b.size, "hidden_rate")
        fields["recurrent_before"] = _stats(rec_b, s, top_fraction)
        fields["recurrent_after"] = _stats(rec_a, s, top_fraction)
    return PlacementReport(top_fraction=top_fraction, **fields)


# --------------------------------------------------------------------------------------------
# figure


def _scatter_before_after(
    ax: Axes, score: np.ndarray, deg_b: np.ndarray, deg_a: np.ndarray, top_fraction: float
) -> None:
    for deg, label, colour, marker in ((deg_b, "before", "C0", "o"), (deg_a, "after", "C1", "^")):
        st = _stats(deg, score, top_fraction)
        rho = "undefined (constant)" if math.isnan(st.rho) else f"{st.rho:.2f}"
        ax.scatter(
            score,
            deg,
            s=14,
            alpha=0.6,
            color=colour,
            marker=marker,
            label=f"{label}: ρ = {rho}, {st.top_share:.0%} of synapses on top "
            f"{top_fraction:.0%} (chance {st.chance_share:.0%})",
        )
    threshold = float(score[_top_set(score, top_fraction)].min())
    ax.axvline(threshold, color="0.5", ls="--", lw=1, label=f"top {top_fraction:.0%} boundary")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7)


def plot_synapse_placement(
    before: Any,
    after: Any,
    path: PathLike,
    information: Any = None,
    rate: Any = None,
    *,
    recurrent_before: Any = None,
    recurrent_after: Any = None,
    hidden_rate: Any = None,
    top_fraction: float = 0.1,
) -> Path:
    """Synapses per presynaptic neuron against its score, before (blue) vs after (orange).

    Panels, each drawn when its data is given: input synapses per channel vs channel
    information [bits]; vs channel rate [Hz]; recurrent synapses per hidden neuron (as
    presynaptic source, self-connections not counted) vs the neuron's rate [Hz]. Legends give
    Spearman's rho and the share of synapses on the top ``top_fraction`` (dashed line: its
    boundary).

    Args:
        before, after: the input projection before and after training. path: PNG file to write.
        Other arguments as :func:`placement_report`.
    """
    report = placement_report(
        before,
        after,
        information,
        rate,
        recurrent_before=recurrent_before,
        recurrent_after=recurrent_after,
        hidden_rate=hidden_rate,
        top_fraction=top_fraction,
    )  # validates everything
    deg_b, deg_a = synapses_per_pre(before), synapses_per_pre(after)
    panels = []
    if information is not None:
        panels.append(
            (
                _score(information, deg_b.size, "information"),
                deg_b,
                deg_a,
                "input synapses vs channel information",
                "channel information I(spike count; class) [bits]",
                "input synapses per channel",
            )
        )
    if rate is not None:
        panels.append(
            (
                _score(rate, deg_b.size, "rate"),
                deg_b,
                deg_a,
                "input synapses vs channel rate",
                "channel rate [Hz]",
                "input synapses per channel",
            )
        )
    if report.recurrent_before is not None:
        rec_b = synapses_per_pre(recurrent_before, recurrent=True)
        panels.append(
            (
                _score(hidden_rate, rec_b.size, "hidden_rate"),
                rec_b,
                synapses_per_pre(recurrent_after, recurrent=True),
                "recurrent synapses vs hidden rate",
                "hidden neuron rate [Hz]",
                "recurrent synapses per hidden neuron (outgoing)",
            )
        )
    fig = _figure((5.0 * len(panels), 4.5))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (score, b, a, title, xlabel, ylabel) in zip(axes, panels, strict=True):
        _scatter_before_after(ax, score, b, a, report.top_fraction)
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return _save(fig, path)
