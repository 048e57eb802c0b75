"""Connectivity initialisers: which (pre, post) pairs a projection starts with.

Each sparse initialiser returns COO pairs in row-major order and knows a bound on its row length
(``max_row_length``) from which a projection's default capacity is derived, as GeNN does
for FixedProbability (see GeNN's documentation on max row length): the ``q = 0.9999**(1/n_pre)``
quantile of the row-length distribution, so that the chance that *any* row overflows is about 1e-4.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import torch
from scipy import stats
from torch import Tensor

from .checks import ParameterError
from .grid import Grid, same_grid

_CHUNK = 1 << 22  # pairs drawn at once when sampling pairwise


def row_quantile(n_pre: int) -> float:
    """Per-row quantile ``0.9999 ** (1 / n_pre)`` used for capacity bounds."""
    return 0.9999 ** (1.0 / n_pre)


def _real(value: Any) -> bool:
    """Whether ``value`` is a real number (not a bool)."""
    return not isinstance(value, bool) and isinstance(value, numbers.Real)


def _probability(name: str, value: Any, *, zero: bool = True) -> None:
    """``value`` in ``[0, 1]`` (``(0, 1]`` without ``zero``), else :class:`ParameterError`."""
    inside = _real(value) and (0.0 <= value <= 1.0 if zero else 0.0 < value <= 1.0)
    if not inside:
        span = "[0, 1]" if zero else "(0, 1]"
        raise ParameterError(f"{name} must lie in {span}, got {value!r}")


def _count(name: str, value: Any) -> None:
    """``value`` an int >= 0, else :class:`ParameterError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(f"{name} must be an int >= 0, got {value!r}")
    if value < 0:
        raise ParameterError(f"{name} must be >= 0, got {value}")


def _width(name: str, sigma: Any) -> None:
    """A Gaussian width [grid spacings]: finite and > 0, with ``2 sigma^2`` a positive finite
    float64 that stays positive in float32 (the distances' dtype): ``exp(-d^2 / (2 sigma^2))``
    is then a number at every distance, 1 at distance 0."""
    if not (_real(sigma) and math.isfinite(sigma) and sigma > 0):
        raise ParameterError(f"{name} must be > 0 and finite [grid spacings], got {sigma}")
    two_var = 2.0 * float(sigma) * float(sigma)
    if not (math.isfinite(two_var) and float(torch.tensor(two_var, dtype=torch.float32)) > 0):
        raise ParameterError(
            f"{name} must be > 0 with 2 sigma^2 a finite number > 0 in float32 [grid spacings], "
            f"got {sigma!r}"
        )


def check_padding(padding: Any) -> float:
    """``padding`` (a capacity multiplier): a finite number >= 1."""
    if not _real(padding) or not math.isfinite(padding):
        raise ParameterError(
            f"padding must be >= 1.0, got {padding!r}, which is not a finite number"
        )
    if padding < 1.0:
        raise ParameterError(f"padding must be >= 1.0, got {padding}")
    return float(padding)


def default_capacity(max_row_length: int, padding: float, n_post: int) -> int:
    """Row stride ``min(n_post, int(max_row_length * padding))`` (padding >= 1)."""
    check_padding(padding)
    return min(n_post, int(max_row_length * padding))


@dataclass(frozen=True)
class Connectivity:
    """Base class of connectivity initialisers."""

    sparse = True

    def build(
        self,
        n_pre: int,
        n_post: int,
        *,
        generator: torch.Generator | None = None,
        device: str | torch.device = "cpu",
        pre_grid: Grid | None = None,
        post_grid: Grid | None = None,
        same_population: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """Return (pre, post) int64 ``[nnz]`` sorted row-major."""
        raise NotImplementedError

    def max_row_length(
        self,
        n_pre: int,
        n_post: int,
        *,
        pre_grid: Grid | None = None,
        post_grid: Grid | None = None,
    ) -> int:
        """Upper bound on the row length (holds for all rows with probability ~0.9999)."""
        raise NotImplementedError

    def allows_autapses(self) -> bool:
        return getattr(self, "autapses", True)


def _bernoulli_pairs(
    n_pre: int, n_post: int, prob_rows, generator, device
) -> tuple[Tensor, Tensor]:
    """Pairwise Bernoulli sampling, ``prob_rows(rows) -> [len(rows), n_post]`` probabilities."""
    pres, posts = [], []
    step = max(1, _CHUNK // n_post)
    for start in range(0, n_pre, step):
        rows = torch.arange(start, min(n_pre, start + step), device=device)
        prob = prob_rows(rows)
        hit = torch.rand(prob.shape, generator=generator, device=device) < prob
        r, c = hit.nonzero(as_tuple=True)
        pres.append(rows[r])
        posts.append(c)
    return torch.cat(pres), torch.cat(posts)


@dataclass(frozen=True)
class FixedProbability(Connectivity):
    """Each pair connected independently with probability ``p``; no ``i -> i`` unless autapses."""

    p: float
    autapses: bool = False

    def __post_init__(self) -> None:
        _probability("FixedProbability p", self.p)

    def build(
        self,
        n_pre,
        n_post,
        *,
        generator=None,
        device="cpu",
        pre_grid=None,
        post_grid=None,
        same_population=False,
    ):
        def prob(rows):
            out = torch.full((rows.numel(), n_post), self.p, device=device)
            if same_population and not self.autapses:
                out[torch.arange(rows.numel(), device=device), rows] = 0.0
            return out

        return _bernoulli_pairs(n_pre, n_post, prob, generator, device)

    def max_row_length(self, n_pre, n_post, *, pre_grid=None, post_grid=None):
        return int(stats.binom.ppf(row_quantile(n_pre), n_post, self.p))


@dataclass(frozen=True)
class FixedNumberPost(Connectivity):
    """Every row gets exactly ``k`` distinct postsynaptic targets drawn uniformly."""

    k: int
    autapses: bool = False

    def __post_init__(self) -> None:
        _count("FixedNumberPost k", self.k)

    def build(
        self,
        n_pre,
        n_post,
        *,
        generator=None,
        device="cpu",
        pre_grid=None,
        post_grid=None,
        same_population=False,
    ):
        available = n_post - (1 if same_population and not self.autapses else 0)
        if self.k > available:
            raise ValueError(f"FixedNumberPost k={self.k} exceeds the {available} possible targets")
        pres, posts = [], []
        step = max(1, _CHUNK // n_post)
        for start in range(0, n_pre, step):
            rows = torch.arange(start, min(n_pre, start + step), device=device)
            keys = torch.rand((rows.numel(), n_post), generator=generator, device=device)
            if same_population and not self.autapses:
                keys[torch.arange(rows.numel(), device=device), rows] = 2.0
            cols = torch.topk(keys, self.k, dim=1, largest=False).indices.sort(1).values
            pres.append(rows.repeat_interleave(self.k))
            posts.append(cols.reshape(-1))
        return torch.cat(pres), torch.cat(posts)

    def max_row_length(self, n_pre, n_post, *, pre_grid=None, post_grid=None):
        return self.k


@dataclass(frozen=True)
class AllToAll(Connectivity):
    """Every pre connects to every post (``i -> i`` in recurrent projections only with autapses)."""

    autapses: bool = True

    def build(
        self,
        n_pre,
        n_post,
        *,
        generator=None,
        device="cpu",
        pre_grid=None,
        post_grid=None,
        same_population=False,
    ):
        pre = torch.arange(n_pre, device=device).repeat_interleave(n_post)
        post = torch.arange(n_post, device=device).repeat(n_pre)
        if same_population and not self.autapses:
            keep = pre != post
            pre, post = pre[keep], post[keep]
        return pre, post

    def max_row_length(self, n_pre, n_post, *, pre_grid=None, post_grid=None):
        return n_post


@dataclass(frozen=True)
class OneToOne(Connectivity):
    """Neuron ``i`` connects to neuron ``i`` (needs ``n_pre == n_post``)."""

    def build(
        self,
        n_pre,
        n_post,
        *,
        generator=None,
        device="cpu",
        pre_grid=None,
        post_grid=None,
        same_population=False,
    ):
        if n_pre != n_post:
            raise ValueError(f"OneToOne needs n_pre == n_post, got {n_pre} and {n_post}")
        ids = torch.arange(n_pre, device=device)
        return ids, ids.clone()

    def max_row_length(self, n_pre, n_post, *, pre_grid=None, post_grid=None):
        return 1


@dataclass(frozen=True)
class GaussianDistance(Connectivity):
    """Pairwise Bernoulli with ``p = p_peak * exp(-d^2 / (2 sigma^2))`` on a 2-D grid.

    Args:
        p_peak: probability at distance 0, in [0, 1].
        sigma: width [grid spacings].
        periodic: torus distance (both populations must be on equal grids).
    """

    p_peak: float
    sigma: float
    periodic: bool = True

    def __post_init__(self) -> None:
        _probability("GaussianDistance p_peak", self.p_peak)
        _width("GaussianDistance sigma", self.sigma)

    def probability(self, distance: Tensor) -> Tensor:
        """Connection probability at ``distance`` [grid spacings]."""
        return self.p_peak * torch.exp(-(distance * distance) / (2.0 * self.sigma**2))

    def _grid(self, pre_grid, post_grid) -> Grid:
        grid = same_grid(pre_grid, post_grid, "GaussianDistance")
        return Grid(grid.n_rows, grid.n_cols, self.periodic)

    def build(
        self,
        n_pre,
        n_post,
        *,
        generator=None,
        device="cpu",
        pre_grid=None,
        post_grid=None,
        same_population=False,
    ):
        grid = self._grid(pre_grid, post_grid)
        cols = torch.arange(n_post, device=device)
        if grid.periodic:  # the probabilities of a row are a shifted copy of one table
            table = self.offset_probability(grid, device)
            col_y, col_x = cols // grid.n_cols, cols % grid.n_cols

            def prob(rows):
                dy = (col_y[None, :] - (rows // grid.n_cols)[:, None]) % grid.n_rows
                dx = (col_x[None, :] - (rows % grid.n_cols)[:, None]) % grid.n_cols
                return table[dy, dx]

        else:

            def prob(rows):
                return self.probability(grid.distance(rows[:, None], cols[None, :]))

        return _bernoulli_pairs(n_pre, n_post, prob, generator, device)

    def offset_probability(self, grid: Grid, device: str | torch.device = "cpu") -> Tensor:
        """``[n_rows, n_cols]``: on a torus, the probability from any neuron to the one
        ``(dy, dx)`` sites away (the same numbers as the pairwise formula: the wrapped offset,
        hence the distance, depends only on ``(dy, dx)``)."""
        post = torch.arange(grid.n, device=device)
        p = self.probability(grid.distance(torch.zeros_like(post), post))
        return p.view(grid.n_rows, grid.n_cols)

    def expected_row_lengths(self, pre_grid: Grid, post_grid: Grid) -> Tensor:
        """float64 ``[n_pre]``: expected synapses per row."""
        grid = self._grid(pre_grid, post_grid)
        if grid.periodic:  # every row sums the same table
            return self.offset_probability(grid).double().sum().expand(grid.n).clone()
        cols = torch.arange(grid.n)
        out = torch.empty(grid.n, dtype=torch.float64)
        step = max(1, _CHUNK // grid.n)
        for start in range(0, grid.n, step):
            rows = torch.arange(start, min(grid.n, start + step))
            out[rows] = (
                self.probability(grid.distance(rows[:, None], cols[None, :])).double().sum(1)
            )
        return out

    def max_row_length(self, n_pre, n_post, *, pre_grid=None, post_grid=None):
        # A sum of independent Bernoullis is less dispersed than a Poisson of equal mean, so the
        # Poisson quantile bounds the row length conservatively.
        mean = float(self.expected_row_lengths(pre_grid, post_grid).max())
        return int(stats.poisson.ppf(row_quantile(n_pre), mean))


@dataclass(frozen=True, eq=False)
class FromArrays(Connectivity):
    """Explicit pairs ``(pre[k], post[k])`` (no duplicates); ``weight=`` may be a tensor ``[k]``."""

    pre: Tensor
    post: Tensor

    def __post_init__(self) -> None:
        pre = torch.as_tensor(self.pre)
        post = torch.as_tensor(self.post)
        if pre.dim() != 1 or pre.shape != post.shape:
            raise ValueError(
                f"FromArrays needs 1-D pre and post of equal length, got {tuple(pre.shape)} and "
                f"{tuple(post.shape)}"
            )
        if pre.numel() and any(  # an empty [] is a float tensor to torch: accept it
            t.is_floating_point() or t.is_complex() or t.dtype == torch.bool for t in (pre, post)
        ):
            raise TypeError(
                f"FromArrays pre and post must be integer tensors, got {pre.dtype} and {post.dtype}"
            )
        object.__setattr__(self, "pre", pre.long())
        object.__setattr__(self, "post", post.long())

    def build(
        self,
        n_pre,
        n_post,
        *,
        generator=None,
        device="cpu",
        pre_grid=None,
        post_grid=None,
        same_population=False,
    ):
        return self.pre.to(device), self.post.to(device)

    def max_row_length(self, n_pre, n_post, *, pre_grid=None, post_grid=None):
        if self.pre.numel() == 0:
            return 0
        if self.pre.min() < 0 or self.pre.max() >= n_pre:
            raise ValueError(f"FromArrays pre indices must lie in [0, {n_pre})")
        return int(torch.bincount(self.pre, minlength=n_pre).max())


@dataclass(frozen=True)
class Dense(Connectivity):
    """A dense ``[n_pre, n_post]`` weight matrix without a sparse store (never rewired)."""

    sparse = False
    autapses: bool = True


@dataclass(frozen=True)
class GaussianFanIn(Connectivity):
    """Exactly ``k`` distinct presynaptic partners per postsynaptic neuron on a 2-D grid.

    Partners are proposed uniformly and accepted with ``p_peak * exp(-d^2 / (2 sigma^2))``
    until every target has ``k`` (Bamford et al. 2010's initial connectivity, without the
    repeated pairs the original allowed).

    Args:
        k: afferents per target.
        p_peak, sigma: acceptance profile (``sigma`` in grid units).
        periodic: torus distance.
    """

    k: int
    p_peak: float
    sigma: float
    periodic: bool = True

    def __post_init__(self) -> None:
        _count("GaussianFanIn k", self.k)
        _probability("GaussianFanIn p_peak", self.p_peak, zero=False)
        _width("GaussianFanIn sigma", self.sigma)

    def _profile(self) -> GaussianDistance:
        return GaussianDistance(self.p_peak, self.sigma, self.periodic)

    def build(
        self,
        n_pre,
        n_post,
        *,
        generator=None,
        device="cpu",
        pre_grid=None,
        post_grid=None,
        same_population=False,
    ):
        if self.k > n_pre:
            raise ValueError(f"GaussianFanIn k={self.k} exceeds the {n_pre} presynaptic neurons")
        profile = self._profile()
        grid = profile._grid(pre_grid, post_grid)
        chosen = torch.full((n_post, self.k), -1, dtype=torch.int64)
        filled = torch.zeros(n_post, dtype=torch.int64)
        targets = torch.arange(n_post)
        for _ in range(100_000):
            need = targets[filled < self.k]
            if need.numel() == 0:
                break
            cand = torch.randint(0, n_pre, (need.numel(),), generator=generator)
            accept = torch.rand(need.numel(), generator=generator) < profile.probability(
                grid.distance(cand, need)
            )
            accept &= ~(chosen[need] == cand[:, None]).any(1)
            need, cand = need[accept], cand[accept]
            chosen[need, filled[need]] = cand
            filled[need] += 1
        else:
            raise RuntimeError("GaussianFanIn: could not place every afferent")
        post = targets.repeat_interleave(self.k)
        pre = chosen.reshape(-1)
        order = torch.argsort(pre * n_post + post)
        return pre[order].to(device), post[order].to(device)

    def max_row_length(self, n_pre, n_post, *, pre_grid=None, post_grid=None):
        # Out-degrees vary around k * n_post / n_pre; bound them like a Poisson count.
        return int(stats.poisson.ppf(row_quantile(n_pre), self.k * n_post / n_pre))
