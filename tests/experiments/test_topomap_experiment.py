"""The topographic-map experiment: stimulus, variants, outputs and flags."""

import json
import math
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

import neurowire as nw
from neurowire import analysis
from neurowire.analysis import plots
from neurowire.experiments import topomap


def test_stimulus_rates_peak_neighbour_mean_and_tiling():
    rates = topomap.stimulus_rates(16, (3, 5))
    assert rates.max().item() == pytest.approx(157.8)
    assert rates[5 * 16 + 3].item() == pytest.approx(157.8)
    assert rates[5 * 16 + 4].item() == pytest.approx(5 + 152.8 * math.exp(-1 / 8))  # 139.8
    assert rates.mean().item() == pytest.approx(20.0, abs=0.05)
    tiled = topomap.stimulus_rates(32, (3, 5)).view(32, 32)
    block = rates.view(16, 16)
    for by in (0, 16):
        for bx in (0, 16):
            assert torch.allclose(tiled[by : by + 16, bx : bx + 16], block)
    wrapped = topomap.stimulus_rates(16, (0, 0)).view(16, 16)
    assert wrapped[0, 15].item() == pytest.approx(wrapped[0, 1].item())  # torus


def test_genn2025_network_matches_the_published_parameters():
    cfg = topomap.TopomapConfig(scale=2)
    net = topomap.build(cfg)
    ff, lat = net.projections["ff"], net.projections["lat"]
    assert ff.pre.n == 1024 and ff.synapses.capacity == 64
    assert ff.plasticity.a_plus == pytest.approx(0.02) and ff.plasticity.a_minus == pytest.approx(
        0.0075
    )
    assert lat.recurrent and isinstance(ff.psc, nw.ExpCond)
    rules = {r.projection.name: r for r in net.rules}
    assert rules["ff"].every == 10 and rules["ff"].rule.attempts == 40
    assert rules["ff"].rule.p_elim_dep == pytest.approx(1.225)
    assert rules["ff"].rule.p_elim_pot == pytest.approx(0.0068)
    tgt = net.populations["target"].model
    assert (tgt.v_th, tgt.tau_refrac, tgt.v_reset) == (-54.0, 5.0, -70.0)


def test_bamford2010_network_has_shared_fan_in_and_per_step_attempts():
    net = topomap.build(topomap.TopomapConfig(variant="bamford2010"))
    (scheduled,) = net.rules
    assert isinstance(scheduled.rule, nw.SharedFanInRewiring)
    assert scheduled.every == 1 and scheduled.rule.attempts == 1
    assert scheduled.rule.max_fan_in == 32
    fan_in = sum(
        torch.bincount(net.projections[n].synapses.coo()[1], minlength=256) for n in ("ff", "lat")
    )
    assert torch.equal(fan_in, torch.full((256,), 32))


def _spy_timing_figure(monkeypatch):
    """Record the figures ``plot_timing_breakdown`` draws for the experiment."""
    figures = []
    original = analysis.plot_timing_breakdown

    def spy(*args, **kwargs):
        figures.append(original(*args, **kwargs))
        return figures[-1]

    monkeypatch.setattr(analysis, "plot_timing_breakdown", spy)
    return figures


