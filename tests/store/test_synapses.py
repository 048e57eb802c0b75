"""Behaviour of the sparse synapse store, RaggedSynapses.

Most tests are order-independent: every per-synapse value encodes its own (pre, post) pair, so
after any reordering of a row each value is checked against its pair instead of against a slot.
Covered here: remove one synapse per row, remove via per-row targets computed beforehand, add
back with values (shared and batched variables of several dtypes), zeros for variables not
given, several additions to one row (GeNN's issue 625), capacity and duplicate errors, the
column index after changes.
"""

from __future__ import annotations

import resource
import sys
import time

import pytest
import torch
from scipy.stats import chisquare

import neurowire as nw
from neurowire.store import StoreError

N = 64  # the 64 x 64 upper-triangular pattern of GeNN's feature tests
B = 3  # batch copies of batched variables

# name -> add_var arguments: shared and batched variables of several dtypes
VAR_SPECS = {
    "w": dict(dtype=torch.float32),
    "d": dict(dtype=torch.float64),
    "n": dict(dtype=torch.int32),
    "b": dict(dtype=torch.bool),
    "e": dict(dtype=torch.float32, batched=B),
    "m": dict(dtype=torch.int32, batched=B),
}


def code(pre, post, n_batch=B):
    """Every variable as a function of (pre, post): [k] for shared, [B, k] for batched ones."""
    c = pre * 1000 + post
    copies = torch.arange(n_batch, device=c.device)[:, None]
    return {
        "w": c.to(torch.float32),
        "d": c.to(torch.float64) + 0.25,
        "n": (-c).to(torch.int32),
        "b": (pre + post) % 3 == 0,
        "e": (c + 100_000 * copies).to(torch.float32),
        "m": (c * (copies + 1)).to(torch.int32),
    }


def make_store(pre, post, capacity, device, n=N, name="src->tgt", **kwargs):
    s = nw.RaggedSynapses(n, n, capacity, device, name=name, **kwargs)
    for var, spec in VAR_SPECS.items():
        s.add_var(var, **spec)
    pre = torch.as_tensor(pre, device=s.device)
    post = torch.as_tensor(post, device=s.device)
    s.add(pre, post, **code(pre, post))
    return s


def triangle(device):
    """Rows i = 0..63 hold columns j >= i (row i has 64 - i synapses), capacity 64."""
    pre, post = torch.triu_indices(N, N, device=device)
    return make_store(pre, post, N, device)


def assert_codes(s):
    """Every variable of every live synapse still equals its (pre, post) code."""
    pre, post = s.coo()
    want = code(pre, post)
    for var in s.vars:
        got = s.values(var)
        assert got.dtype == VAR_SPECS[var]["dtype"], var
        assert torch.equal(got, want[var]), f"variable {var!r} lost its synapse"


def rows(s):
    """The connectivity as one set of targets per row (independent of slot order)."""
    pre, post = (t.tolist() for t in s.coo())
    out = [set() for _ in range(s.n_pre)]
    for i, j in zip(pre, post, strict=True):
        out[i].add(j)
    return out


def pairs(s):
    pre, post = s.coo()
    return set(zip(pre.tolist(), post.tolist(), strict=True))


def assert_same_state(before, after):
    assert before.keys() == after.keys()
    for key, a in before.items():
        b = after[key]
        if key == "vars":
            assert a.keys() == b.keys()
            for var in a:
                assert torch.equal(a[var], b[var]), var
        elif isinstance(a, torch.Tensor):
            assert torch.equal(a, b), key
        else:
            assert a == b, key


def diagonal_mask(s):
    return s.live & (s.ind == torch.arange(s.n_pre, device=s.device)[:, None])


# ------------------------------------------------------------ removal
def test_triangle_store_holds_each_value_at_its_pair(device):
    s = triangle(device)
    assert s.nnz == N * (N + 1) // 2
    assert s.row_length.tolist() == [N - i for i in range(N)]
    assert rows(s) == [set(range(i, N)) for i in range(N)]
    assert_codes(s)
    s.validate()


def test_remove_one_synapse_per_row_keeps_every_variable_with_its_synapse(device):
    s = triangle(device)
    removed = s.remove(diagonal_mask(s))
    assert removed.tolist() == [1] * N
    assert s.row_length.tolist() == [N - 1 - i for i in range(N)]
    assert rows(s) == [set(range(i + 1, N)) for i in range(N)]
    assert_codes(s)
    s.validate()


def test_removal_is_stable_within_each_row(device):
    """The module documents stable removal: survivors keep their relative order."""
    s = triangle(device)
    s.remove(diagonal_mask(s) | (s.live & (s.ind % 5 == 0)))
    for i in range(N):
        row = s.ind[i, : int(s.row_length[i])].tolist()
        assert row == [j for j in range(i + 1, N) if j % 5], i


@pytest.mark.parametrize("how", ["target_per_row", "target_bitmask"])
def test_remove_via_per_row_targets_computed_beforehand(device, how):
    """GeNN feature test (b)/(c): the host decides each row's target first, the rows act on it."""
    s = triangle(device)
    i = torch.arange(N, device=device)
    target = (i + N - 1) // 2  # a column inside row i (i <= target <= 63), mid-row for most rows
    if how == "target_per_row":
        mask = s.live & (s.ind == target[:, None])
    else:
        bits = torch.zeros(N, N, dtype=torch.bool, device=device)
        bits[i, target] = True
        # padding slots of ind are unspecified: clamp before gathering, the live mask drops them
        mask = s.live & bits.gather(1, s.ind.clamp(0, N - 1))
    assert s.remove(mask).tolist() == [1] * N
    assert s.row_length.tolist() == [N - 1 - r for r in range(N)]
    assert rows(s) == [set(range(r, N)) - {int(target[r])} for r in range(N)]
    assert_codes(s)
    s.validate()


