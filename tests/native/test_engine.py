"""The native (numba) engine reproduces the PyTorch reference engine."""

import time
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import neurowire as nw
from neurowire.codegen import maximum, spike, where

pytest.importorskip("numba")


class PruneAndRegrow(nw.StructuralRule):
    def update(self, s, ctx):
        removed = s.remove((s["weight"].abs() < 0.02) & s.live)
        s.grow(per_row=removed, weight=0.05)


def eprop_style(batch=1):
    net = nw.Network(dt=1.0, seed=3, dtype=torch.float64)
    src = net.population("src", nw.SpikeSource(40))
    lif = net.population("lif", nw.LIF(30, tau_m=15.0, v_th=0.5, tau_refrac=2.0))
    alif = net.population("alif", nw.ALIF(20, tau_a=200.0, beta=0.1, v_th=0.4))
    out = net.population("out", nw.LeakyIntegrator(3, tau=10.0, bias=nw.Normal(0.0, 0.1)))
    net.connect(src, lif, nw.FixedProbability(0.3), weight=nw.Normal(0.1, 0.2))
    net.connect(src, alif, nw.Dense(), weight=nw.Normal(0.05, 0.2))
    net.connect(
        lif, alif, nw.FixedProbability(0.2), weight=nw.Normal(0.0, 0.3), psc=nw.ExpCurr(3.0)
    )
    net.connect(alif, lif, nw.FixedProbability(0.2), weight=nw.Normal(0.0, 0.3))
    net.connect(lif, lif, nw.FixedProbability(0.1), weight=nw.Normal(0.0, 0.2))
    net.connect(alif, out, nw.Dense(), weight=nw.Normal(0.0, 0.5))
    gen = torch.Generator().manual_seed(0)
    inputs = {"src": torch.rand(batch, 120, 40, generator=gen) < 0.1}
    return net, inputs


def topographic(dtype=torch.float64, rule=True):
    net = nw.Network(dt=0.5, seed=5, dtype=dtype)
    src = net.population("src", nw.PoissonSource(64, rate_hz=80.0, grid=(8, 8)))
    tgt = net.population("tgt", nw.LIF.biophysical(64, grid=(8, 8), v_init=nw.Normal(-60, 5)))
    stdp = nw.STDP(a_plus=0.02, a_minus=0.0075, w_max=0.2)
    ff = net.connect(
        src,
        tgt,
        nw.GaussianDistance(0.5, 2.0),
        weight=0.2,
        synapse=stdp,
        psc=nw.ExpCond(5.0, 0.0),
        capacity=40,
    )
    lat = net.connect(
        tgt,
        tgt,
        nw.GaussianDistance(1.0, 1.0),
        weight=0.2,
        synapse=stdp,
        psc=nw.ExpCond(5.0, 0.0),
        capacity=40,
    )
    if rule:
        net.add_rule(nw.DistanceRewiring(0.5, 2.0, 1.0, 0.01, 0.1, 0.2, attempts=20), ff, every=4)
        net.add_rule(PruneAndRegrow(), lat, every=6)
    return net, {}


def simulate(build, engine, steps, record, **kwargs):
    net, inputs = build(**kwargs)
    sim = nw.Simulator(
        net, engine=engine, batch_size=next(iter(inputs.values())).shape[0] if inputs else 1
    )
    result = sim.run(steps, record=record, inputs=inputs)
    stores = {name: p.synapses.state_dict() for name, p in net.projections.items() if p.sparse}
    return result, stores, sim


def test_eprop_style_network_matches_reference():
    record = {"lif": ["spikes", "v"], "alif": ["spikes", "v", "a"], "out": ["y"]}
    ref, _, _ = simulate(eprop_style, "torch", 120, record)
    nat, _, sim = simulate(eprop_style, "native", 120, record)
    assert sim.engine == "native"
    for pop, names in record.items():
        for var in names:
            a, b = ref[pop][var], nat[pop][var]
            if var == "spikes":
                assert torch.equal(a, b), pop
            else:
                assert torch.allclose(a, b, atol=1e-10), (pop, var)
    assert ref["lif"]["spikes"].any() and ref["alif"]["spikes"].any()


def test_batched_network_matches_reference():
    record = {"lif": ["spikes", "v"], "out": ["y"]}
    ref, _, _ = simulate(eprop_style, "torch", 120, record, batch=3)
    nat, _, _ = simulate(eprop_style, "native", 120, record, batch=3)
    assert torch.equal(ref["lif"]["spikes"], nat["lif"]["spikes"])
    assert torch.allclose(ref["out"]["y"], nat["out"]["y"], atol=1e-10)


