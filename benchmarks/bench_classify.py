"""The main job's accuracy table: dense vs static sparse vs DEEP R over the paper's density grid.

Part 1 trains, for every seed, the dense network once and, for every input / recurrent density
pair of the grid (the paper's {1 %, 5 %} x {1 %, 5 %} by default), a static sparse network and a
DEEP R network whose L1 is chosen on a validation split of the training set (``--l1 auto``:
the test set never chooses anything). Each run is ``neurowire classify`` in its own subprocess
with the ``make demo`` settings unless flags are given. It prints the table in the paper's form
(test accuracy mean +- sample SD over seeds; a one-sided exact Wilcoxon signed-rank test of
DEEP R > static, paired by seed) and, per configuration, the time per epoch, DEEP R's own share
of training time and the chosen L1 values.

Part 2 measures DEEP R's overhead on the paper's SHD-sized network (700 Poisson inputs at 10 Hz
-> 512 ALIF -> 20, T = 1,400 steps, 1 % input and recurrent density, rows padded 2x, batch 32):
a few training batches with synthetic input, the rule timed apart.

Usage::

    PYTHONPATH=src python benchmarks/bench_classify.py --seeds 0 1 2 3 4
    PYTHONPATH=src python benchmarks/bench_classify.py --quick      # smoke run, nothing written
    PYTHONPATH=src python benchmarks/bench_classify.py --densities 0.05/0.01 -- --epochs 5

Writes ``benchmarks/results/bench_classify_grid_cpu.json``.
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

from scipy import stats

RESULTS = Path(__file__).resolve().parent / "results" / "bench_classify_grid_cpu.json"
#: the demo's pair first, so that a cut-short run has it
PAPER_GRID = ("0.01/0.01", "0.05/0.01", "0.01/0.05", "0.05/0.05")


def classify(seed: int, configurations: list[str], extra: list[str]) -> dict:
    """One ``neurowire classify`` run in a fresh process; its ``summary.json``."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [
            sys.executable,
            "-m",
            "neurowire.cli",
            "classify",
            "--configurations",
            *configurations,
            "--no-progress",
            "--seed",
            str(seed),
            "--out",
            out,
            *extra,
        ]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return json.loads((Path(out) / "summary.json").read_text())


