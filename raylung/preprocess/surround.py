"""The lung's surrounding: the band outside the lung used by the surrounding-L1 loss (README,
"The shape-aware CycleGAN").

The band is every voxel outside the lung within ``width_mm`` of it, measured with a Euclidean
distance transform in millimetres, so it means the same at any (anisotropic) spacing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def surround_band(lung: np.ndarray, spacing: Sequence[float], width_mm: float) -> np.ndarray:
    """uint8 mask of voxels outside ``lung`` within ``width_mm``; ``spacing`` follows the axes."""
    if len(spacing) != lung.ndim:
        raise ValueError(f"spacing has {len(spacing)} values for a {lung.ndim}-D mask")
    outside = lung == 0
    if outside.all() or not outside.any():
        return np.zeros(lung.shape, np.uint8)
    distance = ndimage.distance_transform_edt(outside, sampling=tuple(spacing))
    return (outside & (distance <= width_mm)).astype(np.uint8)


def margin_voxels(spacing: Sequence[float], width_mm: float) -> tuple[int, ...]:
    """Voxels to read beyond a crop on each side so its band is right at the crop border."""
    return tuple(int(np.ceil(width_mm / s)) for s in spacing)
