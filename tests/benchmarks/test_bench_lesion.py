"""``benchmarks/bench_lesion.py``: the statistics over seeds, its table, and the script end to end
at a tiny size (two seeds, three epochs, twelve hidden neurons)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import matplotlib.image as mpimg
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_lesion.py"
TINY = [
    "--dataset",
    "patterns",
    "--hidden",
    "12",
    "--input-density",
    "0.4",
    "--recurrent-density",
    "0.4",
    "--batch-size",
    "16",
    "--lr",
    "0.02",
    "--l1",
    "0.5",
    "--epochs",
    "3",
]


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_lesion", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _run(accuracy, after, back):
    return {
        "history": [{"accuracy_test": a} for a in accuracy],
        "lesion": {
            "accuracy_before": accuracy[1],
            "accuracy_after": after,
            "accuracy_final": accuracy[-1],
            "drop_points": 100 * (accuracy[1] - after),
            "epochs_to_recover": back,
            "synapses_before": {"input": 10},
            "removed": {"input": 5},
            "synapses_final": {"input": 10},
        },
    }


def test_entry_gives_mean_range_and_recoveries_over_seeds():
    bench = load()
    runs = [_run([0.5, 0.6, 0.7], 0.2, 1), _run([0.5, 0.8, 0.7], 0.4, "not recovered")]
    e = bench.entry(runs)
    assert e["accuracy_before"] == {
        "mean": pytest.approx(0.7),
        "min": 0.6,
        "max": 0.8,
        "values": [0.6, 0.8],
    }
    assert e["accuracy_after"]["mean"] == pytest.approx(0.3)
    assert e["epochs_to_recover"] == [1, "not recovered"] and e["recovered_seeds"] == 1
    assert e["epochs_to_recover_of_recovered"]["values"] == [1]
    assert e["accuracy_test_per_epoch"] == [[0.5, 0.6, 0.7], [0.5, 0.8, 0.7]]
    assert e["l1"] is None
    none_back = bench.entry([_run([0.5, 0.6, 0.7], 0.2, "not recovered")])
    assert none_back["recovered_seeds"] == 0 and none_back["epochs_to_recover_of_recovered"] is None


def test_each_seed_is_one_compare_run_with_the_lesion_in_a_fresh_process(monkeypatch):
    bench = load()
    seen = []

    def run(cmd, check, stdout):
        seen.append(cmd)
        out = Path(cmd[cmd.index("--out") + 1])
        (out / "summary.json").write_text(json.dumps({"seed": cmd[cmd.index("--seed") + 1]}))

    monkeypatch.setattr(bench.subprocess, "run", run)
    assert bench.classify(3, "4:0.25", ["--epochs", "6"]) == {"seed": "3"}
    (cmd,) = seen
    assert cmd[:4] == [sys.executable, "-m", "neurowire.cli", "classify"]
    assert cmd[cmd.index("--lesion") + 1] == "4:0.25" and "--compare" in cmd
    assert cmd[-2:] == ["--epochs", "6"]


def test_the_table_and_the_figure_of_several_seeds(tmp_path, capsys):
    bench = load()
    summaries = [
        {"configurations": {"static": _run([0.5, 0.6, 0.7], 0.2, 1)}},
        {"configurations": {"static": _run([0.5, 0.8, 0.7], 0.4, "not recovered")}},
    ]
    result = {
        "seeds": [0, 1],
        "lesion": {"epoch": 2, "fraction": 0.5},
        "configurations": {
            "static": bench.entry([s["configurations"]["static"] for s in summaries])
        },
    }
    text = bench.table(result)
    assert "50 % of the input and recurrent synapses cut after epoch 2" in text
    assert "70.0 [60.0, 80.0] %" in text and "1, not recovered" in text
    path = bench.figure(summaries, 2, 0.5, tmp_path / "fig.png")
    img = mpimg.imread(path)
    assert img.shape[:2] == (450, 700) and img[..., :3].std() > 0.01


@pytest.mark.slow
def test_the_script_writes_its_json_and_figure_at_a_tiny_size(tmp_path, capsys):
    out = tmp_path / "lesion.json"
    result = load().main(["--seeds", "0", "1", "--lesion", "2:0.5", "--out", str(out), "--", *TINY])
    on_disk = json.loads(out.read_text())
    assert on_disk["complete"] and on_disk["seeds"] == [0, 1]
    assert on_disk["lesion"] == {"epoch": 2, "fraction": 0.5, "tolerance_points": 1.0}
    assert list(on_disk["configurations"]) == ["dense", "static", "deep_r"]
    for name, c in on_disk["configurations"].items():
        assert len(c["accuracy_before"]["values"]) == 2
        assert (
            c["accuracy_before"]["min"]
            <= c["accuracy_before"]["mean"]
            <= c["accuracy_before"]["max"]
        )
        assert [len(a) for a in c["accuracy_test_per_epoch"]] == [3, 3]
        assert [a[1] for a in c["accuracy_test_per_epoch"]] == c["accuracy_before"]["values"]
        removed = c["removed"][0]
        final = c["synapses_final"][0]
        assert (final == c["synapses_before"][0]) == (name == "deep_r"), name
        assert all(removed[p] == round(0.5 * c["synapses_before"][0][p]) for p in removed)
    assert on_disk == json.loads(json.dumps(result))
    img = mpimg.imread(out.with_suffix(".png"))
    assert img.shape[:2] == (450, 700) and img[..., :3].std() > 0.01
    printed = capsys.readouterr().out
    assert "mean [min, max] over 2 seeds" in printed and "deep_r" in printed
