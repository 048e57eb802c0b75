"""``benchmarks/bench_nn.py``: one run's measurements, the dense/sparse ratios, and the script
end to end at a tiny size."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_nn.py"


def load() -> ModuleType:
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("bench_nn", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_layer_memory_counts_weights_gradients_structure_and_saved():
    bench = load()
    dense = bench.run_one("dense", 48, 6, 2, "spikes", 0.2, 0)
    sparse = bench.run_one("sparse5", 48, 6, 2, "spikes", 0.2, 0)
    d = dense["layer_bytes"]
    assert d["parameters"] == d["gradients"] == (48 * 48 + 48) * 4
    assert d["structure"] == 0
    s = sparse["layer_bytes"]
    assert s["parameters"] == s["gradients"]
    assert s["structure"] > 0 and s["total"] == sum(v for k, v in s.items() if k != "total")
    assert s["parameters"] < d["parameters"]
    for r in (dense, sparse):
        assert r["forward_s"] > 0 and r["backward_s"] > 0
        assert r["total_s"] == pytest.approx(r["forward_s"] + r["backward_s"])
        assert 0 < r["layer_forward_s"] <= r["forward_s"]
        assert 0 < r["layer_backward_s"] <= r["backward_s"]


def test_ratios_are_dense_over_sparse():
    bench = load()
    entry = {"total_s": {"median": 2.0}, "layer_total_s": {"median": 1.0}, "layer_mib": 8.0}
    sparse = {"total_s": {"median": 0.5}, "layer_total_s": {"median": 0.1}, "layer_mib": 2.0}
    entry["peak_rss_delta_mib"], sparse["peak_rss_delta_mib"] = {"median": 4.0}, {"median": 1.0}
    summary = {"n=8 input=spikes dense": entry, "n=8 input=spikes sparse1": sparse}
    r = bench.ratios(summary, [8], ["spikes"])["n=8 input=spikes sparse1"]
    assert r["speedup_total"] == r["layer_memory_ratio"] == r["peak_rss_ratio"] == 4.0
    assert r["speedup_layer"] == pytest.approx(10.0)


def test_script_end_to_end(tmp_path):
    out = tmp_path / "nn.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), MPLBACKEND="Agg")
    args = ["--sizes", "32", "--steps", "4", "--batch", "2", "--reps", "2", "--idle-wait", "0"]
    args += ["--configs", "dense", "sparse1", "--inputs", "spikes", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert set(result["summary"]) == {"n=32 input=spikes dense", "n=32 input=spikes sparse1"}
    assert all(len(runs) == 2 for runs in result["runs"].values())
    assert "n=32 input=spikes sparse1" in result["dense_over_sparse"]
    assert out.with_suffix(".png").stat().st_size > 0


def test_epoch_only_times_one_epoch_per_configuration(tmp_path):
    out = tmp_path / "epoch.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), MPLBACKEND="Agg")
    args = ["--epoch-only", "--quick", "--epoch-seeds", "2", "--idle-wait", "0", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    epochs = result["bptt_epoch"]
    assert set(epochs["summary"]) == {"dense", "static", "deep_r"}
    for kind, runs in epochs["runs"].items():
        assert [r["seed"] for r in runs] == [0, 1]
        assert all(len(r["history"]) == 1 and r["train_s"] > 0 for r in runs)
        times = [r["train_s"] for r in runs]
        assert epochs["summary"][kind]["train_s"] == {
            "median": pytest.approx(sum(times) / 2),
            "min": min(times),
            "max": max(times),
        }
    assert "start" in result["load_average"] and "end" in result["load_average"]
