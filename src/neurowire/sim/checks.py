"""Checks of what a simulator is given: the network it runs and the inputs of a run."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from ..network import Network
from ..neurons import check_coefficients


def check_network(net: Network, batch_size: int) -> None:
    """Raise if a coefficient derived from ``net.dt`` is not a number in ``net.dtype``, a
    postsynaptic model needs a membrane potential its target lacks, or STDP meets a batch."""
    dt, dtype = net.dt, net.dtype
    for pop in net.populations.values():
        owner = f"population {pop.name!r} ({type(pop.model).__name__})"
        check_coefficients(pop.model, dt, dtype, owner)
    projections = list(net.projections.values())
    for proj in projections:
        owner = f"projection {proj.name!r}"
        check_coefficients(proj.psc, dt, dtype, f"{owner} ({type(proj.psc).__name__})")
        if proj.plasticity is not None:
            rule = proj.plasticity
            check_coefficients(rule, dt, dtype, f"{owner} ({type(rule).__name__})")
    for proj in projections:
        if proj.psc.needs_voltage and not hasattr(
            proj.post.model.init_state(1, torch.device("cpu"), dtype), "v"
        ):
            raise ValueError(
                f"{proj.name}: {type(proj.psc).__name__} needs a postsynaptic "
                f"membrane potential; {type(proj.post.model).__name__} has none"
            )
        if proj.plasticity is not None and batch_size > 1:
            raise NotImplementedError(
                f"{proj.name}: STDP with batch_size > 1 would need one weight copy per batch "
                "element; simulate batch elements in separate simulators"
            )


def check_inputs(
    net: Network, inputs: Mapping[str, Tensor], steps: int, batch_size: int
) -> dict[str, Tensor]:
    """``inputs`` of a run of ``steps`` steps as tensors: ``{spike source: [B, T >= steps,
    n]}`` of 0/1 (or bool), one for every spike source."""
    out = {}
    for pop in net.populations.values():
        if pop.model.external and pop.name not in inputs and steps:
            raise ValueError(
                f"SpikeSource {pop.name!r} needs inputs={{{pop.name!r}: spikes [B, T, {pop.n}]}}"
            )
    for name, spikes in inputs.items():
        pop = net.populations.get(name)
        if pop is None or not pop.model.external:
            raise ValueError(f"inputs given for {name!r}, which is not a SpikeSource")
        spikes = torch.as_tensor(spikes)
        expected = (batch_size, f">={steps}", pop.n)
        if (
            spikes.dim() != 3
            or spikes.shape[0] != batch_size
            or spikes.shape[1] < steps
            or spikes.shape[2] != pop.n
        ):
            raise ValueError(
                f"inputs for {name!r} must have shape {expected}, got {tuple(spikes.shape)}"
            )
        if spikes.is_floating_point() and not bool(((spikes == 0) | (spikes == 1)).all()):
            raise ValueError(f"inputs for {name!r} must be 0/1 spikes")
        out[name] = spikes
    return out
