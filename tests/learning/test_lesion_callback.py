"""The Lesion callback: one cut after the given epoch, dense entries held at exactly zero through
further training, static stores stay cut, DEEP R refills, and its state resumes the run."""

from __future__ import annotations

import pytest
import torch

import neurowire as nw
from neurowire.data import frozen_poisson_patterns
from neurowire.learning import Callback, Lesion
from neurowire.structural import lesion, lesion_dense


def _data():
    return frozen_poisson_patterns(n_classes=3, n_inputs=20, steps=20, n_train=24, n_test=6, seed=0)


def _trainer(kind: str) -> nw.EProp:
    """20 inputs -> 10 ALIF -> 3 outputs; input and recurrent ``kind``: dense, static, deep_r."""
    net = nw.Network(dt=1.0, seed=0)
    inp = net.population("input", nw.SpikeSource(20))
    hid = net.population("hidden", nw.ALIF(10, tau_refrac=5.0))
    out = net.population("output", nw.LeakyIntegrator(3))
    if kind == "dense":
        conn, pad = nw.Dense(), {}
    else:
        conn, pad = nw.FixedProbability(0.4), {"padding": 2.0 if kind == "deep_r" else 1.0}
    p_in = net.connect(inp, hid, conn, weight=nw.Normal(0, 0.3), name="input", **pad)
    p_rec = net.connect(hid, hid, conn, weight=nw.Normal(0, 0.2), name="recurrent", **pad)
    net.connect(hid, out, nw.Dense(), weight=nw.Normal(0.0, 0.3), name="readout")
    rules = None
    if kind == "deep_r":
        rules = {p_in: nw.DeepR(l1=0.05), p_rec: nw.DeepR(l1=0.05)}
    return nw.EProp(net, output=out, optimizer=nw.Adam(lr=0.05), rewiring=rules)


class Watch(Callback):
    """Records the cut dense entries and the synapse counts after every batch."""

    def __init__(self, cut: Lesion) -> None:
        self.cut, self.values, self.counts = cut, [], []

    def on_batch_end(self, batch, metrics, trainer):
        projections = trainer.net.projections
        for name, mask in self.cut.masks.items():
            self.values.append(projections[name].weight[mask].clone())
        sparse = [n for n, proj in projections.items() if proj.sparse]
        self.counts.append({n: projections[n].synapses.nnz for n in sparse})


def _fit(trainer, callbacks, epochs=3, initial_epoch=0):
    train, _ = _data()
    return trainer.fit(
        train,
        epochs=epochs,
        batch_size=8,
        progress=False,
        callbacks=callbacks,
        initial_epoch=initial_epoch,
    )


def test_dense_weights_are_cut_alike_and_held_at_exactly_zero():
    trainer = _trainer("dense")
    cut = Lesion(1, 0.5, ["input", "recurrent"], seed=3)
    watch = Watch(cut)
    _fit(trainer, [cut, watch])
    projections = trainer.net.projections
    assert cut.record["removed"] == {"input": round(0.5 * 200), "recurrent": round(0.5 * 90)}
    assert cut.record["synapses_before"] == {"input": 200, "recurrent": 90}
    assert not cut.masks["recurrent"].diagonal().any()
    # the same draw as lesion_dense from the seed, projection after projection
    g = torch.Generator().manual_seed(3)
    assert torch.equal(cut.masks["input"], lesion_dense(torch.ones(20, 10), 0.5, g))
    expected = lesion_dense(torch.ones(10, 10), 0.5, g, autapses=False)
    assert torch.equal(cut.masks["recurrent"], expected)
    assert len(watch.values) == 2 * 6  # two projections, two epochs of 3 batches after the cut
    assert all(torch.all(v == 0) for v in watch.values)
    for name, mask in cut.masks.items():
        w = projections[name].weight
        assert torch.all(w[mask] == 0) and torch.count_nonzero(w[~mask]) == (~mask).sum()
        for moment in trainer.optimizer.state[name].values():
            assert torch.all(moment[mask] == 0)


