"""Bad networks, options and inputs give clear errors naming what is wrong."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from eprop_testnets import make_network, on_device, random_input

import neurowire as nw
from neurowire.codegen import maximum, spike, where
from neurowire.learning import EProp, RateRegularizer


@pytest.fixture
def trainer(device):
    """A trainer on ``device``; the tests pass it CPU inputs (and numpy), which it moves."""
    net, out = make_network("mixed", sparse=True)
    return EProp(net, out, **on_device(device))


def base_network():
    net = nw.Network(seed=0)
    inp = net.population("inp", nw.SpikeSource(3))
    hid = net.population("hid", nw.LIF(4))
    out = net.population("out", nw.LeakyIntegrator(2))
    return net, inp, hid, out


# ---------------------------------------------------------------------- inputs
def test_spikes_with_wrong_shape(trainer):
    x, labels = random_input(2, 10, 5)
    with pytest.raises(ValueError, match=r"\[B, T, n_in\]"):
        trainer.compute_gradients(x[0], labels)
    with pytest.raises(ValueError, match="7 channels but input population 'inp' has 5"):
        trainer.compute_gradients(torch.zeros(2, 10, 7, dtype=torch.bool), labels)
    with pytest.raises(ValueError, match="T >= 1"):
        trainer.compute_gradients(torch.zeros(2, 0, 5, dtype=torch.bool), labels)


def test_spikes_with_wrong_dtype_or_values(trainer):
    x, labels = random_input(2, 10, 5)
    with pytest.raises(TypeError, match="tensor"):
        trainer.compute_gradients(x.tolist(), labels)
    with pytest.raises(TypeError, match="complex"):
        trainer.compute_gradients(x.to(torch.complex64), labels)
    bad = x.double()
    bad[0, 3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        trainer.compute_gradients(bad, labels)
    with pytest.raises(ValueError, match="0/1"):
        trainer.compute_gradients(x.double() * 0.5, labels)
    with pytest.raises(ValueError, match="0/1"):
        trainer.compute_gradients(x.to(torch.uint8) * 2, labels)


def test_spikes_as_uint8_float_or_numpy_are_accepted(trainer):
    x, labels = random_input(2, 10, 5)
    ref = trainer.compute_gradients(x, labels)
    # bit for bit on the CPU; float64 rounding on CUDA, whose index_add_ sums in no fixed order
    tol = 0.0 if trainer.device.type == "cpu" else 1e-12
    for other in (x.to(torch.uint8), x.float(), x.numpy()):
        got = trainer.compute_gradients(other, labels)
        for key in ref:
            torch.testing.assert_close(got[key], ref[key], rtol=tol, atol=tol)


def test_labels_out_of_range_or_of_wrong_kind(trainer):
    x, _ = random_input(2, 10, 5)
    with pytest.raises(ValueError, match=r"label 3 is out of range.*\[0, 3\)"):
        trainer.compute_gradients(x, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="out of range"):
        trainer.compute_gradients(x, torch.tensor([-1, 0]))
    with pytest.raises(TypeError, match="integer class labels"):
        trainer.compute_gradients(x, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        trainer.compute_gradients(x, torch.tensor([0, 1, 2]))


def test_regression_targets_checked(device):
    net, out = make_network("lif")
    trainer = EProp(net, out, loss="mse", **on_device(device))
    x, _ = random_input(2, 10, 5)
    with pytest.raises(ValueError, match=r"\(2, 10, 3\)"):
        trainer.compute_gradients(x, torch.zeros(2, 10))
    bad = torch.zeros(2, 10, 3)
    bad[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        trainer.compute_gradients(x, bad)
    with pytest.raises(TypeError, match="floating targets"):
        trainer.compute_gradients(x, torch.zeros(2, 10, 3, dtype=torch.int64))


# ---------------------------------------------------------------------- options
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"loss": "xent"}, r"loss must be one of \('sce', 'mse'\)"),
        ({"readout": "median"}, r"readout must be one of \('sum', 'avg', 'max', 'last'\)"),
        ({"method": "bptt"}, r"method must be one of \('factorized', 'online'\)"),
        ({"feedback": "adaptive"}, r"feedback must be one of \('symmetric', 'random'\)"),
        ({"chunk_size": 0}, "chunk_size"),
    ],
)
def test_unknown_choices_raise_value_error_listing_choices(kwargs, match):
    net, out = make_network("lif")
    with pytest.raises(ValueError, match=match):
        EProp(net, out, **kwargs)


def test_wrong_option_types():
    net, out = make_network("lif")
    with pytest.raises(TypeError, match="optimizer"):
        EProp(net, out, optimizer="adam")
    with pytest.raises(TypeError, match="RateRegularizer"):
        EProp(net, out, regularization=1e-3)
    with pytest.raises(TypeError, match="StructuralRule"):
        EProp(net, out, rewiring={"inp->h": object()})
    with pytest.raises(ValueError, match="dense"):
        EProp(*make_network("lif", sparse=False), rewiring={"inp->h": nw.StructuralRule()})
    with pytest.raises(ValueError, match="not an input or recurrent projection"):
        EProp(net, out, rewiring={"h->out": nw.StructuralRule()})
    with pytest.raises(ValueError, match="f_target_hz"):
        RateRegularizer(c=1.0, f_target_hz=-1.0)


# ---------------------------------------------------------------------- networks
def test_unsupported_neuron_named_with_population_and_class():
    net, inp, hid, out = base_network()
    net.population("noise", nw.PoissonSource(3, rate_hz=5.0))
    net.connect(inp, hid, nw.Dense())
    net.connect(hid, out, nw.Dense())
    with pytest.raises(NotImplementedError, match="population 'noise' is a PoissonSource"):
        EProp(net, out)


def test_lif_outside_the_eprop_convention_is_rejected():
    net = nw.Network(seed=0)
    inp = net.population("inp", nw.SpikeSource(3))
    hid = net.population("cells", nw.LIF.biophysical(4))
    out = net.population("out", nw.LeakyIntegrator(2))
    net.connect(inp, hid, nw.Dense())
    net.connect(hid, out, nw.Dense())
    with pytest.raises(NotImplementedError, match=r"population 'cells' \(LIF\).*v_reset"):
        EProp(net, out)


def test_output_must_be_a_leaky_integrator():
    net, inp, hid, out = base_network()
    with pytest.raises(NotImplementedError, match="LeakyIntegrator"):
        EProp(net, hid)
    with pytest.raises(ValueError, match="unknown output population 'nope'"):
        EProp(net, "nope")


@pytest.mark.parametrize("case", ["sparse_out", "in_to_out", "exp_curr", "stdp", "no_output"])
def test_unsupported_projections(case):
    net, inp, hid, out = base_network()
    net.connect(inp, hid, nw.Dense())
    if case == "sparse_out":
        net.connect(hid, out, nw.FixedProbability(0.5))
        err, match = NotImplementedError, "'hid->out' to the output is sparse"
    elif case == "in_to_out":
        net.connect(hid, out, nw.Dense())
        net.connect(inp, out, nw.Dense())
        err, match = NotImplementedError, "'inp->out'.*no e-prop role"
    elif case == "exp_curr":
        net.connect(hid, out, nw.Dense())
        net.connect(hid, hid, nw.FixedProbability(0.5), psc=nw.ExpCurr(tau=5.0))
        err, match = NotImplementedError, "'hid->hid' has a ExpCurr"
    elif case == "stdp":
        net.connect(hid, out, nw.Dense())
        net.connect(hid, hid, nw.FixedProbability(0.5), synapse=nw.STDP())
        err, match = NotImplementedError, "STDP plasticity"
    else:
        err, match = ValueError, "no projection from a hidden population"
    with pytest.raises(err, match=match):
        EProp(net, out)


def test_two_spike_sources_are_rejected():
    net, inp, hid, out = base_network()
    net.population("inp2", nw.SpikeSource(2))
    net.connect(hid, out, nw.Dense())
    with pytest.raises(NotImplementedError, match=r"exactly one SpikeSource.*\['inp', 'inp2'\]"):
        EProp(net, out)


def test_numpy_labels_accepted(device):
    net, out = make_network("lif")
    x, labels = random_input(2, 10, 5)
    grads = EProp(net, out, **on_device(device)).compute_gradients(x, np.asarray(labels))
    assert set(grads) == {"inp->h", "h->h", "h->out", "out.bias"}
    assert all(g.device.type == device.type for g in grads.values())


class _SteppedALIF(nw.ALIF):
    """Arbitrary PyTorch in step(): e-prop cannot derive its forward pass."""

    def step(self, state, i_syn, dt, rand=None, params=None):
        return super().step(state, i_syn * 2, dt, rand, params)


class _OtherUpdateALIF(nw.ALIF):
    """A different update without matching e-prop terms: the backward pass would be wrong."""

    def update(self, s, c, i_syn):
        refractory = s.r > 0
        s.v = c.alpha * s.v + 2.0 * i_syn - c.v_th * s.z
        s.a = c.rho * s.a + s.z
        s.z = spike(s.v - (c.v_th + c.beta * s.a), refractory)
        s.r = where(s.z, c.n_ref, maximum(s.r - 1, 0))


def _net_with(model, **weight):
    net = nw.Network(dt=1.0, seed=0)
    inp = net.population("inp", nw.SpikeSource(3))
    hid = net.population("cells", model)
    out = net.population("out", nw.LeakyIntegrator(2))
    net.connect(inp, hid, nw.Dense(), **weight)
    net.connect(hid, out, nw.Dense(), **weight)
    return net, out


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (_SteppedALIF(4), r"cells.*_SteppedALIF.*overrides step"),
        (_OtherUpdateALIF(4), r"cells.*_OtherUpdateALIF.*eprop_terms"),
    ],
)
def test_eprop_refuses_models_whose_equations_it_cannot_derive(model, message):
    net, out = _net_with(model)
    with pytest.raises(NotImplementedError, match=message):
        EProp(net, out)


def test_eprop_accepts_a_subclass_that_keeps_the_update():
    @dataclass(frozen=True)
    class Tagged(nw.ALIF):
        label: str = "tagged"

    gen = torch.Generator().manual_seed(0)
    x, labels = torch.rand(2, 20, 3, generator=gen) < 0.5, torch.tensor([0, 1])
    grads = []
    for model in (nw.ALIF(4), Tagged(4)):  # same update, same e-prop terms: accepted ...
        net, out = _net_with(model, weight=nw.Normal(0.5, 0.5))
        assert type(net.populations["cells"].model) is type(model)
        grads.append(EProp(net, out).compute_gradients(x, labels))
    plain, tagged = grads
    assert set(tagged) == set(plain) == {"inp->cells", "cells->out", "out.bias"}
    assert all(torch.equal(tagged[k], plain[k]) for k in plain)  # ... and trained alike
    assert all(bool(plain[k].abs().sum() > 0) for k in plain)  # (gradients that can differ)
