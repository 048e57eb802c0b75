"""Value initialisers: draw per-synapse or per-neuron values."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .checks import ParameterError


def _finite(value: Any) -> bool:
    """Whether ``value`` is a finite real number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _bad(*names_values: tuple[str, Any], ok: tuple[bool, ...]) -> str:
    """The names of the parameters that fail their check, for the message."""
    return ", ".join(name for (name, _), good in zip(names_values, ok, strict=True) if not good)


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
        if not _finite(self.value):
            raise ParameterError(f"Constant value must be finite, got {self.value!r}")

    def sample(self, shape, device="cpu", generator=None, dtype=torch.float32) -> Tensor:
        if dtype.is_floating_point and not bool(
            torch.isfinite(torch.tensor(float(self.value), dtype=dtype))
        ):
            raise ParameterError(
                f"Constant value {self.value!r} is not a finite {str(dtype).replace('torch.', '')}"
                " number"
            )
        return torch.full(shape, self.value, dtype=dtype, device=device)


@dataclass(frozen=True)
class Normal(Initializer):
    """Normal distribution with ``mean`` and standard deviation ``sd`` (sd >= 0)."""

    mean: float = 0.0
    sd: float = 1.0

    def __post_init__(self) -> None:
        ok = (_finite(self.mean), _finite(self.sd) and self.sd >= 0)
        if not all(ok):
            bad = _bad(("mean", self.mean), ("sd", self.sd), ok=ok)
            raise ParameterError(
                f"Normal needs finite mean and sd >= 0, got {self.mean!r}, {self.sd!r} (bad: {bad})"
            )

    def sample(self, shape, device="cpu", generator=None, dtype=torch.float32) -> Tensor:
        out = torch.empty(shape, dtype=dtype, device=device)
        return out.normal_(self.mean, self.sd, generator=generator)


@dataclass(frozen=True)
class Uniform(Initializer):
    """Uniform distribution on ``[lo, hi)``."""

    lo: float = 0.0
    hi: float = 1.0

    def __post_init__(self) -> None:
        ok = (_finite(self.lo), _finite(self.hi))
        if all(ok) and self.hi < self.lo:
            ok = (False, False)
        if not all(ok):
            bad = _bad(("lo", self.lo), ("hi", self.hi), ok=ok)
            raise ParameterError(
                f"Uniform needs finite lo <= hi, got {self.lo!r}, {self.hi!r} (bad: {bad})"
            )
        if not math.isfinite(self.hi - self.lo):
            raise ParameterError(
                f"Uniform needs a finite width hi - lo, got {self.lo!r}, {self.hi!r} (bad: lo, hi)"
            )

    def sample(self, shape, device="cpu", generator=None, dtype=torch.float32) -> Tensor:
        if dtype.is_floating_point:
            big = torch.finfo(dtype).max
            if not max(abs(self.lo), abs(self.hi), self.hi - self.lo) <= big:
                raise ParameterError(
                    f"Uniform lo, hi = {self.lo!r}, {self.hi!r} span more than a "
                    f"{str(dtype).replace('torch.', '')} number holds"
                )
        out = torch.empty(shape, dtype=dtype, device=device)
        return out.uniform_(self.lo, self.hi, generator=generator)


def as_initializer(value: float | Initializer) -> Initializer:
    """A number becomes :class:`Constant`; an initialiser is returned unchanged."""
    if isinstance(value, Initializer):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Constant(float(value))
    raise TypeError(f"expected a number or an Initializer, got {type(value).__name__}")
