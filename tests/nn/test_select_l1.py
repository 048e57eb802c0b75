"""Choosing DEEP R's L1 for a ``torch.nn`` model (``nw.nn.select_l1``): the trainer's split and
tie-break on a model the user builds, trains and scores."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Subset, TensorDataset

import neurowire as nw

pytest.importorskip("numba")


def _data(n=80, n_in=16, seed=0):
    """Two classes whose means differ in every feature."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, n_in, generator=g) + (2.0 * y[:, None] - 1.0)
    return TensorDataset(x, y)


def _tensors(part):
    x, y = zip(*(part[i] for i in range(len(part))), strict=True)
    return torch.stack(x), torch.stack(y)


class Task:
    """build / train_fn / score_fn of a one-layer sparse classifier, recording its calls."""

    def __init__(self):
        self.built, self.fit_indices, self.val_indices = [], set(), set()

    def build(self, l1):
        self.built.append(l1)
        g = torch.Generator().manual_seed(0)
        layer = nw.nn.SparseLinear(16, 2, nw.FixedProbability(0.5), generator=g)
        opt = torch.optim.Adam(layer.parameters(), lr=0.05)
        return layer, opt, nw.nn.DeepR(layer, opt, l1=l1, seed=0)

    def train_fn(self, built, part):
        layer, opt, rewirer = built
        self.fit_indices.update(part.indices)
        x, y = _tensors(part)
        for batch in torch.arange(len(y)).split(16):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(layer(x[batch]), y[batch]).backward()
            opt.step()
            rewirer.step()

    def score_fn(self, built, part):
        self.val_indices.update(part.indices)
        x, y = _tensors(part)
        with torch.no_grad():
            out = built[0](x)
        loss = torch.nn.functional.cross_entropy(out, y)
        return {"accuracy": float((out.argmax(1) == y).float().mean()), "loss": float(loss)}


def test_select_l1_trains_every_value_from_a_build_and_keeps_the_split_apart():
    data, task = _data(), Task()
    grid = (30.0, 0.0, 0.01)
    sel = nw.nn.select_l1(task.build, task.train_fn, task.score_fn, data, grid=grid, epochs=2)
    assert task.built == [0.0, 0.01, 30.0] and sel.grid == [0.0, 0.01, 30.0]
    assert sel.chosen != 30.0 and sel.val_accuracy[2] < max(sel.val_accuracy)
    assert all(len(c) == 2 for c in sel.curves)
    assert not task.fit_indices & task.val_indices
    assert len(task.fit_indices) == sel.n_train and len(task.val_indices) == sel.n_validation
    assert sel.n_train + sel.n_validation == len(data)
    again = Task()
    same = nw.nn.select_l1(again.build, again.train_fn, again.score_fn, data, grid=grid, epochs=2)
    assert same.to_dict() | {"wall_s": 0} == sel.to_dict() | {"wall_s": 0}


@pytest.mark.parametrize(
    ("losses", "chosen"), [({0.1: 1.0, 0.2: 0.5, 0.3: 0.5}, 0.2), ({0.1: 1.0, 0.2: 1.0}, 0.1)]
)
def test_ties_go_to_the_lower_loss_then_the_smaller_l1(losses, chosen):
    sel = nw.nn.select_l1(
        lambda l1: l1,
        lambda built, part: None,
        lambda built, part: {"accuracy": 0.5, "loss": losses[built]},
        _data(),
        grid=tuple(losses),
        epochs=1,
    )
    assert sel.chosen == chosen


def test_a_score_without_accuracy_and_loss_is_refused():
    with pytest.raises(ValueError, match="'accuracy' and 'loss'"):
        nw.nn.select_l1(lambda l1: l1, lambda b, p: None, lambda b, p: 0.9, _data(), epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        nw.nn.select_l1(lambda l1: l1, lambda b, p: None, lambda b, p: {}, _data(), epochs=0)


def test_parts_are_subsets_of_the_training_set():
    seen = []
    nw.nn.select_l1(
        lambda l1: l1,
        lambda built, part: seen.append(part),
        lambda built, part: seen.append(part) or {"accuracy": 1.0, "loss": 0.0},
        _data(),
        grid=(0.1,),
        epochs=1,
        validation_fraction=0.25,
    )
    fit, val = seen
    assert isinstance(fit, Subset) and len(val) == 20 and len(fit) == 60
