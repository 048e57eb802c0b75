"""Exact-integration gains of a current-based membrane, against numerical quadrature of the
integrals they stand for."""

import math

import pytest
from scipy.integrate import quad

from neurowire.propagators import SINGULAR_FACTOR, alpha_gains, membrane_gain


def kernel_integral(f, tau_m, dt):
    """``int_0^dt exp(-(dt - s)/tau_m) f(s) ds`` by adaptive quadrature."""
    value, _ = quad(lambda s: math.exp(-(dt - s) / tau_m) * f(s), 0.0, dt, epsabs=0, epsrel=1e-13)
    return value


@pytest.mark.parametrize("tau_m, dt", [(10.0, 0.1), (20.0, 1.0), (3.0, 0.25)])
def test_membrane_gain_is_the_integral_of_the_membrane_kernel(tau_m, dt):
    assert membrane_gain(tau_m, dt) == pytest.approx(
        kernel_integral(lambda s: 1.0, tau_m, dt), rel=1e-12
    )


@pytest.mark.parametrize(
    "tau_syn, tau_m, dt",
    [(2.0, 10.0, 0.1), (0.5, 10.0, 0.1), (5.0, 10.0, 1.0), (15.0, 10.0, 0.1), (2.0, 2.5, 0.5)],
)
def test_alpha_gains_are_the_integrals_of_the_alpha_state(tau_syn, tau_m, dt):
    """``dI`` and ``I`` at the start of a step evolve as ``s dI exp(-s/tau_syn)`` and
    ``I exp(-s/tau_syn)``; their kernel integrals are the rise and current gains."""
    g_rise, g_current = alpha_gains(tau_syn, tau_m, dt)
    rise = kernel_integral(lambda s: s * math.exp(-s / tau_syn), tau_m, dt)
    current = kernel_integral(lambda s: math.exp(-s / tau_syn), tau_m, dt)
    assert g_rise == pytest.approx(rise, rel=1e-9)
    assert g_current == pytest.approx(current, rel=1e-11)


@pytest.mark.parametrize("offset", [0.0, 1e-12, -1e-12, 1e-9])
def test_alpha_gains_are_continuous_at_equal_time_constants(offset):
    """At ``tau_syn = tau_m`` (and as close to it as the formulas lose precision) the gains
    take their limits ``dt^2 exp(-dt/tau_m)/2`` and ``dt exp(-dt/tau_m)``."""
    tau_m, dt = 10.0, 0.1
    g_rise, g_current = alpha_gains(tau_m * (1.0 + offset), tau_m, dt)
    limit = math.exp(-dt / tau_m)
    assert g_rise == pytest.approx(0.5 * dt * dt * limit, rel=1e-6)
    assert g_current == pytest.approx(dt * limit, rel=1e-6)


def test_alpha_rise_gain_switches_to_its_limit_below_the_stability_criterion():
    tau_m, dt = 10.0, 0.1
    tau_syn = tau_m - 0.5 * SINGULAR_FACTOR * tau_m * tau_m / dt  # criterion not met
    g_rise, _ = alpha_gains(tau_syn, tau_m, dt)
    assert g_rise == 0.5 * dt * dt * math.exp(-dt / tau_m)
