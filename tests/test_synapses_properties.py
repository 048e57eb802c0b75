"""Property test: random add/remove/grow sequences against a plain Python model of the store.

The model is a dict ``{(pre, post): (w, e, n)}``: a shared float32 weight ``w``, a batched float32
variable ``e`` (one value per batch copy) and a shared int32 ``n``. After every operation the
store must pass ``validate()`` and agree with the model in ``coo()`` (as a set), ``contains()``
(every pair), ``to_dense()`` and every variable; a call that raises must change nothing.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import neurowire as nw

B = 2
CAP = 4
CONFIGS = {  # name -> (n_pre, n_post, autapses)
    "feed-forward 5x7": (5, 7, True),
    "recurrent 6x6 without autapses": (6, 6, False),
}
GROW_W = 2.5


def ops(n_pre, n_post):
    pair = st.tuples(st.integers(0, n_pre - 1), st.integers(0, n_post - 1))
    add = st.tuples(
        st.just("add"),
        st.lists(pair, max_size=8),
        st.sampled_from(["raise", "skip"]),  # on_full
        st.sampled_from(["raise", "skip"]),  # on_duplicate
        st.booleans(),  # batched values as [k] (True) or [B, k]
        st.booleans(),  # give n (else it must start at zero)
    )
    remove = st.tuples(
        st.just("remove"), st.lists(st.booleans(), min_size=n_pre * CAP, max_size=n_pre * CAP)
    )
    grow = st.tuples(
        st.just("grow"),
        st.lists(st.integers(0, 5), min_size=n_pre, max_size=n_pre),
        st.integers(0, 2**31 - 1),
    )
    return st.lists(st.one_of(add, remove, grow), max_size=10)


def state(s):
    d = s.state_dict()
    return d["version"], d["row_length"], d["ind"], d["vars"]


def assert_unchanged(before, s):
    version, row_length, ind, vars_ = before
    assert s.version == version
    assert torch.equal(s.row_length, row_length) and torch.equal(s.ind, ind)
    for name, var in vars_.items():
        assert torch.equal(s.vars[name], var), name


def check(s, model):
    s.validate()
    pre, post = s.coo()
    got = list(zip(pre.tolist(), post.tolist(), strict=True))
    assert set(got) == set(model) and len(got) == len(model)
    assert pre.tolist() == sorted(pre.tolist())  # row-major order
    assert s.nnz == len(model)
    assert s.row_length.tolist() == [sum(p == i for p, _ in model) for i in range(s.n_pre)]
    all_pre, all_post = torch.meshgrid(torch.arange(s.n_pre), torch.arange(s.n_post), indexing="ij")
    member = [
        (p, q) in model
        for p, q in zip(all_pre.flatten().tolist(), all_post.flatten().tolist(), strict=True)
    ]
    assert s.contains(all_pre.flatten(), all_post.flatten()).tolist() == member
    dense_w = torch.zeros(s.n_pre, s.n_post)
    dense_e = torch.zeros(B, s.n_pre, s.n_post)
    dense_n = torch.zeros(s.n_pre, s.n_post, dtype=torch.int32)
    for (p, q), (w, e, n) in model.items():
        dense_w[p, q], dense_e[:, p, q], dense_n[p, q] = w, torch.tensor(e), n
    assert torch.equal(s.to_dense("w"), dense_w)
    assert torch.equal(s.to_dense("e"), dense_e)
    assert torch.equal(s.to_dense("n"), dense_n)
    assert torch.equal(s.values("w"), dense_w[pre, post])
    assert torch.equal(s.values("e"), dense_e[:, pre, post])
    assert torch.equal(s.values("n"), dense_n[pre, post])


def apply_add(s, model, step, pairs, on_full, on_duplicate, flat_e, give_n):
    k = len(pairs)
    pre = torch.tensor([p for p, _ in pairs], dtype=torch.int64)
    post = torch.tensor([q for _, q in pairs], dtype=torch.int64)
    w = [step * 100.0 + i + 0.5 for i in range(k)]
    if flat_e:  # one [k] vector written into every batch copy
        e = [[x + 1000.0 for x in w]] * B
        e_given = torch.tensor(e[0])
    else:
        e = [[x + 1000.0 * (b + 1) for x in w] for b in range(B)]
        e_given = torch.tensor(e).reshape(B, k)
    n = [step * 100 + i for i in range(k)]
    values = dict(w=torch.tensor(w), e=e_given)
    if give_n:
        values["n"] = torch.tensor(n, dtype=torch.int32)

    # the model's expectation
    errors = []
    if not s.autapses and any(p == q for p, q in pairs):
        errors.append(ValueError)
    seen, dup = set(), []
    for pq in pairs:
        dup.append(pq in model or pq in seen)
        seen.add(pq)
    if any(dup) and on_duplicate == "raise":
        errors.append(nw.DuplicateSynapseError)
    count = [sum(p == i for p, _ in model) for i in range(s.n_pre)]
    fits = []
    for (p, _), is_dup in zip(pairs, dup, strict=True):
        ok = not is_dup and count[p] < CAP
        count[p] += ok
        fits.append(ok)
        if not is_dup and not ok and on_full == "raise":
            errors.append(nw.CapacityError)

    before = state(s)
    if errors:
        with pytest.raises(tuple(errors)):
            s.add(pre, post, on_full=on_full, on_duplicate=on_duplicate, **values)
        assert_unchanged(before, s)
        return
    added = s.add(pre, post, on_full=on_full, on_duplicate=on_duplicate, **values)
    assert added.tolist() == fits
    for i, pq in enumerate(pairs):
        if fits[i]:
            model[pq] = (w[i], tuple(e[b][i] for b in range(B)), n[i] if give_n else 0)


def apply_remove(s, model, bits):
    mask = torch.tensor(bits).view(s.n_pre, CAP)
    gone = set()
    for i in range(s.n_pre):
        for j in range(int(s.row_length[i])):
            if mask[i, j]:
                gone.add((i, int(s.ind[i, j])))
    removed = s.remove(mask)
    assert removed.tolist() == [sum(p == i for p, _ in gone) for i in range(s.n_pre)]
    for pq in gone:
        del model[pq]


def apply_grow(s, model, counts, seed):
    before = set(model)
    lengths = [sum(p == i for p, _ in model) for i in range(s.n_pre)]
    free_cols = [s.n_post - length - (0 if s.autapses else 1) for length in lengths]
    want = [
        min(c, CAP - length, f) for c, length, f in zip(counts, lengths, free_cols, strict=True)
    ]
    gen = torch.Generator().manual_seed(seed)
    added = s.grow(torch.tensor(counts), generator=gen, w=GROW_W)
    assert added.tolist() == want
    pre, post = s.coo()
    new = set(zip(pre.tolist(), post.tolist(), strict=True)) - before
    assert [sum(p == i for p, _ in new) for i in range(s.n_pre)] == want
    for pq in new:
        model[pq] = (GROW_W, (0.0,) * B, 0)


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@settings(max_examples=60, deadline=None, database=None)
@given(data=st.data())
def test_random_add_remove_grow_sequences_match_a_dict_model(config, data):
    n_pre, n_post, autapses = config
    sequence = data.draw(ops(n_pre, n_post), label="operations")
    s = nw.RaggedSynapses(n_pre, n_post, CAP, name="prop", autapses=autapses)
    s.add_var("w")
    s.add_var("e", batched=B)
    s.add_var("n", dtype=torch.int32)
    model = {}
    check(s, model)
    for step, op in enumerate(sequence):
        if op[0] == "add":
            apply_add(s, model, step, *op[1:])
        elif op[0] == "remove":
            apply_remove(s, model, op[1])
        else:
            apply_grow(s, model, *op[1:])
        check(s, model)
