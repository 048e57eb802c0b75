"""STDP: analytic pair updates, clipping, event-driven paths equal to the reference."""

import math

import pytest
import torch

import neurowire as nw
from neurowire.events import SpikeEvents
from neurowire.plasticity import stdp_depress_rows, stdp_potentiate_columns, stdp_reference


def pair_network(pre_steps, post_steps, rule, device, steps=40, weight=0.1, n_post=1):
    """Spike sources joined by one plastic synapse 0 -> 0; spikes at the given steps (the input
    spikes on ``device``)."""
    net = nw.Network(dt=1.0, seed=0, dtype=torch.float64)
    pre = net.population("pre", nw.SpikeSource(1))
    post = net.population("post", nw.SpikeSource(n_post))
    conn = nw.FromArrays(torch.tensor([0]), torch.tensor([0]))
    proj = net.connect(pre, post, conn, weight=weight, synapse=rule, capacity=n_post)
    x = torch.zeros(1, steps, 1, dtype=torch.bool, device=device)
    y = torch.zeros(1, steps, n_post, dtype=torch.bool, device=device)
    x[0, pre_steps, 0] = True
    for j, s in post_steps:
        y[0, s, j] = True
    return net, proj, {"pre": x, "post": y}


RULE = nw.STDP(tau_plus=20.0, tau_minus=64.0, a_plus=0.02, a_minus=0.0075, w_min=0.0, w_max=1.0)


def test_pre_then_post_potentiates_by_a_plus_exp(engine, device):
    net, proj, inputs = pair_network([10], [(0, 15)], RULE, device)
    nw.Simulator(net, device=device, engine=engine).run(40, inputs=inputs)
    dw = proj.synapses.values("weight").item() - 0.1
    assert dw == pytest.approx(0.02 * math.exp(-5 / 20.0), rel=1e-12)


def test_post_then_pre_depresses_by_a_minus_exp(engine, device):
    net, proj, inputs = pair_network([15], [(0, 10)], RULE, device)
    nw.Simulator(net, device=device, engine=engine).run(40, inputs=inputs)
    dw = proj.synapses.values("weight").item() - 0.1
    assert dw == pytest.approx(-0.0075 * math.exp(-5 / 64.0), rel=1e-12)


def test_simultaneous_spikes_do_not_interact_and_all_to_all_pairs_sum(engine, device):
    net, proj, inputs = pair_network([10], [(0, 10)], RULE, device)
    nw.Simulator(net, device=device, engine=engine).run(40, inputs=inputs)
    assert proj.synapses.values("weight").item() == pytest.approx(0.1)
    net, proj, inputs = pair_network([10, 12], [(0, 15)], RULE, device)
    nw.Simulator(net, device=device, engine=engine).run(40, inputs=inputs)
    expected = 0.02 * (math.exp(-5 / 20) + math.exp(-3 / 20))
    assert proj.synapses.values("weight").item() - 0.1 == pytest.approx(expected, rel=1e-12)


def test_weights_are_clipped_to_bounds(engine, device):
    rule = nw.STDP(a_plus=1.0, a_minus=1.0, w_min=0.05, w_max=0.3)
    net, proj, inputs = pair_network([5], [(0, 6)], rule, device)
    nw.Simulator(net, device=device, engine=engine).run(10, inputs=inputs)
    assert proj.synapses.values("weight").item() == pytest.approx(0.3)
    net, proj, inputs = pair_network([6], [(0, 5)], rule, device)
    nw.Simulator(net, device=device, engine=engine).run(10, inputs=inputs)
    assert proj.synapses.values("weight").item() == pytest.approx(0.05)


def test_event_driven_stdp_equals_all_slots_reference(device):
    # drawn on the CPU and moved to ``device``: the same synapses and spikes on every device, so
    # that trials 2-4 fit their event budgets (and are compared) and trials 0-1 overflow
    gen = torch.Generator().manual_seed(5)
    n_pre, n_post = 40, 30
    pre, post = nw.FixedProbability(0.3).build(n_pre, n_post, generator=gen)
    s = nw.RaggedSynapses.from_coo(
        n_pre, n_post, pre, post, padding=1.5, weight=nw.Uniform(0.0, 0.2)
    ).to(device)
    rule = nw.STDP(a_plus=0.05, a_minus=0.04, w_max=0.2)
    for trial in range(5):
        z_pre = (torch.rand(n_pre, generator=gen) < 0.3).to(device)
        z_post = (torch.rand(n_post, generator=gen) < 0.3).to(device)
        x_pre = torch.rand(n_pre, generator=gen).to(device)
        x_post = torch.rand(n_post, generator=gen).to(device)
        w = s.vars["weight"]
        expected = stdp_reference(w, s.ind, s.live, z_pre, z_post, x_pre, x_post, rule)
        got = w.clone()
        stdp_depress_rows(
            got, s.ind, s.live, SpikeEvents.fixed(z_pre[None], 8 + trial), x_post, rule
        )
        stdp_potentiate_columns(
            got, s.padded_columns(), SpikeEvents.fixed(z_post[None], n_post), x_pre, rule
        )
        ev = SpikeEvents.fixed(z_pre[None], 8 + trial)
        if not bool(ev.overflow):
            assert torch.allclose(got, expected, atol=1e-7)
        else:  # budget too small: the reference differs and the overflow is flagged
            assert int(z_pre.sum()) > 8 + trial


def test_stdp_through_column_index_sees_rewired_structure(engine, device):
    """After removing 0->0 and adding 0->1, a post spike of 0 changes nothing, of 1 potentiates."""
    net, proj, inputs = pair_network([3], [(0, 8), (1, 8)], RULE, device, steps=12, n_post=2)
    s = proj.synapses
    s.remove(s.ind == 0)
    s.add(torch.tensor([0]), torch.tensor([1]), weight=0.1)  # on the CPU, before the Simulator
    assert s.nnz == 1
    nw.Simulator(net, device=device, engine=engine).run(12, inputs=inputs)
    assert s.contains([0, 0], [0, 1]).tolist() == [False, True]
    assert s.values("weight").item() == pytest.approx(0.1 + 0.02 * math.exp(-5 / 20))


def test_bad_stdp_parameters_raise():
    with pytest.raises(ValueError, match="w_min <= w_max"):
        nw.STDP(w_min=1.0, w_max=0.0)
    with pytest.raises(ValueError, match=">= 0"):
        nw.STDP(a_plus=-0.1)
    with pytest.raises(ValueError):
        nw.STDP(tau_plus=0.0)
