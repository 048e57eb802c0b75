"""``sparse_linear``: ``x W + b`` over a ragged synapse store, as one autograd function.

The weight ``W [n_in, n_out]`` is held in the store's slot layout (``weight [n_in, capacity]``,
slot ``s`` of row ``i`` the synapse ``i -> ind[i, s]``). Spike input (every nonzero entry 1,
bool or floating) is turned into events once, the active features of each row; the forward pass
and the weight gradient then cost ``events x fan-out``, and the backward pass keeps only the
events (int16/int32 indices), never a float copy of the input. Real-valued input is read in
place, zeros skipped, and kept by reference for the weight gradient. No dense ``[n_in, n_out]``
matrix is built. The products run on the backends of :mod:`neurowire.nn.backends`; every one is
tested against :func:`~neurowire.nn.linear.sparse_linear_reference`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..store import RaggedSynapses
from .backends import Events, NumbaBackend, TorchBackend, resolve_backend

#: the non-floating input dtypes taken (as spikes, or as counts for uint8)
SPIKE_DTYPES = (torch.bool, torch.uint8)


def sparse_linear(
    x: Tensor,
    weight: Tensor,
    synapses: RaggedSynapses,
    bias: Tensor | None = None,
    *,
    backend: str | None = None,
) -> Tensor:
    """``y = x W (+ b)`` with ``W`` the live synapses of ``synapses`` weighted by ``weight``.

    Args:
        x: input: spikes (bool, uint8 or floating 0/1) or real values; a floating input of
            another dtype than ``weight``'s is cast to it (differentiably), as spikes from
            another library often are.
        weight: ``[n_in, capacity]`` in ``synapses``' slot layout; padding slots are ignored
            and get a zero gradient.
        synapses: the store (rows = inputs ``n_in``, columns = outputs ``n_out``); its
            structure is read on every call and must not change before the backward pass.
        bias: ``[n_out]`` or None.
        backend: ``"numba"`` (CPU kernels, float32/float64), ``"torch"`` (PyTorch ops, any
            device), or None for numba where it runs and PyTorch ops elsewhere.

    Shapes: ``x [..., n_in]`` -> ``[..., n_out]`` (leading dimensions flattened to rows).

    Gradients flow to ``x`` (only when it requires one), ``weight`` (live slots only) and
    ``bias``. Under ``torch.compile`` the call runs eagerly (a graph break); ``torch.func``
    transforms that differentiate once (``grad``, ``vjp``) work.
    """
    _check(x, weight, synapses, bias)
    impl = resolve_backend(backend, weight)
    rows = x.reshape(-1, synapses.n_pre)
    if rows.is_floating_point() and rows.dtype != weight.dtype:
        rows = rows.to(weight.dtype)
    y, _, _ = _SparseLinearFunction.apply(rows, weight, bias, synapses, impl)
    return y.reshape(*x.shape[:-1], synapses.n_post)


class _SparseLinearFunction(torch.autograd.Function):
    """Forward ``(x [R, n_in], weight, bias, synapses, backend) -> (y [R, n_out], crow,
    feat)``; ``crow, feat`` are the events of spike input (:class:`~.backends.Events`), or
    ``crow`` is empty for real input."""

    @staticmethod
    def forward(
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        synapses: RaggedSynapses,
        backend: NumbaBackend | TorchBackend,
    ) -> tuple[Tensor, Tensor, Tensor]:
        out = torch.empty(x.shape[0], synapses.n_post, dtype=weight.dtype, device=weight.device)
        if bias is None:
            out.zero_()
        else:
            out.copy_(bias)
        events = backend.events(x)
        if events is None:
            backend.forward_values(x.to(weight.dtype), synapses, weight, out)
            empty = torch.empty(0, dtype=torch.int64, device=x.device)
            return out, empty, empty
        backend.forward_events(events, synapses, weight, out)
        return out, events.crow, events.feat

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        x, weight, _, synapses, backend = inputs
        _, crow, feat = output
        ctx.mark_non_differentiable(crow, feat)
        ctx.synapses, ctx.backend, ctx.version = synapses, backend, synapses.version
        ctx.spikes = crow.numel() > 0
        kept_weight = weight if ctx.needs_input_grad[0] else None
        if ctx.spikes:
            ctx.save_for_backward(kept_weight, crow, feat)
        else:
            ctx.save_for_backward(kept_weight, x, None)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor, *_: Any) -> tuple[Tensor | None, ...]:
        syn = ctx.synapses
        if syn.version != ctx.version:
            raise RuntimeError(
                f"{syn.name}: the store's structure changed between the forward and the "
                f"backward pass (version {ctx.version} -> {syn.version}); rewire after "
                f"backward(), or run the forward pass again"
            )
        needs_x, needs_w, needs_b = ctx.needs_input_grad[:3]
        grad_x, grad_w = _Gradients.apply(
            grad_out, *ctx.saved_tensors, syn, ctx.backend, ctx.spikes, needs_x, needs_w
        )
        grad_b = grad_out.sum(0) if needs_b else None
        return grad_x, grad_w, grad_b, None, None


class _Gradients(torch.autograd.Function):
    """The backward products of :class:`_SparseLinearFunction` as a function of their own, so
    that ``torch.func`` transforms hand the kernels plain tensors; not differentiable again."""

    @staticmethod
    def forward(
        grad_out: Tensor,
        weight: Tensor | None,
        first: Tensor,
        second: Tensor | None,
        synapses: RaggedSynapses,
        backend: NumbaBackend | TorchBackend,
        spikes: bool,
        needs_x: bool,
        needs_w: bool,
    ) -> tuple[Tensor | None, Tensor | None]:
        grad_out = grad_out.contiguous()
        grad_x = backend.grad_input(grad_out, synapses, weight) if needs_x else None
        if not needs_w:
            return grad_x, None
        if spikes:
            return grad_x, backend.grad_weight_events(Events(first, second), grad_out, synapses)
        x = first.to(grad_out.dtype)
        return grad_x, backend.grad_weight_values(x, grad_out, synapses)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        ctx.name = inputs[4].name

    @staticmethod
    def backward(ctx: Any, *_: Any) -> None:
        raise RuntimeError(f"{ctx.name}: sparse_linear has no second derivative")


def _check(x: Tensor, weight: Tensor, synapses: RaggedSynapses, bias: Tensor | None) -> None:
    """One clear error for a wrong shape, dtype or device."""
    name = synapses.name
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: input must be a tensor, got {type(x).__name__}")
    if x.dim() == 0 or x.shape[-1] != synapses.n_pre:
        raise ValueError(
            f"{name}: input has {x.shape[-1] if x.dim() else 'no'} features (last dimension), "
            f"expected {synapses.n_pre}; shape {tuple(x.shape)}"
        )
    if not weight.is_floating_point():
        raise TypeError(f"{name}: weight must be floating, got {weight.dtype}")
    if tuple(weight.shape) != (synapses.n_pre, synapses.capacity):
        raise ValueError(
            f"{name}: weight must have the store's slot shape {(synapses.n_pre, synapses.capacity)}"
            f", got {tuple(weight.shape)}"
        )
    if not x.is_floating_point() and x.dtype not in SPIKE_DTYPES:
        raise TypeError(
            f"{name}: input must be floating (cast to the weight's {weight.dtype}) or bool/uint8 "
            f"spikes, got {x.dtype}"
        )
    if bias is not None and (tuple(bias.shape) != (synapses.n_post,) or bias.dtype != weight.dtype):
        raise ValueError(
            f"{name}: bias must be {weight.dtype} [{synapses.n_post}], got {bias.dtype} "
            f"{list(bias.shape)}"
        )
    for what, t in (("input", x), ("weight", weight), ("bias", bias)):
        if t is not None and t.device != synapses.device:
            raise ValueError(
                f"{name}: {what} is on {t.device}, the synapse store on {synapses.device}; "
                f"move them to one device (layer.to(device))"
            )