def _legend_labels(fig):
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_run_writes_every_output(tmp_path, monkeypatch):
    figures = _spy_timing_figure(monkeypatch)
    summary = topomap.main(
        ["--duration", "0.3", "--snapshot-every", "100", "--out", str(tmp_path), "--no-progress"]
    )
    saved = json.loads((tmp_path / "summary.json").read_text())
    for key in (
        "real_time_factor",
        "wall_s",
        "model_s",
        "timers_s",
        "formations",
        "eliminations",
        "ad_initial",
        "ad_final",
        "sigma_aff_initial",
        "sigma_aff_final",
    ):
        assert key in saved
    assert saved["model_s"] == pytest.approx(0.3)
    assert saved["formations"] == summary["formations"] > 0
    for name in ("connectivity_initial.npz", "connectivity_final.npz"):
        data = np.load(tmp_path / name)
        assert set(data.files) >= {
            "ff_pre",
            "ff_post",
            "ff_weight",
            "lat_pre",
            "lat_post",
            "lat_weight",
            "grid",
        }
        assert data["ff_pre"].shape == data["ff_weight"].shape
    events = np.load(tmp_path / "events.npz")
    assert (events["ff_kind"] == 1).sum() == saved["per_projection"]["ff"]["added"]
    timeline = np.load(tmp_path / "timeline.npz")
    assert timeline["ff_t_ms"].tolist() == [0.0, 100.0, 200.0, 300.0]
    for fig, size in {  # pixels (height, width): the figures' sizes in inches at 100 dpi
        "displacement_ff.png": (800, 900),
        "displacement_lat.png": (800, 900),
        "evolution_ff.png": (1300, 1100),
        "evolution_lat.png": (1300, 1100),
        "map_quality.png": (400, 1000),
        "timing.png": (400, 1000),
    }.items():
        img = mpimg.imread(tmp_path / fig)
        assert img.shape[:2] == size and img[..., :3].std() > 0.01, fig  # drawn, not blank
    # timing: compile apart from stepping, the same numbers in summary.json and timing.png
    timing = saved["timing"]
    seconds, fractions = timing["seconds"], timing["fractions"]
    assert list(seconds)[:2] == ["compile", "steps"] and list(fractions) == list(seconds)
    assert saved["timers_s"] == seconds and saved["compile_s"] == seconds["compile"]
    # the simulator times compilation apart from stepping; both are there
    assert seconds["steps"] > 0 and seconds["compile"] >= 0
    # time to the first step: construction, then compilation (or numba's cache), then step 1
    assert saved["time_to_first_step_s"] >= saved["build_s"] + saved["compile_s"] > 0
    assert sum(seconds.values()) == pytest.approx(timing["total_s"])
    assert sum(fractions.values()) == pytest.approx(1.0)
    assert saved["wall_s"] == pytest.approx(
        timing["total_s"] - seconds["compile"] - seconds.get("analysis", 0.0)
    )
    (fig,) = figures
    assert _legend_labels(fig)[: len(seconds)] == [
        f"{k}: {v:.3g} s ({100 * fractions[k]:.1f} %)" for k, v in seconds.items()
    ]


def test_timing_breakdown_separates_compile_from_stepping(tmp_path):
    # the simulator's "steps" excludes the numba compilation; "callbacks" has the snapshots
    timers = {"compile": 2.0, "steps": 0.5, "rules": 0.1, "callbacks": 0.3, "inputs": 0.0}
    timing = topomap.timing_breakdown(timers, wall_s=3.0, analysis_s=0.2)
    seconds = timing["seconds"]
    assert seconds == pytest.approx(
        {
            "compile": 2.0,
            "steps": 0.5,
            "rules": 0.1,
            "callbacks": 0.1,
            "analysis": 0.2,
            "other": 0.1,
        }
    )
    assert timing["total_s"] == pytest.approx(3.0)
    assert timing["fractions"] == pytest.approx({k: v / 3.0 for k, v in seconds.items()})
    # the figure shows the same components, seconds and fractions, labelled identically
    fig = analysis.plot_timing_breakdown(seconds, tmp_path / "timing.png", model_s=1.0)
    labels = _legend_labels(fig)
    assert labels[:2] == ["compile: 2 s (66.7 %)", "steps: 0.5 s (16.7 %)"]
    assert [lab.split(":")[0] for lab in labels] == [*seconds, "real time"]
    pie = fig.axes[1]
    assert [t.get_text() for t in pie.texts if t.get_text() in seconds] == list(seconds)
    assert "66.7%" in [t.get_text() for t in pie.texts]
    # no compilation (a warm engine): compile is still reported, as 0
    warm = topomap.timing_breakdown({"steps": 1.0}, wall_s=1.0)
    assert warm["seconds"] == {"compile": 0.0, "steps": 1.0}
    assert warm["fractions"] == {"compile": 0.0, "steps": 1.0}


