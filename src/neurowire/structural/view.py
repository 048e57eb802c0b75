"""What a structural rule sees of a projection, and the only way it changes it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..grid import Grid
from ..store import NativeEdit, RaggedSynapses
from .log import ELIMINATION, FORMATION, RewiringLog


class SynapseView:
    """A projection's store plus neuron state and geometry, seen by a rule during one call.

    Attributes (tensors on the simulation device):
        store: the :class:`~neurowire.RaggedSynapses` itself.
        live: bool ``[n_pre, capacity]``; ``pre`` int ``[n_pre, capacity]`` (row ids);
        post: int ``[n_pre, capacity]`` (``store.ind``; padding unspecified);
        row_length: int ``[n_pre]``. ``live``, ``post`` and ``row_length`` are read-only: the
        store detects in-place writes (see :meth:`~neurowire.RaggedSynapses.mutation`).
        pre_state, post_state: neuron state variables by name, ``[B, n]``.
        pre_grid, post_grid: :class:`~neurowire.grid.Grid` or None.

    ``view["weight"]`` is a per-synapse variable ``[n_pre, capacity]`` (``[B, ...]`` if batched);
    it may be written in place (then call ``view.store.values_changed()``). The structure changes
    through :meth:`remove`, :meth:`add`, :meth:`grow` and :meth:`replace_native`, which count and
    log what they do.

    A view is valid for one rule call: the :class:`~.runner.RuleRunner` hands the same object
    out again for later calls (:meth:`renew`).
    """

    def __init__(
        self,
        store: RaggedSynapses,
        *,
        pre_state: Mapping[str, Tensor],
        post_state: Mapping[str, Tensor],
        pre_grid: Grid | None,
        post_grid: Grid | None,
        log: RewiringLog | None = None,
        step: int = 0,
        t_ms: float = 0.0,
        log_events: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        self.store = store
        self._pre_state, self._post_state = dict(pre_state), dict(post_state)
        self._state_source: Callable[[], SynapseView] | None = None
        self.pre_grid, self.post_grid = pre_grid, post_grid
        self._log, self._step, self._t, self._log_events = log, step, t_ms, log_events
        self._generator = generator
        self.removed = self.added = self.failed = 0

    def renew(self, step: int, t_ms: float, state: Callable[[], SynapseView]) -> None:
        """Make this view the view of a new call at ``step`` (``t_ms`` [ms]): counts back to 0,
        neuron state taken from ``state()`` (a new view of the same projection, store and
        grids) when the rule first reads it."""
        self._step, self._t = step, t_ms
        self.removed = self.added = self.failed = 0
        self._state_source = state

    def _state(self) -> None:
        """Take the neuron state of a call that renewed this view (:meth:`renew`)."""
        source, self._state_source = self._state_source, None
        if source is not None:
            fresh = source()
            self._pre_state, self._post_state = fresh.pre_state, fresh.post_state

    @property
    def pre_state(self) -> dict[str, Tensor]:
        """Presynaptic neuron state variables by name, ``[B, n_pre]``."""
        self._state()
        return self._pre_state

    @property
    def post_state(self) -> dict[str, Tensor]:
        """Postsynaptic neuron state variables by name, ``[B, n_post]``."""
        self._state()
        return self._post_state

    @property
    def log_events(self) -> bool:
        """Whether this view records every formation and elimination in a log."""
        return self._log_events and self._log is not None

    # ------------------------------------------------------------------ reading
    def __getitem__(self, name: str) -> Tensor:
        return self.store._var(name)

    @property
    def live(self) -> Tensor:
        return self.store.live

    @property
    def post(self) -> Tensor:
        return self.store.ind

    @property
    def pre(self) -> Tensor:
        s = self.store
        return torch.arange(s.n_pre, device=s.device)[:, None].expand(s.n_pre, s.capacity)

    @property
    def row_length(self) -> Tensor:
        return self.store.row_length

    @property
    def n_pre(self) -> int:
        return self.store.n_pre

    @property
    def n_post(self) -> int:
        return self.store.n_post

    @property
    def capacity(self) -> int:
        return self.store.capacity

    @property
    def pre_pos(self) -> Tensor:
        """float ``[n_pre, 2]`` (x, y) grid positions of the presynaptic neurons."""
        return self._grid("pre").positions(self.store.device)

    @property
    def post_pos(self) -> Tensor:
        """float ``[n_post, 2]`` (x, y) grid positions of the postsynaptic neurons."""
        return self._grid("post").positions(self.store.device)

    def _grid(self, which: str) -> Grid:
        grid = self.pre_grid if which == "pre" else self.post_grid
        if grid is None:
            raise ValueError(f"{self.store.name}: the {which}synaptic population has no grid")
        return grid

    def distance_of(self, pre: Tensor, post: Tensor) -> Tensor:
        """Pre-post distance [grid units] (periodic on a torus) for pairs of neuron ids."""
        grid = self._grid("post")
        if self._grid("pre").shape != grid.shape:
            raise ValueError(f"{self.store.name}: distances need equal pre and post grids")
        return grid.distance(pre, post)

    @property
    def distance(self) -> Tensor:
        """float ``[n_pre, capacity]``: distance of every slot's synapse (padding arbitrary)."""
        return self.distance_of(self.pre, self.post)

    def contains(self, pre: Any, post: Any) -> Tensor:
        return self.store.contains(pre, post)

    # ------------------------------------------------------------------ changing
    def remove(self, mask: Tensor) -> Tensor:
        """Remove live synapses where ``mask [n_pre, capacity]`` is True; returns per-row counts."""
        if not self._log_events:
            removed = self.store.remove(mask)
            self.removed += int(removed.sum())
            return removed
        gone = torch.as_tensor(mask, device=self.store.device) & self.store.live
        if not bool(gone.any()):
            return self.store.remove(gone)  # validates mask, removes nothing
        pre, post = gone.nonzero(as_tuple=True)[0], self.store.ind[gone]
        removed = self.store.remove(mask)
        self.removed += int(removed.sum())
        self._record(pre, post, ELIMINATION)
        return removed

    def add(
        self,
        pre: Any,
        post: Any,
        on_full: str = "raise",
        on_duplicate: str = "raise",
        **values: Any,
    ) -> Tensor:
        """Add explicit pairs (see :meth:`RaggedSynapses.add`); full rows count as failures."""
        pre_t = torch.as_tensor(pre, device=self.store.device)
        post_t = torch.as_tensor(post, device=self.store.device)
        added = self.store.add(pre_t, post_t, on_full=on_full, on_duplicate=on_duplicate, **values)
        n = int(added.sum())
        self.added += n
        if on_full == "skip":
            full = self._full_rejections(pre_t, added)
            self.failed += full
        if self._log_events and n:
            self._record(pre_t[added], post_t[added], FORMATION)
        return added

    def replace_native(self, gone: Any, per_row: Any, key: int, values: Any = None) -> NativeEdit:
        """Remove and add in one edit (see :meth:`RaggedSynapses.replace_native`, CPU only);
        counts and logs both parts. Events are prepared before the store changes, so only a
        completed edit is logged and nothing raises after it."""
        s = self.store
        pending: list[tuple] = []
        hook = values
        if self.log_events:
            rows, slots = np.nonzero(np.asarray(gone) & s.live.numpy())
            pending.append(self._event(rows, s.ind.numpy()[rows, slots], ELIMINATION))

            def hook(pre: np.ndarray, post: np.ndarray) -> Any:
                pending.append(self._event(pre, post, FORMATION))
                return {} if values is None else values(pre, post)

        edit = s.replace_native(gone, per_row, key, hook)
        self.removed += int(edit.removed.sum())
        self.added += edit.pre.size
        for event in pending:
            self._log.record_events(*event)
        return edit

    def _full_rejections(self, pre: Tensor, added: Tensor) -> int:
        # pairs not added whose row is now full (as opposed to duplicates)
        rejected = pre[~added]
        if rejected.numel() == 0:
            return 0
        full = self.store.row_length[rejected] >= self.store.capacity
        return int(full.sum())

    def grow(self, per_row: Any, **values: Any) -> Tensor:
        """Add ``per_row[i]`` synapses at uniformly drawn unconnected targets of each row ``i``.

        Requests beyond a row's free capacity or free columns are counted as failures.
        Returns int ``[n_pre]`` added per row.
        """
        counts = torch.as_tensor(per_row, device=self.store.device)
        before = self.store.row_length.clone() if self._log_events else None
        added = self.store.grow(counts, generator=self._generator, **values)
        n = int(added.sum())
        self.added += n
        self.failed += int(counts.sum()) - n
        if before is not None and n:
            slots = torch.arange(self.store.capacity, device=self.store.device)
            new = (slots[None, :] >= before[:, None]) & self.store.live
            pre, _ = new.nonzero(as_tuple=True)
            self._record(pre, self.store.ind[new], FORMATION)
        return added

    def _record(self, pre: Tensor, post: Tensor, kind: int) -> None:
        if self._log is not None:
            self._log.record_events(*self._event(pre, post, kind))

    def _event(self, pre: Any, post: Any, kind: int) -> tuple:
        """Arguments of :meth:`RewiringLog.record_events` for the pairs ``(pre, post)``."""
        pre, post = torch.as_tensor(pre), torch.as_tensor(post)
        if self.pre_grid is not None and self.post_grid is not None:
            dist = self.distance_of(pre, post)
        else:
            dist = torch.full(pre.shape, float("nan"))
        return self.store.name, self._t, pre, post, kind, dist
