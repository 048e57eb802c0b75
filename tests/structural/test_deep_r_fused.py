"""DEEP R's fused CPU pass gives exactly the store of the reference path (``fused=False``:
``view.remove`` then ``regrow_synapses`` through the store's add), from the same generators:
connectivity, signs, moved and zeroed state, removed/added/failed counts, events, the L1 term.
Also: both placements equal plain-Python references of the same algorithms, the store's
one-call edit (``replace_native``), and the runner skipping the snapshot of atomic calls.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import neurowire as nw
from neurowire import rng as nw_rng
from neurowire.structural import transaction
from neurowire.structural.base import RuleContext
from neurowire.structural.deep_r import place_by_pair, place_by_row
from neurowire.structural.log import RewiringLog
from neurowire.structural.runner import Clock, RuleRunner
from neurowire.structural.view import SynapseView

pytest.importorskip("numba")

#: extra per-synapse variables a case may carry: name -> add_var keywords
EXTRA = {
    "trace": {"dtype": torch.float64, "batched": 2},
    "flag": {"dtype": torch.bool},
    "count": {"dtype": torch.int32},
}


def _view(store, gen=None, log=None, log_events=False):
    return SynapseView(
        store,
        pre_state={},
        post_state={},
        pre_grid=None,
        post_grid=None,
        generator=gen,
        log=log,
        log_events=log_events,
    )


def _ctx(store, seed, lr=0.01):
    gen = torch.Generator().manual_seed(seed)
    return RuleContext(
        gen, 0, 0.0, 1.0, store.name, rng=np.random.default_rng(seed), learning_rate=lr
    )


def _store(n_pre, n_post, density, slack, autapses, extra, seed):
    """A random store: ``density`` of the allowed pairs, capacity ``slack`` above the longest
    row, Adam moments and the ``extra`` variables filled with nonzero values."""
    g = torch.Generator().manual_seed(seed)
    allowed = torch.rand(n_pre, n_post, generator=g) < density
    if not autapses:
        allowed.fill_diagonal_(False)
    pre, post = allowed.nonzero(as_tuple=True)
    longest = int(allowed.sum(1).max())
    s = nw.RaggedSynapses.from_coo(
        n_pre, n_post, pre, post, capacity=longest + slack, autapses=autapses, name="p"
    )
    nnz = s.nnz
    s.add_var("weight", init=torch.randn(nnz, generator=g))
    for name in ("adam_m", "adam_v"):
        s.add_var(name, init=torch.rand(nnz, generator=g) + 0.5)
    for name in extra:
        kw = EXTRA[name]
        shape = (kw.get("batched"), nnz) if kw.get("batched") else (nnz,)
        values = torch.randint(1, 5, shape, generator=g).to(kw["dtype"])
        s.add_var(name, init=values, **kw)
    return s


def _new_weights(s, seed, zeros):
    """Weights of random sign (some crossing their sign), a share ``zeros`` exactly 0."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(s.nnz, generator=g)
    w[torch.rand(s.nnz, generator=g) < zeros] = 0.0
    s.set_values("weight", w)


def _run_both(make, rule_kw, rounds, seed, log_events=False):
    """The same case through the fused and the reference pass; returns both stores and views
    per round. ``log_events``: the fused pass's views log events (its
    ``SynapseView.replace_native`` edit rather than the one-call ``rewire_rows``)."""
    out = []
    for fused in (True, False):
        s = make()
        rule = nw.DeepR(fused=fused, **rule_kw)
        rule.setup(_view(s), _ctx(s, seed))
        ctx = _ctx(s, seed + 1)
        log = RewiringLog() if log_events and fused else None
        views = []
        for r in range(rounds):
            _new_weights(s, seed + 10 + r, zeros=0.1)
            view = _view(s, ctx.generator, log=log, log_events=log is not None)
            rule.update(view, ctx)
            s.validate()
            views.append((view.removed, view.added, view.failed))
        out.append((s, views))
    return out


