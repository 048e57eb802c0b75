"""The mutable sparse synapse store: the import path of :class:`RaggedSynapses` and its types.

The store is implemented in :mod:`neurowire.store` (one module per concern); see
:mod:`neurowire.store.core` for its layout, seal and ordering rules.
"""

from .errors import CapacityError, DuplicateSynapseError, StoreError
from .store import CSR, ColumnIndex, NativeEdit, NativeLayout, RaggedSynapses, StoreSnapshot

__all__ = [
    "CSR",
    "CapacityError",
    "ColumnIndex",
    "DuplicateSynapseError",
    "NativeEdit",
    "NativeLayout",
    "RaggedSynapses",
    "StoreError",
    "StoreSnapshot",
]
