"""Inspecting a declared network once: which population and projection plays which e-prop role.

``SpikeSource`` input -> hidden populations (any number, concatenated into one hidden layer) ->
one ``LeakyIntegrator`` output. A hidden population's forward pass is its model's ``update`` and
``pseudo_derivative``, its backward recursion its ``eprop_adjoint`` over the per-neuron
coefficients of ``model.eprop_terms(dt)`` (LIF and ALIF declare them; a model whose update
differs from the one its terms were declared for is refused); the readout filter's decay is the
output's ``readout_decay``. Projections are

* *input*: input -> hidden, sparse or ``Dense()``;
* *recurrent*: hidden -> hidden (the same or another hidden population), sparse or ``Dense()``;
  they carry ``z_{t-1}``; no ``i -> i`` synapse (a dense diagonal and stored autapses are
  masked in the forward pass and in the gradient);
* *output*: hidden -> output, ``Dense()`` only.

Anything else raises ``NotImplementedError`` naming the population or projection and its class.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..checks import ParameterError
from ..network import Network, Population, Projection
from ..neurons import LeakyIntegrator, NeuronModel, SpikeSource, check_coefficients
from ..psc import Delta

INPUT, RECURRENT, OUTPUT = "input", "recurrent", "output"

#: height of the pseudo-derivative, gamma_pd (Bellec et al. 2020)
GAMMA_PD = 0.3


@dataclass(eq=False)
class HiddenLayer:
    """The hidden populations as one layer of ``n`` neurons with per-neuron parameters.

    Shapes: every tensor ``[n]``. ``alpha = exp(-dt/tau_m)``, ``rho = exp(-dt/tau_a)`` (0 for
    LIF), ``beta`` (0 for LIF), ``v_th``, ``n_ref`` (refractory steps, float).
    """

    populations: tuple[Population, ...]
    offsets: dict[str, int]
    n: int
    alpha: Tensor
    rho: Tensor
    beta: Tensor
    v_th: Tensor
    n_ref: Tensor

    @property
    def adaptive(self) -> bool:
        return bool((self.beta != 0).any())

    @property
    def refractory(self) -> bool:
        return bool((self.n_ref > 0).any())

    def span(self, pop: Population) -> tuple[int, int]:
        start = self.offsets[pop.name]
        return start, start + pop.n

    def pseudo_derivative_constants(self) -> dict[str, Tensor]:
        """The per-neuron ``[n]`` constants the models' ``pseudo_derivative`` reads:
        ``inv_v_th = 1 / v_th`` and ``psi_scale = gamma_pd / v_th``."""
        return {"inv_v_th": 1.0 / self.v_th, "psi_scale": GAMMA_PD / self.v_th}


@dataclass(eq=False)
class PlasticProjection:
    """A projection in its e-prop role, with its place in the hidden layer.

    ``pre_offset`` is 0 for input projections; ``self_loop`` is True when pre and post are the
    same population (its ``i -> i`` pairs are excluded).
    """

    projection: Projection
    role: str
    pre_offset: int
    post_offset: int
    self_loop: bool

    @property
    def name(self) -> str:
        return self.projection.name

    @property
    def sparse(self) -> bool:
        return self.projection.sparse

    @property
    def n_pre(self) -> int:
        return self.projection.pre.n

    @property
    def n_post(self) -> int:
        return self.projection.post.n


@dataclass(eq=False)
class EPropNetwork:
    """A network checked and arranged for e-prop (see the module docstring)."""

    net: Network
    input: Population
    hidden: HiddenLayer
    output: Population
    inputs: tuple[PlasticProjection, ...]
    recurrent: tuple[PlasticProjection, ...]
    outputs: tuple[PlasticProjection, ...]
    kappa: float
    device: torch.device
    #: intra-op threads inside per-step loops (None: leave the global setting)
    step_threads: int | None = 1
    #: reusable work arrays by name (see :meth:`buffer`)
    buffers: dict = field(default_factory=dict)

    def buffer(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        """An uninitialised work array kept from batch to batch: allocating the large
        ``[T, B, N]`` arrays afresh costs a page fault per 4 KiB on every batch. The caller
        must be done with the previous batch's array of the same name."""
        buf = self.buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self.buffers[name] = torch.empty(shape, dtype=dtype, device=self.device)
        return buf

    @property
    def dtype(self) -> torch.dtype:
        return self.net.dtype

    @property
    def n_in(self) -> int:
        return self.input.n

    @property
    def n_out(self) -> int:
        return self.output.n

    @property
    def plastic(self) -> tuple[PlasticProjection, ...]:
        """Input and recurrent projections, in declaration order."""
        return self.inputs + self.recurrent

    @property
    def bias(self) -> Tensor:
        return self.output.params["bias"]

    @property
    def bias_name(self) -> str:
        return f"{self.output.name}.bias"


