"""Clean a predicted lung mask the way lungmask does, and label its sides.

Post-processing (after the probability outside the body is zeroed, raylung/segment/segmenter.py)
keeps the connected components (26-connected) of at least ``MIN_SHARE`` of the
largest one, which drops specks in the neck or abdomen but keeps both lungs even when one is
small, then fills enclosed holes (vessels and dense lesions the network missed inside the lung).
Sides follow lungmask's convention: 1 = right lung, 2 = left lung, by the patient's physical
left-right axis (LPS +x is the patient's left), whatever the image's orientation.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from raylung.preprocess.thorax_crop import bounding_box
from raylung.segment.scan import Grid

MIN_SHARE = 0.1
RIGHT, LEFT = 1, 2
_FULL = np.ones((3, 3, 3), bool)


def clean_mask(mask: np.ndarray) -> np.ndarray:
    """The large components of a binary (z, y, x) mask with their holes filled (bool)."""
    if not mask.any():
        return mask.astype(bool)
    box = bounding_box(mask).slices()
    labels, _ = ndimage.label(mask[box], structure=_FULL)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    kept = ndimage.binary_fill_holes(np.isin(labels, np.flatnonzero(sizes >= MIN_SHARE *
                                                                    sizes.max())))
    out = np.zeros(mask.shape, bool)
    out[box] = kept
    return out


def label_sides(mask: np.ndarray, grid: Grid) -> np.ndarray:
    """uint8 map of a binary mask: 1 right lung, 2 left lung. Components go to the side of
    their centre (split at the midpoint of the two largest); a single component (lungs that
    touch) is split at its own centre."""
    labels, count = ndimage.label(mask, structure=_FULL)
    if count == 0:  # a model that found no lung
        return np.zeros(mask.shape, np.uint8)
    points = np.nonzero(labels)
    x = _physical_x(points, grid)
    ids = labels[points]
    if count < 2:
        return _write(mask.shape, points, np.where(x < x.mean(), RIGHT, LEFT))
    sizes = np.bincount(ids, minlength=count + 1)
    centres = np.bincount(ids, weights=x, minlength=count + 1) / np.maximum(sizes, 1)
    two = np.argsort(sizes)[-2:]
    right = centres < centres[two].mean()
    return _write(mask.shape, points, np.where(right[ids], RIGHT, LEFT))


def _physical_x(points: tuple[np.ndarray, ...], grid: Grid) -> np.ndarray:
    """Physical x (mm, LPS) of voxels given as (z, y, x) index arrays."""
    direction = np.asarray(grid.direction).reshape(3, 3)
    step = direction[0] * np.asarray(grid.spacing)  # mm of x per index step along i, j, k
    k, j, i = points
    return grid.origin[0] + step[0] * i + step[1] * j + step[2] * k


def _write(shape: tuple[int, ...], points: tuple[np.ndarray, ...],
           values: np.ndarray) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    out[points] = values
    return out
