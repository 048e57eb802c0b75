"""Spike delivery and gradient accumulation (:mod:`neurowire.propagate`) against a dense reference.

Every strategy must compute ``w_sum[row, j] = sum_i z[row, i] W[i, j]`` (and the accumulations
``g[i, j] = sum_row z[row, i] H[row, j]`` at the synapses) on random stores drawn by
hypothesis: rows of every length from empty to full (``row_length == capacity``), weights of
dead slots set to a large value they must never deliver, one or several batch rows, and spike
arrays from silent to all-spiking. The reference is the float64 product of the dense arrays.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurowire as nw
from neurowire.propagate import (
    SpikeEvents,
    accumulate_dense,
    accumulate_slots,
    csc_matrix,
    deliver_all_slots,
    deliver_csr,
    deliver_dense,
    deliver_matmul,
    deliver_rows,
    deliver_slots,
)

#: the ``device`` fixture is function-scoped but constant for a test case: safe to share
NO_FIXTURE_CHECK = [HealthCheck.function_scoped_fixture]
#: what a dead slot holds: it must never reach an output
DEAD_WEIGHT = 1.0e6
ATOL = 1e-5  # float32 weights summed in any order, against a float64 reference


@st.composite
def cases(draw):
    """``(store, z [R, n_pre] bool, n_post)`` with every row length in ``[0, capacity]``."""
    n_pre = draw(st.integers(1, 7))
    n_post = draw(st.integers(1, 8))
    capacity = draw(st.integers(1, n_post))
    lengths = draw(st.lists(st.integers(0, capacity), min_size=n_pre, max_size=n_pre))
    if n_pre > 1:  # make sure an empty and a full row appear together often
        lengths[0] = draw(st.sampled_from([0, capacity, lengths[0]]))
        lengths[-1] = draw(st.sampled_from([capacity, lengths[-1]]))
    rows = draw(st.integers(1, 4))
    p_spike = draw(st.sampled_from([0.0, 0.3, 1.0]))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    pre = torch.cat([torch.full((k,), i, dtype=torch.int64) for i, k in enumerate(lengths)])
    post = torch.cat([torch.randperm(n_post, generator=gen)[:k] for k in lengths])
    weight = torch.rand(pre.numel(), generator=gen) * 2 - 1
    store = nw.RaggedSynapses.from_coo(n_pre, n_post, pre, post, capacity=capacity, weight=weight)
    assert store.row_length.tolist() == lengths
    store.vars["weight"][~store.live] = DEAD_WEIGHT
    z = torch.rand(rows, n_pre, generator=gen) < p_spike
    return store, z, seed


def dense_weight(store) -> torch.Tensor:
    """``W [n_pre, n_post]`` in float64 from the live slots only (independent of the store's
    own views)."""
    w = torch.zeros(store.n_pre, store.n_post, dtype=torch.float64)
    for i in range(store.n_pre):
        for s in range(int(store.row_length[i])):
            w[i, int(store.ind[i, s])] = float(store.vars["weight"][i, s])
    return w


def close(got: torch.Tensor, expected: torch.Tensor) -> None:
    got = got.to_dense() if got.layout != torch.strided else got
    torch.testing.assert_close(got.cpu().double(), expected, atol=ATOL, rtol=0)


STRATEGIES = ["matmul", "all_slots", "rows_fixed", "rows_events", "csr"]


@pytest.mark.parametrize("strategy", STRATEGIES)
@settings(database=None, suppress_health_check=NO_FIXTURE_CHECK)
@given(case=cases())
def test_simulator_delivery_equals_dense_product(strategy, case, device):
    store, z, _ = case
    expected = z.double() @ dense_weight(store)
    s = store.to(device)
    z = z.to(device)
    w, rows = s.vars["weight"], z.shape[0]
    if strategy == "matmul":
        out = deliver_matmul(z, s.to_dense("weight"))
    elif strategy == "all_slots":
        out = deliver_all_slots(z, s.ind, w, s.live, s.n_post)
    elif strategy == "rows_fixed":  # a budget above the spike count: padding events
        events = SpikeEvents.fixed(z, int(z.sum()) + 3)
        assert not bool(events.overflow)
        out = deliver_rows(events, s.ind, w, s.live, rows, s.n_post)
    elif strategy == "rows_events":
        out = deliver_rows(SpikeEvents.from_dense(z), s.ind, w, s.live, rows, s.n_post)
    else:
        cols = s.columns()
        out = deliver_csr(z, csc_matrix(cols.indptr, cols.pre, cols.slot, w, s.n_pre))
    assert out.shape == (rows, s.n_post) and out.device.type == device.type
    close(out, expected)


def padded(store, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Global column indices and weights with padding slots at a valid column and weight 0."""
    post = torch.where(store.live, store.ind + offset, offset)
    return post, torch.where(store.live, store.vars["weight"], 0.0)


