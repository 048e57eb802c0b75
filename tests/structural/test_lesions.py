"""Lesions: exactly round(fraction * n) synapses cut, uniformly, seeded; survivors untouched;
dense matrices cut alike; DEEP R refills its budget afterwards."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

import neurowire as nw
from neurowire.checks import ParameterError
from neurowire.structural import lesion, lesion_count, lesion_dense, lesion_mask
from neurowire.structural.base import RuleContext
from neurowire.structural.view import SynapseView


def _store(n_pre=30, n_post=25, p=0.3, seed=0, capacity=None, device="cpu"):
    """A store with a weight, Adam moments and a batched trace, every value distinct."""
    g = torch.Generator().manual_seed(seed)
    dense = torch.rand(n_pre, n_post, generator=g) < p
    pre, post = dense.nonzero(as_tuple=True)
    s = nw.RaggedSynapses.from_coo(n_pre, n_post, pre, post, capacity=capacity, name="p")
    for i, name in enumerate(("weight", "adam_m", "adam_v")):
        s.add_var(name)
        s.set_values(name, torch.randn(s.nnz, generator=g) + 10 * i)
    s.add_var("trace", batched=2)
    s.set_values("trace", torch.randn(2, s.nnz, generator=g))
    return s.to(device)


def _synapses(s) -> dict[tuple[int, int], tuple[float, ...]]:
    """``(pre, post) -> every variable's value(s)`` of the live synapses."""
    pre, post = s.coo()
    cols = [torch.atleast_2d(s.values(n)).T.cpu() for n in sorted(s.vars)]  # [nnz, copies]
    values = torch.cat(cols, 1).tolist()
    return {(i, j): tuple(v) for i, j, v in zip(pre.tolist(), post.tolist(), values, strict=True)}


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 1 / 3, 0.999, 1.0])
def test_lesion_removes_exactly_round_fraction_of_nnz(fraction, device):
    s = _store(device=device)
    nnz = s.nnz
    cut = lesion(s, fraction, torch.Generator().manual_seed(1))
    assert int(cut.sum()) == round(fraction * nnz) == lesion_count(nnz, fraction)
    assert s.nnz == nnz - round(fraction * nnz)
    s.validate()


def test_the_count_rounds_to_nearest_with_ties_to_even():
    assert lesion_count(10, 0.25) == 2  # 2.5 -> 2
    assert lesion_count(10, 0.35) == 4  # 3.5 -> 4
    assert lesion_count(7, 0.5) == 4  # 3.5 -> 4
    assert lesion_count(0, 0.5) == 0


