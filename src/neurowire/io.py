"""Checkpoints: tensors and plain data in one file, written atomically, loaded without pickle code.

A checkpoint is a ``torch.save`` archive of a dict holding only tensors, numbers, strings,
lists and dicts, with a header ``{"format": "neurowire-checkpoint", "version": 1}``. It is
written to a temporary file in the same folder, flushed to disk, then renamed over the target,
so a crash leaves either the old checkpoint or the new one, never half a file. Loading uses
``torch.load(weights_only=True)``, whose unpickler accepts only those types: a file crafted to
run code when unpickled is refused with :class:`CheckpointError` instead.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "neurowire-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, foreign or unsafe."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint path {str(path)!r} is a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, "version": VERSION, "payload": payload}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; returns its payload.

    Raises :class:`CheckpointError` naming the file if it is missing, truncated, not a
    neurowire checkpoint, of another format version, or contains anything but plain data.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {str(path)!r}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{str(path)!r} holds objects other than tensors and plain data; refusing to load "
            f"it ({str(err).splitlines()[0]})"
        ) from None
    except Exception as err:  # torch raises many kinds for a damaged archive  # noqa: BLE001
        raise CheckpointError(
            f"{str(path)!r} is not a readable checkpoint (truncated or foreign file: "
            f"{str(err).splitlines()[0] if str(err) else type(err).__name__})"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a neurowire checkpoint")
    if data.get("version") != VERSION:
        raise CheckpointError(
            f"{str(path)!r} has checkpoint format version {data.get('version')!r}; this "
            f"neurowire reads version {VERSION}"
        )
    return data["payload"]
