"""The healthy phantom thorax: HU by structure, masks against anatomy, determinism, variety."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_dilation, label

from raylung.phantom import PhantomCase, make_case
from raylung.phantom.thorax import Tissue, build_thorax, sample_geometry, smooth_field

SEED, INDEX, SIZE, SLICES = 0, 0, 128, (16, 24)


@pytest.fixture(scope="module")
def case() -> PhantomCase:
    return make_case(SEED, INDEX, pathological=False, size=SIZE, slices=SLICES)


@pytest.fixture(scope="module")
def thorax():
    """The same case before noise, with its tissue labels."""
    return build_thorax(sample_geometry(np.random.default_rng([SEED, INDEX]), SIZE, SLICES))


@pytest.fixture(scope="module")
def spine_x(thorax) -> int:
    """Column of the spinal canal: the body's midline."""
    return int(np.rint(np.nonzero(thorax.tissue == Tissue.CANAL)[2].mean()))


def test_case_follows_the_contract(case):
    assert (case.case_id, case.domain, case.lesion) == ("phantom_0000", "healthy", None)
    assert case.image.dtype == np.int16 and case.lung.dtype == np.uint8
    assert case.image.shape == case.lung.shape == (case.image.shape[0], SIZE, SIZE)
    assert set(np.unique(case.lung)) == {0, 1}


def test_lung_mask_is_the_lung_tissue_and_holds_its_air(case, thorax):
    """The mask is exactly the voxels labelled lung, and the image is lung-dark inside it and
    soft tissue in the body outside it."""
    np.testing.assert_array_equal(case.lung > 0, thorax.tissue == Tissue.LUNG)
    body = thorax.tissue != Tissue.AIR
    assert np.median(case.image[case.lung > 0]) < -700
    assert np.median(case.image[body & (case.lung == 0)]) > -200


def test_outside_the_body_is_air(case):
    corners = case.image[:, :10, :10]
    assert abs(np.median(corners) + 1000) < 10


def test_lung_parenchyma_is_near_minus_850(case):
    assert abs(np.median(case.image[case.lung == 1]) + 850) < 60


def test_lung_is_dark_except_vessels(case):
    bright = case.image[case.lung == 1] > -500
    assert 0 < bright.mean() < 0.1


def test_vessels_inside_the_lungs_reach_soft_tissue_density(thorax):
    assert -100 < thorax.image[thorax.lung].max() <= 40


def test_bone_on_both_sides_and_in_the_posterior_midline(case, spine_x):
    bone = case.image > 200
    columns = np.nonzero(case.lung)[2]
    assert bone[:, :, : columns.min()].any() and bone[:, :, columns.max() + 1 :].any()
    rows = np.nonzero(bone[:, :, spine_x - 1 : spine_x + 2])[1]
    assert rows.max() > np.nonzero(case.lung)[1].max()


def test_bone_box_spans_the_lungs(case):
    _, bone_y, bone_x = np.nonzero(case.image > 200)
    _, lung_y, lung_x = np.nonzero(case.lung)
    assert bone_x.min() < lung_x.min() and bone_x.max() > lung_x.max()
    assert bone_y.min() < lung_y.min() and bone_y.max() > lung_y.max()


@pytest.mark.parametrize("tissue", [Tissue.HEART, Tissue.MEDIASTINUM, Tissue.MUSCLE])
def test_soft_tissue_is_near_plus_40(case, thorax, tissue):
    assert abs(np.median(case.image[thorax.tissue == tissue]) - 40) < 20


def test_fat_is_near_minus_100(case, thorax):
    assert abs(np.median(case.image[thorax.tissue == Tissue.FAT]) + 100) < 20


def test_heart_is_anterior_and_to_the_patients_left(thorax, spine_x):
    _, heart_y, heart_x = np.nonzero(thorax.tissue == Tissue.HEART)
    _, canal_y, _ = np.nonzero(thorax.tissue == Tissue.CANAL)
    assert heart_y.mean() < canal_y.mean() and heart_x.mean() > spine_x


def test_airways_are_air_and_not_lung(case, thorax):
    airway = thorax.tissue == Tissue.AIRWAY
    assert airway.any() and abs(np.median(case.image[airway]) + 1000) < 30
    assert not case.lung[airway | (thorax.tissue == Tissue.AIRWAY_WALL)].any()


