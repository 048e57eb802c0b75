"""Topographic map formation by STDP and synaptic rewiring (``neurowire topomap``).

Two sheets of ``16*scale x 16*scale`` neurons on a torus: a Poisson source layer whose rates are
a Gaussian bump moved to a random place every 20 ms, and a conductance-based LIF target layer
with feed-forward (source->target) and lateral (target->target) projections, both plastic (STDP)
and both rewired by distance-dependent formation and weight-dependent elimination.

Variants:

* ``genn2025`` (Knight, Senk & Nowotny 2025): pairwise Gaussian initial connectivity, no maximum
  fan-in, elimination probabilities x50, ``10 * scale^2`` attempts per projection every 1 ms,
  refractory 5 ms, V_init ~ N(-60, 5) mV.
* ``bamford2010`` (Bamford et al. 2010): 16 + 16 initial afferents per target, a maximum fan-in
  of 32 shared by feed-forward and lateral synapses, one attempt per 0.1 ms step, the original
  elimination probabilities. Deviation: Bamford's neurons had no refractory period; without one,
  the lateral excitation (16 afferents at 0.2 per target) runs away here within 0.2 s (every
  target fires every 0.1 ms step, STDP pins the weights at their maximum), so this variant keeps
  the 5 ms of Bogdan et al. 2018 / GeNN 2025; ``--tau-refrac 0`` restores the original.

Built from the library's public pieces only. Writes ``summary.json``, connectivity snapshots,
the event log and figures into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import neurowire as nw
from neurowire import analysis, checks
from neurowire.analysis.plots import timing_fractions
from neurowire.experiments import options
from neurowire.experiments.outputs import OutputError, RunFolder
from neurowire.io import atomic_path

BLOCK = 16  # the stimulus pattern repeats on every 16 x 16 block
MAX_SCALE = 64  # 1,024 x 1,024 neurons per sheet
MAX_DURATION_S = 1e6  # model time
STIMULUS_MS = 20.0
G_MAX = 0.2
WEIGHT_UNIT = "µS"  # ExpCond conductances (I [nA] = g [µS] * (E - V) [mV], R = 1 MOhm)


@dataclass(frozen=True)
class Variant:
    """Parameters that differ between the two published versions of the model."""

    initial: str  # "pairwise" or "fan_in"
    p_elim_dep: float
    p_elim_pot: float
    rewire_every_ms: float
    attempts_per_block: int
    max_fan_in: int | None
    tau_refrac: float
    v_init_sd: float


VARIANTS = {
    "genn2025": Variant("pairwise", 0.0245 * 50, 1.36e-4 * 50, 1.0, 10, None, 5.0, 5.0),
    "bamford2010": Variant("fan_in", 0.0245, 1.36e-4, 0.1, 1, 32, 5.0, 0.0),
}


@dataclass
class TopomapConfig:
    """Settings of one run; every default is the published value."""

    variant: str = "genn2025"
    scale: int = 1
    duration_s: float = 60.0
    seed: int = 0
    device: str = "cpu"
    engine: str = "auto"
    snapshot_every_ms: float = 1000.0
    correlated: bool = True
    tau_refrac: float | None = None  # [ms]; None: the variant's value
    dt: float = 0.1
    p_form: tuple[float, float] = (0.16, 1.0)  # feed-forward, lateral
    sigma_form: tuple[float, float] = (2.5, 1.0)
    stdp: dict[str, float] = field(
        default_factory=lambda: {
            "tau_plus": 20.0,
            "tau_minus": 64.0,
            "a_plus": 0.1 * G_MAX,
            "a_minus": 0.1 * G_MAX * 1.2 * 20.0 / 64.0,
            "w_min": 0.0,
            "w_max": G_MAX,
        }
    )

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"--variant must be one of {sorted(VARIANTS)}, got {self.variant!r}")
        scale = self.scale
        if isinstance(scale, bool) or not isinstance(scale, int) or not 1 <= scale <= MAX_SCALE:
            raise ValueError(f"--scale must be an integer in [1, {MAX_SCALE}], got {scale!r}")
        self.seed = checks.check_seed("--seed", self.seed)
        self.duration_s = checks.check_number(
            "--duration [s]", self.duration_s, low=0.0, high=MAX_DURATION_S, low_open=True
        )
        if self.steps < 1:
            raise ValueError(
                f"--duration must be at least one step dt = {self.dt:g} ms "
                f"({self.dt * 1e-3:g} s), got {self.duration_s:g} s"
            )
        self.snapshot_every_ms = checks.check_number(
            "--snapshot-every [ms]",
            self.snapshot_every_ms,
            low=self.dt,
            high=MAX_DURATION_S * 1e3,
        )
        if self.tau_refrac is not None:
            self.tau_refrac = checks.check_number(
                "--tau-refrac [ms]", self.tau_refrac, low=0.0, high=1e3
            )
        try:
            options.check_device(self.device)
        except options.DeviceError as err:
            raise ValueError(f"--device {err}") from None

    @property
    def side(self) -> int:
        return BLOCK * self.scale

    @property
    def steps(self) -> int:
        return int(round(self.duration_s * 1000.0 / self.dt))


def stimulus_rates(
    side: int,
    centre: tuple[int, int],
    base_hz: float = 5.0,
    peak_hz: float = 152.8,
    sigma: float = 2.0,
) -> torch.Tensor:
    """Rates [Hz] ``[side * side]``: a Gaussian bump at ``centre`` (x, y) on a 16x16 torus,
    repeated on every 16 x 16 block of the ``side x side`` sheet."""
    ids = torch.arange(side * side)
    local = nw.Grid(BLOCK, BLOCK)
    x, y = ids % side % BLOCK, ids // side % BLOCK
    d = local.distance(torch.tensor(centre[1] * BLOCK + centre[0]), y * BLOCK + x)
    return base_hz + peak_hz * torch.exp(-(d * d) / (2.0 * sigma**2))


def build(cfg: TopomapConfig) -> nw.Network:
    """The network of one run (rules and the stimulus callback included)."""
    v = VARIANTS[cfg.variant]
    side, n = cfg.side, cfg.side * cfg.side
    net = nw.Network(dt=cfg.dt, seed=cfg.seed)
    src = net.population("source", nw.PoissonSource(n, rate_hz=20.0, grid=(side, side)))
    v_init = nw.Normal(-60.0, v.v_init_sd) if v.v_init_sd else -70.0
    tau_refrac = v.tau_refrac if cfg.tau_refrac is None else cfg.tau_refrac
    tgt = net.population(
        "target", nw.LIF.biophysical(n, tau_refrac=tau_refrac, v_init=v_init, grid=(side, side))
    )
    stdp = nw.STDP(**cfg.stdp)
    psc = nw.ExpCond(tau=5.0, e_rev=0.0)
    if v.initial == "pairwise":
        conns = [nw.GaussianDistance(p, s) for p, s in zip(cfg.p_form, cfg.sigma_form, strict=True)]
    else:
        conns = [
            nw.GaussianFanIn(16, p, s) for p, s in zip(cfg.p_form, cfg.sigma_form, strict=True)
        ]
    ff = net.connect(
        src, tgt, conns[0], weight=G_MAX, synapse=stdp, psc=psc, capacity=64, name="ff"
    )
    lat = net.connect(
        tgt, tgt, conns[1], weight=G_MAX, synapse=stdp, psc=psc, capacity=64, name="lat"
    )
    every = int(round(v.rewire_every_ms / cfg.dt))
    attempts = v.attempts_per_block * cfg.scale**2
    if v.max_fan_in is None:
        for proj, p, s in zip((ff, lat), cfg.p_form, cfg.sigma_form, strict=True):
            rule = nw.DistanceRewiring(
                p,
                s,
                v.p_elim_dep,
                v.p_elim_pot,
                w_threshold=G_MAX / 2,
                w_init=G_MAX,
                attempts=attempts,
            )
            net.add_rule(rule, proj, every=every, log_events=True)
    else:
        rule = nw.SharedFanInRewiring(
            "lat",
            v.max_fan_in,
            cfg.p_form,
            cfg.sigma_form,
            v.p_elim_dep,
            v.p_elim_pot,
            G_MAX / 2,
            G_MAX,
            attempts,
        )
        net.add_rule(rule, ff, every=every, log_events=True)
    return net


class Stimulus:
    """Moves the bump to a uniformly drawn position every 20 ms (flat 20 Hz if uncorrelated)."""

    def __init__(self, cfg: TopomapConfig) -> None:
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed + 12345)
        self.every = int(round(STIMULUS_MS / cfg.dt))
        # every possible rate map, checked once: [16 * 16 centres, neurons]; the pattern of one
        # 16 x 16 block (the same numbers as stimulus_rates on the whole sheet), then tiled
        block = torch.stack(
            [stimulus_rates(BLOCK, (x, y)) for y in range(BLOCK) for x in range(BLOCK)]
        )
        ids = torch.arange(cfg.side * cfg.side)
        local = ids // cfg.side % BLOCK * BLOCK + ids % cfg.side % BLOCK
        self.table = block[:, local].contiguous()
        if not bool(torch.isfinite(self.table).all()) or bool((self.table < 0).any()):
            raise ValueError("stimulus rates must be finite and >= 0")

    def __call__(self, sim: nw.Simulator) -> None:
        if not self.cfg.correlated:
            sim.set_rates("source", 20.0)
            return
        x, y = (int(c) for c in self.rng.integers(0, BLOCK, size=2))
        sim.set_rates("source", self.table[y * BLOCK + x], check=False)


def _coo(proj: nw.Projection) -> dict[str, np.ndarray]:
    pre, post = proj.synapses.coo()
    return {
        "pre": pre.cpu().numpy(),
        "post": post.cpu().numpy(),
        "weight": proj.synapses.values("weight").cpu().numpy(),
    }


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez_compressed`` written atomically (:func:`neurowire.io.atomic_path`)."""
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)


