"""Postsynaptic models, alone and through a one-synapse network."""

import math

import pytest
import torch

import neurowire as nw


def one_spike_network(psc, post_model, device, weight=0.5, dtype=torch.float64):
    net = nw.Network(dt=1.0, seed=0, dtype=dtype)
    src = net.population("src", nw.SpikeSource(1))
    post = net.population("post", post_model)
    net.connect(src, post, nw.AllToAll(), weight=weight, psc=psc)
    spikes = torch.zeros(1, 12, 1, dtype=torch.bool, device=device)
    spikes[0, 2, 0] = True  # emitted in step 2, delivered in step 3
    return net, spikes


def test_delta_input_arrives_one_step_after_the_spike(engine, device):
    net, spikes = one_spike_network(nw.Delta(), nw.LIF(1, tau_m=10.0, v_th=10.0), device)
    sim = nw.Simulator(net, device=device, engine=engine)
    v = sim.run(12, record={"post": ["v"]}, inputs={"src": spikes})
    v = v["post"]["v"].cpu()
    v = v[0, :, 0]
    alpha = math.exp(-0.1)
    assert v[:3].abs().max() == 0
    assert v[3].item() == pytest.approx(0.5)
    assert v[4].item() == pytest.approx(0.5 * alpha)


def test_exp_curr_decays_with_tau(device):
    psc = nw.ExpCurr(tau=4.0)
    state = psc.init_state(1, 1, device, torch.float64)
    currents = []
    for w in [0.0, 1.0, 0.0, 0.0]:
        w_t = torch.full((1, 1), w, dtype=torch.float64, device=device)
        i, state = psc.step(state, w_t, None, 1.0)
        currents.append(i.item())
    k = math.exp(-0.25)
    assert currents == pytest.approx([0.0, 1.0, k, k * k])


def test_exp_curr_drives_lif_one_step_after_the_spike(engine, device):
    """The current jumps by w in the delivery step (3) and decays by e^(-dt/tau) per step;
    the e-prop LIF integrates it as v <- alpha v + I."""
    net, spikes = one_spike_network(nw.ExpCurr(tau=4.0), nw.LIF(1, tau_m=10.0, v_th=10.0), device)
    sim = nw.Simulator(net, device=device, engine=engine)
    v = sim.run(12, record={"post": ["v"]}, inputs={"src": spikes})
    v = v["post"]["v"][0, :, 0].cpu()
    alpha, k = math.exp(-0.1), math.exp(-0.25)
    ref, current = 0.0, 0.0
    for step in range(12):
        if step == 3:
            current += 0.5
        ref = alpha * ref + current
        current *= k
        assert v[step].item() == pytest.approx(ref, abs=1e-12), step
    assert v[:3].abs().max() == 0


def test_exp_cond_current_is_conductance_times_driving_force(device):
    psc = nw.ExpCond(tau=5.0, e_rev=0.0)
    g = psc.init_state(1, 1, device, torch.float64)
    v = torch.full((1, 1), -70.0, dtype=torch.float64, device=device)
    w = torch.full((1, 1), 0.2, dtype=torch.float64, device=device)
    i, g = psc.step(g, w, v, 0.1)
    assert i.item() == pytest.approx(0.2 * 70.0)
    assert g.item() == pytest.approx(0.2 * math.exp(-0.1 / 5.0))


def test_exp_cond_drives_biophysical_lif_as_computed_by_hand(engine, device):
    net, spikes = one_spike_network(
        nw.ExpCond(tau=5.0, e_rev=0.0), nw.LIF.biophysical(1, tau_refrac=0.0), device, weight=0.2
    )
    sim = nw.Simulator(net, device=device, engine=engine)
    v = sim.run(8, record={"post": ["v"]}, inputs={"src": spikes})
    v = v["post"]["v"].cpu()
    alpha, k = math.exp(-1 / 20), math.exp(-1 / 5)
    ref, g = -70.0, 0.0
    for step in range(8):
        if step == 3:
            g += 0.2
        i = g * (0.0 - ref)
        ref = -70.0 + (ref + 70.0) * alpha + (1 - alpha) * i
        g *= k
        assert v[0, step, 0].item() == pytest.approx(ref, abs=1e-9)


def test_exp_cond_onto_a_readout_is_rejected(engine, device):
    net = nw.Network()
    src = net.population("src", nw.PoissonSource(2))
    out = net.population("out", nw.LeakyIntegrator(2))
    net.connect(src, out, nw.AllToAll(), psc=nw.ExpCond())
    with pytest.raises(ValueError, match="membrane potential"):
        nw.Simulator(net, device=device, engine=engine)


@pytest.mark.parametrize(
    "psc, names",
    [(nw.Delta(), ()), (nw.ExpCurr(), ("x",)), (nw.Alpha(2.0, tau_m=10.0), ("di", "i"))],
)
def test_state_holds_one_row_per_variable(psc, names, device):
    """``[len(state_vars), B, n_post]``, the variables in the order of ``state_vars``."""
    assert psc.state_vars == names
    state = psc.init_state(3, 5, device, torch.float64)
    assert state.shape == (len(names), 3, 5)
    w = torch.ones(3, 5, dtype=torch.float64, device=device)
    _, new = psc.step(state, w, None, 0.1)
    assert new.shape == state.shape
