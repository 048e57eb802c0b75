"""Structural plasticity: rules that remove and add synapses while a network runs, and lesions
(a random share of a projection's synapses deleted at once)."""

from .base import RuleContext, StructuralRule
from .deep_r import DeepR, SignBits
from .distance import DistanceRewiring
from .elements import ElementNeuron
from .fan_in import SharedFanInRewiring
from .growth import SynapticElement
from .homeostatic import HomeostaticRewiring, SPSynapse
from .lesions import lesion, lesion_count, lesion_dense, lesion_mask
from .log import RewiringLog
from .view import SynapseView

__all__ = [
    "DeepR",
    "SignBits",
    "DistanceRewiring",
    "ElementNeuron",
    "HomeostaticRewiring",
    "RewiringLog",
    "RuleContext",
    "SPSynapse",
    "SharedFanInRewiring",
    "StructuralRule",
    "SynapseView",
    "SynapticElement",
    "lesion",
    "lesion_count",
    "lesion_dense",
    "lesion_mask",
]