@pytest.mark.parametrize("n_batch", [1, 4])
def test_remove_first_synapse_of_every_row_on_random_connectivity(device, generator, n_batch):
    """GeNN feature test: random sparsity, remove the first synapse of every row, pull, check."""
    n_pre, n_post = 50, 40
    hit = torch.rand(n_pre, n_post, generator=generator, device=device) < 0.1
    pre, post = hit.nonzero(as_tuple=True)
    s = nw.RaggedSynapses.from_coo(n_pre, n_post, pre, post, padding=1.5, device=device)
    s.add_var("g", init=(pre * n_post + post).float())
    s.add_var("x", batched=n_batch, init=(pre * n_post + post)[None] * torch.ones(n_batch, 1))
    nonempty = int((s.row_length > 0).sum())
    first = torch.zeros_like(s.live)
    first[:, 0] = True
    before = s.nnz
    assert s.remove(first).tolist() == (hit.sum(1) > 0).long().tolist()
    assert s.nnz == before - nonempty
    p, q = s.coo()
    assert torch.equal(s.values("g"), (p * n_post + q).float())
    assert torch.equal(s.values("x"), (p * n_post + q).float().expand(n_batch, -1))
    s.validate()


def test_remove_ignores_true_on_padding_slots(device):
    s = triangle(device)
    s.remove(diagonal_mask(s))
    state = s.state_dict()
    removed = s.remove(~s.live)  # True only on padding slots
    assert removed.tolist() == [0] * N
    assert_same_state(state, s.state_dict())


# ------------------------------------------------------------ addition
@pytest.mark.parametrize("batched_form", ["[k] for all copies", "[B, k]"])
def test_add_diagonal_back_with_values(device, batched_form):
    s = triangle(device)
    s.remove(diagonal_mask(s))
    i = torch.arange(N, device=device)
    values = code(i, i)
    if batched_form == "[k] for all copies":
        values["e"] = values["e"][1]  # one [k] vector written into every batch copy
        values["m"] = values["m"][2]
    added = s.add(i, i, **values)
    assert added.all() and added.shape == (N,)
    assert s.row_length.tolist() == [N - r for r in range(N)]
    assert rows(s) == [set(range(r, N)) for r in range(N)]
    pre, post = s.coo()
    diag = pre == post
    if batched_form == "[B, k]":
        assert_codes(s)
    else:
        want = code(pre, post)
        for var in ("w", "d", "n", "b"):
            assert torch.equal(s.values(var), want[var])
        for var, copy in (("e", 1), ("m", 2)):
            got = s.values(var)
            assert torch.equal(got[:, ~diag], want[var][:, ~diag])
            assert torch.equal(got[:, diag], want[var][copy, diag].expand(B, -1))
    s.validate()


def test_added_synapses_start_at_zero_in_variables_not_given(device):
    s = triangle(device)
    s.remove(diagonal_mask(s))
    for var in s.vars.values():  # padding slots are unspecified: fill them with junk
        var[..., ~s.live] = True if var.dtype == torch.bool else 7
    i = torch.arange(N, device=device)
    s.add(i, i, w=0.5)
    pre, post = s.coo()
    diag = pre == post
    assert torch.equal(s.values("w")[diag], torch.full((N,), 0.5, device=device))
    for var in ("d", "n", "b", "e", "m"):
        new = s.values(var)[..., diag]
        assert torch.equal(new, torch.zeros_like(new)), var
    want = code(pre, post)
    for var in ("d", "n", "b", "e", "m"):  # the old synapses are untouched
        assert torch.equal(s.values(var)[..., ~diag], want[var][..., ~diag]), var


def test_several_additions_to_one_row_in_one_call_fill_it_to_capacity(device):
    """genn#625: several add_synapse calls on one row in one update overflowed GeNN's check."""
    s = make_store([3, 3, 5], [0, 1, 9], capacity=6, device=device, n=16)
    pre = torch.tensor([3, 5, 3, 3, 5, 3], device=device)
    post = torch.tensor([10, 2, 4, 15, 3, 7], device=device)
    assert s.add(pre, post, **code(pre, post)).all()
    assert s.row_length[3] == 6 and s.row_length[5] == 3
    assert rows(s)[3] == {0, 1, 10, 4, 15, 7} and rows(s)[5] == {9, 2, 3}
    # additions append in call order
    assert s.ind[3].tolist() == [0, 1, 10, 4, 15, 7]
    assert_codes(s)
    s.validate()
    with pytest.raises(nw.CapacityError, match=r"row 3 has 0 free slots"):
        s.add([3], [8])


def test_capacity_error_names_projection_and_row_and_changes_nothing(device):
    s = make_store([5, 5, 5, 2], [1, 2, 3, 4], capacity=4, device=device, n=16)
    state, version = s.state_dict(), s.version
    pre = torch.tensor([0, 5, 1, 5], device=device)  # row 5 has one free slot for two
    post = torch.tensor([1, 8, 2, 9], device=device)
    with pytest.raises(nw.CapacityError, match=r"'src->tgt'.*row 5 has 1 free slots for 2 new"):
        s.add(pre, post, **code(pre, post))
    assert_same_state(state, s.state_dict())
    assert s.version == version


def test_capacity_error_is_a_value_error_and_zero_capacity_rejects_everything(device):
    s = nw.RaggedSynapses(3, 3, 0, device, name="p")
    with pytest.raises(ValueError, match=r"'p': row 1 has 0 free slots"):
        s.add([1], [2])
    assert s.nnz == 0


