"""Structural rules on ``torch.nn`` sparse layers (``nw.nn.Rewiring``, ``nw.nn.DeepR``): the
optimiser's per-slot state follows the synapses (checked pair by pair against the state
before the step), DEEP R keeps every layer's synapse count and every pair's sign, the L1 term
acts once per optimiser step, failing rules change nothing, and a checkpoint resumes exactly.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import neurowire as nw

pytest.importorskip("numba")


def _layer(seed=0, n_in=12, n_out=10, p=0.4, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return nw.nn.SparseLinear(
        n_in, n_out, nw.FixedProbability(p), generator=g, bias=False, device=device
    )


class Net(torch.nn.Module):
    """A feed-forward and a recurrent sparse layer and a dense readout."""

    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.fc = nw.nn.SparseLinear(12, 16, nw.FixedProbability(0.3), generator=g)
        self.rec = nw.nn.SparseRecurrent(16, nw.FixedProbability(0.25), generator=g)
        self.out = torch.nn.Linear(16, 3)
        with torch.no_grad():
            self.out.weight.copy_(torch.randn(3, 16, generator=g) * 0.25)
            self.out.bias.zero_()

    def forward(self, x):
        h = torch.tanh(self.fc(x))
        return self.out(torch.tanh(h + self.rec(h)))


def _batch(seed, n_in=12, n_out=3, b=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, n_in, generator=g), torch.randint(0, n_out, (b,), generator=g)


def _backward(model, seed):
    x, y = _batch(seed, n_out=3 if isinstance(model, Net) else model.out_features)
    model.zero_grad()
    out = model(x.to(next(model.parameters()).device))
    torch.nn.functional.cross_entropy(out, y.to(out.device)).backward()


def _pairs(layer, optimizer):
    """``{(pre, post): {name: value}}`` of every live synapse: weight, ``.grad`` and each
    per-slot optimiser state tensor."""
    s = layer.synapses
    tensors = {"weight": layer.weight.detach(), "grad": layer.weight.grad}
    for key, value in optimizer.state.get(layer.weight, {}).items():
        if isinstance(value, torch.Tensor) and value.shape == layer.weight.shape:
            tensors[key] = value
    pre, post = (t.tolist() for t in s.coo())
    live = s.live
    values = {k: v[live].tolist() for k, v in tensors.items() if v is not None}
    return {
        (i, j): {k: vals[n] for k, vals in values.items()}
        for n, (i, j) in enumerate(zip(pre, post, strict=True))
    }


def _check_followed(layer, optimizer, before, survivors):
    """Every surviving pair kept its values, every other live pair has all of them 0."""
    after = _pairs(layer, optimizer)
    for pair, values in after.items():
        if pair in survivors:
            assert values == before[pair], pair
        else:
            assert all(v == 0 for v in values.values()), (pair, values)


def _crossed_pairs(layer):
    """The live pairs DEEP R removes next: weight against the sign of its pair."""
    s = layer.synapses
    crossed = (s.vars["weight"] * s.vars["sign"]) < 0
    pre, post = s.coo()
    flags = crossed[s.live].tolist()
    return {(int(i), int(j)) for i, j, f in zip(pre, post, flags, strict=True) if f}


OPTIMIZERS = {
    "adam": lambda p: torch.optim.Adam(p, lr=0.05),
    "adamw_amsgrad": lambda p: torch.optim.AdamW(p, lr=0.05, amsgrad=True),
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9),
    "sgd": lambda p: torch.optim.SGD(p, lr=0.5),
    "rmsprop": lambda p: torch.optim.RMSprop(p, lr=0.02, momentum=0.5, centered=True),
    "adagrad": lambda p: torch.optim.Adagrad(p, lr=0.2),
    "adamax": lambda p: torch.optim.Adamax(p, lr=0.05),
    "nadam": lambda p: torch.optim.NAdam(p, lr=0.05),
    "radam": lambda p: torch.optim.RAdam(p, lr=0.05),
    "adadelta": lambda p: torch.optim.Adadelta(p, lr=5.0),
}


# ------------------------------------------------------------------ state follows synapses
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_deep_r_moves_survivors_state_and_zeroes_regrown_state(name):
    model = Net()
    opt = OPTIMIZERS[name](model.parameters())
    rewirer = nw.nn.DeepR(model, opt, l1=0.5, seed=3)
    removed = 0
    for step in range(4):
        _backward(model, step)
        opt.step()
        before = {n: _pairs(layer, opt) for n, layer in rewirer.layers.items()}
        survivors = {
            n: set(before[n]) - _crossed_pairs(layer) for n, layer in rewirer.layers.items()
        }
        scalars = {
            k: copy.deepcopy(v) for k, v in opt.state[model.fc.weight].items() if k == "step"
        }
        counts = rewirer.step()
        for n, layer in rewirer.layers.items():
            _check_followed(layer, opt, before[n], survivors[n])
            assert counts[n]["removed"] == len(before[n]) - len(survivors[n])
            removed += counts[n]["removed"]
        for k, v in scalars.items():
            assert torch.equal(opt.state[model.fc.weight][k], v)
    assert removed > 0


def test_deep_r_on_the_device_moves_adam_state(device):
    layer = _layer(device=device)
    opt = torch.optim.Adam(layer.parameters(), lr=0.05)
    rewirer = nw.nn.DeepR(layer, opt, l1=0.5, seed=1)
    removed = 0
    for step in range(3):
        _backward(layer, step)
        opt.step()
        before = _pairs(layer, opt)
        survivors = set(before) - _crossed_pairs(layer)
        removed += rewirer.step()["layer"]["removed"]
        _check_followed(layer, opt, before, survivors)
    assert removed > 0


class Prune(nw.StructuralRule):
    """Removes the slots of a given mask, regrows as many per row; records its contexts."""

    def __init__(self):
        self.mask = None
        self.seen = []

    def update(self, view, ctx):
        self.seen.append((ctx.step, ctx.learning_rate, ctx.batch_size, view.pre_state))
        removed = view.remove(self.mask)
        view.grow(per_row=removed, weight=0.0)


@given(seed=st.integers(0, 2**31), fraction=st.floats(0.0, 1.0))
def test_a_user_rule_moves_sgd_momentum_pair_by_pair(seed, fraction):
    layer = _layer(seed % 7)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    rule = Prune()
    rewirer = nw.nn.Rewiring({layer: rule}, opt, seed=seed)
    _backward(layer, seed)
    opt.step()
    g = torch.Generator().manual_seed(seed)
    rule.mask = torch.rand(layer.synapses.live.shape, generator=g) < fraction
    before = _pairs(layer, opt)
    gone = rule.mask & layer.synapses.live
    pre, post = gone.nonzero(as_tuple=True)
    removed_pairs = set(zip(pre.tolist(), layer.synapses.ind[gone].tolist(), strict=True))
    nnz = layer.synapses.nnz
    counts = rewirer.step()["layer0"]
    _check_followed(layer, opt, before, set(before) - removed_pairs)
    assert counts["removed"] == len(removed_pairs)
    assert layer.synapses.nnz == nnz - counts["removed"] + counts["added"]
    assert sorted(layer.synapses.vars) == ["weight"]  # the optimiser state is detached
    layer.synapses.validate()


def test_rules_see_the_learning_rate_step_batch_size_and_given_neuron_state():
    layer = _layer()
    opt = torch.optim.Adam([{"params": [layer.weight], "lr": 0.125}])
    rule = Prune()
    rates = torch.ones(1, 12)
    rewirer = nw.nn.Rewiring(
        [(layer, rule)], opt, batch_size=4, neuron_state=lambda lay: ({"rate_hz": rates}, {})
    )
    rule.mask = torch.zeros_like(layer.synapses.live)
    rewirer.step()
    rewirer.step()
    assert [s[:3] for s in rule.seen] == [(1, 0.125, 4), (2, 0.125, 4)]
    assert rule.seen[0][3]["rate_hz"] is rates
    bare = Prune()
    bare.mask = rule.mask
    nw.nn.Rewiring({_layer(): bare}).step()
    assert bare.seen[0][1:] == (None, 1, {})


# ------------------------------------------------------------------ what must not change
def test_unknown_optimizer_state_is_refused_naming_the_key_and_nothing_changes():
    layer = _layer()
    opt = torch.optim.Rprop(layer.parameters(), lr=0.01)
    rewirer = nw.nn.DeepR(layer, opt, l1=10.0)
    _backward(layer, 0)
    opt.step()
    store_before = copy.deepcopy(layer.synapses.state_dict())
    opt_before = copy.deepcopy(opt.state_dict())
    with pytest.raises(ValueError, match=r"Rprop keeps state \['prev', 'step', 'step_size'\]"):
        rewirer.step()
    _same(store_before, layer.synapses.state_dict())
    _same(opt_before, opt.state_dict())
    assert rewirer.step_count == 0 and rewirer.log.projections == []


class AdamWithTrace(torch.optim.Adam):
    """Adam keeping one more per-element tensor the rewiring does not know."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["trace"] = p.detach().clone()
        return loss


