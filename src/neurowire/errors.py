"""Errors raised by the sparse synapse store."""


class StoreError(ValueError):
    """A :class:`~neurowire.RaggedSynapses` store is, or would be left, inconsistent: its
    structure was written outside ``with store.mutation():`` or a mutation left it invalid."""


class CapacityError(StoreError):
    """A row of a :class:`~neurowire.RaggedSynapses` has no free slot for a new synapse."""


class DuplicateSynapseError(StoreError):
    """A (pre, post) pair that is already connected (or repeated in one call) was added."""
