"""HomeostaticRewiring and ElementNeuron against NEST 3.10's structural plasticity.

The references below are NEST's algorithm written out event by event (``nest_growth``,
``nest_events``): a neuron's calcium and elements change only at its spikes (at the end of their
step) and at structural-plasticity updates; between two events, calcium decays exactly, the
linear curve integrates in closed form and the Gaussian and sigmoid curves run forward Euler on
a calcium restarted from the exact value; elements are clipped at 0 at every event. The
simulator integrates the same quantities every step; both must agree to rounding.
"""

from __future__ import annotations

import math

import pytest
import torch

import neurowire as nw
from neurowire.checks import ParameterError
from neurowire.structural.pairing import choose_in_groups, pair_vacancies

DT = 0.5
TAU_CA = 20.0
BETA_CA = 0.1


# ---------------------------------------------------------------------- NEST, event by event
def nest_growth(curve: dict, t: float, t_minus: float, ca_minus: float, z: float) -> float:
    """NEST's ``GrowthCurve*::update``: elements at ``t`` from ``z`` at ``t_minus`` with calcium
    ``ca_minus`` at ``t_minus`` (growth_curve.cpp)."""
    g, eps = curve["growth_rate"], curve["eps"]
    if curve["growth_curve"] == "linear":
        ca = ca_minus * math.exp((t_minus - t) / TAU_CA)
        return max(g * TAU_CA * (ca - ca_minus) / eps + g * (t - t_minus) + z, 0.0)
    ca = ca_minus
    for _ in range(round((t - t_minus) / DT)):
        ca = ca - ca * (1.0 / TAU_CA) * DT
        if curve["growth_curve"] == "gaussian":
            xi = (curve["eta"] + eps) * 0.5
            inv_zeta = 2.0 * math.sqrt(math.log(2.0)) / (curve["eta"] - eps)
            f = 2.0 * math.exp(-(((ca - xi) * inv_zeta) ** 2)) - 1.0
        else:
            f = 2.0 / (1.0 + math.exp((ca - eps) / curve["psi"])) - 1.0
        z += DT * g * f
    return max(z, 0.0)


def nest_events(spike_steps, call_steps, rewire_steps, curve: dict) -> tuple[dict, dict]:
    """One neuron's (Ca, z) after each of its spikes (by step) and after each structural-
    plasticity call (by steps done), NEST's way, for an element that never connects (its
    vacant elements, all of them, decay by ``tau_vacant`` at each rewiring, at ``t = 0`` too)."""
    events = [((s + 1) * DT, 0, s) for s in spike_steps]  # a spike's event ends its step
    events += [(c * DT, 1, c) for c in call_steps]  # after the step's spike
    ca, t_last, z = 0.0, 0.0, curve.get("z", 0.0)
    tau_vacant = curve.get("tau_vacant", 0.1)
    if math.floor(z) > 0:
        z -= math.floor(z) * tau_vacant
    after_spikes, after_calls = {}, {}
    for t, kind, step in sorted(events):
        z = nest_growth(curve, t, t_last, ca, z)
        ca, t_last = ca * math.exp((t_last - t) / TAU_CA), t
        if kind == 0:
            ca += BETA_CA
            after_spikes[step] = (ca, z)
            continue
        if step in rewire_steps and math.floor(z) > 0:
            z -= math.floor(z) * tau_vacant
        after_calls[step] = (ca, z)
    return after_spikes, after_calls


# ---------------------------------------------------------------------- networks
def driven_cells(spike_steps: list[list[int]], elements: dict, device="cpu", steps=60):
    """``len(spike_steps)`` element neurons that spike exactly in the given steps (a LIF reset
    to 0 in its spike step, driven one-to-one by a spike source one step earlier); the
    recurrent projection of weight 0 never changes their spikes."""
    n = len(spike_steps)
    net = nw.Network(dt=DT, seed=3, dtype=torch.float64)
    drive = net.population("drive", nw.SpikeSource(n))
    lif = nw.LIF(n, v_reset=0.0, v_th=0.5, tau_m=10.0)
    model = nw.ElementNeuron(lif, elements=elements, tau_Ca=TAU_CA, beta_Ca=BETA_CA)
    cells = net.population("cells", model)
    net.connect(drive, cells, nw.OneToOne(), weight=1.0)
    rec = net.connect(cells, cells, nw.FixedProbability(0.0, autapses=True), weight=0.0, capacity=n)
    spikes = torch.zeros(1, steps, n, dtype=torch.bool)
    for i, times in enumerate(spike_steps):
        for s in times:
            spikes[0, s - 1, i] = True
    return net, rec, {"drive": spikes}


