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

A damaged file (empty, truncated, not HDF5, a key missing, a label, unit or time out of range,
times and units of unequal length) raises :class:`~neurowire.data.errors.DataFileError` naming it
and the sample at fault; a damaged archive names the archive and leaves neither ``.part`` nor
``.h5`` behind, so a replaced archive is unpacked again.
"""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import DataFileError
from .events import EventDataset, group_folds

N_CHANNELS = 700
SPLITS = {"shd": ("train", "test"), "ssc": ("train", "valid", "test")}
N_CLASSES = {"shd": 20, "ssc": 35}

# What a damaged archive raises while it is read (a failed write raises a plain OSError).
_ARCHIVE_ERRORS = (
    gzip.BadGzipFile,
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    NotImplementedError,
)
# What h5py raises on a file whose structure or data is damaged.
_HDF5_ERRORS = (OSError, KeyError, RuntimeError, ValueError, TypeError)


def _unpack(archive: Path, target: Path) -> None:
    """Decompress ``target`` out of ``archive`` through ``target.part``: a damaged archive
    raises :class:`DataFileError` naming it and leaves neither ``.part`` nor ``target``."""
    part = target.with_name(target.name + ".part")
    if archive.stat().st_size == 0:
        raise DataFileError(archive, "is empty (0 bytes); download it again")
    try:
        if archive.suffix == ".gz":
            with gzip.open(archive, "rb") as src, open(part, "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            with zipfile.ZipFile(archive) as zf:
                members = [i for i in zf.infolist() if Path(i.filename).name == target.name]
                if not members:
                    raise DataFileError(archive, f"holds no {target.name}")
                if members[0].flag_bits & 0x1:
                    raise DataFileError(archive, f"holds {target.name} encrypted")
                with zf.open(members[0]) as src, open(part, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        os.replace(part, target)
    except _ARCHIVE_ERRORS as err:
        kind = "gzip" if archive.suffix == ".gz" else "zip"
        detail = str(err) or type(err).__name__
        raise DataFileError(
            archive, f"is not a readable {kind} archive ({detail}); download it again"
        ) from None
    finally:
        part.unlink(missing_ok=True)


def _find(root: Path, name: str, split: str) -> tuple[Path, Path | None]:
    """``(file, archive)``: the split's ``.h5`` file, and the archive it was unpacked from by
    this call (None when the ``.h5`` was there already)."""
    filename = f"{name}_{split}.h5"
    folders = [root, root / name.upper()]
    for folder in folders:
        if (folder / filename).is_file():
            return folder / filename, None
        for suffix in (".gz", ".zip"):
            archive = folder / f"{filename}{suffix}"
            if archive.is_file():
                _unpack(archive, folder / filename)
                return folder / filename, archive
    tried = ", ".join(str(f / filename) for f in folders)
    raise FileNotFoundError(
        f"{name.upper()} {split} split not found: expected {tried} (or the same with .gz). "
        f"Download {filename}.gz from https://zenkelab.org/datasets into {root}, or let "
        f"tonic.datasets.{name.upper()}(save_to={str(root)!r}) fetch it"
    )


def _dataset(f, key: str, path: Path):
    import h5py

    if key not in f:
        raise DataFileError(path, f"has no {key!r}: not an SHD/SSC file")
    obj = f[key]
    if not isinstance(obj, h5py.Dataset):
        raise DataFileError(path, f"{key!r} is a {type(obj).__name__}, not a dataset")
    return obj


def _entries(obj, key: str, path: Path) -> np.ndarray:
    """The contents of ``obj``, a dataset of one entry per sample."""
    if obj.ndim != 1:
        raise DataFileError(path, f"{key!r} must hold one entry per sample, got shape {obj.shape}")
    return obj[()]


def _vlen(f, key: str, kind: type, path: Path) -> np.ndarray:
    import h5py

    obj = _dataset(f, key, path)
    base = h5py.check_vlen_dtype(obj.dtype)
    if base is None or not np.issubdtype(base, kind):
        raise DataFileError(
            path,
            f"{key!r} must hold variable-length {kind.__name__} arrays, got {obj.dtype}: not an "
            "SHD/SSC file",
        )
    return _entries(obj, key, path)


def _contents(f, path: Path) -> tuple:
    """``(times [s], units, labels, speakers, classes)`` as stored in the open file ``f``."""
    times_s = _vlen(f, "spikes/times", np.floating, path)
    units = list(_vlen(f, "spikes/units", np.integer, path))
    labels = _entries(_dataset(f, "labels", path), "labels", path)
    speakers = classes = None
    if "extra/speaker" in f:
        speakers = _entries(_dataset(f, "extra/speaker", path), "extra/speaker", path)
        if speakers.size and not np.issubdtype(speakers.dtype, np.integer):
            raise DataFileError(path, f"'extra/speaker' must hold ints, got {speakers.dtype}")
    if "extra/keys" in f:
        keys = _entries(_dataset(f, "extra/keys", path), "extra/keys", path)
        classes = [k.decode() if isinstance(k, bytes) else str(k) for k in keys]
    return times_s, units, labels, speakers, classes


def _read(path: Path, name: str, dt: float, steps: int | None, threshold: int) -> EventDataset:
    import h5py

    if path.stat().st_size == 0:
        raise DataFileError(path, "is empty (0 bytes): not an HDF5 file; download it again")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        problem = "is truncated" if "truncated file" in str(err) else "is not an HDF5 file"
        raise DataFileError(path, f"{problem} ({err}); download it again") from None
    try:
        with f:
            times_s, units, labels, speakers, classes = _contents(f, path)
    except DataFileError:
        raise
    except _HDF5_ERRORS as err:
        raise DataFileError(
            path, f"is damaged or truncated ({type(err).__name__}: {err}); download it again"
        ) from None
    times = [np.asarray(t).astype(np.float64) * 1000.0 for t in times_s]  # s -> ms
    n_classes = None if classes is not None else N_CLASSES[name]
    return EventDataset(
        times,
        units,
        labels,
        N_CHANNELS,
        dt,
        steps,
        threshold,
        speakers,
        classes,
        n_classes,
        source=path,
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

    Raises:
        FileNotFoundError: the split is missing (the message names every path tried).
        DataFileError: the file or its archive is damaged or holds values outside the format.
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
    path, archive = _find(Path(root), name, split)
    try:
        return _read(path, name, dt, steps, threshold)
    except DataFileError as err:
        if archive is None:
            raise
        # the archive holds a bad file: remove the copy, so a replaced archive is unpacked again
        path.unlink(missing_ok=True)
        problem = f"unpacks to a bad {path.name}: {err.problem}"
        raise DataFileError(archive, problem, err.sample) from None


def speaker_folds(dataset: EventDataset, n_folds: int | None = None) -> list[list[int]]:
    """Speaker-wise validation folds of ``dataset`` for ``dataset.split_by_group(fold)``.

    None: one fold per speaker (``[[speaker], ...]``, sorted), SHD's leave-one-speaker-out
    cross-validation; an int: the speakers dealt into that many folds (:func:`group_folds`).
    """
    if dataset.groups is None:
        raise ValueError("the dataset has no speaker ids (the file lacks 'extra/speaker')")
    return group_folds(dataset.groups, n_folds)
