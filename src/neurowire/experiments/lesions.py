"""``neurowire classify --lesion EPOCH:FRACTION``: the cut as a training callback, and what it
writes (the ``lesion`` entry of each configuration's summary, the lines of the printed table,
the runs of ``lesion.png``).

The cut is :class:`~neurowire.learning.Lesion` on the hidden layer's input and recurrent
projections (:data:`LESIONED`); the measures are :func:`~neurowire.analysis.lesion_summary`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import neurowire as nw
from neurowire import analysis
from neurowire.learning.lesion import Lesion

__all__ = ["LESIONED", "RECOVERY_TOLERANCE", "callback", "curve", "report", "table_lines"]

#: The projections a ``--lesion`` cuts: the hidden layer's input and recurrent synapses.
LESIONED = ("input", "recurrent")
#: How far below its accuracy before the cut a configuration counts as recovered (a fraction:
#: one percentage point).
RECOVERY_TOLERANCE = 0.01


def callback(epoch: int, fraction: float, seed: int, test, batch_size: int) -> Lesion:
    """The cut of :data:`LESIONED` after ``epoch`` epochs, drawn from a generator seeded by
    ``seed``, measuring the accuracy and loss on ``test`` (batches of ``batch_size``) right
    after it."""

    def measure(trainer: nw.EProp) -> dict[str, float]:
        ev = trainer.evaluate(test, batch_size=batch_size)
        return {"accuracy": ev["accuracy"], "loss": ev["loss"]}

    return Lesion(epoch, fraction, LESIONED, seed=seed, measure=measure)


def report(lesion: Lesion, trainer: nw.EProp, history: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``lesion`` entry of a configuration's summary, after training: when and what was cut
    (per projection: synapses before the cut, cut, and at the end), the test loss just after the
    cut, and :func:`~neurowire.analysis.lesion_summary` of the test accuracy per epoch of
    ``history`` (before, just after, epochs to recover within :data:`RECOVERY_TOLERANCE` or
    ``"not recovered"``, final)."""
    record = lesion.record
    final = {}
    for name in LESIONED:
        proj = trainer.net.projections[name]
        if proj.sparse:
            final[name] = proj.synapses.nnz
        else:  # the cut entries are held at zero
            final[name] = record["synapses_before"][name] - record["removed"][name]
    accuracy = [h["accuracy_test"] for h in history]
    measured = analysis.lesion_summary(
        accuracy, record["epoch"], record["after"]["accuracy"], RECOVERY_TOLERANCE
    )
    return {
        "epoch": record["epoch"],
        "fraction": record["fraction"],
        "synapses_before": record["synapses_before"],
        "removed": record["removed"],
        "synapses_final": final,
        "loss_test_after": record["after"]["loss"],
        **measured,
    }


def curve(result: Mapping[str, Any]) -> dict[str, Any]:
    """One configuration's summary entry as a run of
    :func:`~neurowire.analysis.plot_lesion_accuracy`: test accuracy per epoch and just after
    the cut."""
    accuracy = [h["accuracy_test"] for h in result["history"]]
    return {"accuracy": accuracy, "after": result["lesion"]["accuracy_after"]}


def table_lines(configurations: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The printed table's lines about the cut (none if no configuration was cut): the
    accuracies before, just after and at the end, and the epochs to recover."""
    cut = {name: c["lesion"] for name, c in configurations.items() if "lesion" in c}
    if not cut:
        return []
    first = next(iter(cut.values()))
    lines = [
        f"lesion: {100 * first['fraction']:g} % of the input and recurrent synapses cut after "
        f"epoch {first['epoch']} (test accuracy before -> just after -> final; epochs until "
        f"back within {first['tolerance_points']:g} point)"
    ]
    for name, les in cut.items():
        back = les["epochs_to_recover"]
        back = back if isinstance(back, str) else f"{back} epoch{'' if back == 1 else 's'}"
        lines.append(
            f"  {name:12s} {100 * les['accuracy_before']:6.2f}% -> "
            f"{100 * les['accuracy_after']:6.2f}% -> {100 * les['accuracy_final']:6.2f}%  {back}"
        )
    return lines
