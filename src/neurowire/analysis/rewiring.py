"""Statistics of rewiring: event logs, degrees, displacement maps and connectivity over time.

An **event log** is a mapping of equal-length 1-D arrays, one entry per formation or elimination:

=============  =========  ==========================================================
key            dtype      meaning
=============  =========  ==========================================================
``t_ms``       float64    model time of the event [ms]
``pre``        int64      presynaptic id
``post``       int64      postsynaptic id
``kind``       int8       +1 formation, -1 elimination
``distance``   float32    periodic pre-post distance [grid units]
``projection`` str/int    optional: which projection the event belongs to
=============  =========  ==========================================================

Grids and offsets follow :mod:`neurowire.analysis.topomap`. The connectivity-evolution figure of
Knight, Senk & Nowotny 2025 is built from :func:`event_time_distance_histogram`,
:func:`event_rates` and :class:`ConnectivityTimeline`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from .topomap import _coo, _grid_shape, _index_array, _to_numpy, map_quality

__all__ = [
    "ConnectivityTimeline",
    "DisplacementMaps",
    "check_event_log",
    "degree_stats",
    "displacement_maps",
    "event_rates",
    "event_time_distance_histogram",
    "expected_gaussian_degree",
    "profile_dx0",
    "select_projection",
]

_LOG_KEYS = ("t_ms", "pre", "post", "kind", "distance")
_KIND_NAMES = {"formation": 1, "elimination": -1, 1: 1, -1: -1}


# ---------------------------------------------------------------------------------------------
# event logs
# ---------------------------------------------------------------------------------------------


def check_event_log(log: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Validated numpy copy of an event log (see the module docstring).

    Raises ValueError naming the missing key, the key of wrong length or a bad ``kind`` value.
    """
    if not isinstance(log, Mapping):
        raise ValueError(f"log must be a mapping of arrays, got {type(log).__name__}")
    missing = [k for k in _LOG_KEYS if k not in log]
    if missing:
        raise ValueError(f"log lacks key(s) {missing}; an event log needs {list(_LOG_KEYS)}")
    out = {k: _to_numpy(v) for k, v in log.items()}
    n = out["t_ms"].shape
    for key, arr in out.items():
        if arr.ndim != 1 or arr.shape != n:
            raise ValueError(
                f"log[{key!r}] must be 1-D with the length of log['t_ms'] {n}, got {arr.shape}"
            )
    kinds = out["kind"]
    if kinds.size and not np.all((kinds == 1) | (kinds == -1)):
        bad = kinds[(kinds != 1) & (kinds != -1)][0]
        raise ValueError(f"log['kind'] must be +1 (formation) or -1 (elimination), got {bad}")
    out["t_ms"] = out["t_ms"].astype(np.float64)
    out["distance"] = out["distance"].astype(np.float64)
    return out


def select_projection(log: Mapping[str, Any], projection: Any) -> dict[str, np.ndarray]:
    """The events of one projection (needs a ``projection`` column)."""
    ev = check_event_log(log)
    if "projection" not in ev:
        raise ValueError("log has no 'projection' column to select from")
    keep = ev["projection"] == projection
    return {k: v[keep] for k, v in ev.items()}


def _kind_mask(ev: Mapping[str, np.ndarray], kind: Any) -> np.ndarray:
    if kind is None:
        return np.ones(ev["kind"].shape, dtype=bool)
    if kind not in _KIND_NAMES:
        raise ValueError(f"kind must be None, +1/'formation' or -1/'elimination', got {kind!r}")
    return ev["kind"] == _KIND_NAMES[kind]


