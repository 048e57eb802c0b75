"""Value initialisers: draw per-synapse or per-neuron values."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


class Initializer:
    """Base class: ``sample(shape, device, generator, dtype)`` returns a tensor of that shape."""

    def sample(
        self,
        shape: tuple[int, ...],
        device: str | torch.device = "cpu",
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(Initializer):
    """Every value equals ``value``."""

    value: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.value):
            raise ValueError(f"Constant value must be finite, got {self.value}")

    def sample(self, shape, device="cpu", generator=None, dtype=torch.float32) -> Tensor:
        return torch.full(shape, self.value, dtype=dtype, device=device)


@dataclass(frozen=True)
class Normal(Initializer):
    """Normal distribution with ``mean`` and standard deviation ``sd`` (sd >= 0)."""

    mean: float = 0.0
    sd: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean) and math.isfinite(self.sd)) or self.sd < 0:
            raise ValueError(f"Normal needs finite mean and sd >= 0, got {self.mean}, {self.sd}")

    def sample(self, shape, device="cpu", generator=None, dtype=torch.float32) -> Tensor:
        out = torch.empty(shape, dtype=dtype, device=device)
        return out.normal_(self.mean, self.sd, generator=generator)


@dataclass(frozen=True)
class Uniform(Initializer):
    """Uniform distribution on ``[lo, hi)``."""

    lo: float = 0.0
    hi: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lo) and math.isfinite(self.hi)) or self.hi < self.lo:
            raise ValueError(f"Uniform needs finite lo <= hi, got {self.lo}, {self.hi}")

    def sample(self, shape, device="cpu", generator=None, dtype=torch.float32) -> Tensor:
        out = torch.empty(shape, dtype=dtype, device=device)
        return out.uniform_(self.lo, self.hi, generator=generator)


def as_initializer(value: float | Initializer) -> Initializer:
    """A number becomes :class:`Constant`; an initialiser is returned unchanged."""
    if isinstance(value, Initializer):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Constant(float(value))
    raise TypeError(f"expected a number or an Initializer, got {type(value).__name__}")