def record_after_calls(net, every: int, names=("Ca", "Axon")) -> dict[int, dict]:
    """State of ``cells`` after every rule call (callbacks run after the rules)."""
    seen: dict[int, dict] = {}

    def keep(sim):
        st = sim.neuron_state("cells")
        seen[sim.step_count] = {k: st[k][0].clone() for k in names}

    net.add_callback(keep, every=every)
    return seen


# ---------------------------------------------------------------------- calcium and growth
def test_calcium_decays_exactly_and_rises_by_beta_at_the_end_of_a_spike_step():
    trains = [[3, 4, 10], [1], []]
    net, _, inputs = driven_cells(trains, {"Axon": nw.SynapticElement(growth_rate=0.0)})
    result = nw.Simulator(net, engine="torch").run(20, inputs=inputs, record={"cells": ["Ca"]})
    ca = result.records["cells"]["Ca"][0]  # [T, n]
    for i, train in enumerate(trains):
        for step in range(20):  # Ca after step k: beta exp(-(k - s) dt / tau) per spike s <= k
            want = sum(BETA_CA * math.exp(-(step - s) * DT / TAU_CA) for s in train if s <= step)
            assert ca[step, i].item() == pytest.approx(want, rel=1e-13, abs=1e-15)


def test_the_spikes_of_the_driven_cells_are_the_given_ones():
    trains = [[3, 4, 10], [1], []]
    net, _, inputs = driven_cells(trains, {"Axon": nw.SynapticElement(growth_rate=0.0)})
    result = nw.Simulator(net, engine="torch").run(20, inputs=inputs, record={"cells": ["spikes"]})
    got = result.records["cells"]["spikes"][0]
    assert [got[:, i].nonzero().squeeze(1).tolist() for i in range(3)] == trains


def test_an_element_neuron_of_iaf_psc_alpha_takes_alpha_currents_as_its_neuron_does():
    """The wrapped neuron's parameters read through the element neuron (``Alpha`` binds to its
    ``tau_m``), and its membrane follows the bare neuron's step for step."""
    out = []
    for wrap in (False, True):
        net = nw.Network(dt=DT, seed=5, dtype=torch.float64)
        drive = net.population("drive", nw.PoissonSource(20, rate_hz=800.0))
        model = nw.IafPsc(6, tau_m=8.0)
        if wrap:
            model = nw.ElementNeuron(model, elements={"Axon": nw.SynapticElement()})
        cells = net.population("cells", model)
        proj = net.connect(drive, cells, nw.AllToAll(), weight=40.0, psc=nw.Alpha(2.0))
        assert proj.psc.tau_m == 8.0
        record = {"cells": ["v", "spikes"]}
        out.append(nw.Simulator(net, engine="torch").run(400, record=record).records["cells"])
    assert torch.equal(out[0]["spikes"], out[1]["spikes"]) and out[0]["spikes"].any()
    assert torch.allclose(out[0]["v"], out[1]["v"], rtol=0, atol=1e-12)
    element = nw.ElementNeuron(nw.IafPsc(2, c_m=100.0), elements={"Axon": nw.SynapticElement()})
    assert (element.c_m, element.tau_m) == (100.0, 10.0)
    with pytest.raises(AttributeError, match="no attribute 'rate_hz'"):
        element.rate_hz  # noqa: B018


CURVES = {
    "linear": {"growth_curve": "linear", "growth_rate": 0.05, "eps": 0.12, "z": 1.3},
    "gaussian": {
        "growth_curve": "gaussian",
        "growth_rate": 0.08,
        "eps": 0.15,
        "eta": 0.02,
        "z": 0.4,
    },
    "sigmoid": {"growth_curve": "sigmoid", "growth_rate": 0.06, "eps": 0.1, "psi": 0.03},
}


