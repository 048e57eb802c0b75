"""The Triton kernel tests run on CUDA when there is a device, else under the Triton interpreter
on CPU tensors. triton reads ``TRITON_INTERPRET`` when ``@triton.jit`` decorates a kernel, so it
is set here, before any test module imports a kernel module."""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
