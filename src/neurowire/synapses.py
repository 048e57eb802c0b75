"""The mutable sparse synapse store.

:class:`RaggedSynapses` keeps the connectivity of one sparse projection and *every* per-synapse
variable in fixed-capacity ragged rows (GeNN's SPARSE layout, reference/genn-semantics.md §1.2).
Row ``i`` holds the synapses of presynaptic neuron ``i`` in slots ``0 .. row_length[i]-1``;
slots beyond are padding. Every structural change goes through :meth:`RaggedSynapses.remove`,
:meth:`RaggedSynapses.add`, :meth:`RaggedSynapses.grow` or (a removal and additions in one numba
call on the CPU) :meth:`RaggedSynapses.replace_native`, which keep all variables aligned with
their synapse and bump :attr:`RaggedSynapses.version`. Derived views (COO, CSR, column index,
live mask) are caches keyed on that version.

The structure is *sealed*: ``ind`` and ``row_length`` are read-only properties, and a write
into them (or into a cached view) outside ``with store.mutation():`` is detected at the next
derived-view access, which raises :class:`StoreError` instead of answering from stale caches.
Detection uses torch's in-place version counters, so it sees every torch write; writes through
numpy views (numba kernels) are invisible to it, and such code must call ``_changed()``.
Variable values may be written in place (optimisers do); :attr:`RaggedSynapses.values_version`
counts value changes made through the store's API, and in-place writers call
:meth:`RaggedSynapses.values_changed` so that value caches such as :meth:`RaggedSynapses.dense`
refresh.

Removal is *stable*: surviving synapses keep their relative order (unlike GeNN, which swaps the
last synapse of the row into the hole). Additions append to the end of their row in call order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from . import gpu
from .errors import CapacityError, DuplicateSynapseError, StoreError
from .initializers import Initializer

#: numpy dtype of each torch dtype the numba store kernels handle (others take the PyTorch path)
_NUMPY_DTYPES = {
    torch.float32: np.dtype(np.float32),
    torch.float64: np.dtype(np.float64),
    torch.int8: np.dtype(np.int8),
    torch.int16: np.dtype(np.int16),
    torch.int32: np.dtype(np.int32),
    torch.int64: np.dtype(np.int64),
    torch.uint8: np.dtype(np.uint8),
    torch.bool: np.dtype(np.bool_),
}
_NATIVE_DTYPES = frozenset(_NUMPY_DTYPES)


def _store_kernels():
    """The numba store kernels, or None when numba is missing."""
    global _KERNELS
    if _KERNELS is None:
        try:
            from .native import store_kernels
        except ImportError:
            _KERNELS = False
        else:
            _KERNELS = store_kernels
    return _KERNELS or None


_KERNELS = None

_RESERVED_NAMES = frozenset({"pre", "post", "on_full", "on_duplicate", "per_row", "generator"})
_CONTAINS_CHUNK = 1 << 22  # elements of the [k, capacity] comparison done at once


class CSR(NamedTuple):
    """Row-major compressed view of the live synapses.

    Shapes: ``indptr [n_pre + 1]``, ``indices [nnz]`` (postsynaptic ids), ``slot [nnz]`` (flat
    slot index ``pre * capacity + j`` into the store's ``[n_pre, capacity]`` arrays).
    """

    indptr: Tensor
    indices: Tensor
    slot: Tensor


class ColumnIndex(NamedTuple):
    """Column (postsynaptic) index of the live synapses, row-major within each column.

    Shapes: ``indptr [n_post + 1]``, ``pre [nnz]``, ``slot [nnz]`` flat slot indices
    (``pre * capacity + j``), ``length [n_post]`` synapses per column.
    """

    indptr: Tensor
    pre: Tensor
    slot: Tensor
    length: Tensor


class NativeLayout(NamedTuple):
    """numpy views of a CPU store's arrays, as the numba edits take them
    (:meth:`RaggedSynapses.native_layout`).

    Shapes: ``ind`` int64 ``[1, n_pre, capacity]``, ``length`` int64 ``[n_pre]`` (the row
    lengths), ``vars`` every variable as ``[parts, n_pre, capacity]`` (one part unless batched),
    in the store's order.
    """

    ind: np.ndarray
    length: np.ndarray
    vars: dict[str, np.ndarray]


class NativeEdit(NamedTuple):
    """What :meth:`RaggedSynapses.replace_native` did (numpy int64 arrays).

    Shapes: ``removed [n_pre]`` synapses removed per row; ``pre [k]``, ``post [k]`` the added
    pairs, row by row in row order, each row's in slot order.
    """

    removed: np.ndarray
    pre: np.ndarray
    post: np.ndarray


def _stamp(value: Any) -> tuple[int, ...]:
    """torch's in-place version counters of a tensor or a tuple of tensors (-1 where a tensor
    does not track one, as inference tensors do not)."""
    parts = value if isinstance(value, tuple) else (value,)
    out = []
    for t in parts:
        try:
            out.append(t._version)
        except RuntimeError:
            out.append(-1)
    return tuple(out)


def _parts(array: np.ndarray) -> np.ndarray:
    """A variable's numpy view as ``[parts, n_pre, capacity]`` (one part unless batched)."""
    return array if array.ndim == 3 else array[None]


def _resolve_device(device: str | torch.device) -> torch.device:
    """``torch.device`` with its index filled in (``"cuda"`` -> ``cuda:0``) as tensors report."""
    dev = torch.device(device)
    if dev.type != "cpu" and dev.index is None:
        dev = torch.empty(0, device=dev).device
    return dev


def _as_index(x: Any, name: str, device: torch.device) -> Tensor:
    t = torch.as_tensor(x, device=device)
    if t.dim() == 1 and t.numel() == 0:  # [] is a float tensor for torch: accept any empty 1-D
        return t.to(torch.int64)
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise TypeError(f"{name} must be an integer tensor, got dtype {t.dtype}")
    if t.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(t.shape)}")
    return t.to(torch.int64)


