"""Property test: random add/remove/grow sequences against a plain Python model of the store.

The model keeps, per presynaptic row, the list of its postsynaptic targets *in slot order*, and
per synapse ``(pre, post)`` its values ``(w, e, n)``: a shared float32 weight ``w``, a batched
float32 variable ``e`` (one value per batch copy) and a shared int32 ``n``. The slot order is the
store's documented one (``neurowire.store``): removal is stable (survivors keep their relative
order, compacted to the front of the row), ``add`` appends the pairs it accepts to the end of
their row in call order, and ``grow`` appends behind the existing synapses (its targets are
random, so the model takes them from the store and checks them).

After every operation the store must pass ``validate()`` and agree with the model in

* ``row_length``, the live slots of ``ind`` (slot by slot) and every variable slot by slot (so a
  value moves with its synapse when the row is compacted or appended to);
* ``coo()`` (row-major, slot order within a row), ``values()``, ``to_dense()``, ``contains()``
  (every pair);
* ``csr()`` (``indptr``, ``indices``, flat ``slot``), ``columns()`` (per column the rows in
  increasing order with their flat slots, ``length``, ``indptr``) and ``padded_columns()``
  (each column's slots then padding ``n_pre * capacity``; the width covers the longest column,
  never exceeds ``n_pre`` and never shrinks);

and a call that raises must change nothing. Each sequence runs on both implementations of the
structural changes (numba kernels on the CPU, PyTorch ops on every device). The number of
examples comes from the hypothesis profile (``tests/conftest.py``: ``quick`` by default,
``HYPOTHESIS_PROFILE=full`` for 300); the ``slow`` variant always runs 300.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurowire as nw

B = 2
CAP = 4
CONFIGS = {  # name -> (n_pre, n_post, autapses)
    "feed-forward 5x7": (5, 7, True),
    "recurrent 6x6 without autapses": (6, 6, False),
}
GROW_W = 2.5
#: the ``device`` fixture is function-scoped but constant for a test case: safe to share
NO_FIXTURE_CHECK = [HealthCheck.function_scoped_fixture]
PATHS = [
    pytest.param(
        True,
        id="numba-kernels",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("numba") is None, reason="the store kernels need numba"
        ),
    ),
    pytest.param(False, id="torch-ops"),
]


class Model:
    """The store as plain Python: ``rows[i]`` targets of row ``i`` in slot order,
    ``vals[(pre, post)] = (w, e, n)`` with ``e`` a tuple of ``B`` values."""

    def __init__(self, n_pre: int, n_post: int) -> None:
        self.n_pre, self.n_post = n_pre, n_post
        self.rows: list[list[int]] = [[] for _ in range(n_pre)]
        self.vals: dict[tuple[int, int], tuple[float, tuple[float, ...], int]] = {}
        self.col_width = 0  # widest padded_columns() seen so far (it never shrinks)

    def __contains__(self, pair) -> bool:
        return pair in self.vals

    def __len__(self) -> int:
        return len(self.vals)

    def length(self, i: int) -> int:
        return len(self.rows[i])

    def append(self, p: int, q: int, values) -> None:
        assert (p, q) not in self.vals
        self.rows[p].append(q)
        self.vals[(p, q)] = values

    def coo(self) -> list[tuple[int, int, int]]:
        """(pre, post, flat slot) of every synapse, row-major in slot order."""
        return [(i, q, i * CAP + j) for i, row in enumerate(self.rows) for j, q in enumerate(row)]

    def column(self, q: int) -> list[tuple[int, int]]:
        """(pre, flat slot) of the synapses onto ``q``, by increasing ``pre``."""
        return [
            (p, p * CAP + self.rows[p].index(q)) for p in range(self.n_pre) if q in self.rows[p]
        ]


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


def check_slots(s, model):
    """Slot by slot: row lengths, targets in the model's order, each synapse's own values."""
    assert s.row_length.tolist() == [model.length(i) for i in range(s.n_pre)]
    w, e, n = s.vars["w"], s.vars["e"], s.vars["n"]
    for i, row in enumerate(model.rows):
        assert s.ind[i, : len(row)].tolist() == row, f"row {i}: slot order"
        for j, q in enumerate(row):
            mw, me, mn = model.vals[(i, q)]
            assert w[i, j].item() == mw, (i, j, q)
            assert tuple(e[:, i, j].tolist()) == me, (i, j, q)
            assert n[i, j].item() == mn, (i, j, q)


def check_views(s, model):
    """coo, csr, columns and padded_columns against the model."""
    expected = model.coo()
    pre, post = s.coo()
    assert list(zip(pre.tolist(), post.tolist(), strict=True)) == [(p, q) for p, q, _ in expected]
    assert s.nnz == len(model) == len(expected)

    csr = s.csr()
    lengths = [model.length(i) for i in range(s.n_pre)]
    assert csr.indptr.tolist() == [sum(lengths[:i]) for i in range(s.n_pre + 1)]
    assert csr.indices.tolist() == [q for _, q, _ in expected]
    assert csr.slot.tolist() == [slot for _, _, slot in expected]

    cols = s.columns()
    columns = [model.column(q) for q in range(s.n_post)]
    col_len = [len(c) for c in columns]
    assert cols.length.tolist() == col_len
    assert cols.indptr.tolist() == [sum(col_len[:q]) for q in range(s.n_post + 1)]
    assert cols.pre.tolist() == [p for c in columns for p, _ in c]
    assert cols.slot.tolist() == [slot for c in columns for _, slot in c]

    padded = s.padded_columns()
    width = padded.shape[1]
    assert padded.shape[0] == s.n_post
    assert max(col_len, default=0) <= width <= s.n_pre
    assert width >= model.col_width, "padded_columns() width shrank"
    model.col_width = width
    pad = s.n_pre * CAP
    for q, c in enumerate(columns):
        assert padded[q].tolist() == [slot for _, slot in c] + [pad] * (width - len(c)), q


def check(s, model):
    s.validate()
    check_slots(s, model)
    check_views(s, model)
    pre, post = (t.cpu() for t in s.coo())
    all_pre, all_post = torch.meshgrid(
        torch.arange(s.n_pre, device=s.device),
        torch.arange(s.n_post, device=s.device),
        indexing="ij",
    )
    member = [
        (p, q) in model
        for p, q in zip(all_pre.flatten().tolist(), all_post.flatten().tolist(), strict=True)
    ]
    assert s.contains(all_pre.flatten(), all_post.flatten()).tolist() == member
    dense_w = torch.zeros(s.n_pre, s.n_post)  # the model's, on the CPU
    dense_e = torch.zeros(B, s.n_pre, s.n_post)
    dense_n = torch.zeros(s.n_pre, s.n_post, dtype=torch.int32)
    for (p, q), (w, e, n) in model.vals.items():
        dense_w[p, q], dense_e[:, p, q], dense_n[p, q] = w, torch.tensor(e), n
    assert torch.equal(s.to_dense("w").cpu(), dense_w)
    assert torch.equal(s.to_dense("e").cpu(), dense_e)
    assert torch.equal(s.to_dense("n").cpu(), dense_n)
    assert torch.equal(s.values("w").cpu(), dense_w[pre, post])
    assert torch.equal(s.values("e").cpu(), dense_e[:, pre, post])
    assert torch.equal(s.values("n").cpu(), dense_n[pre, post])


def apply_add(s, model, step, pairs, on_full, on_duplicate, flat_e, give_n):
    k, dev = len(pairs), s.device
    pre = torch.tensor([p for p, _ in pairs], dtype=torch.int64, device=dev)
    post = torch.tensor([q for _, q in pairs], dtype=torch.int64, device=dev)
    w = [step * 100.0 + i + 0.5 for i in range(k)]
    if flat_e:  # one [k] vector written into every batch copy
        e = [[x + 1000.0 for x in w]] * B
        e_given = torch.tensor(e[0], device=dev)
    else:
        e = [[x + 1000.0 * (b + 1) for x in w] for b in range(B)]
        e_given = torch.tensor(e, device=dev).reshape(B, k)
    n = [step * 100 + i for i in range(k)]
    values = dict(w=torch.tensor(w, device=dev), e=e_given)
    if give_n:
        values["n"] = torch.tensor(n, dtype=torch.int32, device=dev)

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
    count = [model.length(i) for i in range(s.n_pre)]
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
    for i, (p, q) in enumerate(pairs):  # appended to the end of the row, in call order
        if fits[i]:
            model.append(p, q, (w[i], tuple(e[b][i] for b in range(B)), n[i] if give_n else 0))


def apply_remove(s, model, bits):
    mask = torch.tensor(bits).view(s.n_pre, CAP)  # read on the CPU below
    removed = s.remove(mask.to(s.device))
    expected = []
    for i, row in enumerate(model.rows):
        gone = [q for j, q in enumerate(row) if mask[i, j]]
        model.rows[i] = [q for j, q in enumerate(row) if not mask[i, j]]  # stable compaction
        for q in gone:
            del model.vals[(i, q)]
        expected.append(len(gone))
    assert removed.tolist() == expected


def apply_grow(s, model, counts, seed):
    lengths = [model.length(i) for i in range(s.n_pre)]
    free_cols = [s.n_post - length - (0 if s.autapses else 1) for length in lengths]
    want = [
        min(c, CAP - length, f) for c, length, f in zip(counts, lengths, free_cols, strict=True)
    ]
    gen = torch.Generator(s.device).manual_seed(seed)
    added = s.grow(torch.tensor(counts, device=s.device), generator=gen, w=GROW_W)
    assert added.tolist() == want
    # the new synapses follow the existing ones (check() verifies the existing ones stayed put)
    for i in range(s.n_pre):
        new = s.ind[i, lengths[i] : lengths[i] + want[i]].tolist()
        assert len(set(new)) == len(new) and all(0 <= q < s.n_post for q in new), new
        assert not set(new) & set(model.rows[i]), (i, new)
        assert s.autapses or i not in new, (i, new)
        for q in new:
            model.append(i, q, (GROW_W, (0.0,) * B, 0))


def run_sequence(config, native_ops, device, data):
    if native_ops and device.type != "cpu":
        pytest.skip("the numba store kernels run on the CPU only")
    n_pre, n_post, autapses = config
    sequence = data.draw(ops(n_pre, n_post), label="operations")
    s = nw.RaggedSynapses(n_pre, n_post, CAP, device, name="prop", autapses=autapses)
    s.native_ops = native_ops
    s.add_var("w")
    s.add_var("e", batched=B)
    s.add_var("n", dtype=torch.int32)
    model = Model(n_pre, n_post)
    check(s, model)
    for step, op in enumerate(sequence):
        if op[0] == "add":
            apply_add(s, model, step, *op[1:])
        elif op[0] == "remove":
            apply_remove(s, model, op[1])
        else:
            apply_grow(s, model, *op[1:])
        check(s, model)


@pytest.mark.parametrize("native_ops", PATHS)
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@settings(database=None, suppress_health_check=NO_FIXTURE_CHECK)  # the profile's examples
@given(data=st.data())
def test_random_add_remove_grow_sequences_match_a_python_model(config, native_ops, device, data):
    run_sequence(config, native_ops, device, data)


@pytest.mark.slow
@pytest.mark.parametrize("native_ops", PATHS)
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@settings(max_examples=300, database=None, suppress_health_check=NO_FIXTURE_CHECK)
@given(data=st.data())
def test_random_add_remove_grow_sequences_match_a_python_model_long(
    config, native_ops, device, data
):
    run_sequence(config, native_ops, device, data)