def save_connectivity(path: Path, net: nw.Network, side: int) -> None:
    arrays = {}
    for name in ("ff", "lat"):
        for key, value in _coo(net.projections[name]).items():
            arrays[f"{name}_{key}"] = value
    save_arrays(path, grid=np.array([side, side]), **arrays)


class Snapshots:
    """Connectivity statistics every ``snapshot_every_ms`` (timed apart from the simulation)."""

    def __init__(self, cfg: TopomapConfig, net: nw.Network) -> None:
        grid = (cfg.side, cfg.side)
        self.net = net
        self.timelines = {
            "ff": analysis.ConnectivityTimeline(grid, feedforward=True, name="ff"),
            "lat": analysis.ConnectivityTimeline(grid, name="lat"),
        }
        self.every = max(1, int(round(cfg.snapshot_every_ms / cfg.dt)))
        self.seconds = 0.0

    def __call__(self, sim: nw.Simulator | None, t_ms: float | None = None) -> None:
        tic = time.perf_counter()
        t_ms = sim.t if t_ms is None else t_ms
        for name, timeline in self.timelines.items():
            c = _coo(self.net.projections[name])
            timeline.add(t_ms, c["pre"], c["post"], c["weight"])
        self.seconds += time.perf_counter() - tic


#: What ``neurowire topomap`` writes into ``--out`` (deleted by ``--overwrite``).
OUTPUTS = ("summary.json", "*.npz", "*.png")


