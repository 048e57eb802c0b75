"""Spiking Heidelberg Digits (SHD) and Spiking Speech Commands (SSC) from their HDF5 files.

Cramer et al. 2022, CC BY 4.0, published by the Zenke lab (https://zenkelab.org/datasets) as
``shd_{train,test}.h5.gz`` and ``ssc_{train,valid,test}.h5.gz``. Layout of every file:
``/spikes/times`` (per sample a variable-length float16 array of spike times in **seconds**),
``/spikes/units`` (per sample the channels, 0..699), ``/labels``, ``/extra/speaker``,
``/extra/keys`` (class names). Times are cast to float64 before they are scaled to ms (scaling
in float16 overflows, tonic#321). Files are looked up in ``root``, ``root/SHD`` or ``root/SSC``
(tonic's folder); a ``.h5.gz`` without its ``.h5`` is decompressed next to it once.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np

from .events import EventDataset

N_CHANNELS = 700
SPLITS = {"shd": ("train", "test"), "ssc": ("train", "valid", "test")}


def _find(root: Path, name: str, split: str) -> Path:
    filename = f"{name}_{split}.h5"
    folders = [root, root / name.upper()]
    for folder in folders:
        if (folder / filename).is_file():
            return folder / filename
        gz = folder / f"{filename}.gz"
        if gz.is_file():
            target = folder / filename
            with gzip.open(gz, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            return target
    tried = ", ".join(str(f / filename) for f in folders)
    raise FileNotFoundError(
        f"{name.upper()} {split} split not found: expected {tried} (or the same with .gz). "
        f"Download {filename}.gz from https://zenkelab.org/datasets into {root}, or let "
        f"tonic.datasets.{name.upper()}(save_to={str(root)!r}) fetch it"
    )


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
        times = [np.asarray(t).astype(np.float64) * 1000.0 for t in f["spikes/times"]]
        units = [np.asarray(u).astype(np.int64) for u in f["spikes/units"]]
        labels = np.asarray(f["labels"]).astype(np.int64)
        speakers = np.asarray(f["extra/speaker"]).astype(np.int64) if "extra/speaker" in f else None
        classes = None
        if "extra/keys" in f:
            classes = [k.decode() if isinstance(k, bytes) else str(k) for k in f["extra/keys"]]
    return EventDataset(times, units, labels, N_CHANNELS, dt, steps, threshold, speakers, classes)


def shd(
    root: str | Path,
    split: str = "train",
    dt: float = 1.0,
    steps: int | None = None,
    threshold: int = 1,
) -> EventDataset:
    """One split of SHD (20 classes; train 8,156 / test 2,264 samples; 700 channels).

    Args:
        root: folder of ``shd_train.h5`` / ``shd_test.h5`` (or ``root/SHD``).
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


def speaker_folds(dataset: EventDataset) -> list[list[int]]:
    """One validation fold per speaker of ``dataset`` (``[[speaker], ...]``, sorted), for
    ``dataset.split_by_group(fold)``: SHD's speaker-wise cross-validation."""
    if dataset.groups is None:
        raise ValueError("the dataset has no speaker ids")
    return [[int(s)] for s in np.unique(dataset.groups)]
