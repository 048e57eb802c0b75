"""Everything needed to write a model in neurowire's model language, in one import.

A neuron (:class:`NeuronModel`), postsynaptic (:class:`PostsynapticModel`) or plasticity model
is a frozen dataclass whose ``update`` uses only elementwise arithmetic and the functions
below; the torch engine runs it as written, the native (numba) and Triton engines translate
it (:func:`neurowire.codegen.translate`), and code outside the language is refused with a
:class:`ModelCodeError` naming the model, the method and the line::

    from neurowire.model import NeuronModel, decay, maximum, spike, where
"""

from __future__ import annotations

from .codegen import ModelCodeError, absolute, clip, exp, maximum, minimum, spike, where
from .neurons import NeuronModel, decay, refractory_steps
from .psc import PostsynapticModel

__all__ = [
    "ModelCodeError",
    "NeuronModel",
    "PostsynapticModel",
    "absolute",
    "clip",
    "decay",
    "exp",
    "maximum",
    "minimum",
    "refractory_steps",
    "spike",
    "where",
]
