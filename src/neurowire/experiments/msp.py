"""NEST's structural plasticity example in neurowire (``neurowire msp``), with an optional lesion.

The network of NEST 3.10's ``pynest/examples/structural_plasticity.py`` (Butz & van Ooyen's
homeostatic rule, :class:`~neurowire.HomeostaticRewiring`), parameter for parameter:

* 800 excitatory (E) and 200 inhibitory (I) ``iaf_psc_alpha`` neurons with NEST's defaults
  (:class:`~neurowire.IafPsc` and :class:`~neurowire.Alpha`, ``tau_syn`` 2 ms), float64, no
  initial connections;
* a Poisson drive of 10 kHz onto every neuron, each target its own train
  (:class:`~neurowire.PoissonGenerator`: a Poisson count of spikes per step), weight 6.2 pA;
* structural synapses ``synapse_ex`` (``Axon_ex`` -> ``Den_ex``, +585 pA, from E onto E and I)
  and ``synapse_in`` (``Axon_in`` -> ``Den_in``, -585 pA, from I onto E and I), autapses and
  multapses allowed; every synapse (the drive's too) with a delay of 1 ms;
* gaussian growth curves (``eta = 0``, not continuous, ``tau_vacant`` 0.1): on E, ``Den_ex``,
  ``Den_in`` and ``Axon_ex`` at 1e-4 elements/ms with ``eps = 0.05``; on I, ``Den_ex`` at
  4e-4/ms, ``Den_in`` and ``Axon_in`` at 1e-4/ms, with ``eps = 0.2``; calcium ``tau_Ca``
  10,000 ms, ``beta_Ca`` 0.001;
* resolution 0.1 ms; the example simulates in chunks of 1,000 ms (NEST updates every neuron's
  calcium and elements at the end of each ``Simulate``: here one rule call per chunk) and
  rewires every 10,000 ms from ``t = 0``; 200 s in all.

Recorded after every chunk, as the example records between its ``Simulate`` calls (keys as in
``benchmarks/nest_msp_example.py``): ``mean_ca_e``, ``mean_ca_i``, ``total_connections_e`` (the
connected ``Axon_ex`` elements of E: the excitatory synapses, multapses counted),
``total_connections_i`` (``Axon_in`` of I), the synapses per pair of populations (``e_to_e``,
``e_to_i``, ``i_to_e``, ``i_to_i``) and the mean rates over the chunk (``rate_e_hz``,
``rate_i_hz``). Connections are read before the rewiring due at that time (:class:`Probe` runs
before the rule), as the example reads them before its next ``Simulate`` makes that update.

Calcium readout: NEST reports a neuron's calcium as of its last update, and it updates every
neuron at the end of each ``Simulate``; so what the example reads after a chunk is the calcium
decayed to the chunk's end (checked in NEST 3.10: ``benchmarks/check_nest_ca_readout.py``).
neurowire's calcium decays every step, so its value at the chunk's end is NEST's readout.

``--lesion T:FRACTION`` cuts part of the network at ``T`` s (:mod:`.msp_lesion` says exactly
what). Writes ``summary.json`` (parameters, timings, curves), ``msp.png`` and, with a lesion,
``lesion.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import neurowire as nw
from neurowire import checks
from neurowire.analysis.homeostasis import plot_lesion_recovery, plot_msp_curves
from neurowire.experiments import msp_lesion, options
from neurowire.experiments.outputs import OutputError, RunFolder
from neurowire.structural.homeostatic import MULTIPLICITY

# ---------------------------------------------------------------------- the example's parameters
SIZES = {"E": 800, "I": 200}
DT_MS = 0.1
RECORD_EVERY_MS = 1000.0  # the example's Simulate chunk
UPDATE_INTERVAL_MS = 10000.0
DURATION_S = 200.0
BG_RATE_HZ = 10000.0
W_EXT_PA = 6.2
W_E_PA = 585.0
W_I_PA = -585.0
TAU_SYN_MS = 2.0
TAU_CA_MS = 10000.0
BETA_CA = 0.001
DELAY_MS = 1.0  # every synapse, the drive's too
MAX_DURATION_S = 1e6
#: the axonal element and the weight of the synapses of each population
AXON = {"E": "Axon_ex", "I": "Axon_in"}
WEIGHT_PA = {"E": W_E_PA, "I": W_I_PA}
#: structural-plasticity synapse name -> (source population, axonal and dendritic element)
SP_SYNAPSES = {"synapse_ex": ("E", "Axon_ex", "Den_ex"), "synapse_in": ("I", "Axon_in", "Den_in")}


def gaussian(growth_rate: float, eps: float) -> dict[str, Any]:
    """A gaussian growth curve of the example: ``growth_rate`` [elements/ms], target ``eps``."""
    return {
        "growth_curve": "gaussian",
        "growth_rate": growth_rate,
        "eps": eps,
        "eta": 0.0,
        "continuous": False,
    }


#: synaptic elements per population (NEST's ``synaptic_elements`` dictionaries)
ELEMENTS = {
    "E": {
        "Den_ex": gaussian(1e-4, 0.05),
        "Den_in": gaussian(1e-4, 0.05),
        "Axon_ex": gaussian(1e-4, 0.05),
    },
    "I": {
        "Den_ex": gaussian(4e-4, 0.2),
        "Den_in": gaussian(1e-4, 0.2),
        "Axon_in": gaussian(1e-4, 0.2),
    },
}
#: calcium targets: the ``eps`` of each population's axonal element
TARGETS = {pop: ELEMENTS[pop][AXON[pop]]["eps"] for pop in SIZES}


# ---------------------------------------------------------------------- settings
@dataclass
class MspConfig:
    """Settings of one run; every default is the example's value.

    Times: ``duration_s`` [s], ``record_every_ms`` (the ``Simulate`` chunk: one record and one
    element update each) and ``update_interval_ms`` (rewiring) [ms]. ``lesion``: a
    :class:`~.msp_lesion.LesionSpec` or None.
    """

    duration_s: float = DURATION_S
    seed: int = 0
    device: str = "cpu"
    engine: str = "auto"
    record_every_ms: float = RECORD_EVERY_MS
    update_interval_ms: float = UPDATE_INTERVAL_MS
    lesion: msp_lesion.LesionSpec | None = None

    def __post_init__(self) -> None:
        self.seed = checks.check_seed("--seed", self.seed)
        self.duration_s = checks.check_number(
            "--duration [s]", self.duration_s, low=0.0, high=MAX_DURATION_S, low_open=True
        )
        self.record_every_ms = checks.check_number(
            "--record-every [ms]", self.record_every_ms, low=DT_MS, high=MAX_DURATION_S * 1e3
        )
        _whole("--record-every", self.record_every_ms, DT_MS, "steps of dt = 0.1 ms")
        _whole("--duration", self.duration_s * 1000.0, self.record_every_ms, "--record-every")
        self.update_interval_ms = checks.check_number(
            "--update-interval [ms]", self.update_interval_ms, low=DT_MS, high=MAX_DURATION_S * 1e3
        )
        _whole("--update-interval", self.update_interval_ms, self.record_every_ms, "--record-every")
        if self.engine not in nw.simulator.ENGINES:
            raise ValueError(f"--engine must be one of {nw.simulator.ENGINES}, got {self.engine!r}")
        try:
            options.check_device(self.device)
        except options.DeviceError as err:
            raise ValueError(f"--device {err}") from None
        if self.lesion is not None:
            self.lesion = self.lesion.check(self.duration_s, self.record_every_ms)

    @property
    def steps_per_record(self) -> int:
        return int(round(self.record_every_ms / DT_MS))

    @property
    def records(self) -> int:
        return int(round(self.duration_s * 1000.0 / self.record_every_ms))


def _whole(flag: str, value_ms: float, unit_ms: float, unit: str) -> None:
    """Refuse ``value_ms`` unless it is a whole number (>= 1) of ``unit_ms``."""
    count = value_ms / unit_ms
    if round(count) < 1 or not math.isclose(count, round(count), rel_tol=1e-9):
        raise ValueError(
            f"{flag} must be a whole number of {unit} ({unit_ms:g} ms), got {value_ms:g} ms"
        )


def iaf_parameters() -> dict[str, Any]:
    """The neuron's parameters (``nw.IafPsc``'s names and units, infinities as strings) and the
    synaptic time constant [ms]."""
    params = {k: v for k, v in asdict(nw.IafPsc(1)).items() if k not in ("n", "grid")}
    params = {k: str(v) if v in (math.inf, -math.inf) else v for k, v in params.items()}
    return params | {"tau_syn": TAU_SYN_MS}


def parameters(cfg: MspConfig) -> dict[str, Any]:
    """Every parameter of the run's network."""
    return {
        "n": SIZES,
        "neuron": "iaf_psc_alpha: nw.IafPsc (NEST's defaults) + nw.Alpha(tau_syn)",
        "iaf_psc_alpha": iaf_parameters(),
        "dt_ms": DT_MS,
        "record_every_ms": cfg.record_every_ms,
        "update_interval_ms": cfg.update_interval_ms,
        "bg_rate_hz": BG_RATE_HZ,
        "w_ext_pa": W_EXT_PA,
        "w_pa": WEIGHT_PA,
        "delay_ms": DELAY_MS,
        "tau_ca_ms": TAU_CA_MS,
        "beta_ca": BETA_CA,
        "synaptic_elements": ELEMENTS,
        "ca_targets": TARGETS,
        "sp_synapses": {
            name: {"pre": pre, "pre_synaptic_element": axon, "post_synaptic_element": den}
            for name, (pre, axon, den) in SP_SYNAPSES.items()
        },
        "autapses": True,
        "multapses": True,
        "drive": "nw.PoissonGenerator: one Poisson count per target and step",
        "ca_readout": "calcium at the end of each record interval, NEST's readout after a "
        "Simulate call (NEST updates every neuron's calcium at the end of Simulate)",
    }


