"""Data-parallel e-prop on one machine: 1 process x 1 thread vs 2 processes x 1 thread (gloo).

The paper's SHD-sized network (700 Poisson inputs at 10 Hz -> 512 ALIF -> 20, T = 1,400 steps,
1 % input and recurrent density, rows padded 2x, DEEP R on both, rate regulariser, Adam) trains
on the same synthetic global batches (32 and 64 trials) in ``torchrun --standalone
--nproc-per-node N`` workers, each with one torch and one numba thread. Reported per run: the
median, min and max seconds per batch over ``--batches`` timed batches after ``--warmup`` batches
(compilation), throughput = global batch / median [samples/s], the trainer's timers per batch,
and per global batch the scaling efficiency = throughput(2) / (2 throughput(1)). The ranks'
training states are checked identical at the end. Load average before and after every run.

Usage::

    PYTHONPATH=src python benchmarks/bench_distributed.py            # ~1-2 min, 2 idle cores
    PYTHONPATH=src python benchmarks/bench_distributed.py --quick    # T = 100, 2 batches, no JSON

Writes ``benchmarks/results/bench_distributed_cpu.json``.
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

RESULTS = Path(__file__).resolve().parent / "results" / "bench_distributed_cpu.json"
NETWORK = "700 Poisson (10 Hz) -> 512 ALIF -> 20, 1 % / 1 %, rows 2x, DEEP R on both"


def build(engine: str):
    import neurowire as nw

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
    return nw.EProp(
        net,
        output=out,
        optimizer=nw.Adam(lr=1e-3),
        regularization=nw.RateRegularizer(),
        rewiring={p_in: nw.DeepR(l1=0.1), p_rec: nw.DeepR(l1=0.1)},
        engine=engine,
    )


def worker(args: argparse.Namespace) -> None:
    """One torchrun worker: time ``args.batches`` global batches after ``args.warmup``."""
    import torch

    from neurowire.learning import distributed

    torch.set_num_threads(1)
    joined = distributed.init_process_group("cpu")
    try:
        trainer = build(args.engine)
        gen = torch.Generator().manual_seed(1)
        batches = [
            (
                torch.rand(args.batch, args.steps, 700, generator=gen) < 0.01,  # 10 Hz, 1 ms
                torch.randint(0, 20, (args.batch,), generator=gen),
            )
            for _ in range(2)
        ]
        for i in range(args.warmup):
            trainer.train_step(*batches[i % 2])
        trainer.timers = dict.fromkeys(trainer.timers, 0.0)
        seconds = []
        for i in range(args.batches):
            tic = time.perf_counter()
            trainer.train_step(*batches[i % 2])
            seconds.append(time.perf_counter() - tic)
        distributed.check_consistent(trainer)
        if trainer.rank == 0:
            result = {
                "seconds_per_batch": seconds,
                "timers_s_per_batch": {k: v / args.batches for k, v in trainer.timers.items()},
                "world_size": trainer.world_size,
                "engine": trainer.engine,
                "torch_threads": torch.get_num_threads(),
            }
            Path(args.result).write_text(json.dumps(result))
    finally:
        if joined:
            torch.distributed.destroy_process_group()


def launch(nproc: int, batch: int, args: argparse.Namespace) -> dict:
    """Run the workers under torchrun; returns rank 0's result with summary statistics."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        cmd += ["--nproc-per-node", str(nproc), __file__, "--worker", "--result", str(result)]
        cmd += ["--batch", str(batch), "--steps", str(args.steps), "--engine", args.engine]
        cmd += ["--batches", str(args.batches), "--warmup", str(args.warmup)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
        load_before = os.getloadavg()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        out = json.loads(result.read_text())
    median = statistics.median(out["seconds_per_batch"])
    return {
        "processes": nproc,
        "threads_per_process": 1,
        "global_batch": batch,
        **out,
        "median_s_per_batch": median,
        "min_s_per_batch": min(out["seconds_per_batch"]),
        "max_s_per_batch": max(out["seconds_per_batch"]),
        "samples_per_s": batch / median,
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="T = 100, 2 batches; JSON not written")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64], help="global")
    ap.add_argument("--batches", type=int, default=6, help="timed batches per run")
    ap.add_argument("--warmup", type=int, default=1, help="untimed batches first (compile)")
    ap.add_argument("--steps", type=int, default=1400, help="trial length T")
    ap.add_argument("--engine", default="auto", choices=("auto", "torch", "native"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=32, help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    if args.quick:
        args.steps, args.batches, args.batch_sizes = 100, 2, args.batch_sizes[:1]
    tic = time.perf_counter()
    load_before = os.getloadavg()
    runs, scaling = [], {}
    for batch in args.batch_sizes:
        one, two = launch(1, batch, args), launch(2, batch, args)
        runs += [one, two]
        scaling[str(batch)] = {
            "samples_per_s_1": one["samples_per_s"],
            "samples_per_s_2": two["samples_per_s"],
            "speed_up": two["samples_per_s"] / one["samples_per_s"],
            "efficiency": two["samples_per_s"] / (2 * one["samples_per_s"]),
        }
        print(
            f"batch {batch:3d}: 1 process {one['median_s_per_batch']:.3f} s/batch, "
            f"2 processes {two['median_s_per_batch']:.3f} s/batch, efficiency "
            f"{scaling[str(batch)]['efficiency']:.2f}"
        )
    result = {
        "network": NETWORK,
        "steps": args.steps,
        "timed_batches": args.batches,
        "warmup_batches": args.warmup,
        "backend": "gloo",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "node": platform.node(),
            "python": platform.python_version(),
            "load_average_before": list(load_before),
            "load_average_after": list(os.getloadavg()),
        },
        "scaling": scaling,
        "runs": runs,
        "wall_s": time.perf_counter() - tic,
    }
    print(json.dumps(scaling, indent=1))
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2))
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