def test_unknown_state_of_a_known_optimizer_class_is_refused():
    layer = _layer()
    opt = AdamWithTrace(layer.parameters(), lr=0.05)
    rewirer = nw.nn.DeepR(layer, opt, l1=10.0)
    _backward(layer, 0)
    opt.step()
    before = copy.deepcopy(layer.synapses.state_dict())
    with pytest.raises(ValueError, match=r"AdamWithTrace keeps state \['trace'\].*exp_avg"):
        rewirer.step()
    _same(before, layer.synapses.state_dict())


def test_adagrad_with_a_nonzero_initial_accumulator_is_refused():
    layer = _layer()
    opt = torch.optim.Adagrad(layer.parameters(), initial_accumulator_value=0.1)
    rewirer = nw.nn.DeepR(layer, opt)
    with pytest.raises(ValueError, match="initial_accumulator_value must be 0"):
        rewirer.step()


class Failing(nw.StructuralRule):
    """Removes every other synapse, then raises."""

    def update(self, view, ctx):
        view.remove(view.live & (torch.arange(view.capacity) % 2 == 0))
        raise RuntimeError("rule failed")


def test_a_failing_rule_leaves_layer_optimizer_state_and_log_unchanged():
    layer = _layer()
    opt = torch.optim.Adam(layer.parameters(), lr=0.05)
    rewirer = nw.nn.Rewiring([(layer, Failing())], opt)
    _backward(layer, 0)
    opt.step()
    store_before = copy.deepcopy(layer.synapses.state_dict())
    opt_before = copy.deepcopy(opt.state_dict())
    grad_before = layer.weight.grad.clone()
    with pytest.raises(RuntimeError, match="rule failed"):
        rewirer.step()
    _same(store_before, layer.synapses.state_dict())
    _same(opt_before, opt.state_dict())
    assert torch.equal(layer.weight.grad, grad_before)
    assert layer.weight.data_ptr() == layer.synapses.vars["weight"].data_ptr()
    assert rewirer.step_count == 0 and rewirer.log.projections == []


