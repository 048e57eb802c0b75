"""Smoke test of ``benchmarks/bench_store.py``: its quick mode runs and its checks pass."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_store.py"


def load_bench_store() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_store", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_bench_store_quick_mode_writes_json_and_every_strategy_agrees(tmp_path, capsys):
    bench = load_bench_store()
    threads = torch.get_num_threads()
    argv = ["--quick", "--device", "cpu", "--sizes", "200", "--repeats", "1", "--cycles", "1"]
    results = bench.main([*argv, "--out", str(tmp_path), "--json"])
    assert torch.get_num_threads() == threads  # --threads applies during the run only

    # --json: stdout holds exactly the JSON returned, the table went to stderr
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"cpu"}
    written = json.loads((tmp_path / "bench_store_cpu_quick.json").read_text())
    result = results["cpu"]
    assert written["settings"] == result["settings"] == printed["cpu"]["settings"]

    for key in ("benchmark", "device", "machine", "settings", "store_ops", "delivery", "skipped"):
        assert key in written
    for key in ("cpu_model", "cpu_count", "torch", "numpy", "numba", "torch_threads", "date"):
        assert key in written["machine"]
    assert written["machine"]["torch_threads"] == 1
    assert written["cuda"]["available"] or "skipped" in written["cuda"]

    assert [(r["n"], r["density"]) for r in written["store_ops"]] == [(200, 0.01), (200, 0.1)]
    for row in written["store_ops"]:
        for op in ("remove", "add", "grow"):
            assert row["ops"][op]["synapses_per_s"] > 0
            assert row["ops"][op]["synapses"] == row["ops"][op]["requested"]

    assert len(written["delivery"]) == 4  # 2 densities x 2 spike fractions
    for entry in written["delivery"]:
        assert entry["check"]["passed"], entry["check"]
        assert set(entry["check"]["agree"]) == {"dense", "slots", "rows", "csr", "native"}
        for name, strategy in entry["strategies"].items():
            assert strategy["time_per_step_s"] > 0, name
            assert strategy["events_per_s"] > 0, name
    assert written["checks_passed"] is True


def test_bench_store_skips_large_stores_and_dense_matrices_and_says_so(tmp_path):
    bench = load_bench_store()
    # n = 200: capacity 12 at p = 0.01 (2400 slots), 43 at p = 0.1 (8600 slots)
    argv = ["--quick", "--device", "cpu", "--sizes", "200", "--repeats", "1", "--cycles", "1"]
    results = bench.main(
        [*argv, "--max-slots", "5000", "--max-dense", "100", "--out", str(tmp_path)]
    )
    result = results["cpu"]
    assert [(s["n"], s["density"]) for s in result["skipped"]] == [(200, 0.1)]
    assert "--max-slots" in result["skipped"][0]["reason"]
    assert [r["density"] for r in result["store_ops"]] == [0.01]
    for entry in result["delivery"]:
        assert "--max-dense" in entry["strategies"]["dense"]["skipped"]
        assert "dense" not in entry["check"]["agree"]
        assert entry["check"]["passed"]


@pytest.mark.parametrize("bad", [["--threads", "0"], ["--densities", "0"], ["--repeats", "0"]])
def test_bench_store_rejects_bad_options(bad, tmp_path):
    bench = load_bench_store()
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--out", str(tmp_path), *bad])
