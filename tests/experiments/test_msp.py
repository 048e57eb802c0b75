"""``neurowire msp``: NEST's structural plasticity example (its network, parameter for parameter,
against what NEST reported for it), what a tiny run writes, when connections are read, the
lesion, and bad flags (one line on stderr, exit status 2)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

import neurowire as nw
from neurowire import cli
from neurowire.experiments import msp, msp_lesion
from neurowire.structural.homeostatic import MULTIPLICITY

NEST_RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
#: a tiny run: 4 records of 5 ms, rewiring every 10 ms
TINY = [
    "--duration",
    "0.02",
    "--record-every",
    "5",
    "--update-interval",
    "10",
    "--engine",
    "torch",
    "--no-progress",
]


def tiny_config(**changes) -> msp.MspConfig:
    settings = dict(duration_s=0.02, record_every_ms=5.0, update_interval_ms=10.0, engine="torch")
    settings.update(changes)
    return msp.MspConfig(**settings)


# ---------------------------------------------------------------------- the network
@pytest.fixture(scope="module")
def example() -> msp.MspNetwork:
    """The network with the example's settings."""
    return msp.build(msp.MspConfig())


def test_the_network_has_the_example_sizes_and_nest_parameters(example):
    nest = json.loads((NEST_RESULTS / "msp_nest_3seeds.json").read_text())
    config, reported = nest["config"], nest["nest_parameters"]
    net = example.net
    assert net.dt == reported["kernel"]["resolution"] and net.dtype == torch.float64
    assert {p: net.populations[p].n for p in ("E", "I")} == {
        "E": config["n_e"],
        "I": config["n_i"],
    }
    neuron = reported["iaf_psc_alpha"]
    for pop in ("E", "I"):
        model = net.populations[pop].model
        assert isinstance(model.neuron, nw.IafPsc)
        mine = {
            "C_m": model.c_m,
            "tau_m": model.tau_m,
            "t_ref": model.t_ref,
            "E_L": model.e_l,
            "V_reset": model.v_reset,
            "V_th": model.v_th,
            "V_m": model.v_init,
            "I_e": model.i_e,
            "tau_Ca": model.tau_Ca,
            "beta_Ca": model.beta_Ca,
            "Ca": model.Ca,
        }
        assert mine == {k: neuron[k] for k in mine}
        assert model.v_min == -math.inf and neuron["V_min"] == "-inf"
        elements = config["synaptic_elements"][pop]
        assert model.element_names == tuple(elements)
        for name, spec in elements.items():
            element = model.element(name)
            assert {k: getattr(element, k) for k in spec} == spec
            assert element.tau_vacant == 0.1 and element.z == 0.0
    for proj in net.projections.values():
        assert isinstance(proj.psc, nw.Alpha) and proj.psc.tau_syn == neuron["tau_syn_ex"]
        assert proj.psc.tau_syn == neuron["tau_syn_in"] and proj.psc.tau_m == neuron["tau_m"]


def test_each_neuron_gets_its_own_drive_of_the_example_rate_weight_and_delay(example):
    drive = example.net.populations["drive"].model
    assert isinstance(drive, nw.PoissonGenerator)
    assert drive.n == 1000 and drive.rate_hz == 10000.0
    sources = []
    for proj in example.drive.values():
        pre, post = proj.synapses.coo()
        assert torch.equal(post.sort().values, torch.arange(proj.post.n))  # one each
        assert bool((proj.synapses.values("weight") == 6.2).all())
        assert proj.delay_steps == 10  # 1 ms
        sources.append(pre)
    assert torch.equal(torch.cat(sources).sort().values, torch.arange(1000))


def test_the_structural_synapses_are_the_examples(example):
    rule = example.rule
    assert rule.update_interval == 10000.0
    assert sorted(rule.synapses) == ["synapse_ex", "synapse_in"]
    for name, (pre, axon, den, weight) in {
        "synapse_ex": ("E", "Axon_ex", "Den_ex", 585.0),
        "synapse_in": ("I", "Axon_in", "Den_in", -585.0),
    }.items():
        spec = rule.synapses[name]
        assert (spec.pre_synaptic_element, spec.post_synaptic_element) == (axon, den)
        assert spec.weight == weight and spec.allow_autapses and spec.allow_multapses
        assert [(p.pre.name, p.post.name) for p in spec.projections] == [(pre, "E"), (pre, "I")]
    for proj in example.structural.values():
        assert proj.synapses.nnz == 0  # no initial connections
        assert proj.synapses.autapses and proj.delay_steps == 10
    # one element update per 1,000 ms chunk; the probe reads before the rule runs
    scheduled = example.net.rules
    assert [s.rule for s in scheduled] == [example.probe, rule]
    assert [s.every for s in scheduled] == [10000, 10000]


