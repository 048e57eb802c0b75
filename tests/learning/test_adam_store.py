"""Adam keeps its moments in the synapse store; its arithmetic is torch.optim.Adam's."""

from __future__ import annotations

import pytest
import torch
from eprop_testnets import make_network, on_device, random_input

import neurowire as nw
from neurowire.learning import Adam, EProp


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_dense_adam_equals_torch_adam_step_for_step(device, dtype):
    gen = torch.Generator(device).manual_seed(0)
    w0 = torch.randn(5, 4, generator=gen, dtype=dtype, device=device)
    ours, theirs = w0.clone(), torch.nn.Parameter(w0.clone())
    adam = Adam(lr=0.01, betas=(0.8, 0.99), eps=1e-6)
    # foreach=False: torch's one-tensor-at-a-time Adam on every device (the same elementwise
    # ops as ours, so equal bit for bit; CUDA would default to the foreach variant)
    ref = torch.optim.Adam([theirs], lr=0.01, betas=(0.8, 0.99), eps=1e-6, foreach=False)
    for _ in range(6):
        g = torch.randn(5, 4, generator=gen, dtype=dtype, device=device)
        g[0, 0] = 0.0
        adam.step({"w": (ours, g)})
        theirs.grad = g.clone()
        ref.step()
        torch.testing.assert_close(ours, theirs.detach(), rtol=0, atol=0)
    assert adam.step_count == 6
    torch.testing.assert_close(adam.state["w"]["m"], ref.state[theirs]["exp_avg"], rtol=0, atol=0)


def code(pre, post):
    """Value stored for synapse (pre, post): identifies it after any move."""
    return 1000.0 + 100.0 * pre.double() + post.double()


def test_moments_move_with_their_synapses_and_new_ones_start_at_zero(device):
    store = nw.RaggedSynapses.from_coo(
        4, 6, [0, 0, 0, 1, 2, 2, 3], [1, 3, 5, 0, 2, 4, 5], capacity=4, device=device, weight=0.5
    )
    adam = Adam(lr=0.1)
    adam.attach("p", store)
    assert {"adam_m", "adam_v"} <= set(store.vars)
    pre, post = store.coo()
    store.set_values("adam_m", code(pre, post))
    store.set_values("adam_v", 2 * code(pre, post))
    store.remove((store.ind == 3) & store.live | (store.ind == 2) & store.live)
    store.add([0, 2, 1], [2, 0, 5])
    pre, post = store.coo()
    m, v = store.values("adam_m"), store.values("adam_v")
    added = {(0, 2), (2, 0), (1, 5)}
    new = torch.tensor(
        [(i, j) in added for i, j in zip(pre.tolist(), post.tolist(), strict=True)], device=device
    )
    assert new.sum() == 3
    assert torch.equal(m[~new], code(pre, post)[~new].to(m.dtype))
    assert torch.equal(v[~new], 2 * code(pre, post)[~new].to(v.dtype))
    assert bool((m[new] == 0).all()) and bool((v[new] == 0).all())
    # a step on the sparse store only touches live slots
    grad = torch.where(store.live, 1.0, 0.0)
    w_before = store.vars["weight"].clone()
    adam.step({"p": (store, grad)})
    assert torch.equal(store.vars["weight"][~store.live], w_before[~store.live])
    assert bool((store.vars["weight"][store.live] < w_before[store.live]).all())


def test_sparse_step_matches_dense_step_on_live_synapses(device):
    gen = torch.Generator(device).manual_seed(1)
    store = nw.RaggedSynapses.from_coo(3, 5, [0, 0, 1, 2], [0, 4, 2, 1], capacity=3, device=device)
    store.add_var("weight", init=torch.randn(4, generator=gen, device=device))
    dense = store.to_dense("weight")
    a_sparse, a_dense = Adam(lr=0.05), Adam(lr=0.05)
    for _ in range(3):
        g_dense = torch.randn(3, 5, generator=gen, device=device)
        g_slots = torch.zeros(3, 3, device=device)
        pre, post = store.coo()
        g_slots.view(-1)[store.csr().slot] = g_dense[pre, post]
        a_sparse.step({"s": (store, g_slots)})
        a_dense.step({"d": (dense, g_dense)})
    pre, post = store.coo()
    torch.testing.assert_close(store.values("weight"), dense[pre, post])


