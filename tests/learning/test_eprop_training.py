"""Training on the built-in timing-only task: accuracy, determinism, fit/evaluate behaviour.

Setting (stated once): 2 classes of frozen 20 Hz Poisson patterns with equal per-channel spike
counts (timing-only), 40 inputs, 100 steps, 256 training and 128 test samples; 32 ALIF hidden
neurons (sparse input p=0.5, sparse recurrent p=0.2), Adam lr 0.01, batch 32, rate regulariser
c=1 at 20 Hz. Both methods exceed 90 % test accuracy after 4 epochs (measured: 100 %).
"""

from __future__ import annotations

import math

import pytest
import torch
from eprop_testnets import on_device

import neurowire as nw
from neurowire.data import Batches, frozen_poisson_patterns
from neurowire.learning import Adam, EProp, RateRegularizer

EPOCHS = 4


def task(seed=0):
    return frozen_poisson_patterns(
        n_classes=2, n_inputs=40, steps=100, n_train=256, n_test=128, seed=seed
    )


def trainer(device, method="factorized", seed=0, **kwargs):
    net = nw.Network(dt=1.0, seed=seed)
    inp = net.population("input", nw.SpikeSource(40))
    hid = net.population(
        "hidden", nw.ALIF(32, tau_m=20.0, tau_a=200.0, beta=0.05, v_th=0.6, tau_refrac=2.0)
    )
    out = net.population("output", nw.LeakyIntegrator(2, tau=20.0))
    net.connect(inp, hid, nw.FixedProbability(0.5), weight=nw.Normal(0.0, 20**-0.5), padding=1.5)
    net.connect(hid, hid, nw.FixedProbability(0.2), weight=nw.Normal(0.0, 6.4**-0.5), padding=1.5)
    net.connect(hid, out, nw.Dense(), weight=nw.Normal(0.0, 32**-0.5))
    kwargs.setdefault("regularization", RateRegularizer(c=1.0, f_target_hz=20.0))
    kwargs.update(on_device(device))
    return EProp(net, out, optimizer=Adam(lr=0.01), method=method, seed=seed, **kwargs)


def without_times(history):
    return [{k: v for k, v in h.items() if not k.endswith("time_s")} for h in history]


def assert_same_history(a, b, device):
    """Bit for bit on the CPU; on CUDA to float32 rounding (rel 1e-5), since CUDA's index_add_
    sums in no fixed order."""
    a, b = without_times(a), without_times(b)
    if device.type == "cpu":
        assert a == b
    else:
        assert len(a) == len(b)
        for ha, hb in zip(a, b, strict=True):
            assert ha == pytest.approx(hb, rel=1e-5)


def test_factorized_learns_the_timing_task_and_is_deterministic(device):
    train, test = task()
    runs = [trainer(device).fit(train, n, validation=test, progress=False) for n in (EPOCHS, 2)]
    assert_same_history(runs[0][:2], runs[1], device)
    assert runs[0][-1]["val_accuracy"] > 0.9, runs[0]
    assert [h["epoch"] for h in runs[0]] == list(range(1, EPOCHS + 1))
    for key in ("loss", "accuracy", "time_s", "spikes_per_neuron_per_s", "val_loss"):
        assert key in runs[0][-1]
    assert runs[0][-1]["loss"] < runs[0][0]["loss"]
    other = trainer(device, seed=1).fit(train, 1, progress=False)
    assert without_times(other) != without_times(runs[0][:1])


@pytest.mark.slow
def test_online_learns_the_timing_task(device):
    train, test = task()
    history = trainer(device, "online").fit(train, EPOCHS, validation=test, progress=False)
    assert history[-1]["val_accuracy"] > 0.9, history


def test_online_and_factorized_train_alike(device):
    """Same gradients up to rounding, hence (to 1e-6) the same first epoch."""
    train, _ = task()
    small = train.subset(torch.arange(64))
    h = {m: trainer(device, m).fit(small, 1, progress=False) for m in ("online", "factorized")}
    for key in ("loss", "accuracy", "spikes_per_neuron_per_s"):
        assert h["online"][0][key] == pytest.approx(h["factorized"][0][key], rel=1e-6)


def test_evaluate_changes_nothing_and_matches_predict(device):
    train, test = task()
    tr = trainer(device)
    w = tr.net.projections["input->hidden"].synapses.vars["weight"].clone()
    assert w.device.type == device.type
    metrics = tr.evaluate(test)
    assert torch.equal(tr.net.projections["input->hidden"].synapses.vars["weight"], w)
    pred = tr.predict(test.spikes.to(device)).cpu()
    assert metrics["accuracy"] == pytest.approx(float((pred == test.labels).float().mean()))
    assert set(metrics) >= {"loss", "accuracy", "time_s", "spikes_per_neuron_per_s", "trials"}


