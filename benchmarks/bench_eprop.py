"""e-prop training speed and memory on the CPU: factorised vs online vs a BPTT baseline.

Reference network (after mlGeNN's SHD e-prop example): 700 inputs of 10 Hz Poisson spikes,
256 ALIF (tau_m 20 ms, tau_a 2000 ms, beta 0.0174, v_th 0.6, refractory 5 ms), 20 leaky-integrator
outputs (tau 20 ms), T = 1000 steps of 1 ms, Adam, batch 32. Input and recurrent projections are
``Dense()`` or ``FixedProbability(p)`` with weights ``N(0, 1/(p n_pre))`` (i.e. scaled by
1/sqrt(p)).

Every (configuration, method) runs in its own subprocess: time per training sample is the median
batch time (after warm-up batches) divided by the batch size; memory is the increase of the
process's peak resident set size (``ru_maxrss``) over its value after the network and the data
were built, i.e. the working memory of training. The online method is measured on fewer trials
and steps and scaled linearly in both (its cost per trial and step is constant); the JSON says so.

Usage::

    PYTHONPATH=src python benchmarks/bench_eprop.py            # full run, writes JSON
    PYTHONPATH=src python benchmarks/bench_eprop.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = {"dense": None, "p10": 0.1, "p01": 0.01, "dvs": 0.05}
RESULTS = Path(__file__).resolve().parent / "results" / "bench_eprop_cpu.json"


# ---------------------------------------------------------------------- workload
def build_trainer(p, method, engine, seed=0, device="cpu"):
    import neurowire as nw
    from neurowire.learning import Adam, EProp, RateRegularizer

    net = nw.Network(dt=1.0, seed=seed)
    inp = net.population("input", nw.SpikeSource(700))
    hid = net.population(
        "hidden", nw.ALIF(256, tau_m=20.0, tau_a=2000.0, beta=0.0174, v_th=0.6, tau_refrac=5.0)
    )
    out = net.population("output", nw.LeakyIntegrator(20, tau=20.0))
    if p is None:
        net.connect(inp, hid, nw.Dense(), weight=nw.Normal(0.0, 700**-0.5))
        net.connect(hid, hid, nw.Dense(), weight=nw.Normal(0.0, 256**-0.5))
    else:
        net.connect(inp, hid, nw.FixedProbability(p), weight=nw.Normal(0.0, (p * 700) ** -0.5))
        net.connect(hid, hid, nw.FixedProbability(p), weight=nw.Normal(0.0, (p * 256) ** -0.5))
    net.connect(hid, out, nw.Dense(), weight=nw.Normal(0.0, 256**-0.5))
    reg = RateRegularizer(c=1e-3, f_target_hz=10.0)
    return EProp(
        net,
        out,
        optimizer=Adam(lr=1e-3),
        method=method,
        engine=engine,
        regularization=reg,
        device=device,
    )


def dvs_trainer(chunk_size, device="cpu"):
    """DVS-Gesture-sized network (2048 inputs, 512 ALIF, 11 outputs), torch engine (as on a GPU)."""
    import neurowire as nw
    from neurowire.learning import Adam, EProp, RateRegularizer

    net = nw.Network(dt=1.0, seed=0)
    inp = net.population("input", nw.SpikeSource(2048))
    hid = net.population("hidden", nw.ALIF(512, tau_refrac=5.0))
    out = net.population("output", nw.LeakyIntegrator(11, tau=20.0))
    net.connect(inp, hid, nw.FixedProbability(0.05), weight=nw.Normal(0.0, (0.05 * 2048) ** -0.5))
    net.connect(hid, hid, nw.FixedProbability(0.05), weight=nw.Normal(0.0, (0.05 * 512) ** -0.5))
    net.connect(hid, out, nw.Dense(), weight=nw.Normal(0.0, 512**-0.5))
    reg = RateRegularizer(c=1e-3, f_target_hz=10.0)
    return EProp(
        net,
        out,
        optimizer=Adam(),
        engine="torch",
        chunk_size=chunk_size,
        regularization=reg,
        device=device,
    )


def poisson_batch(batch, steps, seed, rate_hz=10.0, n_in=700):
    """Bool spikes [B, T, n_in] at ``rate_hz``, drawn trial by trial (small transients)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.empty(batch, steps, n_in, dtype=torch.bool)
    for b in range(batch):
        x[b] = torch.rand(steps, n_in, generator=gen) < rate_hz / 1000.0
    labels = torch.randint(0, 20, (batch,), generator=gen)
    return x, labels


