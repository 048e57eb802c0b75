"""The store itself: shape, variables, the seal, and the methods gathered from its modules.

:class:`RaggedSynapses` keeps the connectivity of one sparse projection and *every* per-synapse
variable in fixed-capacity ragged rows (GeNN's SPARSE layout; see GeNN's documentation).
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

The methods live with their concern and are bound here: views and caches in :mod:`.views`,
edits in :mod:`.edits` (PyTorch and CUDA) and :mod:`.numba_edits` (numba), random growth in
:mod:`.sampling`, persistence and checks in :mod:`.persistence`, the mutation context in
:mod:`.snapshot`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..errors import StoreError
from ..initializers import Initializer
from . import edits, numba_edits, persistence, sampling, snapshot, views
from .arguments import as_index, check_finite, resolve_device

_RESERVED_NAMES = frozenset({"pre", "post", "on_full", "on_duplicate", "per_row", "generator"})


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
        self.device = resolve_device(device)
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
        self._layout: tuple[tuple, tuple, numba_edits.NativeLayout | None] | None = None
        self._seal()
        #: use the numba kernels for remove/add on the CPU (False: the PyTorch reference path)
        self.native_ops = True

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
        pre_t = as_index(pre, "pre", dev)
        post_t = as_index(post, "post", dev)
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
                check_finite(self.name, name, init[..., live])
                var.copy_(init)
                var[..., ~live] = 0
            elif init.shape[-1:] == (self.nnz,) and init.shape[:-1] in ((), shape[:-2]):
                check_finite(self.name, name, init)
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
        return views.cached(self, "live", self._live_mask)

    def _var(self, name: str) -> Tensor:
        try:
            return self.vars[name]
        except KeyError:
            raise ValueError(
                f"{self.name}: unknown variable {name!r}; known: {sorted(self.vars)}"
            ) from None

    # ------------------------------------------------------------------ seal
    def _fingerprint(self) -> tuple[Any, ...]:
        ind, length = self._ind, self._row_length
        try:  # checked before every derived view and edit: no loop in the common case
            return (id(ind), id(length), ind._version, length._version)
        except RuntimeError:  # a tensor without a version counter: as views.stamp says
            return (id(ind), id(length), *views.stamp((ind, length)))

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

    def __repr__(self) -> str:
        return (
            f"RaggedSynapses({self.name!r}, n_pre={self.n_pre}, n_post={self.n_post}, "
            f"capacity={self.capacity}, nnz={self.nnz}, vars={list(self.vars)}, "
            f"device={self.device})"
        )

    # ------------------------------------------------------------------ methods by concern
    mutation = snapshot.mutation
    # views and caches
    _live_mask = views.live_mask
    coo = views.coo
    values = views.values
    set_values = views.set_values
    to_dense = views.to_dense
    dense = views.dense
    csr = views.csr
    columns = views.columns
    slot_columns = views.slot_columns
    padded_columns = views.padded_columns
    contains = views.contains
    # edits
    remove = edits.remove
    add = edits.add
    grow = sampling.grow
    native_edits = property(numba_edits.native_edits)
    native_layout = numba_edits.native_layout
    replace_native = numba_edits.replace_native
    run_native_edit = numba_edits.run_native_edit
    # integrity, persistence
    validate = persistence.validate
    state_dict = persistence.state_dict
    from_state_dict = classmethod(persistence.from_state_dict)
    load_state_dict = persistence.load_state_dict
    to = persistence.to
    __getstate__ = persistence.getstate
    __setstate__ = persistence.setstate
