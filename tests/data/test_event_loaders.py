"""Event datasets: binning, SHD/SSC HDF5 files, DVS Gesture / N-MNIST folders (via tonic)."""

from __future__ import annotations

import gzip
import math
import sys

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from neurowire import data
from neurowire.data import EventDataset, bin_events


def test_bin_events_floors_merges_duplicates_and_drops_late_events():
    t = np.array([0.0, 0.99, 1.0, 1.5, 2.999, 3.0], dtype=np.float16)
    u = np.array([0, 0, 1, 1, 2, 2])
    s = bin_events(t, u, n_units=3, dt=1.0, steps=3)
    assert s.dtype == torch.bool and s.shape == (3, 3)
    assert s.nonzero().tolist() == [[0, 0], [1, 1], [2, 2]]  # two events in a bin: one spike
    s2 = bin_events(t, u, 3, 1.0, 3, threshold=2)
    assert s2.nonzero().tolist() == [[0, 0], [1, 1]]
    with pytest.raises(ValueError, match="out of range"):
        bin_events(np.array([1.0]), np.array([3]), 3, 1.0, 3)
    with pytest.raises(ValueError, match=">= 0"):
        bin_events(np.array([-1.0]), np.array([0]), 3, 1.0, 3)


def _write_shd(path, n=6, seed=0, speakers=(1, 2, 3)):
    rng = np.random.default_rng(seed)
    vlen_t, vlen_u = h5py.vlen_dtype(np.float16), h5py.vlen_dtype(np.uint16)
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (n,), dtype=vlen_t)
        units = f.create_dataset("spikes/units", (n,), dtype=vlen_u)
        for i in range(n):
            k = 20 + i
            t = np.sort(rng.uniform(0, 1.0, k)).astype(np.float16)
            t[-1] = np.float16(1.3876) if i == 0 else t[-1]  # a late spike, ~1.39 s
            times[i] = t
            units[i] = rng.integers(0, 700, k).astype(np.uint16)
        f["labels"] = (np.arange(n) % 20).astype(np.uint8)
        f["extra/speaker"] = np.array([speakers[i % len(speakers)] for i in range(n)], np.uint8)
        f["extra/keys"] = np.array([f"digit-{k}".encode() for k in range(20)])
        f["extra/meta_info/gender"] = np.array([b"f", b"m", b"f"])


def test_shd_reader_on_a_file_in_the_published_layout(tmp_path):
    _write_shd(tmp_path / "shd_train.h5")
    ds = data.shd(tmp_path, "train", dt=1.0)
    with h5py.File(tmp_path / "shd_train.h5") as f:
        latest = max(float(np.asarray(t, dtype=np.float64).max()) for t in f["spikes/times"])
        t0 = np.asarray(f["spikes/times"][2], dtype=np.float64) * 1000.0
        u0 = np.asarray(f["spikes/units"][2], dtype=np.int64)
    assert ds.steps == math.ceil(latest * 1000.0) == 1388  # float16 1.3876 s -> 1387.6 ms
    assert len(ds) == 6 and ds.n_in == 700 and ds.n_classes == 20
    spikes, label = ds[2]
    expected = torch.zeros(ds.steps, 700, dtype=torch.bool)
    expected[np.floor(t0).astype(np.int64), u0] = True
    assert torch.equal(spikes, expected) and int(label) == 2
    assert ds.classes[3] == "digit-3"
    x, y = next(iter(DataLoader(ds, batch_size=4)))
    assert x.shape == (4, 1388, 700) and x.dtype == torch.bool and y.dtype == torch.int64
    assert torch.equal(x[2], expected) and y.tolist() == [0, 1, 2, 3]


def test_shd_speaker_folds_hold_out_one_speaker_each(tmp_path):
    _write_shd(tmp_path / "shd_train.h5", n=9)
    ds = data.shd(tmp_path, "train")
    folds = data.speaker_folds(ds)
    assert folds == [[1], [2], [3]]
    train, val = ds.split_by_group(folds[1])
    assert len(train) == 6 and len(val) == 3 and set(val.groups) == {2}
    assert train.steps == val.steps == ds.steps