@pytest.mark.parametrize("curve", sorted(CURVES))
def test_elements_and_calcium_follow_nest_event_by_event(curve, device):
    """Four neurons (silent; moderate; a burst whose elements shrink below 0, are clipped at
    its last spikes and grow again as its calcium falls; busy), element updates every 10
    steps, rewiring (decay of vacant elements) every 20 and at t = 0; the Axon never connects
    (no Den grows)."""
    trains = [[], [2, 9, 15, 33, 41], [1, 2, 3, 4, 14, 16, 18], list(range(1, 60, 2))]
    elements = {"Axon": CURVES[curve], "Den": nw.SynapticElement(growth_rate=0.0)}
    net, rec, inputs = driven_cells(trains, elements, device)
    rule = nw.HomeostaticRewiring(
        {"s": nw.SPSynapse("Axon", "Den", [rec], weight=0.0)}, update_interval=20 * DT
    )
    net.add_rule(rule, rec, every=10)
    seen = record_after_calls(net, 10)
    sim = nw.Simulator(net, device=device, engine="torch")
    records = sim.run(60, inputs=inputs, record={"cells": ["Ca", "Axon"]}).records["cells"]
    for i, train in enumerate(trains):
        spikes, calls = nest_events(train, range(10, 70, 10), {0, 20, 40, 60}, CURVES[curve])
        for step, (ca, z) in calls.items():
            assert seen[step]["Ca"][i].item() == pytest.approx(ca, rel=1e-12, abs=1e-15)
            assert seen[step]["Axon"][i].item() == pytest.approx(z, rel=1e-12, abs=1e-12)
        for step, (ca, z) in spikes.items():
            assert records["Ca"][0, step, i].item() == pytest.approx(ca, rel=1e-12, abs=1e-15)
            assert records["Axon"][0, step, i].item() == pytest.approx(z, rel=1e-12, abs=1e-12)
    assert rec.synapses.nnz == 0


def test_linear_growth_without_spikes_is_the_closed_form():
    """``z(t) = z0 + g t + g tau_Ca / eps (Ca0 e^(-t / tau_Ca) - Ca0)`` from calcium ``Ca0``."""
    curve = {"growth_curve": "linear", "growth_rate": 0.3, "eps": 0.05, "z": 2.0}
    net = nw.Network(dt=DT, dtype=torch.float64)
    model = nw.ElementNeuron(nw.LIF(1), elements={"Axon": curve}, tau_Ca=TAU_CA, Ca=0.02)
    net.population("cells", model)
    result = nw.Simulator(net, engine="torch").run(40, record={"cells": ["Axon", "Ca"]})
    for step in range(40):
        t = (step + 1) * DT
        ca = 0.02 * math.exp(-t / TAU_CA)
        want = 2.0 + 0.3 * t + 0.3 * TAU_CA / 0.05 * (ca - 0.02)
        assert result.records["cells"]["Axon"][0, step, 0].item() == pytest.approx(want, rel=1e-12)
        assert result.records["cells"]["Ca"][0, step, 0].item() == pytest.approx(ca, rel=1e-13)


def test_elements_go_negative_between_events_and_are_clipped_at_the_next_spike():
    curve = {"growth_curve": "linear", "growth_rate": -0.1, "eps": 1.0, "z": 0.3}
    net, _, inputs = driven_cells([[8]], {"Axon": curve})
    result = nw.Simulator(net, engine="torch").run(10, inputs=inputs, record={"cells": ["Axon"]})
    z = result.records["cells"]["Axon"][0, :, 0]
    # no calcium before the spike in step 8: z = 0.3 - 0.1 t after step k, t = (k + 1) dt
    assert z[7].item() == pytest.approx(0.3 - 0.1 * 4.0, abs=1e-12)  # -0.1: not clipped
    assert z[8].item() == 0.0  # the spike step ends at 4.5 ms: clipped there
    assert z[9].item() < 0.0  # and free again until the next event


