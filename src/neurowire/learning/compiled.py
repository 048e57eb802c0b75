"""Inspecting a declared network once: which population and projection plays which e-prop role.

``SpikeSource`` input -> hidden ``LIF``/``ALIF`` populations (any number, concatenated into one
hidden layer with per-neuron parameters) -> one ``LeakyIntegrator`` output. Projections are

* *input*: input -> hidden, sparse or ``Dense()``;
* *recurrent*: hidden -> hidden (the same or another hidden population), sparse or ``Dense()``;
  they carry ``z_{t-1}``; no ``i -> i`` synapse (a dense diagonal and stored autapses are
  masked in the forward pass and in the gradient);
* *output*: hidden -> output, ``Dense()`` only.

Anything else raises ``NotImplementedError`` naming the population or projection and its class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..network import Network, Population, Projection
from ..neurons import ALIF, LIF, LeakyIntegrator, SpikeSource, decay, refractory_steps
from ..psc import Delta

INPUT, RECURRENT, OUTPUT = "input", "recurrent", "output"


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


def _check_lif(pop: Population) -> None:
    m = pop.model
    if m.v_reset is not None or m.scaled_input:
        raise NotImplementedError(
            f"population {pop.name!r} ({type(m).__name__}): e-prop supports the e-prop LIF "
            f"convention only (v_reset=None, scaled_input=False), got v_reset={m.v_reset!r}, "
            f"scaled_input={m.scaled_input!r}"
        )
    if m.v_rest != 0.0 or m.v_init is not None:
        raise NotImplementedError(
            f"population {pop.name!r} ({type(m).__name__}): e-prop needs v_rest=0 and "
            f"v_init=None (state starts at 0), got v_rest={m.v_rest!r}, v_init={m.v_init!r}"
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
    if not isinstance(output.model, LeakyIntegrator):
        raise NotImplementedError(
            f"output population {output.name!r} is a {type(output.model).__name__}; e-prop "
            "needs a LeakyIntegrator readout"
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
        elif isinstance(model, ALIF):
            hidden.append(pop)
        elif isinstance(model, LIF):
            _check_lif(pop)
            hidden.append(pop)
        else:
            raise NotImplementedError(
                f"population {pop.name!r} is a {type(model).__name__}; e-prop supports "
                "SpikeSource inputs, LIF/ALIF hidden populations and one LeakyIntegrator output"
            )
    if len(inputs) != 1:
        raise NotImplementedError(
            f"e-prop needs exactly one SpikeSource input population, got {[p.name for p in inputs]}"
        )
    if not hidden:
        raise ValueError("e-prop needs at least one LIF or ALIF hidden population")
    (inp,) = inputs
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
        decay(output.model.tau, net.dt),
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
    if proj.synapse is not None:
        raise NotImplementedError(
            f"projection {proj.name!r} has {type(proj.synapse).__name__} plasticity; e-prop "
            "projections must be static (synapse=None)"
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
        m = pop.model
        offsets[pop.name] = start
        start += pop.n
        adaptive = isinstance(m, ALIF)
        values = {
            "alpha": decay(m.tau_m, dt),
            "rho": decay(m.tau_a, dt) if adaptive else 0.0,
            "beta": float(m.beta) if adaptive else 0.0,
            "v_th": float(m.v_th),
            "n_ref": float(refractory_steps(m.tau_refrac, dt)),
        }
        for key, val in values.items():
            cols[key].append(torch.full((pop.n,), val, dtype=net.dtype))
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
