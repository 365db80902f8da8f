"""Read CT images and masks with SimpleITK (NIfTI, MetaImage, NRRD, DICOM) and reject bad ones.

Every problem becomes an :class:`InputError` naming the file, so ingest can report one line per
bad case instead of a stack trace.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from itertools import takewhile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from raylung.errors import InputError
from raylung.io.geometry import overlap_fraction, resample_to, share_inside
from raylung.io.nifti import check_nifti, is_nifti

# ITK prints warnings (e.g. for odd DICOM tags) straight to stderr; raylung reports its own.
sitk.ProcessObject_SetGlobalWarningDisplay(False)

# File names SimpleITK reads as images, ".nii.gz" first so it wins over ".gz"-less ".nii".
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr", ".dcm")
CASE_FILES = ("image", "lung", "lesion", "twin")  # the files of a case folder, <case>/image.nii.gz
# The least share of a mask's labelled voxels that must lie inside its image's grid.
MASK_INSIDE = 0.95
# MetaImage/NRRD headers that name a second file holding the voxels.
DETACHED_SUFFIXES = (".mhd", ".nhdr")
# Headers that may name the files holding their voxels: the field's separator, by suffix.
HEADER_SEPARATORS = {".mha": "=", ".mhd": "=", ".nrrd": ":", ".nhdr": ":"}
# The field naming those files: MetaImage's ElementDataFile, NRRD's "data file" (or "datafile").
DATA_FILE_FIELDS = ("elementdatafile", "datafile")
# The tag (7FE0,0010) that starts a DICOM object's pixels, little endian: a slice has it, a
# report or a plan has none.
PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"

_SCALAR_TYPES = {
    sitk.sitkInt8, sitk.sitkUInt8, sitk.sitkInt16, sitk.sitkUInt16, sitk.sitkInt32,
    sitk.sitkUInt32, sitk.sitkInt64, sitk.sitkUInt64, sitk.sitkFloat32, sitk.sitkFloat64,
}
_INTEGER_TYPES = _SCALAR_TYPES - {sitk.sitkFloat32, sitk.sitkFloat64}


def read_volume(path: str | Path, largest_series: bool = False) -> sitk.Image:
    """Read a 3-D scalar image from a file or a DICOM series folder; raise InputError if unfit.

    A folder with several DICOM series is an error, or with ``largest_series`` its series of
    the most slices is read (as lungmask does)."""
    path = Path(path)
    _check_utf8(path)
    if not path.exists():
        raise InputError(path, "file not found")
    image = _read_series(path, largest_series) if path.is_dir() else _read_file(path)
    _check_volume(path, image)
    return image


def read_mask(path: str | Path) -> sitk.Image:
    """Read a label map; float pixels are accepted only when every value is a whole number,
    and no label is negative (a CT scan given as a mask has HU down to -1024)."""
    mask = read_volume(path)
    values = sitk.GetArrayViewFromImage(mask)
    if mask.GetPixelID() not in _INTEGER_TYPES and not np.array_equal(values, np.round(values)):
        raise InputError(path, "mask is not an integer label map (found fractional values, "
                               "e.g. probabilities: threshold it first)")
    if values.min() < 0:
        raise InputError(path, f"mask has negative labels (down to {values.min():g}): a CT "
                               "scan, not a label map?")
    return sitk.Cast(mask, sitk.sitkInt32)


def read_mask_on(path: str | Path, grid: sitk.Image, labels: list[int] | None = None) -> sitk.Image:
    """The mask at ``path`` as 0/1 uint8 on ``grid`` (nearest neighbour): its voxels of
    ``labels``, or every nonzero one. How ingest stores a mask, and how a scan is scored
    against its source mask wherever that lies on another grid."""
    mask = read_mask(path)
    if overlap_fraction(grid, mask) == 0:
        raise InputError(path, "mask does not overlap its image in physical space "
                               "(different origin/spacing/direction)")
    values = sitk.GetArrayViewFromImage(mask)
    binary = sitk.GetImageFromArray((np.isin(values, labels) if labels else values != 0)
                                    .astype(np.uint8))
    binary.CopyInformation(mask)
    inside = share_inside(binary, grid)
    if inside is not None and inside < MASK_INSIDE:
        raise InputError(path, f"only {inside:.0%} of the mask's labelled voxels lie inside its "
                               "image: its origin, spacing or direction do not match the image's")
    return resample_to(binary, grid, label=True, fill=0)


def image_name(path: str | Path) -> str | None:
    """A scan's or mask's name: a folder's own name (a DICOM series), a file's name less its
    image suffix (``ct_01`` of ``ct_01.nii.gz``), None for a file that is not an image."""
    path = Path(path)
    if path.is_dir():
        return path.name
    suffix = image_suffix(path.name)
    return path.name[: -len(suffix)] if suffix else None


def case_files(case_dir: str | Path) -> dict[str, Path]:
    """A case folder's files by kind (``CASE_FILES``): its ``image/`` folder (a DICOM series) or
    file ``image`` + an image suffix of any case (``image.NII.GZ``), and so on, read in one pass
    over the folder; none for a DICOM series folder. Two of one kind are an error, not a choice
    between two scans."""
    found: dict[str, list[Path]] = {}
    for path in Path(case_dir).iterdir():
        kind = path.name if path.is_dir() else image_name(path) if path.is_file() else None
        if kind in CASE_FILES:
            found.setdefault(kind, []).append(path)
    for kind in CASE_FILES:
        if len(found.get(kind, [])) > 1:
            names = " and ".join(sorted(p.name + "/" * p.is_dir() for p in found[kind]))
            raise InputError(case_dir, f"{names} are both its {kind}: keep one")
    return {kind: paths[0] for kind, paths in found.items()}


def image_suffix(name: str) -> str:
    """The image suffix a file name ends with (case-insensitive), or ""."""
    return next((s for s in IMAGE_SUFFIXES if name.lower().endswith(s)), "")


def data_files(path: str | Path) -> list[Path]:
    """The files a MetaImage or NRRD header names for its voxels (none where they follow the
    header), relative to its folder unless absolute: a reader needs them, and ingest hashes
    them with the header."""
    path = Path(path)
    separator = HEADER_SEPARATORS.get(path.suffix.lower())
    if separator is None:
        return []
    with open(path, "rb") as handle:
        for raw in handle:
            line = os.fsdecode(raw).strip()
            if not line and separator == ":":  # a NRRD header ends at a blank line
                return []
            key, _, value = line.partition(separator)
            if key.replace(" ", "").lower() in DATA_FILE_FIELDS:
                rest = (os.fsdecode(following).strip() for following in handle)
                return [path.parent / name for name in _data_file_names(value.strip(), rest)]
    return []


def _data_file_names(value: str, rest: Iterable[str]) -> list[str]:
    """The names a header's data-file field gives: none for LOCAL, the lines that follow for
    LIST (up to a blank one), a printf pattern's for ``PATTERN MIN MAX [STEP]`` (MAX
    included), else the value."""
    words = value.split()
    if not words or words[0] == "LOCAL":
        return []
    if words[0] == "LIST":
        return list(takewhile(bool, rest))
    if "%" in words[0] and len(words) >= 3:
        first, last, step = (int(word) for word in [*words[1:4], 1][:3])
        return [words[0] % i for i in range(first, last + 1, step)]
    return [value]


def _read_file(path: Path) -> sitk.Image:
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty (0 bytes)")
    if path.name.lower().endswith((".hdr", ".img")):
        raise InputError(path, "Analyze or NIfTI pairs (.hdr/.img) are not read: convert the "
                               "pair to one .nii.gz")
    if is_nifti(path):
        check_nifti(path)
    for file in data_files(path):
        if not file.exists():
            raise InputError(path, f"data file {file} named by the header is missing")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as err:
        reason = _itk_reason(err)
        if "No such file" in reason:
            reason = "truncated or corrupt file"  # a stale errno: every file it reads is here
        raise InputError(path, f"unreadable image ({reason})") from None


def dicom_series(folder: str | Path) -> list[list[str]]:
    """The files of each DICOM series directly in ``folder`` (none: an empty list)."""
    _check_utf8(Path(folder))
    try:
        ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    except RuntimeError as err:
        raise InputError(folder, f"unreadable DICOM folder ({_itk_reason(err)})") from None
    return [list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), i)) for i in ids]


def _read_series(folder: Path, largest: bool) -> sitk.Image:
    series = dicom_series(folder)
    _check_left_out(folder, series)
    if not series:
        raise InputError(folder, "folder holds no readable DICOM series")
    if len(series) > 1 and not largest:
        raise InputError(folder, f"folder holds {len(series)} DICOM series; give one per case")
    files = max(series, key=len)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise InputError(folder, f"unreadable DICOM series ({_itk_reason(err)})") from None
    if image.HasMetaDataKey("ITK_non_uniform_sampling_deviation"):
        _check_slice_gaps(folder, files, image)
    return image


def _check_left_out(folder: Path, series: list[list[str]]) -> None:
    """Refuse a DICOM slice that no series took: GDCM drops an unreadable one without a word,
    and a truncated first or last slice leaves the others evenly spaced."""
    taken = {Path(file).name for files in series for file in files}
    for file in sorted(folder.iterdir()):
        if (file.is_file() and file.name not in taken and file.name.upper() != "DICOMDIR"
                and _is_dicom_image(file)):
            raise InputError(file, "unreadable DICOM file: truncated or corrupt?")


def _is_dicom_image(file: Path) -> bool:
    """Whether a file is a DICOM object ("DICM" after its 128-byte preamble) with pixels."""
    with open(file, "rb") as handle:
        return handle.read(132)[128:] == b"DICM" and PIXEL_DATA_TAG in handle.read()


def _check_slice_gaps(folder: Path, files: list[str], image: sitk.Image) -> None:
    """Refuse a series whose slices are not evenly spaced (ITK only warns and spreads them
    evenly, shifting every slice after a missing one); gaps within 10 % pass."""
    normal = np.asarray(image.GetDirection()).reshape(3, 3)[:, 2]
    reader = sitk.ImageFileReader()
    positions = []
    for file in files:
        reader.SetFileName(file)
        reader.ReadImageInformation()
        positions.append(float(normal @ np.asarray(reader.GetOrigin())))
    gaps = np.diff(np.sort(positions))
    if np.abs(gaps - gaps.mean()).max() > 0.1 * gaps.mean():
        raise InputError(folder, f"slices are unevenly spaced ({gaps.min():.2f} to "
                                 f"{gaps.max():.2f} mm apart): a missing or duplicate slice?")


def _check_volume(path: Path, image: sitk.Image) -> None:
    if image.GetNumberOfComponentsPerPixel() != 1 or image.GetPixelID() not in _SCALAR_TYPES:
        raise InputError(path, f"pixel type {image.GetPixelIDTypeAsString()} is not a scalar "
                               "number (expected a grey-value CT or a label map)")
    if image.GetDimension() != 3:
        raise InputError(path, f"image is {image.GetDimension()}-D, expected a 3-D volume "
                               "(a single DICOM slice is accepted as a one-slice volume)")
    if 0 in image.GetSize():
        raise InputError(path, f"image has zero size {image.GetSize()}")
    spacing = np.asarray(image.GetSpacing())
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(path, f"invalid voxel spacing {tuple(spacing)}")
    values = sitk.GetArrayViewFromImage(image)
    if values.dtype.kind == "f":
        nonfinite = int(np.count_nonzero(~np.isfinite(values)))
        if nonfinite:
            raise InputError(path, f"image has {nonfinite} NaN/inf voxels")


def _check_utf8(path: Path) -> None:
    """Refuse a name that is not UTF-8 (bytes os.fsdecode kept as surrogates) before SimpleITK
    sees it: SimpleITK aborts the whole process on one."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(printable(path), "file name is not valid UTF-8 (SimpleITK cannot "
                                          "open it: rename it)") from None


def printable(path: str | Path) -> str:
    """``path`` as text any report can hold: a byte that is not UTF-8 becomes ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _itk_reason(err: RuntimeError) -> str:
    """The useful last line of an ITK exception, without the C++ source location; where that
    line is a row of a matrix ITK printed (no word in it), the first sentence of its
    ``ITK ERROR`` line (e.g. a singular direction's "Bad direction, determinant is 0")."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    reason = lines[-1] if lines else "unknown error"
    if not re.search("[A-Za-z]", reason):
        reason = next((ln for ln in lines if "ERROR:" in ln), reason).split(". ")[0]
    return reason.split("): ")[-1][:200]
