"""Two source trees side by side in one run: ``bench_topomap.py`` and ``bench_eprop.py``.

Each measurement runs in a fresh subprocess with ``PYTHONPATH`` set to one tree's ``src`` and
that tree's own benchmark script; the trees alternate, repetition after repetition, so machine
drift hits both alike. Reported per configuration: every repetition, the median and range per
tree, and the ratio of medians (``new / old``; above 1 is slower).

Usage (the previous commit checked out in a worktree)::

    git worktree add /tmp/nw-old <commit>
    PYTHONPATH=src python benchmarks/bench_side_by_side.py --old /tmp/nw-old --new . --reps 3
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

EPROP = [
    (config, method)
    for config in ("dense", "p10", "p01")
    for method in ("factorized", "factorized_torch", "online")
]


def run(tree: Path, script: str, args: list[str]) -> str:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    cmd = [sys.executable, str(tree / "benchmarks" / script), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return done.stdout


def eprop(tree: Path, config: str, method: str, batches: int) -> float:
    args = ["--worker", "--config", config, "--method", method, "--batches", str(batches)]
    out = json.loads(run(tree, "bench_eprop.py", args).strip().splitlines()[-1])
    return float(out["seconds_per_sample"])


def topomap(tree: Path, scales: list[int], duration: float) -> dict[int, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "topomap.json"
        args = ["--scales", *map(str, scales), "--seeds", "0", "--duration", str(duration)]
        run(tree, "bench_topomap.py", [*args, "--out", str(path)])
        data = json.loads(path.read_text())
    return {
        r["scale"]: {"real_time_factor": r["real_time_factor"], "compile_s": r["compile_s"]}
        for r in data["results"]
    }


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", type=Path, required=True, help="tree of the previous commit")
    ap.add_argument("--new", type=Path, default=Path("."), help="tree under test")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batches", type=int, default=5, help="timed e-prop batches per run")
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--duration", type=float, default=10.0, help="topomap model seconds")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/side_by_side.json"))
    args = ap.parse_args()
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    commits = {
        k: subprocess.run(
            ["git", "-C", str(t), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        for k, t in trees.items()
    }
    load0 = os.getloadavg()
    raw: dict[str, dict[str, list[float]]] = {}
    started = time.time()
    for rep in range(args.reps):
        for name in ("old", "new") if rep % 2 == 0 else ("new", "old"):
            tree = trees[name]
            for config, method in EPROP:
                key = f"eprop {config} {method} s/sample"
                value = eprop(tree, config, method, args.batches)
                raw.setdefault(key, {"old": [], "new": []})[name].append(value)
                print(f"rep {rep} {name:3s} {key:40s} {value:.5f}", file=sys.stderr)
            for scale, vals in topomap(tree, args.scales, args.duration).items():
                for field, value in vals.items():
                    key = f"topomap scale {scale} {field}"
                    raw.setdefault(key, {"old": [], "new": []})[name].append(value)
                    print(f"rep {rep} {name:3s} {key:40s} {value:.4f}", file=sys.stderr)
    rows = {}
    for key, per in raw.items():
        old, new = summary(per["old"]), summary(per["new"])
        rows[key] = {
            "old": old,
            "new": new,
            "new_over_old": new["median"] / old["median"],
            "runs": per,
        }
    result = {
        "benchmark": "side_by_side",
        "commits": commits,
        "reps": args.reps,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "load_average_before": load0,
        "load_average_after": os.getloadavg(),
        "wall_s": time.time() - started,
        "results": rows,
    }
    for key, row in rows.items():
        print(
            f"{key:42s} old {row['old']['median']:.4g}  new {row['new']['median']:.4g}  "
            f"new/old {row['new_over_old']:.3f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
