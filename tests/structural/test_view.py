"""What a rule sees (SynapseView, RuleContext) and what the simulator logs of each call."""

import numpy as np
import pytest
import torch

import neurowire as nw
from neurowire.store import StoreError


class Inspect(nw.StructuralRule):
    def __init__(self):
        self.seen = []

    def setup(self, s, ctx):
        s.store.add_var("age", dtype=torch.int32)

    def update(self, s, ctx):
        self.seen.append(
            {
                "step": ctx.step,
                "t": ctx.t,
                "dt": ctx.dt,
                "projection": ctx.projection,
                "live": s.live.clone(),
                "pre": s.pre.clone(),
                "post": s.post.clone(),
                "weight": s["weight"].clone(),
                "age": s["age"].clone(),
                "pre_state": {k: v.clone() for k, v in s.pre_state.items()},
                "post_state": {k: v.clone() for k, v in s.post_state.items()},
                "distance": s.distance.clone(),
                "pre_pos": s.pre_pos,
                "post_pos": s.post_pos,
                "gen_device": ctx.generator.device,
                "draw": torch.rand(1, generator=ctx.generator, device=ctx.generator.device),
            }
        )
        s.store.vars["age"][s.live] += 1


def grid_net(seed=0):
    net = nw.Network(dt=0.5, seed=seed)
    a = net.population("a", nw.PoissonSource(9, rate_hz=200.0, grid=(3, 3)))
    b = net.population("b", nw.LIF(9, v_th=0.1, grid=(3, 3)))
    proj = net.connect(a, b, nw.FixedProbability(0.5), weight=nw.Uniform(0.0, 0.5))
    return net, proj


def test_view_exposes_structure_state_geometry_and_context(device):
    net, proj = grid_net()
    rule = Inspect()
    net.add_rule(rule, proj, every=4)
    sim = nw.Simulator(net, device=device, engine="torch")
    sim.run(8)
    first, second = rule.seen
    s = proj.synapses
    assert (first["step"], first["t"], first["dt"]) == (4, 2.0, 0.5)
    assert second["step"] == 8 and first["projection"] == "a->b"
    assert first["gen_device"].type == s.live.device.type == device.type
    assert torch.equal(first["live"], s.live) and torch.equal(first["post"], s.ind)
    assert torch.equal(first["pre"][:, 0], torch.arange(9, device=device))
    assert set(first["pre_state"]) == {"rate_hz", "z"}
    assert set(first["post_state"]) == {"v", "r", "z"}
    assert first["post_state"]["v"].shape == (1, 9)
    assert torch.equal(first["pre_pos"][4], torch.tensor([1.0, 1.0], device=device))
    live = s.live
    pre, post = s.coo()
    grid = nw.Grid(3, 3)
    assert torch.allclose(first["distance"][live], grid.distance(pre, post))
    # the rule's own variable moved with the store and aged once per call
    assert torch.all(s.values("age") == 2)
    assert first["draw"] != second["draw"]


def test_counts_and_events_are_logged_per_call(device):
    class RemoveOneAddTwo(nw.StructuralRule):
        def update(self, s, ctx):
            mask = torch.zeros_like(s.live)
            row = int(s.row_length.argmax())
            mask[row, 0] = True
            s.remove(mask)
            per_row = torch.zeros(s.n_pre, dtype=torch.int64, device=s.live.device)
            per_row[1] = 2
            s.grow(per_row=per_row, weight=0.3)

    net, proj = grid_net()
    net.add_rule(RemoveOneAddTwo(), proj, every=5, log_events=True)
    sim = nw.Simulator(net, device=device, engine="torch")
    before = proj.synapses.nnz
    sim.run(10)
    calls = sim.rewiring_log.calls("a->b")
    assert calls["step"].tolist() == [5, 10]
    assert calls["t_ms"].tolist() == [2.5, 5.0]
    assert calls["removed"].tolist() == [1, 1]
    added = calls["added"].sum()
    assert proj.synapses.nnz == before - 2 + added
    events = sim.rewiring_log.events("a->b")
    assert (events["kind"] == -1).sum() == 2 and (events["kind"] == 1).sum() == added
    assert np.all(np.diff(events["t_ms"]) >= 0)
    assert np.all(events["pre"][events["kind"] == 1] == 1)
    assert calls["failed"].sum() + added == 4  # two requested per call


def test_grow_beyond_capacity_counts_failures(device):
    class GrowMany(nw.StructuralRule):
        def update(self, s, ctx):
            s.grow(per_row=torch.full((s.n_pre,), 100, device=s.live.device), weight=0.1)

    net = nw.Network()
    a = net.population("a", nw.PoissonSource(4))
    b = net.population("b", nw.LIF(6))
    proj = net.connect(a, b, nw.FixedNumberPost(1), capacity=3)
    net.add_rule(GrowMany(), proj, every=1)
    sim = nw.Simulator(net, device=device)  # the native engine on the CPU, torch on CUDA
    sim.run(1)
    assert sim.rewiring_log.totals("a->b") == {"removed": 0, "added": 8, "failed": 392}
    assert torch.equal(proj.synapses.row_length.cpu(), torch.full((4,), 3))


def test_rules_on_dense_projections_and_non_rules_are_rejected():
    net = nw.Network()
    a = net.population("a", nw.PoissonSource(2))
    b = net.population("b", nw.LIF(2))
    dense = net.connect(a, b, nw.Dense())
    with pytest.raises(ValueError, match="dense"):
        net.add_rule(Inspect(), dense)
    sparse = net.connect(a, b, nw.AllToAll(), name="sparse")
    with pytest.raises(TypeError, match="StructuralRule"):
        net.add_rule(lambda s, c: None, sparse)
    with pytest.raises(ValueError, match="every"):
        net.add_rule(Inspect(), sparse, every=0)
    with pytest.raises(ValueError, match="unknown projection"):
        net.add_rule(Inspect(), "nope")


def test_a_rule_writing_the_structure_behind_the_store_is_caught(device):
    class Scribble(nw.StructuralRule):
        def update(self, s, ctx):
            s.row_length[0] = 0  # not through remove(): the caches would go stale

    net, proj = grid_net()
    net.add_rule(Scribble(), proj, every=2)
    sim = nw.Simulator(net, device=device, engine="torch")
    with pytest.raises(StoreError, match=r"'a->b'.*written outside `with store\.mutation"):
        sim.run(4)


def test_a_rule_may_edit_the_structure_inside_a_mutation(device):
    class ClearRowZero(nw.StructuralRule):
        def update(self, s, ctx):
            with s.store.mutation():
                s.row_length[0] = 0

    net, proj = grid_net()
    net.add_rule(ClearRowZero(), proj, every=2)
    sim = nw.Simulator(net, device=device, engine="torch")
    sim.run(4)
    assert proj.synapses.row_length[0] == 0 and not proj.synapses.live[0].any()
    assert 0 not in proj.synapses.coo()[0].tolist()
    proj.synapses.validate()
