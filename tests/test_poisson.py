"""PoissonGenerator: the counts' distribution, their delivery as weight times count, their
independence of engine and block length, and refused rates."""

import math

import numpy as np
import pytest
import torch

import neurowire as nw
from neurowire.poisson import TABLE_WIDTH, count_table, poisson_counts
from neurowire.rng import stream_key


def generator_counts(engine, n, rate_hz, steps, dt=0.1, batch=1, seed=4, block_steps=None):
    """The recorded counts ``[B, steps, n]`` of one PoissonGenerator."""
    net = nw.Network(dt=dt, seed=seed)
    net.population("gen", nw.PoissonGenerator(n, rate_hz=rate_hz))
    sim = nw.Simulator(net, engine=engine, batch_size=batch, block_steps=block_steps)
    result = sim.run(steps, record={"gen": ["count", "spikes"]})
    counts = result["gen"]["count"]
    assert torch.equal(result["gen"]["spikes"], counts > 0)
    return counts


@pytest.mark.parametrize("mean", [1.0, 0.05, 20.0])
def test_counts_have_the_poisson_mean_and_variance(engine, mean):
    # 10 kHz at dt = 0.1 ms is NEST's drive, Poisson(1) per step; 500 Hz a low mean (mostly 0
    # or 1), 200 kHz counts beyond the table (20 per step on average)
    n, steps = 2000, 100
    counts = generator_counts(engine, n, mean / 0.1 * 1e3, steps).double().reshape(-1)
    draws = counts.numel()
    # 5 standard errors: the sample mean's is sqrt(mean / N), the sample variance's
    # sqrt((mu4 - mean**2) / N) with the Poisson fourth central moment mu4 = mean (1 + 3 mean)
    assert counts.mean().item() == pytest.approx(mean, abs=5 * math.sqrt(mean / draws))
    var_se = math.sqrt((mean * (1 + 3 * mean) - mean**2) / draws)
    assert counts.var().item() == pytest.approx(mean, abs=5 * var_se)


def test_count_frequencies_follow_the_poisson_distribution(engine):
    counts = generator_counts(engine, 2000, 1e4, 100).reshape(-1)
    draws = counts.numel()
    for k in range(TABLE_WIDTH + 2):  # across the end of the table
        p = math.exp(-1.0) / math.factorial(k)
        freq = (counts == k).double().mean().item()
        assert freq == pytest.approx(p, abs=5 * math.sqrt(p * (1 - p) / draws) + 1e-6), k


def test_counts_do_not_depend_on_the_block_length_and_follow_the_reference(engine):
    rate = torch.linspace(0.0, 3e5, 50)  # 0 to 30 per step: the table and its tail
    whole = generator_counts(engine, 50, rate, 40, batch=2, block_steps=40)
    pieces = generator_counts(engine, 50, rate, 40, batch=2, block_steps=7)
    assert torch.equal(whole, pieces)
    net_seed_plus_one = 5  # the simulator's default seed: net.seed + 1
    table = count_table(rate.to(torch.float32)[None], 0.1)
    reference = poisson_counts(stream_key(net_seed_plus_one, "gen"), 0, 40, 2, table)
    assert torch.equal(whole, reference.transpose(0, 1))
    assert whole[:, :, 0].abs().max() == 0
    assert whole.max() > TABLE_WIDTH


def test_batch_elements_and_seeds_draw_independent_counts(engine):
    counts = generator_counts(engine, 200, 1e4, 20, batch=2)
    assert not torch.equal(counts[0], counts[1])
    other = generator_counts(engine, 200, 1e4, 20, batch=2, seed=5)
    assert not torch.equal(counts, other)


@pytest.mark.parametrize("delivery", ["dense", "slots", "csr"])
@pytest.mark.parametrize("delay", [None, 0.3])
def test_a_projection_delivers_weight_times_count(engine, delivery, delay):
    # OneToOne into LIF (Delta, tau_m 1e9 ms, unreachable threshold): the step's input of
    # target i is 6.2 times the count of generator neuron i d steps before
    net = nw.Network(dt=0.1, seed=2, dtype=torch.float64)
    gen = net.population("gen", nw.PoissonGenerator(30, rate_hz=2e4))
    lif = net.population("lif", nw.LIF(30, tau_m=1e9, v_th=1e9))
    proj = net.connect(gen, lif, nw.OneToOne(), weight=6.2, delivery=delivery, delay=delay)
    sim = nw.Simulator(net, engine=engine)
    result = sim.run(25, record={"gen": ["count"], "lif": ["v"]})
    d = proj.delay_steps
    counts, v = result["gen"]["count"][0].double(), result["lif"]["v"][0]
    alpha = math.exp(-0.1 / 1e9)
    received = v[1:] - alpha * v[:-1]  # input of steps 1..24
    expected = torch.cat([torch.zeros(d - 1, 30), 6.2 * counts[: 25 - d]], 0)
    assert torch.allclose(received, expected.double(), atol=1e-9)
    assert counts.max() >= 2


