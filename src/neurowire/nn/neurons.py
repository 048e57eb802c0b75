"""One time step of a neurowire neuron model inside a user's autograd graph."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..checks import ParameterError, check_number
from ..codegen import Constants, recording_spike_tests
from ..learning.compiled import GAMMA_PD
from ..neurons import NeuronModel, check_coefficients


class NeuronCell(nn.Module):
    """Advances ``n`` neurons of a neurowire model by one step of ``dt`` ms, differentiably.

    The step is the model's own :meth:`~neurowire.NeuronModel.update` run as torch ops (the
    Simulator's eager step), so backpropagation through time flows through every state
    variable it computes with floats (membrane, adaptation) and through the previous step's
    spikes it reads (the e-prop convention's reset by subtraction). The spikes are 0/1 floats
    whose gradient is a surrogate: ``d z / d distance = psi``, where ``distance`` is the first
    argument of the model's spike test (``v - threshold``) and ``psi`` the model's own
    :meth:`~neurowire.NeuronModel.pseudo_derivative` (0 while refractory), as e-prop uses it::

        psi = (gamma_pd / w) max(0, 1 - |distance| / w)        (LIF, ALIF; w = v_th)

    Statements of ``update`` after the spike test see the spikes as booleans and pass no
    gradient (a reset to ``v_reset`` in the spike step, the refractory countdown).

    Args:
        model: the neuron model (``nw.LIF``, ``nw.ALIF``, ``nw.LeakyIntegrator`` or one of
            the user's, written in the model language); sources (``SpikeSource``,
            ``PoissonSource``) are refused.
        dt: step [ms].
        surrogate_width: the width ``w`` the pseudo-derivative reads as ``c.inv_v_th = 1 / w``
            and ``c.psi_scale = gamma_pd / w`` (in the model's voltage unit); default the
            model's e-prop ``v_th`` (``model.eprop_terms(dt)``). A spiking model without e-prop
            terms (``LIF.biophysical``) needs it given, e.g. ``v_th - v_rest``.
        gamma_pd: height factor of the pseudo-derivative (e-prop's 0.3).
        generator: draws the model's trainable parameters (a readout bias).
        device, dtype: of the parameters and of :meth:`initial_state`.

    Attributes:
        model: the neuron model.
        dt: the step [ms].

    Each trainable per-neuron parameter of the model (``model.params``, the ``bias`` of
    ``LeakyIntegrator``) is an ``nn.Parameter [n]`` of the cell under its own name.

    Shapes: input current ``[B, n]`` in the model's input unit (the summed weights of the
    spikes delivered in this step; nA with ``LIF.biophysical``), spikes ``[B, n]`` float
    0/1; the state is the model's NamedTuple (``LIFState(v, r, z)``, ``ALIFState(v, a, r, z)``,
    ``ReadoutState(y, z)``) of ``[B, n]`` tensors, with ``z`` the float spikes.
    """

    def __init__(
        self,
        model: NeuronModel,
        dt: float = 1.0,
        *,
        surrogate_width: float | None = None,
        gamma_pd: float = GAMMA_PD,
        generator: torch.Generator | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        _check_model(model)
        check_number("NeuronCell dt", dt, low=0.0, low_open=True)
        check_number("NeuronCell gamma_pd", gamma_pd, low=0.0)
        name = f"NeuronCell({type(model).__name__})"
        check_coefficients(model, dt, dtype, name)
        self.model, self.dt = model, dt
        width = _surrogate_width(model, dt, surrogate_width) if model.spiking else 1.0
        self.register_buffer("inv_v_th", torch.tensor(1.0 / width, dtype=dtype), False)
        self.register_buffer("psi_scale", torch.tensor(gamma_pd / width, dtype=dtype), False)
        self.to(device)
        for key, value in model.params(torch.device(device), dtype, generator).items():
            self.register_parameter(key, nn.Parameter(value))

    def initial_state(self, batch: int, generator: torch.Generator | None = None) -> tuple:
        """The model's initial state for ``batch`` copies (``LIF``: ``v = v_rest`` or
        ``v_init``, no refractoriness, no spikes), ``z`` as float zeros, on this cell's
        device and dtype; ``generator`` draws an initialiser-valued ``v_init``."""
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"NeuronCell: batch must be an int >= 1, got {batch!r}")
        dev, dtype = self.psi_scale.device, self.psi_scale.dtype
        state = self.model.init_state(batch, dev, dtype, generator)
        return state._replace(z=state.z.to(dtype))

    def forward(self, input_current: Tensor, state: tuple | None = None) -> tuple[Tensor, tuple]:
        """One step: ``(spikes [B, n], new state)`` from ``input_current [B, n]`` and the
        state of the previous step (None: :meth:`initial_state`)."""
        n = self.model.n
        if input_current.dim() != 2 or input_current.shape[1] != n:
            raise ValueError(
                f"NeuronCell: input current must be [B, {n}], got {tuple(input_current.shape)}"
            )
        if state is None:
            state = self.initial_state(input_current.shape[0])
        elif not isinstance(state, self.model.state_type):
            raise TypeError(
                f"NeuronCell: state must be a {self.model.state_type.__name__}, "
                f"got {type(state).__name__}"
            )
        params = dict(self.named_parameters(recurse=False))
        with recording_spike_tests() as tests:
            new = self.model.step(state, input_current, self.dt, params=params)
        if not self.model.spiking:
            return new.z, new
        distance, refractory = tests[-1]
        psi = self._pseudo_derivative(distance.detach(), refractory, params)
        z = _SurrogateSpike.apply(distance, new.z, psi)
        return z, new._replace(z=z)

    def _pseudo_derivative(
        self, distance: Tensor, refractory: Tensor | bool, params: dict[str, Tensor]
    ) -> Tensor:
        """The model's ``pseudo_derivative`` at ``distance`` [B, n], 0 where refractory."""
        consts = {**self.model.constants_for(self.dt).__dict__, **params}
        consts.update(inv_v_th=self.inv_v_th, psi_scale=self.psi_scale)
        with torch.no_grad():
            psi = self.model.pseudo_derivative(Constants(consts), distance)
            return torch.where(torch.as_tensor(refractory, device=psi.device), 0.0, psi)

    def extra_repr(self) -> str:
        return f"{self.model!r}, dt={self.dt}"


