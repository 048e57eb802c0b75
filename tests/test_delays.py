"""Synaptic delays: the step a spike reaches its target, in-flight spikes under rewiring, refusals,
and the engines' agreement."""

import pytest
import torch

import neurowire as nw


class RemoveAll(nw.StructuralRule):
    def update(self, s, ctx):
        s.remove(s.live)


class AddPair(nw.StructuralRule):
    def __init__(self, pre, post, weight):
        self.pre, self.post, self.weight = pre, post, weight

    def update(self, s, ctx):
        pre, post = torch.tensor([self.pre]), torch.tensor([self.post])
        s.add(pre, post, on_duplicate="skip", weight=self.weight)


def relay(engine, delay, spike_at=(2,), steps=16, dt=0.1, rule=None, every=5, initial=((0, 0),)):
    """Spike source (2 neurons) -> 2 LIF (Delta, tau_m 1e9 ms, unreachable threshold): ``v``
    sums what reached the postsynaptic model so far (decaying by 1e-10 per step). Source
    neuron 0 spikes in the steps ``spike_at``; each synapse has weight 0.5. Returns the
    recorded ``v [steps, 2]``."""
    net = nw.Network(dt=dt, seed=0, dtype=torch.float64)
    src = net.population("src", nw.SpikeSource(2))
    post = net.population("post", nw.LIF(2, tau_m=1e9, v_th=1e9))
    pre_idx = torch.tensor([p for p, _ in initial], dtype=torch.long)
    post_idx = torch.tensor([q for _, q in initial], dtype=torch.long)
    proj = net.connect(
        src,
        post,
        nw.FromArrays(pre_idx, post_idx),
        weight=torch.full((len(initial),), 0.5, dtype=torch.float64),
        capacity=2,
        delivery="rows",
        delay=delay,
    )
    if rule is not None:
        net.add_rule(rule, proj, every=every)
    spikes = torch.zeros(1, steps, 2, dtype=torch.bool)
    spikes[0, list(spike_at), 0] = True
    sim = nw.Simulator(net, engine=engine)
    return sim.run(steps, record={"post": ["v"]}, inputs={"src": spikes})["post"]["v"][0]


def first_change(v):
    """The first step whose ``v`` differs from 0 (neuron 0), or None."""
    hits = (v[:, 0] != 0).nonzero()
    return int(hits[0]) if hits.numel() else None


@pytest.mark.parametrize("steps", [1, 2, 3, 7, 10])
def test_a_spike_reaches_the_target_delay_steps_later(engine, steps):
    # A spike of step 2 with a delay of d steps of 0.1 ms enters the target's input in step
    # 2 + d (d = 1 is the one-step delivery without a delay). 0.3 / 0.1 is 2.9999999999999996:
    # delays are rounded to whole steps before they are checked.
    v = relay(engine, delay=steps * 0.1)
    assert first_change(v) == 2 + steps
    assert v[2 + steps, 0].item() == 0.5
    assert v[-1].tolist() == pytest.approx([0.5, 0.0])


def test_delay_of_one_step_is_the_default(engine):
    spike_at = (0, 1, 5, 6, 7)
    plain = relay(engine, delay=None, spike_at=spike_at)
    one = relay(engine, delay=0.1, spike_at=spike_at)
    assert torch.equal(plain, one)
    assert first_change(plain) == 1


def test_spikes_in_flight_pile_up_in_order(engine):
    # three spikes in consecutive steps, delay 4: 0.5 more in each of steps 6, 7 and 8
    v = relay(engine, delay=0.4, spike_at=(2, 3, 4))
    assert v[:, 0].tolist()[5:10] == pytest.approx([0.0, 0.5, 1.0, 1.5, 1.5])


