"""A sparse recurrent projection for a time loop written by the user."""

from __future__ import annotations

import torch

from ..connectivity import Connectivity
from ..initializers import Initializer
from .linear import SparseLinear


class SparseRecurrent(SparseLinear):
    """The recurrent input ``z_{t-1} W_rec`` of ``n`` neurons, over a sparse rewirable store.

    Call it once per time step on the previous step's spikes ``[..., n]``; it returns the
    recurrent input ``[..., n]``. Without autapses in ``connectivity`` no neuron feeds itself.
    Any neuron step that maps a current ``[B, n]`` to spikes ``[B, n]`` closes the loop
    (:class:`~neurowire.nn.NeuronCell`, a feed-forward snnTorch ``Leaky``, a Norse ``LIFCell``)::

        inp = nw.nn.SparseLinear(n_in, n, nw.FixedProbability(0.1))
        rec = nw.nn.SparseRecurrent(n, nw.FixedProbability(0.05))
        cell = nw.nn.NeuronCell(nw.ALIF(n), dt=1.0)
        z, state = torch.zeros(batch, n), None
        for t in range(steps):                       # x: [T, B, n_in]
            z, state = cell(inp(x[t]) + rec(z), state)

    Args:
        n: neurons (rows and columns of the store).
        connectivity, padding, bias, weight_init, generator, device, dtype: as in
            :class:`SparseLinear` (``bias`` defaults to False here).
    """

    def __init__(
        self,
        n: int,
        connectivity: Connectivity | None = None,
        padding: float = 2.0,
        bias: bool = False,
        *,
        weight_init: Initializer | None = None,
        generator: torch.Generator | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(
            n,
            n,
            connectivity,
            padding,
            bias,
            weight_init=weight_init,
            generator=generator,
            device=device,
            dtype=dtype,
            recurrent=True,
        )
