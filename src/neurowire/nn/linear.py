"""A linear layer whose weight matrix is a sparse, rewirable synapse store."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..connectivity import Connectivity, FixedProbability, check_padding, default_capacity
from ..initializers import Initializer, Uniform
from ..store import RaggedSynapses
from .functional import sparse_linear


class SparseLinear(nn.Module):
    """``y = x W + b`` with ``W`` stored as ragged synapse rows, one row per input feature.

    Args:
        in_features: inputs ``n_in`` (the store's presynaptic rows).
        out_features: outputs ``n_out`` (the store's postsynaptic columns).
        connectivity: which pairs start connected (default ``FixedProbability(0.1)``).
        padding: row capacity as a multiple of the connectivity's longest expected row (>= 1),
            the room a row has to grow when rewired.
        bias: learn an additive bias ``[n_out]``.
        weight_init: initialiser of the synapses' weights (default uniform in
            ``±1/sqrt(expected fan-in)``, the scale ``nn.Linear`` uses for its real fan-in).
        generator: seeds the connectivity and the initial weights.
        device, dtype: of the store and the parameters.
        recurrent: inputs and outputs are the same neurons (``in_features == out_features``),
            and the connectivity leaves out ``i -> i`` unless it allows autapses.

    Attributes:
        synapses: the :class:`~neurowire.RaggedSynapses` store (``n_in x n_out``); its variable
            ``"weight"`` shares memory with :attr:`weight`.
        weight: ``nn.Parameter [n_in, capacity]`` in slot layout; slot ``s`` of row ``i`` is the
            synapse ``i -> synapses.ind[i, s]``. Padding slots hold 0 and get no gradient.
        bias: ``nn.Parameter [n_out]`` or None.
        backend: which implementation of :func:`~neurowire.nn.functional.sparse_linear` runs:
            None (default: numba kernels on the CPU for float32/float64, PyTorch ops
            elsewhere), ``"numba"`` or ``"torch"``.

    Shapes: input ``[..., n_in]`` (spikes or real values), output ``[..., n_out]``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        connectivity: Connectivity | None = None,
        padding: float = 2.0,
        bias: bool = True,
        *,
        weight_init: Initializer | None = None,
        generator: torch.Generator | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        recurrent: bool = False,
    ) -> None:
        super().__init__()
        for arg, val in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"SparseLinear: {arg} must be an int >= 1, got {val!r}")
        conn = FixedProbability(0.1) if connectivity is None else connectivity
        if not isinstance(conn, Connectivity) or not conn.sparse:
            raise TypeError(
                f"SparseLinear: connectivity must be a sparse Connectivity, got {conn!r}"
            )
        padding = check_padding(padding)
        self.in_features, self.out_features = in_features, out_features
        store = _build_store(
            in_features, out_features, conn, padding, weight_init, generator, dtype, recurrent
        )
        self.synapses = store.to(device)
        self.weight = nn.Parameter(self.synapses.vars["weight"])
        self.bias = (
            nn.Parameter(torch.zeros(out_features, dtype=dtype, device=device)) if bias else None
        )
        self.backend: str | None = None

    def forward(self, x: Tensor) -> Tensor:
        """``[..., n_in] -> [..., n_out]`` (see :func:`~neurowire.nn.functional.sparse_linear`)."""
        return sparse_linear(x, self.weight, self.synapses, self.bias, backend=self.backend)

    def extra_repr(self) -> str:
        s = self.synapses
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"synapses={s.nnz}, capacity={s.capacity}, bias={self.bias is not None}"
        )

    def get_extra_state(self) -> dict[str, Any]:
        """The connectivity (row lengths and columns), saved with the weights."""
        return {"row_length": self.synapses.row_length.clone(), "ind": self.synapses.ind.clone()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        s = self.synapses
        row_length, ind = state["row_length"], state["ind"]
        if tuple(ind.shape) != (s.n_pre, s.capacity) or tuple(row_length.shape) != (s.n_pre,):
            raise ValueError(
                f"SparseLinear: saved connectivity {tuple(ind.shape)} does not fit this layer's "
                f"{(s.n_pre, s.capacity)}"
            )
        with s.mutation():
            s.ind.copy_(ind)
            s.row_length.copy_(row_length)
        s.validate()


def sparse_linear_reference(
    x: Tensor, weight: Tensor, synapses: RaggedSynapses, bias: Tensor | None
) -> Tensor:
    """``x W (+ b)`` through a dense masked matrix built from the live slots (the reference
    every fast path is tested against; differentiable in ``x``, ``weight`` and ``bias``)."""
    live = synapses.live
    rows = live.nonzero()[:, 0]
    dense = torch.zeros(
        synapses.n_pre, synapses.n_post, dtype=weight.dtype, device=weight.device
    ).index_put((rows, synapses.ind[live]), weight[live])
    y = x.to(weight.dtype) @ dense
    return y if bias is None else y + bias


def _build_store(
    n_in: int,
    n_out: int,
    conn: Connectivity,
    padding: float,
    weight_init: Initializer | None,
    generator: torch.Generator | None,
    dtype: torch.dtype,
    recurrent: bool,
) -> RaggedSynapses:
    """The layer's store on the CPU, connected by ``conn``, weights drawn from ``weight_init``."""
    if recurrent and n_in != n_out:
        raise ValueError(f"SparseLinear: recurrent needs in == out features, got {n_in}, {n_out}")
    pre, post = conn.build(n_in, n_out, generator=generator, same_population=recurrent)
    longest = int(torch.bincount(pre, minlength=n_in).max()) if pre.numel() else 0
    bound = conn.max_row_length(n_in, n_out)
    capacity = max(default_capacity(max(bound, 1), padding, n_out), longest)
    fan_in = max(1.0, pre.numel() / n_out)
    init = weight_init or Uniform(-1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in))
    autapses = not recurrent or conn.allows_autapses()
    store = RaggedSynapses(n_in, n_out, capacity, name="SparseLinear", autapses=autapses)
    store.add_var("weight", dtype=dtype)
    store.add(pre, post, weight=init.sample(pre.shape, generator=generator, dtype=dtype))
    return store
