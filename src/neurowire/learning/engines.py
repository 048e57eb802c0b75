"""The e-prop engines: :class:`TorchEngine` (the reference), :class:`NativeEngine` (numba,
CPU) and :class:`TritonEngine` (Triton, CUDA), each an :class:`~.engine.EPropEngine`.

The torch engine runs every step as PyTorch ops (:mod:`.forward`, :mod:`.factorized`). The
native engine runs the fused kernels of :mod:`.native` for the forward and backward passes and
numba kernels for the readout, scans and output products. The triton engine runs the kernels of
:mod:`.triton` for the hidden layer and the backward pass; the spike events, the readout and its
scans stay the torch engine's (they are not per-step loops of small operations). The kernel
modules are imported when an engine is built, so a missing numba or triton raises
``ImportError`` there.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..events import SpikeEvents
from ..propagate import accumulate_dense
from .compiled import EPropNetwork
from .engine import ForwardPass
from .factorized import reference_backward
from .forward import (
    check_vectorised,
    hidden_events,
    hidden_pass,
    input_events,
    leaky_scan_,
    readout,
)
from .tables import Weights


def _item(enet: EPropNetwork) -> int:
    return torch.finfo(enet.dtype).bits // 8


class TorchEngine:
    """Every step in PyTorch ops, on any device: the reference the other engines equal."""

    name = "torch"

    def check_device(self, device: torch.device) -> None:
        pass

    def prepare(self, enet: EPropNetwork) -> None:
        """Refuse hidden models its vectorised forms do not implement."""
        check_vectorised(enet.hidden)

    def trial_bytes(self, enet: EPropNetwork, steps: int) -> int:
        """The ``[T, B, N]`` tensors of the forward and backward passes."""
        n = enet.hidden.n
        return steps * ((7 * n + 4 * enet.n_out) * _item(enet) + 2 * enet.n_in)

    def hidden_pass(self, enet: EPropNetwork, w: Weights, x: Tensor) -> ForwardPass:
        return ForwardPass(*hidden_pass(enet, w, x))

    def readout(
        self, z: SpikeEvents, w: Weights, kappa: float, steps: int, threads: int | None
    ) -> Tensor:
        return readout(z, w, kappa, steps, threads)

    def scan_(self, u: Tensor, decay: float, reverse: bool, threads: int | None) -> Tensor:
        return leaky_scan_(u, decay, reverse, threads)

    def accumulate(self, events: SpikeEvents, values: Tensor) -> Tensor:
        return accumulate_dense(events, values, 0, values.shape[1])

    def backward(
        self,
        enet: EPropNetwork,
        w: Weights,
        fwd: ForwardPass,
        e_kappa: Tensor,
        reg: Tensor | None,
        unit: bool,
        lap: Callable[[str], None],
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        return reference_backward(enet, w, fwd, e_kappa, reg, unit, lap)


class NativeEngine:
    """numba kernels on the CPU (:mod:`.native`), equal to the torch engine up to rounding."""

    name = "native"

    def __init__(self) -> None:
        from . import native

        self.kernels = native

    def check_device(self, device: torch.device) -> None:
        if device.type != "cpu":
            raise ValueError(f"engine='native' runs on the CPU, not on {device}")

    def prepare(self, enet: EPropNetwork) -> None:
        """Start numba's thread pool and generate the forward kernel now: starting the pool
        inside a batch's thread scope resets the thread count there, so the first batch would
        sum in another order."""
        self.kernels.prepare(enet)

    def trial_bytes(self, enet: EPropNetwork, steps: int) -> int:
        """``psi``; readout, error, filtered error; the event lists at worst (every neuron
        spiking every step, int32)."""
        n = enet.hidden.n
        return steps * ((n + 4 * enet.n_out) * _item(enet) + 4 * (enet.n_in + n))

    def hidden_pass(self, enet: EPropNetwork, w: Weights, x: Tensor) -> ForwardPass:
        return ForwardPass(*self.kernels.forward(x, w, enet))

    def readout(
        self, z: SpikeEvents, w: Weights, kappa: float, steps: int, threads: int | None
    ) -> Tensor:
        y = w.bias.expand(z.n_rows, w.bias.shape[0]).clone()
        self.kernels.deliver_dense(y, z, w.w_out, 0)
        return self.kernels.leaky_scan_(y.view(steps, z.n_rows // steps, -1), kappa, False)

    def scan_(self, u: Tensor, decay: float, reverse: bool, threads: int | None) -> Tensor:
        return self.kernels.leaky_scan_(u, decay, reverse)

    def accumulate(self, events: SpikeEvents, values: Tensor) -> Tensor:
        return self.kernels.accumulate_dense(events, values, 0, values.shape[1])

    def backward(
        self,
        enet: EPropNetwork,
        w: Weights,
        fwd: ForwardPass,
        e_kappa: Tensor,
        reg: Tensor | None,
        unit: bool,
        lap: Callable[[str], None],
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        psi, fwd.psi = fwd.psi, None  # H of a dense table is written over it
        out = self.kernels.backward(psi, e_kappa, reg, fwd.x_events, fwd.z_events, w, enet, unit)
        lap("backward")
        return out


class TritonEngine(TorchEngine):
    """Triton kernels for the hidden layer and the backward pass (:mod:`.triton`); CUDA, or
    the CPU in Triton's interpreter (``TRITON_INTERPRET=1``). The rest is the torch engine's."""

    name = "triton"

    def __init__(self) -> None:
        from . import triton

        self.kernels = triton

    def check_device(self, device: torch.device) -> None:
        self.kernels.check_device(device)

    def prepare(self, enet: EPropNetwork) -> None:
        pass  # the kernels are generated from the models' definitions, when first called

    def hidden_pass(self, enet: EPropNetwork, w: Weights, x: Tensor) -> ForwardPass:
        x_ev = input_events(x)
        psi, z = self.kernels.forward(x_ev, w, enet, x.shape[1])
        return ForwardPass(x_ev, psi, hidden_events(z))

    #: the same call as the native engine's, into the Triton kernels
    backward = NativeEngine.backward
