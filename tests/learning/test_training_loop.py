"""The training loop and its callbacks: checkpoints every N epochs that resume into the same
run, early stopping, the read-only rule mapping, and no helper importing the trainer back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import neurowire as nw
from neurowire.data import frozen_poisson_patterns
from neurowire.io import CheckpointError, load_checkpoint
from neurowire.learning import checkpoint, loop

CACHE_KEYS = {"version", "values_version"}


def _data():
    return frozen_poisson_patterns(n_classes=3, n_inputs=20, steps=20, n_train=24, n_test=6, seed=0)


def _trainer(l1=0.01):
    net = nw.Network(dt=1.0, seed=0)
    inp = net.population("input", nw.SpikeSource(20))
    hid = net.population("hidden", nw.ALIF(10, tau_refrac=5.0))
    out = net.population("output", nw.LeakyIntegrator(3))
    p_in = net.connect(inp, hid, nw.FixedProbability(0.3), weight=nw.Normal(0, 0.2), padding=2.0)
    net.connect(hid, out, nw.Dense(), weight=nw.Normal(0.0, 0.3))
    return nw.EProp(net, output=out, optimizer=nw.Adam(lr=0.02), rewiring={p_in: nw.DeepR(l1=l1)})


def _same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a.keys() - CACHE_KEYS:
            _same(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    else:
        assert a == b


def _without_times(history):
    return [{k: v for k, v in h.items() if not k.endswith("time_s")} for h in history]


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path):
    train, test = _data()
    full = _trainer()
    whole = full.fit(train, epochs=3, validation=test, batch_size=8, progress=False)

    path = tmp_path / "run" / "trainer.pt"
    first = _trainer()
    saver = checkpoint.Checkpointer(path, extra=lambda done: {"note": f"after {done}"})
    part = first.fit(train, epochs=2, batch_size=8, progress=False, callbacks=[saver])
    saved = load_checkpoint(path)
    assert saved["epoch"] == 2 and saved["note"] == "after 2" and saved["l1_selection"] is None

    again = _trainer()
    start = checkpoint.Checkpointer(path).resume(again)
    assert start == 2
    rest = again.fit(
        train, epochs=3, initial_epoch=start, validation=test, batch_size=8, progress=False
    )
    _same(again.state_dict(), full.state_dict())
    assert _without_times(rest) == _without_times(whole[2:])
    assert [h["loss"] for h in part] == [h["loss"] for h in whole[:2]]


def test_checkpoints_are_written_every_n_epochs(tmp_path):
    train, _ = _data()
    saved = []
    saver = checkpoint.Checkpointer(
        tmp_path / "c.pt", every=2, on_save=lambda path, done: saved.append(done)
    )
    _trainer().fit(train, epochs=5, batch_size=8, progress=False, callbacks=[saver])
    assert saved == [2, 4]
    silent = checkpoint.Checkpointer(tmp_path / "none.pt", write=False)
    _trainer().fit(train, epochs=1, batch_size=8, progress=False, callbacks=[silent])
    assert not (tmp_path / "none.pt").exists() and silent.read() is None
    with pytest.raises(ValueError, match="every"):
        checkpoint.Checkpointer(tmp_path / "c.pt", every=0)


def test_resume_refuses_a_missing_incomplete_or_foreign_checkpoint(tmp_path):
    train, _ = _data()
    path = tmp_path / "c.pt"
    with pytest.raises(CheckpointError, match="no checkpoint"):
        checkpoint.Checkpointer(path).resume(_trainer())
    saver = checkpoint.Checkpointer(path)
    _trainer().fit(train, epochs=1, batch_size=8, progress=False, callbacks=[saver])
    with pytest.raises(CheckpointError, match="lacks run"):
        saver.read(required=("run",))
    payload = saver.read()
    payload["trainer"]["projections"].pop("hidden->output")
    with pytest.raises(CheckpointError, match="does not fit"):
        saver.resume(_trainer(), payload)
    with pytest.raises(CheckpointError, match="fixed L1"):
        saver.resume(_trainer(l1="auto"))


def test_a_callback_stops_training_and_sees_every_hook():
    train, _ = _data()
    seen = []

    class Stop(loop.Callback):
        def on_epoch_begin(self, epoch, trainer):
            seen.append(("begin", epoch))

        def on_batch_end(self, batch, metrics, trainer):
            seen.append(("batch", batch))
            trainer.stop_training = batch == 1

    history = _trainer().fit(train, epochs=3, batch_size=8, progress=False, callbacks=[Stop()])
    assert len(history) == 1 and history[0]["trials"] == 16
    assert seen == [("begin", 0), ("batch", 0), ("batch", 1)]


def test_the_rules_are_a_read_only_mapping():
    trainer = _trainer()
    assert list(trainer.rules) == ["input->hidden"]
    assert isinstance(trainer.rules["input->hidden"], nw.DeepR)
    with pytest.raises(TypeError):
        trainer.rules["input->hidden"] = nw.DeepR(l1=0.1)


def test_no_training_helper_imports_the_trainer():
    folder = Path(nw.__file__).parent / "learning"
    for name in ("loop", "l1_selection", "undo", "state", "checkpoint", "protocols"):
        tree = ast.parse((folder / f"{name}.py").read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert "eprop" not in imported and "neurowire.learning.eprop" not in imported, name
