"""Realism distance between translated and real pathological lungs (pure numpy)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from raylung.evaluate.realism import lung_statistics, realism_distance


@pytest.fixture
def lungs():
    """Two noisy 2-D 'lungs' (16x16 slices) with a mask that covers their middle."""
    image = np.random.default_rng(1).normal(-800, 40, (2, 16, 16))
    mask = np.zeros(image.shape, bool)
    mask[:, 4:12, 4:12] = True
    return image, mask


def test_identical_images_are_at_distance_zero(lungs):
    image, mask = lungs
    assert realism_distance(image, mask, image, mask)["realism_hu"] == 0.0


def test_a_shift_moves_intensity_by_the_shift_and_keeps_texture(lungs):
    image, mask = lungs
    scores = realism_distance(image + 250, mask, image, mask)
    assert scores["realism_intensity_hu"] == pytest.approx(250)
    assert scores["realism_texture_hu"] == pytest.approx(0, abs=1e-9)
    assert scores["realism_hu"] == pytest.approx(250)


def test_a_smoothed_image_differs_in_texture(lungs):
    image, mask = lungs
    flat = np.full_like(image, image[mask].mean())
    assert realism_distance(flat, mask, image, mask)["realism_texture_hu"] > 10


def test_only_lung_voxels_count(lungs):
    image, mask = lungs
    changed = image.copy()
    changed[:, :2] = 3000  # far outside the mask (and its gradient) only
    assert realism_distance(changed, mask, image, mask)["realism_hu"] == 0.0


def test_no_lung_voxel_gives_nan(lungs):
    image, mask = lungs
    assert math.isnan(realism_distance(image, np.zeros_like(mask), image, mask)["realism_hu"])


def test_statistics_of_a_3d_batch_use_every_spatial_axis():
    ramp = np.broadcast_to(np.arange(6.0)[:, None, None], (6, 6, 6))[None] * 10
    stats = lung_statistics(ramp, np.ones(ramp.shape, bool))
    assert np.allclose(stats["texture"], 10)
