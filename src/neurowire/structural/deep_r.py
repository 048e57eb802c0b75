"""DEEP R: rewiring with a fixed synapse budget for sparse networks trained by gradient descent.

Every *potential* synapse ``(pre, post)`` of a rewired projection has one sign for the whole run
(Bellec et al. 2018; reference/algorithms.md §3). A synapse whose weight crosses zero against
its sign is removed, and exactly as many synapses are added at unconnected pairs, at weight 0
with every other per-synapse variable (Adam moments, traces) 0, so each projection's synapse
count never changes.

The signs are kept as GeNN does: one bit per potential pair (:class:`SignBits`, ``n_pre x
ceil(n_post / 8)`` bytes: 128 KiB for 2,048 x 512). At :meth:`DeepR.setup` every bit is drawn
from the rule's seeded generator, then the bits of the existing synapses are set from their
initial weights (``weight < 0``: negative), so existing synapses keep their sign and a pair never
used before gets a fair coin. Bits never change afterwards, so a pair that is removed and later
re-added keeps its sign.

Two modes:

* ``"genn"`` (default; mlGeNN's ``deep_r.py``, the variant behind Knight et al. 2025's
  numbers, reference/algorithms.md §3.5). Before the optimiser step the L1 term
  ``l1 * sign`` is added to the gradient of every trial, i.e. ``batch_size * l1 * sign`` to the
  batch-summed gradient (mlGeNN applies it per trial, gotcha G10), so it passes through Adam;
  after the step, removal and re-addition. No noise.
* ``"original"`` (Bellec et al. 2018, Algorithm 1). With ``theta = sign * weight`` (the
  magnitude of an active synapse), after the optimiser step
  ``theta <- theta - lr * l1 + sqrt(2 lr T) nu`` with ``nu ~ N(0, 1)`` (noise of variance
  ``2 lr T``, ``T`` the temperature, ``lr`` the optimiser's learning rate), then removal of
  ``theta < 0`` and re-addition.

Where re-added synapses go (``regrow``):

* ``"pair"``: uniformly over all unconnected pairs in rows with free capacity, one at a time
  (Bellec's "uniformly from all dormant connections", limited by the row capacity). Drawn
  exactly with multivariate hypergeometric row counts (rows weighted by their unconnected
  pairs), then uniform free columns per row.
* ``"row"``: GeNN's placement: a uniformly random row, accepted if it has a free slot (a full
  row counts as one failed placement and the draw is repeated), then a uniform free column.

Both count failed placements per call (``removed - added``, plus GeNN's retries in ``"row"``
mode); with the removed synapses' slots free, both always place every synapse.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .base import RuleContext, StructuralRule
from .view import SynapseView

MODES = ("genn", "original")
REGROW = ("pair", "row")


class SignBits:
    """One fixed sign bit per potential pair ``(pre, post)``, packed 8 to a byte.

    Shapes: ``bits`` uint8 ``[n_pre, ceil(n_post / 8)]``, bit ``post % 8`` (LSB first) of byte
    ``post // 8`` of row ``pre``; a set bit means a negative (inhibitory) sign.
    """

    def __init__(self, bits: Tensor, n_post: int) -> None:
        if bits.dtype != torch.uint8 or bits.dim() != 2 or bits.shape[1] != -(-n_post // 8):
            raise ValueError(
                f"sign bits must be uint8 [n_pre, {-(-n_post // 8)}], got {bits.dtype} "
                f"{tuple(bits.shape)}"
            )
        self.bits, self.n_post = bits, n_post

    @classmethod
    def random(
        cls, n_pre: int, n_post: int, rng: np.random.Generator, device: torch.device
    ) -> SignBits:
        """Fair-coin signs for every pair, from ``rng``."""
        raw = rng.integers(0, 256, size=(n_pre, -(-n_post // 8)), dtype=np.uint8)
        return cls(torch.from_numpy(raw).to(device), n_post)

    @property
    def n_pre(self) -> int:
        return self.bits.shape[0]

    def negative(self, pre: Tensor, post: Tensor) -> Tensor:
        """bool, shape of ``pre``: whether the pair's sign is negative."""
        byte = self.bits[pre, torch.div(post, 8, rounding_mode="floor")]
        return ((byte >> (post % 8).to(torch.uint8)) & 1).bool()

    def set(self, pre: Tensor, post: Tensor, negative: Tensor) -> None:
        """Set the signs of distinct pairs (unpacks and repacks the rows involved)."""
        if pre.numel() == 0:
            return
        rows, local = torch.unique(pre, return_inverse=True)
        unpacked = self._unpack(self.bits[rows])
        unpacked[local, post] = negative.to(torch.uint8)
        self.bits[rows] = self._pack(unpacked)

    def dense(self) -> Tensor:
        """bool ``[n_pre, n_post]`` (for tests and inspection; it is n_pre x n_post bytes)."""
        return self._unpack(self.bits)[:, : self.n_post].bool()

    def _unpack(self, bits: Tensor) -> Tensor:
        shifts = torch.arange(8, dtype=torch.uint8, device=bits.device)
        return ((bits[..., None] >> shifts) & 1).reshape(bits.shape[0], -1)

    @staticmethod
    def _pack(unpacked: Tensor) -> Tensor:
        weights = (1 << torch.arange(8, device=unpacked.device)).to(torch.int32)
        grouped = unpacked.reshape(unpacked.shape[0], -1, 8).to(torch.int32)
        return (grouped * weights).sum(-1).to(torch.uint8)