@pytest.mark.parametrize(
    "pre, post, bad",
    [([0, 2], [7, 3], r"\(2, 3\) already exists"), ([0, 4, 0], [7, 6, 7], r"\(0, 7\)")],
    ids=["existing pair", "repeated within the call"],
)
def test_duplicate_synapse_raises_naming_pair_and_changes_nothing(device, pre, post, bad):
    s = make_store([2, 2], [3, 5], capacity=4, device=device, n=8, name="a->b")
    state, version = s.state_dict(), s.version
    pre = torch.tensor(pre, device=device)
    post = torch.tensor(post, device=device)
    with pytest.raises(nw.DuplicateSynapseError, match="a->b: synapse " + bad):
        s.add(pre, post, **code(pre, post))
    assert_same_state(state, s.state_dict())
    assert s.version == version
    assert issubclass(nw.DuplicateSynapseError, ValueError)


def test_skip_duplicates_adds_the_rest_and_first_occurrence_wins(device):
    s = make_store([2, 2], [3, 5], capacity=6, device=device, n=8)
    pre = torch.tensor([2, 1, 1, 2, 1, 4], device=device)
    post = torch.tensor([3, 6, 0, 4, 6, 1], device=device)
    w = torch.tensor([10.0, 11.0, 12.0, 13.0, 14.0, 15.0], device=device)
    added = s.add(pre, post, on_duplicate="skip", w=w)
    assert added.tolist() == [False, True, True, True, False, True]
    assert int((~added).sum()) == 2  # the skipped ones are countable
    assert pairs(s) == {(2, 3), (2, 5), (1, 6), (1, 0), (2, 4), (4, 1)}
    dense = s.to_dense("w")
    assert dense[1, 6] == 11.0  # first occurrence's value, not 14
    assert dense[2, 3] == 2 * 1000 + 3  # the existing synapse keeps its value
    assert dense[1, 0] == 12.0 and dense[2, 4] == 13.0 and dense[4, 1] == 15.0
    s.validate()


def test_skip_full_rows_adds_what_fits_in_call_order(device):
    s = make_store([1, 1], [0, 1], capacity=4, device=device, n=8)
    pre = torch.tensor([1, 3, 1, 1, 3, 1], device=device)
    post = torch.tensor([2, 0, 3, 4, 1, 5], device=device)
    added = s.add(pre, post, on_full="skip", w=torch.arange(6.0, device=device))
    assert added.tolist() == [True, True, True, False, True, False]
    assert rows(s)[1] == {0, 1, 2, 3} and rows(s)[3] == {0, 1}
    assert s.to_dense("w")[1, 3] == 2.0 and s.to_dense("w")[3, 1] == 4.0
    s.validate()


def test_skip_both_kinds_counts_each_failure(device):
    s = make_store([1, 1, 1], [0, 1, 2], capacity=4, device=device, n=8)
    pre = torch.tensor([1, 1, 1, 6, 6], device=device)
    post = torch.tensor([1, 5, 6, 7, 7], device=device)  # dup, fits, full, fits, repeated
    added = s.add(pre, post, on_full="skip", on_duplicate="skip")
    assert added.tolist() == [False, True, False, True, False]
    assert pairs(s) == {(1, 0), (1, 1), (1, 2), (1, 5), (6, 7)}
    s.validate()


def test_add_nothing_is_a_no_op(device):
    s = triangle(device)
    state, version = s.state_dict(), s.version
    empty = torch.zeros(0, dtype=torch.int64, device=device)
    assert s.add(empty, empty).shape == (0,)
    assert_same_state(state, s.state_dict())
    assert s.version == version


def test_padding_slots_are_never_read_as_synapses(device):
    """GeNN: slots past row_length are garbage. Fill them with a real target and junk values."""
    s = triangle(device)
    s.remove(diagonal_mask(s))
    with s.mutation():  # padding content is free, but ind is sealed outside a mutation
        s.ind[~s.live] = 40
    for var in s.vars.values():
        var[..., ~s.live] = True if var.dtype == torch.bool else 9
    s.validate()
    assert rows(s) == [set(range(i + 1, N)) for i in range(N)]
    assert_codes(s)
    i = torch.arange(N, device=device)
    assert s.contains(i, torch.full_like(i, 40)).tolist() == [r < 40 for r in range(N)]
    s.add(torch.tensor([45], device=device), torch.tensor([40], device=device), w=1.0)
    assert s.contains(torch.tensor([45], device=device), torch.tensor([40], device=device)).all()
    s.validate()


# ------------------------------------------------------------ queries
def test_contains_answers_every_pair_correctly(device):
    s = triangle(device)
    s.remove(diagonal_mask(s) | (s.live & (s.ind % 7 == 3)))
    i = torch.arange(N, device=device)
    s.add(i[::4], i[::4])
    want = torch.zeros(N, N, dtype=torch.bool)
    for p, q in pairs(s):
        want[p, q] = True
    pre, post = torch.meshgrid(i, i, indexing="ij")
    got = s.contains(pre.reshape(-1), post.reshape(-1))
    assert torch.equal(got.cpu().view(N, N), want)


@pytest.mark.slow
def test_store_of_100k_neurons_with_few_synapses_needs_no_quadratic_memory(generator):
    """A dense [n_pre, n_post] structure would need 10 GB (bool) here; the store must not."""
    n, k = 100_000, 2_000
    start = time.perf_counter()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    s = nw.RaggedSynapses(n, n, 8, name="big")
    s.add_var("weight")
    pre = torch.randint(0, n, (k,), generator=generator)
    post = torch.randint(0, n, (k,), generator=generator)
    added = s.add(pre, post, on_duplicate="skip", on_full="skip", weight=1.0)
    assert s.contains(pre, post).all()
    absent = (post + 1) % n
    model = pairs(s)
    want = [(p, q) in model for p, q in zip(pre.tolist(), absent.tolist(), strict=True)]
    assert s.contains(pre, absent).tolist() == want
    with pytest.raises(nw.DuplicateSynapseError):
        s.add(pre[added][:1], post[added][:1])
    grown = s.grow(torch.ones(n, dtype=torch.int64), generator=generator, weight=2.0)
    assert int(grown.sum()) == n  # every row had room for one more
    cols = s.columns()
    assert int(cols.length.sum()) == s.nnz
    s.validate()
    assert time.perf_counter() - start < 20.0
    unit = 1024 * 1024 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / unit
    assert grown_mib < 1024, f"peak memory grew by {grown_mib:.0f} MiB"


