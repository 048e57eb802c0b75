"""Online e-prop: per-synapse eligibility traces advanced step by step, the reference.

For every synapse ``i -> j`` (dense: all pairs; sparse: the stored slots only) and every trial,
each step (Bellec et al. 2020)::

    p_t     = alpha_j p_{t-1} + s_{i,t}          s = x_t (input) or z_{t-1} (recurrent)
    e_t     = psi_j,t (p_t - beta_j eps_t)
    ebar_t  = kappa ebar_{t-1} + e_t
    g      += L_j,t ebar_t;    esum += e_t
    eps_t+1 = psi_j,t p_t + (rho_j - beta_j psi_j,t) eps_t

so ``p`` is ``xbar_t`` or ``zbar_{t-1}`` filtered with the *postsynaptic* alpha. ``e_t`` and
``eps_t+1`` are one step of the hidden model's ``eprop_adjoint`` with ``H = 0``, ``Q = eps`` and
``Lambda = p``, written here as vectorised ops (tested equal to the definition). The rate
regulariser's ``R_j`` is only known at the end of the batch: ``esum`` is returned and scaled by
the driver. Memory is ``B x synapses`` per trace; this is the ground truth that the factorised
form is tested against, not a fast path.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .compiled import EPropNetwork, HiddenLayer
from .factorized import ChunkResult
from .forward import HiddenDynamics, hot_loop, pseudo_derivative_
from .losses import Loss, RateRegularizer
from .tables import ProjectionWeights, Weights


class SynapseTraces:
    """Eligibility state ``p, eps, ebar`` ``[B, n_pre, n_post or capacity]`` of one projection."""

    def __init__(self, pw: ProjectionWeights, layer: HiddenLayer, batch: int) -> None:
        spec = pw.spec
        self.pw = pw
        if pw.dense is not None:
            cols = slice(spec.post_offset, spec.post_offset + spec.n_post)
            self._post = lambda v: v[..., cols].unsqueeze(-2)  # [B, 1, n_post]
            shape = (spec.n_pre, spec.n_post)
        else:
            post = pw.post
            self._post = lambda v: v[..., post]  # [B, n_pre, capacity]
            shape = tuple(post.shape)
        self.alpha, self.rho, self.beta = (
            self._post(getattr(layer, k)[None]).squeeze(0) for k in ("alpha", "rho", "beta")
        )
        like = dict(dtype=layer.alpha.dtype, device=layer.alpha.device)
        self.p, self.eps, self.ebar = (torch.zeros((batch, *shape), **like) for _ in range(3))
        self.g = torch.zeros(shape, **like)
        self.esum = torch.zeros(shape, **like)

    def step(self, pre: Tensor, psi: Tensor, signal: Tensor, kappa: float) -> None:
        """Advance one step: ``pre [B, n_pre]`` presynaptic spikes, ``psi, signal [B, N]``."""
        psi_j = self._post(psi)
        self.p.mul_(self.alpha).add_(pre.unsqueeze(-1))
        e = psi_j * (self.p - self.beta * self.eps)
        self.ebar.mul_(kappa).add_(e)
        self.g.add_((self._post(signal) * self.ebar).sum(0))
        self.esum.add_(e.sum(0))
        self.eps.mul_(self.rho - self.beta * psi_j).addcmul_(psi_j, self.p)

    def masked(self, value: Tensor) -> Tensor:
        pw = self.pw
        if pw.mask is not None:
            return value * pw.mask
        if pw.spec.self_loop:
            value = value.clone()
            value.fill_diagonal_(0.0)
        return value


def dense_input_matrix(enet: EPropNetwork, w: Weights) -> Tensor:
    """All input projections as one ``[n_in, N]`` matrix."""
    out = torch.zeros(enet.n_in, enet.hidden.n, dtype=enet.dtype, device=enet.device)
    for pw in w.inputs:
        spec = pw.spec
        if pw.dense is not None:
            out[:, spec.post_offset : spec.post_offset + spec.n_post] += pw.dense
        else:
            rows = torch.arange(spec.n_pre, device=out.device)[:, None].expand_as(pw.post)
            out.index_put_((rows[pw.mask], pw.post[pw.mask]), pw.weight[pw.mask], accumulate=True)
    return out


def online_chunk(
    enet: EPropNetwork,
    w: Weights,
    x: Tensor,
    targets: Tensor,
    loss: Loss,
    regularizer: RateRegularizer | None,
) -> ChunkResult:
    """Online e-prop over one chunk of trials; ``x [B, T, n_in]`` bool."""
    batch, steps, _ = x.shape
    lay, k = enet.hidden, enet.n_out
    dyn = HiddenDynamics(enet, w.w_rec)
    st = dyn.initial_state(batch)
    w_in = dense_input_matrix(enet, w)
    like = dict(dtype=enet.dtype, device=enet.device)
    traces = [SynapseTraces(pw, lay, batch) for pw in w.inputs + w.recurrent]
    y = torch.zeros(batch, k, **like)
    ys = torch.empty(steps, batch, k, **like)
    zbar_kappa = torch.zeros(batch, lay.n, **like)
    g_out = torch.zeros(lay.n, k, **like)
    g_bias = torch.zeros(k, **like)
    spikes = torch.zeros(lay.n, **like)
    loss_sum = torch.zeros((), **like)
    d = torch.empty(batch, lay.n, **like)
    z_buf = torch.zeros(2, batch, lay.n, **like)
    with hot_loop(enet.step_threads):
        for t in range(steps):
            x_t = x[:, t].to(enet.dtype)
            z_prev = st.z
            dyn.step(st, x_t @ w_in, d, z_buf[t % 2])
            z = st.z
            psi = pseudo_derivative_(d, lay)
            y.mul_(enet.kappa).add_(z @ w.w_out).add_(w.bias)
            ys[t] = y
            tgt = loss.at_step(targets, t)
            err = loss.error(y[None], tgt)[0]
            loss_sum += loss.value(y[None], tgt)
            signal = err @ w.feedback.t()
            zbar_kappa.mul_(enet.kappa).add_(z)
            g_out.addmm_(zbar_kappa.t(), err)
            g_bias.add_(err.sum(0))
            spikes.add_(z.sum(0))
            for tr in traces:
                spec = tr.pw.spec
                if spec.role == "input":
                    pre = x_t
                else:
                    pre = z_prev[:, spec.pre_offset : spec.pre_offset + spec.n_pre]
                tr.step(pre, psi, signal, enet.kappa)
    inputs = x.view(torch.uint8).sum((0, 1), dtype=torch.int64)
    res = ChunkResult(spikes=spikes, inputs=inputs, loss=loss_sum, y=ys)
    for spec in enet.outputs:
        res.task[spec.name] = g_out[spec.pre_offset : spec.pre_offset + spec.n_pre].clone()
    res.task[enet.bias_name] = g_bias
    for tr in traces:
        res.task[tr.pw.spec.name] = tr.masked(tr.g)
        if regularizer is not None:
            res.unit[tr.pw.spec.name] = tr.masked(tr.esum)
    return res
