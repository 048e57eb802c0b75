"""NEST's structural plasticity example in NEST 3.10 and in neurowire (``neurowire msp``), raced
seed by seed in one run.

For every seed, NEST runs first (``nest_msp_example.py`` with the interpreter named by
``NEST_PYTHON`` or ``--nest-python``), then neurowire (``python -m neurowire msp`` with this
tree's sources), each in a fresh process, so that machine drift hits both alike. Reported:

* per run: wall time of the process, of the simulation loop (``loop_s``) and its real-time
  factor (loop wall seconds per model second), and the load averages before and after;
* per simulator: the mean and SD over seeds of every curve at every record time (mean Ca of E
  and I, total connections of E and I, connections per pair of populations);
* the comparison: whether neurowire's mean over seeds is within 5 % of NEST's mean at 50 s and
  at 100 s, and within NEST's mean +- 2 SD at every record time after 100 s, for the
  connections and the mean calcium of E and I (:data:`MEASURES`).

Without NEST (``NEST_PYTHON`` unset), the NEST runs are skipped with a message and only
neurowire runs. Writes ``results/bench_msp.json`` and a figure of both simulators' curves (mean
+- SD over seeds) beside it.

Usage (an idle machine; NEST takes about 3 minutes a seed)::

    NEST_PYTHON=/path/to/nest/bin/python PYTHONPATH=src nice -n 10 \\
        python benchmarks/bench_msp.py --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neurowire.analysis.homeostasis import curve_bands, plot_msp_curves
from neurowire.experiments import msp

HERE = Path(__file__).resolve().parent
NEST_SCRIPT = HERE / "nest_msp_example.py"
#: the curves compared between the simulators
MEASURES = ("total_connections_e", "total_connections_i", "mean_ca_e", "mean_ca_i")
#: every curve both simulators record
CURVES = (*MEASURES, "e_to_e", "e_to_i", "i_to_e", "i_to_i")
#: record times [s] where neurowire's mean must be within :data:`REL_TOL` of NEST's mean
CHECK_TIMES_S = (50.0, 100.0)
REL_TOL = 0.05
#: after the last check time, neurowire's mean must lie within NEST's mean +- BAND_SD SDs
BAND_SD = 2.0


def load() -> list[float] | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def timed(command: Sequence[str], env: Mapping[str, str] | None = None) -> float:
    """Run ``command`` (its output passed through); returns its wall time [s]."""
    tic = time.perf_counter()
    subprocess.run(list(command), env=None if env is None else dict(env), check=True)
    return time.perf_counter() - tic


def run_nest(nest_python: str, seed: int, duration_s: float, folder: Path) -> dict[str, Any]:
    """One seed of the example in NEST; its recordings and timings."""
    out = folder / f"nest_{seed}.json"
    command = [nest_python, str(NEST_SCRIPT), "--seeds", str(seed)]
    command += ["--t-sim", f"{duration_s * 1000.0:g}", "--out", str(out)]
    before = load()
    wall = timed(command)
    data = json.loads(out.read_text())
    run = data["runs"][0]
    return {
        "seed": seed,
        "nest_version": data.get("nest_version"),
        "process_s": wall,
        "build_s": run["build_s"],
        "loop_s": run["loop_s"],
        "real_time_factor": run["real_time_factor"],
        "load_before": before,
        "load_after": load(),
        "final_synapses": run.get("final_synapses"),
        "curves": run["recordings"],
    }


def run_neurowire(seed: int, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """One seed of ``neurowire msp`` in a fresh process with this tree's sources."""
    out = folder / f"neurowire_{seed}"
    command = [sys.executable, "-m", "neurowire", "msp", "--seed", str(seed), "--out", str(out)]
    command += ["--duration", f"{args.duration:g}", "--engine", args.engine, "--no-progress"]
    command += ["--record-every", f"{args.record_every:g}"]
    command += ["--update-interval", f"{args.update_interval:g}"]
    src = str(HERE.parent / "src")
    paths = [src, os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))
    before = load()
    wall = timed(command, env)
    s = json.loads((out / "summary.json").read_text())
    return {
        "seed": seed,
        "engine": s["engine"],
        "process_s": wall,
        "build_s": s["build_s"],
        "loop_s": s["loop_s"],
        "compile_s": s["compile_s"],
        "real_time_factor": s["real_time_factor"],
        "load_before": before,
        "load_after": load(),
        "final_synapses": s["final_synapses"],
        "curves": s["curves"],
    }


