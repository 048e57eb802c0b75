"""Malformed data files raise DataFileError naming the file (and the sample at fault).

SHD/SSC files are written in the published layout (variable-length float16 times in seconds,
variable-length uint16 units, uint8 labels), then damaged one way at a time; archives are checked
to leave neither a ``.part`` nor an ``.h5`` behind. The tonic-format readers (DVS Gesture ``.npy``,
N-MNIST ``.bin``) get the same treatment.
"""

from __future__ import annotations

import gzip
import io
import zipfile

import h5py
import numpy as np
import pytest

from neurowire.data import DataFileError, EventDataset, dvs_gesture, nmnist, shd

# (times [s], units) per sample, in the published dtypes; labels below 20 (SHD's classes)
GOOD = [
    ([0.0001, 0.0004, 0.0012, 1.0], [5, 5, 5, 699]),
    ([0.0105, 1.3955], [0, 1]),
    ([], []),
    ([0.5], [42]),
]
LABELS = [0, 19, 3, 3]


def write_shd(
    path,
    samples=GOOD,
    labels=LABELS,
    *,
    times_dtype=np.float16,
    units_dtype=np.uint16,
    labels_dtype=np.uint8,
    speakers=(1, 1, 2, 3),
    n_keys=20,
    skip=(),
):
    """An SHD file like the published ones; ``skip`` leaves keys out, the dtypes allow values the
    published dtypes cannot hold (negative units or labels)."""
    with h5py.File(path, "w") as f:
        if "spikes/times" not in skip:
            times = f.create_dataset(
                "spikes/times", (len(samples),), dtype=h5py.vlen_dtype(times_dtype)
            )
            for i, (t, _) in enumerate(samples):
                times[i] = np.asarray(t, dtype=times_dtype)
        if "spikes/units" not in skip:
            units = f.create_dataset(
                "spikes/units", (len(samples),), dtype=h5py.vlen_dtype(units_dtype)
            )
            for i, (_, u) in enumerate(samples):
                units[i] = np.asarray(u, dtype=units_dtype)
        if "labels" not in skip:
            f["labels"] = np.asarray(labels, dtype=labels_dtype)
        if speakers is not None:
            f["extra/speaker"] = np.asarray(speakers, dtype=np.uint16)
        if n_keys:
            f["extra/keys"] = np.array([f"word-{k}".encode() for k in range(n_keys)])


def big_shd_bytes(tmp_path, n=40):
    """The bytes of a valid SHD file large enough that a cut lands in its data."""
    rng = np.random.default_rng(0)
    samples = [(np.sort(rng.uniform(0, 1, 50)), rng.integers(0, 700, 50)) for _ in range(n)]
    write_shd(tmp_path / "whole.h5", samples, np.arange(n) % 20, speakers=None)
    raw = (tmp_path / "whole.h5").read_bytes()
    (tmp_path / "whole.h5").unlink()
    return raw


def with_sample(i, times=None, units=None):
    samples = [list(s) for s in GOOD]
    if times is not None:
        samples[i][0] = times
    if units is not None:
        samples[i][1] = units
    return samples


# ------------------------------------------------------------------ SHD files, one damage each
def truncated(fraction):
    def damage(path):
        raw = big_shd_bytes(path.parent)
        path.write_bytes(raw[: int(len(raw) * fraction)])

    return damage


