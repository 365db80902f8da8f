"""Errors that name the file and the problem in one line (what a user sees on bad input)."""

from __future__ import annotations

from pathlib import Path

from raylung.secrets import redacted


class InputError(ValueError):
    """A problem with one input file; ``str(err)`` is ``"PATH: problem"``."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        """Rebuilt from both fields: Ray hands a worker's error to the driver pickled."""
        return type(self), (self.path, self.problem)


def last_line(error: BaseException) -> str:
    r"""The last line of ``error``'s message (where a remote traceback names its cause), URL
    passwords redacted: what a console line or a results table keeps of an error.

    >>> last_line(RuntimeError("Traceback (most recent call last):\n  ...\n"
    ...                        "OSError: s3://me:pw@bucket/run: access denied\n"))
    'OSError: s3://me:<redacted>@bucket/run: access denied'
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return redacted(lines[-1]) if lines else type(error).__name__


def first_line(error: BaseException) -> str:
    r"""``Type: the first line of its message``, URL passwords redacted: an unexpected error of
    one item of many (a case, a scan) in a table cell or a console line.

    >>> first_line(OSError("s3://me:pw@bucket/x: denied\nmore lines"))
    'OSError: s3://me:<redacted>@bucket/x: denied'
    """
    lines = str(error).strip().splitlines()
    return redacted(f"{type(error).__name__}: {lines[0] if lines else ''}")


# Libraries whose errors are object storage refusing a request (credentials, bucket, access)
STORAGE_LIBRARIES = frozenset({"botocore", "aiobotocore", "s3fs", "gcsfs", "adlfs", "google",
                               "azure", "fsspec"})


def storage_problem(error: BaseException) -> str | None:
    """One line for an error of object storage, its URL passwords redacted; None for any other
    error (a storage library's traceback may show a URL's password).

    >>> from botocore.exceptions import NoCredentialsError
    >>> storage_problem(NoCredentialsError())
    'object storage refused: NoCredentialsError: Unable to locate credentials'
    >>> storage_problem(KeyError("x")) is None
    True
    """
    if isinstance(error, ImportError) and _raised_in(error, "fsspec"):
        return f"no file system for this URL: {error}"  # e.g. "Please install gcsfs to ..."
    if type(error).__module__.split(".")[0] not in STORAGE_LIBRARIES:
        return None
    line = last_line(error)
    return f"object storage refused: {type(error).__name__}: {line[:160]}" + (
        "..." if len(line) > 160 else "")


def _raised_in(error: BaseException, package: str) -> bool:
    """Whether ``error`` was raised by code of ``package`` (its traceback's last frame)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_globals.get("__name__", "").split(".")[0] == package
