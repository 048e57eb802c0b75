"""The numba store kernels (CPU) give exactly the stores of the PyTorch reference path."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import neurowire as nw


def _pair(autapses: bool, seed: int):
    stores = []
    for native in (True, False):
        s = nw.RaggedSynapses(6, 6 if not autapses else 7, 4, name="p", autapses=autapses)
        s.native_ops = native
        s.add_var("weight")
        s.add_var("trace", batched=2, dtype=torch.float64)
        s.add_var("flag", dtype=torch.int8)
        stores.append(s)
    return stores


def _same(a, b):
    assert torch.equal(a.row_length, b.row_length)
    live = a.live
    assert torch.equal(a.ind[live], b.ind[live])
    for name in a.vars:
        assert torch.equal(a.vars[name], b.vars[name]), name
    a.validate()


ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "remove"]),
        st.integers(0, 2**31 - 1),
        st.sampled_from(["raise", "skip"]),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(ops=ops, autapses=st.booleans())
def test_native_and_torch_paths_agree_on_random_adds_and_removes(ops, autapses):
    a, b = _pair(autapses, 0)
    for kind, seed, policy in ops:
        g = torch.Generator().manual_seed(seed)
        if kind == "remove":
            mask = torch.rand(a.n_pre, a.capacity, generator=g) < 0.4
            assert torch.equal(a.remove(mask), b.remove(mask))
        else:
            k = int(torch.randint(0, 10, (1,), generator=g))
            pre = torch.randint(0, a.n_pre, (k,), generator=g)
            post = torch.randint(0, a.n_post, (k,), generator=g)
            if not autapses:
                post = torch.where(post == pre, (post + 1) % a.n_post, post)
            w = torch.randn(k, generator=g)
            outcomes = []
            for s in (a, b):
                try:
                    got = s.add(
                        pre,
                        post,
                        on_full=policy,
                        on_duplicate=policy,
                        weight=w,
                        flag=torch.ones(k, dtype=torch.int8),
                        trace=1.5,
                    )
                    outcomes.append(("ok", got))
                except (nw.CapacityError, nw.DuplicateSynapseError) as err:
                    outcomes.append((type(err), str(err)))
            if outcomes[0][0] == "ok":
                assert outcomes[1][0] == "ok" and torch.equal(outcomes[0][1], outcomes[1][1])
            else:
                assert outcomes[0] == outcomes[1]
        _same(a, b)


@pytest.mark.parametrize("native", [True, False])
def test_remove_returns_counts_per_row_and_moves_values(native):
    s = nw.RaggedSynapses.from_coo(3, 5, [0, 0, 0, 2], [1, 3, 4, 0], capacity=4, name="p")
    s.native_ops = native
    s.add_var("weight", init=torch.tensor([1.0, 2.0, 3.0, 4.0]))
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[0, 1] = True
    mask[1, 0] = True  # padding: ignored
    assert s.remove(mask).tolist() == [1, 0, 0]
    assert s.values("weight").tolist() == [1.0, 3.0, 4.0]
    assert s.coo()[1].tolist() == [1, 4, 0]


def test_slot_columns_are_the_column_index_in_fixed_buffers_cached_by_the_store():
    pytest.importorskip("numba")
    from neurowire.native import rules

    s, _ = _pair(autapses=True, seed=3)
    s.grow(torch.full((s.n_pre,), 3), generator=torch.Generator().manual_seed(1))
    assert s.nnz == 3 * s.n_pre
    indptr, slot = s.slot_columns()
    assert slot.numel() == s.n_pre * s.capacity
    cols = s.columns()
    assert torch.equal(indptr, cols.indptr) and torch.equal(slot[: s.nnz], cols.slot)
    # the numba rebuild used inside native blocks writes the same index
    ptr2, slot2 = torch.zeros_like(indptr), torch.zeros_like(slot)
    rules.rebuild_columns(
        s.ind.numpy(), s.row_length.numpy(), s.n_post, ptr2.numpy(), slot2.numpy()
    )
    assert torch.equal(ptr2, indptr) and torch.equal(slot2[: s.nnz], slot[: s.nnz])
    assert s.slot_columns()[0] is indptr  # cached
    s.remove(s.live & (torch.rand(s.live.shape, generator=torch.Generator().manual_seed(0)) < 0.5))
    fresh_ptr, fresh_slot = s.slot_columns()  # the structure changed: rebuilt
    assert fresh_ptr is not indptr and torch.equal(fresh_slot[: s.nnz], s.columns().slot)
    # a changer that rebuilt the buffers in place keeps them cached across the version bump
    with s.mutation():
        pass
    kept = s.slot_columns()
    s._changed(rebuilt=("slot_columns",))
    assert s.slot_columns()[0] is kept[0]


def _shares_memory(view, tensor) -> bool:
    return view.size and np.shares_memory(view, tensor.numpy())


def test_native_layout_views_every_array_and_is_cached():
    pytest.importorskip("numba")
    s, _ = _pair(autapses=True, seed=0)
    layout = s.native_layout()
    assert s.native_layout() is layout  # cached
    assert layout.ind.shape == (1, s.n_pre, s.capacity) and _shares_memory(layout.ind, s.ind)
    assert _shares_memory(layout.length, s.row_length)
    assert list(layout.vars) == list(s.vars)
    assert layout.vars["trace"].shape == (2, s.n_pre, s.capacity)
    assert layout.vars["weight"].shape == (1, s.n_pre, s.capacity)
    for name, var in s.vars.items():
        assert _shares_memory(layout.vars[name], var)
    s.grow(torch.full((s.n_pre,), 2), generator=torch.Generator().manual_seed(0))
    assert s.native_layout() is layout  # structural changes edit the same tensors


def test_native_layout_follows_variables_added_dropped_and_replaced():
    pytest.importorskip("numba")
    s, _ = _pair(autapses=True, seed=0)
    first = s.native_layout()
    s.add_var("age", dtype=torch.int32)
    assert list(s.native_layout().vars) == list(s.vars)
    del s.vars["age"]
    assert list(s.native_layout().vars) == ["weight", "trace", "flag"]
    for _ in range(20):  # a new tensor may reuse a dropped one's address
        del s.vars["weight"]
        s.vars["weight"] = torch.zeros(s.n_pre, s.capacity)
        assert _shares_memory(s.native_layout().vars["weight"], s.vars["weight"])
    assert s.native_layout() is not first
    s.set_values("flag", torch.ones(s.nnz, dtype=torch.int8))  # replaces the tensor object
    assert _shares_memory(s.native_layout().vars["flag"], s.vars["flag"])


def test_native_layout_is_none_where_native_edits_cannot_run():
    pytest.importorskip("numba")
    s, _ = _pair(autapses=True, seed=0)
    assert s.native_edits
    s.native_ops = False
    assert s.native_layout() is None and not s.native_edits
    s.native_ops = True
    assert s.native_edits
    s.vars["strided"] = torch.zeros(s.capacity, s.n_pre).t()  # not contiguous
    assert s.native_layout() is None and not s.native_edits
    del s.vars["strided"]
    s.vars["half"] = torch.zeros(s.n_pre, s.capacity, dtype=torch.float16)  # no numba dtype
    assert not s.native_edits
    del s.vars["half"]
    assert s.native_edits


def test_a_copied_store_gets_views_of_its_own_arrays():
    pytest.importorskip("numba")
    s, _ = _pair(autapses=True, seed=0)
    s.native_layout()
    for twin in (copy.deepcopy(s), pickle.loads(pickle.dumps(s))):
        layout = twin.native_layout()
        assert _shares_memory(layout.vars["weight"], twin.vars["weight"])
        assert not np.shares_memory(layout.vars["weight"], s.vars["weight"].numpy())