SHD_CASES = [
    # id, damage(path), message pattern, sample at fault
    ("truncated-early", truncated(0.1), "is truncated", None),
    ("truncated-half", truncated(0.5), "is truncated", None),
    ("truncated-last-byte", truncated(0.9999), "is truncated", None),
    ("not-hdf5", lambda p: p.write_text("spike times\n0.1 5\n"), "is not an HDF5 file", None),
    ("zero-length", lambda p: p.write_bytes(b""), r"is empty \(0 bytes\)", None),
    *[
        (f"no-{key}", lambda p, key=key: write_shd(p, skip=(key,)), f"has no '{key}'", None)
        for key in ("spikes/times", "spikes/units", "labels")
    ],
    (
        "label-negative",
        lambda p: write_shd(p, labels=[0, 1, -1, 3], labels_dtype=np.int8),
        r"label -1 is out of range: labels must be >= 0",
        2,
    ),
    (
        "label-beyond-keys",
        lambda p: write_shd(p, labels=[0, 20, 3, 3]),
        "label 20 is out of range for 20 classes",
        1,
    ),
    (
        "label-beyond-shd-classes",
        lambda p: write_shd(p, labels=[0, 1, 2, 25], n_keys=0),
        "label 25 is out of range for 20 classes",
        3,
    ),
    (
        "unit-negative",
        lambda p: write_shd(p, with_sample(3, units=[-1]), units_dtype=np.int16),
        r"event unit -1 is out of range \[0, 700\)",
        3,
    ),
    (
        "unit-700",
        lambda p: write_shd(p, with_sample(1, units=[0, 700])),
        r"event unit 700 is out of range \[0, 700\)",
        1,
    ),
    (
        "time-nan",
        lambda p: write_shd(p, with_sample(1, times=[0.1, np.nan])),
        "event times must be finite, got nan",
        1,
    ),
    (
        "time-inf",
        lambda p: write_shd(p, with_sample(3, times=[np.inf])),
        "event times must be finite, got inf",
        3,
    ),
    (
        "time-negative",
        lambda p: write_shd(p, with_sample(0, times=[0.1, -0.5, 0.2, 1.0])),
        "event times must be >= 0 ms, got -500.0",
        0,
    ),
    (
        "times-units-length-mismatch",
        lambda p: write_shd(p, with_sample(2, times=[0.1, 0.2], units=[7])),
        r"times and units must be 1-D of equal length, got shapes \(2,\) and \(1,\)",
        2,
    ),
    (
        "fewer-labels",
        lambda p: write_shd(p, labels=LABELS[:3]),
        r"times \(4\), units \(4\) and labels \(3\) need one entry per sample",
        None,
    ),
    (
        "fewer-units",
        lambda p: (write_shd(p), _shorten(p, "spikes/units", 3)),
        r"times \(4\), units \(3\) and labels \(4\) need one entry per sample",
        None,
    ),
    (
        "times-not-variable-length",
        lambda p: _replace(p, "spikes/times", np.zeros((4, 2), dtype=np.float16)),
        "'spikes/times' must hold variable-length floating arrays",
        None,
    ),
    (
        "labels-not-ints",
        lambda p: _replace(p, "labels", np.array([0.5, 1.0, 2.0, 3.0])),
        "labels must be one int per sample, got float64",
        None,
    ),
    (
        "labels-2d",
        lambda p: _replace(p, "labels", np.zeros((4, 2), dtype=np.uint8)),
        r"'labels' must hold one entry per sample, got shape \(4, 2\)",
        None,
    ),
    (
        "labels-a-group",
        lambda p: (write_shd(p, skip=("labels",)), _group(p, "labels")),
        "'labels' is a Group, not a dataset",
        None,
    ),
    (
        "speakers-count",
        lambda p: write_shd(p, speakers=(1, 2)),
        r"groups needs one entry per sample \(4\), got 2",
        None,
    ),
]


def _shorten(path, key, n):
    with h5py.File(path, "a") as f:
        kept = f[key][:n]
        dtype = f[key].dtype
        del f[key]
        short = f.create_dataset(key, (n,), dtype=dtype)
        for i, v in enumerate(kept):
            short[i] = v


def _replace(path, key, value):
    write_shd(path)
    with h5py.File(path, "a") as f:
        del f[key]
        f[key] = value


def _group(path, key):
    with h5py.File(path, "a") as f:
        f.create_group(key)


def assert_names(err, path, sample):
    message = str(err)
    assert str(path) in message, message
    assert err.path == path and err.sample == sample
    if sample is None:
        assert "sample" not in message.split(": ", 1)[0]
    else:
        assert f"{str(path)!r}, sample {sample}: " in message


@pytest.mark.parametrize(
    ("damage", "pattern", "sample"),
    [pytest.param(*case[1:], id=case[0]) for case in SHD_CASES],
)
def test_a_damaged_shd_file_names_itself_and_the_sample(tmp_path, damage, pattern, sample):
    path = tmp_path / "shd_train.h5"
    damage(path)
    with pytest.raises(DataFileError, match=pattern) as info:
        shd(tmp_path)
    assert_names(info.value, path, sample)
    assert isinstance(info.value, ValueError) and info.value.__cause__ is None


