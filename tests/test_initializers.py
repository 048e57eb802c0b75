"""Value initialisers: statistics within stated tolerances, exact constants, clear errors."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

import neurowire as nw
from neurowire.initializers import as_initializer

N = 200_000


def test_normal_mean_sd_and_shape_within_tolerance(device, generator):
    x = nw.Normal(1.0, 2.0).sample((N,), generator=generator, device=device).double().cpu()
    # 5 standard errors: SE(mean) = sd / sqrt(N), SE(sd) ~ sd / sqrt(2 N)
    assert abs(float(x.mean()) - 1.0) < 5 * 2.0 / math.sqrt(N)
    assert abs(float(x.std()) - 2.0) < 5 * 2.0 / math.sqrt(2 * N)
    assert stats.kstest(x.numpy(), stats.norm(1.0, 2.0).cdf).pvalue > 1e-3


def test_uniform_range_and_distribution(device, generator):
    x = nw.Uniform(-1.0, 3.0).sample((N,), generator=generator, device=device).double().cpu()
    assert float(x.min()) >= -1.0 and float(x.max()) < 3.0
    assert abs(float(x.mean()) - 1.0) < 5 * 4.0 / math.sqrt(12 * N)
    assert stats.kstest(x.numpy(), stats.uniform(-1.0, 4.0).cdf).pvalue > 1e-3


def test_constant_is_exact_in_shape_dtype_and_device(device):
    x = nw.Constant(0.25).sample((3, 4), device=device, dtype=torch.float64)
    assert x.shape == (3, 4) and x.dtype == torch.float64 and x.device.type == device.type
    assert bool((x == 0.25).all())


@pytest.mark.parametrize(
    "init", [nw.Normal(0.0, 1.0), nw.Uniform(0.0, 1.0), nw.Constant(1.0)], ids=repr
)
def test_samples_honour_shape_dtype_and_device(device, generator, init):
    x = init.sample((2, 5, 7), device=device, generator=generator, dtype=torch.float64)
    assert x.shape == (2, 5, 7) and x.dtype == torch.float64 and x.device.type == device.type
    assert bool(torch.isfinite(x).all())


@pytest.mark.parametrize("init", [nw.Normal(0.5, 0.1), nw.Uniform(-2.0, 2.0)], ids=repr)
def test_samples_are_reproducible_for_a_seed_and_differ_between_seeds(device, init):
    def draw(seed):
        gen = torch.Generator(device).manual_seed(seed)
        return init.sample((100,), generator=gen, device=device)

    assert torch.equal(draw(1), draw(1))
    assert not torch.equal(draw(1), draw(2))


def test_degenerate_distributions_are_constant(device, generator):
    normal = nw.Normal(0.3, 0.0).sample((50,), generator=generator, device=device)
    uniform = nw.Uniform(0.7, 0.7).sample((50,), generator=generator, device=device)
    assert normal.device.type == uniform.device.type == device.type
    assert bool((normal == 0.3).all()) and bool((uniform == 0.7).all())


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: nw.Normal(0.0, float("nan")), "Normal needs finite mean and sd >= 0"),
        (lambda: nw.Normal(0.0, -1.0), r"sd >= 0, got 0.0, -1.0"),
        (lambda: nw.Normal(float("inf"), 1.0), "finite mean"),
        (lambda: nw.Uniform(2.0, 1.0), "Uniform needs finite lo <= hi, got 2.0, 1.0"),
        (lambda: nw.Uniform(float("nan"), 1.0), "finite lo <= hi"),
        (lambda: nw.Uniform(0.0, float("inf")), "finite lo <= hi"),
        (lambda: nw.Constant(float("nan")), "Constant value must be finite, got nan"),
        (lambda: nw.Constant(float("-inf")), "Constant value must be finite"),
    ],
)
def test_bad_parameters_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_as_initializer_turns_numbers_into_constants_and_rejects_the_rest():
    assert as_initializer(0.5) == nw.Constant(0.5)
    assert as_initializer(3) == nw.Constant(3.0)
    normal = nw.Normal(0.0, 1.0)
    assert as_initializer(normal) is normal
    with pytest.raises(TypeError, match="got bool"):
        as_initializer(True)
    with pytest.raises(TypeError, match="got str"):
        as_initializer("0.5")


def test_network_weights_follow_the_initialiser():
    net = nw.Network(seed=2)
    src = net.population("src", nw.PoissonSource(300))
    tgt = net.population("tgt", nw.LIF(300))
    proj = net.connect(src, tgt, nw.FixedProbability(0.2), weight=nw.Normal(0.1, 0.02))
    w = proj.synapses.values("weight").double()
    n = w.numel()
    assert abs(float(w.mean()) - 0.1) < 5 * 0.02 / math.sqrt(n)
    assert abs(float(w.std()) - 0.02) < 5 * 0.02 / math.sqrt(2 * n)