def _assert_same_store(a, b):
    assert torch.equal(a.row_length, b.row_length)
    assert torch.equal(a.ind, b.ind)
    assert a.vars.keys() == b.vars.keys()
    for name in a.vars:
        assert torch.equal(a.vars[name], b.vars[name]), name


@st.composite
def cases(draw):
    square = draw(st.booleans())
    n_pre = draw(st.integers(1, 24))
    n_post = n_pre if square else draw(st.integers(1, 24))
    autapses = draw(st.booleans()) if square and n_pre > 1 else True
    return {
        "n_pre": n_pre,
        "n_post": n_post,
        "density": draw(st.floats(0.0, 1.0)),
        "slack": draw(st.integers(0, 6)),
        "autapses": autapses,
        "extra": draw(st.lists(st.sampled_from(sorted(EXTRA)), unique=True, max_size=3)),
        "seed": draw(st.integers(0, 2**31 - 1)),
    }


@settings(max_examples=60, deadline=None)
@given(
    case=cases(),
    regrow=st.sampled_from(["pair", "row"]),
    mode=st.sampled_from(["genn", "original"]),
    log_events=st.booleans(),
)
def test_fused_pass_equals_the_reference_exactly(case, regrow, mode, log_events):
    seed = case.pop("seed")
    rule_kw = {"l1": 0.01, "regrow": regrow, "mode": mode}
    if mode == "original":
        rule_kw["temperature"] = 0.05
    (a, views_a), (b, views_b) = _run_both(
        lambda: _store(**case, seed=seed), rule_kw, 3, seed, log_events
    )
    _assert_same_store(a, b)
    assert views_a == views_b  # removed, added, failed of every call


@pytest.mark.parametrize("log_events", [False, True])
@pytest.mark.parametrize("regrow", ["pair", "row"])
def test_fused_pass_equals_the_reference_when_rows_fill_up(regrow, log_events):
    # no slack and dense rows: placements fail and rows run out of free columns
    case = {"n_pre": 12, "n_post": 12, "density": 0.9, "slack": 0, "autapses": False}
    (a, views_a), (b, views_b) = _run_both(
        lambda: _store(**case, extra=["trace"], seed=3), {"regrow": regrow}, 4, 7, log_events
    )
    _assert_same_store(a, b)
    assert views_a == views_b
    assert sum(v[0] for v in views_a) > 0


def test_fused_pass_logs_the_same_events_as_the_reference():
    logs = []
    for fused in (True, False):
        s = _store(30, 40, 0.3, 4, True, [], seed=5)
        rule = nw.DeepR(fused=fused)
        rule.setup(_view(s), _ctx(s, 1))
        _new_weights(s, 2, zeros=0.0)
        log = RewiringLog()
        ctx = _ctx(s, 3)
        rule.update(_view(s, ctx.generator, log=log, log_events=True), ctx)
        logs.append(log.events("p"))
    a, b = logs
    assert a.keys() == b.keys() and a["pre"].size > 0
    for key in a:
        assert np.array_equal(a[key], b[key], equal_nan=True), key


def test_fused_pass_follows_variables_added_after_setup():
    # the fused pass keeps numpy views of the store between calls: a variable registered
    # later (an optimiser's moments, say) must move and start at 0 like the others
    stores = []
    for fused in (True, False):
        s = _store(16, 16, 0.4, 3, True, [], seed=8)
        rule = nw.DeepR(fused=fused)
        rule.setup(_view(s), _ctx(s, 8))
        ctx = _ctx(s, 9)
        for r in range(3):
            if r == 1:
                s.add_var("late", init=torch.rand(s.nnz, generator=torch.Generator()) + 1)
            _new_weights(s, 20 + r, zeros=0.0)
            rule.update(_view(s, ctx.generator), ctx)
        stores.append(s)
    _assert_same_store(*stores)