def test_the_checked_writer_makes_a_readable_file(tmp_path):
    write_shd(tmp_path / "shd_train.h5")
    ds = shd(tmp_path)
    assert len(ds) == 4 and ds.labels.tolist() == LABELS and ds.source == tmp_path / "shd_train.h5"
    assert ds.subset([1, 3]).source == ds.source
    (tmp_path / "shd_train.h5").write_bytes(big_shd_bytes(tmp_path))
    assert len(shd(tmp_path)) == 40  # the file the truncation cases cut is whole


def test_a_missing_split_is_still_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"shd_test\.h5"):
        shd(tmp_path, "test")


# ------------------------------------------------------------------ archives
def _gzip(raw):
    return gzip.compress(raw, mtime=0)


def _zip(raw, name="shd_train.h5"):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, raw)
    return buf.getvalue()


def _flip_middle(blob, start):
    """``blob`` with 16 bytes inverted in the middle of its compressed data."""
    b = bytearray(blob)
    mid = start + (len(b) - start) // 2
    for k in range(mid, mid + 16):
        b[k] ^= 0xFF
    return bytes(b)


def _bad_sample_file(tmp_path):
    write_shd(tmp_path / "inner.h5", with_sample(1, units=[0, 700]))
    raw = (tmp_path / "inner.h5").read_bytes()
    (tmp_path / "inner.h5").unlink()
    return raw


