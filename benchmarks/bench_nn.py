"""Sparse layers against dense ones where PyTorch SNN users train: one linear layer plus LIF.

The setup of the community's SNN-library benchmark: input ``[T, B, n]`` with ``T = 500`` steps
and batch ``B = 16`` goes through one linear layer ``n -> n`` (applied to all steps at once) and
a layer of ``n`` LIF neurons (``beta`` 0.9, threshold 1, subtractive reset, a fast-sigmoid
surrogate gradient); the loss is the sum of the output spikes, and the time of the forward pass
(linear plus the LIF loop) and of ``loss.backward()`` are measured separately, and so is the
linear layer's own share: its forward call, and the part of the backward pass from the moment
the gradient reaches the layer's output to the end (``layer_forward_s``, ``layer_backward_s``).
The input does not require a gradient (it is the network's input), as in that benchmark.

Configurations (``--configs``):

* ``dense``: ``torch.nn.Linear`` with the plain-torch LIF loop;
* ``snntorch``/``norse``: ``torch.nn.Linear`` with ``snntorch.Leaky`` / Norse's ``LIFBoxCell``
  (only where those packages are installed);
* ``sparse1``/``sparse5``: :class:`neurowire.nn.SparseLinear` at 1 % / 5 % density without
  padding (``padding=1.0``: rows as long as the connectivity's longest expected row, what a
  static layer needs) with the plain-torch LIF loop;
* ``sparse1_pad2``: 1 % with rows padded 2x (``padding=2.0``, the default, room to rewire).

Inputs (``--inputs``): ``spikes`` (Bernoulli, ``--input-rate`` per step, the usual case for a
spiking layer) and ``real`` (uniform in [0, 1), the dense extreme for an event-driven layer).
A dense layer's cost does not depend on its input's values, so real input runs only the
configurations in ``--real-configs`` (default ``dense`` and the sparse ones).

Every (repetition, size, input, configuration) runs in its own subprocess, repetitions
alternating over the configurations. Per run: forward and backward seconds after one warm-up
iteration; the process's peak RSS during the timed iteration above what it held before it
(``peak_rss_delta_mib``, after resetting ``ru_maxrss`` through ``/proc/self/clear_refs``); and
the layer's own memory (``layer_bytes``): its parameters, their gradients, its structure
(the store's column index and row lengths) and what the linear operation saved for backward
beyond its input (counted with ``torch.autograd.graph.saved_tensors_hooks``). Dense runs whose
estimated peak exceeds ``--max-memory-gib`` are skipped and listed.

``--epoch`` also times one BPTT training epoch on the built-in data for dense, static sparse
and DEEP R (``examples/bptt_deep_r.py``, torch and numba on one thread, the configurations
alternating within each seed) and reports their test accuracy; ``--epoch-only`` runs just that
and writes ``bench_nn_epoch_cpu.json``.

Usage::

    PYTHONPATH=src python benchmarks/bench_nn.py                # ~20-40 min on 2 idle cores
    PYTHONPATH=src python benchmarks/bench_nn.py --quick        # n = 256 and 512, T = 50

Writes ``benchmarks/results/bench_nn_cpu.json`` and ``bench_nn_cpu.png`` (``_quick`` with
``--quick``).
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_paper import machine, wait_for_idle  # noqa: E402
from bench_scaling import reset_peak_rss  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIGS = ("dense", "snntorch", "norse", "sparse1", "sparse5", "sparse1_pad2")
#: sparse configurations: (density, padding)
DENSITY = {"sparse1": (0.01, 1.0), "sparse5": (0.05, 1.0), "sparse1_pad2": (0.01, 2.0)}


# ---------------------------------------------------------------- one run (in a subprocess)


def _surrogate():
    import torch

    class FastSigmoidSpike(torch.autograd.Function):
        """Heaviside forward, ``1 / (1 + 10 |v|)^2`` backward."""

        @staticmethod
        def forward(ctx, v):
            ctx.save_for_backward(v)
            return (v > 0).to(v.dtype)

        @staticmethod
        def backward(ctx, grad):
            (v,) = ctx.saved_tensors
            return grad / (1.0 + 10.0 * v.abs()) ** 2

    return FastSigmoidSpike.apply


def _lif_torch(current, beta: float = 0.9, threshold: float = 1.0):
    """Plain-torch LIF over ``current [T, B, n]``; spikes ``[T, B, n]``."""
    import torch

    spike = _surrogate()
    v = torch.zeros_like(current[0])
    out = []
    for i_t in current.unbind(0):  # one backward node for all steps (indexing makes one each)
        v = beta * v + i_t
        s = spike(v - threshold)
        v = v - s * threshold
        out.append(s)
    return torch.stack(out)


def _lif_snntorch(current):
    import snntorch
    import torch

    lif = snntorch.Leaky(beta=0.9, threshold=1.0, reset_mechanism="subtract")
    mem = torch.zeros_like(current[0])
    out = []
    for i_t in current.unbind(0):
        s, mem = lif(i_t, mem)
        out.append(s)
    return torch.stack(out)


def _lif_norse(current):
    import norse.torch as norse
    import torch

    cell = norse.LIFBoxCell()
    state = None
    out = []
    for i_t in current.unbind(0):
        s, state = cell(i_t, state)
        out.append(s)
    return torch.stack(out)


def _layer(config: str, n: int, seed: int):
    import torch

    import neurowire as nw

    if config in DENSITY:
        gen = torch.Generator().manual_seed(seed)
        density, padding = DENSITY[config]
        conn = nw.FixedProbability(density)
        return nw.nn.SparseLinear(n, n, conn, padding=padding, generator=gen)
    torch.manual_seed(seed)
    return torch.nn.Linear(n, n)


def _layer_bytes(layer, saved: dict[int, int]) -> dict[str, int]:
    params = sum(p.numel() * p.element_size() for p in layer.parameters())
    grads = sum(
        p.grad.numel() * p.grad.element_size() for p in layer.parameters() if p.grad is not None
    )
    structure = 0
    store = getattr(layer, "synapses", None)
    if store is not None:
        structure = sum(t.numel() * t.element_size() for t in (store.ind, store.row_length))
    saved_bytes = sum(saved.values())
    return {
        "parameters": params,
        "gradients": grads,
        "structure": structure,
        "saved_for_backward": saved_bytes,
        "total": params + grads + structure + saved_bytes,
    }


def run_one(
    config: str, n: int, steps: int, batch: int, inputs: str, rate: float, seed: int
) -> dict:
    """Build, warm up once, then time one forward and one backward; memory as documented."""
    import torch

    lif = {"snntorch": _lif_snntorch, "norse": _lif_norse}.get(config, _lif_torch)
    layer = _layer(config, n, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    if inputs == "spikes":
        x = (torch.rand((steps, batch, n), generator=gen) < rate).float()
    else:
        x = torch.rand((steps, batch, n), generator=gen)
    params = list(layer.parameters())
    param_ptrs = {p.untyped_storage().data_ptr() for p in params}
    saved: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr != x.untyped_storage().data_ptr() and ptr not in param_ptrs:
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    def iteration() -> tuple[float, float]:
        for p in params:
            p.grad = None
        saved.clear()
        tic = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            current = layer(x)
        layer_fwd = time.perf_counter() - tic
        reached: list[float] = []  # when backward reaches the layer's output
        current.register_hook(lambda g: reached.append(time.perf_counter()))
        out = lif(current)
        loss = out.sum()
        fwd = time.perf_counter() - tic
        tic = time.perf_counter()
        loss.backward()
        end = time.perf_counter()
        return fwd, end - tic, layer_fwd, end - reached[0]

    iteration()  # warm-up: kernel compilation, allocator
    for p in params:
        p.grad = None
    rss_before = _rss_mib()
    reset_ok = reset_peak_rss()
    fwd, bwd, layer_fwd, layer_bwd = iteration()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "forward_s": fwd,
        "backward_s": bwd,
        "total_s": fwd + bwd,
        "layer_forward_s": layer_fwd,
        "layer_backward_s": layer_bwd,
        "layer_total_s": layer_fwd + layer_bwd,
        "peak_rss_delta_mib": peak - rss_before if reset_ok else None,
        "layer_bytes": _layer_bytes(layer, saved),
        "synapses": getattr(getattr(layer, "synapses", None), "nnz", n * n),
        "threads": torch.get_num_threads(),
    }


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------- the race (parent)


def available(config: str) -> bool:
    module = {"snntorch": "snntorch", "norse": "norse"}.get(config)
    if module is None:
        return True
    import importlib.util

    return importlib.util.find_spec(module) is not None


def dense_estimate_gib(n: int, steps: int, batch: int) -> float:
    """Weight, gradient, input, output and the LIF loop's saved state, float32."""
    act = steps * batch * n * 4
    return (2 * n * n * 4 + 6 * act) / 2**30


