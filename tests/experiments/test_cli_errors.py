"""Bad input and faults through the command line: one line on stderr, exit status 2 (130 for
Ctrl-C), and nothing new or changed under ``--out``.

Every case runs ``neurowire.cli.main`` in this process (``SystemExit`` carries the status);
one case sends a real SIGINT to a ``python -m neurowire`` child.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_classify_experiment import SMALL  # the small classify run of that file

import neurowire as nw
from neurowire import cli
from neurowire.experiments import classify, topomap
from neurowire.io import PARTIAL_PREFIX, load_checkpoint, save_checkpoint

TOPOMAP = ["--duration", "0.002", "--snapshot-every", "1", "--no-progress"]


def state(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with a hash of its bytes ({} if absent)."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def fails(argv: list[str], capsys, status: int = 2) -> str:
    """Run ``neurowire argv``; assert ``status`` and exactly one line on stderr; return it."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == status, capsys.readouterr().err
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 2-epoch DEEP R run (ALIF, seed 0) of ``classify``."""
    out = tmp_path_factory.mktemp("finished") / "run"
    classify.main([*SMALL, "--deep-r", "--epochs", "2", "--out", str(out)])
    return out


@pytest.fixture
def run_copy(finished, tmp_path) -> Path:
    """A copy of the finished run that a case may damage."""
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(finished, out)
    return out


# ---------------------------------------------------------------------- data files
def write_shd(path: Path, times, units, labels) -> None:
    """A file in the published SHD layout (vlen float16 seconds, vlen uint16 units)."""
    with h5py.File(path, "w") as f:
        t = f.create_dataset("spikes/times", (len(times),), dtype=h5py.vlen_dtype(np.float16))
        u = f.create_dataset("spikes/units", (len(units),), dtype=h5py.vlen_dtype(np.uint16))
        for i, (ti, ui) in enumerate(zip(times, units, strict=True)):
            t[i] = np.asarray(ti, dtype=np.float16)
            u[i] = np.asarray(ui, dtype=np.uint16)
        f["labels"] = np.asarray(labels, dtype=np.uint8)


GOOD = ([[0.001, 0.002], [0.003]], [[1, 2], [3]], [0, 1])


def _drop(key):
    def damage(path):
        with h5py.File(path, "a") as f:
            del f[key]

    return damage


def _rewrite(times=None, units=None, labels=None):
    def damage(path):
        t, u, lab = GOOD
        write_shd(path, times or t, units or u, labels or lab)

    return damage


def _bytes(cut):
    def damage(path):
        data = path.read_bytes()
        path.write_bytes(cut(data))

    return damage


def _gzip_corrupt(path):
    data = gzip.compress(path.read_bytes())
    path.unlink()
    Path(str(path) + ".gz").write_bytes(data[: len(data) // 2] + b"\x00" * 64)


DATA_FAULTS = {
    "truncated": _bytes(lambda d: d[: len(d) // 2]),
    "zero-length": _bytes(lambda d: b""),
    "not HDF5": _bytes(lambda d: b"this is not an HDF5 file\n" * 100),
    "no spikes/units": _drop("spikes/units"),
    "no labels": _drop("labels"),
    "label out of range": _rewrite(labels=[0, 25]),
    "unit out of range": _rewrite(units=[[1, 2], [700]]),
    "NaN time": _rewrite(times=[[0.001, float("nan")], [0.003]]),
    "length mismatch": _rewrite(units=[[1], [3]]),
    "corrupt .h5.gz": _gzip_corrupt,
}


@pytest.mark.parametrize("fault", list(DATA_FAULTS))
def test_a_malformed_data_file_is_one_line_naming_the_file(fault, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "test"):
        write_shd(data / f"shd_{split}.h5", *GOOD)
    DATA_FAULTS[fault](data / "shd_train.h5")
    out = tmp_path / "out"
    line = fails(
        ["classify", "--dataset", "shd", "--data-dir", str(data), "--out", str(out)], capsys
    )
    assert "shd_train.h5" in line, line
    assert not out.exists()
    assert not any(p.name.endswith(".part") for p in data.iterdir())


# ---------------------------------------------------------------------- flags
BAD_FLAGS = {
    "dt inf": (["--dt", "inf"], "--dt"),
    "dt nan": (["--dt", "nan"], "--dt"),
    "dt tiny": (["--dt", "1e-300"], "--dt"),
    "seed float": (["--seed", "1e23"], "--seed"),
    "seed huge": (["--deep-r", "--seed", str(2**63 - 1)], "--seed"),
    "seed negative": (["--seed", "-1"], "--seed"),
    "lr inf": (["--lr", "inf"], "--lr"),
    "lr zero": (["--lr", "0"], "--lr"),
    "l1 nan": (["--l1", "nan"], "--l1"),
    "l1 huge": (["--l1", "1e300"], "--l1"),
    "padding inf": (["--padding", "inf"], "--padding"),
    "hidden huge": (["--hidden", str(10**30)], "--hidden"),
    "density nan": (["--input-density", "nan"], "--input-density"),
    "validation 1": (["--validation-fraction", "1"], "--validation-fraction"),
    "grid inf": (["--l1-grid", "0.1", "inf"], "--l1-grid"),
    "resume and overwrite": (["--resume", "--overwrite"], "--overwrite"),
    "lesion no colon": (["--lesion", "10"], "--lesion"),
    "lesion words": (["--lesion", "ten:half"], "--lesion"),
    "lesion epoch float": (["--lesion", "2.5:0.5"], "--lesion"),
    "lesion empty fraction": (["--lesion", "3:"], "--lesion"),
    "lesion epoch 0": (["--lesion", "0:0.5"], "--lesion EPOCH"),
    "lesion epoch negative": (["--lesion=-1:0.5"], "--lesion EPOCH"),
    "lesion read as an option": (["--lesion", "-1:0.5"], "--lesion"),
    "lesion at the last epoch": (["--epochs", "10", "--lesion", "10:0.5"], "[1, 9]"),
    "lesion after the last epoch": (["--epochs", "4", "--lesion", "7:0.5"], "--lesion EPOCH"),
    "lesion one epoch": (["--epochs", "1", "--lesion", "1:0.5"], "--epochs 2 or more"),
    "lesion fraction 0": (["--lesion", "3:0"], "--lesion FRACTION"),
    "lesion fraction 1": (["--lesion", "3:1"], "--lesion FRACTION"),
    "lesion fraction negative": (["--lesion", "3:-0.5"], "(0, 1)"),
    "lesion fraction nan": (["--lesion", "3:nan"], "--lesion FRACTION"),
    "lesion fraction inf": (["--lesion", "3:inf"], "--lesion FRACTION"),
}


@pytest.mark.parametrize("case", list(BAD_FLAGS))
def test_a_bad_classify_flag_is_one_line_before_any_work(case, tmp_path, capsys, monkeypatch):
    argv, flag = BAD_FLAGS[case]
    monkeypatch.setattr(classify, "load_data", _never)
    out = tmp_path / "out"
    line = fails(["classify", *argv, "--out", str(out)], capsys)
    assert flag in line, line
    assert not out.exists()


def _never(*args, **kwargs):
    raise AssertionError("work began before the flags were checked")


TOPOMAP_FAULTS = {
    "seed negative": (["--seed", "-5"], "--seed"),
    "snapshot inf": (["--snapshot-every", "inf"], "--snapshot-every"),
    "duration nan": (["--duration", "nan"], "--duration"),
    "tau-refrac inf": (["--tau-refrac", "inf"], "--tau-refrac"),
    "scale huge": (["--scale", "100000"], "--scale"),
}


@pytest.mark.parametrize("case", list(TOPOMAP_FAULTS))
def test_a_bad_topomap_flag_is_one_line_and_writes_nothing(case, tmp_path, capsys, monkeypatch):
    argv, flag = TOPOMAP_FAULTS[case]
    monkeypatch.setattr(topomap, "build", _never)
    out = tmp_path / "out"
    line = fails(["topomap", *TOPOMAP, *argv, "--out", str(out)], capsys)
    assert flag in line, line
    assert not out.exists()


NUMERIC_FLAGS = {
    "classify": [
        "--hidden",
        "--input-density",
        "--recurrent-density",
        "--padding",
        "--l1",
        "--l1-epochs",
        "--validation-fraction",
        "--epochs",
        "--batch-size",
        "--lr",
        "--seed",
        "--dt",
    ],
    "topomap": ["--scale", "--duration", "--seed", "--snapshot-every", "--tau-refrac"],
}
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 1e-300, 1e300, 2**63 - 1, 2**64]),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    command_flag=st.sampled_from([(c, f) for c, flags in NUMERIC_FLAGS.items() for f in flags]),
    value=NUMBERS,
)
def test_any_number_for_any_flag_is_accepted_in_range_or_refused_in_one_line(
    command_flag, value, tmp_path, capsys
):
    command, flag = command_flag
    out = tmp_path / "never"
    argv = [flag, repr(value)]
    capsys.readouterr()
    try:
        if command == "classify":
            cfg = classify.config_from_args([*argv, "--out", str(out)])
            accepted = getattr(cfg, flag[2:].replace("-", "_"))
        else:
            args = topomap.parser().parse_args(argv)
            name = {"--duration": "duration_s", "--snapshot-every": "snapshot_every_ms"}
            fields = {"--scale": "scale", "--seed": "seed", "--tau-refrac": "tau_refrac"}
            key = name.get(flag) or fields[flag]
            cfg = topomap.TopomapConfig(**{key: getattr(args, flag[2:].replace("-", "_"))})
            accepted = getattr(cfg, key)
    except SystemExit as exc:
        assert exc.code == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
        return
    except ValueError as err:  # the topomap config, before main turns it into one line
        assert flag in str(err)
        return
    assert isinstance(accepted, (int, float)) and math.isfinite(accepted)
    assert not out.exists()


# ---------------------------------------------------------------------- output folders
def test_a_finished_classify_run_is_not_overwritten(run_copy, capsys):
    before = state(run_copy)
    line = fails(["classify", *SMALL, "--deep-r", "--epochs", "2", "--out", str(run_copy)], capsys)
    assert "--resume" in line and "--overwrite" in line and str(run_copy) in line
    assert state(run_copy) == before


def test_overwrite_replaces_the_run_without_leftovers(run_copy):
    classify.main([*SMALL, "--epochs", "1", "--out", str(run_copy), "--overwrite"])
    assert not (run_copy / "checkpoints" / "deep_r.pt").exists()
    assert not (run_copy / "placement_deep_r.png").exists()
    summary = json.loads((run_copy / "summary.json").read_text())
    assert list(summary["configurations"]) == ["static"]
    assert json.loads((run_copy / "run.json").read_text())["settings"]["configurations"] == [
        "static"
    ]


def test_a_finished_topomap_run_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "map"
    topomap.main([*TOPOMAP, "--out", str(out)])
    before = state(out)
    line = fails(["topomap", *TOPOMAP, "--out", str(out)], capsys)
    assert "--overwrite" in line
    assert state(out) == before
    topomap.main([*TOPOMAP, "--seed", "1", "--out", str(out), "--overwrite"])
    assert json.loads((out / "run.json").read_text())["settings"]["seed"] == 1


@pytest.mark.parametrize("command", ["classify", "topomap"])
def test_out_pointing_at_a_file_is_refused(command, tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    extra = TOPOMAP if command == "topomap" else SMALL
    line = fails([command, *extra, "--out", str(target)], capsys)
    assert "is a file" in line
    assert target.read_text() == "keep me"


def test_an_unwritable_out_is_refused_before_training(tmp_path, capsys, monkeypatch):
    out = tmp_path / "locked"
    real = Path.write_bytes

    def write_bytes(self, data):
        if out in self.parents:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    monkeypatch.setattr(classify, "load_data", _never)
    line = fails(["classify", *SMALL, "--out", str(out)], capsys)
    assert "not writable" in line and "Permission denied" in line
    assert not out.exists()


# ---------------------------------------------------------------------- resume
RESUME_MISMATCHES = {
    "model": (["--model", "lif"], "model: 'alif' -> 'lif'"),
    "hidden": (["--hidden", "13"], "hidden: 12 -> 13"),
    "density": (["--recurrent-density", "0.5"], "recurrent_density: 0.4 -> 0.5"),
    "seed": (["--seed", "1"], "seed: 0 -> 1"),
    "dt": (["--dt", "0.5"], "dt: 1.0 -> 0.5"),
    "method": (["--method", "online"], "method: 'factorized' -> 'online'"),
    "lesion": (["--lesion", "2:0.5"], "lesion_epoch: '(absent)' -> 2"),
}


@pytest.mark.parametrize("case", list(RESUME_MISMATCHES))
def test_resume_refuses_other_settings_naming_them(case, run_copy, capsys, monkeypatch):
    extra, named = RESUME_MISMATCHES[case]
    monkeypatch.setattr(classify, "load_data", _never)
    before = state(run_copy)
    argv = [*SMALL, "--deep-r", "--epochs", "3", "--resume", *extra, "--out", str(run_copy)]
    line = fails(["classify", *argv], capsys)
    assert named in line, line
    assert state(run_copy) == before


def test_a_checkpoint_that_disagrees_with_its_run_record_is_refused(run_copy, capsys):
    path = run_copy / "checkpoints" / "deep_r.pt"
    payload = load_checkpoint(path)
    payload["run"]["hidden"] = 99
    save_checkpoint(path, payload)
    before = state(run_copy)
    argv = [*SMALL, "--deep-r", "--epochs", "3", "--resume", "--out", str(run_copy)]
    line = fails(["classify", *argv], capsys)
    assert "hidden: 99 -> 12" in line and "deep_r.pt" in line
    assert state(run_copy) == before


@pytest.mark.parametrize("key", ["trainer", "history", "run"])
def test_a_checkpoint_missing_a_key_is_one_line(key, run_copy, capsys):
    path = run_copy / "checkpoints" / "deep_r.pt"
    payload = load_checkpoint(path)
    del payload[key]
    save_checkpoint(path, payload)
    before = state(run_copy)
    argv = [*SMALL, "--deep-r", "--epochs", "3", "--resume", "--out", str(run_copy)]
    line = fails(["classify", *argv], capsys)
    assert key in line and "deep_r.pt" in line
    assert state(run_copy) == before


def test_a_checkpoint_that_does_not_fit_the_network_is_one_line(run_copy, capsys):
    path = run_copy / "checkpoints" / "deep_r.pt"
    payload = load_checkpoint(path)
    payload["trainer"]["projections"].pop("readout")
    save_checkpoint(path, payload)
    before = state(run_copy)
    argv = [*SMALL, "--deep-r", "--epochs", "3", "--resume", "--out", str(run_copy)]
    line = fails(["classify", *argv], capsys)
    assert "does not fit" in line
    assert state(run_copy) == before


def test_resume_with_nothing_to_resume_is_refused_unless_asked_to_start(tmp_path, capsys):
    out = tmp_path / "empty"
    line = fails(["classify", *SMALL, "--resume", "--epochs", "1", "--out", str(out)], capsys)
    assert "nothing to resume" in line and "--resume-or-start" in line
    assert not out.exists()
    summary = classify.main([*SMALL, "--resume-or-start", "--epochs", "1", "--out", str(out)])
    assert len(summary["configurations"]["static"]["history"]) == 1
    assert "warning" not in capsys.readouterr().err  # nothing to warn about: a new run


def test_resume_of_a_configuration_without_checkpoint_warns_and_starts_it(tmp_path, capsys):
    out = tmp_path / "out"
    classify.main([*SMALL, "--compare", "--epochs", "1", "--out", str(out)])
    (out / "checkpoints" / "deep_r.pt").unlink()  # killed before deep_r's first checkpoint
    capsys.readouterr()
    summary = classify.main([*SMALL, "--compare", "--epochs", "2", "--out", str(out), "--resume"])
    err = capsys.readouterr().err
    assert "no checkpoint of 'deep_r' yet" in err and "'static'" not in err
    assert [len(c["history"]) for c in summary["configurations"].values()] == [2, 2, 2]


def test_resume_refuses_fewer_epochs_than_were_trained(run_copy, capsys):
    before = state(run_copy)
    argv = [*SMALL, "--deep-r", "--epochs", "1", "--resume", "--out", str(run_copy)]
    line = fails(["classify", *argv], capsys)
    assert "--epochs 1" in line and "2 epochs" in line
    assert state(run_copy) == before


def test_a_checkpoint_write_killed_midway_is_ignored_with_a_warning(run_copy, capsys):
    left = run_copy / "checkpoints" / f"{PARTIAL_PREFIX}0badc0de-deep_r.pt"
    left.write_bytes(b"")
    capsys.readouterr()
    summary = classify.main(
        [*SMALL, "--deep-r", "--epochs", "3", "--resume", "--out", str(run_copy)]
    )
    err = capsys.readouterr().err
    assert "warning" in err and left.name in err
    assert not left.exists()
    assert [h["epoch"] for h in summary["configurations"]["deep_r"]["history"]] == [1, 2, 3]


def test_an_unsafe_checkpoint_is_refused_without_advice_to_load_it(run_copy, capsys):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("true",))

    path = run_copy / "checkpoints" / "deep_r.pt"
    torch.save({"format": "neurowire-checkpoint", "version": 1, "payload": Exploit()}, path)
    argv = [*SMALL, "--deep-r", "--epochs", "3", "--resume", "--out", str(run_copy)]
    line = fails(["classify", *argv], capsys)
    assert "refusing to load" in line
    assert "weights_only" not in line and "succeed" not in line


# ---------------------------------------------------------------------- interrupts
def test_ctrl_c_in_classify_is_130_and_names_the_checkpoint(tmp_path, capsys, monkeypatch):
    real_fit = nw.EProp.fit
    calls = []

    def fit(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(nw.EProp, "fit", fit)
    out = tmp_path / "out"
    line = fails(["classify", *SMALL, "--epochs", "3", "--out", str(out)], capsys, status=130)
    assert "interrupted" in line and "static.pt" in line and "epoch 1" in line
    assert "--resume" in line
    assert load_checkpoint(out / "checkpoints" / "static.pt")["epoch"] == 1
    assert not (out / "summary.json").exists()


def test_ctrl_c_in_topomap_is_130_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    def run(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(nw.Simulator, "run", run)
    out = tmp_path / "out"
    line = fails(["topomap", *TOPOMAP, "--out", str(out)], capsys, status=130)
    assert "interrupted" in line
    assert not out.exists()


def test_a_real_sigint_exits_130_with_one_line(tmp_path):
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "neurowire", "classify", *SMALL, "--epochs", "100000"]
    proc = subprocess.Popen(
        [*argv, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    checkpoint = out / "checkpoints" / "static.pt"
    deadline = time.monotonic() + 600  # a cold numba cache can take minutes to compile

    def written() -> int:
        return checkpoint.stat().st_mtime_ns if checkpoint.exists() else 0

    # wait for the second epoch's checkpoint, so that every kernel has been compiled: the
    # signal must arrive during training, not in the compiler
    first = 0
    while time.monotonic() < deadline and proc.poll() is None:
        now = written()
        if first and now != first:
            break
        first = first or now
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "static.pt" in lines[0] and "--resume" in lines[0], err


def test_debug_shows_the_traceback(tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(Exception, match="nothing to resume"):
        cli.main(["classify", *SMALL, "--resume", "--debug", "--out", str(out)])
