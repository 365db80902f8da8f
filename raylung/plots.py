"""PNGs a person looks at: training samples (image, lung, band), GAN translations of crops
and of whole scans, segmentations and a run's learning curves."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from raylung.io.write import write_bytes  # noqa: E402


def save_sample_grid(batch: dict[str, np.ndarray], path: str | Path, columns: int = 4) -> Path:
    """Save up to 2 x ``columns`` samples of a batch; 3-D patches show their middle slice."""
    count = min(len(batch["image"]), 2 * columns)
    rows = -(-count // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, ax in enumerate(axes.ravel()[:count]):
        image, lung, band = _planes(batch, i)
        ax.imshow(image, cmap="gray", vmin=-1, vmax=1)
        ax.imshow(np.ma.masked_where(band == 0, band), cmap="autumn", alpha=0.35)
        if lung.any():
            ax.contour(lung, levels=[0.5], colors="lime", linewidths=0.8)
        ax.set_title(f"{batch['case_id'][i]} {batch['domain'][i][:4]} z{batch['position'][i][0]}",
                     fontsize=8)
    fig.suptitle("image (normalised HU), lung contour (green), surround band (orange)", fontsize=9)
    return save_figure(fig, path)


def save_synthesis_grid(columns: dict[str, np.ndarray], band: np.ndarray,
                        path: str | Path, rows: int = 4) -> Path:
    """One row per sample: each named image column (normalised), then the surround band.

    ``columns`` maps a title to a (B, C, *spatial) array; |G(h) - h| is best given in [0, 1].
    """
    count = min(rows, len(band))
    names = [*columns, "surround band"]
    fig, axes = plt.subplots(count, len(names), figsize=(2.6 * len(names), 2.6 * count),
                             squeeze=False)
    for i in range(count):
        for j, name in enumerate(names):
            ax = axes[i, j]
            ax.axis("off")
            if name == "surround band":
                ax.imshow(_middle(band[i]), cmap="magma", vmin=0, vmax=1)
            else:
                low = 0 if name.startswith("|") else -1
                ax.imshow(_middle(columns[name][i][columns[name].shape[1] // 2]), cmap="gray",
                          vmin=low, vmax=1)
            if i == 0:
                ax.set_title(name, fontsize=9)
    return save_figure(fig, path)


def save_scan_synthesis(healthy: np.ndarray, diseased: np.ndarray, spacing: Sequence[float],
                        path: str | Path) -> Path:
    """A whole scan before and after G (HU, (z, y, x); ``spacing`` x, y, z in mm): three axial
    slices where G changed most and a coronal cut through the same place, with |G(h) - h|."""
    change = np.abs(diseased.astype(np.float32) - healthy)
    per_slice = change.sum(axis=(1, 2))
    levels = np.argsort(per_slice)[::-1][: max(1, len(per_slice) // 4)]
    zs = sorted(np.quantile(levels, [0.1, 0.5, 0.9]).round().astype(int))
    y = int(np.argmax(change.sum(axis=(0, 2))))
    views = [(lambda a, z=z: a[z], 1.0, f"axial z {z}") for z in zs]
    views.append((lambda a: a[::-1, y], spacing[2] / spacing[0], f"coronal y {y}"))
    rows = {"h": (healthy, "gray", -1000, 400), "G(h)": (diseased, "gray", -1000, 400),
            "|G(h) - h| HU": (change, "magma", 0, 600)}
    fig, axes = plt.subplots(len(rows), len(views), figsize=(3 * len(views), 3 * len(rows)),
                             squeeze=False)
    for i, (name, (array, cmap, low, high)) in enumerate(rows.items()):
        for j, (cut, aspect, title) in enumerate(views):
            axes[i, j].imshow(cut(array), cmap=cmap, vmin=low, vmax=high, aspect=aspect)
            axes[i, j].axis("off")
            axes[i, j].set_title(f"{name}, {title}", fontsize=8)
    return save_figure(fig, path)


def _planes(batch: dict[str, np.ndarray], i: int) -> tuple[np.ndarray, ...]:
    """The 2-D view of sample ``i``: centre channel of a slice, middle slice of a patch."""
    image, lung, band = batch["image"][i], batch["lung"][i], batch["surround"][i]
    return _middle(image[image.shape[0] // 2]), _middle(lung), _middle(band)


def _middle(array: np.ndarray) -> np.ndarray:
    """A 2-D array as is; the middle axial slice of a 3-D one."""
    return array[array.shape[0] // 2] if array.ndim == 3 else array


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """Lay out, write atomically as PNG (a reader never sees half a picture) and close."""
    fig.tight_layout()
    write_bytes(str(path), _png(fig))
    return Path(path)


def _png(fig: plt.Figure) -> bytes:
    """The figure as PNG bytes; the figure is closed even when drawing fails."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=90)
    finally:
        plt.close(fig)
    return buffer.getvalue()


def save_segmentation_grid(images: Sequence[np.ndarray], truths: Sequence[np.ndarray],
                           preds: Sequence[np.ndarray], path: str | Path, count: int = 8) -> Path:
    """Up to ``count`` samples: image with the true lung (green) and the predicted lung (red).

    Each image is (C, *spatial), each mask (*spatial), sizes may differ between samples; 3-D
    shows the middle slice."""
    count = min(count, len(images))
    columns = min(count, 4)
    rows = -(-count // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, ax in enumerate(axes.ravel()[:count]):
        ax.imshow(_middle(images[i][len(images[i]) // 2]), cmap="gray", vmin=-1, vmax=1)
        for mask, colour in ((truths[i], "lime"), (preds[i], "red")):
            if _middle(mask).any():
                ax.contour(_middle(mask), levels=[0.5], colors=colour, linewidths=0.8)
    fig.suptitle("true lung (green), predicted lung (red)", fontsize=9)
    return save_figure(fig, path)


def curves_png(table: pd.DataFrame) -> bytes:
    """PNG of a run's metrics table against ``step``: losses on the left, the validation
    scores of its checkpoints on the right."""
    fig, (losses, scores) = plt.subplots(1, 2, figsize=(11, 4))
    for column in table.columns:
        points = table[["step", column]].dropna()
        if column.startswith("loss"):
            losses.plot(points["step"], points[column], label=column)
        elif column.startswith("val_"):
            scores.plot(points["step"], points[column], marker="o", label=column)
    for ax, title in ((losses, "training losses"), (scores, "validation")):
        ax.set_xlabel("step")
        ax.set_title(title, fontsize=10)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)