def test_stdp_and_rewiring_network_matches_reference():
    record = {"tgt": ["spikes", "v"], "src": ["spikes"]}
    ref, ref_stores, ref_sim = simulate(topographic, "torch", 400, record)
    nat, nat_stores, nat_sim = simulate(topographic, "native", 400, record)
    assert torch.equal(ref["src"]["spikes"], nat["src"]["spikes"])
    assert torch.equal(ref["tgt"]["spikes"], nat["tgt"]["spikes"])
    assert torch.allclose(ref["tgt"]["v"], nat["tgt"]["v"], atol=1e-9)
    for name in ref_stores:
        a, b = ref_stores[name], nat_stores[name]
        assert torch.equal(a["row_length"], b["row_length"])
        assert torch.equal(a["ind"], b["ind"])
        assert torch.allclose(a["vars"]["weight"], b["vars"]["weight"], atol=1e-12)
    totals = nat_sim.rewiring_log.totals("src->tgt")
    assert totals["added"] > 0 and totals["removed"] > 0
    assert ref_sim.rewiring_log.totals("src->tgt") == totals


def test_float32_network_stays_close_to_reference():
    record = {"tgt": ["spikes"]}
    ref, _, _ = simulate(topographic, "torch", 200, record, dtype=torch.float32, rule=False)
    nat, _, _ = simulate(topographic, "native", 200, record, dtype=torch.float32, rule=False)
    mismatch = (ref["tgt"]["spikes"] != nat["tgt"]["spikes"]).float().mean().item()
    assert mismatch < 0.01


def nest_balanced(batch=1):
    """NEST's iaf_psc_alpha (``IafPsc`` + ``Alpha``): an excitatory and an inhibitory
    population with their own synaptic time constants, driven by Poisson input."""
    net = nw.Network(dt=0.1, seed=11, dtype=torch.float64)
    drive = net.population("drive", nw.PoissonSource(20, rate_hz=500.0))
    exc = net.population("exc", nw.IafPsc(40, v_init=nw.Uniform(-70.0, -56.0)))
    inh = net.population("inh", nw.IafPsc(10, tau_m=8.0, t_ref=1.0, i_e=50.0))
    net.connect(drive, exc, nw.AllToAll(), weight=10.0, psc=nw.Alpha(2.0))
    net.connect(drive, inh, nw.AllToAll(), weight=10.0, psc=nw.Alpha(2.0))
    for src, tau, w in ((exc, 2.0, 120.0), (inh, 0.5, -400.0)):
        for tgt in (exc, inh):
            net.connect(src, tgt, nw.FixedProbability(0.2), weight=w, psc=nw.Alpha(tau))
    return net, {}


def test_iaf_psc_alpha_network_matches_reference():
    record = {"exc": ["spikes", "v"], "inh": ["spikes", "v"]}
    ref, _, _ = simulate(nest_balanced, "torch", 600, record)
    nat, _, sim = simulate(nest_balanced, "native", 600, record)
    assert sim.engine == "native"
    for pop in record:
        assert torch.equal(ref[pop]["spikes"], nat[pop]["spikes"]), pop
        assert torch.allclose(ref[pop]["v"], nat[pop]["v"], atol=1e-9), pop
        assert ref[pop]["spikes"].sum() > 10, pop


#: phases 1-4, timed inside ``steps`` (with ``time_phases``)
PHASES = ("delivery", "postsynaptic", "neurons", "plasticity")
#: the parts of a run that exclude each other
PARTS = ("steps", "rules", "callbacks", "recording", "inputs", "index_rebuild", "compile")


def timed_run(sim, steps):
    """``sim.run(steps)`` and the wall time measured around it."""
    tic = time.perf_counter()
    result = sim.run(steps)
    return result, time.perf_counter() - tic


def assert_timers_add_up(result, wall):
    timers = result.timers_s
    assert min(timers.values()) >= 0
    assert sum(timers.get(p, 0.0) for p in PHASES) <= timers["steps"]
    assert sum(timers.get(k, 0.0) for k in PARTS) <= result.wall_s <= wall


