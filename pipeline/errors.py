"""Errors that name the file and the problem, for one clear line at the command line."""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad input: `str(err)` is '<file>: <problem>'."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(ValueError):
    """A setting this machine cannot honour (e.g. a GPU device where torch sees none)."""
