"""Command-line pieces shared by the experiments: the ``--device`` check, a parser whose
errors are one line on stderr (exit status 2), and the one-line report of any other error."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

import torch

__all__ = [
    "DEVICE_FORMS",
    "ArgumentParser",
    "DeviceError",
    "check_device",
    "device_arg",
    "fail",
    "one_line",
]

DEVICE_FORMS = "cpu, cuda, cuda:N"


class DeviceError(ValueError):
    """A device string that is malformed, unsupported or absent on this machine."""


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line: ``prog: error: message``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def check_device(device: str | torch.device) -> torch.device:
    """``torch.device(device)`` if this machine has it, else :class:`DeviceError`.

    Only ``cpu``, ``cuda`` and ``cuda:N`` are accepted; CUDA must be available and ``N`` must
    name an existing GPU. The message names the device and the valid forms (no flag name, so it
    reads well after argparse's ``argument --device:``).
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"{device!r} is not a device (valid forms: {DEVICE_FORMS})") from None
    if dev.type not in ("cpu", "cuda"):
        raise DeviceError(f"{device!r} is not supported (valid forms: {DEVICE_FORMS})")
    if dev.type == "cpu" and dev.index not in (None, 0):
        raise DeviceError(f"{device!r} is not a device (valid forms: {DEVICE_FORMS})")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"{device!r}: CUDA is not available on this machine; use cpu "
                f"(valid forms: {DEVICE_FORMS})"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise DeviceError(
                f"{device!r}: this machine has {count} GPU{'s' if count != 1 else ''}, "
                f"cuda:0 to cuda:{count - 1} (valid forms: {DEVICE_FORMS})"
            )
    return dev


def device_arg(value: str) -> str:
    """``type=`` for an argparse ``--device`` option: ``value`` itself if
    :func:`check_device` accepts it, else an argparse error (one line, exit status 2)."""
    try:
        check_device(value)
    except DeviceError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return value


def one_line(err: BaseException) -> str:
    """``err``'s message on one line (its type's name if it has none)."""
    return " ".join(str(err).split()) or type(err).__name__


def fail(command: str, err: BaseException, debug: bool = False, where: str = "") -> NoReturn:
    """Report ``err`` as ``neurowire <command>: error<where>: <message>`` on one line of stderr
    and exit with status 2; with ``debug``, re-raise it (its traceback) instead."""
    if debug:
        raise err
    print(f"neurowire {command}: error{where}: {one_line(err)}", file=sys.stderr)
    raise SystemExit(2) from None