def run_folder(cfg: TopomapConfig, out: str | Path) -> RunFolder:
    """``out`` as the :class:`~neurowire.experiments.outputs.RunFolder` of this run."""
    settings = {k: v for k, v in asdict(cfg).items() if k != "device"}
    return RunFolder(out, "topomap", json.loads(json.dumps(settings, default=list)), OUTPUTS)


def run(
    cfg: TopomapConfig, out: str | Path, progress: bool = True, overwrite: bool = False
) -> dict[str, Any]:
    """Simulate, analyse and write every output into ``out``; returns the summary.

    ``out`` is refused (:class:`~neurowire.experiments.outputs.OutputError`) before any work
    if it holds a run, unless ``overwrite``. A run that fails or is interrupted removes what it
    wrote (it cannot be resumed).
    """
    folder = run_folder(cfg, out)
    folder.check(resume=False, overwrite=overwrite)
    try:
        folder.start(overwrite=overwrite)
        return _simulate(cfg, folder, progress)
    except BaseException:
        folder.discard()
        raise


def _simulate(cfg: TopomapConfig, folder: RunFolder, progress: bool) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    build_start = time.perf_counter()
    net = build(cfg)
    stimulus = Stimulus(cfg)
    snapshots = Snapshots(cfg, net)
    net.add_callback(stimulus, every=stimulus.every, name="stimulus")
    net.add_callback(snapshots, every=snapshots.every, name="snapshots")
    save_connectivity(folder.file("connectivity_initial.npz"), net, cfg.side)
    sim = nw.Simulator(net, device=cfg.device, engine=cfg.engine)
    stimulus(sim)
    snapshots(sim, 0.0)
    snapshots.seconds = 0.0  # the initial snapshot is part of build_s; count the run's alone
    build_s = time.perf_counter() - build_start
    result = sim.run(cfg.steps, progress=progress)
    # network construction, simulator, numba compilation (or cache load) up to the first step
    first_step_s = sim.first_step_at - build_start if sim.first_step_at is not None else None
    save_connectivity(folder.file("connectivity_final.npz"), net, cfg.side)
    return _report(cfg, folder, net, sim, result, snapshots, build_s, first_step_s)


