"""Online (per-synapse reference) and factorised e-prop compute the same gradients."""

from __future__ import annotations

import pytest
import torch
from eprop_testnets import make_network, max_rel_error, on_device, random_input, style_network

import neurowire as nw
from neurowire.learning import Adam, EProp, RateRegularizer


def gradients(build, x, labels, device, **kwargs):
    """The summed gradients of one batch on ``device`` (inputs moved there)."""
    net, out = build()
    trainer = EProp(net, out, **on_device(device), **kwargs)
    grads = trainer.compute_gradients(x.to(device), labels.to(device))
    assert all(g.device.type == device.type for g in grads.values())
    return grads


def assert_methods_agree(build, x, labels, device, tol=1e-9, **kwargs):
    """Factorised and online e-prop agree on ``device`` within ``tol`` (relative, per
    projection; 1e-9 in float64)."""
    ref = gradients(build, x, labels, device, method="online", **kwargs)
    fast = gradients(build, x, labels, device, method="factorized", **kwargs)
    errors = max_rel_error(fast, ref)
    assert max(errors.values()) < tol, errors
    return ref


@pytest.mark.parametrize("kind", ["lif", "alif", "mixed", "mixed_beta"])
@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "dense"])
def test_factorized_equals_online_float64(device, kind, sparse):
    x, labels = random_input(4, 40, 5, seed=3)
    assert_methods_agree(lambda: make_network(kind, sparse=sparse), x, labels, device)


@pytest.mark.parametrize("feedback", ["symmetric", "random"])
@pytest.mark.parametrize(
    "reg", [None, RateRegularizer(c=50.0, f_target_hz=20.0)], ids=["noreg", "reg"]
)
@pytest.mark.parametrize("batch", [1, 4])
def test_feedback_regulariser_and_batch_size(device, feedback, reg, batch):
    x, labels = random_input(batch, 40, 5, seed=batch)
    assert_methods_agree(
        lambda: make_network("mixed", sparse=True),
        x,
        labels,
        device,
        feedback=feedback,
        regularization=reg,
    )


def test_regulariser_changes_the_gradient(device):
    """Guards against a vacuous regulariser test: R must matter at the strength used above."""
    x, labels = random_input(4, 40, 5, seed=4)
    build = lambda: make_network("mixed", sparse=True)  # noqa: E731
    plain = gradients(build, x, labels, device)
    reg_rule = RateRegularizer(c=50.0, f_target_hz=20.0)
    reg = gradients(build, x, labels, device, regularization=reg_rule)
    change = max_rel_error(reg, plain)
    assert change["inp->a"] > 1e-3 and change["a->a"] > 1e-3
    assert change["a->out"] == 0.0  # the readout is not regularised


def test_without_refractoriness(device):
    x, labels = random_input(4, 40, 5, seed=5)
    assert_methods_agree(lambda: make_network("mixed", refractory=False), x, labels, device)


@pytest.mark.parametrize("method", ["factorized", "online"])
@pytest.mark.parametrize(
    "reg", [None, RateRegularizer(c=50.0, f_target_hz=20.0)], ids=["noreg", "reg"]
)
def test_chunked_equals_unchunked(device, method, reg):
    x, labels = random_input(5, 40, 5, seed=6)
    build = lambda: make_network("mixed", sparse=False)  # noqa: E731
    whole = gradients(build, x, labels, device, method=method, regularization=reg)
    for chunk in (1, 2):
        parts = gradients(
            build, x, labels, device, method=method, regularization=reg, chunk_size=chunk
        )
        errors = max_rel_error(parts, whole)
        assert max(errors.values()) < 1e-12, (chunk, errors)


def test_float32_agrees_to_1e4(device):
    x, labels = random_input(4, 40, 5, seed=7)
    build = lambda: make_network("mixed", sparse=True, dtype=torch.float32)  # noqa: E731
    ref = assert_methods_agree(build, x, labels, device, tol=1e-4, feedback="random")
    assert all(g.dtype == torch.float32 for g in ref.values())


def test_mse_regression_agrees(device):
    x, _ = random_input(3, 30, 5, seed=8)
    gen = torch.Generator().manual_seed(0)  # the same targets on every device
    targets = torch.randn(3, 30, 3, generator=gen, dtype=torch.float64)
    assert_methods_agree(lambda: make_network("mixed"), x, targets, device, loss="mse")


class PruneAndRegrow(nw.StructuralRule):
    """Remove the k weakest synapses of the projection and regrow as many at random targets."""

    def __init__(self, k: int):
        self.k = k
        self.before = None

    def update(self, view, ctx):
        s = view.store
        pre, post = s.coo()
        self.before = {
            (int(i), int(j)): (float(w), float(m), float(v))
            for i, j, w, m, v in zip(
                pre,
                post,
                s.values("weight"),
                s.values("adam_m"),
                s.values("adam_v"),
                strict=True,
            )
        }
        w = torch.where(view.live, view["weight"].abs(), float("inf"))
        cut = w.flatten().topk(self.k, largest=False).values.max()
        removed = view.remove(view.live & (w <= cut))
        view.grow(per_row=removed, weight=0.05)


def test_style_network_before_and_after_rewiring(device):
    """The small seeded float64 4-6-3 ALIF test network, 25 steps, before and after a rewiring.

    Both trainers share one network; the factorised one trains a step and rewires it.
    """
    gen = torch.Generator().manual_seed(11)
    x = (torch.rand(2, 25, 4, generator=gen) < 0.3).to(device)
    labels = torch.tensor([0, 2], device=device)
    net, out = style_network()
    rule = PruneAndRegrow(2)
    kw = dict(regularization=RateRegularizer(c=5.0), seed=3, **on_device(device))
    fast = EProp(
        net,
        out,
        method="factorized",
        optimizer=Adam(lr=0.05),
        rewiring={"input->hidden": rule},
        **kw,
    )
    online = EProp(net, out, method="online", **kw)
    assert fast.network.hidden.adaptive
    errors = max_rel_error(fast.compute_gradients(x, labels), online.compute_gradients(x, labels))
    assert max(errors.values()) < 1e-9, errors
    store = net.projections["input->hidden"].synapses
    version = store.version
    fast.train_step(x, labels)
    assert store.version > version and rule.before is not None
    assert fast.rewiring_log.totals("input->hidden")["removed"] == 2
    errors = max_rel_error(fast.compute_gradients(x, labels), online.compute_gradients(x, labels))
    assert max(errors.values()) < 1e-9, errors
