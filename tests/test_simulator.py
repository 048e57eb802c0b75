"""Step semantics, delivery strategies, blocks, recording and errors of the Simulator."""

import math
import time

import pytest
import torch

import neurowire as nw
from neurowire.events import SpikeEvents
from neurowire.propagate import (
    csc_matrix,
    deliver_all_slots,
    deliver_csr,
    deliver_matmul,
    deliver_rows,
)
from neurowire.sim.runners import NativeRunner, TorchRunner


class AddPair(nw.StructuralRule):
    def __init__(self, pre, post, weight):
        self.pre, self.post, self.weight = pre, post, weight

    def update(self, s, ctx):
        s.add(
            torch.tensor([self.pre]),
            torch.tensor([self.post]),
            on_duplicate="skip",
            weight=self.weight,
        )


class RemoveAll(nw.StructuralRule):
    def update(self, s, ctx):
        s.remove(s.live)


def relay(engine, device, rule=None, initial=(), steps=10, spike_at=4, every=5, capacity=2):
    """Spike source -> 2 LIF (Delta, huge threshold) so v shows what was delivered; returns the
    recorded ``v [steps, 2]`` (on the CPU) of a run on ``engine`` and ``device``."""
    net = nw.Network(dt=1.0, seed=0, dtype=torch.float64)
    src = net.population("src", nw.SpikeSource(1))
    post = net.population("post", nw.LIF(2, tau_m=1e9, v_th=1e9))
    pre_idx = torch.tensor([p for p, _ in initial], dtype=torch.long)
    post_idx = torch.tensor([q for _, q in initial], dtype=torch.long)
    proj = net.connect(
        src,
        post,
        nw.FromArrays(pre_idx, post_idx),
        weight=torch.full((len(initial),), 0.5, dtype=torch.float64),
        capacity=capacity,
        delivery="rows",
    )
    if rule is not None:
        net.add_rule(rule, proj, every=every)
    spikes = torch.zeros(1, steps, 1, dtype=torch.bool, device=device)
    spikes[0, spike_at, 0] = True
    sim = nw.Simulator(net, device=device, engine=engine)
    v = sim.run(steps, record={"post": ["v"]}, inputs={"src": spikes})
    return v["post"]["v"][0].cpu()


def test_synapse_added_before_delivery_delivers(engine, device):
    # the spike is emitted in step 4; the rule runs after step 4; delivery is in step 5
    v = relay(engine, device, AddPair(0, 1, 0.7))
    assert v[5].tolist() == pytest.approx([0.0, 0.7])
    assert v[:5].abs().max() == 0


def test_synapse_removed_before_delivery_delivers_nothing(engine, device):
    v = relay(engine, device, RemoveAll(), initial=[(0, 0), (0, 1)])
    assert v.abs().max() == 0
    v = relay(engine, device, None, initial=[(0, 0), (0, 1)])
    assert v[5].tolist() == pytest.approx([0.5, 0.5])


def test_spike_emitted_after_removal_step_is_not_delivered_but_earlier_one_is(engine, device):
    v = relay(engine, device, RemoveAll(), initial=[(0, 0)], spike_at=3)
    assert v[4, 0].item() == pytest.approx(0.5)


def random_store(n_pre, n_post, p, seed, device):
    """A random store drawn on the CPU (the same synapses for every device), moved to
    ``device``."""
    gen = torch.Generator().manual_seed(seed)
    pre, post = nw.FixedProbability(p).build(n_pre, n_post, generator=gen)
    store = nw.RaggedSynapses.from_coo(
        n_pre, n_post, pre, post, padding=1.5, weight=nw.Normal(0.0, 1.0)
    )
    return store.to(device)


@pytest.mark.parametrize("strategy", ["dense", "rows", "slots", "csr"])
def test_delivery_strategy_matches_reference(strategy, device):
    s = random_store(300, 200, 0.05, seed=1, device=device)
    gen = torch.Generator().manual_seed(2)
    z = (torch.rand(3, 300, generator=gen) < 0.1).to(device)
    reference = z.double() @ s.to_dense("weight").double()
    w = s.vars["weight"]
    if strategy == "dense":
        out = deliver_matmul(z, s.to_dense("weight"))
    elif strategy == "slots":
        out = deliver_all_slots(z, s.ind, w, s.live, 200)
    elif strategy == "rows":
        out = deliver_rows(SpikeEvents.fixed(z, 900), s.ind, w, s.live, 3, 200)
    else:
        cols = s.columns()
        out = deliver_csr(z, csc_matrix(cols.indptr, cols.pre, cols.slot, w, 300))
    assert out.device.type == device.type
    assert torch.allclose(out.double(), reference, atol=1e-5)  # float32 weights, float64 sum


