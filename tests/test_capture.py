"""Blocks of steps are capturable as CUDA graphs: no host reads and no data-dependent shapes
inside (checked on the CPU by ``capture_guard``), and the graph engine's buffer handling gives
the torch engine's results, before and after rewiring (CPU: the buffers without a graph;
CUDA: real graphs)."""

import pytest
import torch
from torch.utils._pytree import tree_leaves

import neurowire as nw
from neurowire.capture import CaptureError, capture_guard
from neurowire.graphs import GraphedBlock
from neurowire.sim.runners import GraphRunner

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def network(delivery: str, plastic: bool, seed: int = 3) -> nw.Network:
    """Poisson input onto LIF with conductance synapses, a recurrent projection and a
    distance-dependent rewiring rule every 4 steps."""
    net = nw.Network(dt=0.5, seed=seed, dtype=torch.float64)
    src = net.population("src", nw.PoissonSource(36, rate_hz=120.0, grid=(6, 6)))
    tgt = net.population("tgt", nw.LIF.biophysical(36, grid=(6, 6), v_init=nw.Normal(-60, 5)))
    synapse = nw.STDP(w_max=0.3) if plastic else None
    ff = net.connect(
        src,
        tgt,
        nw.GaussianDistance(0.6, 2.0),
        weight=0.25,
        synapse=synapse,
        psc=nw.ExpCond(5.0, 0.0),
        capacity=24,
        delivery=delivery,
    )
    net.connect(
        tgt,
        tgt,
        nw.GaussianDistance(0.8, 1.5),
        weight=0.1,
        synapse=synapse,
        psc=nw.ExpCurr(5.0),
        capacity=24,
        delivery=delivery,
    )
    net.add_rule(
        nw.DistanceRewiring(0.6, 2.0, 1.0, 0.05, 0.1, 0.25, attempts=10),
        ff,
        every=4,
        log_events=True,
    )
    return net


CASES = [("rows", True), ("slots", True), ("rows", False), ("dense", False)]


def run(sim: nw.Simulator, steps: int = 30):
    return sim.run(steps, record={"tgt": ["spikes", "v"], "src": ["spikes"]})


@pytest.mark.parametrize(("delivery", "plastic"), CASES)
def test_graph_buffers_give_the_torch_results_through_rewiring(delivery, plastic):
    ref_net, net = network(delivery, plastic), network(delivery, plastic)
    ref_sim = nw.Simulator(ref_net, engine="torch", block_steps=4, event_fraction=0.02)
    ref = run(ref_sim)
    sim = nw.Simulator(net, engine="torch", block_steps=4, event_fraction=0.02)
    graphed = GraphedBlock(sim.step_function.block, recorder=None)  # every block guarded
    sim.runner = GraphRunner(sim, graphed)
    res = run(sim)
    for pop, var in [("tgt", "spikes"), ("tgt", "v"), ("src", "spikes")]:
        torch.testing.assert_close(res[pop][var], ref[pop][var], rtol=0, atol=0)
    totals = sim.rewiring_log.totals("src->tgt")
    assert totals == ref_sim.rewiring_log.totals("src->tgt")
    assert totals["removed"] + totals["added"] > 0  # the rule did rewire
    for name, proj in net.projections.items():
        ref_store = ref_net.projections[name].synapses
        assert torch.equal(proj.synapses.ind, ref_store.ind)
        assert torch.equal(proj.synapses.row_length, ref_store.row_length)
        torch.testing.assert_close(proj.synapses.vars["weight"], ref_store.vars["weight"])


def replay_by_rerunning(run):
    """A CPU stand-in for a CUDA graph with its semantics: replay runs the recorded block again
    on the same input buffers and writes into the same output tensors."""
    outputs = run()

    def replay():
        for old, new in zip(tree_leaves(outputs), tree_leaves(run()), strict=True):
            if isinstance(old, torch.Tensor):
                old.copy_(new)

    return replay, outputs