# simulator timers measured inside "steps" (numba compilation; per-phase timers with time_phases)
NESTED_IN_STEPS = ("compile", "delivery", "postsynaptic", "neurons", "plasticity")


def timing_breakdown(
    timers_s: dict[str, float], wall_s: float, analysis_s: float = 0.0
) -> dict[str, Any]:
    """Where the wall-clock time of one ``Simulator.run`` went, as disjoint components.

    The same numbers go into ``summary.json`` (``timing``, ``timers_s``) and ``timing.png``.

    Args:
        timers_s: ``SimulationResult.timers_s``; the simulator times the numba compilation
            (``compile``) apart from ``steps``; with ``time_phases`` the per-phase timers are
            parts of ``steps``.
        wall_s: ``SimulationResult.wall_s``, the run's wall-clock time [s].
        analysis_s: connectivity snapshots taken during the run [s] (inside ``callbacks``).

    Returns:
        ``{"total_s": float, "seconds": {component: s}, "fractions": {component: s / total}}``
        with components ``compile`` (always), ``steps`` (always; stepping alone, compile
        excluded), the other non-zero timers (``callbacks`` without the snapshots),
        ``analysis`` (the snapshots) and ``other`` (untimed), which add up to ``total_s``
        (``wall_s``, or the timers' sum if that is larger).
    """
    t = {str(k): max(0.0, float(v)) for k, v in timers_s.items()}
    analysis_s = max(0.0, float(analysis_s))
    seconds = {"compile": t.get("compile", 0.0)}
    nested = {k: t[k] for k in NESTED_IN_STEPS[1:] if t.get(k, 0.0) > 0}
    seconds.update(nested)
    seconds["steps"] = max(0.0, t.get("steps", 0.0) - sum(nested.values()))
    for k, v in t.items():
        if k in seconds or k in NESTED_IN_STEPS or k == "steps":
            continue
        v = max(0.0, v - analysis_s) if k == "callbacks" else v
        if v > 0:
            seconds[k] = v
    if analysis_s > 0:
        seconds["analysis"] = analysis_s
    other = float(wall_s) - sum(seconds.values())
    if other > 0:
        seconds["other"] = other
    total = sum(seconds.values())
    return {"total_s": total, "seconds": seconds, "fractions": timing_fractions(seconds)}


