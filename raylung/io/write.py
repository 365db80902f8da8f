"""Write files so that a reader never sees half of one: a temporary name, then a rename
(one PUT on object storage)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import fsspec
import SimpleITK as sitk
from fsspec.implementations.local import LocalFileSystem

from raylung.errors import InputError

# MetaImage/NRRD headers with a separate data file name that file inside, so renaming the
# header alone would break them.
SINGLE_FILE_ONLY = (".mhd", ".nhdr")


def write_image(image: sitk.Image, path: str | Path, compress: bool = True) -> Path:
    """Write ``image`` to ``path`` atomically (format from the suffix, as SimpleITK chooses)."""
    path = Path(path)
    if path.name.endswith(SINGLE_FILE_ONLY):
        raise InputError(path, f"write a single-file format ({path.suffix} keeps its data in a "
                               "second file): use .nii.gz, .mha or .nrrd")
    path.parent.mkdir(parents=True, exist_ok=True)
    stem, _, suffix = path.name.partition(".")
    tmp = path.with_name(f".{stem}.{uuid.uuid4().hex[:8]}.tmp.{suffix}")
    try:
        sitk.WriteImage(image, str(tmp), useCompression=compress)
        os.replace(tmp, path)
    except RuntimeError as err:
        tmp.unlink(missing_ok=True)
        raise InputError(path, f"cannot write ({str(err).strip().splitlines()[-1][:160]})") from None
    return path


def write_bytes(url: str, data: bytes, storage_options: dict | None = None) -> None:
    """Write ``data`` to a local path or fsspec URL atomically, creating parent folders."""
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    if not isinstance(fs, LocalFileSystem):
        fs.pipe_file(path, data)
        return
    fs.makedirs(fs._parent(path), exist_ok=True)
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    fs.pipe_file(tmp, data)
    os.replace(tmp, path)
