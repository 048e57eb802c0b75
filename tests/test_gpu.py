"""The same simulations on CUDA as on the CPU (skipped without a GPU)."""

import pytest
import torch

import neurowire as nw

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.cuda,
]


def network(dtype=torch.float64):
    net = nw.Network(dt=0.5, seed=5, dtype=dtype)
    src = net.population("src", nw.PoissonSource(64, rate_hz=80.0, grid=(8, 8)))
    tgt = net.population("tgt", nw.LIF.biophysical(64, grid=(8, 8), v_init=nw.Normal(-60, 5)))
    stdp = nw.STDP(w_max=0.2)
    ff = net.connect(
        src,
        tgt,
        nw.GaussianDistance(0.5, 2.0),
        weight=0.2,
        synapse=stdp,
        psc=nw.ExpCond(5.0, 0.0),
        capacity=40,
    )
    net.connect(
        tgt,
        tgt,
        nw.GaussianDistance(1.0, 1.0),
        weight=0.2,
        synapse=stdp,
        psc=nw.ExpCond(5.0, 0.0),
        capacity=40,
    )
    net.add_rule(
        nw.DistanceRewiring(0.5, 2.0, 1.0, 0.05, 0.1, 0.2, attempts=20),
        ff,
        every=4,
        log_events=True,
    )
    return net


def run(device, engine="torch", steps=300):
    net = network()
    sim = nw.Simulator(net, device=device, engine=engine)
    result = sim.run(steps, record={"tgt": ["spikes", "v"], "src": ["spikes"]})
    return result, net, sim


def test_store_operations_on_cuda_match_cpu():
    gen = torch.Generator().manual_seed(0)
    pre, post = nw.FixedProbability(0.2).build(50, 40, generator=gen)
    stores = [
        nw.RaggedSynapses.from_coo(50, 40, pre, post, padding=2.0, weight=1.0, device=d)
        for d in ("cpu", "cuda")
    ]
    for s in stores:
        s.add_var("trace", batched=3)
        s.remove(s.ind % 3 == 0)
        s.add(torch.tensor([1, 2, 3]), torch.tensor([0, 0, 0]), on_duplicate="skip", weight=2.0)
        s.validate()
    assert torch.equal(stores[0].to_dense("weight"), stores[1].to_dense("weight").cpu())
    assert torch.equal(stores[0].columns().slot, stores[1].columns().slot.cpu())


def test_torch_engine_runs_on_cuda_with_rewiring():
    result, net, sim = run("cuda")
    assert result["tgt"]["spikes"].any()
    net.projections["src->tgt"].synapses.validate()
    assert sim.rewiring_log.totals("src->tgt")["added"] > 0


@pytest.mark.slow
def test_compiled_engine_matches_torch_on_cuda():
    a, net_a, _ = run("cuda", "torch", steps=200)
    b, net_b, _ = run("cuda", "compile", steps=200)
    assert torch.equal(a["tgt"]["spikes"], b["tgt"]["spikes"])
    assert torch.allclose(a["tgt"]["v"], b["tgt"]["v"], atol=1e-9)
