"""Numba kernels of the native CPU engine: one per phase and model, in place on numpy views.

Each kernel mirrors, loop by loop, the pure-PyTorch reference of the same model (``neurons.py``,
``psc.py``, ``plasticity.py``, ``propagate.py``); ``tests/test_native_engine.py`` checks that
whole simulations agree. Arrays are ``[B, n]`` unless stated; parameters arrive already cast to
the arrays' dtype so that float32 arithmetic stays float32.
"""

from __future__ import annotations

from numba import njit

# ---------------------------------------------------------------------------- delivery


@njit(cache=True, nogil=True)
def deliver_rows(spk, nspk, n_pre, ind, row_length, w, out):
    """``out[b, ind[i, j]] += w[i, j]`` for every spike ``b * n_pre + i`` in the list ``spk``
    (``nspk[0]`` entries); ``out`` arrives zeroed (the postsynaptic kernels zero it again)."""
    for e in range(nspk[0]):
        b, i = spk[e] // n_pre, spk[e] % n_pre
        for j in range(row_length[i]):
            out[b, ind[i, j]] += w[i, j]


@njit(cache=True, nogil=True)
def deliver_dense(spk, nspk, n_pre, w, out):
    """``out[b] += w[i]`` for every spike ``b * n_pre + i``, dense ``w [n_pre, n_post]``."""
    n_post = w.shape[1]
    for e in range(nspk[0]):
        b, i = spk[e] // n_pre, spk[e] % n_pre
        for j in range(n_post):
            out[b, j] += w[i, j]


# ---------------------------------------------------------------------------- postsynaptic


# Each kernel reads the delivered weights ``w_sum`` and zeroes them for the next step. The
# first projection onto a population writes ``i_syn`` (``first``), later ones add to it.


@njit(cache=True, nogil=True)
def psc_delta(w_sum, i_syn, first):
    batch, n = w_sum.shape
    for b in range(batch):
        for j in range(n):
            i_syn[b, j] = w_sum[b, j] if first else i_syn[b, j] + w_sum[b, j]
            w_sum[b, j] = 0


@njit(cache=True, nogil=True)
def psc_exp_curr(x, w_sum, i_syn, first, k):
    batch, n = x.shape
    for b in range(batch):
        for j in range(n):
            xx = x[b, j] + w_sum[b, j]
            i_syn[b, j] = xx if first else i_syn[b, j] + xx
            x[b, j] = xx * k
            w_sum[b, j] = 0


@njit(cache=True, nogil=True)
def psc_exp_cond(g, w_sum, v, i_syn, first, k, e_rev):
    batch, n = g.shape
    for b in range(batch):
        for j in range(n):
            gg = g[b, j] + w_sum[b, j]
            current = gg * (e_rev - v[b, j])
            i_syn[b, j] = current if first else i_syn[b, j] + current
            g[b, j] = gg * k
            w_sum[b, j] = 0


# ---------------------------------------------------------------------------- neurons


@njit(cache=True, nogil=True)
def lif_subtractive(v, r, z, i_syn, spk, nspk, alpha, v_th, n_ref):
    """e-prop LIF: ``v = alpha v + I - v_th z_prev``; spike if ``v - v_th > 0``, not refractory."""
    batch, n = v.shape
    count = 0
    for b in range(batch):
        for i in range(n):
            refractory = r[b, i] > 0
            vv = alpha * v[b, i] + i_syn[b, i]
            if z[b, i]:
                vv = vv - v_th
            spike = (vv - v_th > 0) and not refractory
            v[b, i] = vv
            z[b, i] = spike
            r[b, i] = n_ref if spike else max(r[b, i] - 1, 0)
            if spike:  # the list of spikes (b * n + i) drives delivery and plasticity
                spk[count] = b * n + i
                count += 1
    nspk[0] = count


