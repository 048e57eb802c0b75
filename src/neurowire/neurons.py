"""Neuron models: frozen dataclasses holding parameters, constants and one ``update``.

A model's equations exist once, in its :meth:`NeuronModel.update`, written in the model language
of :mod:`neurowire.codegen`. The eager ``step`` runs it on tensors; the native simulator and the
native e-prop forward pass translate it to numba (and Triton). Next to it, in the same language,
a model trained by e-prop defines its quantities: :meth:`NeuronModel.pseudo_derivative`,
:meth:`NeuronModel.eprop_adjoint` (one step of the backward recursion, translated into the
native and Triton backward kernels) and, for the readout, :meth:`LeakyIntegrator.readout_decay`;
the recursion's per-neuron coefficients come from :meth:`NeuronModel.eprop_terms`, which derives
them from the same :meth:`NeuronModel.constants`.

Times are in ms, voltages in the model's own unit (dimensionless in the e-prop convention, mV in
the biophysical configuration), rates in Hz. States are NamedTuples of ``[B, n]`` tensors; ``z``
is always the bool spike vector of the step just taken.

The e-prop convention (Bellec et al. 2020) for :class:`LIF` and :class:`ALIF`::

    v_t = alpha v_{t-1} + I_t - v_th z_{t-1}          (reset by subtraction, unscaled input)
    a_t = rho a_{t-1} + z_{t-1};  A_t = v_th + beta a_t
    z_t = [v_t - A_t > 0] and not refractory          (refractory n_ref = round(tau_refrac/dt))

The biophysical configuration of :class:`LIF` (``v_reset`` given, see :meth:`LIF.biophysical`)
integrates exactly, ``V <- V_rest + (V - V_rest) alpha + (1 - alpha) R I``, resets to ``v_reset``
in the spike step and holds ``V`` while refractory (GeNN's LIF).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from .checks import ParameterError, check_number, check_rate, check_time
from .codegen import Constants, Definition, TorchState, absolute, maximum, spike, where
from .grid import Grid
from .initializers import Initializer, as_initializer

#: most refractory steps: the state's countdown ``r`` is an int32
MAX_REFRACTORY_STEPS = 2**31 - 1


def decay(tau: float, dt: float) -> float:
    """Per-step decay factor ``exp(-dt / tau)`` (tau, dt in ms); ``tau = inf`` gives 1."""
    if not tau > 0:
        raise ParameterError(f"time constant must be > 0 ms, got {tau}")
    return math.exp(-dt / tau)


def refractory_steps(tau_refrac: float, dt: float) -> int:
    """Whole steps of refractoriness, ``round(tau_refrac / dt)``; at most
    :data:`MAX_REFRACTORY_STEPS` (the state's int32 countdown)."""
    if not tau_refrac >= 0:
        raise ParameterError(f"tau_refrac must be >= 0 ms, got {tau_refrac}")
    ratio = tau_refrac / dt
    if not (math.isfinite(ratio) and round(ratio) <= MAX_REFRACTORY_STEPS):
        raise ParameterError(
            f"dt={dt!r} ms is too small for tau_refrac={tau_refrac!r} ms: "
            f"round(tau_refrac / dt) = {ratio:g} refractory steps do not fit the int32 "
            f"countdown (at most {MAX_REFRACTORY_STEPS}); use a larger dt or a shorter "
            "tau_refrac"
        )
    return int(round(ratio))


def _check_value(name: str, value: Any) -> None:
    """A number (finite) or an :class:`~neurowire.Initializer` (a voltage, a bias)."""
    if not isinstance(value, Initializer):
        check_number(name, value)


def _sample(name: str, init: Initializer, shape, device, generator, dtype) -> Tensor:
    """``init.sample(...)``; a value the dtype cannot hold is refused naming ``name``."""
    try:
        return init.sample(shape, device=device, generator=generator, dtype=dtype)
    except ParameterError as err:
        raise ParameterError(f"{name}: {err}") from None


def check_coefficients(
    definition: Definition, dt: float, dtype: torch.dtype, owner: str | None = None
) -> dict[str, Any]:
    """``definition.cached_constants(dt)`` once every coefficient is representable.

    A neuron, postsynaptic or plasticity model derives its per-step coefficients from ``dt``
    and its time constants (``alpha = exp(-dt / tau_m)``, refractory steps, ...). Each must be
    a finite number in ``dtype`` (integers: within the int32 state counters), or
    :class:`~neurowire.checks.ParameterError` names ``owner``, ``dt``, the time constant the
    coefficient comes from (the class's ``coefficient_sources``) and the coefficient.
    """
    owner = owner or type(definition).__name__
    try:
        consts = definition.cached_constants(dt)
    except ParameterError as err:
        raise ParameterError(f"{owner}: {err}") from None
    sources: Mapping[str, str] = getattr(definition, "coefficient_sources", {})
    float_kind = str(dtype).replace("torch.", "")
    for key, value in consts.items():
        if isinstance(value, bool):
            continue
        kind = "int32" if isinstance(value, numbers.Integral) else float_kind
        if isinstance(value, numbers.Integral):
            ok = abs(int(value)) <= MAX_REFRACTORY_STEPS
        elif isinstance(value, numbers.Real):
            ok = bool(torch.isfinite(torch.tensor(float(value), dtype=dtype)))
        elif isinstance(value, Tensor) and value.is_floating_point():
            ok = bool(torch.isfinite(value.to(dtype)).all())
        else:
            continue
        if ok:
            continue
        source = sources.get(key)
        if source is not None:
            raise ParameterError(
                f"{owner}: dt={dt!r} ms and {source}={getattr(definition, source)!r} ms give "
                f"{key}={value!r}, which is not a finite {kind} number; choose dt and "
                f"{source} closer together"
            )
        raise ParameterError(
            f"{owner}: {key}={value!r} (with dt={dt!r} ms) is not a finite {kind} number"
        )
    return consts


class LIFState(NamedTuple):
    v: Tensor  # [B, n] membrane potential
    r: Tensor  # [B, n] int, refractory steps left
    z: Tensor  # [B, n] bool, spikes of this step


class ALIFState(NamedTuple):
    v: Tensor
    a: Tensor  # [B, n] adaptation variable
    r: Tensor
    z: Tensor


class ReadoutState(NamedTuple):
    y: Tensor  # [B, n] readout value
    z: Tensor  # [B, n] bool, always False (kept for a uniform interface)


class SourceState(NamedTuple):
    z: Tensor  # [B, n] bool spikes of this step


class PoissonState(NamedTuple):
    rate_hz: Tensor  # [B or 1, n] rate [Hz]
    z: Tensor


@dataclass(frozen=True)
class NeuronModel(Definition):
    """Base class. ``n`` neurons, optionally on a 2-D ``grid=(n_rows, n_cols)``.

    A subclass declares its state (a NamedTuple ``state_type`` whose last field is ``z``, the
    bool spikes), :meth:`constants` (numbers per step, derived from ``dt``) and :meth:`update`
    (the equations, in the model language of :mod:`neurowire.codegen`); every engine derives
    its code from these. A subclass may instead override :meth:`step` with arbitrary PyTorch
    code: the torch engine runs it, engines that derive code from :meth:`update` refuse it.
    """

    n: int
    grid: Any = field(default=None, kw_only=True)

    #: model draws one uniform number per neuron per step (``update``'s ``rand`` input)
    stochastic: ClassVar[bool] = False
    #: model takes external spike trains (``SpikeSource``)
    external: ClassVar[bool] = False
    #: model emits a count of spikes per neuron and step (its state's ``count``; ``z`` is
    #: ``count > 0``), drawn by the engines (:class:`~neurowire.PoissonGenerator`)
    counting: ClassVar[bool] = False
    #: model emits spikes
    spiking: ClassVar[bool] = True
    #: the state NamedTuple (fields in the order engines pass them; ``z`` last)
    state_type: ClassVar[type] = SourceState
    #: names of per-neuron parameters (from :meth:`params`) that ``update`` reads as ``c.<name>``
    param_names: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ParameterError(f"{type(self).__name__}: n must be an int >= 1, got {self.n!r}")
        object.__setattr__(self, "grid", Grid.of(self.grid, self.n))

    def init_state(
        self,
        batch: int,
        device: torch.device,
        dtype: torch.dtype,
        generator: torch.Generator | None = None,
    ) -> tuple:
        raise NotImplementedError

    def update(self, s: TorchState, c: Constants, i_syn: Tensor) -> None:
        """The model's equations for one step (model language, see :mod:`neurowire.codegen`)."""
        raise NotImplementedError(f"{type(self).__name__} defines no update()")

    @classmethod
    def derives_code(cls) -> bool:
        """Whether engines can derive code from :meth:`update` (``step`` not overridden)."""
        return cls.step is NeuronModel.step and cls.update is not NeuronModel.update

    def step(
        self,
        state: tuple,
        i_syn: Tensor | None,
        dt: float,
        rand: Tensor | None = None,
        params: dict[str, Tensor] | None = None,
    ) -> tuple:
        """Advance one step of ``dt`` ms with input ``i_syn [B, n]``; return the new state.

        Runs :meth:`update` on tensors (the eager reference of every engine).
        """
        values = state._asdict()
        consts = self.constants_for(dt)  # per-neuron parameters go on a copy
        if params:
            consts = Constants({**consts.__dict__, **params})
        floats = [v.dtype for v in values.values() if v.is_floating_point()]
        dtype = floats[0] if floats else (rand.dtype if rand is not None else i_syn.dtype)
        s = TorchState(values, dtype)
        if self.stochastic:
            self.update(s, consts, i_syn, rand)
        else:
            self.update(s, consts, i_syn)
        return type(state)(**s.values(values))

    def params(
        self, device: torch.device, dtype: torch.dtype, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """Trainable per-neuron parameters (e.g. a readout bias), drawn with ``generator``."""
        return {}

    def eprop_terms(self, dt: float) -> dict[str, float]:
        """The coefficients e-prop's recursions need (Bellec et al. 2020):
        ``alpha`` (membrane decay), ``rho`` (adaptation decay), ``beta`` (adaptation strength),
        ``v_th`` (threshold, also the pseudo-derivative's width) and ``n_ref`` (steps)."""
        raise NotImplementedError(f"{type(self).__name__} declares no e-prop terms")

    def pseudo_derivative(self, c: Constants, distance: Tensor) -> Tensor:
        """e-prop's pseudo-derivative ``psi`` of the spike by the spike test's ``distance``
        (model language; the caller sets it to 0 while refractory)."""
        raise NotImplementedError(f"{type(self).__name__} declares no pseudo-derivative")

    def eprop_adjoint(self, s: Any, c: Constants, psi: Tensor, lam: Tensor) -> None:
        """One step backwards in time of e-prop's adjoint recursion (model language): the
        adjoint state ``s`` of step ``t + 1`` becomes that of step ``t``, given ``psi_t`` and
        the learning signal ``lam`` (``Lambda_t``)."""
        raise NotImplementedError(f"{type(self).__name__} declares no e-prop adjoint")


@dataclass(frozen=True)
class SpikeSource(NeuronModel):
    """Replays given spike trains: ``sim.run(..., inputs={name: spikes [B, T, n]})``."""

    state_type = SourceState

    external = True

    def init_state(self, batch, device, dtype, generator=None):
        return SourceState(torch.zeros(batch, self.n, dtype=torch.bool, device=device))

    def step(self, state, i_syn, dt, rand=None, params=None):
        raise RuntimeError("SpikeSource spikes come from the inputs, not from step()")


def check_rates(name: str, rate_hz: Any, n: int) -> Tensor:
    """``rate_hz`` (a number or ``[n]`` numbers) as a float64 tensor (0-d or ``[n]``) of finite
    rates >= 0 Hz, else :class:`~neurowire.checks.ParameterError` naming ``name`` (and the first
    bad neuron)."""
    if isinstance(rate_hz, (bool, numbers.Number)):
        return torch.tensor(check_rate(name, rate_hz), dtype=torch.float64)
    try:
        rate = torch.as_tensor(rate_hz)
    except (TypeError, ValueError, RuntimeError):
        rate = None
    if rate is None or rate.dtype == torch.bool or rate.is_complex():
        raise ParameterError(f"{name} must be a number or [{n}] of numbers, got {rate_hz!r}")
    rate = rate.to(torch.float64)
    if rate.dim() not in (0, 1) or (rate.dim() == 1 and rate.numel() != n):
        raise ParameterError(f"{name} must be a number or [{n}], got shape {tuple(rate.shape)}")
    bad = ~(torch.isfinite(rate) & (rate >= 0))
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0]) if rate.dim() else None
        value = float(rate[i] if i is not None else rate)
        where = f" at neuron {i}" if i is not None else ""
        raise ParameterError(f"{name} must be finite rates >= 0 Hz, got {value!r}{where}")
    return rate


