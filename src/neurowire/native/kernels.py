"""Fixed numba kernels of the native CPU engine: spike delivery and external spike input.

They hold no model equations: neuron, postsynaptic and STDP kernels are generated from the
models' definitions (:mod:`.codegen`). ``tests/test_native_engine.py`` checks whole simulations
against the eager engine. Arrays are ``[B, n]`` unless stated.
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


# ---------------------------------------------------------------------------- inputs


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
