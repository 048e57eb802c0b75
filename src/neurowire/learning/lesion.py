"""A lesion during training: :class:`Lesion` cuts a random fraction of some projections'
synapses after a given epoch and keeps them cut while training goes on."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ..checks import check_number, check_seed
from ..structural.lesions import lesion, lesion_dense
from .loop import Callback

__all__ = ["Lesion"]


class Lesion(Callback):
    """Cut ``fraction`` of each named projection's synapses at the end of epoch ``epoch``
    (``epoch=10``: after ten epochs), after the callbacks listed before it, then keep them cut.

    A sparse projection loses the synapses from its store
    (:func:`~neurowire.structural.lesions.lesion`); only the projection's own rule can add
    synapses again (:class:`~neurowire.DeepR` refills its budget, a static projection stays
    cut). A dense projection has the same share of its entries set to zero
    (:func:`~neurowire.structural.lesions.lesion_dense`; a recurrent matrix's diagonal is no
    synapse and is never cut) together with their Adam moments, and after every later batch
    the cut entries of the weight and of its moments are set to zero again, so the network
    never runs with them (a permanent mask).

    Args:
        epoch: epochs trained before the cut, an int >= 1.
        fraction: share of each projection's synapses cut (``round(fraction * n)`` of ``n``),
            a number in [0, 1].
        projections: names of the trainer's projections to cut, each separately.
        seed: seeds the CPU generator of the cut; the projections draw from it in the order
            of ``projections``.
        measure: called with the trainer right after the cut (e.g.
            ``lambda t: t.evaluate(test)``); its dict is kept as ``record["after"]``.

    Attributes:
        record: None before the cut; then ``{"epoch", "fraction", "removed": {name: cut},
            "synapses_before": {name: n}, "after": the measure's dict or None}``.
        masks: ``{dense projection name: bool [n_pre, n_post]}``, True on the cut entries.

    :meth:`state_dict` holds the record and the masks; restored with :meth:`load_state_dict`
    (checkpoint it beside the trainer), a run resumed before the cut makes the same cut (the
    draw starts from ``seed`` then) and one resumed after it keeps holding the same entries
    at zero, so either continues exactly as an uninterrupted run.
    """

    def __init__(
        self,
        epoch: int,
        fraction: float,
        projections: Sequence[str],
        seed: int = 0,
        measure: Callable[[Any], Mapping[str, float]] | None = None,
    ) -> None:
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise ValueError(f"Lesion epoch must be an int >= 1, got {epoch!r}")
        if isinstance(projections, str) or not projections:
            raise ValueError(f"Lesion projections must be a list of names, got {projections!r}")
        self.epoch = epoch
        self.fraction = check_number("Lesion fraction", fraction, low=0.0, high=1.0)
        self.projections = [str(name) for name in projections]
        self.seed = check_seed("Lesion seed", seed)
        self.measure = measure
        self.record: dict[str, Any] | None = None
        self.masks: dict[str, Tensor] = {}

    def __repr__(self) -> str:
        return (
            f"Lesion(epoch={self.epoch}, fraction={self.fraction}, "
            f"projections={self.projections}, seed={self.seed}, done={self.done})"
        )

    @property
    def done(self) -> bool:
        """Whether the cut has been made."""
        return self.record is not None

    # ------------------------------------------------------------------ hooks
    def on_epoch_end(self, epoch: int, metrics: dict[str, float], trainer: Any) -> None:
        """Cut after epoch number :attr:`epoch` (``epoch`` here counts from 0)."""
        if epoch + 1 == self.epoch and not self.done:
            self.cut(trainer)

    def on_batch_end(self, batch: int, metrics: dict[str, float], trainer: Any) -> None:
        """Set the cut entries of the dense projections back to zero."""
        self.hold(trainer)

    # ------------------------------------------------------------------ the cut
    def cut(self, trainer: Any) -> None:
        """Cut every projection of :attr:`projections` now and record it (once)."""
        if self.done:
            raise ValueError(f"{self!r} has already cut")
        generator = torch.Generator().manual_seed(self.seed)
        projections = trainer.net.projections
        unknown = [name for name in self.projections if name not in projections]
        if unknown:
            raise ValueError(f"Lesion: no projection {unknown[0]!r}; known: {sorted(projections)}")
        before, removed = {}, {}
        for name in self.projections:
            proj = projections[name]
            if proj.sparse:
                before[name] = proj.synapses.nnz
                removed[name] = int(lesion(proj.synapses, self.fraction, generator).sum())
            else:
                before[name] = proj.weight.numel() - (proj.pre.n if proj.recurrent else 0)
                mask = lesion_dense(
                    proj.weight, self.fraction, generator, autapses=not proj.recurrent
                )
                self.masks[name] = mask
                removed[name] = int(mask.sum())
        self.hold(trainer)
        after = None if self.measure is None else dict(self.measure(trainer))
        self.record = {
            "epoch": self.epoch,
            "fraction": self.fraction,
            "removed": removed,
            "synapses_before": before,
            "after": after,
        }

    def hold(self, trainer: Any) -> None:
        """Zero the cut entries of every dense projection's weight and Adam moments."""
        for name, mask in self.masks.items():
            weight = trainer.net.projections[name].weight
            if mask.device != weight.device:  # restored from a checkpoint onto another device
                mask = self.masks[name] = mask.to(weight.device)
            with torch.no_grad():
                weight.masked_fill_(mask, 0.0)
            for moment in trainer.optimizer.state.get(name, {}).values():
                moment.masked_fill_(mask, 0.0)

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """The settings, the record and the masks (plain data and CPU tensors)."""
        return {
            "epoch": self.epoch,
            "fraction": self.fraction,
            "projections": list(self.projections),
            "seed": self.seed,
            "record": self.record,
            "masks": {name: mask.cpu().clone() for name, mask in self.masks.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; raises ``ValueError`` if its settings differ."""
        try:
            saved = (state["epoch"], state["fraction"], list(state["projections"]), state["seed"])
            record, masks = state["record"], dict(state["masks"])
        except (KeyError, TypeError) as err:
            raise ValueError(f"Lesion: bad saved state ({err})") from None
        mine = (self.epoch, self.fraction, self.projections, self.seed)
        if saved != mine:
            raise ValueError(
                f"Lesion: saved (epoch, fraction, projections, seed) {saved} differ from {mine}"
            )
        self.record = record
        self.masks = {name: torch.as_tensor(mask, dtype=torch.bool) for name, mask in masks.items()}