def _report(
    cfg,
    folder: RunFolder,
    net,
    sim,
    result,
    snapshots: Snapshots,
    build_s: float,
    first_step_s: float | None = None,
) -> dict[str, Any]:
    out = folder.path
    events = {name: sim.rewiring_log.events(name) for name in ("ff", "lat")}
    save_arrays(
        folder.file("events.npz"),
        **{f"{p}_{k}": v for p, ev in events.items() for k, v in ev.items()},
    )
    tl = {name: t.arrays() for name, t in snapshots.timelines.items()}
    save_arrays(
        folder.file("timeline.npz"),
        **{f"{p}_{k}": v for p, a in tl.items() for k, v in a.items()},
    )
    timing = timing_breakdown(result.timers_s, result.wall_s, snapshots.seconds)
    compile_s = timing["seconds"]["compile"]
    # the simulation's own wall time: neither numba compilation nor the snapshots
    sim_wall = max(0.0, timing["total_s"] - compile_s - timing["seconds"].get("analysis", 0.0))
    model_s = cfg.steps * cfg.dt * 1e-3
    init = np.load(out / "connectivity_initial.npz")
    final = np.load(out / "connectivity_final.npz")
    grid = (cfg.side, cfg.side)

    def quality(data, weighted):
        w = data["ff_weight"] if weighted else None
        return analysis.map_quality(data["ff_pre"], data["ff_post"], grid, w)

    totals = {name: sim.rewiring_log.totals(name) for name in ("ff", "lat")}
    summary = {
        "config": asdict(cfg),
        "engine": sim.engine,
        "neurons_per_layer": cfg.side**2,
        "model_s": model_s,
        "wall_s": sim_wall,
        "real_time_factor": sim_wall / model_s if model_s > 0 else None,
        "build_s": build_s,
        "analysis_s": snapshots.seconds,
        "compile_s": compile_s,
        # from the start of network construction to the first step: build_s, the rules' set-up
        # and compile_s (numba compiling, or loading its cache), as GeNN's build time
        "time_to_first_step_s": first_step_s,
        "timers_s": timing["seconds"],  # the same as timing["seconds"], kept for old readers
        "timing": timing,
        "formations": sum(t["added"] for t in totals.values()),
        "eliminations": sum(t["removed"] for t in totals.values()),
        "failed_formations": sum(t["failed"] for t in totals.values()),
        "per_projection": totals,
        "ad_initial": quality(init, False)["ad"],
        "ad_final": quality(final, False)["ad"],
        "sigma_aff_initial": quality(init, False)["sigma_aff"],
        "sigma_aff_final": quality(final, False)["sigma_aff"],
        "ad_weight_initial": quality(init, True)["ad"],
        "ad_weight_final": quality(final, True)["ad"],
        "sigma_aff_weight_initial": quality(init, True)["sigma_aff"],
        "sigma_aff_weight_final": quality(final, True)["sigma_aff"],
        "reference_initial": {"ad": 0.82, "sigma_aff": 2.36},
        "degree_initial": {
            n: analysis.degree_stats(init[f"{n}_pre"], init[f"{n}_post"], cfg.side**2, cfg.side**2)
            for n in ("ff", "lat")
        },
        "degree_final": {
            n: analysis.degree_stats(
                final[f"{n}_pre"], final[f"{n}_post"], cfg.side**2, cfg.side**2
            )
            for n in ("ff", "lat")
        },
        "expected_degree": {
            n: analysis.expected_gaussian_degree(p, s)
            for n, p, s in zip(("ff", "lat"), cfg.p_form, cfg.sigma_form, strict=True)
        },
    }
    _figures(cfg, folder, snapshots, events, summary)
    folder.write_text("summary.json", json.dumps(summary, indent=2, default=float))
    return summary


def _figures(cfg, folder: RunFolder, snapshots: Snapshots, events, summary) -> None:
    duration_ms = max(cfg.steps, 1) * cfg.dt
    for i, name in enumerate(("ff", "lat")):
        tl = snapshots.timelines[name]
        analysis.plot_displacement_maps(
            tl.initial_maps,
            tl.final_maps,
            folder.file(f"displacement_{name}.png"),
            title=name,
            weight_unit=WEIGHT_UNIT,
        )
        analysis.plot_connectivity_evolution(
            tl,
            events[name],
            duration_ms,
            folder.file(f"evolution_{name}.png"),
            sigma_form=cfg.sigma_form[i],
            expected_degree=summary["expected_degree"][name],
            title=name,
            weight_unit=WEIGHT_UNIT,
        )
    analysis.plot_map_quality(snapshots.timelines["ff"], folder.file("map_quality.png"))
    analysis.plot_timing_breakdown(
        summary["timing"]["seconds"], folder.file("timing.png"), model_s=summary["model_s"]
    )


