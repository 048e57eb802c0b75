"""The native CPU engine: generated, numba-compiled blocks of simulation steps.

Every model kernel in a block is derived from the model's one definition (its ``update``, see
:mod:`neurowire.codegen`) by :mod:`.codegen`; the driver around them is generated per network
by :mod:`.engine`. Importing this package does not import numba; :mod:`.engine` does.
"""

from __future__ import annotations

from ..codegen import ModelCodeError
from ..plasticity import STDP


def unsupported(sim) -> str | None:
    """Why the native engine cannot run ``sim``'s network, or None if it can."""
    from . import codegen as gen

    if sim.device.type != "cpu":
        return f"the native engine runs on the CPU, not on {sim.device}"
    ftype = "float32" if sim.dtype.is_floating_point and sim.dtype.itemsize == 4 else "float64"
    for pop in sim.net.populations.values():
        reason = gen.unsupported_model(pop.model, sim.dt, ftype)
        if reason is not None:
            return f"population {pop.name!r}: {reason}"
    for proj in sim.net.projections.values():
        if not type(proj.psc).derives_code():
            return (
                f"projection {proj.name!r}: postsynaptic model {type(proj.psc).__name__} "
                "overrides step() instead of defining update()"
            )
        try:
            gen.psc_kernel(proj.psc, sim.dt, "probe", ftype)
            rule = proj.plasticity
            if rule is not None:
                if not isinstance(rule, STDP):
                    raise ModelCodeError(f"synapse model {type(rule).__name__}")
                gen.stdp_kernel(rule, sim.dt, "probe", ftype)
        except ModelCodeError as err:
            return f"projection {proj.name!r}: {err}"
    return None
