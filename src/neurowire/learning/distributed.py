"""Data-parallel e-prop over ``torch.distributed`` ranks (gloo on CPUs, NCCL on GPUs).

Every rank holds a full copy of the network and draws the same *global* batch of ``B`` trials
(same data, same seed, same shuffle). Rank ``r`` of ``W`` simulates only its shard, trials
``[floor(r B / W), floor((r + 1) B / W))``: shards differ in size by at most one trial when
``W`` does not divide ``B``, and ``B < W`` is an error during training (a rank would have no
trial). The per-rank sums that :class:`~neurowire.EProp` needs (task and regulariser gradients,
hidden spike counts, the loss, readout scores, input spike counts) are then summed over the ranks
by :func:`sum_identical`: a ``reduce`` onto rank 0 followed by a ``broadcast`` from rank 0, so that
every rank holds the same bits by construction. (``all_reduce`` promises that nowhere in its
documentation: NCCL's maintainers say every rank gets the same value, NVIDIA/nccl#855, and gloo
says nothing. The price is a second message of the gradients' size, small next to simulating a
batch.) Adam and the structural rules, seeded identically on every rank, then take identical
steps from identical gradients, so weights and connectivity never diverge;
:func:`check_consistent` verifies that.

Launch with ``torchrun`` (``torchrun --nproc-per-node N -m neurowire classify ...``; on several
nodes, torchrun's rendezvous sets ``MASTER_ADDR``/``MASTER_PORT`` for every worker) and call
:func:`init_process_group` in every worker before building the trainer. Without torchrun's
environment variables nothing here does anything.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "ENV_VARS",
    "check_batches",
    "check_consistent",
    "init_process_group",
    "is_active",
    "launch_rank",
    "launched",
    "local_device",
    "rank",
    "shard",
    "spread_rows",
    "state_digest",
    "sum_identical",
    "world_size",
]

#: the variables torchrun sets in every worker (read by :func:`init_process_group`)
ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


# ---------------------------------------------------------------------- process group
def launched() -> bool:
    """True in a worker started by torchrun (or by hand with its variables) with
    ``WORLD_SIZE > 1``."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def launch_rank() -> int:
    """This process's rank as torchrun's ``RANK`` gives it (0 when not launched), readable
    before the process group is joined."""
    return int(os.environ.get("RANK", "0")) if launched() else 0


def local_device(device: str | torch.device) -> torch.device:
    """The device this worker should use: ``"cuda"`` without an index becomes
    ``cuda:LOCAL_RANK`` in a torchrun worker; anything else is returned unchanged. An explicit
    ``cuda:N`` with several workers per node is refused (they would share one GPU)."""
    dev = torch.device(device)
    if dev.type != "cuda" or not launched():
        return dev
    if dev.index is not None:
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        if per_node > 1:
            raise ValueError(
                f"device {str(dev)!r} with {per_node} processes per node would put them all on "
                f"one GPU; pass 'cuda' (each process takes cuda:LOCAL_RANK)"
            )
        return dev
    local = int(os.environ.get("LOCAL_RANK", "0"))
    count = torch.cuda.device_count()
    if local >= count:
        raise ValueError(
            f"LOCAL_RANK={local} but this node has {count} GPU{'s' if count != 1 else ''}; "
            f"start at most {count} processes per node (torchrun --nproc-per-node)"
        )
    return torch.device("cuda", local)


