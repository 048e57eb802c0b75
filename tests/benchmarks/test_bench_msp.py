"""``benchmarks/bench_msp.py``: the statistics over seeds, the comparison with NEST, the order
of the runs (NEST and neurowire alternating, with stand-in processes), and the script end to end
at a tiny duration without NEST."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import matplotlib.image as mpimg
import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_msp.py"
#: record times [ms] of the synthetic runs: the two check times, then three later ones
T_MS = [50000.0, 100000.0, 110000.0, 120000.0, 130000.0]


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_msp", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def curves(scale: float, t_ms=T_MS) -> dict[str, list[float]]:
    """Synthetic curves: every one ``scale * (1, 2, 3, ...)``."""
    base = np.arange(1, len(t_ms) + 1, dtype=np.float64) * scale
    out = {"t_ms": list(t_ms)}
    for key in ("mean_ca_e", "mean_ca_i", "total_connections_e", "total_connections_i"):
        out[key] = base.tolist()
    for key in ("e_to_e", "e_to_i", "i_to_e", "i_to_i"):
        out[key] = base.tolist()
    return out


def test_bands_are_mean_and_sample_sd_over_seeds():
    bench = load()
    got = bench.bands([{"curves": curves(1.0)}, {"curves": curves(3.0)}])
    assert got["t_ms"] == T_MS
    assert got["mean_ca_e"]["mean"] == pytest.approx([2.0, 4.0, 6.0, 8.0, 10.0])
    assert got["mean_ca_e"]["sd"] == pytest.approx(np.sqrt(2.0) * np.arange(1, 6))
    with pytest.raises(ValueError, match="other times"):
        bench.bands([{"curves": curves(1.0)}, {"curves": curves(1.0, T_MS[:-1] + [1.0])}])


def test_compare_checks_five_percent_at_50_and_100_s_and_the_band_later():
    bench = load()
    nest = bench.bands([{"curves": curves(1.0)}, {"curves": curves(1.2)}])  # SD 0.1414 k
    close = bench.bands([{"curves": curves(1.14)}])  # 3.6 % above NEST's mean 1.1 k
    result = bench.compare(nest, close)
    assert result["passed"] is True
    m = result["measures"]["mean_ca_e"]
    assert m["at_s"]["50"]["within"] and m["at_s"]["50"]["rel_diff"] == pytest.approx(0.04 / 1.1)
    assert m["band_times"] == 3 and m["outside_band_s"] == []
    far = bench.bands([{"curves": curves(1.2)}])  # 9 % off; 0.1 k from the mean: in the band
    result = bench.compare(nest, far)
    assert result["passed"] is False
    assert not result["measures"]["total_connections_i"]["at_s"]["100"]["within"]
    assert result["measures"]["total_connections_i"]["outside_band_s"] == []
    late = curves(1.14)
    late["mean_ca_i"][-1] = 0.0  # outside the band at 130 s only
    result = bench.compare(nest, bench.bands([{"curves": late}]))
    assert result["passed"] is False
    assert result["measures"]["mean_ca_i"]["outside_band_s"] == [130.0]
    assert result["measures"]["mean_ca_e"]["outside_band_s"] == []


def test_compare_says_nothing_for_runs_too_short_to_check():
    bench = load()
    short = [1000.0, 2000.0]
    nest = bench.bands([{"curves": curves(1.0, short)}])
    result = bench.compare(nest, bench.bands([{"curves": curves(5.0, short)}]))
    assert result["passed"] is None
    assert result["measures"]["mean_ca_e"]["at_s"]["50"] == "not recorded"


def test_nest_and_neurowire_alternate_seed_by_seed(tmp_path, monkeypatch, capsys):
    """Stand-in processes write what the two scripts write; the runs go NEST, neurowire, NEST,
    neurowire, with each simulator's flags, and the comparison and figure follow."""
    bench = load()
    order = []

    def fake(command, env=None):
        args = list(command)
        out = Path(args[args.index("--out") + 1])
        seed = int(args[args.index("--seeds" if "--seeds" in args else "--seed") + 1])
        if args[1] == str(bench.NEST_SCRIPT):
            order.append(("nest", seed, args[args.index("--t-sim") + 1]))
            run = {"build_s": 1.0, "loop_s": 2.0, "real_time_factor": 0.5}
            run["recordings"] = curves(1.0 + 0.2 * seed)
            out.write_text(json.dumps({"nest_version": "3.10.0", "runs": [run]}))
        else:
            assert args[1:4] == ["-m", "neurowire", "msp"] and "src" in env["PYTHONPATH"]
            order.append(("neurowire", seed, args[args.index("--duration") + 1]))
            out.mkdir()
            summary = {"engine": "native", "build_s": 1.0, "loop_s": 1.5, "compile_s": 0.0}
            summary.update(real_time_factor=0.4, final_synapses={}, curves=curves(1.32))
            (out / "summary.json").write_text(json.dumps(summary))
        return 1.0

    monkeypatch.setattr(bench, "timed", fake)
    out = tmp_path / "bench.json"
    argv = ["--seeds", "1", "2", "--duration", "130", "--nest-python", "nest-python"]
    result = bench.main([*argv, "--out", str(out)])
    assert order == [
        ("nest", 1, "130000"),
        ("neurowire", 1, "130"),
        ("nest", 2, "130000"),
        ("neurowire", 2, "130"),
    ]
    saved = json.loads(out.read_text())
    assert saved["comparison"]["passed"] is True and result["comparison"]["passed"] is True
    assert saved["nest"]["bands"]["mean_ca_e"]["mean"][0] == pytest.approx(1.3)
    assert [r["seed"] for r in saved["neurowire"]["runs"]] == [1, 2]
    assert all(len(r["load_before"]) == 3 for r in saved["nest"]["runs"])
    assert "comparison: passed" in capsys.readouterr().out
    img = mpimg.imread(out.with_suffix(".png"))
    assert img.shape[:2] == (700, 1100) and img[..., :3].std() > 0.01


def test_nest_needs_its_record_and_update_intervals(tmp_path, capsys):
    bench = load()
    with pytest.raises(SystemExit) as exc:
        bench.main(["--nest-python", "x", "--record-every", "5", "--out", str(tmp_path / "b")])
    assert exc.value.code == 2
    assert "records every 1000 ms" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_without_nest_the_script_runs_neurowire_alone_at_a_tiny_duration(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("NEST_PYTHON", raising=False)
    bench = load()
    out = tmp_path / "bench.json"
    tiny = ["--duration", "0.02", "--record-every", "5", "--update-interval", "10"]
    tiny += ["--engine", "torch"]
    bench.main(["--seeds", "1", "2", *tiny, "--out", str(out)])
    captured = capsys.readouterr()
    assert "NEST_PYTHON is unset: the NEST runs are skipped" in captured.err
    saved = json.loads(out.read_text())
    assert "NEST_PYTHON is unset" in saved["nest"]["skipped"]
    assert saved["comparison"] is None
    runs = saved["neurowire"]["runs"]
    assert [r["seed"] for r in runs] == [1, 2]
    assert all(r["process_s"] >= r["loop_s"] > 0 and r["engine"] == "torch" for r in runs)
    bands = saved["neurowire"]["bands"]
    assert bands["t_ms"] == [5.0, 10.0, 15.0, 20.0]
    assert len(bands["mean_ca_e"]["mean"]) == len(bands["mean_ca_e"]["sd"]) == 4
    assert saved["load_start"] is not None and saved["load_end"] is not None
    assert mpimg.imread(out.with_suffix(".png")).shape[:2] == (700, 1100)
