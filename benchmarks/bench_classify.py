"""The main job's targets: dense vs static sparse vs DEEP R on the built-in data, over seeds.

Part 1 runs ``neurowire classify --compare`` (the library's experiment, same defaults as
``make demo`` unless flags are given) once per seed, each in its own subprocess, and reports per
configuration the mean and range of test and train accuracy, the median time per epoch with its
range, the speed-up over dense, DEEP R's own time as a fraction of training time (the rule's two
hooks timed apart), failed placements and the proportion rewired per batch early vs late.

Part 2 measures DEEP R's overhead on the paper's SHD-sized network (700 Poisson inputs at 10 Hz
-> 512 ALIF -> 20, T = 1,400 steps, 1 % input and recurrent density, rows padded 2x, batch 32):
a few training batches with synthetic input, the rule timed apart.

Usage::

    PYTHONPATH=src python benchmarks/bench_classify.py --seeds 0 1 2
    PYTHONPATH=src python benchmarks/bench_classify.py --quick      # smoke run

Writes ``benchmarks/results/bench_classify_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "bench_classify_cpu.json"


def run_seed(seed: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [
            sys.executable,
            "-m",
            "neurowire.cli",
            "classify",
            "--compare",
            "--no-progress",
            "--seed",
            str(seed),
            "--out",
            out,
            *extra,
        ]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return json.loads((Path(out) / "summary.json").read_text())


def _stats(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
        "values": values,
    }


def summarise(runs: list[dict]) -> dict:
    out = {}
    for name in runs[0]["configurations"]:
        confs = [r["configurations"][name] for r in runs]
        epoch_times = [t for c in confs for t in (h["time_s"] for h in c["history"])]
        entry = {
            "accuracy_test": _stats([c["accuracy_test"] for c in confs]),
            "accuracy_train": _stats([c["accuracy_train"] for c in confs]),
            "time_per_epoch_s": {
                "median": statistics.median(epoch_times),
                "min": min(epoch_times),
                "max": max(epoch_times),
            },
            "n_synapses": confs[0]["n_synapses"],
            "n_slots": confs[0]["n_slots"],
            "rules_time_fraction": _stats([c["rules_time_fraction"] for c in confs]),
            "failed_placements": sum(c["failed_placements"] for c in confs),
            "rewirings_per_batch": _stats([c["rewirings_per_batch"] for c in confs]),
        }
        rewired = [k for k in confs[0]["history"][0] if k.startswith("rewired_")]
        for key in rewired:
            first = statistics.fmean(c["history"][0][key] for c in confs)
            last = statistics.fmean(c["history"][-1][key] for c in confs)
            entry[f"{key}_first_epoch"], entry[f"{key}_last_epoch"] = first, last
        out[name] = entry
    dense = out.get("dense", {}).get("time_per_epoch_s", {}).get("median")
    for entry in out.values():
        entry["speed_up_vs_dense"] = dense / entry["time_per_epoch_s"]["median"] if dense else None
    return out


def paper_size_overhead(batches: int, steps: int) -> dict:
    import torch

    import neurowire as nw

    torch.set_num_threads(1)
    net = nw.Network(dt=1.0, seed=0)
    inp = net.population("input", nw.SpikeSource(700))
    hid = net.population("hidden", nw.ALIF(512, tau_refrac=5.0))
    out = net.population("output", nw.LeakyIntegrator(20))
    p_in = net.connect(
        inp, hid, nw.FixedProbability(0.01), weight=nw.Normal(0, 700**-0.5), padding=2.0
    )
    p_rec = net.connect(
        hid, hid, nw.FixedProbability(0.01), weight=nw.Normal(0, 512**-0.5), padding=2.0
    )
    net.connect(hid, out, nw.Dense(), weight=nw.Normal(0, 512**-0.5))
    trainer = nw.EProp(
        net,
        output=out,
        optimizer=nw.Adam(lr=1e-3),
        regularization=nw.RateRegularizer(),
        rewiring={p_in: nw.DeepR(l1=0.1), p_rec: nw.DeepR(l1=0.1)},
    )
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(32, steps, 700, generator=gen) < 0.01  # 10 Hz at dt = 1 ms
    y = torch.randint(0, 20, (32,), generator=gen)
    trainer.train_step(x, y)  # compile
    trainer.timers = {k: 0.0 for k in trainer.timers}
    tic = time.perf_counter()
    for _ in range(batches):
        trainer.train_step(x, y)
    wall = time.perf_counter() - tic
    removed = sum(trainer.rewiring_log.totals(p.name)["removed"] for p in (p_in, p_rec))
    return {
        "network": "700 -> 512 ALIF -> 20, 1 % / 1 %, rows 2x, batch 32",
        "steps": steps,
        "batches": batches,
        "seconds_per_batch": wall / batches,
        "ms_per_sample": 1e3 * wall / (batches * 32),
        "rules_s_per_batch": trainer.timers["rules"] / batches,
        "rules_time_fraction": trainer.timers["rules"] / wall,
        "rewired_per_batch": removed / (batches + 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run, JSON not written")
    ap.add_argument("--skip-paper-size", action="store_true")
    ap.add_argument("extra", nargs="*", help="flags passed to neurowire classify (after --)")
    args = ap.parse_args()
    extra = list(args.extra)
    if args.quick:
        extra += ["--dataset", "patterns", "--hidden", "16", "--epochs", "2"]
        args.seeds = args.seeds[:1]
    load_before = os.getloadavg()
    tic = time.perf_counter()
    runs = [run_seed(s, extra) for s in args.seeds]
    result = {
        "machine": {
            **runs[0]["machine"],
            "load_average_before": list(load_before),
            "load_average_after": list(os.getloadavg()),
            "node": platform.node(),
        },
        "command": f"neurowire classify --compare --seed S {' '.join(extra)}".strip(),
        "seeds": args.seeds,
        "config": runs[0]["config"],
        "dataset": runs[0]["dataset"],
        "configurations": summarise(runs),
        "wall_s": time.perf_counter() - tic,
    }
    if not args.skip_paper_size:
        result["paper_size_deep_r_overhead"] = paper_size_overhead(
            batches=2 if args.quick else 6, steps=100 if args.quick else 1400
        )
    print(json.dumps(result["configurations"], indent=1))
    if "paper_size_deep_r_overhead" in result:
        print(json.dumps(result["paper_size_deep_r_overhead"], indent=1))
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2))
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
