"""What rewiring restores after a lesion: dense vs static sparse vs DEEP R over three seeds.

For every seed, ``neurowire classify --compare --lesion EPOCH:FRACTION`` runs in its own
subprocess at the built-in default size (MNIST-1D, 256 inputs, 512 ALIF, 10 outputs, 10 epochs,
1 % / 1 % densities, DEEP R rows 2x, L1 chosen on held-out training data) unless flags are
given after ``--``. After epoch EPOCH a random FRACTION of the hidden layer's input and recurrent
synapses is deleted (each projection separately): static sparse networks keep the loss, DEEP R
regrows up to its original synapse count, dense networks hold the cut weights at zero. Per
configuration the script gathers the test accuracy just before and just after the cut, the
epochs until it is back within one point (or "not recovered") and the final accuracy, as mean,
range (min, max) and per-seed values, prints a table and draws test accuracy per epoch (mean,
range shaded) with the cut marked.

Usage::

    PYTHONPATH=src python benchmarks/bench_lesion.py                # seeds 0 1 2, --lesion 5:0.5
    PYTHONPATH=src python benchmarks/bench_lesion.py --lesion 5:0.8
    PYTHONPATH=src python benchmarks/bench_lesion.py --out /tmp/l.json -- --epochs 4 --hidden 64

Writes ``benchmarks/results/lesion_3seeds.json`` and ``lesion_3seeds.png`` beside it (after
every seed, so a cut-short run keeps what it finished; ``complete`` says whether all ran).
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
from collections.abc import Sequence
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "lesion_3seeds.json"
SEEDS = (0, 1, 2)
#: Cut half of the synapses after half of the default 10 epochs.
LESION = "5:0.5"


def classify(seed: int, lesion: str, extra: Sequence[str]) -> dict:
    """One ``neurowire classify --compare --lesion`` run in a fresh process; its summary."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [
            sys.executable,
            "-m",
            "neurowire.cli",
            "classify",
            "--compare",
            "--lesion",
            lesion,
            "--no-progress",
            "--seed",
            str(seed),
            "--out",
            out,
            *extra,
        ]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return json.loads((Path(out) / "summary.json").read_text())


def spread(values: Sequence[float]) -> dict:
    """Mean, range and the values themselves."""
    return {
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
        "values": list(values),
    }


def entry(runs: Sequence[dict]) -> dict:
    """One configuration over seeds (``runs``: its summary entries, one per seed)."""
    lesions = [r["lesion"] for r in runs]
    back = [les["epochs_to_recover"] for les in lesions]
    recovered = [n for n in back if not isinstance(n, str)]
    return {
        **{
            key: spread([les[key] for les in lesions])
            for key in ("accuracy_before", "accuracy_after", "accuracy_final", "drop_points")
        },
        "epochs_to_recover": back,
        "recovered_seeds": len(recovered),
        "epochs_to_recover_of_recovered": spread(recovered) if recovered else None,
        "accuracy_test_per_epoch": [[h["accuracy_test"] for h in r["history"]] for r in runs],
        "synapses_before": [les["synapses_before"] for les in lesions],
        "removed": [les["removed"] for les in lesions],
        "synapses_final": [les["synapses_final"] for les in lesions],
        "l1": [r["l1"] for r in runs] if "l1" in runs[0] else None,
    }


def table(result: dict) -> str:
    """Mean [min, max] over seeds of the accuracies around the cut, and the recoveries."""
    les, n = result["lesion"], len(result["seeds"])
    lines = [
        f"{100 * les['fraction']:g} % of the input and recurrent synapses cut after epoch "
        f"{les['epoch']}; test accuracy, mean [min, max] over {n} seeds",
        f"{'configuration':14s} {'before':>22s} {'just after':>22s} {'final':>22s} "
        f"{'epochs back within 1 point (per seed)':>38s}",
    ]
    for name, c in result["configurations"].items():
        back = ", ".join(str(b) for b in c["epochs_to_recover"])
        lines.append(
            f"{name:14s} {_pct(c['accuracy_before']):>22s} {_pct(c['accuracy_after']):>22s} "
            f"{_pct(c['accuracy_final']):>22s} {back:>38s}"
        )
    return "\n".join(lines)


def _pct(s: dict) -> str:
    return f"{100 * s['mean']:.1f} [{100 * s['min']:.1f}, {100 * s['max']:.1f}] %"


def figure(summaries: Sequence[dict], epoch: int, fraction: float, path: Path) -> Path:
    """Test accuracy per epoch of every configuration, mean and range over the seeds."""
    from neurowire import analysis
    from neurowire.experiments import lesions

    names = summaries[0]["configurations"]
    runs = {name: [lesions.curve(s["configurations"][name]) for s in summaries] for name in names}
    return analysis.plot_lesion_accuracy(runs, epoch, fraction, path)


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--lesion", default=LESION, help="EPOCH:FRACTION for neurowire classify")
    ap.add_argument("--out", type=Path, default=RESULTS, help="JSON file (the figure: .png)")
    ap.add_argument("extra", nargs="*", help="flags passed to neurowire classify (after --)")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()
    tic = time.perf_counter()
    summaries: list[dict] = []
    result: dict = {}
    for seed in args.seeds:
        summaries.append(classify(seed, args.lesion, args.extra))
        first = summaries[0]
        epoch, fraction = first["config"]["lesion_epoch"], first["config"]["lesion_fraction"]
        result = {
            "complete": len(summaries) == len(args.seeds),
            "command": f"neurowire classify --compare --lesion {args.lesion} --seed S "
            + " ".join(args.extra).strip(),
            "seeds": args.seeds[: len(summaries)],
            "lesion": {"epoch": epoch, "fraction": fraction, "tolerance_points": 1.0},
            "machine": {
                **first["machine"],
                "load_average_before": list(load_before),
                "load_average_after": list(os.getloadavg()),
                "node": platform.node(),
            },
            "config": first["config"],
            "dataset": first["dataset"],
            "configurations": {
                name: entry([s["configurations"][name] for s in summaries])
                for name in first["configurations"]
            },
            "wall_s": time.perf_counter() - tic,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        figure(summaries, epoch, fraction, args.out.with_suffix(".png"))
    print(table(result))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return result


if __name__ == "__main__":
    main()