def test_rows_hold_every_target_a_neuron_can_grow_axons_for():
    # axonal elements grow by at most 1e-4 per ms: 20 in 200 s, at most 20 targets per row
    assert msp.row_capacity("E", "E", 200000.0) == 21
    assert msp.row_capacity("I", "E", 1e9) == 800 and msp.row_capacity("E", "I", 1e9) == 200


def test_parameters_name_the_examples_delay_and_drive():
    params = msp.parameters(msp.MspConfig())
    assert params["delay_ms"] == 1.0 and params["w_ext_pa"] == 6.2
    assert params["bg_rate_hz"] == 10000.0 and "PoissonGenerator" in params["drive"]
    assert params["ca_targets"] == {"E": 0.05, "I": 0.2}


# ---------------------------------------------------------------------- a run
def test_a_tiny_run_writes_the_summary_and_the_figure(tmp_path, capsys):
    out = tmp_path / "run"
    summary = cli.main(["msp", *TINY, "--seed", "3", "--out", str(out)])
    assert summary == 0
    assert "outputs in" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["msp.png", "run.json", "summary.json"]
    saved = json.loads((out / "summary.json").read_text())
    curves = saved["curves"]
    assert curves["t_ms"] == [5.0, 10.0, 15.0, 20.0]
    keys = {"mean_ca_e", "mean_ca_i", "total_connections_e", "total_connections_i"}
    keys |= {"e_to_e", "e_to_i", "i_to_e", "i_to_i", "rate_e_hz", "rate_i_hz"}
    assert set(curves) == keys | {"t_ms"}
    assert all(len(curves[k]) == 4 for k in keys)
    assert saved["config"]["seed"] == 3 and saved["engine"] == "torch"
    assert saved["model_s"] == pytest.approx(0.02)
    assert saved["real_time_factor"] > 0 and saved["wall_s"] >= saved["loop_s"] > 0
    assert saved["parameters"]["n"] == {"E": 800, "I": 200}
    final = saved["final_synapses"]  # at the last record, as the curves
    assert final["synapse_ex"]["synapses"] == curves["total_connections_e"][-1]
    assert final["synapse_in"]["synapses"] == curves["total_connections_i"][-1]
    img = mpimg.imread(out / "msp.png")
    assert img.shape[:2] == (700, 1100) and img[..., :3].std() > 0.01


def test_calcium_and_rates_are_read_at_the_end_of_each_interval():
    cfg = tiny_config(duration_s=0.01)
    done = msp.simulate(cfg)
    c = msp.curves(done.records, cfg.record_every_ms)
    spikes = done.records.spikes["E"]
    assert c["rate_e_hz"] == pytest.approx([s.sum() / 800 / 5e-3 for s in spikes])
    # calcium: beta_Ca = 0.001 per spike, decayed by at most exp(-10 ms / tau_Ca) since
    assert c["mean_ca_e"][-1] == pytest.approx(
        sum(s.sum() for s in spikes) * 1e-3 / 800, rel=1.1e-3
    )


def test_connections_are_read_before_the_rewiring_due_at_that_time(device):
    """Elements added by hand after the first record pair at the rewiring at 10 ms: the record
    at 10 ms still shows none (NEST's script reads before its next Simulate rewires), the one
    at 15 ms shows them, and the rule's log adds them at 10 ms. (Built for 100 s, so that rows
    hold the elements given by hand.)"""
    model = msp.build(tiny_config(duration_s=100.0))
    sim = nw.Simulator(model.net, device=device, engine="torch")
    sim.run(50)
    for pop, names in (("E", ("Axon_ex", "Den_ex")),):
        state = sim.neuron_state(pop)
        for name in names:
            state[name] += 2.0
    sim.run(50)
    records = model.probe.records
    assert records.t_ms == [5.0, 10.0]
    assert [int(c.sum()) for c in records.connected[("E", "Axon_ex")]] == [0, 0]
    assert int(model.rule.connected()[("E", "Axon_ex")].sum()) == 1600
    sim.run(50)
    assert int(records.connected[("E", "Axon_ex")][-1].sum()) == 1600
    assert [r["synapse_ex"]["synapses"] for r in records.synapses] == [0, 0, 1600]
    calls = sim.rewiring_log.calls("E->E")
    added_at = calls["step"][calls["added"] > 0]
    assert added_at.tolist() == [100]
    assert np.array_equal(records.ca["E"][-1], sim.neuron_state("E")["Ca"][0].cpu().numpy())


