"""The state a simulation carries from step to step, and its initial value."""

from __future__ import annotations

from typing import Any

import torch

from ..checks import ParameterError
from ..network import Network

#: ``{"neurons": {pop: state tuple, [B, n] each}, "psc": {proj: postsynaptic state},
#: "traces": {plastic proj: (x_pre [n_pre], x_post [n_post])}, "pending": {proj with a delay
#: of d > 1 steps: delivered input waiting [d - 1, B, n_post], next to arrive first}}``;
#: inside a block also
#: ``"weight": {plastic proj: [n_pre, capacity]}`` (the block's copy of the weights)
State = dict[str, Any]


def initial_state(net: Network, batch_size: int, device: torch.device) -> State:
    """Every population's initial state (drawn on the CPU from a generator seeded
    ``net.seed + 2``, then moved to ``device``), zero postsynaptic state, traces and pending
    input."""
    dtype = net.dtype
    gen = torch.Generator().manual_seed(net.seed + 2)
    neurons = {}
    for pop in net.populations.values():
        st = pop.model.init_state(batch_size, torch.device("cpu"), dtype, gen)
        for var, x in st._asdict().items():
            if x.is_floating_point() and not bool(torch.isfinite(x).all()):
                raise ParameterError(
                    f"population {pop.name!r} ({type(pop.model).__name__}): initial {var} "
                    f"is not finite in {dtype} (a parameter too large for it?)"
                )
        neurons[pop.name] = type(st)(*(x.to(device) for x in st))
    projections = list(net.projections.values())
    psc = {p.name: p.psc.init_state(batch_size, p.post.n, device, dtype) for p in projections}
    traces = {
        p.name: (
            torch.zeros(p.pre.n, dtype=dtype, device=device),
            torch.zeros(p.post.n, dtype=dtype, device=device),
        )
        for p in projections
        if p.plasticity is not None
    }
    pending = {
        p.name: torch.zeros(p.delay_steps - 1, batch_size, p.post.n, dtype=dtype, device=device)
        for p in projections
        if p.delay_steps > 1
    }
    return {"neurons": neurons, "psc": psc, "traces": traces, "pending": pending}
