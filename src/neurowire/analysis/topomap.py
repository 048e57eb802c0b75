"""Topographic-map measures of Bamford et al. (2010): receptive-field centre, spread, AD, σ_aff.

Conventions (Bamford et al. 2010; Knight, Senk & Nowotny 2025):

* a grid ``(n_rows, n_cols)`` places neuron ``id`` at column ``x = id % n_cols`` and row
  ``y = id // n_cols``; source and target layers of a feed-forward projection share the grid, and
  target ``j`` sits at the same coordinates as source ``j``;
* per-axis offsets on the torus are wrapped into ``[-n/2, n/2)``; distances are Euclidean and in
  grid spacings;
* connectivity is COO: ``pre`` int ``[nnz]``, ``post`` int ``[nnz]``, optional ``weight`` float
  ``[nnz]``; numpy arrays and torch tensors are both accepted, all arithmetic is float64 numpy.

For each target neuron ``j`` a mass ``m(i)`` on the source grid (connection counts or weights) gives
marginal profiles over columns and rows. Per axis the receptive-field centre is

    c* = argmin_c  Σ_i m(i) · d_periodic(i, c)²,   c ∈ {0, r, 2r, ...} ⊂ [0, n),  r = resolution,

and the spread is the RMS periodic distance at ``c*``. Exact ties (frequent with integer counts or
equal weights, when the continuous minimiser lies halfway between two candidates) go to the
smallest candidate; the reference script breaks them by rounding noise instead, which moves mean AD
by a few thousandths but never σ_aff. ``σ_aff(j)`` is the mean of the two spreads
and ``AD(j)`` the periodic Euclidean distance of ``c*(j)`` from ``j``'s own position.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from scipy import stats

__all__ = [
    "RFResult",
    "SignificanceResult",
    "bamford_initial_connectivity",
    "map_quality",
    "periodic_offset",
    "receptive_fields",
    "significance_vs_control",
    "significance_vs_shuffled",
    "shuffle_within_post",
]

# Largest float64 block (elements) of the [neurons, candidates] objective evaluated at once.
_BLOCK_ELEMENTS = 4_000_000
# Objectives within this fraction of total_mass * (n/2)^2 of the minimum count as tied.
_TIE_RTOL = 1e-11


# ---------------------------------------------------------------------------------------------
# input coercion shared by the analysis modules
# ---------------------------------------------------------------------------------------------


def _to_numpy(a: Any) -> np.ndarray:
    """A numpy view/copy of a numpy array, torch tensor or sequence."""
    if hasattr(a, "detach"):  # torch.Tensor without importing torch
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _grid_shape(grid: Any, name: str = "grid") -> tuple[int, int]:
    """``(n_rows, n_cols)`` from a tuple or a :class:`neurowire.grid.Grid`-like object."""
    shape = getattr(grid, "shape", grid)
    try:
        n_rows, n_cols = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (n_rows, n_cols), got {grid!r}") from None
    if n_rows < 1 or n_cols < 1:
        raise ValueError(f"{name} sides must be >= 1, got {n_rows} x {n_cols}")
    return n_rows, n_cols


def _index_array(a: Any, name: str, n: int | None = None) -> np.ndarray:
    """int64 1-D copy of ``a``; ValueError naming ``name`` for a bad shape, value or range."""
    arr = _to_numpy(a)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise ValueError(f"{name} must hold integer ids, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        if arr.size and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise ValueError(f"{name} must hold integer ids, got non-integral floats")
    arr = arr.astype(np.int64)
    if n is not None and arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= n:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} holds id {bad}, outside [0, {n}) of the grid")
    return arr


def _float_array(a: Any, name: str, size: int) -> np.ndarray:
    """float64 1-D copy of ``a`` of length ``size``."""
    arr = _to_numpy(a).astype(np.float64)
    if arr.ndim != 1 or arr.size != size:
        raise ValueError(
            f"{name} must have shape [{size}] (one value per synapse), got {arr.shape}"
        )
    return arr


def _coo(
    pre: Any, post: Any, n_pre: int, n_post: int, weight: Any = None, weight_name: str = "weight"
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Checked ``(pre, post, weight)``: int64 ids in range, equal lengths, float64 weights."""
    pre_a = _index_array(pre, "pre", n_pre)
    post_a = _index_array(post, "post", n_post)
    if pre_a.size != post_a.size:
        raise ValueError(
            f"pre and post must have equal lengths, got {pre_a.size} and {post_a.size}"
        )
    w = None if weight is None else _float_array(weight, weight_name, pre_a.size)
    return pre_a, post_a, w


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _nanmean(a: np.ndarray) -> float:
    """Mean of the finite entries of ``a``; nan (without a warning) when there are none."""
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else float("nan")


