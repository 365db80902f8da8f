"""Dice, IoU and rim Dice on masks whose answers are known."""

from __future__ import annotations

import numpy as np

from raylung.evaluate.overlap import dice, iou, rim_band, rim_dice


def _square(size=40, lo=10, hi=30):
    mask = np.zeros((size, size), np.uint8)
    mask[lo:hi, lo:hi] = 1
    return mask


def test_rim_band_is_within_width_on_both_sides_of_the_border():
    band = rim_band(_square(), spacing=(1.0, 1.0), width_mm=2.0)
    assert band[10:12, 15].all() and band[8:10, 15].all()   # inside and outside the top edge
    assert not band[12, 15] and not band[7, 15]
    assert not band[20, 20]                                  # lung centre


def test_rim_band_width_is_in_mm():
    coarse = rim_band(_square(), spacing=(2.0, 2.0), width_mm=2.0)
    assert coarse[10, 15] and coarse[9, 15] and not coarse[11, 15] and not coarse[8, 15]


def test_scores_of_a_prediction_missing_the_rim():
    truth = _square()
    pred = _square(lo=12, hi=28)          # the outer 2-pixel rim cut off, as on fibrosis
    assert dice(pred, truth) == 2 * 256 / (400 + 256)
    assert iou(pred, truth) == 256 / 400
    assert rim_dice(pred, truth, (1.0, 1.0), 2.0) == 0.0  # nothing of the rim band's lung part
    half = _square(lo=11, hi=29)
    assert rim_dice(half, truth, (1.0, 1.0), 2.0) == 2 * 68 / (144 + 68)  # 1 of 2 rings kept
    assert (dice(truth, truth), iou(truth, truth), rim_dice(truth, truth, (1.0, 1.0), 2.0)) == (
        1.0, 1.0, 1.0)
