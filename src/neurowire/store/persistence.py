"""Saving, restoring, moving and checking a store: ``state_dict`` and its inverses,
``validate`` and the device move. The functions here are the store's methods of the same
names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from ..errors import StoreError
from .arguments import resolve_device

if TYPE_CHECKING:
    from .core import RaggedSynapses


def validate(store: RaggedSynapses) -> None:
    """Raise :class:`StoreError` (a ``ValueError``) naming the first broken invariant, or
    saying that the structure was written outside a mutation (cheap enough for tests)."""
    store._check_sealed()
    try:
        check_structure(store)
    except StoreError:
        raise
    except ValueError as err:
        raise StoreError(str(err)) from None


def check_structure(store: RaggedSynapses) -> None:
    """The invariants, checked on the raw arrays; raises ``ValueError``."""
    n = store.name
    rl, ind = store._row_length, store._ind
    if rl.shape != (store.n_pre,) or rl.dtype != torch.int64:
        raise ValueError(f"{n}: row_length has shape {tuple(rl.shape)} dtype {rl.dtype}")
    if ind.shape != (store.n_pre, store.capacity) or ind.dtype != torch.int64:
        raise ValueError(f"{n}: ind has shape {tuple(ind.shape)} dtype {ind.dtype}")
    if bool(((rl < 0) | (rl > store.capacity)).any()):
        row = int(((rl < 0) | (rl > store.capacity)).nonzero()[0, 0])
        raise ValueError(f"{n}: row {row} has length {int(rl[row])} outside [0, {store.capacity}]")
    # rebuilt from the raw arrays, never from the caches: they may predate a corruption
    live = torch.arange(store.capacity, device=store.device)[None, :] < rl[:, None]
    pre = live.nonzero()[:, 0]
    post = ind[live]
    if post.numel() and bool(((post < 0) | (post >= store.n_post)).any()):
        raise ValueError(f"{n}: a live synapse targets a column outside [0, {store.n_post})")
    key = torch.sort(pre * store.n_post + post).values
    if key.numel() > 1 and bool((key[1:] == key[:-1]).any()):
        dup = key[1:][key[1:] == key[:-1]][0].item()
        raise ValueError(f"{n}: duplicate synapse ({dup // store.n_post}, {dup % store.n_post})")
    if not store.autapses and bool((pre == post).any()):
        raise ValueError(f"{n}: autapse present although autapses=False")
    for key_name, var in store.vars.items():
        if var.shape[-2:] != (store.n_pre, store.capacity) or var.dim() not in (2, 3):
            raise ValueError(f"{n}: variable {key_name!r} has shape {tuple(var.shape)}")
        if var.device != store.device:
            raise ValueError(f"{n}: variable {key_name!r} is on {var.device}")


def state_dict(store: RaggedSynapses) -> dict[str, Any]:
    """Everything needed to rebuild the store (tensors are copies)."""
    store._check_sealed()
    return {
        "n_pre": store.n_pre,
        "n_post": store.n_post,
        "capacity": store.capacity,
        "name": store.name,
        "autapses": store.autapses,
        "version": store.version,
        "row_length": store._row_length.clone(),
        "ind": store._ind.clone(),
        "vars": {k: v.clone() for k, v in store.vars.items()},
    }


def from_state_dict(
    cls: type[RaggedSynapses], d: Mapping[str, Any], device: str | torch.device | None = None
) -> RaggedSynapses:
    """Inverse of :meth:`state_dict`; ``device=None`` keeps the tensors' device."""
    dev = torch.device(device) if device is not None else d["ind"].device
    store = cls(d["n_pre"], d["n_post"], d["capacity"], dev, name=d["name"], autapses=d["autapses"])
    store._row_length = d["row_length"].to(dev, torch.int64).clone()
    store._ind = d["ind"].to(dev, torch.int64).clone()
    store.vars = {k: v.to(dev).clone() for k, v in d["vars"].items()}
    store.version = int(d["version"])
    store._seal()
    store.validate()
    return store


def load_state_dict(store: RaggedSynapses, d: Mapping[str, Any]) -> None:
    """Restore :meth:`state_dict` into this store in place (same shape and variables).

    The tensors are overwritten in place (``ind``, ``row_length`` and every variable stay
    the same objects; a variable whose saved shape differs, another batch size say, is
    replaced). Bumps :attr:`version` and :attr:`values_version`; also repairs a store
    whose structure was written outside a mutation.

    Raises ``ValueError`` naming what differs, before changing anything.
    """
    for key in ("n_pre", "n_post", "capacity"):
        if int(d[key]) != getattr(store, key):
            raise ValueError(
                f"{store.name}: saved {key}={d[key]} does not match this store's "
                f"{getattr(store, key)}"
            )
    if set(d["vars"]) != set(store.vars):
        raise ValueError(
            f"{store.name}: saved variables {sorted(d['vars'])} differ from {sorted(store.vars)}"
        )
    restored = from_state_dict(type(store), d, device=store.device)  # validates
    store._row_length.copy_(restored._row_length)
    store._ind.copy_(restored._ind)
    for k, var in store.vars.items():
        saved = restored.vars[k]
        if saved.shape == var.shape:
            var.copy_(saved)
        else:
            store.vars[k] = saved.to(var.dtype)
    store.version = max(store.version, restored.version)
    store._cache.clear()
    store._changed()


def to(store: RaggedSynapses, device: str | torch.device) -> RaggedSynapses:
    """Move every tensor to ``device`` in place; returns self."""
    dev = resolve_device(device)
    if dev == store.device:
        return store
    store._check_sealed()
    store.device = dev
    store._row_length = store._row_length.to(dev)
    store._ind = store._ind.to(dev)
    store.vars = {k: v.to(dev) for k, v in store.vars.items()}
    store._cache.clear()
    store._layout = None  # let the arrays it views go
    store._seal()
    return store


def setstate(store: RaggedSynapses, state: dict[str, Any]) -> None:
    """Unpickling: unpickled / deep-copied tensors restart their version counters, so the
    seal is renewed and the caches (whose recorded counters no longer apply) dropped."""
    store.__dict__.update(state)
    store._cache = {}
    store._layout = None
    store._seal()


def getstate(store: RaggedSynapses) -> dict[str, Any]:
    """Pickling: the numpy views of the native layout would travel as copies; left out."""
    return {**store.__dict__, "_layout": None}
