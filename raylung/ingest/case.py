"""Turn one case's source files into canonical arrays and attributes, checking them on the way.

Pure functions (no Ray, no store): the image is read, reoriented to LPS, resampled to the
configured spacing and clipped to the HU window; masks are checked against the image in physical
space and resampled onto the same grid; the thorax box is found from bone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from raylung.config import IngestConfig
from raylung.errors import InputError
from raylung.ingest.sources import CaseSource
from raylung.io.geometry import canonical_grid, resample_to
from raylung.io.read import data_files, read_mask_on, read_volume
from raylung.preprocess.thorax_crop import (NoBoneError, body_mask, bounding_box,
                                            estimated_lung_box, thorax_box)
from raylung.seeds import text_seed

STORE_FORMAT = 3  # bump when the stored arrays or attributes change, so reruns re-ingest
MAX_CENTRES = 4096  # cached lung voxels per case for lung-centred patches (as MONAI/nnU-Net do)
AIR_CHECK_HU = -500  # a chest CT always holds voxels below it (the air outside the body, lungs)


@dataclass
class PreparedCase:
    """Canonical arrays of one case and the attributes stored with them."""

    arrays: dict[str, np.ndarray]
    attrs: dict[str, Any]


def prepare_case(source: CaseSource, cfg: IngestConfig) -> PreparedCase:
    """Read, check and canonicalise one case; raise InputError naming the bad file."""
    image = read_volume(source.image)
    _check_hounsfield(source.image, image)
    grid = canonical_grid(image, cfg.spacing_mm)
    arrays = {"image": canonical_hu(image, grid, cfg.hu_window)}
    if source.lung:
        arrays["lung"] = sitk.GetArrayFromImage(read_mask_on(source.lung, grid, cfg.lung_labels))
        if not arrays["lung"].any():
            raise InputError(source.lung, "lung mask is empty for a labelled case")
        arrays["lung_centres"] = lung_centres(arrays["lung"], source.case_id)
    if source.lesion:
        arrays["lesion"] = sitk.GetArrayFromImage(read_mask_on(source.lesion, grid))
    if source.twin:
        arrays["twin"] = _twin_array(source.twin, image, grid, cfg.hu_window)
    body = body_mask(arrays["image"], cfg.body_hu)
    try:
        box = thorax_box(arrays["image"], cfg.body_hu, cfg.bone_hu, cfg.min_bone_voxels, body)
    except NoBoneError as err:
        raise InputError(source.image, f"{err}: cannot find the thorax box") from None
    attrs = _attrs(source, grid, box.as_list(), arrays)
    air = estimated_lung_box(arrays["image"], body)
    attrs["air_box"] = air.as_list() if air is not None else None
    return PreparedCase(arrays, attrs)


def source_hash(source: CaseSource, cfg: IngestConfig) -> str:
    """Hash of the source bytes and every setting that shapes the stored arrays."""
    return _source_digest(source, cfg, _hash_bytes)


def source_stat(source: CaseSource, cfg: IngestConfig) -> str:
    """Hash of the source files' sizes and modification times and the same settings: what
    make and rsync trust, so that a rerun skips an unchanged case without reading it."""
    return _source_digest(source, cfg, _hash_stat)


def _source_digest(source: CaseSource, cfg: IngestConfig,
                   hash_file: Callable[[Path, Any], None]) -> str:
    """sha256 of the settings, the source paths (the store records them) and, for each source
    file, its name and what ``hash_file`` adds."""
    paths = (source.image, source.lung, source.lesion, *((source.twin,) if source.twin else ()))
    digest = hashlib.sha256()
    digest.update(json.dumps([STORE_FORMAT, source.case_id, source.domain,
                              cfg.model_dump(mode="json", exclude={"domain"}), paths]).encode())
    for path in paths:
        digest.update(b"|")
        for file in _source_files(Path(path)) if path else []:
            digest.update(file.name.encode())
            try:
                hash_file(file, digest)
            except OSError as err:
                raise InputError(file, f"cannot read ({err.strerror})") from None
    return digest.hexdigest()


def lung_centres(lung: np.ndarray, case_id: str) -> np.ndarray:
    """Up to MAX_CENTRES lung voxel indices (z, y, x), drawn reproducibly per case."""
    points = np.argwhere(lung > 0).astype(np.int32)
    if len(points) > MAX_CENTRES:
        rng = np.random.default_rng(text_seed(case_id))
        keep = rng.choice(len(points), MAX_CENTRES, replace=False)
        points = points[np.sort(keep)]
    return points


def lung_hu_stats(image: np.ndarray, lung: np.ndarray) -> dict[str, float]:
    """HU statistics inside the lung (feeds the store's data-derived settings)."""
    values = image[lung > 0].astype(np.float64)
    p05, p995 = np.percentile(values, [0.5, 99.5])
    return {"lung_voxels": int(values.size), "lung_hu_mean": float(values.mean()),
            "lung_hu_std": float(values.std()), "lung_hu_p005": float(p05),
            "lung_hu_p995": float(p995)}


def canonical_hu(image: sitk.Image, grid: sitk.Image, window: tuple[int, int]) -> np.ndarray:
    """The image resampled onto ``grid`` in whole HU clipped to ``window``, as the store keeps it
    (``raylung segment`` prepares scans with it too)."""
    resampled = resample_to(sitk.Cast(image, sitk.sitkFloat32), grid, label=False, fill=window[0])
    values = sitk.GetArrayFromImage(resampled)
    return np.clip(np.rint(values), *window).astype(np.int16)


def _check_hounsfield(path: str, image: sitk.Image) -> None:
    """Refuse a scan without air, which is no CT in HU: its values would be stored as HU."""
    if sitk.GetArrayViewFromImage(image).min() >= AIR_CHECK_HU:
        raise InputError(path, f"no voxel below {AIR_CHECK_HU} HU: not a CT in Hounsfield units "
                               "(a missing RescaleIntercept or a +1024 offset?)")


def _twin_array(path: str, image: sitk.Image, grid: sitk.Image,
                window: tuple[int, int]) -> np.ndarray:
    """A phantom's diseased twin, stored like the image; it must share the image's grid."""
    twin = read_volume(path)
    _check_hounsfield(path, twin)
    same = (twin.GetSize() == image.GetSize()
            and np.allclose(twin.GetSpacing(), image.GetSpacing())
            and np.allclose(twin.GetOrigin(), image.GetOrigin()))
    if not same:
        raise InputError(path, "twin image does not share its image's grid (size, spacing, origin)")
    return canonical_hu(twin, grid, window)


def _attrs(source: CaseSource, grid: sitk.Image, box: list[int], arrays: dict) -> dict[str, Any]:
    attrs = {
        "case_id": source.case_id,
        "domain": source.domain,
        "labelled": source.labelled,
        "has_lesion": "lesion" in arrays,
        "shape": list(arrays["image"].shape),
        "spacing": list(grid.GetSpacing()),
        "origin": list(grid.GetOrigin()),
        "direction": list(grid.GetDirection()),
        "thorax_box": box,
        "sources": {"image": source.image, "lung": source.lung, "lesion": source.lesion},
    }
    if source.labelled:
        attrs["lung_box"] = bounding_box(arrays["lung"]).as_list()
        attrs.update(lung_hu_stats(arrays["image"], arrays["lung"]))
    return attrs


def _source_files(path: Path) -> list[Path]:
    """The file and the data files its header names (a .mhd's .raw), or every file of a folder
    (a DICOM series) in name order: every file its voxels are read from."""
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    files = [path, *data_files(path)]
    for file in files:
        if not file.exists():
            raise InputError(file, "file not found")
    return files


def _hash_bytes(file: Path, digest: Any) -> None:
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


def _hash_stat(file: Path, digest: Any) -> None:
    stat = file.stat()
    digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
