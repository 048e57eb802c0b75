"""The e-prop quantities are the models' definitions: the kernels are generated from them and
the torch engine's vectorised forms equal them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from eprop_testnets import make_network

import neurowire as nw
from neurowire.codegen import Constants, absolute, maximum
from neurowire.learning import EProp
from neurowire.learning.compiled import compile_network
from neurowire.learning.factorized import membrane_adjoint_
from neurowire.learning.forward import pseudo_derivative_
from neurowire.learning.online import SynapseTraces
from neurowire.learning.segments import adjoint_groups
from neurowire.learning.tables import gather_weights


@pytest.mark.parametrize("kind", ["lif", "alif", "mixed"])
def test_torch_pseudo_derivative_equals_the_models_definition(kind):
    net, out = make_network(kind, sparse=True)
    layer = compile_network(net, out).hidden
    d = torch.randn(6, 3, layer.n, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    d[0, 0, 0] = -torch.inf  # refractory
    psi = pseudo_derivative_(d.clone(), layer)
    consts = layer.pseudo_derivative_constants()
    for pop in layer.populations:
        cols = slice(*layer.span(pop))
        c = Constants({k: v[cols] for k, v in consts.items()})
        torch.testing.assert_close(
            psi[..., cols], pop.model.pseudo_derivative(c, d[..., cols]), rtol=1e-12, atol=1e-15
        )


def test_the_readout_decay_is_the_integrators_own():
    net, out = make_network("alif", sparse=False)
    enet = compile_network(net, out)
    model = out.model
    c = Constants(model.cached_constants(net.dt))
    s = SimpleNamespace(y=torch.ones(1, model.n, dtype=torch.float64))
    model.update(s, c, torch.zeros(1, model.n, dtype=torch.float64))  # y_t = decay y_{t-1}
    assert enet.kappa == model.readout_decay(c)
    torch.testing.assert_close(s.y, torch.full_like(s.y, enet.kappa), rtol=0, atol=0)


@pytest.mark.parametrize("target", ["native", "triton"])
def test_forward_kernels_translate_the_pseudo_derivative(target):
    module = pytest.importorskip(f"neurowire.learning.{target}")
    models = (nw.ALIF(4), nw.LIF(3))
    source = module.forward_source(models, 1.0, "float32")
    call = "abs(" if target == "native" else "tl.abs("
    for k in range(2):
        assert f"{call}k{k}_s_distance)" in source


@pytest.mark.parametrize("kind", ["lif", "alif", "mixed", "mixed_beta"])
def test_torch_adjoint_equals_the_models_definition(kind):
    net, out = make_network(kind, sparse=True)
    layer = compile_network(net, out).hidden
    gen = torch.Generator().manual_seed(2)
    steps, batch = 12, 3
    psi = torch.rand(steps, batch, layer.n, dtype=torch.float64, generator=gen) * 0.5
    lam = torch.randn(steps, batch, layer.n, dtype=torch.float64, generator=gen)
    h_ref = membrane_adjoint_(psi, lam.clone(), layer)
    for pop in layer.populations:
        cols = slice(*layer.span(pop))
        c = Constants({k: getattr(layer, k)[cols] for k in ("alpha", "rho", "beta")})
        zeros = torch.zeros(batch, pop.n, dtype=torch.float64)
        s = SimpleNamespace(h=zeros, q=zeros)
        for t in reversed(range(steps)):  # the definition, one step at a time
            pop.model.eprop_adjoint(s, c, psi[t][:, cols], lam[t][:, cols])
            torch.testing.assert_close(s.h, h_ref[t][:, cols], rtol=1e-12, atol=1e-14)


def test_one_adjoint_definition_is_one_loop_over_the_layer():
    models = (nw.ALIF(4), nw.LIF(3))  # ALIF's adjoint is LIF's, with beta and rho
    assert [(lo, hi) for _, lo, hi in adjoint_groups(models)] == [(0, 7)]


@pytest.mark.parametrize("target", ["native", "triton"])
def test_backward_kernels_translate_the_adjoint(target):
    module = pytest.importorskip(f"neurowire.learning.{target}")
    source = module.backward_source((nw.ALIF(4), nw.LIF(3)), 1.0, "float64")
    assert "a0_h_1 = " in source and "u0_q_1 = " in source  # with Lambda and with Lambda = 1
    assert "eprop_adjoint" in source or target == "triton"


def test_online_traces_are_the_adjoint_definition_run_forwards():
    # with h = 0 and lam = p, one step of eprop_adjoint gives e_t (in h) and eps_{t+1} (in q)
    net, out = make_network("alif", sparse=False)
    enet = compile_network(net, out)
    w = gather_weights(enet, None)
    (pw,) = w.recurrent
    traces = SynapseTraces(pw, enet.hidden, batch=2)
    gen = torch.Generator().manual_seed(4)
    n, model = enet.hidden.n, enet.hidden.populations[0].model
    c = Constants({"alpha": traces.alpha, "rho": traces.rho, "beta": traces.beta})
    eps = torch.zeros_like(traces.eps)
    p = torch.zeros_like(traces.p)
    for _ in range(6):
        pre = (torch.rand(2, n, generator=gen) < 0.4).double()
        psi = torch.rand(2, n, dtype=torch.float64, generator=gen)
        esum = traces.esum.clone()
        traces.step(pre, psi, torch.zeros(2, n, dtype=torch.float64), enet.kappa)
        p = p * traces.alpha + pre.unsqueeze(-1)
        s = SimpleNamespace(h=torch.zeros_like(eps), q=eps)
        model.eprop_adjoint(s, c, psi.unsqueeze(-2), p)
        eps = s.q
        torch.testing.assert_close(traces.esum - esum, s.h.sum(0), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(traces.eps, eps, rtol=1e-12, atol=1e-14)


class SteepALIF(nw.ALIF):
    """An ALIF whose pseudo-derivative is twice as high."""

    def pseudo_derivative(self, c, distance):
        return maximum(0.0, 1.0 - absolute(distance) * c.inv_v_th) * (c.psi_scale * 2.0)


def steep_network(model_class):
    net = nw.Network(dt=1.0, seed=0, dtype=torch.float64)
    inp = net.population("inp", nw.SpikeSource(5))
    hid = net.population("hid", model_class(6, v_th=0.3))
    out = net.population("out", nw.LeakyIntegrator(2))
    net.connect(inp, hid, nw.Dense(), weight=nw.Normal(0.3, 0.3))
    net.connect(hid, hid, nw.Dense(), weight=nw.Normal(0.0, 0.1))
    net.connect(hid, out, nw.Dense(), weight=nw.Normal(0.0, 0.3))
    return net, out


def test_engines_run_a_models_own_pseudo_derivative_or_refuse_it():
    net, out = steep_network(SteepALIF)
    for kwargs in ({"engine": "torch"}, {"method": "online"}):
        with pytest.raises(NotImplementedError, match="own pseudo_derivative"):
            EProp(net, out, **kwargs)
    native = pytest.importorskip("neurowire.learning.native")
    x = torch.rand(2, 20, 5, generator=torch.Generator().manual_seed(1)) < 0.3
    psi = {}
    for cls in (SteepALIF, nw.ALIF):
        net, out = steep_network(cls)
        enet = EProp(net, out, engine="native").network
        psi[cls] = native.forward(x, gather_weights(enet, None), enet)[1].clone()
    assert psi[nw.ALIF].abs().sum() > 0
    torch.testing.assert_close(psi[SteepALIF], 2.0 * psi[nw.ALIF], rtol=1e-15, atol=0)