def test_phase_timing_splits_the_native_step():
    net, _ = topographic(rule=False)
    sim = nw.Simulator(net, engine="native", time_phases=True)
    result, wall = timed_run(sim, 0)
    assert all(v == 0.0 for v in result.timers_s.values())  # nothing ran: nothing timed
    for steps in (50, 50):
        result, wall = timed_run(sim, steps)
        assert all(result.timers_s[p] > 0 for p in PHASES)
        assert_timers_add_up(result, wall)


def test_native_timers_without_phases_add_up_and_compile_once():
    net, _ = topographic()
    sim = nw.Simulator(net, engine="native")
    first, wall = timed_run(sim, 24)
    assert_timers_add_up(first, wall)
    second, wall = timed_run(sim, 24)
    assert_timers_add_up(second, wall)
    assert second.timers_s["compile"] == 0.0  # compiled by the first run
    assert all(p not in second.timers_s for p in PHASES)  # no phase timing asked for


def test_phase_timers_with_a_fused_rule_add_up():
    net = nw.Network(dt=0.5, seed=5, dtype=torch.float64)
    src = net.population("src", nw.PoissonSource(64, rate_hz=80.0, grid=(8, 8)))
    tgt = net.population("tgt", nw.LIF.biophysical(64, grid=(8, 8)))
    ff = net.connect(
        src, tgt, nw.GaussianDistance(0.5, 2.0), weight=0.2, psc=nw.ExpCond(5.0, 0.0), capacity=40
    )
    rewiring = nw.DistanceRewiring(0.5, 2.0, 1.0, 0.01, 0.1, 0.2, attempts=2000)
    net.add_rule(rewiring, ff, every=1)
    sim = nw.Simulator(net, engine="native", time_phases=True)
    assert sim.runner.engine.fused == [0]
    sim.run(5)  # compiles
    result, wall = timed_run(sim, 100)
    assert_timers_add_up(result, wall)


class SteppedLIF(nw.LIF):
    """A user model written as arbitrary PyTorch in step(): only the torch engine can run it."""

    def step(self, state, i_syn, dt, rand=None, params=None):
        new = super().step(state, i_syn, dt, rand, params)
        return new._replace(v=new.v * 0.5)


@dataclass(frozen=True)
class QuadraticLIF(nw.LIF):
    """A user model in the model language: a quadratic leak, derived by every engine."""

    def update(self, s, c, i_syn):
        refractory = s.r > 0
        s.v = c.alpha * s.v + 0.1 * s.v * s.v + i_syn - c.v_th * s.z
        s.z = spike(s.v - c.v_th, refractory)
        s.r = where(s.z, c.n_ref, maximum(s.r - 1, 0))


def _single_population(model, steps=60):
    net = nw.Network(dt=1.0, seed=2, dtype=torch.float64)
    src = net.population("src", nw.SpikeSource(10))
    pop = net.population("p", model)
    net.connect(src, pop, nw.Dense(), weight=nw.Normal(0.3, 0.2))
    gen = torch.Generator().manual_seed(1)
    inputs = {"src": torch.rand(2, steps, 10, generator=gen) < 0.3}
    return net, inputs


def test_native_engine_refuses_a_model_that_overrides_step_and_auto_warns_once():
    net, inputs = _single_population(SteppedLIF(5))
    with pytest.raises(NotImplementedError, match="SteppedLIF overrides step"):
        nw.Simulator(net, engine="native", batch_size=2)
    with pytest.warns(UserWarning, match="runs the torch engine.*SteppedLIF"):
        sim = nw.Simulator(net, batch_size=2)
    assert sim.engine == "torch"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert nw.Simulator(net, batch_size=2).engine == "torch"  # warned once already
    # the torch engine honours the override: v is halved every step
    rec = sim.run(5, record={"p": ["v"]}, inputs=inputs)["p"]["v"]
    plain_net, _ = _single_population(nw.LIF(5))
    plain = nw.Simulator(plain_net, engine="torch", batch_size=2)
    ref = plain.run(5, record={"p": ["v"]}, inputs=inputs)["p"]["v"]
    assert not torch.allclose(rec, ref)