def bptt_step_fn(batch, steps, device="cpu"):
    """Dense PyTorch BPTT with a surrogate gradient (same ALIF convention, same readout)."""
    import math

    import torch

    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, d, v_th):
            ctx.save_for_backward(d)
            ctx.v_th = v_th
            return (d > 0).to(d.dtype)

        @staticmethod
        def backward(ctx, grad):
            (d,) = ctx.saved_tensors
            psi = 0.3 / ctx.v_th * torch.clamp(1.0 - d.abs() / ctx.v_th, min=0.0)
            return grad * psi, None

    gen = torch.Generator().manual_seed(0)
    n_in, n, k = 700, 256, 20
    w_in = (torch.randn(n_in, n, generator=gen) * n_in**-0.5).to(device).requires_grad_()
    w_rec = (torch.randn(n, n, generator=gen) * n**-0.5).to(device).requires_grad_()
    w_out = (torch.randn(n, k, generator=gen) * n**-0.5).to(device).requires_grad_()
    bias = torch.zeros(k, device=device, requires_grad=True)
    opt = torch.optim.Adam([w_in, w_rec, w_out, bias], lr=1e-3)
    alpha, rho, kappa = math.exp(-1 / 20), math.exp(-1 / 2000), math.exp(-1 / 20)
    v_th, beta, n_ref = 0.6, 0.0174, 5
    eye = torch.eye(n, dtype=torch.bool, device=device)

    steps_idx = torch.arange(steps)
    decay = kappa ** (steps_idx[:, None] - steps_idx[None, :]).clamp(min=0).float()
    decay = torch.tril(decay).to(device)  # y = decay @ u: the leaky readout in one matmul

    def step(x, labels):
        opt.zero_grad()
        w_r = w_rec.masked_fill(eye, 0.0)
        x, labels = x.to(device), labels.to(device)
        cur = (x.float() @ w_in).unbind(1)  # unbind: one gradient copy, not one per step
        v, a, z, ref = (torch.zeros(batch, n, device=device) for _ in range(4))
        zs = []
        for t in range(steps):
            v = alpha * v + cur[t] + z @ w_r - v_th * z.detach()
            a = rho * a + z
            z = Spike.apply(v - v_th - beta * a, v_th) * (ref <= 0)
            with torch.no_grad():
                ref = torch.where(z > 0, float(n_ref), ref - 1)
            zs.append(z)
        y = torch.einsum("ts,bsk->btk", decay, torch.stack(zs, 1) @ w_out) + bias
        target = labels[:, None].expand(batch, steps).reshape(-1)
        loss = torch.nn.functional.cross_entropy(y.reshape(-1, k), target, reduction="sum")
        loss.backward()
        opt.step()

    return step


