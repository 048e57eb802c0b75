"""Choosing DEEP R's L1 on held-out training data: stratified split, reproducible selection,
the trainer put back exactly, the test set never read."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import neurowire as nw
from neurowire.data import frozen_poisson_patterns
from neurowire.experiments import classify
from neurowire.learning import l1_selection as l1sel

GRID = (0.01, 0.3, 3.0)


def _data(seed=0):
    return frozen_poisson_patterns(
        n_classes=4, n_inputs=40, steps=40, n_train=48, n_test=16, seed=seed
    )


def _trainer(l1="auto", seed=0):
    net = nw.Network(dt=1.0, seed=seed)
    inp = net.population("input", nw.SpikeSource(40))
    hid = net.population("hidden", nw.ALIF(16, tau_refrac=5.0))
    out = net.population("output", nw.LeakyIntegrator(4))
    rules = {}
    for pre, name in ((inp, "input"), (hid, "recurrent")):
        proj = net.connect(
            pre,
            hid,
            nw.FixedProbability(0.3),
            weight=nw.Normal(0.0, pre.n**-0.5),
            padding=2.0,
            name=name,
        )
        rules[proj] = nw.DeepR(l1=l1)
    net.connect(hid, out, nw.Dense(), weight=nw.Normal(0.0, 0.25), name="readout")
    return nw.EProp(net, output=out, optimizer=nw.Adam(lr=0.02), rewiring=rules, seed=seed)


#: cache keys of a store: they advance on every load, by design, so that caches rebuild
CACHE_KEYS = {"version", "values_version"}


def _same_state(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a.keys() - CACHE_KEYS:
            _same_state(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same_state(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b)
    else:
        assert a == b


# ------------------------------------------------------------------ split
@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(2, 30), min_size=1, max_size=6),
    fraction=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**40),
)
def test_stratified_split_is_a_seeded_partition_per_class(counts, fraction, seed):
    labels = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(1).shuffle(labels)
    fit, val = l1sel.stratified_split(labels, fraction, seed)
    assert np.array_equal(np.sort(np.concatenate([fit, val])), np.arange(labels.size))
    for c, n in enumerate(counts):
        k = int(np.sum(labels[val] == c))
        assert 1 <= k <= n - 1  # every class on both sides
        assert abs(k - fraction * n) <= max(1.0, 0.5 + 1e-9)
    again = l1sel.stratified_split(labels, fraction, seed)
    assert np.array_equal(val, again[1])


def test_stratified_split_depends_on_the_seed():
    labels = np.arange(200) % 4
    a = l1sel.stratified_split(labels, 0.25, 0)[1]
    b = l1sel.stratified_split(labels, 0.25, 1)[1]
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, float("nan")])
def test_bad_fraction_is_refused(fraction):
    with pytest.raises(ValueError, match="validation fraction"):
        l1sel.stratified_split(np.arange(10) % 2, fraction, 0)


@pytest.mark.parametrize("grid", [[], [0.1, float("inf")], [-1.0]])
def test_bad_grid_is_refused(grid):
    with pytest.raises(ValueError, match="L1 grid|grid is empty"):
        l1sel.check_grid(grid)


# ------------------------------------------------------------------ selection
def test_select_l1_is_reproducible_and_restores_the_trainer():
    train, _ = _data()
    trainer = _trainer()
    before = trainer.state_dict()
    sel = nw.select_l1(trainer, train, grid=GRID, epochs=2, batch_size=16)
    _same_state(before, trainer.state_dict())
    assert trainer.step_count == 0
    assert sel.chosen in GRID and len(sel.val_accuracy) == len(GRID)
    assert all(len(c) == 2 for c in sel.curves)
    assert sel.n_train + sel.n_validation == len(train)
    assert sum(sel.class_counts.values()) == sel.n_validation
    assert {rule.l1 for rule in trainer.rules.values()} == {sel.chosen}
    again = nw.select_l1(_trainer(), train, grid=GRID, epochs=2, batch_size=16)
    assert again.to_dict() | {"wall_s": 0} == sel.to_dict() | {"wall_s": 0}


def test_select_l1_picks_the_best_validation_accuracy():
    train, _ = _data()
    sel = nw.select_l1(_trainer(), train, grid=GRID, epochs=2, batch_size=16)
    best = max(sel.val_accuracy)
    candidates = [v for v, a in zip(sel.grid, sel.val_accuracy, strict=True) if a == best]
    assert sel.chosen in candidates


def test_fit_resolves_auto_then_trains_as_with_the_chosen_value():
    train, _ = _data()
    auto = _trainer()
    auto.fit(train, epochs=2, batch_size=16, progress=False)
    assert auto.l1_selection is not None
    fixed = _trainer(l1=auto.l1_selection.chosen)
    fixed.fit(train, epochs=2, batch_size=16, progress=False)
    assert fixed.l1_selection is None
    _same_state(fixed.state_dict(), auto.state_dict())


def test_select_l1_needs_an_auto_rule_and_a_dataset():
    train, _ = _data()
    with pytest.raises(ValueError, match='l1="auto"'):
        nw.select_l1(_trainer(l1=0.1), train)
    with pytest.raises(TypeError, match="map-style dataset"):
        nw.select_l1(_trainer(), [(train.spikes[:8], train.labels[:8])])


def test_unresolved_rule_refuses_to_train_outside_fit():
    train, _ = _data()
    trainer = _trainer()
    with pytest.raises(ValueError, match="auto"):
        trainer.train_step(train.spikes[:8], train.labels[:8])


# ------------------------------------------------------------------ the command line
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
    "--l1-grid",
    "0.01",
    "0.3",
    "3",
    "--l1-epochs",
    "1",
    "--epochs",
    "1",
    "--deep-r",
    "--no-progress",
]


def test_cli_auto_never_reads_the_test_set(tmp_path, monkeypatch):
    real = classify.load_data
    honest = classify.main([*SMALL, "--out", str(tmp_path / "a")])

    def scrambled(cfg):
        train, test, info = real(cfg)
        perm = torch.randperm(len(test), generator=torch.Generator().manual_seed(5))
        return train, nw.data.SpikeDataset(test.spikes, (test.labels[perm] + 1) % 4), info

    monkeypatch.setattr(classify, "load_data", scrambled)
    other = classify.main([*SMALL, "--out", str(tmp_path / "b")])
    a = honest["configurations"]["deep_r"]["l1_selection"]
    b = other["configurations"]["deep_r"]["l1_selection"]
    assert a | {"wall_s": 0} == b | {"wall_s": 0}
    on_disk = json.loads((tmp_path / "a" / "summary.json").read_text())
    entry = on_disk["configurations"]["deep_r"]
    assert entry["l1"] == entry["l1_selection"]["chosen"]
    assert (tmp_path / "a" / "l1_selection_deep_r.png").stat().st_size > 0


def test_cli_resume_keeps_the_selection(tmp_path):
    first = classify.main([*SMALL, "--out", str(tmp_path)])
    resumed = classify.main([*SMALL, "--epochs", "2", "--out", str(tmp_path), "--resume"])
    a = first["configurations"]["deep_r"]["l1_selection"]
    b = resumed["configurations"]["deep_r"]["l1_selection"]
    assert a == b and len(resumed["configurations"]["deep_r"]["history"]) == 2


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--l1", "lots", "expected 'auto' or a number"),
        ("--l1", "-1", "--l1 must be"),
        ("--l1-epochs", "0", "--l1-epochs must be"),
        ("--validation-fraction", "1.5", "--validation-fraction must be a finite number in"),
    ],
)
def test_cli_bad_l1_flags(flag, value, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        classify.main([*SMALL, "--out", str(tmp_path / "o"), flag, value])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
