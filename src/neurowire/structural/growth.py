"""The calcium trace and the growth curves of synaptic elements (Butz & van Ooyen 2013), per
step, in the model language, integrated as NEST 3.10 integrates them.

NEST updates a neuron's calcium and elements at *events*: each spike (at the end of its step)
and each structural-plasticity update. Between two events, calcium decays exactly,
``Ca(t) = Ca0 exp(-(t - t0) / tau_Ca)``; at a spike, the elements are brought up to the spike
time with the calcium before it, then ``Ca += beta_Ca``. The elements' count ``z`` follows
``dz/dt = growth_rate * f(Ca)`` and is clipped at 0 at every event (never in between):

* **linear**: ``f = 1 - Ca / eps``, integrated in closed form over each interval between
  events: ``z += growth_rate * (t - t0) + growth_rate * tau_Ca / eps * (Ca(t) - Ca0)``;
* **gaussian**: ``f = 2 exp(-((Ca - xi) / zeta)^2) - 1`` with ``xi = (eta + eps) / 2`` and
  ``zeta = (eps - eta) / (2 sqrt(ln 2))``, integrated by forward Euler in steps of ``dt``
  with a calcium that restarts from the exact value at every event and then decays by Euler
  too: per step ``Ca_e -= Ca_e / tau_Ca * dt``, then ``z += dt * growth_rate * f(Ca_e)``;
* **sigmoid**: ``f = 2 / (1 + exp((Ca - eps) / psi)) - 1``, integrated as the Gaussian.

Here the same quantities advance every step inside the neuron's update (every engine derives it
from these methods): :class:`Calcium` decays ``Ca`` by ``exp(-dt / tau_Ca)`` per step (equal to
NEST's one exponential per interval up to rounding) and keeps NEST's Euler calcium ``Ca_euler``;
each growth curve adds its step to ``z`` and clips ``z`` in the step of a spike. The rule
(:class:`~neurowire.HomeostaticRewiring`) clips and restarts the Euler calcium at its own calls,
NEST's other events. The linear curve's per-step increments add up to NEST's closed form up to
rounding; the Euler curves repeat NEST's arithmetic operation for operation (one shared Euler
calcium; NEST's sigmoid divides by ``tau_Ca`` where the Gaussian multiplies by its inverse, a
difference of rounding).

Units: times in ms, ``growth_rate`` in elements/ms, calcium (``eps``, ``eta``, ``psi``,
``beta_Ca``) in NEST's dimensionless concentration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..checks import ParameterError, check_number, check_time
from ..codegen import Definition, exp, maximum, where

GROWTH_CURVES = ("gaussian", "linear", "sigmoid")


@dataclass(frozen=True)
class Calcium(Definition):
    """A neuron's calcium trace as NEST integrates it (see the module docstring).

    Args:
        tau_Ca: decay time constant [ms].
        beta_Ca: increment per spike.

    State (stage names): ``ca`` the calcium, ``ca_euler`` NEST's Euler calcium of the growth
    curves, ``spiked`` this step's spikes (read only).
    """

    tau_Ca: float
    beta_Ca: float

    def constants(self, dt: float) -> dict[str, float]:
        return {
            "decay": math.exp(-dt / self.tau_Ca),
            "beta": self.beta_Ca,
            "inv_tau": 1.0 / self.tau_Ca,
            "h": dt,
        }

    def euler(self, s, c):
        """One forward-Euler step of the Euler calcium (before the growth curves read it)."""
        s.ca_euler = s.ca_euler - s.ca_euler * c.inv_tau * c.h

    def update(self, s, c):
        """Exact decay over the step, then the increment of a spike at its end."""
        s.ca = where(s.spiked, s.ca * c.decay + c.beta, s.ca * c.decay)

    def restart(self, s, c):
        """At a spike, the Euler calcium starts again from the exact calcium."""
        s.ca_euler = where(s.spiked, s.ca, s.ca_euler)


@dataclass(frozen=True)
class LinearGrowth(Definition):
    """``dz/dt = growth_rate (1 - Ca / eps)``, per step the exact increment over the step.

    State (stage names): ``elements`` (``z``), ``ca`` the calcium at the start of the step,
    ``spiked``. Args as :class:`SynapticElement`, plus ``tau_Ca`` [ms].
    """

    growth_rate: float
    eps: float
    tau_Ca: float

    def constants(self, dt: float) -> dict[str, float]:
        return {
            "g_h": self.growth_rate * dt,
            "g_tau_eps": self.growth_rate * self.tau_Ca / self.eps,
            "decay": math.exp(-dt / self.tau_Ca),
        }

    def update(self, s, c):
        s.elements = s.elements + c.g_tau_eps * (s.ca * c.decay - s.ca) + c.g_h
        s.elements = where(s.spiked, maximum(s.elements, 0.0), s.elements)


@dataclass(frozen=True)
class GaussianGrowth(Definition):
    """``dz/dt = growth_rate (2 exp(-((Ca - xi) / zeta)^2) - 1)``, one Euler step on the Euler
    calcium. State (stage names): ``elements``, ``ca_euler`` (already stepped), ``spiked``."""

    growth_rate: float
    eps: float
    eta: float

    def constants(self, dt: float) -> dict[str, float]:
        return {
            "h_g": dt * self.growth_rate,
            "xi": (self.eta + self.eps) * 0.5,
            "inv_zeta": 2.0 * math.sqrt(math.log(2.0)) / (self.eta - self.eps),
        }

    def update(self, s, c):
        x = (s.ca_euler - c.xi) * c.inv_zeta
        s.elements = s.elements + c.h_g * (2.0 * exp(-(x * x)) - 1.0)
        s.elements = where(s.spiked, maximum(s.elements, 0.0), s.elements)


@dataclass(frozen=True)
class SigmoidGrowth(Definition):
    """``dz/dt = growth_rate (2 / (1 + exp((Ca - eps) / psi)) - 1)``, one Euler step on the
    Euler calcium. State (stage names): ``elements``, ``ca_euler``, ``spiked``."""

    growth_rate: float
    eps: float
    psi: float

    def constants(self, dt: float) -> dict[str, float]:
        return {"h_g": dt * self.growth_rate, "eps": self.eps, "psi": self.psi}

    def update(self, s, c):
        f = 2.0 / (1.0 + exp((s.ca_euler - c.eps) / c.psi)) - 1.0
        s.elements = s.elements + c.h_g * f
        s.elements = where(s.spiked, maximum(s.elements, 0.0), s.elements)


@dataclass(frozen=True)
class SynapticElement:
    """One kind of synaptic element of a neuron (an axonal bouton, a dendritic spine), with the
    keys of NEST's ``synaptic_elements`` dictionaries, so that ``SynapticElement(**nest_dict)``
    reads one directly.

    Args:
        growth_curve: ``"gaussian"``, ``"linear"`` or ``"sigmoid"``.
        growth_rate: largest rate of change [elements/ms] (may be negative).
        eps: target calcium (``f(eps) = 0``); > 0 for the linear curve.
        eta: calcium below which the Gaussian curve removes elements (``!= eps``).
        psi: width of the sigmoid curve (> 0).
        continuous: whether a neuron offers its elements as the real number ``z`` (True) or
            as ``floor(z)`` (False) where NEST asks for it: a synapse whose target offers 0
            postsynaptic elements is not among the candidates when its source loses axonal
            elements. ``z - connected`` elements are always counted as ``floor(z) -
            connected``.
        tau_vacant: fraction of the vacant elements removed after each rewiring (> 0).
        z: elements at the start.
    """

    growth_curve: str = "linear"
    growth_rate: float = 1.0
    eps: float = 0.7
    eta: float = 0.1
    psi: float = 0.1
    continuous: bool = True
    tau_vacant: float = 0.1
    z: float = 0.0

    def __post_init__(self) -> None:
        if self.growth_curve not in GROWTH_CURVES:
            raise ParameterError(
                f"growth_curve must be one of {GROWTH_CURVES}, got {self.growth_curve!r}"
            )
        check_number("growth_rate", self.growth_rate)
        if self.growth_curve == "linear":
            check_number("eps of a linear growth curve", self.eps, low=0.0, low_open=True)
        else:
            check_number("eps", self.eps)
        if self.growth_curve == "gaussian":
            check_number("eta", self.eta)
            if self.eta == self.eps:
                raise ParameterError(
                    f"a gaussian growth curve needs eta != eps, got eta = eps = {self.eps!r}"
                )
        if self.growth_curve == "sigmoid":
            check_number("psi", self.psi, low=0.0, low_open=True)
        if not isinstance(self.continuous, bool):
            raise ParameterError(f"continuous must be True or False, got {self.continuous!r}")
        check_number("tau_vacant", self.tau_vacant, low=0.0, low_open=True)
        check_number("z", self.z, low=0.0)

    @property
    def euler(self) -> bool:
        """Whether the curve is integrated on NEST's Euler calcium."""
        return self.growth_curve != "linear"

    def definition(self, tau_Ca: float) -> Definition:
        """The per-step growth of this element in a neuron with calcium time constant
        ``tau_Ca`` [ms]."""
        if self.growth_curve == "linear":
            return LinearGrowth(self.growth_rate, self.eps, tau_Ca)
        if self.growth_curve == "gaussian":
            return GaussianGrowth(self.growth_rate, self.eps, self.eta)
        return SigmoidGrowth(self.growth_rate, self.eps, self.psi)


def check_calcium(tau_Ca: float, beta_Ca: float) -> None:
    """NEST's conditions on the calcium parameters: ``tau_Ca > 0`` ms and ``beta_Ca > 0``."""
    check_time("tau_Ca", tau_Ca)
    check_number("beta_Ca", beta_Ca, low=0.0, low_open=True)
