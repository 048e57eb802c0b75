"""NEST's random choices in structural plasticity: which synapses go, which elements pair.

Both are draws without replacement, as NEST's ``global_shuffle(v, n)`` makes them (``n`` times a
uniform index into what is left): a uniformly random ``n``-subset in a uniformly random order.
The functions here draw the same distributions with vectorised torch operations on any device.
"""

from __future__ import annotations

import torch
from torch import Tensor


def choose_in_groups(group: Tensor, need: Tensor, generator: torch.Generator) -> Tensor:
    """A uniformly random subset of ``min(need[g], size of g)`` entries of every group ``g``.

    Args:
        group: int64 ``[E]``, the group of every entry (``0 <= group < len(need)``).
        need: int64 ``[G]``, entries wanted per group (values <= 0 take none).
        generator: draws the random order.

    Returns:
        bool ``[E]``, True for the chosen entries.
    """
    n = group.numel()
    if n == 0:
        return torch.zeros(0, dtype=torch.bool, device=group.device)
    keys = torch.rand(n, generator=generator, device=group.device, dtype=torch.float64)
    order = torch.argsort(keys)  # a random order, then grouped (stable): random within groups
    order = order[torch.argsort(group[order], stable=True)]
    sorted_group = group[order]
    size = torch.bincount(group, minlength=need.numel())
    start = torch.cumsum(size, 0) - size
    rank = torch.arange(n, device=group.device) - start[sorted_group]
    chosen = torch.zeros(n, dtype=torch.bool, device=group.device)
    chosen[order] = rank < need[sorted_group]
    return chosen


def pair_vacancies(
    pre_vacant: Tensor, post_vacant: Tensor, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """NEST's pairing of free elements: every neuron ``i`` listed ``pre_vacant[i]`` times (and
    likewise on the postsynaptic side), the longer list shuffled and cut to the shorter one's
    length, the two lists paired entry by entry.

    Args:
        pre_vacant, post_vacant: int64 ``[N_pre]``, ``[N_post]`` free elements per neuron (values
            <= 0 list a neuron never).
        generator: draws the shuffle.

    Returns:
        (pre, post) int64 ``[min(total pre, total post)]``, neuron indices of each pair.
    """
    device = pre_vacant.device
    pre = torch.repeat_interleave(
        torch.arange(pre_vacant.numel(), device=device), pre_vacant.clamp(min=0)
    )
    post = torch.repeat_interleave(
        torch.arange(post_vacant.numel(), device=device), post_vacant.clamp(min=0)
    )
    if pre.numel() > post.numel():
        pre = pre[torch.randperm(pre.numel(), generator=generator, device=device)[: post.numel()]]
    else:
        post = post[torch.randperm(post.numel(), generator=generator, device=device)[: pre.numel()]]
    return pre, post
