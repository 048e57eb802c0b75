"""A rule that raises leaves nothing half-done, in the Simulator and in EProp; rules cannot be
added once an engine holds the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import neurowire as nw
from neurowire.learning import Adam, EProp


class Boom(RuntimeError):
    pass


class HalfDone(nw.StructuralRule):
    """Removes synapses of its own and a partner projection, logs them, then raises on call
    ``fail_on`` (counting from 1)."""

    def __init__(self, partner: str, fail_on: int):
        self.partner, self.fail_on, self.calls = partner, fail_on, 0

    def update(self, s, ctx):
        self.calls += 1
        dev = s.live.device  # ctx.generator lives there too
        s.remove(s.live & (torch.rand(s.live.shape, generator=ctx.generator, device=dev) < 0.3))
        other = ctx.view(self.partner)
        draw = torch.rand(other.live.shape, generator=ctx.generator, device=dev)
        other.remove(other.live & (draw < 0.3))
        s.grow(per_row=torch.ones(s.store.n_pre, dtype=torch.int64, device=dev), weight=0.1)
        if self.calls == self.fail_on:
            raise Boom("rule failed half-way")


def snapshot(net, log):
    stores = {
        name: {
            k: v.clone() if torch.is_tensor(v) else v for k, v in p.synapses.state_dict().items()
        }
        for name, p in net.projections.items()
        if p.sparse
    }
    totals = {name: dict(log.totals(name)) for name in stores}
    events = {name: {k: v.copy() for k, v in log.events(name).items()} for name in stores}
    calls = {name: {k: v.copy() for k, v in log.calls(name).items()} for name in stores}
    return stores, totals, events, calls


def assert_same(before, after):
    for part_a, part_b in zip(before, after, strict=True):
        assert part_a.keys() == part_b.keys()
        for name in part_a:
            a, b = part_a[name], part_b[name]
            for key in a:
                if key in ("version", "values_version"):  # advance on restore: caches rebuild
                    continue
                x, y = a[key], b[key]
                if isinstance(x, dict):
                    assert x.keys() == y.keys()
                    for k in x:
                        assert torch.equal(x[k], y[k]), (name, key, k)
                elif torch.is_tensor(x):
                    assert torch.equal(x, y), (name, key)
                elif isinstance(x, np.ndarray):
                    assert np.array_equal(x, y, equal_nan=True), (name, key)
                else:
                    assert x == y, (name, key)


def sim_network():
    net = nw.Network(dt=1.0, seed=1)
    src = net.population("src", nw.SpikeSource(12))
    pop = net.population("pop", nw.LIF(10))
    net.connect(src, pop, nw.FixedProbability(0.5), weight=0.1, capacity=12)
    net.connect(pop, pop, nw.FixedProbability(0.3), weight=0.1, capacity=10)
    net.add_rule(HalfDone("pop->pop", fail_on=3), "src->pop", every=5, log_events=True)
    return net


@pytest.mark.parametrize("engine", ["torch", "native"])
def test_a_rule_raising_in_the_simulator_is_rolled_back(engine, device):
    if engine == "native":
        pytest.importorskip("numba")
    net = sim_network()
    sim = nw.Simulator(net, device=device, engine=engine)
    spikes = torch.rand(1, 40, 12, generator=torch.Generator().manual_seed(0)) < 0.2
    inputs = {"src": spikes.to(device)}
    sim.run(10, inputs=inputs)  # two calls succeed
    assert sim.rewiring_log.totals("src->pop")["removed"] > 0
    before = snapshot(net, sim.rewiring_log)
    with pytest.raises(Boom):
        sim.run(5, inputs=inputs)
    assert_same(before, snapshot(net, sim.rewiring_log))
    for p in net.projections.values():
        p.synapses.validate()


def test_a_rule_raising_in_eprop_is_rolled_back(device):
    net = nw.Network(dt=1.0, seed=2)
    inp = net.population("input", nw.SpikeSource(12))
    hid = net.population("hidden", nw.ALIF(10))
    out = net.population("output", nw.LeakyIntegrator(2))
    net.connect(inp, hid, nw.FixedProbability(0.5), weight=nw.Normal(0.2, 0.2), padding=2.0)
    net.connect(hid, hid, nw.FixedProbability(0.3), weight=nw.Normal(0, 0.2), padding=2.0)
    net.connect(hid, out, nw.Dense(), weight=nw.Normal(0, 0.3))
    rule = HalfDone("hidden->hidden", fail_on=2)
    engine = {} if device.type == "cpu" else {"engine": "torch"}  # as in tests/learning
    trainer = EProp(
        net,
        out,
        optimizer=Adam(lr=1e-3),
        rewiring={"input->hidden": rule},
        device=device,
        **engine,
    )
    gen = torch.Generator().manual_seed(1)
    x = (torch.rand(4, 30, 12, generator=gen) < 0.2).to(device)
    y = torch.randint(0, 2, (4,), generator=gen).to(device)
    trainer.train_step(x, y)
    before = snapshot(net, trainer.rewiring_log)
    weights = {n: p.synapses.vars["weight"].clone() for n, p in net.projections.items() if p.sparse}
    with pytest.raises(Boom):
        trainer.train_step(x, y)
    after = snapshot(net, trainer.rewiring_log)
    # the whole batch is undone: the optimiser step before the rule as well as its edits
    assert_same(before, after)
    for name, w in weights.items():
        assert torch.equal(w, net.projections[name].synapses.vars["weight"])
    assert trainer.step_count == trainer.optimizer.step_count == 1


def test_add_rule_after_a_simulator_is_built_raises():
    net = sim_network()
    nw.Simulator(net)
    with pytest.raises(RuntimeError, match="bound to a Simulator"):
        net.add_rule(HalfDone("pop->pop", 1), "src->pop")


@pytest.mark.parametrize("engine", ["torch", "native"])
def test_plastic_weights_are_written_in_place_on_every_engine(engine, device):
    if engine == "native":
        pytest.importorskip("numba")
    net = nw.Network(dt=1.0, seed=3)
    src = net.population("src", nw.PoissonSource(8, rate_hz=200.0))
    pop = net.population("pop", nw.LIF(6, v_th=0.05))
    net.connect(src, pop, nw.FixedProbability(0.6), weight=0.1, synapse=nw.STDP(), capacity=8)
    held = net.projections["src->pop"].synapses.vars["weight"]
    sim = nw.Simulator(net, device=device, engine=engine)
    if device.type == "cpu":
        assert net.projections["src->pop"].synapses.vars["weight"] is held  # nothing moved
    held = net.projections["src->pop"].synapses.vars["weight"]  # on ``device``
    before = held.clone()
    sim.run(200)
    assert net.projections["src->pop"].synapses.vars["weight"] is held
    assert not torch.equal(held, before)
    dense = net.projections["src->pop"].synapses.dense("weight")
    assert torch.equal(dense, net.projections["src->pop"].synapses.to_dense("weight"))
