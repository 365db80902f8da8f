"""Per-case segmentation scores of whole label maps, in millimetres: overlap, surface, volume.

Surface distances come from MONAI (edge voxels by 6-neighbour erosion, exact Euclidean distances
between voxel centres at the given spacing), found once for HD95 (MONAI's: the larger of the two
directed 95th percentiles), ASSD and surface Dice. Both masks are cropped to the box of their
union plus ``_MARGIN`` voxels first (the scores do not change). On this 2-core machine a
512x512x300 pair of lung masks (0.7 x 0.7 x 1 mm, 12.2 million lung voxels) takes about 10 s
as one label: 1.9 s for the surface scores (MONAI's three metric functions, each finding the
distances again, take 5.9 s), most of the rest for the rim band's distance transforms
(benchmarks/evaluate_scores.py); each further label costs as much again.

Empty masks never crash and never give NaN; each emits one warning naming the label:

* both empty: dice, iou, sensitivity, precision, nsd, rim_dice 1; hd95_mm, assd_mm 0.
* one empty: dice, iou, nsd, rim_dice 0; sensitivity and precision 0 (the one the formula
  defines is 0, the 0/0 one is set to 0 too); hd95_mm and assd_mm the volume's diagonal in mm.
* volume_diff_pct is relative to the reference volume: 0 when both are empty, left out of the
  row when only the reference is empty; lesion_inclusion is left out when the lesion is empty.
  Summaries skip left-out values (pool lesions with lesion_voxels, lesion_included_voxels).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics.utils import get_edge_surface_distance

from raylung.evaluate.overlap import dice, iou, rim_dice
from raylung.preprocess.thorax_crop import box_slices

Row = dict[str, float | str]
_MARGIN = 2  # voxels kept around the union: MONAI's edges need 1, the rim band's inside needs 1


class CaseWarning(UserWarning):
    """Something about one case's masks a reader of its scores must know."""


class EmptyMaskWarning(CaseWarning):
    """A label's prediction or reference (or both) has no voxels; the scores take fixed values."""


def score_case(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], rim_mm: float = 3.0,
               tolerance_mm: float = 2.0, lesion: np.ndarray | None = None) -> list[Row]:
    """One row for the whole lung (any non-zero label), one per label value when prediction
    and reference hold the same several labels. A binary reference is one lung whatever the
    prediction's labels (``segment --sides``); a reference of several labels against other
    labels (a binary mask, sides against lobes) is one lung too, with a CaseWarning.

    Arrays are (z, y, x) on one grid, ``spacing`` (z, y, x) in mm; ``lesion`` a binary mask whose
    voxel counts and inclusion in the predicted lung go into the "lung" row.
    """
    _check_inputs(pred, ref, spacing, lesion)
    spacing = tuple(float(s) for s in spacing)
    diagonal = float(np.linalg.norm(np.asarray(pred.shape) * spacing))
    lesion_row = {} if lesion is None else lesion_scores(pred != 0, lesion != 0)
    pred, ref = _crop_to_union(pred, ref)
    rows = [{"label": "lung", **_label_scores(pred != 0, ref != 0, spacing, "lung", rim_mm,
                                              tolerance_mm, diagonal), **lesion_row}]
    for value in _paired_labels(pred, ref):
        pair = _crop_to_union(pred == value, ref == value)
        rows.append({"label": str(value), **_label_scores(
            *pair, spacing, str(value), rim_mm, tolerance_mm, diagonal)})
    return rows


def _paired_labels(pred: np.ndarray, ref: np.ndarray) -> list[int]:
    """The labels scored one by one (see :func:`score_case`)."""
    values = [sorted(int(v) for v in np.unique(m) if v) for m in (pred, ref)]
    if len(values[1]) < 2 or values[0] == values[1]:
        return values[1] if len(values[1]) > 1 else []
    warnings.warn(f"labels {values[0]} of the prediction are not the reference's {values[1]}: "
                  "scored as one lung", CaseWarning, stacklevel=3)
    return []


def lesion_scores(lung: np.ndarray, lesion: np.ndarray) -> Row:
    """Lesion voxels, those inside ``lung``, and their share (left out for an empty lesion)."""
    total = int(np.count_nonzero(lesion))
    included = int(np.count_nonzero(lesion & lung))
    row: Row = {"lesion_voxels": total, "lesion_included_voxels": included}
    if total:
        row["lesion_inclusion"] = included / total
    return row


