"""``neurowire classify --lesion EPOCH:FRACTION`` end to end at a tiny size: the measurements in
the summary, the figure, the checkpoints, and a resume across the cut equal to an uninterrupted
run."""

from __future__ import annotations

import json

import matplotlib.image as mpimg
import pytest
import torch
from test_classify_experiment import SMALL  # the small classify run of that file

import neurowire as nw
from neurowire import analysis
from neurowire.experiments import classify
from neurowire.io import load_checkpoint

LESION = ["--compare", "--lesion", "2:0.5"]


def _run(out, *extra):
    return classify.main([*SMALL, "--out", str(out), *extra])


def _comparable(history):
    return [{k: v for k, v in h.items() if k not in ("time_s", "rules_s")} for h in history]


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """An uninterrupted ``--compare --lesion 2:0.5 --epochs 3`` run: its folder and summary."""
    out = tmp_path_factory.mktemp("lesion") / "full"
    return out, _run(out, *LESION, "--epochs", "3")


def test_every_configuration_is_cut_alike_and_measured(full):
    tmp_path, summary = full
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["config"]["lesion_epoch"] == 2 and on_disk["config"]["lesion_fraction"] == 0.5
    settings = json.loads((tmp_path / "run.json").read_text())["settings"]
    assert settings["lesion_epoch"] == 2 and settings["lesion_fraction"] == 0.5
    confs = on_disk["configurations"]
    hidden, inputs = 12, on_disk["dataset"]["inputs"]
    assert confs["dense"]["lesion"]["synapses_before"] == {
        "input": inputs * hidden,
        "recurrent": hidden * (hidden - 1),  # no autapses
    }
    for name, c in confs.items():
        les = c["lesion"]
        before, removed, final = les["synapses_before"], les["removed"], les["synapses_final"]
        assert les["epoch"] == 2 and les["fraction"] == 0.5
        assert removed == {p: round(0.5 * before[p]) for p in ("input", "recurrent")}
        cut = {p: before[p] - removed[p] for p in before}
        assert final == (before if name == "deep_r" else cut), name  # DEEP R refills
        accuracy = [h["accuracy_test"] for h in c["history"]]
        assert les["accuracy_before"] == accuracy[1]
        assert les["accuracy_final"] == accuracy[-1] == c["accuracy_test"]
        expected = analysis.lesion_summary(accuracy, 2, les["accuracy_after"], 0.01)
        assert {k: les[k] for k in expected} == expected
    assert (
        confs["static"]["lesion"]["synapses_before"] == confs["deep_r"]["lesion"]["synapses_before"]
    )
    img = mpimg.imread(tmp_path / "lesion.png")
    assert img.shape[:2] == (450, 700) and img[..., :3].std() > 0.01
    assert "lesion: 50 % of the input and recurrent synapses cut after epoch 2" in classify.table(
        summary
    )
    # the dense checkpoint holds the masks, and the weights under them are exactly zero
    saved = load_checkpoint(tmp_path / "checkpoints" / "dense.pt")
    masks = saved["lesion"]["masks"]
    for p in ("input", "recurrent"):
        weight = saved["trainer"]["projections"][p]["weight"]
        assert int(masks[p].sum()) == confs["dense"]["lesion"]["removed"][p]
        assert torch.all(weight[masks[p]] == 0)


def test_a_run_without_lesion_records_no_lesion(tmp_path):
    summary = _run(tmp_path, "--epochs", "1")
    assert "lesion" not in summary["configurations"]["static"]
    assert "lesion_epoch" not in json.loads((tmp_path / "run.json").read_text())["settings"]
    assert "lesion" not in load_checkpoint(tmp_path / "checkpoints" / "static.pt")
    assert not (tmp_path / "lesion.png").exists()


def _kind(trainer) -> str:
    if not trainer.net.projections["input"].sparse:
        return "dense"
    return "deep_r" if trainer.rules else "static"


def _interrupted(out, stop, monkeypatch):
    """The run of ``LESION --epochs 3`` in ``out``, interrupted (Ctrl-C) once in every
    configuration after ``stop`` epochs and resumed each time; the summary of the last resume."""
    real_fit = nw.EProp.fit
    stopped = set()

    def fit(self, *args, initial_epoch=0, **kwargs):
        if initial_epoch == stop and _kind(self) not in stopped:
            stopped.add(_kind(self))
            raise KeyboardInterrupt
        return real_fit(self, *args, initial_epoch=initial_epoch, **kwargs)

    monkeypatch.setattr(nw.EProp, "fit", fit)
    for resume in ([], ["--resume"], ["--resume"], ["--resume"]):
        try:
            return _run(out, *LESION, "--epochs", "3", *resume)
        except SystemExit as exc:
            assert exc.code == 130
    raise AssertionError(f"still interrupted; stopped {sorted(stopped)}")


@pytest.mark.parametrize(
    "stop",
    [
        pytest.param(1, id="before the cut"),
        pytest.param(2, id="right after the cut", marks=pytest.mark.slow),
    ],
)
def test_resume_across_the_cut_reproduces_an_uninterrupted_run(full, tmp_path, stop, monkeypatch):
    (full, a), part = full, tmp_path / "part"
    b = _interrupted(part, stop, monkeypatch)
    for name in classify.CONFIGURATIONS:
        ca, cb = a["configurations"][name], b["configurations"][name]
        assert _comparable(ca["history"]) == _comparable(cb["history"]), name
        assert ca["lesion"] == cb["lesion"], name
        sa = load_checkpoint(full / "checkpoints" / f"{name}.pt")
        sb = load_checkpoint(part / "checkpoints" / f"{name}.pt")
        for p in ("input", "recurrent", "readout"):
            da, db = sa["trainer"]["projections"][p], sb["trainer"]["projections"][p]
            if "weight" in da:
                assert torch.equal(da["weight"], db["weight"]), (name, p)
            else:
                assert torch.equal(da["store"]["ind"], db["store"]["ind"]), (name, p)
                for var in da["store"]["vars"]:
                    assert torch.equal(da["store"]["vars"][var], db["store"]["vars"][var])
        assert sa["lesion"]["record"] == sb["lesion"]["record"], name
        masks_a, masks_b = sa["lesion"]["masks"], sb["lesion"]["masks"]
        assert masks_a.keys() == masks_b.keys()
        assert all(torch.equal(masks_a[p], masks_b[p]) for p in masks_a), name