# ---------------------------------------------------------------------- the network
def synapse_counts(rule: nw.HomeostaticRewiring) -> dict[str, dict[str, int]]:
    """Synapses of each structural-plasticity synapse of ``rule``, as NEST counts them: all,
    autapses (source = target) and multapses (synapses beyond the first between a pair)."""
    out = {}
    for name, spec in rule.synapses.items():
        total = autapses = multapses = 0
        for proj in spec.projections:
            store = proj.synapses
            copies = torch.where(store.live, store.vars[MULTIPLICITY].long(), 0)
            total += int(copies.sum())
            multapses += int((copies - 1).clamp(min=0).sum())
            if proj.pre is proj.post:
                rows = torch.arange(store.n_pre, device=copies.device)[:, None]
                autapses += int(copies[store.ind == rows].sum())
        out[name] = {"synapses": total, "autapses": autapses, "multapses": multapses}
    return out


class Probe(nw.StructuralRule):
    """Reads calcium and connected elements where the example records: after a chunk's last
    step, before the rewiring due then (schedule it before the rule, on a projection from E to
    I; it changes nothing).

    Attributes:
        records: the :class:`MspRecords` it appends to.
    """

    def __init__(self, rule: nw.HomeostaticRewiring, records: MspRecords) -> None:
        self.rule = rule
        self.records = records

    def atomic(self, view: nw.SynapseView) -> bool:
        return True

    def update(self, view: nw.SynapseView, ctx: nw.RuleContext) -> None:
        ca = {"E": view.pre_state["Ca"][0], "I": view.post_state["Ca"][0]}
        self.records.add(ctx.t, ca, self.rule.connected(), synapse_counts(self.rule))


