"""Two source trees side by side in one run, repetitions alternating between them.

Suites (``--suite``):

* ``eprop-topomap``: ``bench_eprop.py`` (dense, 10 %, 1 %; factorised native and torch, online)
  and ``bench_topomap.py`` at ``--scales``.
* ``paper``: ``bench_paper.py``'s SHD network (700 -> 512 ALIF -> 20, T = 1,400, batch 32;
  dense, static 1 %, DEEP R 1 %) in seconds per sample, ``bench_topomap.py`` at ``--scales``
  (real-time factor), and ``neurowire classify --compare`` on one seed for ``--epochs`` epochs
  (seconds per epoch of each configuration). Its first repetition also checks that both trees
  give the same outputs: ``classify``'s summary (timings left out) and final checkpoints, and a
  short ``topomap`` run's ``.npz`` files, compared exactly.

Each measurement runs in a fresh subprocess with ``PYTHONPATH`` set to one tree's ``src`` and
that tree's own benchmark script; the trees alternate, repetition after repetition, so machine
drift hits both alike. Reported per measurement: every repetition, the median and range per
tree, and the ratio of medians (``new / old``; above 1 is slower).

Usage (the previous commit checked out in a worktree)::

    git worktree add /tmp/nw-old <commit>
    PYTHONPATH=src python benchmarks/bench_side_by_side.py --old /tmp/nw-old --new . --reps 5 \\
        --suite paper --scales 1 2 --out benchmarks/results/side_by_side_paper.json
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
from collections.abc import Callable
from pathlib import Path

import numpy as np

EPROP = [
    (config, method)
    for config in ("dense", "p10", "p01")
    for method in ("factorized", "factorized_torch", "online")
]
PAPER_CONFIGS = ("dense", "static1", "deepr1")
#: summary fields that hold machine facts or the output folder, left out of the output check
#: (as are wall-clock times: see :func:`is_timing`)
NOT_RESULTS = ("machine", "out", "command")

Measurements = dict[str, float]


def run(tree: Path, args: list[str]) -> str:
    """Run ``python args...`` with ``tree``'s sources; returns stdout."""
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    done = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def script(tree: Path, name: str) -> str:
    return str(tree / "benchmarks" / name)


def eprop(tree: Path, batches: int) -> Measurements:
    out = {}
    for config, method in EPROP:
        args = ["--worker", "--config", config, "--method", method, "--batches", str(batches)]
        got = json.loads(run(tree, [script(tree, "bench_eprop.py"), *args]).splitlines()[-1])
        out[f"eprop {config} {method} s/sample"] = float(got["seconds_per_sample"])
    return out


def topomap(tree: Path, scales: list[int], duration: float) -> Measurements:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "topomap.json"
        args = ["--scales", *map(str, scales), "--seeds", "0", "--duration", str(duration)]
        run(tree, [script(tree, "bench_topomap.py"), *args, "--out", str(path)])
        data = json.loads(path.read_text())
    out = {}
    for r in data["results"]:
        out[f"topomap scale {r['scale']} real_time_factor"] = r["real_time_factor"]
        out[f"topomap scale {r['scale']} compile_s"] = r["compile_s"]
    return out


def paper(tree: Path, batches: int, configs: tuple[str, ...] = PAPER_CONFIGS) -> Measurements:
    """SHD seconds per sample of the paper's three configurations at batch 32 (the tree's
    ``bench_paper.py``, one run each, no wait for an idle machine)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "paper.json"
        args = ["--networks", "shd", "--configs", *configs, "--batch-size", "32"]
        args += ["--batches", str(batches), "--warmup", "1", "--repeats", "1", "--idle-wait", "0"]
        run(tree, [script(tree, "bench_paper.py"), *args, "--out", str(path)])
        table = json.loads(path.read_text())["table"]
    return {
        f"paper shd {config} s/sample": table[f"shd/{config}/b32"]["ms_per_sample"]["median"] / 1e3
        for config in configs
    }


def classify(tree: Path, epochs: int, out_dir: Path) -> Measurements:
    """Seconds per epoch of ``neurowire classify --compare`` (seed 0, L1 0.01) per configuration;
    the run's folder is left in ``out_dir``."""
    args = ["-m", "neurowire", "classify", "--compare", "--epochs", str(epochs), "--l1", "0.01"]
    run(tree, [*args, "--seed", "0", "--no-progress", "--out", str(out_dir), "--overwrite"])
    summary = json.loads((out_dir / "summary.json").read_text())
    return {
        f"classify {name} s/epoch": float(entry["time_per_epoch_s"])
        for name, entry in summary["configurations"].items()
    }


def topomap_outputs(tree: Path, out_dir: Path) -> None:
    args = ["-m", "neurowire", "topomap", "--duration", "2", "--seed", "0", "--no-progress"]
    run(tree, [*args, "--out", str(out_dir), "--overwrite"])