def test_coo_values_and_to_dense_agree(device):
    s = triangle(device)
    s.remove(diagonal_mask(s) | (s.live & (s.ind % 3 == 0)))
    pre, post = s.coo()
    assert pre.dtype == torch.int64 and post.dtype == torch.int64
    # row-major slot order: rows ascending, within a row the slot order
    assert bool((pre[1:] >= pre[:-1]).all())
    assert torch.equal(post, s.ind[s.live])
    present = torch.zeros(N, N, dtype=torch.bool, device=device)
    present[pre, post] = True
    for var in s.vars:
        dense = s.to_dense(var)
        batch = (B,) if VAR_SPECS[var].get("batched") else ()
        assert dense.shape == batch + (N, N) and dense.dtype == VAR_SPECS[var]["dtype"]
        assert torch.equal(dense[..., pre, post], s.values(var))
        absent = dense[..., ~present]
        assert torch.equal(absent, torch.zeros_like(absent)), var


# ------------------------------------------------------------ derived views
def assert_csr_matches(s):
    csr = s.csr()
    pre, post = s.coo()
    assert csr.indptr[0] == 0 and torch.equal(torch.diff(csr.indptr), s.row_length)
    assert torch.equal(csr.indices, post)
    assert torch.equal(s.ind.view(-1)[csr.slot], post)
    assert bool(s.live.view(-1)[csr.slot].all())
    row_of_entry = torch.repeat_interleave(torch.arange(s.n_pre, device=s.device), s.row_length)
    assert torch.equal(row_of_entry, pre)


def assert_columns_match(s):
    """The column index lists exactly the live synapses of each column (ANNarchy#12, O2)."""
    cols = s.columns()
    by_col = [set() for _ in range(s.n_post)]
    for p, q in pairs(s):
        by_col[q].add(p)
    assert cols.length.tolist() == [len(c) for c in by_col]
    assert torch.equal(torch.diff(cols.indptr), cols.length)
    fill = s.n_pre * s.capacity
    w = s.vars["w"].view(-1)
    for c in range(s.n_post):
        lo, hi = int(cols.indptr[c]), int(cols.indptr[c + 1])
        pre = cols.pre[lo:hi]
        slot = cols.slot[lo:hi]
        assert set(pre.tolist()) == by_col[c], c
        assert bool((pre[1:] > pre[:-1]).all())  # row-major within each column
        assert torch.equal(s.ind.view(-1)[slot], torch.full_like(slot, c))
        assert bool(s.live.view(-1)[slot].all())
        assert torch.equal(torch.div(slot, s.capacity, rounding_mode="floor"), pre)
        assert torch.equal(w[slot], (pre * 1000 + c).float())  # slot reaches the right synapse
        assert torch.equal(s.padded_columns()[c, : hi - lo], slot)
        assert bool((s.padded_columns()[c, hi - lo :] == fill).all())


def test_csr_and_column_views_agree_with_coo_and_are_cached_per_version(device):
    s = triangle(device)
    csr, cols = s.csr(), s.columns()
    assert s.csr() is csr and s.columns() is cols
    assert_csr_matches(s)
    assert_columns_match(s)
    version = s.version
    s.remove(torch.zeros_like(s.live))  # removes nothing: views stay valid
    s.remove(diagonal_mask(s))
    assert s.version > version
    assert s.csr() is not csr and s.columns() is not cols
    assert_csr_matches(s)
    assert_columns_match(s)


def test_column_index_follows_removals_additions_and_growth(device, generator):
    s = triangle(device)
    s.remove(diagonal_mask(s) | (s.live & ((s.ind * 7 + 3) % 5 == 0)))
    assert_columns_match(s)
    i = torch.arange(N, device=device)
    s.add(i, i, w=(i * 1000 + i).float())
    assert_columns_match(s)
    s.remove(s.live & (s.ind < 8))
    assert_columns_match(s)
    lower = torch.arange(N, device=device) // 2
    s.add(i[8:], lower[8:], w=(i[8:] * 1000 + lower[8:]).float())
    assert_columns_match(s)
    assert_csr_matches(s)
    # a grown synapse gets w = 0, so only its presence is checked
    version = s.version
    s.grow(torch.full((N,), 2, device=device), generator=generator)
    assert s.version > version
    cols = s.columns()
    by_col = [set() for _ in range(N)]
    for p, q in pairs(s):
        by_col[q].add(p)
    for c in range(N):
        assert set(cols.pre[int(cols.indptr[c]) : int(cols.indptr[c + 1])].tolist()) == by_col[c]


# ------------------------------------------------------------ grow
def test_grow_adds_distinct_free_targets_within_capacity_and_reports_them(device, generator):
    n, cap = 40, 12
    s = nw.RaggedSynapses(n, n, cap, device, name="rec", autapses=False)
    s.add_var("w")
    s.add_var("t", batched=2)
    for _ in range(6):
        requested = torch.randint(0, 16, (n,), generator=generator, device=device)
        before = pairs(s)
        lengths = s.row_length.clone()
        added = s.grow(requested, generator=generator, w=0.5)
        free = torch.minimum(torch.full_like(lengths, cap) - lengths, n - 1 - lengths)
        assert torch.equal(added, torch.minimum(requested, free))
        assert torch.equal(s.row_length, lengths + added)
        now = pairs(s)
        assert before <= now and len(now) == len(before) + int(added.sum())
        assert all(p != q for p, q in now)
        s.validate()
        new = now - before
        dense = s.to_dense("w")
        t = s.to_dense("t")
        for p, q in new:
            assert dense[p, q] == 0.5 and bool((t[:, p, q] == 0).all())
        s.remove(s.live & (torch.rand(s.live.shape, generator=generator, device=device) < 0.3))


