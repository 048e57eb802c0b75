"""DEEP R for ``torch.nn`` models: ``rewirer = nw.nn.DeepR(model, optimizer, l1=...)``, then
``rewirer.step()`` after every ``optimizer.step()``.

The rule is :class:`neurowire.DeepR` itself (one per sparse layer), hosted by
:class:`~neurowire.nn.Rewiring`: fixed signs per potential pair, removal of synapses whose
weight crossed zero against their sign, as many new synapses at weight 0, so every layer keeps
its synapse count. The optimiser's per-slot state (Adam's moments, SGD's momentum) moves with
the synapses and is 0 for new ones (:mod:`~neurowire.nn.optimizer_state`).

The L1 term of ``mode="genn"``. It must act before the optimiser step, while the user calls
:meth:`~Rewiring.step` after it, so a step pre-hook on the optimiser adds
``batch_size * l1 * sign`` to the ``.grad`` of every live synapse at the start of each
``optimizer.step()`` (padding slots get nothing; a weight whose ``.grad`` is None is skipped,
as the optimiser skips it). Consequences:

* the term is added once per optimiser step, however many ``backward()`` calls accumulated
  the gradient;
* ``l1`` is per trial, as in :class:`~neurowire.EProp`: with a loss that is a *mean* over the
  batch (and over accumulated micro-batches, each divided by their number) keep
  ``batch_size=1``; with a loss *summed* over ``B`` trials, or micro-batch mean losses
  accumulated ``B`` times without dividing, set ``batch_size=B`` (:attr:`Rewiring.batch_size`
  may change before any step). Adam's step does not change when its gradient is scaled, so
  ``mean + l1 sign`` and ``B mean + B l1 sign`` give the same step; with SGD they differ by
  ``B``, like the task gradient itself;
* gradient clipping done before ``optimizer.step()`` does not clip the term; with a
  ``torch.amp.GradScaler`` call ``scaler.unscale_(optimizer)`` before ``scaler.step`` so that
  the term meets unscaled gradients;
* the gradient must exist when ``optimizer.step()`` is called: a closure that computes it
  inside the step runs after the hook.

``mode="original"`` adds no gradient term; its update uses the learning rate of the weight's
param group unless ``lr=`` is given.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..structural.deep_r import DeepR as DeepRRule
from .linear import SparseLinear
from .rewiring import Rewiring, sparse_layers


class DeepR(Rewiring):
    """DEEP R on every :class:`SparseLinear` / :class:`~neurowire.nn.SparseRecurrent` layer.

    Args:
        model_or_modules: a model (its sparse layers are found and named by their path) or an
            iterable of sparse layers (named ``"layer0"``, ...).
        optimizer: the ``torch.optim`` optimiser of the layers' weights (see
            :class:`Rewiring` for the state that follows the synapses).
        l1: L1 strength per trial (see the module docstring), a number >= 0 or ``"auto"``
            (set later with :meth:`resolve_l1`, e.g. to what :func:`neurowire.nn.select_l1`
            chose; :meth:`~Rewiring.step` and ``optimizer.step()`` raise until then).
        mode, regrow, temperature, lr, fused: as in :class:`neurowire.DeepR`.
        seed: seeds the rules' generators (the signs of unconnected pairs and the placements).
        batch_size, log_events: as in :class:`Rewiring`.

    A layer's signs are drawn at construction (live synapses keep the sign of their weight,
    other pairs get a fair coin); a ``"sign"`` variable left in a store by an earlier rewirer
    is replaced. Counts per step are in :attr:`~Rewiring.last` and :attr:`~Rewiring.log`.
    """

    def __init__(
        self,
        model_or_modules: nn.Module | Iterable[SparseLinear],
        optimizer: torch.optim.Optimizer,
        l1: float | str = 0.01,
        mode: str = "genn",
        regrow: str = "pair",
        *,
        temperature: float = 0.0,
        lr: float | None = None,
        fused: bool = True,
        seed: int = 0,
        batch_size: int = 1,
        log_events: bool = False,
    ) -> None:
        if isinstance(model_or_modules, nn.Module):
            model, layers = model_or_modules, list(sparse_layers(model_or_modules).values())
            if not layers:
                raise ValueError(
                    f"found no nw.nn.SparseLinear or SparseRecurrent layer in "
                    f"{type(model).__name__}"
                )
        else:
            model, layers = None, list(model_or_modules)
            if not layers:
                raise ValueError("DeepR needs at least one sparse layer, got none")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        rules = [
            (layer, DeepRRule(l1, mode, regrow, temperature=temperature, lr=lr, fused=fused))
            for layer in layers
        ]
        super().__init__(
            rules,
            optimizer,
            model=model,
            seed=seed,
            batch_size=batch_size,
            log_events=log_events,
        )

    def _setup(self) -> None:
        """Drop a ``"sign"`` variable an earlier rewirer left (it caches *that* rewirer's
        signs), then set the rules up: they draw their signs and register it again."""
        for layer in self.layers.values():
            layer.synapses.vars.pop("sign", None)
        super()._setup()

    @property
    def l1(self) -> float | None:
        """The L1 strength per trial (None while ``l1="auto"`` is unresolved)."""
        return self._rules[0][1].l1

    def resolve_l1(self, value: float) -> None:
        """Set the L1 strength per trial of every layer's rule (``l1="auto"`` or not)."""
        for _, rule in self._rules:
            rule.resolve_l1(value)
