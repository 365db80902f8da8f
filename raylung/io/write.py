"""Write files so that a reader never sees half of one: a temporary name, then a rename
(one PUT on object storage)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import fsspec
import SimpleITK as sitk
from fsspec.implementations.local import LocalFileSystem

from raylung.errors import InputError
from raylung.io.read import DETACHED_SUFFIXES


def write_image(image: sitk.Image, path: str | Path, compress: bool = True) -> Path:
    """Write ``image`` to ``path`` atomically (format from the suffix, as SimpleITK chooses)."""
    path = Path(path)
    if path.name.lower().endswith(DETACHED_SUFFIXES):  # renaming the header would break it
        raise InputError(path, f"write a single-file format ({path.suffix} keeps its data in a "
                               "second file): use .nii.gz, .mha or .nrrd")
    try:
        return write_atomic(path, lambda tmp: sitk.WriteImage(image, str(tmp),
                                                              useCompression=compress))
    except RuntimeError as err:
        problem = str(err).strip().splitlines()[-1][:160]
        raise InputError(path, f"cannot write ({problem})") from None


def write_bytes(url: str, data: bytes, storage_options: dict | None = None) -> None:
    """Write ``data`` to a local path or fsspec URL atomically, creating parent folders."""
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    if not isinstance(fs, LocalFileSystem):
        fs.pipe_file(path, data)
        return
    write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_atomic(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Run ``write`` on a temporary name beside ``path``, flush it to disk, then rename it to
    ``path``; a failed write leaves nothing behind, and a machine that goes down leaves the old
    file or the new one, never an empty one. The name keeps the suffix, which some writers go
    by."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stem, dot, suffix = path.name.partition(".")
    tmp = path.with_name(f".{stem}.{uuid.uuid4().hex[:8]}.tmp{dot}{suffix}")
    try:
        write(tmp)
        descriptor = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