def periodic_offset(d: Any, n: float) -> np.ndarray:
    """Offsets ``d`` on a ring of ``n`` sites wrapped into ``[-n/2, n/2)`` (float64 array)."""
    d = np.asarray(d, dtype=np.float64)
    return (d + n / 2) % n - n / 2


# ---------------------------------------------------------------------------------------------
# receptive fields
# ---------------------------------------------------------------------------------------------


class RFResult(NamedTuple):
    """Receptive fields of every target neuron.

    Shapes: ``centre`` [n_post, 2] and ``spread`` [n_post, 2] as (x, y) in grid units;
    ``ad``, ``sigma_aff`` float [n_post] (nan where ``empty``); ``empty`` bool [n_post]
    (no afferent mass).
    """

    centre: np.ndarray
    spread: np.ndarray
    ad: np.ndarray
    sigma_aff: np.ndarray
    empty: np.ndarray


def _centre_1d(
    profile: np.ndarray, total: np.ndarray, resolution: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row argmin centre and RMS spread of periodic 1-D mass profiles.

    Shapes: ``profile`` [N, n], ``total`` [N] (> 0 where used). Returns centre, spread [N]; rows
    with zero total get nan.
    """
    n_neurons, n = profile.shape
    cands = np.arange(0, n, resolution)  # [n_c]
    d2 = periodic_offset(np.arange(n)[:, None] - cands[None, :], n) ** 2  # [n, n_c]
    centre = np.full(n_neurons, np.nan)
    spread = np.full(n_neurons, np.nan)
    block = max(1, _BLOCK_ELEMENTS // max(1, cands.size))
    for s in range(0, n_neurons, block):
        sl = slice(s, min(n_neurons, s + block))
        objective = profile[sl] @ d2  # [b, n_c]: Σ_i m_i d(i, c)²
        # Exact ties are common (integer counts, equal weights): the continuous minimiser sits
        # halfway between two candidates. Take the first candidate within rounding of the minimum
        # so the choice does not depend on summation order.
        tol = _TIE_RTOL * total[sl] * (n / 2) ** 2
        near = objective <= objective.min(axis=1, keepdims=True) + tol[:, None]
        best = np.argmax(near, axis=1)
        centre[sl] = cands[best]
        ok = total[sl] > 0
        var = objective[np.arange(best.size), best] / np.where(ok, total[sl], 1.0)
        spread[sl] = np.where(ok, np.sqrt(np.maximum(var, 0.0)), np.nan)
    centre[~(total > 0)] = np.nan
    return centre, spread


def receptive_fields(
    pre: Any,
    post: Any,
    grid: Any,
    mass: Any = None,
    resolution: float = 0.1,
) -> RFResult:
    """Receptive-field centre, spread, AD and σ_aff of every target neuron (Bamford et al. 2010).

    Args:
        pre: int [nnz], source ids on ``grid``.
        post: int [nnz], target ids on the same ``grid``.
        grid: ``(n_rows, n_cols)`` shared by source and target layers (or a ``Grid``).
        mass: None to measure by connection counts (a multapse counts twice), or float [nnz]
            non-negative weights to measure by weight.
        resolution: spacing of the candidate centres in ``[0, n)`` [grid units].

    Returns:
        :class:`RFResult`; neurons without afferent mass are flagged ``empty`` and get nan
        centre, spread, AD and σ_aff.

    Mass at a periodic distance of exactly ``n/2`` from a candidate counts at distance ``n/2``.
    Vectorised over neurons and candidates; neurons are processed in blocks to bound memory.
    """
    n_rows, n_cols = _grid_shape(grid)
    if not np.isfinite(resolution) or resolution <= 0:
        raise ValueError(f"resolution must be > 0 [grid units], got {resolution}")
    n = n_rows * n_cols
    pre_a, post_a, w = _coo(pre, post, n, n, mass, "mass")
    if w is not None and np.any(~np.isfinite(w) | (w < 0)):
        raise ValueError("mass must be finite and non-negative (weights), got a negative or nan")
    m = np.ones(pre_a.size) if w is None else w

    prof_x = np.bincount(post_a * n_cols + pre_a % n_cols, weights=m, minlength=n * n_cols)
    prof_y = np.bincount(post_a * n_rows + pre_a // n_cols, weights=m, minlength=n * n_rows)
    prof_x = prof_x.reshape(n, n_cols)
    prof_y = prof_y.reshape(n, n_rows)
    total = prof_x.sum(axis=1)
    empty = ~(total > 0)

    cx, sx = _centre_1d(prof_x, total, resolution)
    cy, sy = _centre_1d(prof_y, total, resolution)
    ids = np.arange(n)
    dx = periodic_offset(cx - ids % n_cols, n_cols)
    dy = periodic_offset(cy - ids // n_cols, n_rows)
    return RFResult(
        centre=np.stack([cx, cy], axis=1),
        spread=np.stack([sx, sy], axis=1),
        ad=np.hypot(dx, dy),
        sigma_aff=0.5 * (sx + sy),
        empty=empty,
    )


def map_quality(pre: Any, post: Any, grid: Any, weight: Any = None) -> dict[str, float | int]:
    """Mean AD and mean σ_aff over non-empty target neurons (Bamford et al. 2010).

    Args:
        pre, post: int [nnz] feed-forward connectivity on ``grid``.
        grid: ``(n_rows, n_cols)``.
        weight: None to measure by connectivity (counts), float [nnz] to measure by weight.

    Returns:
        ``{"ad": float, "sigma_aff": float, "n_empty": int}`` (AD and σ_aff in grid units; nan
        when every neuron is empty).
    """
    rf = receptive_fields(pre, post, grid, mass=weight)
    return {
        "ad": _nanmean(rf.ad),
        "sigma_aff": _nanmean(rf.sigma_aff),
        "n_empty": int(rf.empty.sum()),
    }


# ---------------------------------------------------------------------------------------------
# Bamford-style connectivity and controls
# ---------------------------------------------------------------------------------------------


def bamford_initial_connectivity(
    grid: Any = (16, 16),
    k: int | Any = 16,
    p_form: float = 0.16,
    sigma: float = 2.5,
    rng: np.random.Generator | int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Feed-forward afferents drawn as in Bamford's initialisation (Bamford et al. 2010).

    Bamford proposes a uniformly random presynaptic neuron and accepts it with probability
    ``p_form · exp(-δ²/(2σ²))`` until the target has ``k`` afferents. An accepted proposal is
    therefore distributed as ``exp(-δ²/(2σ²))`` normalised over the torus, independently of earlier
    ones. This function samples that distribution directly (identical in law to the rejection
    loop, and vectorised), so ``p_form`` only sets the number of proposals the loop would need, not
    the result. A source already chosen can be chosen again: **multapses can occur**, as in the
    reference, and each counts once per copy in connection-count measures.

    Args:
        grid: ``(n_rows, n_cols)`` of both layers.
        k: afferents per target, an int or int [n_post] (per-neuron counts, as for a control).
        p_form: peak formation probability, in ``(0, 1]``.
        sigma: width of the formation profile [grid units], > 0.
        rng: numpy Generator, seed, or None.

    Returns:
        ``(pre, post)`` int64 [sum(k)], grouped by ``post`` in increasing order.
    """
    n_rows, n_cols = _grid_shape(grid)
    n = n_rows * n_cols
    if not 0 < p_form <= 1:
        raise ValueError(f"p_form must be in (0, 1], got {p_form}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 [grid units], got {sigma}")
    k_arr = _to_numpy(k)
    scalar = k_arr.ndim == 0
    k_arr = _index_array(np.atleast_1d(k_arr), "k")
    if scalar:
        k_arr = np.full(n, k_arr[0], dtype=np.int64)
    if k_arr.size != n:
        raise ValueError(
            f"k must be an int or have shape [{n}] (one count per target), got {k_arr.shape}"
        )
    if k_arr.size and k_arr.min() < 0:
        raise ValueError(f"k must be >= 0, got {int(k_arr.min())}")
    gen = _rng(rng)
    # all n offsets (ox, oy) on the torus; pre = post shifted by the offset
    ox = np.arange(n) % n_cols
    oy = np.arange(n) // n_cols
    d2 = periodic_offset(ox, n_cols) ** 2 + periodic_offset(oy, n_rows) ** 2
    p = np.exp(-d2 / (2.0 * sigma**2))
    post = np.repeat(np.arange(n, dtype=np.int64), k_arr)
    off = gen.choice(n, size=post.size, p=p / p.sum())
    x = (post % n_cols + ox[off]) % n_cols
    y = (post // n_cols + oy[off]) % n_rows
    return (y * n_cols + x).astype(np.int64), post


class SignificanceResult(NamedTuple):
    """Wilcoxon signed-rank comparison of per-neuron AD and σ_aff with a control.

    ``ad``/``sigma_aff`` are means over the compared neurons (grid units); ``*_control`` the same
    for the control; ``*_statistic``/``*_pvalue`` from :func:`scipy.stats.wilcoxon`;
    ``n_neurons`` neurons non-empty in both.
    """

    ad: float
    ad_control: float
    ad_statistic: float
    ad_pvalue: float
    sigma_aff: float
    sigma_aff_control: float
    sigma_aff_statistic: float
    sigma_aff_pvalue: float
    n_neurons: int


def _wilcoxon(a: np.ndarray, b: np.ndarray, alternative: str) -> tuple[float, float]:
    """Paired signed-rank test; all-zero differences give (0.0, 1.0) instead of an error."""
    diff = a - b
    if diff.size == 0:
        return float("nan"), float("nan")
    if np.all(diff == 0):
        return 0.0, 1.0
    res = stats.wilcoxon(a, b, alternative=alternative)
    return float(res.statistic), float(res.pvalue)


def _compare(real: RFResult, control: RFResult, alternative: str) -> SignificanceResult:
    if alternative not in ("two-sided", "less", "greater"):
        raise ValueError(
            f"alternative must be 'two-sided', 'less' or 'greater', got {alternative!r}"
        )
    keep = ~(real.empty | control.empty)
    out: dict[str, float | int] = {"n_neurons": int(keep.sum())}
    for key in ("ad", "sigma_aff"):
        a, b = getattr(real, key)[keep], getattr(control, key)[keep]
        stat, p = _wilcoxon(a, b, alternative)
        out[key] = _nanmean(a)
        out[f"{key}_control"] = _nanmean(b)
        out[f"{key}_statistic"] = stat
        out[f"{key}_pvalue"] = p
    return SignificanceResult(**out)  # type: ignore[arg-type]


def shuffle_within_post(
    post: Any, weight: Any, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Weights permuted at random among the synapses of each target neuron.

    Shapes: ``post`` int [nnz], ``weight`` float [nnz] -> float64 [nnz].
    """
    post_a = _index_array(post, "post")
    w = _float_array(weight, "weight", post_a.size)
    gen = _rng(rng)
    by_post = np.argsort(post_a, kind="stable")
    shuffled = np.lexsort((gen.random(post_a.size), post_a))  # same groups, random order inside
    out = np.empty_like(w)
    out[by_post] = w[shuffled]
    return out


def significance_vs_shuffled(
    pre: Any,
    post: Any,
    weight: Any,
    grid: Any,
    rng: np.random.Generator | int | None = None,
    alternative: str = "two-sided",
) -> SignificanceResult:
    """Is the weight map better than its own weights shuffled within each neuron?
    (Bamford et al. 2010)

    Per-neuron AD and σ_aff measured by weight are paired with the same measures after one random
    permutation of each target neuron's weights over its synapses; Wilcoxon signed-rank tests over
    neurons. ``alternative="less"`` tests real < shuffled (a refined map).

    Args:
        pre, post: int [nnz] feed-forward connectivity on ``grid``; weight: float [nnz] (>= 0).
        grid: ``(n_rows, n_cols)``. rng: numpy Generator, seed or None.
        alternative: ``"two-sided"``, ``"less"`` or ``"greater"``.
    """
    n = int(np.prod(_grid_shape(grid)))
    pre_a, post_a, w = _coo(pre, post, n, n, weight)
    if w is None:
        raise ValueError("weight must be given (float [nnz]), got None")
    real = receptive_fields(pre_a, post_a, grid, mass=w)
    control = receptive_fields(pre_a, post_a, grid, mass=shuffle_within_post(post_a, w, rng))
    return _compare(real, control, alternative)


def significance_vs_control(
    pre: Any,
    post: Any,
    grid: Any,
    p_form: float = 0.16,
    sigma: float = 2.5,
    rng: np.random.Generator | int | None = None,
    alternative: str = "two-sided",
) -> SignificanceResult:
    """Is the connectivity map better than fresh draws from the formation distribution?
    (Bamford et al. 2010)

    The control gives every target neuron as many afferents as it has now, drawn with
    :func:`bamford_initial_connectivity` (``p_form``, ``sigma``). Per-neuron AD and σ_aff by
    connectivity are paired over neurons and compared with Wilcoxon signed-rank tests;
    ``alternative="less"`` tests real < control.

    Args:
        pre, post: int [nnz] feed-forward connectivity on ``grid``; grid: ``(n_rows, n_cols)``.
        p_form, sigma [grid units]: the formation profile. rng: numpy Generator, seed or None.
        alternative: ``"two-sided"``, ``"less"`` or ``"greater"``.
    """
    n = int(np.prod(_grid_shape(grid)))
    pre_a, post_a, _ = _coo(pre, post, n, n)
    counts = np.bincount(post_a, minlength=n)
    c_pre, c_post = bamford_initial_connectivity(grid, counts, p_form, sigma, rng)
    real = receptive_fields(pre_a, post_a, grid)
    control = receptive_fields(c_pre, c_post, grid)
    return _compare(real, control, alternative)