# ---------------------------------------------------------------------- rewiring by hand
def three_neurons(g_a: float = -0.1):
    """Populations ``a`` (Axon 2.05, shrinking by 0.1 per ms), ``b`` (Axon 1.05) and ``c``
    (Den 3.05), one neuron each, never spiking (calcium 0); dt = 1 ms, weight 0.5."""
    net = nw.Network(dt=1.0, seed=5, dtype=torch.float64)

    def pop(name, element, z, g=0.0):
        curve = {"growth_curve": "linear", "growth_rate": g, "eps": 1.0, "z": z}
        return net.population(name, nw.ElementNeuron(nw.LIF(1), elements={element: curve}))

    a, b = pop("a", "Axon", 2.05, g_a), pop("b", "Axon", 1.05)
    c = pop("c", "Den", 3.05)
    ac = net.connect(a, c, nw.FixedProbability(0.0), weight=0.0, capacity=1)
    bc = net.connect(b, c, nw.FixedProbability(0.0), weight=0.0, capacity=1)
    rule = nw.HomeostaticRewiring(
        {
            "syn": {
                "pre_synaptic_element": "Axon",
                "post_synaptic_element": "Den",
                "projections": [ac, bc],
                "weight": 0.5,
            }
        },
        update_interval=10.0,
    )
    net.add_rule(rule, ac, every=10)
    return net, rule, ac, bc


def synapses(proj) -> list[tuple[int, int, int, float]]:
    s = proj.synapses
    pre, post = s.coo()
    return list(
        zip(
            pre.tolist(),
            post.tolist(),
            s.values("multiplicity").tolist(),
            s.values("weight").tolist(),
            strict=True,
        )
    )


def elements(sim) -> tuple[float, float, float]:
    return tuple(
        sim.neuron_state(p)[e][0, 0].item() for p, e in (("a", "Axon"), ("b", "Axon"), ("c", "Den"))
    )


def test_hand_computed_pairings_and_deletions_over_three_intervals(device):
    net, rule, ac, bc = three_neurons()
    sim = nw.Simulator(net, device=device, engine="torch")
    # t = 0 (NEST updates at the start): free axonal elements a, a, b (floor 2.05, floor 1.05)
    # and dendritic c, c, c: equal lists, every pair forms; a -> c twice is one synapse of
    # multiplicity 2 and weight 2 * 0.5
    sim.run(0)
    assert synapses(ac) == [(0, 0, 2, 1.0)] and synapses(bc) == [(0, 0, 1, 0.5)]
    assert elements(sim) == (2.05, 1.05, 3.05)  # nothing vacant: nothing decays
    # t = 10: a's Axon is 2.05 - 1.0 = 1.05, floor 1 < 2 connected: one of its two synapses
    # onto c goes; c keeps floor(3.05) - 2 = 1 free element, which decays by 0.1
    sim.run(10)
    assert synapses(ac) == [(0, 0, 1, 0.5)] and synapses(bc) == [(0, 0, 1, 0.5)]
    assert elements(sim) == pytest.approx((1.05, 1.05, 2.95), abs=1e-12)
    assert rule.connected()[("c", "Den")].tolist() == [2]
    # t = 20: a's Axon is 0.05: its last synapse goes; c: floor(2.95) - 1 = 1 free -> 2.85
    sim.run(10)
    assert synapses(ac) == [] and synapses(bc) == [(0, 0, 1, 0.5)]
    assert elements(sim) == pytest.approx((0.05, 1.05, 2.85), abs=1e-12)
    # t = 30: a's Axon went below 0 (-0.95) and is clipped at this update; c decays again
    sim.run(10)
    assert elements(sim) == pytest.approx((0.0, 1.05, 2.75), abs=1e-12)
    calls = sim.rewiring_log.calls("a->c")
    assert calls["removed"].tolist() == [1, 1, 0] and calls["added"].tolist() == [0, 0, 0]