@dataclass(frozen=True)
class PoissonSource(NeuronModel):
    """Independent Poisson spike trains, ``P(spike in a step) = rate_hz * dt / 1000``.

    Args:
        n: neurons.
        rate_hz: one rate [Hz] for all, or a tensor ``[n]``; settable at run time with
            ``Simulator.set_rates``.
    """

    state_type = PoissonState

    rate_hz: Any = 0.0
    stochastic = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_rates("PoissonSource rate_hz", self.rate_hz, self.n)

    def init_state(self, batch, device, dtype, generator=None):
        rate = torch.as_tensor(self.rate_hz, dtype=dtype).to(device)
        rate = rate.expand(self.n).reshape(1, self.n).clone()
        return PoissonState(rate, torch.zeros(batch, self.n, dtype=torch.bool, device=device))

    def constants(self, dt):
        return {"p_per_hz": dt * 1e-3}

    def update(self, s, c, i_syn, rand):
        s.z = rand < s.rate_hz * c.p_per_hz


@dataclass(frozen=True)
class LIF(NeuronModel):
    """Leaky integrate-and-fire neuron.

    Args:
        n: neurons.
        tau_m: membrane time constant [ms].
        v_th: threshold.
        tau_refrac: refractory period [ms], rounded to whole steps.
        v_rest: resting potential (0 in the e-prop convention; mV when biophysical).
        v_reset: None for reset by subtraction of ``v_th`` one step after the spike (e-prop);
            a value for reset to it in the spike step, holding V while refractory (GeNN LIF).
        scaled_input: integrate input exactly, ``(1 - alpha) * resistance * I`` (biophysical).
        resistance: membrane resistance [MOhm]; with I in nA gives mV.
        v_init: initial V: a number, an initialiser, or None for ``v_rest``.
    """

    state_type = LIFState
    coefficient_sources: ClassVar[dict[str, str]] = {
        "alpha": "tau_m",
        "one_minus_alpha": "tau_m",
        "gain": "tau_m",
        "n_ref": "tau_refrac",
    }

    tau_m: float = 20.0
    v_th: float = 0.6
    tau_refrac: float = 0.0
    v_rest: float = 0.0
    v_reset: float | None = None
    scaled_input: bool = False
    resistance: float = 1.0
    v_init: Any = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_time("LIF tau_m", self.tau_m)
        check_time("LIF tau_refrac", self.tau_refrac, zero=True)
        check_number("LIF v_th", self.v_th)
        check_number("LIF v_rest", self.v_rest)
        if self.v_reset is not None:
            check_number("LIF v_reset", self.v_reset)
        check_number("LIF resistance", self.resistance, low=0.0, low_open=True)
        if self.v_init is not None:
            _check_value("LIF v_init", self.v_init)
        if self.v_reset is None and self.v_th <= self.v_rest:
            raise ParameterError(f"LIF v_th ({self.v_th}) must exceed v_rest ({self.v_rest})")

    @classmethod
    def biophysical(
        cls,
        n: int,
        *,
        tau_m: float = 20.0,
        v_rest: float = -70.0,
        v_reset: float = -70.0,
        v_th: float = -54.0,
        tau_refrac: float = 5.0,
        resistance: float = 1.0,
        v_init: Any = None,
        grid: Any = None,
    ) -> LIF:
        """Conductance-friendly LIF in mV (Bamford et al. 2010 / GeNN defaults)."""
        return cls(
            n,
            tau_m=tau_m,
            v_th=v_th,
            tau_refrac=tau_refrac,
            v_rest=v_rest,
            v_reset=v_reset,
            scaled_input=True,
            resistance=resistance,
            v_init=v_init,
            grid=grid,
        )

    def input_gain(self, dt: float) -> float:
        """Factor on the input inside ``(1 - alpha) * gain * I`` (reset-to-value form)."""
        if self.scaled_input:
            return self.resistance
        alpha = decay(self.tau_m, dt)
        if alpha == 1.0:
            raise ParameterError(
                f"dt={dt!r} ms is too small for tau_m={self.tau_m!r} ms: exp(-dt / tau_m) "
                "rounds to 1, so the input gain 1 / (1 - exp(-dt / tau_m)) is infinite; "
                "use a larger dt"
            )
        return 1.0 / (1.0 - alpha)

    def _initial_v(self, batch, device, dtype, generator):
        name = "LIF v_rest" if self.v_init is None else "LIF v_init"
        init = as_initializer(self.v_rest if self.v_init is None else self.v_init)
        return _sample(name, init, (batch, self.n), device, generator, dtype)

    def init_state(self, batch, device, dtype, generator=None):
        return LIFState(
            self._initial_v(batch, device, dtype, generator),
            torch.zeros(batch, self.n, dtype=torch.int32, device=device),
            torch.zeros(batch, self.n, dtype=torch.bool, device=device),
        )

    def constants(self, dt):
        alpha = decay(self.tau_m, dt)
        return {
            "alpha": alpha,
            "one_minus_alpha": 1.0 - alpha,
            "gain": self.input_gain(dt),
            "v_th": float(self.v_th),
            "v_rest": float(self.v_rest),
            "v_reset": float(self.v_th if self.v_reset is None else self.v_reset),
            "n_ref": refractory_steps(self.tau_refrac, dt),
        }

    def update(self, s, c, i_syn):
        refractory = s.r > 0
        if self.v_reset is None:  # e-prop: reset by subtraction one step after the spike
            s.v = c.alpha * s.v + i_syn - c.v_th * s.z
            s.z = spike(s.v - c.v_th, refractory)
        else:  # GeNN: exact integration, V held while refractory, reset in the spike step
            v_free = c.v_rest + (s.v - c.v_rest) * c.alpha + c.one_minus_alpha * (c.gain * i_syn)
            s.v = where(refractory, s.v, v_free)
            s.z = spike(s.v - c.v_th, refractory)
            s.v = where(s.z, c.v_reset, s.v)
        s.r = where(s.z, c.n_ref, maximum(s.r - 1, 0))

    def eprop_terms(self, dt):
        if self.v_reset is not None or self.scaled_input:
            raise NotImplementedError(
                "e-prop supports the e-prop LIF convention only "
                f"(v_reset=None, scaled_input=False), got v_reset={self.v_reset!r}, "
                f"scaled_input={self.scaled_input!r}"
            )
        if self.v_rest != 0.0 or self.v_init is not None:
            raise NotImplementedError(
                "e-prop needs v_rest=0 and v_init=None (state starts "
                f"at 0), got v_rest={self.v_rest!r}, v_init={self.v_init!r}"
            )
        c = self.cached_constants(dt)
        return {
            "alpha": c["alpha"],
            "rho": 0.0,
            "beta": 0.0,
            "v_th": c["v_th"],
            "n_ref": c["n_ref"],
        }

    def pseudo_derivative(self, c, distance):
        """``psi = (gamma_pd / v_th) max(0, 1 - |distance| / v_th)`` (Bellec et al.
        2020), from the per-neuron ``c.inv_v_th = 1 / v_th`` and ``c.psi_scale = gamma_pd /
        v_th`` of :meth:`neurowire.learning.compiled.HiddenLayer.pseudo_derivative_constants`."""
        return maximum(0.0, 1.0 - absolute(distance) * c.inv_v_th) * c.psi_scale

    def eprop_adjoint(self, s, c, psi, lam):
        """``H_t = psi_t (Lambda_t - beta Q_t) + alpha H_{t+1}`` and
        ``Q_{t-1} = psi_t Lambda_t + (rho - beta psi_t) Q_t`` (see
        :mod:`neurowire.learning.factorized`) on ``s.h`` and ``s.q``, with the per-neuron
        ``alpha``, ``rho``, ``beta`` of :meth:`eprop_terms` (``rho = beta = 0`` for LIF: ``Q``
        then never reaches ``H``)."""
        s.h = psi * (lam - c.beta * s.q) + c.alpha * s.h
        s.q = psi * lam + (c.rho - c.beta * psi) * s.q


