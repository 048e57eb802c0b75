"""NEST's iaf_psc_alpha as ``nw.IafPsc`` + ``nw.Alpha``: one neuron against the closed-form
solution of its equations, and the model's parameter checks.

The references are computed here from the continuous-time solution, not from the model's step:
a membrane ``C dV/dt = -C (V - E_L)/tau_m + I(t)`` from ``V(0) = V0`` under a constant current
``I_e`` and alpha currents ``w (e/tau_s) s exp(-s/tau_s)`` starting at times ``t_k`` is

    V(t) = E_L + (V0 - E_L) exp(-t/tau_m) + (tau_m I_e / C) (1 - exp(-t/tau_m))
           + sum_k psp_k(t - t_k),
    psp(s) = (w e / (tau_s C)) exp(-s/tau_m) (1 - exp(-a s) (1 + a s)) / a^2,
    a = 1/tau_s - 1/tau_m,

(the convolution of the alpha current with the membrane kernel). Step ``t`` of the simulation
holds ``V((t + 1) dt)``; a ``SpikeSource`` spike in step ``k`` is delivered in step ``k + 1``,
whose end, ``(k + 2) dt``, is when the alpha current starts.
"""

import math

import pytest
import torch

import neurowire as nw
from neurowire.checks import ParameterError
from neurowire.iaf import nest_steps

DT = 0.1


def psp(s, w, tau_s, tau_m, c_m):
    """Membrane response [mV] to an alpha current of peak ``w`` pA started ``s`` ms ago
    (at ``tau_s = tau_m`` the limit ``a -> 0``: ``s^2 / 2`` for the last factor)."""
    if s <= 0:
        return 0.0
    scale = w * math.e / (tau_s * c_m) * math.exp(-s / tau_m)
    a = 1.0 / tau_s - 1.0 / tau_m
    if a == 0:
        return scale * s * s / 2
    return scale * (1.0 - math.exp(-a * s) * (1.0 + a * s)) / a**2


def one_neuron(model, trains, engine, steps):
    """Run ``model`` (one neuron) with one Alpha projection per ``(tau_s, w, spike steps)``."""
    net = nw.Network(dt=DT, seed=0, dtype=torch.float64)
    post = net.population("post", model)
    inputs = {}
    for j, (tau_s, w, spike_steps) in enumerate(trains):
        src = net.population(f"src{j}", nw.SpikeSource(1))
        net.connect(src, post, nw.AllToAll(), weight=w, psc=nw.Alpha(tau_s))
        spikes = torch.zeros(1, steps, 1, dtype=torch.bool)
        spikes[0, spike_steps, 0] = True
        inputs[f"src{j}"] = spikes
    sim = nw.Simulator(net, engine=engine)
    out = sim.run(steps, record={"post": ["v", "spikes"]}, inputs=inputs)
    return out["post"]["v"][0, :, 0], out["post"]["spikes"][0, :, 0]


def test_subthreshold_voltage_is_the_closed_form_solution(engine):
    """Excitatory and inhibitory alpha currents with different time constants, a constant
    current and a start away from rest: every step equals the continuous solution."""
    c_m, tau_m, e_l, v0, i_e = 200.0, 12.0, -65.0, -68.0, 80.0
    model = nw.IafPsc(1, c_m=c_m, tau_m=tau_m, e_l=e_l, v_th=0.0, i_e=i_e, v_init=v0)
    trains = [(2.0, 300.0, [5, 40, 41, 160]), (0.7, -450.0, [20, 100]), (12.0, 150.0, [60])]
    steps = 300
    v, spikes = one_neuron(model, trains, engine, steps)
    assert not spikes.any()
    for t in range(steps):
        time = (t + 1) * DT
        ref = e_l + (v0 - e_l) * math.exp(-time / tau_m)
        ref += tau_m * i_e / c_m * (1.0 - math.exp(-time / tau_m))
        for tau_s, w, spike_steps in trains:
            for k in spike_steps:
                ref += psp(time - (k + 2) * DT, w, tau_s, tau_m, c_m)
        assert v[t].item() == pytest.approx(ref, abs=1e-10), t


def test_constant_current_fires_regularly_with_reset_and_refractory_period(engine):
    """From rest under ``I_e`` alone V reaches threshold after ``n1`` steps (first ``n`` with
    ``E_L + R I_e (1 - exp(-n dt/tau_m)) >= V_th``), resets, is held at ``V_reset`` for
    ``t_ref / dt`` steps and starts again from rest: spikes every ``n1 + n_ref`` steps."""
    c_m, tau_m, t_ref, e_l, v_th, i_e = 250.0, 10.0, 2.0, -70.0, -55.0, 450.0
    model = nw.IafPsc(1, c_m=c_m, tau_m=tau_m, t_ref=t_ref, e_l=e_l, v_th=v_th, i_e=i_e)
    drive = tau_m * i_e / c_m
    n1 = math.ceil(-tau_m / DT * math.log(1.0 - (v_th - e_l) / drive))
    n_ref = 20
    steps = 400
    v, spikes = one_neuron(model, [], engine, steps)
    expected = list(range(n1 - 1, steps, n1 + n_ref))
    assert torch.nonzero(spikes).flatten().tolist() == expected
    first = expected[0]
    assert v[first].item() == e_l  # reset in the spike step (V_reset = E_L by default)
    assert torch.all(v[first : first + n_ref + 1] == e_l)  # held while refractory
    time = DT
    assert v[first + n_ref + 1].item() == pytest.approx(
        e_l + drive * (1.0 - math.exp(-time / tau_m)), abs=1e-12
    )


