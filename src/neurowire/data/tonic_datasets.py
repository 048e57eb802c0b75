"""DVS Gesture and N-MNIST from files already on disk, read through the optional ``tonic``.

The folders are tonic's (``tonic.datasets.DVSGesture(save_to=root)`` /
``tonic.datasets.NMNIST(save_to=root)`` download and extract into them):

* DVS Gesture: ``root/DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label>.npy`` (and
  ``ibmGestureTest``), each an ``[n, 4]`` array of ``x, y, p, t`` with ``t`` in ms (tonic's
  preprocessed files). 128 x 128 x 2 sensor, downsampled by ``spatial_factor`` (0.25: 32 x 32 x 2
  = 2,048 inputs, as Knight et al. 2025).
* N-MNIST: ``root/NMNIST/Train/<digit>/<id>.bin`` (and ``Test``), Orchard's 40-bit event
  format, read with ``tonic.io.read_mnist_file``; 34 x 34 x 2 = 2,312 inputs.

Nothing is downloaded unless ``download=True`` (then tonic's own dataset class fetches it).
Event ``(x, y, p)`` becomes input ``(y * W + x) * 2 + p``, the order of mlGeNN's
``preprocess_tonic_spikes`` (``p + x * P + y * W * P``) that Knight et al. 2025 used. Class
names are tonic's.

Every file is one sample. A file that cannot be read, or holds an event off the sensor, a bad
time or a label outside the classes, raises :class:`~neurowire.data.errors.DataFileError`
naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DataFileError
from .events import EventDataset


def _tonic():
    try:
        import tonic
    except ImportError:
        raise ImportError(
            'DVS Gesture and N-MNIST are read through tonic: pip install "neurowire[tonic]"'
        ) from None
    return tonic


def _missing(folder: Path, what: str, cls: str, root: Path) -> FileNotFoundError:
    return FileNotFoundError(
        f"{what} not found: expected extracted files under {folder}. Pass download=True to "
        f"let tonic.datasets.{cls}(save_to={str(root)!r}) download them, or extract the "
        f"published archive there"
    )


def _sensor_units(
    path: Path, x: np.ndarray, y: np.ndarray, p: np.ndarray, size: int, div: int = 1
) -> np.ndarray:
    """Input ids ``(y' * W' + x') * 2 + p`` of events on a ``size x size`` sensor with two
    polarities, ``x' = x // div`` (likewise ``y'``) and ``W' = ceil(size / div)``; an event off
    the sensor (it would alias to another input) raises :class:`DataFileError` naming ``path``."""
    for name, col, top in (("x", x, size), ("y", y, size), ("polarity", p, 2)):
        off = ~((col >= 0) & (col < top) & (col == np.floor(col)))
        if off.any():
            k = int(np.argmax(off))
            problem = f"event {k}: {name} = {col[k]} is not a whole number in 0..{top - 1}"
            raise DataFileError(path, problem)
    x, y, p = x.astype(np.int64) // div, y.astype(np.int64) // div, p.astype(np.int64)
    return (y * -(-size // div) + x) * 2 + p


def _gesture_file(f: Path) -> tuple[np.ndarray, int, int]:
    """``(events [n, 4], label, user)`` of one of tonic's DVS Gesture files."""
    try:
        label, user = int(f.stem), int(f.parent.name.split("_", 1)[0][4:])
    except ValueError:
        raise DataFileError(
            f, "is not named user<NN>_<lighting>/<label>.npy with whole numbers"
        ) from None
    try:
        ev = np.load(f, allow_pickle=False)
    except (ValueError, EOFError) as err:
        raise DataFileError(f, f"is not a readable .npy file ({err})") from None
    if not isinstance(ev, np.ndarray) or ev.ndim != 2 or ev.shape[1] != 4:
        got = ev.shape if isinstance(ev, np.ndarray) else type(ev).__name__
        raise DataFileError(f, f"expected an [n, 4] array of x, y, p, t, got {got}")
    if ev.dtype.kind not in "iuf":
        raise DataFileError(f, f"expected numbers, got dtype {ev.dtype}")
    return ev, label, user


def dvs_gesture(
    root: str | Path,
    train: bool = True,
    dt: float = 1.0,
    spatial_factor: float = 0.25,
    steps: int | None = None,
    threshold: int = 1,
    download: bool = False,
) -> EventDataset:
    """DVS Gesture (11 classes; 1,077 train / 264 test). Groups are the user ids.

    Args:
        root: tonic's ``save_to`` folder (holding ``DVSGesture/``).
        train: training or test split.
        dt: bin width [ms].
        spatial_factor: x and y are divided by ``1 / spatial_factor`` (integer division).
        steps, threshold: see :class:`EventDataset`.
        download: let tonic download missing files.
    """
    if not 0.0 < spatial_factor <= 1.0:
        raise ValueError(f"spatial_factor must be 1/k for an integer k >= 1, got {spatial_factor}")
    div = int(round(1.0 / spatial_factor))
    if abs(1.0 / div - spatial_factor) > 1e-9:
        raise ValueError(f"spatial_factor must be 1/k for an integer k >= 1, got {spatial_factor}")
    tonic = _tonic()
    root = Path(root)
    folder = root / "DVSGesture" / ("ibmGestureTrain" if train else "ibmGestureTest")
    if download:
        tonic.datasets.DVSGesture(save_to=str(root), train=train)
    files = sorted(folder.glob("user*_*/*.npy"))
    if not files:
        raise _missing(folder, "DVS Gesture", "DVSGesture", root)
    width = -(-128 // div)
    times, units, labels, users = [], [], [], []
    for f in files:
        ev, label, user = _gesture_file(f)
        units.append(_sensor_units(f, ev[:, 0], ev[:, 1], ev[:, 2], 128, div))
        times.append(ev[:, 3].astype(np.float64))
        labels.append(label)
        users.append(user)
    classes = tonic.datasets.DVSGesture.classes
    n_in = width * width * 2
    return EventDataset(
        times, units, labels, n_in, dt, steps, threshold, users, classes, source=files
    )


def nmnist(
    root: str | Path,
    train: bool = True,
    dt: float = 1.0,
    steps: int | None = None,
    threshold: int = 1,
    download: bool = False,
) -> EventDataset:
    """N-MNIST (10 classes; 60,000 train / 10,000 test; label-ordered on disk: shuffle before
    holding out a validation set). See :func:`dvs_gesture` for the arguments."""
    tonic = _tonic()
    root = Path(root)
    folder = root / "NMNIST" / ("Train" if train else "Test")
    if download:
        tonic.datasets.NMNIST(save_to=str(root), train=train)
    files = sorted(folder.glob("[0-9]/*.bin"))
    if not files:
        raise _missing(folder, "N-MNIST", "NMNIST", root)
    dtype = tonic.datasets.NMNIST.dtype
    times, units, labels = [], [], []
    for f in files:
        size = f.stat().st_size
        if size == 0 or size % 5:
            raise DataFileError(
                f, f"holds {size} bytes, not a whole number (>= 1) of 5-byte events: truncated?"
            )
        ev = tonic.io.read_mnist_file(str(f), dtype=dtype)
        units.append(_sensor_units(f, ev["x"], ev["y"], ev["p"], 34))
        times.append(ev["t"].astype(np.float64) / 1000.0)  # us -> ms
        labels.append(int(f.parent.name))
    classes = tonic.datasets.NMNIST.classes
    n_in = 34 * 34 * 2
    return EventDataset(
        times, units, labels, n_in, dt, steps, threshold, None, classes, source=files
    )
