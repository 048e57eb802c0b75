"""Snapshots of a store and the mutation context built on them: the one way a store's
changes are undone.

A :class:`StoreSnapshot` copies ``ind``, ``row_length`` and every variable and remembers the
tensor objects; :meth:`StoreSnapshot.restore` puts the contents back into those same objects,
so views held elsewhere stay valid. :func:`mutation` (the store's ``mutation()``), the
structural rules' transactions (:mod:`neurowire.structural.transaction`) and the trainer's
batch undo (:mod:`neurowire.learning.undo`) all use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..errors import StoreError
from .persistence import check_structure

if TYPE_CHECKING:
    from .core import RaggedSynapses


class StoreSnapshot:
    """A store's structure and variables as they are now, restorable in place.

    Taking one checks the seal (:class:`StoreError` if the structure was written behind the
    store) and copies every tensor of the store once.
    """

    def __init__(self, store: RaggedSynapses) -> None:
        store._check_sealed()
        self.store = store
        self._device = store.device
        self._tensors = (store._ind, store._row_length)
        self._copies = (store._ind.clone(), store._row_length.clone())
        self._vars_dict, self._vars = store.vars, dict(store.vars)
        self._var_copies = {k: v.clone() for k, v in self._vars.items()}

    def put_back(self) -> None:
        """Copy the saved contents back into the saved tensor objects and make ``vars`` the
        saved dict with the saved variables again (dropping any registered since); no version
        is bumped."""
        s = self.store
        s.device = self._device
        s._ind, s._row_length = self._tensors
        for tensor, copy in zip(self._tensors, self._copies, strict=True):
            tensor.copy_(copy)
        for k, var in self._vars.items():
            var.copy_(self._var_copies[k])
        self._vars_dict.clear()
        self._vars_dict.update(self._vars)
        s.vars = self._vars_dict

    def restore(self) -> None:
        """:meth:`put_back`, then drop the caches and bump :attr:`version` and
        :attr:`values_version` (the seal is renewed, so a store whose structure was written
        outside a mutation is repaired too)."""
        self.put_back()
        self.store._cache.clear()
        self.store._changed()


@contextmanager
def mutation(store: RaggedSynapses) -> Iterator[RaggedSynapses]:
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
    if store._mutating:
        store._mutating += 1
        try:
            yield store
        finally:
            store._mutating -= 1
        return
    snapshot = StoreSnapshot(store)
    store._mutating = 1
    try:
        yield store
        store._mutating = 0
        try:
            check_structure(store)
        except ValueError as err:
            raise StoreError(
                f"{err}; the mutation was undone (store {store.name!r} is as before it)"
            ) from None
    except BaseException:
        snapshot.put_back()
        raise
    finally:
        store._mutating = 0
        store._changed()