@njit(cache=True, nogil=True)
def lif_reset(
    v, r, z, i_syn, spk, nspk, alpha, one_minus_alpha, gain, v_rest, v_th, v_reset, n_ref
):
    """Biophysical LIF: exact integration, reset to ``v_reset``, V held while refractory."""
    batch, n = v.shape
    count = 0
    for b in range(batch):
        for i in range(n):
            refractory = r[b, i] > 0
            if refractory:
                vv = v[b, i]
            else:
                vv = v_rest + (v[b, i] - v_rest) * alpha + one_minus_alpha * (gain * i_syn[b, i])
            spike = (vv > v_th) and not refractory
            v[b, i] = v_reset if spike else vv
            z[b, i] = spike
            r[b, i] = n_ref if spike else max(r[b, i] - 1, 0)
            if spike:  # the list of spikes (b * n + i) drives delivery and plasticity
                spk[count] = b * n + i
                count += 1
    nspk[0] = count


@njit(cache=True, nogil=True)
def alif(v, a, r, z, i_syn, spk, nspk, alpha, rho, beta, v_th, n_ref):
    batch, n = v.shape
    count = 0
    for b in range(batch):
        for i in range(n):
            refractory = r[b, i] > 0
            vv = alpha * v[b, i] + i_syn[b, i]
            aa = rho * a[b, i]
            if z[b, i]:
                vv = vv - v_th
                aa = aa + 1
            spike = (vv - (v_th + beta * aa) > 0) and not refractory
            v[b, i] = vv
            a[b, i] = aa
            z[b, i] = spike
            r[b, i] = n_ref if spike else max(r[b, i] - 1, 0)
            if spike:  # the list of spikes (b * n + i) drives delivery and plasticity
                spk[count] = b * n + i
                count += 1
    nspk[0] = count


@njit(cache=True, nogil=True)
def leaky_integrator(y, i_syn, bias, kappa):
    batch, n = y.shape
    for b in range(batch):
        for i in range(n):
            y[b, i] = kappa * y[b, i] + i_syn[b, i] + bias[i]


@njit(cache=True, nogil=True)
def poisson(z, rate_hz, rand, spk, nspk, scale):
    """``z = rand < rate * dt/1000``; ``rate_hz`` is ``[1, n]`` or ``[B, n]``."""
    batch, n = z.shape
    shared = rate_hz.shape[0] == 1
    count = 0
    for b in range(batch):
        rb = 0 if shared else b
        for i in range(n):
            spike = rand[b, i] < rate_hz[rb, i] * scale
            z[b, i] = spike
            if spike:
                spk[count] = b * n + i
                count += 1
    nspk[0] = count


@njit(cache=True, nogil=True)
def source(z, ext, spk, nspk):
    """Spikes given from outside (``SpikeSource``)."""
    batch, n = z.shape
    count = 0
    for b in range(batch):
        for i in range(n):
            z[b, i] = ext[b, i]
            if ext[b, i]:
                spk[count] = b * n + i
                count += 1
    nspk[0] = count


# ---------------------------------------------------------------------------- plasticity


@njit(cache=True, nogil=True)
def stdp(
    w,
    ind,
    row_length,
    col_indptr,
    col_slot,
    spk_pre,
    nspk_pre,
    spk_post,
    nspk_post,
    x_pre,
    x_post,
    k_plus,
    k_minus,
    a_plus,
    a_minus,
    w_min,
    w_max,
):
    """Trace STDP for batch 1: decay traces, depress the rows of this step's presynaptic
    spikes, potentiate the columns of its postsynaptic spikes through the column index, then
    add the spikes to the traces. Spikes come as lists (neuron ids)."""
    capacity = w.shape[1]
    x_pre *= k_plus
    x_post *= k_minus
    for e in range(nspk_pre[0]):
        i = spk_pre[e]
        for s in range(row_length[i]):
            w[i, s] = min(max(w[i, s] - a_minus * x_post[ind[i, s]], w_min), w_max)
    flat = w.reshape(-1)
    for e in range(nspk_post[0]):
        j = spk_post[e]
        for c in range(col_indptr[j], col_indptr[j + 1]):
            slot = col_slot[c]
            flat[slot] = min(max(flat[slot] + a_plus * x_pre[slot // capacity], w_min), w_max)
    for e in range(nspk_pre[0]):
        x_pre[spk_pre[e]] += 1
    for e in range(nspk_post[0]):
        x_post[spk_post[e]] += 1