@settings(database=None, suppress_health_check=NO_FIXTURE_CHECK)
@given(case=cases(), offset=st.integers(0, 3), extra=st.integers(0, 2))
def test_event_delivery_adds_into_a_wider_output(case, offset, extra, device):
    store, z, seed = case
    w_dense = dense_weight(store)
    n_cols = offset + store.n_post + extra
    start = torch.rand(z.shape[0], n_cols, generator=torch.Generator().manual_seed(seed))
    expected = start.double().clone()
    expected[:, offset : offset + store.n_post] += z.double() @ w_dense
    events = SpikeEvents.from_dense(z.to(device))
    post, weight = padded(store.to(device), offset)
    out = start.clone().to(device)
    deliver_slots(out, events, post, weight)
    close(out, expected)
    out = start.clone().to(device)
    deliver_dense(out, events, w_dense.float().to(device), offset)
    close(out, expected)


@settings(database=None, suppress_health_check=NO_FIXTURE_CHECK)
@given(case=cases(), offset=st.integers(0, 3))
def test_accumulation_equals_dense_product_at_the_synapses(case, offset, device):
    store, z, seed = case
    gen = torch.Generator().manual_seed(seed + 1)
    adjoint = torch.randn(z.shape[0], offset + store.n_post, generator=gen, dtype=torch.float64)
    full = z.double().T @ adjoint[:, offset:]  # [n_pre, n_post]
    events = SpikeEvents.from_dense(z.to(device))
    got = accumulate_dense(events, adjoint.to(device), offset, store.n_post)
    close(got, full)
    s = store.to(device)
    slots = accumulate_slots(events, adjoint.to(device), padded(s, offset)[0]) * s.live
    ind = torch.where(store.live, store.ind, 0)
    expected = torch.where(store.live, full.gather(1, ind), 0.0)
    close(slots, expected)


def test_fixed_events_keep_row_major_order_and_mark_padding_invalid(device):
    z = torch.tensor([[False, True, True], [True, False, False]], device=device)
    events = SpikeEvents.fixed(z, 5)
    assert events.row.tolist() == [0, 0, 1, 0, 0] and events.pre.tolist() == [1, 2, 0, 0, 0]
    assert events.valid.tolist() == [True, True, True, False, False]
    assert not bool(events.overflow) and bool(SpikeEvents.fixed(z, 2).overflow)
    # the padding events sit on (row 0, neuron 0), a silent neuron with a weight: not delivered
    store = nw.RaggedSynapses.from_coo(
        3, 2, torch.tensor([0, 1]), torch.tensor([1, 0]), weight=torch.tensor([5.0, 2.0])
    ).to(device)
    out = deliver_rows(events, store.ind, store.vars["weight"], store.live, 2, 2)
    assert out.cpu().tolist() == [[2.0, 0.0], [0.0, 5.0]]


def test_events_of_a_time_major_array_select_and_count():
    z = torch.tensor([[1, 0, 1, 1], [0, 0, 0, 0], [0, 1, 0, 1]], dtype=torch.bool)
    events = SpikeEvents.from_dense(z, row_offset=2, n_rows=6)
    assert events.row.tolist() == [2, 2, 2, 4, 4] and events.pre.tolist() == [0, 2, 3, 1, 3]
    assert events.row_pointers().tolist() == [0, 0, 0, 3, 3, 5, 5]
    assert events.counts().tolist() == [1, 1, 1, 2] and events.count == 5
    part = events.select(1, 3)
    assert part.n == 2 and part.row.tolist() == [2, 4] and part.pre.tolist() == [1, 0]
    crow, rows = events.pre_pointers()
    assert crow.tolist() == [0, 1, 2, 3, 5] and rows.tolist() == [2, 4, 2, 2, 4]
    assert torch.equal(events.by_row(torch.float32).to_dense()[2:5:2], z[[0, 2]].float())
