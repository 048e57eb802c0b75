"""The counter-based generator of stochastic neurons (neurowire.rng, neurowire.native.rng).

Its definition is pinned three ways: the native kernels equal the PyTorch reference bit for bit,
the reference equals SplitMix64 written out independently here, and the numbers and the
Poisson spikes drawn from them pass statistical checks with stated tolerances (5 standard
errors, or p > 1e-6, so that a correct generator fails them about once in a million runs).
"""

import math

import numpy as np
import pytest
import torch
from scipy import stats

import neurowire as nw
from neurowire import rng

pytest.importorskip("numba")
from neurowire.native import rng as native_rng  # noqa: E402

KEY = rng.stream_key(11, "source")


def splitmix64(seed: int, count: int) -> list[int]:
    """SplitMix64 as published (Steele, Lea & Flood 2014): state += gamma, then mix."""
    out, state = [], seed
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) % 2**64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
        out.append(z ^ (z >> 31))
    return out


@pytest.mark.parametrize("start", [0, 12345, 2**40 + 3, 2**62 + 7])
def test_native_kernels_equal_the_torch_reference_bit_for_bit(start, device):
    n = 20_000
    position = torch.arange(start, start + n, device=device)
    ref32 = rng.uniform(KEY, position, torch.float32).cpu().numpy()
    ref64 = rng.uniform(KEY, position, torch.float64).cpu().numpy()
    out32, out64 = np.empty(n, np.float32), np.empty(n, np.float64)
    native_rng.fill_uniform32(np.uint64(KEY), np.uint64(start), out32)
    native_rng.fill_uniform64(np.uint64(KEY), np.uint64(start), out64)
    assert np.array_equal(ref32, out32) and np.array_equal(ref64, out64)


def test_the_stream_is_splitmix64_read_at_each_position(device):
    words = splitmix64(KEY, 50)
    u64 = rng.uniform(KEY, torch.arange(50, device=device), torch.float64).tolist()
    u32 = rng.uniform(KEY, torch.arange(50, device=device), torch.float32).tolist()
    assert u64 == [(w >> 11) * 2.0**-53 for w in words]
    assert u32 == [(w >> 40) * 2.0**-24 for w in words]


def test_uniform_numbers_are_uniform_and_uncorrelated(device):
    n = 1 << 20
    u = rng.uniform(KEY, torch.arange(n, device=device), torch.float64).cpu().numpy()
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 5 * math.sqrt(1 / 12 / n)
    assert abs(u.var() - 1 / 12) < 5 * math.sqrt(1 / 180 / n)  # var of (u - 1/2)^2 is 1/180
    assert stats.chisquare(np.histogram(u, bins=256, range=(0, 1))[0]).pvalue > 1e-6
    # as a population of 1024 neurons over 1024 steps: neighbours in space and in time
    grid = u.reshape(1024, 1024) - 0.5
    for a, b in ((grid[:, :-1], grid[:, 1:]), (grid[:-1], grid[1:]), (grid[:, :-32], grid[:, 32:])):
        r = float((a * b).mean() / (a.std() * b.std()))
        assert abs(r) < 5 / math.sqrt(a.size)


def test_streams_depend_on_seed_and_name_only(device):
    assert rng.stream_key(1, "a") == rng.stream_key(1, "a")
    keys = {rng.stream_key(s, name) for s in (0, 1, 2) for name in ("a", "b", "source")}
    assert len(keys) == 9
    a = rng.uniform(rng.stream_key(1, "a"), torch.arange(10_000, device=device))
    b = rng.uniform(rng.stream_key(1, "b"), torch.arange(10_000, device=device))
    assert a.device.type == device.type
    assert abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1])) < 5 / 100


def poisson_network(n=1000, rate_hz=40.0):
    net = nw.Network(dt=1.0, seed=4)
    net.population("p", nw.PoissonSource(n, rate_hz=rate_hz))
    return net


@pytest.mark.parametrize("engine", ["torch", "native"])
def test_poisson_spikes_have_the_rate_and_are_independent(engine, device):
    steps, n, p = 2000, 1000, 0.04  # 40 Hz at dt = 1 ms
    sim = nw.Simulator(poisson_network(n), device=device, engine=engine)
    z = sim.run(steps, record={"p": ["spikes"]})["p"]["spikes"][0].double().cpu()  # [T, n]
    total = float(z.sum())
    expected, sd = steps * n * p, math.sqrt(steps * n * p * (1 - p))
    assert abs(total - expected) < 5 * sd
    # per-neuron counts binomial(steps, p): a chi-square of their dispersion
    counts = z.sum(0).numpy()
    dispersion = ((counts - steps * p) ** 2).sum() / (steps * p * (1 - p))
    assert stats.chi2.sf(dispersion, n) > 1e-6 and stats.chi2.cdf(dispersion, n) > 1e-6
    # no correlation between neighbouring neurons, nor between consecutive steps
    x = z - p
    for a, b in ((x[:, :-1], x[:, 1:]), (x[:-1], x[1:])):
        r = float((a * b).mean() / (a.std() * b.std()))
        assert abs(r) < 5 / math.sqrt(a.numel())


def test_engines_and_block_lengths_draw_the_same_spikes(device):
    """The torch engine on ``device`` draws the same spikes as the native engine on the CPU
    (counter-based streams: exactly equal, no tolerance)."""
    record = {"p": ["spikes"]}
    runs = [
        nw.Simulator(poisson_network(300), device=dev, engine=engine, block_steps=block)
        .run(500, record=record)["p"]["spikes"]
        .cpu()
        for engine, dev, block in (
            ("torch", device, 500),
            ("torch", device, 7),
            ("native", "cpu", 1000),
            ("native", "cpu", 13),
        )
    ]
    assert runs[0].any()
    for other in runs[1:]:
        assert torch.equal(runs[0], other)


def test_a_simulation_continues_the_stream(device):
    """One torch run on ``device`` equals two native runs on the CPU (exactly)."""
    once = nw.Simulator(poisson_network(50), device=device, engine="torch")
    once = once.run(40, record={"p": ["spikes"]})["p"]["spikes"].cpu()
    sim = nw.Simulator(poisson_network(50), engine="native")
    parts = [sim.run(k, record={"p": ["spikes"]})["p"]["spikes"] for k in (15, 25)]
    assert torch.equal(once, torch.cat(parts, dim=1))