def test_a_user_model_in_the_model_language_runs_natively_and_equals_torch():
    runs = {}
    for engine in ("torch", "native"):
        net, inputs = _single_population(QuadraticLIF(5, tau_refrac=2.0))
        sim = nw.Simulator(net, engine=engine, batch_size=2)
        runs[engine] = sim.run(60, record={"p": ["spikes", "v"]}, inputs=inputs)["p"]
    assert runs["torch"]["spikes"].any()
    assert torch.equal(runs["torch"]["spikes"], runs["native"]["spikes"])
    torch.testing.assert_close(runs["torch"]["v"], runs["native"]["v"], rtol=1e-12, atol=1e-12)
    # and differs from the built-in LIF: the quadratic term is really there
    net, inputs = _single_population(nw.LIF(5, tau_refrac=2.0))
    plain = nw.Simulator(net, engine="native", batch_size=2).run(
        60, record={"p": ["v"]}, inputs=inputs
    )
    assert not torch.allclose(plain["p"]["v"], runs["native"]["v"])


def test_model_code_outside_the_language_is_refused_by_name():
    @dataclass(frozen=True)
    class Branchy(nw.LIF):
        def update(self, s, c, i_syn):
            if s.v > 0:  # data-dependent branch: not expressible elementwise
                s.v = s.v * c.alpha
            s.z = spike(s.v - c.v_th, False)

    net, _ = _single_population(Branchy(3))
    with pytest.raises(NotImplementedError, match="Branchy.update, line"):
        nw.Simulator(net, engine="native")


def test_generated_source_is_readable_and_names_populations():
    net, inputs = _single_population(nw.ALIF(4))
    sim = nw.Simulator(net, engine="native", batch_size=2)
    sim.run(3, inputs=inputs)
    src = sim.generated_source()
    assert "def neuron_p1(" in src and "population 'p' (ALIF)" in src
    assert "s_distance" in src  # the spike test of ALIF.update, translated


def assert_same_rewiring(net_ref, ref_sim, net_nat, nat_sim, events: bool = False):
    """Both projections: identical structure, weights, per-call log (and event log)."""
    for name in ("src->tgt", "tgt->tgt"):
        a, b = net_ref.projections[name].synapses, net_nat.projections[name].synapses
        assert torch.equal(a.row_length, b.row_length) and torch.equal(a.ind, b.ind)
        assert torch.allclose(a.vars["weight"], b.vars["weight"], atol=1e-12)
        ca, cb = ref_sim.rewiring_log.calls(name), nat_sim.rewiring_log.calls(name)
        for key in ca:
            assert np.array_equal(ca[key], cb[key]), (name, key)
        if events:
            ea, eb = ref_sim.rewiring_log.events(name), nat_sim.rewiring_log.events(name)
            for key in ea:
                assert np.array_equal(ea[key], eb[key]), (name, key)
        b.validate()


def topographic_fusable(dtype=torch.float64):
    net, _ = topographic(dtype=dtype, rule=False)
    ff, lat = net.projections["src->tgt"], net.projections["tgt->tgt"]
    net.add_rule(
        nw.DistanceRewiring(0.5, 2.0, 1.0, 0.05, 0.1, 0.2, attempts=30),
        ff,
        every=4,
        log_events=True,
    )
    net.add_rule(
        nw.DistanceRewiring(1.0, 1.0, 1.0, 0.05, 0.1, 0.2, attempts=25),
        lat,
        every=6,
        log_events=True,
    )
    net.add_callback(lambda sim: sim.set_rates("src", 40.0 + sim.step_count % 3), every=100)
    return net, {}


@pytest.mark.parametrize("time_phases", [False, True])
def test_fused_rules_match_host_rules_exactly(time_phases):
    record = {"tgt": ["spikes", "v"]}
    net_ref, _ = topographic_fusable()
    ref_sim = nw.Simulator(net_ref, engine="torch")
    ref = ref_sim.run(500, record=record)
    net_nat, _ = topographic_fusable()
    nat_sim = nw.Simulator(net_nat, engine="native", time_phases=time_phases)
    assert nat_sim.runner.engine.fused and nat_sim.block_steps == 100
    nat = nat_sim.run(300, record=record)
    nat2 = nat_sim.run(200, record=record)
    assert torch.equal(
        ref["tgt"]["spikes"], torch.cat([nat["tgt"]["spikes"], nat2["tgt"]["spikes"]], dim=1)
    )
    assert_same_rewiring(net_ref, ref_sim, net_nat, nat_sim, events=True)
    for name in ("src->tgt", "tgt->tgt"):
        calls = ref_sim.rewiring_log.calls(name)
        assert calls["added"].sum() > 0 and calls["removed"].sum() > 0
    cols = net_nat.projections["src->tgt"].synapses.columns()
    assert cols.slot.numel() == net_nat.projections["src->tgt"].synapses.nnz


