"""Scans through a segmenter and back: exact native grid, physical placement, clean-up, sides."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from raylung.config import load_config
from raylung.errors import InputError
from raylung.evaluate.overlap import dice
from raylung.segment.postprocess import clean_mask, label_sides
from raylung.preprocess.normalise import normalise_hu
from raylung.segment.scan import Grid, _predict_volume, predict_lung, prepare_scan, to_native
from raylung.segment.segmenter import finish

BALL_CENTRE = (6.0, -4.0, 3.0)  # mm, LPS
BALL_MM = 9.0


def _dark_is_lung(dims: int) -> torch.nn.Module:
    """A real network whose lung logit rises as the normalised HU falls below -0.5 (air-like):
    what a trained segmenter does inside the thorax, so placement can be checked exactly."""
    conv = (torch.nn.Conv2d if dims == 2 else torch.nn.Conv3d)(1, 2, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.0, -20.0]).view(2, 1, *[1] * dims))
        conv.bias.copy_(torch.tensor([0.0, -10.0]))
    return conv.eval()


def _thorax(spacing=(0.7, 1.3, 2.1), size=(61, 47, 33),
            direction=np.eye(3)) -> tuple[sitk.Image, np.ndarray]:
    """An odd-sized, anisotropic scan with axes along ``direction``: a water block framed by
    bone with a dark ball at BALL_CENTRE (all in physical space); returns it with the ball."""
    image = sitk.Image(size, sitk.sitkInt16)
    image.SetSpacing(spacing)
    image.SetDirection(tuple(direction.ravel()))
    image.SetOrigin(tuple(direction @ (-(np.array(size) - 1) / 2 * spacing)))
    index = np.indices(size[::-1])[::-1].reshape(3, -1) * np.array(spacing)[:, None]
    points = list((direction @ index).reshape(3, *size[::-1]) +
                  np.array(image.GetOrigin())[:, None, None, None])
    array = np.full(size[::-1], -1000, np.int16)
    block = (abs(points[0]) < 18) & (abs(points[1]) < 24)
    array[block] = 700
    array[(abs(points[0]) < 15) & (abs(points[1]) < 21)] = 40
    ball = sum((p - c) ** 2 for p, c in zip(points, BALL_CENTRE)) < BALL_MM ** 2
    array[ball] = -900
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    return out, ball


def _rotation(degrees: float) -> np.ndarray:
    """An oblique direction: a rotation about the head-foot axis."""
    c, r = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return np.array([[c, -r, 0], [r, c, 0], [0, 0, 1]])


@pytest.mark.parametrize("mode, axes", [("slice2d", "permuted"), ("patch3d", "permuted"),
                                        ("slice2d", "oblique")])
def test_mask_lands_on_the_exact_input_grid_at_the_same_physical_place(mode, axes):
    if axes == "permuted":  # permuted and flipped axes
        image, ball = (sitk.DICOMOrient(i, "SRA") for i in _images())
    else:
        image, ball = _images(_rotation(20))
    config = load_config(None, [f"data.mode={mode}", "data.slice_size=[64,64]",
                                "data.patch_size=[16,32,32]", "ingest.spacing_mm=[1,1,1.5]"])
    scan = prepare_scan(image, config)
    prob = predict_lung(_dark_is_lung(2 if mode == "slice2d" else 3), scan, config)
    mask = finish(prob, scan).mask
    for attr in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(mask, attr)() == getattr(image, attr)(), attr
    assert image.GetDirection() != (1, 0, 0, 0, 1, 0, 0, 0, 1)
    ball = sitk.GetArrayFromImage(ball).astype(bool)
    predicted = sitk.GetArrayFromImage(mask).astype(bool)
    assert dice(predicted, ball) > 0.85
    centre = _physical_centroid(mask)
    assert np.allclose(centre, BALL_CENTRE, atol=1.0), centre


def _images(direction=np.eye(3)) -> tuple[sitk.Image, sitk.Image]:
    """The scan of ``_thorax`` and its ball as a mask image on the same grid."""
    image, ball = _thorax(direction=direction)
    mask = sitk.GetImageFromArray(ball.astype(np.uint8))
    mask.CopyInformation(image)
    return image, mask


def _physical_centroid(mask: sitk.Image) -> np.ndarray:
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    return np.asarray(stats.GetCentroid(1))


def test_3d_windows_beyond_a_short_scan_are_air_as_in_training():
    """A scan with fewer slices than a patch is padded with air, as training crops are, not
    with MONAI's default 0 (water): a model that looks across slices sees what it learned."""
    conv = torch.nn.Conv3d(1, 2, (3, 1, 1), padding=(1, 0, 0))
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.0, -20.0 / 3]).view(2, 1, 1, 1, 1).expand(2, 1, 3, 1, 1))
        conv.bias.copy_(torch.tensor([0.0, -10.0]))
    config = load_config(None, ["data.mode=patch3d", "data.patch_size=[8,16,16]"])
    crop = np.full((4, 16, 16), -1024.0, np.float32)
    crop[:, :, 8:] = 40.0  # air on the left, soft tissue on the right
    padded = np.pad(normalise_hu(crop, config.data.hu_norm), ((2, 2), (0, 0), (0, 0)),
                    constant_values=-1.0)  # MONAI pads a short axis on both sides
    with torch.no_grad():
        prob = _predict_volume(conv.eval(), crop, config, 1)
        expected = torch.softmax(conv(torch.from_numpy(padded)[None, None]), 1)[0, 1, 2:6]
    np.testing.assert_allclose(prob, expected.numpy(), atol=1e-5)


