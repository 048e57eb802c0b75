"""Does time per batch drift over a long run (denormals, growing logs, allocator churn)?

DEEP R training of the paper's SHD network (700 Poisson inputs at 10 Hz -> 512 ALIF -> 20,
T = 1,400 steps, input and recurrent ``FixedProbability(0.01)``, rows padded 2x, ``DeepR(l1=0.1)``
on both, Adam(1e-3), rate regulariser; batch 32), built by ``bench_paper.build_trainer`` with
the same default input gain (~10 Hz hidden activity, ``bench_paper.DEFAULT_GAIN``). ``--distinct``
(8) different synthetic Poisson batches are drawn once and cycled. After ``--warmup`` (2)
excluded batches, ``--batches`` (200) batches are timed one by one.

Reported: every batch's time, the trainer's timers per batch (forward, backward, products,
optimizer, rules, other) and hidden rate; the medians of the first and last ``--window`` (20)
batches and their ratio (last / first; > 1 is slower at the end), per component too; the drift
as the least-squares slope of batch time over batch index (ms per 100 batches, and % of the
first window's median per 100 batches), also over the uncontended batches only; the rewiring
totals (removed, added, failed per projection) and the rewiring log's size (call rows, events,
bytes); peak RSS (``ru_maxrss``) and current RSS after ``--window`` batches and at the end; the
load averages before and after; per batch the CPU time other processes used (``foreign_cores``,
busy CPU time from /proc/stat minus this process's, per wall second; > 0.25 = contended).

Usage::

    PYTHONPATH=src python benchmarks/bench_drift.py            # 200 batches, writes JSON
    PYTHONPATH=src python benchmarks/bench_drift.py --quick    # T 140, 30 batches, window 5

Writes ``benchmarks/results/bench_drift_cpu.json`` (``bench_drift_cpu_quick.json`` with
``--quick``, which also skips the wait for an idle machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_paper import (  # noqa: E402
    CONFIGS,
    CONTENDED,
    HIDDEN,
    NETWORKS,
    build_trainer,
    cpu_busy_s,
    current_rss_mib,
    default_gain,
    machine,
    poisson_batches,
    rss_mib,
    wait_for_idle,
)

RESULTS = Path(__file__).resolve().parent / "results" / "bench_drift_cpu.json"
PARTS = ("forward", "backward", "products", "optimizer", "rules")


def slope_per_100(values: list[float], index: list[int]) -> float | None:
    """Least-squares slope of ``values`` over ``index``, times 100."""
    if len(values) < 2:
        return None
    mx, my = statistics.fmean(index), statistics.fmean(values)
    sxx = sum((i - mx) ** 2 for i in index)
    sxy = sum((i - mx) * (v - my) for i, v in zip(index, values, strict=True))
    return 100.0 * sxy / sxx if sxx else None


def log_size(log, names: list[str]) -> dict:
    out = {}
    for name in names:
        calls = log.calls(name)
        events = log.events(name)
        out[name] = {
            "call_rows": int(calls["step"].size),
            "events": int(events["t_ms"].size),
            "bytes": int(
                sum(a.nbytes for a in calls.values()) + sum(a.nbytes for a in events.values())
            ),
        }
    return out


def run(args: argparse.Namespace) -> dict:
    import numba
    import torch

    torch.set_num_threads(args.threads)
    gain = args.input_gain or default_gain(args.network, args.config)
    trainer, p_in, p_rec = build_trainer(args.network, args.config, gain)
    torch.set_num_threads(args.threads)  # numba's pool start may have reset it
    data = poisson_batches(
        args.network, args.batch_size, args.steps, args.rate_hz, args.distinct, seed=1
    )
    for i in range(args.warmup):
        trainer.train_step(*data[i % len(data)])
    rss = {"after_warmup": {"peak_mib": rss_mib(), "current_mib": current_rss_mib()}}
    names = [p.name for p in (p_in, p_rec)] if CONFIGS[args.config].deep_r else []
    seconds, rates, foreign, comps = [], [], [], []
    for i in range(args.batches):
        x, y = data[(args.warmup + i) % len(data)]
        before = dict(trainer.timers)
        busy0, own0 = cpu_busy_s(), time.process_time()
        tic = time.perf_counter()
        m = trainer.train_step(x, y)
        wall = time.perf_counter() - tic
        own = time.process_time() - own0
        foreign.append(max(0.0, (cpu_busy_s() - busy0 - own) / wall))
        seconds.append(wall)
        d = {k: 1e3 * (trainer.timers[k] - before[k]) for k in PARTS}
        d["other"] = 1e3 * wall - sum(d.values())
        comps.append(d)
        rates.append(m["spikes"] / (args.batch_size * args.steps * HIDDEN) * 1000.0)
        if i + 1 == args.window:
            rss[f"after_{args.window}"] = {"peak_mib": rss_mib(), "current_mib": current_rss_mib()}
        if (i + 1) % max(1, args.batches // 10) == 0:
            print(
                f"batch {i + 1}/{args.batches}: {wall:.3f} s, {rates[-1]:.1f} Hz, "
                f"foreign {foreign[-1]:.2f} cores",
                file=sys.stderr,
            )
    rss["end"] = {"peak_mib": rss_mib(), "current_mib": current_rss_mib()}
    ms = [1e3 * s for s in seconds]
    w = args.window
    first, last = statistics.median(ms[:w]), statistics.median(ms[-w:])
    idx = list(range(len(ms)))
    calm = [i for i in idx if foreign[i] <= CONTENDED]
    slope = slope_per_100(ms, idx)
    calm_slope = slope_per_100([ms[i] for i in calm], calm)
    parts = {
        k: {
            "first_median_ms": statistics.median(c[k] for c in comps[:w]),
            "last_median_ms": statistics.median(c[k] for c in comps[-w:]),
            "slope_ms_per_100_batches": slope_per_100([c[k] for c in comps], idx),
        }
        for k in (*PARTS, "other")
    }
    totals = {n: trainer.rewiring_log.totals(n) for n in names}
    return {
        "first_median_ms": first,
        "last_median_ms": last,
        "ratio_last_over_first": last / first,
        "slope_ms_per_100_batches": slope,
        "slope_percent_per_100_batches": 100.0 * slope / first if slope is not None else None,
        "slope_uncontended_ms_per_100_batches": calm_slope,
        "uncontended_batches": len(calm),
        "components": parts,
        "rewiring_totals": totals,
        "rewiring_per_batch": {
            n: t["removed"] / (args.warmup + args.batches) for n, t in totals.items()
        },
        "rewiring_log_size": log_size(trainer.rewiring_log, names),
        "rss": rss,
        "threads": {
            "requested": args.threads,
            "torch": torch.get_num_threads(),
            "numba": numba.get_num_threads(),
        },
        "input_gain": gain,
        "synapses": {
            "input": p_in.synapses.nnz if p_in.sparse else None,
            "recurrent": p_rec.synapses.nnz if p_rec.sparse else None,
        },
        "hidden_rate_hz_first_last": [statistics.median(rates[:w]), statistics.median(rates[-w:])],
        "batch_ms": ms,
        "hidden_rate_hz": rates,
        "foreign_cores": foreign,
        "components_ms": comps,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--network", default="shd", choices=list(NETWORKS))
    ap.add_argument("--config", default="deepr1", choices=list(CONFIGS))
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=None, help="T (default: the network's, 1400)")
    ap.add_argument("--batches", type=int, default=200, help="timed batches")
    ap.add_argument("--warmup", type=int, default=2, help="excluded batches first")
    ap.add_argument("--window", type=int, default=20, help="first/last batches compared")
    ap.add_argument("--distinct", type=int, default=8, help="distinct input batches, cycled")
    ap.add_argument("--threads", type=int, default=2, help="torch (and numba) threads")
    ap.add_argument("--rate-hz", type=float, default=10.0, help="Poisson rate per input")
    ap.add_argument("--input-gain", type=float, default=None, help="default: bench_paper's")
    ap.add_argument("--idle-load", type=float, default=0.5, help="1-min load average for idle")
    ap.add_argument("--idle-wait", type=float, default=300.0, help="max s to wait for idle")
    ap.add_argument("--quick", action="store_true", help="T 140, 30 batches, window 5, no wait")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.steps is None:
        args.steps = NETWORKS[args.network].steps
    if args.quick:
        args.steps, args.batches, args.window, args.idle_wait = 140, 30, 5, 0.0
    if args.out is None:
        args.out = RESULTS.with_name("bench_drift_cpu_quick.json") if args.quick else RESULTS
    if 2 * args.window > args.batches:
        ap.error("--batches must be at least twice --window")
    tic = time.perf_counter()
    idle = wait_for_idle(args.idle_load, args.idle_wait)
    res = run(args)
    result = {
        "benchmark": "drift of e-prop + DEEP R time per batch over a long run (CPU)",
        "network": f"{args.network}: {NETWORKS[args.network].n_in} -> 512 "
        f"{NETWORKS[args.network].neuron.upper()} -> {NETWORKS[args.network].n_out}",
        "config": args.config,
        "config_text": CONFIGS[args.config].text,
        "batch": args.batch_size,
        "steps": args.steps,
        "timed_batches": args.batches,
        "warmup_batches": args.warmup,
        "window": args.window,
        "inputs": f"Poisson {args.rate_hz} Hz per channel, {args.distinct} distinct batches cycled",
        "quick": args.quick,
        "machine": machine(),
        "idle_wait": idle,
        "load_average_before": idle["load_average"],
        "load_average_after": list(os.getloadavg()),
        **res,
        "wall_s": time.perf_counter() - tic,
    }
    print(
        f"first {args.window}: {res['first_median_ms']:.1f} ms, last {args.window}: "
        f"{res['last_median_ms']:.1f} ms (ratio {res['ratio_last_over_first']:.3f}); slope "
        f"{res['slope_ms_per_100_batches']:+.2f} ms / 100 batches "
        f"({res['slope_percent_per_100_batches']:+.2f} %); uncontended batches "
        f"{res['uncontended_batches']}/{args.batches}"
    )
    for k, c in res["components"].items():
        print(
            f"  {k:9s} first {c['first_median_ms']:8.2f} ms  last {c['last_median_ms']:8.2f} ms  "
            f"slope {c['slope_ms_per_100_batches']:+.2f} ms / 100 batches"
        )
    print(f"rewiring totals {res['rewiring_totals']}; log {res['rewiring_log_size']}")
    print(f"rss {res['rss']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out} ({result['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