def test_the_shorter_list_of_free_elements_is_filled_completely():
    """Five free axonal elements of ``a`` (and one of ``b``) for three dendritic ones of ``c``:
    three pairs form, each from a uniformly drawn axonal element."""
    net = nw.Network(dt=1.0, seed=0, dtype=torch.float64)
    spec = {"growth_curve": "linear", "growth_rate": 0.0}
    a = net.population("a", nw.ElementNeuron(nw.LIF(1), elements={"Axon": {**spec, "z": 5.5}}))
    b = net.population("b", nw.ElementNeuron(nw.LIF(1), elements={"Axon": {**spec, "z": 1.5}}))
    c = net.population("c", nw.ElementNeuron(nw.LIF(1), elements={"Den": {**spec, "z": 3.5}}))
    ac = net.connect(a, c, nw.FixedProbability(0.0), capacity=1)
    bc = net.connect(b, c, nw.FixedProbability(0.0), capacity=1)
    rule = nw.HomeostaticRewiring({"s": nw.SPSynapse("Axon", "Den", [ac, bc])})
    net.add_rule(rule, ac, every=1)
    sim = nw.Simulator(net, engine="torch")
    sim.run(0)
    connected = rule.connected()
    assert connected[("c", "Den")].tolist() == [3]
    assert connected[("a", "Axon")].item() + connected[("b", "Axon")].item() == 3
    # vacant elements decay by tau_vacant = 0.1 of their number: c has none left
    assert sim.neuron_state("c")["Den"][0, 0].item() == 3.5


# ---------------------------------------------------------------------- deletion choices
def test_deletion_draws_among_the_copies_of_multapses(device):
    """400 source neurons, each with 3 synapses onto target 0 (one synapse of multiplicity 3)
    and one onto target 1, lose one: it is a copy onto target 0 with probability 3/4 (binomial
    standard deviation 0.022 over 400; tolerance 0.08)."""
    n = 400
    net = nw.Network(dt=1.0, seed=11, dtype=torch.float64)
    shrink = {"growth_curve": "linear", "growth_rate": -0.1, "eps": 1.0, "z": 0.5}
    plenty = {"growth_curve": "linear", "growth_rate": 0.0, "z": 1000.5}
    src = net.population("src", nw.ElementNeuron(nw.LIF(n), elements={"Axon": shrink}))
    tgt = net.population("tgt", nw.ElementNeuron(nw.LIF(2), elements={"Den": plenty}))
    pre = torch.arange(n).repeat_interleave(2)
    post = torch.tensor([0, 1]).repeat(n)
    weight = torch.tensor([3.0, 1.0]).repeat(n)
    proj = net.connect(src, tgt, nw.FromArrays(pre, post), weight=weight, capacity=2)
    proj.synapses.add_var("multiplicity", init=torch.tensor([3, 1]).repeat(n), dtype=torch.int32)
    rule = nw.HomeostaticRewiring({"s": nw.SPSynapse("Axon", "Den", [proj])}, update_interval=10.0)
    net.add_rule(rule, proj, every=10)
    sim = nw.Simulator(net, device=device, engine="torch")
    sim.run(0)  # NEST's connect: Axon rises to 4 connected + 0.5
    assert sim.neuron_state("src")["Axon"][0].tolist() == [4.5] * n
    sim.run(10)  # 3.5: one of four copies goes
    m = proj.synapses.to_dense("multiplicity").cpu()
    assert bool(((m[:, 0] == 3) ^ (m[:, 1] == 1)).all())  # exactly one copy gone per row
    share = (m[:, 0] == 2).double().mean().item()
    assert abs(share - 0.75) < 0.08
    w = proj.synapses.to_dense("weight").cpu()
    assert torch.allclose(w, m.double())  # a weight per copy: 3 -> 2, 1 -> 0 (removed)
    assert proj.synapses.nnz == n + int((m[:, 1] == 1).sum())


