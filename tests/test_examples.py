"""Every script in examples/ runs at its tiny size and prints what it is about."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))

#: a line each script must print (its result, not a fixed number)
EXPECTED = {
    "bptt_deep_r.py": "mean test accuracy",
    "custom_neuron.py": "same spike trains:",
    "custom_rule.py": "rule calls, totals",
    "eprop_deep_r.py": "test accuracy",
    "quickstart_simulation.py": "real-time factor",
    "topographic_map.py": "sigma_aff",
}


def test_every_example_has_an_expected_line():
    assert sorted(p.name for p in EXAMPLES) == sorted(EXPECTED)


def run_example(script: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python script *args`` in ``cwd`` with the repository's ``src`` importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env["MPLBACKEND"] = "Agg"
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_tiny(script, tmp_path):
    proc = run_example(script, "--tiny", cwd=tmp_path)
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout}\n{proc.stderr}"
    assert EXPECTED[script.name] in proc.stdout, proc.stdout


BPTT = ROOT / "examples" / "bptt_deep_r.py"


def test_bptt_example_chooses_l1_on_validation(tmp_path):
    """``--l1 auto`` runs the selection, reports every grid value and trains with the choice."""
    out = tmp_path / "runs.json"
    proc = run_example(BPTT, "--tiny", "--l1", "auto", "--json", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    selection = report["l1_selection"]
    assert report["l1"] == selection["chosen"] in selection["grid"]
    assert len(selection["val_accuracy"]) == len(selection["grid"]) > 1
    assert selection["n_train"] + selection["n_validation"] == 80  # the tiny training set
    assert f"chosen L1 {selection['chosen']:g}" in proc.stdout


def test_bptt_example_rejects_a_negative_l1(tmp_path):
    proc = run_example(BPTT, "--l1", "-1", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--l1 must be 'auto' or a number >= 0" in proc.stderr


def test_bptt_example_runs_only_the_kinds_asked_for(tmp_path):
    out = tmp_path / "runs.json"
    args = ("--tiny", "--kinds", "static", "--seeds", "0", "1", "--json", str(out))
    proc = run_example(BPTT, *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())["results"]
    assert list(results) == ["static"]
    assert [r["seed"] for r in results["static"]] == [0, 1]