def test_fused_edit_that_finds_no_room_changes_nothing(monkeypatch):
    # rewire_rows checks the edit before it writes: a plan asking a row for more synapses
    # than it has room for (which plan_rewiring never makes) is refused whole
    from neurowire.native import deep_r_kernels

    real = deep_r_kernels.plan_rewiring

    def overfull(weight, sign, length, n_post, autapses, pair, key, gone, counts):
        removed, failed = real(weight, sign, length, n_post, autapses, pair, key, gone, counts)
        counts[0] = weight.shape[1] + 1
        return removed, failed

    s = _store(10, 10, 0.5, 2, True, [], seed=4)
    log = RewiringLog()
    runner = _runner(s, nw.DeepR(l1=0.5), log)
    runner.setup(Clock(0, 0.0, 1.0))
    monkeypatch.setattr(deep_r_kernels, "plan_rewiring", overfull)
    _new_weights(s, 5, zeros=0.0)
    before = _state(s)
    with pytest.raises(nw.CapacityError):
        runner.update(0, Clock(1, 1.0, 1.0))
    assert _unchanged(s, before) and log.calls("p")["removed"].size == 0
    s.validate()


def test_setup_loads_the_kernels_of_the_first_calls():
    # numba specialises per argument type: set-up compiles (or loads from the cache) what the
    # first adjust_gradient and update run, so that the first batch does not
    from neurowire.native import deep_r_kernels as kernels

    g = torch.Generator().manual_seed(0)
    s = nw.RaggedSynapses.from_coo(8, 8, [0, 1, 2, 3, 4], [1, 2, 3, 4, 5], capacity=4, name="p")
    s.add_var(
        "weight", init=torch.randn(s.nnz, generator=g, dtype=torch.float64), dtype=torch.float64
    )
    s.add_var("age", dtype=torch.int16, batched=3)  # a variable set no other test uses
    names = ("plan_rewiring", "rewire_rows", "add_signed")
    versions = {n: len(getattr(kernels, n).overloads) for n in names}
    rule = nw.DeepR(l1=0.5)
    rule.setup(_view(s), _ctx(s, 1))
    assert len(kernels.rewire_rows.overloads) == versions["rewire_rows"] + 1
    versions = {n: len(getattr(kernels, n).overloads) for n in names}
    ctx = RuleContext(torch.Generator(), 0, 0.0, 1.0, "p", batch_size=2)
    rule.adjust_gradient(_view(s), torch.zeros(s.n_pre, s.capacity, dtype=torch.float64), ctx)
    _new_weights(s, 2, zeros=0.0)
    view = _view(s)
    rule.update(view, _ctx(s, 3))
    assert view.removed > 0
    assert {n: len(getattr(kernels, n).overloads) for n in names} == versions


def test_fused_pass_runs_only_on_cpu_stores_with_native_kernels():
    s = _store(6, 8, 0.5, 2, True, [], seed=0)
    rule = nw.DeepR()
    assert rule.atomic(_view(s))
    s.native_ops = False  # the store's PyTorch path: the rule takes the reference path
    assert not rule.atomic(_view(s))
    s.native_ops = True
    assert not nw.DeepR(fused=False).atomic(_view(s))
    assert not nw.DeepR(mode="original").atomic(_view(s))


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    l1=st.floats(1e-6, 10.0),
    batch=st.integers(1, 64),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_fused_l1_term_equals_the_torch_addition_bit_for_bit(seed, l1, batch, dtype):
    s = _store(9, 11, 0.4, 3, True, [], seed=seed)
    grads = []
    for fused in (True, False):
        rule = nw.DeepR(l1=l1, fused=fused)
        rule.setup(_view(s), _ctx(s, seed))
        ctx = RuleContext(torch.Generator(), 0, 0.0, 1.0, "p", batch_size=batch)
        grad = torch.randn(s.n_pre, s.capacity, generator=torch.Generator().manual_seed(seed))
        grad = torch.where(s.live, grad, -0.0).to(dtype)  # -0.0 on padding: + 0.0 flips it
        grads.append(rule.adjust_gradient(_view(s), grad, ctx))
    a, b = grads
    assert a.dtype == b.dtype == dtype
    assert torch.equal(a.view(-1).view(torch.uint8), b.view(-1).view(torch.uint8))


