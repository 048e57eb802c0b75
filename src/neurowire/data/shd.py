"""Spiking Heidelberg Digits (SHD) and Spiking Speech Commands (SSC) from their HDF5 files.

Cramer et al. 2022, CC BY 4.0, published by the Zenke lab (https://zenkelab.org/datasets) as
``shd_{train,test}.h5.gz`` and ``ssc_{train,valid,test}.h5.gz``. Layout of every file:
``/spikes/times`` (per sample a variable-length float16 array of spike times in **seconds**),
``/spikes/units`` (per sample the channels, 0..699), ``/labels``, ``/extra/speaker``,
``/extra/keys`` (class names, bytes) and optionally ``/extra/meta_info/...`` (unused here).

Times are cast to float64 before they are scaled to ms: in float16 the product would be rounded
to whole ms above 1,024 ms (and overflow in us, tonic#321). The ms values are kept as float32,
which holds every ``float16 * 1000`` exactly. Files are looked up in ``root``, ``root/SHD`` or
``root/SSC`` (tonic's folders); a ``.h5.gz`` (or tonic's ``.h5.zip``) without its ``.h5`` is
decompressed next to it once (through a temporary ``.part`` file, so an interrupted run leaves
no truncated ``.h5``).
"""

from __future__ import annotations

import gzip
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from .events import EventDataset, group_folds

N_CHANNELS = 700
SPLITS = {"shd": ("train", "test"), "ssc": ("train", "valid", "test")}
N_CLASSES = {"shd": 20, "ssc": 35}


def _unpack(archive: Path, target: Path) -> None:
    part = target.with_name(target.name + ".part")
    try:
        if archive.suffix == ".gz":
            with gzip.open(archive, "rb") as src, open(part, "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            with zipfile.ZipFile(archive) as zf:
                names = [n for n in zf.namelist() if Path(n).name == target.name]
                if not names:
                    raise ValueError(f"{str(archive)!r} holds no {target.name}")
                with zf.open(names[0]) as src, open(part, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)


def _find(root: Path, name: str, split: str) -> Path:
    filename = f"{name}_{split}.h5"
    folders = [root, root / name.upper()]
    for folder in folders:
        if (folder / filename).is_file():
            return folder / filename
        for suffix in (".gz", ".zip"):
            archive = folder / f"{filename}{suffix}"
            if archive.is_file():
                _unpack(archive, folder / filename)
                return folder / filename
    tried = ", ".join(str(f / filename) for f in folders)
    raise FileNotFoundError(
        f"{name.upper()} {split} split not found: expected {tried} (or the same with .gz). "
        f"Download {filename}.gz from https://zenkelab.org/datasets into {root}, or let "
        f"tonic.datasets.{name.upper()}(save_to={str(root)!r}) fetch it"
    )


def _vlen(f, key: str, kind: type, path: Path) -> np.ndarray:
    import h5py

    base = h5py.check_vlen_dtype(f[key].dtype)
    if base is None or not np.issubdtype(base, kind):
        raise ValueError(
            f"{str(path)!r}: {key!r} must hold variable-length {kind.__name__} arrays, got "
            f"{f[key].dtype}: not an SHD/SSC file"
        )
    return f[key][()]


def _read(path: Path, name: str, dt: float, steps: int | None, threshold: int) -> EventDataset:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{str(path)!r} is not an HDF5 file ({err})") from None
    with f:
        for key in ("spikes/times", "spikes/units", "labels"):
            if key not in f:
                raise ValueError(f"{str(path)!r} has no {key!r}: not an SHD/SSC file")
        times_s = _vlen(f, "spikes/times", np.floating, path)
        units = list(_vlen(f, "spikes/units", np.integer, path))
        labels = np.asarray(f["labels"][()]).astype(np.int64)
        speakers = None
        if "extra/speaker" in f:
            speakers = np.asarray(f["extra/speaker"][()]).astype(np.int64)
        classes = None
        if "extra/keys" in f:
            classes = [k.decode() if isinstance(k, bytes) else str(k) for k in f["extra/keys"]]
    if not len(times_s) == len(units) == len(labels):
        raise ValueError(
            f"{str(path)!r}: spikes/times ({len(times_s)}), spikes/units ({len(units)}) and "
            f"labels ({len(labels)}) must have one entry per sample"
        )
    times = [np.asarray(t).astype(np.float64) * 1000.0 for t in times_s]  # s -> ms
    n_classes = None if classes is not None else N_CLASSES[name]
    return EventDataset(
        times, units, labels, N_CHANNELS, dt, steps, threshold, speakers, classes, n_classes
    )


def shd(
    root: str | Path,
    split: str = "train",
    dt: float = 1.0,
    steps: int | None = None,
    threshold: int = 1,
) -> EventDataset:
    """One split of SHD (20 classes; train 8,156 / test 2,264 samples; 700 channels).

    Args:
        root: folder of ``shd_train.h5`` / ``shd_test.h5`` (or ``root/SHD``), or of the
            published ``.h5.gz`` files (decompressed there once).
        split: ``"train"`` or ``"test"`` (SHD has no validation split: use
            :func:`speaker_folds`).
        dt: bin width [ms].
        steps: trial length in bins; None: ``ceil(latest spike of the split / dt)`` (about
            1,400 at 1 ms). Pass the training set's ``steps`` to the test set.
        threshold: spikes of one channel in one bin needed for an input spike.

    Groups of the returned dataset are the speaker ids.
    """
    return _load("shd", root, split, dt, steps, threshold)


def ssc(
    root: str | Path,
    split: str = "train",
    dt: float = 1.0,
    steps: int | None = None,
    threshold: int = 1,
) -> EventDataset:
    """One split of SSC (35 classes; ``"train"``, ``"valid"`` or ``"test"``); see :func:`shd`."""
    return _load("ssc", root, split, dt, steps, threshold)


def _load(name, root, split, dt, steps, threshold) -> EventDataset:
    if split not in SPLITS[name]:
        raise ValueError(f"{name.upper()} split must be one of {SPLITS[name]}, got {split!r}")
    return _read(_find(Path(root), name, split), name, dt, steps, threshold)


def speaker_folds(dataset: EventDataset, n_folds: int | None = None) -> list[list[int]]:
    """Speaker-wise validation folds of ``dataset`` for ``dataset.split_by_group(fold)``.

    None: one fold per speaker (``[[speaker], ...]``, sorted), SHD's leave-one-speaker-out
    cross-validation; an int: the speakers dealt into that many folds (:func:`group_folds`).
    """
    if dataset.groups is None:
        raise ValueError("the dataset has no speaker ids (the file lacks 'extra/speaker')")
    return group_folds(dataset.groups, n_folds)
