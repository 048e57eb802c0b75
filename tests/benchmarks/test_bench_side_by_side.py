"""The output check of ``benchmarks/bench_side_by_side.py``: run folders compared exactly,
timings left out."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import torch

from neurowire.io import save_checkpoint

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_side_by_side.py"


def load_script():
    spec = importlib.util.spec_from_file_location("bench_side_by_side", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def make_run(folder: Path, weight: float, wall_s: float, accuracy: float) -> Path:
    (folder / "checkpoints").mkdir(parents=True)
    summary = {"configurations": {"dense": {"accuracy_test": accuracy, "time_per_epoch_s": wall_s}}}
    (folder / "summary.json").write_text(json.dumps(summary))
    np.savez(folder / "connectivity.npz", w=np.array([weight, 1.0, np.nan]))
    history = [{"loss": 0.5, "time_s": wall_s}]
    save_checkpoint(
        folder / "checkpoints" / "dense.pt", {"w": torch.tensor([weight]), "history": history}
    )
    return folder


def test_timings_differ_but_outputs_are_identical(tmp_path):
    bench = load_script()
    a = make_run(tmp_path / "a", 0.5, wall_s=1.0, accuracy=0.7)
    b = make_run(tmp_path / "b", 0.5, wall_s=2.5, accuracy=0.7)
    got = bench.same_outputs(a, b)
    assert got == {"summary.json": True, "connectivity.npz": True, "checkpoints/dense.pt": True}


def test_a_changed_result_is_found_in_each_kind_of_file(tmp_path):
    bench = load_script()
    a = make_run(tmp_path / "a", 0.5, wall_s=1.0, accuracy=0.7)
    b = make_run(tmp_path / "b", 0.5 + 2**-20, wall_s=1.0, accuracy=0.71)
    got = bench.same_outputs(a, b)
    assert got == {"summary.json": False, "connectivity.npz": False, "checkpoints/dense.pt": False}


def test_without_timings_keeps_results_and_drops_clock_fields():
    bench = load_script()
    summary = {
        "machine": {"cpus": 2},
        "timing": {"seconds": {"steps": 1.0}},
        "a": {
            "accuracy_test": 0.5,
            "time_per_epoch_s": 3.0,
            "n_synapses": 9,
            "history": [{"loss": 1, "time_s": 0.2, "rules_s": 0.1}],
        },
    }
    assert bench.without_timings(summary) == {
        "a": {"accuracy_test": 0.5, "n_synapses": 9, "history": [{"loss": 1}]}
    }