def output_trace(tr, x):
    """``y [T, B, 2]`` by hand from the hidden spikes: ``y_t = kappa y_(t-1) + z_t W_out + b``
    with ``kappa = exp(-dt / tau) = exp(-1 / 20)``, ``y_(-1) = 0``."""
    z = tr.hidden_spikes(x).double().cpu()
    w_out = tr.net.projections["hidden->output"].weight.detach().double().cpu()
    bias = tr.network.bias.detach().double().cpu()
    kappa, y, ys = math.exp(-1.0 / 20.0), torch.zeros(x.shape[0], 2, dtype=torch.float64), []
    for t in range(x.shape[1]):
        y = kappa * y + z[:, t] @ w_out + bias
        ys.append(y)
    return torch.stack(ys)


SUMMARIES = {
    "sum": lambda y: y.sum(0),
    "avg": lambda y: y.mean(0),
    "max": lambda y: y.max(0).values,
    "last": lambda y: y[-1],
}


@pytest.mark.parametrize("readout", list(SUMMARIES))
def test_readouts(device, readout):
    _, test = task()
    tr = trainer(device, readout=readout)
    x = test.spikes[:4].to(device)
    scores = tr.scores(x)
    assert scores.shape == (4, 2)
    y = output_trace(tr, x)
    assert y.std(0).min() > 0  # the trace moves: the summaries differ
    expected = SUMMARIES[readout](y)
    torch.testing.assert_close(scores.cpu().double(), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(tr.predict(x).cpu(), expected.argmax(-1))


def test_fit_accepts_batches_and_plain_iterables_and_calls_callbacks(device):
    train, _ = task()
    small = train.subset(torch.arange(64))

    class Recorder:
        def __init__(self):
            self.events = []

        def on_epoch_begin(self, epoch, trainer):
            self.events.append(("begin", epoch))

        def on_batch_end(self, batch, metrics, trainer):
            self.events.append(("batch", batch))
            if batch == 0 and len(self.events) > 4:
                trainer.stop_training = True

    rec = Recorder()
    hist = trainer(device).fit(Batches(small, 32, seed=3), 3, callbacks=[rec], progress=False)
    assert len(hist) == 2 and rec.events[:3] == [("begin", 0), ("batch", 0), ("batch", 1)]
    batches = [(small.spikes[:32].to(device), small.labels[:32].to(device))]
    hist = trainer(device).fit(batches, 2, progress=False)
    assert [h["trials"] for h in hist] == [32, 32]


def test_regression_training_reduces_the_loss(device):
    train, _ = task()
    x = train.spikes[:32].to(device)
    target = torch.zeros(32, 100, 2, device=device)
    target[:, 50:, 0] = 1.0
    tr = trainer(device, loss="mse", regularization=None)
    hist = tr.fit([(x, target)], 5, progress=False)
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert "accuracy" not in hist[-1]


def test_a_dataloader_feeds_fit_and_evaluate_like_the_dataset():
    from torch.utils.data import DataLoader

    from neurowire.data.batching import epoch_generator

    train, test = nw.data.frozen_poisson_patterns(n_classes=2, n_inputs=12, steps=30, n_train=32)

    def trainer():
        net = nw.Network(seed=2)
        inp = net.population("input", nw.SpikeSource(12))
        hid = net.population("hidden", nw.LIF(8))
        out = net.population("output", nw.LeakyIntegrator(2))
        net.connect(inp, hid, nw.FixedProbability(0.5), weight=nw.Normal(0, 0.4))
        net.connect(hid, out, nw.Dense(), weight=nw.Normal(0, 0.4))
        return nw.EProp(net, output=out, optimizer=nw.Adam(lr=0.02), seed=5)

    a, b = trainer(), trainer()
    ha = a.fit(train, epochs=1, batch_size=8, progress=False)
    loader = DataLoader(train, batch_size=8, shuffle=True, generator=epoch_generator(5, 0))
    hb = b.fit(loader, epochs=1, progress=False)
    assert ha[0]["loss"] == hb[0]["loss"] and ha[0]["accuracy"] == hb[0]["accuracy"]
    assert a.evaluate(test)["loss"] == b.evaluate(DataLoader(test, batch_size=64))["loss"]
    # worker processes deliver the same batches in the same order
    plain = list(DataLoader(train, batch_size=8, shuffle=True, generator=epoch_generator(5, 0)))
    workers = DataLoader(
        train, batch_size=8, shuffle=True, num_workers=2, generator=epoch_generator(5, 0)
    )
    for (xa, ya), (xb, yb) in zip(plain, workers, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert b.fit(workers, epochs=1, progress=False)[0]["trials"] == 32