@dataclass
class MspRecords:
    """Per-neuron records at every record time: ``t_ms``, calcium ``ca[pop]``, connected
    elements ``connected[(pop, element)]`` and spike counts ``spikes[pop]`` of the interval
    that ends there (numpy ``[n]`` per record), and the :func:`synapse_counts` ``synapses``."""

    t_ms: list[float] = field(default_factory=list)
    ca: dict[str, list[np.ndarray]] = field(default_factory=dict)
    connected: dict[tuple[str, str], list[np.ndarray]] = field(default_factory=dict)
    spikes: dict[str, list[np.ndarray]] = field(default_factory=dict)
    synapses: list[dict[str, dict[str, int]]] = field(default_factory=list)

    def add(
        self,
        t_ms: float,
        ca: Mapping[str, torch.Tensor],
        connected: Mapping,
        synapses: dict[str, dict[str, int]],
    ) -> None:
        self.t_ms.append(float(t_ms))
        self.synapses.append(synapses)
        for pop, values in ca.items():
            self.ca.setdefault(pop, []).append(values.detach().cpu().numpy().copy())
        for key, values in connected.items():
            self.connected.setdefault(key, []).append(values.cpu().numpy().copy())

    def add_spikes(self, spikes: Mapping[str, torch.Tensor]) -> None:
        """Spike counts of the interval that just ended, from ``[1, T, n]`` records."""
        for pop, z in spikes.items():
            self.spikes.setdefault(pop, []).append(z[0].sum(0).cpu().numpy().astype(np.int64))

    def arrays(self, record_every_ms: float) -> dict[str, Any]:
        """``ca[pop]``, ``rate_hz[pop]`` [Hz] and ``connected[(pop, element)]``, ``[R, n]``."""
        return {
            "t_ms": np.asarray(self.t_ms),
            "ca": {pop: np.stack(v) for pop, v in self.ca.items()},
            "rate_hz": {
                pop: np.stack(v) / (record_every_ms * 1e-3) for pop, v in self.spikes.items()
            },
            "connected": {key: np.stack(v) for key, v in self.connected.items()},
        }