def test_grow_fills_a_row_up_to_every_free_column(device, generator):
    s = nw.RaggedSynapses(3, 6, 6, device, name="small")
    s.add([0, 0, 2], [1, 4, 5])
    added = s.grow([10, 2, 6], generator=generator)
    assert added.tolist() == [4, 2, 5]
    assert rows(s)[0] == set(range(6)) and rows(s)[2] == set(range(6))
    assert s.grow([1, 0, 1], generator=generator).tolist() == [0, 0, 0]  # full rows: nothing
    s.validate()


def test_grow_is_reproducible_for_a_seeded_generator_including_drawn_values(device):
    def run():
        s = nw.RaggedSynapses(20, 30, 10, device, name="g")
        s.add_var("w")
        gen = torch.Generator(device=device).manual_seed(7)
        torch.manual_seed(torch.seed())  # the global RNG must not matter
        s.grow(torch.full((20,), 6, device=device), generator=gen, w=nw.Normal(0.0, 1.0))
        return s

    a, b = run(), run()
    assert torch.equal(a.ind[a.live], b.ind[b.live])
    assert torch.equal(a.values("w"), b.values("w"))
    assert a.values("w").unique().numel() == a.nnz  # really drawn per synapse


def _grown_column_counts(s, per_row, draws, generator):
    """Grow ``per_row`` synapses in every row ``draws`` times (removing them again each time);
    return how often each (row, column) was drawn. Grown synapses are told apart by w == 0."""
    counts = torch.zeros(s.n_pre, s.n_post, dtype=torch.int64, device=s.device)
    for _ in range(draws):
        added = s.grow(torch.full((s.n_pre,), per_row, device=s.device), generator=generator)
        assert added.tolist() == [per_row] * s.n_pre
        new = s.live & (s.vars["w"] == 0)
        rows_new = torch.arange(s.n_pre, device=s.device)[:, None].expand_as(new)[new]
        counts.index_put_((rows_new, s.ind[new]), torch.ones_like(rows_new), accumulate=True)
        s.remove(new)
        assert int(s.row_length.sum()) == int(s.vars["w"].ne(0).sum())  # old ones untouched
    return counts


def test_grow_draws_uniformly_over_the_free_columns_of_each_row(device, generator):
    """3 targets per row out of 16 free columns, 200 rows x 10 grows = 6000 draws.

    Draws within a row are without replacement, which makes column counts slightly less
    dispersed than multinomial (factor 13/15): the chi-square test is then conservative.
    """
    n_pre, n_post = 200, 20
    occupied = [0, 3, 7, 12]
    s = nw.RaggedSynapses(n_pre, n_post, n_post, device, name="uniform")
    s.add_var("w")
    s.add(
        torch.arange(n_pre, device=device).repeat_interleave(len(occupied)),
        torch.tensor(occupied, device=device).repeat(n_pre),
        w=1.0,
    )
    counts = _grown_column_counts(s, 3, 10, generator).sum(0).cpu()
    assert counts[occupied].sum() == 0  # an occupied column is never drawn
    free = [c for c in range(n_post) if c not in occupied]
    assert int(counts[free].sum()) == 6000
    assert chisquare(counts[free].numpy()).pvalue > 1e-3


@pytest.mark.slow
def test_grow_on_nearly_full_rows_draws_uniformly_over_the_few_free_columns(device, generator):
    """5 free columns out of 300 per row: a random guess hits a free column with p = 1/60, so
    most draws (~76 %) fall through the 16 rejection rounds to the enumeration fallback."""
    n_pre, n_post = 40, 300
    keys = torch.rand(n_pre, n_post, generator=generator, device=device)
    free = torch.topk(keys, 5, dim=1).indices.sort(1).values  # [n_pre, 5], different per row
    occupied = torch.ones(n_pre, n_post, dtype=torch.bool, device=device)
    occupied[torch.arange(n_pre, device=device)[:, None], free] = False
    s = nw.RaggedSynapses(n_pre, n_post, n_post, device, name="nearly full")
    s.add_var("w")
    pre, post = occupied.nonzero(as_tuple=True)
    s.add(pre, post, w=1.0)
    counts = _grown_column_counts(s, 2, 20, generator)
    assert counts[occupied].sum() == 0
    by_rank = counts.gather(1, free).sum(0)  # how often the k-th free column of a row was drawn
    assert int(by_rank.sum()) == n_pre * 2 * 20
    assert chisquare(by_rank.cpu().numpy()).pvalue > 1e-3


# ------------------------------------------------------------ validate
def _corrupt_duplicate(s):
    s.ind[1, 1] = s.ind[1, 0]


def _corrupt_out_of_range(s):
    s.ind[2, 0] = s.n_post


def _corrupt_negative_index(s):
    s.ind[2, 0] = -1


def _corrupt_row_too_long(s):
    s.row_length[3] = s.capacity + 1


def _corrupt_negative_row(s):
    s.row_length[3] = -1


def _corrupt_row_over_garbage(s):
    # row 4 grows over a padding slot that repeats its first target
    s.ind[4, int(s.row_length[4])] = s.ind[4, 0]
    s.row_length[4] += 1


def _corrupt_autapse(s):
    s.ind[5, 0] = 5


def _corrupt_var_shape(s):
    s.vars["w"] = s.vars["w"][:, :-1]


