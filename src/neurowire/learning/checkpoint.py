"""Checkpoints of training: a :class:`Checkpointer` callback saves a trainer every few epochs
and resumes it, so that a resumed run reproduces an uninterrupted one.

A checkpoint (:func:`neurowire.io.save_checkpoint`, written atomically) holds ``epoch`` (epochs
done), ``trainer`` (:meth:`EProp.state_dict <neurowire.EProp.state_dict>`: stores, optimiser,
random generators, rules, log, counters), ``l1_selection`` (the
:class:`~neurowire.learning.l1_selection.L1Selection` as a dict, or None) and whatever the
caller adds (``extra=``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io import CheckpointError, load_checkpoint, save_checkpoint
from . import l1_selection as _l1
from .loop import Callback

if TYPE_CHECKING:
    from .protocols import Trainer

__all__ = ["CHECKPOINT_KEYS", "Checkpointer"]

#: What every checkpoint of a :class:`Checkpointer` holds.
CHECKPOINT_KEYS = ("epoch", "trainer", "l1_selection")

#: What a trainer's ``load_state_dict`` raises for a state that does not fit its network.
_MISFIT = (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError)


class Checkpointer(Callback):
    """Save the trainer to ``path`` after every ``every``-th epoch; :meth:`resume` restores it.

    Args:
        path: the checkpoint file (its folder is made when first written).
        every: epochs between checkpoints (epoch numbers ``every, 2 every, ...`` are saved).
        extra: called with the number of epochs done; its dict of plain data (tensors,
            numbers, strings, lists, dicts) is added to the payload, e.g. a run's settings.
        write: False on processes that must not write (distributed: all ranks but 0).
        on_save: called with ``(path, epochs done)`` after each checkpoint is written.
    """

    def __init__(
        self,
        path: str | Path,
        every: int = 1,
        extra: Callable[[int], dict[str, Any]] | None = None,
        write: bool = True,
        on_save: Callable[[Path, int], None] | None = None,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        self.path = Path(path)
        self.every, self.extra, self.write, self.on_save = every, extra, write, on_save

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], trainer: Trainer) -> None:
        """Save after every ``every``-th epoch (``epoch`` counts from 0)."""
        if (epoch + 1) % self.every == 0:
            self.save(trainer, epoch + 1)

    def save(self, trainer: Trainer, epochs_done: int) -> None:
        """Write ``trainer``'s checkpoint after ``epochs_done`` epochs (if this process
        writes)."""
        if not self.write:
            return
        selection = trainer.l1_selection
        payload = {
            **(self.extra(epochs_done) if self.extra is not None else {}),
            "epoch": epochs_done,
            "trainer": trainer.state_dict(),
            "l1_selection": None if selection is None else selection.to_dict(),
        }
        save_checkpoint(self.path, payload)
        if self.on_save is not None:
            self.on_save(self.path, epochs_done)

    def read(self, required: Iterable[str] = ()) -> dict[str, Any] | None:
        """The checkpoint's payload, or None where there is none yet.

        Raises :class:`~neurowire.io.CheckpointError` for a damaged, foreign or unsafe file,
        or one that lacks a key of :data:`CHECKPOINT_KEYS` or ``required``.
        """
        if not self.path.exists():
            return None
        saved = load_checkpoint(self.path)
        keys = dict.fromkeys([*required, *CHECKPOINT_KEYS])
        missing = [key for key in keys if key not in saved]
        if missing:
            raise CheckpointError(
                f"{str(self.path)!r} lacks {', '.join(missing)}: not a complete checkpoint"
            )
        return saved

    def resume(self, trainer: Trainer, saved: dict[str, Any] | None = None) -> int:
        """Restore ``trainer`` (built as the checkpointed one) from ``saved`` (a payload of
        :meth:`read`; None reads the file) and return the epochs done, the ``initial_epoch``
        for :meth:`EProp.fit <neurowire.EProp.fit>`.

        A trainer whose ``DeepR(l1="auto")`` rules are unresolved takes the checkpoint's L1
        selection. Raises :class:`~neurowire.io.CheckpointError` (naming the file) when there
        is no checkpoint or it does not fit ``trainer``.
        """
        where = str(self.path)
        if saved is None:
            saved = self.read()
            if saved is None:
                raise CheckpointError(f"no checkpoint at {where!r}")
        if _l1.unresolved(trainer):
            if saved["l1_selection"] is None:
                raise CheckpointError(f"{where!r} was trained with a fixed L1, not l1='auto'")
            trainer.l1_selection = _l1.L1Selection.from_dict(saved["l1_selection"])
            _l1.resolve(trainer, trainer.l1_selection.chosen)
        try:
            trainer.load_state_dict(saved["trainer"])
        except _MISFIT as err:
            why = " ".join(str(err).split()) or type(err).__name__
            raise CheckpointError(f"{where!r} does not fit this network ({why})") from None
        return int(saved["epoch"])