def test_a_synapse_removed_while_its_spike_is_in_flight_still_transmits_it(engine):
    # Delay 5 steps; the rule removes every synapse after step 4 (every=5). The spike of step 2
    # was delivered in step 3 and arrives in step 7; the spike of step 4 would be delivered in
    # step 5, after the removal, so it never arrives (it would in step 9).
    v = relay(engine, delay=0.5, spike_at=(2, 4), rule=RemoveAll(), every=5)
    assert v[:, 0].tolist()[6:] == pytest.approx([0.0] + [0.5] * 9)
    kept = relay(engine, delay=0.5, spike_at=(2, 4))
    assert kept[:, 0].tolist()[6:] == pytest.approx([0.0, 0.5, 0.5] + [1.0] * 7)


def test_a_synapse_added_while_a_spike_is_in_flight_carries_only_later_spikes(engine):
    # No synapse at first; the rule adds 0 -> 1 after step 4. The spike of step 2 was delivered
    # (to nobody) in step 3; the one of step 4 is delivered in step 5 and arrives in step 9.
    v = relay(engine, delay=0.5, spike_at=(2, 4), rule=AddPair(0, 1, 0.5), initial=())
    assert v[:, 1].tolist() == pytest.approx([0.0] * 9 + [0.5] * 7)
    assert v[:, 0].abs().max() == 0


@pytest.mark.parametrize(
    "delay, match",
    [
        (0.15, r"whole number >= 1 of steps of dt=0.1 ms, got delay=0.15 ms \(1.5 steps\)"),
        (0.0, r"got delay=0.0 ms \(0 steps\)"),
        (-0.2, r"got delay=-0.2 ms"),
        (0.05, r"\(0.5 steps\)"),
        (float("nan"), r"delay must be a finite number"),
        ("1 ms", r"delay must be a number"),
        (True, r"delay must be a number"),
    ],
)
def test_a_delay_that_is_not_whole_steps_is_refused(delay, match):
    net = nw.Network(dt=0.1)
    a = net.population("a", nw.SpikeSource(2))
    b = net.population("b", nw.LIF(2))
    with pytest.raises(nw.checks.ParameterError, match=r"a->b: .*" + match):
        net.connect(a, b, nw.AllToAll(), delay=delay)
    assert not net.projections


def test_stdp_with_a_delay_is_refused_but_one_step_is_allowed():
    net = nw.Network(dt=1.0)
    a = net.population("a", nw.PoissonSource(2, rate_hz=10.0))
    b = net.population("b", nw.LIF(2))
    with pytest.raises(NotImplementedError, match=r"a->b: STDP with a delay of 2 steps"):
        net.connect(a, b, nw.AllToAll(), synapse=nw.STDP(), delay=2.0)
    proj = net.connect(a, b, nw.AllToAll(), synapse=nw.STDP(), delay=1.0)
    assert proj.delay_steps == 1


def test_eprop_refuses_a_delayed_projection():
    net = nw.Network(dt=1.0)
    inp = net.population("in", nw.SpikeSource(3))
    hid = net.population("hid", nw.LIF(4))
    out = net.population("out", nw.LeakyIntegrator(2))
    net.connect(inp, hid, nw.FixedProbability(0.5), weight=0.1, delay=3.0)
    net.connect(hid, out, nw.Dense(), weight=0.1)
    with pytest.raises(NotImplementedError, match=r"'in->hid' has a delay of 3 steps"):
        nw.EProp(net, output=out)


def test_delay_steps_are_shown_and_default_to_one():
    net = nw.Network(dt=0.5)
    a = net.population("a", nw.SpikeSource(2))
    b = net.population("b", nw.LIF(2))
    plain = net.connect(a, b, nw.AllToAll(), name="plain")
    dense = net.connect(a, b, nw.Dense(), delay=2.0, name="dense")
    assert plain.delay_steps == 1 and "delay" not in repr(plain)
    assert dense.delay_steps == 4 and repr(dense).endswith("delay_steps=4)")


