"""The ``neurowire`` command: help, version, unknown commands and bad devices (one line each)."""

from __future__ import annotations

import importlib.metadata
import runpy
import sys

import pytest
import torch

import neurowire
from neurowire import cli
from neurowire.experiments import options


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_no_arguments_print_the_help_and_exit_2(capsys):
    assert cli.main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("usage: neurowire <command> [options]")
    for name in ("classify", "topomap", "msp", "--version", "--help"):
        assert name in captured.err


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_exits_0(flag, capsys):
    assert cli.main([flag]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("usage: neurowire") and "topomap" in captured.out
    assert captured.err == ""


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"neurowire {importlib.metadata.version('neurowire')}\n"


def test_version_falls_back_to_the_package_attribute(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert cli.version() == neurowire.__version__


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("nonsense", "neurowire: error: unknown command 'nonsense'"),
        ("--frobnicate", "neurowire: error: unknown option '--frobnicate'"),
    ],
)
def test_unknown_commands_give_one_line(arg, message, capsys):
    assert cli.main([arg, "--duration", "1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    line = _one_line(captured.err)
    assert line.startswith(message) and "classify, topomap" in line


BAD_DEVICES = ["gpu0", "cuda:99", "mps", "cpu:3", ""]
if not torch.cuda.is_available():
    BAD_DEVICES.append("cuda")


@pytest.mark.parametrize("command", ["topomap", "classify", "msp"])
@pytest.mark.parametrize("device", BAD_DEVICES)
def test_a_bad_device_gives_one_argparse_line(command, device, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--device", device, "--out", str(out)])
    assert exc.value.code == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"neurowire {command}: error: argument --device: {device!r}")
    assert options.DEVICE_FORMS in line
    assert not out.exists()


def test_check_device_accepts_the_valid_forms():
    assert options.check_device("cpu") == torch.device("cpu")
    assert options.device_arg("cpu") == "cpu"
    if torch.cuda.is_available():
        assert options.check_device("cuda:0").type == "cuda"
    with pytest.raises(options.DeviceError, match="'gpu0' is not a device"):
        options.check_device("gpu0")


@pytest.mark.filterwarnings("ignore:'neurowire.cli' found in sys.modules:RuntimeWarning")
@pytest.mark.parametrize(("argv", "status"), [([], 2), (["--version"], 0), (["nope"], 2)])
def test_running_the_module_exits_with_the_status(argv, status, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["neurowire", *argv])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("neurowire.cli", run_name="__main__")
    assert exc.value.code == status


def test_the_console_script_is_main():
    (entry,) = importlib.metadata.entry_points(group="console_scripts", name="neurowire")
    assert entry.load() is cli.main
