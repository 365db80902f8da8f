"""A trained healthy -> pathological G applied to whole CT scans: disease drawn into the lungs,
every other voxel kept, on the scan's own grid.

The scan is brought onto the canonical grid as ``segment`` brings it (raylung/segment/scan.py),
and G sees what it saw in training: 2-D, every axial slice through the lungs (the air inside
the body, as ingest estimates an unlabelled case's lung range), cut to the thorax box and
resized to ``data.slice_size``; 3-D, sliding windows of ``data.patch_size`` over the same
slices of the box. What comes back is G's *change*, in HU, resampled linearly onto the input's
grid and added to the input's own voxels: where G changes nothing the output is the input, and
the resizes blur only the change, never the scan. G's noise fields (where it draws lesions)
come from ``seed``; in 2-D they also vary smoothly from slice to slice, so a lesion continues
in z.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from monai.inferers import sliding_window_inference

from raylung.data.sample import resize_planes
from raylung.errors import InputError
from raylung.models.generator import noise_grid, smooth_noise, upsample_noise
from raylung.models.placement import to_device, where
from raylung.networks import load_generator
from raylung.preprocess.normalise import normalise_hu
from raylung.preprocess.thorax_crop import Box, estimated_lung_box
from raylung.seeds import text_seed
from raylung.segment.scan import (SW_OVERLAP, Scan, air, prepare_scan, slice_batches,
                                  to_native)

HU_MIN, HU_MAX = -32768, 32767  # the written scan is int16, as CT is stored


class Synthesiser:
    """A trained G (``generator_h2p.pt``) with the preprocessing of its own training config."""

    def __init__(self, model: str | Path, device: str = "cpu", batch_size: int = 8,
                 storage_options: dict | None = None) -> None:
        generator, self.config = load_generator(model, storage_options)
        self.model = to_device(generator, device)
        self.batch_size = batch_size

    def __call__(self, image: sitk.Image, seed: int = 0, source: str = "image") -> sitk.Image:
        """``image`` with G's disease drawn in: int16 HU on its own grid; ``source`` names it
        in errors."""
        scan = prepare_scan(image, self.config, source)
        return add_change(image, self.change(scan, seed, source), scan)

    @torch.no_grad()
    def change(self, scan: Scan, seed: int = 0, source: str = "image") -> np.ndarray:
        """G's change in HU on the canonical grid (float32), zero outside the lungs' slices
        and the thorax box."""
        lungs = estimated_lung_box(scan.hu, scan.body)
        if lungs is None:
            raise InputError(source, "no air inside the body: no lung to draw disease into")
        generator = torch.Generator().manual_seed(seed)
        box = Box(lungs.z0, lungs.z1, scan.box.y0, scan.box.y1, scan.box.x0, scan.box.x1)
        if self.config.data.mode == "slice2d":
            # the lungs' first and last slices get their real neighbours as context channels,
            # as in training, not copies of themselves
            k = self.config.data.context_slices
            z0, z1 = max(box.z0 - k, 0), min(box.z1 + k, len(scan.hu))
            wider = scan.hu[z0:z1, box.y0:box.y1, box.x0:box.x1]
            delta = self._slices(wider, self._cells_z(wider.shape, scan.canonical.spacing),
                                 generator)[box.z0 - z0:box.z1 - z0]
        else:
            delta = self._volume(scan.hu[box.slices()], generator)
        change = np.zeros(scan.hu.shape, np.float32)
        lo, hi = self.config.data.hu_norm
        change[box.slices()] = delta * (hi - lo) / 2  # normalised units -> HU
        return change

    def _slices(self, crop: np.ndarray, cells_z: float,
                generator: torch.Generator) -> np.ndarray:
        """G's change of every slice of a (z, y, x) crop, in normalised units, crop-sized."""
        device, dtype = where(self.model)
        k, size = self.config.data.context_slices, tuple(self.config.data.slice_size)
        channels = self.model.noise_channels
        noise = plane_noise(len(crop), channels, size, cells_z, generator) if channels else None
        out = np.empty(crop.shape, np.float32)
        for zs, images in slice_batches(crop, self.config, self.batch_size):
            x = torch.from_numpy(images).to(device, dtype)
            fields = None if noise is None else noise[zs].to(device, dtype)
            delta = (self.model(x, fields) - x)[:, k].float().cpu().numpy()
            out[zs] = resize_planes(delta, crop.shape[1:], "bilinear")
        return out

    def _cells_z(self, shape: tuple[int, ...], spacing: tuple[float, ...]) -> float:
        """Slices per noise cell: a cell as long in z as it is wide in a resized slice
        (``spacing``: the canonical grid's, x y z)."""
        spacing_x, spacing_y, spacing_z = spacing
        size = self.config.data.slice_size
        pixel_mm = (shape[1] * spacing_y / size[0] + shape[2] * spacing_x / size[1]) / 2
        return max(pixel_mm * size[0] / noise_grid(tuple(size))[0] / spacing_z, 1.0)

    def _volume(self, crop: np.ndarray, generator: torch.Generator) -> np.ndarray:
        """G's change of a (z, y, x) crop in sliding windows; the noise fields are drawn once
        for the whole crop and travel beside the image, so overlapping windows agree."""
        device, dtype = where(self.model)
        x = torch.from_numpy(normalise_hu(crop, self.config.data.hu_norm))[None, None]
        channels = self.model.noise_channels
        if channels:
            x = torch.cat([x, smooth_noise(x, channels, generator)], 1)

        def change(window: torch.Tensor) -> torch.Tensor:
            image, fields = window[:, :1].to(dtype), window[:, 1:].to(dtype)
            return (self.model(image, fields if channels else None) - image).float()

        delta = sliding_window_inference(x.to(device), self.config.data.patch_size, self.batch_size,
                                         change, overlap=SW_OVERLAP, mode="gaussian",
                                         cval=air(self.config.data.hu_norm))
        return delta[0, 0].cpu().numpy()


def plane_noise(count: int, channels: int, size: tuple[int, int], cells_z: float,
                generator: torch.Generator) -> torch.Tensor:
    """(count, channels, *size) noise fields for consecutive slices. Each is a training field
    (N(0, 1) cells, interpolated in-plane); between cell planes ``cells_z`` slices apart the
    cells blend as cos(t) a + sin(t) b, which keeps them N(0, 1), so the fields vary smoothly
    in z at the scale they vary in-plane."""
    knots = torch.randn(int(count / cells_z) + 2, channels, *noise_grid(size),
                        generator=generator)
    position = torch.arange(count, dtype=torch.float64) / cells_z
    index = position.floor().long()
    angle = ((position - index) * math.pi / 2).float().view(-1, 1, 1, 1)
    coarse = torch.cos(angle) * knots[index] + torch.sin(angle) * knots[index + 1]
    return upsample_noise(coarse, size)


def add_change(image: sitk.Image, change: np.ndarray, scan: Scan) -> sitk.Image:
    """``image`` plus G's ``change`` (HU on ``scan``'s canonical grid, resampled linearly onto
    the image's grid), rounded to int16 HU."""
    hu = sitk.GetArrayFromImage(image).astype(np.float32) + to_native(change, scan)
    out = sitk.GetImageFromArray(np.clip(np.rint(hu), HU_MIN, HU_MAX).astype(np.int16))
    out.CopyInformation(image)
    return out


def scan_seed(seed: int, name: str) -> int:
    """The noise seed of the scan called ``name`` in a run of ``--seed seed``: each scan of a
    batch gets lesions of its own, the same in every run."""
    return text_seed(f"{seed}:{name}")
