"""``benchmarks/device_check.sh``: every benchmark option it passes exists, and its steps run
in order with the right options, log their exit status and go on after a failure (checked with
a stand-in ``PYTHON`` that records its arguments, so no test, benchmark or GPU is needed); a
machine without CUDA or an unknown argument is refused in one line (a mistake there would only
show on a lent GPU, where each minute counts)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "device_check.sh"


needs_bash = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash, timeout"
)

#: stands in for python: records its arguments, prints a GPU name for ``-c``, reads the inline
#: script for ``-``, and fails (exit 3) a command that contains ``$FAIL_ON``
FAKE_PYTHON = """#!/usr/bin/env bash
printf '%s\\n' "$*" >>"$CALLS"
case "$1" in
  -c) echo h100; exit 0 ;;
  -) cat >/dev/null; exit 0 ;;
esac
[[ -n "${FAIL_ON:-}" && "$*" == *"$FAIL_ON"* ]] && exit 3
exit 0
"""

STEPS = [
    "tests",
    "triton-tests",
    "eprop-{engine}",
    "eprop-torch",
    "eprop-online",
    "topomap",
    "store",
]


def run_script(tmp_path, *args, python=None, **env):
    fake = tmp_path / "fake_python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    out = tmp_path / "out"
    env = {
        **os.environ,
        "OUT": str(out),
        "CALLS": str(tmp_path / "calls.txt"),
        "PYTHON": python or str(fake),
        **env,
    }
    done = subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120
    )
    calls = tmp_path / "calls.txt"
    calls = calls.read_text().splitlines() if calls.exists() else []
    log = out / "device_check.log"
    return done, calls, log.read_text() if log.exists() else ""


def benchmark_calls(calls, bench):
    return [c for c in calls if f"benchmarks/{bench}" in c]


@needs_bash
def test_dry_run_runs_every_step_on_the_cpu_in_order(tmp_path):
    done, calls, log = run_script(tmp_path, "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    names = re.findall(r"^== ([\w-]+): exit 0 after", log, flags=re.M)
    assert names == [s.format(engine="native") for s in STEPS]
    out = tmp_path / "out"
    paper = benchmark_calls(calls, "bench_paper.py")
    assert len(paper) == 3
    assert "--quick --batch-size 4 --device cpu --engine native" in paper[0]
    assert paper[0].endswith(f"--out {out}/bench_paper_cpu-dry-run_native.json")
    assert "--engine torch --method online" in paper[2] and "--steps 200" in paper[2]
    (topomap,) = benchmark_calls(calls, "bench_topomap.py")
    assert "--scales 1 --duration 0.2" in topomap and "--device cpu --engine native" in topomap
    (store,) = benchmark_calls(calls, "bench_store.py")
    assert store.endswith(f"--quick --device cpu --sizes 200 --out {out}")
    assert calls[1] == "-m pytest -q -p no:cacheprovider -m cuda tests"
    assert "done: tests=0 triton-tests=0 eprop-native=0" in log


@needs_bash
def test_gpu_run_uses_the_gpu_options_and_names_files_after_the_gpu(tmp_path):
    done, calls, log = run_script(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "device check on h100" in log
    paper = benchmark_calls(calls, "bench_paper.py")
    assert "--batch-size 512 --batches 3" in paper[0]
    assert "--device cuda --engine triton" in paper[0] and "_h100_triton.json" in paper[0]
    assert "--steps" not in paper[2]
    (topomap,) = benchmark_calls(calls, "bench_topomap.py")
    assert "--scales 1 2 3 4 5 6 7" in topomap and "--engine graph" in topomap


@needs_bash
def test_a_failing_step_is_logged_the_next_runs_and_the_check_fails(tmp_path):
    done, calls, log = run_script(tmp_path, "--dry-run", FAIL_ON="bench_topomap.py")
    assert done.returncode == 1
    assert "== topomap: exit 3 after" in log
    assert len(benchmark_calls(calls, "bench_store.py")) == 1  # the next step still ran
    assert "eprop-online=0 topomap=3 store=0" in log


@needs_bash
def test_without_cuda_the_gpu_run_refuses_in_one_line(tmp_path):
    done, calls, log = run_script(tmp_path, python=sys.executable, CUDA_VISIBLE_DEVICES="")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"device_check.sh: {sys.executable} sees no CUDA device; run with --dry-run for the "
        "CPU steps"
    ]
    assert "(limit" not in log  # no step started


@needs_bash
def test_an_unknown_argument_is_refused_with_the_usage(tmp_path):
    done, calls, _ = run_script(tmp_path, "--dryrun")
    assert done.returncode == 2 and calls == []
    assert done.stderr.strip() == "usage: benchmarks/device_check.sh [--dry-run]  (got: --dryrun)"


def options_passed(text: str) -> dict[str, set[str]]:
    """Per benchmark script, the long options of every command that runs it, with the arrays
    it expands (``"${PAPER[@]}"``, every definition of them: the dry run's and the GPU's)."""
    arrays: dict[str, set[str]] = {}
    for name, body in re.findall(r"^\s*(\w+)=\(([^)]*)\)", text, flags=re.M):
        arrays.setdefault(name, set()).update(re.findall(r"--[a-z][a-z-]*", body))
    used: dict[str, set[str]] = {}
    for line in text.replace("\\\n", " ").splitlines():
        for bench in re.findall(r"benchmarks/(bench_\w+\.py)", line):
            opts = used.setdefault(bench, set())
            opts.update(re.findall(r"(?<![\w-])--[a-z][a-z-]*", line))
            for name in re.findall(r"\$\{(\w+)\[@\]\}", line):
                opts.update(arrays.get(name, set()))
    return used


def test_every_option_the_device_check_passes_is_a_benchmark_option():
    used = options_passed(SCRIPT.read_text())
    assert {"bench_paper.py", "bench_topomap.py", "bench_store.py"} <= set(used)
    assert {"--device", "--engine", "--method", "--batch-size"} <= used["bench_paper.py"]
    for bench, opts in used.items():
        done = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / bench), "--help"],
            capture_output=True,
            text=True,
            check=True,
        )
        known = set(re.findall(r"--[a-z][a-z-]*", done.stdout))
        assert opts <= known, f"{bench} has no option {sorted(opts - known)}"