class PruneAndRegrow(nw.StructuralRule):
    """Remove the k weakest synapses and regrow as many; remembers moments before the change."""

    def __init__(self, k: int):
        self.k = k
        self.calls = 0

    def setup(self, view, ctx):
        assert "adam_m" in view.store.vars  # the trainer registers moments first

    def update(self, view, ctx):
        s = view.store
        pre, post = s.coo()
        self.before = {
            (int(i), int(j)): (float(m), float(v))
            for i, j, m, v in zip(pre, post, s.values("adam_m"), s.values("adam_v"), strict=True)
        }
        w = torch.where(view.live, view["weight"].abs(), float("inf"))
        cut = w.flatten().topk(self.k, largest=False).values.max()
        gone = view.live & (w <= cut)
        rows = torch.arange(view.n_pre, device=gone.device)[:, None].expand_as(gone)
        self.removed = set(zip(rows[gone].tolist(), view.post[gone].tolist(), strict=True))
        removed = view.remove(gone)
        view.grow(per_row=removed, weight=0.0)
        self.calls += 1
        assert ctx.step == self.calls and ctx.projection == "inp->h"


def test_trainer_rewiring_moves_moments_and_zeroes_new_ones(device):
    net, out = make_network("alif", sparse=True)
    rule = PruneAndRegrow(3)
    trainer = EProp(
        net,
        out,
        optimizer=Adam(lr=0.01),
        rewiring={net.projections["inp->h"]: rule},
        **on_device(device),
    )
    x, labels = (t.to(device) for t in random_input(4, 30, 5, seed=2))
    s = net.projections["inp->h"].synapses
    for _ in range(2):
        trainer.train_step(x, labels)
        pre, post = s.coo()
        after = zip(
            pre.tolist(), post.tolist(), s.values("adam_m"), s.values("adam_v"), strict=True
        )
        new = 0
        for i, j, m, v in after:
            if (i, j) in rule.before and (i, j) not in rule.removed:
                assert (float(m), float(v)) == rule.before[(i, j)]
            else:
                new += 1
                assert float(m) == 0.0 and float(v) == 0.0
        assert new == 3
        assert bool((s.vars["adam_m"][~s.live] == 0).all())
    assert rule.calls == 2 and trainer.optimizer.step_count == 2
    assert trainer.rewiring_log.totals("inp->h") == {"removed": 6, "added": 6, "failed": 0}


def test_trainer_keeps_dense_and_bias_moments_in_the_optimizer(device):
    net, out = make_network("lif", sparse=False)
    adam = Adam(lr=0.01)
    trainer = EProp(net, out, optimizer=adam, **on_device(device))
    x, labels = (t.to(device) for t in random_input(2, 20, 5, seed=3))
    grad = trainer.compute_gradients(x, labels)["out.bias"]
    trainer.train_step(x, labels)
    assert set(adam.state) == {"inp->h", "h->h", "h->out", "out.bias"}
    moments = adam.state["out.bias"]
    assert moments["m"].shape == (3,) and bool(grad.abs().sum() > 0)
    # after one step from zero: m = (1 - beta1) g, v = (1 - beta2) g^2
    torch.testing.assert_close(moments["m"], (1 - 0.9) * grad)
    torch.testing.assert_close(moments["v"], (1 - 0.999) * grad**2)
    assert adam.state["out.bias"]["m"].device.type == device.type
    assert float(adam.state["inp->h"]["v"].abs().sum()) > 0


def test_bad_adam_arguments():
    with pytest.raises(ValueError, match="lr"):
        Adam(lr=-1.0)
    with pytest.raises(ValueError, match="betas"):
        Adam(betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="gradient shape"):
        Adam().step({"w": (torch.zeros(2, 2), torch.zeros(3))})
    with pytest.raises(TypeError, match="RaggedSynapses or a Tensor"):
        Adam().attach("w", [1.0])