def bands(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean and SD over runs of every curve of :data:`CURVES` at every record time."""
    curves = [r["curves"] for r in runs]
    out: dict[str, Any] = {"t_ms": [float(t) for t in curves[0]["t_ms"]]}
    for key in CURVES:
        band = curve_bands(curves, key)
        out[key] = {"mean": band["mean"].tolist(), "sd": band["sd"].tolist()}
    return out


def compare(nest: Mapping[str, Any], mine: Mapping[str, Any]) -> dict[str, Any]:
    """neurowire's bands against NEST's (both from :func:`bands`, same record times).

    Per measure of :data:`MEASURES`: at each of :data:`CHECK_TIMES_S` (if recorded) NEST's and
    neurowire's means, the relative difference and whether it is within :data:`REL_TOL`; after
    the last check time, the record times where neurowire's mean leaves NEST's mean
    +- :data:`BAND_SD` SDs. ``passed``: whether every check that could be made passed (None
    when the runs are too short for any).
    """
    t = np.asarray(nest["t_ms"], dtype=np.float64)
    if not np.array_equal(t, np.asarray(mine["t_ms"], dtype=np.float64)):
        raise ValueError("NEST and neurowire record at different times")
    late = t > max(CHECK_TIMES_S) * 1000.0
    out: dict[str, Any] = {"rel_tol": REL_TOL, "band_sd": BAND_SD, "measures": {}}
    passed, checked = True, 0
    for key in MEASURES:
        a = np.asarray(nest[key]["mean"])
        sd = np.asarray(nest[key]["sd"])
        b = np.asarray(mine[key]["mean"])
        at = {}
        for t_s in CHECK_TIMES_S:
            hit = np.flatnonzero(np.isclose(t, t_s * 1000.0))
            if hit.size == 0:
                at[f"{t_s:g}"] = "not recorded"
                continue
            i = int(hit[0])
            if a[i] != 0:
                rel = float(abs(b[i] - a[i]) / abs(a[i]))
            else:  # relative to 0: equal or not
                rel = 0.0 if b[i] == 0 else None
            ok = rel is not None and rel <= REL_TOL
            passed, checked = passed and ok, checked + 1
            at[f"{t_s:g}"] = {
                "nest": float(a[i]),
                "neurowire": float(b[i]),
                "rel_diff": rel,
                "within": ok,
            }
        outside = late & (np.abs(b - a) > BAND_SD * sd)
        passed = passed and not bool(outside.any())
        checked += int(late.sum())
        out["measures"][key] = {
            "at_s": at,
            "band_times": int(late.sum()),
            "outside_band_s": [float(x) / 1000.0 for x in t[outside]],
        }
    out["passed"] = passed if checked else None
    return out


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def summary_lines(result: Mapping[str, Any]) -> list[str]:
    """The printed report: wall times per simulator and the comparison."""
    lines = []
    for name in ("nest", "neurowire"):
        runs = result[name].get("runs")
        if not runs:
            lines.append(f"{name}: {result[name].get('skipped', 'no runs')}")
            continue
        loop = [r["loop_s"] for r in runs]
        rtf = [r["real_time_factor"] for r in runs]
        lines.append(
            f"{name}: loop {np.mean(loop):.1f} s (range {min(loop):.1f}-{max(loop):.1f}), "
            f"real-time factor {np.mean(rtf):.3f}, {len(runs)} seeds"
        )
    comparison = result["comparison"]
    if comparison is None:
        lines.append("comparison: skipped (no NEST runs)")
        return lines
    verdict = {True: "passed", False: "FAILED", None: "nothing to compare (runs too short)"}
    lines.append(f"comparison: {verdict[comparison['passed']]}")
    for key, m in comparison["measures"].items():
        checks = []
        for t_s, c in m["at_s"].items():
            checks.append(
                f"{t_s} s: {c}"
                if isinstance(c, str)
                else f"{t_s} s: {'within' if c['within'] else 'NOT within'} {100 * REL_TOL:g} % "
                f"(NEST {c['nest']:.4g}, neurowire {c['neurowire']:.4g})"
            )
        checks.append(f"{len(m['outside_band_s'])}/{m['band_times']} late times outside the band")
        lines.append(f"  {key}: " + "; ".join(checks))
    return lines


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--duration", type=float, default=msp.DURATION_S, help="model time [s]")
    ap.add_argument("--engine", default="auto", help="neurowire's engine")
    ap.add_argument(
        "--record-every", type=float, default=msp.RECORD_EVERY_MS, help="[ms]; NEST's: 1000"
    )
    ap.add_argument("--update-interval", type=float, default=msp.UPDATE_INTERVAL_MS, help="[ms]")
    ap.add_argument(
        "--nest-python",
        default=os.environ.get("NEST_PYTHON"),
        help="the interpreter that has NEST 3.10 (default: $NEST_PYTHON)",
    )
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_msp.json")
    return ap


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    if any(s < 1 for s in args.seeds):
        parser().error(f"--seeds must be >= 1 (NEST's rng_seed), got {args.seeds}")
    nest_python = args.nest_python or None
    if nest_python and (
        args.record_every != msp.RECORD_EVERY_MS
        or args.update_interval != msp.UPDATE_INTERVAL_MS
        or (args.duration * 1000.0) % msp.RECORD_EVERY_MS
    ):
        parser().error(
            "NEST's script records every 1000 ms and rewires every 10000 ms: give a --duration "
            "of whole seconds and leave --record-every and --update-interval at their defaults, "
            "or run without NEST"
        )
    skipped = None
    if not nest_python:
        skipped = "NEST_PYTHON is unset: the NEST runs are skipped (set it, or --nest-python, "
        skipped += "to the interpreter that has NEST 3.10)"
        print(f"bench_msp: {skipped}", file=sys.stderr)
    result: dict[str, Any] = {
        "benchmark": "bench_msp",
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "load_start": load(),
        "config": {
            "seeds": args.seeds,
            "duration_s": args.duration,
            "engine": args.engine,
            "record_every_ms": args.record_every,
            "update_interval_ms": args.update_interval,
        },
        "nest": {"runs": []} if skipped is None else {"skipped": skipped},
        "neurowire": {"runs": []},
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for seed in args.seeds:
            if skipped is None:
                result["nest"]["runs"].append(run_nest(nest_python, seed, args.duration, folder))
            result["neurowire"]["runs"].append(run_neurowire(seed, args, folder))
    result["load_end"] = load()
    for name in ("nest", "neurowire"):
        if result[name].get("runs"):
            result[name]["bands"] = bands(result[name]["runs"])
    result["comparison"] = None
    if skipped is None:
        result["comparison"] = compare(result["nest"]["bands"], result["neurowire"]["bands"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    groups = {
        label: [r["curves"] for r in result[name]["runs"]]
        for name, label in (("nest", "NEST 3.10"), ("neurowire", "neurowire"))
        if result[name].get("runs")
    }
    figure = args.out.with_suffix(".png")
    plot_msp_curves(
        groups,
        figure,
        targets=msp.TARGETS,
        title=f"NEST's structural plasticity example: NEST and neurowire, "
        f"{len(args.seeds)} seeds, {args.duration:g} s",
    )
    for line in summary_lines(result):
        print(line)
    print(f"-> {args.out}, {figure}")
    return result


if __name__ == "__main__":
    main()
