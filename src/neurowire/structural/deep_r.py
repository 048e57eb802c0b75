"""DEEP R: rewiring with a fixed synapse budget for sparse networks trained by gradient descent.

Every *potential* synapse ``(pre, post)`` of a rewired projection has one sign for the whole run
(Bellec et al. 2018, "Deep rewiring"). A synapse whose weight crosses zero against
its sign is removed, and exactly as many synapses are added at unconnected pairs, at weight 0
with every other per-synapse variable (Adam moments, traces) 0, so each projection's synapse
count stays at its budget.

The synapse budget. Each projection's budget ``K`` is its synapse count when the rule is set up
(:attr:`DeepR.budget`; saved with the rule's state). Bellec et al.'s algorithm keeps exactly
``K`` connections active, so when synapses were deleted from outside the rule (a lesion,
:func:`~neurowire.structural.lesions.lesion`) the next call re-adds the missing ones too, placed
as every re-added synapse is (``regrow``, below) at weight 0: after a lesion DEEP R restores the
original count, not the reduced one, and the network relearns with it. The refill draws its two
stream keys from the rule's generator only when something is missing, so a run without a lesion
draws exactly as before. A projection holding more than ``K`` synapses keeps them; placements
that find no room count as failed and are retried at the next call.

The signs are kept as GeNN does: one bit per potential pair (:class:`SignBits`, ``n_pre x
ceil(n_post / 8)`` bytes: 128 KiB for 2,048 x 512). At :meth:`DeepR.setup` every bit is drawn
from the rule's seeded generator, then the bits of the existing synapses are set from their
initial weights (``weight < 0``: negative), so existing synapses keep their sign and a pair never
used before gets a fair coin. Bits never change afterwards, so a pair that is removed and later
re-added keeps its sign.

Two modes:

* ``"genn"`` (default; mlGeNN's ``deep_r.py``, the variant behind Knight et al. 2025's
  numbers). Before the optimiser step the L1 term
  ``l1 * sign`` is added to the gradient of every trial, i.e. ``batch_size * l1 * sign`` to the
  batch-summed gradient (mlGeNN applies it per trial), so it passes through Adam;
  after the step, removal and re-addition. No noise.
* ``"original"`` (Bellec et al. 2018, Algorithm 1). With ``theta = sign * weight`` (the
  magnitude of an active synapse), after the optimiser step
  ``theta <- theta - lr * l1 + sqrt(2 lr T) nu`` with ``nu ~ N(0, 1)`` (noise of variance
  ``2 lr T``, ``T`` the temperature, ``lr`` the optimiser's learning rate), then removal of
  ``theta < 0`` and re-addition.

The scale of ``l1`` in ``"genn"`` mode. The trainer hands the rule ``G``, the gradient summed
over the ``B`` trials of the batch (``G = B g``, ``g`` the mean per-trial gradient of a
synapse); Adam then steps with ``G + B l1 sign``. Adam's step does not change when its
gradient is scaled, so what decides the direction is ``l1`` against ``|g|``: a synapse whose
mean task gradient is small next to ``l1`` is pulled towards zero, one whose gradient is much
larger barely feels the term. The learning rate only sets the pace: Adam moves a weight by
about ``lr`` per batch at most (exactly ``lr`` for a constant gradient; the worst case is
``(1 - beta1) / sqrt(1 - beta2) * lr``), so a pulled synapse of weight ``w`` is removed after
about ``|w| / lr`` batches, and a larger ``lr`` rewires faster without changing which
synapses are pulled. The batch size leaves the comparison of ``l1`` with the mean gradient
unchanged, but the noise of ``g`` falls as ``1 / sqrt(B)``, so at larger batches synapses
without a consistent task gradient lose to ``l1`` more often; and a fixed number of trials
then makes fewer optimiser steps, hence fewer ``lr``-sized moves per epoch. (In
``"original"`` mode ``theta`` shrinks by ``lr * l1`` per step, outside the optimiser and
independent of ``B``.) ``l1="auto"`` leaves the value to be chosen on a validation split by
the trainer's ``fit()`` or :func:`neurowire.learning.select_l1` (:meth:`DeepR.resolve_l1`).

Where re-added synapses go (``regrow``):

* ``"pair"``: uniformly over all unconnected pairs in rows with free capacity, one at a time
  (Bellec's "uniformly from all dormant connections", limited by the row capacity). Drawn
  exactly, by rejection over one ticket per unconnected pair (rows weighted by their
  unconnected pairs), then uniform free columns per row.
* ``"row"``: GeNN's placement: a uniformly random row, accepted if it has a free slot (a full
  row counts as one failed placement and the draw is repeated), then a uniform free column.

Both count failed placements per call (``removed - added``, plus GeNN's retries in ``"row"``
mode); with the removed synapses' slots free, both always place every synapse. A call's
placements and its new columns come from two counter-based streams (:mod:`neurowire.rng`)
keyed by raw draws of the rule's seeded numpy generator (:func:`stream_keys`).

On the CPU, removal and re-addition are one fused pass per call: the sign test with the
placements in one numba call (:func:`~neurowire.native.deep_r_kernels.plan_rewiring`), then a
single numba edit of the store that compacts the rows and appends the new synapses with all
their variables: :func:`~neurowire.native.deep_r_kernels.rewire_rows`, which checks the edit
before it writes as :meth:`~neurowire.RaggedSynapses.replace_native` does and gives the same
store, on the numpy views of :meth:`~neurowire.RaggedSynapses.native_layout` (a view that logs
events goes through :meth:`SynapseView.replace_native`, which records them). It draws from
the rule's generators exactly as the reference path (``fused=False``, and CUDA stores:
``view.remove``, then :meth:`DeepR.regrow_synapses` through the store's ``add``), so both give
the same store. A fused call raises only before it changes anything, so the runner copies no
store for it (:meth:`~neurowire.structural.base.StructuralRule.atomic`).
"""

