"""SharedFanInRewiring (Bamford et al. 2010) and the GaussianFanIn initial connectivity."""

import pytest
import torch

import neurowire as nw


def bamford_network(attempts=5, k=4, max_fan_in=8, p_dep=0.5):
    net = nw.Network(dt=1.0, seed=2)
    src = net.population("src", nw.PoissonSource(64, grid=(8, 8)))
    tgt = net.population("tgt", nw.LIF(64, grid=(8, 8)))
    ff = net.connect(src, tgt, nw.GaussianFanIn(k, 0.5, 2.0), weight=0.05, capacity=40, name="ff")
    lat = net.connect(tgt, tgt, nw.GaussianFanIn(k, 1.0, 1.0), weight=0.05, capacity=40, name="lat")
    rule = nw.SharedFanInRewiring(
        "lat",
        max_fan_in,
        (0.5, 1.0),
        (2.0, 1.0),
        p_dep,
        0.0,
        w_threshold=0.1,
        w_init=0.2,
        attempts=attempts,
    )
    net.add_rule(rule, ff, every=1, log_events=True)
    return net, ff, lat


def fan_in(ff, lat):
    return torch.bincount(ff.synapses.coo()[1], minlength=64) + torch.bincount(
        lat.synapses.coo()[1], minlength=64
    )


def test_gaussian_fan_in_gives_exactly_k_distinct_afferents():
    net, ff, lat = bamford_network()
    for proj in (ff, lat):
        pre, post = proj.synapses.coo()
        assert torch.equal(torch.bincount(post, minlength=64), torch.full((64,), 4))
        proj.synapses.validate()


def test_shared_fan_in_is_never_exceeded_and_both_projections_change(device):
    net, ff, lat = bamford_network(attempts=20)
    seen = []
    net.add_callback(lambda sim: seen.append(int(fan_in(ff, lat).max())), every=1)
    sim = nw.Simulator(net, device=device)  # the native engine on the CPU, torch on CUDA
    sim.run(60)
    assert max(seen) <= 8 and len(seen) == 60
    for name in ("ff", "lat"):
        totals = sim.rewiring_log.totals(name)
        assert totals["added"] > 0 and totals["removed"] > 0
    assert set(sim.rewiring_log.events("lat")["kind"].tolist()) == {-1, 1}


def test_full_targets_only_lose_synapses(device):
    net, ff, lat = bamford_network(attempts=30, k=4, max_fan_in=8, p_dep=0.0)
    sim = nw.Simulator(net, device=device)
    sim.run(5)
    # nothing is eliminated (p = 0), so every target fills up to 8 and no further
    assert torch.all(fan_in(ff, lat) <= 8)
    assert sim.rewiring_log.totals("ff")["removed"] == 0


def test_partner_must_share_the_postsynaptic_population(device):
    net = nw.Network()
    a = net.population("a", nw.PoissonSource(4, grid=(2, 2)))
    b = net.population("b", nw.LIF(4, grid=(2, 2)))
    c = net.population("c", nw.LIF(9, grid=(3, 3)))
    ab = net.connect(a, b, nw.AllToAll())
    net.connect(b, c, nw.AllToAll(), name="other")
    net.add_rule(nw.SharedFanInRewiring("other"), ab)
    with pytest.raises(ValueError, match="partner 'other'"):
        nw.Simulator(net, device=device).run(1)


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="two values"):
        nw.SharedFanInRewiring("lat", p_peak=(0.1,))
    with pytest.raises(ValueError, match="max_fan_in"):
        nw.SharedFanInRewiring("lat", max_fan_in=0)
    with pytest.raises(ValueError, match="k must be"):
        nw.GaussianFanIn(-1, 0.5, 1.0)