def test_scan_without_bone_is_one_line():
    image = sitk.Image((20, 20, 10), sitk.sitkInt16)
    with pytest.raises(InputError, match="scan.nii: no bone above 200 HU inside the body"):
        prepare_scan(image, load_config(), "scan.nii")


def test_clean_mask_drops_specks_and_fills_holes():
    mask = np.zeros((20, 30, 30), bool)
    mask[2:18, 3:13, 3:13] = True          # right lung
    mask[2:18, 3:13, 17:24] = True         # a smaller left lung: kept
    mask[8:10, 6:8, 6:8] = False           # a hole (a vessel): filled
    mask[0, 28, 28] = True                 # a speck: dropped
    cleaned = clean_mask(mask)
    assert cleaned[8:10, 6:8, 6:8].all() and not cleaned[0, 28, 28]
    assert cleaned.sum() == 16 * 10 * 10 + 16 * 10 * 7
    assert not clean_mask(np.zeros((4, 4, 4), bool)).any()


def test_sides_follow_the_patient_not_the_array():
    mask = np.zeros((6, 10, 20), bool)
    mask[:, 2:8, 2:8] = True    # low x index
    mask[:, 2:8, 12:18] = True
    lps = Grid((20, 10, 6), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    sides = label_sides(mask, lps)
    assert (sides[0, 4, 4], sides[0, 4, 14]) == (1, 2)  # LPS: low x is the patient's right
    ras = Grid((20, 10, 6), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (-1, 0, 0, 0, -1, 0, 0, 0, 1))
    assert label_sides(mask, ras)[0, 4, 4] == 2
    touching = mask.copy()
    touching[:, 2:8, 8:12] = True     # one component: split at its centre
    split = label_sides(touching, lps)
    assert split[0, 4, 2] == 1 and split[0, 4, 17] == 2 and set(np.unique(split)) == {0, 1, 2}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "mean of empty slice" once reached the console
        assert not label_sides(np.zeros_like(mask), lps).any()


def test_every_native_voxel_gets_a_probability():
    """The canonical grid has whole voxels and may stop up to half a voxel short of the
    scan's far edges (here 62 x 0.7 mm = 43.4 mm at 1 mm, 7 x 5 mm = 35 mm at 2 mm): those
    native voxels take the nearest canonical value, not 0, or a lung reaching the last slice
    would lose it."""
    image, _ = _thorax(spacing=(0.7, 0.7, 5.0), size=(62, 62, 7))
    scan = prepare_scan(image, load_config(None, ["ingest.spacing_mm=[1,1,2]"]))
    native = to_native(np.ones(scan.hu.shape, np.float32), scan)
    assert native.shape == (7, 62, 62) and native.min() == 1.0