@dataclass(eq=False)
class MspNetwork:
    """The example's network: ``net``, its ``rule`` and ``probe``, the structural projections
    by name (``"E->E"``, ...) and the drive projections by target population."""

    net: nw.Network
    rule: nw.HomeostaticRewiring
    probe: Probe
    structural: dict[str, nw.Projection]
    drive: dict[str, nw.Projection]


def element_neuron(pop: str) -> nw.ElementNeuron:
    """An ``iaf_psc_alpha`` neuron of population ``pop`` with its synaptic elements."""
    return nw.ElementNeuron(
        nw.IafPsc(SIZES[pop]), elements=ELEMENTS[pop], tau_Ca=TAU_CA_MS, beta_Ca=BETA_CA
    )


def row_capacity(pre: str, post: str, duration_ms: float) -> int:
    """Slots per row of the structural projection ``pre -> post`` for a run of ``duration_ms``:
    a row holds one slot per target (multapses share it) and a neuron's axonal elements grow by
    at most ``growth_rate`` per ms (a growth curve never exceeds 1), so it never connects to
    more than ``floor(growth_rate * duration_ms)`` targets; capped at the target count."""
    rate = ELEMENTS[pre][AXON[pre]]["growth_rate"]
    return min(SIZES[post], math.floor(rate * duration_ms) + 1)


def build(cfg: MspConfig) -> MspNetwork:
    """The network of one run, its rule and its probe (scheduled every record interval)."""
    net = nw.Network(dt=DT_MS, seed=cfg.seed, dtype=torch.float64)
    pops = {pop: net.population(pop, element_neuron(pop)) for pop in SIZES}
    source = net.population("drive", nw.PoissonGenerator(sum(SIZES.values()), rate_hz=BG_RATE_HZ))
    drive, first = {}, 0
    for pop, target in pops.items():  # generator neurons first .. first + n - 1 onto pop
        pairs = nw.FromArrays(first + torch.arange(target.n), torch.arange(target.n))
        first += target.n
        drive[pop] = net.connect(
            source, target, pairs, weight=W_EXT_PA, psc=nw.Alpha(TAU_SYN_MS), delay=DELAY_MS
        )
    structural = {
        f"{pre}->{post}": net.connect(
            pops[pre],
            pops[post],
            nw.FixedProbability(0.0, autapses=True),
            weight=WEIGHT_PA[pre],
            psc=nw.Alpha(TAU_SYN_MS),
            capacity=row_capacity(pre, post, cfg.duration_s * 1000.0),
            delay=DELAY_MS,
        )
        for pre in SIZES
        for post in SIZES
    }
    synapses = {
        name: nw.SPSynapse(
            axon, den, [structural[f"{pre}->{post}"] for post in SIZES], weight=WEIGHT_PA[pre]
        )
        for name, (pre, axon, den) in SP_SYNAPSES.items()
    }
    rule = nw.HomeostaticRewiring(synapses, update_interval=cfg.update_interval_ms)
    probe = Probe(rule, MspRecords())
    net.add_rule(probe, structural["E->I"], every=cfg.steps_per_record)  # before the rule
    net.add_rule(rule, structural["E->E"], every=cfg.steps_per_record)
    return MspNetwork(net, rule, probe, structural, drive)


