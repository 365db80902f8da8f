"""Bring images onto raylung's canonical grid: LPS axes (identity direction) at a chosen spacing.

On that grid the numpy axes (z, y, x) run inferior->superior, anterior->posterior and
right->left, so an axial slice shows the patient the radiological way. Masks are resampled onto
their image's canonical grid with nearest-neighbour interpolation.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def canonical_grid(image: sitk.Image, spacing_mm: tuple[float, float, float] | None) -> sitk.Image:
    """An empty reference image: identity direction, covering ``image``, at ``spacing_mm``.

    An axis one voxel thick (a single slice) keeps its spacing: there is nothing to resample.
    """
    oriented = sitk.DICOMOrient(image, "LPS")
    native = np.asarray(oriented.GetSpacing(), dtype=float)
    spacing = np.asarray(spacing_mm or native, dtype=float)
    spacing = np.where(np.asarray(oriented.GetSize()) == 1, native, spacing)
    lo, hi = physical_bounds(oriented)
    size = np.maximum(1, np.round((hi - lo) / spacing)).astype(int)
    origin = lo + spacing / 2
    grid = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    grid.SetSpacing(spacing.tolist())
    grid.SetOrigin(origin.tolist())
    grid.SetDirection(_IDENTITY)
    return grid


def resample_to(image: sitk.Image, grid: sitk.Image, *, label: bool, fill: float) -> sitk.Image:
    """Resample onto ``grid``: linear for grey values, nearest neighbour for labels."""
    interpolator = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    image = sitk.DICOMOrient(image, "LPS")
    if same_grid(image, grid):
        return image
    return sitk.Resample(image, grid, sitk.Transform(), interpolator, fill, image.GetPixelID())


def physical_bounds(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned physical box (mm) covered by the image's voxels, edges included."""
    size = np.asarray(image.GetSize())
    corners = np.array(np.meshgrid(*[(-0.5, n - 0.5) for n in size], indexing="ij"))
    corners = corners.reshape(3, -1).T
    points = np.array([image.TransformContinuousIndexToPhysicalPoint(c.tolist()) for c in corners])
    return points.min(axis=0), points.max(axis=0)


def overlap_fraction(a: sitk.Image, b: sitk.Image) -> float:
    """Fraction of ``a``'s physical box that ``b``'s box covers (0 means they never meet)."""
    a_lo, a_hi = physical_bounds(a)
    b_lo, b_hi = physical_bounds(b)
    inter = np.clip(np.minimum(a_hi, b_hi) - np.maximum(a_lo, b_lo), 0, None)
    return float(np.prod(inter) / np.prod(a_hi - a_lo))


def share_inside(mask: sitk.Image, grid: sitk.Image, samples: int = 20_000) -> float | None:
    """Share of ``mask``'s nonzero voxels whose centres fall inside ``grid``'s voxels (None
    for an empty mask), from at most ``samples`` of them: a mask whose header was lost or
    mixed up lies mostly elsewhere, however much the two boxes overlap."""
    flat = np.flatnonzero(sitk.GetArrayViewFromImage(mask))
    if flat.size == 0:
        return None
    flat = flat[:: max(1, flat.size // samples)]
    xyz = np.stack(np.unravel_index(flat, mask.GetSize()[::-1]))[::-1]
    points = np.asarray(mask.GetOrigin())[:, None] + _index_to_mm(mask) @ xyz
    index = np.linalg.solve(_index_to_mm(grid), points - np.asarray(grid.GetOrigin())[:, None])
    size = np.asarray(grid.GetSize())[:, None]
    return float(np.all((index >= -0.5) & (index <= size - 0.5), axis=0).mean())


def _index_to_mm(image: sitk.Image) -> np.ndarray:
    """The 3 x 3 matrix that takes a voxel index (x, y, z) to its offset from the origin."""
    return np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())


def same_grid(a: sitk.Image, b: sitk.Image, tol: float = 1e-4) -> bool:
    """True when both images have the same size, spacing, origin and direction."""
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tol)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tol)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=tol)
    )