@pytest.mark.parametrize(("delivery", "plastic"), CASES[:2])
def test_recorded_blocks_replayed_in_place_give_the_torch_results(delivery, plastic):
    ref_net, net = network(delivery, plastic), network(delivery, plastic)
    ref = run(nw.Simulator(ref_net, engine="torch", block_steps=4))
    sim = nw.Simulator(net, engine="torch", block_steps=4)
    graphed = GraphedBlock(sim.step_function.block, recorder=replay_by_rerunning)
    sim.runner = GraphRunner(sim, graphed)
    res = run(sim)
    for pop, var in [("tgt", "spikes"), ("tgt", "v"), ("src", "spikes")]:
        torch.testing.assert_close(res[pop][var], ref[pop][var], rtol=0, atol=0)
    assert 1 <= graphed.captures <= 3  # 4-step blocks (and the 2-step tail), not per rewiring


def test_a_new_capture_only_when_the_block_length_or_budget_changes():
    net = network("rows", True)
    sim = nw.Simulator(net, engine="torch", block_steps=4)
    graphed = GraphedBlock(sim.step_function.block, recorder=None)
    sim.runner = GraphRunner(sim, graphed)
    budgets = sim.step_function.budgets
    budgets.update(dict.fromkeys(budgets, 1))  # overflows at once: the budgets double
    sim.run(24)  # six blocks, five rewirings
    keys = list(graphed._entries)
    assert len(keys) >= 2 and min(budgets.values()) > 1
    # one entry per (block length, budgets, weight tensors): rewiring never adds one
    assert len({key[:3] for key in keys}) == len(keys)
    assert {key[0] for key in keys} == {4}
    sim.run(2)  # a shorter block
    assert {key[0] for key in graphed._entries} == {2, 4}


def test_graph_engine_needs_cuda():
    with pytest.raises(ValueError, match="needs a CUDA device"):
        nw.Simulator(network("rows", True), engine="graph")
    with pytest.raises(ValueError, match="cannot time phases"):
        nw.Simulator(network("rows", True), engine="graph", time_phases=True)


@pytest.mark.parametrize(
    ("code", "match"),
    [
        (lambda x: x.sum().item(), "_local_scalar_dense"),
        (lambda x: bool(x.any()), "reads a value on the host"),
        (lambda x: x.nonzero(), "nonzero_static"),
        (lambda x: x[x > 0.5], "boolean-mask indexing"),
        (lambda x: torch.bincount((x * 4).long().view(-1)), "bincount"),
        (lambda x: torch.unique(x), "shape depends on data"),
    ],
)
def test_capture_guard_names_what_a_graph_cannot_capture(code, match):
    x = torch.rand(3, 4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(CaptureError, match=match), capture_guard("test block"):
        code(x)


def test_capture_guard_lets_static_code_run():
    x = torch.rand(3, 4, generator=torch.Generator().manual_seed(0))
    with capture_guard():
        y = torch.nonzero_static(x.view(-1) > 0.5, size=12, fill_value=12)
        z = torch.where(x > 0.5, x, 0).cumsum(1)
    assert y.shape == (12, 1) and z.shape == (3, 4)


@needs_cuda
@pytest.mark.cuda
@pytest.mark.parametrize(("delivery", "plastic"), CASES)
def test_graph_engine_on_cuda_equals_torch(delivery, plastic):
    ref_net, net = network(delivery, plastic), network(delivery, plastic)
    ref = run(nw.Simulator(ref_net, device="cuda", engine="torch", block_steps=4))
    sim = nw.Simulator(net, device="cuda", engine="graph", block_steps=4)
    res = run(sim)
    for pop, var in [("tgt", "spikes"), ("tgt", "v"), ("src", "spikes")]:
        torch.testing.assert_close(res[pop][var], ref[pop][var])
    assert sim.runner.graphed.captures <= 4  # one per block length / budget, not per rewiring