def test_rows_delivery_and_stdp_from_a_generator_are_refused():
    net = nw.Network(dt=0.1)
    gen = net.population("gen", nw.PoissonGenerator(4, rate_hz=1e4))
    lif = net.population("lif", nw.LIF(4))
    with pytest.raises(NotImplementedError, match=r"gen->lif: STDP from PoissonGenerator 'gen'"):
        net.connect(gen, lif, nw.OneToOne(), synapse=nw.STDP())
    net.connect(gen, lif, nw.OneToOne(), delivery="rows")
    with pytest.raises(ValueError, match=r"gen->lif: delivery='rows' lists spikes, not the counts"):
        nw.Simulator(net, engine="torch")


@pytest.mark.parametrize(
    "rate, match",
    [
        (-1.0, r"must be a finite rate >= 0 Hz, got -1.0"),
        (float("nan"), r"must be a finite rate >= 0 Hz"),
        (float("inf"), r"must be a finite rate >= 0 Hz"),
        ([1.0, -2.0, 3.0], r"must be finite rates >= 0 Hz, got -2.0 at neuron 1"),
        ([1.0, 2.0], r"must be a number or \[3\], got shape \(2,\)"),
        ("fast", r"must be a number or \[3\] of numbers"),
    ],
)
def test_bad_rates_are_refused(rate, match):
    with pytest.raises(nw.checks.ParameterError, match=r"PoissonGenerator rate_hz " + match):
        nw.PoissonGenerator(3, rate_hz=rate)


def test_a_rate_above_the_largest_mean_count_is_refused_when_simulating():
    net = nw.Network(dt=0.1)
    net.population("gen", nw.PoissonGenerator(3, rate_hz=[1.0, 6e6, 2.0]))
    with pytest.raises(nw.checks.ParameterError, match=r"rate 6000000.0 Hz gives 600 spikes"):
        nw.Simulator(net, engine="torch")


def test_set_rates_changes_the_counts_and_refuses_bad_rates():
    net = nw.Network(dt=0.1, seed=1)
    net.population("gen", nw.PoissonGenerator(100, rate_hz=0.0))
    sim = nw.Simulator(net, engine="torch", batch_size=2)
    assert sim.run(10, record={"gen": ["count"]})["gen"]["count"].max() == 0
    sim.set_rates("gen", torch.tensor([[0.0] * 100, [5e4] * 100]))
    counts = sim.run(10, record={"gen": ["count"]})["gen"]["count"]
    assert counts[0].max() == 0 and counts[1].double().mean().item() > 3.0
    with pytest.raises(nw.checks.ParameterError, match=r"'gen': rate 10000000.0 Hz gives 1000"):
        sim.set_rates("gen", 1e7)
    with pytest.raises(nw.checks.ParameterError, match=r"finite and >= 0 Hz"):
        sim.set_rates("gen", -5.0)


def test_the_native_kernel_draws_the_reference_counts_bit_for_bit():
    pytest.importorskip("numba")
    from neurowire.native.rng import poisson_counts as native_counts

    # rates per batch element (R = B = 2), 0 to 40 per step: table and tail; steps far apart
    gen = torch.Generator().manual_seed(0)
    rate = torch.rand(2, 300, generator=gen, dtype=torch.float64) * 4e5
    rate[:, :5] = 0.0
    table = count_table(rate, 0.1)
    key = stream_key(123, "gen")
    count = torch.zeros(2, 300, dtype=torch.int32)
    z = torch.zeros(2, 300, dtype=torch.bool)
    u = torch.zeros(300, dtype=torch.float64)
    for step in (0, 1, 17, 10**9):
        expected = poisson_counts(key, step, 1, 2, table)[0]
        args = (table.mean.numpy(), table.cdf.numpy(), table.last.numpy())
        native_counts(np.uint64(key), step, *args, count.numpy(), z.numpy(), u.numpy())
        assert torch.equal(count, expected), step
        assert torch.equal(z, expected > 0)
        assert expected.max() > TABLE_WIDTH
