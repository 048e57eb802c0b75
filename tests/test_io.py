"""Checkpoint files: round trip, atomic writes, clear errors, no code execution on load."""

from __future__ import annotations

import pickle

import pytest
import torch

from neurowire.io import (
    PARTIAL_PREFIX,
    CheckpointError,
    atomic_path,
    load_checkpoint,
    partial_files,
    save_checkpoint,
    write_text,
)


def test_round_trip_keeps_tensors_numbers_and_nested_data(tmp_path):
    payload = {"w": torch.arange(6.0).view(2, 3), "n": 2**80, "x": [1.5, "a", {"k": (1, 2)}]}
    path = save_checkpoint(tmp_path / "sub" / "c.pt", payload)
    back = load_checkpoint(path)
    assert torch.equal(back["w"], payload["w"]) and back["n"] == 2**80
    assert back["x"] == [1.5, "a", {"k": (1, 2)}]
    assert sorted(p.name for p in path.parent.iterdir()) == ["c.pt"]  # no temporary left


def test_overwrite_is_atomic_when_writing_fails(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"epoch": 1})

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        save_checkpoint(path, {"epoch": 2, "bad": Unsaveable()})
    assert load_checkpoint(path) == {"epoch": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


def test_missing_truncated_and_foreign_files_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "absent.pt")
    path = save_checkpoint(tmp_path / "c.pt", {"w": torch.zeros(1000)})
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or foreign"):
        load_checkpoint(tmp_path / "cut.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "text.pt")
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a neurowire checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save({"format": "neurowire-checkpoint", "version": 99, "payload": {}}, tmp_path / "v.pt")
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(tmp_path / "v.pt")


class _Exploit:
    """Unpickling this calls ``open(marker, "w")``: a stand-in for arbitrary code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_crafted_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    payload = {"format": "neurowire-checkpoint", "version": 1, "payload": _Exploit(marker)}
    torch.save(payload, evil)  # a valid torch archive whose pickle would call open()
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refusing to load") as info:
        load_checkpoint(evil)
    assert "weights_only" not in str(info.value) and "succeed" not in str(info.value)
    assert not marker.exists()
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_Exploit(marker)))  # a bare pickle, not a torch archive
    with pytest.raises(CheckpointError):
        load_checkpoint(raw)
    assert not marker.exists()


def test_saving_over_a_directory_is_an_error(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory"):
        save_checkpoint(tmp_path, {})


@pytest.mark.parametrize("fault", [RuntimeError("disk"), KeyboardInterrupt()])
def test_atomic_path_leaves_the_old_file_and_no_temporary_on_failure(tmp_path, fault):
    target = write_text(tmp_path / "summary.json", "old")
    with pytest.raises(type(fault)), atomic_path(target) as tmp:
        assert tmp.suffix == ".json" and tmp.parent == tmp_path
        tmp.write_text("half")
        raise fault
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
    assert partial_files(tmp_path) == []


def test_partial_files_finds_temporaries_left_by_a_kill(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    left = tmp_path / "checkpoints" / f"{PARTIAL_PREFIX}0a1b2c3d-dense.pt"
    left.write_bytes(b"")
    save_checkpoint(tmp_path / "checkpoints" / "static.pt", {"epoch": 1})
    assert partial_files(tmp_path) == [left]
    assert partial_files(tmp_path / "absent") == []