# ---------------------------------------------------------------------- running
@dataclass
class MspRun:
    """A finished simulation: the network, per-neuron records, timings [s], the synapses
    removed, added and failed per structural projection (NEST synapses), and the lesion."""

    model: MspNetwork
    records: MspRecords
    engine: str
    build_s: float
    loop_s: float
    timers_s: dict[str, float]
    rewiring: dict[str, dict[str, int]]
    lesion: dict[str, Any] | None = None
    chosen: dict[str, torch.Tensor] | None = None


def simulate(cfg: MspConfig, progress: bool = False) -> MspRun:
    """Build and run the network for ``cfg.duration_s``, one ``Simulator.run`` per record
    interval (with a progress bar over model time), applying the lesion when it is due."""
    tic = time.perf_counter()
    model = build(cfg)
    chosen = None
    if cfg.lesion is not None:
        chosen = msp_lesion.choose(SIZES, cfg.lesion.fraction, cfg.seed)
    sim = nw.Simulator(model.net, device=cfg.device, engine=cfg.engine)
    build_s = time.perf_counter() - tic
    record = {pop: ["spikes"] for pop in SIZES}
    lesion_at = None if cfg.lesion is None else round(cfg.lesion.t_s * 1000.0 / DT_MS)
    timers: dict[str, float] = {}
    lesion = None
    tic = time.perf_counter()
    bar = tqdm(total=cfg.duration_s, disable=not progress, unit="s", desc="model time")
    with bar:
        for _ in range(cfg.records):
            result = sim.run(cfg.steps_per_record, record=record)
            model.probe.records.add_spikes({pop: result.records[pop]["spikes"] for pop in SIZES})
            for key, value in result.timers_s.items():
                timers[key] = timers.get(key, 0.0) + value
            if sim.step_count == lesion_at:
                lesion = apply_lesion(cfg, model, chosen, sim.t)
            bar.update(cfg.record_every_ms / 1000.0)
    loop_s = time.perf_counter() - tic
    rewiring = {name: sim.rewiring_log.totals(name) for name in model.structural}
    return MspRun(
        model, model.probe.records, sim.engine, build_s, loop_s, timers, rewiring, lesion, chosen
    )


def apply_lesion(
    cfg: MspConfig, model: MspNetwork, chosen: dict[str, torch.Tensor], t_ms: float
) -> dict[str, Any]:
    """Remove what ``cfg.lesion`` says (:mod:`.msp_lesion`); returns what was removed."""
    spec = cfg.lesion
    onto = model.drive.values() if spec.kind == "input" else model.structural.values()
    removed = msp_lesion.remove_onto(onto, chosen)
    return {
        "t_s": t_ms / 1000.0,
        "fraction": spec.fraction,
        "kind": spec.kind,
        "neurons": {pop: int(mask.sum()) for pop, mask in chosen.items()},
        "lesioned": {pop: mask.nonzero().squeeze(1).tolist() for pop, mask in chosen.items()},
        "removed": removed,
    }


# ---------------------------------------------------------------------- results
def curves(records: MspRecords, record_every_ms: float) -> dict[str, list]:
    """The example's measures at every record time (keys as in NEST's script, see the module
    docstring), lists of length ``R``."""
    a = records.arrays(record_every_ms)
    conn = a["connected"]
    out: dict[str, list] = {"t_ms": [float(t) for t in a["t_ms"]]}
    for pop in SIZES:
        p = pop.lower()
        out[f"mean_ca_{p}"] = [float(x) for x in a["ca"][pop].mean(1)]
        out[f"total_connections_{p}"] = [int(x) for x in conn[(pop, AXON[pop])].sum(1)]
    for pre, den in (("e", "Den_ex"), ("i", "Den_in")):
        for post in SIZES:
            out[f"{pre}_to_{post.lower()}"] = [int(x) for x in conn[(post, den)].sum(1)]
    for pop in SIZES:
        out[f"rate_{pop.lower()}_hz"] = [float(x) for x in a["rate_hz"][pop].mean(1)]
    return out


