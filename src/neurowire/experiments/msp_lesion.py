"""``neurowire msp --lesion T:FRACTION``: deafferentation or denervation of part of the
structural-plasticity network, and what homeostatic rewiring restores (the lesion studies of
Butz & van Ooyen).

Which neurons: ``round(FRACTION * 800)`` of the excitatory and ``round(FRACTION * 200)`` of the
inhibitory neurons, drawn uniformly without replacement
(:func:`~neurowire.structural.lesion_mask`, a CPU generator seeded by ``--seed``) before the run,
so that their curves before the lesion are recorded too.

When: after the chunk that ends at ``T`` s, once the network has been recorded and the element
update (and the rewiring, when one is due) at ``T`` has run; the record at ``T`` is the last one
before the lesion. Spikes that removed synapses delivered before ``T`` still arrive within their
delay of 1 ms (a projection's delayed input waits in its buffer).

What is removed (``--lesion-kind``):

* ``input`` (deafferentation, the default): every synapse of the external Poisson drive onto a
  chosen neuron. No rule touches the drive, so the loss is permanent: the chosen neurons fire only
  if the recurrent network drives them, and homeostatic rewiring may give them more of it.
* ``recurrent`` (denervation): every structural synapse onto a chosen neuron, from E and from I
  (multapses counted as NEST counts synapses). The elements stay: the chosen neurons' dendritic
  elements and their former partners' axonal elements become vacant, pair again at the next
  rewiring, or decay by ``tau_vacant`` meanwhile.

Recorded at every record time, for four groups (``E lesioned``, ``E intact``, ``I lesioned``,
``I intact``), means over the group's neurons: calcium ``ca``, firing rate ``rate_hz`` over the
interval that ends there, incoming excitatory ``in_ex`` and inhibitory ``in_in`` synapses
(connected ``Den_ex`` and ``Den_in`` elements) and outgoing synapses ``out`` (connected axonal
elements).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import neurowire as nw
from neurowire import checks
from neurowire.structural import lesion_mask
from neurowire.structural.homeostatic import MULTIPLICITY

__all__ = [
    "KINDS",
    "LesionSpec",
    "choose",
    "group_curves",
    "lesion_arg",
    "remove_onto",
    "summarise",
]

#: what ``--lesion-kind`` removes: the drive onto the chosen neurons, or their recurrent input
KINDS = ("input", "recurrent")
#: the curves of every group (see the module docstring)
GROUP_KEYS = ("ca", "rate_hz", "in_ex", "in_in", "out")


@dataclass(frozen=True)
class LesionSpec:
    """A lesion: at ``t_s`` [s] model time, ``fraction`` of each population loses ``kind``."""

    t_s: float
    fraction: float
    kind: str = "input"

    def check(self, duration_s: float, record_every_ms: float) -> LesionSpec:
        """The spec with its values checked against a run of ``duration_s`` [s] recorded every
        ``record_every_ms`` [ms]; a ``ValueError`` naming the flag otherwise."""
        if self.kind not in KINDS:
            raise ValueError(f"--lesion-kind must be one of {KINDS}, got {self.kind!r}")
        fraction = checks.check_number(
            "--lesion FRACTION", self.fraction, low=0.0, high=1.0, low_open=True
        )
        t_s = checks.check_number(
            "--lesion T [s]", self.t_s, low=0.0, high=duration_s, low_open=True, high_open=True
        )
        records = t_s * 1000.0 / record_every_ms
        if abs(records - round(records)) > 1e-9 * max(1.0, records):
            raise ValueError(
                f"--lesion T must be a multiple of --record-every {record_every_ms:g} ms, got "
                f"{t_s:g} s"
            )
        return LesionSpec(t_s, fraction, self.kind)


def lesion_arg(text: str) -> tuple[float, float]:
    """``--lesion``: ``T:FRACTION``, two numbers (their ranges are checked by
    :meth:`LesionSpec.check`)."""
    t_s, colon, fraction = text.partition(":")
    try:
        if not colon:
            raise ValueError
        return float(t_s), float(fraction)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected T:FRACTION, a time [s] and a number such as 100:0.2, got {text!r}"
        ) from None


def choose(sizes: Mapping[str, int], fraction: float, seed: int) -> dict[str, torch.Tensor]:
    """The lesioned neurons: ``round(fraction * n)`` of each population's ``n``, drawn uniformly
    without replacement, population after population, from a CPU generator seeded by ``seed``.

    Returns:
        population -> bool ``[n]``, True on a lesioned neuron.
    """
    generator = torch.Generator().manual_seed(seed)
    return {
        pop: lesion_mask(torch.ones(n, dtype=torch.bool), fraction, generator)
        for pop, n in sizes.items()
    }


def remove_onto(
    projections: Iterable[nw.Projection], chosen: Mapping[str, torch.Tensor]
) -> dict[str, int]:
    """Remove every synapse of ``projections`` whose target is a chosen neuron.

    Args:
        projections: sparse projections onto populations named in ``chosen``.
        chosen: population -> bool ``[n]`` (:func:`choose`).

    Returns:
        projection name -> synapses removed (a synapse standing for ``m`` multapses counts
        ``m``, as NEST counts them).
    """
    removed = {}
    for proj in projections:
        store = proj.synapses
        target = chosen[proj.post.name].to(store.ind.device)
        cut = store.live & target[store.ind.clamp(0, store.n_post - 1)]
        copies = store.vars[MULTIPLICITY].long() if MULTIPLICITY in store.vars else None
        removed[proj.name] = int(cut.sum() if copies is None else copies[cut].sum())
        store.remove(cut)
    return removed


def group_curves(
    records: Mapping[str, Any], chosen: Mapping[str, torch.Tensor], axon: Mapping[str, str]
) -> dict[str, dict[str, list[float]]]:
    """The curves of the lesioned and intact neurons of every population.

    Args:
        records: per-neuron records at every record time (``MspRecords.arrays()`` of
            :mod:`neurowire.experiments.msp`): ``ca[pop]``, ``rate_hz[pop]`` and
            ``connected[(pop, element)]``, float ``[R, n]`` each.
        chosen: population -> bool ``[n]`` (:func:`choose`).
        axon: population -> its axonal element (``{"E": "Axon_ex", "I": "Axon_in"}``).

    Returns:
        ``"<pop> lesioned"`` and ``"<pop> intact"`` -> ``{key: [R]}`` for the keys
        ``ca, rate_hz, in_ex, in_in, out``; a group without neurons is left out.
    """
    out = {}
    for pop, mask in chosen.items():
        mask = mask.cpu().numpy()
        per_neuron = {
            "ca": records["ca"][pop],
            "rate_hz": records["rate_hz"][pop],
            "in_ex": records["connected"][(pop, "Den_ex")],
            "in_in": records["connected"][(pop, "Den_in")],
            "out": records["connected"][(pop, axon[pop])],
        }
        for label, members in (("lesioned", mask), ("intact", ~mask)):
            if members.any():
                out[f"{pop} {label}"] = {
                    key: [float(x) for x in values[:, members].mean(1)]
                    for key, values in per_neuron.items()
                }
    return out


def summarise(
    t_ms: list[float], groups: Mapping[str, Mapping[str, list[float]]], lesion_t_s: float
) -> dict[str, dict[str, Any]]:
    """Fall and recovery of every group's calcium, rate and incoming synapses.

    Per group and curve (``ca``, ``rate_hz``, ``in_ex``, ``in_in``): ``before`` (the record at
    the lesion), ``minimum`` after it and its time ``minimum_t_s``, ``final``, and ``recovered``
    = ``(final - minimum) / (before - minimum)``: 0 while still at the minimum, 1 when back to
    the value before (None when nothing fell).
    """
    t = np.asarray(t_ms, dtype=np.float64)
    at = int(np.argmin(np.abs(t - lesion_t_s * 1000.0)))
    out: dict[str, dict[str, Any]] = {}
    for name, curves in groups.items():
        out[name] = {}
        for key in ("ca", "rate_hz", "in_ex", "in_in"):
            values = np.asarray(curves[key], dtype=np.float64)
            after = values[at + 1 :]
            before, final = float(values[at]), float(values[-1])
            low = int(np.argmin(after)) + at + 1 if after.size else at
            minimum = float(values[low])
            fell = before - minimum
            out[name][key] = {
                "before": before,
                "minimum": minimum,
                "minimum_t_s": float(t[low]) / 1000.0,
                "final": final,
                "recovered": (final - minimum) / fell if fell > 0 else None,
            }
    return out