def _check_hidden(pop: Population, dt: float) -> None:
    """A hidden population e-prop can train: its model's update is the one its e-prop terms
    (the coefficients of the backward recursions) were declared for."""
    cls = type(pop.model)
    if not cls.derives_code():
        raise NotImplementedError(
            f"population {pop.name!r} ({cls.__name__}): its model overrides step(); e-prop "
            "derives its forward pass from update() (the model language)"
        )
    owner_update = next(k for k in cls.__mro__ if "update" in k.__dict__)
    owner_terms = next((k for k in cls.__mro__ if "eprop_terms" in k.__dict__), None)
    if (
        owner_terms is None
        or owner_terms is NeuronModel
        or not issubclass(owner_terms, owner_update)
    ):
        raise NotImplementedError(
            f"population {pop.name!r} ({cls.__name__}): its update() is not the one its e-prop "
            "terms were declared for; define eprop_terms() next to update() to train it"
        )
    try:
        pop.model.eprop_terms(dt)
    except NotImplementedError as err:
        raise NotImplementedError(f"population {pop.name!r} ({cls.__name__}): {err}") from None


def _check_coefficients(net: Network, pop: Population) -> None:
    """Every coefficient a population's model derives from ``dt`` (``alpha``, ``rho``,
    ``kappa``, refractory steps, ...) is a finite number in the network's dtype, and for a
    hidden population so is the pseudo-derivative's ``1 / v_th``: else a
    :class:`~neurowire.checks.ParameterError` names the population, ``dt`` and the time
    constant."""
    owner = f"population {pop.name!r} ({type(pop.model).__name__})"
    consts = check_coefficients(pop.model, net.dt, net.dtype, owner)
    v_th = consts.get("v_th")
    if pop.model.spiking and isinstance(v_th, (int, float)):
        inverse = 1.0 / torch.tensor(float(v_th), dtype=net.dtype)
        if not bool(torch.isfinite(inverse)):
            raise ParameterError(
                f"{owner}: v_th={v_th!r} is too small for {net.dtype}: the pseudo-derivative's "
                "1 / v_th is not finite"
            )


def _resolve_output(net: Network, output: Population | str) -> Population:
    if isinstance(output, str):
        if output not in net.populations:
            raise ValueError(
                f"unknown output population {output!r}; known: {sorted(net.populations)}"
            )
        output = net.populations[output]
    if not isinstance(output, Population):
        raise TypeError(f"output must be a Population or its name, got {type(output).__name__}")
    if net.populations.get(output.name) is not output:
        raise ValueError(f"{output!r} is not a population of this network")
    cls = type(output.model)
    if not isinstance(output.model, LeakyIntegrator) or not (
        cls.derives_code() and cls.update is LeakyIntegrator.update
    ):
        raise NotImplementedError(
            f"output population {output.name!r} is a {cls.__name__}; e-prop needs a "
            "LeakyIntegrator readout with its own update (the readout scan is derived from it)"
        )
    return output


