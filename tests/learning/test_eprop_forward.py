"""The e-prop forward convention of :mod:`neurowire.learning.forward` (input enters in the same
step, reset by subtraction one step after the spike), pinned on one or two neurons with spikes at
fixed steps.

Golden values are written as closed forms (powers of alpha) so a failure can be checked by hand.
"""

from __future__ import annotations

import math

import pytest
import torch

import neurowire as nw
from neurowire.learning.compiled import compile_network
from neurowire.learning.forward import (
    flush_denormals,
    gather_weights,
    hidden_events,
    input_currents,
    input_events,
    pseudo_derivative_,
    readout,
    simulate,
)


def one_neuron(model, device, w_in=1.0, w_rec=None, w_out=1.0, bias=0.0, tau_out=10.0):
    net = nw.Network(dt=1.0, seed=0, dtype=torch.float64)
    inp = net.population("inp", nw.SpikeSource(1))
    hid = net.population("hid", model)
    out = net.population("out", nw.LeakyIntegrator(1, tau=tau_out, bias=bias))
    net.connect(inp, hid, nw.Dense(), weight=torch.full((1, model.n), w_in, dtype=torch.float64))
    if w_rec is not None:
        net.connect(hid, hid, nw.Dense(), weight=torch.as_tensor(w_rec, dtype=torch.float64))
    net.connect(hid, out, nw.Dense(), weight=torch.full((model.n, 1), w_out, dtype=torch.float64))
    enet = compile_network(net, out, device)
    assert enet.device.type == device.type
    return enet


def run(enet, spike_steps, steps):
    """The torch forward pass on ``enet.device``; ``d``, ``z`` and ``y`` come back on the CPU."""
    x = torch.zeros(1, steps, 1, dtype=torch.bool, device=enet.device)
    x[0, list(spike_steps), 0] = True
    w = gather_weights(enet, None)
    d, z = simulate(enet, w, input_currents(enet, w, input_events(x), steps))
    y = readout(hidden_events(z), w, enet.kappa, steps)
    assert d.device.type == y.device.type == enet.device.type
    return d[:, 0].cpu(), z[:, 0].cpu(), y[:, 0, 0].cpu(), w


def test_input_enters_v_in_the_same_step_and_reset_subtracts_v_th_one_step_later(device):
    enet = one_neuron(nw.LIF(1, tau_m=20.0, v_th=0.6), device)
    a = math.exp(-1 / 20)
    d, z, _, _ = run(enet, [0], 4)
    # v_0 = 1 (spike), v_1 = a - 0.6 (reset one step later), v_2 = a^2 - 0.6 a
    v = torch.tensor([1.0, a - 0.6, a * a - 0.6 * a, a**3 - 0.6 * a * a], dtype=torch.float64)
    torch.testing.assert_close(d[:, 0], v - 0.6)
    assert z[:, 0].tolist() == [1.0, 0.0, 0.0, 0.0]


def test_threshold_is_strict(device):
    enet = one_neuron(nw.LIF(1, v_th=0.5), device, w_in=0.5)
    _, z, _, _ = run(enet, [0], 2)
    assert z.sum() == 0  # v = v_th exactly does not spike


def test_refractory_for_n_ref_steps_after_a_spike(device):
    enet = one_neuron(nw.LIF(1, tau_m=20.0, v_th=0.6, tau_refrac=2.0), device, w_in=5.0)
    d, z, _, _ = run(enet, range(8), 8)
    assert z[:, 0].tolist() == [1, 0, 0, 1, 0, 0, 1, 0]
    assert torch.isinf(d[[1, 2, 4, 5, 7], 0]).all()  # psi and z vanish there
    psi = pseudo_derivative_(d.clone().to(device), enet.hidden).cpu()
    assert (psi[[1, 2, 4, 5, 7]] == 0).all()


def test_alif_threshold_adapts_from_the_previous_spike(device):
    model = nw.ALIF(1, tau_m=20.0, tau_a=100.0, beta=1.0, v_th=0.6, tau_refrac=0.0)
    enet = one_neuron(model, device)
    a_m, rho = math.exp(-1 / 20), math.exp(-1 / 100)
    d, z, _, _ = run(enet, [0, 1], 3)
    # t=0: a=0, v=1 -> spike. t=1: a = 1, A = 0.6 + 1; v = a_m + 1 - 0.6: no spike.
    assert z[:2, 0].tolist() == [1.0, 0.0]
    assert float(d[1, 0]) == pytest.approx(a_m + 1 - 0.6 - (0.6 + 1.0))
    # t=2: a = rho, v = a_m (a_m + 0.4)
    assert float(d[2, 0]) == pytest.approx(a_m * (a_m + 0.4) - (0.6 + 1.0 * rho))


def test_dense_recurrent_diagonal_is_masked(device):
    w_rec = [[100.0, 0.7], [0.0, -100.0]]
    enet = one_neuron(nw.LIF(2, tau_m=20.0, v_th=0.6), device, w_in=1.0, w_rec=w_rec)
    a = math.exp(-1 / 20)
    d, z, _, w = run(enet, [0], 2)
    assert z[0].tolist() == [1.0, 1.0]
    # neuron 1 gets 0.7 from neuron 0 and nothing from itself; both reset by 0.6
    torch.testing.assert_close(
        d[1], torch.tensor([a - 0.6, a + 0.7 - 0.6], dtype=torch.float64) - 0.6
    )
    # no autapse in the recurrent matrix; the reset is the neuron model's own
    assert torch.equal(torch.diagonal(w.w_rec).cpu(), torch.zeros(2, dtype=torch.float64))


def test_readout_is_a_leaky_sum_of_spikes_plus_bias(device):
    enet = one_neuron(nw.LIF(1, v_th=0.6), device, w_out=2.0, bias=0.1, tau_out=10.0)
    k = math.exp(-1 / 10)
    _, _, y, _ = run(enet, [0], 3)
    expect = [2.1, k * 2.1 + 0.1, k * (k * 2.1 + 0.1) + 0.1]
    torch.testing.assert_close(y, torch.tensor(expect, dtype=torch.float64))


def test_pseudo_derivative_values(device):
    enet = one_neuron(nw.LIF(1, v_th=0.5), device)
    d = [[0.0], [0.25], [-0.5], [0.9], [float("-inf")]]
    psi = pseudo_derivative_(torch.tensor(d, dtype=torch.float64, device=device), enet.hidden)
    torch.testing.assert_close(
        psi[:, 0].cpu(), torch.tensor([0.6, 0.3, 0.0, 0.0, 0.0], dtype=torch.float64)
    )


def test_flush_denormals_inside_the_block_and_restored_after():  # a CPU setting
    def denormal_survives():
        return torch.tensor([1e-39], dtype=torch.float32).mul(1.0).item() != 0.0

    before = denormal_survives()
    with flush_denormals():
        if torch.set_flush_denormal(True):  # supported on this CPU
            assert not denormal_survives()
    assert denormal_survives() == before
