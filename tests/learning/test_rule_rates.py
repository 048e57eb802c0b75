"""Rules of a trainer see the last batch's firing rates: ``rate_hz`` of a view is each
neuron's spike count over the batch divided by trials x duration."""

from __future__ import annotations

import torch

import neurowire as nw
from neurowire.learning import Adam, EProp


class RecordRates(nw.StructuralRule):
    """Rewires nothing; keeps a copy of the rates its view shows at every update."""

    def __init__(self) -> None:
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def update(self, view, ctx):
        self.seen.append((view.pre_state["rate_hz"].clone(), view.post_state["rate_hz"].clone()))


def test_a_rule_sees_the_rates_of_the_batch_just_trained():
    net = nw.Network(dt=0.5, seed=1)
    inp = net.population("input", nw.SpikeSource(8))
    hid = net.population("hidden", nw.LIF(6))
    out = net.population("output", nw.LeakyIntegrator(2))
    net.connect(inp, hid, nw.FixedProbability(0.6), weight=nw.Normal(0.6, 0.2))
    net.connect(hid, out, nw.Dense(), weight=nw.Normal(0, 0.3))
    rule = RecordRates()
    trainer = EProp(net, out, optimizer=Adam(lr=1e-3), rewiring={"input->hidden": rule}, seed=2)
    gen = torch.Generator().manual_seed(0)
    per_s = 1000.0 / (5 * 40 * 0.5)  # 5 trials of 40 steps of 0.5 ms
    for _ in range(2):
        spikes = torch.rand(5, 40, 8, generator=gen) < 0.3
        metrics = trainer.train_step(spikes, torch.randint(0, 2, (5,), generator=gen))
        pre, post = rule.seen[-1]
        assert pre.shape == (1, 8) and post.shape == (1, 6)
        expected_pre = spikes.sum((0, 1)).to(pre.dtype) * per_s
        torch.testing.assert_close(pre[0], expected_pre)
        assert metrics["spikes"] > 0
        torch.testing.assert_close(post.sum() / per_s, torch.tensor(metrics["spikes"]).to(post))
