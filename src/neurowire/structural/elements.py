"""Neurons with a calcium trace and synaptic elements (NEST's structural-plasticity nodes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..checks import ParameterError, check_number
from ..codegen import Stage, TorchState, run_stages
from ..neurons import NeuronModel
from .growth import Calcium, SynapticElement, check_calcium

#: the calcium state variables an :class:`ElementNeuron` adds to its neuron's
CALCIUM, CALCIUM_EULER = "Ca", "Ca_euler"


@dataclass(frozen=True)
class ElementNeuron(NeuronModel):
    """A neuron model with NEST's calcium trace and synaptic elements, advanced every step.

    Wraps any spiking neuron written in the model language: each step runs the neuron's update,
    then the elements' growth curves and the calcium (:mod:`neurowire.structural.growth`), in
    one update every engine derives code from (:class:`~neurowire.codegen.Stage`). The state
    is the neuron's, plus ``Ca`` (the calcium), ``Ca_euler`` (NEST's Euler calcium, when a
    Gaussian or sigmoid element needs it) and one variable per element holding its count ``z``,
    all float64 so that growth of ``1e-5`` elements per step is not lost to rounding. Record
    them like any state variable (``record={"exc": ["Ca", "Axon_ex"]}``).
    :class:`~neurowire.HomeostaticRewiring` turns elements into synapses.

    Args:
        neuron: the neuron model (its ``n`` and grid are this model's).
        elements: element name (an identifier, e.g. ``"Axon_ex"``) -> :class:`SynapticElement`
            or the keyword dictionary of one (NEST's ``synaptic_elements``).
        tau_Ca: calcium decay time constant [ms] (NEST's default 10000).
        beta_Ca: calcium increment per spike (NEST's default 0.001).
        Ca: calcium at the start (>= 0).
    """

    n: int = field(init=False, default=0)
    grid: Any = field(init=False, default=None)
    neuron: NeuronModel
    elements: Any
    tau_Ca: float = 10000.0
    beta_Ca: float = 0.001
    Ca: float = 0.0

    def __post_init__(self) -> None:
        neuron = self.neuron
        if not isinstance(neuron, NeuronModel) or isinstance(neuron, ElementNeuron):
            raise TypeError(f"ElementNeuron needs a neuron model, got {type(neuron).__name__}")
        if neuron.external or not neuron.spiking or not type(neuron).derives_code():
            raise ParameterError(
                f"ElementNeuron needs a spiking neuron written in the model language (an "
                f"update()), got {type(neuron).__name__}"
            )
        check_calcium(self.tau_Ca, self.beta_Ca)
        check_number("Ca", self.Ca, low=0.0)
        if not isinstance(self.elements, Mapping) or not self.elements:
            raise ParameterError(
                f"elements must be a non-empty mapping of names to SynapticElement, got "
                f"{self.elements!r}"
            )
        base = list(neuron.state_type._fields)
        elements = tuple((name, _element(name, spec, base)) for name, spec in self.elements.items())
        euler = any(e.euler for _, e in elements)
        fields = [f for f in base if f != "z"] + [CALCIUM]
        fields += [CALCIUM_EULER] if euler else []
        fields += [name for name, _ in elements] + ["z"]
        state_type = NamedTuple(
            f"{type(neuron).__name__}ElementState", [(f, Tensor) for f in fields]
        )
        for key, value in (
            ("elements", elements),
            ("n", neuron.n),
            ("grid", neuron.grid),
            ("state_type", state_type),
            ("stochastic", neuron.stochastic),
            ("param_names", neuron.param_names),
        ):
            object.__setattr__(self, key, value)

    def __getattr__(self, name: str) -> Any:
        """The wrapped neuron's parameters read through this model (``model.tau_m``), so that
        what a postsynaptic model reads from its neuron (:meth:`~neurowire.Alpha.bind`) is found."""
        neuron = self.__dict__.get("neuron")
        if neuron is not None and not name.startswith("_"):
            if name in {f.name for f in fields(neuron)}:
                return getattr(neuron, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ------------------------------------------------------------------ description
    @property
    def element_names(self) -> tuple[str, ...]:
        """The elements' names (state variables), in declaration order."""
        return tuple(name for name, _ in self.elements)

    def element(self, name: str) -> SynapticElement:
        """The parameters of element ``name``."""
        for key, spec in self.elements:
            if key == name:
                return spec
        raise ValueError(f"no synaptic element {name!r}; this neuron has {self.element_names}")

    @property
    def euler(self) -> bool:
        """Whether the state holds NEST's Euler calcium ``Ca_euler``."""
        return CALCIUM_EULER in self.state_type._fields

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The update: the neuron's, the Euler calcium's step, every element's growth, the
        calcium's step and spike, the Euler calcium's restart at a spike (made once)."""
        stages = self.__dict__.get("_stages")
        if stages is None:
            stages = self.__dict__["_stages"] = self._make_stages()
        return stages

    def _make_stages(self) -> tuple[Stage, ...]:
        calcium = Calcium(self.tau_Ca, self.beta_Ca)
        inputs = ("i_syn", "rand") if self.neuron.stochastic else ("i_syn",)
        base = self.neuron.state_type._fields
        spiked = {"spiked": "z"}
        ca = {"ca": CALCIUM, "ca_euler": CALCIUM_EULER} if self.euler else {"ca": CALCIUM}
        out = [Stage(self.neuron, "update", {f: f for f in base}, inputs)]
        if self.euler:
            out.append(Stage(calcium, "euler", {"ca_euler": CALCIUM_EULER}, (), "Ca", "float64"))
        for name, spec in self.elements:
            state = {"elements": name, **spiked}
            state.update({"ca_euler": CALCIUM_EULER} if spec.euler else {"ca": CALCIUM})
            out.append(Stage(spec.definition(self.tau_Ca), "update", state, (), name, "float64"))
        out.append(Stage(calcium, "update", {**ca, **spiked}, (), "Ca", "float64"))
        if self.euler:
            out.append(Stage(calcium, "restart", {**ca, **spiked}, (), "Ca", "float64"))
        return tuple(out)

    # ------------------------------------------------------------------ the model
    def init_state(
        self,
        batch: int,
        device: torch.device,
        dtype: torch.dtype,
        generator: torch.Generator | None = None,
    ) -> tuple:
        state = self.neuron.init_state(batch, device, dtype, generator)._asdict()
        shape = (batch, self.n)
        state[CALCIUM] = torch.full(shape, self.Ca, dtype=torch.float64, device=device)
        if self.euler:
            state[CALCIUM_EULER] = state[CALCIUM].clone()
        for name, spec in self.elements:
            state[name] = torch.full(shape, spec.z, dtype=torch.float64, device=device)
        return self.state_type(**state)

    def constants(self, dt: float) -> dict[str, Any]:
        """The neuron's constants, then every other stage's under its key (``"Ca.decay"``,
        ``"Axon_ex.h_g"``, see :func:`~neurowire.codegen.stage_constants`)."""
        out = dict(self.neuron.cached_constants(dt))
        for stage in self.stages[1:]:
            for key, value in stage.definition.cached_constants(dt).items():
                out[f"{stage.key}.{key}"] = value
        return out

    def update(self, s: TorchState, c: Any, i_syn: Tensor, rand: Tensor | None = None) -> None:
        run_stages(self.stages, s, c, {"i_syn": i_syn, "rand": rand})

    def params(
        self, device: torch.device, dtype: torch.dtype, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        return self.neuron.params(device, dtype, generator)


def _element(name: Any, spec: Any, taken: list[str]) -> SynapticElement:
    """``spec`` as a :class:`SynapticElement` named ``name``, checked."""
    reserved = {*taken, CALCIUM, CALCIUM_EULER}
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        raise ParameterError(
            f"synaptic element names must be identifiers not starting with '_', got {name!r}"
        )
    if name in reserved:
        raise ParameterError(
            f"synaptic element name {name!r} is taken by a state variable {sorted(reserved)}"
        )
    if isinstance(spec, Mapping):
        try:
            return SynapticElement(**spec)
        except (TypeError, ParameterError) as err:
            raise ParameterError(f"synaptic element {name!r}: {err}") from None
    if not isinstance(spec, SynapticElement):
        raise TypeError(
            f"synaptic element {name!r} must be a SynapticElement or a dict, got "
            f"{type(spec).__name__}"
        )
    return spec
