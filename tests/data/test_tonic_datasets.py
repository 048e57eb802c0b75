"""DVS Gesture and N-MNIST readers: tonic's on-disk formats, checked against tonic itself."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from neurowire.data.events import bin_events
from neurowire.data.tonic_datasets import dvs_gesture, nmnist

tonic_datasets = importlib.import_module("neurowire.data.tonic_datasets")


def _write_gesture_folder(root, split="ibmGestureTrain", users=range(1, 11), labels=range(11)):
    """tonic's preprocessed layout: ``<split>/user<NN>_<lighting>/<label>.npy``, ``[n, 4]``
    arrays of ``x, y, p, t`` with ``t`` in ms; returns the written arrays by (user, label)."""
    rng = np.random.default_rng(1)
    written = {}
    for user in users:
        folder = root / "DVSGesture" / split / f"user{user:02d}_fluorescent_led"
        folder.mkdir(parents=True)
        for label in labels:
            n = int(rng.integers(1, 30))
            t = np.sort(rng.integers(0, 60, n))
            ev = np.stack(
                [rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n), t]
            )
            np.save(folder / f"{label}.npy", ev.T.astype(np.int64))
            written[(user, label)] = ev.T
    return written


def _write_nmnist_bin(path, events):
    """Orchard's format: 5 bytes per event, x, y, p (bit 7) + t (23 bits, us); y = 240 marks a
    timestamp overflow (tonic adds 2**13 us to every later event)."""
    raw = bytearray()
    for x, y, p, t in events:
        raw += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    path.write_bytes(bytes(raw))


def test_dvs_gesture_matches_tonics_own_dataset_class(tmp_path, monkeypatch):
    tonic = pytest.importorskip("tonic")
    _write_gesture_folder(tmp_path)  # 110 files: tonic 1.7 wants >= 100 and the archive
    (tmp_path / "DVSGesture" / "ibmGestureTrain.tar.gz").write_bytes(b"")

    def no_download(self):
        raise AssertionError("tonic tried to download")

    monkeypatch.setattr(tonic.datasets.DVSGesture, "download", no_download)
    reference = tonic.datasets.DVSGesture(save_to=str(tmp_path), train=True)
    ds = dvs_gesture(tmp_path, train=True)
    assert len(ds) == len(reference) == 110 and ds.n_in == 2048 and ds.n_classes == 11
    pairs = zip(ds.groups.tolist(), ds.labels.tolist(), strict=True)
    where = {pair: j for j, pair in enumerate(pairs)}
    latest = 0.0
    for i in range(len(reference)):
        events, target = reference[i]
        j = where[(reference.users[i], target)]
        t_ms = events["t"] / 1000.0  # tonic gives us
        latest = max(latest, t_ms.max())
        ids = ((events["y"] // 4) * 32 + events["x"] // 4) * 2 + events["p"].astype(np.int64)
        expected = bin_events(t_ms, ids, 2048, 1.0, ds.steps)
        assert bool((ds[j][0] == expected).all())
    assert ds.steps == int(np.ceil(latest))


def test_nmnist_decodes_polarity_and_timestamp_overflow(tmp_path):
    pytest.importorskip("tonic")
    folder = tmp_path / "NMNIST" / "Test" / "4"
    folder.mkdir(parents=True)
    overflow = (0, 240, 0, 0)
    _write_nmnist_bin(folder / "00001.bin", [(1, 2, 1, 100), overflow, (3, 4, 0, 100)])
    ds = nmnist(tmp_path, train=False, dt=2.0)
    assert ds.labels.tolist() == [4] and ds.classes[4] == "4 - four" and ds.groups is None
    assert ds.steps == 5  # 8,292 us -> 8.292 ms at dt = 2 ms
    on = [(2 * 34 + 1) * 2 + 1, (4 * 34 + 3) * 2 + 0]
    assert ds[0][0].nonzero().tolist() == [[0, on[0]], [4, on[1]]]


def _stub_tonic(calls):
    class FakeDVSGesture:
        """Stands in for tonic's class: 'downloads' one recording when constructed."""

        classes = [f"gesture {k}" for k in range(11)]

        def __init__(self, save_to, train=True):
            calls.append((save_to, train))
            split = "ibmGestureTrain" if train else "ibmGestureTest"
            folder = Path(save_to) / "DVSGesture" / split
            (folder / "user03_led").mkdir(parents=True)
            np.save(folder / "user03_led" / "5.npy", np.array([[127, 64, 1, 2]]))

    return SimpleNamespace(datasets=SimpleNamespace(DVSGesture=FakeDVSGesture))


def test_nothing_is_downloaded_unless_asked(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(tonic_datasets, "_tonic", lambda: _stub_tonic(calls))
    expected = tmp_path / "DVSGesture" / "ibmGestureTest"
    with pytest.raises(FileNotFoundError, match=rf"{expected}.*download=True"):
        dvs_gesture(tmp_path, train=False)
    assert calls == []
    ds = dvs_gesture(tmp_path, train=False, spatial_factor=0.5, steps=3, download=True)
    assert calls == [(str(tmp_path), False)]
    assert ds.n_in == 64 * 64 * 2 and ds.labels.tolist() == [5] and ds.groups.tolist() == [3]
    assert ds[0][0].nonzero().tolist() == [[2, (32 * 64 + 63) * 2 + 1]]
    with pytest.raises(FileNotFoundError, match=r"NMNIST.Train.*download=True"):
        nmnist(tmp_path, train=True)


@pytest.mark.parametrize("factor", [0.0, 0.3, 1.5])
def test_spatial_factor_must_be_one_over_an_integer(tmp_path, factor):
    with pytest.raises(ValueError, match="spatial_factor must be 1/k"):
        dvs_gesture(tmp_path, spatial_factor=factor)


def test_without_tonic_the_error_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tonic", None)
    for reader in (dvs_gesture, nmnist):
        with pytest.raises(ImportError, match=r'pip install "neurowire\[tonic\]"'):
            reader(tmp_path)