def mixed_rules_network():
    """Two fusable rules with a user rule declared between them, all due together at times."""
    net, _ = topographic(rule=False)
    ff, lat = net.projections["src->tgt"], net.projections["tgt->tgt"]
    net.add_rule(nw.DistanceRewiring(0.5, 2.0, 1.0, 0.05, 0.1, 0.2, attempts=30), ff, every=4)
    net.add_rule(PruneAndRegrow(), lat, every=12, log_events=True)
    net.add_rule(nw.DistanceRewiring(1.0, 1.0, 1.0, 0.05, 0.1, 0.2, attempts=25), lat, every=6)
    return net


@pytest.mark.parametrize("time_phases", [False, True])
def test_a_user_rule_runs_on_the_host_while_built_in_rules_stay_fused(time_phases):
    record = {"tgt": ["spikes"]}
    net_ref = mixed_rules_network()
    ref_sim = nw.Simulator(net_ref, engine="torch")
    ref = ref_sim.run(240, record=record)
    net_nat = mixed_rules_network()
    nat_sim = nw.Simulator(net_nat, engine="native", time_phases=time_phases)
    assert nat_sim.runner.engine.fused == [0, 2]  # fusion decided per rule
    assert nat_sim.block_steps == 12  # blocks end only where the host rule is due
    nat = nat_sim.run(240, record=record)
    assert torch.equal(ref["tgt"]["spikes"], nat["tgt"]["spikes"])
    assert_same_rewiring(net_ref, ref_sim, net_nat, nat_sim)
    assert ref_sim.rewiring_log.calls("tgt->tgt")["added"].sum() > 0


@pytest.mark.parametrize("time_phases", [False, True])
def test_native_steps_timer_excludes_compilation(tmp_path, monkeypatch, time_phases):
    monkeypatch.setenv("NEUROWIRE_CACHE_DIR", str(tmp_path))  # a cold cache: numba compiles
    net, inputs = _single_population(
        nw.ALIF(4, tau_m=17.0 + float(np.random.default_rng().random()))
    )
    sim = nw.Simulator(net, engine="native", batch_size=2, time_phases=time_phases)
    timers = sim.run(3, inputs=inputs).timers_s
    assert timers["compile"] > timers["steps"] >= 0  # compiling dwarfs three steps
    if time_phases:  # and it is in none of the phases
        assert timers["compile"] > 10 * sum(timers[p] for p in PHASES)


def fan_in_network():
    net, _ = topographic(rule=False)
    ff = net.projections["src->tgt"]
    net.add_rule(
        nw.SharedFanInRewiring(
            "tgt->tgt",
            max_fan_in=30,
            p_peak=(0.5, 1.0),
            sigma=(2.0, 1.0),
            p_elim_dep=0.5,
            p_elim_pot=0.05,
            w_threshold=0.1,
            w_init=0.2,
            attempts=3,
        ),
        ff,
        every=2,
        log_events=True,
    )
    return net


@pytest.mark.parametrize("time_phases", [False, True])
def test_fused_shared_fan_in_matches_host_rule_exactly(time_phases):
    record = {"tgt": ["spikes"]}
    net_ref = fan_in_network()
    ref_sim = nw.Simulator(net_ref, engine="torch")
    ref = ref_sim.run(400, record=record)
    net_nat = fan_in_network()
    nat_sim = nw.Simulator(net_nat, engine="native", time_phases=time_phases)
    assert nat_sim.runner.engine.fused
    nat = nat_sim.run(400, record=record)
    assert torch.equal(ref["tgt"]["spikes"], nat["tgt"]["spikes"])
    assert_same_rewiring(net_ref, ref_sim, net_nat, nat_sim, events=True)
    assert sum(ref_sim.rewiring_log.totals(n)["added"] for n in ("src->tgt", "tgt->tgt")) > 0
    assert sum(ref_sim.rewiring_log.totals(n)["removed"] for n in ("src->tgt", "tgt->tgt")) > 0


# ---------------------------------------------------------------------------- threads, caching


class _SyncHelper:
    """Runs what the engine hands its helper thread at once: every step is drawn ahead."""

    def submit(self, fn, args):
        fn(*args)


