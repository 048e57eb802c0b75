"""DEEP R: fixed signs, exact synapse budget, where synapses regrow, both modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

import neurowire as nw
from neurowire.structural.base import RuleContext
from neurowire.structural.deep_r import SignBits, place_by_pair, place_by_row
from neurowire.structural.view import SynapseView


def _view(store, gen):
    return SynapseView(
        store, pre_state={}, post_state={}, pre_grid=None, post_grid=None, generator=gen
    )


def _ctx(store, seed=0, batch_size=1, lr=None):
    gen = torch.Generator(store.device).manual_seed(seed)
    return gen, RuleContext(
        gen,
        0,
        0.0,
        1.0,
        store.name,
        rng=np.random.default_rng(seed),
        batch_size=batch_size,
        learning_rate=lr,
    )


def _store(device, n_pre=6, n_post=8, capacity=5, seed=0, autapses=True):
    """Drawn on the CPU (the same store on every device), then moved to ``device``."""
    g = torch.Generator().manual_seed(seed)
    pre, post = [], []
    for i in range(n_pre):
        cols = torch.randperm(n_post, generator=g)[:3]
        cols = cols[cols != i] if not autapses else cols
        pre += [i] * len(cols)
        post += cols.tolist()
    s = nw.RaggedSynapses.from_coo(
        n_pre, n_post, pre, post, capacity=capacity, autapses=autapses, name="p"
    )
    s.add_var("weight")
    s.set_values("weight", torch.randn(s.nnz, generator=g))
    for name in ("adam_m", "adam_v"):
        s.add_var(name, init=0.5)
    return s.to(device)


def _eprop_engine(device):
    """The default e-prop engine on the CPU, the torch reference elsewhere."""
    return {"device": device} if device.type == "cpu" else {"device": device, "engine": "torch"}


def _pairs(s):
    pre, post = s.coo()
    return set(zip(pre.tolist(), post.tolist(), strict=True))


def _set_up(s, rule=None, seed=0, **ctx):
    rule = rule or nw.DeepR(l1=0.01)
    gen, c = _ctx(s, seed, **ctx)
    rule.setup(_view(s, gen), c)
    return rule, gen, c


def test_sign_bits_pack_and_read_back_any_pattern(device, generator):
    dense = torch.rand(5, 19, generator=generator, device=device) < 0.5
    bits = SignBits(torch.zeros(5, 3, dtype=torch.uint8, device=device), 19)
    rows, cols = torch.arange(5, device=device), torch.arange(19, device=device)
    pre, post = torch.meshgrid(rows, cols, indexing="ij")
    bits.set(pre.flatten(), post.flatten(), dense.flatten())
    assert torch.equal(bits.dense(), dense)
    assert torch.equal(bits.negative(pre, post), dense)
    assert bits.bits.numel() == 15  # one bit per pair, packed


def test_setup_keeps_initial_signs_and_draws_fair_coins_elsewhere(device):
    s = _store(device, n_pre=40, n_post=200, capacity=10)
    rule, _, _ = _set_up(s)
    bits = rule.signs["p"].dense()
    pre, post = s.coo()
    assert torch.equal(bits[pre, post], s.values("weight") < 0)
    assert torch.equal(s.values("sign"), torch.where(s.values("weight") < 0, -1, 1).to(torch.int8))
    others = torch.ones_like(bits)
    others[pre, post] = False
    frac = bits[others].float().mean().item()
    assert abs(frac - 0.5) < 0.02  # 8,000 fair coins: sd 0.0056


def test_l1_hook_adds_batch_times_l1_times_sign_on_live_synapses_only(device):
    s = _store(device)
    rule, gen, c = _set_up(s, nw.DeepR(l1=0.25), batch_size=8)
    grad = torch.zeros(s.n_pre, s.capacity, device=device)
    out = rule.adjust_gradient(_view(s, gen), grad, c)
    sign = torch.where(s.vars["weight"] < 0, -1.0, 1.0)
    assert torch.equal(out, torch.where(s.live, 0.25 * 8 * sign, 0.0))


def test_removes_exactly_the_crossed_synapses_and_regrows_as_many_with_zero_state(device):
    s = _store(device, n_pre=8, n_post=12, capacity=6)
    rule, gen, c = _set_up(s)
    before = _pairs(s)
    pre, post = s.coo()
    w = s.values("weight")
    flip = torch.zeros_like(w, dtype=torch.bool)
    flip[::3] = True
    s.set_values("weight", torch.where(flip, -w, w))  # these cross zero against their sign
    crossed = {(int(i), int(j)) for i, j in zip(pre[flip], post[flip], strict=True)}
    nnz = s.nnz
    log = nw.RewiringLog()
    view = SynapseView(
        s,
        pre_state={},
        post_state={},
        pre_grid=None,
        post_grid=None,
        generator=gen,
        log=log,
        log_events=True,
    )
    rule.update(view, c)
    s.validate()
    ev = log.events("p")
    gone = ev["kind"] == -1
    eliminated = set(zip(ev["pre"][gone].tolist(), ev["post"][gone].tolist(), strict=True))
    formed = list(zip(ev["pre"][~gone].tolist(), ev["post"][~gone].tolist(), strict=True))
    assert eliminated == crossed
    assert s.nnz == nnz and view.removed == view.added == len(crossed) == len(formed)
    assert _pairs(s) == (before - crossed) | set(formed)
    new_pre, new_post = s.coo()
    keys = [(int(i), int(j)) for i, j in zip(new_pre, new_post, strict=True)]
    fresh = torch.tensor([k in set(formed) for k in keys], device=device)
    for name in ("weight", "adam_m", "adam_v"):
        assert torch.all(s.values(name)[fresh] == 0), name
    bits = rule.signs["p"].negative(new_pre, new_post)
    assert torch.equal(s.values("sign"), torch.where(bits, -1, 1).to(torch.int8))


def test_training_keeps_count_signs_capacity_and_never_duplicates(device):
    train, _ = nw.data.frozen_poisson_patterns(n_classes=2, n_inputs=20, steps=40, n_train=32)
    net = nw.Network(seed=3)
    inp = net.population("input", nw.SpikeSource(20))
    hid = net.population("hidden", nw.ALIF(16, tau_refrac=5.0))
    out = net.population("output", nw.LeakyIntegrator(2))
    p_in = net.connect(inp, hid, nw.FixedProbability(0.2), weight=nw.Normal(0, 0.3), padding=2.0)
    p_rec = net.connect(hid, hid, nw.FixedProbability(0.2), weight=nw.Normal(0, 0.3), padding=2.0)
    net.connect(hid, out, nw.Dense(), weight=nw.Normal(0, 0.3))
    rules = {p_in: nw.DeepR(l1=0.5), p_rec: nw.DeepR(l1=0.5, regrow="row")}
    tr = nw.EProp(
        net, output=out, optimizer=nw.Adam(lr=0.05), rewiring=rules, **_eprop_engine(device)
    )
    counts = {p.name: p.synapses.nnz for p in rules}
    for spikes, labels in train.batches(4):
        tr.train_step(spikes, labels)
        for p, rule in rules.items():
            s = p.synapses
            s.validate()
            assert s.nnz == counts[p.name]
            pre, post = s.coo()
            negative = rule.signs[p.name].negative(pre, post)
            w = s.values("weight")
            assert not bool(((w > 0) & negative).any() | ((w < 0) & ~negative).any())
    total = sum(tr.rewiring_log.totals(p.name)["removed"] for p in rules)
    assert total > 0  # the test exercised rewiring
    for p in rules:
        t = tr.rewiring_log.totals(p.name)
        assert t["removed"] == t["added"]


@pytest.mark.parametrize(("regrow", "native"), [("pair", True), ("row", True), ("pair", False)])
def test_regrowth_distribution_is_uniform_over_eligible_places(device, regrow, native):
    if native and device.type != "cpu":
        pytest.skip("the numba store kernels run on the CPU only")
    # rows of different fullness; row 2 is full, row 3 has one free slot
    n_pre, n_post, cap = 4, 6, 4
    lengths = [1, 2, 4, 3]
    pre = [i for i, k in enumerate(lengths) for _ in range(k)]
    post = [j for k in lengths for j in range(k)]
    counts = np.zeros((n_pre, n_post))
    trials = 1500
    for t in range(trials):
        s = nw.RaggedSynapses.from_coo(
            n_pre, n_post, pre, post, capacity=cap, device=device, name="p"
        )
        s.native_ops = native  # False: the store's PyTorch remove/add path
        s.add_var("weight", init=1.0)
        rule, gen, c = _set_up(s, nw.DeepR(regrow=regrow), seed=t)
        s.remove(torch.zeros(n_pre, cap, dtype=torch.bool, device=device))
        before = _pairs(s)
        rule.regrow_synapses(_view(s, gen), 1, c)
        (new,) = _pairs(s) - before
        counts[new] += 1
    eligible = np.zeros((n_pre, n_post), dtype=bool)
    for i, k in enumerate(lengths):
        if k < cap:
            eligible[i, k:] = True
    assert counts[~eligible].sum() == 0
    if regrow == "pair":
        expected = np.full(eligible.sum(), trials / eligible.sum())
    else:  # uniform row among rows with room, then uniform free column
        rows = [i for i, k in enumerate(lengths) if k < cap]
        expected = np.concatenate(
            [np.full(n_post - lengths[i], trials / len(rows) / (n_post - lengths[i])) for i in rows]
        )
    observed = counts[eligible]
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_place_by_pair_is_exact_when_rows_fill_up():
    dormant = np.array([100, 1, 5])
    room = np.array([1, 1, 3])
    for key in range(50):
        counts, failed = place_by_pair(key, dormant, room, 5)
        assert failed == 0 and np.array_equal(counts, room)  # every slot must be used
    counts, failed = place_by_pair(7, dormant, room, 7)
    assert failed == 2 and counts.sum() == 5


def test_place_by_pair_draws_one_at_a_time_among_rows_with_room():
    # two placements, rows of 3, 1 and 2 unconnected pairs and room for 1, 1 and 2: drawn one
    # at a time (a full row drops out), counts (1,1,0), (1,0,1), (0,1,1), (0,0,2) have
    # probabilities 4/15, 8/15, 2/15 and 1/15
    outcomes = {(1, 1, 0): 0, (1, 0, 1): 0, (0, 1, 1): 0, (0, 0, 2): 0}
    trials = 3000
    for key in range(trials):
        counts, failed = place_by_pair(key, np.array([3, 1, 2]), np.array([1, 1, 2]), 2)
        assert failed == 0
        outcomes[tuple(int(c) for c in counts)] += 1
    expected = np.array([4, 8, 2, 1]) / 15 * trials
    assert stats.chisquare(list(outcomes.values()), expected).pvalue > 1e-3


def test_place_by_row_counts_retries_on_full_rows_as_failures():
    room = np.array([0, 0, 0, 10])
    counts, failed = place_by_row(1, room, 10)
    assert np.array_equal(counts, room)
    assert failed > 10  # three of four rows are full: ~30 rejected draws expected
    counts, failed = place_by_row(2, np.zeros(4, dtype=np.int64), 3)
    assert failed == 3 and counts.sum() == 0


def test_original_mode_noise_has_variance_two_lr_t(device):
    n_pre, n_post = 200, 100
    rows, cols = torch.arange(n_pre, device=device), torch.arange(n_post, device=device)
    pre, post = torch.meshgrid(rows, cols, indexing="ij")
    s = nw.RaggedSynapses.from_coo(
        n_pre, n_post, pre.flatten(), post.flatten(), device=device, name="p"
    )
    s.add_var("weight", init=-5.0)  # all inhibitory, far from zero: nothing is removed
    lr, temp = 1e-3, 0.5
    rule, gen, c = _set_up(s, nw.DeepR(l1=0.0, mode="original", temperature=temp), lr=lr)
    rule.update(_view(s, gen), c)
    delta = s.values("weight") + 5.0
    var = delta.double().var().item()
    assert s.nnz == n_pre * n_post
    assert var == pytest.approx(2 * lr * temp, rel=0.03)  # 20,000 samples: sd of var ~1 %


def test_original_mode_l1_shrinks_magnitudes_by_lr_l1(device):
    s = _store(device)
    w0 = s.values("weight").clone()
    rule, gen, c = _set_up(s, nw.DeepR(l1=0.1, mode="original", lr=0.01))
    s.set_values("weight", w0 + torch.sign(w0) * 1.0)  # keep every synapse far from zero
    w1 = s.values("weight").clone()
    rule.update(_view(s, gen), c)
    assert torch.allclose(s.values("weight"), w1 - torch.sign(w1) * 0.001)


def _trained_connectivity(seed, device):
    train, _ = nw.data.frozen_poisson_patterns(n_classes=2, n_inputs=20, steps=30, n_train=24)
    net = nw.Network(seed=1)
    inp = net.population("input", nw.SpikeSource(20))
    hid = net.population("hidden", nw.LIF(12))
    out = net.population("output", nw.LeakyIntegrator(2))
    p = net.connect(inp, hid, nw.FixedProbability(0.3), weight=nw.Normal(0, 0.3), padding=2.0)
    net.connect(hid, out, nw.Dense(), weight=nw.Normal(0, 0.3))
    tr = nw.EProp(
        net,
        output=out,
        optimizer=nw.Adam(lr=0.05),
        rewiring={p: nw.DeepR(l1=1.0)},
        seed=seed,
        **_eprop_engine(device),
    )
    history = []
    for spikes, labels in train.batches(4):
        tr.train_step(spikes, labels)
        history.append(p.synapses.coo())
    return history


def test_same_seed_reproduces_connectivity_batch_for_batch(device):
    a, b, c = (_trained_connectivity(s, device) for s in (5, 5, 6))
    for (pa, qa), (pb, qb) in zip(a, b, strict=True):
        assert torch.equal(pa, pb) and torch.equal(qa, qb)
    assert any(not torch.equal(qa, qc) for (_, qa), (_, qc) in zip(a, c, strict=True))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="mode"):
        nw.DeepR(mode="bellec")
    with pytest.raises(ValueError, match="regrow"):
        nw.DeepR(regrow="column")
    with pytest.raises(ValueError, match="temperature"):
        nw.DeepR(temperature=1.0)
    with pytest.raises(ValueError, match="l1"):
        nw.DeepR(l1=-1.0)
    with pytest.raises(TypeError, match="l1"):
        nw.DeepR(l1="big")
    s = _store("cpu")
    rule = nw.DeepR()
    gen, c = _ctx(s)
    with pytest.raises(ValueError, match="not set up"):
        rule.update(_view(s, gen), c)


def test_state_dict_round_trip_keeps_every_sign(device):
    s = _store(device, n_pre=10, n_post=30, capacity=6)
    rule, _, _ = _set_up(s)
    restored = nw.DeepR()
    restored.load_state_dict(rule.state_dict())
    assert torch.equal(restored.signs["p"].bits, rule.signs["p"].bits)
    with pytest.raises(ValueError, match="bad saved state"):
        restored.load_state_dict({"nothing": 1})


def test_auto_l1_waits_for_resolve_l1_and_refuses_to_run_before():
    s = _store("cpu")
    rule = nw.DeepR(l1="auto")
    assert rule.l1 is None and rule.l1_auto
    _, gen, c = _set_up(s, rule)  # set up (signs drawn) before the L1 is chosen
    grad = torch.zeros(s.n_pre, s.capacity)
    for call in (
        lambda: rule.adjust_gradient(_view(s, gen), grad, c),
        lambda: rule.update(_view(s, gen), c),
    ):
        with pytest.raises(ValueError, match=r'l1="auto".*fit\(\).*select_l1'):
            call()
    rule.resolve_l1(0.25)
    assert rule.l1 == 0.25 and rule.l1_auto
    out = rule.adjust_gradient(_view(s, gen), grad, c)
    assert torch.equal(out, 0.25 * s.vars["sign"].float())
    assert not nw.DeepR(l1=0.1).l1_auto


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (-0.1, ValueError),
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        ("auto", TypeError),
        (True, TypeError),
    ],
)
def test_resolve_l1_takes_only_a_finite_number_at_least_zero(value, error):
    rule = nw.DeepR(l1="auto")
    with pytest.raises(error, match="l1"):
        rule.resolve_l1(value)
    assert rule.l1 is None


def test_an_unresolved_rule_stops_training_with_the_clear_error():
    net = nw.Network(seed=0)
    inp = net.population("input", nw.SpikeSource(10))
    hid = net.population("hidden", nw.LIF(8))
    out = net.population("output", nw.LeakyIntegrator(2))
    p = net.connect(inp, hid, nw.FixedProbability(0.3), weight=nw.Normal(0, 0.3), padding=2.0)
    net.connect(hid, out, nw.Dense(), weight=nw.Normal(0, 0.3))
    tr = nw.EProp(net, output=out, rewiring={p: nw.DeepR(l1="auto")})
    x = torch.rand(2, 10, 10, generator=torch.Generator().manual_seed(0)) < 0.3
    with pytest.raises(ValueError, match='l1="auto"'):
        tr.train_step(x, torch.tensor([0, 1]))
