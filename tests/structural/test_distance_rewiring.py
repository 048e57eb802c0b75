"""DistanceRewiring statistics (the test suite published with Knight et al. 2025)."""

import numpy as np
import pytest
import torch
from scipy import stats

import neurowire as nw
from neurowire.structural.distance import candidate_pairs


def grid_network(side, connectivity, weight, rule, device, engine="torch"):
    net = nw.Network(dt=1.0, seed=1)
    a = net.population("a", nw.PoissonSource(side * side, grid=(side, side)))
    b = net.population("b", nw.LIF(side * side, grid=(side, side)))
    proj = net.connect(a, b, connectivity, weight=weight, capacity=side * side)
    net.add_rule(rule, proj, every=1, log_events=True)
    return net, proj, nw.Simulator(net, device=device, engine=engine)


@pytest.mark.parametrize("engine", ["torch", "native"])
def test_elimination_with_probability_one_removes_exactly_the_attempts(engine, device):
    rule = nw.DistanceRewiring(
        1.0, 1.0, p_elim_dep=1.0, p_elim_pot=0.0, w_threshold=0.1, w_init=0.2, attempts=10
    )
    net, proj, sim = grid_network(2, nw.AllToAll(), 0.0, rule, device, engine)
    sim.run(1)
    assert proj.synapses.nnz == 16 - 10
    assert sim.rewiring_log.totals("a->b") == {"removed": 10, "added": 0, "failed": 0}


@pytest.mark.parametrize("weight, dep, pot", [(0.0, 0.5, 0.0), (0.2, 0.0, 0.5)])
def test_half_probability_removes_150_of_300(device, weight, dep, pot):
    rule = nw.DistanceRewiring(
        0.0, 1.0, p_elim_dep=dep, p_elim_pot=pot, w_threshold=0.1, w_init=0.2, attempts=300
    )
    net, proj, sim = grid_network(5, nw.AllToAll(), weight, rule, device)
    sim.run(1)
    removed = 625 - proj.synapses.nnz
    assert abs(removed - 150) <= 30


@pytest.mark.parametrize("engine", ["torch", "native"])
def test_formation_with_certain_probability_adds_exactly_the_attempts(engine, device):
    rule = nw.DistanceRewiring(
        1.0, 100.0, p_elim_dep=0.0, p_elim_pot=0.0, w_threshold=0.1, w_init=0.2, attempts=10
    )
    net, proj, sim = grid_network(2, nw.GaussianDistance(0.0, 1.0), 0.2, rule, device, engine)
    assert proj.synapses.nnz == 0
    sim.run(1)
    assert proj.synapses.nnz == 10
    assert torch.all(proj.synapses.values("weight") == 0.2)
    events = sim.rewiring_log.events("a->b")
    assert (events["kind"] == 1).sum() == 10 and np.all(events["t_ms"] == 1.0)


def test_full_rows_count_as_failures(device):
    rule = nw.DistanceRewiring(1.0, 100.0, 0.0, 0.0, 0.1, 0.2, attempts=16)
    net = nw.Network(dt=1.0)
    a = net.population("a", nw.PoissonSource(4, grid=(2, 2)))
    b = net.population("b", nw.LIF(4, grid=(2, 2)))
    proj = net.connect(a, b, nw.GaussianDistance(0.0, 1.0), capacity=2)
    net.add_rule(rule, proj, every=1)
    sim = nw.Simulator(net, device=device, engine="torch")
    sim.run(1)
    assert proj.synapses.nnz == 8
    assert sim.rewiring_log.totals("a->b") == {"removed": 0, "added": 8, "failed": 8}


def test_candidates_within_a_call_are_distinct_and_uniform(device):
    gen = np.random.default_rng(3)
    counts = np.zeros(20)
    for _ in range(200):
        u = torch.from_numpy(gen.random((3, 60))).to(device)
        u[0] = u[0] * 0.1  # crowd the attempts onto two rows of 20
        pre, post = candidate_pairs(u[0], u[1], 20, 20)
        assert post.device.type == device.type
        pre, post = pre.cpu(), post.cpu()
        pairs = set(zip(pre.tolist(), post.tolist(), strict=True))
        assert len(pairs) == 60
        assert bool(((post >= 0) & (post < 20)).all())
        np.add.at(counts, post.numpy(), 1)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_attempts_beyond_a_full_row_move_to_the_next_row(device):
    u = torch.zeros(3, 7, dtype=torch.float64, device=device)
    u[1] = torch.linspace(0, 0.99, 7, device=device)
    pre, post = candidate_pairs(u[0], u[1], 3, 4)
    assert pre.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert sorted(post[:4].tolist()) == [0, 1, 2, 3]
    assert len(set(post[4:].tolist())) == 3
    zeros = torch.zeros(20, dtype=torch.float64, device=device)
    pre, post = candidate_pairs(zeros, zeros, 3, 4)
    assert pre.numel() == 12  # every pair once, the rest dropped


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sigma": 0.0}, "sigma"),
        ({"p_elim_dep": -1.0}, "p_elim_dep"),
        ({"attempts": -3}, "attempts"),
        ({"w_init": float("nan")}, "w_init"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    args = dict(
        p_peak=0.1,
        sigma=1.0,
        p_elim_dep=1.0,
        p_elim_pot=0.0,
        w_threshold=0.1,
        w_init=0.2,
        attempts=5,
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        nw.DistanceRewiring(**args)


def test_rule_needs_grids(device):
    net = nw.Network()
    a = net.population("a", nw.PoissonSource(4))
    b = net.population("b", nw.LIF(4))
    proj = net.connect(a, b, nw.AllToAll())
    net.add_rule(nw.DistanceRewiring(1.0, 1.0, 1.0, 1.0, 0.1, 0.2, 3), proj)
    with pytest.raises(ValueError, match="no grid"):
        nw.Simulator(net, device=device, engine="torch").run(1)
