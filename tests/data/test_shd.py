"""SHD / SSC readers on small HDF5 files written in the published layout."""

from __future__ import annotations

import gzip
import math
import zipfile

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from neurowire.data import DataFileError
from neurowire.data.shd import shd, speaker_folds, ssc

# A float16 spike time near the end of a digit: 1.3955078125 s = 1395.5078125 ms (bin 1395).
# Scaled in float16 it would round to 1396 ms (float16 spacing is 1 above 1,024).
LATE_S = np.float16(1.3955078125)


def write_heidelberg(path, samples, labels, speakers=None, n_keys=20, meta=True):
    """``samples``: list of ``(times [s], units)``; the dtypes of the published files."""
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (len(samples),), dtype=h5py.vlen_dtype(np.float16))
        units = f.create_dataset("spikes/units", (len(samples),), dtype=h5py.vlen_dtype(np.uint16))
        for i, (t, u) in enumerate(samples):
            times[i] = np.asarray(t, dtype=np.float16)
            units[i] = np.asarray(u, dtype=np.uint16)
        f["labels"] = np.asarray(labels, dtype=np.uint8)
        if speakers is not None:
            f["extra/speaker"] = np.asarray(speakers, dtype=np.uint16)
        if n_keys:
            f["extra/keys"] = np.array([f"word-{k}".encode() for k in range(n_keys)])
        if meta:
            f["extra/meta_info/gender"] = np.array([b"female", b"male"])


SAMPLES = [
    ([0.0001, 0.0004, 0.0012, 1.0], [5, 5, 5, 699]),  # two spikes of unit 5 in bin 0
    ([0.0105, LATE_S], [0, 1]),  # the latest spike of the split
    ([], []),  # a silent sample
    ([0.5], [42]),
]


def test_reader_converts_float16_seconds_to_exact_ms_and_bins_by_floor(tmp_path):
    write_heidelberg(tmp_path / "shd_train.h5", SAMPLES, [0, 19, 3, 3], speakers=[1, 1, 2, 3])
    assert int(np.float16(LATE_S * np.float16(1000))) == 1396  # what float16 scaling would do
    ds = shd(tmp_path)
    assert ds.steps == math.ceil(float(LATE_S) * 1000.0) == 1396  # dataset-wide, from sample 1
    assert ds.times_ms[1][1] == float(LATE_S) * 1000.0 == 1395.5078125
    assert ds.times_ms[1].dtype == np.float32
    spikes, label = ds[1]
    assert spikes.nonzero().tolist() == [[10, 0], [1395, 1]] and int(label) == 19
    first = ds[0][0]
    assert first.nonzero().tolist() == [[0, 5], [1, 5], [1000, 699]]  # 0.1 + 0.4 ms: one spike
    assert shd(tmp_path, threshold=2)[0][0].nonzero().tolist() == [[0, 5]]
    assert not ds[2][0].any()
    assert ds.n_in == 700 and ds.n_classes == 20 and ds.classes[19] == "word-19"
    assert ds.groups.tolist() == [1, 1, 2, 3]


def test_dataloader_batches_are_bool_rasters_and_int64_labels(tmp_path):
    write_heidelberg(tmp_path / "shd_test.h5", SAMPLES, [0, 1, 2, 3], speakers=[1, 2, 3, 4])
    x, y = next(iter(DataLoader(shd(tmp_path, "test", steps=1400), batch_size=3)))
    assert x.shape == (3, 1400, 700) and x.dtype == torch.bool
    assert y.dtype == torch.int64 and y.tolist() == [0, 1, 2]
    assert x[0].nonzero().tolist() == [[0, 5], [1, 5], [1000, 699]]
    assert x[1].nonzero().tolist() == [[10, 0], [1395, 1]]
    assert not x[2].any()  # the silent sample


def test_speaker_folds_hold_out_whole_speakers(tmp_path):
    write_heidelberg(tmp_path / "shd_train.h5", SAMPLES, [0, 1, 2, 3], speakers=[4, 2, 4, 9])
    ds = shd(tmp_path)
    assert speaker_folds(ds) == [[2], [4], [9]]
    assert speaker_folds(ds, n_folds=2) == [[2, 9], [4]]
    train, val = ds.split_by_group([4])
    assert val.labels.tolist() == [0, 2] and train.labels.tolist() == [1, 3]
    assert set(train.groups.tolist()).isdisjoint(val.groups.tolist())


