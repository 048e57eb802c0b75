"""A network trained by EProp (with DEEP R rewiring it) runs in the Simulator with the same
spikes as the trainer's forward pass, through ``EProp.simulator_inputs``."""

from __future__ import annotations

import pytest
import torch

import neurowire as nw
from neurowire.learning import Adam, EProp


def trained(engine: str, device: torch.device):
    net = nw.Network(dt=1.0, seed=4, dtype=torch.float64)
    inp = net.population("input", nw.SpikeSource(20))
    lif = net.population("lif", nw.LIF(8, tau_m=15.0, v_th=0.5, tau_refrac=2.0))
    alif = net.population("alif", nw.ALIF(12, tau_a=100.0, beta=0.1, v_th=0.5))
    out = net.population("output", nw.LeakyIntegrator(3, tau=20.0))
    for post in (lif, alif):
        net.connect(inp, post, nw.FixedProbability(0.4), weight=nw.Normal(0.3, 0.3), padding=2.0)
    net.connect(alif, lif, nw.FixedProbability(0.3), weight=nw.Normal(0.0, 0.3), padding=2.0)
    net.connect(lif, alif, nw.Dense(), weight=nw.Normal(0.0, 0.3))
    net.connect(alif, alif, nw.FixedProbability(0.3), weight=nw.Normal(0.0, 0.3), padding=2.0)
    net.connect(lif, out, nw.Dense(), weight=nw.Normal(0.0, 0.3))
    net.connect(alif, out, nw.Dense(), weight=nw.Normal(0.0, 0.3))
    for name in ("input->alif", "alif->alif"):
        net.add_rule(nw.DeepR(l1=0.01), name)
    trainer = EProp(net, out, optimizer=Adam(lr=0.05), engine=engine, seed=0, device=device)
    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        x = torch.rand(4, 40, 20, generator=gen) < 0.15
        trainer.train_step(x, torch.randint(0, 3, (4,), generator=gen))
    return net, trainer, gen


@pytest.mark.parametrize("trainer_engine", ["torch", "native"])
@pytest.mark.parametrize("sim_engine", ["torch", "native"])
def test_trained_network_gives_the_trainers_spikes_in_the_simulator(
    trainer_engine, sim_engine, device
):
    if "native" in (trainer_engine, sim_engine):
        if device.type != "cpu":
            pytest.skip("the native engines run on the CPU only")
        pytest.importorskip("numba")
    net, trainer, gen = trained(trainer_engine, device)
    s = net.projections["alif->alif"].synapses
    assert s.nnz > 0
    x = (torch.rand(3, 50, 20, generator=gen) < 0.2).to(device)
    expected = trainer.hidden_spikes(x)  # [B, T, N]
    assert expected.any() and not expected.all()
    sim = nw.Simulator(net, device=device, engine=sim_engine, batch_size=3)
    rec = sim.run(
        52,
        record={"lif": ["spikes"], "alif": ["spikes"], "output": ["y"]},
        inputs={"input": torch.cat([EProp.simulator_inputs(x), torch.zeros_like(x[:, :1])], 1)},
    )
    got = torch.cat([rec["lif"]["spikes"], rec["alif"]["spikes"]], dim=2)  # [B, T + 1, N]
    assert not got[:, 0].any()  # the Simulator's step 0 receives nothing yet
    assert torch.equal(got[:, 1:51], expected)
    # the readout: two steps later, plus the bias of the Simulator's first two steps
    y = trainer.readout_trace(x)  # [B, T, K]
    kappa = net.populations["output"].model.cached_constants(net.dt)["kappa"]
    bias = net.populations["output"].params["bias"]
    t = torch.arange(50, dtype=torch.float64, device=device)[None, :, None]
    y_sim = rec["output"]["y"][:, 2:]  # [B, T, K]
    correction = bias * (kappa ** (t + 1) + kappa ** (t + 2))
    torch.testing.assert_close(y_sim, y + correction, rtol=1e-10, atol=1e-10)


def test_simulator_inputs_refuses_a_wrong_shape():
    with pytest.raises(ValueError, match=r"\[B, T, n_in\]"):
        EProp.simulator_inputs(torch.zeros(5, 3, dtype=torch.bool))