def init_process_group(
    device: str | torch.device = "cpu", timeout: timedelta | None = None
) -> bool:
    """Join the process group that torchrun's environment variables describe.

    Args:
        device: the trainer's device; ``cuda`` selects the NCCL backend (and makes
            ``cuda:LOCAL_RANK`` the current device), ``cpu`` gloo.
        timeout: for collectives (default: torch's).

    Returns True if this process is now one of ``WORLD_SIZE > 1`` ranks (also when a group was
    already initialised), False without torchrun's variables or with ``WORLD_SIZE=1``.
    Raises ``ValueError`` naming the missing variables when only some are set.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if not launched():
        return False
    missing = [name for name in ENV_VARS if name not in os.environ]
    if missing:
        raise ValueError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set; launch with torchrun"
        )
    if not dist.is_available():
        raise RuntimeError("this PyTorch build has no torch.distributed")
    dev = local_device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        backend = "nccl"
    else:
        backend = "gloo"
    kwargs = {} if timeout is None else {"timeout": timeout}
    dist.init_process_group(backend=backend, init_method="env://", **kwargs)
    return dist.get_world_size() > 1


def is_active() -> bool:
    """True if a default process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank in the default group (0 without one)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Ranks in the default group (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def placement(distributed: bool | None) -> tuple[int, int]:
    """``(rank, world size)`` of a trainer given its ``distributed=`` (None: a group with more
    than one rank when one is initialised; True: require one; False: never, ``(0, 1)``)."""
    if distributed is not None and not isinstance(distributed, bool):
        raise TypeError(f"distributed must be None, True or False, got {distributed!r}")
    if distributed and not is_active():
        raise ValueError(
            "distributed=True needs an initialised torch.distributed process group with more "
            "than one rank: launch with torchrun and call "
            "neurowire.learning.distributed.init_process_group() first"
        )
    if distributed is not False and is_active():
        return rank(), world_size()
    return 0, 1


# ---------------------------------------------------------------------- batch split
def shard(batch: int, rank: int, world: int, allow_empty: bool = False) -> slice:
    """Trials of a global batch that ``rank`` of ``world`` simulates.

    Rank ``r`` takes ``[floor(r B / W), floor((r + 1) B / W))``; the shards cover the batch in
    rank order, and their sizes differ by at most one. ``B < W`` leaves some ranks empty, which
    raises ``ValueError`` unless ``allow_empty`` (evaluation, where an empty shard adds nothing).
    """
    for name, val in (("batch", batch), ("rank", rank), ("world", world)):
        if isinstance(val, bool) or not isinstance(val, int):
            raise TypeError(f"shard: {name} must be an int, got {val!r}")
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"shard: need 0 <= rank < world, got rank {rank}, world {world}")
    if batch < 0:
        raise ValueError(f"shard: batch must be >= 0, got {batch}")
    if batch < world and not allow_empty:
        raise ValueError(
            f"a global batch of {batch} trial{'s' if batch != 1 else ''} cannot be split over "
            f"{world} ranks: every rank needs at least one trial; use batches of >= {world} "
            f"trials (mind the last batch of an epoch) or fewer ranks"
        )
    return slice(rank * batch // world, (rank + 1) * batch // world)


def check_batches(data: Any, batch_size: int, world: int) -> None:
    """Before training, raise ``ValueError`` if some batch of ``data`` has fewer than ``world``
    trials (the full batches or the last one of an epoch).

    Sizes are known for a map-style ``Dataset`` (batched by ``batch_size``), a
    :class:`~neurowire.data.Batches` and a ``DataLoader`` with a ``batch_size``; other iterables
    are checked batch by batch during training. A ``DataLoader`` with a
    ``DistributedSampler`` is refused: every rank must see the same global batch.
    """
    from torch.utils.data import DataLoader, Dataset
    from torch.utils.data.distributed import DistributedSampler

    from ..data.batching import Batches

    if isinstance(data, Batches):
        n, size, drop = len(data.dataset), data.batch_size, data.drop_last
    elif isinstance(data, DataLoader):
        if isinstance(data.sampler, DistributedSampler):
            raise ValueError(
                "a DataLoader with a DistributedSampler gives every rank other trials; "
                "distributed EProp needs the same global batches on every rank (it splits "
                "them itself): use a plain, seeded loader"
            )
        if data.batch_size is None or not hasattr(data.dataset, "__len__"):
            return
        n, size, drop = len(data.dataset), data.batch_size, data.drop_last
    elif isinstance(data, Dataset) and hasattr(data, "__len__"):
        n, size, drop = len(data), batch_size, False
    else:
        return
    sizes = {min(size, n)} | ({n % size} if not drop else set())
    small = sorted(s for s in sizes if 0 < s < world)
    if small:
        raise ValueError(
            f"{n} samples in batches of {size} give a batch of {small[0]} trial"
            f"{'s' if small[0] != 1 else ''}, fewer than the {world} ranks; every rank needs "
            f"at least one trial: change the batch size or drop the last batch"
        )


# ---------------------------------------------------------------------- collectives
def _comm_device(device: torch.device) -> torch.device:
    return device if dist.get_backend() == "nccl" else torch.device("cpu")


def sum_identical(tensors: Sequence[Tensor]) -> list[Tensor]:
    """Sum each tensor over all ranks; every rank gets the same bits.

    Tensors of one dtype travel in one flat buffer: ``reduce`` onto rank 0, then ``broadcast``
    from rank 0. Returns new tensors with the inputs' shapes, dtypes and devices (gloo moves
    CUDA tensors through the CPU).
    """
    out: list[Tensor | None] = [None] * len(tensors)
    groups: dict[tuple[torch.dtype, torch.device], list[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault((t.dtype, t.device), []).append(i)
    for (_, device), index in groups.items():
        comm = _comm_device(device)
        flat = torch.cat([tensors[i].detach().reshape(-1) for i in index]).to(comm)
        dist.reduce(flat, dst=0)
        dist.broadcast(flat, src=0)
        flat = flat.to(device)
        offset = 0
        for i in index:
            n = tensors[i].numel()
            out[i] = flat[offset : offset + n].view(tensors[i].shape)
            offset += n
    return out  # type: ignore[return-value]


def spread_rows(local: Tensor, rows: slice, batch: int) -> Tensor:
    """``[batch, ...]`` zeros with ``local`` (this rank's rows ``[rows, ...]``) in place; summed
    over ranks by :func:`sum_identical`, it is the whole batch's tensor exactly (x + 0 = x)."""
    full = local.new_zeros((batch, *local.shape[1:]))
    full[rows] = local
    return full


# ---------------------------------------------------------------------- consistency
def state_digest(state: Any) -> bytes:
    """SHA-256 of a nested state (dicts, lists, tensors, arrays, numbers, strings): equal digests
    mean equal dtypes, shapes and bits."""
    h = hashlib.sha256()
    _feed(h, state)
    return h.digest()


def _feed(h, obj: Any) -> None:
    if isinstance(obj, Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, np.ndarray):
        h.update(f"A{obj.dtype}{obj.shape}".encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, Mapping):
        h.update(b"{")
        for key in sorted(obj, key=str):
            h.update(repr(key).encode())
            _feed(h, obj[key])
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for item in obj:
            _feed(h, item)
        h.update(b"]")
    else:
        h.update(repr(obj).encode())


def check_consistent(trainer: Any) -> None:
    """Raise ``RuntimeError`` on every rank if any rank's training state differs from rank 0's.

    Compares digests (:func:`state_digest`) of ``trainer.state_dict()``: every store's
    connectivity and variables (weights, Adam moments), dense weights, the bias, the optimiser,
    the rules' states and generators, the rewiring log and the counters. A collective: every rank
    must call it. Costs one pass over the state; nothing without an active group.
    """
    if not is_active():
        return
    digest = np.frombuffer(state_digest(trainer.state_dict()), dtype=np.int64).copy()
    mine = torch.from_numpy(digest).to(
        _comm_device(getattr(trainer, "device", torch.device("cpu")))
    )
    every = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(every, mine)
    differ = [r for r, d in enumerate(every) if not torch.equal(d, every[0])]
    if differ:
        raise RuntimeError(
            f"distributed training diverged: rank{'s' if len(differ) > 1 else ''} "
            f"{', '.join(map(str, differ))} hold{'s' if len(differ) == 1 else ''} another "
            f"training state than rank 0 (weights, connectivity, optimiser or rule state); were "
            f"all ranks built with the same seed and fed the same batches?"
        )
