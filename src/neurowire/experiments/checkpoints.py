"""Checkpoints of ``neurowire classify``: where they live, what each holds besides the
trainer's state (:class:`~neurowire.learning.checkpoint.Checkpointer`), and the checks before a
resume.

A checkpoint records the settings that determine its run's model and data
(:data:`RUN_SETTINGS`, and :data:`LESION_SETTINGS` when ``--lesion`` is given), so that
``--resume`` with other sizes, model, densities, data set, time step, method, lesion, ... is
refused in one line naming every differing setting, before any work.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from neurowire.io import CheckpointError
from neurowire.learning.checkpoint import Checkpointer

from .outputs import differences

__all__ = [
    "CHECKPOINT_KEYS",
    "LESION_SETTINGS",
    "RUN_SETTINGS",
    "ResumeError",
    "checkpoint_path",
    "read_checkpoints",
    "run_settings",
]

#: Settings that a resumed run must share with the checkpoint (``--epochs``, ``--device``,
#: ``--data-dir``, ``--out`` and progress bars may change).
RUN_SETTINGS = (
    "dataset",
    "hidden",
    "model",
    "input_density",
    "recurrent_density",
    "padding",
    "l1",
    "l1_grid",
    "l1_epochs",
    "validation_fraction",
    "regrow",
    "batch_size",
    "lr",
    "seed",
    "method",
    "dt",
    "reg_strength",
    "reg_target_hz",
    "configurations",
)

#: The settings of ``--lesion``: part of the run's settings only when it is given, so that the
#: record of a run without a lesion names no lesion.
LESION_SETTINGS = ("lesion_epoch", "lesion_fraction")

#: What every checkpoint of classify holds besides the trainer's epoch, state and L1 selection
#: (:data:`neurowire.learning.checkpoint.CHECKPOINT_KEYS`); a run with ``--lesion`` adds
#: ``lesion``, the state of its :class:`~neurowire.learning.Lesion`.
CHECKPOINT_KEYS = ("configuration", "run", "history", "before")


class ResumeError(ValueError):
    """A resume that would continue a different run, or train fewer epochs than were done."""


def run_settings(cfg: Any) -> dict[str, Any]:
    """The :data:`RUN_SETTINGS` of a :class:`~neurowire.experiments.classify.ClassifyConfig`,
    and its :data:`LESION_SETTINGS` if it has a lesion."""
    values = asdict(cfg)
    settings = {name: values[name] for name in RUN_SETTINGS}
    if values["lesion_epoch"] is not None:
        settings.update({name: values[name] for name in LESION_SETTINGS})
    return settings


def checkpoint_path(out: str | Path, configuration: str) -> Path:
    """Where configuration ``configuration``'s checkpoint lives in ``out``."""
    return Path(out) / "checkpoints" / f"{configuration}.pt"


def read_checkpoints(
    out: str | Path, configurations: Iterable[str], settings: Mapping[str, Any], epochs: int
) -> dict[str, dict[str, Any]]:
    """The checkpoints in ``out`` of the given configurations (absent ones left out), each
    checked: every key of :data:`CHECKPOINT_KEYS` and the trainer's (and ``lesion`` with
    :data:`LESION_SETTINGS`), its configuration, the same settings, and at most ``epochs``
    epochs done.

    Raises :class:`~neurowire.io.CheckpointError` (damaged or foreign file) or
    :class:`ResumeError` (another run, or ``--epochs`` below what was done).
    """
    found = {}
    required = CHECKPOINT_KEYS + (("lesion",) if "lesion_epoch" in settings else ())
    for configuration in configurations:
        path = checkpoint_path(out, configuration)
        saved = Checkpointer(path).read(required=required)
        if saved is None:
            continue
        where = str(path)
        if saved["configuration"] != configuration:
            raise CheckpointError(
                f"{where!r} holds configuration {saved['configuration']!r}, not {configuration!r}"
            )
        changed = differences(saved["run"], settings)
        if changed:
            raise ResumeError(
                f"--resume: {where!r} was trained with other settings (" + "; ".join(changed) + ")"
            )
        done = int(saved["epoch"])
        if done > epochs:
            raise ResumeError(
                f"--epochs {epochs}: {where!r} has already trained {done} epochs; pass "
                f"--epochs {done} or more"
            )
        found[configuration] = saved
    return found
