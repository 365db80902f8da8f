"""Checks SimpleITK cannot make on NIfTI: it zero-fills a truncated file and reads NaN/inf as 0.

Both would put silent zeros (water, in HU) into a CT, so raylung scans the voxel bytes itself.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np

from raylung.errors import InputError

# header size -> (dim type, dim offset, datatype offset, bitpix offset, vox_offset (type, offset))
_HEADERS = {348: ("h", 40, 70, 72, ("f", 108)), 540: ("q", 16, 12, 14, ("q", 168))}
_FLOAT_CODES = {16: "f4", 64: "f8"}


@dataclass(frozen=True)
class _Layout:
    offset: int                 # first voxel byte
    size: int                   # bytes the header promises, header included
    dtype: np.dtype | None      # voxel type when it can hold NaN/inf


def is_nifti(path: Path) -> bool:
    """True for ``.nii`` and ``.nii.gz`` file names, in any case."""
    return path.name.lower().endswith((".nii", ".nii.gz"))


def check_nifti(path: Path) -> None:
    """Raise InputError for a truncated or corrupt file, or for NaN/inf voxels."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            head = handle.read(540)
            layout = _layout(path, head)
            size, nonfinite = _scan(chain([head], iter(lambda: handle.read(1 << 22), b"")), layout)
    except (EOFError, OSError, zlib.error) as err:
        raise InputError(path, f"truncated or corrupt compressed data ({err})") from None
    if size < layout.size:
        raise InputError(path, f"truncated NIfTI: {size} of {layout.size} bytes present")
    if nonfinite:
        raise InputError(path, f"image has {nonfinite} NaN/inf voxels")


def _scan(blocks: Iterable[bytes], layout: _Layout) -> tuple[int, int]:
    """Total bytes, and the NaN/inf voxel count when voxels are floats."""
    size = nonfinite = 0
    carry = b""
    for block in blocks:
        start = max(0, layout.offset - size)
        size += len(block)
        if layout.dtype is None or start >= len(block):
            continue
        data = carry + block[start:]
        usable = len(data) - len(data) % layout.dtype.itemsize
        nonfinite += int(np.count_nonzero(~np.isfinite(np.frombuffer(data[:usable], layout.dtype))))
        carry = data[usable:]
    return size, nonfinite


def _layout(path: Path, head: bytes) -> _Layout:
    for endian in "<>":
        if len(head) >= 4 and struct.unpack(f"{endian}i", head[:4])[0] in _HEADERS:
            return _parse(head, endian)
    raise InputError(path, "not a NIfTI file (bad header size field)")


def _parse(head: bytes, endian: str) -> _Layout:
    dim_type, dim_at, code_at, bitpix_at, (offset_type, offset_at) = _HEADERS[
        struct.unpack(f"{endian}i", head[:4])[0]]
    dims = struct.unpack_from(f"{endian}8{dim_type}", head, dim_at)
    code, bitpix = struct.unpack_from(f"{endian}hh", head, code_at)
    offset = int(struct.unpack_from(f"{endian}{offset_type}", head, offset_at)[0])
    voxels = int(np.prod([max(int(n), 0) for n in dims[1:dims[0] + 1]]))
    float_code = _FLOAT_CODES.get(code)
    dtype = np.dtype(f"{endian}{float_code}") if float_code else None
    return _Layout(offset, offset + voxels * bitpix // 8, dtype)