def test_threshold_is_reached_at_equality():
    """NEST fires when V >= V_th: a neuron whose V lands exactly on V_th spikes."""
    model = nw.IafPsc(1, v_init=-55.0, tau_m=10.0, e_l=-55.0, v_th=-55.0, v_reset=-60.0)
    v, spikes = one_neuron(model, [], "torch", 1)
    assert spikes[0] and v[0].item() == -60.0


def test_v_min_bounds_the_membrane_from_below(engine):
    model = nw.IafPsc(1, v_min=-71.0)
    v, _ = one_neuron(model, [(2.0, -5000.0, [0])], engine, 100)
    assert v.min().item() == -71.0
    assert (v >= -71.0).all()


def test_alpha_current_of_one_weight_peaks_at_the_weight_after_tau_syn():
    """``i`` follows ``w (e/tau_s) t exp(-t/tau_s)`` from the step after delivery on."""
    tau_s, w = 2.0, 3.0
    psc = nw.Alpha(tau_s).bind(nw.IafPsc(1))
    state = psc.init_state(1, 1, torch.device("cpu"), torch.float64)
    assert state.shape == (2, 1, 1)
    i_values = []
    for step in range(60):
        w_sum = torch.full((1, 1), w if step == 0 else 0.0, dtype=torch.float64)
        _, state = psc.step(state, w_sum, None, DT)
        i_values.append(state[1, 0, 0].item())
    for k, i in enumerate(i_values):
        t = k * DT
        assert i == pytest.approx(w * math.e / tau_s * t * math.exp(-t / tau_s), abs=1e-12)
    assert max(i_values) == pytest.approx(w)
    assert i_values.index(max(i_values)) == round(tau_s / DT)


def test_connect_binds_alpha_to_the_membrane_time_constant():
    net = nw.Network(dt=DT)
    src = net.population("src", nw.SpikeSource(1))
    post = net.population("post", nw.IafPsc(2, tau_m=7.5))
    proj = net.connect(src, post, nw.AllToAll(), psc=nw.Alpha(0.5))
    assert proj.psc == nw.Alpha(0.5, tau_m=7.5)


def test_alpha_onto_a_neuron_without_tau_m_is_refused_naming_the_projection():
    net = nw.Network(dt=DT)
    src = net.population("src", nw.SpikeSource(1))
    out = net.population("out", nw.LeakyIntegrator(1))
    with pytest.raises(
        ParameterError, match=r"src->out: Alpha needs .* tau_m, got LeakyIntegrator"
    ):
        net.connect(src, out, nw.AllToAll(), psc=nw.Alpha(2.0))


def test_alpha_with_another_tau_m_than_its_neuron_is_refused():
    net = nw.Network(dt=DT)
    src = net.population("src", nw.SpikeSource(1))
    post = net.population("post", nw.IafPsc(1, tau_m=10.0))
    with pytest.raises(ParameterError, match="tau_m=20.0 ms differs .* tau_m=10.0 ms"):
        net.connect(src, post, nw.AllToAll(), psc=nw.Alpha(2.0, tau_m=20.0))


def test_unbound_alpha_has_no_constants():
    with pytest.raises(ParameterError, match="Alpha tau_m is unset"):
        nw.Alpha(2.0).constants(DT)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"v_reset": -50.0}, r"v_reset must be a finite number in \(-inf, -55\)"),
        ({"c_m": 0.0}, "c_m must be a finite number"),
        ({"tau_m": -1.0}, "tau_m must be a finite time > 0 ms"),
        ({"t_ref": -0.1}, "t_ref must be a finite time >= 0 ms"),
        ({"v_min": math.nan}, "v_min must be a finite number"),
        ({"i_e": "1"}, "i_e must be a number"),
    ],
)
def test_bad_parameters_are_refused_naming_them(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        nw.IafPsc(1, **kwargs)


def test_alpha_refuses_a_bad_time_constant():
    with pytest.raises(ParameterError, match="Alpha tau_syn must be a finite time > 0 ms"):
        nw.Alpha(0.0)


@pytest.mark.parametrize(
    "t_ref, dt, steps",
    [(2.0, 0.1, 20), (0.0, 0.1, 0), (0.12, 0.1, 2), (0.1, 0.1, 1), (1.0, 0.25, 4), (0.3, 0.2, 2)],
)
def test_refractory_steps_round_up_as_nest_counts_them(t_ref, dt, steps):
    assert nest_steps(t_ref, dt) == steps


def test_defaults_are_nests():
    model = nw.IafPsc(1)
    assert (model.c_m, model.tau_m, model.t_ref) == (250.0, 10.0, 2.0)
    assert (model.e_l, model.v_reset, model.v_th, model.v_init) == (-70.0, -70.0, -55.0, -70.0)
    assert model.v_min == -math.inf and model.i_e == 0.0
    assert nw.Alpha().tau_syn == 2.0
