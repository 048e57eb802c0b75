"""Every plot function writes a non-empty PNG (small synthetic data)."""

import numpy as np
import pytest

from neurowire.analysis import (
    ConnectivityTimeline,
    bamford_initial_connectivity,
    displacement_maps,
    plot_connectivity_evolution,
    plot_displacement_maps,
    plot_map_quality,
    plot_scaling,
    plot_timing_breakdown,
)

GRID = (8, 8)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == PNG_MAGIC


@pytest.fixture(scope="module")
def timeline_and_log():
    rng = np.random.default_rng(0)
    tl = ConnectivityTimeline(GRID, feedforward=True, name="src->tgt")
    for t in range(0, 1001, 250):
        pre, post = bamford_initial_connectivity(GRID, k=4, sigma=1.5, rng=t)
        tl.add(float(t), pre, post, rng.uniform(0, 0.2, pre.size))
    n = 200
    log = {
        "t_ms": np.sort(rng.uniform(0, 1000, n)),
        "pre": rng.integers(0, 64, n),
        "post": rng.integers(0, 64, n),
        "kind": rng.choice(np.array([-1, 1], dtype=np.int8), n),
        "distance": rng.uniform(0, 5.6, n).astype(np.float32),
    }
    return tl, log


def test_plot_displacement_maps(tmp_path):
    a = displacement_maps(*bamford_initial_connectivity(GRID, k=4, rng=0), GRID, np.full(256, 0.2))
    b = displacement_maps(*bamford_initial_connectivity(GRID, k=4, rng=1), GRID, np.full(256, 0.1))
    fig = plot_displacement_maps(a, b, tmp_path / "disp.png", title="src->tgt")
    assert fig is not None and _is_png(tmp_path / "disp.png")


def test_plot_connectivity_evolution(tmp_path, timeline_and_log):
    tl, log = timeline_and_log
    path = tmp_path / "sub" / "evolution.png"
    plot_connectivity_evolution(tl, log, 1000.0, path, sigma_form=2.5, expected_degree=6.28)
    assert _is_png(path)
    # also from the arrays and an empty log
    empty = {k: v[:0] for k, v in log.items()}
    plot_connectivity_evolution(tl.arrays(), empty, 1000.0, tmp_path / "empty.png")
    assert _is_png(tmp_path / "empty.png")


def test_plot_map_quality(tmp_path, timeline_and_log):
    tl, _ = timeline_and_log
    plot_map_quality(tl, tmp_path / "quality.png")
    assert _is_png(tmp_path / "quality.png")


def test_plot_timing_breakdown(tmp_path):
    timers = {"neurons": 1.5, "synapses": 2.0, "stdp": 0.7, "rewiring": 3.1}
    plot_timing_breakdown(timers, tmp_path / "timing.png", model_s=10.0)
    assert _is_png(tmp_path / "timing.png")
    with pytest.raises(ValueError, match="timers_s"):
        plot_timing_breakdown({"neurons": -1.0}, tmp_path / "bad.png")


def test_plot_scaling(tmp_path):
    results = [
        {
            "neurons": n,
            "real_time_factor": 0.1 * n / 256 + 0.01 * seed,
            "timers_s": {"neurons": 0.5 * n / 256, "rewiring": 0.3 * n / 256},
            "genn_rtf": 0.05 * n / 256,
            "model_s": 60.0,
        }
        for n in (256, 1024, 2304)
        for seed in range(2)
    ]
    plot_scaling(results, tmp_path / "scaling.png")
    assert _is_png(tmp_path / "scaling.png")
    with pytest.raises(ValueError, match=r"results\[0\] lacks"):
        plot_scaling([{"neurons": 256}], tmp_path / "bad.png")