@dataclass(frozen=True)
class ALIF(NeuronModel):
    """Adaptive LIF (e-prop convention, Bellec et al. 2020).

    Args:
        n: neurons.
        tau_m: membrane time constant [ms].
        tau_a: adaptation time constant [ms].
        beta: adaptation strength (threshold ``v_th + beta * a``).
        v_th: baseline threshold.
        tau_refrac: refractory period [ms].
    """

    state_type = ALIFState
    coefficient_sources: ClassVar[dict[str, str]] = {
        "alpha": "tau_m",
        "rho": "tau_a",
        "n_ref": "tau_refrac",
    }

    tau_m: float = 20.0
    tau_a: float = 2000.0
    beta: float = 0.0174
    v_th: float = 0.6
    tau_refrac: float = 5.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_time("ALIF tau_m", self.tau_m)
        check_time("ALIF tau_a", self.tau_a)
        check_number("ALIF beta", self.beta, low=0.0)
        check_number("ALIF v_th", self.v_th, low=0.0, low_open=True)
        check_time("ALIF tau_refrac", self.tau_refrac, zero=True)

    def init_state(self, batch, device, dtype, generator=None):
        zeros = torch.zeros(batch, self.n, dtype=dtype, device=device)
        return ALIFState(
            zeros,
            zeros.clone(),
            torch.zeros(batch, self.n, dtype=torch.int32, device=device),
            torch.zeros(batch, self.n, dtype=torch.bool, device=device),
        )

    def constants(self, dt):
        return {
            "alpha": decay(self.tau_m, dt),
            "rho": decay(self.tau_a, dt),
            "beta": float(self.beta),
            "v_th": float(self.v_th),
            "n_ref": refractory_steps(self.tau_refrac, dt),
        }

    def update(self, s, c, i_syn):
        refractory = s.r > 0
        s.v = c.alpha * s.v + i_syn - c.v_th * s.z
        s.a = c.rho * s.a + s.z
        s.z = spike(s.v - (c.v_th + c.beta * s.a), refractory)
        s.r = where(s.z, c.n_ref, maximum(s.r - 1, 0))

    def eprop_terms(self, dt):
        c = self.cached_constants(dt)
        return {k: c[k] for k in ("alpha", "rho", "beta", "v_th", "n_ref")}

    pseudo_derivative = LIF.pseudo_derivative
    eprop_adjoint = LIF.eprop_adjoint


