"""The thorax crop box: the box spanned by ribs and vertebrae (README, "Ingest in detail").

Cropping every case to this box removes field-of-view and zoom differences between scans, which
a GAN would otherwise learn as the difference between the healthy and pathological domains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage import measure, morphology


@dataclass(frozen=True)
class Box:
    """A half-open voxel box ``[z0, z1) x [y0, y1) x [x0, x1)`` on the canonical grid."""

    z0: int
    z1: int
    y0: int
    y1: int
    x0: int
    x1: int

    def slices(self) -> tuple[slice, slice, slice]:
        """Numpy slices that cut the box out of a (z, y, x) array."""
        return slice(self.z0, self.z1), slice(self.y0, self.y1), slice(self.x0, self.x1)

    def as_list(self) -> list[int]:
        """``[z0, z1, y0, y1, x0, x1]``, as the store's attributes keep it."""
        return [self.z0, self.z1, self.y0, self.y1, self.x0, self.x1]


class NoBoneError(ValueError):
    """The image holds no bone inside the body, so the thorax box is undefined."""


def body_mask(image: np.ndarray, body_hu: int) -> np.ndarray:
    """The largest connected component above ``body_hu``, holes filled slice by slice."""
    labels = measure.label(image > body_hu, connectivity=1)
    if labels.max() == 0:
        return np.zeros(image.shape, dtype=bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    body = labels == sizes.argmax()
    return np.stack([ndimage.binary_fill_holes(s) for s in body])


def bone_mask(image: np.ndarray, body: np.ndarray, bone_hu: int, min_voxels: int) -> np.ndarray:
    """Voxels above ``bone_hu`` inside the body, with specks under ``min_voxels`` removed."""
    bone = (image > bone_hu) & body
    return morphology.remove_small_objects(bone, max_size=min_voxels - 1, connectivity=3)


def thorax_box(image: np.ndarray, body_hu: int, bone_hu: int, min_voxels: int,
               body: np.ndarray | None = None) -> Box:
    """Bounding box of the bone (ribs, vertebrae) inside the largest body component
    (``body``, when the caller has it already)."""
    body = body_mask(image, body_hu) if body is None else body
    bone = bone_mask(image, body, bone_hu, min_voxels)
    if not bone.any():
        raise NoBoneError(f"no bone above {bone_hu} HU inside the body")
    return bounding_box(bone)


def estimated_lung_box(image: np.ndarray, body: np.ndarray, air_hu: int = -400,
                       min_share: float = 0.1) -> Box | None:
    """Box of the air inside the body (below ``air_hu``): its components of at least
    ``min_share`` of the largest (the lungs, not specks of bowel gas), over the slices where
    that air covers at least ``min_share`` of its largest cross-section (not the trachea above
    them). Gives unlabelled cases a lung range, so both domains' slices come from the same
    anatomy; None when the body holds no air."""
    labels, count = ndimage.label((image < air_hu) & body)
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    air = np.isin(labels, np.flatnonzero(sizes >= min_share * sizes.max()))
    area = air.sum(axis=(1, 2))
    z = np.flatnonzero(area >= min_share * area.max())
    box = bounding_box(air[z[0]:z[-1] + 1])
    return Box(int(z[0]), int(z[-1]) + 1, box.y0, box.y1, box.x0, box.x1)


def bounding_box(mask: np.ndarray) -> Box:
    """The smallest box holding every non-zero voxel of a non-empty 3-D mask."""
    return Box(*(b for part in box_slices(mask) for b in (part.start, part.stop)))


def box_slices(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...] | None:
    """Slices of the box around the non-zero voxels of an N-D mask, widened by ``margin``
    inside the array; None when the mask is empty."""
    box = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if not len(hit):
            return None
        box.append(slice(max(int(hit[0]) - margin, 0), int(hit[-1]) + 1 + margin))
    return tuple(box)
