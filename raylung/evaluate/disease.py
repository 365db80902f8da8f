"""How much of a lung looks diseased, how far G moves healthy lungs towards the disease, and
how alike the opacities are from one sample to the next.

The disease share is the fraction of the lung that lies in opacities: dense voxels (above
``DENSE_HU``: soft tissue, consolidation, the lines of a fibrotic net) that fill a box of
``OPACITY_FRACTION`` of the sample's side (a morphological opening; 3 voxels at 64 x 64, 13 at
256 x 256, i.e. 1.7 cm of a 35 cm thorax box). The box scales with the sample, not in mm,
because what it must ignore does: vessels, the partial-volume ring where a resized slice
mixes lung with the wall, and the halo of a blurred wall are a voxel or two wide at any size.
So neither blurring a healthy image nor thickening its wall raises the share; a patch of
disease at the wall does.

    >>> import numpy as np
    >>> lung = np.zeros((1, 16, 16), bool); lung[0, 2:14, 2:14] = True
    >>> hu = np.where(lung, -850.0, 40.0); hu[0, 2:6, 2:7] = 0.0      # a patch at the wall
    >>> hu[0, 2:14, 13] = 0.0                                         # a one-voxel rim
    >>> round(disease_share(hu, lung), 3)
    0.139
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

DENSE_HU = -400  # aerated lung is below, soft tissue and consolidation above
OPACITY_FRACTION = 0.05  # of the sample's side: the smallest opacity counted


def opacities(hu: np.ndarray, lung: np.ndarray) -> np.ndarray:
    """Each sample's opacity voxels: dense lung voxels that fill the opacity box.

    ``hu`` and ``lung`` are (B, *spatial)."""
    dense = (hu > DENSE_HU) & lung.astype(bool)
    box = np.ones([max(3, round(OPACITY_FRACTION * n)) for n in hu.shape[1:]], bool)
    return np.stack([ndi.binary_opening(d, box) for d in dense])


def disease_share(hu: np.ndarray, lung: np.ndarray) -> float:
    """Opacity voxels / lung voxels, pooled over a batch: a small lung weighs what it holds."""
    return _share(opacities(hu, lung), lung)


def opacity_overlap(masks: np.ndarray) -> float:
    """How alike the samples' opacities are in place: the mean Dice of the opacity masks
    (B, *spatial) of every two samples that both hold some (1: one pattern drawn into every
    sample; real disease varies). NaN with fewer than two such samples.

    >>> m = np.zeros((3, 4, 4), bool); m[:2, :2, :2] = True; m[2, 2:, 2:] = True
    >>> round(opacity_overlap(m), 3)  # pairs (0, 1): 1, (0, 2) and (1, 2): 0
    0.333
    """
    flat = masks.reshape(len(masks), -1)
    flat = flat[flat.any(axis=1)].astype(np.float64)
    if len(flat) < 2:
        return float("nan")
    sizes = flat.sum(axis=1)
    dice = 2 * (flat @ flat.T) / (sizes[:, None] + sizes[None, :])
    return float(dice[np.triu_indices(len(flat), k=1)].mean())


def translation_scores(healthy: np.ndarray, translated: np.ndarray, lung: np.ndarray,
                       reference: np.ndarray, reference_lung: np.ndarray) -> dict[str, float]:
    """Disease shares of h, G(h) (both in h's lung) and real pathological images, and the
    translation: how much of the way from h's share to the pathological one G(h) goes
    (0: no disease added, 1: as much as the real disease; NaN when the domains do not differ);
    and how alike the opacities of G(h) and of the real images are from sample to sample."""
    drawn, real = opacities(translated, lung), opacities(reference, reference_lung)
    share_h, share_gh = disease_share(healthy, lung), _share(drawn, lung)
    share_p = _share(real, reference_lung)
    gap = share_p - share_h
    return {"disease_share": share_gh, "disease_share_healthy": share_h,
            "disease_share_pathological": share_p,
            "translation": (share_gh - share_h) / gap if gap > 0 else float("nan"),
            "opacity_overlap": opacity_overlap(drawn),
            "opacity_overlap_pathological": opacity_overlap(real)}


def _share(mask: np.ndarray, lung: np.ndarray) -> float:
    size = lung.astype(bool).sum()
    return float(mask.sum() / size) if size else float("nan")
