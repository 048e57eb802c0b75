"""The mutable sparse synapse store, :class:`RaggedSynapses`, one concern per module.

``core`` holds the class (shape, variables, the seal); ``views`` the derived views and their
caches; ``edits`` and ``numba_edits`` the structural edits per backend; ``sampling`` the
random growth and the rank of entries within a row; ``persistence`` saving, loading and
checking; ``snapshot`` the snapshot every undo uses (mutation blocks, rule transactions, a
trainer's batch undo).
"""

from ..errors import CapacityError, DuplicateSynapseError, StoreError
from .core import RaggedSynapses
from .numba_edits import NativeEdit, NativeLayout
from .sampling import rank_in_row
from .snapshot import StoreSnapshot
from .views import CSR, ColumnIndex

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
    "rank_in_row",
]
