"""Is a block of steps capturable as a CUDA graph? A guard that names the first operation that
is not.

A CUDA graph records a fixed sequence of kernels on fixed buffers and replays it without the
host. Inside a captured block nothing may make the host wait for the device (``.item()``,
``bool(tensor)``, ``nonzero``: the host needs the value or the size) and no tensor may have a
shape that depends on data (``nonzero``, boolean-mask indexing, ``unique``, ``bincount``). The
eager step is written to need neither: event lists have a fixed budget
(:meth:`neurowire.events.SpikeEvents.fixed`, ``nonzero_static``) with an overflow flag the
host reads *after* the block, and random numbers are drawn before it.

:func:`capture_guard` checks this on any device, the CPU included, by watching every ATen
operation a piece of code runs (a ``TorchDispatchMode``): it raises :class:`CaptureError`
naming the operation and why it cannot be captured. ``tests/test_capture.py`` runs the
simulator's blocks under it for every delivery strategy, STDP, Poisson input and the rules' host
boundary; the CUDA-graph engine (:mod:`neurowire.graphs`) runs its warm-up under it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

#: operations whose result the host must read (synchronisation) or whose shape depends on data
NOT_CAPTURABLE: dict[object, str] = {
    aten._local_scalar_dense.default: "reads a value on the host (.item(), bool(), int())",
    aten.is_nonzero.default: "reads a value on the host (bool(tensor))",
    aten.equal.default: "reads a value on the host (torch.equal)",
    aten.nonzero.default: "output shape depends on data (use nonzero_static)",
    aten.argwhere.default: "output shape depends on data",
    aten.masked_select.default: "output shape depends on data",
    aten.bincount.default: "output shape depends on data",
    aten._unique2.default: "output shape depends on data",
    aten.unique_consecutive.default: "output shape depends on data",
    aten.unique_dim.default: "output shape depends on data",
    aten.repeat_interleave.Tensor: "output shape depends on data",
    aten.repeat_interleave.self_Tensor: "output shape depends on data",
}

#: operations that are not capturable when one of their index tensors is boolean
_MASK_INDEXED = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default}


class CaptureError(RuntimeError):
    """An operation inside a block that a CUDA graph cannot capture."""


class _Guard(TorchDispatchMode):
    def __init__(self, where: str) -> None:
        super().__init__()
        self.where = where

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        reason = NOT_CAPTURABLE.get(func)
        if reason is None and func in _MASK_INDEXED:
            indices = args[1] if len(args) > 1 else ()
            if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices):
                reason = "boolean-mask indexing: output shape depends on data"
        if reason is not None:
            raise CaptureError(f"{self.where}: {func} cannot be captured in a CUDA graph: {reason}")
        return func(*args, **kwargs)


@contextmanager
def capture_guard(where: str = "block") -> Iterator[None]:
    """Raise :class:`CaptureError` at the first operation inside the ``with`` body that a CUDA
    graph cannot capture (host reads, data-dependent shapes); ``where`` names the code in the
    message."""
    with _Guard(where):
        yield
