"""Replayable classical augmentation of training crops: parameters from one seed, then applied.

``sample_params`` draws everything (noise seed included) from the sample's seed, and ``augment``
applies it deterministically, so any training sample can be logged and replayed exactly. The
image and every mask get the same geometry; masks are resampled nearest-neighbour and stay binary.

>>> from raylung.config import AugmentConfig
>>> image = np.full((1, 16, 16), -500.0, dtype=np.float32)
>>> lung = np.zeros((16, 16), dtype=np.uint8)
>>> lung[4:12, 4:12] = 1
>>> out, masks = augment(sample_params(AugmentConfig(), seed=7, ndim=2), image, {"lung": lung})
>>> again, _ = augment(sample_params(AugmentConfig(), seed=7, ndim=2), image, {"lung": lung})
>>> bool(np.array_equal(out, again)), out.shape, masks["lung"].dtype
(True, (1, 16, 16), dtype('uint8'))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from raylung.config import AugmentConfig
from raylung.preprocess.normalise import AIR_HU

# Rotation planes (pairs of spatial axes): 2-D rotates in-plane; 3-D rotates about z, y, x in turn.
_PLANES = {2: ((0, 1),), 3: ((1, 2), (0, 2), (0, 1))}


@dataclass(frozen=True)
class AugmentParams:
    """Every random choice of one augmentation; ``augment`` applies it deterministically.

    Angles are radians (2-D: one in-plane angle; 3-D: about the z, y, x axes of a (D, H, W)
    array, applied as R = Rz Ry Rx, in voxel units); scales > 1 magnify the content about the
    crop centre.
    Intensity: ``hu' = -1024 + (hu + 1024) * hu_scale + hu_shift`` (air stays air under
    scaling), then Gaussian noise of sd ``noise_sd`` HU drawn from ``noise_seed``.
    """

    flips: tuple[bool, ...]
    angles_rad: tuple[float, ...]
    scales: tuple[float, ...]
    hu_shift: float
    hu_scale: float
    noise_sd: float
    noise_seed: int

    def __post_init__(self) -> None:
        ndim = len(self.flips)
        if ndim not in _PLANES:
            raise ValueError(f"flips must have one entry per spatial axis (2 or 3), got {ndim}")
        if len(self.angles_rad) != len(_PLANES[ndim]) or len(self.scales) != ndim:
            raise ValueError(f"{ndim}-D params need {len(_PLANES[ndim])} angle(s) and {ndim} "
                             f"scales, got {len(self.angles_rad)} and {len(self.scales)}")
        if min(self.scales) <= 0 or self.hu_scale <= 0 or self.noise_sd < 0:
            raise ValueError("scales and hu_scale must be positive and noise_sd non-negative")

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions these params apply to."""
        return len(self.flips)


def identity_params(ndim: int) -> AugmentParams:
    """Params that leave image and masks bit-identical (no flip, rotation, scaling or noise)."""
    _check_ndim(ndim)
    return AugmentParams(flips=(False,) * ndim, angles_rad=(0.0,) * len(_PLANES[ndim]),
                         scales=(1.0,) * ndim, hu_shift=0.0, hu_scale=1.0, noise_sd=0.0,
                         noise_seed=0)


def sample_params(cfg: AugmentConfig, seed: int, ndim: int) -> AugmentParams:
    """Draw every augmentation parameter from ``seed``; identity when ``cfg.enabled`` is False."""
    _check_ndim(ndim)
    if not cfg.enabled:
        return identity_params(ndim)
    rng = np.random.default_rng(seed)
    # Always draw in the same order, so changing one range does not reshuffle the others.
    axes = ("z", "y", "x")[-ndim:]
    flips = (rng.random(ndim) < cfg.flip_prob) & np.isin(axes, cfg.flip_axes)
    max_angle = np.deg2rad(cfg.rotate_deg)
    angles = rng.uniform(-max_angle, max_angle, len(_PLANES[ndim]))
    scale = float(rng.uniform(*cfg.scale))
    return AugmentParams(
        flips=tuple(bool(f) for f in flips),
        angles_rad=tuple(float(a) for a in angles),
        scales=(scale,) * ndim,
        hu_shift=float(rng.uniform(-cfg.hu_shift, cfg.hu_shift)),
        hu_scale=float(rng.uniform(*cfg.hu_scale)),
        noise_sd=float(rng.uniform(0.0, cfg.noise_hu)),
        noise_seed=int(rng.integers(2**63)),
    )


