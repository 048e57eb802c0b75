"""Flushing denormal floats to zero on the CPU.

Decaying traces (membranes, STDP traces, eligibility) pass through the denormal range on their
way to zero, where CPU arithmetic is many times slower. Inside :func:`flush_denormals` the CPU
flushes them to zero (torch sets the FTZ/DAZ flags of the calling thread, so numba kernels
running in that thread flush too).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def denormals_flushed() -> bool:
    """Whether the calling thread currently flushes denormals to zero."""
    return torch.tensor([1e-39], dtype=torch.float32).mul(1.0).item() == 0.0


@contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush denormal floats to zero on the CPU inside the block, then restore the setting."""
    was_on = denormals_flushed()
    supported = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if supported and not was_on:
            torch.set_flush_denormal(False)
