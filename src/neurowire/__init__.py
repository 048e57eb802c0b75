"""neurowire: sparse spiking neural networks whose wiring changes while they run.

Simulate and train spiking networks on PyTorch (CPU and GPU) with structural plasticity:
every sparse projection keeps its connectivity and all per-synapse state in one
:class:`RaggedSynapses` store, and rewiring rules are plain vectorised Python.
"""

from . import analysis, data, model, nn
from .codegen import configure_numba_cache
from .connectivity import (
    AllToAll,
    Connectivity,
    Dense,
    FixedNumberPost,
    FixedProbability,
    FromArrays,
    GaussianDistance,
    GaussianFanIn,
    OneToOne,
)
from .errors import CapacityError, DuplicateSynapseError, StoreError
from .grid import Grid
from .iaf import IafPsc
from .initializers import Constant, Initializer, Normal, Uniform
from .learning import Adam, EProp, RateRegularizer, select_l1
from .network import Network, Population, Projection
from .neurons import ALIF, LIF, LeakyIntegrator, NeuronModel, PoissonSource, SpikeSource
from .plasticity import STDP
from .poisson import PoissonGenerator
from .psc import Alpha, Delta, ExpCond, ExpCurr, PostsynapticModel
from .simulator import SimulationResult, Simulator
from .store import RaggedSynapses
from .structural import (
    DeepR,
    DistanceRewiring,
    ElementNeuron,
    HomeostaticRewiring,
    RewiringLog,
    RuleContext,
    SharedFanInRewiring,
    SPSynapse,
    StructuralRule,
    SynapseView,
    SynapticElement,
)

__version__ = "0.1.0"

__all__ = [
    "ALIF",
    "Adam",
    "Alpha",
    "AllToAll",
    "CapacityError",
    "Connectivity",
    "Constant",
    "Delta",
    "DeepR",
    "Dense",
    "DistanceRewiring",
    "DuplicateSynapseError",
    "EProp",
    "ElementNeuron",
    "ExpCond",
    "ExpCurr",
    "FixedNumberPost",
    "FixedProbability",
    "FromArrays",
    "GaussianDistance",
    "GaussianFanIn",
    "Grid",
    "HomeostaticRewiring",
    "IafPsc",
    "Initializer",
    "LIF",
    "LeakyIntegrator",
    "Network",
    "NeuronModel",
    "Normal",
    "OneToOne",
    "PoissonGenerator",
    "PoissonSource",
    "Population",
    "PostsynapticModel",
    "Projection",
    "RaggedSynapses",
    "RateRegularizer",
    "RewiringLog",
    "RuleContext",
    "SPSynapse",
    "STDP",
    "SharedFanInRewiring",
    "SimulationResult",
    "Simulator",
    "SpikeSource",
    "StructuralRule",
    "StoreError",
    "SynapseView",
    "SynapticElement",
    "Uniform",
    "analysis",
    "data",
    "model",
    "nn",
    "select_l1",
]

# Importing neurowire does not import numba (checked by a test), so this runs before it.
configure_numba_cache()
