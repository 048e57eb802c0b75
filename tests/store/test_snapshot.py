"""StoreSnapshot, the one undo of a store (mutation blocks, rule transactions, batch undo), and
rank_in_row, the one rank of entries within their row."""

from __future__ import annotations

import pytest
import torch

import neurowire as nw
from neurowire.store import StoreError, StoreSnapshot, rank_in_row


def store(device, native=True):
    """6 x 8, capacity 5: rows hold (i, i..i+2 mod 8), weight 10 * pre + post, a batched e."""
    pre = torch.arange(6).repeat_interleave(3)
    post = (pre + torch.arange(3).repeat(6)) % 8
    s = nw.RaggedSynapses(6, 8, 5, device, name="snap")
    s.native_ops = native
    s.add_var("weight")
    s.add_var("e", batched=2, dtype=torch.float64)
    s.add(pre.to(device), post.to(device), weight=(10.0 * pre + post).to(device))
    return s


def contents(s):
    return (s.ind.clone(), s.row_length.clone(), {k: v.clone() for k, v in s.vars.items()})


@pytest.mark.parametrize("native", [True, False])
def test_restore_puts_contents_back_into_the_same_tensors(device, native):
    s = store(device, native)
    before = contents(s)
    objects = (s.ind, s.row_length, s.vars, dict(s.vars))
    version = s.version, s.values_version
    snap = StoreSnapshot(s)
    s.remove(s.live & (s.ind % 2 == 0))
    s.grow(torch.full((6,), 2, device=device), weight=0.5)
    s.vars["e"].add_(1.0)
    s.add_var("scratch")  # registered since: dropped
    del s.vars["weight"]  # dropped since: put back
    snap.restore()
    assert (s.ind, s.row_length, s.vars) == objects[:3]
    assert s.vars.keys() == objects[3].keys()
    assert all(s.vars[k] is v for k, v in objects[3].items())
    after = contents(s)
    assert torch.equal(after[0][s.live], before[0][s.live])
    assert torch.equal(after[1], before[1])
    for k in before[2]:
        assert torch.equal(after[2][k], before[2][k]), k
    assert s.version > version[0] and s.values_version > version[1]  # no cache survives
    s.validate()
    assert torch.equal(s.to_dense("weight"), s.dense("weight"))


def test_restore_repairs_a_structure_written_behind_the_store():
    s = store("cpu")
    snap = StoreSnapshot(s)
    s.ind[0, 0] = 7  # outside a mutation: the seal is broken
    with pytest.raises(StoreError, match="written outside"):
        s.coo()
    snap.restore()
    s.validate()
    assert s.ind[0, 0] == 0


def test_snapshot_of_a_tampered_store_is_refused():
    s = store("cpu")
    s.row_length[1] = 0
    with pytest.raises(StoreError, match="written outside"):
        StoreSnapshot(s)


def test_rank_in_row_counts_entries_of_each_row_in_order():
    rows = torch.tensor([3, 1, 3, -1, 1, 3, -1, 0])
    assert rank_in_row(rows).tolist() == [0, 0, 1, 0, 1, 2, 1, 0]
    assert rank_in_row(torch.zeros(0, dtype=torch.int64)).numel() == 0
