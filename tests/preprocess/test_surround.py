"""The surround band: outside the lung, within the width in mm, at any spacing."""

from __future__ import annotations

import numpy as np
import pytest

from raylung.preprocess.surround import margin_voxels, surround_band


def test_band_is_outside_lung_and_within_width_anisotropic():
    lung = np.zeros((20, 40, 40), np.uint8)
    lung[8:12, 15:25, 15:25] = 1
    spacing = (2.0, 0.5, 1.0)
    band = surround_band(lung, spacing, 3.0)
    assert not (band & lung).any()
    z, y, x = np.nonzero(band)
    # distance of each band voxel to the lung box, in mm
    dz = np.maximum(0, np.maximum(8 - z, z - 11)) * 2.0
    dy = np.maximum(0, np.maximum(15 - y, y - 24)) * 0.5
    dx = np.maximum(0, np.maximum(15 - x, x - 24)) * 1.0
    assert np.sqrt(dz**2 + dy**2 + dx**2).max() <= 3.0
    # exact reach along each axis: 1 slice in z (2 mm), 6 voxels in y (0.5 mm), 3 in x
    assert band[12, 20, 20] and not band[13, 20, 20]
    assert band[10, 30, 20] and not band[10, 31, 20]
    assert band[10, 20, 27] and not band[10, 20, 28]


def test_band_2d():
    lung = np.zeros((10, 10), np.uint8)
    lung[4:6, 4:6] = 1
    band = surround_band(lung, (1.0, 1.0), 1.0)
    assert band.sum() == 8  # the four 2-voxel edges; diagonals are sqrt(2) mm away


def test_empty_or_full_lung_gives_empty_band():
    assert not surround_band(np.zeros((3, 4, 4), np.uint8), (1, 1, 1), 5).any()
    assert not surround_band(np.ones((3, 4, 4), np.uint8), (1, 1, 1), 5).any()


def test_margin_covers_width():
    assert margin_voxels((2.0, 0.7, 0.7), 10.0) == (5, 15, 15)


def test_spacing_must_match_dims():
    with pytest.raises(ValueError, match="spacing has 2 values for a 3-D mask"):
        surround_band(np.zeros((2, 2, 2), np.uint8), (1.0, 1.0), 1.0)