def _rank_in_row_np(rows: np.ndarray) -> np.ndarray:
    """Position of each entry among the earlier entries with the same value."""
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    start = np.ones(rows.size, dtype=bool)
    start[1:] = sorted_rows[1:] != sorted_rows[:-1]
    idx = np.arange(rows.size)
    first = np.maximum.accumulate(np.where(start, idx, 0))
    rank = np.empty_like(idx)
    rank[order] = idx - first
    return rank


def place_by_pair(
    rng: np.random.Generator, dormant: np.ndarray, room: np.ndarray, n: int
) -> tuple[np.ndarray, int]:
    """Row counts of ``n`` placements drawn one at a time uniformly over the unconnected pairs
    of rows that still have room.

    Args:
        dormant: int ``[n_pre]`` unconnected (eligible) pairs per row.
        room: int ``[n_pre]`` free slots per row.

    Returns ``(counts [n_pre], failed)``. Exact: taking the first ``n`` pairs of a uniformly
    random order of all dormant pairs and skipping those whose row has filled up is the same as
    drawing hypergeometric row counts, capping full rows and redrawing the excess among the
    pairs not yet drawn of the other rows.
    """
    pool = np.where(room > 0, dormant, 0).astype(np.int64)
    counts = np.zeros_like(pool)
    need = int(n)
    while need > 0 and pool.sum() > 0:
        draw = rng.multivariate_hypergeometric(pool, min(need, int(pool.sum())), method="marginals")
        take = np.minimum(draw, room - counts)
        counts += take
        need -= int(take.sum())
        pool -= draw
        pool[counts >= room] = 0
    return counts, need