# ------------------------------------------------------------------ placements
class _Stream:
    """The numbers of a counter-based stream in order, from the PyTorch reference."""

    def __init__(self, key):
        self.key, self.position = key, 0

    def next(self):
        u = nw_rng.uniform(self.key, torch.tensor([self.position]), torch.float64)
        self.position += 1
        return float(u[0])


def _place_pairs_reference(key, dormant, room, n):
    """One placement at a time: a uniform ticket (one per unconnected pair of a row with
    room), accepted if still free and its row has room."""
    start = np.concatenate([[0], np.cumsum(np.where(room > 0, dormant, 0))])
    tickets, counts = int(start[-1]), np.zeros(room.size, dtype=np.int64)
    free = tickets
    stream, need = _Stream(key), n
    while need > 0 and free > 0:
        t = min(int(stream.next() * tickets), tickets - 1)
        row = int(np.searchsorted(start, t, side="right")) - 1
        if counts[row] < room[row] and t - start[row] >= counts[row]:
            counts[row] += 1
            need -= 1
            free -= 1 + (dormant[row] - counts[row] if counts[row] == room[row] else 0)
    return counts, need


def _place_rows_reference(key, room, n):
    counts, failed, need = np.zeros(room.size, dtype=np.int64), 0, n
    stream = _Stream(key)
    while need > 0:
        if (room - counts).sum() <= 0:
            return counts, failed + need
        row = min(int(stream.next() * room.size), room.size - 1)
        if counts[row] < room[row]:
            counts[row] += 1
            need -= 1
        else:
            failed += 1
    return counts, failed


@st.composite
def rows(draw):
    dormant = np.array(draw(st.lists(st.integers(0, 12), min_size=1, max_size=20)))
    room = np.array([draw(st.integers(0, d)) for d in dormant], dtype=np.int64)
    return dormant, room


@settings(max_examples=60, deadline=None)
@given(case=rows(), n=st.integers(0, 60), key=st.integers(0, 2**64 - 1))
def test_placements_equal_plain_python_references(case, n, key):
    dormant, room = case
    a = place_by_pair(key, dormant, room, n)
    b = _place_pairs_reference(key, dormant, room, n)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    a = place_by_row(key, room, n)
    b = _place_rows_reference(key, room, n)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]


# ------------------------------------------------------------------ the store's one-call edit
def _edit_store():
    s = nw.RaggedSynapses.from_coo(
        5, 5, [0, 0, 1, 2, 2, 3], [1, 4, 0, 3, 4, 2], capacity=4, autapses=False, name="p"
    )
    s.add_var("weight", init=torch.arange(6.0) + 1)
    s.add_var("trace", init=2.0, batched=2, dtype=torch.float64)
    return s


def test_replace_native_is_remove_then_add_of_the_drawn_pairs():
    a, b = _edit_store(), _edit_store()
    gone = np.zeros((5, 4), dtype=bool)
    gone[0, 0] = gone[2, 1] = gone[3, 3] = True  # (3, 3) is padding: ignored
    per_row = np.array([2, 1, 0, 3, 0])
    edit = a.replace_native(gone, per_row, 12345, lambda pre, post: {"weight": -(post + 1.0)})
    assert np.array_equal(edit.removed, [1, 0, 1, 0, 0])
    assert np.array_equal(edit.pre, [0, 0, 1, 3, 3, 3])
    assert not np.any(edit.pre == edit.post)  # no autapse
    b.remove(torch.from_numpy(gone))
    b.add(torch.from_numpy(edit.pre), torch.from_numpy(edit.post), weight=-(edit.post + 1.0))
    a.validate()
    _assert_same_store(a, b)


