"""Structural rules on the sparse layers of a ``torch.nn`` model, beside any ``torch.optim``
optimiser.

:class:`Rewiring` hosts any :class:`~neurowire.StructuralRule` on
:class:`~neurowire.nn.SparseLinear` / :class:`~neurowire.nn.SparseRecurrent` layers, as the
:class:`~neurowire.EProp` trainer hosts them on projections: through the same
:class:`~neurowire.structural.runner.RuleRunner` (seeded generators per rule, one context and
view per rule, all-or-nothing calls) and :class:`~neurowire.SynapseView`. Per training step::

    loss.backward()
    optimizer.step()      # first each rule's adjust_gradient (a step pre-hook), then the step
    rewirer.step()        # each rule's update, optimiser state following the synapses
    optimizer.zero_grad()
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ..grid import Grid
from ..structural.base import StructuralRule
from ..structural.log import RewiringLog
from ..structural.runner import Clock, RuleRunner
from ..structural.view import SynapseView
from .linear import SparseLinear
from .optimizer_state import following_synapses, param_group

#: ``neuron_state(layer) -> (pre_state, post_state)``, each ``{name: tensor [B, n]}``
NeuronState = Callable[[SparseLinear], tuple[Mapping[str, Tensor], Mapping[str, Tensor]]]


def sparse_layers(model: nn.Module) -> dict[str, SparseLinear]:
    """``{qualified name: layer}`` of every :class:`SparseLinear` (and
    :class:`~neurowire.nn.SparseRecurrent`) in ``model``, in module order (``"layer"`` for
    ``model`` itself)."""
    return {name or "layer": m for name, m in model.named_modules() if isinstance(m, SparseLinear)}


class Rewiring:
    """Structural rules acting on sparse layers trained by autograd and a ``torch.optim``
    optimiser; call :meth:`step` after ``optimizer.step()``.

    Args:
        rules: ``{layer: rule}`` or ``(layer, rule)`` pairs (a layer may appear in several
            pairs; the rules run in this order). Each rule object serves one layer.
        optimizer: the optimiser of the layers' weights, or None. Given, its per-slot state of
            every layer's weight moves with the synapses during each rule call and is 0 for
            new synapses (:mod:`~neurowire.nn.optimizer_state`; unknown state raises
            ``ValueError`` naming the key), each rule's
            :meth:`~neurowire.StructuralRule.adjust_gradient` runs on the weight's ``.grad``
            just before every ``optimizer.step()`` (a step pre-hook, skipped for a weight
            whose ``.grad`` is None; a closure given to the step runs after it), and rules
            see the learning rate of the weight's param group as ``ctx.learning_rate``.
            Without it, only ``.grad`` follows the synapses.
        model: names the layers by their path in it (:func:`sparse_layers`); without it they
            are ``"layer0"``, ``"layer1"``, ... in order of appearance.
        seed: seeds the rules' generators (rule ``i`` by
            :func:`~neurowire.structural.base.rule_seed`).
        grids: ``{layer: (pre_grid, post_grid)}`` for rules that use distances (default
            none).
        neuron_state: ``neuron_state(layer) -> (pre_state, post_state)``, each
            ``{name: [B, n]}``, called when a rule reads ``view.pre_state`` or
            ``view.post_state``; without it both are empty (this host sees no neurons).
        batch_size: ``ctx.batch_size``, the trials the gradient sums over: 1 for a mean loss
            (settable before each step for a summed loss over varying batches).
        log_events: record every formation and elimination in :attr:`log` too
            (``log.events(name)``; distances NaN without grids).

    Every rule call is all-or-nothing: if a rule raises, its layers, the moving optimiser state
    and :attr:`log` are as before the call (calls completed earlier in the same :meth:`step`
    stay). Rules see ``ctx.step`` (completed :meth:`step` calls; the running one included
    during :meth:`step`), ``ctx.t = ctx.dt = 0`` (no model time) and ``ctx.batch_size``.

    Attributes:
        layers: ``{name: layer}``.
        log: the :class:`~neurowire.RewiringLog`: removed, added and failed counts per layer
            and call (``log.calls(name)``, ``log.totals(name)``).
        last: ``{name: {"removed", "added", "failed"}}`` of the last :meth:`step`.
        step_count: completed :meth:`step` calls.
    """

    def __init__(
        self,
        rules: Mapping[SparseLinear, StructuralRule]
        | Iterable[tuple[SparseLinear, StructuralRule]],
        optimizer: torch.optim.Optimizer | None = None,
        *,
        model: nn.Module | None = None,
        seed: int = 0,
        grids: Mapping[SparseLinear, tuple[Grid | None, Grid | None]] | None = None,
        neuron_state: NeuronState | None = None,
        batch_size: int = 1,
        log_events: bool = False,
    ) -> None:
        pairs = list(rules.items() if isinstance(rules, Mapping) else rules)
        if not pairs:
            raise ValueError("Rewiring needs at least one (layer, rule) pair, got none")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer or None, got {type(optimizer).__name__}"
            )
        self.layers = _name_layers([layer for layer, _ in pairs], model)
        names = {id(layer): name for name, layer in self.layers.items()}
        seen: set[int] = set()
        for _, rule in pairs:
            if not isinstance(rule, StructuralRule):
                raise TypeError(f"expected a nw.StructuralRule, got {type(rule).__name__}")
            if id(rule) in seen:
                raise ValueError(f"{rule!r} is given twice: each rule object serves one layer")
            seen.add(id(rule))
        devices = {layer.synapses.device for layer in self.layers.values()}
        if len(devices) > 1:
            raise ValueError(f"the layers lie on several devices {sorted(map(str, devices))}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.log_events = bool(log_events)
        self._grids = {id(k): v for k, v in (grids or {}).items()}
        self._neuron_state = neuron_state
        self.log = RewiringLog()
        self.step_count = 0
        self.last: dict[str, dict[str, int]] = {}
        self._rules = [(names[id(layer)], rule) for layer, rule in pairs]
        self.runner = RuleRunner(
            self._rules, seed, devices.pop(), self._make_view, self.log, known=list(self.layers)
        )
        self._hook = None
        if optimizer is not None:
            for name, layer in self.layers.items():
                if param_group(optimizer, layer.weight) is None:
                    raise ValueError(f"layer {name!r}: its weight is not in the optimizer")
            self._hook = optimizer.register_step_pre_hook(self._before_optimizer_step)
        self._setup()

    @property
    def rules(self) -> list[tuple[str, StructuralRule]]:
        """``(layer name, rule)`` in the order they run."""
        return list(self._rules)

    def __repr__(self) -> str:
        rules = ", ".join(f"{name}: {type(rule).__name__}" for name, rule in self._rules)
        return f"{type(self).__name__}({rules}; step_count={self.step_count})"

    def _setup(self) -> None:
        """Every rule's :meth:`~neurowire.StructuralRule.setup`, once, at construction."""
        self.runner.setup(self._clock(None))

    # ------------------------------------------------------------------ the calls
    def step(self) -> dict[str, dict[str, int]]:
        """Run every rule's update once (after ``optimizer.step()``); returns and keeps in
        :attr:`last` the removed, added and failed synapses per layer."""
        step = self.step_count + 1
        for name, layer in self.layers.items():
            if layer.weight.data_ptr() != layer.synapses.vars["weight"].data_ptr():
                raise ValueError(
                    f"layer {name!r}: its weight no longer shares memory with its store "
                    f"(replaced, or moved without the store), so rewiring would miss it"
                )
        counts = {name: [0, 0, 0] for name in self.layers}
        with following_synapses(self.layers, self.optimizer):
            for i, (name, _) in enumerate(self._rules):
                done = self.runner.update(i, self._clock(name, step), self.log_events)
                for touched, numbers in done.items():
                    counts[touched] = [a + b for a, b in zip(counts[touched], numbers, strict=True)]
        self.step_count = step
        self.last = {
            name: dict(zip(("removed", "added", "failed"), c, strict=True))
            for name, c in counts.items()
        }
        return self.last

    def _before_optimizer_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any):
        """The step pre-hook: each rule's ``adjust_gradient`` on its layer's ``.grad``."""
        with torch.no_grad():
            for i, (name, _) in enumerate(self._rules):
                grad = self.layers[name].weight.grad
                if grad is None:
                    continue
                out = self.runner.adjust_gradient(i, grad, self._clock(name))
                if out is not grad:
                    grad.copy_(out)

    def close(self) -> None:
        """Stop adjusting gradients before the optimiser's steps (removes the step pre-hook)."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _clock(self, name: str | None, step: int | None = None) -> Clock:
        lr = None
        if name is not None and self.optimizer is not None:
            group = param_group(self.optimizer, self.layers[name].weight)
            lr = float(group["lr"]) if group is not None and "lr" in group else None
        step = self.step_count if step is None else step
        return Clock(step, 0.0, 0.0, self.batch_size, lr)

    def _make_view(self, name: str, generator: torch.Generator, log_events: bool) -> SynapseView:
        layer = self.layers[name]
        pre_grid, post_grid = self._grids.get(id(layer), (None, None))
        pre_state, post_state = ({}, {})
        if self._neuron_state is not None:
            pre_state, post_state = self._neuron_state(layer)
        return SynapseView(
            layer.synapses,
            pre_state=pre_state,
            post_state=post_state,
            pre_grid=pre_grid,
            post_grid=post_grid,
            log=self.log,
            step=self.step_count,
            log_events=log_events,
            generator=generator,
        )

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """What resuming needs beside the model's and the optimiser's state dicts: each rule's
        own state (DEEP R's sign bits) and generators, the store variables the rules keep
        beside ``"weight"`` (with the connectivity they belong to), the log and the count."""
        layers = {}
        for name, layer in self.layers.items():
            s = layer.synapses
            layers[name] = {
                "row_length": s.row_length.cpu().clone(),
                "ind": s.ind.cpu().clone(),
                "vars": {k: v.cpu().clone() for k, v in s.vars.items() if k != "weight"},
            }
        runner = self.runner.state_dict()
        return {
            "rules": [rule.state_dict() for _, rule in self._rules],
            "rule_types": [type(rule).__name__ for _, rule in self._rules],
            "rule_generators": runner["rule_generators"],
            "rule_rngs": runner["rule_rngs"],
            "layers": layers,
            "log": self.log.state_dict(),
            "step_count": self.step_count,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` into a rewirer built on the same layers and rules.

        Load the model's state dict (weights and connectivity) first: the rules' store
        variables are saved with the connectivity they belong to, and a layer whose
        connectivity differs raises ``ValueError``.
        """
        types = [type(rule).__name__ for _, rule in self._rules]
        if list(state["rule_types"]) != types or set(state["layers"]) != set(self.layers):
            raise ValueError(
                f"saved rewiring has rules {list(state['rule_types'])} on layers "
                f"{sorted(state['layers'])}, this one {types} on {sorted(self.layers)}"
            )
        for name, layer in self.layers.items():
            s, saved = layer.synapses, state["layers"][name]
            live = s.live.cpu()
            same = saved["ind"].shape == live.shape and torch.equal(
                saved["row_length"], s.row_length.cpu()
            )
            if not (same and torch.equal(saved["ind"][live], s.ind.cpu()[live])):
                raise ValueError(
                    f"layer {name!r}: its connectivity differs from the saved one; load the "
                    f"model's state_dict first"
                )
        for name, layer in self.layers.items():
            s = layer.synapses
            for key, value in state["layers"][name]["vars"].items():
                value = torch.as_tensor(value).to(s.device)
                if key in s.vars:
                    s.vars[key].copy_(value)
                else:
                    s.add_var(key, init=value, dtype=value.dtype)
            s.values_changed()
        for (_, rule), saved in zip(self._rules, state["rules"], strict=True):
            rule.load_state_dict(copy.deepcopy(saved))
        self.runner.load_generators(state)
        self.log.load_state_dict(state["log"])
        self.step_count = int(state["step_count"])


def _name_layers(layers: list[Any], model: nn.Module | None) -> dict[str, SparseLinear]:
    """``{name: layer}`` of the distinct ``layers``, named by ``model`` or by position."""
    distinct: dict[int, SparseLinear] = {}
    for layer in layers:
        if not isinstance(layer, SparseLinear):
            raise TypeError(
                f"expected a nw.nn.SparseLinear or SparseRecurrent layer, got "
                f"{type(layer).__name__}"
            )
        distinct.setdefault(id(layer), layer)
    if model is None:
        return {f"layer{i}": layer for i, layer in enumerate(distinct.values())}
    paths = {id(m): name for name, m in sparse_layers(model).items()}
    missing = sum(k not in paths for k in distinct)
    if missing:
        raise ValueError(f"{missing} of the rules' layers are not modules of the given model")
    return {paths[k]: layer for k, layer in distinct.items()}
