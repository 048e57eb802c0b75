"""A failed batch changes nothing: a rule (or an interrupt) raising inside ``EProp.train_step``
puts the whole trainer back as it was, and the next batch runs as if the failure had never
happened."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import neurowire as nw
from neurowire.learning import Adam, EProp
from neurowire.learning import eprop as eprop_module
from neurowire.learning import undo as undo_module


class Boom(RuntimeError):
    pass


class FailOnce(nw.StructuralRule):
    """Rewires at random (using the rule's generator), then raises on call ``fail_on``
    (counting from 1) in ``update`` or ``adjust_gradient``."""

    def __init__(self, fail_on: int, where: str = "update"):
        self.fail_on, self.where, self.calls = fail_on, where, 0

    def adjust_gradient(self, view, grad, ctx):
        if self.where == "gradient":
            self.calls += 1
            if self.calls == self.fail_on:
                raise Boom("hook failed")
        return grad

    def update(self, view, ctx):
        dev = view.live.device
        draw = torch.rand(view.live.shape, generator=ctx.generator, device=dev)
        removed = int(view.remove(view.live & (draw < 0.2)).sum())
        view.grow(per_row=torch.ones(view.store.n_pre, dtype=torch.int64, device=dev), weight=0.05)
        if self.where == "update":
            self.calls += 1
            if self.calls == self.fail_on:
                raise Boom(f"update failed after removing {removed}")


def trainer(second_rule: nw.StructuralRule, **kwargs) -> EProp:
    net = nw.Network(dt=1.0, seed=3)
    inp = net.population("input", nw.SpikeSource(12))
    hid = net.population("hidden", nw.ALIF(10))
    out = net.population("output", nw.LeakyIntegrator(2))
    net.connect(inp, hid, nw.FixedProbability(0.5), weight=nw.Normal(0.2, 0.2), padding=2.0)
    net.connect(hid, hid, nw.FixedProbability(0.3), weight=nw.Normal(0, 0.2), padding=2.0)
    net.connect(hid, out, nw.Dense(), weight=nw.Normal(0, 0.3))
    rewiring = {"input->hidden": nw.DeepR(l1=0.05), "hidden->hidden": second_rule}
    return EProp(net, out, optimizer=Adam(lr=5e-3), rewiring=rewiring, seed=4, **kwargs)


def batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(4, 30, 12, generator=gen) < 0.25, torch.randint(0, 2, (4,), generator=gen)


def assert_equal(a, b, path="state"):
    """Recursive equality of state dicts (tensors exactly; store versions may advance)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            if k in ("version", "values_version"):
                continue
            assert_equal(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_equal(x, y, f"{path}[{i}]")
    elif torch.is_tensor(a):
        assert torch.equal(a, b), path
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b, equal_nan=True), path
    else:
        assert a == b, path


@pytest.mark.parametrize("where", ["update", "gradient"])
def test_a_failing_rule_undoes_the_whole_batch(where):
    t = trainer(FailOnce(fail_on=2, where=where))
    t.train_step(*batch(0))
    before = t.state_dict()
    rates = {k: v.clone() for k, v in t._rates.to_dict().items()}
    with pytest.raises(Boom):
        t.train_step(*batch(1))
    assert_equal(before, t.state_dict())
    assert t.step_count == 1 and t.optimizer.step_count == 1
    assert_equal(rates, t._rates.to_dict())
    for p in t.net.projections.values():
        if p.sparse:
            p.synapses.validate()


def test_after_an_undone_batch_training_goes_on_as_if_it_never_ran():
    failed = trainer(FailOnce(fail_on=2))
    clean = trainer(FailOnce(fail_on=0))  # never fails
    for t in (failed, clean):
        t.train_step(*batch(0))
    with pytest.raises(Boom):
        failed.train_step(*batch(1))
    for t in (failed, clean):
        t.train_step(*batch(1))  # the failing rule fails only once: this call succeeds
        t.train_step(*batch(2))
    assert_equal(clean.state_dict(), failed.state_dict())


def test_an_interrupt_in_the_optimiser_step_undoes_the_batch(monkeypatch):
    t = trainer(FailOnce(fail_on=0))
    t.train_step(*batch(0))
    before = t.state_dict()
    real = t.optimizer.step

    def interrupted(updates):
        real(updates)  # the weights and moments have moved ...
        raise KeyboardInterrupt  # ... when Ctrl-C arrives

    monkeypatch.setattr(t.optimizer, "step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        t.train_step(*batch(1))
    assert_equal(before, t.state_dict())


#: the trainer's timers that exclude each other; forward, backward and products are inside gradients
PARTS = ("gradients", "undo", "rules", "optimizer")


def timed_step(t: EProp, seed: int) -> tuple[dict[str, float], float]:
    """The timers' increments over one ``train_step`` and the wall time measured around it."""
    before = dict(t.timers)
    tic = time.perf_counter()
    t.train_step(*batch(seed))
    wall = time.perf_counter() - tic
    return {k: v - before[k] for k, v in t.timers.items()}, wall


def assert_parts_add_up(timed: dict[str, float], wall: float) -> None:
    assert min(timed.values()) >= 0
    assert timed["forward"] + timed["backward"] + timed["products"] <= timed["gradients"]
    assert sum(timed[k] for k in PARTS) <= wall


def test_the_undo_copy_is_timed_apart_and_skipped_without_rules(monkeypatch):
    made = []

    class SlowUndo(undo_module.BatchUndo):  # the copy takes at least 50 ms
        def __init__(self, trainer):
            made.append(self)
            time.sleep(0.05)
            super().__init__(trainer)

    monkeypatch.setattr(eprop_module, "BatchUndo", SlowUndo)
    t = trainer(FailOnce(fail_on=0))
    timed, wall = timed_step(t, 0)
    assert len(made) == 1 and timed["undo"] >= 0.05  # the copy is timed as undo ...
    assert_parts_add_up(timed, wall)  # ... and nowhere else
    net = nw.Network(dt=1.0, seed=3)
    inp = net.population("input", nw.SpikeSource(12))
    out = net.population("output", nw.LeakyIntegrator(2))
    hid = net.population("hidden", nw.LIF(6))
    net.connect(inp, hid, nw.Dense(), weight=nw.Normal(0, 0.3))
    net.connect(hid, out, nw.Dense(), weight=nw.Normal(0, 0.3))
    plain = EProp(net, out, optimizer=Adam(lr=1e-3))
    timed, wall = timed_step(plain, 0)
    assert len(made) == 1  # no rules: no copy
    assert_parts_add_up(timed, wall)


def test_the_online_method_leaves_the_factorised_timers_at_zero():
    t = trainer(FailOnce(fail_on=0), method="online")
    timed, wall = timed_step(t, 1)
    assert timed["forward"] == timed["backward"] == timed["products"] == 0.0
    assert timed["gradients"] > 0
    assert_parts_add_up(timed, wall)