def place_by_row(rng: np.random.Generator, room: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """Row counts of ``n`` placements by GeNN's rule: draw a uniform row, accept it if it has
    room left, else count a failure and draw again.

    Args:
        room: int ``[n_pre]`` places left per row (free slots, at most the unconnected pairs).

    Returns ``(counts [n_pre], failed)``, ``failed`` the rejected draws (plus any placements
    impossible because no row has room). A draw is accepted exactly when fewer draws of its row
    came before it than the row has room, so a whole sequence of draws is judged at once.
    """
    n_pre = room.size
    counts = np.zeros(n_pre, dtype=np.int64)
    need, failed = int(n), 0
    while need > 0:
        if int(room.sum() - counts.sum()) <= 0:
            return counts, failed + need
        draws = rng.integers(0, n_pre, size=max(2 * need, 64))
        ok = (_rank_in_row_np(draws) + counts[draws]) < room[draws]
        accepted = np.cumsum(ok)
        if accepted[-1] >= need:
            stop = int(np.searchsorted(accepted, need)) + 1
            draws, ok = draws[:stop], ok[:stop]
        counts += np.bincount(draws[ok], minlength=n_pre)
        failed += int((~ok).sum())
        need -= int(ok.sum())
    return counts, failed


class DeepR(StructuralRule):
    """DEEP R (Bellec et al. 2018) for e-prop training: fixed signs, exact synapse budget.

    Give it to ``nw.EProp(rewiring={projection: nw.DeepR(...)})``; it runs once per training
    batch (see the module docstring for the order of operations in each mode).

    Args:
        l1: L1 strength. ``"genn"``: per trial, added as ``l1 * sign`` to every trial's
            gradient (mlGeNN's convention; the paper's values 0.01-0.5 carry over).
            ``"original"``: per optimiser step, ``theta -= lr * l1``.
        mode: ``"genn"`` or ``"original"``.
        regrow: ``"pair"`` (uniform over unconnected pairs in rows with room) or ``"row"``
            (GeNN: uniform row with room, then a uniform free column).
        temperature: ``T`` of ``"original"`` mode (noise variance ``2 lr T`` per step); must
            be 0 in ``"genn"`` mode, which has no noise.
        lr: learning rate of the ``"original"`` update; None takes the trainer's
            (``ctx.learning_rate``).

    State: :attr:`signs` ``{projection name: SignBits}`` (every potential pair), and the store
    variable ``sign`` (int8, +1/-1 on every live synapse, 0 on padding) that caches each
    synapse's bit so a batch costs no bit look-ups; re-added synapses take their pair's bit.
    """

    def __init__(
        self,
        l1: float = 0.01,
        mode: str = "genn",
        regrow: str = "pair",
        temperature: float = 0.0,
        lr: float | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"DeepR mode must be one of {MODES}, got {mode!r}")
        if regrow not in REGROW:
            raise ValueError(f"DeepR regrow must be one of {REGROW}, got {regrow!r}")
        for name, value in (("l1", l1), ("temperature", temperature)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"DeepR {name} must be a number, got {value!r}")
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"DeepR {name} must be finite and >= 0, got {value}")
        if mode == "genn" and temperature != 0:
            raise ValueError(
                "DeepR mode='genn' has no noise; temperature > 0 needs mode='original'"
            )
        if lr is not None and not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"DeepR lr must be None or finite and >= 0, got {lr}")
        self.l1, self.mode, self.regrow = float(l1), mode, regrow
        self.temperature = float(temperature)
        self.lr = None if lr is None else float(lr)
        self._signs: dict[str, SignBits] = {}

    @property
    def signs(self) -> dict[str, SignBits]:
        """``{projection name: SignBits}`` of the projections this rule has been set up on."""
        return self._signs

    # ------------------------------------------------------------------ hooks
    def setup(self, view: SynapseView, ctx: RuleContext) -> None:
        """Draw the sign bits (unless restored) and register the store variable ``sign``."""
        s = view.store
        if s.vars["weight"].dim() != 2:
            raise ValueError(f"DeepR: projection {s.name!r} has a batched weight")
        if s.name not in self._signs:
            signs = SignBits.random(s.n_pre, s.n_post, ctx.rng, s.device)
            pre, post = s.coo()
            signs.set(pre, post, s.values("weight") < 0)
            self._signs[s.name] = signs
        if "sign" not in s.vars:
            pre, post = s.coo()
            s.add_var("sign", init=self._sign_values(s.name, pre, post), dtype=torch.int8)

    def _bits(self, store) -> SignBits:
        signs = self._signs.get(store.name)
        if signs is None:
            raise ValueError(f"DeepR was not set up on projection {store.name!r}")
        if signs.bits.device != store.device:
            signs.bits = signs.bits.to(store.device)
        if signs.n_pre != store.n_pre or signs.n_post != store.n_post:
            raise ValueError(
                f"DeepR: signs of {store.name!r} are {signs.n_pre} x {signs.n_post}, the "
                f"projection is {store.n_pre} x {store.n_post}"
            )
        return signs

    def _sign_values(self, name: str, pre: Tensor, post: Tensor) -> Tensor:
        """int8 +-1 per pair, from the bits."""
        signs = self._signs[name]
        if signs.bits.device.type == "cpu":  # a few numpy ops instead of torch ones
            p, q = pre.numpy(), post.numpy()
            bit = (signs.bits.numpy()[p, q >> 3] >> (q & 7).astype(np.uint8)) & 1
            return torch.from_numpy(1 - 2 * bit.astype(np.int8))
        negative = signs.negative(pre, post)
        return torch.where(negative, -1, 1).to(torch.int8)

    def adjust_gradient(self, view: SynapseView, grad: Tensor, ctx: RuleContext) -> Tensor:
        """``"genn"``: add ``batch_size * l1 * sign`` on every live synapse."""
        if self.mode != "genn" or self.l1 == 0:
            return grad
        sign = view["sign"]  # +-1 on live synapses, 0 on padding
        return grad.add(sign.to(grad.dtype), alpha=self.l1 * ctx.batch_size)

    def update(self, view: SynapseView, ctx: RuleContext) -> None:
        """Remove the synapses whose weight crossed zero against their sign, re-add as many."""
        s = view.store
        self._bits(s)
        if self.mode == "original":
            self._langevin_step(view, ctx)
        crossed = (s.vars["weight"] * view["sign"]) < 0  # padding: sign 0, never crossed
        if not bool(crossed.any()):
            return
        removed = int(view.remove(crossed).sum())
        self.regrow_synapses(view, removed, ctx)

    def _langevin_step(self, view: SynapseView, ctx: RuleContext) -> None:
        lr = self.lr if self.lr is not None else ctx.learning_rate
        if lr is None:
            raise ValueError("DeepR mode='original' needs lr= outside a trainer")
        w = view.store.vars["weight"]
        sign = view["sign"].to(w.dtype)
        step = torch.full_like(w, -lr * self.l1)
        if self.temperature > 0:
            noise = torch.randn(w.shape, generator=ctx.generator, device=w.device, dtype=w.dtype)
            step += math.sqrt(2.0 * lr * self.temperature) * noise
        w.addcmul_(sign, step)  # theta = sign * w moves by step; padding (sign 0) untouched
        view.store.values_changed()

    def regrow_synapses(self, view: SynapseView, n: int, ctx: RuleContext) -> None:
        """Add ``n`` synapses at weight 0 (every other variable 0, ``sign`` from the pair's
        bit) where :attr:`regrow` says; failed placements are added to ``view.failed``."""
        s = view.store
        length = s.row_length.cpu().numpy()
        dormant = np.maximum(s.n_post - length - (0 if s.autapses else 1), 0)
        room = np.minimum(s.capacity - length, dormant)
        if self.regrow == "pair":
            counts, failed = place_by_pair(ctx.rng, dormant, room, n)
        else:
            counts, failed = place_by_row(ctx.rng, room, n)
        view.failed += failed
        rows = np.repeat(np.arange(s.n_pre), counts)
        if rows.size == 0:
            return
        post = self._columns(ctx.rng, s, rows)
        pre_t = torch.from_numpy(rows).to(s.device)
        post_t = torch.from_numpy(post).to(s.device)
        view.add(pre_t, post_t, weight=0.0, sign=self._sign_values(s.name, pre_t, post_t))

    @staticmethod
    def _columns(rng, s, rows: np.ndarray) -> np.ndarray:
        """Distinct uniformly drawn unconnected columns for ``rows`` (sorted), by rejection in
        the numba kernel :func:`~neurowire.native.store_kernels.draw_free_columns`; rows always
        have a free column, so a longer stream of uniforms is drawn until it suffices."""
        from ..native.store_kernels import draw_free_columns

        ind, length = s.ind.cpu().numpy(), s.row_length.cpu().numpy()
        post = np.empty(rows.size, dtype=np.int64)
        n = 4 * rows.size + 64
        while draw_free_columns(rows, ind, length, s.n_post, s.autapses, rng.random(n), post) < 0:
            n *= 4
        return post

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        return {
            "signs": {name: b.bits.cpu().clone() for name, b in self._signs.items()},
            "n_post": {name: b.n_post for name, b in self._signs.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            bits, n_post = state["signs"], state["n_post"]
            self._signs = {
                name: SignBits(torch.as_tensor(b), int(n_post[name])) for name, b in bits.items()
            }
        except (KeyError, TypeError) as err:
            raise ValueError(f"DeepR: bad saved state ({err})") from None