CORRUPTIONS = {
    "duplicate": (_corrupt_duplicate, r"duplicate synapse \(1, "),
    "index out of range": (_corrupt_out_of_range, "outside"),
    "negative index": (_corrupt_negative_index, "outside"),
    "row too long": (_corrupt_row_too_long, r"row 3 has length 9 outside \[0, 8\]"),
    "negative row length": (_corrupt_negative_row, r"row 3 has length -1"),
    "row grown over garbage": (_corrupt_row_over_garbage, r"duplicate synapse \(4, "),
    "autapse": (_corrupt_autapse, "autapse"),
    "variable shape": (_corrupt_var_shape, "variable 'w' has shape"),
}


def _corruptible(device, generator):
    s = nw.RaggedSynapses(12, 12, 8, device, name="corrupt", autapses=False)
    s.add_var("w")
    s.grow(torch.full((12,), 5, device=device), generator=generator)
    s.validate()
    s.coo(), s.csr(), s.columns()  # warm every cache: validation must look at the raw arrays
    return s


@pytest.mark.parametrize("corrupt, match", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_mutation_rejects_hand_corrupted_stores_and_undoes_them(device, generator, corrupt, match):
    s = _corruptible(device, generator)
    before, pairs_before, version = s.state_dict(), pairs(s), s.version
    cols_before = [t.clone() for t in s.columns()]
    ind, row_length, w = s.ind, s.row_length, s.vars["w"]
    with pytest.raises(StoreError, match=match) as err:
        with s.mutation():
            corrupt(s)
    assert "undone" in str(err.value)
    after = s.state_dict()
    assert after.pop("version") > before.pop("version") == version  # caches cannot outlive it
    assert_same_state(before, after)
    assert s.ind is ind and s.row_length is row_length and s.vars["w"] is w
    assert pairs(s) == pairs_before
    s.validate()
    assert all(torch.equal(a, b) for a, b in zip(s.columns(), cols_before, strict=True))


@pytest.mark.parametrize("corrupt, match", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_validate_catches_hand_corrupted_stores(device, generator, corrupt, match):
    """Outside a mutation a write into ind/row_length is reported as such; a replaced variable
    (vars is an ordinary dict) by the broken invariant."""
    s = _corruptible(device, generator)
    corrupt(s)
    if corrupt is _corrupt_var_shape:
        with pytest.raises(StoreError, match=match):
            s.validate()
    else:
        with pytest.raises(StoreError, match="written outside `with store.mutation"):
            s.validate()


# ------------------------------------------------------------ persistence
def test_state_dict_round_trip_restores_connectivity_values_and_version(device):
    s = triangle(device)
    s.remove(diagonal_mask(s) | (s.live & (s.ind % 4 == 1)))
    d = s.state_dict()
    r = nw.RaggedSynapses.from_state_dict(d)
    assert (r.n_pre, r.n_post, r.capacity, r.name, r.autapses, r.version) == (
        s.n_pre,
        s.n_post,
        s.capacity,
        s.name,
        s.autapses,
        s.version,
    )
    assert torch.equal(r.row_length, s.row_length)
    assert pairs(r) == pairs(s)
    for var in s.vars:
        assert torch.equal(r.to_dense(var), s.to_dense(var)), var
    assert_codes(r)
    # the state dict and the copy are independent of the original
    i = torch.arange(N, device=device)
    s.add(i, i, **code(i, i))
    assert pairs(r) != pairs(s)
    assert_same_state(d, r.state_dict())


def test_from_state_dict_rejects_corrupted_state(device):
    s = make_store([0, 0], [1, 2], capacity=3, device=device, n=4)
    d = s.state_dict()
    d["ind"][0, 1] = 1
    with pytest.raises(ValueError, match=r"duplicate synapse \(0, 1\)"):
        nw.RaggedSynapses.from_state_dict(d)


def test_to_device_moves_every_tensor_and_keeps_working(device):
    s = triangle("cpu")
    s.remove(diagonal_mask(s))
    s.columns()
    assert s.to(device) is s
    for t in [s.row_length, s.ind, s.live, *s.vars.values(), *s.coo(), *s.columns()]:
        assert t.device.type == device.type
    assert_codes(s)
    i = torch.arange(N, device=device)
    s.add(i, i, **code(i, i))
    assert_columns_match(s)
    s.validate()
    back = nw.RaggedSynapses.from_state_dict(s.state_dict(), device="cpu")
    assert back.ind.device.type == "cpu"
    assert pairs(back) == pairs(s)
    assert_codes(back)


# ------------------------------------------------------------ construction
@pytest.mark.parametrize("padding, capacity", [(1.0, 5), (1.5, 7), (3.0, 12)])
def test_from_coo_derives_capacity_from_longest_row_and_padding(device, padding, capacity):
    # row lengths 3, 5, 0, 2 (n_post = 12): capacity = min(12, int(5 * padding))
    pre = torch.tensor([1, 0, 3, 1, 0, 1, 1, 3, 0, 1])
    post = torch.tensor([0, 4, 7, 3, 1, 11, 6, 2, 9, 8])
    weight = (pre * 100 + post).float()
    s = nw.RaggedSynapses.from_coo(4, 12, pre, post, padding=padding, device=device, weight=weight)
    assert s.capacity == capacity
    assert s.row_length.tolist() == [3, 5, 0, 2]
    p, q = s.coo()
    assert torch.equal(s.values("weight"), (p * 100 + q).float())  # matched by pair, not order
    s.validate()


def test_from_coo_explicit_capacity_and_empty_input(device):
    s = nw.RaggedSynapses.from_coo(3, 5, [0, 2], [4, 4], capacity=4, device=device, weight=0.3)
    assert s.capacity == 4 and s.nnz == 2
    assert torch.equal(s.values("weight"), torch.full((2,), 0.3, device=device))
    with pytest.raises(nw.CapacityError, match="row 0"):
        nw.RaggedSynapses.from_coo(3, 5, [0, 0], [1, 2], capacity=1, device=device)
    empty = nw.RaggedSynapses.from_coo(3, 5, [], [], device=device)
    assert empty.nnz == 0 and empty.capacity == 0
    empty.validate()


def test_from_coo_with_an_initialiser_draws_one_value_per_synapse(device):
    pre = torch.arange(200) // 10
    post = torch.arange(200) % 10 * 3
    s = nw.RaggedSynapses.from_coo(20, 30, pre, post, device=device, weight=nw.Uniform(1.0, 2.0))
    w = s.values("weight")
    assert w.shape == (200,) and bool(((w >= 1.0) & (w < 2.0)).all())
    assert w.unique().numel() > 150


def _store_for_add_var(device):
    return make_store([0, 0, 2, 3], [1, 3, 2, 0], capacity=3, device=device, n=4)


@pytest.mark.parametrize(
    "kwargs, expect",
    [
        (dict(init=0.5), lambda p, q: torch.full(p.shape, 0.5)),
        (dict(init=7, dtype=torch.int32), lambda p, q: torch.full(p.shape, 7, dtype=torch.int32)),
        (dict(init=True, dtype=torch.bool), lambda p, q: torch.ones(p.shape, dtype=torch.bool)),
        (dict(init=-2.5, dtype=torch.float64), lambda p, q: torch.full(p.shape, -2.5).double()),
        (dict(init=nw.Constant(1.5)), lambda p, q: torch.full(p.shape, 1.5)),
        (dict(init=2.0, batched=2), lambda p, q: torch.full((2,) + p.shape, 2.0)),
    ],
    ids=["float", "int32", "bool", "float64", "initialiser", "batched number"],
)
def test_add_var_fills_live_slots_from_a_number_or_initialiser(device, kwargs, expect):
    s = _store_for_add_var(device)
    var = s.add_var("x", **kwargs)
    assert s.vars["x"] is var
    p, q = s.coo()
    want = expect(p, q).to(device)
    assert torch.equal(s.values("x"), want)
    padding = var[..., ~s.live]
    assert torch.equal(padding, torch.zeros_like(padding))


def test_add_var_from_tensors_in_coo_order_or_slot_layout(device):
    s = _store_for_add_var(device)
    p, q = s.coo()
    c = (p * 10 + q).float()
    s.add_var("flat", init=c)
    assert torch.equal(s.values("flat"), c)
    slots = torch.arange(12.0, device=device).view(4, 3) + 1  # non-zero on padding slots too
    s.add_var("slots", init=slots)
    assert torch.equal(s.vars["slots"][s.live], slots[s.live])
    assert bool((s.vars["slots"][~s.live] == 0).all())
    s.add_var("bflat", batched=2, init=torch.stack([c, -c]))
    assert torch.equal(s.values("bflat"), torch.stack([c, -c]))
    s.add_var("ball", batched=2, init=c)  # [nnz] for every copy
    assert torch.equal(s.values("ball"), c.expand(2, -1))
    s.add_var("bslots", batched=2, init=torch.stack([slots, 2 * slots]))
    assert torch.equal(s.values("bslots"), torch.stack([slots[s.live], 2 * slots[s.live]]))
    s.add_var("bnormal", batched=2, init=nw.Normal(0.0, 1.0), generator=torch.Generator(device))
    drawn = s.values("bnormal")
    assert drawn.shape == (2, s.nnz) and not torch.equal(drawn[0], drawn[1])
    s.add_var("i", init=torch.tensor([5, 6, 7, 8], device=device), dtype=torch.int32)
    assert s.values("i").tolist() == [5, 6, 7, 8] and s.vars["i"].dtype == torch.int32
    # every new variable moves with its synapse
    dense = {var: s.to_dense(var) for var in s.vars}
    s.remove(s.live & (s.ind == 1))
    p, q = s.coo()
    assert (0, 1) not in pairs(s) and s.nnz == 3
    for var in s.vars:
        assert torch.equal(s.values(var), dense[var][..., p, q]), var
    s.validate()


def test_add_var_initialiser_is_reproducible_with_a_generator(device):
    a, b = _store_for_add_var(device), _store_for_add_var(device)
    for s in (a, b):
        s.add_var("x", init=nw.Normal(0.0, 1.0), generator=torch.Generator(device).manual_seed(3))
    assert torch.equal(a.vars["x"], b.vars["x"])


# ------------------------------------------------------------ bad input
def small(device):
    """8 x 8 recurrent store without autapses, capacity 4, one variable of each kind."""
    s = nw.RaggedSynapses(8, 8, 4, device, name="a->a", autapses=False)
    s.add_var("w")
    s.add_var("e", batched=2)
    s.add_var("n", dtype=torch.int32)
    s.add_var("b", dtype=torch.bool)
    s.add([0, 0, 1, 5], [1, 2, 0, 6], w=[1.0, 2.0, 3.0, 4.0], n=[1, 2, 3, 4])
    return s


def t(x, dtype=None):
    return torch.tensor(x, dtype=dtype)


NAN, INF = float("nan"), float("inf")

BAD_CALLS = {
    "float pre": (lambda s: s.add(t([0.0]), t([3])), TypeError, "pre must be an integer"),
    "bool post": (lambda s: s.add(t([0]), t([True])), TypeError, "post must be an integer"),
    "2-D pre": (lambda s: s.add(t([[0]]), t([3])), ValueError, r"pre must be 1-D, got shape"),
    "length mismatch": (lambda s: s.add([0, 1], [3]), ValueError, "same length, got 2 and 1"),
    "pre out of range": (lambda s: s.add([8], [3]), ValueError, r"pre index 8 out of range"),
    "post negative": (lambda s: s.add([2], [-1]), ValueError, r"post index -1 out of range"),
    "NaN value": (lambda s: s.add([2], [3], w=[NAN]), ValueError, "'w' contain NaN"),
    "inf batched": (
        lambda s: s.add([2, 3], [3, 4], e=[[1.0, 2.0], [INF, 0.0]]),
        ValueError,
        "'e' contain NaN or infinity",
    ),
    "unknown variable": (
        lambda s: s.add([2], [3], wieght=1.0),
        ValueError,
        r"unknown variable 'wieght'; known: \['b', 'e', 'n', 'w'\]",
    ),
    "value shape": (lambda s: s.add([2, 3], [3, 4], w=[1.0]), ValueError, r"number or \[2\]"),
    "batched shape": (
        lambda s: s.add([2], [3], e=[[1.0], [2.0], [3.0]]),
        ValueError,
        r"\[1\] or \[2, 1\]",
    ),
    "float into int": (lambda s: s.add([2], [3], n=[1.5]), TypeError, "'n' has dtype torch.int32"),
    "int into bool": (lambda s: s.add([2], [3], b=[1]), TypeError, "'b' is bool"),
    "autapse": (lambda s: s.add([2, 3], [4, 3]), ValueError, r"autapse \(3, 3\) is not allowed"),
    "on_full": (lambda s: s.add([2], [3], on_full="wrap"), ValueError, "on_full must be 'raise'"),
    "on_duplicate": (
        lambda s: s.add([2], [3], on_duplicate="keep"),
        ValueError,
        "on_duplicate must be 'raise' or 'skip', got 'keep'",
    ),
    "float mask": (lambda s: s.remove(torch.ones(8, 4)), TypeError, "needs a bool mask"),
    "int mask": (lambda s: s.remove(torch.ones(8, 4, dtype=torch.int64)), TypeError, "bool mask"),
    "mask shape": (
        lambda s: s.remove(torch.ones(8, 8, dtype=torch.bool)),
        ValueError,
        r"mask must have shape \(8, 4\), got \(8, 8\)",
    ),
    "contains float": (lambda s: s.contains(t([0.5]), t([1])), TypeError, "integer"),
    "contains range": (lambda s: s.contains([0], [9]), ValueError, "post index 9"),
    "grow float counts": (lambda s: s.grow(torch.ones(8)), TypeError, "per_row must be integer"),
    "grow shape": (lambda s: s.grow(torch.ones(4, dtype=torch.int64)), ValueError, r"\(8,\)"),
    "grow negative": (lambda s: s.grow(torch.full((8,), -1)), ValueError, "per_row must be >= 0"),
    "grow tensor value": (
        lambda s: s.grow(torch.ones(8, dtype=torch.int64), w=torch.ones(3)),
        TypeError,
        "numbers or initialisers",
    ),
    "grow unknown var": (
        lambda s: s.grow(torch.ones(8, dtype=torch.int64), x=1.0),
        ValueError,
        "unknown variable 'x'",
    ),
    "grow NaN value": (
        lambda s: s.grow(torch.ones(8, dtype=torch.int64), w=NAN),
        ValueError,
        "NaN",
    ),
    "add_var exists": (lambda s: s.add_var("w"), ValueError, "'w' already exists"),
    "add_var name": (lambda s: s.add_var("2w"), ValueError, "must be an identifier"),
    "add_var shape": (lambda s: s.add_var("x", init=torch.ones(5)), ValueError, "init for 'x'"),
    "add_var batched": (lambda s: s.add_var("x", batched=0), ValueError, "batched must be"),
    "add_var NaN": (lambda s: s.add_var("x", init=NAN), ValueError, "finite"),
    "add_var NaN tensor": (
        lambda s: s.add_var("x", init=t([1.0, NAN, 2.0, 3.0])),
        ValueError,
        "'x' contain NaN",
    ),
    "add_var NaN slots": (
        lambda s: s.add_var("x", init=torch.full((8, 4), NAN)),
        ValueError,
        "'x' contain NaN",
    ),
    "values unknown": (lambda s: s.values("weight"), ValueError, "unknown variable 'weight'"),
    "to_dense unknown": (lambda s: s.to_dense("weight"), ValueError, "known: \\['b'"),
}


@pytest.mark.parametrize("call, exc, match", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_bad_input_raises_clear_error_and_leaves_store_unchanged(device, call, exc, match):
    s = small(device)
    state, version = s.state_dict(), s.version
    with pytest.raises(exc, match=match):
        call(s)
    assert_same_state(state, s.state_dict())
    assert s.version == version
    s.validate()


@pytest.mark.parametrize(
    "args, kwargs, exc, match",
    [
        ((4, 4, -1), {}, ValueError, "capacity must be >= 0, got -1"),
        ((0, 4, 2), {}, ValueError, "n_pre and n_post must be >= 1"),
        ((4, 4, 2.0), {}, TypeError, "capacity must be an int"),
        ((4, 5, 2), dict(autapses=False), ValueError, "autapses=False needs n_pre == n_post"),
    ],
)
def test_constructor_rejects_bad_sizes(device, args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        nw.RaggedSynapses(*args, device=device, **kwargs)


def test_from_coo_rejects_bad_input(device):
    with pytest.raises(ValueError, match="same length, got 2 and 1"):
        nw.RaggedSynapses.from_coo(3, 3, [0, 1], [2], device=device)
    with pytest.raises(ValueError, match="padding must be >= 1.0"):
        nw.RaggedSynapses.from_coo(3, 3, [0], [2], padding=0.5, device=device)
    with pytest.raises(ValueError, match=r"pre indices must lie in \[0, 3\)"):
        nw.RaggedSynapses.from_coo(3, 3, [3], [2], device=device)
    with pytest.raises(nw.DuplicateSynapseError):
        nw.RaggedSynapses.from_coo(3, 3, [1, 1], [2, 2], device=device)


@pytest.mark.parametrize("name", ["pre", "post", "on_full", "on_duplicate", "per_row", "generator"])
def test_argument_names_cannot_be_variable_names(device, name):
    s = nw.RaggedSynapses(2, 2, 2, device)
    with pytest.raises(ValueError, match="reserved"):
        s.add_var(name)
    assert s.vars == {}