def child(args: argparse.Namespace) -> None:
    out = run_one(
        args.config, args.n, args.steps, args.batch, args.input, args.input_rate, args.seed
    )
    print(json.dumps(out))


def race(args: argparse.Namespace) -> dict[str, Any]:
    configs = [c for c in args.configs if available(c)]
    missing = [c for c in args.configs if c not in configs]
    idle = wait_for_idle(args.idle_load, args.idle_wait)
    runs: dict[str, list[dict]] = {}
    skipped = []
    load = [list(os.getloadavg())]
    for rep in range(args.reps):
        for n in args.sizes:
            for inp in args.inputs:
                for config in configs:
                    if inp == "real" and config not in args.real_configs:
                        continue
                    key = f"n={n} input={inp} {config}"
                    if (
                        config not in DENSITY
                        and dense_estimate_gib(n, args.steps, args.batch) > args.max_memory_gib
                    ):
                        if rep == 0:
                            skipped.append(key)
                        continue
                    cmd = [
                        sys.executable,
                        __file__,
                        "--child",
                        "--config",
                        config,
                        "--n",
                        str(n),
                        "--steps",
                        str(args.steps),
                        "--batch",
                        str(args.batch),
                        "--input",
                        inp,
                        "--input-rate",
                        str(args.input_rate),
                        "--seed",
                        str(args.seed),
                    ]
                    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
                    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
                    if done.returncode != 0:
                        raise RuntimeError(f"{key} failed:\n{done.stderr[-3000:]}")
                    result = json.loads(done.stdout.strip().splitlines()[-1])
                    runs.setdefault(key, []).append(result)
                    print(
                        f"rep {rep} {key:34s} fwd {result['forward_s']:.4f} s  "
                        f"bwd {result['backward_s']:.4f} s  layer fwd+bwd "
                        f"{result['layer_total_s']:.4f} s  layer "
                        f"{result['layer_bytes']['total'] / 2**20:.1f} MiB",
                        flush=True,
                    )
        load.append(list(os.getloadavg()))
    return {
        "runs": runs,
        "skipped": skipped,
        "missing_packages": missing,
        "idle": idle,
        "load_average": load,
    }