def test_shd_gz_tonic_folder_and_test_split_with_shared_steps(tmp_path):
    folder = tmp_path / "SHD"
    folder.mkdir()
    _write_shd(tmp_path / "plain.h5")
    with open(tmp_path / "plain.h5", "rb") as src, gzip.open(folder / "shd_test.h5.gz", "wb") as d:
        d.write(src.read())
    ds = data.shd(tmp_path, "test", steps=1500)
    assert ds.steps == 1500 and (folder / "shd_test.h5").is_file()


def test_ssc_has_a_validation_split(tmp_path):
    _write_shd(tmp_path / "ssc_valid.h5")
    assert len(data.ssc(tmp_path, "valid")) == 6
    with pytest.raises(ValueError, match="split must be one of"):
        data.ssc(tmp_path, "dev")


def test_missing_and_foreign_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"shd_train\.h5.*zenkelab"):
        data.shd(tmp_path, "train")
    with pytest.raises(ValueError, match="split must be one of"):
        data.shd(tmp_path, "valid")
    with h5py.File(tmp_path / "shd_test.h5", "w") as f:
        f["something"] = np.zeros(3)
    with pytest.raises(ValueError, match="no 'spikes/times'"):
        data.shd(tmp_path, "test")
    (tmp_path / "shd_train.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        data.shd(tmp_path, "train")


def _write_nmnist_bin(path, events):
    """Orchard's format: 5 bytes per event, x, y, p (bit 7) + t (23 bits, us)."""
    raw = bytearray()
    for x, y, p, t in events:
        raw += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    path.write_bytes(bytes(raw))


def test_nmnist_reads_the_binary_format_through_tonic(tmp_path):
    pytest.importorskip("tonic")
    for digit in (3, 7):
        folder = tmp_path / "NMNIST" / "Train" / str(digit)
        folder.mkdir(parents=True)
        _write_nmnist_bin(folder / "00001.bin", [(1, 2, 1, 500), (1, 2, 1, 900), (33, 0, 0, 2500)])
    ds = data.nmnist(tmp_path, train=True)
    assert len(ds) == 2 and ds.n_in == 2312 and ds.labels.tolist() == [3, 7]
    assert ds.steps == 3  # latest event 2.5 ms
    spikes, _ = ds[0]
    on = ((2 * 34 + 1) * 2 + 1, (0 * 34 + 33) * 2 + 0)
    assert spikes.nonzero().tolist() == [[0, on[0]], [2, on[1]]]
    with pytest.raises(FileNotFoundError, match="download=True"):
        data.nmnist(tmp_path, train=False)


def test_dvs_gesture_reads_tonic_folders_downsamples_and_keeps_users(tmp_path):
    pytest.importorskip("tonic")
    for user, label in ((1, 4), (2, 10)):
        folder = tmp_path / "DVSGesture" / "ibmGestureTrain" / f"user{user:02d}_fluorescent"
        folder.mkdir(parents=True)
        ev = np.array([[127, 5, 1, 0.0], [4, 8, 0, 12.5]])  # x, y, p, t [ms]
        np.save(folder / f"{label}.npy", ev)
    ds = data.dvs_gesture(tmp_path, train=True)
    assert ds.n_in == 2048 and ds.labels.tolist() == [4, 10] and ds.groups.tolist() == [1, 2]
    spikes, _ = ds[0]
    assert spikes.shape == (13, 2048)
    assert spikes.nonzero().tolist() == [[0, (1 * 32 + 31) * 2 + 1], [12, (2 * 32 + 1) * 2]]


def test_tonic_datasets_without_tonic_say_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tonic", None)
    with pytest.raises(ImportError, match=r"neurowire\[tonic\]"):
        data.nmnist(tmp_path)


def test_event_dataset_checks_its_inputs():
    with pytest.raises(ValueError, match="one entry per sample"):
        EventDataset([np.zeros(1)], [], [0], n_in=2)
    ds = EventDataset([np.array([0.5, 4.2])], [np.array([0, 1])], [1], n_in=2, dt=2.0)
    assert ds.steps == 3 and ds[0][0].nonzero().tolist() == [[0, 0], [2, 1]]
    with pytest.raises(ValueError, match="no groups"):
        ds.split_by_group([0])