ARCHIVE_CASES = [
    # id, suffix, archive bytes from the bytes of a good file, message pattern, sample
    ("gz-not-gzip", ".gz", lambda raw, tmp: b"<html>not found</html>", "not a readable gzip", None),
    ("gz-zero-length", ".gz", lambda raw, tmp: b"", r"is empty \(0 bytes\)", None),
    ("gz-truncated", ".gz", lambda raw, tmp: _gzip(raw)[:-500], "not a readable gzip", None),
    ("gz-cut-after-header", ".gz", lambda raw, tmp: _gzip(raw)[:10], "not a readable gzip", None),
    (
        "gz-corrupt-data",
        ".gz",
        lambda raw, tmp: _flip_middle(_gzip(raw), 10),
        "not a readable gzip",
        None,
    ),
    (
        "gz-holds-no-hdf5",
        ".gz",
        lambda raw, tmp: _gzip(b"just text"),
        "unpacks to a bad shd_train.h5: is not an HDF5 file",
        None,
    ),
    (
        "gz-holds-empty-file",
        ".gz",
        lambda raw, tmp: _gzip(b""),
        r"unpacks to a bad shd_train.h5: is empty \(0 bytes\)",
        None,
    ),
    (
        "gz-holds-truncated-hdf5",
        ".gz",
        lambda raw, tmp: _gzip(raw[: len(raw) // 2]),
        "unpacks to a bad shd_train.h5: is truncated",
        None,
    ),
    (
        "gz-holds-bad-sample",
        ".gz",
        lambda raw, tmp: _gzip(_bad_sample_file(tmp)),
        r"unpacks to a bad shd_train.h5: event unit 700 is out of range",
        1,
    ),
    ("zip-not-zip", ".zip", lambda raw, tmp: b"PK but not really", "not a readable zip", None),
    ("zip-zero-length", ".zip", lambda raw, tmp: b"", r"is empty \(0 bytes\)", None),
    ("zip-truncated", ".zip", lambda raw, tmp: _zip(raw)[:-100], "not a readable zip", None),
    (
        "zip-corrupt-data",
        ".zip",
        lambda raw, tmp: _flip_middle(_zip(raw), 30 + len("shd_train.h5")),
        "not a readable zip",
        None,
    ),
    (
        "zip-without-member",
        ".zip",
        lambda raw, tmp: _zip(raw, "other.h5"),
        "holds no shd_train.h5",
        None,
    ),
    (
        "zip-holds-truncated-hdf5",
        ".zip",
        lambda raw, tmp: _zip(raw[: len(raw) // 2]),
        "unpacks to a bad shd_train.h5: is truncated",
        None,
    ),
]


@pytest.mark.parametrize(
    ("suffix", "make", "pattern", "sample"),
    [pytest.param(*case[1:], id=case[0]) for case in ARCHIVE_CASES],
)
def test_a_damaged_archive_names_itself_and_leaves_nothing_behind(
    tmp_path, suffix, make, pattern, sample
):
    archive = tmp_path / f"shd_train.h5{suffix}"
    archive.write_bytes(make(big_shd_bytes(tmp_path), tmp_path))
    with pytest.raises(DataFileError, match=pattern) as info:
        shd(tmp_path)
    assert_names(info.value, archive, sample)
    assert sorted(p.name for p in tmp_path.iterdir()) == [archive.name]  # no .part, no .h5
    with pytest.raises(DataFileError):  # and the next run tries the archive again
        shd(tmp_path)


def test_a_replaced_archive_is_unpacked_again(tmp_path):
    archive = tmp_path / "shd_train.h5.gz"
    archive.write_bytes(_gzip(b"not hdf5"))
    with pytest.raises(DataFileError):
        shd(tmp_path)
    archive.write_bytes(_gzip(big_shd_bytes(tmp_path)))
    assert len(shd(tmp_path)) == 40 and (tmp_path / "shd_train.h5").is_file()


# ------------------------------------------------------------------ EventDataset's own checks
def test_event_dataset_names_its_source_and_otherwise_the_sample_only(tmp_path):
    times, units = [[0.0], [1.0]], [[0], [4]]
    with pytest.raises(ValueError, match="^sample 1: event unit 4") as info:
        EventDataset(times, units, [0, 0], n_in=4)
    assert not isinstance(info.value, DataFileError)
    with pytest.raises(TypeError, match="^sample 0: event units must be integers"):
        EventDataset([[0.0]], [[0.5]], [0], n_in=4)
    with pytest.raises(DataFileError, match="event unit 4") as info:
        EventDataset(times, units, [0, 0], n_in=4, source=tmp_path / "events.h5")
    assert_names(info.value, tmp_path / "events.h5", 1)
    with pytest.raises(DataFileError, match="event units must be integers") as info:
        EventDataset([[0.0]], [[0.5]], [0], n_in=4, source=str(tmp_path / "events.h5"))
    assert_names(info.value, tmp_path / "events.h5", 0)
    per_file = [tmp_path / "a.bin", tmp_path / "b.bin"]
    with pytest.raises(DataFileError, match="event unit 4") as info:
        EventDataset(times, units, [0, 0], n_in=4, source=per_file)
    assert_names(info.value, per_file[1], None)  # one file per sample: the file is the sample
    with pytest.raises(DataFileError, match="label 2 is out of range for 2 classes") as info:
        EventDataset(times, [[0], [1]], [0, 2], n_in=4, n_classes=2, source=per_file)
    assert_names(info.value, per_file[1], None)
    with pytest.raises(ValueError, match="one path per sample"):
        EventDataset(times, [[0], [1]], [0, 1], n_in=4, source=per_file[:1])
    ds = EventDataset(times, [[0], [1]], [0, 1], n_in=4, source=per_file)
    assert ds.subset([1]).source == per_file[1:]


# ------------------------------------------------------------------ tonic's formats
def _gesture(tmp_path, name="4.npy", user="user01_led"):
    folder = tmp_path / "DVSGesture" / "ibmGestureTrain" / user
    folder.mkdir(parents=True)
    good = folder.parent / "user02_led"
    good.mkdir()
    np.save(good / "1.npy", np.array([[1, 2, 0, 3.0]]))
    return folder / name


def _npy(array):
    return lambda path: np.save(path, array)


def _npy_bytes(make):
    def write(path):
        np.save(path, np.zeros((8, 4)))
        path.write_bytes(make(path.read_bytes()))

    return write


GESTURE_CASES = [
    ("npy-garbage", "4.npy", lambda p: p.write_bytes(b"garbage"), "not a readable .npy file"),
    ("npy-zero-length", "4.npy", lambda p: p.write_bytes(b""), "not a readable .npy file"),
    ("npy-truncated", "4.npy", _npy_bytes(lambda b: b[:-40]), "not a readable .npy file"),
    ("npy-pickled", "4.npy", _npy(np.array([{"x": 1}], dtype=object)), "not a readable .npy"),
    ("npy-shape", "4.npy", _npy(np.zeros((3, 3))), r"\[n, 4\] array of x, y, p, t, got \(3, 3\)"),
    ("npy-strings", "4.npy", _npy(np.full((2, 4), "a")), "expected numbers, got dtype <U1"),
    (
        "x-off-sensor",
        "4.npy",
        _npy(np.array([[128, 0, 1, 5]])),
        "event 0: x = 128 is not a whole number",
    ),
    (
        "y-negative",
        "4.npy",
        _npy(np.array([[0, 0, 1, 1], [3, -1, 0, 5]])),
        "event 1: y = -1 is not a whole number",
    ),
    (
        "polarity-2",
        "4.npy",
        _npy(np.array([[0, 0, 2, 5]])),
        "event 0: polarity = 2 is not a whole number",
    ),
    (
        "x-nan",
        "4.npy",
        _npy(np.array([[np.nan, 0, 1, 5.0]])),
        "event 0: x = nan is not a whole number",
    ),
    ("time-nan", "4.npy", _npy(np.array([[0, 0, 1, np.nan]])), "event times must be finite"),
    ("time-negative", "4.npy", _npy(np.array([[0, 0, 1, -2.0]])), "must be >= 0 ms, got -2.0"),
    ("label-11", "11.npy", _npy(np.array([[0, 0, 1, 5]])), "label 11 is out of range for 11"),
    ("label-not-int", "four.npy", _npy(np.array([[0, 0, 1, 5]])), "user<NN>_<lighting>/<label>"),
]


@pytest.mark.parametrize(
    ("name", "damage", "pattern"), [pytest.param(*case[1:], id=case[0]) for case in GESTURE_CASES]
)
def test_a_damaged_dvs_gesture_file_names_itself(tmp_path, name, damage, pattern):
    pytest.importorskip("tonic")
    path = _gesture(tmp_path, name)
    damage(path)
    with pytest.raises(DataFileError, match=pattern) as info:
        dvs_gesture(tmp_path)
    assert_names(info.value, path, None)


def test_a_badly_named_user_folder_is_named(tmp_path):
    pytest.importorskip("tonic")
    path = _gesture(tmp_path, user="userAB_led")
    np.save(path, np.array([[0, 0, 1, 5]]))
    with pytest.raises(DataFileError, match="user<NN>_<lighting>") as info:
        dvs_gesture(tmp_path)
    assert_names(info.value, path, None)


def _bin(*events):
    raw = bytearray()
    for x, y, p, t in events:
        raw += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    return bytes(raw)


NMNIST_CASES = [
    ("bin-zero-length", b"", "holds 0 bytes, not a whole number"),
    ("bin-truncated", _bin((1, 2, 1, 100), (3, 4, 0, 200))[:-2], "holds 8 bytes"),
    (
        "bin-x-off-sensor",
        _bin((1, 2, 1, 100), (34, 4, 0, 200)),
        "event 1: x = 34 is not a whole number in 0..33",
    ),
    ("bin-y-off-sensor", _bin((2, 200, 1, 100)), "event 0: y = 200 is not a whole number"),
]


@pytest.mark.parametrize(
    ("raw", "pattern"), [pytest.param(*case[1:], id=case[0]) for case in NMNIST_CASES]
)
def test_a_damaged_nmnist_file_names_itself(tmp_path, raw, pattern):
    pytest.importorskip("tonic")
    folder = tmp_path / "NMNIST" / "Train" / "3"
    folder.mkdir(parents=True)
    (folder / "00001.bin").write_bytes(_bin((1, 1, 0, 10)))
    path = folder / "00002.bin"
    path.write_bytes(raw)
    with pytest.raises(DataFileError, match=pattern) as info:
        nmnist(tmp_path)
    assert_names(info.value, path, None)
