"""SparseLinear input and SparseRecurrent feedback in a user's BPTT time loop, with
neurowire's neurons (NeuronCell) and with snnTorch's and Norse's: the loop through the sparse
layers equals the same loop through dense masked matrices built from the stores, and the
gradients reach the live slots only."""

from __future__ import annotations

import pytest
import torch

import neurowire as nw
from neurowire.nn import NeuronCell, SparseLinear, SparseRecurrent

F64 = torch.float64
STEPS, BATCH, N, N_IN = 20, 4, 32, 16
#: the target rate (spikes per step) of the loss
TARGET = 0.1


def _neurons(kind: str):
    """``(step, gain)``: ``step(current [B, N], state or None) -> (spikes [B, N], state)`` of
    one neuron family, and the factor on the input current that makes it fire a few spikes."""
    if kind == "neurowire-lif":
        return NeuronCell(nw.LIF(N, tau_refrac=2.0), dt=1.0, dtype=F64), 2.0
    if kind == "neurowire-alif":
        return NeuronCell(nw.ALIF(N, beta=0.1), dt=1.0, dtype=F64), 4.0
    if kind == "snntorch-leaky":
        snntorch = pytest.importorskip("snntorch")
        leaky = snntorch.Leaky(beta=0.9)  # feed-forward Leaky; the recurrence is ours

        def step(current, mem):
            return leaky(current, torch.zeros_like(current) if mem is None else mem)

        return step, 2.0
    norse = pytest.importorskip("norse.torch")
    if kind == "norse-lif":
        return norse.LIFCell(), 8.0
    return norse.LIFBoxCell(), 16.0


def _run(step, gain: float, x, feed_in, feed_back):
    """The time loop: ``I_t = gain (x_t W_in + b + z_{t-1} W_rec)``; returns the spikes
    ``[T, B, N]`` and the loss ``sum_i (rate_i - TARGET)^2`` of the batch-mean rates."""
    z = torch.zeros(BATCH, N, dtype=F64)
    state = None
    spikes = []
    for t in range(STEPS):
        z, state = step(gain * (feed_in(x[t]) + feed_back(z)), state)
        spikes.append(z)
    spikes = torch.stack(spikes)
    return spikes, ((spikes.mean(dim=(0, 1)) - TARGET) ** 2).sum()


def _dense(weight, store):
    """``[n_pre, n_post]`` from the slot-layout ``weight``: the live synapses at their
    ``coo()`` pairs, 0 elsewhere (differentiable in ``weight``)."""
    pre, post = store.coo()
    zeros = torch.zeros(store.n_pre, store.n_post, dtype=weight.dtype)
    return zeros.index_put((pre, post), weight[store.live])


@pytest.mark.parametrize(
    "kind", ["neurowire-lif", "neurowire-alif", "snntorch-leaky", "norse-lif", "norse-lifbox"]
)
def test_bptt_through_sparse_layers_equals_the_dense_masked_loop(kind, generator):
    step, gain = _neurons(kind)
    inp = SparseLinear(N_IN, N, nw.FixedProbability(0.25), generator=generator, dtype=F64)
    rec = SparseRecurrent(N, nw.FixedProbability(0.1), generator=generator, dtype=F64)
    x = (torch.rand(STEPS, BATCH, N_IN, generator=generator) < 0.3).to(F64)

    spikes, loss = _run(step, gain, x, inp, rec)
    loss.backward()

    w_in, w_rec = (p.detach().clone().requires_grad_(True) for p in (inp.weight, rec.weight))
    bias = inp.bias.detach().clone().requires_grad_(True)
    ref_spikes, ref_loss = _run(
        step,
        gain,
        x,
        lambda x_t: x_t @ _dense(w_in, inp.synapses) + bias,
        lambda z: z.to(F64) @ _dense(w_rec, rec.synapses),
    )
    ref_loss.backward()

    assert 0 < spikes.mean() < 0.5, f"{kind}: the loop should spike, but not always"
    torch.testing.assert_close(spikes, ref_spikes, rtol=0, atol=1e-6)
    torch.testing.assert_close(loss, ref_loss, rtol=0, atol=1e-6)
    torch.testing.assert_close(inp.bias.grad, bias.grad, rtol=0, atol=1e-6)
    for layer, ref in ((inp, w_in), (rec, w_rec)):
        grad, live = layer.weight.grad, layer.synapses.live
        torch.testing.assert_close(grad, ref.grad, rtol=0, atol=1e-6)
        assert torch.isfinite(grad).all()
        # a slot whose presynaptic input or neuron never spikes gets no gradient
        assert (grad[live] != 0).float().mean() > 0.25, f"{kind}: few live slots learn"
        assert (~live).any() and (grad[~live] == 0).all(), f"{kind}: padding got gradient"


def test_recurrent_layer_feeds_no_neuron_back_to_itself(generator):
    rec = SparseRecurrent(N, nw.FixedProbability(0.5), generator=generator, dtype=F64)
    pre, post = rec.synapses.coo()
    assert pre.numel() > 0 and not (pre == post).any()
    eye = torch.eye(N, dtype=F64)
    assert torch.equal(rec(eye).diagonal(), torch.zeros(N, dtype=F64))
