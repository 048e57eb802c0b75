"""Triton kernels for the hot operations of the simulator and the synapse store.

Each kernel sits behind a PyTorch function that stays the reference, with the same signature:

* :func:`neurowire.gpu.delivery.deliver_slots` behind :func:`neurowire.propagate.deliver_slots`;
* :func:`neurowire.gpu.stdp.stdp_depress_rows` and :func:`~neurowire.gpu.stdp.
  stdp_potentiate_columns` behind the functions of :mod:`neurowire.plasticity` (the kernels are
  generated from the rule's own ``depress`` / ``potentiate``);
* :func:`neurowire.gpu.compact.remove` behind :meth:`neurowire.store.RaggedSynapses.remove`.

The library routes CUDA tensors here when triton is importable (:func:`available`); CPU tensors
keep the PyTorch and numba paths. Every kernel also runs under the Triton interpreter
(``TRITON_INTERPRET=1``, set before the kernel modules are imported) on CPU tensors, which is
how the tests compare it with its reference on a machine without a GPU. Only the kernel modules
import triton, so ``import neurowire`` works without it.
"""

from __future__ import annotations

import importlib.util
import os
from functools import cache

import torch
from torch import Tensor


@cache
def have_triton() -> bool:
    """Whether triton can be imported."""
    return importlib.util.find_spec("triton") is not None


def available(tensor: Tensor, interpret: bool = False) -> bool:
    """Whether the Triton path applies to ``tensor``.

    True if triton is importable and either ``tensor`` is on CUDA, or ``interpret`` is asked for
    explicitly, the Triton interpreter is on (``TRITON_INTERPRET=1``) and ``tensor`` is on the
    CPU (the tests' way of running the kernels without a GPU). False while ``torch.compile``
    traces: there the PyTorch path is compiled (inductor writes its own kernels).
    """
    if torch.compiler.is_compiling() or not have_triton():  # tracing first: no cached call
        return False
    if tensor.is_cuda:
        return True
    return interpret and tensor.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"