from __future__ import annotations

import functools
import math
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..errors import CapacityError
from ..store import NativeLayout, RaggedSynapses
from .base import RuleContext, StructuralRule
from .view import SynapseView

MODES = ("genn", "original")
REGROW = ("pair", "row")
_FLOATS = (torch.float32, torch.float64)


@functools.cache
def _kernels() -> ModuleType:
    """:mod:`neurowire.native.deep_r_kernels` (imported on first use: numba is optional)."""
    from ..native import deep_r_kernels

    return deep_r_kernels


def _non_negative(name: str, value: Any, kind: str) -> float:
    """``value`` as a float, if it is a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"DeepR {name} must be {kind}, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"DeepR {name} must be finite and >= 0, got {value}")
    return float(value)


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


class FusedArrays(NamedTuple):
    """What the fused pass reads and writes of one store, kept between calls
    (:meth:`DeepR.fused_arrays`): numpy views of the store's
    :meth:`~neurowire.RaggedSynapses.native_layout` and of the sign bits, and scratch.

    ``signs`` is the bits tensor they were made for, ``bits`` its uint8
    ``[n_pre, ceil(n_post / 8)]``; scratch ``gone`` bool ``[n_pre, capacity]`` and ``counts``
    int64 ``[n_pre]``. ``plan`` holds the arguments of
    :func:`~neurowire.native.deep_r_kernels.plan_rewiring` before ``pair_mode``, ``edit``
    those of :func:`~neurowire.native.deep_r_kernels.rewire_rows` before ``key``.
    """

    layout: NativeLayout
    signs: Tensor
    bits: np.ndarray
    gone: np.ndarray
    counts: np.ndarray
    plan: tuple
    edit: tuple


def stream_keys(rng: np.random.Generator) -> np.ndarray:
    """uint64 ``[2]``: the keys of a call's two counter-based streams (:mod:`neurowire.rng`),
    placements then columns: two raw 64-bit draws of ``rng``."""
    return rng.bit_generator.random_raw(2)


def place_by_pair(
    key: int, dormant: np.ndarray, room: np.ndarray, n: int
) -> tuple[np.ndarray, int]:
    """Row counts of ``n`` placements drawn one at a time uniformly over the unconnected pairs
    of rows that still have room, from the stream ``key``
    (:func:`~neurowire.native.deep_r_kernels.place_pairs`).

    Args:
        dormant: int ``[n_pre]`` unconnected (eligible) pairs per row.
        room: int ``[n_pre]`` free slots per row (at most ``dormant``).

    Returns ``(counts [n_pre], failed)``; ``failed`` placements found no row with room.
    """
    from ..native.deep_r_kernels import place_pairs

    dormant = np.ascontiguousarray(dormant, dtype=np.int64)
    room = np.ascontiguousarray(room, dtype=np.int64)
    counts = np.zeros(room.size, dtype=np.int64)
    failed = place_pairs(np.uint64(key), dormant, room, int(n), counts)
    return counts, int(failed)


def place_by_row(key: int, room: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """Row counts of ``n`` placements by GeNN's rule: draw a uniform row, accept it if it has
    room left, else count a failure and draw again, from the stream ``key``
    (:func:`~neurowire.native.deep_r_kernels.place_rows`).

    Args:
        room: int ``[n_pre]`` places left per row (free slots, at most the unconnected pairs).

    Returns ``(counts [n_pre], failed)``, ``failed`` the rejected draws (plus any placements
    impossible because no row has room).
    """
    from ..native.deep_r_kernels import place_rows

    room = np.ascontiguousarray(room, dtype=np.int64)
    counts = np.zeros(room.size, dtype=np.int64)
    failed = place_rows(np.uint64(key), room, int(n), counts)
    return counts, int(failed)


class DeepR(StructuralRule):
    """DEEP R (Bellec et al. 2018) for e-prop training: fixed signs, exact synapse budget.

    Give it to ``nw.EProp(rewiring={projection: nw.DeepR(...)})``; it runs once per training
    batch (see the module docstring for the order of operations in each mode).

    Args:
        l1: L1 strength, a number >= 0 or ``"auto"``. ``"genn"`` mode: *per trial*; the rule
            adds ``batch_size * l1 * sign`` to the batch-summed gradient before the optimiser
            step (mlGeNN's convention; the paper's values 0.01-0.5 carry over). With Adam the
            pull towards zero therefore depends on ``l1`` against the mean per-trial gradient
            of each synapse, and every step is bounded by about ``lr`` (see the module
            docstring). ``"original"`` mode: per optimiser step, ``theta -= lr * l1``.
            ``"auto"``: chosen later (:attr:`l1` is None, :attr:`l1_auto` True) by the
            trainer's ``fit()`` on a validation split, by
            :func:`neurowire.learning.select_l1`, or with :meth:`resolve_l1`; the rule can be
            set up before that but not run.
        mode: ``"genn"`` or ``"original"``.
        regrow: ``"pair"`` (uniform over unconnected pairs in rows with room) or ``"row"``
            (GeNN: uniform row with room, then a uniform free column).
        temperature: ``T`` of ``"original"`` mode (noise variance ``2 lr T`` per step); must
            be 0 in ``"genn"`` mode, which has no noise.
        lr: learning rate of the ``"original"`` update; None takes the trainer's
            (``ctx.learning_rate``).
        fused: rewire CPU stores in one fused numba pass (the store's
            :meth:`~neurowire.RaggedSynapses.replace_native`); False, CUDA stores and stores
            without native kernels take the reference path (``view.remove``, then
            :meth:`regrow_synapses`). Both give the same store from the same generator state.

    State: :attr:`signs` ``{projection name: SignBits}`` (every potential pair), :attr:`budget`
    ``{projection name: K}`` (the count each call restores), and the store
    variable ``sign`` (int8, +1/-1 on every live synapse, 0 on padding) that caches each
    synapse's bit so a batch costs no bit look-ups; re-added synapses take their pair's bit.
    """

    def __init__(
        self,
        l1: float | str = 0.01,
        mode: str = "genn",
        regrow: str = "pair",
        temperature: float = 0.0,
        lr: float | None = None,
        fused: bool = True,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"DeepR mode must be one of {MODES}, got {mode!r}")
        if regrow not in REGROW:
            raise ValueError(f"DeepR regrow must be one of {REGROW}, got {regrow!r}")
        self.l1_auto = isinstance(l1, str) and l1 == "auto"
        self.l1 = None if self.l1_auto else _non_negative("l1", l1, "a number or 'auto'")
        self.temperature = _non_negative("temperature", temperature, "a number")
        if mode == "genn" and self.temperature != 0:
            raise ValueError(
                "DeepR mode='genn' has no noise; temperature > 0 needs mode='original'"
            )
        if lr is not None and not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"DeepR lr must be None or finite and >= 0, got {lr}")
        self.mode, self.regrow = mode, regrow
        self.lr = None if lr is None else float(lr)
        self.fused = bool(fused)
        self._signs: dict[str, SignBits] = {}
        self._budget: dict[str, int] = {}
        self._arrays: dict[str, FusedArrays] = {}

    def resolve_l1(self, value: float) -> None:
        """Set the L1 strength (per trial, see :class:`DeepR`) of a rule made with
        ``l1="auto"``, or replace a given one; ``value`` must be a finite number >= 0."""
        self.l1 = _non_negative("l1", value, "a number")

    def _l1(self) -> float:
        """The L1 strength; raises ``ValueError`` while ``l1="auto"`` is unresolved."""
        if self.l1 is None:
            raise ValueError(
                'DeepR(l1="auto") has no L1 yet: it is chosen on a validation split by the '
                "trainer's fit(), or by neurowire.learning.select_l1(trainer, train), or set "
                "with rule.resolve_l1(value)"
            )
        return self.l1

    @property
    def signs(self) -> dict[str, SignBits]:
        """``{projection name: SignBits}`` of the projections this rule has been set up on."""
        return self._signs

    @property
    def budget(self) -> dict[str, int]:
        """``{projection name: K}``: the synapse count each call restores, the projection's
        count when the rule was set up on it (see the module docstring)."""
        return dict(self._budget)

    # ------------------------------------------------------------------ hooks
    def setup(self, view: SynapseView, ctx: RuleContext) -> None:
        """Draw the sign bits (unless restored), record the synapse budget (unless restored:
        the store's count now), register the store variable ``sign`` and load the fused pass's
        kernels (:meth:`_load_kernels`)."""
        s = view.store
        if s.vars["weight"].dim() != 2:
            raise ValueError(f"DeepR: projection {s.name!r} has a batched weight")
        self._budget.setdefault(s.name, s.nnz)
        if s.name not in self._signs:
            signs = SignBits.random(s.n_pre, s.n_post, ctx.rng, s.device)
            pre, post = s.coo()
            signs.set(pre, post, s.values("weight") < 0)
            self._signs[s.name] = signs
        if "sign" not in s.vars:
            pre, post = s.coo()
            s.add_var("sign", init=self._sign_values(s.name, pre, post), dtype=torch.int8)
        arrays = self.fused_arrays(s)
        if arrays is not None:
            self._load_kernels(arrays)

    def _load_kernels(self, a: FusedArrays) -> None:
        """Compile the fused pass's kernels for the types of its arrays ``a``, or load them from
        numba's cache, now rather than in the first training batch (the gradient of
        :meth:`adjust_gradient` has the weight's type)."""
        k, key = _kernels(), np.uint64(0)
        k.load(k.plan_rewiring, *a.plan, self.regrow == "pair", key, a.gone, a.counts)
        k.load(k.rewire_rows, *a.edit, key)
        if self.mode == "genn":
            weight, sign = a.plan[:2]
            k.load(k.add_signed, weight, sign, 0.0)

    def atomic(self, view: SynapseView) -> bool:
        """True for the fused pass in ``"genn"`` mode on a store that holds its budget: its
        only change is one numba edit of the store, made after every check (:meth:`_edit_fused`,
        or :meth:`~neurowire.RaggedSynapses.replace_native` for a view that logs events). A
        store below its budget is refilled by a second edit (:meth:`_missing`)."""
        s = view.store
        return self.mode == "genn" and self.fused and s.native_edits and not self._missing(s)

    def _missing(self, store: RaggedSynapses) -> int:
        """Synapses the store lacks to reach its budget (0 when it holds it or more)."""
        return max(self._budget.get(store.name, 0) - store.nnz, 0)

    def fused_arrays(self, store: RaggedSynapses) -> FusedArrays | None:
        """The fused pass's arrays of ``store``, or None where it takes the reference path
        (``fused=False``, no native layout). Raises ``ValueError`` unless the rule was set up
        on ``store`` (:meth:`_bits`). Rebuilt when the store's layout or the bits tensor is
        another object."""
        layout = store.native_layout() if self.fused else None
        cached = self._arrays.get(store.name)
        signs = self._signs.get(store.name)
        if (
            cached is not None
            and cached.layout is layout
            and signs is not None
            and cached.signs is signs.bits
        ):
            return cached
        signs = self._bits(store)
        if layout is None:
            self._arrays.pop(store.name, None)  # let the arrays it views go
            return None
        bits, sign, length = signs.bits.numpy(), layout.vars["sign"], layout.length
        gone = np.empty((store.n_pre, store.capacity), dtype=np.bool_)
        counts, removed = np.empty(store.n_pre, dtype=np.int64), np.empty_like(length)
        others = tuple(v for name, v in layout.vars.items() if name != "sign")
        n_post, autapses = store.n_post, store.autapses
        arrays = FusedArrays(
            layout,
            signs.bits,
            bits,
            gone,
            counts,
            (layout.vars["weight"][0], sign[0], length, n_post, autapses),
            (bits, layout.ind, sign, others, length, gone, counts, removed, n_post, autapses),
        )
        self._arrays[store.name] = arrays
        return arrays

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
        l1 = self._l1()
        if self.mode != "genn" or l1 == 0:
            return grad
        alpha = l1 * ctx.batch_size
        layout = view.store.native_layout() if self.fused else None
        if layout is not None and grad.dtype in _FLOATS:
            sign = layout.vars["sign"][0]  # int8: +-1 on live synapses, 0 on padding
            a = grad.numpy()  # any strides: the kernel goes element by element
            if a.shape == sign.shape:  # single-threaded, bit for bit the addition below
                return torch.from_numpy(_kernels().add_signed(a, sign, alpha))
        return grad.add(view["sign"], alpha=alpha)

    def update(self, view: SynapseView, ctx: RuleContext) -> None:
        """Remove the synapses whose weight crossed zero against their sign, re-add as many,
        then re-add any that the store lacks to reach its :attr:`budget`.

        Every call draws two stream keys from ``ctx.rng`` (:func:`stream_keys`: placements,
        then columns), used or not, so both paths consume it alike; a refill draws two more."""
        self._l1()
        s = view.store
        arrays = self.fused_arrays(s)
        if self.mode == "original":
            self._langevin_step(view, ctx)
        keys = stream_keys(ctx.rng)
        if arrays is not None:
            self._rewire_fused(view, arrays, keys)
        else:
            crossed = (s.vars["weight"] * view["sign"]) < 0  # padding: sign 0, never crossed
            if bool(crossed.any()):
                removed = int(view.remove(crossed).sum())
                self.regrow_synapses(view, removed, ctx, (int(keys[0]), int(keys[1])))
        missing = self._missing(s)
        if missing:
            self.regrow_synapses(view, missing, ctx)

    def _rewire_fused(self, view: SynapseView, a: FusedArrays, keys: np.ndarray) -> None:
        """The fused pass: the sign test and the placements in one numba call
        (:func:`~neurowire.native.deep_r_kernels.plan_rewiring`), then removal and
        re-addition in one (:meth:`_edit_fused`, or :meth:`SynapseView.replace_native` for a
        view that logs events)."""
        k = _kernels()
        removed, failed = k.plan_rewiring(*a.plan, self.regrow == "pair", keys[0], a.gone, a.counts)
        if removed == 0:
            return
        view.failed += failed
        if view.log_events:

            def new_signs(pre: np.ndarray, post: np.ndarray) -> dict[str, np.ndarray]:
                out = np.empty(pre.size, dtype=np.int8)
                k.pair_signs(a.bits, pre, post, out)
                return {"sign": out}

            view.replace_native(a.gone, a.counts, keys[1], new_signs)
            return
        view.added += self._edit_fused(view.store, a, keys[1])
        view.removed += removed

    @staticmethod
    def _edit_fused(s: RaggedSynapses, a: FusedArrays, key: np.uint64) -> int:
        """Remove the slots ``a.gone`` and add ``a.counts`` synapses per row in one numba call
        (:func:`~neurowire.native.deep_r_kernels.rewire_rows`); returns the synapses added.
        Raises (:class:`~neurowire.errors.StoreError`) only before it changes anything."""
        added = s.run_native_edit(_kernels().rewire_rows, *a.edit, key)
        if added < 0:  # excluded by plan_rewiring
            raise CapacityError(f"{s.name}: DeepR placed a synapse in a row without room")
        return added

    def _langevin_step(self, view: SynapseView, ctx: RuleContext) -> None:
        lr = self.lr if self.lr is not None else ctx.learning_rate
        if lr is None:
            raise ValueError("DeepR mode='original' needs lr= outside a trainer")
        w = view.store.vars["weight"]
        sign = view["sign"].to(w.dtype)
        step = torch.full_like(w, -lr * self._l1())
        if self.temperature > 0:
            noise = torch.randn(w.shape, generator=ctx.generator, device=w.device, dtype=w.dtype)
            step += math.sqrt(2.0 * lr * self.temperature) * noise
        w.addcmul_(sign, step)  # theta = sign * w moves by step; padding (sign 0) untouched
        view.store.values_changed()

    def _placements(self, key: int, s, length: np.ndarray, n: int) -> tuple[np.ndarray, int]:
        """Row counts ``[n_pre]`` and failures of ``n`` placements by :attr:`regrow` from the
        stream ``key``, for rows of ``length`` live synapses."""
        dormant = np.maximum(s.n_post - length - (0 if s.autapses else 1), 0)
        room = np.minimum(s.capacity - length, dormant)
        if self.regrow == "pair":
            return place_by_pair(key, dormant, room, n)
        return place_by_row(key, room, n)

    def regrow_synapses(
        self, view: SynapseView, n: int, ctx: RuleContext, keys: tuple[int, int] | None = None
    ) -> None:
        """Add ``n`` synapses at weight 0 (every other variable 0, ``sign`` from the pair's
        bit) where :attr:`regrow` says; failed placements are added to ``view.failed`` (the
        reference path's second half). ``keys``: the streams of the placements and of the
        columns (:func:`stream_keys`); None draws both from ``ctx.rng``."""
        if keys is None:
            keys = tuple(int(k) for k in stream_keys(ctx.rng))
        s = view.store
        counts, failed = self._placements(keys[0], s, s.row_length.cpu().numpy(), n)
        view.failed += failed
        rows = np.repeat(np.arange(s.n_pre), counts)
        if rows.size == 0:
            return
        post = self._columns(keys[1], s, rows)
        pre_t = torch.from_numpy(rows).to(s.device)
        post_t = torch.from_numpy(post).to(s.device)
        view.add(pre_t, post_t, weight=0.0, sign=self._sign_values(s.name, pre_t, post_t))

    @staticmethod
    def _columns(key: int, s, rows: np.ndarray) -> np.ndarray:
        """Distinct uniformly drawn unconnected columns for ``rows`` (sorted), by rejection in
        the numba kernel :func:`~neurowire.native.store_kernels.draw_free_columns` from the
        stream ``key``."""
        from ..native.store_kernels import draw_free_columns

        ind, length = s.ind.cpu().numpy(), s.row_length.cpu().numpy()
        gone = np.zeros(ind.shape, dtype=np.bool_)  # no slot is being removed
        post = np.empty(rows.size, dtype=np.int64)
        draw_free_columns(rows, ind, length, gone, s.n_post, s.autapses, np.uint64(key), post)
        return post

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        return {
            "signs": {name: b.bits.cpu().clone() for name, b in self._signs.items()},
            "n_post": {name: b.n_post for name, b in self._signs.items()},
            "budget": dict(self._budget),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`. A state without ``budget`` keeps the budgets of
        :meth:`setup` (the count of the freshly built projection)."""
        try:
            bits, n_post = state["signs"], state["n_post"]
            self._signs = {
                name: SignBits(torch.as_tensor(b), int(n_post[name])) for name, b in bits.items()
            }
            self._budget.update({name: int(k) for name, k in state.get("budget", {}).items()})
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"DeepR: bad saved state ({err})") from None