CACHE_KEYS = {"version", "values_version"}


def _same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a.keys() - CACHE_KEYS:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b)
    else:
        assert a == b


# ------------------------------------------------------------------ DEEP R
@pytest.mark.parametrize(
    "kwargs",
    [{"regrow": "row"}, {"mode": "original", "temperature": 1e-3}],
    ids=["genn", "original"],
)
def test_deep_r_keeps_synapse_counts_and_signs(kwargs):
    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    rewirer = nw.nn.DeepR(model, opt, l1=0.3, **kwargs)
    assert list(rewirer.layers) == ["fc", "rec"]
    bits = {n: next(iter(rule.signs.values())).dense() for n, rule in rewirer.rules}
    nnz = {n: layer.synapses.nnz for n, layer in rewirer.layers.items()}
    for step in range(6):
        _backward(model, step)
        opt.step()
        counts = rewirer.step()
        for n, layer in rewirer.layers.items():
            s = layer.synapses
            assert s.nnz == nnz[n] and counts[n]["removed"] == counts[n]["added"]
            pre, post = s.coo()
            sign = s.values("sign")
            assert torch.equal(sign < 0, bits[n][pre, post])
            assert bool((s.values("weight") * sign >= 0).all())
    assert not bool(model.rec.synapses.coo()[0].eq(model.rec.synapses.coo()[1]).any())
    for n, rule in rewirer.rules:
        assert torch.equal(next(iter(rule.signs.values())).dense(), bits[n])
    assert sum(rewirer.log.totals(n)["removed"] for n in rewirer.layers) > 0


@pytest.mark.parametrize("regrow", ["pair", "row"])
def test_fused_and_reference_deep_r_give_the_same_layers_and_optimizer_state(regrow):
    """The fused numba pass, the reference path on the numba store edits and the reference
    path on the PyTorch store edits."""
    runs = []
    for fused, native_ops in ((True, True), (False, True), (False, False)):
        model = Net()
        model.fc.synapses.native_ops = model.rec.synapses.native_ops = native_ops
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        rewirer = nw.nn.DeepR(model, opt, l1=0.3, regrow=regrow, fused=fused, seed=5)
        for step in range(4):
            _backward(model, step)
            opt.step()
            rewirer.step()
        runs.append((model, opt, rewirer))
    m1, o1, r1 = runs[0]
    for m2, o2, r2 in runs[1:]:
        _same(m1.state_dict(), m2.state_dict())
        _same(o1.state_dict(), o2.state_dict())
        for n in r1.layers:
            _same(r1.log.calls(n), r2.log.calls(n))
            assert torch.equal(
                r1.layers[n].synapses.values("sign"), r2.layers[n].synapses.values("sign")
            )
    assert sum(r1.log.totals(n)["removed"] for n in r1.layers) > 0


