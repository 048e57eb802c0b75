"""rule_transaction: a rule that raises leaves store, per-call log and event log as before."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import neurowire as nw
from neurowire.structural.log import ELIMINATION, FORMATION
from neurowire.structural.transaction import rule_transaction


def store(name, device, seed=0, n=9):
    gen = torch.Generator(device).manual_seed(seed)
    s = nw.RaggedSynapses(n, n, 6, device, name=name, autapses=False)
    s.add_var("weight")
    s.add_var("e", batched=2, dtype=torch.float64)
    s.grow(torch.full((n,), 3, device=device), generator=gen, weight=nw.Uniform(0.0, 1.0), e=0.5)
    return s


def view(s, log, seed=1):
    grid = nw.Grid(3, 3)
    return nw.SynapseView(
        s,
        pre_state={},
        post_state={},
        pre_grid=grid,
        post_grid=grid,
        log=log,
        step=10,
        t_ms=5.0,
        log_events=True,
        generator=torch.Generator(s.device).manual_seed(seed),
    )


def history(log):
    """A log with calls and events on two projections, some pending, some flushed."""
    log.record_calls("a", np.arange(3), np.arange(3) * 0.5, [1, 0, 2], [0, 1, 1], [0, 0, 1])
    for step in range(5):
        log.record_call("a", step, step * 0.5, 1, 1, 0)
        log.record_events("a", step * 0.5, [step], [step + 1], FORMATION, [1.0])
    log.record_call("b", 0, 0.0, 0, 2, 0)
    log.record_events("b", 0.0, [0, 1], [2, 3], [FORMATION, ELIMINATION], [0.5, 0.25])
    return log


def snapshot(stores, log):
    """Everything observable: each store's state (version aside) and the log's contents."""
    out = {}
    for s in stores:
        d = s.state_dict()
        out[s.name] = (d["ind"], d["row_length"], {k: v for k, v in d["vars"].items()})
    names = log.projections
    out["log"] = {
        "projections": names,
        **{f"calls {n}": log.calls(n) for n in names},
        **{f"totals {n}": log.totals(n) for n in names},
        **{f"events {n}": log.events(n) for n in names},
    }
    return out


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if key == "log":
            la, lb = a[key], b[key]
            assert la.keys() == lb.keys() and la["projections"] == lb["projections"]
            for k in la:
                if k.startswith(("calls", "events")):
                    assert la[k].keys() == lb[k].keys(), k
                    for f in la[k]:
                        assert np.array_equal(la[k][f], lb[k][f], equal_nan=True), (k, f)
                        assert la[k][f].dtype == lb[k][f].dtype, (k, f)
                else:
                    assert la[k] == lb[k], k
        else:
            (ia, ra, va), (ib, rb, vb) = a[key], b[key]
            assert torch.equal(ia, ib) and torch.equal(ra, rb), key
            assert va.keys() == vb.keys(), key
            for name in va:
                assert torch.equal(va[name], vb[name]), (key, name)


class Boom(Exception):
    pass


def half_done_rule(va, vb, log):
    """Removes, adds and grows on two projections (logging events), records a call, raises."""
    sa, sb = va.store, vb.store
    va.remove(sa.live & (sa.ind % 2 == 0))
    pre, post = torch.tensor([0, 1], device=sa.device), torch.tensor([4, 5], device=sa.device)
    va.add(pre, post, on_full="skip", on_duplicate="skip")
    sa.vars["weight"].mul_(3.0)  # an in-place value write, too
    vb.grow(torch.full((sb.n_pre,), 2, device=sb.device))
    vb.remove(sb.live & (sb.ind == 1))
    sb.add_var("scratch")  # state registered mid-way
    log.record_call(sa.name, 10, 5.0, va.removed, va.added, va.failed)
    assert va.removed and va.added and vb.added  # the rule really did change things
    raise Boom("mid-way")


@pytest.mark.parametrize("prior", [False, True], ids=["empty log", "log with history"])
def test_a_rule_that_raises_leaves_stores_and_log_exactly_as_before(device, prior):
    sa, sb = store("a", device, 0), store("b", device, 1)
    log = history(nw.RewiringLog()) if prior else nw.RewiringLog()
    before = snapshot([sa, sb], log)
    tensors = (sa.ind, sa.row_length, sa.vars["weight"], sb.ind, sb.vars["e"])
    versions = sa.version, sb.version
    err = None
    with pytest.raises(Boom) as caught:
        with rule_transaction([sa, sb, sa], log):
            try:
                half_done_rule(view(sa, log), view(sb, log), log)
            except Boom as e:
                err = e
                raise
    assert caught.value is err  # the original exception, unchanged
    assert_same(before, snapshot([sa, sb], log))
    # restored in place, and versions moved on so no cache survives
    assert tensors == (sa.ind, sa.row_length, sa.vars["weight"], sb.ind, sb.vars["e"])
    assert sa.version > versions[0] and sb.version > versions[1]
    for s in (sa, sb):
        s.validate()
        assert torch.equal(s.dense(), s.to_dense("weight"))
    # the log keeps working after the rollback
    log.record_call("a", 11, 5.5, 1, 0, 0)
    assert log.calls("a")["step"][-1] == 11


def test_a_rule_that_completes_keeps_its_changes(device):
    sa = store("a", device)
    log = nw.RewiringLog()
    with rule_transaction([sa], log):
        v = view(sa, log)
        v.remove(sa.live & (sa.ind % 2 == 0))
        log.record_call("a", 10, 5.0, v.removed, v.added, v.failed)
    assert log.totals("a")["removed"] == v.removed > 0
    assert log.events("a")["kind"].size == v.removed


def test_keyboard_interrupt_is_rolled_back_too_and_log_may_be_none(device):
    sa = store("a", device)
    before = sa.state_dict()
    with pytest.raises(KeyboardInterrupt):
        with rule_transaction([sa], None):
            sa.remove(sa.live)
            raise KeyboardInterrupt
    assert torch.equal(sa.state_dict()["ind"], before["ind"])
    assert sa.nnz == int(before["row_length"].sum())


def test_rollback_across_a_flush_of_pending_calls():
    log = nw.RewiringLog()
    for step in range(4095):  # pending rows, one short of the flush threshold
        log.record_call("a", step, 0.0, 1, 0, 0)
    mark = log.mark()
    for step in range(3):  # the second of these flushes the pending rows into an array
        log.record_call("a", 9000 + step, 0.0, 5, 5, 5)
    log.record_call("new", 0, 0.0, 1, 1, 1)
    log.rollback(mark)
    calls = log.calls("a")
    assert calls["step"].tolist() == list(range(4095))
    assert log.totals("a") == {"removed": 4095, "added": 0, "failed": 0}
    assert log.projections == ["a"]


def test_a_mark_from_before_load_state_dict_is_refused():
    log = history(nw.RewiringLog())
    mark = log.mark()
    log.load_state_dict(log.state_dict())
    with pytest.raises(ValueError, match="predates a load_state_dict"):
        log.rollback(mark)
    mark = log.mark()  # marks taken after a load work
    log.record_events("a", 9.0, [1], [2], FORMATION, [0.0])
    log.rollback(mark)
    assert log.events("a")["t_ms"].max() < 9.0


record = st.one_of(
    st.tuples(st.just("call"), st.sampled_from("ab"), st.integers(0, 3)),
    st.tuples(st.just("calls"), st.sampled_from("abc"), st.integers(0, 3)),
    st.tuples(st.just("events"), st.sampled_from("abc"), st.integers(0, 3)),
    st.tuples(st.just("read"), st.sampled_from("abc"), st.just(0)),
)


def apply(log, ops):
    for kind, name, k in ops:
        if kind == "call":
            log.record_call(name, k, k * 0.5, k, 1, 0)
        elif kind == "calls":
            log.record_calls(name, np.arange(k), np.arange(k) * 0.5, [k] * k, [1] * k, [0] * k)
        elif kind == "events":
            log.record_events(name, 1.0, np.arange(k), np.arange(k) + 1, FORMATION, np.ones(k))
        else:
            log.calls(name)  # flushes pending rows


@settings(max_examples=60, deadline=None)
@given(before=st.lists(record, max_size=8), after=st.lists(record, max_size=8))
def test_rollback_restores_any_log_to_its_mark(before, after):
    log = nw.RewiringLog()
    apply(log, before)
    want = snapshot([], log)
    mark = log.mark()
    apply(log, after)
    log.rollback(mark)
    assert_same(want, snapshot([], log))
    apply(log, after)  # and recording continues as if the rolled-back part never happened
    fresh = nw.RewiringLog()
    apply(fresh, before + after)
    assert_same(snapshot([], fresh), snapshot([], log))