class RaggedSynapses:
    """Fixed-capacity ragged synapse rows plus any number of per-synapse variables.

    Args:
        n_pre: number of presynaptic neurons (rows).
        n_post: number of postsynaptic neurons (columns).
        capacity: slots per row (row stride); a row can never hold more synapses.
        device: torch device of every tensor.
        name: used in error messages (the projection name, e.g. ``"src->tgt"``).
        autapses: if False, ``n_pre == n_post`` and the pair ``(i, i)`` is never stored.

    Shapes:
        ``row_length [n_pre]``, ``ind [n_pre, capacity]``, ``live [n_pre, capacity]``,
        ``vars[name]`` ``[n_pre, capacity]`` or ``[B, n_pre, capacity]`` when batched.

    ``ind`` and ``row_length`` are read-only: change the structure with :meth:`remove`,
    :meth:`add`, :meth:`grow`, or by editing the tensors in place inside
    ``with store.mutation():`` (see :meth:`mutation`). An in-place write outside a mutation is
    detected by the next derived view (``live``, :meth:`coo`, :meth:`csr`, :meth:`columns`,
    :meth:`padded_columns`, :meth:`to_dense`, :meth:`dense`), by :meth:`remove`, :meth:`add`,
    :meth:`grow`, :meth:`state_dict` and :meth:`validate`, which raise :class:`StoreError`.
    """

    def __init__(
        self,
        n_pre: int,
        n_post: int,
        capacity: int,
        device: str | torch.device = "cpu",
        *,
        name: str = "synapses",
        autapses: bool = True,
    ) -> None:
        for arg, val in (("n_pre", n_pre), ("n_post", n_post), ("capacity", capacity)):
            if isinstance(val, bool) or not isinstance(val, int):
                raise TypeError(f"{name}: {arg} must be an int, got {type(val).__name__}")
        if n_pre < 1 or n_post < 1:
            raise ValueError(f"{name}: n_pre and n_post must be >= 1, got {n_pre}, {n_post}")
        if capacity < 0:
            raise ValueError(f"{name}: capacity must be >= 0, got {capacity}")
        if not autapses and n_pre != n_post:
            raise ValueError(
                f"{name}: autapses=False needs n_pre == n_post, got {n_pre} and {n_post}"
            )
        self.n_pre, self.n_post, self.capacity = n_pre, n_post, capacity
        self.name = name
        self.autapses = autapses
        self.device = _resolve_device(device)
        self._row_length = torch.zeros(n_pre, dtype=torch.int64, device=self.device)
        self._ind = torch.zeros(n_pre, capacity, dtype=torch.int64, device=self.device)
        self.vars: dict[str, Tensor] = {}
        #: bumped by every structural change (derived views are cached on it)
        self.version = 0
        #: bumped by every change of variable values made through the store (and by
        #: :meth:`values_changed`); value caches such as :meth:`dense` are keyed on it
        self.values_version = 0
        self.index_rebuild_s = 0.0  # wall-clock seconds spent rebuilding derived views
        self._cache: dict[str, tuple[Any, Any, tuple[int, ...]]] = {}
        self._col_capacity = 0
        self._mutating = 0  # depth of open mutation() blocks
        self._layout: tuple[tuple, tuple, NativeLayout | None] | None = None
        self._seal()
        #: use the numba kernels for remove/add on the CPU (False: the PyTorch reference path)
        self.native_ops = True

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_coo(
        cls,
        n_pre: int,
        n_post: int,
        pre: Any,
        post: Any,
        capacity: int | None = None,
        padding: float = 1.0,
        device: str | torch.device = "cpu",
        *,
        name: str = "synapses",
        autapses: bool = True,
        **var_values: Any,
    ) -> RaggedSynapses:
        """Build a store from COO pairs; ``capacity=None`` uses the largest row times ``padding``.

        Each keyword becomes a float32 variable: a number, an initialiser or a tensor ``[nnz]``
        in the order of ``pre``/``post``.
        """
        dev = torch.device(device)
        pre_t = _as_index(pre, "pre", dev)
        post_t = _as_index(post, "post", dev)
        if pre_t.numel() != post_t.numel():
            raise ValueError(
                f"{name}: pre and post must have the same length, got {pre_t.numel()} and "
                f"{post_t.numel()}"
            )
        if padding < 1.0:
            raise ValueError(f"{name}: padding must be >= 1.0, got {padding}")
        if capacity is None:
            if pre_t.numel() and (pre_t.min() < 0 or pre_t.max() >= n_pre):
                raise ValueError(f"{name}: pre indices must lie in [0, {n_pre})")
            longest = int(torch.bincount(pre_t, minlength=n_pre).max()) if pre_t.numel() else 0
            capacity = min(n_post, int(longest * padding)) if longest else 0
            capacity = max(capacity, longest)
        store = cls(n_pre, n_post, capacity, dev, name=name, autapses=autapses)
        values = {}
        for key, val in var_values.items():
            store.add_var(key)
            if isinstance(val, Initializer):
                val = val.sample((pre_t.numel(),), device=dev)
            values[key] = val
        store.add(pre_t, post_t, **values)
        return store

    def add_var(
        self,
        name: str,
        init: Any = 0.0,
        batched: int | None = None,
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Register a per-synapse variable and return it.

        Args:
            name: a Python identifier not yet used, other than the argument names of
                :meth:`add` and :meth:`grow` (``pre``, ``post``, ``on_full``, ...).
            init: a number, an initialiser (sampled per live synapse), a tensor ``[nnz]``
                (``[B, nnz]`` if batched) in :meth:`coo` order, or ``[n_pre, capacity]``
                (``[B, n_pre, capacity]``).
            batched: ``B`` for one copy per batch element, None for a shared variable.
            dtype: any torch dtype.
        """
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"{self.name}: variable name must be an identifier, got {name!r}")
        if name in self.vars:
            raise ValueError(f"{self.name}: variable {name!r} already exists")
        if name in _RESERVED_NAMES:
            raise ValueError(
                f"{self.name}: {name!r} is reserved (an argument of add/grow); choose another name"
            )
        if batched is not None and (isinstance(batched, bool) or batched < 1):
            raise ValueError(f"{self.name}: batched must be None or >= 1, got {batched!r}")
        shape = (
            (self.n_pre, self.capacity) if batched is None else (batched, self.n_pre, self.capacity)
        )
        var = torch.zeros(shape, dtype=dtype, device=self.device)
        live = self.live
        if isinstance(init, (bool, int, float)):
            if not math.isfinite(init):
                raise ValueError(f"{self.name}: init for {name!r} must be finite, got {init}")
            var[..., live] = init
        elif isinstance(init, Initializer):
            nnz_shape = (self.nnz,) if batched is None else (batched, self.nnz)
            var[..., live] = init.sample(nnz_shape, device=self.device, generator=generator).to(
                dtype
            )
        elif isinstance(init, Tensor):
            init = init.to(self.device)
            if init.shape == shape:
                self._check_finite(name, init[..., live])
                var.copy_(init)
                var[..., ~live] = 0
            elif init.shape[-1:] == (self.nnz,) and init.shape[:-1] in ((), shape[:-2]):
                self._check_finite(name, init)
                var[..., live] = init.to(dtype)
            else:
                raise ValueError(
                    f"{self.name}: init for {name!r} must have shape {shape} or "
                    f"{shape[:-2] + (self.nnz,)}, got {tuple(init.shape)}"
                )
        else:
            raise TypeError(f"{self.name}: unsupported init for {name!r}: {type(init).__name__}")
        self.vars[name] = var
        self.values_version += 1
        return var

    # ------------------------------------------------------------------ properties
    @property
    def ind(self) -> Tensor:
        """int64 ``[n_pre, capacity]``: postsynaptic id of every slot (padding unspecified).

        Read-only: write into it only inside ``with store.mutation():``.
        """
        return self._ind

    @ind.setter
    def ind(self, value: Any) -> None:
        raise AttributeError(self._read_only_message("ind"))

    @property
    def row_length(self) -> Tensor:
        """int64 ``[n_pre]``: live synapses per row.

        Read-only: write into it only inside ``with store.mutation():``.
        """
        return self._row_length

    @row_length.setter
    def row_length(self, value: Any) -> None:
        raise AttributeError(self._read_only_message("row_length"))

    def _read_only_message(self, attr: str) -> str:
        return (
            f"store {self.name!r}: {attr} is read-only; change the structure with "
            f"remove/add/grow, or edit {attr} in place inside `with store.mutation():`"
        )

    @property
    def nnz(self) -> int:
        """Number of live synapses."""
        return int(self._row_length.sum())

    @property
    def live(self) -> Tensor:
        """bool ``[n_pre, capacity]``: True where a slot holds a synapse."""
        return self._cached("live", self._build_live)

    def _build_live(self) -> Tensor:
        slots = torch.arange(self.capacity, device=self.device)
        return slots[None, :] < self._row_length[:, None]

    def _cached(self, key: str, build, token: Any = None):
        """``build()``, cached under ``key`` until :attr:`version` (or ``token``) changes.

        Checks the seal first; a cached value written in place raises :class:`StoreError`
        (and is dropped). Inside a mutation nothing is cached: views follow the edits.
        """
        if self._mutating:
            return build()
        self._check_sealed()
        token = self.version if token is None else token
        hit = self._cache.get(key)
        if hit is not None and hit[0] == token:
            if _stamp(hit[1]) == hit[2]:
                return hit[1]
            del self._cache[key]
            raise StoreError(
                f"store {self.name!r}: the cached {key} view was written in place; derived "
                f"views are read-only (they are shared). Change the store with "
                f"remove/add/grow/set_values, or inside `with store.mutation():`"
            )
        start = time.perf_counter()
        value = build()
        self.index_rebuild_s += time.perf_counter() - start
        self._cache[key] = (token, value, _stamp(value))
        return value

    # ------------------------------------------------------------------ seal, mutation
    def _fingerprint(self) -> tuple[Any, ...]:
        ind, length = self._ind, self._row_length
        try:  # checked before every derived view and edit: no loop in the common case
            return (id(ind), id(length), ind._version, length._version)
        except RuntimeError:  # a tensor without a version counter: as _stamp says
            return (id(ind), id(length), *_stamp((ind, length)))

    def _seal(self) -> None:
        """Record the structure as the store's own (after the store itself changed it)."""
        self._seal_print = self._fingerprint()

    def _check_sealed(self) -> None:
        """Raise :class:`StoreError` if ``ind``/``row_length`` were written behind the store."""
        if self._mutating or self._fingerprint() == self._seal_print:
            return
        raise StoreError(
            f"store {self.name!r}: ind/row_length were written outside "
            f"`with store.mutation():`, so its cached views (live, coo, csr, columns) would be "
            f"stale. Change the structure with remove/add/grow, or edit the tensors inside "
            f"`with store.mutation():` (which validates the edit and refreshes the views); "
            f"load_state_dict() restores a saved state"
        )

    def _changed(self, rebuilt: tuple[str, ...] = ()) -> None:
        """Called after every change the store makes (or sanctions) to its structure.

        ``rebuilt``: cached views the changer has already brought up to date in place (the
        native engine's fused rules rebuild :meth:`slot_columns`); they stay cached.
        """
        kept = {k: self._cache[k] for k in rebuilt if k in self._cache}
        self.version += 1
        self.values_version += 1
        self._seal()
        for key, (_, value, stamp) in kept.items():
            self._cache[key] = (self.version, value, stamp)

    def values_changed(self) -> None:
        """Declare that variable values were written in place outside the store's API (an
        optimiser step, say): bumps :attr:`values_version`, so value caches refresh."""
        self.values_version += 1

    @contextmanager
    def mutation(self) -> Iterator[RaggedSynapses]:
        """Context in which ``ind``, ``row_length`` and ``vars`` may be edited directly.

        On exit the structure is validated (as :meth:`validate`), :attr:`version` and
        :attr:`values_version` are bumped and the seal is renewed. If the edits leave the store
        invalid, or the block raises, every tensor is restored to its content at entry (the
        same tensor objects; ``vars`` to the same variables) and the error propagates: an
        invalid edit raises :class:`StoreError`. Views read inside the block follow the edits
        (they are not cached). The versions advance even then, so no cache outlives a block.
        Nested blocks join the outermost one. Entry copies every tensor of the store.

        Example::

            with store.mutation():
                store.row_length[3] = 0  # drop row 3's synapses
        """
        if self._mutating:
            self._mutating += 1
            try:
                yield self
            finally:
                self._mutating -= 1
            return
        self._check_sealed()
        vars_dict, entry_vars = self.vars, dict(self.vars)
        saved_ind, saved_length = self._ind.clone(), self._row_length.clone()
        saved_vars = {k: v.clone() for k, v in entry_vars.items()}
        self._mutating = 1
        try:
            yield self
            self._mutating = 0
            try:
                self._check_structure()
            except ValueError as err:
                raise StoreError(
                    f"{err}; the mutation was undone (store {self.name!r} is as before it)"
                ) from None
        except BaseException:
            self._ind.copy_(saved_ind)
            self._row_length.copy_(saved_length)
            for k, var in entry_vars.items():
                var.copy_(saved_vars[k])
            vars_dict.clear()
            vars_dict.update(entry_vars)
            self.vars = vars_dict
            raise
        finally:
            self._mutating = 0
            self._changed()

    def __repr__(self) -> str:
        return (
            f"RaggedSynapses({self.name!r}, n_pre={self.n_pre}, n_post={self.n_post}, "
            f"capacity={self.capacity}, nnz={self.nnz}, vars={list(self.vars)}, "
            f"device={self.device})"
        )

    # ------------------------------------------------------------------ views
    def coo(self) -> tuple[Tensor, Tensor]:
        """(pre, post) int64 ``[nnz]`` of the live synapses in row-major slot order."""
        pre, slot = self._coo_slots()
        return pre, self._ind.view(-1)[slot]

    def _coo_slots(self) -> tuple[Tensor, Tensor]:
        def build():
            flat = self.live.view(-1).nonzero().squeeze(1)
            return flat // max(self.capacity, 1), flat

        return self._cached("coo", build)

    def values(self, name: str) -> Tensor:
        """Variable ``name`` of live synapses in :meth:`coo` order, ``[nnz]`` or ``[B, nnz]``."""
        var = self._var(name)
        _, slot = self._coo_slots()
        return var.flatten(-2)[..., slot]

    def set_values(self, name: str, values: Tensor) -> None:
        """Overwrite variable ``name`` from values in :meth:`coo` order (``[nnz]``/``[B, nnz]``)."""
        var = self._var(name)
        _, slot = self._coo_slots()
        values = torch.as_tensor(values, device=self.device)
        expected = var.shape[:-2] + (slot.numel(),)
        if values.shape not in (expected, expected[-1:]):
            raise ValueError(
                f"{self.name}: values for {name!r} must have shape {tuple(expected)}, got "
                f"{tuple(values.shape)}"
            )
        self._check_finite(name, values)
        flat = var.flatten(-2)
        flat[..., slot] = values.to(var.dtype)
        self.vars[name] = flat.view(var.shape)
        self.values_version += 1

    def to_dense(self, name: str) -> Tensor:
        """Variable ``name`` as ``[n_pre, n_post]`` (or ``[B, n_pre, n_post]``), 0 where absent.

        A new tensor on every call; :meth:`dense` is the cached, read-only equivalent.
        """
        var = self._var(name)
        pre, post = self.coo()
        out = torch.zeros(
            var.shape[:-2] + (self.n_pre, self.n_post), dtype=var.dtype, device=self.device
        )
        out[..., pre, post] = self.values(name)
        return out

    def dense(self, name: str = "weight") -> Tensor:
        """:meth:`to_dense` cached on (:attr:`version`, :attr:`values_version`); read-only.

        The cache also refreshes when ``vars[name]`` is replaced or written by a torch in-place
        op; writes torch cannot see (through numpy views) need :meth:`values_changed`.
        """
        var = self._var(name)
        token = (self.version, self.values_version, id(var), *_stamp(var))
        return self._cached(f"dense:{name}", lambda: self.to_dense(name), token)

    def csr(self) -> CSR:
        """Row-major compressed view (cached per :attr:`version`)."""

        def build():
            pre, post = self.coo()
            indptr = torch.zeros(self.n_pre + 1, dtype=torch.int64, device=self.device)
            indptr[1:] = torch.cumsum(self._row_length, 0)
            return CSR(indptr, post, self._coo_slots()[1])

        return self._cached("csr", build)

    def columns(self) -> ColumnIndex:
        """Column index (cached per :attr:`version`); see :class:`ColumnIndex`."""

        def build():
            pre, post = self.coo()
            _, slot = self._coo_slots()
            order = torch.argsort(post, stable=True)
            length = torch.bincount(post, minlength=self.n_post)
            indptr = torch.zeros(self.n_post + 1, dtype=torch.int64, device=self.device)
            indptr[1:] = torch.cumsum(length, 0)
            return ColumnIndex(indptr, pre[order], slot[order], length)

        return self._cached("columns", build)

    def slot_columns(self) -> tuple[Tensor, Tensor]:
        """The column index in fixed-size buffers, for kernels that rebuild it in place:
        ``indptr`` int64 ``[n_post + 1]`` and ``slot`` int64 ``[max(1, n_pre * capacity)]``
        (flat slot ``i * capacity + s`` of each synapse, grouped by column, row-major within;
        entries from ``nnz`` on are unused). Cached per :attr:`version`; a kernel that changes
        the structure and rebuilds these buffers itself reports it with
        ``_changed(rebuilt=("slot_columns",))``.
        """

        def build():
            cols = self.columns()
            slot = torch.zeros(max(1, self.n_pre * self.capacity), dtype=torch.int64)
            slot[: cols.slot.numel()] = cols.slot.cpu()
            return cols.indptr.cpu().clone(), slot

        return self._cached("slot_columns", build)

    def padded_columns(self) -> Tensor:
        """int64 ``[n_post, col_capacity]``: each column's flat slot indices (row-major), padded
        with ``n_pre * capacity`` (cached per :attr:`version`). The width only grows, in powers
        of two, so shapes stay static across rewiring unless a column outgrows all earlier ones.
        """

        def build():
            cols = self.columns()
            longest = int(cols.length.max()) if cols.slot.numel() else 0
            if longest > self._col_capacity:
                self._col_capacity = min(self.n_pre, 1 << max(3, (longest - 1).bit_length()))
            post = torch.repeat_interleave(
                torch.arange(self.n_post, device=self.device), cols.length
            )
            rank = torch.arange(post.numel(), device=self.device) - cols.indptr[post]
            padded = torch.full(
                (self.n_post, self._col_capacity),
                self.n_pre * self.capacity,
                dtype=torch.int64,
                device=self.device,
            )
            padded[post, rank] = cols.slot
            return padded

        return self._cached("padded_columns", build)

    # ------------------------------------------------------------------ queries
    def contains(self, pre: Any, post: Any) -> Tensor:
        """bool ``[k]``: whether each (pre, post) pair is a live synapse.

        Memory is ``O(k * capacity)``, never ``O(n_pre * n_post)``.
        """
        self._check_sealed()
        pre_t, post_t = self._check_pairs(pre, post)
        return self._contains(pre_t, post_t)

    def _contains(self, pre: Tensor, post: Tensor) -> Tensor:
        out = torch.zeros(pre.numel(), dtype=torch.bool, device=self.device)
        if self.capacity == 0 or pre.numel() == 0:
            return out
        step = max(1, _CONTAINS_CHUNK // self.capacity)
        slots = torch.arange(self.capacity, device=self.device)
        for start in range(0, pre.numel(), step):
            p, q = pre[start : start + step], post[start : start + step]
            hit = (self._ind[p] == q[:, None]) & (slots < self._row_length[p][:, None])
            out[start : start + step] = hit.any(1)
        return out

    def _check_pairs(self, pre: Any, post: Any) -> tuple[Tensor, Tensor]:
        pre_t = _as_index(pre, "pre", self.device)
        post_t = _as_index(post, "post", self.device)
        if pre_t.numel() != post_t.numel():
            raise ValueError(
                f"{self.name}: pre and post must have the same length, got {pre_t.numel()} and "
                f"{post_t.numel()}"
            )
        if pre_t.numel():
            lo, hi = (int(v) for v in torch.aminmax(pre_t))
            if lo < 0 or hi >= self.n_pre:
                bad = pre_t[(pre_t < 0) | (pre_t >= self.n_pre)][0].item()
                raise ValueError(f"{self.name}: pre index {bad} out of range [0, {self.n_pre})")
            lo, hi = (int(v) for v in torch.aminmax(post_t))
            if lo < 0 or hi >= self.n_post:
                bad = post_t[(post_t < 0) | (post_t >= self.n_post)][0].item()
                raise ValueError(f"{self.name}: post index {bad} out of range [0, {self.n_post})")
        return pre_t, post_t

    def _var(self, name: str) -> Tensor:
        try:
            return self.vars[name]
        except KeyError:
            raise ValueError(
                f"{self.name}: unknown variable {name!r}; known: {sorted(self.vars)}"
            ) from None

    def _check_finite(self, name: str, values: Tensor) -> None:
        if values.is_floating_point() and not bool(torch.isfinite(values).all()):
            raise ValueError(f"{self.name}: values for {name!r} contain NaN or infinity")

    # ------------------------------------------------------------------ structural changes
    def remove(self, mask: Tensor) -> Tensor:
        """Remove the live synapses where ``mask`` is True; every variable moves with its synapse.

        Args:
            mask: bool ``[n_pre, capacity]``; True on padding slots is ignored.

        Returns:
            int64 ``[n_pre]``: synapses removed per row.
        """
        self._check_sealed()
        mask = torch.as_tensor(mask, device=self.device)
        if mask.dtype != torch.bool:
            raise TypeError(f"{self.name}: remove() needs a bool mask, got dtype {mask.dtype}")
        if mask.shape != (self.n_pre, self.capacity):
            raise ValueError(
                f"{self.name}: remove() mask must have shape {(self.n_pre, self.capacity)}, got "
                f"{tuple(mask.shape)}"
            )
        if gpu.available(mask):  # CUDA with triton: the Triton compaction (neurowire.gpu.compact)
            from .gpu.compact import remove

            removed = remove(mask, self._row_length, [self._ind, *self.vars.values()])
            if bool(removed.any()):
                self._changed()
            return removed
        kernels = self._native_kernels()
        if kernels is not None:
            return self._remove_native(kernels, mask)
        gone = mask & self.live
        removed = gone.sum(1)
        rows = removed.nonzero().squeeze(1)
        if rows.numel() == 0:
            return removed
        # compact only the rows that lose synapses, in place
        keep = self.live[rows] & ~gone[rows]
        dest = torch.where(keep, torch.cumsum(keep, 1) - 1, self.capacity)
        self._ind[rows] = self._compact(self._ind[rows], dest)
        for var in self.vars.values():
            var[..., rows, :] = self._compact(var[..., rows, :], dest)
        self._row_length -= removed
        self._changed()
        return removed

    def _native_kernels(self):
        if not self.native_ops or self.device.type != "cpu":
            return None
        if any(v.dtype not in _NATIVE_DTYPES for v in self.vars.values()):
            return None
        return _store_kernels()

    def _remove_native(self, kernels, mask: Tensor) -> Tensor:
        m = mask.numpy()
        length = self._row_length.numpy()
        removed = torch.zeros(self.n_pre, dtype=torch.int64)
        rem = removed.numpy()
        if kernels.removed_per_row(m, length, rem) == 0:
            return removed
        kernels.compact_rows(self._ind.numpy(), m, length, rem)
        for var in self.vars.values():
            for part in var.view(-1, self.n_pre, self.capacity):
                kernels.compact_rows(part.numpy(), m, length, rem)
        length -= rem  # in place on row_length
        self._changed()
        return removed

    def _compact(self, var: Tensor, dest: Tensor) -> Tensor:
        out = torch.zeros(var.shape[:-1] + (self.capacity + 1,), dtype=var.dtype, device=var.device)
        out.scatter_(-1, dest.expand(var.shape), var)
        return out[..., : self.capacity].contiguous()

    def add(
        self,
        pre: Any,
        post: Any,
        on_full: str = "raise",
        on_duplicate: str = "raise",
        **values: Any,
    ) -> Tensor:
        """Append synapses ``(pre[k], post[k])``; variables not given start at zero.

        Args:
            pre, post: int ``[k]`` neuron indices; several may share a row.
            on_full: ``"raise"`` (:class:`CapacityError`) or ``"skip"`` when a row is full.
            on_duplicate: ``"raise"`` (:class:`DuplicateSynapseError`) or ``"skip"`` for pairs
                already connected or repeated within the call (the first occurrence is kept).
            **values: per variable a number, ``[k]``, or for a batched variable ``[k]`` (all
                copies) or ``[B, k]``.

        Returns:
            bool ``[k]``: which pairs were added. A call that raises changes nothing.
        """
        self._check_sealed()
        for arg, val in (("on_full", on_full), ("on_duplicate", on_duplicate)):
            if val not in ("raise", "skip"):
                raise ValueError(f"{self.name}: {arg} must be 'raise' or 'skip', got {val!r}")
        pre_t, post_t = self._check_pairs(pre, post)
        k = pre_t.numel()
        prepared = self._prepare_values(values, k)
        if not self.autapses and k and bool((pre_t == post_t).any()):
            bad = pre_t[pre_t == post_t][0].item()
            raise ValueError(f"{self.name}: autapse ({bad}, {bad}) is not allowed")
        if k == 0:
            return torch.zeros(0, dtype=torch.bool, device=self.device)

        kernels = self._native_kernels()
        if kernels is not None:
            dup_np, rank_np = kernels.empty_flags(k)
            kernels.classify_pairs(
                pre_t.numpy(),
                post_t.numpy(),
                self._ind.numpy(),
                self._row_length.numpy(),
                self.capacity,
                self.n_post,
                dup_np,
                rank_np,
            )
            dup, native_rank = torch.from_numpy(dup_np), torch.from_numpy(rank_np)
        else:
            dup = self._repeated_in_call(pre_t, post_t) | self._contains(pre_t, post_t)
        if on_duplicate == "raise" and bool(dup.any()):
            first = int(dup.nonzero()[0, 0])
            raise DuplicateSynapseError(
                f"{self.name}: synapse ({int(pre_t[first])}, {int(post_t[first])}) already "
                f"exists or is repeated in this call; use on_duplicate='skip' to ignore duplicates"
            )
        cand = ~dup
        rank = native_rank if kernels is not None else self._rank_in_row(pre_t, cand)
        free = self.capacity - self._row_length[pre_t]
        fits = rank < free
        if on_full == "raise" and bool((cand & ~fits).any()):
            first = int((cand & ~fits).nonzero()[0, 0])
            row = int(pre_t[first])
            need = int((cand & (pre_t == row)).sum())
            raise CapacityError(
                f"projection {self.name!r}: row {row} has {int(free[first])} free slots for "
                f"{need} new synapses (capacity {self.capacity}); raise capacity=/padding= or "
                f"use on_full='skip'"
            )
        added = cand & fits
        self._append(pre_t, post_t, rank, added, prepared)
        return added

    def _prepare_values(
        self, values: Mapping[str, Any], k: int, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        prepared = {}
        for key, val in values.items():
            var = self._var(key)
            batch = var.shape[:-2]
            if isinstance(val, Initializer):
                val = val.sample(batch + (k,), device=self.device, generator=generator)
            t = torch.as_tensor(val, device=self.device)
            self._check_finite(key, t)
            if t.dim() == 0:
                t = t.expand(batch + (k,))
            elif t.shape == (k,):
                t = t.expand(batch + (k,))
            elif t.shape != batch + (k,):
                expected = f"[{k}]" if not batch else f"[{k}] or [{batch[0]}, {k}]"
                raise ValueError(
                    f"{self.name}: values for {key!r} must be a number or {expected}, got shape "
                    f"{tuple(t.shape)}"
                )
            if var.dtype == torch.bool and t.dtype != torch.bool:
                raise TypeError(f"{self.name}: {key!r} is bool, got values of dtype {t.dtype}")
            if not var.is_floating_point() and t.is_floating_point():
                raise TypeError(f"{self.name}: {key!r} has dtype {var.dtype}, got floating values")
            prepared[key] = t.to(var.dtype)
        return prepared

    def _repeated_in_call(self, pre: Tensor, post: Tensor) -> Tensor:
        key = pre * self.n_post + post
        order = torch.argsort(key, stable=True)
        sk = key[order]
        rep_sorted = torch.zeros_like(sk, dtype=torch.bool)
        rep_sorted[1:] = sk[1:] == sk[:-1]
        rep = torch.empty_like(rep_sorted)
        rep[order] = rep_sorted
        return rep

    @staticmethod
    def _rank_in_row(pre: Tensor, cand: Tensor) -> Tensor:
        """Position of each candidate among the candidates of its row, in call order."""
        k = pre.numel()
        key = torch.where(cand, pre, -1)
        order = torch.argsort(key, stable=True)
        sk = key[order]
        start = torch.ones(k, dtype=torch.bool, device=pre.device)
        start[1:] = sk[1:] != sk[:-1]
        idx = torch.arange(k, device=pre.device)
        run_start = torch.cummax(torch.where(start, idx, 0), 0).values
        rank = torch.empty(k, dtype=torch.int64, device=pre.device)
        rank[order] = idx - run_start
        return rank

    def _append(
        self, pre: Tensor, post: Tensor, rank: Tensor, added: Tensor, values: Mapping[str, Tensor]
    ) -> None:
        if not bool(added.any()):
            return
        rows = pre[added]
        kernels = self._native_kernels()
        if kernels is not None:
            slot_all = torch.zeros(pre.numel(), dtype=torch.int64)
            kernels.append_pairs(
                pre.numpy(),
                post.numpy(),
                added.numpy(),
                self._ind.numpy(),
                self._row_length.numpy(),
                slot_all.numpy(),
            )
            slots = slot_all[added]
            for key, var in self.vars.items():
                val = values.get(key)
                var[..., rows, slots] = 0 if val is None else val[..., added]
            self._changed()
            return
        slots = self._row_length[rows] + rank[added]
        self._ind[rows, slots] = post[added]
        for key, var in self.vars.items():
            val = values.get(key)
            var[..., rows, slots] = 0 if val is None else val[..., added]
        self._row_length += torch.bincount(rows, minlength=self.n_pre)
        self._changed()

    def grow(
        self,
        per_row: Any,
        generator: torch.Generator | None = None,
        **values: Any,
    ) -> Tensor:
        """Add ``per_row[i]`` synapses to each row ``i`` at uniformly drawn unconnected targets.

        Targets are distinct, never already connected (nor ``i`` itself without autapses).
        Requests beyond a row's free capacity or free columns are not added.

        Args:
            per_row: int ``[n_pre]`` requested new synapses per row.
            generator: torch generator on the store's device.
            **values: per variable a number or an initialiser (sampled per new synapse).

        Returns:
            int64 ``[n_pre]``: synapses actually added per row.
        """
        self._check_sealed()
        counts = torch.as_tensor(per_row, device=self.device)
        if counts.dtype == torch.bool or counts.is_floating_point():
            raise TypeError(f"{self.name}: per_row must be integer, got dtype {counts.dtype}")
        if counts.shape != (self.n_pre,):
            raise ValueError(
                f"{self.name}: per_row must have shape ({self.n_pre},), got {tuple(counts.shape)}"
            )
        if bool((counts < 0).any()):
            raise ValueError(f"{self.name}: per_row must be >= 0")
        for key, val in values.items():
            self._var(key)
            if not isinstance(val, (int, float, bool, Initializer)):
                raise TypeError(
                    f"{self.name}: grow() values must be numbers or initialisers, got "
                    f"{type(val).__name__} for {key!r}"
                )
        if not bool(counts.any()):
            return torch.zeros_like(self._row_length)
        free_cols = self.n_post - self._row_length
        if not self.autapses:
            free_cols = (
                free_cols
                - 1
                + self._contains(
                    torch.arange(self.n_pre, device=self.device),
                    torch.arange(self.n_pre, device=self.device),
                ).long()
            )
        target = torch.minimum(
            counts.long(), torch.minimum(self.capacity - self._row_length, free_cols)
        )
        target = target.clamp(min=0)
        if not bool(target.any()):
            return torch.zeros_like(self._row_length)
        before = self._row_length.clone()
        pending = torch.repeat_interleave(torch.arange(self.n_pre, device=self.device), target)
        for _ in range(16):
            if pending.numel() == 0:
                break
            cand = torch.randint(
                0, self.n_post, (pending.numel(),), device=self.device, generator=generator
            )
            ok = ~self._contains(pending, cand) & ~self._repeated_in_call(pending, cand)
            if not self.autapses:
                ok &= pending != cand
            self._add_unchecked(pending[ok], cand[ok], values, generator)
            pending = pending[~ok]
        if pending.numel():
            self._grow_by_enumeration(pending, generator, values)
        return self._row_length - before

    def _grow_by_enumeration(self, pending: Tensor, generator, values) -> None:
        """Exact fallback for nearly full rows: choose among the explicitly listed free columns."""
        rows, need = torch.unique(pending, return_counts=True)
        for row, n in zip(rows.tolist(), need.tolist(), strict=False):
            free = torch.ones(self.n_post, dtype=torch.bool, device=self.device)
            free[self._ind[row, : int(self._row_length[row])]] = False
            if not self.autapses:
                free[row] = False
            cols = free.nonzero().squeeze(1)
            pick = cols[torch.randperm(cols.numel(), device=self.device, generator=generator)[:n]]
            self._add_unchecked(torch.full_like(pick, row), pick, values, generator)

    def _add_unchecked(
        self,
        pre: Tensor,
        post: Tensor,
        values: Mapping[str, Any],
        generator: torch.Generator | None = None,
    ) -> None:
        if pre.numel() == 0:
            return
        everything = torch.ones_like(pre, dtype=torch.bool)
        rank = self._rank_in_row(pre, everything)
        prepared = self._prepare_values(values, pre.numel(), generator)
        self._append(pre, post, rank, everything, prepared)

    @property
    def native_edits(self) -> bool:
        """Whether :meth:`replace_native` can run: a CPU store using its numba kernels
        (:attr:`native_ops`, numba importable) whose variables all have native dtypes and are
        contiguous."""
        return self.native_layout() is not None

    def native_layout(self) -> NativeLayout | None:
        """numpy views of ``ind``, ``row_length`` and every variable for numba edits, or None
        where :attr:`native_edits` is False.

        Cached until :attr:`native_ops` changes or ``ind``, ``row_length`` or an entry of
        ``vars`` is another tensor object (added, dropped, replaced, moved): the cache holds
        those tensors, so their ids stay unique while it does. Reshaping a tensor in place
        (``resize_``, ``set_``) is not seen. A numba kernel writing through these views changes
        the store behind torch's back: call ``_changed()`` first when it edits the structure.
        """
        tensors = (self._ind, self._row_length, *self.vars.values())
        key = (self.native_ops, tuple(self.vars), tuple(map(id, tensors)))
        cached = self._layout
        if cached is None or cached[0] != key:
            cached = self._layout = (key, tensors, self._build_layout())
        return cached[2]

    def _build_layout(self) -> NativeLayout | None:
        if not (self.native_ops and self.device.type == "cpu") or _store_kernels() is None:
            return None
        for var in self.vars.values():
            if var.dtype not in _NATIVE_DTYPES or not var.is_contiguous():
                return None
        views = {name: _parts(var.numpy()) for name, var in self.vars.items()}
        return NativeLayout(self._ind.numpy()[None], self._row_length.numpy(), views)

    def replace_native(
        self,
        gone: Any,
        per_row: Any,
        key: int,
        values: Callable[[np.ndarray, np.ndarray], Mapping[str, Any]] | None = None,
    ) -> NativeEdit:
        """Remove the live synapses where ``gone`` is True and add ``per_row[i]`` synapses to
        every row ``i`` at uniformly drawn unconnected columns, as one edit (CPU, numba).

        The result is what :meth:`remove` followed by :meth:`add` of the drawn pairs gives:
        survivors keep their order, new synapses are appended row by row, every variable moves
        with its synapse. Columns are drawn row by row as if the removal had happened:
        candidates ``floor(u * n_post)``, ``u`` the float64 numbers of the counter-based stream
        ``key`` (:mod:`neurowire.rng`) in order, rejected when already connected, drawn before
        in the call or (without autapses) the row itself.

        Args:
            gone: bool ``[n_pre, capacity]``; True on padding is ignored.
            per_row: int ``[n_pre]``, at most the free slots and the unconnected columns of
                each row after the removal.
            key: the stream's key, an int in ``[0, 2**64)``.
            values: ``values(pre, post) -> {variable: [k]}`` for the new synapses (``pre``,
                ``post`` as returned); called once their targets are drawn, before anything
                changes. Variables it leaves out start at 0, as do all of them without it.

        Returns:
            :class:`NativeEdit`.

        Raises :class:`StoreError` (:class:`CapacityError` for a row without room),
        ``TypeError`` or ``ValueError`` for bad arguments, before changing anything. Only the
        last step changes the store, in one numba call, so an edit is never left half-done.
        """
        self._check_sealed()
        layout = self.native_layout()
        if layout is None:
            raise StoreError(
                f"{self.name}: replace_native needs a CPU store with the numba kernels, native "
                f"dtypes and contiguous variables (see native_edits)"
            )
        kernels = _store_kernels()
        gone, per_row, key = self._edit_arguments(gone, per_row, key)
        length = layout.length
        removed = np.empty(self.n_pre, dtype=np.int64)
        bad = kernels.check_edit(gone, length, per_row, self.n_post, self.autapses, removed)
        if bad >= 0:
            self._refuse_row(bad, int(per_row[bad]), int(length[bad] - removed[bad]))
        pre = np.repeat(np.arange(self.n_pre, dtype=np.int64), per_row)
        post = np.empty(pre.size, dtype=np.int64)
        if pre.size:
            args = (pre, layout.ind[0], length, gone, self.n_post, self.autapses, key, post)
            if kernels.draw_free_columns(*args) < 0:  # excluded by check_edit
                raise CapacityError(f"{self.name}: a row has no free column left")
        elif not removed.any():
            return NativeEdit(removed, pre, post)
        new = self._new_values(values(pre, post) if values is not None else {}, pre.size)
        arrays = ((layout.ind, post),) + tuple((layout.vars[name], new[name]) for name in self.vars)
        self.run_native_edit(kernels.replace_rows, length, gone, removed, per_row, arrays)
        return NativeEdit(removed, pre, post)

    def run_native_edit(self, kernel: Callable[..., Any], *args: Any) -> Any:
        """Run ``kernel(*args)``, a numba edit of this store's :meth:`native_layout` arrays
        that checks everything before it writes, as one step of the store; returns what the
        kernel returns. The store's caches are dropped first, so none outlives the edit."""
        self._check_sealed()
        self._changed()
        return kernel(*args)

    def _edit_arguments(
        self, gone: Any, per_row: Any, key: Any
    ) -> tuple[np.ndarray, np.ndarray, np.uint64]:
        gone, per_row = np.asarray(gone), np.asarray(per_row)
        if gone.dtype != np.bool_ or gone.shape != (self.n_pre, self.capacity):
            raise TypeError(
                f"{self.name}: gone must be bool {(self.n_pre, self.capacity)}, got "
                f"{gone.dtype} {gone.shape}"
            )
        if per_row.dtype.kind not in "iu" or per_row.shape != (self.n_pre,):
            raise TypeError(
                f"{self.name}: per_row must be integer ({self.n_pre},), got {per_row.dtype} "
                f"{per_row.shape}"
            )
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)):
            raise TypeError(f"{self.name}: key must be an int, got {type(key).__name__}")
        if not 0 <= int(key) < 2**64:
            raise ValueError(f"{self.name}: key must lie in [0, 2**64), got {key}")
        return (
            np.ascontiguousarray(gone),
            np.ascontiguousarray(per_row, dtype=np.int64),
            np.uint64(key),
        )

    def _refuse_row(self, row: int, count: int, kept: int) -> None:
        """Raise for ``count`` new synapses in ``row`` keeping ``kept`` synapses."""
        if count < 0:
            raise ValueError(f"{self.name}: per_row must be >= 0, got {count} for row {row}")
        columns = self.n_post - kept - (0 if self.autapses else 1)
        limit = min(self.capacity - kept, columns)
        raise CapacityError(
            f"{self.name}: row {row} gets {count} new synapses but has room for {limit} after "
            f"the removal (free slots and unconnected columns; capacity {self.capacity})"
        )

    def _new_values(self, given: Mapping[str, Any], k: int) -> dict[str, np.ndarray]:
        """Every variable's values ``[k]`` for :meth:`replace_native` (given, or 0), checked
        and cast to the variable's dtype."""
        for key in given:
            self._var(key)
        new = {}
        for key, var in self.vars.items():
            dtype = _NUMPY_DTYPES[var.dtype]
            if key not in given:
                new[key] = np.zeros(k, dtype=dtype)
                continue
            val = np.asarray(given[key])
            if val.shape != (k,):
                raise ValueError(
                    f"{self.name}: values for {key!r} must have shape ({k},), got {val.shape}"
                )
            if dtype == np.bool_ and val.dtype != np.bool_:
                raise TypeError(f"{self.name}: {key!r} is bool, got values of dtype {val.dtype}")
            if dtype.kind != "f" and val.dtype.kind == "f":
                raise TypeError(f"{self.name}: {key!r} has dtype {dtype}, got floating values")
            if val.dtype.kind == "f" and not np.isfinite(val).all():
                raise ValueError(f"{self.name}: values for {key!r} contain NaN or infinity")
            new[key] = np.ascontiguousarray(val, dtype=dtype)
        return new

    # ------------------------------------------------------------------ integrity, persistence
    def validate(self) -> None:
        """Raise :class:`StoreError` (a ``ValueError``) naming the first broken invariant, or
        saying that the structure was written outside a mutation (cheap enough for tests)."""
        self._check_sealed()
        try:
            self._check_structure()
        except StoreError:
            raise
        except ValueError as err:
            raise StoreError(str(err)) from None

    def _check_structure(self) -> None:
        """The invariants, checked on the raw arrays; raises ``ValueError``."""
        n = self.name
        rl, ind = self._row_length, self._ind
        if rl.shape != (self.n_pre,) or rl.dtype != torch.int64:
            raise ValueError(f"{n}: row_length has shape {tuple(rl.shape)} dtype {rl.dtype}")
        if ind.shape != (self.n_pre, self.capacity) or ind.dtype != torch.int64:
            raise ValueError(f"{n}: ind has shape {tuple(ind.shape)} dtype {ind.dtype}")
        if bool(((rl < 0) | (rl > self.capacity)).any()):
            row = int(((rl < 0) | (rl > self.capacity)).nonzero()[0, 0])
            raise ValueError(
                f"{n}: row {row} has length {int(rl[row])} outside [0, {self.capacity}]"
            )
        # rebuilt from the raw arrays, never from the caches: they may predate a corruption
        live = torch.arange(self.capacity, device=self.device)[None, :] < rl[:, None]
        pre = live.nonzero()[:, 0]
        post = ind[live]
        if post.numel() and bool(((post < 0) | (post >= self.n_post)).any()):
            raise ValueError(f"{n}: a live synapse targets a column outside [0, {self.n_post})")
        key = torch.sort(pre * self.n_post + post).values
        if key.numel() > 1 and bool((key[1:] == key[:-1]).any()):
            dup = key[1:][key[1:] == key[:-1]][0].item()
            raise ValueError(f"{n}: duplicate synapse ({dup // self.n_post}, {dup % self.n_post})")
        if not self.autapses and bool((pre == post).any()):
            raise ValueError(f"{n}: autapse present although autapses=False")
        for key_name, var in self.vars.items():
            if var.shape[-2:] != (self.n_pre, self.capacity) or var.dim() not in (2, 3):
                raise ValueError(f"{n}: variable {key_name!r} has shape {tuple(var.shape)}")
            if var.device != self.device:
                raise ValueError(f"{n}: variable {key_name!r} is on {var.device}")

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the store (tensors are copies)."""
        self._check_sealed()
        return {
            "n_pre": self.n_pre,
            "n_post": self.n_post,
            "capacity": self.capacity,
            "name": self.name,
            "autapses": self.autapses,
            "version": self.version,
            "row_length": self._row_length.clone(),
            "ind": self._ind.clone(),
            "vars": {k: v.clone() for k, v in self.vars.items()},
        }

    @classmethod
    def from_state_dict(
        cls, d: Mapping[str, Any], device: str | torch.device | None = None
    ) -> RaggedSynapses:
        """Inverse of :meth:`state_dict`; ``device=None`` keeps the tensors' device."""
        dev = torch.device(device) if device is not None else d["ind"].device
        store = cls(
            d["n_pre"], d["n_post"], d["capacity"], dev, name=d["name"], autapses=d["autapses"]
        )
        store._row_length = d["row_length"].to(dev, torch.int64).clone()
        store._ind = d["ind"].to(dev, torch.int64).clone()
        store.vars = {k: v.to(dev).clone() for k, v in d["vars"].items()}
        store.version = int(d["version"])
        store._seal()
        store.validate()
        return store

    def load_state_dict(self, d: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` into this store in place (same shape and variables).

        The tensors are overwritten in place (``ind``, ``row_length`` and every variable stay
        the same objects; a variable whose saved shape differs, another batch size say, is
        replaced). Bumps :attr:`version` and :attr:`values_version`; also repairs a store
        whose structure was written outside a mutation.

        Raises ``ValueError`` naming what differs, before changing anything.
        """
        for key in ("n_pre", "n_post", "capacity"):
            if int(d[key]) != getattr(self, key):
                raise ValueError(
                    f"{self.name}: saved {key}={d[key]} does not match this store's "
                    f"{getattr(self, key)}"
                )
        if set(d["vars"]) != set(self.vars):
            raise ValueError(
                f"{self.name}: saved variables {sorted(d['vars'])} differ from {sorted(self.vars)}"
            )
        restored = RaggedSynapses.from_state_dict(d, device=self.device)  # validates
        self._row_length.copy_(restored._row_length)
        self._ind.copy_(restored._ind)
        for k, var in self.vars.items():
            saved = restored.vars[k]
            if saved.shape == var.shape:
                var.copy_(saved)
            else:
                self.vars[k] = saved.to(var.dtype)
        self.version = max(self.version, restored.version)
        self._cache.clear()
        self._changed()

    def to(self, device: str | torch.device) -> RaggedSynapses:
        """Move every tensor to ``device`` in place; returns self."""
        dev = _resolve_device(device)
        if dev == self.device:
            return self
        self._check_sealed()
        self.device = dev
        self._row_length = self._row_length.to(dev)
        self._ind = self._ind.to(dev)
        self.vars = {k: v.to(dev) for k, v in self.vars.items()}
        self._cache.clear()
        self._layout = None  # let the arrays it views go
        self._seal()
        return self

    def __setstate__(self, state: dict[str, Any]) -> None:
        # unpickled / deep-copied tensors restart their version counters: renew the seal and
        # drop the caches (whose recorded counters no longer apply)
        self.__dict__.update(state)
        self._cache = {}
        self._layout = None
        self._seal()

    def __getstate__(self) -> dict[str, Any]:
        # numpy views would travel as copies of the arrays they view
        return {**self.__dict__, "_layout": None}
