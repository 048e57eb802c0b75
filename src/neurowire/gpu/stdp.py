"""Trace-STDP row and column updates (Triton), behind :func:`neurowire.plasticity.
stdp_depress_rows` and :func:`~neurowire.plasticity.stdp_potentiate_columns`.

The per-synapse arithmetic is not written here: the kernels are generated from the rule's own
``depress`` / ``potentiate`` methods (the model language of :mod:`neurowire.codegen`), translated
to Triton by :func:`neurowire.codegen.translate` (``target="triton"``). The rule's constants
(``c.<name>``) are passed in a small tensor of the weights' dtype, so the kernel rounds them as
PyTorch does and one generated kernel serves every parameter value. A rule whose method the
translation cannot express (:func:`supports` False) keeps the PyTorch path.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
from torch import Tensor

from ..codegen import ModelCodeError, Scalar, generated_module, translate
from ..events import SpikeEvents

#: events per program
BLOCK_EVENTS = 16
#: largest block of slots read at once; longer rows (columns) are looped over
MAX_BLOCK_SLOTS = 128

_DEPRESS = '''
import triton
import triton.language as tl


@triton.jit
def kernel(w_ptr, ind_ptr, live_ptr, pre_ptr, valid_ptr, x_ptr, k_ptr, n_events, capacity,
           w_s0, ind_s0, live_s0, HAS_VALID: tl.constexpr, BLOCK_E: tl.constexpr,
           BLOCK_S: tl.constexpr):
    """Depress the rows of the events ``pre`` (one program per BLOCK_E events)."""
    e = tl.program_id(0) * BLOCK_E + tl.arange(0, BLOCK_E)
    ok = e < n_events
    if HAS_VALID:
        ok = ok & (tl.load(valid_ptr + e, mask=ok, other=0) != 0)
    i = tl.load(pre_ptr + e, mask=ok, other=0)
{numbers}
    for start in range(0, capacity, BLOCK_S):
        s = start + tl.arange(0, BLOCK_S)
        m = ok[:, None] & (s < capacity)[None, :]
        m = m & (tl.load(live_ptr + i[:, None] * live_s0 + s[None, :], mask=m, other=0) != 0)
        at = w_ptr + i[:, None] * w_s0 + s[None, :]
        w = tl.load(at, mask=m, other=0)
        post = tl.load(ind_ptr + i[:, None] * ind_s0 + s[None, :], mask=m, other=0)
        x_post = tl.load(x_ptr + post, mask=m, other=0)
{lines}
        new = {result}
        tl.store(at, (w + (new - w)).to(w_ptr.dtype.element_ty), mask=m)
'''

_POTENTIATE = '''
import triton
import triton.language as tl


@triton.jit
def kernel(w_ptr, columns_ptr, post_ptr, valid_ptr, x_ptr, k_ptr, n_events, col_capacity,
           columns_s0, capacity, numel, HAS_VALID: tl.constexpr, BLOCK_E: tl.constexpr,
           BLOCK_S: tl.constexpr):
    """Potentiate the columns of the events ``post`` (one program per BLOCK_E events)."""
    e = tl.program_id(0) * BLOCK_E + tl.arange(0, BLOCK_E)
    ok = e < n_events
    if HAS_VALID:
        ok = ok & (tl.load(valid_ptr + e, mask=ok, other=0) != 0)
    j = tl.load(post_ptr + e, mask=ok, other=0)
{numbers}
    for start in range(0, col_capacity, BLOCK_S):
        s = start + tl.arange(0, BLOCK_S)
        m = ok[:, None] & (s < col_capacity)[None, :]
        slot = tl.load(columns_ptr + j[:, None] * columns_s0 + s[None, :], mask=m, other=numel)
        m = m & (slot < numel)
        slot = tl.where(m, slot, 0)
        w = tl.load(w_ptr + slot, mask=m, other=0)
        x_pre = tl.load(x_ptr + slot // capacity, mask=m, other=0)
{lines}
        new = {result}
        tl.store(w_ptr + slot, (w + (new - w)).to(w_ptr.dtype.element_ty), mask=m)
'''

_TEMPLATES = {"depress": (_DEPRESS, "x_post"), "potentiate": (_POTENTIATE, "x_pre")}

#: (rule, method, dt) -> (kernel, numbers); (rule, dt) -> supports(); (rule, method, dt, dtype,
#: device) -> numbers tensor
_KERNELS: dict[tuple, tuple[Any, list[float]]] = {}
_SUPPORTED: dict[tuple, bool] = {}
_NUMBERS: dict[tuple, Tensor] = {}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _plan(rule: Any, method: str, dt: float) -> tuple[Any, list[float]]:
    """The generated kernel of ``rule.<method>`` and the numbers it reads (``k0, k1, ...``)."""
    key = (rule, method, dt)
    if key not in _KERNELS:
        template, trace = _TEMPLATES[method]
        values = vars(rule.constants_for(dt))
        numbers = [n for n, v in values.items() if _is_number(v)]
        spec = Scalar(
            state={},
            inputs={"w": "w", trace: trace},
            constants=values,
            arrays={name: f"k{i}" for i, name in enumerate(numbers)},
            target="triton",
        )
        tr = translate(rule, method, spec)
        if tr.result is None:
            raise ModelCodeError(f"{type(rule).__name__}.{method} returns nothing")
        source = template.format(
            numbers="\n".join(f"    k{i} = tl.load(k_ptr + {i})" for i in range(len(numbers))),
            lines="\n".join(f"        {line}" for line in tr.lines),
            result=tr.result,
        )
        kernel = generated_module(source, f"triton_{method}").kernel
        _KERNELS[key] = kernel, [float(values[name]) for name in numbers]
    return _KERNELS[key]


def supports(rule: Any, dt: float = 1.0) -> bool:
    """Whether ``rule.depress`` and ``rule.potentiate`` translate to Triton kernels."""
    key = (rule, dt)
    if key not in _SUPPORTED:
        try:
            _plan(rule, "depress", dt)
            _plan(rule, "potentiate", dt)
        except ModelCodeError:
            _SUPPORTED[key] = False
        else:
            _SUPPORTED[key] = True
    return _SUPPORTED[key]


def _numbers(rule: Any, method: str, dt: float, like: Tensor) -> tuple[Any, Tensor]:
    kernel, numbers = _plan(rule, method, dt)
    key = (rule, method, dt, like.dtype, like.device)
    if key not in _NUMBERS:
        # at least one element, so the kernel always gets a valid pointer
        _NUMBERS[key] = torch.tensor(numbers or [0.0], dtype=like.dtype, device=like.device)
    return kernel, _NUMBERS[key]


def _block(n: int) -> int:
    return min(triton.next_power_of_2(max(n, 1)), MAX_BLOCK_SLOTS)


def stdp_depress_rows(
    w: Tensor,
    ind: Tensor,
    live: Tensor,
    pre: SpikeEvents,
    x_post: Tensor,
    rule: Any,
    dt: float = 1.0,
) -> None:
    """Depress, in place, the rows of the spiking presynaptic neurons in ``pre`` (batch 1).

    Shapes: ``w, ind, live [n_pre, capacity]`` (``w`` with unit column stride), ``x_post
    [n_post]``. Each valid event must name a different neuron (one step of batch 1). Live slots
    get ``w + (depress(w) - w)``, as in the reference.
    """
    n_pre, capacity = w.shape
    if pre.count == 0 or capacity == 0:
        return
    if w.stride(1) != 1:
        raise ValueError("stdp_depress_rows needs weights with unit column stride")
    kernel, numbers = _numbers(rule, "depress", dt, w)
    ind, live = ind.contiguous(), live.contiguous()
    valid = pre.valid
    kernel[(triton.cdiv(pre.count, BLOCK_EVENTS),)](
        w,
        ind,
        live,
        pre.pre,
        pre.pre if valid is None else valid,
        x_post.contiguous(),
        numbers,
        pre.count,
        capacity,
        w.stride(0),
        ind.stride(0),
        live.stride(0),
        HAS_VALID=valid is not None,
        BLOCK_E=BLOCK_EVENTS,
        BLOCK_S=_block(capacity),
        enable_fp_fusion=False,
    )


def stdp_potentiate_columns(
    w: Tensor, columns: Tensor, post: SpikeEvents, x_pre: Tensor, rule: Any, dt: float = 1.0
) -> None:
    """Potentiate, in place, the synapses onto the spiking postsynaptic neurons in ``post``.

    Shapes: ``w [n_pre, capacity]`` (contiguous), ``columns [n_post, col_capacity]`` flat slot
    indices padded with ``w.numel()``, ``x_pre [n_pre]``. Each valid event must name a different
    neuron. Listed slots get ``w + (potentiate(w) - w)``, as in the reference.
    """
    col_capacity = columns.shape[1]
    if post.count == 0 or col_capacity == 0:
        return
    if not w.is_contiguous():
        raise ValueError("stdp_potentiate_columns needs contiguous weights")
    kernel, numbers = _numbers(rule, "potentiate", dt, w)
    columns = columns.contiguous()
    valid = post.valid
    kernel[(triton.cdiv(post.count, BLOCK_EVENTS),)](
        w,
        columns,
        post.pre,
        post.pre if valid is None else valid,
        x_pre.contiguous(),
        numbers,
        post.count,
        col_capacity,
        columns.stride(0),
        w.shape[1],
        w.numel(),
        HAS_VALID=valid is not None,
        BLOCK_E=BLOCK_EVENTS,
        BLOCK_S=_block(col_capacity),
        enable_fp_fusion=False,
    )