def test_a_static_store_stays_cut_and_deep_r_refills_its_budget():
    counts = {}
    for kind in ("static", "deep_r"):
        trainer = _trainer(kind)
        initial = {n: trainer.net.projections[n].synapses.nnz for n in ("input", "recurrent")}
        cut = Lesion(2, 0.3, ["input", "recurrent"], seed=1)
        watch = Watch(cut)
        _fit(trainer, [watch, cut])  # Watch first: it sees each batch before the cut's hook
        removed = cut.record["removed"]
        assert removed == {n: round(0.3 * initial[n]) for n in initial}
        assert cut.record["synapses_before"] == initial
        counts[kind] = watch.counts
        after_cut = {n: initial[n] - removed[n] for n in initial}
        if kind == "static":
            assert all(c == initial for c in watch.counts[:6])
            assert all(c == after_cut for c in watch.counts[6:])  # never regrown
        else:
            assert all(c == initial for c in watch.counts)  # refilled at the next batch
            log = trainer.rewiring_log
            for name in initial:
                calls = log.calls(name)
                assert int(calls["added"][6] - calls["removed"][6]) == removed[name]
    assert counts["static"][-1] != counts["deep_r"][-1]


def test_the_measure_sees_the_network_right_after_the_cut():
    trainer = _trainer("static")
    seen = []

    def measure(t):
        seen.append(t.net.projections["input"].synapses.nnz)
        return {"accuracy": 0.25}

    cut = Lesion(1, 0.5, ["input"], seed=0, measure=measure)
    before = trainer.net.projections["input"].synapses.nnz
    _fit(trainer, [cut], epochs=2)
    assert seen == [before - round(0.5 * before)]
    assert cut.record["after"] == {"accuracy": 0.25} and cut.done
    assert list(cut.record["removed"]) == ["input"]


@pytest.mark.parametrize("kind", ["dense", "deep_r"])
@pytest.mark.parametrize("stop", [1, 2])
def test_a_run_resumed_on_either_side_of_the_cut_equals_an_uninterrupted_one(kind, stop):
    whole = _trainer(kind)
    _fit(whole, [Lesion(2, 0.5, ["input", "recurrent"], seed=4)], epochs=3)

    first = _trainer(kind)
    cut = Lesion(2, 0.5, ["input", "recurrent"], seed=4)
    _fit(first, [cut], epochs=stop)
    state, cut_state = first.state_dict(), cut.state_dict()
    second = _trainer(kind)
    second.load_state_dict(state)
    again = Lesion(2, 0.5, ["input", "recurrent"], seed=4)
    again.load_state_dict(cut_state)
    assert again.done == (stop == 2)
    _fit(second, [again], epochs=3, initial_epoch=stop)
    a, b = whole.state_dict(), second.state_dict()
    for name in ("input", "recurrent"):
        if kind == "dense":
            assert torch.equal(a["projections"][name]["weight"], b["projections"][name]["weight"])
        else:
            sa, sb = a["projections"][name]["store"], b["projections"][name]["store"]
            assert torch.equal(sa["ind"], sb["ind"])
            for var in sa["vars"]:
                assert torch.equal(sa["vars"][var], sb["vars"][var]), (name, var)


def test_bad_settings_and_a_foreign_state_are_refused():
    with pytest.raises(ValueError, match="epoch must be an int >= 1"):
        Lesion(0, 0.5, ["input"])
    with pytest.raises(ValueError, match="fraction"):
        Lesion(1, 1.5, ["input"])
    with pytest.raises(ValueError, match="list of names"):
        Lesion(1, 0.5, "input")
    cut = Lesion(1, 0.5, ["nowhere"])
    with pytest.raises(ValueError, match="no projection 'nowhere'"):
        cut.cut(_trainer("static"))
    with pytest.raises(ValueError, match="differ"):
        Lesion(1, 0.5, ["input"], seed=1).load_state_dict(Lesion(1, 0.5, ["input"]).state_dict())
    with pytest.raises(ValueError, match="bad saved state"):
        Lesion(1, 0.5, ["input"]).load_state_dict({"epoch": 1})


def test_cutting_twice_is_refused():
    trainer = _trainer("static")
    cut = Lesion(1, 0.5, ["input"])
    cut.cut(trainer)
    with pytest.raises(ValueError, match="already cut"):
        cut.cut(trainer)
    # the store lost what lesion() would have cut with the same seed
    fresh = _trainer("static").net.projections["input"].synapses
    lesion(fresh, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(fresh.ind, trainer.net.projections["input"].synapses.ind)
