"""Errors raised by the sparse synapse store."""


class CapacityError(ValueError):
    """A row of a :class:`~neurowire.RaggedSynapses` has no free slot for a new synapse."""


class DuplicateSynapseError(ValueError):
    """A (pre, post) pair that is already connected (or repeated in one call) was added."""