def delayed_ei(seed=7):
    """NEST's iaf_psc_alpha E/I network in small: 40 E and 10 I neurons, each driven by its own
    Poisson train (PoissonGenerator, 12 kHz, OneToOne, delay 0.5 ms), recurrent synapses with
    delays of 1.0 ms (10 steps) and 0.2 ms, one projection of one step."""
    net = nw.Network(dt=0.1, seed=seed, dtype=torch.float64)
    exc = net.population("exc", nw.IafPsc(40, v_init=nw.Uniform(-70.0, -56.0)))
    inh = net.population("inh", nw.IafPsc(10, tau_m=8.0, t_ref=1.0))
    for pop in (exc, inh):
        drive = net.population(f"drive_{pop.name}", nw.PoissonGenerator(pop.n, rate_hz=12e3))
        net.connect(drive, pop, nw.OneToOne(), weight=60.0, psc=nw.Alpha(0.5), delay=0.5)
    net.connect(exc, exc, nw.FixedProbability(0.2), weight=80.0, psc=nw.Alpha(0.5), delay=1.0)
    net.connect(exc, inh, nw.FixedProbability(0.3), weight=80.0, psc=nw.Alpha(0.5), delay=0.2)
    net.connect(inh, exc, nw.FixedProbability(0.3), weight=-300.0, psc=nw.Alpha(0.5), delay=1.0)
    net.connect(inh, inh, nw.FixedProbability(0.2), weight=-300.0, psc=nw.Alpha(0.5))
    return net


RECORD = {"exc": ["spikes", "v"], "inh": ["spikes", "v"], "drive_exc": ["count"]}


def test_delayed_network_blocks_are_capturable_and_give_the_torch_results():
    from neurowire.graphs import GraphedBlock
    from neurowire.sim.runners import GraphRunner

    ref = nw.Simulator(delayed_ei(), engine="torch", block_steps=7).run(60, record=RECORD)
    sim = nw.Simulator(delayed_ei(), engine="torch", block_steps=7)
    sim.runner = GraphRunner(sim, GraphedBlock(sim.step_function.block, recorder=None))
    res = sim.run(60, record=RECORD)
    for pop, names in RECORD.items():
        for var in names:
            assert torch.equal(res[pop][var], ref[pop][var]), (pop, var)
    assert ref["exc"]["spikes"].sum() > 10 and ref["inh"]["spikes"].sum() > 5


@pytest.mark.parametrize("time_phases", [False, True])
def test_delayed_network_on_the_native_engine_equals_torch_bit_for_bit(time_phases):
    pytest.importorskip("numba")
    ref_sim = nw.Simulator(delayed_ei(), engine="torch")
    ref = ref_sim.run(400, record=RECORD)
    sim = nw.Simulator(delayed_ei(), engine="native", block_steps=150, time_phases=time_phases)
    res = sim.run(400, record=RECORD)
    for pop, names in RECORD.items():
        for var in names:
            assert torch.equal(res[pop][var], ref[pop][var]), (pop, var)
    for name, pending in ref_sim.state["pending"].items():  # the same state between blocks
        assert torch.equal(sim.state["pending"][name], pending), name
    delayed = {"drive_exc->exc", "drive_inh->inh", "exc->exc", "exc->inh", "inh->exc"}
    assert set(sim.state["pending"]) == delayed
    assert sim.engine == "native" and ref["exc"]["spikes"].sum() > 100


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("engine", ["torch", "graph"])
def test_delayed_network_on_cuda_equals_the_cpu(engine):
    ref = nw.Simulator(delayed_ei(), engine="torch").run(200, record=RECORD)
    res = nw.Simulator(delayed_ei(), device="cuda", engine=engine).run(200, record=RECORD)
    for pop, names in RECORD.items():
        for var in names:
            a, b = ref[pop][var], res[pop][var].cpu()
            if var == "v":
                assert torch.allclose(a, b, atol=1e-9), (pop, var)
            else:
                assert torch.equal(a, b), (pop, var)
