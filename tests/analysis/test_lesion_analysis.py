"""What training restores after a lesion: the recovery count against hand-worked histories, the
summary, the curve with the cut inserted, and the labelled figure (one run, several seeds)."""

import matplotlib.image as mpimg
import numpy as np
import pytest

from neurowire.analysis import lesion as lesion_analysis
from neurowire.analysis.lesion import (
    NOT_RECOVERED,
    lesion_curve,
    lesion_recovery,
    lesion_summary,
    plot_lesion_accuracy,
)

ACC = [0.50, 0.70, 0.75, 0.60, 0.72, 0.74, 0.80]  # test accuracy after epochs 1..7


@pytest.mark.parametrize(
    ("accuracy", "epoch", "after", "expected"),
    [
        (ACC, 3, 0.40, 3),  # before 0.75: epoch 4 (0.60) and 5 (0.72) are short, 6 (0.74) is in
        (ACC, 3, 0.745, 0),  # already within one point just after the cut
        (ACC, 3, 0.74, 0),  # exactly one point below counts (0.75 - 0.01, up to rounding)
        (ACC, 2, 0.10, 1),  # before 0.70: the next epoch (0.75) is above
        (ACC, 6, 0.50, 1),
        ([0.9, 0.8, 0.7, 0.85], 1, 0.5, None),  # never back above 0.89
        ([0.9, 0.95], 2, 0.1, None),  # cut after the last recorded epoch
    ],
)
def test_epochs_to_recover(accuracy, epoch, after, expected):
    assert lesion_recovery(accuracy, epoch, after) == expected


def test_the_tolerance_is_in_fractions():
    assert lesion_recovery(ACC, 3, 0.40, tolerance=0.2) == 1  # 0.60 >= 0.55
    assert lesion_recovery(ACC, 3, 0.40, tolerance=0.0) == 4  # 0.80 >= 0.75


def test_summary_of_one_run():
    s = lesion_summary(ACC, 3, 0.40)
    assert s == {
        "accuracy_before": 0.75,
        "accuracy_after": 0.40,
        "accuracy_final": 0.80,
        "drop_points": pytest.approx(35.0),
        "epochs_to_recover": 3,
        "tolerance_points": 1.0,
    }
    assert lesion_summary([0.9, 0.5], 1, 0.2)["epochs_to_recover"] == NOT_RECOVERED


def test_the_curve_drops_vertically_at_the_cut():
    x, y = lesion_curve(ACC, 3, 0.40)
    assert list(x) == [1, 2, 3, 3, 4, 5, 6, 7]
    assert list(y) == [0.50, 0.70, 0.75, 0.40, 0.60, 0.72, 0.74, 0.80]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: lesion_recovery(ACC, 0, 0.5), ValueError, r"epoch must be in \[1, 7\]"),
        (lambda: lesion_recovery(ACC, 8, 0.5), ValueError, "got 8"),
        (lambda: lesion_recovery(ACC, 2.0, 0.5), TypeError, "epoch must be an int"),
        (lambda: lesion_recovery([[0.5]], 1, 0.5), ValueError, "one value per epoch"),
        (lambda: plot_lesion_accuracy({}, 1, 0.5, "x.png"), ValueError, "at least one run"),
    ],
)
def test_bad_input_is_refused(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.fixture
def drawn(monkeypatch):
    """Title, labels and lines of every figure saved during the test (read when saved)."""
    figures = []
    real = lesion_analysis.save_figure

    def record(fig, path):
        (ax,) = fig.axes
        figures.append(
            {
                "title": ax.get_title(),
                "labels": (ax.get_xlabel(), ax.get_ylabel()),
                "lines": {ln.get_label(): (ln.get_xdata(), ln.get_ydata()) for ln in ax.lines},
                "shaded": len(ax.collections),
                "legend": [t.get_text() for t in ax.get_legend().get_texts()],
            }
        )
        return real(fig, path)

    monkeypatch.setattr(lesion_analysis, "save_figure", record)
    return figures


def test_one_run_per_configuration(tmp_path, drawn):
    runs = {
        "dense": [{"accuracy": ACC, "after": 0.4}],
        "static": [{"accuracy": [0.3, 0.4, 0.5, 0.2, 0.3, 0.3, 0.4], "after": 0.1}],
    }
    out = plot_lesion_accuracy(runs, 3, 0.5, tmp_path / "lesion.png")
    img = mpimg.imread(out)
    assert img.shape[:2] == (450, 700) and img[..., :3].std() > 0.01
    (fig,) = drawn
    assert fig["title"] == "test accuracy, 50 % of synapses cut after epoch 3"
    assert fig["labels"] == ("epoch", "test accuracy [%]")
    assert fig["legend"] == ["dense", "static", "lesion: 50 % cut"]
    x, y = fig["lines"]["dense"]
    assert list(x) == [1, 2, 3, 3, 4, 5, 6, 7]
    assert np.allclose(y, [50, 70, 75, 40, 60, 72, 74, 80])
    assert list(fig["lines"]["lesion: 50 % cut"][0]) == [3, 3]
    assert fig["shaded"] == 0


def test_several_seeds_draw_the_mean_and_shade_the_range(tmp_path, drawn):
    runs = {
        "deep_r": [{"accuracy": [0.5, 0.6], "after": 0.2}, {"accuracy": [0.7, 0.8], "after": 0.4}]
    }
    plot_lesion_accuracy(runs, 1, 0.25, tmp_path / "lesion.png")
    (fig,) = drawn
    assert "range over 2 seeds" in fig["title"] and "25 % of synapses" in fig["title"]
    assert np.allclose(fig["lines"]["deep_r"][1], [60, 30, 70])
    assert fig["shaded"] == 1
    with pytest.raises(ValueError, match="different numbers of epochs"):
        bad = {
            "deep_r": [{"accuracy": [0.5, 0.6], "after": 0.2}, {"accuracy": [0.7], "after": 0.4}]
        }
        plot_lesion_accuracy(bad, 1, 0.25, tmp_path / "bad.png")