def print_summary(summary: dict[str, Any]) -> None:
    s = summary
    print(
        f"{s['config']['variant']} scale {s['config']['scale']} "
        f"({s['neurons_per_layer']} neurons per layer), engine {s['engine']}"
    )
    rtf = s["real_time_factor"]
    print(
        f"  {s['model_s']:g} s model time in {s['wall_s']:.2f} s "
        f"(+ {s['compile_s']:.2f} s compile): real-time factor "
        + (f"{rtf:.4f}" if rtf is not None else "n/a")
    )
    if s.get("time_to_first_step_s") is not None:
        print(
            f"  first step {s['time_to_first_step_s']:.2f} s after construction began "
            f"(build {s['build_s']:.2f} s, compile {s['compile_s']:.2f} s)"
        )
    print(
        f"  formations {s['formations']}, eliminations {s['eliminations']}, "
        f"failed {s['failed_formations']}"
    )
    print(
        f"  AD by connectivity {s['ad_initial']:.3f} -> {s['ad_final']:.3f}; "
        f"sigma_aff {s['sigma_aff_initial']:.3f} -> {s['sigma_aff_final']:.3f} "
        f"(Bamford initial reference 0.82 / 2.36)"
    )
    print(
        f"  by weight: AD {s['ad_weight_initial']:.3f} -> {s['ad_weight_final']:.3f}; "
        f"sigma_aff {s['sigma_aff_weight_initial']:.3f} -> {s['sigma_aff_weight_final']:.3f}"
    )


def parser() -> argparse.ArgumentParser:
    p = options.ArgumentParser(prog="neurowire topomap", description=__doc__.split("\n")[0])
    p.add_argument("--variant", default="genn2025", choices=sorted(VARIANTS))
    p.add_argument("--scale", type=int, default=1, help="sheet side 16*scale (default 1)")
    p.add_argument("--duration", type=float, default=60.0, help="model time [s] (default 60)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--device",
        default="cpu",
        type=options.device_arg,
        help=f"torch device: {options.DEVICE_FORMS} (default cpu)",
    )
    p.add_argument("--engine", default="auto", choices=nw.simulator.ENGINES)
    p.add_argument(
        "--snapshot-every",
        type=float,
        default=1000.0,
        help="connectivity statistics every this many ms (default 1000)",
    )
    p.add_argument(
        "--tau-refrac",
        type=float,
        default=None,
        help="refractory period of the target neurons [ms] (default: the variant's)",
    )
    p.add_argument(
        "--uncorrelated",
        action="store_true",
        help="flat 20 Hz input instead of the moving Gaussian bump",
    )
    p.add_argument("--out", default="runs/topomap", help="output directory")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in --out: delete its summary, arrays and figures first",
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--debug", action="store_true", help="show the full traceback of an error or Ctrl-C"
    )
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run ``neurowire topomap``; returns the summary. A user-caused error prints one line and
    exits with status 2, Ctrl-C one line and status 130 (``--debug``: the traceback)."""
    args = parser().parse_args(argv)
    try:
        cfg = TopomapConfig(
            variant=args.variant,
            scale=args.scale,
            duration_s=args.duration,
            seed=args.seed,
            device=args.device,
            engine=args.engine,
            snapshot_every_ms=args.snapshot_every,
            correlated=not args.uncorrelated,
            tau_refrac=args.tau_refrac,
        )
    except ValueError as err:
        if args.debug:
            raise
        parser().error(str(err))
    try:
        summary = run(cfg, args.out, progress=not args.no_progress, overwrite=args.overwrite)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(
            "neurowire topomap: interrupted; the partial outputs were removed (a map run "
            "cannot be resumed: run it again)",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
    except (checks.ParameterError, OutputError, OSError) as err:
        options.fail("topomap", err, args.debug)
    print_summary(summary)
    print(f"  outputs in {args.out}")
    return summary
