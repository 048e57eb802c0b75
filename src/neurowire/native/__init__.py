"""The native CPU engine: generated, numba-compiled blocks of simulation steps.

Importing this package does not import numba; :mod:`neurowire.native.engine` does.
"""

from __future__ import annotations

from .. import neurons as nrn
from .. import psc as psc_models
from ..plasticity import STDP

SUPPORTED_NEURONS = (nrn.SpikeSource, nrn.PoissonSource, nrn.LIF, nrn.ALIF, nrn.LeakyIntegrator)
SUPPORTED_PSC = (psc_models.Delta, psc_models.ExpCurr, psc_models.ExpCond)


def unsupported(sim) -> str | None:
    """Why the native engine cannot run ``sim``'s network, or None if it can."""
    if sim.device.type != "cpu":
        return f"the native engine runs on the CPU, not on {sim.device}"
    for pop in sim.net.populations.values():
        if type(pop.model) not in SUPPORTED_NEURONS:
            return f"population {pop.name!r}: neuron model {type(pop.model).__name__}"
    for proj in sim.net.projections.values():
        if type(proj.psc) not in SUPPORTED_PSC:
            return f"projection {proj.name!r}: postsynaptic model {type(proj.psc).__name__}"
        if proj.synapse is not None and type(proj.synapse) is not STDP:
            return f"projection {proj.name!r}: synapse model {type(proj.synapse).__name__}"
    return None
