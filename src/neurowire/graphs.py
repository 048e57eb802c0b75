"""Blocks of steps captured once as CUDA graphs and replayed (``Simulator(engine="graph")``).

A block of the torch engine is shape-static and never waits on the device
(:mod:`neurowire.capture` checks that), so on CUDA it can be recorded as one graph and replayed
with a single launch instead of one per operation. :class:`GraphedBlock` keeps, per *key*, the
captured graph and its input buffers. Before every replay the host copies the current inputs
into those buffers (device-to-device, asynchronous): the neuron, synapse and trace state, the
connectivity and weights as they are after the last rewiring, the per-neuron parameters and the
block's inputs and random numbers. So rewiring never invalidates a graph, and nothing the graph
bakes in changes between blocks except what the key holds:

* the block length (the last block of a run may be shorter), the recorded variables;
* the spike-list budgets (doubled by the host after an overflow) and the addresses of the
  stores' weight tensors the block reads directly;
* the shapes, dtypes and devices of all inputs: a store's capacity, or the width of its
  column index, which only grows, in powers of two.

A new key is captured once and kept. The host decisions that remain are between blocks: the
structural rules and callbacks, and one read of the block's overflow flags (a block that listed
more spikes than its budget is run again with a doubled budget, as on the torch engine).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

from .capture import capture_guard

Block = Callable[..., tuple[Any, Any, Any]]
#: records ``run()`` once; returns ``(replay, outputs)``: ``replay()`` runs it again on the same
#: buffers, writing into the same ``outputs`` tensors
Recorder = Callable[[Callable[[], Any]], tuple[Callable[[], None], Any]]


def record_cuda_graph(run: Callable[[], Any]) -> tuple[Callable[[], None], Any]:
    """Warm ``run`` up on a side stream (lazy initialisation stays outside the capture), then
    capture it as a CUDA graph with its own memory pool; returns ``(graph.replay, outputs)``."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        run()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = run()
    return graph.replay, outputs


@dataclass(eq=False)
class _Captured:
    buffers: list[Any]  # the input leaves the graph reads (tensors cloned at capture)
    replay: Callable[[], None] | None  # None: run the block on the buffers, no graph
    outputs: Any  # the graph's output tensors (overwritten by every replay)


class GraphedBlock:
    """``fn(state, structure, ext, k, rec_keys) -> (state, records, overflow)`` replayed from
    static buffers.

    Args:
        fn: the block function; it must not modify its inputs.
        recorder: how a key is recorded: :func:`record_cuda_graph` (CUDA inputs), or None to run
            ``fn`` on the same buffers with the same copies but no graph. ``fn`` runs under
            :func:`~neurowire.capture.capture_guard` whenever Python executes it (warm-up and
            capture; without a graph, every time), so the buffer handling and capturability are
            tested on the CPU.

    Calling returns fresh tensors (the outputs cloned after the replay), like ``fn`` itself.
    """

    def __init__(self, fn: Block, recorder: Recorder | None = record_cuda_graph) -> None:
        if recorder is record_cuda_graph and not torch.cuda.is_available():
            raise ValueError("capturing CUDA graphs needs a CUDA device")
        self.fn = fn
        self.recorder = recorder
        self.captures = 0  # graphs recorded so far (one per key)
        self._entries: dict[Hashable, _Captured] = {}

    def __call__(
        self,
        state: Any,
        structure: Any,
        ext: Any,
        k: int,
        rec_keys: tuple,
        extra: tuple = (),
    ) -> tuple[Any, Any, Any]:
        leaves, spec = tree_flatten((state, structure, ext))
        key = (k, rec_keys, extra, spec, tuple(_signature(x) for x in leaves))
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = self._record(leaves, spec, k, rec_keys)
        else:
            for buf, x in zip(entry.buffers, leaves, strict=True):
                if isinstance(buf, Tensor) and buf is not x:
                    buf.copy_(x)
        if entry.replay is None:
            with capture_guard("Simulator block"):
                return self.fn(*tree_unflatten(entry.buffers, spec), k, rec_keys)
        entry.replay()
        return tree_map(lambda t: t.clone() if isinstance(t, Tensor) else t, entry.outputs)

    def _record(self, leaves: list[Any], spec, k: int, rec_keys: tuple) -> _Captured:
        buffers = [x.clone() if isinstance(x, Tensor) else x for x in leaves]
        if self.recorder is None:
            return _Captured(buffers, None, None)
        inputs = tree_unflatten(buffers, spec)

        def run():
            with capture_guard("Simulator block"):  # a clear error where a capture would fail
                return self.fn(*inputs, k, rec_keys)

        replay, outputs = self.recorder(run)
        self.captures += 1
        return _Captured(buffers, replay, outputs)


def _signature(x: Any) -> Hashable:
    if isinstance(x, Tensor):
        return (tuple(x.shape), x.dtype, x.device, x.layout)
    return (type(x).__name__, x if isinstance(x, Hashable) else repr(x))