@dataclass(frozen=True)
class LeakyIntegrator(NeuronModel):
    """Non-spiking readout ``y_t = kappa y_{t-1} + I_t + b`` with ``kappa = exp(-dt / tau)``.

    Args:
        n: neurons.
        tau: time constant [ms].
        bias: initial trainable bias ``b`` (a number or initialiser).
    """

    state_type = ReadoutState
    coefficient_sources: ClassVar[dict[str, str]] = {"kappa": "tau"}

    tau: float = 20.0
    bias: Any = 0.0
    spiking = False
    param_names = ("bias",)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_time("LeakyIntegrator tau", self.tau)
        _check_value("LeakyIntegrator bias", self.bias)

    def params(self, device, dtype, generator=None):
        init = as_initializer(self.bias)
        bias = _sample("LeakyIntegrator bias", init, (self.n,), device, generator, dtype)
        return {"bias": bias}

    def init_state(self, batch, device, dtype, generator=None):
        return ReadoutState(
            torch.zeros(batch, self.n, dtype=dtype, device=device),
            torch.zeros(batch, self.n, dtype=torch.bool, device=device),
        )

    def constants(self, dt):
        return {"kappa": decay(self.tau, dt), "bias": 0.0}

    def update(self, s, c, i_syn):
        s.y = c.kappa * s.y + i_syn + c.bias

    def readout_decay(self, c):
        """The coefficient of ``y_{t-1}`` in :meth:`update` (model language): e-prop's readout
        is the leaky scan ``y_t = decay y_{t-1} + u_t``, and its error filter the same scan
        backwards in time."""
        return c.kappa
