"""The Python API of ``raylung segment``: a trained ``segmenter.pt`` applied to SimpleITK images.

    seg = Segmenter("demo_out/runs/demo_seg/best/checkpoint_.../segmenter.pt")  # as printed
    result = seg(sitk.ReadImage("scan.nii.gz"))       # no Ray needed, e.g. in a notebook
    sitk.WriteImage(result.mask, "lung.nii.gz")        # on the scan's exact grid, 1 = lung

The batch path (raylung/segment/batch.py) runs the same three steps, ``prepare_scan``,
``Segmenter.predict`` and ``finish``, in Ray Data stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from raylung.models.placement import to_device
from raylung.networks import load_segmenter
from raylung.segment.postprocess import clean_mask, label_sides
from raylung.segment.scan import Scan, predict_lung, prepare_scan, to_native


@dataclass
class Segmentation:
    """A scan's lung mask (uint8) and lung probability (float32), both on the scan's grid."""

    mask: sitk.Image
    probability: sitk.Image


class Segmenter:
    """A trained segmenter with the preprocessing of its own training config."""

    def __init__(self, model: str | Path, device: str = "cpu", batch_size: int = 8,
                 storage_options: dict | None = None) -> None:
        segmenter, self.config = load_segmenter(model, storage_options)
        self.model = to_device(segmenter, device)
        self.batch_size = batch_size

    def prepare(self, image: sitk.Image, source: str = "image") -> Scan:
        """The scan as the model saw its training data; ``source`` names it in errors."""
        return prepare_scan(image, self.config, source)

    def predict(self, scan: Scan) -> np.ndarray:
        """Lung probability on the canonical grid."""
        return predict_lung(self.model, scan, self.config, self.batch_size)

    def __call__(self, image: sitk.Image, postprocess: bool = True,
                 sides: bool = False) -> Segmentation:
        """The lung mask and probability of ``image`` on its own grid (``postprocess``: only
        the large components, holes filled, nothing outside the body; ``sides``: left and
        right labelled apart)."""
        scan = self.prepare(image)
        return finish(self.predict(scan), scan, postprocess, sides)


def finish(prob: np.ndarray, scan: Scan, postprocess: bool = True,
           sides: bool = False) -> Segmentation:
    """Map a canonical probability onto the scan's grid; threshold, clean, label sides.
    Post-processing also drops what lies outside the body (air the box's corners hold)."""
    native = to_native(prob * scan.body if postprocess else prob, scan)
    mask = native >= 0.5
    if postprocess:
        mask = clean_mask(mask)
    labels = label_sides(mask, scan.native) if sides else mask.astype(np.uint8)
    return Segmentation(scan.native.image(labels), scan.native.image(native))
