"""Segmenter validation on pathological val cases: whole scans in their native grid.

At each checkpoint rank 0 segments the source scan of up to ``seg.val_cases`` pathological val
cases with the current weights, by the code of ``raylung segment`` (the training
preprocessing, every slice or a sliding window, back onto the scan's grid, post-processing), and
scores the masks with ``raylung evaluate``'s code against the source lung masks (as ingest
reads them, on the scan's grid). The scans are read and prepared once per run; the test split
is never touched here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch

from raylung.config import Config
from raylung.data.pipeline import select_cases
from raylung.evaluate.scores import score_case
from raylung.io.read import read_mask_on, read_volume
from raylung.plots import save_segmentation_grid
from raylung.preprocess.normalise import normalise_hu
from raylung.segment.scan import Scan, predict_lung, prepare_scan
from raylung.segment.segmenter import finish
from raylung.store.case_store import CaseStore

SCORES = ("dice", "iou", "rim_dice", "hd95_mm", "nsd")


class ScanValidator:
    """The prepared val scans and their reference masks; called with a model at checkpoints."""

    def __init__(self, config: Config) -> None:
        store = CaseStore(config.data.store, config.storage.storage_options)
        cases = select_cases(store, config.data, "val", "pathological", labelled_only=True)
        self.config = config
        self.cases = [self._load(row) for row in cases.head(config.seg.val_cases).itertuples()]

    def _load(self, row: Any) -> tuple[Scan, np.ndarray, int, np.ndarray]:
        """(scan, reference lung, its middle slice, that slice of the normalised image)."""
        image = read_volume(row.source_image)
        lung = sitk.GetArrayFromImage(read_mask_on(row.source_lung, image,
                                                   self.config.ingest.lung_labels)) != 0
        middle = int(np.flatnonzero(lung.any(axis=(1, 2))).mean())
        picture = normalise_hu(sitk.GetArrayViewFromImage(image)[middle], self.config.data.hu_norm)
        return prepare_scan(image, self.config, row.source_image), lung, middle, picture

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module, folder: Path) -> dict[str, float]:
        """Mean scores over the val scans (``val_dice``, ...) and a picture of each."""
        rows, pictures = [], []
        for scan, lung, middle, picture in self.cases:
            prob = predict_lung(model, scan, self.config, self.config.seg.sw_batch_size)
            mask = sitk.GetArrayFromImage(finish(prob, scan).mask)
            spacing = scan.native.spacing[::-1]
            rows.append(score_case(mask, lung, spacing, self.config.seg.rim_mm)[0])
            pictures.append((picture[None], lung[middle], mask[middle]))
        save_segmentation_grid(*zip(*pictures), folder / "validation.png")
        return {f"val_{k.removesuffix('_mm')}": float(np.mean([r[k] for r in rows]))
                for k in SCORES}
