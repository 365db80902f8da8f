"""Tests for raylung.data.augment: replayable params, shared geometry, exact HU arithmetic."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from scipy import ndimage

from raylung.config import AugmentConfig
from raylung.data.augment import AugmentParams, augment, identity_params, sample_params


def _box_mask(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """An off-centre box, so a flip or rotation visibly moves it."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, dtype=np.uint8)
    starts = [int(rng.integers(n // 8, n // 4)) for n in shape]
    mask[tuple(slice(s, s + n // 2) for s, n in zip(starts, shape))] = 1
    return mask


def _geometry(ndim: int, flips: tuple[bool, ...], angles: tuple[float, ...],
              scale: float) -> AugmentParams:
    return dataclasses.replace(identity_params(ndim), flips=flips, angles_rad=angles,
                               scales=(scale,) * ndim)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_same_seed_gives_same_params():
    assert sample_params(AugmentConfig(), 11, 3) == sample_params(AugmentConfig(), 11, 3)


def test_different_seeds_give_different_params():
    params = [sample_params(AugmentConfig(), seed, 3) for seed in range(10)]
    assert len(set(params)) == 10


def test_same_seed_gives_identical_output():
    mask = _box_mask((16, 20, 24))
    image = mask[None].astype(np.float32) * 1000 - 800
    first = augment(sample_params(AugmentConfig(), 4, 3), image, {"lung": mask})
    second = augment(sample_params(AugmentConfig(), 4, 3), image, {"lung": mask})
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1]["lung"], second[1]["lung"])


def test_default_flips_left_right_only():
    for ndim in (2, 3):
        flips = {sample_params(AugmentConfig(flip_prob=1.0), seed, ndim).flips for seed in range(5)}
        assert flips == {(False,) * (ndim - 1) + (True,)}


def test_params_stay_within_configured_ranges():
    cfg = AugmentConfig(flip_prob=1.0, flip_axes=("z", "y", "x"), rotate_deg=5.0,
                        scale=(0.8, 0.9), hu_shift=20.0, hu_scale=(0.9, 1.0), noise_hu=3.0)
    for seed in range(20):
        p = sample_params(cfg, seed, 3)
        assert p.flips == (True, True, True)
        assert max(abs(a) for a in p.angles_rad) <= np.deg2rad(5.0)
        assert 0.8 <= p.scales[0] <= 0.9 and len(set(p.scales)) == 1
        assert abs(p.hu_shift) <= 20.0 and 0.9 <= p.hu_scale <= 1.0 and 0 <= p.noise_sd <= 3.0


def test_disabled_config_gives_identity_params():
    assert sample_params(AugmentConfig(enabled=False), 9, 2) == identity_params(2)
    assert sample_params(AugmentConfig(enabled=False), 9, 3) == identity_params(3)


def test_identity_is_exact_and_copies_nothing():
    rng = np.random.default_rng(0)
    image = rng.normal(-500, 300, (2, 12, 14, 10)).astype(np.float32)
    mask = _box_mask((12, 14, 10))
    out, masks = augment(identity_params(3), image, {"lung": mask})
    np.testing.assert_array_equal(out, image)
    np.testing.assert_array_equal(masks["lung"], mask)
    assert np.shares_memory(out, image) and np.shares_memory(masks["lung"], mask)


@pytest.mark.parametrize("flips", [(False, False, False), (True, False, True)])
def test_inputs_are_never_modified(flips):
    rng = np.random.default_rng(5)
    image = rng.normal(-500, 300, (1, 12, 14, 10)).astype(np.float32)
    mask = _box_mask((12, 14, 10))
    image.flags.writeable = mask.flags.writeable = False  # as Ray hands them out
    params = dataclasses.replace(identity_params(3), flips=flips, hu_shift=30.0, hu_scale=1.1,
                                 noise_sd=5.0, noise_seed=1)
    out, masks = augment(params, image, {"lung": mask})
    assert out.flags.writeable and not np.shares_memory(out, image)
    assert np.array_equal(masks["lung"], np.flip(mask, tuple(np.flatnonzero(flips))))


def test_flips_alone_are_exact_numpy_flips():
    rng = np.random.default_rng(1)
    image = rng.normal(0, 100, (2, 8, 10, 12)).astype(np.float32)
    mask = _box_mask((8, 10, 12))
    params = _geometry(3, (True, False, True), (0.0, 0.0, 0.0), 1.0)
    out, masks = augment(params, image, {"lung": mask})
    np.testing.assert_array_equal(out, np.flip(image, (1, 3)))
    np.testing.assert_array_equal(masks["lung"], np.flip(mask, (0, 2)))


def test_mask_stays_aligned_with_image_under_rotation_and_scaling():
    mask = _box_mask((32, 32, 32), seed=2)
    image = mask[None].astype(np.float32) * 1000
    params = _geometry(3, (True, False, True), (0.3, 0.2, -0.25), 1.1)
    out, masks = augment(params, image, {"lung": mask})
    assert _dice(out[0] > 500, masks["lung"] == 1) > 0.95
    # The transform really moved the box, so a mask given other geometry would not match.
    assert _dice(masks["lung"] == 1, mask == 1) < 0.8


def test_masks_stay_binary_uint8():
    masks = {"lung": _box_mask((24, 24, 24), 0), "surround": _box_mask((24, 24, 24), 1)}
    image = np.zeros((1, 24, 24, 24), dtype=np.float32)
    _, out = augment(_geometry(3, (False,) * 3, (0.2, -0.1, 0.3), 0.9), image, masks)
    for name, mask in out.items():
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}, name
        assert mask.any(), name


@pytest.mark.parametrize("shape", [(2, 20, 28), (1, 12, 16, 20)])
def test_shapes_and_dtypes_preserved(shape):
    image = np.full(shape, -700.0, dtype=np.float32)
    mask = _box_mask(shape[1:])
    out, masks = augment(sample_params(AugmentConfig(), 3, len(shape) - 1), image, {"lung": mask})
    assert out.shape == shape and out.dtype == np.float32
    assert masks["lung"].shape == shape[1:] and masks["lung"].dtype == np.uint8


def test_channels_share_the_geometry():
    channel = np.random.default_rng(2).normal(0, 200, (24, 32)).astype(np.float32)
    image = np.stack([channel] * 3)
    out, _ = augment(_geometry(2, (True, False), (0.4,), 1.2), image, {})
    np.testing.assert_array_equal(out[1], out[0])
    np.testing.assert_array_equal(out[2], out[0])


def test_rotation_and_scale_match_scipy_affine_about_the_centre():
    image = ndimage.gaussian_filter(np.random.default_rng(3).normal(0, 1, (40, 56)), 3)
    image = (image * 1000).astype(np.float32)
    angle, scale = 0.3, 1.2
    out, _ = augment(_geometry(2, (False, False), (angle,), scale), image[None], {})
    # Output voxel offset from the centre maps to input offset R^T v / scale (scale magnifies).
    cos, sin = np.cos(angle), np.sin(angle)
    matrix = np.array([[cos, sin], [-sin, cos]]) / scale
    centre = (np.array(image.shape) - 1) / 2
    expected = ndimage.affine_transform(image.astype(np.float64), matrix, centre - matrix @ centre,
                                        order=1, mode="nearest")
    np.testing.assert_allclose(out[0], expected, atol=1e-3 * np.abs(expected).max())


def test_first_3d_angle_rotates_about_z():
    slice_ = _box_mask((20, 24), seed=4)
    volume = np.stack([slice_] * 6)
    _, rotated3d = augment(_geometry(3, (False,) * 3, (0.35, 0.0, 0.0), 1.0),
                           np.zeros((1, 6, 20, 24), np.float32), {"m": volume})
    _, rotated2d = augment(_geometry(2, (False,) * 2, (0.35,), 1.0),
                           np.zeros((1, 20, 24), np.float32), {"m": slice_})
    for z in range(6):
        assert _dice(rotated3d["m"][z], rotated2d["m"]) > 0.98


def test_hu_scale_and_shift_are_exact_and_keep_air_fixed_under_scaling():
    image = np.stack([np.full((8, 8), -24.0), np.full((8, 8), -1024.0)]).astype(np.float32)
    params = dataclasses.replace(identity_params(2), hu_scale=1.5, hu_shift=10.0)
    out, _ = augment(params, image, {})
    np.testing.assert_array_equal(out[0], 486.0)  # -1024 + 1000 * 1.5 + 10
    np.testing.assert_array_equal(out[1], -1014.0)


def test_noise_has_requested_sd():
    image = np.zeros((1, 256, 256), dtype=np.float32)
    params = dataclasses.replace(identity_params(2), noise_sd=20.0, noise_seed=5)
    out, _ = augment(params, image, {})
    assert out.std() == pytest.approx(20.0, rel=0.02)
    assert abs(out.mean()) < 0.5


@pytest.mark.parametrize("flips", [(True, True), (False, False)])
def test_read_only_inputs_work_without_warnings(flips):
    """Zarr's and Ray's arrays are read-only; without a flip nothing copied them."""
    image = np.zeros((1, 16, 16), dtype=np.float32)
    mask = _box_mask((16, 16))
    image.setflags(write=False)
    mask.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        augment(_geometry(2, flips, (0.2,), 1.1), image, {"lung": mask})


def test_bad_mask_shape_names_both_shapes():
    image = np.zeros((1, 8, 10), dtype=np.float32)
    with pytest.raises(ValueError, match=r"\(8, 9\).*\(8, 10\)"):
        augment(identity_params(2), image, {"lung": np.zeros((8, 9), np.uint8)})


def test_image_without_channel_axis_is_rejected():
    with pytest.raises(ValueError, match="C, \\*spatial"):
        augment(identity_params(2), np.zeros((8, 10), np.float32), {})


@pytest.mark.parametrize("ndim", [1, 4])
def test_unsupported_ndim_is_rejected(ndim):
    with pytest.raises(ValueError, match="2 or 3"):
        sample_params(AugmentConfig(), 0, ndim)


def test_params_with_inconsistent_lengths_are_rejected():
    with pytest.raises(ValueError, match="angle"):
        dataclasses.replace(identity_params(3), angles_rad=(0.1,))