def _check_inputs(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float],
                  lesion: np.ndarray | None) -> None:
    """One-line ValueErrors for arrays off the reference's shape or a spacing of wrong length."""
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    if lesion is not None and lesion.shape != ref.shape:
        raise ValueError(f"lesion shape {lesion.shape} differs from reference shape {ref.shape}")
    if len(spacing) != ref.ndim:
        raise ValueError(f"spacing has {len(spacing)} values for a {ref.ndim}-D mask")


def _crop_to_union(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays cut to the box of their non-zero voxels plus ``_MARGIN`` (as is if empty)."""
    box = box_slices((pred != 0) | (ref != 0), _MARGIN)
    return (pred, ref) if box is None else (pred[box], ref[box])


def _label_scores(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...], label: str,
                  rim_mm: float, tolerance_mm: float, diagonal: float) -> Row:
    """All scores of one binary pair; empty masks take the documented values and warn."""
    n_pred, n_ref = int(np.count_nonzero(pred)), int(np.count_nonzero(ref))
    if n_pred and n_ref:
        scores = _overlap_scores(pred, ref, n_pred, n_ref)
        scores.update(_surface_scores(pred, ref, spacing, tolerance_mm))
        scores["rim_dice"] = rim_dice(pred, ref, spacing, rim_mm)
    else:
        scores = _empty_scores(n_pred, n_ref, label, diagonal)
    return {**scores, **_volume_scores(n_pred, n_ref, spacing)}


def _overlap_scores(pred: np.ndarray, ref: np.ndarray, n_pred: int, n_ref: int) -> Row:
    """Dice, IoU, sensitivity and precision of two non-empty masks."""
    true_positives = int(np.count_nonzero(pred & ref))
    return {"dice": dice(pred, ref), "iou": iou(pred, ref),
            "sensitivity": true_positives / n_ref, "precision": true_positives / n_pred}


def _surface_scores(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...],
                    tolerance_mm: float) -> Row:
    """HD95, average symmetric surface distance and surface Dice of two non-empty masks, as
    MONAI's three metrics compute them from its edge distances, which are found once here
    rather than once per metric (a third of the time)."""
    with warnings.catch_warnings():  # MONAI 1.5+ warns about its own internal call
        warnings.filterwarnings("ignore", ".*always_return_as_numpy", FutureWarning)
        _, (to_ref, to_pred), _ = get_edge_surface_distance(
            torch.from_numpy(pred), torch.from_numpy(ref), spacing=list(spacing), symmetric=True)
    both = torch.cat([to_ref, to_pred])
    hd95 = max(torch.quantile(d, 0.95) for d in (to_ref, to_pred))
    return {"hd95_mm": float(hd95), "assd_mm": float(both.mean()),
            "nsd": float((both <= tolerance_mm).sum() / len(both))}


def _empty_scores(n_pred: int, n_ref: int, label: str, diagonal: float) -> Row:
    """The fixed scores of the module docstring, with a warning naming the label."""
    if not n_pred and not n_ref:
        warnings.warn(f"label {label}: empty prediction and empty reference", EmptyMaskWarning,
                      stacklevel=4)
        overlap, distance = 1.0, 0.0
    else:
        warnings.warn(f"label {label}: " + ("empty prediction" if n_ref else "empty reference"),
                      EmptyMaskWarning, stacklevel=4)
        overlap, distance = 0.0, diagonal
    return {"dice": overlap, "iou": overlap, "sensitivity": overlap, "precision": overlap,
            "hd95_mm": distance, "assd_mm": distance, "nsd": overlap, "rim_dice": overlap}


def _volume_scores(n_pred: int, n_ref: int, spacing: tuple[float, ...]) -> Row:
    """Volumes in ml and their difference (pred - ref), absolute and relative to ref."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    pred_ml, ref_ml = n_pred * voxel_ml, n_ref * voxel_ml
    row: Row = {"volume_pred_ml": pred_ml, "volume_ref_ml": ref_ml,
                "volume_diff_ml": pred_ml - ref_ml}
    if n_ref or not n_pred:
        row["volume_diff_pct"] = 100.0 * (n_pred - n_ref) / n_ref if n_ref else 0.0
    return row
