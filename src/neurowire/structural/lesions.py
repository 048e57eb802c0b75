"""Lesions: delete a random fraction of a projection's synapses at once.

A lesion draws ``round(fraction * n)`` of a projection's ``n`` synapses uniformly without
replacement (every subset of that size equally likely; Python's ``round``, ties to even) from a
seeded CPU ``torch.Generator``, so the same generator state cuts the same synapses on every
device. :func:`lesion` removes them from a store (every variable goes with its synapse);
:func:`lesion_dense` sets them to zero in a dense weight matrix and returns the mask that keeps
them there. What happens afterwards is up to the projection's rules: nothing regrows a static
projection's synapses, and :class:`~neurowire.DeepR` refills its synapse budget
(:mod:`.deep_r`). :class:`neurowire.learning.Lesion` applies a lesion during training.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..checks import check_number
from ..store import RaggedSynapses

__all__ = ["lesion", "lesion_count", "lesion_dense", "lesion_mask"]


def lesion_count(n: int, fraction: float) -> int:
    """The number of synapses a lesion of ``fraction`` cuts out of ``n``:
    ``round(fraction * n)``."""
    fraction = _fraction(fraction)
    return int(round(fraction * n))


def lesion_mask(candidates: Tensor, fraction: float, generator: torch.Generator) -> Tensor:
    """Choose ``round(fraction * candidates.sum())`` of the True entries of ``candidates``
    uniformly without replacement.

    Args:
        candidates: bool, any shape: the synapses that may be cut.
        fraction: share cut, a number in [0, 1].
        generator: a CPU ``torch.Generator``; the draw is one ``randperm`` of the candidates
            (in row-major order), whatever the device of ``candidates``.

    Returns:
        bool, the shape and device of ``candidates``: True on the chosen entries.
    """
    if not isinstance(candidates, Tensor) or candidates.dtype != torch.bool:
        raise TypeError(f"candidates must be a bool tensor, got {_kind(candidates)}")
    _check_generator(generator)
    flat = candidates.reshape(-1).cpu().nonzero().squeeze(1)
    k = lesion_count(flat.numel(), fraction)
    chosen = flat[torch.randperm(flat.numel(), generator=generator)[:k]]
    mask = torch.zeros(candidates.numel(), dtype=torch.bool)
    mask[chosen] = True
    return mask.reshape(candidates.shape).to(candidates.device)


def lesion(store: RaggedSynapses, fraction: float, generator: torch.Generator) -> Tensor:
    """Remove ``round(fraction * store.nnz)`` of the store's synapses, drawn uniformly without
    replacement (:func:`lesion_mask` over ``store.live``); every variable of a removed synapse
    goes with it, the survivors keep theirs and their order.

    Args:
        store: the projection's store.
        fraction: share removed, a number in [0, 1].
        generator: a seeded CPU ``torch.Generator``.

    Returns:
        bool ``[n_pre, capacity]``: the slots that were cut (the slot layout before the cut).
    """
    if not isinstance(store, RaggedSynapses):
        raise TypeError(f"lesion needs a RaggedSynapses, got {_kind(store)}")
    cut = lesion_mask(store.live, fraction, generator)
    store.remove(cut)
    return cut


def lesion_dense(
    weight: Tensor, fraction: float, generator: torch.Generator, autapses: bool = True
) -> Tensor:
    """Set ``round(fraction * n)`` of a dense weight matrix's ``n`` entries to zero, drawn
    uniformly without replacement, and return their mask (zero them again after every update
    to keep them cut, as :class:`neurowire.learning.Lesion` does).

    Args:
        weight: ``[n_pre, n_post]``, changed in place.
        fraction: share cut, a number in [0, 1].
        generator: a seeded CPU ``torch.Generator``.
        autapses: False for a recurrent matrix whose diagonal holds no synapse (``n_pre ==
            n_post``): the diagonal is neither counted nor cut.

    Returns:
        bool ``[n_pre, n_post]`` on ``weight``'s device: True on the cut entries.
    """
    if not isinstance(weight, Tensor) or weight.dim() != 2:
        raise TypeError(f"lesion_dense needs a 2-D weight tensor, got {_kind(weight)}")
    candidates = torch.ones(weight.shape, dtype=torch.bool)
    if not autapses:
        if weight.shape[0] != weight.shape[1]:
            raise ValueError(
                f"autapses=False needs a square weight matrix, got {tuple(weight.shape)}"
            )
        candidates.fill_diagonal_(False)
    cut = lesion_mask(candidates, fraction, generator).to(weight.device)
    with torch.no_grad():
        weight.masked_fill_(cut, 0.0)
    return cut


def _fraction(fraction: Any) -> float:
    return check_number("lesion fraction", fraction, low=0.0, high=1.0)


def _check_generator(generator: Any) -> None:
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise TypeError(f"generator must be a CPU torch.Generator, got {_kind(generator)}")


def _kind(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if isinstance(value, torch.Generator):
        return f"a generator on {value.device}"
    return type(value).__name__