def test_targets_offering_no_element_are_spared_when_not_continuous():
    """``a`` must lose one of its synapses onto ``t0`` (Den 0.5, floor 0) and ``t1`` (Den
    4.05). NEST lists only targets whose element count (``floor(z)`` when not continuous) is
    not 0, so ``a -> t1`` goes; ``t0`` then loses ``a -> t0`` itself (floor 0 < 1). Seen as
    synapses removed from (``a -> t0``, ``a -> t1``)."""
    for continuous, outcomes in ((False, {(1, 1)}), (True, {(1, 0), (1, 1)})):
        seen = set()
        for seed in range(12):
            net = nw.Network(dt=1.0, seed=seed, dtype=torch.float64)
            lin = {"growth_curve": "linear", "eps": 1.0}
            a = net.population(
                "a",
                nw.ElementNeuron(
                    nw.LIF(1), elements={"Axon": {**lin, "growth_rate": -0.1, "z": 0.05}}
                ),
            )
            t0 = net.population(
                "t0",
                nw.ElementNeuron(
                    nw.LIF(1),
                    elements={
                        "Den": {**lin, "growth_rate": -0.1, "z": 0.5, "continuous": continuous}
                    },
                ),
            )
            t1 = net.population(
                "t1",
                nw.ElementNeuron(
                    nw.LIF(1),
                    elements={
                        "Den": {**lin, "growth_rate": 0.0, "z": 4.05, "continuous": continuous}
                    },
                ),
            )
            p0 = net.connect(a, t0, nw.FromArrays([0], [0]), capacity=1)
            p1 = net.connect(a, t1, nw.FromArrays([0], [0]), capacity=1)
            rule = nw.HomeostaticRewiring({"s": nw.SPSynapse("Axon", "Den", [p0, p1])}, 10.0)
            net.add_rule(rule, p0, every=10)
            sim = nw.Simulator(net, engine="torch")
            sim.run(10)  # Axon 2.05 -> 1.05, t0's Den 1.5 -> 0.5
            log = sim.rewiring_log
            seen.add(tuple(int(log.calls(p.name)["removed"].sum()) for p in (p0, p1)))
        assert seen == outcomes


# ---------------------------------------------------------------------- autapses, multapses
def one_neuron(allow_autapses: bool, allow_multapses: bool = True, initial=False):
    net = nw.Network(dt=1.0, dtype=torch.float64)
    fixed = {"growth_curve": "linear", "growth_rate": 0.0, "z": 2.5}
    cells = net.population(
        "cells", nw.ElementNeuron(nw.LIF(1), elements={"Axon": fixed, "Den": fixed})
    )
    conn = nw.FromArrays([0], [0]) if initial else nw.FixedProbability(0.0, autapses=True)
    rec = net.connect(cells, cells, conn, weight=1.0, capacity=1)
    rule = nw.HomeostaticRewiring(
        {
            "s": nw.SPSynapse(
                "Axon",
                "Den",
                [rec],
                weight=1.0,
                allow_autapses=allow_autapses,
                allow_multapses=allow_multapses,
            )
        }
    )
    net.add_rule(rule, rec, every=1)
    return net, rec


def test_autapses_form_when_allowed_and_are_skipped_otherwise():
    net, rec = one_neuron(allow_autapses=True)
    sim = nw.Simulator(net, engine="torch")
    sim.run(0)
    assert synapses(rec) == [(0, 0, 2, 2.0)]
    net, rec = one_neuron(allow_autapses=False)
    sim = nw.Simulator(net, engine="torch")
    sim.run(1)
    assert rec.synapses.nnz == 0
    assert sim.rewiring_log.calls("cells->cells")["failed"].tolist() == [2]
    # the skipped pairs' elements stay free and decay: 2.5 - 0.1 * 2 per call, twice
    assert sim.neuron_state("cells")["Axon"][0, 0].item() == pytest.approx(2.5 - 0.2 - 0.2)


def test_a_connected_pair_is_skipped_without_multapses():
    net, rec = one_neuron(allow_autapses=True, allow_multapses=False, initial=True)
    sim = nw.Simulator(net, engine="torch")
    sim.run(0)  # 1 connected of floor(2.5): one free element each side, pair (0, 0) exists
    assert rec.synapses.nnz == 1 and "multiplicity" not in rec.synapses.vars
    sim.run(1)
    assert sim.rewiring_log.calls("cells->cells")["failed"].tolist() == [1]


# ---------------------------------------------------------------------- the random choices
def test_choose_in_groups_takes_a_uniform_subset_of_each_group(generator):
    group = torch.arange(2000).repeat_interleave(5)
    need = torch.full((2000,), 2)
    chosen = choose_in_groups(group, need, generator)
    assert torch.equal(torch.bincount(group[chosen], minlength=2000), need)
    share = chosen.view(2000, 5).double().mean(0)  # each position 2/5 (sd 0.011)
    assert torch.allclose(share, torch.full((5,), 0.4, dtype=torch.float64), atol=0.05)
    few = choose_in_groups(torch.tensor([0, 0, 1]), torch.tensor([5, 0]), generator)
    assert few.tolist() == [True, True, False]


