"""Synthesis measures: exact on images with known answers."""

from __future__ import annotations

import numpy as np

from raylung.evaluate.synthesis import dice, lung_from_image, synthesis_metrics


def _thorax():
    hu = np.full((40, 40), -1000.0)
    hu[5:35, 5:35] = 40.0             # body
    hu[10:30, 10:18] = -850.0         # right lung
    hu[10:30, 22:30] = -850.0         # left lung
    lung = hu == -850.0
    return hu, lung


def test_rule_finds_the_lung_not_the_outside_air():
    hu, lung = _thorax()
    assert np.array_equal(lung_from_image(hu), lung)


def test_identity_translation_is_perfect():
    hu, lung = _thorax()
    band = np.zeros_like(lung)
    band[8:32, 8:10] = True
    m = synthesis_metrics(hu[None], hu[None], lung[None], band[None])
    assert m == {"surround_l1_hu": 0.0, "change_outside_body_hu": 0.0, "change_in_lung_hu": 0.0,
                 "wall_dice": 1.0, "shape_dice": 1.0}


def test_consolidating_half_a_lung_halves_its_dice_share():
    hu, lung = _thorax()
    sick = hu.copy()
    sick[10:30, 10:14] = 0.0          # the outer half of the right lung turns solid
    band = np.zeros_like(lung)
    band[8:32, 8:10] = True
    m = synthesis_metrics(hu[None], sick[None], lung[None], band[None])
    kept = lung.sum() - 80
    assert m["shape_dice"] == 2 * kept / (lung.sum() + kept)
    assert m["change_in_lung_hu"] == 850.0 * 80 / lung.sum()
    assert m["surround_l1_hu"] == 0.0 and m["change_outside_body_hu"] == 0.0
    assert m["wall_dice"] == 1.0  # disease inside the lung leaves the wall's dense voxels


def test_wall_dice_counts_the_wall_voxels_g_erases():
    hu, lung = _thorax()
    band = np.zeros_like(lung)
    band[8:32, 8:10] = True           # 48 body voxels left of the right lung
    thinned = hu.copy()
    thinned[8:32, 9] = -850.0         # G turns half of them into lung
    m = synthesis_metrics(hu[None], thinned[None], lung[None], band[None])
    assert m["wall_dice"] == 2 * 24 / (48 + 24)


def test_dice_edge_cases():
    empty = np.zeros((3, 3), bool)
    assert dice(empty, empty) == 1.0
    assert dice(empty, ~empty) == 0.0