def test_ssc_splits_classes_and_missing_speakers(tmp_path):
    folder = tmp_path / "SSC"  # tonic's folder
    folder.mkdir()
    write_heidelberg(folder / "ssc_valid.h5", SAMPLES, [34, 0, 1, 2], n_keys=35, meta=False)
    ds = ssc(tmp_path, "valid")
    assert ds.n_classes == 35 and ds.groups is None
    with pytest.raises(ValueError, match="no speaker ids"):
        speaker_folds(ds)
    with pytest.raises(ValueError, match=r"one of \('train', 'valid', 'test'\), got 'dev'"):
        ssc(tmp_path, "dev")
    with pytest.raises(ValueError, match=r"one of \('train', 'test'\), got 'valid'"):
        shd(tmp_path, "valid")


def test_without_keys_the_class_count_is_the_datasets(tmp_path):
    write_heidelberg(tmp_path / "shd_test.h5", SAMPLES, [0, 1, 2, 3], n_keys=0)
    ds = shd(tmp_path, "test")
    assert ds.classes is None and ds.n_classes == 20


def test_archives_are_unpacked_once_without_leftovers(tmp_path):
    write_heidelberg(tmp_path / "plain.h5", SAMPLES, [0, 1, 2, 3])
    raw = (tmp_path / "plain.h5").read_bytes()
    with gzip.open(tmp_path / "shd_train.h5.gz", "wb") as f:
        f.write(raw)
    assert len(shd(tmp_path)) == 4
    h5 = tmp_path / "shd_train.h5"
    assert h5.read_bytes() == raw and not list(tmp_path.glob("*.part"))
    stamp = h5.stat().st_mtime_ns
    (tmp_path / "shd_train.h5.gz").write_bytes(b"broken")  # no longer read
    assert len(shd(tmp_path)) == 4 and h5.stat().st_mtime_ns == stamp
    (tmp_path / "SHD").mkdir()
    with zipfile.ZipFile(tmp_path / "SHD" / "shd_test.h5.zip", "w") as zf:
        zf.writestr("shd_test.h5", raw)
    assert len(shd(tmp_path, "test")) == 4 and (tmp_path / "SHD" / "shd_test.h5").is_file()


def test_a_broken_archive_leaves_no_truncated_file(tmp_path):
    (tmp_path / "shd_test.h5.gz").write_bytes(b"not gzip")
    with pytest.raises(DataFileError, match="shd_test.h5.gz'.*not a readable gzip archive"):
        shd(tmp_path, "test")
    assert not (tmp_path / "shd_test.h5").exists() and not list(tmp_path.glob("*.part"))


def test_missing_file_names_every_expected_path_and_the_source(tmp_path):
    expected = [tmp_path / "ssc_test.h5", tmp_path / "SSC" / "ssc_test.h5"]
    with pytest.raises(FileNotFoundError) as info:
        ssc(tmp_path, "test")
    message = str(info.value)
    assert all(str(p) in message for p in expected)
    assert "https://zenkelab.org/datasets" in message and "tonic.datasets.SSC" in message


def test_foreign_files_name_the_offending_key(tmp_path):
    path = tmp_path / "shd_train.h5"
    with h5py.File(path, "w") as f:
        f["spikes/times"] = np.zeros((2, 3), dtype=np.float16)  # not variable-length
        f["spikes/units"] = np.zeros((2, 3), dtype=np.uint16)
        f["labels"] = np.zeros(2, dtype=np.uint8)
    with pytest.raises(ValueError, match="'spikes/times' must hold variable-length floating"):
        shd(tmp_path)
    with h5py.File(path, "w") as f:
        f.create_dataset("spikes/times", (1,), dtype=h5py.vlen_dtype(np.float16))
        f.create_dataset("spikes/units", (1,), dtype=h5py.vlen_dtype(np.uint16))
    with pytest.raises(ValueError, match="has no 'labels'"):
        shd(tmp_path)
    write_heidelberg(path, SAMPLES[:2], [0, 1, 2])
    with pytest.raises(DataFileError, match=r"labels \(3\) need one entry per sample"):
        shd(tmp_path)


def test_out_of_range_channel_is_reported_with_its_sample(tmp_path):
    write_heidelberg(tmp_path / "shd_train.h5", [([0.1], [3]), ([0.2], [700])], [0, 1])
    with pytest.raises(ValueError, match=r"sample 1: event unit 700 is out of range \[0, 700\)"):
        shd(tmp_path)