def augment(params: AugmentParams, image: np.ndarray,
            masks: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Apply ``params`` to a (C, *spatial) HU image and its masks.

    Geometry (flips, then rotation and scaling about the centre) is shared by the image
    (bilinear) and the masks (nearest), both with border padding; intensity touches the image.
    Inputs are never modified; what ``params`` leaves unchanged may come back as the input
    itself or a flipped view of it, so the identity costs no copies.
    """
    _check_inputs(params, image, masks)
    axes = tuple(axis for axis, flip in enumerate(params.flips) if flip)
    image = np.flip(np.asarray(image, dtype=np.float32), tuple(a + 1 for a in axes))
    masks = {name: np.flip(mask, axes) for name, mask in masks.items()}
    if any(params.angles_rad) or any(s != 1.0 for s in params.scales):
        image, masks = _resample(params, image, masks)
    return _intensity(params, image), masks


def _check_ndim(ndim: int) -> None:
    if ndim not in _PLANES:
        raise ValueError(f"ndim must be 2 or 3 spatial dimensions, got {ndim}")


def _check_inputs(params: AugmentParams, image: np.ndarray, masks: dict[str, np.ndarray]) -> None:
    if image.ndim != params.ndim + 1:
        raise ValueError(f"image shape {image.shape} is not (C, *spatial) with the "
                         f"{params.ndim} spatial dims of these params")
    spatial = image.shape[1:]
    for name, mask in masks.items():
        if mask.shape != spatial:
            raise ValueError(f"mask {name!r} has shape {mask.shape} but the image's spatial "
                             f"shape is {spatial} (image shape {image.shape})")


def _resample(params: AugmentParams, image: np.ndarray,
              masks: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    # torch's grid_sample (what MONAI's Affine runs on) is 1.3-2x faster here than
    # scipy.ndimage.affine_transform; Ray workers run it on one thread (OMP_NUM_THREADS=1).
    # One sampling grid for the image and all masks keeps them aligned and is computed once.
    grid = _sampling_grid(params, image.shape[1:])
    image = _grid_sample(image, grid, "bilinear", "border")
    if not masks:
        return image, masks
    # Same border padding as the image: where the image replicates its edge, so do the masks.
    stacked = _grid_sample(np.stack(list(masks.values())), grid, "nearest", "border")
    resampled = {name: out.astype(mask.dtype) for (name, mask), out in zip(masks.items(), stacked)}
    return image, resampled


def _output_to_input(params: AugmentParams) -> np.ndarray:
    """Matrix taking an output voxel offset from the centre to its input offset (numpy axes)."""
    rotation = np.eye(params.ndim)
    for angle, (i, j) in zip(params.angles_rad, _PLANES[params.ndim]):
        plane = np.eye(params.ndim)
        cos, sin = np.cos(angle), np.sin(angle)
        plane[[i, i, j, j], [i, j, i, j]] = cos, -sin, sin, cos
        rotation = rotation @ plane
    return np.diag(1.0 / np.asarray(params.scales)) @ rotation.T


def _sampling_grid(params: AugmentParams, shape: tuple[int, ...]) -> torch.Tensor:
    # torch grids use coordinates normalised to [-1, 1] per axis (half = n/2 voxels with
    # align_corners=False) and list them as (x, y[, z]), the reverse of numpy's axis order.
    half = np.asarray(shape, dtype=np.float64) / 2.0
    theta = _output_to_input(params) * half[None, :] / half[:, None]
    affine = torch.zeros(1, params.ndim, params.ndim + 1, dtype=torch.float32)
    affine[0, :, :params.ndim] = torch.from_numpy(theta[::-1, ::-1].copy())
    return F.affine_grid(affine, [1, 1, *shape], align_corners=False)


def _grid_sample(array: np.ndarray, grid: torch.Tensor, mode: str, padding: str) -> np.ndarray:
    """Resample a (C, *spatial) array on ``grid``; returns float32 (C, *spatial)."""
    # a copy: the input may be flipped (negative strides) or read-only (zarr's, Ray's)
    batch = torch.from_numpy(np.array(array, dtype=np.float32))[None]
    out = F.grid_sample(batch, grid, mode=mode, padding_mode=padding, align_corners=False)
    return out[0].numpy()


def _intensity(params: AugmentParams, image: np.ndarray) -> np.ndarray:
    # One copy (``image`` may be the caller's array or a read-only view), then in place.
    # Skipped steps keep identity exact.
    if params.hu_scale == 1.0 and params.hu_shift == 0.0 and params.noise_sd == 0.0:
        return image
    image = np.array(image, dtype=np.float32)
    if params.hu_scale != 1.0:
        image -= np.float32(AIR_HU)
        image *= np.float32(params.hu_scale)
        image += np.float32(AIR_HU)
    if params.hu_shift != 0.0:
        image += np.float32(params.hu_shift)
    if params.noise_sd > 0.0:
        rng = np.random.default_rng(params.noise_seed)
        image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(params.noise_sd)
    return image
