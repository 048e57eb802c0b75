"""Files written atomically, and checkpoints: tensors and plain data in one file, loaded without
pickle code.

Every output goes through :func:`atomic_path`: it is written under a temporary name beginning
with :data:`PARTIAL_PREFIX` in the target's folder, flushed, then renamed over the target, so a
crash leaves either the old file or the new one, never half a file. A temporary left behind by a
killed process is found by :func:`partial_files`.

A checkpoint is a ``torch.save`` archive of a dict holding only tensors, numbers, strings,
lists and dicts, with a header ``{"format": "neurowire-checkpoint", "version": 1}``. It is
written through :func:`atomic_path`. Loading uses
``torch.load(weights_only=True)``, whose unpickler accepts only those types: a file crafted to
run code when unpickled is refused with :class:`CheckpointError` instead.
"""

from __future__ import annotations

import os
import pickle
import secrets
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

FORMAT = "neurowire-checkpoint"
VERSION = 1

#: Name prefix of the temporary files :func:`atomic_path` writes before renaming them.
PARTIAL_PREFIX = ".partial-"


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, foreign or unsafe."""


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` to write to; on success it is flushed to disk and
    renamed to ``path``, on any exception (Ctrl-C included) it is removed and ``path`` is left
    as it was.

    The temporary name keeps ``path``'s suffix (writers that pick a format from it still work)
    and begins with :data:`PARTIAL_PREFIX`. The folder must exist.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a directory")
    tmp = path.with_name(f"{PARTIAL_PREFIX}{secrets.token_hex(4)}-{path.name}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def partial_files(folder: str | Path) -> list[Path]:
    """Temporaries of :func:`atomic_path` left in ``folder`` or its subfolders by a process that
    was killed while writing (sorted)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob(f"{PARTIAL_PREFIX}*") if p.is_file())


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint path {str(path)!r} is a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, "version": VERSION, "payload": payload}
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
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
        with warnings.catch_warnings():  # torch's notes on foreign pickles: the error says it
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{str(path)!r} holds objects other than tensors and plain data, which could run "
            "code when loaded; refusing to load it"
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
