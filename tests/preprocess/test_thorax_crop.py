"""The thorax box: from bone inside the largest body component."""

from __future__ import annotations

import numpy as np
import pytest

from raylung.phantom import make_case
from raylung.preprocess.thorax_crop import (Box, NoBoneError, body_mask, bounding_box,
                                            estimated_lung_box, thorax_box)


def _block_body():
    image = np.full((4, 40, 40), -1000, np.int16)
    image[:, 5:35, 5:35] = 40        # body
    image[:, 15:25, 15:25] = -850    # an air-filled hole (lung) inside the body
    image[:, 1:3, 1:3] = 40          # a small separate object (table, arm)
    return image


def test_body_is_largest_component_with_holes_filled():
    body = body_mask(_block_body(), -500)
    assert body[:, 5:35, 5:35].all()
    assert not body[:, 1:3, 1:3].any()
    assert body.sum() == 4 * 30 * 30


def test_box_is_bone_bounding_box_without_specks():
    image = _block_body()
    image[:, 8:10, 10:30] = 700     # "ribs"
    image[1, 33, 33] = 900          # a single bright speck (noise, calcification)
    assert thorax_box(image, -500, 200, min_voxels=5) == Box(0, 4, 8, 10, 10, 30)


def test_bone_outside_body_is_ignored():
    image = _block_body()
    image[:, 8:10, 10:30] = 700
    image[:, 1:3, 1:3] = 900        # bright object that is not part of the body
    assert thorax_box(image, -500, 200, min_voxels=5) == Box(0, 4, 8, 10, 10, 30)


def test_no_bone_raises():
    with pytest.raises(NoBoneError, match="no bone above 200 HU"):
        thorax_box(_block_body(), -500, 200, min_voxels=5)


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_phantom_box_holds_lung_and_drops_outside_air(index):
    case = make_case(seed=11, index=index, pathological=index % 2 == 1, size=128, slices=(16, 20))
    box = thorax_box(case.image, -500, 200, 20)
    inside = np.zeros(case.lung.shape, bool)
    inside[box.slices()] = True
    assert not (case.lung.astype(bool) & ~inside).any(), "lung voxels outside the box"
    outside_air = ~body_mask(case.image, -500)
    assert outside_air[box.slices()].mean() < 0.15
    assert outside_air.mean() > 2 * outside_air[box.slices()].mean()


def test_estimated_lung_box_is_the_lung_box_without_the_trachea():
    for index, sick in enumerate([False, True, True]):
        case = make_case(seed=5, index=index, pathological=sick, size=96, slices=(30, 40))
        estimate = estimated_lung_box(case.image, body_mask(case.image, -500)).as_list()
        truth = bounding_box(case.lung).as_list()
        assert np.abs(np.subtract(estimate, truth)).max() <= 2, (estimate, truth)
    water = np.zeros((4, 20, 20), np.int16)
    assert estimated_lung_box(water, body_mask(water, -500)) is None