def is_timing(key: str) -> bool:
    """Whether a summary field holds a wall-clock time or a machine fact."""
    return key in NOT_RESULTS or key.endswith(("_s", "_ms")) or "time" in key or "timing" in key


def without_timings(value):
    """A summary with every timing or machine field removed (recursively)."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if not is_timing(k)}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def same_outputs(old: Path, new: Path) -> dict[str, bool]:
    """Exact comparison of two run folders: summaries and checkpoints without timings, every
    ``.npz`` array and every checkpoint tensor (NaN equal to NaN)."""
    from neurowire.io import load_checkpoint

    result = {}
    for path in sorted(old.rglob("*")):
        rel = path.relative_to(old)
        other = new / rel
        if path.suffix == ".json" and path.name in ("summary.json",):
            a, b = (without_timings(json.loads(p.read_text())) for p in (path, other))
            result[str(rel)] = a == b
        elif path.suffix == ".npz":
            with np.load(path) as a, np.load(other) as b:
                result[str(rel)] = a.files == b.files and all(_equal(a[k], b[k]) for k in a.files)
        elif path.suffix == ".pt":
            a, b = (without_timings(load_checkpoint(p)) for p in (path, other))
            result[str(rel)] = _equal(a, b)
    return result


def _equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if hasattr(a, "shape") and hasattr(a, "dtype"):  # NaN (an empty measure) equals NaN
        a, b = np.asarray(a), np.asarray(b)
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    return a == b


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", type=Path, required=True, help="tree of the previous commit")
    ap.add_argument("--new", type=Path, default=Path("."), help="tree under test")
    ap.add_argument("--suite", choices=("eprop-topomap", "paper"), default="eprop-topomap")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batches", type=int, default=5, help="timed e-prop batches per run")
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--duration", type=float, default=10.0, help="topomap model seconds")
    ap.add_argument("--epochs", type=int, default=2, help="classify epochs (suite paper)")
    ap.add_argument(
        "--parts",
        nargs="+",
        choices=("paper", "topomap", "classify"),
        default=["paper", "topomap", "classify"],
        help="what suite paper measures (the output check needs classify)",
    )
    ap.add_argument("--paper-configs", nargs="+", choices=PAPER_CONFIGS, default=PAPER_CONFIGS)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/side_by_side.json"))
    args = ap.parse_args()
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    commits = {
        k: subprocess.run(
            ["git", "-C", str(t), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        for k, t in trees.items()
    }
    work = Path(tempfile.mkdtemp(prefix="side-by-side-"))
    suite: list[Callable[[Path, int, str], Measurements]]
    if args.suite == "eprop-topomap":
        suite = [
            lambda tree, rep, name: eprop(tree, args.batches),
            lambda tree, rep, name: topomap(tree, args.scales, args.duration),
        ]
    else:
        parts = {
            "paper": lambda tree, rep, name: paper(tree, args.batches, tuple(args.paper_configs)),
            "topomap": lambda tree, rep, name: topomap(tree, args.scales, args.duration),
            "classify": lambda tree, rep, name: classify(
                tree, args.epochs, work / f"classify-{name}-{rep}"
            ),
        }
        suite = [parts[name] for name in args.parts]
    load0 = os.getloadavg()
    raw: dict[str, dict[str, list[float]]] = {}
    started = time.time()
    for rep in range(args.reps):
        for name in ("old", "new") if rep % 2 == 0 else ("new", "old"):
            for part in suite:
                for key, value in part(trees[name], rep, name).items():
                    raw.setdefault(key, {"old": [], "new": []})[name].append(value)
                    print(f"rep {rep} {name:3s} {key:44s} {value:.5g}", file=sys.stderr)
    identical = None
    if args.suite == "paper" and "classify" in args.parts:
        for name, tree in trees.items():
            topomap_outputs(tree, work / f"topomap-{name}")
        identical = {
            "classify": same_outputs(work / "classify-old-0", work / "classify-new-0"),
            "topomap": same_outputs(work / "topomap-old", work / "topomap-new"),
        }
    rows = {}
    for key, per in raw.items():
        old, new = summary(per["old"]), summary(per["new"])
        rows[key] = {"old": old, "new": new, "new_over_old": new["median"] / old["median"]}
        rows[key]["runs"] = per
    result = {
        "benchmark": "side_by_side",
        "suite": args.suite,
        "commits": commits,
        "reps": args.reps,
        "settings": {k: str(v) for k, v in vars(args).items() if k not in ("old", "new")},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "load_average_before": load0,
        "load_average_after": os.getloadavg(),
        "wall_s": time.time() - started,
        "identical_outputs": identical,
        "results": rows,
    }
    for key, row in rows.items():
        print(
            f"{key:46s} old {row['old']['median']:.4g}  new {row['new']['median']:.4g}  "
            f"new/old {row['new_over_old']:.3f}"
        )
    if identical is not None:
        for kind, files in identical.items():
            print(f"{kind} outputs identical: {all(files.values())} ({len(files)} files)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
