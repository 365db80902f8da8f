"""Peripheral opacities: inside the lung, on the chest wall, in their HU ranges, replayable."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from raylung.phantom import PhantomCase, make_case
from raylung.phantom.pathology import (
    CONSOLIDATION_HU,
    GROUND_GLASS_HU,
    RETICULATION_HU,
    add_opacities,
    sample_opacities,
)
from raylung.phantom.thorax import Tissue, build_thorax, sample_geometry

SEED, INDEX, SIZE, SLICES = 0, 0, 128, (16, 24)


@pytest.fixture(scope="module")
def case() -> PhantomCase:
    return make_case(SEED, INDEX, pathological=True, size=SIZE, slices=SLICES)


@pytest.fixture(scope="module")
def thorax():
    return build_thorax(sample_geometry(np.random.default_rng([SEED, INDEX]), SIZE, SLICES))


@pytest.fixture(scope="module")
def opacities(thorax):
    return sample_opacities(np.random.default_rng(1), thorax.geometry)


def test_case_is_pathological_with_a_binary_lesion_mask(case):
    assert case.domain == "pathological" and case.lesion.dtype == np.uint8
    assert case.lesion.shape == case.image.shape and set(np.unique(case.lesion)) == {0, 1}


def test_lesion_lies_inside_the_lung(case):
    assert not (case.lesion & (1 - case.lung)).any()


@pytest.mark.parametrize("index", range(8))
def test_lesion_touches_the_chest_wall(index):
    case = make_case(SEED, index, pathological=True, size=96, slices=SLICES)
    thorax = build_thorax(sample_geometry(np.random.default_rng([SEED, index]), 96, SLICES))
    wall = np.isin(thorax.tissue, [Tissue.MUSCLE, Tissue.MARROW, Tissue.CORTEX])
    assert (case.lesion.astype(bool) & binary_dilation(wall)).any()


def test_pathology_changes_only_the_lesion_voxels(case):
    healthy = make_case(SEED, INDEX, pathological=False, size=SIZE, slices=SLICES)
    np.testing.assert_array_equal(healthy.lung, case.lung)
    changed = healthy.image != case.image
    assert changed.any() and not (changed & (case.lesion == 0)).any()


def test_noise_free_lesion_hu_stays_within_the_opacity_ranges(thorax, opacities):
    image, lesion = add_opacities(thorax, opacities)
    values = image[lesion == 1]
    assert values.min() >= RETICULATION_HU[0] and values.max() <= CONSOLIDATION_HU[1]


@pytest.mark.parametrize(
    "mix, hu_range",
    [
        ((1.0, 0.0, 0.0), GROUND_GLASS_HU),
        ((0.0, 1.0, 0.0), RETICULATION_HU),
        ((0.0, 0.0, 1.0), CONSOLIDATION_HU),
    ],
)
def test_each_opacity_type_has_its_hu_range(thorax, opacities, mix, hu_range):
    image, lesion = add_opacities(thorax, replace(opacities, mix=mix))
    low, high = np.percentile(image[lesion == 1], [5, 50])
    assert hu_range[0] <= low and high <= hu_range[1]


def test_lesions_are_denser_than_healthy_lung(case):
    assert np.median(case.image[case.lesion == 1]) > np.median(case.image[case.lung == 1]) + 150


def test_lesions_are_mostly_posterior_and_basal():
    posterior, basal = [], []
    for index in range(6):
        case = make_case(SEED, index, pathological=True, size=96, slices=SLICES)
        z, y, _ = np.nonzero(case.lesion)
        lung_z, lung_y, _ = np.nonzero(case.lung)
        posterior.append(np.mean(y > lung_y.mean()))
        basal.append(np.mean(z < lung_z.mean()))
    assert np.mean(posterior) > 0.6 and np.mean(basal) > 0.6


def test_same_opacities_replay_the_same_lesion(thorax, opacities):
    first, second = add_opacities(thorax, opacities), add_opacities(thorax, opacities)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_opacities_leave_the_thorax_untouched(thorax, opacities):
    before = thorax.image.copy()
    add_opacities(thorax, opacities)
    np.testing.assert_array_equal(thorax.image, before)


def test_a_healthy_twin_is_the_case_it_would_be_if_pathological(case):
    """The oracle of claim.py: the phantom's own opacity model painted into a healthy case,
    same thorax and noise, so the healthy lung mask is the twin's true mask."""
    healthy = make_case(SEED, INDEX, pathological=False, size=SIZE, slices=SLICES, twin=True)
    assert healthy.domain == "healthy" and healthy.lesion is None
    assert np.array_equal(healthy.twin, case.image)
    assert np.array_equal(healthy.lung, case.lung)
    changed = healthy.twin != healthy.image
    assert changed.any() and not (changed & ~case.lesion.astype(bool)).any()
    assert make_case(SEED, INDEX, pathological=True, size=SIZE, slices=SLICES, twin=True).twin is None
