"""NEST's current-based leaky integrate-and-fire neuron (the membrane of ``iaf_psc_alpha``).

Units and names are NEST's: V in mV, currents in pA, capacitance in pF, times in ms. With
``psc=nw.Alpha(tau_syn)`` on its incoming projections the neuron is NEST 3.10's
``iaf_psc_alpha``: its defaults are NEST's, and one step of ``dt`` ms runs in NEST's order::

    if not refractory:  V <- E_L + (V - E_L) exp(-dt/tau_m) + (G / C_m) (I_syn + I_e)
                        V <- max(V, V_min)
    else:               V held; one refractory step used
    spike if V >= V_th (never while refractory); then V <- V_reset and
    t_ref of refractoriness starts

with ``G = tau_m (1 - exp(-dt/tau_m))`` (:func:`~neurowire.propagators.membrane_gain`) and
``I_syn`` the step's current from the postsynaptic models (for :class:`~neurowire.Alpha` the
constant current equivalent to the alpha current over the step, so the update is the exact
solution). The refractory period counts whole steps as NEST does: ``t_ref`` rounded to NEST's
tic (1 us) and then up to a whole number of steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .checks import ParameterError, check_number, check_time
from .codegen import maximum, spike, where
from .initializers import as_initializer
from .neurons import MAX_REFRACTORY_STEPS, LIFState, NeuronModel, _check_value, _sample
from .propagators import membrane_gain

#: NEST's default time base: tics per ms
TICS_PER_MS = 1000


def nest_steps(t_ms: float, dt: float) -> int:
    """Whole steps of ``t_ms`` [ms] as NEST counts them: rounded to the nearest tic (1 us),
    then up to a multiple of the step ``dt`` [ms]."""
    tics = int(t_ms * TICS_PER_MS + 0.5)
    per_step = int(dt * TICS_PER_MS + 0.5)
    if per_step < 1:
        raise ParameterError(f"dt must be at least NEST's tic of {1 / TICS_PER_MS} ms, got {dt!r}")
    steps = -(-tics // per_step)
    if steps > MAX_REFRACTORY_STEPS:
        raise ParameterError(
            f"t_ref={t_ms!r} ms is {steps} steps of dt={dt!r} ms, more than the int32 "
            f"countdown holds ({MAX_REFRACTORY_STEPS})"
        )
    return steps


@dataclass(frozen=True)
class IafPsc(NeuronModel):
    """NEST's ``iaf_psc_alpha`` membrane (module docstring); defaults are NEST's.

    Args:
        n: neurons.
        c_m: membrane capacitance [pF].
        tau_m: membrane time constant [ms].
        t_ref: absolute refractory period [ms].
        e_l: resting potential [mV].
        v_reset: reset potential [mV], below ``v_th``.
        v_th: threshold [mV]; a spike when ``V >= v_th``.
        v_min: lower bound of V [mV]; ``-inf`` for none.
        i_e: constant input current [pA].
        v_init: initial V [mV]: a number or an initialiser; NEST's default ``V_m`` of -70 mV,
            which does not follow ``e_l`` (as in NEST, where setting ``E_L`` keeps ``V_m``).

    State: ``v`` [B, n] membrane potential [mV], ``r`` [B, n] int refractory steps left,
    ``z`` [B, n] bool spikes.
    """

    state_type = LIFState
    coefficient_sources: ClassVar[dict[str, str]] = {
        "decay": "tau_m",
        "gain": "tau_m",
        "n_ref": "t_ref",
    }

    c_m: float = 250.0
    tau_m: float = 10.0
    t_ref: float = 2.0
    e_l: float = -70.0
    v_reset: float = -70.0
    v_th: float = -55.0
    v_min: float = -math.inf
    i_e: float = 0.0
    v_init: Any = -70.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("IafPsc c_m", self.c_m, low=0.0, low_open=True)
        check_time("IafPsc tau_m", self.tau_m)
        check_time("IafPsc t_ref", self.t_ref, zero=True)
        check_number("IafPsc e_l", self.e_l)
        check_number("IafPsc v_th", self.v_th)
        check_number("IafPsc v_reset", self.v_reset, high=self.v_th, high_open=True)
        check_number("IafPsc i_e", self.i_e)
        if self.v_min != -math.inf:
            check_number("IafPsc v_min", self.v_min)
        _check_value("IafPsc v_init", self.v_init)

    def init_state(self, batch, device, dtype, generator=None):
        init = as_initializer(self.v_init)
        return LIFState(
            _sample("IafPsc v_init", init, (batch, self.n), device, generator, dtype),
            torch.zeros(batch, self.n, dtype=torch.int32, device=device),
            torch.zeros(batch, self.n, dtype=torch.bool, device=device),
        )

    def constants(self, dt):
        consts = {
            "decay": math.exp(-dt / self.tau_m),
            "gain": membrane_gain(self.tau_m, dt) / self.c_m,
            "e_l": float(self.e_l),
            "i_e": float(self.i_e),
            "v_th": float(self.v_th),
            "v_reset": float(self.v_reset),
            "n_ref": nest_steps(self.t_ref, dt),
        }
        if self.v_min != -math.inf:
            consts["v_min"] = float(self.v_min)
        return consts

    def update(self, s, c, i_syn):
        refractory = s.r > 0
        v_free = c.e_l + (s.v - c.e_l) * c.decay + c.gain * (i_syn + c.i_e)
        if self.v_min != -math.inf:
            v_free = maximum(v_free, c.v_min)
        s.v = where(refractory, s.v, v_free)
        s.z = spike(where(s.v >= c.v_th, 1.0, -1.0), refractory)
        s.v = where(s.z, c.v_reset, s.v)
        s.r = where(s.z, c.n_ref, maximum(s.r - 1, 0))