@given(
    n_pre=st.integers(1, 12),
    n_post=st.integers(1, 12),
    p=st.floats(0.0, 1.0),
    fraction=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_survivors_keep_every_variable_and_their_order(n_pre, n_post, p, fraction, seed):
    s = _store(n_pre, n_post, p, seed, capacity=n_post)
    before = _synapses(s)
    order = {i: s.ind[i, : s.row_length[i]].tolist() for i in range(n_pre)}
    cut = lesion(s, fraction, torch.Generator().manual_seed(seed))
    after = _synapses(s)
    assert len(before) - len(after) == int(cut.sum()) == round(fraction * len(before))
    assert all(before[pair] == values for pair, values in after.items())  # survivors unchanged
    for i in range(n_pre):  # each row keeps its survivors in their order
        kept = s.ind[i, : s.row_length[i]].tolist()
        assert kept == [j for j in order[i] if (i, j) in after]
    s.validate()


def test_every_subset_of_the_cut_size_is_equally_likely():
    # 5 candidates, 2 cut: each of the C(5, 2) = 10 subsets has probability 1/10. 20,000 draws
    # give 2,000 +- 42 per subset; the seeded draw passes a chi-square test at p > 0.001 (a
    # biased sampler, e.g. one favouring the first candidates, fails it by orders of magnitude).
    candidates = torch.tensor([True, False, True, True, True, False, True])
    g = torch.Generator().manual_seed(0)
    counts: dict[tuple[int, ...], int] = {}
    for _ in range(20_000):
        chosen = tuple(lesion_mask(candidates, 0.4, g).nonzero().squeeze(1).tolist())
        counts[chosen] = counts.get(chosen, 0) + 1
    allowed = set(itertools.combinations([0, 2, 3, 4, 6], 2))
    assert set(counts) == allowed
    assert stats.chisquare(list(counts.values())).pvalue > 1e-3


def test_each_synapse_is_cut_with_probability_fraction():
    # 2,000 lesions of 30 % of a store: every synapse is cut in 600 +- 20.5 of them
    # (binomial SD); tolerance: every count within 5 SD, and a chi-square over synapses at
    # p > 0.001.
    s = _store(n_pre=8, n_post=10, p=0.5, seed=3)
    g = torch.Generator().manual_seed(7)
    n, repeats, fraction = s.nnz, 2_000, 0.3
    assert round(fraction * n) / n == pytest.approx(fraction, abs=0.02)
    rate = round(fraction * n) / n
    hits = torch.zeros(s.n_pre, s.capacity)
    for _ in range(repeats):
        hits += lesion_mask(s.live, fraction, g)
    counts = hits[s.live].numpy()
    sd = np.sqrt(repeats * rate * (1 - rate))
    assert np.abs(counts - repeats * rate).max() < 5 * sd
    assert hits[~s.live].sum() == 0  # padding is never chosen
    assert stats.chisquare(counts).pvalue > 1e-3


def test_the_cut_is_seeded_and_the_same_on_every_device(device):
    def cut(seed, dev):
        s = _store(device=dev)
        return lesion(s, 0.4, torch.Generator().manual_seed(seed)).cpu(), _synapses(s)

    a, b, c = cut(5, "cpu"), cut(5, device), cut(6, "cpu")
    assert torch.equal(a[0], b[0]) and a[1] == b[1]
    assert not torch.equal(a[0], c[0])


def test_lesion_dense_zeroes_exactly_the_mask_and_skips_the_diagonal(device):
    g = torch.Generator().manual_seed(0)
    w = (torch.rand(9, 9, generator=g) + 0.5).to(device)
    original = w.clone()
    mask = lesion_dense(w, 0.5, torch.Generator().manual_seed(2), autapses=False)
    assert mask.device == w.device
    assert int(mask.sum()) == round(0.5 * 9 * 8)
    assert not mask.diagonal().any()
    assert torch.all(w[mask] == 0) and torch.equal(w[~mask], original[~mask])
    rect = torch.ones(4, 6)
    assert int(lesion_dense(rect, 0.25, torch.Generator().manual_seed(2)).sum()) == 6
    assert int((rect == 0).sum()) == 6


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: lesion(_store(), 1.5, torch.Generator()), ParameterError, "lesion fraction"),
        (lambda: lesion(_store(), float("nan"), torch.Generator()), ParameterError, "fraction"),
        (lambda: lesion(torch.ones(3, 3), 0.5, torch.Generator()), TypeError, "RaggedSynapses"),
        (lambda: lesion(_store(), 0.5, 7), TypeError, "CPU torch.Generator"),
        (lambda: lesion_mask(torch.ones(3), 0.5, torch.Generator()), TypeError, "bool"),
        (lambda: lesion_dense(torch.ones(3), 0.5, torch.Generator()), TypeError, "2-D"),
        (
            lambda: lesion_dense(torch.ones(3, 4), 0.5, torch.Generator(), autapses=False),
            ValueError,
            "square",
        ),
    ],
)
def test_bad_arguments_are_refused_naming_them(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------------- DEEP R after a lesion
def _deep_r(s, fused, seed=0):
    rule = nw.DeepR(l1=0.0, fused=fused)
    gen = torch.Generator().manual_seed(seed)
    ctx = RuleContext(gen, 0, 0.0, 1.0, s.name, rng=np.random.default_rng(seed))
    view = SynapseView(s, pre_state={}, post_state={}, pre_grid=None, post_grid=None, generator=gen)
    rule.setup(view, ctx)
    return rule, view, ctx


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "reference"])
def test_deep_r_refills_its_original_budget_at_the_next_call(fused):
    s = _store(n_pre=20, n_post=20, p=0.2, capacity=20)
    rule, view, ctx = _deep_r(s, fused)
    budget = s.nnz
    assert rule.budget == {"p": budget}
    lesion(s, 0.5, torch.Generator().manual_seed(0))
    lost = budget - s.nnz
    survivors = _synapses(s)
    assert not rule.atomic(view)  # the refill is a second edit: the runner must copy the store
    rule.update(view, ctx)
    assert s.nnz == budget and view.added == lost and view.removed == 0
    after = _synapses(s)
    assert all(after[pair] == values for pair, values in survivors.items())
    pre, post = s.coo()
    pairs = zip(pre.tolist(), post.tolist(), strict=True)
    new = torch.tensor([pair not in survivors for pair in pairs])
    assert int(new.sum()) == lost
    for name in ("weight", "adam_m", "adam_v", "trace"):  # the new synapses start at 0
        assert torch.all(s.values(name)[..., new] == 0), name
    s.validate()
    if fused:
        assert rule.atomic(view)  # full again: one fused edit per call


def test_the_refill_is_the_same_on_the_fused_and_the_reference_path():
    stores = []
    for fused in (True, False):
        s = _store(n_pre=20, n_post=20, p=0.2, capacity=20)
        rule, view, ctx = _deep_r(s, fused)
        lesion(s, 0.3, torch.Generator().manual_seed(4))
        with torch.no_grad():  # some synapses also cross zero against their sign this call
            flip = torch.rand(s.vars["weight"].shape, generator=torch.Generator().manual_seed(9))
            s.vars["weight"].mul_(torch.where(flip < 0.1, -0.5, 0.5))
        rule.update(view, ctx)
        stores.append(s)
    a, b = stores
    assert torch.equal(a.row_length, b.row_length) and torch.equal(a.ind, b.ind)
    for name in a.vars:
        assert torch.equal(a.vars[name], b.vars[name]), name


def test_the_budget_travels_with_the_rule_state():
    s = _store(n_pre=10, n_post=10, p=0.3, capacity=10)
    rule, _, _ = _deep_r(s, True)
    state = rule.state_dict()
    assert state["budget"] == {"p": s.nnz}
    other = nw.DeepR(l1=0.0)
    other.load_state_dict({**state, "budget": {"p": 5}})
    assert other.budget == {"p": 5}
    with pytest.raises(ValueError, match="bad saved state"):
        other.load_state_dict({**state, "budget": {"p": "many"}})
