"""The weights of one batch as the e-prop engines read them: per projection, merged tables.

:class:`Weights` gathers every plastic projection's weights once per batch
(:class:`ProjectionWeights`: a dense matrix or a store's slot rows); :func:`dense_table` sums
projections into one ``[pre, post]`` matrix and :class:`Layout` merges a group of projections
into the one table a fused kernel reads. This module depends on no engine: the engines and
their kernels import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from ..store import RaggedSynapses
    from .compiled import EPropNetwork, PlasticProjection


@dataclass(eq=False)
class ProjectionWeights:
    """One plastic projection's weights as read from its store (or tensor) for one batch.

    Shapes: ``dense [n_pre, n_post]`` for ``Dense()`` (diagonal zeroed for a self loop), or for a
    sparse store ``post [n_pre, capacity]`` (global hidden index of each slot's target),
    ``weight [n_pre, capacity]`` and ``mask [n_pre, capacity]`` (True on live synapses that
    e-prop trains; ``weight`` is 0 and ``post`` a valid index elsewhere), ``length [n_pre]``
    (the store's row lengths: slots beyond are padding). ``post`` and ``weight`` are copies
    made on first use; an engine that visits only each row's first ``length`` slots may read
    the store's own rows instead where :attr:`own_rows` allows.
    """

    spec: PlasticProjection
    dense: Tensor | None = None

    @property
    def store(self) -> RaggedSynapses | None:
        return None if self.dense is not None else self.spec.projection.synapses

    @cached_property
    def mask(self) -> Tensor | None:
        s = self.store
        if s is None:
            return None
        if self.spec.self_loop and s.autapses:  # a stored i -> i is not trained
            rows = torch.arange(s.n_pre, device=s.device)[:, None]
            return s.live & (s.ind != rows)
        return s.live

    @cached_property
    def post(self) -> Tensor | None:
        s = self.store
        return None if s is None else torch.where(self.mask, s.ind + self.spec.post_offset, 0)

    @cached_property
    def weight(self) -> Tensor | None:
        s = self.store
        return None if s is None else torch.where(self.mask, s.vars["weight"], 0.0)

    @property
    def length(self) -> Tensor | None:
        s = self.store
        return None if s is None else s.row_length

    @property
    def own_rows(self) -> bool:
        """The store's ``ind``, ``weight`` and ``row_length`` serve as this projection's table
        for the first ``length`` slots of each row: its targets need no offset and it holds
        no synapse that e-prop excludes."""
        s, spec = self.store, self.spec
        return s is not None and spec.post_offset == 0 and not (spec.self_loop and s.autapses)


@dataclass(eq=False)
class Weights:
    """Everything the forward and backward passes read, gathered once per batch.

    ``w_out [N, K]``, ``bias [K]``, ``feedback [N, K]`` (``B^T`` of the learning signal
    ``L = err B^T``). ``w_rec [N, N]``, the recurrent matrix ``W_rec^T`` in ``[pre, post]``
    layout (autapses excluded: its diagonal is 0; the reset is the neuron model's own), is built
    on first use: the torch engine's step needs it, the native engine reads the stores' rows.
    ``cache`` holds what an engine derives from these weights for the batch.
    """

    inputs: list[ProjectionWeights]
    recurrent: list[ProjectionWeights]
    n_hidden: int
    w_out: Tensor
    bias: Tensor
    feedback: Tensor
    cache: dict = field(default_factory=dict)

    @property
    def w_rec(self) -> Tensor:
        if "w_rec" not in self.cache:
            n = self.n_hidden
            self.cache["w_rec"] = dense_table(self.recurrent, n, n, self.w_out)
        return self.cache["w_rec"]


def projection_weights(spec: PlasticProjection) -> ProjectionWeights:
    proj = spec.projection
    if proj.sparse:
        return ProjectionWeights(spec)
    w = proj.weight
    if spec.self_loop:
        w = w.clone()
        w.fill_diagonal_(0.0)
    return ProjectionWeights(spec, dense=w)


def gather_weights(enet: EPropNetwork, feedback: Tensor | None) -> Weights:
    """Read the current weights; ``feedback=None`` means symmetric (``B = W_out^T``)."""
    n, k = enet.hidden.n, enet.n_out
    dev, dtype = enet.device, enet.dtype
    inputs = [projection_weights(p) for p in enet.inputs]
    recurrent = [projection_weights(p) for p in enet.recurrent]
    w_out = torch.zeros(n, k, dtype=dtype, device=dev)
    for spec in enet.outputs:
        w_out[spec.pre_offset : spec.pre_offset + spec.n_pre] += spec.projection.weight
    fb = w_out if feedback is None else feedback
    return Weights(inputs, recurrent, n, w_out, enet.bias, fb)


def dense_table(pws: list[ProjectionWeights], n_pre: int, n: int, like: Tensor) -> Tensor:
    """``[n_pre, n]`` (``[pre, post]``, hidden-layer columns) sum of the projections ``pws``,
    dense or sparse, each at its ``pre_offset``/``post_offset``; dtype and device of ``like``.
    For the recurrent projections this is ``W_rec^T``."""
    table = torch.zeros(n_pre, n, dtype=like.dtype, device=like.device)
    for pw in pws:
        spec = pw.spec
        rows = slice(spec.pre_offset, spec.pre_offset + spec.n_pre)
        if pw.dense is not None:
            table[rows, spec.post_offset : spec.post_offset + spec.n_post] += pw.dense
        else:
            pre = torch.arange(rows.start, rows.stop, device=like.device)[:, None]
            table.index_put_(
                (pre.expand_as(pw.post)[pw.mask], pw.post[pw.mask]),
                pw.weight[pw.mask],
                accumulate=True,
            )
    return table


# ---------------------------------------------------------------------- kernel tables
@dataclass(eq=False)
class Layout:
    """A group of projections onto the hidden layer (all inputs, or all recurrent ones) merged
    into one weight table the fused kernels read, and how to split a gradient of that table.

    ``dense``: ``weight [n_pre, N]`` over the whole hidden layer (used when any projection of
    the group is ``Dense()``). Otherwise slots: ``weight``/``post [n_pre, C]`` (global hidden
    index per slot; padding has weight 0 and a valid index) and ``length [n_pre]`` (slots to
    visit per row); ``post``/``length`` are ``[1, 1]``/``[1]`` placeholders when dense.
    ``parts``: per projection, ``(weights, rows, columns)`` of its block of the table.
    """

    dense: bool
    weight: Tensor
    post: Tensor
    length: Tensor
    parts: list[tuple[ProjectionWeights, slice, slice]]

    @classmethod
    def of(cls, pws: list[ProjectionWeights], n_pre: int, n: int, dtype: torch.dtype) -> Layout:
        """Merge ``pws``; rows are their presynaptic indices (``pre_offset`` on), ``n`` is the
        hidden layer's size."""
        rows = [slice(pw.spec.pre_offset, pw.spec.pre_offset + pw.spec.n_pre) for pw in pws]
        if any(pw.dense is not None for pw in pws):
            cols = [slice(pw.spec.post_offset, pw.spec.post_offset + pw.spec.n_post) for pw in pws]
            if len(pws) == 1 and pws[0].dense is not None and pws[0].dense.shape == (n_pre, n):
                table = pws[0].dense.contiguous()  # the whole table: read it in place
            else:
                table = dense_table(pws, n_pre, n, torch.empty(0, dtype=dtype))
            placeholder = torch.zeros(1, 1, dtype=torch.int64)
            parts = list(zip(pws, rows, cols, strict=True))
            return cls(True, table, placeholder, torch.zeros(1, dtype=torch.int64), parts)
        if len(pws) == 1 and rows[0] == slice(0, n_pre):  # one store's rows
            (pw,) = pws
            s = pw.store
            parts = [(pw, rows[0], slice(0, s.capacity))]
            if pw.own_rows:  # read in place: the kernels visit each row's first length slots
                return cls(False, s.vars["weight"], s.ind, s.row_length, parts)
            return cls(False, pw.weight, pw.post, pw.length, parts)
        cap = sum(pw.post.shape[1] for pw in pws)
        w = torch.zeros(n_pre, cap, dtype=dtype)
        post = torch.zeros(n_pre, cap, dtype=torch.int64)
        parts, c = [], 0
        for pw, r in zip(pws, rows, strict=True):
            cols = slice(c, c + pw.post.shape[1])
            w[r, cols], post[r, cols] = pw.weight, pw.post
            parts.append((pw, r, cols))
            c = cols.stop
        return cls(False, w, post, torch.full((n_pre,), cap, dtype=torch.int64), parts)

    def split(self, g: Tensor) -> dict[str, Tensor]:
        """Each projection's gradient (dense ``[n_pre, n_post]`` or its slot layout, 0 off
        live synapses) from a gradient ``g`` of the whole table."""
        out = {}
        for pw, rows, cols in self.parts:
            if pw.dense is not None:
                block = g[rows, cols]
                if block.shape != g.shape:  # a part of the table: its own tensor
                    block = block.clone()
                if pw.spec.self_loop:
                    block.fill_diagonal_(0.0)
            elif self.dense:
                pre = torch.arange(rows.start, rows.stop)[:, None]
                block = g[pre, pw.post] * pw.mask
            else:
                block = g[rows, cols] * pw.mask
            out[pw.spec.name] = block
        return out


def layouts(w: Weights, enet) -> tuple[Layout, Layout]:
    """The input and recurrent :class:`Layout` of one batch's weights (built once per batch)."""
    if "layouts" not in w.cache:
        n = enet.hidden.n
        w.cache["layouts"] = (
            Layout.of(w.inputs, enet.n_in, n, enet.dtype),
            Layout.of(w.recurrent, n, n, enet.dtype),
        )
    return w.cache["layouts"]
