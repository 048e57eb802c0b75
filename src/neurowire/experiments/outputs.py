"""The ``--out`` folder of a command: one run per folder, never silently replaced or mixed.

A run records itself in ``run.json`` (the command and the settings that determine its model
and data) before it writes anything else. A folder that holds a run is refused unless the
command continues it (``--resume``, which must find the same settings) or replaces it
(``--overwrite``, which deletes the old run's outputs first). Files are written atomically
(:func:`neurowire.io.atomic_path`); temporaries left by a killed process are reported and
removed.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from neurowire.io import PARTIAL_PREFIX, partial_files, write_text

__all__ = ["RUN_RECORD", "OutputError", "RunFolder", "differences", "warn"]

RUN_RECORD = "run.json"


class OutputError(ValueError):
    """An ``--out`` folder that cannot be used as asked (the message says why and what to do)."""


def differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``"name: recorded -> current"`` for every setting that differs (sorted by name)."""
    keys = sorted(set(recorded) | set(current))
    missing = "(absent)"
    return [
        f"{k}: {recorded.get(k, missing)!r} -> {current.get(k, missing)!r}"
        for k in keys
        if recorded.get(k, missing) != current.get(k, missing)
    ]


class RunFolder:
    """The output folder of one run of ``command``.

    Args:
        path: the folder (created with its parents if absent).
        command: the command's name, e.g. ``"classify"``.
        settings: what determines the run's model and data (JSON-able); ``--resume`` must
            find the same.
        outputs: glob patterns of everything the command writes into the folder, deleted by
            ``--overwrite`` (``run.json`` is always one of them).
    """

    def __init__(
        self, path: str | Path, command: str, settings: Mapping[str, Any], outputs: Sequence[str]
    ) -> None:
        self.path = Path(path)
        self.command = command
        self.settings = dict(settings)
        self.outputs = (RUN_RECORD, *outputs)
        self.created = False  # whether this run made the folder
        self.written: list[Path] = []  # files this run wrote, in order
        self.last_checkpoint: str | None = None  # the newest checkpoint written, described

    # ------------------------------------------------------------------ checks
    def holds_run(self) -> bool:
        """Whether the folder holds a run: its record, or outputs of the command."""
        return self.path.is_dir() and any(any(self.path.glob(pattern)) for pattern in self.outputs)

    def recorded(self) -> dict[str, Any] | None:
        """The settings in the folder's ``run.json``, or None without one."""
        record = self.path / RUN_RECORD
        if not record.is_file():
            return None
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
            settings, command = data["settings"], data["command"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise OutputError(f"{str(record)!r} is not a readable run record ({err})") from None
        if command != self.command:
            raise OutputError(
                f"--out {str(self.path)!r} holds a 'neurowire {command}' run, not a "
                f"'neurowire {self.command}' one"
            )
        return settings

    def check(
        self, *, resume: bool, overwrite: bool, fresh: bool = False, create: bool = True
    ) -> None:
        """Refuse, before any work, a folder this run may not use; create it if absent and
        prove it writable. Changes nothing in an existing folder.

        Args:
            resume: continue the run in the folder; its record must hold the same settings.
            overwrite: replace the run in the folder (see :meth:`clear_previous`).
            fresh: with ``resume``, start from scratch if the folder holds no run yet.
            create: create the folder and prove it writable (False: read-only checks, for
                processes that never write, such as torchrun ranks other than 0).
        """
        where = str(self.path)
        if resume and overwrite:
            raise OutputError("--resume and --overwrite exclude each other: pick one")
        if self.path.exists() and not self.path.is_dir():
            raise OutputError(f"--out {where!r} is a file, not a folder")
        held = self.holds_run()
        if resume:
            recorded = self.recorded() if held else None
            if recorded is None and held:
                raise OutputError(
                    f"--out {where!r} holds outputs but no {RUN_RECORD}: it was not written by "
                    "this version of neurowire, so it cannot be resumed (use --overwrite to "
                    "replace it)"
                )
            if recorded is None and not fresh:
                raise OutputError(
                    f"--resume: nothing to resume in {where!r} (no run there; drop --resume, or "
                    "use --resume-or-start to start one when there is none)"
                )
            if recorded is not None:
                changed = differences(recorded, self.settings)
                if changed:
                    raise OutputError(
                        f"--resume: the run in {where!r} has other settings ("
                        + "; ".join(changed)
                        + ")"
                    )
        elif held and not overwrite:
            raise OutputError(
                f"--out {where!r} already holds a run; pass --resume to continue it or "
                "--overwrite to replace it"
            )
        if create:
            self._create()

    def _create(self) -> None:
        existed = self.path.is_dir()
        probe = self.path / f"{PARTIAL_PREFIX}probe-{secrets.token_hex(4)}"
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")  # proves the folder writable
            probe.unlink()
        except OSError as err:
            self.abandon(created=not existed)
            raise OutputError(
                f"--out {str(self.path)!r} is not writable ({err.strerror or err})"
            ) from None
        self.created = not existed

    # ------------------------------------------------------------------ writing
    def start(self, *, overwrite: bool) -> None:
        """Begin the run: report and remove temporaries left by a killed process, delete the
        previous run's outputs when ``overwrite``, and write the run record."""
        for left in partial_files(self.path):
            warn(self.command, f"removing {str(left)!r}, left by a write that did not finish")
            left.unlink(missing_ok=True)
        if overwrite:
            self.clear_previous()
        record = {"command": self.command, "settings": self.settings}
        self.write_text(RUN_RECORD, json.dumps(record, indent=2))

    def clear_previous(self) -> None:
        """Delete every output of a previous run (the :attr:`outputs` patterns) in the folder."""
        for pattern in self.outputs:
            for entry in self.path.glob(pattern):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink(missing_ok=True)

    def file(self, name: str) -> Path:
        """The path of output ``name`` inside the folder, noted as written by this run."""
        path = self.path / name
        self.written.append(path)
        return path

    def write_text(self, name: str, text: str) -> Path:
        """Write output ``name`` atomically."""
        return write_text(self.file(name), text)

    # ------------------------------------------------------------------ failure
    def abandon(self, created: bool | None = None) -> None:
        """After a failure before the run began: remove the folder if this run created it and
        it is empty, so that a refused command leaves nothing behind."""
        if (self.created if created is None else created) and self.path.is_dir():
            if not any(self.path.iterdir()):
                self.path.rmdir()

    def discard(self) -> None:
        """After a failure of a run that cannot be resumed: remove every file it wrote, then
        the folder if it made it and nothing else is left."""
        for path in reversed(self.written):
            path.unlink(missing_ok=True)
        self.written.clear()
        self.abandon()


def warn(command: str, message: str) -> None:
    """One warning line on stderr."""
    print(f"neurowire {command}: warning: {message}", file=sys.stderr)
