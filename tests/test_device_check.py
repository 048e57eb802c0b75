"""``benchmarks/device_check.sh`` parses, and every benchmark option it passes exists (a typo
there would only show on a lent GPU, where each minute counts)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "device_check.sh"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_device_check_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


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
