"""Where sparsity pays: e-prop training cost against network size on the CPU.

The SHD input (700 Poisson channels at ``--rate-hz`` 10, T = 1,400 steps of 1 ms, labels drawn
uniformly over 20 classes) into one recurrent layer of ``N`` ALIF neurons (``--sizes``, default
512 to 8,192; ``tau_m`` 20 ms, ``tau_a`` 2,000 ms, beta 0.0174, ``v_th`` 0.6, refractory 5 ms)
and 20 leaky-integrator readouts (tau 20 ms); weights N(0, fan_in^-1/2) with the expected
fan-in (``p x n_pre``). Configurations: ``dense`` (``Dense()`` input and recurrent),
``static1`` (``FixedProbability(0.01)``, rows unpadded) and ``deepr1`` (the same with rows
padded 2x and ``DeepR(l1=0.01)`` on both). Factorised e-prop on the default CPU engine, batch
16, Adam(``--lr`` 1e-3), no regulariser.

Every (size, configuration) runs in its own subprocess, so that peak memory (``ru_maxrss``)
belongs to it alone. Per run: seconds per sample (median, min and max over ``--batches``
timed batches after ``--warmup``; each batch draws new inputs), the trainer's timers per
sample, the hidden rate per timed batch (dense rates rise after Adam's first steps, and the
cost of every event-driven pass rises with them), synaptic events per sample, the chunk size
the trainer chose, peak RSS while training (``peak_rss_mib``: ``ru_maxrss`` after resetting
it once the network and data are built, through ``/proc/self/clear_refs``; building a 1 %
network draws its pairs from dense probability rows and peaks higher, ``peak_rss_build_mib``),
and memory split into

* ``synapse_scaled``: what grows with the number of synapses, computed from the stores and
  tensors: weights, Adam moments, one gradient per parameter (slot layout for a store),
  structure (slot targets ``ind`` and the live mask), other per-synapse variables (DEEP R's
  sign) and the engine's per-batch weight tables;
* ``per_neuron``: the engine's ``[T, B, N]`` work arrays of one chunk (``psi``; event lists
  at the events they hold) and the readout arrays;
* ``rest_of_peak``: peak RSS while training minus ``synapse_scaled`` (runtime, per-neuron
  arrays, temporaries).

Dense runs whose estimated peak (:func:`dense_estimate_gib`) exceeds ``--max-memory-gib`` or
60 % of the available memory are skipped and listed under ``skipped`` (printed too). The parent
waits up to ``--idle-wait`` s for a 1-min load average <= ``--idle-load`` and records the load
averages and the CPU time of other processes during every run (``foreign_cores``; above 0.25
the run is flagged contended). ``--threads 2 1`` sweeps thread counts. Workers run with
``OMP_WAIT_POLICY=PASSIVE`` (``--omp-wait-policy``): torch and numba each bring their own
OpenMP runtime (two libgomp copies), whose idle threads otherwise spin between parallel
regions; on a loaded 2-core machine that spinning took the cores from the other pool's workers
(DEEP R 1 %, N = 4,096, 2 threads: 0.042-0.098 s per sample unset, 0.026-0.029 passive).

Usage::

    PYTHONPATH=src python benchmarks/bench_scaling.py          # ~15-30 min on 2 idle cores
    PYTHONPATH=src python benchmarks/bench_scaling.py --quick  # 64 and 128 neurons, T = 50

Writes ``benchmarks/results/bench_scaling_cpu.json`` and ``bench_scaling_cpu.png`` (``_quick``
names with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_paper import (  # noqa: E402
    CONTENDED,
    cpu_busy_s,
    current_rss_mib,
    machine,
    poisson_batches,
    rss_mib,
    wait_for_idle,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
N_IN, N_OUT = 700, 20
SIZES = (512, 1024, 2048, 4096, 8192)
QUICK_SIZES = (64, 128)
#: runtime (torch, numba, compiled kernels) in a worker before any network [GiB], measured
RUNTIME_GIB = 0.6
#: bytes per dense synapse at the peak (float32), an upper bound: weight, two Adam moments, the
#: gradient, its column tiles and their transposed copy, the sum over chunks, Adam's
#: temporaries and the recurrent table's copy without its diagonal (33 measured at N = 8,192)
DENSE_BYTES_PER_SYNAPSE = 40


@dataclass(frozen=True)
class ConfigSpec:
    p: float | None  # input and recurrent density; None = Dense()
    padding: float
    deep_r: bool
    text: str


CONFIGS = {
    "dense": ConfigSpec(None, 1.0, False, "Dense() input and recurrent"),
    "static1": ConfigSpec(0.01, 1.0, False, "FixedProbability(0.01) in and rec, rows unpadded"),
    "deepr1": ConfigSpec(0.01, 2.0, True, "1 %/1 %, rows 2x, DeepR(l1=0.01) on both"),
}


# ---------------------------------------------------------------------- workload
def build_trainer(n: int, config: str, lr: float, seed: int = 0):
    """The network with ``n`` hidden ALIF neurons in configuration ``config``; returns the
    trainer and its input and recurrent projections."""
    import neurowire as nw

    cfg = CONFIGS[config]
    net = nw.Network(dt=1.0, seed=seed)
    inp = net.population("input", nw.SpikeSource(N_IN))
    alif = nw.ALIF(n, tau_m=20.0, tau_a=2000.0, beta=0.0174, v_th=0.6, tau_refrac=5.0)
    hid = net.population("hidden", alif)
    out = net.population("output", nw.LeakyIntegrator(N_OUT, tau=20.0))
    p = 1.0 if cfg.p is None else cfg.p
    conn = nw.Dense() if cfg.p is None else nw.FixedProbability(cfg.p)
    extra = {} if cfg.p is None else {"padding": cfg.padding}
    p_in = net.connect(inp, hid, conn, weight=nw.Normal(0.0, (p * N_IN) ** -0.5), **extra)
    p_rec = net.connect(hid, hid, conn, weight=nw.Normal(0.0, (p * n) ** -0.5), **extra)
    net.connect(hid, out, nw.Dense(), weight=nw.Normal(0.0, n**-0.5))
    rewiring = {p_in: nw.DeepR(l1=0.01), p_rec: nw.DeepR(l1=0.01)} if cfg.deep_r else None
    trainer = nw.EProp(net, output=out, optimizer=nw.Adam(lr=lr), rewiring=rewiring)
    return trainer, p_in, p_rec


def fan_out(proj) -> float:
    """Mean live synapses per presynaptic neuron (autapses excluded from a dense recurrent)."""
    if proj.sparse:
        return proj.synapses.nnz / proj.pre.n
    return float(proj.post.n - (1 if proj.pre is proj.post else 0))


def dense_estimate_gib(n: int, batch: int, steps: int) -> float:
    """Estimated peak RSS of a dense run [GiB]: runtime, ``DENSE_BYTES_PER_SYNAPSE`` per input
    and recurrent synapse, and the per-neuron arrays of one chunk (at most 256 MiB, or the
    whole batch's ``psi`` if smaller)."""
    synapses = n * n + N_IN * n
    per_neuron = min(1 << 28, 4 * batch * steps * n)
    return RUNTIME_GIB + (DENSE_BYTES_PER_SYNAPSE * synapses + per_neuron) / 2**30


# ---------------------------------------------------------------------- memory accounting
_VAR_KIND = {"weight": "weights", "adam_m": "optimizer_moments", "adam_v": "optimizer_moments"}


def _same_storage(a, b) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def synapse_memory(trainer) -> dict[str, int]:
    """Bytes that scale with the synapses of every projection, from the stores and tensors
    (see the module docstring); ``total`` is their sum."""
    mem = dict.fromkeys(
        ("weights", "optimizer_moments", "gradients", "structure", "other_vars", "engine_tables"),
        0,
    )
    owned = []
    for proj in trainer.net.projections.values():
        if proj.sparse:
            s = proj.synapses
            for name, var in s.vars.items():
                mem[_VAR_KIND.get(name, "other_vars")] += var.nbytes
                owned.append(var)
            mem["gradients"] += s.vars["weight"].nbytes  # slot layout [n_pre, capacity]
            mem["structure"] += s.ind.nbytes + s.live.nbytes
            owned += [s.ind, s.live]
        else:
            w = proj.weight
            mem["weights"] += w.nbytes
            state = trainer.optimizer.state.get(proj.name, {})
            mem["optimizer_moments"] += sum(t.nbytes for t in state.values())
            mem["gradients"] += w.nbytes
            owned.append(w)
    for t in engine_tables(trainer):
        if not any(_same_storage(t, o) for o in owned):
            mem["engine_tables"] += t.nbytes
    mem["total"] = sum(mem.values())
    return mem


def engine_tables(trainer) -> list:
    """The per-synapse tensors the trainer's engine reads in a batch: the native engine's
    input and recurrent tables (a store's own rows where it reads them in place) and the masks
    its gradients are multiplied by; the torch engine's masked copies."""
    from neurowire.learning.forward import gather_weights

    w = gather_weights(trainer.network, trainer.feedback_matrix)
    pws = w.inputs + w.recurrent
    if trainer.engine != "native":
        return [t for pw in pws for t in (pw.dense, pw.post, pw.weight, pw.mask) if t is not None]
    from neurowire.learning.native import layouts

    tables = [t for lay in layouts(w, trainer.network) for t in (lay.weight, lay.post)]
    return tables + [pw.mask for pw in pws if pw.mask is not None]


def per_neuron_memory(trainer, events_per_trial: float, chunk: int, steps: int) -> dict:
    """Bytes of the engine's per-neuron work arrays of one chunk: ``psi [chunk, T, N]`` (and
    ``h1``, the same, if the engine made one), the event lists at the events they hold (int32;
    their pages beyond are never touched) and the readout arrays ``[T, chunk, K]`` (``y``,
    error, filtered error, learning signal)."""
    enet = trainer.network
    item = enet.dtype.itemsize
    arrays = 2 if "h1" in enet.buffers else 1
    mem = {
        "psi": arrays * chunk * steps * enet.hidden.n * item,
        "event_lists": int(4 * events_per_trial * chunk),
        "readout": 4 * steps * chunk * enet.n_out * item,
    }
    mem["total"] = sum(mem.values())
    return mem


# ---------------------------------------------------------------------- one measurement
def measure(spec: dict) -> dict:
    """Train ``spec['warmup'] + spec['batches']`` batches of one (size, configuration) and
    return the measurements (see the module docstring)."""
    import torch

    from neurowire.learning.gradient_pass import chunk_size

    torch.set_num_threads(spec["threads"])
    n, config, batch, steps = spec["n"], spec["config"], spec["batch"], spec["steps"]
    tic = time.perf_counter()
    trainer, p_in, p_rec = build_trainer(n, config, spec["lr"])
    build_s = time.perf_counter() - tic
    torch.set_num_threads(spec["threads"])  # numba's pool starting may reset it
    total = spec["warmup"] + spec["batches"]
    data = poisson_batches("shd", batch, steps, spec["rate_hz"], total, seed=spec["seed"])
    build_peak, current0 = rss_mib(), current_rss_mib()
    reset = reset_peak_rss()
    times, warm, timers, rates, events, inputs = [], [], [], [], [], []
    busy0 = own0 = wall0 = 0.0
    for i, (x, y) in enumerate(data):
        if i == spec["warmup"]:
            busy0, own0, wall0 = cpu_busy_s(), time.process_time(), time.perf_counter()
        before = dict(trainer.timers)
        tic = time.perf_counter()
        m = trainer.train_step(x, y)
        elapsed = time.perf_counter() - tic
        if i < spec["warmup"]:
            warm.append(elapsed)
            continue
        times.append(elapsed)
        timers.append({k: trainer.timers[k] - before[k] for k in trainer.timers})
        rates.append(m["spikes"] / (batch * steps * n) * 1000.0)
        x_spikes = int(x.sum())
        inputs.append(x_spikes / batch)
        events.append((x_spikes * fan_out(p_in) + m["spikes"] * fan_out(p_rec)) / batch)
    window = time.perf_counter() - wall0
    own = time.process_time() - own0
    foreign = max(0.0, (cpu_busy_s() - busy0 - own) / window) if window >= 0.5 else None
    chunk = min(batch, chunk_size(trainer, steps))
    hidden_per_trial = statistics.fmean(rates) * steps * n / 1000.0
    synapses = synapse_memory(trainer)
    per_neuron = per_neuron_memory(
        trainer, statistics.fmean(inputs) + hidden_per_trial, chunk, steps
    )
    peak = rss_mib()
    return {
        "n": n,
        "config": config,
        "batch": batch,
        "steps": steps,
        "engine": trainer.engine,
        "s_per_sample": _range([t / batch for t in times]),
        "batch_seconds": times,
        "warmup_seconds": warm,
        "build_s": build_s,
        "timers_s_per_sample": _timers(timers, times, batch),
        "hidden_rate_hz": rates,
        "input_spikes_per_sample": statistics.fmean(inputs),
        "synaptic_events_per_sample": statistics.median(events),
        "synapses": {
            "input": _synapse_count(p_in),
            "recurrent": _synapse_count(p_rec),
            "input_slots": p_in.pre.n * p_in.synapses.capacity if p_in.sparse else None,
            "recurrent_slots": n * p_rec.synapses.capacity if p_rec.sparse else None,
        },
        "chunk_size": chunk,
        "chunks": -(-batch // chunk),
        "threads": {"torch": torch.get_num_threads(), "requested": spec["threads"]},
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "foreign_cores_timed": foreign,
        "rss_after_build_mib": current0,
        "peak_rss_build_mib": build_peak,
        "peak_rss_mib": peak,
        "peak_rss_reset_after_build": reset,
        "memory_mib": {
            "synapse_scaled": _mib(synapses),
            "per_neuron": _mib(per_neuron),
            "rest_of_peak": peak - synapses["total"] / 2**20,
        },
    }


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (``ru_maxrss``, VmHWM) to its current RSS through
    ``/proc/self/clear_refs``, so that the peak measured next is training's, not the network
    construction's; False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _synapse_count(proj) -> int:
    if proj.sparse:
        return proj.synapses.nnz
    return proj.pre.n * proj.post.n - (proj.pre.n if proj.pre is proj.post else 0)


def _mib(d: dict[str, int]) -> dict[str, float]:
    return {k: v / 2**20 for k, v in d.items()}


def _range(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _timers(timers: list[dict], times: list[float], batch: int) -> dict[str, float]:
    """Mean seconds per sample of each timer; ``other`` = batch time minus the parts."""
    parts = ("forward", "backward", "products", "optimizer", "rules")
    out = {k: statistics.fmean(t.get(k, 0.0) for t in timers) / batch for k in parts}
    out["other"] = statistics.fmean(times) / batch - sum(out.values())
    return out


def run_isolated(spec: dict) -> dict:
    """:func:`measure` in a fresh subprocess, with the load around it and the CPU time other
    processes used meanwhile."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = str(spec["threads"])
    if spec["omp_wait_policy"]:
        env["OMP_WAIT_POLICY"] = spec["omp_wait_policy"]
    cmd = [sys.executable, __file__, "--worker", json.dumps(spec)]
    load0, busy0, child0 = os.getloadavg(), cpu_busy_s(), _children_cpu_s()
    tic = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - tic
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise RuntimeError(f"worker failed: {spec}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    own = _children_cpu_s() - child0
    out["foreign_cores"] = max(0.0, (cpu_busy_s() - busy0 - own) / wall)
    out.update(load_average_before=list(load0), worker_wall_s=wall, isolated=True)
    return out


def run_in_process(spec: dict) -> dict:
    """:func:`measure` in this process (peaks then mix: for smoke runs); restores the thread
    count."""
    import torch

    threads, load0 = torch.get_num_threads(), os.getloadavg()
    try:
        out = measure(spec)
    finally:
        torch.set_num_threads(threads)
    out.update(load_average_before=list(load0), foreign_cores=None, isolated=False)
    return out


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# ---------------------------------------------------------------------- plan and summary
def available_gib() -> float | None:
    """MemAvailable of /proc/meminfo [GiB] (None where unavailable)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError):
        pass
    return None


def run_key(n: int, config: str, threads: int) -> str:
    return f"{n}/{config}/t{threads}"


def plan_runs(args) -> tuple[list[dict], list[dict]]:
    """The runs to make and the dense ones skipped for memory (with their estimate)."""
    limit = args.max_memory_gib
    avail = available_gib()
    if avail is not None:
        limit = min(limit, 0.6 * avail)
    runs, skipped = [], []
    for n in args.sizes:
        estimate = dense_estimate_gib(n, args.batch, args.steps)
        for threads in args.threads:
            for config in args.configs:
                spec = {
                    "n": n,
                    "config": config,
                    "batch": args.batch,
                    "steps": args.steps,
                    "warmup": args.warmup,
                    "batches": args.batches,
                    "threads": threads,
                    "lr": args.lr,
                    "rate_hz": args.rate_hz,
                    "seed": args.seed,
                    "omp_wait_policy": args.omp_wait_policy,
                }
                if config != "dense":
                    runs.append(spec)
                elif estimate <= limit:
                    runs.append({**spec, "memory_estimate_gib": estimate})
                else:
                    skipped.append(
                        {
                            "n": n,
                            "config": config,
                            "threads": threads,
                            "memory_estimate_gib": estimate,
                            "limit_gib": limit,
                            "available_gib": avail,
                            "reason": "estimated peak above the limit (--max-memory-gib, "
                            "60 % of MemAvailable)",
                        }
                    )
    return runs, skipped


def ratios(results: dict[str, dict]) -> dict[str, dict]:
    """Per size and thread count (``"<N>/t<threads>"``), every sparse configuration against
    dense: time (dense / sparse), synapse-scaled memory and peak RSS (dense / sparse)."""
    out = {}
    for dense in results.values():
        if dense["config"] != "dense":
            continue
        n, threads = dense["n"], dense["threads"]["requested"]
        out[f"{n}/t{threads}"] = {
            c: _ratio(dense, results[key])
            for c in CONFIGS
            if c != "dense" and (key := run_key(n, c, threads)) in results
        }
    return out


def _ratio(dense: dict, sparse: dict) -> dict[str, float]:
    syn = "synapse_scaled"
    return {
        "time": dense["s_per_sample"]["median"] / sparse["s_per_sample"]["median"],
        "synapse_memory": dense["memory_mib"][syn]["total"] / sparse["memory_mib"][syn]["total"],
        "peak_rss": dense["peak_rss_mib"] / sparse["peak_rss_mib"],
    }


def targets(ratio: dict[str, dict]) -> dict[str, dict]:
    """Per thread count (``"t<threads>"``), at the largest size with a dense run: DEEP R 1 %
    >= 40x faster than dense, synapse-scaled memory >= 20x smaller."""
    largest: dict[str, int] = {}
    for key in ratio:
        n, threads = key.split("/")
        largest[threads] = max(largest.get(threads, 0), int(n))
    out = {}
    for threads, n in largest.items():
        deepr = ratio[f"{n}/{threads}"].get("deepr1", {})
        time_ratio, mem_ratio = deepr.get("time"), deepr.get("synapse_memory")
        out[threads] = {
            "size": n,
            "deepr1_speed_up": time_ratio,
            "deepr1_speed_up_at_least_40": None if time_ratio is None else time_ratio >= 40,
            "deepr1_synapse_memory_ratio": mem_ratio,
            "deepr1_synapse_memory_at_least_20": None if mem_ratio is None else mem_ratio >= 20,
        }
    return out


def print_table(results: dict[str, dict], skipped: list[dict], ratio: dict) -> None:
    print(
        f"{'N':>5s} {'config':8s} {'thr':>3s} {'s/sample':>9s} {'range':>17s} {'Hz':>11s} "
        f"{'chunk':>5s} {'peak MiB':>8s} {'syn MiB':>8s} {'neur MiB':>8s} {'fgn':>4s} "
        f"{'x dense':>7s}"
    )
    for r in results.values():
        s, mem, rates = r["s_per_sample"], r["memory_mib"], r["hidden_rate_hz"]
        threads = r["threads"]["requested"]
        x = ratio.get(f"{r['n']}/t{threads}", {}).get(r["config"], {}).get("time")
        fgn = r["foreign_cores_timed"] if r["foreign_cores_timed"] is not None else 0.0
        print(
            f"{r['n']:5d} {r['config']:8s} {threads:3d} {s['median']:9.4f} "
            f"{s['min']:8.4f}-{s['max']:<8.4f} {min(rates):5.1f}-{max(rates):<5.1f} "
            f"{r['chunk_size']:5d} {r['peak_rss_mib']:8.0f} "
            f"{mem['synapse_scaled']['total']:8.1f} {mem['per_neuron']['total']:8.1f} "
            f"{fgn:4.2f} {'' if x is None else f'{x:7.1f}'}{' *' if _contended(r) else ''}"
        )
    for s in skipped:
        print(
            f"{s['n']:5d} {s['config']:8s} {s['threads']:3d} skipped: estimated peak "
            f"{s['memory_estimate_gib']:.1f} GiB > limit {s['limit_gib']:.1f} GiB"
        )
    print(
        "(thr: threads; Hz: hidden rate range over the timed batches; peak: RSS while "
        "training; syn: synapse-scaled memory; neur: per-neuron arrays of one chunk; fgn: "
        "foreign cores while timing; * contended)"
    )


def _contended(r: dict) -> bool:
    values = [v for v in (r.get("foreign_cores"), r["foreign_cores_timed"]) if v is not None]
    return bool(values) and max(values) > CONTENDED


def plot(results: dict[str, dict], path: Path) -> None:
    """Log-log figure against hidden neurons: seconds per sample (a line per configuration and
    thread count), and peak RSS while training and synapse-scaled memory (one thread count)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    threads = sorted({r["threads"]["requested"] for r in results.values()}, reverse=True)
    for i, config in enumerate(CONFIGS):
        for k, th in enumerate(threads):
            rs = sorted(
                (
                    r
                    for r in results.values()
                    if r["config"] == config and r["threads"]["requested"] == th
                ),
                key=lambda r: r["n"],
            )
            if rs:
                _plot_runs(ax_t, ax_m if k == 0 else None, rs, f"C{i}", ("-", ":", "-.")[k % 3])
    for ax, label in ((ax_t, "seconds per sample"), (ax_m, "memory [GiB]")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("hidden ALIF neurons")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.legend(fontsize=8)
    ax_m.legend(fontsize=7)
    first = next(iter(results.values()))
    ax_t.set_title(f"e-prop training time (batch {first['batch']}, T = {first['steps']:,})")
    ax_m.set_title(f"peak RSS while training; synapse-scaled ({threads[0]} threads)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_runs(ax_t, ax_m, rs: list[dict], color: str, ls: str) -> None:
    ns = [r["n"] for r in rs]
    med = [r["s_per_sample"]["median"] for r in rs]
    err = [
        [m - r["s_per_sample"]["min"] for m, r in zip(med, rs, strict=True)],
        [r["s_per_sample"]["max"] - m for m, r in zip(med, rs, strict=True)],
    ]
    threads = rs[0]["threads"]["requested"]
    label = f"{rs[0]['config']}, {threads} thread{'s' if threads > 1 else ''}"
    ax_t.errorbar(ns, med, yerr=err, marker="o", color=color, ls=ls, label=label, capsize=3)
    if ax_m is None:
        return
    config = rs[0]["config"]
    peak = [r["peak_rss_mib"] / 1024 for r in rs]
    syn = [r["memory_mib"]["synapse_scaled"]["total"] / 1024 for r in rs]
    ax_m.plot(ns, peak, marker="o", color=color, label=f"{config}: peak RSS")
    ax_m.plot(ns, syn, marker="s", ls="--", color=color, label=f"{config}: synapse-scaled")


# ---------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=1400)
    ap.add_argument("--batches", type=int, default=3, help="timed batches per run")
    ap.add_argument("--warmup", type=int, default=1, help="untimed batches first")
    ap.add_argument(
        "--threads", type=int, nargs="+", default=[2], help="torch (and numba) threads, swept"
    )
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    ap.add_argument("--rate-hz", type=float, default=10.0, help="Poisson rate per input")
    ap.add_argument("--seed", type=int, default=1, help="seed of the input batches")
    ap.add_argument(
        "--omp-wait-policy",
        default="PASSIVE",
        help="OMP_WAIT_POLICY of the workers ('' leaves it unset)",
    )
    ap.add_argument("--max-memory-gib", type=float, default=12.0, help="dense runs above skip")
    ap.add_argument("--idle-load", type=float, default=1.0, help="1-min load average for idle")
    ap.add_argument("--idle-wait", type=float, default=120.0, help="max s to wait for idle")
    ap.add_argument("--quick", action="store_true", help="64 and 128 neurons, T = 50, 1 batch")
    ap.add_argument("--in-process", action="store_true", help="no subprocesses (peaks mix)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder of the JSON and figure")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.steps, args.batches, args.idle_wait = list(QUICK_SIZES), 50, 1, 0.0
    return args


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    if args.worker is not None:
        print(json.dumps(measure(json.loads(args.worker))))
        return None
    tic = time.perf_counter()
    idle = wait_for_idle(args.idle_load, args.idle_wait)
    runs, skipped = plan_runs(args)
    for s in skipped:
        print(
            f"skipping dense N = {s['n']}: estimated peak {s['memory_estimate_gib']:.1f} GiB "
            f"> {s['limit_gib']:.1f} GiB",
            file=sys.stderr,
        )
    run = run_in_process if args.in_process else run_isolated
    results = {}
    for i, spec in enumerate(runs):
        r = run(spec)
        r["load_average_after"] = list(os.getloadavg())
        r["memory_estimate_gib"] = spec.get("memory_estimate_gib")
        results[run_key(spec["n"], spec["config"], spec["threads"])] = r
        estimate = (
            ""
            if r["memory_estimate_gib"] is None
            else f" (est. {r['memory_estimate_gib']:.1f} GiB)"
        )
        print(
            f"[{i + 1}/{len(runs)}] N = {spec['n']} {spec['config']} {spec['threads']} threads: "
            f"{r['s_per_sample']['median']:.4f} s/sample, peak {r['peak_rss_mib']:.0f} MiB"
            f"{estimate}, load {r['load_average_after'][0]:.2f}",
            file=sys.stderr,
        )
    ratio = ratios(results)
    result = {
        "benchmark": "e-prop training cost against network size (CPU, factorised, default engine)",
        "workload": {
            "input": f"{N_IN} Poisson channels at {args.rate_hz} Hz, labels uniform over "
            f"{N_OUT} classes, a new batch every step",
            "hidden": "N ALIF(tau_m=20, tau_a=2000, beta=0.0174, v_th=0.6, tau_refrac=5)",
            "readout": f"{N_OUT} LeakyIntegrator(tau=20), Dense()",
            "weights": "N(0, fan_in^-0.5), fan_in = density x n_pre",
            "optimizer": f"Adam(lr={args.lr})",
            "regularizer": None,
            "batch": args.batch,
            "steps": args.steps,
        },
        "configurations": {c: asdict(CONFIGS[c]) for c in args.configs},
        "sizes": args.sizes,
        "timing": f"median, min and max over {args.batches} timed batches after "
        f"{args.warmup} warm-up batch(es), seconds per sample; each run in its own "
        "subprocess" + ("" if not args.in_process else " (here: in process, peaks mix)"),
        "memory_note": "synapse_scaled: weights, Adam moments, one gradient per parameter, "
        "structure (ind, live), other per-synapse variables, the engine's per-batch weight "
        "tables, computed from the tensors; per_neuron: psi (and h1) of one chunk, event lists "
        "at the events held, readout arrays; rest_of_peak: peak_rss_mib - synapse_scaled; "
        "peak_rss_mib: ru_maxrss while training (reset after building where "
        "peak_rss_reset_after_build), peak_rss_build_mib: while building",
        "dense_limit": {
            "max_memory_gib": args.max_memory_gib,
            "available_gib": available_gib(),
            "estimate": "dense_estimate_gib: runtime + DENSE_BYTES_PER_SYNAPSE x synapses + "
            "one chunk's per-neuron arrays",
        },
        "quick": args.quick,
        "threads": args.threads,
        "omp_wait_policy": args.omp_wait_policy or None,
        "machine": machine(),
        "idle_wait": idle,
        "load_average_before": idle["load_average"],
        "load_average_after": list(os.getloadavg()),
        "results": results,
        "skipped": skipped,
        "ratios_vs_dense": ratio,
        "targets": targets(ratio),
        "wall_s": time.perf_counter() - tic,
    }
    print_table(results, skipped, ratio)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"bench_scaling_cpu{'_quick' if args.quick else ''}"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(results, args.out / f"{stem}.png")
    print(f"wrote {args.out / stem}.json and .png ({result['wall_s']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
