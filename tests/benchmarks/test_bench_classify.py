"""``benchmarks/bench_classify.py``: the paired test and the paper-form table, and its quick
mode end to end."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_classify.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_classify", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_wilcoxon_is_the_exact_one_sided_test():
    bench = load()
    # DEEP R ahead on all five seeds: the smallest exact p with n = 5 is 1/32
    assert bench.wilcoxon_greater([0.9] * 5, [0.8, 0.81, 0.82, 0.83, 0.84]) == pytest.approx(1 / 32)
    # behind on all five: p = 1
    assert bench.wilcoxon_greater([0.1] * 5, [0.2, 0.3, 0.4, 0.5, 0.6]) == pytest.approx(1.0)
    assert bench.wilcoxon_greater([0.5, 0.5], [0.5, 0.5]) is None
    assert bench.wilcoxon_greater([0.5], [0.4]) is None


def test_mean_sd_uses_the_sample_sd():
    s = load().mean_sd([0.8, 0.9, 1.0])
    assert s["mean"] == pytest.approx(0.9) and s["sd"] == pytest.approx(0.1)


def test_densities_parse_and_refuse():
    bench = load()
    assert bench.densities("0.05/0.01") == (0.05, 0.01)
    with pytest.raises(Exception, match="INPUT/RECURRENT"):
        bench.densities("0.05")


@pytest.mark.slow
def test_quick_mode_prints_the_table(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--skip-paper-size"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "static sparse" in proc.stdout and "20 % / 20 %" in proc.stdout
