"""Neuron dynamics against hand-computed trajectories."""

import math

import pytest
import torch

import neurowire as nw
from neurowire.neurons import decay, refractory_steps


def run_model(model, drive, device, dt=1.0, dtype=torch.float64):
    """Step ``model`` on ``device`` with input ``drive[t]`` (a list of floats for a single
    neuron)."""
    state = model.init_state(1, device, dtype)
    vs, zs = [], []
    for i in drive:
        i_t = torch.full((1, model.n), float(i), dtype=dtype, device=device)
        state = model.step(state, i_t, dt)
        vs.append(state.v[0, 0].item())
        zs.append(bool(state.z[0, 0]))
    return vs, zs


def test_lif_eprop_constant_input_matches_closed_form(device):
    # alpha = exp(-1/20). With I = 0.25: v1 = 0.25, v2 = 0.25 (1 + alpha) = 0.48780,
    # v3 = 0.25 (1 + alpha + alpha^2) = 0.71402 > 0.6 -> spike; v4 = alpha v3 + 0.25 - 0.6.
    alpha = math.exp(-1 / 20)
    vs, zs = run_model(nw.LIF(1, tau_m=20.0, v_th=0.6), [0.25] * 4, device)
    expected = [0.25, 0.25 * (1 + alpha), 0.25 * (1 + alpha + alpha**2)]
    expected.append(alpha * expected[2] + 0.25 - 0.6)
    assert vs == pytest.approx(expected, abs=1e-12)
    assert vs[:3] == pytest.approx([0.25, 0.487807, 0.714017], abs=1e-6)
    assert zs == [False, False, True, False]


def test_lif_eprop_refractory_blocks_spikes_for_n_ref_steps_and_keeps_integrating(device):
    model = nw.LIF(1, tau_m=20.0, v_th=0.6, tau_refrac=3.0)
    vs, zs = run_model(model, [1.0] * 8, device)
    # spikes at step 0, then refractory for steps 1-3, next spike at step 4
    assert zs == [True, False, False, False, True, False, False, False]
    alpha = math.exp(-1 / 20)
    v, z_prev, ref = 0.0, 0, 0
    for step in range(8):
        v = alpha * v + 1.0 - 0.6 * z_prev
        z = int(v > 0.6 and ref == 0)
        ref = 3 if z else max(ref - 1, 0)
        assert vs[step] == pytest.approx(v, abs=1e-12)
        z_prev = z


def test_lif_biophysical_integrates_exactly_resets_and_holds_while_refractory(device):
    model = nw.LIF.biophysical(
        1, tau_m=20.0, v_rest=-70.0, v_reset=-70.0, v_th=-54.0, tau_refrac=2.0
    )
    dt = 1.0
    alpha = math.exp(-dt / 20.0)
    drive = [40.0] * 40  # steady state -30 mV > threshold
    vs, zs = run_model(model, drive, device, dt=dt)
    v, ref = -70.0, 0
    for step, i in enumerate(drive):
        if ref > 0:
            ref -= 1
            assert vs[step] == pytest.approx(v) and not zs[step]
            continue
        v = -70.0 + (v + 70.0) * alpha + (1 - alpha) * i
        if v > -54.0:
            assert zs[step] and vs[step] == -70.0
            v, ref = -70.0, 2
        else:
            assert not zs[step] and vs[step] == pytest.approx(v, abs=1e-9)
    assert sum(zs) >= 2


def test_alif_threshold_adapts_after_each_spike(device):
    model = nw.ALIF(1, tau_m=20.0, tau_a=100.0, beta=0.5, v_th=0.6, tau_refrac=0.0)
    state = model.init_state(1, device, torch.float64)
    alpha, rho = math.exp(-1 / 20), math.exp(-1 / 100)
    v = a = 0.0
    z_prev = 0
    for _ in range(40):
        state = model.step(state, torch.full((1, 1), 0.3, dtype=torch.float64, device=device), 1.0)
        v = alpha * v + 0.3 - 0.6 * z_prev
        a = rho * a + z_prev
        z = int(v - (0.6 + 0.5 * a) > 0)
        assert state.v.item() == pytest.approx(v, abs=1e-12)
        assert state.a.item() == pytest.approx(a, abs=1e-12)
        assert int(state.z.item()) == z
        z_prev = z
    assert a > 0  # the neuron spiked and adapted


def test_leaky_integrator_adds_bias_every_step(device):
    model = nw.LeakyIntegrator(2, tau=10.0)
    state = model.init_state(1, device, torch.float64)
    kappa = math.exp(-0.1)
    bias = torch.tensor([0.5, -1.0], dtype=torch.float64, device=device)
    y = torch.zeros(2, dtype=torch.float64, device=device)
    drive = torch.ones(1, 2, dtype=torch.float64, device=device)
    for _ in range(5):
        state = model.step(state, drive, 1.0, params={"bias": bias})
        y = kappa * y + 1.0 + bias
    assert state.y.device.type == device.type
    assert torch.allclose(state.y[0], y)


def test_poisson_source_rate_within_binomial_tolerance(device):
    net = nw.Network(dt=1.0, seed=3)
    net.population("p", nw.PoissonSource(2000, rate_hz=40.0))
    sim = nw.Simulator(net, device=device, seed=11)
    spikes = sim.run(500, record={"p": ["spikes"]})["p"]["spikes"]
    rate = spikes.float().mean().item() / 1e-3
    n = 2000 * 500
    sd_hz = math.sqrt(0.04 * 0.96 / n) / 1e-3
    assert abs(rate - 40.0) < 5 * sd_hz


def test_poisson_rates_can_be_set_per_neuron_at_run_time(device):
    net = nw.Network(dt=1.0, seed=3)
    net.population("p", nw.PoissonSource(4))
    sim = nw.Simulator(net, device=device)
    sim.set_rates("p", torch.tensor([0.0, 1000.0, 0.0, 1000.0], device=device))
    spikes = sim.run(50, record={"p": ["spikes"]})["p"]["spikes"][0]  # [T, n]
    assert spikes[:, 0].sum() == 0 and spikes[:, 2].sum() == 0
    assert spikes[:, 1].all() and spikes[:, 3].all()
    with pytest.raises(ValueError, match="finite and >= 0"):
        sim.set_rates("p", -1.0)
    with pytest.raises(ValueError, match=r"\[4\]"):
        sim.set_rates("p", torch.ones(3, device=device))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: nw.LIF(0), "n must be"),
        (lambda: nw.LIF(3, tau_m=-1.0), "tau_m"),
        (lambda: nw.LIF(3, tau_refrac=-2.0), "tau_refrac"),
        (lambda: nw.ALIF(3, tau_a=0.0), "tau_a"),
        (lambda: nw.LeakyIntegrator(3, tau=float("nan")), "tau"),
        (lambda: nw.PoissonSource(3, rate_hz=-5.0), "rate_hz"),
        (lambda: nw.PoissonSource(3, rate_hz=torch.ones(4)), "rate_hz"),
        (lambda: nw.LIF(6, grid=(2, 2)), "holds 4 neurons"),
    ],
)
def test_bad_model_parameters_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_decay_and_refractory_helpers():
    assert decay(20.0, 1.0) == pytest.approx(math.exp(-0.05))
    assert refractory_steps(5.0, 0.1) == 50
    with pytest.raises(ValueError):
        decay(0.0, 1.0)