#: What ``neurowire msp`` writes into ``--out`` (deleted by ``--overwrite``).
OUTPUTS = ("summary.json", "*.png")


def run_folder(cfg: MspConfig, out: str | Path) -> RunFolder:
    """``out`` as the :class:`~neurowire.experiments.outputs.RunFolder` of this run."""
    settings = {k: v for k, v in asdict(cfg).items() if k != "device"}
    return RunFolder(out, "msp", json.loads(json.dumps(settings)), OUTPUTS)


def run(
    cfg: MspConfig, out: str | Path, progress: bool = True, overwrite: bool = False
) -> dict[str, Any]:
    """Simulate and write every output into ``out``; returns the summary.

    ``out`` is refused (:class:`~neurowire.experiments.outputs.OutputError`) before any work
    if it holds a run, unless ``overwrite``. A run that fails or is interrupted removes what it
    wrote.
    """
    folder = run_folder(cfg, out)
    folder.check(resume=False, overwrite=overwrite)
    try:
        folder.start(overwrite=overwrite)
        done = simulate(cfg, progress)
        return write_outputs(cfg, folder, done)
    except BaseException:
        folder.discard()
        raise


def summary(cfg: MspConfig, done: MspRun) -> dict[str, Any]:
    """The run's ``summary.json``: settings, parameters, timings, curves, final synapses and
    the lesion's record, groups and measures."""
    model_s = cfg.duration_s
    compile_s = done.timers_s.get("compile", 0.0)
    out = {
        "command": "msp",
        "config": asdict(cfg),
        "parameters": parameters(cfg),
        "engine": done.engine,
        "model_s": model_s,
        "build_s": done.build_s,
        "loop_s": done.loop_s,
        "compile_s": compile_s,
        "wall_s": done.build_s + done.loop_s,
        # wall seconds per model second of the simulation loop, numba's compilation left out
        "real_time_factor": (done.loop_s - compile_s) / model_s,
        "timers_s": done.timers_s,
        # at the last record, before the rewiring due then (where NEST's script ends)
        "final_synapses": done.records.synapses[-1],
        "synapses_per_projection": {
            name: int(done.model.structural[name].synapses.nnz) for name in done.model.structural
        },
        "rewiring": done.rewiring,
        "curves": curves(done.records, cfg.record_every_ms),
    }
    if done.lesion is not None:
        arrays = done.records.arrays(cfg.record_every_ms)
        groups = msp_lesion.group_curves(arrays, done.chosen, AXON)
        out["lesion"] = {
            **done.lesion,
            "groups": groups,
            "measures": msp_lesion.summarise(out["curves"]["t_ms"], groups, done.lesion["t_s"]),
        }
    return out


def write_outputs(cfg: MspConfig, folder: RunFolder, done: MspRun) -> dict[str, Any]:
    """Write ``summary.json``, ``msp.png`` and (with a lesion) ``lesion.png``."""
    s = summary(cfg, done)
    plot_msp_curves(
        {f"neurowire (seed {cfg.seed})": [s["curves"]]},
        folder.file("msp.png"),
        targets=TARGETS,
        title=f"NEST's structural plasticity example in neurowire ({cfg.duration_s:g} s)",
    )
    if "lesion" in s:
        les = s["lesion"]
        plot_lesion_recovery(
            s["curves"]["t_ms"],
            les["groups"],
            les["t_s"] * 1000.0,
            folder.file("lesion.png"),
            targets=TARGETS,
            title=f"{les['kind']} lesion of {100 * les['fraction']:g} % of E and I at "
            f"{les['t_s']:g} s: lesioned vs intact neurons",
        )
    folder.write_text("summary.json", json.dumps(s, indent=1))
    return s


