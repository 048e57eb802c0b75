"""``torch.nn`` modules whose wiring can change while they train.

:class:`SparseLinear` is a linear layer over a :class:`~neurowire.RaggedSynapses` store: its
weight is a :class:`torch.nn.Parameter` in the store's slot layout, so autograd (BPTT with
surrogate gradients) and any ``torch.optim`` optimiser train it, and structural rules rewire it:
:class:`DeepR` (``rewirer.step()`` after ``optimizer.step()``) or any
:class:`~neurowire.StructuralRule` through :class:`Rewiring`, with the optimiser's per-slot
state following the synapses. :func:`select_l1` chooses DEEP R's L1 on held-out data.
:class:`NeuronCell` runs one step of a neurowire neuron model (``LIF``, ``ALIF``, ...) in the
same autograd graph, with a surrogate gradient from the model's own pseudo-derivative.
:func:`sparse_linear` is the layer's product as a function (event-driven for spike input).
"""

from .deep_r import DeepR
from .functional import sparse_linear
from .l1_selection import select_l1
from .linear import SparseLinear
from .neurons import NeuronCell
from .recurrent import SparseRecurrent
from .rewiring import Rewiring, sparse_layers

__all__ = [
    "DeepR",
    "NeuronCell",
    "Rewiring",
    "SparseLinear",
    "SparseRecurrent",
    "select_l1",
    "sparse_layers",
    "sparse_linear",
]
