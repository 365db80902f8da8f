"""How pathological G(h) looks inside the lung, without a discriminator or downloaded weights.

Realism is a distance, in HU, between the lung voxels of translated healthy images and those
of real pathological images (whose lung masks include the diseased tissue): Wasserstein-1 of
the intensities plus Wasserstein-1 of the local gradient magnitudes (texture: ground glass is
smooth, a fibrotic net is not). 0 means the two are statistically alike; lower is better.

    >>> import numpy as np
    >>> lung = np.ones((1, 8, 8), bool)
    >>> real = np.random.default_rng(0).normal(-300, 50, (1, 8, 8))
    >>> round(realism_distance(real - 100, lung, real, lung)["realism_intensity_hu"], 6)
    100.0
"""

from __future__ import annotations

import numpy as np
from scipy.stats import wasserstein_distance

STATISTICS = ("intensity", "texture")


def lung_statistics(hu: np.ndarray, lung: np.ndarray) -> dict[str, np.ndarray]:
    """Intensity (HU) and gradient magnitude (HU per voxel) of the lung voxels of a batch.

    ``hu`` and ``lung`` are (B, *spatial) with at least two spatial axes."""
    axes = tuple(range(1, hu.ndim))
    gradients = np.gradient(hu.astype(np.float64), axis=axes)
    magnitude = np.sqrt(sum(g * g for g in gradients))
    mask = lung.astype(bool)
    return {"intensity": hu[mask], "texture": magnitude[mask]}


def realism_distance(translated: np.ndarray, lung: np.ndarray, reference: np.ndarray,
                     reference_lung: np.ndarray) -> dict[str, float]:
    """Wasserstein-1 of each lung statistic between translated and reference images, and
    their sum ``realism_hu``; NaN when either side has no lung voxel."""
    ours, theirs = lung_statistics(translated, lung), lung_statistics(reference, reference_lung)
    scores = {f"realism_{k}_hu": _distance(ours[k], theirs[k]) for k in STATISTICS}
    scores["realism_hu"] = sum(scores.values())
    return scores


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(wasserstein_distance(a, b)) if a.size and b.size else float("nan")
