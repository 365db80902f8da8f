"""How much of a lung looks diseased, and how far G moves healthy lungs towards the disease.

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
    size = lung.astype(bool).sum()
    return float(opacities(hu, lung).sum() / size) if size else float("nan")


def translation_scores(healthy: np.ndarray, translated: np.ndarray, lung: np.ndarray,
                       reference: np.ndarray, reference_lung: np.ndarray) -> dict[str, float]:
    """Disease shares of h, G(h) (both in h's lung) and real pathological images, and the
    translation: how much of the way from h's share to the pathological one G(h) goes
    (0: no disease added, 1: as much as the real disease; NaN when the domains do not differ)."""
    share_h = disease_share(healthy, lung)
    share_gh = disease_share(translated, lung)
    share_p = disease_share(reference, reference_lung)
    gap = share_p - share_h
    return {"disease_share": share_gh, "disease_share_healthy": share_h,
            "disease_share_pathological": share_p,
            "translation": (share_gh - share_h) / gap if gap > 0 else float("nan")}

