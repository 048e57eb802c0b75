"""Benchmark of the ragged synapse store: structural changes and spike delivery.

What is measured, per device (CPU; CUDA when present), for ``n_pre = n_post = n`` neurons at
connection densities ``p`` (FixedProbability-like stores: row lengths ~ Binomial(n, p), capacity
= the library's binomial row-length bound, padding 1.0, variables ``weight`` and ``trace``):

1. **Structural changes** of :class:`neurowire.RaggedSynapses`, in synapses per second. One
   cycle is: ``remove(mask)`` of a random 1 % of the live synapses; ``add`` of as many random
   absent pairs (``on_duplicate="skip"``, ``on_full="skip"``, ``weight`` given, ``trace``
   zero-filled); ``remove`` of another random 1 %; ``grow(per_row=removed)`` of the same count.
   The store size stays steady. One warm-up cycle, then the median over ``--cycles`` timed
   cycles (both removes of a cycle count). Random masks and pairs are drawn untimed.
2. **Spike delivery** ``w_sum[j] = sum_i z[i] W[i, j]`` (batch 1) with 1 % and 10 % of the
   presynaptic neurons spiking, per strategy of :mod:`neurowire.propagate`: ``dense`` (matmul
   with ``to_dense``; only where ``n * n`` is at most ``--max-dense`` floats), ``slots``,
   ``rows`` (event-driven; the timed step includes ``SpikeEvents.fixed`` with a budget of the spike
   count rounded up to a multiple of 64), ``csr`` (``deliver_csr`` on ``csc_matrix`` of the
   column index) and ``native`` (the numba ``delivery.deliver_spike_list`` of the native CPU engine;
   CPU only). Reported: seconds per step (median over repetitions of a timed loop long enough
   to be measurable) and delivered synaptic events per second (spikes x mean fan-out / time).
   The one-off build of a strategy's derived structure after the store changed (``prep_s``:
   column index + CSR, dense matrix) is timed once, apart. Delivery runs on the store left by
   the structural cycles, so it goes through removed, added and grown synapses. Once per
   configuration every strategy is checked (``allclose``) against a float64 reference summed
   from ``coo()``/``values()``; the checks are recorded in the JSON.

Configurations above ``--max-slots`` slots (``n * capacity``, default 2e8) are skipped and
listed in the JSON with the reason, as is CUDA when absent. Timings use
``time.perf_counter`` with ``torch.cuda.synchronize()`` around them on CUDA.

Output: a table (to stderr when ``--json`` is given), one JSON per device in ``--out``
(default ``benchmarks/results/bench_store_<device>.json``; ``--quick`` writes
``bench_store_<device>_quick.json`` so a smoke run never overwrites measured results), with
machine information; ``--json`` also prints the results as one JSON object to stdout.

Run (from the repository root)::

    PYTHONPATH=src python benchmarks/bench_store.py              # full run, ~10 min on 2 cores
    PYTHONPATH=src python benchmarks/bench_store.py --quick      # n = 1000 only, seconds
    PYTHONPATH=src python benchmarks/bench_store.py --device cpu --threads 2 --json
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
import numpy as np
import torch
from torch import Tensor

from neurowire.connectivity import FixedProbability
from neurowire.events import SpikeEvents
from neurowire.native import delivery as native_delivery
from neurowire.propagate import (
    csc_matrix,
    deliver_all_slots,
    deliver_csr,
    deliver_matmul,
    deliver_rows,
)
from neurowire.store import RaggedSynapses

RESULTS_DIR = Path(__file__).resolve().parent / "results"
STRATEGIES = ("dense", "slots", "rows", "csr", "native")
OPS = ("remove", "add", "grow")
FULL_SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000,)
DENSITIES = (0.01, 0.1)
SPIKE_FRACTIONS = (0.01, 0.1)
CHANGE_FRACTION = 0.01  # share of the live synapses removed / added / grown per operation
BUDGET_MULTIPLE = 64  # event budget: spike count rounded up to a multiple of this
RTOL, ATOL = 1e-4, 1e-4  # float32 delivery vs float64 reference (atol scaled by max |ref|)
_BUILD_ROWS = 4096  # rows of the store drawn at once while building


# ---------------------------------------------------------------------------- utilities


def sync(device: torch.device) -> None:
    """Wait for queued device work (CUDA); no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Seconds one call of ``fn`` takes (synchronised on CUDA) and its result."""
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def time_per_call(
    fn: Callable[[], Any], device: torch.device, repeats: int, min_time: float
) -> tuple[float, int, list[float]]:
    """Median seconds per call of ``fn`` after a warm-up.

    Each repetition times a loop of ``inner`` calls, ``inner`` chosen once so that a loop lasts
    about ``min_time`` seconds (at most 10000 calls). Returns (median, inner, per-rep times).
    """
    fn()  # warm-up: first-call allocation, numba compilation, lazy caches
    first, _ = timed(fn, device)
    inner = max(1, min(10_000, math.ceil(min_time / max(first, 1e-9))))
    per_call = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        sync(device)
        per_call.append((time.perf_counter() - start) / inner)
    return statistics.median(per_call), inner, per_call


def _run_quiet(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine_info(device: torch.device) -> dict[str, Any]:
    """CPU model, cores, library versions, torch threads, date and (on CUDA) the GPU."""
    cpu_model = platform.processor() or None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    info: dict[str, Any] = {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "numba": numba.__version__,
        "torch_threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _run_quiet(["git", "-C", str(Path(__file__).parent), "rev-parse", "HEAD"]),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


# ---------------------------------------------------------------------------- the store


def capacity_for(n: int, density: float) -> int:
    """Row capacity a FixedProbability projection gets by default (binomial bound, padding 1)."""
    return max(1, min(n, FixedProbability(density, autapses=True).max_row_length(n, n)))


def build_store(
    n: int, density: float, device: torch.device, generator: torch.Generator
) -> RaggedSynapses:
    """A random ``n x n`` store: row lengths ~ Binomial(n, p) clipped to the capacity.

    Each row gets distinct uniformly placed targets (sorted draws shifted by their rank), built
    row block by row block; pairwise Bernoulli sampling over ``n * n`` pairs would dominate the
    benchmark's run time at 100k neurons.
    """
    cap = capacity_for(n, density)
    probs = torch.full((n,), density, dtype=torch.float64, device=device)
    counts = torch.binomial(torch.full_like(probs, float(n)), probs, generator=generator)
    length = counts.long().clamp(max=cap)
    ind = torch.zeros(n, cap, dtype=torch.int64, device=device)
    slots = torch.arange(cap, device=device)
    for start in range(0, n, _BUILD_ROWS):
        rows = slice(start, min(n, start + _BUILD_ROWS))
        ln = length[rows]
        span = (n - ln + 1).to(torch.float32)
        u = torch.rand(ln.numel(), cap, generator=generator, device=device)
        draw = torch.minimum((u * span[:, None]).long(), (n - ln)[:, None])  # in [0, n - len]
        live = slots[None, :] < ln[:, None]
        draw = torch.where(live, draw, n)  # padding sorts last
        targets = torch.sort(draw, dim=1).values + slots[None, :]  # distinct, in [0, n)
        ind[rows] = torch.where(live, targets, 0)
    live = slots[None, :] < length[:, None]
    weight = torch.rand(n, cap, generator=generator, device=device) * live
    trace = torch.rand(n, cap, generator=generator, device=device) * live
    store = RaggedSynapses(n, n, cap, device, name=f"bench_{n}_{density:g}")
    with store.mutation():  # direct writes, validated and versioned on exit
        store.row_length.copy_(length)
        store.ind.copy_(ind)
    store.add_var("weight", init=weight)
    store.add_var("trace", init=trace)
    return store


def random_absent_pairs(
    store: RaggedSynapses, k: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """``k`` distinct random (pre, post) pairs that are not synapses of ``store`` (untimed)."""
    dev = store.device
    pre_parts, post_parts, have = [], [], 0
    seen: Tensor | None = None
    for _ in range(50):
        m = (5 * (k - have)) // 4 + 16  # density <= 10 %: most random pairs are absent
        pre = torch.randint(0, store.n_pre, (m,), generator=generator, device=dev)
        post = torch.randint(0, store.n_post, (m,), generator=generator, device=dev)
        keep = ~store.contains(pre, post)
        key = pre[keep] * store.n_post + post[keep]
        if seen is not None:
            key = key[~torch.isin(key, seen)]
        key = torch.unique(key)
        key = key[torch.randperm(key.numel(), generator=generator, device=dev)][: k - have]
        seen = key if seen is None else torch.cat([seen, key])
        pre_parts.append(key // store.n_post)
        post_parts.append(key % store.n_post)
        have += key.numel()
        if have >= k:
            break
    return torch.cat(pre_parts), torch.cat(post_parts)


def random_live_mask(store: RaggedSynapses, fraction: float, generator: torch.Generator) -> Tensor:
    """bool ``[n_pre, capacity]`` selecting about ``fraction`` of the live synapses."""
    u = torch.rand(store.n_pre, store.capacity, generator=generator, device=store.device)
    return (u < fraction) & store.live


def bench_store_ops(
    store: RaggedSynapses, cycles: int, warmup: int, generator: torch.Generator
) -> dict[str, Any]:
    """Synapses per second of ``remove``, ``add`` and ``grow`` (see the module docstring)."""
    dev = store.device
    times: dict[str, list[float]] = {op: [] for op in OPS}
    counts: dict[str, list[int]] = {op: [] for op in OPS}
    requested: dict[str, list[int]] = {op: [] for op in OPS}
    for cycle in range(warmup + cycles):
        record = cycle >= warmup
        mask = random_live_mask(store, CHANGE_FRACTION, generator)
        t_rm1, removed = timed(lambda mask=mask: store.remove(mask), dev)
        k = int(removed.sum())
        pre, post = random_absent_pairs(store, k, generator)
        w_new = torch.rand(pre.numel(), generator=generator, device=dev)
        t_add, added = timed(
            lambda pre=pre, post=post, w_new=w_new: store.add(
                pre, post, on_duplicate="skip", on_full="skip", weight=w_new
            ),
            dev,
        )
        mask = random_live_mask(store, CHANGE_FRACTION, generator)
        t_rm2, removed2 = timed(lambda mask=mask: store.remove(mask), dev)
        t_grow, grown = timed(
            lambda per_row=removed2: store.grow(per_row=per_row, generator=generator, weight=0.5),
            dev,
        )
        if record:
            times["remove"] += [t_rm1, t_rm2]
            counts["remove"] += [k, int(removed2.sum())]
            requested["remove"] += [k, int(removed2.sum())]
            times["add"].append(t_add)
            counts["add"].append(int(added.sum()))
            requested["add"].append(k)
            times["grow"].append(t_grow)
            counts["grow"].append(int(grown.sum()))
            requested["grow"].append(int(removed2.sum()))
    out: dict[str, Any] = {}
    for op in OPS:
        rates = [c / t for c, t in zip(counts[op], times[op], strict=True) if t > 0]
        out[op] = {
            "synapses_per_s": statistics.median(rates) if rates else None,
            "time_s": statistics.median(times[op]),
            "synapses": statistics.median(counts[op]),
            "requested": statistics.median(requested[op]),
            "times_s": times[op],
        }
    return out


# ---------------------------------------------------------------------------- delivery


def spike_vector(n: int, fraction: float, device: torch.device, generator: torch.Generator):
    """bool ``[1, n]`` with exactly ``max(1, round(fraction * n))`` random spikes."""
    count = max(1, round(fraction * n))
    z = torch.zeros(1, n, dtype=torch.bool, device=device)
    z[0, torch.randperm(n, generator=generator, device=device)[:count]] = True
    return z


def _as_tensor(x: Tensor | np.ndarray, device: torch.device) -> Tensor:
    return x if isinstance(x, Tensor) else torch.from_numpy(x.copy()).to(device)


def reference_delivery(store: RaggedSynapses, z: Tensor) -> Tensor:
    """float64 ``[1, n_post]``: the weights of the spiking rows summed from ``coo()``."""
    pre, post = store.coo()
    w = store.values("weight").double()
    sel = z[0][pre]
    out = torch.zeros(1, store.n_post, dtype=torch.float64, device=store.device)
    out[0].index_add_(0, post[sel], w[sel])
    return out


def bench_delivery(
    store: RaggedSynapses,
    fractions: tuple[float, ...],
    repeats: int,
    min_time: float,
    max_dense: float,
    generator: torch.Generator,
) -> list[dict[str, Any]]:
    """Time per step and delivered events per second of every strategy, checked once each."""
    dev, n_pre, n_post = store.device, store.n_pre, store.n_post
    prep: dict[str, float] = {}
    skipped: dict[str, str] = {}
    t, cols = timed(store.columns, dev)  # first: caches are cold after the structural cycles
    t_csr, csr = timed(
        lambda: csc_matrix(cols.indptr, cols.pre, cols.slot, store.vars["weight"], n_pre), dev
    )
    prep["csr"] = t + t_csr
    w_dense = None
    if n_pre * n_post <= max_dense:
        prep["dense"], w_dense = timed(lambda: store.to_dense("weight"), dev)
    else:
        skipped["dense"] = f"n_pre * n_post = {n_pre * n_post:.3g} > --max-dense {max_dense:.3g}"
    if dev.type != "cpu":
        skipped["native"] = "numba kernel runs on CPU only"
    ind, w, live = store.ind, store.vars["weight"], store.live
    np_args = (store.ind.numpy(), store.row_length.numpy(), w.numpy()) if dev.type == "cpu" else ()
    mean_fan_out = store.nnz / n_pre

    results = []
    for fraction in fractions:
        z = spike_vector(n_pre, fraction, dev, generator)
        spikes = int(z.sum())
        budget = min(n_pre, max(16, BUDGET_MULTIPLE * math.ceil(spikes / BUDGET_MULTIPLE)))
        z_np = z.cpu().numpy()
        out_np = np.zeros((1, n_post), dtype=np.float32)

        def native(z_np: np.ndarray = z_np, out_np: np.ndarray = out_np) -> np.ndarray:
            # the engine's neuron kernels emit spike lists; here the list is made from z
            spk = np.flatnonzero(z_np)
            out_np[:] = 0
            native_delivery.deliver_spike_list(spk, np.array([spk.size]), n_pre, *np_args, out_np)
            return out_np

        fns: dict[str, Callable[[], Any]] = {
            "dense": lambda z=z: deliver_matmul(z, w_dense),
            "slots": lambda z=z: deliver_all_slots(z, ind, w, live, n_post),
            "rows": lambda z=z, b=budget: deliver_rows(
                SpikeEvents.fixed(z, b), ind, w, live, 1, n_post
            ),
            "csr": lambda z=z: deliver_csr(z, csr),
            "native": native,
        }
        ref = reference_delivery(store, z)
        atol = ATOL * max(1.0, float(ref.abs().max()))
        entry: dict[str, Any] = {
            "spike_fraction": fraction,
            "spikes": spikes,
            "mean_fan_out": mean_fan_out,
            "events_per_step": spikes * mean_fan_out,
            "events_exact": int(store.row_length[z[0]].sum()),
            "budget": budget,
            "strategies": {},
            "check": {"reference": "float64 sum over coo()", "rtol": RTOL, "atol": atol},
        }
        errors: dict[str, float] = {}
        agree: dict[str, bool] = {}
        for name in STRATEGIES:
            if name in skipped:
                entry["strategies"][name] = {"skipped": skipped[name]}
                continue
            got = _as_tensor(fns[name](), dev).double().reshape(1, n_post)
            errors[name] = float((got - ref).abs().max())
            agree[name] = bool(torch.allclose(got, ref, rtol=RTOL, atol=atol))
            step_s, inner, reps = time_per_call(fns[name], dev, repeats, min_time)
            entry["strategies"][name] = {
                "time_per_step_s": step_s,
                "events_per_s": spikes * mean_fan_out / step_s if step_s > 0 else None,
                "steps_per_repetition": inner,
                "times_per_step_s": reps,
                "prep_s": prep.get(name),
            }
        entry["check"].update(max_abs_err=errors, agree=agree, passed=all(agree.values()))
        results.append(entry)
    return results


# ---------------------------------------------------------------------------- driver


def run_device(device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    """Every configuration on one device; returns the JSON-ready result."""
    sizes = tuple(args.sizes) if args.sizes else (QUICK_SIZES if args.quick else FULL_SIZES)
    repeats = args.repeats if args.repeats else (3 if args.quick else 5)
    cycles = args.cycles if args.cycles else (2 if args.quick else 3)
    warmup = 1
    min_time = 0.01 if args.quick else 0.05
    generator = torch.Generator(device=device).manual_seed(args.seed)
    result: dict[str, Any] = {
        "benchmark": "bench_store",
        "device": str(device),
        "machine": machine_info(device),
        "settings": {
            "quick": args.quick,
            "sizes": list(sizes),
            "densities": list(args.densities),
            "spike_fractions": list(args.spike_fractions),
            "change_fraction": CHANGE_FRACTION,
            "repeats": repeats,
            "cycles": cycles,
            "warmup_cycles": warmup,
            "min_time_per_repetition_s": min_time,
            "threads": args.threads,
            "max_slots": args.max_slots,
            "max_dense": args.max_dense,
            "budget_multiple": BUDGET_MULTIPLE,
            "batch": 1,
            "seed": args.seed,
            "variables": ["weight", "trace"],
        },
        "store_ops": [],
        "delivery": [],
        "skipped": [],
    }
    if device.type == "cpu":
        result["cuda"] = (
            {"available": True, "note": "measured in its own run/file (--device cuda or all)"}
            if torch.cuda.is_available()
            else {"available": False, "skipped": "torch.cuda.is_available() is False"}
        )
    for n in sizes:
        for density in args.densities:
            cap = capacity_for(n, density)
            slots = n * cap
            config = {"n": n, "density": density, "capacity": cap, "slots": slots}
            if slots > args.max_slots:
                reason = f"{slots:.3g} slots (n * capacity) > --max-slots {args.max_slots:.3g}"
                result["skipped"].append({**config, "reason": reason})
                log(f"skip n={n} p={density:g}: {reason}")
                continue
            t_build, store = timed(
                lambda n=n, d=density: build_store(n, d, device, generator), device
            )
            config.update(nnz=store.nnz, build_s=t_build)
            log(f"n={n} p={density:g}: capacity {cap}, nnz {store.nnz}, built in {t_build:.2f} s")
            start = time.perf_counter()
            ops = bench_store_ops(store, cycles, warmup, generator)
            config["ops_wall_s"] = time.perf_counter() - start
            store.validate()
            result["store_ops"].append({**config, "ops": ops})
            start = time.perf_counter()
            entries = bench_delivery(
                store, tuple(args.spike_fractions), repeats, min_time, args.max_dense, generator
            )
            config.update(nnz=store.nnz, delivery_wall_s=time.perf_counter() - start)
            result["delivery"] += [{**config, **entry} for entry in entries]
            log(
                f"  store ops {config['ops_wall_s']:.1f} s, "
                f"delivery {config['delivery_wall_s']:.1f} s (wall clock)"
            )
            del store
    result["checks_passed"] = all(d["check"]["passed"] for d in result["delivery"])
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fmt_rate(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def format_table(result: dict[str, Any]) -> str:
    """Human-readable tables of one device's result."""
    lines = [f"== {result['device']}: store operations (synapses/s, median)"]
    lines.append(f"{'n':>7} {'p':>5} {'cap':>6} {'nnz':>11} " + " ".join(f"{op:>10}" for op in OPS))
    for r in result["store_ops"]:
        rates = " ".join(f"{_fmt_rate(r['ops'][op]['synapses_per_s']):>10}" for op in OPS)
        lines.append(f"{r['n']:>7} {r['density']:>5g} {r['capacity']:>6} {r['nnz']:>11} {rates}")
    lines.append(f"== {result['device']}: delivery, batch 1 (us/step | events/s), check vs float64")
    head = f"{'n':>7} {'p':>5} {'spk':>5} {'spikes':>6} "
    lines.append(head + " ".join(f"{s:>18}" for s in STRATEGIES) + "  check")
    for d in result["delivery"]:
        cells = []
        for s in STRATEGIES:
            st = d["strategies"][s]
            if "skipped" in st:
                cells.append(f"{'skipped':>18}")
            else:
                cell = f"{st['time_per_step_s'] * 1e6:.4g} | {_fmt_rate(st['events_per_s'])}"
                cells.append(f"{cell:>18}")
        ok = "ok" if d["check"]["passed"] else "FAIL " + str(d["check"]["agree"])
        lines.append(
            f"{d['n']:>7} {d['density']:>5g} {d['spike_fraction']:>5g} {d['spikes']:>6} "
            + " ".join(cells)
            + f"  {ok}"
        )
    for s in result["skipped"]:
        lines.append(f"skipped n={s['n']} p={s['density']:g}: {s['reason']}")
    if "cuda" in result and not result["cuda"]["available"]:
        lines.append(f"cuda: skipped ({result['cuda']['skipped']})")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="n = 1000 only, few repetitions")
    parser.add_argument(
        "--device",
        default="all",
        choices=("all", "cpu", "cuda"),
        help="all: CPU, then CUDA when present (default)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory of the JSON")
    parser.add_argument("--json", action="store_true", help="print the JSON to stdout")
    parser.add_argument("--sizes", type=int, nargs="+", help="neuron counts n (override)")
    parser.add_argument("--densities", type=float, nargs="+", default=list(DENSITIES))
    parser.add_argument("--spike-fractions", type=float, nargs="+", default=list(SPIKE_FRACTIONS))
    parser.add_argument(
        "--repeats", type=int, help="timed delivery repetitions (5; 3 with --quick)"
    )
    parser.add_argument(
        "--cycles", type=int, help="timed remove/add/remove/grow cycles (3; 2 with --quick)"
    )
    parser.add_argument("--max-slots", type=float, default=2e8, help="skip larger stores")
    parser.add_argument("--max-dense", type=float, default=1e8, help="dense only up to n*n")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    for name in ("repeats", "cycles"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    for name in ("densities", "spike_fractions"):
        bad = [x for x in getattr(args, name) if not 0.0 < x <= 1.0]
        if bad:
            parser.error(f"--{name.replace('_', '-')} must lie in (0, 1], got {bad}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch.cuda.is_available() is False")
    return args


def main(argv: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Run the benchmark; returns ``{device: result}`` and writes one JSON per device."""
    args = parse_args(argv)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads_before)  # main() may be called from a test process


def _run(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    devices = ["cpu"] if args.device in ("all", "cpu") else []
    if args.device == "cuda" or (args.device == "all" and torch.cuda.is_available()):
        devices.append("cuda")
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for name in devices:
        result = run_device(torch.device(name), args)
        path = args.out / f"bench_store_{name}{'_quick' if args.quick else ''}.json"
        path.write_text(json.dumps(result, indent=1) + "\n")
        result["written_to"] = str(path)
        results[name] = result
        table = format_table(result)
        print(table, file=sys.stderr if args.json else sys.stdout, flush=True)
        log(f"wrote {path}")
    if args.json:
        json.dump(results, sys.stdout, indent=1)
        print()
    return results


if __name__ == "__main__":
    outcome = main()
    sys.exit(0 if all(r["checks_passed"] for r in outcome.values()) else 1)
