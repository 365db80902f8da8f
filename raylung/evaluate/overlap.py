"""Overlap scores of binary masks (Dice, IoU) and the lung-rim band where opacities live."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from raylung.preprocess.surround import surround_band


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two binary masks; 1.0 when both are empty.

    >>> dice(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
    0.6666666666666666
    """
    a, b = a.astype(bool), b.astype(bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two binary masks; 1.0 when both are empty.

    >>> iou(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
    0.5
    """
    a, b = a.astype(bool), b.astype(bool)
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


def rim_band(lung: np.ndarray, spacing: Sequence[float], width_mm: float) -> np.ndarray:
    """Voxels within ``width_mm`` of the lung border, inside or outside the lung (bool)."""
    lung = lung.astype(np.uint8)
    return (surround_band(lung, spacing, width_mm).astype(bool)
            | surround_band(1 - lung, spacing, width_mm).astype(bool))


def rim_dice(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float],
             rim_mm: float) -> float:
    """Dice inside the band of ``rim_mm`` around the true border; a band that holds no voxel
    is an error (Dice of two empty sets would score it 1)."""
    rim = rim_band(truth, spacing, rim_mm)
    if not rim.any():
        raise ValueError(f"a rim band of {rim_mm:g} mm holds no voxel at spacing "
                         f"{' x '.join(f'{s:g}' for s in spacing)} mm: widen it")
    return dice(pred.astype(bool) & rim, truth.astype(bool) & rim)
