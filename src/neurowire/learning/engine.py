"""What an e-prop engine is, and the one place an engine is chosen by name.

An engine computes the per-chunk steps of factorised e-prop (:mod:`.factorized`): the hidden
layer's forward pass, the readout, the readout filter's scans, the output products and the
backward pass (learning signal, adjoint recursions, spike-event products). The trainer resolves
its ``engine=`` argument once, with :func:`resolve_engine`, into an object of this protocol:
:class:`~.engines.TorchEngine` (PyTorch, any device: the reference),
:class:`~.engines.NativeEngine` (numba kernels, CPU) or :class:`~.engines.TritonEngine`
(Triton kernels, CUDA). Nothing here imports an engine at module import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch
from torch import Tensor

if TYPE_CHECKING:
    from ..events import SpikeEvents
    from .compiled import EPropNetwork
    from .tables import Weights

#: the engine names :func:`resolve_engine` accepts
ENGINES = ("auto", "torch", "native", "triton")


@dataclass(eq=False)
class ForwardPass:
    """One chunk's forward pass: ``x_events`` and ``z_events`` (input and hidden spikes on the
    rows ``t * B + b``) and ``psi [T, B, N]``, the pseudo-derivative, which the backward pass
    consumes (it sets ``psi`` to None or overwrites it)."""

    x_events: SpikeEvents
    psi: Tensor | None
    z_events: SpikeEvents


@runtime_checkable
class EPropEngine(Protocol):
    """The steps of factorised e-prop over one chunk of ``B`` trials of ``T`` steps.

    Shapes: ``N`` hidden neurons, ``K`` outputs; ``threads`` limits intra-op threads of
    per-step Python loops (None: unchanged).
    """

    #: the name ``EProp(engine=...)`` accepts for this engine
    name: str

    def check_device(self, device: torch.device) -> None:
        """Raise ``ValueError`` if the engine cannot run on ``device``."""
        ...

    def prepare(self, enet: EPropNetwork) -> None:
        """Once per trainer, before the first batch: start thread pools, compile kernels."""
        ...

    def trial_bytes(self, enet: EPropNetwork, steps: int) -> int:
        """Working memory of one trial of ``steps`` steps [bytes] (chooses chunk sizes)."""
        ...

    def hidden_pass(self, enet: EPropNetwork, w: Weights, x: Tensor) -> ForwardPass:
        """The hidden layer's forward pass for input spikes ``x [B, T, n_in]`` (bool)."""
        ...

    def readout(
        self, z: SpikeEvents, w: Weights, kappa: float, steps: int, threads: int | None
    ) -> Tensor:
        """``y [T, B, K]``, ``y_t = kappa y_{t-1} + W_out z_t + b``, from hidden events."""
        ...

    def scan_(self, u: Tensor, decay: float, reverse: bool, threads: int | None) -> Tensor:
        """In place along dim 0 of ``u [T, B, K]``: ``u_t += decay u_{t-/+1}``."""
        ...

    def accumulate(self, events: SpikeEvents, values: Tensor) -> Tensor:
        """``[n_pre, K]``: every event ``(row r, pre i)`` adds ``values[r]`` to row ``i``."""
        ...

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
        """Gradients of the input and recurrent projections, ``(task, unit)`` by name.

        ``e_kappa [T, B, K]``: the kappa-filtered error; ``reg [N]``: the rate regulariser's
        ``R`` folded into the learning signal, or None; ``unit``: also return the part for
        ``Lambda = 1`` (else ``{}``). Calls ``lap("backward")`` (and ``lap("products")``
        where the products run apart) as the phases end.
        """
        ...


def check_engine(engine: object) -> None:
    """Refuse anything but a name in :data:`ENGINES` or an :class:`EPropEngine`."""
    if isinstance(engine, str):
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    elif not isinstance(engine, EPropEngine):
        raise TypeError(
            f"engine must be one of {ENGINES} or an EPropEngine, got {type(engine).__name__}"
        )


def resolve_engine(engine: str | EPropEngine, device: torch.device) -> EPropEngine:
    """The engine for ``engine`` on ``device``.

    ``"auto"`` is the native engine on the CPU when numba is installed, else torch; torch on
    CUDA until a GPU run has verified the triton engine. An :class:`EPropEngine` is checked
    against ``device`` and returned as it is.
    """
    check_engine(engine)
    if not isinstance(engine, str):
        engine.check_device(device)
        return engine
    from . import engines

    if engine == "torch" or (engine == "auto" and device.type != "cpu"):
        return engines.TorchEngine()
    if engine == "triton":
        try:
            chosen = engines.TritonEngine()
        except ImportError:
            raise ValueError("engine='triton' needs triton; install it or use 'torch'") from None
        chosen.check_device(device)
        return chosen
    try:
        chosen = engines.NativeEngine()
    except ImportError:
        if engine == "native":
            raise ValueError("engine='native' needs numba; install it or use 'torch'") from None
        return engines.TorchEngine()
    chosen.check_device(device)
    return chosen
