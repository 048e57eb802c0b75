"""``neurowire classify``: summary schema, resume equals an uninterrupted run, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import matplotlib.image as mpimg
import pytest
import torch

from neurowire.experiments import classify
from neurowire.io import load_checkpoint

SMALL = [
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
    "--no-progress",
]


def _run(tmp_path, *extra):
    return classify.main([*SMALL, "--out", str(tmp_path), *extra])


def test_compare_writes_the_summary_schema_and_figures(tmp_path):
    summary = _run(tmp_path, "--compare", "--epochs", "2")
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    confs = on_disk["configurations"]
    assert list(confs) == ["dense", "static", "deep_r"]
    for c in confs.values():
        for key in (
            "accuracy_test",
            "accuracy_train",
            "time_per_epoch_s",
            "n_synapses",
            "rewirings_per_batch",
        ):
            assert isinstance(c[key], (int, float)), key
        assert len(c["history"]) == 2
        assert all({"loss", "accuracy_train", "epoch"} <= set(h) for h in c["history"])
    assert confs["dense"]["n_synapses"] > confs["static"]["n_synapses"]
    assert confs["static"]["n_synapses"] == confs["deep_r"]["n_synapses"]  # same seed and p
    assert confs["static"]["rewirings_per_batch"] == 0
    assert confs["deep_r"]["rewirings_per_batch"] > 0 and confs["deep_r"]["failed_placements"] == 0
    # PNGs at 100 dpi (7 x 4.5 in; 10 in wide, 3.5 in per projection), not blank
    for name, width in (("accuracy.png", 700), ("rewiring_deep_r.png", 700)):
        img = mpimg.imread(tmp_path / name)
        assert img.shape[:2] == (450, width) and img[..., :3].std() > 0.01, name
    img = mpimg.imread(tmp_path / "connectivity_dense.png")
    assert img.shape[0] % 350 == 0 and img.shape[1] == 1000 and img[..., :3].std() > 0.01
    assert "speed-up" in classify.table(summary)


def _comparable(history):
    drop = {"time_s", "rules_s"}
    return [{k: v for k, v in h.items() if k not in drop} for h in history]


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    a = _run(full, "--deep-r", "--epochs", "3")
    _run(part, "--deep-r", "--epochs", "1")
    b = _run(part, "--deep-r", "--epochs", "3", "--resume")
    ha, hb = a["configurations"]["deep_r"]["history"], b["configurations"]["deep_r"]["history"]
    assert _comparable(ha) == _comparable(hb)
    sa = load_checkpoint(full / "checkpoints" / "deep_r.pt")["trainer"]
    sb = load_checkpoint(part / "checkpoints" / "deep_r.pt")["trainer"]
    for name in ("input", "recurrent"):
        da, db = sa["projections"][name]["store"], sb["projections"][name]["store"]
        assert torch.equal(da["row_length"], db["row_length"])
        assert torch.equal(da["ind"], db["ind"])
        for var in da["vars"]:
            assert torch.equal(da["vars"][var], db["vars"][var]), (name, var)
    assert torch.equal(
        sa["projections"]["readout"]["weight"], sb["projections"]["readout"]["weight"]
    )
    assert sa["step_count"] == sb["step_count"] > 0


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "neurowire.cli", "classify", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "--epochs must be an integer in [1,"),
        (["--input-density", "1.5"], "--input-density must be a finite number in (0, 1]"),
        (["--device", "tpu:7"], "--device"),
        (["--device", "cuda:3"], "--device"),
        (["--dataset", "imagenet"], "invalid choice"),
        (["--dataset", "shd"], "shd_train.h5"),
        (["--hidden", "many"], "invalid int value"),
    ],
)
def test_bad_flags_give_one_clear_line_and_leave_no_output(tmp_path, args, message):
    out = tmp_path / "out"
    proc = _cli("--out", str(out), "--data-dir", str(tmp_path / "nodata"), *args)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not out.exists()


def test_out_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    proc = _cli("--out", str(target))
    assert proc.returncode == 2 and "is a file" in proc.stderr
    assert target.read_text() == "keep me"


def test_help_shows_defaults():
    proc = _cli("--help")
    assert proc.returncode == 0
    assert "(default: mnist1d)" in proc.stdout and "--deep-r" in proc.stdout
