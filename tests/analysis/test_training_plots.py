"""Figures of the sparse-classifier experiment: PNGs that read back, in-degree, bad input."""

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from neurowire.analysis.training import (
    connectivity_snapshot,
    in_degree,
    plot_accuracy_history,
    plot_connectivity_histograms,
    plot_rewiring_proportion,
)


def _read_png(path):
    assert path.is_file() and path.stat().st_size > 1000
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100 and img.shape[2] in (3, 4)
    return img


def _snapshot(rng, n_pre=20, n_post=10, n_syn=60, scale=1.0):
    pre = rng.integers(0, n_pre, n_syn)
    post = rng.integers(0, n_post, n_syn)
    return connectivity_snapshot(pre, post, rng.normal(0, scale, n_syn), n_pre, n_post)


def test_plot_accuracy_history(tmp_path):
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
    _read_png(out)
    # accuracies already in %
    _read_png(plot_accuracy_history({"dense": [{"accuracy_train": 93.0}]}, tmp_path / "pc.png"))


def test_plot_accuracy_history_bad_input(tmp_path):
    with pytest.raises(ValueError, match="accuracy_train"):
        plot_accuracy_history({"dense": [{"accuracy_test": 0.5}]}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="at least one"):
        plot_accuracy_history({}, tmp_path / "x.png")


def test_plot_rewiring_proportion(tmp_path):
    steps = np.arange(50)
    calls = {
        "input": {"step": steps, "removed": np.full(50, 3), "failed": np.ones(50, np.int64)},
        "recurrent": {"step": steps, "removed": np.linspace(10, 0, 50).astype(np.int64)},
    }
    nominal = {"input": 1000, "recurrent": 400}
    out = plot_rewiring_proportion(
        calls, nominal, tmp_path / "rw.png", labels={"input": "input → hidden"}
    )
    _read_png(out)
    # values spanning > two decades, with zeros: log axis
    calls["recurrent"]["removed"] = np.where(steps % 2, 0, 400)
    _read_png(plot_rewiring_proportion(calls, nominal, tmp_path / "rw_log.png"))


def test_plot_rewiring_proportion_empty(tmp_path):
    empty = {"step": np.zeros(0, np.int64), "removed": np.zeros(0, np.int64)}
    _read_png(plot_rewiring_proportion({"input": empty}, {"input": 100}, tmp_path / "e1.png"))
    _read_png(plot_rewiring_proportion({}, {}, tmp_path / "e2.png"))


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


def test_plot_connectivity_histograms(tmp_path):
    rng = np.random.default_rng(0)
    before = {"input": _snapshot(rng), "recurrent": _snapshot(rng, 10, 10, 30)}
    after = {"input": _snapshot(rng, scale=2.0), "recurrent": _snapshot(rng, 10, 10, 0)}
    _read_png(plot_connectivity_histograms(before, after, tmp_path / "hist.png"))


def test_plot_connectivity_histograms_bad_input(tmp_path):
    rng = np.random.default_rng(1)
    snap = _snapshot(rng)
    with pytest.raises(ValueError, match="same projections"):
        plot_connectivity_histograms({"input": snap}, {"recurrent": snap}, tmp_path / "x.png")
    bad = dict(snap, weight=snap["weight"][:-1])
    with pytest.raises(ValueError, match="equal lengths"):
        plot_connectivity_histograms({"input": snap}, {"input": bad}, tmp_path / "x.png")
