"""The sealed store: ind/row_length are read-only, out-of-band writes are caught, mutation()
is the sanctioned way to edit them; values_version and the cached dense view."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurowire as nw
from neurowire.store import StoreError

TAMPERED = "ind/row_length were written outside `with store.mutation"


def store(device, native=True, batched=False):
    """8 x 10, capacity 6, on ``device``: rows hold (i, i..i+3 mod 10) with weight
    10 * pre + post."""
    pre = torch.arange(8).repeat_interleave(4)
    post = (pre + torch.arange(4).repeat(8)) % 10
    s = nw.RaggedSynapses(8, 10, 6, device, name="seal")
    s.native_ops = native
    s.add_var("weight")
    if batched:
        s.add_var("e", batched=2)
    s.add(pre.to(device), post.to(device), weight=(10.0 * pre + post).to(device))
    return s


def pairs(s):
    pre, post = s.coo()
    return set(zip(pre.tolist(), post.tolist(), strict=True))


ACCESSES = {
    "live": lambda s: s.live,
    "coo": lambda s: s.coo(),
    "csr": lambda s: s.csr(),
    "columns": lambda s: s.columns(),
    "padded_columns": lambda s: s.padded_columns(),
    "values": lambda s: s.values("weight"),
    "to_dense": lambda s: s.to_dense("weight"),
    "dense": lambda s: s.dense(),
    "contains": lambda s: s.contains([0], [0]),
    "remove": lambda s: s.remove(torch.zeros(8, 6, dtype=torch.bool, device=s.device)),
    "add": lambda s: s.add([0], [9]),
    "grow": lambda s: s.grow(torch.ones(8, dtype=torch.int64, device=s.device)),
    "state_dict": lambda s: s.state_dict(),
    "validate": lambda s: s.validate(),
    "add_var": lambda s: s.add_var("other"),
}

WRITES = {
    "row_length item": lambda s: s.row_length.__setitem__(1, 0),
    "ind item": lambda s: s.ind.__setitem__((0, 0), 5),
    "ind through a view": lambda s: s.ind[2].fill_(0),
    "row_length in-place op": lambda s: s.row_length.add_(0),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
@pytest.mark.parametrize("access", ACCESSES.values(), ids=ACCESSES.keys())
def test_a_write_outside_a_mutation_is_caught_by_every_view_and_operation(device, access, write):
    s = store(device)
    s.live, s.coo(), s.csr(), s.columns(), s.dense()  # warm caches that would go stale
    write(s)
    with pytest.raises(StoreError, match=TAMPERED) as err:
        access(s)
    assert "'seal'" in str(err.value) and "with store.mutation():" in str(err.value)


def test_the_issue_example_row_length_write_no_longer_leaves_stale_views(device):
    s = store(device)
    assert s.live[1].sum() == 4 and s.coo()[0].numel() == 32 and s.csr().indices.numel() == 32
    s.row_length[1] = 0
    for access in (lambda: s.live, s.coo, s.csr):
        with pytest.raises(StoreError, match=TAMPERED):
            access()
    assert isinstance(StoreError("x"), ValueError)


def test_load_state_dict_repairs_a_tampered_store(device):
    s = store(device)
    saved = s.state_dict()
    s.row_length[1] = 0
    s.load_state_dict(saved)
    assert s.nnz == 32 and s.live[1].sum() == 4
    s.validate()


@pytest.mark.parametrize("attr", ["ind", "row_length"])
def test_structure_cannot_be_reassigned(device, attr):
    s = store(device)
    original = getattr(s, attr)
    with pytest.raises(AttributeError, match=r"read-only.*with store\.mutation\(\):"):
        setattr(s, attr, original.clone())
    assert getattr(s, attr) is original


@pytest.mark.parametrize("native", [True, False], ids=["numba", "torch"])
def test_the_store_own_operations_keep_the_seal(device, native):
    s = store(device, native=native)
    version = s.version
    s.remove(s.live & (s.ind % 3 == 0))
    s.add(torch.tensor([0, 0], device=device), torch.tensor([7, 8], device=device), weight=1.0)
    s.grow(torch.full((8,), 2, device=device), generator=torch.Generator(device).manual_seed(1))
    s.set_values("weight", torch.zeros(s.nnz, device=device))
    s.validate()
    assert s.version > version
    s.load_state_dict(s.state_dict())
    s.to("cpu").validate()
    d = s.state_dict()
    nw.RaggedSynapses.from_state_dict(d).validate()


def test_numpy_writes_followed_by_changed_are_the_native_engine_contract():
    """Kernels writing through numpy views are invisible to the seal; they call _changed()."""
    s = store("cpu")  # numpy views: the CPU only
    assert s.live[1].sum() == 4  # cached
    s.row_length.numpy()[1] = 0  # as a fused rule kernel does
    s._changed()
    assert s.live[1].sum() == 0 and s.nnz == 28 and (1 not in s.coo()[0].tolist())
    s.validate()


def test_mutation_edits_take_effect_bump_versions_and_refresh_every_view(device):
    s = store(device)
    old_live, old_coo, old_csr, old_cols = s.live, s.coo(), s.csr(), s.columns()
    old_padded, old_dense = s.padded_columns(), s.dense()
    version, values_version = s.version, s.values_version
    ind, row_length, w = s.ind, s.row_length, s.vars["weight"]
    with s.mutation() as m:
        assert m is s
        s.row_length[1] = 0  # drop row 1
        s.ind[0, 3] = 9  # retarget (0, 3) -> (0, 9)
        s.vars["weight"][0, 3] = -1.0
        assert s.live[1].sum() == 0  # views inside follow the edits
    assert s.version > version and s.values_version > values_version
    assert s.ind is ind and s.row_length is row_length and s.vars["weight"] is w
    want = {(i, (i + j) % 10) for i in range(8) for j in range(4) if i != 1} - {(0, 3)} | {(0, 9)}
    assert pairs(s) == want and s.nnz == 28
    assert s.live[1].sum() == 0 and not torch.equal(s.live, old_live)
    assert s.csr().indices.numel() == 28 and not torch.equal(s.coo()[0], old_coo[0])
    assert s.columns().length[9] == old_cols.length[9] + 1
    assert s.csr().indptr[-1] == 28 and old_csr.indptr[-1] == 32
    assert (s.padded_columns() != 8 * 6).sum() == 28 and (old_padded != 8 * 6).sum() == 32
    assert s.dense()[0, 9] == -1.0 and s.dense()[1].abs().sum() == 0 and old_dense[0, 9] == 0
    assert torch.equal(s.dense(), s.to_dense("weight"))
    s.validate()


def test_a_mutation_block_that_raises_is_undone_and_the_error_passes_unchanged(device):
    s = store(device)
    before = s.state_dict()
    err = RuntimeError("boom")
    with pytest.raises(RuntimeError) as caught:
        with s.mutation():
            s.row_length[:] = 0
            s.vars["weight"].fill_(3.0)
            s.vars["new"] = torch.zeros(8, 6, device=device)
            raise err
    assert caught.value is err
    after = s.state_dict()
    assert torch.equal(after["ind"], before["ind"])
    assert torch.equal(after["row_length"], before["row_length"])
    assert after["vars"].keys() == before["vars"].keys()
    assert torch.equal(after["vars"]["weight"], before["vars"]["weight"])
    assert s.nnz == 32 and len(pairs(s)) == 32


def test_nested_mutations_join_the_outer_one(device):
    s = store(device)
    before = s.state_dict()
    with pytest.raises(StoreError, match="duplicate synapse"):
        with s.mutation():
            with s.mutation():
                s.row_length[1] = 0
            s.ind[0, 1] = s.ind[0, 0]  # only the outer exit validates
    assert torch.equal(s.state_dict()["ind"], before["ind"])
    assert torch.equal(s.state_dict()["row_length"], before["row_length"])


def test_a_mutation_cannot_start_on_a_tampered_store(device):
    s = store(device)
    s.row_length[1] = 0
    with pytest.raises(StoreError, match=TAMPERED):
        with s.mutation():
            pass


def test_writing_into_a_cached_view_is_caught_and_the_view_rebuilt(device):
    s = store(device)
    live = s.live
    live[0, 0] = False
    with pytest.raises(StoreError, match="cached live view was written in place"):
        _ = s.live
    assert s.live[0, 0] and s.live is not live  # rebuilt from the raw arrays
    pre, _ = s.coo()
    pre += 1
    with pytest.raises(StoreError, match="cached coo view"):
        s.coo()
    assert s.coo()[0][0] == 0


def test_pickle_and_deepcopy_keep_a_valid_seal(device):
    s = store(device)
    s.remove(s.live & (s.ind == 3))  # version counters advanced
    s.padded_columns(), s.dense()  # cached views whose own counters advanced while built
    for twin in (copy.deepcopy(s), pickle.loads(pickle.dumps(s))):
        twin.validate()
        assert pairs(twin) == pairs(s)
        assert torch.equal(twin.padded_columns(), s.padded_columns())
        assert torch.equal(twin.dense(), s.dense())


# ------------------------------------------------------------ values_version
VALUE_CHANGES = {
    "set_values": lambda s: s.set_values("weight", torch.ones(s.nnz, device=s.device)),
    "add": lambda s: s.add([0], [9], weight=2.0),
    "remove": lambda s: s.remove(s.live & (s.ind == 0)),
    "grow": lambda s: s.grow(torch.ones(8, dtype=torch.int64, device=s.device)),
    "mutation": None,  # below
    "load_state_dict": lambda s: s.load_state_dict(s.state_dict()),
    "values_changed": lambda s: s.values_changed(),
    "add_var": lambda s: s.add_var("x"),
}


@pytest.mark.parametrize("change", VALUE_CHANGES.keys())
def test_values_version_is_bumped_by_every_value_change(device, change):
    s = store(device)
    before = s.values_version
    if change == "mutation":
        with s.mutation():
            s.vars["weight"].mul_(2)
    else:
        VALUE_CHANGES[change](s)
    assert s.values_version > before


def test_reads_bump_no_version(device):
    s = store(device)
    versions = s.version, s.values_version
    s.live, s.coo(), s.csr(), s.columns(), s.padded_columns(), s.values("weight"), s.dense()
    s.to_dense("weight"), s.contains([0], [1]), s.state_dict(), s.validate()
    assert (s.version, s.values_version) == versions


# ------------------------------------------------------------ dense()
def test_dense_equals_to_dense_and_is_cached(device):
    s = store(device, batched=True)
    d = s.dense()
    assert torch.equal(d, s.to_dense("weight")) and s.dense() is d
    assert torch.equal(s.dense("e"), s.to_dense("e")) and s.dense("e").shape == (2, 8, 10)


DENSE_REFRESH = {
    "set_values": lambda s: s.set_values(
        "weight", torch.arange(s.nnz, dtype=torch.float32, device=s.device)
    ),
    "add": lambda s: s.add([0], [9], weight=5.0),
    "remove": lambda s: s.remove(s.live & (s.ind == 0)),
    "numpy write + values_changed": lambda s: (
        s.vars["weight"].numpy().__setitem__((0, 0), 7.0),
        s.values_changed(),
    ),
    "torch in-place write": lambda s: s.vars["weight"].mul_(3),
    "variable replaced": lambda s: s.vars.__setitem__("weight", s.vars["weight"] * 2),
}


@pytest.mark.parametrize("change", DENSE_REFRESH.keys())
def test_dense_refreshes_after_every_change(device, change):
    if "numpy" in change and device.type != "cpu":
        pytest.skip("numpy views of a store exist on the CPU only")
    s = store(device)
    old = s.dense().clone()
    DENSE_REFRESH[change](s)
    new = s.dense()
    assert torch.equal(new, s.to_dense("weight")) and not torch.equal(new, old)


def test_numpy_writes_need_values_changed():
    s = store("cpu")  # numpy views: the CPU only
    d = s.dense()
    s.vars["weight"].numpy()[0, 0] = 7.0  # invisible to torch: the cache cannot know
    assert s.dense() is d
    s.values_changed()
    assert s.dense()[0, 0] == 7.0


# ------------------------------------------------------------ property
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)  # the device fixture is a constant per test case
@given(
    which=st.sampled_from(["ind", "row_length"]),
    row=st.integers(0, 7),
    col=st.integers(0, 5),
    value=st.integers(-2, 11),
    ops=st.lists(st.sampled_from(["remove", "add", "grow", "mutate"]), max_size=4),
)
def test_any_out_of_band_write_is_caught_after_any_sanctioned_history(
    device, which, row, col, value, ops
):
    s = store(device)
    gen = torch.Generator(device).manual_seed(row * 7 + col)
    for op in ops:
        if op == "remove":
            s.remove(s.live & (s.ind % 2 == row % 2))
        elif op == "add":
            s.add([row], [col], on_full="skip", on_duplicate="skip")
        elif op == "grow":
            s.grow(torch.ones(8, dtype=torch.int64, device=device), generator=gen)
        else:
            with s.mutation():
                s.row_length[row] = min(int(s.row_length[row]), 1)
    s.validate()
    if which == "ind":
        s.ind[row, col] = value
    else:
        s.row_length[row] = value
    with pytest.raises(StoreError, match=TAMPERED):
        s.coo()
