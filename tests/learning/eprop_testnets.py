"""Small seeded e-prop networks shared by the learning tests (not a test module)."""

from __future__ import annotations

import torch

import neurowire as nw


def style_network(dtype=torch.float64, seed: int = 8):
    """The small test network: 4 inputs, 6 ALIF, 3 outputs (sparse input and recurrent)."""
    net = nw.Network(dt=1.0, seed=seed, dtype=dtype)
    inp = net.population("input", nw.SpikeSource(4))
    hid = net.population(
        "hidden", nw.ALIF(6, tau_m=20.0, tau_a=200.0, beta=0.2, v_th=0.5, tau_refrac=2.0)
    )
    out = net.population("output", nw.LeakyIntegrator(3, tau=15.0))
    net.connect(inp, hid, nw.FixedProbability(0.7), weight=nw.Normal(0.4, 0.5), padding=1.5)
    net.connect(hid, hid, nw.FixedProbability(0.5), weight=nw.Normal(0.0, 0.5), padding=2.0)
    net.connect(hid, out, nw.Dense(), weight=nw.Normal(0.0, 0.5))
    return net, out


def make_network(
    kind: str = "mixed",
    sparse: bool = True,
    refractory: bool = True,
    dtype=torch.float64,
    seed: int = 1,
    n_in: int = 5,
    cross_sparse: bool = False,
):
    """A random small network.

    kind: ``"lif"`` (one LIF population), ``"alif"`` (one ALIF), ``"mixed"`` (ALIF + LIF
    populations with different tau_m, v_th and refractory periods, all projection kinds between
    them) or ``"mixed_beta"`` (two ALIF populations with different beta and tau_a). Between
    two populations, projections are of the other kind than within one, unless
    ``cross_sparse`` (all sparse).
    """
    net = nw.Network(dt=1.0, seed=seed, dtype=dtype)
    inp = net.population("inp", nw.SpikeSource(n_in))
    ref = 2.0 if refractory else 0.0
    conn = (lambda p: nw.FixedProbability(p)) if sparse else (lambda p: nw.Dense())
    pad = 1.5 if sparse else 1.0
    if kind == "lif":
        pops = [net.population("h", nw.LIF(7, tau_m=20.0, v_th=0.5, tau_refrac=ref))]
    elif kind == "alif":
        pops = [
            net.population(
                "h", nw.ALIF(7, tau_m=20.0, tau_a=100.0, beta=0.3, v_th=0.5, tau_refrac=ref)
            )
        ]
    elif kind == "mixed":
        pops = [
            net.population(
                "a", nw.ALIF(6, tau_m=15.0, tau_a=200.0, beta=0.15, v_th=0.5, tau_refrac=ref)
            ),
            net.population("b", nw.LIF(4, tau_m=25.0, v_th=0.4, tau_refrac=ref / 2)),
        ]
    elif kind == "mixed_beta":
        pops = [
            net.population(
                "a", nw.ALIF(5, tau_m=20.0, tau_a=300.0, beta=0.4, v_th=0.5, tau_refrac=ref)
            ),
            net.population(
                "b", nw.ALIF(4, tau_m=10.0, tau_a=50.0, beta=0.05, v_th=0.6, tau_refrac=ref)
            ),
        ]
    else:
        raise ValueError(kind)
    out = net.population("out", nw.LeakyIntegrator(3, tau=20.0, bias=nw.Normal(0.0, 0.3)))
    for p in pops:
        net.connect(inp, p, conn(0.7), weight=nw.Normal(0.35, 0.6), padding=pad)
        net.connect(p, out, nw.Dense(), weight=nw.Normal(0.0, 0.5))
    for p in pops:
        for q in pops:
            c = conn(0.5) if p is q else (nw.Dense() if sparse else nw.FixedProbability(0.5))
            if cross_sparse:
                c = nw.FixedProbability(0.5)
            net.connect(p, q, c, weight=nw.Normal(0.0, 0.5), padding=pad)
    return net, out


def random_input(batch: int, steps: int, n_in: int, p: float = 0.15, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, steps, n_in, generator=gen) < p
    labels = torch.randint(0, 3, (batch,), generator=gen)
    return x, labels


def on_device(device: torch.device) -> dict:
    """EProp's arguments for a test on ``device``: the default engine on the CPU (native when
    numba is installed), the pure-PyTorch reference engine ``"torch"`` elsewhere (the Triton
    engine has its own tests)."""
    if device.type == "cpu":
        return {"device": device}
    return {"device": device, "engine": "torch"}


def max_rel_error(a: dict, b: dict) -> dict:
    """Per key ``max|a - b| / max|b|`` (b is the reference; asserts it is not all zero)."""
    assert set(a) == set(b), (sorted(a), sorted(b))
    out = {}
    for key in b:
        scale = float(b[key].abs().max())
        assert scale > 0, f"reference gradient {key!r} is all zero: the test is vacuous"
        out[key] = float((a[key].double() - b[key].double()).abs().max()) / scale
    return out