def test_pairing_shuffles_the_longer_list_and_keeps_the_shorter_in_order(generator):
    firsts = torch.zeros(2, dtype=torch.int64)
    for _ in range(1000):
        pre, post = pair_vacancies(torch.tensor([3, 1]), torch.tensor([1, 0, 1]), generator)
        assert post.tolist() == [0, 2]  # the shorter list, serialised in order
        firsts[pre[0]] += 1
    assert abs(firsts[0].item() / 1000 - 0.75) < 0.05  # 3 of 4 axonal elements (sd 0.014)
    pre, post = pair_vacancies(torch.tensor([1, 1]), torch.tensor([4]), generator)
    assert pre.tolist() == [0, 1] and post.tolist() == [0, 0]
    pre, post = pair_vacancies(torch.tensor([0, -2]), torch.tensor([4]), generator)
    assert pre.numel() == post.numel() == 0


# ---------------------------------------------------------------------- engines
def random_network():
    gen = torch.Generator().manual_seed(0)
    trains = [
        sorted(torch.randperm(150, generator=gen)[:k].add(1).tolist())
        for k in (0, 4, 10, 25, 40, 60)
    ]
    elements = {
        "Axon": {"growth_curve": "linear", "growth_rate": 0.2, "eps": 0.3},
        "Den": {"growth_curve": "gaussian", "growth_rate": 0.3, "eps": 0.3, "eta": -0.1},
    }
    net, rec, inputs = driven_cells(trains, elements, steps=200)
    rule = nw.HomeostaticRewiring({"s": nw.SPSynapse("Axon", "Den", [rec])}, update_interval=10.0)
    net.add_rule(rule, rec, every=10)
    return net, rec, inputs


