"""The store's numba edit path (CPU): numpy views of its arrays and the edits run on them.

:func:`native_layout` hands the numba kernels (:mod:`neurowire.native.store_kernels`) numpy views
of ``ind``, ``row_length`` and every variable; :func:`replace_native` removes and adds synapses in
one kernel call; :func:`run_native_edit` runs any such kernel as one step of the store. The
per-operation paths of :meth:`~neurowire.RaggedSynapses.remove` and
:meth:`~neurowire.RaggedSynapses.add` (:func:`remove_rows` and the numba branches of
:mod:`.edits`) use the same kernels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..errors import CapacityError, StoreError

if TYPE_CHECKING:
    from .core import RaggedSynapses

#: numpy dtype of each torch dtype the numba store kernels handle (others take the PyTorch path)
NUMPY_DTYPES = {
    torch.float32: np.dtype(np.float32),
    torch.float64: np.dtype(np.float64),
    torch.int8: np.dtype(np.int8),
    torch.int16: np.dtype(np.int16),
    torch.int32: np.dtype(np.int32),
    torch.int64: np.dtype(np.int64),
    torch.uint8: np.dtype(np.uint8),
    torch.bool: np.dtype(np.bool_),
}
NATIVE_DTYPES = frozenset(NUMPY_DTYPES)


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


def store_kernels():
    """The numba store kernels, or None when numba is missing."""
    global _KERNELS
    if _KERNELS is None:
        try:
            from ..native import store_kernels as kernels
        except ImportError:
            _KERNELS = False
        else:
            _KERNELS = kernels
    return _KERNELS or None


_KERNELS = None


def native_kernels(store: RaggedSynapses):
    """The numba kernels for ``store``'s remove/add, or None where the PyTorch path runs (not
    on the CPU, :attr:`native_ops` off, a variable of a dtype numba does not take)."""
    if not store.native_ops or store.device.type != "cpu":
        return None
    if any(v.dtype not in NATIVE_DTYPES for v in store.vars.values()):
        return None
    return store_kernels()


def _parts(array: np.ndarray) -> np.ndarray:
    """A variable's numpy view as ``[parts, n_pre, capacity]`` (one part unless batched)."""
    return array if array.ndim == 3 else array[None]


def native_edits(store: RaggedSynapses) -> bool:
    """Whether :meth:`replace_native` can run: a CPU store using its numba kernels
    (:attr:`native_ops`, numba importable) whose variables all have native dtypes and are
    contiguous."""
    return store.native_layout() is not None


def native_layout(store: RaggedSynapses) -> NativeLayout | None:
    """numpy views of ``ind``, ``row_length`` and every variable for numba edits, or None
    where :attr:`native_edits` is False.

    Cached until :attr:`native_ops` changes or ``ind``, ``row_length`` or an entry of
    ``vars`` is another tensor object (added, dropped, replaced, moved): the cache holds
    those tensors, so their ids stay unique while it does. Reshaping a tensor in place
    (``resize_``, ``set_``) is not seen. A numba kernel writing through these views changes
    the store behind torch's back: call ``_changed()`` first when it edits the structure.
    """
    tensors = (store._ind, store._row_length, *store.vars.values())
    key = (store.native_ops, tuple(store.vars), tuple(map(id, tensors)))
    cached = store._layout
    if cached is None or cached[0] != key:
        cached = store._layout = (key, tensors, _build_layout(store))
    return cached[2]


def _build_layout(store: RaggedSynapses) -> NativeLayout | None:
    if not (store.native_ops and store.device.type == "cpu") or store_kernels() is None:
        return None
    for var in store.vars.values():
        if var.dtype not in NATIVE_DTYPES or not var.is_contiguous():
            return None
    views = {name: _parts(var.numpy()) for name, var in store.vars.items()}
    return NativeLayout(store._ind.numpy()[None], store._row_length.numpy(), views)


