"""2-D grids of neurons and (periodic) distances between them.

A grid ``(n_rows, n_cols)`` places neuron ``id`` at column ``x = id % n_cols`` and row
``y = id // n_cols`` (as in Knight, Senk & Nowotny 2025). On a torus each axis offset is
wrapped into ``[-n/2, n/2)`` before the Euclidean distance is taken. Units: grid spacings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Grid:
    """A ``n_rows x n_cols`` sheet of neurons, optionally periodic (a torus)."""

    n_rows: int
    n_cols: int
    periodic: bool = True

    def __post_init__(self) -> None:
        if self.n_rows < 1 or self.n_cols < 1:
            raise ValueError(f"grid sides must be >= 1, got {self.n_rows} x {self.n_cols}")

    @classmethod
    def of(cls, value: Grid | tuple[int, int] | None, n: int, periodic: bool = True) -> Grid | None:
        """Coerce ``(n_rows, n_cols)`` to a :class:`Grid` and check it holds ``n`` neurons."""
        if value is None:
            return None
        grid = value if isinstance(value, Grid) else cls(int(value[0]), int(value[1]), periodic)
        if grid.n_rows * grid.n_cols != n:
            raise ValueError(
                f"grid {grid.n_rows} x {grid.n_cols} holds {grid.n_rows * grid.n_cols} neurons, "
                f"population has {n}"
            )
        return grid

    @property
    def n(self) -> int:
        return self.n_rows * self.n_cols

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_rows, self.n_cols)

    def positions(self, device: str | torch.device = "cpu") -> Tensor:
        """float ``[n, 2]``: (x, y) = (column, row) of every neuron."""
        ids = torch.arange(self.n, device=device)
        return torch.stack([ids % self.n_cols, ids // self.n_cols], 1).to(torch.float32)

    def offsets(self, pre: Tensor, post: Tensor) -> tuple[Tensor, Tensor]:
        """(dx, dy) from neuron ``pre`` to neuron ``post`` (grid ids), wrapped on a torus."""
        dx = (post % self.n_cols - pre % self.n_cols).to(torch.float32)
        dy = (post // self.n_cols - pre // self.n_cols).to(torch.float32)
        if self.periodic:
            dx = wrap(dx, self.n_cols)
            dy = wrap(dy, self.n_rows)
        return dx, dy

    def distance(self, pre: Tensor, post: Tensor) -> Tensor:
        """Euclidean (periodic) distance between ids ``pre`` and ``post``, broadcasting."""
        dx, dy = self.offsets(pre, post)
        return torch.sqrt(dx * dx + dy * dy)


def wrap(d: Tensor, n: int) -> Tensor:
    """Map offsets on a ring of ``n`` sites to ``[-n/2, n/2)``."""
    return torch.remainder(d + n / 2, n) - n / 2


def same_grid(pre: Grid | None, post: Grid | None, what: str) -> Grid:
    """The shared grid of two populations, or a clear error when they lack one or differ."""
    if pre is None or post is None:
        raise ValueError(f"{what} needs both populations on a grid (pass grid=(rows, cols))")
    if pre.shape != post.shape or pre.periodic != post.periodic:
        raise ValueError(f"{what} needs equal grids, got {pre.shape} and {post.shape}")
    return post