@pytest.mark.parametrize("batch_size", [1, 3])
def test_genn_l1_is_added_once_per_optimizer_step_on_live_slots(batch_size):
    layer = _layer()
    opt = torch.optim.SGD(layer.parameters(), lr=0.0)
    rewirer = nw.nn.DeepR(layer, opt, l1=0.25, batch_size=batch_size)
    _backward(layer, 0)
    first = layer.weight.grad.clone()
    _backward(layer, 1)  # zero_grad in between: only this batch's gradient
    x, y = _batch(2, n_out=layer.out_features)  # a second backward accumulates
    torch.nn.functional.cross_entropy(layer(x), y).backward()
    task = layer.weight.grad.clone()
    opt.step()
    sign = layer.synapses.vars["sign"].float()
    assert torch.equal(layer.weight.grad, task + batch_size * 0.25 * sign)
    assert not layer.weight.grad[~layer.synapses.live].any()
    rewirer.close()
    layer.weight.grad.copy_(first)
    opt.step()
    assert torch.equal(layer.weight.grad, first)


def test_auto_l1_refuses_to_run_until_resolved():
    layer = _layer()
    opt = torch.optim.Adam(layer.parameters())
    rewirer = nw.nn.DeepR([layer], opt, l1="auto")
    assert rewirer.l1 is None
    _backward(layer, 0)
    with pytest.raises(ValueError, match='l1="auto"'):
        opt.step()
    rewirer.resolve_l1(0.05)
    opt.step()
    rewirer.step()
    assert rewirer.l1 == 0.05


def test_a_new_rewirer_replaces_the_sign_variable_of_an_earlier_one():
    layer = _layer()
    opt = torch.optim.Adam(layer.parameters(), lr=0.05)
    nw.nn.DeepR(layer, opt, l1=0.3, seed=1).close()
    later = nw.nn.DeepR(layer, opt, l1=0.3, seed=2)
    pre, post = layer.synapses.coo()
    bits = next(iter(later.rules[0][1].signs.values())).dense()
    assert torch.equal(layer.synapses.values("sign") < 0, bits[pre, post])


# ------------------------------------------------------------------ checkpoints
def test_a_checkpoint_resumes_exactly():
    def build(seed):
        model = Net(seed)
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        return model, opt, nw.nn.DeepR(model, opt, l1=0.3, seed=7)

    def train(model, opt, rewirer, steps):
        for step in steps:
            _backward(model, step)
            opt.step()
            rewirer.step()

    model, opt, rewirer = build(0)
    train(model, opt, rewirer, range(3))
    saved = copy.deepcopy((model.state_dict(), opt.state_dict(), rewirer.state_dict()))
    train(model, opt, rewirer, range(3, 6))

    model2, opt2, rewirer2 = build(1)  # other initial weights, connectivity and signs
    model2.load_state_dict(saved[0])
    opt2.load_state_dict(saved[1])
    rewirer2.load_state_dict(saved[2])
    train(model2, opt2, rewirer2, range(3, 6))
    _same(model.state_dict(), model2.state_dict())
    _same(opt.state_dict(), opt2.state_dict())
    _same(rewirer.state_dict(), rewirer2.state_dict())


def test_loading_before_the_model_state_is_refused():
    model, other = Net(0), Net(1)
    opt = torch.optim.Adam(model.parameters())
    saved = nw.nn.DeepR(model, opt).state_dict()
    rewirer = nw.nn.DeepR(other, torch.optim.Adam(other.parameters()))
    with pytest.raises(ValueError, match="load the model's state_dict first"):
        rewirer.load_state_dict(saved)


# ------------------------------------------------------------------ bad input
def test_bad_arguments_are_refused():
    layer = _layer()
    opt = torch.optim.Adam(layer.parameters())
    with pytest.raises(ValueError, match="found no nw.nn.SparseLinear"):
        nw.nn.DeepR(torch.nn.Linear(2, 2), opt)
    with pytest.raises(TypeError, match="expected a nw.nn.SparseLinear"):
        nw.nn.DeepR([torch.nn.Linear(2, 2)], opt)
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        nw.nn.DeepR(layer, None)
    with pytest.raises(ValueError, match="not in the optimizer"):
        nw.nn.DeepR(layer, torch.optim.Adam(torch.nn.Linear(2, 2).parameters()))
    rule = Prune()
    with pytest.raises(ValueError, match="given twice"):
        nw.nn.Rewiring([(layer, rule), (_layer(1), rule)])
    with pytest.raises(TypeError, match="StructuralRule"):
        nw.nn.Rewiring({layer: "prune"})
    with pytest.raises(ValueError, match="batch_size"):
        nw.nn.Rewiring({layer: Prune()}, batch_size=0)
    with pytest.raises(ValueError, match="1 of the rules' layers are not modules"):
        nw.nn.Rewiring({layer: Prune()}, model=Net())


def test_a_weight_that_no_longer_shares_the_store_is_refused():
    layer = _layer()
    rewirer = nw.nn.Rewiring({layer: Prune()})
    layer.weight = torch.nn.Parameter(layer.weight.detach().clone())
    with pytest.raises(ValueError, match="no longer shares memory with its store"):
        rewirer.step()