def test_a_duration_below_one_step_is_refused_up_front(tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        topomap.main(["--duration", "1e-6", "--out", str(out), "--no-progress"])
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--duration must be at least one step dt = 0.1 ms" in lines[0]
    assert not out.exists()
    with pytest.raises(ValueError, match="at least one step"):
        topomap.TopomapConfig(duration_s=0.04e-3)  # rounds to 0 steps
    assert topomap.TopomapConfig(duration_s=0.1e-3).steps == 1


def test_a_one_step_run_gives_a_valid_report(tmp_path, monkeypatch):
    # one step, one snapshot (t = 0), no rewiring; figures built but not rendered (kept fast:
    # test_plots renders them from so few records)
    built = []

    def save(fig, path):
        built.append(Path(path).name)
        Path(path).write_bytes(b"")
        return fig

    monkeypatch.setattr(plots, "_save", save)
    argv = ["--duration", "1e-4", "--engine", "torch", "--out", str(tmp_path), "--no-progress"]
    summary = topomap.main(argv)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["model_s"] == pytest.approx(1e-4) and saved["formations"] == 0
    assert math.isfinite(saved["real_time_factor"]) and saved["real_time_factor"] > 0
    assert summary["timing"]["seconds"]["compile"] == 0.0  # the torch engine compiles nothing
    assert np.load(tmp_path / "timeline.npz")["ff_t_ms"].tolist() == [0.0]
    assert sorted(built) == sorted(
        [f"{f}_{p}.png" for f in ("displacement", "evolution") for p in ("ff", "lat")]
        + ["map_quality.png", "timing.png"]
    )


def test_bamford2010_run_keeps_the_fan_in(tmp_path):
    topomap.main(
        [
            "--variant",
            "bamford2010",
            "--duration",
            "0.05",
            "--out",
            str(tmp_path),
            "--no-progress",
            "--snapshot-every",
            "25",
        ]
    )
    data = np.load(tmp_path / "connectivity_final.npz")
    fan_in = np.bincount(data["ff_post"], minlength=256) + np.bincount(
        data["lat_post"], minlength=256
    )
    assert fan_in.max() <= 32


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--variant", "nope"], "invalid choice"),
        (["--scale", "0"], "--scale"),
        (["--duration", "-1"], "--duration"),
        (["--snapshot-every", "0"], "--snapshot-every"),
        (["--engine", "fast"], "invalid choice"),
        (["--duration", "0"], "--duration"),
        (["--device", "gpu0"], "argument --device: 'gpu0' is not a device"),
        (["--device", "cuda:99"], "argument --device: 'cuda:99'"),
    ],
)
def test_bad_flags_exit_with_a_clear_message(argv, match, capsys):
    with pytest.raises(SystemExit) as exc:
        topomap.main(argv)
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and match in lines[0]


def test_cli_dispatch_and_help(capsys):
    from neurowire.cli import main

    assert main([]) == 2
    assert "topomap" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "topomap" in capsys.readouterr().out
    assert main(["nonsense"]) == 2


@pytest.mark.slow
def test_sixty_seconds_refine_the_map(tmp_path):
    s = topomap.main(["--duration", "60", "--out", str(tmp_path), "--no-progress"])
    assert s["sigma_aff_weight_final"] < s["sigma_aff_weight_initial"] - 0.1
    assert s["ad_final"] < s["ad_initial"]


def test_bamford2010_keeps_a_refractory_period_unless_asked():
    net = topomap.build(topomap.TopomapConfig(variant="bamford2010"))
    assert net.populations["target"].model.tau_refrac == 5.0
    net = topomap.build(topomap.TopomapConfig(variant="bamford2010", tau_refrac=0.0))
    assert net.populations["target"].model.tau_refrac == 0.0