def test_synapse_counts_count_autapses_and_multapses_as_nest_does():
    model = msp.build(tiny_config(duration_s=100.0))
    for proj in model.structural.values():
        proj.synapses.add_var(MULTIPLICITY, init=1, dtype=torch.int32)
    ee, ei = model.structural["E->E"].synapses, model.structural["E->I"].synapses
    ee.add(torch.tensor([0, 0, 3]), torch.tensor([0, 5, 3]), multiplicity=torch.tensor([2, 1, 3]))
    ei.add(torch.tensor([1]), torch.tensor([7]), multiplicity=torch.tensor([4]))
    got = msp.synapse_counts(model.rule)
    assert got["synapse_ex"] == {"synapses": 10, "autapses": 5, "multapses": 6}
    assert got["synapse_in"] == {"synapses": 0, "autapses": 0, "multapses": 0}


# ---------------------------------------------------------------------- the lesion
def test_choose_draws_round_fraction_of_each_population_by_seed():
    a = msp_lesion.choose({"E": 800, "I": 200}, 0.25, seed=4)
    b = msp_lesion.choose({"E": 800, "I": 200}, 0.25, seed=4)
    c = msp_lesion.choose({"E": 800, "I": 200}, 0.25, seed=5)
    assert {p: int(m.sum()) for p, m in a.items()} == {"E": 200, "I": 50}
    assert all(torch.equal(a[p], b[p]) for p in a)
    assert not torch.equal(a["E"], c["E"])


def test_an_input_lesion_removes_the_drive_of_the_chosen_neurons_and_nothing_else():
    model = msp.build(tiny_config())
    chosen = msp_lesion.choose(msp.SIZES, 0.3, seed=1)
    weights = {pop: proj.synapses.values("weight").clone() for pop, proj in model.drive.items()}
    removed = msp_lesion.remove_onto(model.drive.values(), chosen)
    assert removed == {"drive->E": 240, "drive->I": 60}
    for pop, proj in model.drive.items():
        _, post = proj.synapses.coo()
        per_target = torch.bincount(post, minlength=proj.post.n)
        assert torch.equal(per_target, torch.where(chosen[pop], 0, 1))
        assert bool((proj.synapses.values("weight") == 6.2).all())
        assert weights[pop].numel() - proj.synapses.nnz == removed[proj.name]


def test_a_recurrent_lesion_removes_every_synapse_onto_the_chosen_neurons_counting_multapses():
    model = msp.build(tiny_config(duration_s=1000.0))  # rows of 101 slots
    generator = torch.Generator().manual_seed(2)
    before = {}
    for name, proj in model.structural.items():
        store = proj.synapses
        store.add_var(MULTIPLICITY, init=1, dtype=torch.int32)
        k = 60
        pre = torch.randint(proj.pre.n, (k,), generator=generator)
        post = torch.randint(proj.post.n, (k,), generator=generator)
        mult = torch.randint(1, 4, (k,), generator=generator, dtype=torch.int32)
        store.add(pre, post, on_duplicate="skip", on_full="skip", multiplicity=mult)
        p, q = store.coo()
        before[name] = (p, q, store.values(MULTIPLICITY))
    chosen = msp_lesion.choose(msp.SIZES, 0.5, seed=3)
    removed = msp_lesion.remove_onto(model.structural.values(), chosen)
    for name, proj in model.structural.items():
        p, q, m = before[name]
        hit = chosen[proj.post.name][q]
        assert removed[name] == int(m[hit].sum()) > 0
        p2, q2 = proj.synapses.coo()
        assert torch.equal(p2, p[~hit]) and torch.equal(q2, q[~hit])
        assert torch.equal(proj.synapses.values(MULTIPLICITY), m[~hit])


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["torch", "native"])
def test_deafferented_neurons_fall_silent_while_the_others_fire(engine, tmp_path):
    """Half the neurons lose their drive at 10 ms; no recurrent synapse exists yet, so from one
    interval on (the alpha currents fade) they fire no spike, while the intact ones fire."""
    if engine == "native":
        pytest.importorskip("numba")
    cfg = tiny_config(
        duration_s=0.05,
        engine=engine,
        lesion=msp_lesion.LesionSpec(0.01, 0.5),
    )
    s = msp.run(cfg, tmp_path / "run", progress=False)
    les = s["lesion"]
    assert les["kind"] == "input" and les["t_s"] == 0.01
    assert les["neurons"] == {"E": 400, "I": 100}
    assert les["removed"] == {"drive->E": 400, "drive->I": 100}
    groups = les["groups"]
    assert set(groups) == {"E lesioned", "E intact", "I lesioned", "I intact"}
    t = s["curves"]["t_ms"]
    late = [i for i, ti in enumerate(t) if ti > 20.0]
    for pop in ("E", "I"):
        assert all(groups[f"{pop} lesioned"]["rate_hz"][i] == 0.0 for i in late)
        assert sum(groups[f"{pop} intact"]["rate_hz"][i] for i in late) > 0
    measures = les["measures"]["E lesioned"]["rate_hz"]
    assert measures["minimum"] == 0.0 and measures["final"] == 0.0
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "lesion.png",
        "msp.png",
        "run.json",
        "summary.json",
    ]
    img = mpimg.imread(tmp_path / "run" / "lesion.png")
    assert img.shape[:2] == (700, 1100) and img[..., :3].std() > 0.01


