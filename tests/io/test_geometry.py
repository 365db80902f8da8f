"""The canonical grid: LPS identity direction, chosen spacing, exact when nothing changes."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from raylung.io.geometry import canonical_grid, overlap_fraction, resample_to, same_grid


def _image(array, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=None):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction:
        image.SetDirection(direction)
    return image


def test_identity_grid_at_native_spacing_is_unchanged():
    image = _image(np.random.default_rng(0).normal(size=(5, 6, 7)).astype(np.float32),
                   spacing=(0.7, 0.8, 2.0), origin=(-3.0, 4.0, 10.0))
    grid = canonical_grid(image, None)
    assert same_grid(grid, image)
    out = resample_to(image, grid, label=False, fill=0)
    assert np.array_equal(sitk.GetArrayFromImage(out), sitk.GetArrayFromImage(image))


def test_flipped_direction_becomes_identity_with_flipped_voxels():
    array = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    image = _image(array, direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1), origin=(10.0, 20.0, 0.0))
    grid = canonical_grid(image, None)
    out = sitk.GetArrayFromImage(resample_to(image, grid, label=False, fill=0))
    assert grid.GetDirection() == (1, 0, 0, 0, 1, 0, 0, 0, 1)
    assert np.allclose(grid.GetOrigin(), (7.0, 18.0, 0.0))
    assert np.array_equal(out, array[:, ::-1, ::-1])


def test_resampled_size_keeps_physical_extent():
    image = _image(np.zeros((10, 20, 30), np.float32), spacing=(0.5, 0.5, 3.0))
    grid = canonical_grid(image, (1.0, 1.0, 2.0))
    assert grid.GetSize() == (15, 10, 15)
    assert np.allclose(grid.GetOrigin(), (0.25, 0.25, -0.5))


def test_labels_use_nearest_neighbour():
    labels = np.zeros((4, 8, 8), np.uint8)
    labels[:, 2:6, 2:6] = 3
    image = _image(labels)
    out = sitk.GetArrayFromImage(resample_to(image, canonical_grid(image, (0.5, 0.5, 0.5)),
                                             label=True, fill=0))
    assert set(np.unique(out)) == {0, 3}


def test_overlap_fraction():
    a = _image(np.zeros((10, 10, 10), np.uint8))
    shifted = _image(np.zeros((10, 10, 10), np.uint8), origin=(5.0, 0.0, 0.0))
    far = _image(np.zeros((10, 10, 10), np.uint8), origin=(500.0, 0.0, 0.0))
    assert overlap_fraction(a, a) == 1.0
    assert overlap_fraction(a, shifted) == 0.5
    assert overlap_fraction(a, far) == 0.0


def test_single_slice_stays_single():
    image = _image(np.zeros((1, 8, 8), np.float32), spacing=(0.5, 0.5, 5.0))
    grid = canonical_grid(image, (1.0, 1.0, 2.0))
    assert grid.GetSize() == (4, 4, 1)
    assert grid.GetSpacing() == (1.0, 1.0, 5.0)
