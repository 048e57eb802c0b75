"""Checks of user-given parameters: times, rates, seeds and bounded numbers.

Every public constructor that takes a time, a rate or a seed runs its value through one of these
before it stores anything, so a bad value is refused in one line that names the parameter and
the allowed range, instead of turning into NaN weights or an overflow several calls later.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = [
    "MAX_SEED",
    "ParameterError",
    "check_number",
    "check_rate",
    "check_seed",
    "check_time",
]

#: Largest seed accepted: every generator derived from a seed (``seed * k + i`` for the data
#: order, the rules and the feedback weights) stays inside a signed 64-bit integer.
MAX_SEED = 2**32 - 1


class ParameterError(ValueError):
    """A parameter is of the wrong type or outside its range (the message names it)."""


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{name} must be a number, got {value!r}")
    try:
        return float(value)
    except OverflowError:
        raise ParameterError(f"{name} must be a finite number, got {value!r}") from None


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``float(value)`` if it is a finite real number in the given range, else
    :class:`ParameterError` naming ``name`` and the range (bounds closed unless ``*_open``)."""
    x = _real(name, value)
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    left = "(" if low is None or low_open else "["
    right = ")" if high is None or high_open else "]"
    span = f"{left}{lo}, {hi}{right}"
    inside = math.isfinite(x)
    if inside and low is not None:
        inside = x > low if low_open else x >= low
    if inside and high is not None:
        inside = x < high if high_open else x <= high
    if not inside:
        raise ParameterError(f"{name} must be a finite number in {span}, got {value!r}")
    return x


def check_time(name: str, value: Any, *, zero: bool = False, unit: str = "ms") -> float:
    """A duration or time constant [``unit``]: finite and > 0 (>= 0 with ``zero=True``)."""
    x = _real(name, value)
    if not math.isfinite(x) or x < 0 or (x == 0 and not zero):
        need = ">= 0" if zero else "> 0"
        raise ParameterError(f"{name} must be a finite time {need} {unit}, got {value!r}")
    return x


def check_rate(name: str, value: Any, *, unit: str = "Hz") -> float:
    """A rate [``unit``]: finite and >= 0."""
    x = _real(name, value)
    if not (math.isfinite(x) and x >= 0):
        raise ParameterError(f"{name} must be a finite rate >= 0 {unit}, got {value!r}")
    return x


def check_seed(name: str, value: Any) -> int:
    """A seed: an integer in ``[0, MAX_SEED]`` (floats, even integral ones, are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(f"{name} must be an integer in [0, {MAX_SEED}], got {value!r}")
    if not 0 <= int(value) <= MAX_SEED:
        raise ParameterError(f"{name} must be an integer in [0, {MAX_SEED}], got {value!r}")
    return int(value)
