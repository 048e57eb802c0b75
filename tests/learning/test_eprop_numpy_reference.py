"""Both e-prop methods match a plain-numpy implementation of the e-prop convention.

The numpy code below is written from the equations alone (Bellec et al. 2020, as written out in
:mod:`neurowire.learning.forward`): math layout ``W[post, pre]``, a refractory *counter*
(``r = n_ref`` after a spike, else ``max(r - 1, 0)``), an explicit reset term, and per-synapse,
per-trial eligibility traces for every pair (masked to the existing synapses at the end).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from eprop_testnets import make_network, on_device, random_input, style_network

import neurowire as nw
from neurowire.learning import EProp, RateRegularizer


def hidden_parameters(net, hidden):
    dt = net.dt
    cols = {k: [] for k in ("alpha", "rho", "beta", "v_th", "n_ref")}
    for pop in hidden:
        m = pop.model
        adaptive = isinstance(m, nw.ALIF)
        cols["alpha"] += [math.exp(-dt / m.tau_m)] * pop.n
        cols["rho"] += [math.exp(-dt / m.tau_a) if adaptive else 0.0] * pop.n
        cols["beta"] += [m.beta if adaptive else 0.0] * pop.n
        cols["v_th"] += [m.v_th] * pop.n
        cols["n_ref"] += [int(round(m.tau_refrac / dt))] * pop.n
    return {k: np.array(v) for k, v in cols.items()}


def global_matrices(net, inp, hidden, out):
    """W_in [N, n_in], W_rec [N, N], W_out [K, N] in math layout, with 0/1 synapse masks."""
    offset, start = {}, 0
    for pop in hidden:
        offset[pop.name] = start
        start += pop.n
    n = start
    w_in, m_in = np.zeros((n, inp.n)), np.zeros((n, inp.n))
    w_rec, m_rec = np.zeros((n, n)), np.zeros((n, n))
    w_out = np.zeros((out.n, n))
    for proj in net.projections.values():
        w = proj.dense_weight().double().numpy().T  # [post, pre]
        if proj.sparse:
            pre, post = (t.numpy() for t in proj.synapses.coo())
            mask = np.zeros_like(w)
            mask[post, pre] = 1.0
        else:
            mask = np.ones_like(w)
        if proj.pre is proj.post:
            np.fill_diagonal(mask, 0.0)
        if proj.post is out:
            o = offset[proj.pre.name]
            w_out[:, o : o + proj.pre.n] += w
        elif proj.pre is inp:
            o = offset[proj.post.name]
            w_in[o : o + proj.post.n] += w * mask
            m_in[o : o + proj.post.n] = mask
        else:
            r, c = offset[proj.post.name], offset[proj.pre.name]
            w_rec[r : r + proj.post.n, c : c + proj.pre.n] += w * mask
            m_rec[r : r + proj.post.n, c : c + proj.pre.n] = mask
    return w_in, m_in, w_rec, m_rec, w_out


def numpy_eprop(prm, w_in, m_in, w_rec, m_rec, w_out, bias, fb, kappa, x, target, loss, reg, dt):
    """Gradients in math layout: {"in": [N, n_in], "rec": [N, N], "out": [K, N], "bias": [K]}."""
    nb, steps, n_in = x.shape
    n, k = w_rec.shape[0], w_out.shape[0]
    alpha, rho, beta, v_th = prm["alpha"], prm["rho"], prm["beta"], prm["v_th"]
    v, a, r = np.zeros((nb, n)), np.zeros((nb, n)), np.zeros((nb, n), dtype=int)
    z_prev, y, zk = np.zeros((nb, n)), np.zeros((nb, k)), np.zeros((nb, n))
    xbar, eps_in, ebar_in = (np.zeros((nb, n, n_in)) for _ in range(3))
    zbar, eps_rec, ebar_rec = (np.zeros((nb, n, n)) for _ in range(3))
    g_in, s_in = np.zeros((n, n_in)), np.zeros((n, n_in))
    g_rec, s_rec = np.zeros((n, n)), np.zeros((n, n))
    g_out, g_b, counts = np.zeros((k, n)), np.zeros(k), np.zeros(n)
    for t in range(steps):
        xt = x[:, t].astype(float)
        v = alpha * v + xt @ w_in.T + z_prev @ w_rec.T - v_th * z_prev
        a = rho * a + z_prev
        big_a = v_th + beta * a
        refractory = r > 0
        z = ((v - big_a) > 0) & ~refractory
        psi = 0.3 / v_th * np.maximum(0.0, 1.0 - np.abs(v - big_a) / v_th)
        psi[refractory] = 0.0
        r = np.where(z, prm["n_ref"], np.maximum(r - 1, 0))
        z = z.astype(float)
        y = kappa * y + z @ w_out.T + bias
        if loss == "sce":
            pi = np.exp(y - y.max(1, keepdims=True))
            pi /= pi.sum(1, keepdims=True)
            err = pi - np.eye(k)[target]
        else:
            err = y - target[:, t]
        sig = err @ fb.T
        zk = kappa * zk + z
        g_out += err.T @ zk
        g_b += err.sum(0)
        counts += z.sum(0)
        xbar = alpha[None, :, None] * xbar + xt[:, None, :]
        zbar = alpha[None, :, None] * zbar + z_prev[:, None, :]  # zbar_{t-1}
        for p, eps, ebar, g, s in (
            (xbar, eps_in, ebar_in, g_in, s_in),
            (zbar, eps_rec, ebar_rec, g_rec, s_rec),
        ):
            e = psi[:, :, None] * (p - beta[None, :, None] * eps)
            eps[:] = psi[:, :, None] * p + (rho - beta * psi)[:, :, None] * eps
            ebar[:] = kappa * ebar + e
            g += (sig[:, :, None] * ebar).sum(0)
            s += e.sum(0)
        z_prev = z
    if reg is not None:
        rate_r = reg.c * (counts / (nb * steps) - reg.f_target_hz * dt / 1000) / (nb * steps)
        g_in += rate_r[:, None] * s_in
        g_rec += rate_r[:, None] * s_rec
    return {"in": g_in * m_in, "rec": g_rec * m_rec, "out": g_out, "bias": g_b}


def compare(net, out, x, target, device, loss="sce", reg=None, feedback="symmetric", tol=1e-9):
    """Both methods on ``device`` against the numpy reference on the CPU, float64 throughout:
    the largest error relative to the largest reference gradient must stay below ``tol``."""
    inp = next(p for p in net.populations.values() if isinstance(p.model, nw.SpikeSource))
    hidden = [p for p in net.populations.values() if p is not inp and p is not out]
    prm = hidden_parameters(net, hidden)
    w_in, m_in, w_rec, m_rec, w_out = global_matrices(net, inp, hidden, out)
    bias = out.params["bias"].double().numpy()
    trainers = {
        m: EProp(
            net,
            out,
            method=m,
            loss=loss,
            feedback=feedback,
            regularization=reg,
            seed=5,
            **on_device(device),
        )
        for m in ("online", "factorized")
    }
    fb_t = trainers["online"].feedback_matrix
    fb = w_out.T if fb_t is None else fb_t.double().cpu().numpy()
    tgt = target.numpy()
    ref = numpy_eprop(
        prm,
        w_in,
        m_in,
        w_rec,
        m_rec,
        w_out,
        bias,
        fb,
        math.exp(-net.dt / out.model.tau),
        x.numpy(),
        tgt,
        loss,
        reg,
        net.dt,
    )
    offset = {p.name: sum(q.n for q in hidden[: hidden.index(p)]) for p in hidden}
    for method, trainer in trainers.items():
        grads = trainer.compute_gradients(x.to(device), target.to(device))
        for name, g in grads.items():
            if name == f"{out.name}.bias":
                expect = ref["bias"]
            else:
                proj = net.projections[name]
                if proj.post is out:
                    o = offset[proj.pre.name]
                    expect = ref["out"][:, o : o + proj.pre.n].T
                elif proj.pre is inp:
                    o = offset[proj.post.name]
                    expect = ref["in"][o : o + proj.post.n].T
                else:
                    r, c = offset[proj.post.name], offset[proj.pre.name]
                    expect = ref["rec"][r : r + proj.post.n, c : c + proj.pre.n].T
            scale = np.abs(expect).max()
            assert scale > 0, (method, name)
            assert g.device.type == device.type, (method, name)
            err = np.abs(g.double().cpu().numpy() - expect).max() / scale
            assert err < tol, (method, name, err)


@pytest.mark.parametrize(
    "kind, sparse, reg, feedback",
    [
        ("mixed", True, RateRegularizer(c=50.0, f_target_hz=20.0), "random"),
        ("mixed", False, None, "symmetric"),
        ("mixed_beta", True, None, "symmetric"),
        ("alif", False, RateRegularizer(c=20.0, f_target_hz=5.0), "symmetric"),
    ],
)
def test_both_methods_match_numpy(device, kind, sparse, reg, feedback):
    net, out = make_network(kind, sparse=sparse)
    x, labels = random_input(3, 35, 5, seed=9)
    compare(net, out, x, labels, device, reg=reg, feedback=feedback)


def test_regression_matches_numpy(device):
    net, out = make_network("lif", sparse=True)
    x, _ = random_input(2, 30, 5, seed=10)
    targets = torch.randn(2, 30, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    compare(net, out, x, targets, device, loss="mse")


def test_style_network_matches_numpy(device):
    net, out = style_network()
    x = torch.rand(3, 25, 4, generator=torch.Generator().manual_seed(2)) < 0.3
    compare(net, out, x, torch.tensor([1, 0, 2]), device, reg=RateRegularizer(c=5.0))