def test_replace_native_draws_uniformly_over_the_free_columns():
    # row 0 keeps columns {4}, row 3 keeps {2}; without autapses row 0 may take 1, 2, 3 and
    # row 3 may take 0, 1, 4 (column 3 is itself)
    counts = np.zeros((5, 5))
    trials = 3000
    gone = np.zeros((5, 4), dtype=bool)
    gone[0, 0] = True
    for key in range(trials):
        edit = _edit_store().replace_native(gone, np.array([1, 0, 0, 1, 0]), key)
        counts[edit.pre, edit.post] += 1
    assert counts[0, [0, 4]].sum() == 0 and counts[3, [2, 3]].sum() == 0
    for row, cols in ((0, [1, 2, 3]), (3, [0, 1, 4])):
        assert stats.chisquare(counts[row, cols]).pvalue > 1e-3


def _state(s):
    return {k: v.clone() for k, v in s.state_dict().items() if torch.is_tensor(v)} | {
        k: v.clone() for k, v in s.vars.items()
    }


def _unchanged(s, before):
    after = _state(s)
    return all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(
    ("per_row", "key", "values", "error"),
    [
        ([0, 0, 0, 4, 0], 0, None, nw.CapacityError),  # row 3 has room for 3
        ([0, 0, 0, 0, 5], 0, None, nw.CapacityError),  # row 4 has 4 free columns
        ([1, 0, 0, 0, 0], -1, None, ValueError),
        ([1, 0, 0, 0, 0], 2**64, None, ValueError),
        ([1, 0, 0, 0, 0], 0.5, None, TypeError),
        ([1, 0, 0, 0, 0], 0, lambda p, q: {"weight": [np.nan]}, ValueError),
        ([1, 0, 0, 0, 0], 0, lambda p, q: {"nope": [1.0]}, ValueError),
        ([1, 0, 0, 0, 0], 0, lambda p, q: {"weight": [1.0, 2.0]}, ValueError),
        ([-1, 0, 0, 0, 0], 0, None, ValueError),
        ([1.0, 0, 0, 0, 0], 0, None, TypeError),
    ],
)
def test_replace_native_raises_before_changing_anything(per_row, key, values, error):
    s = _edit_store()
    before, version = _state(s), s.version
    gone = np.zeros((5, 4), dtype=bool)
    gone[0, 0] = True
    with pytest.raises(error):
        s.replace_native(gone, np.array(per_row), key, values)
    assert _unchanged(s, before) and s.version == version
    s.validate()


# ------------------------------------------------------------------ the runner's snapshot
class _Raises(nw.StructuralRule):
    """Declares itself atomic and raises before changing anything."""

    def atomic(self, view):
        return True

    def update(self, view, ctx):
        raise RuntimeError("refused")


def _runner(store, rule, log):
    return RuleRunner([("p", rule)], 0, "cpu", lambda name, gen, ev: _view(store, gen, log), log)


def test_runner_copies_no_store_for_atomic_calls(monkeypatch):
    copies = []
    original = transaction.Transaction.protect
    monkeypatch.setattr(
        transaction.Transaction,
        "protect",
        lambda self, store: copies.append(store.name) or original(self, store),
    )
    s = _store(20, 20, 0.3, 3, True, [], seed=1)
    log = RewiringLog()
    fused = _runner(s, nw.DeepR(l1=0.5), log)
    fused.setup(Clock(0, 0.0, 1.0))
    _new_weights(s, 4, zeros=0.0)
    fused.update(0, Clock(1, 1.0, 1.0))
    assert copies == [] and log.totals("p")["removed"] > 0
    reference = _runner(s, nw.DeepR(l1=0.5, fused=False), log)
    reference.setup(Clock(0, 0.0, 1.0))
    reference.update(0, Clock(2, 2.0, 1.0))
    assert copies == ["p"]


def test_an_atomic_rule_that_raises_leaves_store_and_log_unchanged():
    s = _store(10, 10, 0.4, 2, True, [], seed=2)
    log = RewiringLog()
    runner = _runner(s, _Raises(), log)
    before, calls = _state(s), log.calls("p")["removed"].size
    with pytest.raises(RuntimeError, match="refused"):
        runner.update(0, Clock(1, 1.0, 1.0))
    assert _unchanged(s, before)
    assert log.calls("p")["removed"].size == calls