# ---------------------------------------------------------------------- one measurement
def worker(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    p = CONFIGS[args.config]
    batch, steps = args.batch, args.steps
    if args.method == "online":
        batch, steps = args.online_batch, args.online_steps
    if args.config == "dvs":
        return dvs_memory(args)
    batches = [poisson_batch(batch, steps, seed=i) for i in range(args.warmup + args.batches)]
    cuda = args.device.startswith("cuda")
    if args.method.startswith("bptt"):
        step = bptt_step_fn(batch, steps, args.device)
    else:
        engine = "native" if args.method == "factorized" else "torch"
        method = "online" if args.method == "online" else "factorized"
        trainer = build_trainer(p, method, engine, device=args.device)
        step = trainer.train_step
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times, spikes = [], []
    for i, (x, labels) in enumerate(batches):
        tic = time.perf_counter()
        m = step(x, labels)
        if cuda:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - tic
        if i >= args.warmup:
            times.append(elapsed)
            if m:
                spikes.append(m["spikes"] / (batch * steps * 256) * 1000.0)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    per_sample = statistics.median(times) / batch * (args.steps / steps)
    out = {
        "config": args.config,
        "method": args.method,
        "seconds_per_sample": per_sample,
        "batch_seconds": times,
        "measured_batch": batch,
        "measured_steps": steps,
        "peak_rss_increase_mib": (rss1 - rss0) / 1024.0,
        "hidden_rate_hz": statistics.mean(spikes) if spikes else None,
    }
    if cuda:
        out["peak_cuda_memory_mib"] = torch.cuda.max_memory_allocated() / 2**20
    if steps != args.steps:
        out["scaled"] = (
            f"time measured on {batch} trials x {steps} steps, scaled linearly to "
            f"T={args.steps}; memory is that of the measured run"
        )
    return out


def dvs_memory(args) -> dict:
    """Peak working memory of the torch engine at DVS-Gesture size (T = 6000) per trial."""
    chunk = int(args.method.split("_c")[1])
    batch = int(args.method.split("_")[0][1:])
    steps = 6000
    import torch

    x, labels = poisson_batch(batch, steps, seed=0, rate_hz=20.0, n_in=2048)
    labels = labels % 11
    cuda = args.device.startswith("cuda")
    trainer = dvs_trainer(chunk, args.device)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    tic = time.perf_counter()
    trainer.train_step(x, labels)
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - tic
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    extra = {"peak_cuda_memory_mib": torch.cuda.max_memory_allocated() / 2**20} if cuda else {}
    return {
        **extra,
        "config": "dvs",
        "method": args.method,
        "batch": batch,
        "chunk_size": chunk,
        "steps": steps,
        "seconds_per_sample": elapsed / batch,
        "peak_rss_increase_mib": (rss1 - rss0) / 1024.0,
        "peak_rss_increase_per_chunk_trial_mib": (rss1 - rss0) / 1024.0 / chunk,
    }


def machine() -> dict:
    import numba
    import torch

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numba": numba.__version__,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--config", default="dense", choices=sorted(CONFIGS))
    ap.add_argument("--method", default="factorized")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batches", type=int, default=5, help="timed batches")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--online-batch", type=int, default=4)
    ap.add_argument("--online-steps", type=int, default=100)
    ap.add_argument("--drift-batches", type=int, default=12)
    ap.add_argument("--quick", action="store_true", help="tiny smoke run, no JSON file")
    ap.add_argument(
        "--dvs-check", action="store_true", help="also measure memory at DVS-Gesture size"
    )
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (torch engine, BPTT; no numba)")
    ap.add_argument("--dvs-batch", type=int, default=4, help="batch of the DVS-size memory check")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    if args.quick:
        args.batch, args.steps, args.batches, args.drift_batches = 4, 100, 1, 3
        args.online_batch, args.online_steps = 2, 20
    cuda = args.device.startswith("cuda")
    if args.out is None:
        args.out = RESULTS.with_name(f"bench_eprop_{args.device.split(':')[0]}.json")
    sizes = ("dense", "p10", "p01")
    methods = (
        ("factorized_torch", "online") if cuda else ("factorized", "factorized_torch", "online")
    )
    plan = [(c, m) for c in sizes for m in methods]
    plan += [("dense", "bptt")] if cuda else [("dense", "bptt"), ("dense", "bptt_1thread")]
    if args.dvs_check:
        b = args.dvs_batch
        plan += [("dvs", f"b{b}_c{b}"), ("dvs", f"b{b}_c{max(1, b // 4)}")]
    load0 = os.getloadavg()
    runs = []
    for config, method in plan:
        first = ("dense", "factorized_torch" if cuda else "factorized")
        batches = args.drift_batches if (config, method) == first else None
        runs.append(run_worker(args, config, method, batches))
        msg = f"{config:6s} {method:17s} {runs[-1]['seconds_per_sample']:.5f} s/sample"
        print(msg, file=sys.stderr)
    result = summarise(args, runs, load0)
    print(json.dumps(result, indent=2))
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