class _SurrogateSpike(torch.autograd.Function):
    """Forward: the spikes as they are; backward: ``psi * grad`` to ``distance``."""

    @staticmethod
    def forward(ctx: Any, distance: Tensor, spikes: Tensor, psi: Tensor) -> Tensor:
        ctx.save_for_backward(psi)
        return spikes.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (psi,) = ctx.saved_tensors
        return grad * psi, None, None


def _check_model(model: Any) -> None:
    if not isinstance(model, NeuronModel):
        raise TypeError(f"NeuronCell: model must be a NeuronModel, got {type(model).__name__}")
    name = type(model).__name__
    if model.external or model.stochastic or model.counting:
        raise TypeError(
            f"NeuronCell: {name} is a spike source, not a neuron driven by an input current"
        )
    if not type(model).derives_code():
        raise TypeError(
            f"NeuronCell: {name} overrides step() or defines no update(); NeuronCell runs the "
            "model language's update()"
        )


def _surrogate_width(model: NeuronModel, dt: float, width: float | None) -> float:
    """``width``, else the model's e-prop ``v_th``; checked > 0."""
    if width is None:
        try:
            width = model.eprop_terms(dt)["v_th"]
        except NotImplementedError as err:
            raise ParameterError(
                f"NeuronCell: {type(model).__name__} has no e-prop v_th for the surrogate "
                f"gradient ({err}); pass surrogate_width="
            ) from None
    return check_number("NeuronCell surrogate_width", width, low=0.0, low_open=True)
