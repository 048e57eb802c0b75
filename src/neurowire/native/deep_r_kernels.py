"""Numba kernels of DEEP R's fused CPU pass (:class:`~neurowire.DeepR`).

The sign test, GeNN's row placement and the sign look-up of new synapses, loop by loop on
numpy views of the store's arrays; the removal and the append themselves are the store's
:meth:`~neurowire.RaggedSynapses.replace_native`. ``tests/structural/test_deep_r_fused.py``
checks that the fused pass gives exactly the stores of the reference path.
"""

from __future__ import annotations

from numba import njit


@njit(cache=True, nogil=True)
def crossed_slots(weight, sign, length, gone, removed):
    """DEEP R's sign test on ``[n_pre, capacity]`` arrays: ``gone[i, j]`` is True where the
    live slot ``j < length[i]`` has ``weight * sign < 0`` (False elsewhere, padding too);
    ``removed[i]`` counts them per row. Returns the total."""
    total = 0
    for i in range(weight.shape[0]):
        c = 0
        for j in range(weight.shape[1]):
            hit = j < length[i] and weight[i, j] * sign[i, j] < 0
            gone[i, j] = hit
            c += hit
        removed[i] = c
        total += c
    return total


@njit(cache=True, nogil=True)
def pair_signs(bits, pre, post, out):
    """``out[k]`` = -1 (int8) where the packed sign bit of ``(pre[k], post[k])`` is set
    (bit ``post % 8``, LSB first, of byte ``post // 8`` of row ``pre``), else +1."""
    for k in range(pre.shape[0]):
        bit = (bits[pre[k], post[k] >> 3] >> (post[k] & 7)) & 1
        out[k] = 1 - 2 * bit


@njit(cache=True, nogil=True)
def accept_rows(draws, room, counts, need):
    """GeNN's row placement over drawn rows, in order: a draw is accepted if its row has
    room left (``counts[row] < room[row]``; ``counts`` is updated), else rejected, until
    ``need`` draws are accepted or the draws run out. Returns ``(accepted, rejected)``."""
    accepted = rejected = 0
    for e in range(draws.shape[0]):
        if accepted == need:
            break
        row = draws[e]
        if counts[row] < room[row]:
            counts[row] += 1
            accepted += 1
        else:
            rejected += 1
    return accepted, rejected


@njit(cache=True, nogil=True)
def add_signed(grad, sign, alpha, out):
    """``out = grad + alpha * sign`` on ``[n_pre, capacity]`` arrays (``sign`` int8 +1/-1/0,
    ``alpha`` of ``grad``'s dtype): bit for bit what ``torch.add(grad, sign, alpha=alpha)``
    gives, single-threaded."""
    zero = alpha - alpha
    for i in range(grad.shape[0]):
        for j in range(grad.shape[1]):
            s = sign[i, j]
            if s > 0:
                out[i, j] = grad[i, j] + alpha
            elif s < 0:
                out[i, j] = grad[i, j] - alpha
            else:
                out[i, j] = grad[i, j] + zero