def _positive(value: float, name: str, unit: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be > 0 [{unit}], got {value}")
    return value


def _time_edges(duration_ms: float, bin_ms: float) -> np.ndarray:
    """Edges ``0, bin, 2 bin, ..., duration`` [ms]; the last bin is shorter when needed."""
    duration_ms = _positive(duration_ms, "duration_ms", "ms")
    bin_ms = _positive(bin_ms, "bin_ms", "ms")
    n_bins = max(1, math.ceil(duration_ms / bin_ms - 1e-9))
    return np.minimum(np.arange(n_bins + 1) * bin_ms, duration_ms)


def event_rates(
    log: Mapping[str, Any],
    duration_ms: float,
    bin_ms: float = 200.0,
    kind: int | str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rewiring events per second in time bins.

    Args:
        log: event log. duration_ms: recorded model time [ms]; events outside
            ``[0, duration_ms]`` are ignored. bin_ms: bin width [ms] (the last bin may be shorter).
        kind: None for all events, +1/``"formation"`` or -1/``"elimination"``.

    Returns:
        ``(bin_edges_ms [n_bins + 1], rate_per_s [n_bins])`` with rate = count / bin width [1/s].
    """
    ev = check_event_log(log)
    edges = _time_edges(duration_ms, bin_ms)
    counts, _ = np.histogram(ev["t_ms"][_kind_mask(ev, kind)], bins=edges)
    return edges, counts / (np.diff(edges) / 1000.0)


def event_time_distance_histogram(
    log: Mapping[str, Any],
    duration_ms: float,
    bin_ms: float = 200.0,
    distance_bin: float = 1.0,
    max_distance: float | None = None,
    kind: int | str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Event counts over time and pre-post distance (the heat maps of Knight et al. 2025).

    Args:
        log: event log. duration_ms: recorded model time [ms]. bin_ms: time bin [ms].
        distance_bin: distance bin [grid units]. max_distance: upper distance edge [grid units];
            None takes the largest logged distance (at least one bin). Events beyond it, or outside
            ``[0, duration_ms]``, are ignored.
        kind: None for all events, +1/``"formation"`` or -1/``"elimination"``.

    Returns:
        ``(time_edges [n_t + 1] ms, distance_edges [n_d + 1], counts int [n_t, n_d])``.
    """
    ev = check_event_log(log)
    t_edges = _time_edges(duration_ms, bin_ms)
    distance_bin = _positive(distance_bin, "distance_bin", "grid units")
    if max_distance is None:
        max_distance = float(ev["distance"].max()) if ev["distance"].size else distance_bin
    max_distance = _positive(max_distance, "max_distance", "grid units")
    n_d = max(1, math.ceil(max_distance / distance_bin - 1e-9))
    d_edges = np.arange(n_d + 1) * distance_bin
    keep = _kind_mask(ev, kind)
    counts, _, _ = np.histogram2d(ev["t_ms"][keep], ev["distance"][keep], bins=[t_edges, d_edges])
    return t_edges, d_edges, counts.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# degrees
# ---------------------------------------------------------------------------------------------


def degree_stats(pre: Any, post: Any, n_pre: int, n_post: int) -> dict[str, float]:
    """Mean and SD (population, ddof=0) of in- and out-degree, counting neurons of degree 0.

    Args:
        pre: int [nnz] ids in ``[0, n_pre)``; post: int [nnz] ids in ``[0, n_post)``.

    Returns:
        ``{"in_mean", "in_sd", "out_mean", "out_sd", "nnz"}``; in-degree is per postsynaptic
        neuron, out-degree per presynaptic neuron (a multapse counts per copy).
    """
    n_pre, n_post = int(n_pre), int(n_post)
    if n_pre < 1 or n_post < 1:
        raise ValueError(f"n_pre and n_post must be >= 1, got {n_pre} and {n_post}")
    pre_a, post_a, _ = _coo(pre, post, n_pre, n_post)
    ind = np.bincount(post_a, minlength=n_post)
    outd = np.bincount(pre_a, minlength=n_pre)
    return {
        "in_mean": float(ind.mean()),
        "in_sd": float(ind.std()),
        "out_mean": float(outd.mean()),
        "out_sd": float(outd.std()),
        "nnz": float(pre_a.size),
    }


def expected_gaussian_degree(p_peak: float, sigma: float) -> float:
    """Expected degree ``2π · p_peak · σ²`` of pairwise Gaussian connectivity on an infinite sheet.

    Args: p_peak: connection probability at distance 0; sigma: profile width [grid units].
    (On a 16×16 torus the exact sums are 6.26 and 6.28 for the two topomap projections.)
    """
    if not 0 <= p_peak <= 1:
        raise ValueError(f"p_peak must be in [0, 1], got {p_peak}")
    sigma = _positive(sigma, "sigma", "grid units")
    return 2.0 * math.pi * p_peak * sigma**2


# ---------------------------------------------------------------------------------------------
# displacement maps
# ---------------------------------------------------------------------------------------------


class DisplacementMaps(NamedTuple):
    """Connection probability and mean weight against the torus offset (dx, dy) = post - pre.

    Shapes: ``dx`` int [n_cols] and ``dy`` int [n_rows], increasing, in ``[-n/2, n/2)``;
    ``probability``, ``mean_weight`` float [n_rows, n_cols] indexed ``[dy, dx]``; ``connected``
    int [n_rows, n_cols] connected (pre, post) pairs; ``pairs`` int [n_rows, n_cols] all pairs.
    """

    dx: np.ndarray
    dy: np.ndarray
    probability: np.ndarray
    mean_weight: np.ndarray
    connected: np.ndarray
    pairs: np.ndarray


def _offsets(n: int) -> np.ndarray:
    """The integer offsets in ``[-n/2, n/2)``, increasing."""
    return np.arange(-(n // 2), n - n // 2)


def displacement_maps(
    pre: Any, post: Any, grid: Any, weight: Any = None, autapses: bool = True
) -> DisplacementMaps:
    """Connection probability and mean weight per offset (Knight et al. 2025, methods figure C/D).

    Both layers lie on ``grid``, so every postsynaptic neuron has exactly one presynaptic partner at
    each offset: probability = connected pairs at that offset / ``n_post``. A multapse counts once
    for the probability; the mean weight averages over synapses (nan where there are none, and
    everywhere when ``weight`` is None).

    Args:
        pre, post: int [nnz] ids on ``grid``. grid: ``(n_rows, n_cols)`` of both layers.
        weight: float [nnz] or None.
        autapses: False for a recurrent projection that may not connect a neuron to itself: offset
            (0, 0) then has no candidate pairs and gets nan probability.
    """
    n_rows, n_cols = _grid_shape(grid)
    n = n_rows * n_cols
    pre_a, post_a, w = _coo(pre, post, n, n, weight)
    cx, cy = n_cols // 2, n_rows // 2
    ix = (post_a % n_cols - pre_a % n_cols + cx) % n_cols  # index into _offsets(n_cols)
    iy = (post_a // n_cols - pre_a // n_cols + cy) % n_rows
    cell = iy * n_cols + ix

    pair_id = pre_a * n + post_a
    _, first = np.unique(pair_id, return_index=True)
    connected = np.bincount(cell[first], minlength=n).reshape(n_rows, n_cols)
    pairs = np.full((n_rows, n_cols), n, dtype=np.int64)
    if not autapses:
        pairs[cy, cx] = 0
    with np.errstate(invalid="ignore", divide="ignore"):
        probability = np.where(pairs > 0, connected / np.maximum(pairs, 1), np.nan)
        if w is None:
            mean_weight = np.full((n_rows, n_cols), np.nan)
        else:
            n_syn = np.bincount(cell, minlength=n)
            w_sum = np.bincount(cell, weights=w, minlength=n)
            mean_weight = np.where(n_syn > 0, w_sum / np.maximum(n_syn, 1), np.nan)
            mean_weight = mean_weight.reshape(n_rows, n_cols)
    return DisplacementMaps(
        dx=_offsets(n_cols),
        dy=_offsets(n_rows),
        probability=probability,
        mean_weight=mean_weight,
        connected=connected,
        pairs=pairs,
    )


def profile_dx0(maps: DisplacementMaps) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dy [n_rows], probability [n_rows], mean_weight [n_rows])`` along the column dx = 0."""
    col = int(np.flatnonzero(maps.dx == 0)[0])
    return maps.dy, maps.probability[:, col].copy(), maps.mean_weight[:, col].copy()


# ---------------------------------------------------------------------------------------------
# connectivity over time
# ---------------------------------------------------------------------------------------------


class ConnectivityTimeline:
    """Derived statistics of one projection's connectivity, snapshot by snapshot.

    Only per-snapshot scalars and dx = 0 profiles are kept (plus the displacement maps of the
    first and last snapshot), never the raw connectivity, so thousands of snapshots stay small.

    Args:
        grid: ``(n_rows, n_cols)`` shared by both layers.
        feedforward: also record AD and σ_aff by connectivity and by weight
            (:func:`~neurowire.analysis.topomap.map_quality`); for source->target projections.
        autapses: passed to :func:`displacement_maps` (False for recurrent projections without
            self-connections).
        name: projection name, for ``repr`` and plot titles.

    Example::

        tl = ConnectivityTimeline((16, 16), feedforward=True, name="src->tgt")
        tl.add(t_ms, pre, post, weight)        # after every rewiring step
        a = tl.arrays()                        # a["in_mean"] [n_snapshots], a["p_dx0"] [S, n_dy]
    """

    _SCALARS = ("t_ms", "nnz", "in_mean", "in_sd", "out_mean", "out_sd",
                "ad_conn", "sigma_aff_conn", "ad_weight", "sigma_aff_weight")  # fmt: skip

    def __init__(
        self,
        grid: Any,
        feedforward: bool = False,
        autapses: bool = True,
        name: str | None = None,
    ) -> None:
        self.grid = _grid_shape(grid)
        self.feedforward = bool(feedforward)
        self.autapses = bool(autapses)
        self.name = name
        self._scalars: dict[str, list[float]] = {k: [] for k in self._SCALARS}
        self._p_dx0: list[np.ndarray] = []
        self._w_dx0: list[np.ndarray] = []
        self.initial_maps: DisplacementMaps | None = None
        self.final_maps: DisplacementMaps | None = None

    def __len__(self) -> int:
        return len(self._scalars["t_ms"])

    def __repr__(self) -> str:
        return (
            f"ConnectivityTimeline({self.name!r}, grid={self.grid}, "
            f"feedforward={self.feedforward}, snapshots={len(self)})"
        )

    def add(self, t_ms: float, pre: Any, post: Any, weight: Any = None) -> None:
        """Record one snapshot taken at model time ``t_ms`` [ms].

        Shapes: ``pre``, ``post`` int [nnz]; ``weight`` float [nnz] or None.
        """
        t_ms = float(t_ms)
        if len(self) and t_ms < self._scalars["t_ms"][-1]:
            raise ValueError(
                f"t_ms must not decrease, got {t_ms} after {self._scalars['t_ms'][-1]}"
            )
        n = self.grid[0] * self.grid[1]
        pre_a = _index_array(pre, "pre", n)
        post_a = _index_array(post, "post", n)
        maps = displacement_maps(pre_a, post_a, self.grid, weight, self.autapses)
        deg = degree_stats(pre_a, post_a, n, n)
        row = {"t_ms": t_ms, **deg}
        if self.feedforward:
            by_conn = map_quality(pre_a, post_a, self.grid)
            row["ad_conn"], row["sigma_aff_conn"] = by_conn["ad"], by_conn["sigma_aff"]
            if weight is not None:
                by_w = map_quality(pre_a, post_a, self.grid, weight)
                row["ad_weight"], row["sigma_aff_weight"] = by_w["ad"], by_w["sigma_aff"]
        for key in self._SCALARS:
            self._scalars[key].append(float(row.get(key, np.nan)))
        _, p, w = profile_dx0(maps)
        self._p_dx0.append(p)
        self._w_dx0.append(w)
        if self.initial_maps is None:
            self.initial_maps = maps
        self.final_maps = maps

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything recorded, as arrays over snapshots.

        Returns keys ``t_ms``, ``nnz``, ``in_mean``, ``in_sd``, ``out_mean``, ``out_sd``,
        ``ad_conn``, ``sigma_aff_conn``, ``ad_weight``, ``sigma_aff_weight`` (float [S]; nan where
        not measured), ``dy`` int [n_dy], ``p_dx0`` and ``w_dx0`` float [S, n_dy].
        """
        n_dy = self.grid[0]
        out = {k: np.asarray(v, dtype=np.float64) for k, v in self._scalars.items()}
        out["dy"] = _offsets(n_dy)
        out["p_dx0"] = np.asarray(self._p_dx0).reshape(-1, n_dy)
        out["w_dx0"] = np.asarray(self._w_dx0).reshape(-1, n_dy)
        return out