def test_fixed_events_flag_overflow_and_pad(device):
    z = torch.tensor([[True, False, True], [True, True, False]], device=device)
    ev = SpikeEvents.fixed(z, 3)
    assert bool(ev.overflow)
    assert ev.valid.tolist() == [True, True, True]
    ev = SpikeEvents.fixed(z, 6)
    assert not bool(ev.overflow)
    assert ev.valid.tolist() == [True, True, True, True, False, False]
    assert ev.row[:4].tolist() == [0, 0, 1, 1] and ev.pre[:4].tolist() == [0, 2, 0, 1]


def bursting_network(delivery="rows"):
    net = nw.Network(dt=1.0, seed=4, dtype=torch.float64)
    src = net.population("src", nw.PoissonSource(200, rate_hz=300.0))
    hid = net.population("hid", nw.LIF(100, tau_m=10.0, v_th=0.5, tau_refrac=2.0))
    net.connect(src, hid, nw.FixedProbability(0.1), weight=nw.Uniform(0.0, 0.2), delivery=delivery)
    net.connect(
        hid,
        hid,
        nw.FixedProbability(0.1),
        weight=nw.Normal(0.0, 0.1),
        delivery=delivery,
        synapse=nw.STDP(w_min=-1.0, w_max=1.0),
    )
    return net


def test_event_budget_overflow_repeats_block_with_the_same_result(device):
    small = nw.Simulator(bursting_network(), device=device, engine="torch", event_fraction=0.01)
    big = nw.Simulator(bursting_network(), device=device, engine="torch", event_fraction=1.0)
    a = small.run(60, record={"hid": ["spikes", "v"]})["hid"]
    b = big.run(60, record={"hid": ["spikes", "v"]})["hid"]
    assert small.step_function.budgets["src"] > 16  # it grew
    assert torch.equal(a["spikes"], b["spikes"])
    assert torch.allclose(a["v"], b["v"])


@pytest.mark.parametrize("delivery", ["slots", "csr", "auto"])
def test_strategies_give_identical_simulations(delivery, device):
    ref = nw.Simulator(bursting_network("rows"), device=device, engine="torch")
    out = nw.Simulator(bursting_network(delivery), device=device, engine="torch")
    ref = ref.run(40, record={"hid": ["v"]})["hid"]["v"]
    out = out.run(40, record={"hid": ["v"]})["hid"]["v"]
    assert torch.allclose(ref, out, atol=1e-10)


def test_same_seed_same_run_and_runs_continue(engine, device):
    net_a, net_b = bursting_network(), bursting_network()
    sim_a = nw.Simulator(net_a, device=device, seed=9, engine=engine)
    whole = sim_a.run(50, record={"hid": ["spikes"]})["hid"]["spikes"]
    sim_b = nw.Simulator(net_b, device=device, seed=9, engine=engine)
    first = sim_b.run(20, record={"hid": ["spikes"]})["hid"]["spikes"]
    second = sim_b.run(30, record={"hid": ["spikes"]})["hid"]["spikes"]
    assert torch.equal(whole, torch.cat([first, second], dim=1))
    assert sim_b.t == 50.0
    assert torch.equal(
        net_a.projections["hid->hid"].synapses.vars["weight"],
        net_b.projections["hid->hid"].synapses.vars["weight"],
    )


def test_batch_elements_are_independent(engine, device, generator):
    net = nw.Network(dt=1.0, seed=1)
    src = net.population("src", nw.SpikeSource(5))
    hid = net.population("hid", nw.LIF(3, v_th=0.3))
    net.connect(src, hid, nw.AllToAll(), weight=0.2)
    x = torch.rand(4, 30, 5, generator=generator, device=device) < 0.3
    batched = nw.Simulator(net, device=device, batch_size=4, engine=engine)
    batched = batched.run(30, record={"hid": ["v"]}, inputs={"src": x})["hid"]["v"]
    single = nw.Simulator(net, device=device, batch_size=1, engine=engine)
    single = single.run(30, record={"hid": ["v"]}, inputs={"src": x[2:3]})["hid"]["v"]
    assert torch.allclose(batched[2], single[0])


#: phases 1-4, timed inside ``steps`` (with ``time_phases``)
PHASES = ("delivery", "postsynaptic", "neurons", "plasticity")
#: the parts of a run that exclude each other
PARTS = ("steps", "rules", "callbacks", "recording", "inputs", "index_rebuild", "compile")


