"""One scan through a trained segmenter, with the preprocessing of its training and back.

A scan is brought onto raylung's canonical grid exactly as ``raylung ingest`` stores cases
(LPS, the model's ``ingest.spacing_mm``, HU window, thorax box); the lung probability is
predicted there (2-D: every axial slice of the scan, cut to the thorax box and resized to
``data.slice_size``; 3-D: MONAI's sliding window with Gaussian blending) and resampled
linearly onto the input's exact grid, where it is thresholded at 0.5.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import torch
from monai.inferers import sliding_window_inference

from raylung.config import Config
from raylung.data.sample import resize_planes
from raylung.errors import InputError
from raylung.ingest.case import canonical_hu
from raylung.io.geometry import canonical_grid
from raylung.models.placement import where
from raylung.preprocess.normalise import AIR_HU, normalise_hu
from raylung.preprocess.thorax_crop import Box, NoBoneError, body_mask, thorax_box

SW_OVERLAP = 0.5  # sliding-window overlap of 3-D models (nnU-Net's default)


@dataclass
class Grid:
    """The geometry of an image grid, picklable (Ray moves it between stages)."""

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image: sitk.Image) -> Grid:
        """The grid ``image`` lies on."""
        return cls(image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection())

    def image(self, array: np.ndarray | None = None) -> sitk.Image:
        """``array`` (z, y, x) as an image on this grid; None: an empty uint8 reference."""
        image = sitk.Image(self.size, sitk.sitkUInt8) if array is None \
            else sitk.GetImageFromArray(array)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image


@dataclass
class Scan:
    """A scan ready for the segmenter: HU (z, y, x) on the canonical grid, its body (the
    largest component above ``ingest.body_hu``, holes filled: the lungs lie inside it) and
    thorax box, plus the grid it came from, onto which the mask goes back."""

    hu: np.ndarray
    body: np.ndarray
    box: Box
    canonical: Grid
    native: Grid


def air(window: tuple[int, int]) -> float:
    """Air, the fill of training crops beyond a scan, in normalised units: what sliding
    windows pad with (MONAI's default 0 is water)."""
    return float(normalise_hu(np.float32(AIR_HU), window))


def prepare_scan(image: sitk.Image, config: Config, source: str = "image") -> Scan:
    """Canonical HU and thorax box of ``image`` with the model's ingest settings."""
    ing = config.ingest
    grid = canonical_grid(image, ing.spacing_mm)
    hu = canonical_hu(image, grid, ing.hu_window)
    body = body_mask(hu, ing.body_hu)
    try:
        box = thorax_box(hu, ing.body_hu, ing.bone_hu, ing.min_bone_voxels, body)
    except NoBoneError as err:
        raise InputError(source, f"{err}: cannot find the thorax box (is it a chest CT?)") from None
    return Scan(hu, body, box, Grid.of(grid), Grid.of(image))


@torch.no_grad()
def predict_lung(model: torch.nn.Module, scan: Scan, config: Config,
                 batch_size: int = 8) -> np.ndarray:
    """Lung probability (float32, canonical grid); zero outside the thorax box in-plane."""
    b = scan.box
    crop = scan.hu[:, b.y0:b.y1, b.x0:b.x1]
    predict = _predict_slices if config.data.mode == "slice2d" else _predict_volume
    prob = np.zeros(scan.hu.shape, np.float32)
    prob[:, b.y0:b.y1, b.x0:b.x1] = predict(model, crop, config, batch_size)
    return prob


def to_native(prob: np.ndarray, scan: Scan) -> np.ndarray:
    """The canonical probability resampled linearly onto the input's grid, (z, y, x). The
    canonical grid may end up to half a voxel short of the input's far edges (its size is
    rounded to whole voxels): native voxels there take the nearest canonical value."""
    native = sitk.Resample(scan.canonical.image(prob), scan.native.image(), sitk.Transform(),
                           sitk.sitkLinear, 0.0, sitk.sitkFloat32, True)
    return sitk.GetArrayFromImage(native)


def _predict_slices(model: torch.nn.Module, crop: np.ndarray, config: Config,
                    batch_size: int) -> np.ndarray:
    """Every axial slice with its context slices, as training cut them (resize, normalise)."""
    device, dtype = where(model)
    out = np.empty(crop.shape, np.float32)
    for zs, images in slice_batches(crop, config, batch_size):
        logits = model(torch.from_numpy(images).to(device, dtype)).float()
        lung = torch.softmax(logits, 1)[:, 1].cpu().numpy()
        out[zs] = resize_planes(lung, crop.shape[1:], "bilinear")
    return out


def slice_batches(crop: np.ndarray, config: Config,
                  batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The axial slices of a (z, y, x) HU crop as a 2-D model saw them in training: each
    with its ``data.context_slices`` neighbours as channels, resized to ``data.slice_size``
    and normalised; (slice indices, images of shape (B, 2k + 1, *slice_size)) per batch."""
    k = config.data.context_slices
    for start in range(0, len(crop), batch_size):
        zs = np.arange(start, min(start + batch_size, len(crop)))
        planes = np.clip(zs[:, None] + np.arange(-k, k + 1), 0, len(crop) - 1)
        stack = crop[planes.ravel()].astype(np.float32)
        resized = resize_planes(stack, tuple(config.data.slice_size), "bilinear")
        yield zs, normalise_hu(resized, config.data.hu_norm).reshape(len(zs), 2 * k + 1,
                                                                    *resized.shape[1:])


def _predict_volume(model: torch.nn.Module, crop: np.ndarray, config: Config,
                    batch_size: int) -> np.ndarray:
    """Sliding-window patches of ``data.patch_size``, blended with Gaussian weights."""
    device, dtype = where(model)
    image = torch.from_numpy(normalise_hu(crop, config.data.hu_norm))[None, None]
    logits = sliding_window_inference(image.to(device), config.data.patch_size, batch_size,
                                      lambda x: model(x.to(dtype)).float(),
                                      overlap=SW_OVERLAP, mode="gaussian",
                                      cval=air(config.data.hu_norm))
    return torch.softmax(logits, 1)[0, 1].cpu().numpy()
