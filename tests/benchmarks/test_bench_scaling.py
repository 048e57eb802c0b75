"""``benchmarks/bench_scaling.py``: its quick mode writes every key, and dense runs that would
not fit are skipped and listed."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_scaling.py"

RUN_KEYS = {
    "n",
    "config",
    "batch",
    "steps",
    "engine",
    "s_per_sample",
    "batch_seconds",
    "warmup_seconds",
    "timers_s_per_sample",
    "hidden_rate_hz",
    "synaptic_events_per_sample",
    "synapses",
    "chunk_size",
    "chunks",
    "threads",
    "peak_rss_mib",
    "peak_rss_build_mib",
    "peak_rss_reset_after_build",
    "memory_mib",
    "load_average_before",
    "load_average_after",
    "isolated",
}


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_scaling", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_quick_mode_writes_every_key(tmp_path):
    bench = load()
    threads = torch.get_num_threads()
    bench.main(["--quick", "--in-process", "--out", str(tmp_path)])
    assert torch.get_num_threads() == threads
    written = json.loads((tmp_path / "bench_scaling_cpu_quick.json").read_text())
    assert (tmp_path / "bench_scaling_cpu_quick.png").stat().st_size > 0
    for key in ("workload", "configurations", "machine", "load_average_before", "targets"):
        assert key in written
    assert written["quick"] and written["sizes"] == [64, 128] and written["skipped"] == []
    expected = {f"{n}/{c}/t2" for n in (64, 128) for c in ("dense", "static1", "deepr1")}
    assert set(written["results"]) == expected
    for key, run in written["results"].items():
        assert RUN_KEYS <= set(run), key
        assert run["steps"] == 50 and len(run["batch_seconds"]) == 1
        assert run["s_per_sample"]["min"] <= run["s_per_sample"]["median"]
        memory = run["memory_mib"]
        assert set(memory) == {"synapse_scaled", "per_neuron", "rest_of_peak"}
        synapse = memory["synapse_scaled"]
        parts = ("weights", "optimizer_moments", "gradients", "structure", "other_vars")
        assert synapse["total"] >= sum(synapse[k] for k in parts) > 0
        assert memory["per_neuron"]["psi"] > 0
        assert (run["memory_estimate_gib"] is None) == (run["config"] != "dense")
    assert written["results"]["64/deepr1/t2"]["memory_mib"]["synapse_scaled"]["other_vars"] > 0
    assert set(written["ratios_vs_dense"]) == {"64/t2", "128/t2"}
    for ratio in written["ratios_vs_dense"].values():
        assert set(ratio) == {"static1", "deepr1"}
        assert set(ratio["deepr1"]) == {"time", "synapse_memory", "peak_rss"}
    assert set(written["targets"]) == {"t2"} and written["targets"]["t2"]["size"] == 128


def test_dense_runs_above_the_memory_limit_are_skipped_and_listed():
    bench = load()
    args = bench.parse_args(
        ["--sizes", "512", "8192", "--max-memory-gib", "2", "--threads", "2", "1"]
    )
    runs, skipped = bench.plan_runs(args)
    assert [(r["n"], r["config"], r["threads"]) for r in runs] == [
        (n, c, t)
        for n in (512, 8192)
        for t in (2, 1)
        for c in ("dense", "static1", "deepr1")
        if (n, c) != (8192, "dense")
    ]
    assert [(s["n"], s["config"], s["threads"]) for s in skipped] == [
        (8192, "dense", 2),
        (8192, "dense", 1),
    ]
    entry = skipped[0]
    assert entry["memory_estimate_gib"] > 2.0 >= entry["limit_gib"]
    assert runs[0]["memory_estimate_gib"] < 1.0