class SlowRemoveAll(RemoveAll):
    """Removes every synapse, taking at least 20 ms per call."""

    def update(self, s, ctx):
        time.sleep(0.02)
        super().update(s, ctx)


def test_result_has_timers_records_and_real_time_factor(engine, device):
    net = bursting_network()
    net.add_rule(SlowRemoveAll(), "hid->hid", every=25)
    sim = nw.Simulator(net, device=device, time_phases=True, engine=engine)
    silent = sim.run(0)
    assert all(v == 0.0 for v in silent.timers_s.values()) and math.isnan(silent.real_time_factor)
    tic = time.perf_counter()
    result = sim.run(50, record={"hid": ["spikes", "v"], "src": "spikes"}, progress=True)
    wall = time.perf_counter() - tic
    assert result["hid"]["spikes"].shape == (1, 50, 100)
    assert result["hid"]["spikes"].dtype == torch.bool
    assert result["src"]["spikes"].shape == (1, 50, 200)
    timers = result.timers_s
    assert set(PHASES + PARTS) - {"compile"} <= set(timers)
    assert min(timers.values()) >= 0
    assert sum(timers[p] for p in PHASES) <= timers["steps"]  # the phases are inside the steps
    assert sum(timers.get(k, 0.0) for k in PARTS) <= result.wall_s <= wall
    assert timers["rules"] >= 0.04  # two calls of the slow rule, timed as rules
    assert result.real_time_factor == result.wall_s / (50 * 1.0 / 1000)
    assert sim.rewiring_log.calls("hid->hid")["step"].tolist() == [25, 50]


def test_the_engine_is_resolved_once_into_a_block_runner(engine, device):
    sim = nw.Simulator(bursting_network(), device=device, engine=engine)
    assert sim.engine == sim.runner.name == engine
    expected = {"torch": TorchRunner, "native": NativeRunner}[engine]
    assert type(sim.runner) is expected
    assert sim.step_function.strategies["hid->hid"] in ("rows", "slots", "csr", "dense")
    with pytest.raises(ValueError, match="engine must be one of"):
        nw.Simulator(bursting_network(), device=device, engine="eager")


def test_callbacks_run_after_their_step(engine, device):
    net = nw.Network(dt=1.0)
    net.population("p", nw.PoissonSource(3))
    seen = []
    net.add_callback(lambda sim: seen.append(sim.step_count), every=7)
    nw.Simulator(net, device=device, engine=engine).run(21)
    assert seen == [7, 14, 21]


