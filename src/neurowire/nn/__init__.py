"""``torch.nn`` modules whose wiring can change while they train.

:class:`SparseLinear` is a linear layer over a :class:`~neurowire.RaggedSynapses` store: its
weight is a :class:`torch.nn.Parameter` in the store's slot layout, so autograd (BPTT with
surrogate gradients) and any ``torch.optim`` optimiser train it, and structural rules rewire it.
"""

from .linear import SparseLinear
from .recurrent import SparseRecurrent

__all__ = ["SparseLinear", "SparseRecurrent"]