def compile_network(
    net: Network,
    output: Population | str,
    device: torch.device | None = None,
    step_threads: int | None = 1,
) -> EPropNetwork:
    """Check ``net`` for e-prop and arrange it; moves its tensors to ``device``."""
    if not isinstance(net, Network):
        raise TypeError(f"net must be a Network, got {type(net).__name__}")
    output = _resolve_output(net, output)
    inputs, hidden = [], []
    for pop in net.populations.values():
        model = pop.model
        if pop is output:
            continue
        if isinstance(model, SpikeSource):
            inputs.append(pop)
        elif model.spiking and not (model.external or model.stochastic or model.counting):
            _check_coefficients(net, pop)
            _check_hidden(pop, net.dt)
            hidden.append(pop)
        else:
            raise NotImplementedError(
                f"population {pop.name!r} is a {type(model).__name__}; e-prop supports "
                "SpikeSource inputs, spiking hidden populations (LIF, ALIF or a model declaring "
                "eprop_terms) and one LeakyIntegrator output"
            )
    if len(inputs) != 1:
        raise NotImplementedError(
            f"e-prop needs exactly one SpikeSource input population, got {[p.name for p in inputs]}"
        )
    if not hidden:
        raise ValueError("e-prop needs at least one spiking hidden population (LIF, ALIF)")
    (inp,) = inputs
    _check_coefficients(net, output)
    layer = _hidden_layer(net, hidden)
    roles: dict[str, list[PlasticProjection]] = {INPUT: [], RECURRENT: [], OUTPUT: []}
    for proj in net.projections.values():
        role = _role(proj, inp, layer, output)
        pre_offset = 0 if proj.pre is inp else layer.offsets[proj.pre.name]
        post_offset = 0 if proj.post is output else layer.offsets[proj.post.name]
        roles[role].append(
            PlasticProjection(proj, role, pre_offset, post_offset, proj.pre is proj.post)
        )
    if not roles[OUTPUT]:
        raise ValueError(f"no projection from a hidden population to output {output.name!r}")
    dev = torch.device(device) if device is not None else _device_of(net)
    _move(net, dev)
    layer = _hidden_layer(net, hidden, dev)
    return EPropNetwork(
        net,
        inp,
        layer,
        output,
        tuple(roles[INPUT]),
        tuple(roles[RECURRENT]),
        tuple(roles[OUTPUT]),
        output.model.readout_decay(output.model.constants_for(net.dt)),
        dev,
        step_threads if dev.type == "cpu" else None,
    )


def _role(proj: Projection, inp: Population, layer: HiddenLayer, output: Population) -> str:
    hidden = set(layer.offsets)
    kind = type(proj.psc).__name__
    if not isinstance(proj.psc, Delta):
        raise NotImplementedError(
            f"projection {proj.name!r} has a {kind} postsynaptic model; e-prop supports Delta only"
        )
    if proj.plasticity is not None:
        raise NotImplementedError(
            f"projection {proj.name!r} has {type(proj.plasticity).__name__} plasticity; e-prop "
            "projections must be static (synapse=None)"
        )
    if proj.delay_steps != 1:
        raise NotImplementedError(
            f"projection {proj.name!r} has a delay of {proj.delay_steps} steps; e-prop supports "
            "one step (delay=None) only"
        )
    pre_hidden, post_hidden = proj.pre.name in hidden, proj.post.name in hidden
    if proj.pre is inp and post_hidden:
        return INPUT
    if pre_hidden and post_hidden:
        return RECURRENT
    if pre_hidden and proj.post is output:
        if proj.sparse:
            raise NotImplementedError(
                f"projection {proj.name!r} to the output is sparse; e-prop needs Dense() "
                "hidden -> output projections"
            )
        return OUTPUT
    raise NotImplementedError(
        f"projection {proj.name!r} ({proj.pre.name} -> {proj.post.name}) has no e-prop role; "
        "supported: input -> hidden, hidden -> hidden, hidden -> output"
    )


def _hidden_layer(
    net: Network, pops: list[Population], device: torch.device | None = None
) -> HiddenLayer:
    dt = net.dt
    offsets, cols = {}, {k: [] for k in ("alpha", "rho", "beta", "v_th", "n_ref")}
    start = 0
    for pop in pops:
        offsets[pop.name] = start
        start += pop.n
        terms = pop.model.eprop_terms(dt)
        for key in cols:
            cols[key].append(torch.full((pop.n,), float(terms[key]), dtype=net.dtype))
    tensors = {k: torch.cat(v).to(device or "cpu") for k, v in cols.items()}
    return HiddenLayer(tuple(pops), offsets, start, **tensors)


def _device_of(net: Network) -> torch.device:
    for proj in net.projections.values():
        return proj.synapses.device if proj.sparse else proj.weight.device
    return torch.device("cpu")


def _move(net: Network, device: torch.device) -> None:
    for proj in net.projections.values():
        if proj.sparse:
            proj.synapses.to(device)
        else:
            proj.weight = proj.weight.to(device)
    for pop in net.populations.values():
        pop.params = {k: v.to(device) for k, v in pop.params.items()}