def replace_native(
    store: RaggedSynapses,
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
    store._check_sealed()
    layout = store.native_layout()
    if layout is None:
        raise StoreError(
            f"{store.name}: replace_native needs a CPU store with the numba kernels, native "
            f"dtypes and contiguous variables (see native_edits)"
        )
    kernels = store_kernels()
    gone, per_row, key = _edit_arguments(store, gone, per_row, key)
    length = layout.length
    removed = np.empty(store.n_pre, dtype=np.int64)
    bad = kernels.check_edit(gone, length, per_row, store.n_post, store.autapses, removed)
    if bad >= 0:
        _refuse_row(store, bad, int(per_row[bad]), int(length[bad] - removed[bad]))
    pre = np.repeat(np.arange(store.n_pre, dtype=np.int64), per_row)
    post = np.empty(pre.size, dtype=np.int64)
    if pre.size:
        args = (pre, layout.ind[0], length, gone, store.n_post, store.autapses, key, post)
        if kernels.draw_free_columns(*args) < 0:  # excluded by check_edit
            raise CapacityError(f"{store.name}: a row has no free column left")
    elif not removed.any():
        return NativeEdit(removed, pre, post)
    new = _new_values(store, values(pre, post) if values is not None else {}, pre.size)
    arrays = ((layout.ind, post),) + tuple((layout.vars[name], new[name]) for name in store.vars)
    run_native_edit(store, kernels.replace_rows, length, gone, removed, per_row, arrays)
    return NativeEdit(removed, pre, post)


def run_native_edit(store: RaggedSynapses, kernel: Callable[..., Any], *args: Any) -> Any:
    """Run ``kernel(*args)``, a numba edit of this store's :meth:`native_layout` arrays
    that checks everything before it writes, as one step of the store; returns what the
    kernel returns. The store's caches are dropped first, so none outlives the edit."""
    store._check_sealed()
    store._changed()
    return kernel(*args)


def _edit_arguments(
    store: RaggedSynapses, gone: Any, per_row: Any, key: Any
) -> tuple[np.ndarray, np.ndarray, np.uint64]:
    gone, per_row = np.asarray(gone), np.asarray(per_row)
    if gone.dtype != np.bool_ or gone.shape != (store.n_pre, store.capacity):
        raise TypeError(
            f"{store.name}: gone must be bool {(store.n_pre, store.capacity)}, got "
            f"{gone.dtype} {gone.shape}"
        )
    if per_row.dtype.kind not in "iu" or per_row.shape != (store.n_pre,):
        raise TypeError(
            f"{store.name}: per_row must be integer ({store.n_pre},), got {per_row.dtype} "
            f"{per_row.shape}"
        )
    if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)):
        raise TypeError(f"{store.name}: key must be an int, got {type(key).__name__}")
    if not 0 <= int(key) < 2**64:
        raise ValueError(f"{store.name}: key must lie in [0, 2**64), got {key}")
    return (
        np.ascontiguousarray(gone),
        np.ascontiguousarray(per_row, dtype=np.int64),
        np.uint64(key),
    )


def _refuse_row(store: RaggedSynapses, row: int, count: int, kept: int) -> None:
    """Raise for ``count`` new synapses in ``row`` keeping ``kept`` synapses."""
    if count < 0:
        raise ValueError(f"{store.name}: per_row must be >= 0, got {count} for row {row}")
    columns = store.n_post - kept - (0 if store.autapses else 1)
    limit = min(store.capacity - kept, columns)
    raise CapacityError(
        f"{store.name}: row {row} gets {count} new synapses but has room for {limit} after "
        f"the removal (free slots and unconnected columns; capacity {store.capacity})"
    )


def _new_values(store: RaggedSynapses, given: Mapping[str, Any], k: int) -> dict[str, np.ndarray]:
    """Every variable's values ``[k]`` for :func:`replace_native` (given, or 0), checked
    and cast to the variable's dtype."""
    for key in given:
        store._var(key)
    new = {}
    for key, var in store.vars.items():
        dtype = NUMPY_DTYPES[var.dtype]
        if key not in given:
            new[key] = np.zeros(k, dtype=dtype)
            continue
        val = np.asarray(given[key])
        if val.shape != (k,):
            raise ValueError(
                f"{store.name}: values for {key!r} must have shape ({k},), got {val.shape}"
            )
        if dtype == np.bool_ and val.dtype != np.bool_:
            raise TypeError(f"{store.name}: {key!r} is bool, got values of dtype {val.dtype}")
        if dtype.kind != "f" and val.dtype.kind == "f":
            raise TypeError(f"{store.name}: {key!r} has dtype {dtype}, got floating values")
        if val.dtype.kind == "f" and not np.isfinite(val).all():
            raise ValueError(f"{store.name}: values for {key!r} contain NaN or infinity")
        new[key] = np.ascontiguousarray(val, dtype=dtype)
    return new


def remove_rows(store: RaggedSynapses, kernels, mask: Tensor) -> Tensor:
    """:meth:`remove` with the numba kernels; returns int64 ``[n_pre]`` removed per row."""
    m = mask.numpy()
    length = store._row_length.numpy()
    removed = torch.zeros(store.n_pre, dtype=torch.int64)
    rem = removed.numpy()
    if kernels.removed_per_row(m, length, rem) == 0:
        return removed
    kernels.compact_rows(store._ind.numpy(), m, length, rem)
    for var in store.vars.values():
        for part in var.view(-1, store.n_pre, store.capacity):
            kernels.compact_rows(part.numpy(), m, length, rem)
    length -= rem  # in place on row_length
    store._changed()
    return removed
