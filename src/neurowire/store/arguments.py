"""Checks of the arguments the store's edits and queries take, shared by every backend."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..initializers import Initializer

if TYPE_CHECKING:
    from .core import RaggedSynapses


def resolve_device(device: str | torch.device) -> torch.device:
    """``torch.device`` with its index filled in (``"cuda"`` -> ``cuda:0``) as tensors report."""
    dev = torch.device(device)
    if dev.type != "cpu" and dev.index is None:
        dev = torch.empty(0, device=dev).device
    return dev


def as_index(x: Any, name: str, device: torch.device) -> Tensor:
    """``x`` as an int64 index tensor ``[k]``; ``TypeError``/``ValueError`` naming ``name``."""
    t = torch.as_tensor(x, device=device)
    if t.dim() == 1 and t.numel() == 0:  # [] is a float tensor for torch: accept any empty 1-D
        return t.to(torch.int64)
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise TypeError(f"{name} must be an integer tensor, got dtype {t.dtype}")
    if t.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(t.shape)}")
    return t.to(torch.int64)


def check_pairs(store: RaggedSynapses, pre: Any, post: Any) -> tuple[Tensor, Tensor]:
    """``pre``, ``post`` as int64 ``[k]`` on the store's device, checked to lie in range."""
    pre_t = as_index(pre, "pre", store.device)
    post_t = as_index(post, "post", store.device)
    if pre_t.numel() != post_t.numel():
        raise ValueError(
            f"{store.name}: pre and post must have the same length, got {pre_t.numel()} and "
            f"{post_t.numel()}"
        )
    if pre_t.numel():
        lo, hi = (int(v) for v in torch.aminmax(pre_t))
        if lo < 0 or hi >= store.n_pre:
            bad = pre_t[(pre_t < 0) | (pre_t >= store.n_pre)][0].item()
            raise ValueError(f"{store.name}: pre index {bad} out of range [0, {store.n_pre})")
        lo, hi = (int(v) for v in torch.aminmax(post_t))
        if lo < 0 or hi >= store.n_post:
            bad = post_t[(post_t < 0) | (post_t >= store.n_post)][0].item()
            raise ValueError(f"{store.name}: post index {bad} out of range [0, {store.n_post})")
    return pre_t, post_t


def check_finite(store_name: str, name: str, values: Tensor) -> None:
    """Raise ``ValueError`` if floating ``values`` of variable ``name`` hold NaN or infinity."""
    if values.is_floating_point() and not bool(torch.isfinite(values).all()):
        raise ValueError(f"{store_name}: values for {name!r} contain NaN or infinity")


def prepare_values(
    store: RaggedSynapses,
    values: Mapping[str, Any],
    k: int,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Values of ``k`` new synapses per variable: ``[k]`` or ``[B, k]`` in the variable's dtype
    (numbers broadcast, initialisers sampled with ``generator``)."""
    prepared = {}
    for key, val in values.items():
        var = store._var(key)
        batch = var.shape[:-2]
        if isinstance(val, Initializer):
            val = val.sample(batch + (k,), device=store.device, generator=generator)
        t = torch.as_tensor(val, device=store.device)
        check_finite(store.name, key, t)
        if t.dim() == 0:
            t = t.expand(batch + (k,))
        elif t.shape == (k,):
            t = t.expand(batch + (k,))
        elif t.shape != batch + (k,):
            expected = f"[{k}]" if not batch else f"[{k}] or [{batch[0]}, {k}]"
            raise ValueError(
                f"{store.name}: values for {key!r} must be a number or {expected}, got shape "
                f"{tuple(t.shape)}"
            )
        if var.dtype == torch.bool and t.dtype != torch.bool:
            raise TypeError(f"{store.name}: {key!r} is bool, got values of dtype {t.dtype}")
        if not var.is_floating_point() and t.is_floating_point():
            raise TypeError(f"{store.name}: {key!r} has dtype {var.dtype}, got floating values")
        prepared[key] = t.to(var.dtype)
    return prepared
