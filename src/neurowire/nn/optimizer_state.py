"""Optimiser state that follows its synapses through rewiring.

A :class:`~neurowire.nn.SparseLinear` weight is a parameter ``[n_in, capacity]`` in slot
layout, so a ``torch.optim`` optimiser keeps its per-element state (Adam's moments, SGD's
momentum) per *slot*. A structural edit compacts rows (a surviving synapse can change slot)
and puts new synapses in freed slots, so that state must move with the synapses and start
fresh for new ones. :func:`following_synapses` does this by attaching every per-slot state
tensor of the weight, and the weight's ``.grad``, to the layer's store as temporary variables
while a rule runs: the store's own edits (numba, PyTorch and CUDA paths alike) then move them
with their synapse, zero them for new synapses, and a rule transaction's snapshot restores them
when a rule raises. They are detached afterwards.

Known optimisers (:data:`SLOT_STATE`) update every element of a parameter from that element's
state and gradient alone, plus per-parameter scalars (``step``; NAdam's ``mu_product``) that are
left as they are, and create each per-element state as zeros: so a zero state for a new synapse
is the state a fresh element has. Two exceptions are checked or documented: Adagrad starts its
``sum`` at ``initial_accumulator_value`` (only 0 is accepted), and SGD starts momentum at the
first gradient rather than at 0, which gives the same update only with ``dampening=0`` (with
``dampening > 0`` a new synapse's first momentum is ``(1 - dampening) * grad``). Any other state
key raises ``ValueError`` naming it, before anything changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import Tensor

from ..store import RaggedSynapses

#: per optimiser class: (per-slot state keys, fresh value 0; per-parameter scalar keys, kept)
SLOT_STATE: dict[type, tuple[frozenset[str], frozenset[str]]] = {
    torch.optim.Adam: (frozenset({"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}), frozenset({"step"})),
    torch.optim.AdamW: (
        frozenset({"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}),
        frozenset({"step"}),
    ),
    torch.optim.SGD: (frozenset({"momentum_buffer"}), frozenset()),
    torch.optim.RMSprop: (
        frozenset({"square_avg", "momentum_buffer", "grad_avg"}),
        frozenset({"step"}),
    ),
    torch.optim.Adagrad: (frozenset({"sum"}), frozenset({"step"})),
    torch.optim.Adamax: (frozenset({"exp_avg", "exp_inf"}), frozenset({"step"})),
    torch.optim.NAdam: (frozenset({"exp_avg", "exp_avg_sq"}), frozenset({"step", "mu_product"})),
    torch.optim.RAdam: (frozenset({"exp_avg", "exp_avg_sq"}), frozenset({"step"})),
    torch.optim.Adadelta: (frozenset({"square_avg", "acc_delta"}), frozenset({"step"})),
}

#: store variable name of the weight's gradient while a rule runs; optimiser state key ``k``
#: is attached as ``optimizer_<k>``
GRAD_VAR = "weight_grad"


def param_group(optimizer: torch.optim.Optimizer, param: Tensor) -> Mapping[str, Any] | None:
    """The parameter group of ``optimizer`` that holds ``param``, or None."""
    for group in optimizer.param_groups:
        if any(p is param for p in group["params"]):
            return group
    return None


def _known_keys(optimizer: torch.optim.Optimizer) -> tuple[frozenset[str], frozenset[str]]:
    for cls in type(optimizer).__mro__:
        if cls in SLOT_STATE:
            return SLOT_STATE[cls]
    return frozenset(), frozenset()


def slot_state(optimizer: torch.optim.Optimizer, weight: Tensor, layer: str) -> dict[str, Tensor]:
    """The per-slot state tensors of ``weight`` in ``optimizer`` by key (None entries left out).

    Raises ``ValueError`` naming ``layer`` and the key for state that cannot follow the
    synapses: a key not known for this optimiser, a per-slot tensor that is not
    weight-shaped, or Adagrad with a nonzero ``initial_accumulator_value``.
    """
    state = optimizer.state.get(weight, {})
    if not state:
        return {}
    name = type(optimizer).__name__
    slots, scalars = _known_keys(optimizer)
    unknown = sorted(k for k in state if k not in slots | scalars)
    if unknown:
        known = (
            f"the per-slot state it moves for {name} is {sorted(slots)}"
            if slots
            else f"it moves the state of {sorted(c.__name__ for c in SLOT_STATE)}"
        )
        raise ValueError(
            f"layer {layer!r}: {name} keeps state {unknown} for the weight, which rewiring "
            f"cannot move with the synapses; {known}"
        )
    out = {}
    for key, value in state.items():
        if key in scalars or value is None:
            continue
        if not isinstance(value, Tensor) or value.shape != weight.shape:
            raise ValueError(
                f"layer {layer!r}: {name} state {key!r} must be a tensor "
                f"{list(weight.shape)} like the weight, got {getattr(value, 'shape', value)!r}"
            )
        out[key] = value
    group = param_group(optimizer, weight)
    if isinstance(optimizer, torch.optim.Adagrad) and group is not None:
        if group.get("initial_accumulator_value", 0) != 0:
            raise ValueError(
                f"layer {layer!r}: Adagrad's initial_accumulator_value must be 0 for rewiring "
                f"(new synapses start their sum at 0), got {group['initial_accumulator_value']}"
            )
    return out


@contextmanager
def attached(store: RaggedSynapses, tensors: Mapping[str, Tensor]) -> Iterator[None]:
    """Make ``tensors`` (each ``[n_pre, capacity]``) variables of ``store`` for the block, so
    that its edits move them in place; detach them afterwards, also when the block raises.

    Raises ``ValueError`` if a name is taken or a tensor has the wrong shape or device.
    """
    shape = (store.n_pre, store.capacity)
    for name, tensor in tensors.items():
        if name in store.vars:
            raise ValueError(f"{store.name}: store variable {name!r} exists already")
        if tuple(tensor.shape) != shape or tensor.device != store.device:
            raise ValueError(
                f"{store.name}: {name!r} must be {list(shape)} on {store.device}, got "
                f"{list(tensor.shape)} on {tensor.device}"
            )
    store.vars.update(tensors)
    try:
        yield
    finally:
        for name in tensors:
            store.vars.pop(name, None)
        store.native_layout()  # drop the cached numpy views of the detached tensors


@contextmanager
def following_synapses(
    layers: Mapping[str, Any], optimizer: torch.optim.Optimizer | None
) -> Iterator[None]:
    """For the block, attach every per-slot optimiser state tensor (:func:`slot_state`) and the
    ``.grad`` of each layer's weight to the layer's store (``{name: SparseLinear}``).

    All state is checked before anything is attached, so an optimiser with unknown state
    raises before any store changes.
    """
    plan = []
    for name, layer in layers.items():
        weight = layer.weight
        tensors = {}
        if optimizer is not None:
            state = slot_state(optimizer, weight, name)
            tensors = {f"optimizer_{key}": value for key, value in state.items()}
        if weight.grad is not None:
            tensors[GRAD_VAR] = weight.grad
        plan.append((layer.synapses, tensors))
    with ExitStack() as stack:
        for store, tensors in plan:
            if tensors:
                stack.enter_context(attached(store, tensors))
        yield
