"""Errors that name the file and the problem in one line (what a user sees on bad input)."""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """A problem with one input file; ``str(err)`` is ``"PATH: problem"``."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        """Rebuilt from both fields: Ray hands a worker's error to the driver pickled."""
        return type(self), (self.path, self.problem)
