"""Figures of the sparse-classifier experiment: what each figure draws (titles, labels, the
plotted data), PNGs that read back at the figure's size and are not blank, in-degree, bad input."""

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from neurowire.analysis import training
from neurowire.analysis.training import (
    connectivity_snapshot,
    in_degree,
    plot_accuracy_history,
    plot_connectivity_histograms,
    plot_rewiring_proportion,
)


def _read_png(path, size_in):
    """The PNG at ``path``: ``size_in`` (width, height) inches at 100 dpi, not one colour."""
    img = mpimg.imread(path)
    assert img.shape[:2] == (round(size_in[1] * 100), round(size_in[0] * 100))
    assert img[..., :3].std() > 0.01  # something is drawn
    return img


def _axes(ax):
    """What an axes shows: title, labels, y scale, lines ``{label: (x, y)}``, step patches
    ``{label: values}``, texts and legend entries."""
    return {
        "title": ax.get_title(),
        "labels": (ax.get_xlabel(), ax.get_ylabel()),
        "yscale": ax.get_yscale(),
        "lines": {ln.get_label(): (ln.get_xdata(), ln.get_ydata()) for ln in ax.get_lines()},
        "stairs": {p.get_label(): p.get_data().values for p in ax.patches},
        "texts": [t.get_text() for t in ax.texts],
        "legend": [t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else [],
    }


@pytest.fixture
def drawn(monkeypatch):
    """The axes of every figure saved during the test, read when it is saved (the plot
    functions clear a figure after saving it)."""
    figures = []
    real = training.save_figure

    def record(fig, path):
        figures.append([_axes(ax) for ax in fig.axes])
        return real(fig, path)

    monkeypatch.setattr(training, "save_figure", record)
    return figures


def _snapshot(rng, n_pre=20, n_post=10, n_syn=60, scale=1.0):
    pre = rng.integers(0, n_pre, n_syn)
    post = rng.integers(0, n_post, n_syn)
    return connectivity_snapshot(pre, post, rng.normal(0, scale, n_syn), n_pre, n_post)


def test_plot_accuracy_history(tmp_path, drawn):
    histories = {
        "dense": [
            {"epoch": e, "accuracy_train": 0.5 + 0.1 * e, "accuracy_test": 0.45 + 0.1 * e}
            for e in (1, 2, 3)
        ],
        "static": [{"accuracy_train": 0.4}, {"accuracy_train": 0.6}],  # epoch from position
        "deep_r": [{"epoch": 1, "accuracy_train": 0.3, "accuracy_val": 0.25}],
    }
    out = plot_accuracy_history(histories, tmp_path / "sub" / "acc.png")
    assert out == tmp_path / "sub" / "acc.png"
    _read_png(out, (7, 4.5))
    (ax,) = drawn[0]
    assert ax["title"] == "accuracy per epoch" and ax["labels"] == ("epoch", "accuracy [%]")
    lines = {k: (list(x), list(np.round(y, 9))) for k, (x, y) in ax["lines"].items()}
    assert lines == {  # fractions drawn in %, epochs from the records or their position
        "dense (train)": ([1, 2, 3], [60, 70, 80]),
        "dense (test)": ([1, 2, 3], [55, 65, 75]),
        "static (train)": ([1, 2], [40, 60]),
        "deep_r (train)": ([1], [30]),
        "deep_r (val)": ([1], [25]),
    }
    assert ax["legend"] == list(lines)
    # accuracies already in %
    _read_png(
        plot_accuracy_history({"dense": [{"accuracy_train": 93.0}]}, tmp_path / "pc.png"), (7, 4.5)
    )
    assert list(drawn[1][0]["lines"]["dense (train)"][1]) == [93.0]


def test_plot_accuracy_history_bad_input(tmp_path):
    with pytest.raises(ValueError, match="accuracy_train"):
        plot_accuracy_history({"dense": [{"accuracy_test": 0.5}]}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="at least one"):
        plot_accuracy_history({}, tmp_path / "x.png")


def test_plot_rewiring_proportion(tmp_path, drawn):
    steps = np.arange(50)
    calls = {
        "input": {"step": steps, "removed": np.full(50, 3), "failed": np.ones(50, np.int64)},
        "recurrent": {"step": steps, "removed": np.linspace(10, 0, 50).astype(np.int64)},
    }
    nominal = {"input": 1000, "recurrent": 400}
    out = plot_rewiring_proportion(
        calls, nominal, tmp_path / "rw.png", labels={"input": "input → hidden"}
    )
    _read_png(out, (7, 4.5))
    (ax,) = drawn[0]
    assert ax["title"] == "synapses rewired per batch" and ax["yscale"] == "linear"
    assert ax["labels"] == ("batch index", "synapses rewired per batch [% of nominal]")
    assert list(ax["lines"]) == ["input → hidden (failed: 50)", "recurrent"]
    x, y = ax["lines"]["input → hidden (failed: 50)"]
    np.testing.assert_array_equal(x, steps)
    np.testing.assert_allclose(y, 3 / 1000 * 100)  # removed / nominal in %
    removed = calls["recurrent"]["removed"]
    np.testing.assert_allclose(ax["lines"]["recurrent"][1], removed / 400 * 100)
    # values spanning > two decades, with zeros: log axis
    calls["recurrent"]["removed"] = np.where(steps % 2, 0, 400)
    _read_png(plot_rewiring_proportion(calls, nominal, tmp_path / "rw_log.png"), (7, 4.5))
    (ax,) = drawn[1]
    assert ax["yscale"] == "log"
    x, y = ax["lines"]["recurrent"]  # the batches without rewiring are left out
    np.testing.assert_array_equal(x, steps[::2])
    np.testing.assert_allclose(y, 100.0)


def test_plot_rewiring_proportion_empty(tmp_path, drawn):
    empty = {"step": np.zeros(0, np.int64), "removed": np.zeros(0, np.int64)}
    path = plot_rewiring_proportion({"input": empty}, {"input": 100}, tmp_path / "e1.png")
    _read_png(path, (7, 4.5))
    _read_png(plot_rewiring_proportion({}, {}, tmp_path / "e2.png"), (7, 4.5))
    for (ax,) in drawn:
        assert ax["texts"] == ["no rewiring"] and ax["lines"] == {}


def test_plot_rewiring_proportion_bad_input(tmp_path):
    with pytest.raises(ValueError, match="differ in length"):
        plot_rewiring_proportion(
            {"a": {"step": np.arange(3), "removed": np.arange(2)}}, {"a": 10}, tmp_path / "x.png"
        )
    with pytest.raises(ValueError, match="nominal lacks"):
        plot_rewiring_proportion(
            {"a": {"step": np.arange(3), "removed": np.arange(3)}}, {}, tmp_path / "x.png"
        )
    with pytest.raises(ValueError, match="> 0"):
        plot_rewiring_proportion(
            {"a": {"step": np.arange(3), "removed": np.arange(3)}}, {"a": 0}, tmp_path / "x.png"
        )


def test_in_degree_and_snapshot():
    assert in_degree(np.array([0, 2, 2, 3]), 5).tolist() == [1, 0, 2, 1, 0]
    assert in_degree(np.zeros(0, np.int64), 3).tolist() == [0, 0, 0]
    snap = connectivity_snapshot(
        torch.tensor([0, 1, 1]), torch.tensor([2, 2, 0]), torch.tensor([0.5, -1.0, 2.0]), 2, 4
    )
    assert isinstance(snap["pre"], np.ndarray) and isinstance(snap["weight"], np.ndarray)
    assert snap["n_pre"] == 2 and snap["n_post"] == 4
    assert in_degree(snap["post"], snap["n_post"]).tolist() == [1, 0, 2, 0]
    with pytest.raises(ValueError, match="equal lengths"):
        connectivity_snapshot(np.arange(3), np.arange(2), np.ones(3), 3, 3)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        in_degree(np.array([0, 3]), 3)


def test_plot_connectivity_histograms(tmp_path, drawn):
    rng = np.random.default_rng(0)
    before = {"input": _snapshot(rng), "recurrent": _snapshot(rng, 10, 10, 30)}
    after = {"input": _snapshot(rng, scale=2.0), "recurrent": _snapshot(rng, 10, 10, 0)}
    _read_png(plot_connectivity_histograms(before, after, tmp_path / "hist.png"), (10, 7))
    (axes,) = drawn
    assert [ax["title"] for ax in axes] == [
        "input: weights",
        "input: in-degree",
        "recurrent: weights",
        "recurrent: in-degree",
    ]
    assert axes[1]["labels"] == ("in-degree [synapses per postsynaptic neuron]", "neurons")
    for r, name in enumerate(before):
        weights, degree = axes[2 * r], axes[2 * r + 1]
        assert weights["labels"] == ("weight", "synapses")
        for when, snap in (("before", before[name]), ("after", after[name])):
            assert weights["stairs"][when].sum() == snap["weight"].size  # every synapse once
            counts = np.bincount(in_degree(snap["post"], snap["n_post"]))
            np.testing.assert_array_equal(degree["stairs"][when][: counts.size], counts)
            assert degree["stairs"][when][counts.size :].sum() == 0


def test_plot_connectivity_histograms_bad_input(tmp_path):
    rng = np.random.default_rng(1)
    snap = _snapshot(rng)
    with pytest.raises(ValueError, match="same projections"):
        plot_connectivity_histograms({"input": snap}, {"recurrent": snap}, tmp_path / "x.png")
    bad = dict(snap, weight=snap["weight"][:-1])
    with pytest.raises(ValueError, match="equal lengths"):
        plot_connectivity_histograms({"input": snap}, {"input": bad}, tmp_path / "x.png")