def stats(values: list[float]) -> dict[str, float]:
    """Median, minimum and maximum of ``values``."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(runs: dict[str, list[dict]]) -> dict[str, Any]:
    out = {}
    for key, rs in runs.items():
        entry = {}
        fields = ("forward_s", "backward_s", "total_s", "layer_forward_s", "layer_backward_s")
        for field in (*fields, "layer_total_s", "peak_rss_delta_mib"):
            vals = [r[field] for r in rs if r[field] is not None]
            if vals:
                entry[field] = stats(vals)
        entry["layer_mib"] = rs[0]["layer_bytes"]["total"] / 2**20
        entry["layer_bytes"] = rs[0]["layer_bytes"]
        entry["synapses"] = rs[0]["synapses"]
        out[key] = entry
    return out


def ratios(summary: dict[str, Any], sizes, inputs) -> dict[str, Any]:
    """Dense over sparse, time (forward + backward, medians) and layer memory."""
    out = {}
    for n in sizes:
        for inp in inputs:
            dense = summary.get(f"n={n} input={inp} dense")
            if dense is None:
                continue
            for config in DENSITY:
                sparse = summary.get(f"n={n} input={inp} {config}")
                if sparse is None:
                    continue
                out[f"n={n} input={inp} {config}"] = {
                    "speedup_total": dense["total_s"]["median"] / sparse["total_s"]["median"],
                    "speedup_layer": (
                        dense["layer_total_s"]["median"] / sparse["layer_total_s"]["median"]
                    ),
                    "layer_memory_ratio": dense["layer_mib"] / sparse["layer_mib"],
                    "peak_rss_ratio": (
                        dense["peak_rss_delta_mib"]["median"]
                        / sparse["peak_rss_delta_mib"]["median"]
                        if "peak_rss_delta_mib" in dense and "peak_rss_delta_mib" in sparse
                        else None
                    ),
                }
    return out


def epoch_comparison(args: argparse.Namespace) -> dict[str, Any]:
    """One BPTT epoch on the built-in data per configuration, alternating over seeds."""
    sys.path.insert(0, str(ROOT / "examples"))
    import torch
    from bptt_deep_r import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the example runs
    runs: dict[str, list[dict]] = {}
    try:
        for seed in range(args.epoch_seeds):
            for kind in ("dense", "static", "deep_r"):
                result = train(kind, epochs=1, seed=seed, tiny=args.quick)
                runs.setdefault(kind, []).append(result)
                acc, secs = result["test_accuracy"], result["train_s"]
                print(f"epoch seed {seed} {kind:7s} accuracy {acc:.3f} time {secs:.1f} s")
    finally:
        torch.set_num_threads(threads)
    summary = {
        kind: {
            "train_s": stats([r["train_s"] for r in rs]),
            "test_accuracy": stats([r["test_accuracy"] for r in rs]),
        }
        for kind, rs in runs.items()
    }
    return {"summary": summary, "runs": runs}


def output_path(args: argparse.Namespace, stem: str) -> Path:
    """``--out``, else ``benchmarks/results/<stem>[_quick].json``."""
    return args.out or RESULTS / f"{stem}{'_quick' if args.quick else ''}.json"


def epoch_only(args: argparse.Namespace) -> None:
    """``--epoch-only``: the BPTT epochs on an idle machine, written to JSON."""
    idle = wait_for_idle(args.idle_load, args.idle_wait)
    load = {"start": os.getloadavg()}
    tic = time.perf_counter()
    epochs = epoch_comparison(args)
    load["end"] = os.getloadavg()
    result = {
        "benchmark": "nn_bptt_epoch",
        "settings": {"epoch_seeds": args.epoch_seeds, "quick": args.quick},
        "machine": machine(),
        "idle": idle,
        "load_average": load,
        "bptt_epoch": epochs,
        "wall_s": time.perf_counter() - tic,
    }
    out = output_path(args, "bench_nn_epoch_cpu")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    for kind, r in epochs["summary"].items():
        t, a = r["train_s"], r["test_accuracy"]
        print(
            f"{kind:7s} epoch {t['median']:.1f} s ({t['min']:.1f}-{t['max']:.1f}), "
            f"test accuracy {a['median']:.3f} after one epoch"
        )
    print(f"wrote {out}")


def figure(summary: dict[str, Any], args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(args.inputs), 2, figsize=(10, 3.6 * len(args.inputs)), squeeze=False
    )
    for row, inp in enumerate(args.inputs):
        for config in args.configs:
            xs, ts, ms = [], [], []
            for n in args.sizes:
                s = summary.get(f"n={n} input={inp} {config}")
                if s is not None:
                    xs.append(n)
                    ts.append(s["total_s"]["median"])
                    ms.append(s["layer_mib"])
            if xs:
                axes[row][0].plot(xs, ts, "o-", label=config)
                axes[row][1].plot(xs, ms, "o-", label=config)
        axes[row][0].set(
            xscale="log",
            yscale="log",
            xlabel="neurons n",
            ylabel="forward + backward [s]",
            title=f"{inp} input: time per iteration (T={args.steps}, B={args.batch})",
        )
        axes[row][1].set(
            xscale="log",
            yscale="log",
            xlabel="neurons n",
            ylabel="layer memory [MiB]",
            title=f"{inp} input: parameters + gradients + structure + saved",
        )
        for ax in axes[row]:
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", default="dense", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=256, help=argparse.SUPPRESS)
    parser.add_argument("--input", default="spikes", help=argparse.SUPPRESS)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--sizes", nargs="+", type=int, default=[4096, 8192, 16384])
    parser.add_argument(
        "--inputs", nargs="+", default=["spikes", "real"], choices=["spikes", "real"]
    )
    parser.add_argument(
        "--real-configs",
        nargs="+",
        default=["dense", *DENSITY],
        choices=CONFIGS,
        help="the configurations run on real input",
    )
    parser.add_argument("--input-rate", type=float, default=0.05, help="spike probability per step")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-memory-gib", type=float, default=12.0)
    parser.add_argument("--idle-load", type=float, default=0.5)
    parser.add_argument("--idle-wait", type=float, default=120.0)
    parser.add_argument(
        "--epoch", action="store_true", help="also one BPTT epoch per configuration"
    )
    parser.add_argument("--epoch-seeds", type=int, default=3)
    parser.add_argument(
        "--epoch-only", action="store_true", help="only the BPTT epochs (no layer race)"
    )
    parser.add_argument("--quick", action="store_true", help="n = 256 and 512, T = 50, 2 reps")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.quick:
        args.sizes, args.steps, args.reps = [256, 512], 50, 2
    if args.epoch_only:
        epoch_only(args)
        return
    out = output_path(args, "bench_nn_cpu")
    tic = time.perf_counter()
    raced = race(args)
    summary = summarise(raced["runs"])
    result = {
        "benchmark": "nn",
        "settings": {
            k: v for k, v in vars(args).items() if k not in ("child", "config", "n", "input", "out")
        },
        "machine": machine(),
        "idle": raced["idle"],
        "load_average": raced["load_average"],
        "skipped": raced["skipped"],
        "missing_packages": raced["missing_packages"],
        "summary": summary,
        "dense_over_sparse": ratios(summary, args.sizes, args.inputs),
        "runs": raced["runs"],
    }
    if args.epoch:
        result["bptt_epoch"] = epoch_comparison(args)
    result["wall_s"] = time.perf_counter() - tic
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    figure(summary, args, out.with_suffix(".png"))
    for key, r in result["dense_over_sparse"].items():
        speed, layer, memory = r["speedup_total"], r["speedup_layer"], r["layer_memory_ratio"]
        print(
            f"{key:34s} dense/sparse time {speed:.1f}x (layer alone {layer:.1f}x), "
            f"layer memory {memory:.1f}x"
        )
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