def _threaded_run(threads, monkeypatch, helper=None):
    from neurowire.native import ahead

    monkeypatch.setattr(ahead, "AHEAD_MIN_DRAWS", 0)  # draw ahead however small the block
    monkeypatch.setattr(ahead, "spare_core", lambda threads: True)  # however busy the CPUs
    if helper is not None:
        monkeypatch.setattr(ahead, "helper", lambda: helper)
    net = topographic_fusable()[0]
    sim = nw.Simulator(net, engine="native", threads=threads)
    drawn_ahead = []
    ahead = sim.runner.engine._ahead_arguments
    sim.runner.engine._ahead_arguments = lambda k, args: (
        drawn_ahead.append(ahead(k, args)) or (drawn_ahead[-1])
    )
    out = sim.run(500, record={"src": ["spikes"], "tgt": ["spikes", "v"]})
    monkeypatch.undo()
    return net, sim, out, drawn_ahead


def test_results_do_not_depend_on_the_number_of_threads(monkeypatch):
    """threads=2 draws the Poisson sources' spikes on a helper thread (here in every block, and
    once synchronously, so that every step takes the helper's numbers): the same spikes,
    potentials, stores and rewiring logs as one thread, bit for bit."""
    net1, sim1, one, ahead1 = _threaded_run(1, monkeypatch)
    assert not any(ahead1) and sim1.runner.engine.threads == 1
    for helper in (None, _SyncHelper()):
        net2, sim2, two, ahead2 = _threaded_run(2, monkeypatch, helper)
        if sim2.runner.engine.threads < 2:
            pytest.skip("this process may run on one CPU only")
        assert all(ahead2)
        for pop, var in (("src", "spikes"), ("tgt", "spikes"), ("tgt", "v")):
            assert torch.equal(one[pop][var], two[pop][var]), (pop, var)
        assert_same_rewiring(net1, sim1, net2, sim2, events=True)


