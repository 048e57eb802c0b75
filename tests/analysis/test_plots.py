"""Every plot function draws what it should (panels, titles, labels, colour bars, data) and
writes a PNG of the figure's size that is not blank (small synthetic data)."""

import matplotlib.image as mpimg
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
from neurowire.analysis.plots import timing_fractions

GRID = (8, 8)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path, fig):
    """``path`` is a PNG of ``fig`` at 100 dpi with something drawn on it."""
    assert path.read_bytes()[:8] == PNG_MAGIC
    img = mpimg.imread(path)
    width, height = fig.get_size_inches() * 100
    assert img.shape[:2] == (round(height), round(width))
    assert img[..., :3].std() > 0.01  # not one colour
    return True


def _colorbar_labels(fig):
    """The label of every colour bar of ``fig``; every image's colours must be on a colour bar
    (its own, or that of an image with the same colour map and scale)."""
    bars = [ax for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]
    scales = {
        (cb.mappable.cmap.name, *cb.mappable.get_clim()) for cb in (a._colorbar for a in bars)
    }
    for ax in fig.axes:
        for im in ax.images:
            key = (im.cmap.name, *im.get_clim())
            assert key in scales, f"the image in {ax.get_title()!r} has no colour bar"
    labels = []
    for ax in bars:
        cb = ax._colorbar
        labels.append(ax.get_ylabel() if cb.orientation == "vertical" else ax.get_xlabel())
    return labels


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
    fig = plot_displacement_maps(a, b, tmp_path / "disp.png", title="src->tgt", weight_unit="µS")
    assert fig is not None and _is_png(tmp_path / "disp.png", fig)
    assert _colorbar_labels(fig) == [
        "connection probability (fraction of pairs)",
        "mean weight per synapse [µS]",
    ]


def test_plot_connectivity_evolution(tmp_path, timeline_and_log):
    tl, log = timeline_and_log
    path = tmp_path / "sub" / "evolution.png"
    fig = plot_connectivity_evolution(
        tl, log, 1000.0, path, sigma_form=2.5, expected_degree=6.28, weight_unit="µS"
    )
    assert _is_png(path, fig)
    assert _colorbar_labels(fig) == [
        "eliminations per bin [count]",
        "formations per bin [count]",
        "connection probability (fraction of pairs)",
        "mean weight per synapse [µS]",
    ]
    # also from the arrays and an empty log
    empty = {k: v[:0] for k, v in log.items()}
    fig = plot_connectivity_evolution(tl.arrays(), empty, 1000.0, tmp_path / "empty.png")
    assert _is_png(tmp_path / "empty.png", fig)


def test_figures_of_a_one_step_run(tmp_path):
    # one snapshot, no events, 0.1 ms of model time: valid figures, every colour bar labelled
    tl = ConnectivityTimeline(GRID, feedforward=True, name="ff")
    pre, post = bamford_initial_connectivity(GRID, k=4, sigma=1.5, rng=0)
    tl.add(0.0, pre, post, np.full(pre.size, 0.2))
    empty = {
        "t_ms": np.zeros(0),
        "pre": np.zeros(0, np.int64),
        "post": np.zeros(0, np.int64),
        "kind": np.zeros(0, np.int8),
        "distance": np.zeros(0, np.float32),
    }
    fig = plot_connectivity_evolution(tl, empty, 0.1, tmp_path / "evolution.png")
    assert _is_png(tmp_path / "evolution.png", fig)
    labels = _colorbar_labels(fig)
    assert len(labels) == 4 and all(labels)
    assert "mean weight per synapse" in labels  # no unit given: none shown
    fig = plot_displacement_maps(tl.initial_maps, tl.final_maps, tmp_path / "disp.png")
    assert _is_png(tmp_path / "disp.png", fig) and all(_colorbar_labels(fig))


def test_plot_map_quality(tmp_path, timeline_and_log):
    tl, _ = timeline_and_log
    fig = plot_map_quality(tl, tmp_path / "quality.png")
    assert _is_png(tmp_path / "quality.png", fig)
    a = tl.arrays()
    assert [ax.get_title() for ax in fig.axes] == ["AD", "σ_aff"]
    for ax, key, reference in zip(fig.axes, ("ad", "sigma_aff"), (0.82, 2.36), strict=True):
        assert ax.get_xlabel() == "time [s]" and ax.get_ylabel().endswith("[grid units]")
        conn, weight, ref = ax.get_lines()
        np.testing.assert_allclose(conn.get_xdata(), a["t_ms"] / 1000.0)
        np.testing.assert_allclose(conn.get_ydata(), a[f"{key}_conn"])
        np.testing.assert_allclose(weight.get_ydata(), a[f"{key}_weight"])
        assert list(ref.get_ydata()) == [reference, reference]


def test_plot_timing_breakdown(tmp_path):
    timers = {"compile": 0.0, "neurons": 1.5, "synapses": 2.0, "stdp": 0.7, "rewiring": 3.1}
    fig = plot_timing_breakdown(timers, tmp_path / "timing.png", model_s=10.0)
    assert _is_png(tmp_path / "timing.png", fig)
    assert _colorbar_labels(fig) == []
    fractions = timing_fractions(timers)
    assert fractions["rewiring"] == pytest.approx(3.1 / 7.3) and fractions["compile"] == 0.0
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == [f"{k}: {v:.3g} s ({100 * fractions[k]:.1f} %)" for k, v in timers.items()] + [
        "real time: 10 s"
    ]
    pie_labels = [t.get_text() for t in fig.axes[1].texts]
    assert "compile" not in pie_labels and "rewiring" in pie_labels  # zeros stay out of the pie
    assert f"{100 * fractions['rewiring']:.1f}%" in pie_labels
    assert timing_fractions({"a": 0.0}) == {"a": 0.0}
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
    fig = plot_scaling(results, tmp_path / "scaling.png")
    assert _is_png(tmp_path / "scaling.png", fig)
    ax_t, ax_r = fig.axes
    assert ax_t.get_title() == "time by component" and ax_t.get_xlabel() == "neurons per layer"
    sizes = np.array([256, 1024, 2304])
    mean_rtf = 0.1 * sizes / 256 + 0.005  # the mean over seeds 0 and 1
    total = next(c for c in ax_t.containers if c.get_label() == "total").lines[0]
    np.testing.assert_allclose(np.asarray(total.get_xdata(), float), sizes)
    np.testing.assert_allclose(np.asarray(total.get_ydata(), float), 60.0 * mean_rtf)
    ours = next(c for c in ax_r.containers if c.get_label() == "neurowire").lines[0]
    np.testing.assert_allclose(np.asarray(ours.get_ydata(), float), mean_rtf)
    with pytest.raises(ValueError, match=r"results\[0\] lacks"):
        plot_scaling([{"neurons": 256}], tmp_path / "bad.png")