def densities(text: str) -> tuple[float, float]:
    """``"input/recurrent"`` -> two floats."""
    try:
        a, b = (float(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected INPUT/RECURRENT, got {text!r}") from None
    return a, b


def label(pair: tuple[float, float]) -> str:
    return f"{100 * pair[0]:g} % / {100 * pair[1]:g} %"


def mean_sd(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": values,
    }


def entry(runs: list[dict]) -> dict:
    """Accuracy, timing and rewiring statistics of one configuration over seeds."""
    times = [h["time_s"] for r in runs for h in r["history"]]
    out = {
        "accuracy_test": mean_sd([r["accuracy_test"] for r in runs]),
        "accuracy_train": mean_sd([r["accuracy_train"] for r in runs]),
        "time_per_epoch_s": {
            "median": statistics.median(times),
            "min": min(times),
            "max": max(times),
        },
        "n_synapses": runs[0]["n_synapses"],
        "n_slots": runs[0]["n_slots"],
        "rules_time_fraction": mean_sd([r["rules_time_fraction"] for r in runs]),
        "failed_placements": sum(r["failed_placements"] for r in runs),
        "rewirings_per_batch": mean_sd([r["rewirings_per_batch"] for r in runs]),
    }
    if "l1" in runs[0]:
        out["l1"] = [r["l1"] for r in runs]
        out["l1_selection_s"] = [r.get("l1_selection", {}).get("wall_s") for r in runs]
    return out


def wilcoxon_greater(deep_r: list[float], static: list[float]) -> float | None:
    """One-sided exact Wilcoxon signed-rank p of DEEP R > static, paired by seed (None with
    fewer than two pairs or no non-zero difference)."""
    diffs = [a - b for a, b in zip(deep_r, static, strict=True)]
    if len(diffs) < 2 or not any(diffs):
        return None
    return float(stats.wilcoxon(deep_r, static, alternative="greater", method="exact").pvalue)


def table(result: dict) -> str:
    """The accuracy table in the form of the paper's (mean +- SD over seeds, L1 chosen)."""
    n = len(result["seeds"])
    dense = result["dense"]["accuracy_test"]
    lines = [
        f"test accuracy, mean +- SD over {n} seeds (L1 chosen on validation per seed)",
        f"{'input / recurrent':18s} {'static sparse':>16s} {'DEEP R':>16s} {'L1 (per seed)':>24s}"
        f" {'p':>6s} {'s/epoch static, DEEP R, dense':>30s}",
        f"{'dense':18s} {_pct(dense):>16s} {'-':>16s} {'-':>24s} {'-':>6s}",
    ]
    dense_t = result["dense"]["time_per_epoch_s"]["median"]
    for row in result["grid"]:
        st, dr = row["static"], row["deep_r"]
        p = "-" if row["p_deep_r_gt_static"] is None else f"{row['p_deep_r_gt_static']:.3f}"
        l1 = ",".join(f"{v:g}" for v in dr["l1"])
        times = (
            f"{st['time_per_epoch_s']['median']:.2f}, {dr['time_per_epoch_s']['median']:.2f}, "
            f"{dense_t:.2f}"
        )
        lines.append(
            f"{row['label']:18s} {_pct(st['accuracy_test']):>16s} "
            f"{_pct(dr['accuracy_test']):>16s} {l1:>24s} {p:>6s} {times:>30s}"
        )
    return "\n".join(lines)


def _pct(s: dict) -> str:
    return f"{100 * s['mean']:.2f} +- {100 * s['sd']:.2f} %"


def grid_runs(
    seeds: list[int], pairs: list[tuple[float, float]], extra: list[str], on_row=None
) -> dict:
    """Dense once per seed, then static and DEEP R per density pair; ``on_row(partial)`` is
    called after every pair with the results so far (a long run keeps what it finished)."""
    dense_runs = [classify(s, ["dense"], extra)["configurations"]["dense"] for s in seeds]
    first = None
    rows = []
    for pair in pairs:
        flags = ["--input-density", str(pair[0]), "--recurrent-density", str(pair[1]), *extra]
        runs = [classify(s, ["static", "deep_r"], flags) for s in seeds]
        first = first or runs[0]
        static = [r["configurations"]["static"] for r in runs]
        deep_r = [r["configurations"]["deep_r"] for r in runs]
        rows.append(
            {
                "input_density": pair[0],
                "recurrent_density": pair[1],
                "label": label(pair),
                "static": entry(static),
                "deep_r": entry(deep_r),
                "p_deep_r_gt_static": wilcoxon_greater(
                    [r["accuracy_test"] for r in deep_r], [r["accuracy_test"] for r in static]
                ),
                "deep_r_minus_static_points": 100
                * statistics.fmean(
                    a["accuracy_test"] - b["accuracy_test"]
                    for a, b in zip(deep_r, static, strict=True)
                ),
                "dense_minus_deep_r_points": 100
                * statistics.fmean(
                    a["accuracy_test"] - b["accuracy_test"]
                    for a, b in zip(dense_runs, deep_r, strict=True)
                ),
            }
        )
        if on_row is not None:
            on_row({"dense": entry(dense_runs), "grid": rows, "example": first})
    return {"dense": entry(dense_runs), "grid": rows, "example": first}


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
    trainer.timers = dict.fromkeys(trainer.timers, 0.0)
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
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument(
        "--densities",
        type=densities,
        nargs="+",
        default=[densities(p) for p in PAPER_GRID],
        help="INPUT/RECURRENT density pairs",
    )
    ap.add_argument("--quick", action="store_true", help="tiny smoke run, JSON not written")
    ap.add_argument("--skip-paper-size", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS, help="JSON file to write")
    ap.add_argument("extra", nargs="*", help="flags passed to neurowire classify (after --)")
    args = ap.parse_args()
    extra = list(args.extra)
    if args.quick:
        extra += ["--dataset", "patterns", "--hidden", "16", "--epochs", "2"]
        extra += ["--l1-grid", "0.01", "0.1", "--l1-epochs", "1"]
        args.seeds, args.densities = args.seeds[:2], [(0.2, 0.2)]
    load_before = os.getloadavg()
    tic = time.perf_counter()

    def report(runs: dict, complete: bool) -> dict:
        runs = dict(runs)
        example = runs.pop("example")
        result = {
            "complete": complete,
            "machine": {
                **example["machine"],
                "load_average_before": list(load_before),
                "load_average_after": list(os.getloadavg()),
                "node": platform.node(),
            },
            "command": "neurowire classify --configurations ... --seed S "
            + " ".join(extra).strip(),
            "seeds": args.seeds,
            "config": example["config"],
            "dataset": example["dataset"],
            **runs,
            "wall_s": time.perf_counter() - tic,
        }
        if not args.quick:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2))
        return result

    result = report(
        grid_runs(args.seeds, args.densities, extra, on_row=lambda r: report(r, False)), True
    )
    if not args.skip_paper_size:
        result["paper_size_deep_r_overhead"] = paper_size_overhead(
            batches=2 if args.quick else 6, steps=100 if args.quick else 1400
        )
    print(table(result))
    if "paper_size_deep_r_overhead" in result:
        print(json.dumps(result["paper_size_deep_r_overhead"], indent=1))
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