def test_torch_and_native_engines_rewire_alike():
    out = []
    for engine in ("torch", "native"):
        net, rec, inputs = random_network()
        sim = nw.Simulator(net, engine=engine)
        sim.run(200, inputs=inputs)
        out.append((sim.neuron_state("cells"), synapses(rec), sim.rewiring_log.calls(rec.name)))
    (st_t, syn_t, log_t), (st_n, syn_n, log_n) = out
    for key in ("Ca", "Ca_euler", "Axon", "Den"):
        assert torch.allclose(st_t[key], st_n[key], rtol=1e-12, atol=1e-14), key
    assert syn_t == syn_n and len(syn_t) > 0
    assert all((log_t[k] == log_n[k]).all() for k in ("removed", "added"))
    assert log_t["removed"].sum() > 0


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"growth_curve": "exp"}, "growth_curve must be one of"),
        ({"growth_curve": "gaussian", "eps": 0.1, "eta": 0.1}, "eta != eps"),
        ({"growth_curve": "linear", "eps": 0.0}, "eps of a linear growth curve"),
        ({"growth_curve": "sigmoid", "psi": 0.0}, "psi"),
        ({"growth_rate": float("nan")}, "growth_rate"),
        ({"tau_vacant": 0.0}, "tau_vacant"),
        ({"z": -1.0}, "z must be"),
        ({"continuous": 1}, "continuous must be True or False"),
    ],
)
def test_bad_element_parameters_are_refused(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        nw.SynapticElement(**kwargs)


def test_bad_element_neurons_are_refused():
    axon = {"Axon": nw.SynapticElement()}
    with pytest.raises(ParameterError, match="spiking neuron"):
        nw.ElementNeuron(nw.SpikeSource(2), elements=axon)
    with pytest.raises(ParameterError, match="tau_Ca"):
        nw.ElementNeuron(nw.LIF(2), elements=axon, tau_Ca=0.0)
    with pytest.raises(ParameterError, match="beta_Ca"):
        nw.ElementNeuron(nw.LIF(2), elements=axon, beta_Ca=0.0)
    with pytest.raises(ParameterError, match="taken by a state variable"):
        nw.ElementNeuron(nw.LIF(2), elements={"v": nw.SynapticElement()})
    with pytest.raises(ParameterError, match="synaptic element 'Axon': .*unexpected"):
        nw.ElementNeuron(nw.LIF(2), elements={"Axon": {"growth": 1.0}})
    with pytest.raises(ParameterError, match="non-empty mapping"):
        nw.ElementNeuron(nw.LIF(2), elements={})


def test_bad_synapses_are_refused():
    net = nw.Network(dt=1.0)
    e = net.population("e", nw.ElementNeuron(nw.LIF(2), elements={"Axon": {}, "Den": {}}))
    i = net.population("i", nw.ElementNeuron(nw.LIF(2), elements={"Den": {}}))
    plain = net.population("plain", nw.LIF(2))
    ee = net.connect(e, e, nw.FixedProbability(0.0), capacity=2)
    ei = net.connect(e, i, nw.FixedProbability(0.0), capacity=2)
    ep = net.connect(e, plain, nw.FixedProbability(0.0), capacity=2)
    with pytest.raises(ParameterError, match="stores no autapses"):
        nw.SPSynapse("Axon", "Den", [ee])
    with pytest.raises(ParameterError, match="'i' has no synaptic element 'Axon'"):
        nw.SPSynapse(
            "Axon", "Den", [ei, net.connect(i, i, nw.FixedProbability(0.0))], allow_autapses=False
        )
    with pytest.raises(ParameterError, match="make its model an ElementNeuron"):
        nw.SPSynapse("Axon", "Den", [ep])
    spec = nw.SPSynapse("Axon", "Den", [ee, ei], allow_autapses=False)
    with pytest.raises(ParameterError, match="belongs to synapses 'a' and 'b'"):
        nw.HomeostaticRewiring({"a": spec, "b": nw.SPSynapse("Axon", "Den", [ei])})
    with pytest.raises(ParameterError, match="update_interval"):
        nw.HomeostaticRewiring({"a": spec}, update_interval=-1.0)


def test_a_missing_projection_between_paired_populations_is_refused():
    net = nw.Network(dt=1.0)
    both = {"Axon": {}, "Den": {}}
    e = net.population("e", nw.ElementNeuron(nw.LIF(2), elements=both))
    i = net.population("i", nw.ElementNeuron(nw.LIF(2), elements=both))
    ei = net.connect(e, i, nw.FixedProbability(0.0), capacity=2)
    ie = net.connect(i, e, nw.FixedProbability(0.0), capacity=2)
    with pytest.raises(ParameterError, match="exactly one projection 'e' -> 'e', got 0"):
        nw.SPSynapse("Axon", "Den", [ei, ie])


def test_bad_schedules_are_refused():
    net, rule, ac, bc = three_neurons()
    with pytest.raises(ParameterError, match="batch_size=1"):
        nw.Simulator(net, engine="torch", batch_size=2).run(1)
    net = nw.Network(dt=1.0)
    cells = net.population("c", nw.ElementNeuron(nw.LIF(2), elements={"Axon": {}, "Den": {}}))
    rec = net.connect(cells, cells, nw.FixedProbability(0.0, autapses=True), capacity=2)
    rule = nw.HomeostaticRewiring({"s": nw.SPSynapse("Axon", "Den", [rec])}, 15.0)
    net.add_rule(rule, rec, every=10)
    with pytest.raises(ParameterError, match="not a multiple of the rule's period"):
        nw.Simulator(net, engine="torch").run(20)
    net2 = nw.Network(dt=0.3)
    cells = net2.population("c", nw.ElementNeuron(nw.LIF(2), elements={"Axon": {}, "Den": {}}))
    rec = net2.connect(cells, cells, nw.FixedProbability(0.0, autapses=True), capacity=2)
    net2.add_rule(nw.HomeostaticRewiring({"s": nw.SPSynapse("Axon", "Den", [rec])}, 1.0), rec)
    with pytest.raises(ParameterError, match="whole number of steps"):
        nw.Simulator(net2, engine="torch").run(1)
    net3 = nw.Network(dt=1.0)
    cells = net3.population("c", nw.ElementNeuron(nw.LIF(2), elements={"Axon": {}, "Den": {}}))
    rec = net3.connect(cells, cells, nw.FixedProbability(0.0, autapses=True), capacity=2)
    other = net3.connect(cells, cells, nw.FixedProbability(0.0), capacity=2, name="other")
    net3.add_rule(nw.HomeostaticRewiring({"s": nw.SPSynapse("Axon", "Den", [rec])}), other)
    with pytest.raises(ParameterError, match="scheduled on 'other'"):
        nw.Simulator(net3, engine="torch").run(1)
