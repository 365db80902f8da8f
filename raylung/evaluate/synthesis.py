"""How well G(h) keeps the healthy lung's shape and leaves its surroundings alone, in HU.

The shape-preservation score needs a lung mask of G(h). Without a trained segmenter at hand
during GAN validation, raylung uses a fixed rule that is right on the phantoms: the lung is
every voxel darker than ``DENSE_HU`` that lies inside the body (the holes of the body
outline), i.e. what an air threshold finds. The wall Dice asks the same of the band around the
lung: its dense voxels (rib, muscle, pleura) in G(h) against those in h; an opacity G draws
inside the lung does not lower it.
"""

from __future__ import annotations

import numpy as np

from raylung.evaluate.disease import DENSE_HU
from raylung.evaluate.overlap import dice
from raylung.preprocess.thorax_crop import body_mask

BODY_HU = -500


def lung_from_image(hu: np.ndarray) -> np.ndarray:
    """The rule-based lung mask of one image (2-D slice or 3-D volume) in HU."""
    volume = hu if hu.ndim == 3 else hu[None]
    lung = (volume < DENSE_HU) & body_mask(volume, BODY_HU)
    return lung if hu.ndim == 3 else lung[0]


def synthesis_metrics(healthy: np.ndarray, translated: np.ndarray, lung: np.ndarray,
                      surround: np.ndarray) -> dict[str, float]:
    """Mean over samples of: |G(h) - h| in the band, outside the body and in the lung (HU), the
    Dice of the band's dense voxels in G(h) against h, and the Dice of the rule-based lung of
    G(h) against h's lung mask.

    Images are (B, *spatial) in HU; masks (B, *spatial)."""
    rows = [_one(h, g, m.astype(bool), s.astype(bool))
            for h, g, m, s in zip(healthy, translated, lung, surround)]
    return {key: float(np.nanmean([r[key] for r in rows])) for key in rows[0]}


def _one(h: np.ndarray, g: np.ndarray, lung: np.ndarray, band: np.ndarray) -> dict[str, float]:
    change = np.abs(g - h)
    outside = ~body_mask(h if h.ndim == 3 else h[None], BODY_HU).reshape(h.shape)
    return {
        "surround_l1_hu": _mean(change, band),
        "change_outside_body_hu": _mean(change, outside),
        "change_in_lung_hu": _mean(change, lung),
        "wall_dice": dice((g > DENSE_HU) & band, (h > DENSE_HU) & band),
        "shape_dice": dice(lung_from_image(g), lung),
    }


def _mean(values: np.ndarray, where: np.ndarray) -> float:
    return float(values[where].mean()) if where.any() else float("nan")
