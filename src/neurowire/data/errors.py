"""The error raised for a data file that cannot be read as its format says."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DataFileError"]


class DataFileError(ValueError):
    """A data file is missing a part, damaged, or holds values outside its format's range.

    The message names the file, and the sample where one is at fault."""

    def __init__(self, path: str | Path, problem: str, sample: int | None = None) -> None:
        where = f"{str(path)!r}" if sample is None else f"{str(path)!r}, sample {sample}"
        super().__init__(f"{where}: {problem}")
        self.path = Path(path)
        self.problem = problem
        self.sample = sample
