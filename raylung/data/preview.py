"""A PNG grid of samples as the trainer sees them: image, lung contour, surround band."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402


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
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _planes(batch: dict[str, np.ndarray], i: int) -> tuple[np.ndarray, ...]:
    """The 2-D view of sample ``i``: centre channel of a slice, middle slice of a patch."""
    image, lung, band = batch["image"][i], batch["lung"][i], batch["surround"][i]
    image = image[image.shape[0] // 2]
    if lung.ndim == 3:
        mid = lung.shape[0] // 2
        image, lung, band = image[mid], lung[mid], band[mid]
    return image, lung, band