def run_worker(args, config, method, batches=None) -> dict:
    threads = 1 if method == "bptt_1thread" else args.threads
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--config",
        config,
        "--method",
        method,
        "--threads",
        str(threads),
        "--batch",
        str(args.batch),
        "--steps",
        str(args.steps),
        "--batches",
        str(batches or args.batches),
        "--warmup",
        str(args.warmup),
        "--online-batch",
        str(args.online_batch),
        "--online-steps",
        str(args.online_steps),
        "--device",
        args.device,
    ]
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    if config == "dvs":  # large frees go back to the OS: peak RSS tracks live memory
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(args, runs, load0) -> dict:
    dvs = [r for r in runs if r["config"] == "dvs"]
    runs = [r for r in runs if r["config"] != "dvs"]
    t = {(r["config"], r["method"]): r["seconds_per_sample"] for r in runs}
    fast = "factorized" if ("dense", "factorized") in t else "factorized_torch"
    bptt = min(v for (c, m), v in t.items() if c == "dense" and m.startswith("bptt"))
    drift = next(r for r in runs if (r["config"], r["method"]) == ("dense", fast))
    bt = drift["batch_seconds"]
    k = max(1, len(bt) // 3)
    f = {c: t[c, fast] for c in ("dense", "p10", "p01")}
    ratios = {
        "fast_path": fast,
        "online_over_factorized_dense": t["dense", "online"] / f["dense"],
        "online_over_factorized_p10": t["p10", "online"] / f["p10"],
        "bptt_best_over_factorized_dense": bptt / f["dense"],
        "dense_over_p01_factorized": f["dense"] / f["p01"],
        "dense_over_p10_factorized": f["dense"] / f["p10"],
        "torch_engine_over_native_dense": t["dense", "factorized_torch"] / f["dense"],
        "nest_dense_0.66_over_factorized_dense": 0.66 / f["dense"],
        "nest_p10_0.23_over_factorized_p10": 0.23 / f["p10"],
        "peer_bptt_0.023_over_factorized_dense": 0.023 / f["dense"],
    }
    targets = {
        "factorized_dense_le_0.016": f["dense"] <= 0.016,
        "factorized_p10_le_0.006": f["p10"] <= 0.006,
        "online_over_factorized_dense_ge_20": ratios["online_over_factorized_dense"] >= 20,
        "p01_faster_than_dense": f["p01"] < f["dense"],
        "factorized_dense_faster_than_own_bptt": f["dense"] < bptt,
        "factorized_dense_faster_than_peer_bptt_0.023": f["dense"] < 0.023,
    }
    return {
        "benchmark": "e-prop training, reference network (after mlGeNN's SHD example)",
        "workload": {
            "inputs": 700,
            "input_rate_hz": 10.0,
            "hidden": "256 ALIF",
            "outputs": 20,
            "steps": args.steps,
            "dt_ms": 1.0,
            "batch": args.batch,
            "optimizer": "Adam(1e-3)",
            "regularizer": "RateRegularizer(c=1e-3, f_target_hz=10)",
            "sparse_weights": "N(0, 1/(p n_pre)), input and recurrent FixedProbability(p)",
        },
        "methods": {
            "factorized": "EProp(method='factorized', engine='native') (numba kernels)",
            "factorized_torch": "EProp(method='factorized', engine='torch') (pure PyTorch)",
            "online": "EProp(method='online'): per-synapse traces (reference)",
            "bptt": "dense PyTorch BPTT with the same surrogate gradient, autograd, Adam",
            "bptt_1thread": "the same BPTT with torch.set_num_threads(1)",
        },
        "timing": f"median of {args.batches} batches after {args.warmup} warm-up batch(es), "
        "divided by the batch size",
        "device": args.device,
        "memory": "peak RSS increase (ru_maxrss) over the state after building network and data"
        " (and peak_cuda_memory_mib, torch.cuda.max_memory_allocated, on CUDA)",
        "threads": {
            "torch.set_num_threads": args.threads,
            "EProp step_threads": 1,
            "numba threads": "= torch threads",
        },
        "machine": machine(),
        "load_average_before": load0,
        "load_average_after": os.getloadavg(),
        "results": runs,
        "seconds_per_sample": {f"{c}/{m}": v for (c, m), v in t.items()},
        "ratios": ratios,
        "targets_met": targets,
        "dvs_shape_memory_torch_engine": {
            "note": "2048 inputs (20 Hz), 512 ALIF, 11 outputs, p=0.05, T=6000, torch engine "
            "(the GPU path) on the CPU, MALLOC_MMAP_THRESHOLD_=65536; b<B>_c<chunk>",
            "runs": dvs,
        },
        "drift_dense_factorized": {
            "batches": len(bt),
            "mean_first_third_s": statistics.mean(bt[:k]),
            "mean_last_third_s": statistics.mean(bt[-k:]),
        },
    }


if __name__ == "__main__":
    main()
