"""The PNGs a person reads show what they claim: each test draws hand-made arrays twice, with
and without the thing a panel shows, and finds it in the picture's pixels only when present."""

from __future__ import annotations

import io

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from raylung.evaluate.report import save_report
from raylung.plots import (curves_png, save_sample_grid, save_segmentation_grid,
                           save_synthesis_grid)


def _rgb(png) -> np.ndarray:
    """(H, W, 3) floats in [0, 1] of a PNG file or its bytes."""
    source = io.BytesIO(png) if isinstance(png, bytes) else png
    return matplotlib.image.imread(source, format="png")[..., :3]


def _lime(rgb: np.ndarray) -> int:
    return int(((rgb[..., 1] > 0.7) & (rgb[..., 0] < 0.4) & (rgb[..., 2] < 0.4)).sum())


def _red(rgb: np.ndarray) -> int:
    return int(((rgb[..., 0] > 0.7) & (rgb[..., 1] < 0.4) & (rgb[..., 2] < 0.4)).sum())


def _coloured(rgb: np.ndarray) -> np.ndarray:
    """Pixels that are not grey (lines and overlays, not images, text or background)."""
    return rgb.max(axis=-1) - rgb.min(axis=-1) > 0.2


def _disc(size: int = 32, radius: int = 9) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < radius ** 2).astype(np.uint8)


def test_sample_grid_draws_the_lung_contour_and_the_band_only_where_they_are(tmp_path):
    image = np.zeros((2, 1, 32, 32), np.float32)
    lung = np.stack([_disc()] * 2)
    band = np.stack([_disc(radius=14) - _disc(radius=10)] * 2)
    batch = {"image": image, "lung": lung, "surround": band, "case_id": ["a", "b"],
             "domain": ["healthy"] * 2, "position": [(3, 0, 0)] * 2}
    full = _rgb(save_sample_grid(batch, tmp_path / "full.png"))
    bare = _rgb(save_sample_grid({**batch, "lung": 0 * lung, "surround": 0 * band},
                                 tmp_path / "bare.png"))
    assert _lime(full) > 50 and _lime(bare) == 0
    tinted = (full[..., 0] - full[..., 1] > 0.25) & (full[..., 0] - full[..., 2] > 0.25)
    assert tinted.sum() > 1000  # the band, tinted over the grey image
    assert not _coloured(bare).any()


def test_segmentation_grid_draws_truth_in_green_and_prediction_in_red(tmp_path):
    images = [np.zeros((1, 32, 32), np.float32)] * 2
    truth, empty = [_disc()] * 2, [np.zeros((32, 32), np.uint8)] * 2
    shifted = [np.roll(_disc(), 6, axis=1)] * 2
    both = _rgb(save_segmentation_grid(images, truth, shifted, tmp_path / "both.png"))
    truth_only = _rgb(save_segmentation_grid(images, truth, empty, tmp_path / "truth.png"))
    pred_only = _rgb(save_segmentation_grid(images, empty, truth, tmp_path / "pred.png"))
    assert _lime(truth_only) > 50 and _red(truth_only) == 0
    assert _red(pred_only) > 50 and _lime(pred_only) == 0
    assert _red(both) > 0 and _lime(both) > 0


def test_synthesis_grid_puts_each_column_in_its_place(tmp_path):
    """A change G made shows in the G(h) and |G(h) - h| columns and nowhere else."""
    h = np.full((2, 1, 32, 32), -0.5, np.float32)
    gh = h.copy()
    gh[:, :, 8:20, 8:20] = 0.9
    band = np.zeros((2, 1, 32, 32), np.float32)
    same = _rgb(save_synthesis_grid({"h": h, "G(h)": h, "|G(h) - h|": 0 * h}, band,
                                    tmp_path / "same.png"))
    changed = _rgb(save_synthesis_grid({"h": h, "G(h)": gh, "|G(h) - h|": np.abs(gh - h) / 2},
                                       band, tmp_path / "changed.png"))
    columns = np.flatnonzero(np.abs(changed - same).max(axis=(0, 2)) > 0.1) / same.shape[1]
    assert columns.size and columns.min() > 0.25 and columns.max() < 0.75  # columns 2 and 3 of 4


@pytest.mark.parametrize("names, side", [(["loss_g", "loss_d"], 0), (["val_translation"], 1)])
def test_curves_put_losses_left_and_validation_scores_right(names, side):
    table = pd.DataFrame({"step": np.arange(1, 11), **{n: np.linspace(1, 0, 10) for n in names}})
    lines = _coloured(_rgb(curves_png(table)))
    halves = np.array_split(lines, 2, axis=1)
    assert halves[side].sum() > 100 and halves[1 - side].sum() == 0


def test_report_draws_the_worst_case_with_both_contours(tmp_path):
    ref = np.zeros((8, 32, 32), np.uint8)
    ref[2:6] = _disc()
    pred = np.roll(ref, 5, axis=2)
    per_case = pd.DataFrame({"case": ["c1", "c2"], "label": ["lung"] * 2, "dice": [0.5, 0.9],
                             "hd95_mm": [5.0, 1.0]})
    rgb = _rgb(save_report(per_case, lambda case: (None, ref, pred), tmp_path / "r.png",
                           worst=1))
    assert _lime(rgb) > 50 and _red(rgb) > 50
