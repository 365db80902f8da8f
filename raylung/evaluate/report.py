"""Summaries of per-case scores: a tidy table, a console table and a PNG of the worst cases."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from raylung.plots import plt, save_figure
from raylung.preprocess.thorax_crop import box_slices

_HIGHER_IS_BETTER = ("dice", "iou", "sensitivity", "precision", "nsd", "rim_dice",
                     "lesion_inclusion")
_DISTANCES = ("hd95_mm", "assd_mm")
_METRICS = ("dice", "iou", "sensitivity", "precision", "hd95_mm", "assd_mm", "nsd", "rim_dice",
            "volume_pred_ml", "volume_ref_ml", "volume_diff_ml", "volume_diff_pct",
            "lesion_inclusion")
_LESION_COUNTS = ["lesion_voxels", "lesion_included_voxels"]
_PLOTTED = ("dice", "hd95_mm", "assd_mm", "nsd", "rim_dice")
SUMMARY_COLUMNS = ["label", "metric", "mean", "sd", "median", "worst", "worst_case", "cases"]

Volumes = Callable[[str], tuple[np.ndarray | None, np.ndarray, np.ndarray]]


def summarise_scores(per_case: pd.DataFrame) -> pd.DataFrame:
    """One row per (label, metric) over the cases that have a value, NaN-free.

    The worst case is the lowest overlap, the largest distance or the largest |volume
    difference| (volumes name the case with the largest |volume_diff_ml|); sd is 0 for one case.
    "lesion_inclusion_pooled" is sum(included)/sum(lesion voxels) in mean, median and worst;
    "empty_prediction" the share of cases whose prediction is empty against a non-empty
    reference (their distances are the volume's diagonal, which the means include).
    """
    rows = []
    for label, table in per_case.groupby("label", sort=False):
        for metric in _METRICS:
            if metric in table and table[metric].notna().any():
                rows.append(_summary_row(str(label), metric, table[table[metric].notna()]))
        if set(_LESION_COUNTS) <= set(table) and table[_LESION_COUNTS[0]].sum() > 0:
            rows.append(_pooled_lesion_row(str(label), table.dropna(subset=_LESION_COUNTS)))
        if {"volume_pred_ml", "volume_ref_ml"} <= set(table):
            rows.append(_empty_prediction_row(str(label), table))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _summary_row(label: str, metric: str, table: pd.DataFrame) -> dict[str, object]:
    """Statistics of one metric over the cases of ``table`` (all with a value)."""
    values = table[metric].astype(float)
    worst = _badness(table, metric).idxmax()
    return {"label": label, "metric": metric, "mean": values.mean(),
            "sd": values.std(ddof=1) if len(values) > 1 else 0.0, "median": values.median(),
            "worst": values[worst], "worst_case": str(table.at[worst, "case"]),
            "cases": len(values)}


def _badness(table: pd.DataFrame, metric: str) -> pd.Series:
    """Per case, larger is worse: the negated overlap, the distance or an absolute error."""
    if metric in _HIGHER_IS_BETTER:
        return -table[metric].astype(float)
    if metric in _DISTANCES:
        return table[metric].astype(float)
    key = "volume_diff_ml" if metric in ("volume_pred_ml", "volume_ref_ml") else metric
    return table[key].astype(float).abs()


def _pooled_lesion_row(label: str, table: pd.DataFrame) -> dict[str, object]:
    """Lesion voxels inside the predicted lung over all lesion voxels of all cases."""
    lesions = table[table["lesion_voxels"] > 0]
    pooled = float(lesions["lesion_included_voxels"].sum() / lesions["lesion_voxels"].sum())
    return {"label": label, "metric": "lesion_inclusion_pooled", "mean": pooled, "sd": 0.0,
            "median": pooled, "worst": pooled, "worst_case": "pooled", "cases": len(lesions)}


def _empty_prediction_row(label: str, table: pd.DataFrame) -> dict[str, object]:
    """The share of cases with nothing predicted where the reference has this label."""
    empty = (table["volume_pred_ml"] == 0) & (table["volume_ref_ml"] > 0)
    share = float(empty.mean())
    first = str(table.loc[empty, "case"].iloc[0]) if empty.any() else "none"
    return {"label": label, "metric": "empty_prediction", "mean": share, "sd": 0.0,
            "median": share, "worst": share, "worst_case": first, "cases": len(table)}


def format_summary(summary: pd.DataFrame,
                   metrics: Sequence[str] = ("dice", "hd95_mm", "rim_dice", "nsd",
                                             "volume_diff_pct", "lesion_inclusion_pooled")) -> str:
    """A fixed-width console table of the chosen metrics, one line per (label, metric)."""
    shown = summary[summary["metric"].isin(metrics)]
    if shown.empty:
        return "no scores"
    lines = [f"{'label':<6} {'metric':<24} {'mean':>9} {'sd':>9} {'median':>9} {'worst':>9}  "
             f"{'worst case':<20} {'cases':>5}"]
    for row in shown.itertuples(index=False):
        lines.append(f"{row.label:<6} {row.metric:<24} {row.mean:>9.4g} {row.sd:>9.4g} "
                     f"{row.median:>9.4g} {row.worst:>9.4g}  {row.worst_case:<20} {row.cases:>5}")
    empty = summary[(summary["metric"] == "empty_prediction") & (summary["mean"] > 0)]
    for row in empty.itertuples(index=False):
        lines.append(f"{row.label}: {round(row.mean * row.cases)} of {row.cases} cases with an "
                     f"empty prediction (first {row.worst_case}): their HD95 and ASSD are the "
                     "volume's diagonal, which the mean includes")
    return "\n".join(lines)


def save_report(per_case: pd.DataFrame, volumes: Volumes, path: str | Path,
                worst: int = 3) -> Path:
    """PNG: a box plot per main metric, then axial and coronal slices of the worst cases by Dice.

    ``volumes(case)`` gives (image or None, reference, prediction) as (z, y, x) arrays; slices
    go through the middle of the reference, in voxel units (z upwards on the coronal view).
    """
    lung = per_case[per_case["label"].astype(str) == "lung"]
    worst_rows = lung.nsmallest(worst, "dice") if "dice" in lung else lung.iloc[:0]
    fig = plt.figure(figsize=(15, 3.2 * (1 + len(worst_rows))))
    grid = fig.add_gridspec(1 + len(worst_rows), 2 * len(_PLOTTED))
    for i, metric in enumerate(_PLOTTED):
        _box_plot(fig.add_subplot(grid[0, 2 * i:2 * i + 2]), per_case, metric)
    half = len(_PLOTTED)
    for row, (case, score) in enumerate(zip(worst_rows["case"], worst_rows["dice"]), start=1):
        image, ref, pred = volumes(str(case))
        for column, view in enumerate(("axial", "coronal")):
            ax = fig.add_subplot(grid[row, half * column:half * (column + 1)])
            _draw_slice(ax, image, ref, pred, view)
            ax.set_title(f"{case} {view} (dice {score:.3f})", fontsize=9)
    fig.suptitle("reference (green), prediction (red)", fontsize=10)
    return save_figure(fig, path)


def _box_plot(ax: plt.Axes, per_case: pd.DataFrame, metric: str) -> None:
    """One box per label of ``metric`` across cases."""
    ax.set_title(metric, fontsize=9)
    if metric not in per_case or per_case[metric].isna().all():
        ax.axis("off")
        return
    groups = per_case.dropna(subset=[metric]).groupby("label", sort=False)[metric]
    ax.boxplot([values.astype(float) for _, values in groups],
               tick_labels=[str(label) for label, _ in groups])


def _draw_slice(ax: plt.Axes, image: np.ndarray | None, ref: np.ndarray, pred: np.ndarray,
                view: str) -> None:
    """Grey image (or black) with the reference and prediction contours of one plane."""
    box = box_slices(ref) or box_slices(pred) or tuple(slice(0, n) for n in ref.shape)
    z, y = ((part.start + part.stop - 1) // 2 for part in box[:2])
    plane = z if view == "axial" else (slice(None), y)
    grey = np.zeros(ref[plane].shape) if image is None else image[plane].astype(float)
    low, high = np.percentile(grey, [1, 99])
    ax.imshow(grey, cmap="gray", vmin=low, vmax=max(high, low + 1e-6),
              origin="upper" if view == "axial" else "lower")
    for mask, colour in ((ref, "lime"), (pred, "red")):
        inside = (mask[plane] != 0).astype(np.uint8)
        if 0 < inside.sum() < inside.size:
            ax.contour(inside, levels=[0.5], colors=colour, linewidths=0.8)
    ax.axis("off")