def test_threads_follow_torch_by_default(monkeypatch):
    net, _ = topographic(rule=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert nw.Simulator(net, engine="native").runner.engine.threads == 1
    with pytest.raises(ValueError, match="threads"):
        nw.Simulator(topographic(rule=False)[0], engine="native", threads=0)


def test_the_generated_module_is_shared_by_seeds_and_scales():
    """The block's source (its cache key) depends on the network's structure, not on sizes or
    seeds: a second seed, or a larger sheet, reuses the module numba has compiled."""
    from neurowire.experiments import topomap

    paths = []
    for scale, seed in ((1, 1), (1, 2), (2, 1)):
        net = topomap.build(topomap.TopomapConfig(scale=scale, seed=seed, duration_s=0.01))
        sim = nw.Simulator(net, engine="native")
        sim.run(2)
        paths.append(sim.runner.engine.builder.sources[False])
    assert paths[0] == paths[1] == paths[2]
    # while a change of the equations (a constant) gives another module
    cfg = topomap.TopomapConfig(scale=1, seed=1, duration_s=0.01, tau_refrac=3.0)
    sim = nw.Simulator(topomap.build(cfg), engine="native")
    sim.run(2)
    assert sim.runner.engine.builder.sources[False] != paths[0]


def test_column_lists_follow_rule_events_and_grow():
    from neurowire.native import rules

    gen = np.random.default_rng(0)
    n_pre, n_post, capacity = 40, 3, 3
    ind = np.zeros((n_pre, capacity), np.int64)
    length = np.zeros(n_pre, np.int64)
    for i in range(2):  # column 0 starts with two synapses
        ind[i, 0], length[i] = 0, 1
    col_len = np.zeros(n_post, np.int64)
    col_pre = rules.build_column_lists(ind, length, n_post, col_len)
    assert col_pre.shape == (3, 8) and list(col_len) == [2, 0, 0]
    # formations into column 0 from 30 rows (it outgrows 8, then 16), eliminations of some
    ev_pre = np.array([*range(2, 32), 5, 0, 17], np.int64)
    ev_post = np.zeros(ev_pre.size, np.int64)
    ev_kind = np.array([1] * 30 + [-1, -1, -1], np.int8)
    order = gen.permutation(30)  # formations in any order
    ev_pre[:30] = ev_pre[:30][order]
    col_pre = rules.apply_column_events(ev_pre, ev_post, ev_kind, 0, ev_pre.size, col_pre, col_len)
    assert col_pre.shape[1] == 32
    assert sorted(col_pre[0, : col_len[0]].tolist()) == sorted({1, *range(2, 32)} - {5, 17})


def crowded_rows_network():
    """2 x 2 sheets and 14 attempts per call: rows often draw more attempts than they have
    targets, so attempts move to the next row (the rare branch of the native kernel)."""
    net = nw.Network(dt=1.0, seed=2, dtype=torch.float64)
    src = net.population("src", nw.PoissonSource(4, rate_hz=300.0, grid=(2, 2)))
    tgt = net.population("tgt", nw.LIF.biophysical(4, grid=(2, 2), v_init=nw.Normal(-55, 3)))
    proj = net.connect(
        src,
        tgt,
        nw.GaussianDistance(0.5, 1.0),
        weight=0.2,
        synapse=nw.STDP(a_plus=0.02, a_minus=0.0075, w_max=0.2),
        psc=nw.ExpCond(5.0, 0.0),
        capacity=4,
    )
    net.add_rule(nw.DistanceRewiring(0.9, 3.0, 0.5, 0.3, 0.1, 0.2, attempts=14), proj, every=3)
    return net


def test_fused_rule_on_crowded_rows_matches_the_host_rule():
    record = {"tgt": ["spikes"]}
    net_ref = crowded_rows_network()
    ref_sim = nw.Simulator(net_ref, engine="torch")
    ref = ref_sim.run(300, record=record)
    net_nat = crowded_rows_network()
    nat_sim = nw.Simulator(net_nat, engine="native")
    assert nat_sim.runner.engine.fused == [0]
    nat = nat_sim.run(300, record=record)
    assert torch.equal(ref["tgt"]["spikes"], nat["tgt"]["spikes"])
    a, b = net_ref.projections["src->tgt"].synapses, net_nat.projections["src->tgt"].synapses
    assert torch.equal(a.row_length, b.row_length) and torch.equal(a.ind, b.ind)
    assert torch.allclose(a.vars["weight"], b.vars["weight"], atol=1e-12)
    calls_a, calls_b = (
        ref_sim.rewiring_log.calls("src->tgt"),
        nat_sim.rewiring_log.calls("src->tgt"),
    )
    for key in calls_a:
        assert np.array_equal(calls_a[key], calls_b[key]), key
    assert calls_a["added"].sum() > 0 and calls_a["removed"].sum() > 0


def test_a_rule_describes_its_fused_kernel_and_a_changed_rule_has_none():
    from neurowire.native import rules

    assert PruneAndRegrow().native_kernel() is None  # the base class's default
    distance = nw.DistanceRewiring(0.5, 2.0, 1.0, 0.05, 0.1, 0.2, attempts=4)
    kernel = distance.native_kernel()
    assert hasattr(rules, kernel.kernel) and kernel.partner is None and not kernel.slot_columns
    assert kernel.events_per_call == 4 and kernel.scratch_rows == 2
    fan_in = nw.SharedFanInRewiring("other", attempts=3).native_kernel()
    assert hasattr(rules, fan_in.kernel) and fan_in.partner == "other" and fan_in.slot_columns

    class Louder(nw.DistanceRewiring):
        def update(self, s, ctx):
            super().update(s, ctx)

    assert Louder(0.5, 2.0, 1.0, 0.05, 0.1, 0.2).native_kernel() is None


@dataclass(frozen=True)
class HalfDecaySTDP(nw.STDP):
    """Presynaptic traces halve every step, whatever ``tau_plus``."""

    def decay_pre(self, c, x_pre):
        return x_pre * 0.5


def test_both_stdp_steps_derive_from_the_rules_trace_methods():
    from neurowire.native import codegen as gen
    from neurowire.propagate import SpikeEvents

    source = gen.stdp_kernel(HalfDecaySTDP(), 1.0, "stdp", "float64")
    assert "x_pre[i] = (x_pre[i] * np.float64(0.5))" in source
    rule, n = HalfDecaySTDP(), 3
    w = torch.full((n, 1), 0.1)
    ind = torch.zeros((n, 1), dtype=torch.int64)
    live = torch.ones((n, 1), dtype=torch.bool)
    columns = torch.arange(n).reshape(1, n)
    none = torch.zeros(1, n, dtype=torch.bool)
    events = SpikeEvents.fixed(none, 4)
    x_pre, x_post = rule.torch_step(
        w, ind, live, columns, events, events, torch.ones(n), torch.ones(1), none[0], none[0, :1]
    )
    assert torch.equal(x_pre, torch.full((n,), 0.5))
    assert torch.equal(x_post, torch.full((1,), rule.cached_constants(1.0)["k_minus"]))