def test_trachea_splits_into_two_bronchi(thorax, spine_x):
    airway = thorax.tissue == Tissue.AIRWAY
    slices = np.flatnonzero(airway.any(axis=(1, 2)))
    lowest = airway[slices[0]]
    assert lowest[:, :spine_x].any() and lowest[:, spine_x + 1 :].any()
    assert airway[slices[-1]].sum() > 0 and slices[-1] == airway.shape[0] - 1


def test_lungs_lie_left_and_right_of_the_midline(case, spine_x):
    middle = case.lung[case.lung.shape[0] // 2]
    assert middle[:, :spine_x].any() and middle[:, spine_x + 1 :].any()
    assert not middle[:, spine_x].any()


def test_lungs_touch_the_chest_wall_laterally_and_posteriorly(case, thorax, spine_x):
    wall = np.isin(thorax.tissue, [Tissue.MUSCLE, Tissue.MARROW, Tissue.CORTEX])
    _, rows, columns = np.nonzero(case.lung.astype(bool) & binary_dilation(wall))
    assert (columns < spine_x).any() and (columns > spine_x).any()
    assert rows.max() > np.nonzero(case.lung)[1].mean()


def test_lung_is_smallest_at_the_apex_and_largest_near_the_base(case):
    area = case.lung.sum(axis=(1, 2))
    occupied = np.flatnonzero(area)
    assert area[occupied[-1]] < 0.5 * area.max()
    assert np.argmax(area) < occupied.mean()


def test_same_seed_and_index_give_identical_cases(case):
    again = make_case(SEED, INDEX, pathological=False, size=SIZE, slices=SLICES)
    np.testing.assert_array_equal(again.image, case.image)
    np.testing.assert_array_equal(again.lung, case.lung)
    assert again.spacing == case.spacing


def test_another_index_gives_another_case(case):
    other = make_case(SEED, INDEX + 1, pathological=False, size=SIZE, slices=SLICES)
    assert other.image.shape != case.image.shape or not np.array_equal(other.image, case.image)


def test_spacing_is_in_range_and_square_in_plane():
    for index in range(6):
        sx, sy, sz = make_case(SEED, index, pathological=False, size=64, slices=(8, 10)).spacing
        assert sx == sy and 0.6 <= sx <= 1.0 and 1.0 <= sz <= 3.0


def test_acquisition_and_body_size_vary_across_cases():
    cases = [make_case(SEED, i, pathological=False, size=96, slices=SLICES) for i in range(6)]
    assert len({c.spacing for c in cases}) == 6
    assert all(SLICES[0] <= c.image.shape[0] <= SLICES[1] for c in cases)
    widths = [np.ptp(np.nonzero(c.image > -500)[2]) for c in cases]
    assert max(widths) - min(widths) > 0.15 * 96


def test_impossible_slice_range_is_rejected():
    with pytest.raises(ValueError, match="slices"):
        make_case(SEED, INDEX, pathological=False, size=SIZE, slices=(10, 5))


def test_smooth_field_has_about_unit_variance_and_the_requested_shape():
    field = smooth_field(np.random.default_rng(0), (20, 60, 50), (2.0, 1.0, 1.0), 6.0)
    assert field.shape == (20, 60, 50) and field.dtype == np.float32
    assert 0.5 < field.std() < 1.2


def test_ribs_are_400_to_1000_hu(case, thorax):
    """Bone not connected to the spinal canal (ribs, sternum) lies in +400..+1000 HU."""
    bone = np.isin(thorax.tissue, [Tissue.MARROW, Tissue.CORTEX])
    components, _ = label(bone)
    spine = components[binary_dilation(thorax.tissue == Tissue.CANAL, iterations=2) & bone]
    rib = bone & ~np.isin(components, spine)
    assert rib.sum() > 500
    assert 400 <= thorax.image[rib].min() and thorax.image[rib].max() <= 1000
    sigma = thorax.geometry.scan.noise_hu
    for tissue in (Tissue.MARROW, Tissue.CORTEX):
        values = case.image[rib & (thorax.tissue == tissue)]
        low, median, high = np.percentile(values, [1, 50, 99])
        assert 400 <= median <= 1000
        assert 400 - 3 * sigma <= low and high <= 1000 + 3 * sigma
