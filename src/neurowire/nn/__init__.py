"""``torch.nn`` modules whose wiring can change while they train.

:class:`SparseLinear` is a linear layer over a :class:`~neurowire.RaggedSynapses` store: its
weight is a :class:`torch.nn.Parameter` in the store's slot layout, so autograd (BPTT with
surrogate gradients) and any ``torch.optim`` optimiser train it, and structural rules rewire it.
:class:`NeuronCell` runs one step of a neurowire neuron model (``LIF``, ``ALIF``, ...) in the
same autograd graph, with a surrogate gradient from the model's own pseudo-derivative.
"""

from .linear import SparseLinear
from .neurons import NeuronCell
from .recurrent import SparseRecurrent

__all__ = ["NeuronCell", "SparseLinear", "SparseRecurrent"]