def test_bad_run_arguments_raise(engine, device):
    net = nw.Network()
    net.population("src", nw.SpikeSource(3))
    net.population("hid", nw.LIF(2))
    sim = nw.Simulator(net, device=device, engine=engine)
    with pytest.raises(ValueError, match="needs inputs"):
        sim.run(5)
    with pytest.raises(ValueError, match="must have shape"):
        sim.run(5, inputs={"src": torch.zeros(1, 5, 4, dtype=torch.bool)})
    with pytest.raises(ValueError, match="must have shape"):
        sim.run(5, inputs={"src": torch.zeros(1, 4, 3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="0/1"):
        sim.run(5, inputs={"src": torch.full((1, 5, 3), 0.5)})
    with pytest.raises(ValueError, match="cannot record 'u'"):
        sim.run(5, record={"hid": ["u"]}, inputs={"src": torch.zeros(1, 5, 3)})
    with pytest.raises(ValueError, match="unknown population"):
        sim.run(5, record={"nope": ["v"]}, inputs={"src": torch.zeros(1, 5, 3)})
    with pytest.raises(ValueError, match="not a SpikeSource"):
        sim.run(5, inputs={"src": torch.zeros(1, 5, 3), "hid": torch.zeros(1, 5, 2)})
    with pytest.raises(ValueError, match="steps"):
        sim.run(-1)
    with pytest.raises(ValueError, match="batch_size"):
        nw.Simulator(net, device=device, batch_size=0, engine=engine)


def test_unsupported_configurations_raise(engine, device):
    net = bursting_network()
    with pytest.raises(NotImplementedError, match="batch_size > 1"):
        nw.Simulator(net, device=device, batch_size=2, engine=engine)
    net = nw.Network()
    a = net.population("a", nw.PoissonSource(3))
    b = net.population("b", nw.LIF(3))
    net.connect(a, b, nw.AllToAll(), synapse=nw.STDP(), delivery="dense")
    with pytest.raises(ValueError, match="needs static weights"):
        nw.Simulator(net, device=device, engine=engine)


def test_block_length_does_not_change_the_simulation(engine, device):
    """Blocks are an implementation detail: one step per block, 7 or the default give the same
    spikes, potentials and plastic weights."""
    runs = []
    for block_steps in (1, 7, None):
        net = bursting_network()
        sim = nw.Simulator(net, device=device, engine=engine, block_steps=block_steps, seed=3)
        rec = sim.run(30, record={"hid": ["spikes", "v"]})["hid"]
        runs.append((rec, net.projections["hid->hid"].synapses.values("weight")))
    (ref, w_ref), *others = runs
    assert ref["spikes"].any()
    for rec, w in others:
        assert torch.equal(rec["spikes"], ref["spikes"])
        assert torch.allclose(rec["v"], ref["v"], atol=1e-12)
        assert torch.allclose(w, w_ref, atol=1e-12)


class RemoveFirstSlots(nw.StructuralRule):
    """Removes the first synapse of every row (deterministic, leaves the rest plastic)."""

    def update(self, s, ctx):
        s.remove(s.live & (torch.arange(s.capacity, device=s.live.device) == 0))


def test_compiled_blocks_equal_torch_reference(device):
    """The quick tier's one torch-vs-compile check, kept small: compiling costs ~20 s of fixed
    overhead on a CPU (cold cache) and grows with the block length, which the rule sets to 2.
    Sparse STDP projections, a structural rule between blocks, three compiled blocks, both
    engines on ``device``."""
    nets = {"torch": bursting_network(), "compile": bursting_network()}
    results = {}
    for engine, net in nets.items():
        net.add_rule(RemoveFirstSlots(), "hid->hid", every=2)
        # event_fraction=1: budgets never overflow, so the block compiles once
        sim = nw.Simulator(net, device=device, engine=engine, event_fraction=1.0)
        assert sim.block_steps == 2
        results[engine] = sim.run(6, record={"hid": ["spikes", "v"]})["hid"]
    a, b = results["torch"], results["compile"]
    assert a["spikes"].any()
    assert torch.equal(a["spikes"], b["spikes"])
    assert torch.allclose(a["v"], b["v"], atol=1e-9)
    for name in ("src->hid", "hid->hid"):
        sa, sb = (nets[e].projections[name].synapses for e in ("torch", "compile"))
        assert torch.equal(sa.row_length, sb.row_length) and torch.equal(sa.ind, sb.ind)
        assert torch.allclose(sa.values("weight"), sb.values("weight"), atol=1e-12)
    unpruned = bursting_network().projections["hid->hid"].synapses.nnz
    assert nets["torch"].projections["hid->hid"].synapses.nnz < unpruned  # the rule ran


@pytest.mark.slow
def test_compiled_blocks_equal_torch_reference_long(device):
    """The long version: 30-step blocks, growing event budgets (recompiles), a rule that empties
    the recurrent projection (minutes of compiling on a CPU)."""
    torch_net, compiled_net = bursting_network(), bursting_network()
    for net in (torch_net, compiled_net):
        net.add_rule(RemoveAll(), "hid->hid", every=30)
    torch_sim = nw.Simulator(torch_net, device=device, block_steps=10, engine="torch")
    compiled = nw.Simulator(compiled_net, device=device, block_steps=10, engine="compile")
    a = torch_sim.run(60, record={"hid": ["spikes", "v"]})["hid"]
    b = compiled.run(60, record={"hid": ["spikes", "v"]})["hid"]
    assert torch.equal(a["spikes"], b["spikes"])
    assert torch.allclose(a["v"], b["v"], atol=1e-9)


def test_decaying_traces_are_flushed_to_zero_not_denormal(engine):
    """A trace e^(-t/20ms) from one spike leaves float32's normal range after ~1750 steps of
    1 ms and would stay denormal until ~2060; flushed, it is exactly 0 by step 1900."""
    net = nw.Network(dt=1.0, dtype=torch.float32)
    pre = net.population("pre", nw.SpikeSource(1))
    post = net.population("post", nw.SpikeSource(1))
    net.connect(pre, post, nw.AllToAll(), weight=0.1, synapse=nw.STDP())
    spikes = torch.zeros(1, 1900, 1, dtype=torch.bool)
    spikes[0, 0, 0] = True
    sim = nw.Simulator(net, engine=engine)
    sim.run(1900, inputs={"pre": spikes, "post": torch.zeros_like(spikes)})
    x_pre, _ = sim.state["traces"]["pre->post"]
    assert x_pre.item() == 0.0
