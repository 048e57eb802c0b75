"""The figures of homeostatic structural plasticity: mean and SD over runs, what each panel
shows, and clear errors for curves that do not fit together."""

import matplotlib.image as mpimg
import numpy as np
import pytest

from neurowire.analysis import curve_bands, plot_lesion_recovery, plot_msp_curves

T_MS = [1000.0, 2000.0, 3000.0]


def run(scale: float) -> dict[str, list[float]]:
    out = {"t_ms": T_MS}
    for key in ("mean_ca_e", "mean_ca_i", "total_connections_e", "total_connections_i"):
        out[key] = [scale * k for k in (1.0, 2.0, 4.0)]
    return out


def test_curve_bands_are_the_mean_and_sample_sd_at_every_time():
    band = curve_bands([run(1.0), run(2.0), run(3.0)], "mean_ca_i")
    assert band["t_ms"].tolist() == T_MS
    assert band["mean"] == pytest.approx([2.0, 4.0, 8.0])
    assert band["sd"] == pytest.approx([1.0, 2.0, 4.0])
    assert curve_bands([run(1.0)], "mean_ca_i")["sd"].tolist() == [0.0, 0.0, 0.0]


def test_curve_bands_refuse_runs_that_do_not_fit_together():
    other = run(1.0) | {"t_ms": [1000.0, 2000.0, 5000.0]}
    with pytest.raises(ValueError, match="run 1 records at other times"):
        curve_bands([run(1.0), other], "mean_ca_e")
    short = run(1.0) | {"mean_ca_e": [1.0]}
    with pytest.raises(ValueError, match="run 0: 'mean_ca_e' has 1 values for 3 record times"):
        curve_bands([short], "mean_ca_e")
    with pytest.raises(ValueError, match="at least one run"):
        curve_bands([], "mean_ca_e")


def test_msp_curves_draw_every_group_with_its_band_and_the_targets(tmp_path):
    path = tmp_path / "msp.png"
    fig = plot_msp_curves(
        {"NEST": [run(1.0), run(2.0)], "neurowire": [run(1.5)]}, path, targets={"E": 0.05}
    )
    ylabels = [ax.get_ylabel() for ax in fig.axes]
    assert ylabels == [
        "mean calcium of E",
        "mean calcium of I",
        "connections from E (synapses)",
        "connections from I (synapses)",
    ]
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["NEST (mean +- SD, 2 runs)", "neurowire", "target 0.05"]
    assert np.allclose(fig.axes[1].lines[1].get_ydata(), [1.5, 3.0, 6.0])
    assert len(fig.axes[1].collections) == 1  # one SD band: NEST's
    img = mpimg.imread(path)
    assert img.shape[:2] == (700, 1100) and img[..., :3].std() > 0.01


def test_lesion_recovery_draws_lesioned_solid_and_intact_dashed(tmp_path):
    groups = {
        name: {k: [1.0, 0.5, 0.8] for k in ("ca", "rate_hz", "in_ex", "in_in")}
        for name in ("E lesioned", "E intact", "I lesioned")
    }
    fig = plot_lesion_recovery(T_MS, groups, 1000.0, tmp_path / "l.png", targets={"E": 0.05})
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    assert lines["E lesioned"].get_linestyle() == "-"
    assert lines["E intact"].get_linestyle() == "--"
    assert lines["E lesioned"].get_color() == lines["E intact"].get_color()
    assert lines["I lesioned"].get_color() != lines["E lesioned"].get_color()
    assert "E target" in lines and "lesion" in lines
    assert fig.axes[1].get_ylabel() == "mean firing rate [Hz]"
    assert mpimg.imread(tmp_path / "l.png")[..., :3].std() > 0.01
    bad = {"E lesioned": {k: [1.0] for k in ("ca", "rate_hz", "in_ex", "in_in")}}
    with pytest.raises(ValueError, match="group 'E lesioned': 'ca' has 1 values for 3 times"):
        plot_lesion_recovery(T_MS, bad, 1000.0, tmp_path / "bad.png")
