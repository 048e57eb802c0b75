"""nw.nn.NeuronCell: the model's own update as an autograd step, with the model's own
pseudo-derivative as the spikes' surrogate gradient."""

from __future__ import annotations

import math

import pytest
import torch

import neurowire as nw
from neurowire.checks import ParameterError
from neurowire.codegen import Constants
from neurowire.learning.compiled import GAMMA_PD
from neurowire.nn import NeuronCell

F64 = torch.float64

#: (model, surrogate width or None, input weight scale): each model in a regime where it
#: spikes, resets, adapts and is refractory within the run
MODELS = {
    "lif": (nw.LIF(6, tau_m=10.0, v_th=0.6, tau_refrac=2.0), None, 0.5),
    "alif": (nw.ALIF(6, tau_m=10.0, tau_a=30.0, beta=0.3, v_th=0.6, tau_refrac=2.0), None, 0.5),
    "lif_biophysical": (nw.LIF.biophysical(6, tau_refrac=3.0), 16.0, 40.0),
    "readout": (nw.LeakyIntegrator(6, tau=15.0, bias=0.25), None, 0.5),
}


def _trajectory_inputs(model, scale, generator):
    batch, steps, n_in = 3, 40, 8
    x = torch.rand(batch, steps, n_in, generator=generator) < 0.3
    w = torch.rand(n_in, model.n, generator=generator, dtype=F64) * scale
    return x, w


@pytest.mark.parametrize("name", list(MODELS))
def test_forward_is_the_simulators_trajectory(name, generator):
    model, width, scale = MODELS[name]
    x, w = _trajectory_inputs(model, scale, generator)
    batch, steps, _ = x.shape
    net = nw.Network(dt=0.5, seed=0, dtype=F64)
    net.population("src", nw.SpikeSource(x.shape[2]))
    net.population("pop", model)
    net.connect("src", "pop", nw.Dense(), weight=w)
    names = [f for f in model.state_type._fields if f != "z"] + ["spikes"]
    sim = nw.Simulator(net, batch_size=batch, engine="torch")
    expected = sim.run(steps, record={"pop": names}, inputs={"src": x})["pop"]

    cell = NeuronCell(model, dt=0.5, surrogate_width=width, dtype=F64)
    state = cell.initial_state(batch)
    prev = torch.zeros(batch, x.shape[2], dtype=torch.bool)
    got = {key: [] for key in names}
    for t in range(steps):
        z, state = cell(prev.to(F64) @ w, state)  # the spikes of step t - 1 arrive in step t
        prev = x[:, t]
        for key in names:
            got[key].append(z if key == "spikes" else getattr(state, key))
    for key in names:
        traj = torch.stack(got[key], dim=1).detach()
        want = expected[key].to(traj.dtype)
        assert torch.equal(traj, want), f"{name}: {key} differs from the Simulator's"
    if model.spiking:
        spikes = expected["spikes"]
        assert 0 < spikes.float().mean() < 0.5, "the run should spike, but not always"


def _lif_psi(distance, v_th):
    """e-prop's pseudo-derivative written out: (0.3 / v_th) max(0, 1 - |d| / v_th)."""
    return 0.3 / v_th * torch.clamp(1.0 - distance.abs() / v_th, min=0.0)


@pytest.mark.parametrize("name", ["lif", "alif"])
def test_input_gradient_of_the_spikes_is_the_models_pseudo_derivative(name):
    model = MODELS[name][0]
    cell = NeuronCell(model, dt=1.0, dtype=F64)
    current = torch.linspace(-0.4, 1.6, 2 * model.n, dtype=F64).reshape(2, model.n)
    current.requires_grad_(True)
    z, state = cell(current)
    z.sum().backward()
    # from rest and no spikes: v = I and the threshold is v_th (a = 0), so distance = I - v_th
    distance = current.detach() - model.v_th
    c = Constants({"inv_v_th": 1.0 / model.v_th, "psi_scale": GAMMA_PD / model.v_th})
    assert torch.equal(current.grad, model.pseudo_derivative(c, distance))
    torch.testing.assert_close(current.grad, _lif_psi(distance, model.v_th), rtol=1e-12, atol=0)
    assert torch.equal(z, (distance > 0).to(F64))
    assert (current.grad > 0).any() and (current.grad == 0).any()


def test_surrogate_gradient_is_zero_while_refractory():
    model = nw.ALIF(4, beta=0.2, v_th=0.6, tau_refrac=3.0)
    cell = NeuronCell(model, dt=1.0, dtype=F64)
    first = torch.tensor([[1.0, 1.0, 0.0, 0.0]], dtype=F64)  # neurons 0, 1 spike
    _, state = cell(first)
    assert state.r.tolist() == [[3, 3, 0, 0]]
    second = torch.full((1, 4), 0.5, dtype=F64, requires_grad=True)
    z, _ = cell(second, state)
    z.sum().backward()
    assert second.grad[0, :2].tolist() == [0.0, 0.0]
    assert (second.grad[0, 2:] > 0).all()