def test_summarise_measures_the_fall_and_the_recovery():
    groups = {
        "E lesioned": {k: [4.0, 4.0, 1.0, 2.0, 3.0] for k in ("ca", "rate_hz", "in_ex", "in_in")}
    }
    m = msp_lesion.summarise([1000.0, 2000.0, 3000.0, 4000.0, 5000.0], groups, 2.0)
    ca = m["E lesioned"]["ca"]
    assert ca == {
        "before": 4.0,
        "minimum": 1.0,
        "minimum_t_s": 3.0,
        "final": 3.0,
        "recovered": pytest.approx(2.0 / 3.0),
    }


# ---------------------------------------------------------------------- bad flags
def fails(argv: list[str], capsys) -> str:
    """Run ``neurowire argv``; assert status 2 and exactly one line on stderr; return it."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2, capsys.readouterr().err
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


BAD_FLAGS = {
    "zero duration": (["--duration", "0"], "--duration"),
    "negative duration": (["--duration", "-5"], "--duration"),
    "duration not whole records": (["--duration", "2.5"], "whole number of --record-every"),
    "record interval below a step": (["--record-every", "0.05"], "--record-every"),
    "record interval not whole steps": (["--record-every", "0.15"], "steps of dt"),
    "update interval not whole records": (["--update-interval", "1500"], "--update-interval"),
    "lesion without colon": (["--lesion", "100"], "expected T:FRACTION"),
    "lesion not a number": (["--lesion", "a:0.2"], "expected T:FRACTION"),
    "lesion after the run": (["--lesion", "200:0.2"], "--lesion T"),
    "lesion at zero": (["--lesion", "0:0.2"], "--lesion T"),
    "lesion between records": (["--lesion", "100.5:0.2"], "multiple of --record-every"),
    "lesion fraction zero": (["--lesion", "100:0"], "--lesion FRACTION"),
    "lesion fraction above one": (["--lesion", "100:1.5"], "--lesion FRACTION"),
    "lesion kind alone": (["--lesion-kind", "recurrent"], "--lesion-kind needs --lesion"),
    "unknown lesion kind": (["--lesion", "100:0.2", "--lesion-kind", "all"], "--lesion-kind"),
    "unknown engine": (["--engine", "fast"], "--engine"),
    "negative seed": (["--seed", "-1"], "--seed"),
    "unknown option": (["--durations", "5"], "unrecognized arguments"),
}


@pytest.mark.parametrize("case", list(BAD_FLAGS))
def test_a_bad_flag_is_one_line_naming_it_and_nothing_is_written(case, tmp_path, capsys):
    flags, needle = BAD_FLAGS[case]
    out = tmp_path / "out"
    line = fails(["msp", *flags, "--out", str(out)], capsys)
    assert line.startswith("neurowire msp: error: ") and needle in line, line
    assert not out.exists()


def test_a_folder_holding_a_run_is_refused_unless_overwritten(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    line = fails(["msp", *TINY, "--out", str(out)], capsys)
    assert "already holds a run" in line and "--overwrite" in line
    assert (out / "summary.json").read_text() == "{}"
    assert cli.main(["msp", *TINY, "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "summary.json").read_text())["curves"]["t_ms"][-1] == 20.0
