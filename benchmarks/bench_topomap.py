"""Topographic-map simulation speed against network size (``genn2025`` variant).

For each scale (sheets of 16*scale x 16*scale neurons) this builds the model of
``neurowire topomap``, runs it with the chosen engine and measures

* the **real-time factor** (wall-clock time / model time, excluding network construction and
  numba compilation, which are reported apart), from a run with rules fused into the blocks;
* the **per-component breakdown** (neuron update, postsynaptic, delivery, STDP, rewiring rule,
  column-index rebuild, input random numbers, stimulus callback) from a second, shorter run with
  ``time_phases=True``, which calls every phase separately; its fractions are applied to the
  fused run's step time (``breakdown_s``), its raw timers are kept too (``split_timers_s``).

GeNN 5.4's single-threaded CPU backend on the same machine measured real-time factors of 0.051,
0.38, 1.58 and 4.9 at scales 1-4; they are stored beside our figures.

Run:  python benchmarks/bench_topomap.py [--scales 1 2 3 4 5 6 7] [--duration 20]
Writes benchmarks/results/bench_topomap_<device>.json and a figure next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

import neurowire as nw
from neurowire import analysis
from neurowire.experiments import topomap

GENN_RTF = {1: 0.051, 2: 0.38, 3: 1.58, 4: 4.9}
TARGET_RTF = {1: 0.05, 2: 0.095, 3: 0.4, 4: 1.2}
COMPONENTS = (
    "neurons",
    "postsynaptic",
    "delivery",
    "plasticity",
    "rules",
    "index_rebuild",
    "inputs",
    "callbacks",
)


def simulator(scale: int, seed: int, device: str, engine: str, time_phases: bool):
    cfg = topomap.TopomapConfig(scale=scale, seed=seed, device=device, engine=engine)
    net = topomap.build(cfg)
    stimulus = topomap.Stimulus(cfg)
    net.add_callback(stimulus, every=stimulus.every, name="stimulus")
    sim = nw.Simulator(net, device=device, engine=engine, time_phases=time_phases)
    stimulus(sim)
    return cfg, sim


def measure(
    scale: int, seed: int, duration_s: float, profile_s: float, device: str, engine: str
) -> dict:
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    tic = time.perf_counter()
    cfg, sim = simulator(scale, seed, device, engine, time_phases=False)
    build_s = time.perf_counter() - tic
    warm = sim.run(10)  # compiles the native block (or loads it from numba's cache)
    first_step_s = sim.first_step_at - tic if sim.first_step_at is not None else None
    steps = int(round(duration_s * 1000 / cfg.dt))
    result = sim.run(steps)
    wall = result.wall_s
    nnz = {name: p.synapses.nnz for name, p in sim.net.projections.items()}
    split_engine = "torch" if sim.engine in ("graph", "compile") else sim.engine
    _, split = simulator(scale, seed, device, split_engine, time_phases=True)  # phases timed
    split.run(10)
    split_steps = int(round(profile_s * 1000 / cfg.dt))
    split_result = split.run(split_steps)
    raw = {k: split_result.timers_s.get(k, 0.0) for k in COMPONENTS}
    total = sum(raw.values())
    breakdown = {k: wall * v / total for k, v in raw.items()} if total else {}
    totals = {name: sim.rewiring_log.totals(name) for name in ("ff", "lat")}
    refs = {
        k: v
        for k, v in (("genn_rtf", GENN_RTF.get(scale)), ("target_rtf", TARGET_RTF.get(scale)))
        if v is not None
    }
    return {
        "scale": scale,
        "seed": seed,
        "neurons": cfg.side**2,
        "engine": sim.engine,
        "split_engine": split_engine,  # a graph or compiled block cannot time its phases
        "model_s": steps * cfg.dt * 1e-3,
        "wall_s": wall,
        "real_time_factor": wall / (steps * cfg.dt * 1e-3),
        "build_s": build_s,
        "compile_s": warm.timers_s.get("compile", 0.0),
        # network construction + simulator + compile (or cache load), as GeNN's build time
        "time_to_first_step_s": first_step_s,
        "load_average_before": load_before,
        "timers_s": breakdown,
        "split_timers_s": raw,
        "split_model_s": split_steps * cfg.dt * 1e-3,
        "fused_timers_s": result.timers_s,
        "synapses_final": nnz,
        "rewiring": totals,
        **refs,
    }


def machine() -> dict:
    cpu = ""
    if os.path.exists("/proc/cpuinfo"):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import numba

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "numba": numba.__version__,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scales", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6, 7])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--duration", type=float, default=20.0, help="model seconds per run")
    p.add_argument(
        "--profile", type=float, default=2.0, help="model seconds of the per-phase profiling run"
    )
    p.add_argument(
        "--budget",
        type=float,
        default=1800.0,
        help="stop before a scale whose predicted wall time exceeds what is left [s]",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--engine", default="auto")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out or f"benchmarks/results/bench_topomap_{args.device.split(':')[0]}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    results, skipped, start = [], [], time.perf_counter()
    last_rtf = None
    for scale in sorted(args.scales):
        for seed in args.seeds:
            left = args.budget - (time.perf_counter() - start)
            if last_rtf is not None:
                guess = last_rtf * (scale / max(1, results[-1]["scale"])) ** 2
                if guess * (args.duration + args.profile * 3) > left:
                    skipped.append({"scale": scale, "seed": seed, "predicted_rtf": guess})
                    continue
            r = measure(scale, seed, args.duration, args.profile, args.device, args.engine)
            last_rtf = r["real_time_factor"]
            results.append(r)
            ref = f"GeNN {r['genn_rtf']}" if "genn_rtf" in r else "GeNN -"
            print(
                f"scale {scale} seed {seed}: {r['neurons']:6d} neurons/layer  RTF "
                f"{r['real_time_factor']:.4f} ({ref})  first step "
                f"{r['time_to_first_step_s'] or float('nan'):.2f}s  "
                + "  ".join(f"{k} {v:.2f}s" for k, v in r["timers_s"].items() if v > 0.005),
                flush=True,
            )
    report = {
        "benchmark": "topomap",
        "variant": "genn2025",
        "device": args.device,
        "duration_s": args.duration,
        "machine": machine(),
        "results": results,
        "skipped": skipped,
    }
    out.write_text(json.dumps(report, indent=2, default=float))
    if results:
        analysis.plot_scaling(results, out.with_suffix(".png"))
    print(json.dumps({"out": str(out), "skipped": skipped}))
    return report


if __name__ == "__main__":
    main()
