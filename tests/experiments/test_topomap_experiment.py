"""The topographic-map experiment: stimulus, variants, outputs and flags."""

import json
import math

import numpy as np
import pytest
import torch

import neurowire as nw
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
    assert ff.synapse.a_plus == pytest.approx(0.02) and ff.synapse.a_minus == pytest.approx(0.0075)
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


def test_run_writes_every_output(tmp_path):
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
    for fig in (
        "displacement_ff.png",
        "displacement_lat.png",
        "evolution_ff.png",
        "evolution_lat.png",
        "map_quality.png",
        "timing.png",
    ):
        assert (tmp_path / fig).stat().st_size > 1000


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
    ],
)
def test_bad_flags_exit_with_a_clear_message(argv, match, capsys):
    with pytest.raises(SystemExit) as exc:
        topomap.main(argv)
    assert exc.value.code == 2
    assert match in capsys.readouterr().err


def test_cli_dispatch_and_help(capsys):
    from neurowire.cli import main

    assert main([]) == 0
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