def test_gradient_flows_back_through_the_membrane_and_the_reset():
    """No spike in step 1; ``v_2 = alpha v_1 + I_2 - v_th z_1`` with ``v_1 = I_1``: the surrogate
    ``dz_1 / dI_1 = psi_1`` makes ``dz_2 / dI_1 = psi_2 (alpha - v_th psi_1)``."""
    model = nw.LIF(3, tau_m=20.0, v_th=0.6)
    cell = NeuronCell(model, dt=1.0, dtype=F64)
    alpha = math.exp(-1.0 / 20.0)
    i1 = torch.tensor([[0.1, 0.3, 0.5]], dtype=F64, requires_grad=True)
    i2 = torch.tensor([[0.2, 0.2, 0.2]], dtype=F64)
    z1, state = cell(i1)
    z2, state = cell(i2, state)
    assert z1.sum() == 0
    z2.sum().backward()
    psi1 = _lif_psi(i1.detach() - 0.6, 0.6)
    psi2 = _lif_psi(alpha * i1.detach() + i2 - 0.6, 0.6)
    torch.testing.assert_close(i1.grad, psi2 * (alpha - 0.6 * psi1), rtol=1e-12, atol=0)


def test_gradient_flows_through_the_reset_by_subtraction():
    """A spike at step 1 subtracts ``v_th`` in step 2: ``dv_2 / dI_1 = alpha - v_th psi_1``."""
    model = nw.LIF(1, tau_m=20.0, v_th=0.6)
    cell = NeuronCell(model, dt=1.0, dtype=F64)
    alpha = math.exp(-1.0 / 20.0)
    i1 = torch.tensor([[0.8]], dtype=F64, requires_grad=True)
    z1, state = cell(i1)
    _, state = cell(torch.zeros(1, 1, dtype=F64), state)
    assert z1.item() == 1.0
    state.v.sum().backward()
    psi1 = _lif_psi(torch.tensor(0.8 - 0.6, dtype=F64), 0.6)
    torch.testing.assert_close(i1.grad, (alpha - 0.6 * psi1).reshape(1, 1), rtol=1e-12, atol=0)


def test_readout_bias_is_a_trained_parameter():
    cell = NeuronCell(nw.LeakyIntegrator(2, tau=10.0, bias=0.25), dt=1.0)
    assert [name for name, _ in cell.named_parameters()] == ["bias"]
    z, state = cell(torch.ones(4, 2))
    _, state = cell(torch.ones(4, 2), state)
    assert not z.any()
    state.y.sum().backward()
    kappa = math.exp(-1.0 / 10.0)
    torch.testing.assert_close(cell.bias.grad, torch.full((2,), 4 * (1 + kappa)))


def test_initial_state_follows_the_cells_device_and_dtype():
    cell = NeuronCell(nw.ALIF(5), dt=1.0).to(F64)
    state = cell.initial_state(2)
    assert type(state).__name__ == "ALIFState"
    assert state.v.dtype == F64 and state.z.dtype == F64 and state.r.dtype == torch.int32
    assert state.v.shape == (2, 5) and not state.z.any()
    z, _ = cell(torch.zeros(2, 5, dtype=F64))
    assert z.dtype == F64


def test_source_models_are_refused():
    with pytest.raises(TypeError, match="PoissonSource is a spike source"):
        NeuronCell(nw.PoissonSource(3, rate_hz=10.0))
    with pytest.raises(TypeError, match="model must be a NeuronModel, got int"):
        NeuronCell(3)


def test_model_without_eprop_threshold_needs_a_surrogate_width():
    with pytest.raises(ParameterError, match="pass surrogate_width="):
        NeuronCell(nw.LIF.biophysical(3))
    with pytest.raises(ParameterError, match="surrogate_width must be"):
        NeuronCell(nw.LIF(3), surrogate_width=0.0)


def test_bad_dt_input_and_state_are_refused():
    with pytest.raises(ParameterError, match="dt"):
        NeuronCell(nw.LIF(3), dt=0.0)
    cell = NeuronCell(nw.LIF(3))
    with pytest.raises(ValueError, match=r"input current must be \[B, 3\], got \(2, 4\)"):
        cell(torch.zeros(2, 4))
    with pytest.raises(TypeError, match="state must be a LIFState, got ALIFState"):
        cell(torch.zeros(2, 3), NeuronCell(nw.ALIF(3)).initial_state(2))
    with pytest.raises(ValueError, match="batch must be an int >= 1, got 0"):
        cell.initial_state(0)


def test_cell_gives_the_same_spikes_and_gradients_on_every_device(device):
    currents = torch.rand(12, 3, 6, generator=torch.Generator().manual_seed(1), dtype=F64)
    model = nw.ALIF(6, tau_m=10.0, tau_a=30.0, beta=0.3, v_th=0.6, tau_refrac=2.0)
    results = []
    for dev in (torch.device("cpu"), device):
        cell = NeuronCell(model, dt=1.0, dtype=F64, device=dev)
        inputs = currents.to(dev).requires_grad_(True)
        state, spikes = None, []
        for t in range(currents.shape[0]):
            z, state = cell(inputs[t], state)
            spikes.append(z)
        torch.stack(spikes).sum().backward()
        assert state.v.device.type == dev.type
        results.append((torch.stack(spikes).detach().cpu(), inputs.grad.cpu()))
    (z_cpu, g_cpu), (z_dev, g_dev) = results
    assert z_cpu.sum() > 0
    assert torch.equal(z_dev, z_cpu)
    torch.testing.assert_close(g_dev, g_cpu, rtol=1e-12, atol=1e-12)