def print_summary(s: dict[str, Any]) -> None:
    c = s["curves"]
    print(
        f"msp: {s['model_s']:g} s model time in {s['loop_s']:.1f} s ({s['engine']}; "
        f"+ {s['build_s']:.1f} s build, {s['compile_s']:.1f} s compile in the loop): "
        f"real-time factor {s['real_time_factor']:.3f}"
    )
    print(
        f"  final mean Ca E {c['mean_ca_e'][-1]:.4f} (target {TARGETS['E']:g}), "
        f"I {c['mean_ca_i'][-1]:.4f} (target {TARGETS['I']:g}); connections E "
        f"{c['total_connections_e'][-1]}, I {c['total_connections_i'][-1]}"
    )
    if "lesion" in s:
        les = s["lesion"]
        print(
            f"  lesion ({les['kind']}) at {les['t_s']:g} s: {les['neurons']['E']} E and "
            f"{les['neurons']['I']} I neurons, {sum(les['removed'].values())} synapses removed"
        )
        for name, m in les["measures"].items():
            ca = m["ca"]
            print(
                f"    {name:12s} Ca {ca['before']:.4f} -> min {ca['minimum']:.4f} at "
                f"{ca['minimum_t_s']:g} s -> {ca['final']:.4f}; rate "
                f"{m['rate_hz']['before']:.2f} -> {m['rate_hz']['final']:.2f} Hz"
            )


# ---------------------------------------------------------------------- command line
def parser() -> argparse.ArgumentParser:
    d = MspConfig()
    p = options.ArgumentParser(
        prog="neurowire msp",
        description="NEST 3.10's structural plasticity example (homeostatic rewiring of 800 + "
        "200 iaf_psc_alpha neurons), with an optional lesion",
    )
    p.add_argument("--duration", type=float, default=d.duration_s, help="model time [s]")
    p.add_argument(
        "--seed", type=int, default=d.seed, help="seeds the drive, the rewiring, the lesion's draw"
    )
    p.add_argument(
        "--device",
        default=d.device,
        type=options.device_arg,
        help=f"torch device: {options.DEVICE_FORMS} (default cpu)",
    )
    p.add_argument("--engine", default=d.engine, choices=nw.simulator.ENGINES)
    p.add_argument(
        "--record-every",
        type=float,
        default=d.record_every_ms,
        help="record and update the elements every this many ms (the example's Simulate "
        "chunk: 1000)",
    )
    p.add_argument(
        "--update-interval",
        type=float,
        default=d.update_interval_ms,
        help="rewire every this many ms (the example: 10000), a multiple of --record-every",
    )
    p.add_argument(
        "--lesion",
        type=msp_lesion.lesion_arg,
        default=None,
        metavar="T:FRACTION",
        help="at T s, lesion a random FRACTION of the E and of the I neurons (see --lesion-kind)",
    )
    p.add_argument(
        "--lesion-kind",
        choices=msp_lesion.KINDS,
        default=None,
        help="input: remove the drive onto the lesioned neurons (default); recurrent: remove "
        "every structural synapse onto them",
    )
    p.add_argument("--out", default="runs/msp", help="output directory")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in --out: delete its summary and figures first",
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--debug", action="store_true", help="show the full traceback of an error or Ctrl-C"
    )
    return p


def config_from_args(args: argparse.Namespace) -> MspConfig:
    """The run's settings from parsed flags (a ``ValueError`` naming the bad flag)."""
    if args.lesion_kind is not None and args.lesion is None:
        raise ValueError("--lesion-kind needs --lesion T:FRACTION")
    lesion = None
    if args.lesion is not None:
        lesion = msp_lesion.LesionSpec(*args.lesion, kind=args.lesion_kind or "input")
    return MspConfig(
        duration_s=args.duration,
        seed=args.seed,
        device=args.device,
        engine=args.engine,
        record_every_ms=args.record_every,
        update_interval_ms=args.update_interval,
        lesion=lesion,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run ``neurowire msp``; returns the summary. A user-caused error prints one line and
    exits with status 2, Ctrl-C one line and status 130 (``--debug``: the traceback)."""
    args = parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as err:
        if args.debug:
            raise
        parser().error(str(err))
    try:
        result = run(cfg, args.out, progress=not args.no_progress, overwrite=args.overwrite)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(
            "neurowire msp: interrupted; the partial outputs were removed (run it again)",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
    except (checks.ParameterError, OutputError, OSError) as err:
        options.fail("msp", err, args.debug)
    print_summary(result)
    print(f"  outputs in {args.out}")
    return result
