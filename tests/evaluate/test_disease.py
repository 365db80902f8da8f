"""The translation score on images with known opacities: blur and a thicker wall do not raise
it, a patch of disease does, and it says how far G(h) goes towards the real disease."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from raylung.evaluate.disease import disease_share, opacities, translation_scores


def _lungs(size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A body with two lungs and a vessel, in HU, and the lung mask."""
    hu = np.full((size, size), -1000.0)
    hu[4:-4, 4:-4] = 40.0
    lung = np.zeros((size, size), bool)
    lung[10:-10, 8:28] = lung[10:-10, 36:-8] = True
    hu[lung] = -850.0
    hu[30, 18] = 40.0                                       # a vessel: one dense voxel
    return hu, lung


def test_a_patch_at_the_wall_counts_exactly():
    hu, lung = _lungs()
    hu[40:46, 8:14] = -100.0                                # 6 x 6 consolidation at the wall
    mask = opacities(hu[None], lung[None])[0]
    assert mask.sum() == 36 and mask[40:46, 8:14].all()
    assert disease_share(hu[None], lung[None]) == 36 / lung.sum()


def test_vessels_the_wall_ring_and_blur_count_nothing():
    hu, lung = _lungs()
    assert disease_share(hu[None], lung[None]) == 0.0
    ring = hu.copy()
    ring[lung & ~ndi.binary_erosion(lung)] = -200.0         # G thickens the wall by a voxel
    assert disease_share(ring[None], lung[None]) == 0.0
    blurred = ndi.gaussian_filter(hu, 1.5)
    assert disease_share(blurred[None], lung[None]) == 0.0


def test_ground_glass_below_the_threshold_is_not_an_opacity():
    hu, lung = _lungs()
    hu[40:46, 8:14] = -600.0
    assert disease_share(hu[None], lung[None]) == 0.0


def test_translation_is_the_share_of_the_way_to_the_real_disease():
    h, lung = _lungs()
    p = h.copy()
    p[40:46, 8:14] = p[40:46, 50:56] = 0.0                  # two patches: real disease
    gh = h.copy()
    gh[40:46, 8:14] = 0.0                                   # G draws one of them
    scores = translation_scores(h[None], gh[None], lung[None], p[None], lung[None])
    assert scores["disease_share_healthy"] == 0.0
    assert scores["disease_share_pathological"] == 72 / lung.sum()
    assert scores["translation"] == 0.5
    same = translation_scores(h[None], gh[None], lung[None], h[None], lung[None])
    assert np.isnan(same["translation"])                    # no gap between the domains


def test_the_box_grows_with_the_sample():
    hu, lung = _lungs(256)
    hu[100:106, 10:16] = 0.0                                # 6 voxels: a vessel at 256 x 256
    assert disease_share(hu[None], lung[None]) == 0.0
    hu[100:116, 10:26] = 0.0                                # 16 voxels: an opacity
    assert disease_share(hu[None], lung[None]) > 0.0


def test_one_pattern_drawn_everywhere_overlaps_fully_and_varied_disease_does_not():
    h, lung = _lungs()
    stamped = np.stack([h.copy() for _ in range(4)])
    stamped[:, 40:46, 8:14] = 0.0                           # G's one patch in every sample
    varied = np.stack([h.copy() for _ in range(4)])
    for i, (y, x) in enumerate([(12, 10), (40, 8), (20, 50), (44, 44)]):
        varied[i, y:y + 6, x:x + 6] = 0.0                   # real disease: somewhere else each time
    lungs = np.stack([lung] * 4)
    scores = translation_scores(np.stack([h] * 4), stamped, lungs, varied, lungs)
    assert scores["opacity_overlap"] == 1.0
    assert scores["opacity_overlap_pathological"] == 0.0
    healthy = translation_scores(np.stack([h] * 4), np.stack([h] * 4), lungs, varied, lungs)
    assert np.isnan(healthy["opacity_overlap"])             # nothing drawn: nothing to compare
