"""Exact integration of a current-based membrane over one step (Rotter & Diesmann 1999).

The membrane ``C dV/dt = -C (V - E_L) / tau_m + I(t)`` [pF, mV, ms, pA] has the solution, over a
step of ``dt`` ms,

    V(t + dt) - E_L = exp(-dt/tau_m) (V(t) - E_L) + (1/C) int_0^dt exp(-(dt - s)/tau_m) I(t + s) ds

so each current shape contributes a fixed linear combination of its state at ``t``. The functions
here return those coefficients times ``C`` (the *gains*, in ms, or ms^2 for the alpha current's
rise), so that a model divides by its own capacitance:

* a constant current ``I``: ``gain * I`` with ``gain = tau_m (1 - exp(-dt/tau_m))``;
* an alpha current with state ``(dI, I)``, ``dI(t + s) = dI exp(-s/tau_syn)`` and
  ``I(t + s) = (I + s dI) exp(-s/tau_syn)``: ``g_rise * dI + g_current * I``, where, with
  ``beta = tau_syn tau_m / (tau_m - tau_syn)``,

      g_current = beta exp(-dt/tau_syn) (exp(dt/beta) - 1)
      g_rise    = beta exp(-dt/tau_syn) (beta (exp(dt/beta) - 1) - dt)

  Both lose all precision as ``tau_syn`` approaches ``tau_m`` (``beta`` grows without bound);
  there they take their limits ``dt exp(-dt/tau_m)`` and ``dt^2 exp(-dt/tau_m) / 2``, with the
  switching criteria NEST 3.10 uses, so that results agree with NEST's ``iaf_psc_alpha``.
"""

from __future__ import annotations

import math
import sys

#: below ``SINGULAR_FACTOR * tau_m^2 / |tau_m - tau_syn|`` ms the alpha current's rise gain is
#: taken at its limit ``tau_syn = tau_m`` (NEST's criterion)
SINGULAR_FACTOR = 1e-7


def membrane_gain(tau_m: float, dt: float) -> float:
    """``tau_m (1 - exp(-dt/tau_m))`` [ms]: a constant current ``I`` [pA] held over the step
    moves ``V`` by ``membrane_gain * I / C`` [mV] (``C`` in pF)."""
    return -tau_m * math.expm1(-dt / tau_m)


def alpha_gains(tau_syn: float, tau_m: float, dt: float) -> tuple[float, float]:
    """``(g_rise, g_current)`` of an alpha current (module docstring): its state ``(dI, I)``
    at the start of a step moves ``V`` by ``(g_rise dI + g_current I) / C`` over the step.

    Args:
        tau_syn: the current's time constant [ms].
        tau_m: the membrane's time constant [ms].
        dt: step [ms].
    """
    decay_syn = math.exp(-dt / tau_syn)
    limit = math.exp(-dt / tau_m)
    if tau_m == tau_syn:
        return 0.5 * dt * dt * limit, dt * limit
    beta = tau_syn * tau_m / (tau_m - tau_syn)
    growth = math.expm1(dt * ((tau_m - tau_syn) / (tau_syn * tau_m)))
    g_current = beta * decay_syn * growth
    if not (math.isfinite(g_current) and g_current >= sys.float_info.min):
        g_current = dt * limit
    if dt > SINGULAR_FACTOR * tau_m * tau_m / abs(tau_m - tau_syn):
        g_rise = beta * decay_syn * (beta * growth - dt)
    else:
        g_rise = 0.5 * dt * dt * limit
    return g_rise, g_current
