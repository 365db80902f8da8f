"""Crops from the store: exact voxels, band right at crop borders, replayable, aligned masks."""

from __future__ import annotations

import numpy as np
import pytest

from raylung.config import load_config
from raylung.data.sample import make_sample, read_region
from raylung.data.specs import draw_specs
from raylung.data.pipeline import CropReader, SampleReadError, load_centres, select_cases
from raylung.preprocess.normalise import normalise_hu
from raylung.preprocess.surround import surround_band

PATCH = ["data.patch_size=[16,32,32]", "data.mode=patch3d", "data.split_fractions=[1,0,0]"]


def _cfg(*overrides):
    return load_config(None, list(overrides)).data


def _labelled_case(store):
    case_id = store.case_ids()[0]
    group = store.open_case(case_id)
    return case_id, group, dict(group.attrs["raylung"])


def test_read_region_is_numpy_slicing_with_padding(phantom_store):
    _, group, _ = _labelled_case(phantom_store)
    full = group["image"][...]
    assert np.array_equal(read_region(group["image"], (2, 5, 7), (3, 10, 12), -1024),
                          full[2:5, 5:15, 7:19])
    edge = read_region(group["image"], (-2, -3, 0), (4, 5, 6), -1024)
    assert np.array_equal(edge[2:, 3:], full[:2, :2, :6])
    assert (edge[:2] == -1024).all() and (edge[:, :3] == -1024).all()


def test_patch_equals_source_voxels(phantom_store):
    cfg = _cfg(*PATCH, "data.augment.enabled=false")
    case_id, group, attrs = _labelled_case(phantom_store)
    spec = {"case_id": case_id, "z": 1, "y": 20, "x": 9, "seed": 5, "domain": "x",
            "labelled": True, "index": 0, "epoch": 0, "lung_centred": True}
    sample = make_sample(group, attrs, spec, cfg)
    expected = read_region_np(group["image"][...], (1, 20, 9), (16, 32, 32), fill=-1024)
    assert np.array_equal(sample["image"][0], normalise_hu(expected, cfg.hu_norm))
    assert np.array_equal(sample["lung"], read_region_np(group["lung"][...], (1, 20, 9),
                                                         (16, 32, 32)))


def test_surround_band_is_right_at_crop_borders(phantom_store):
    cfg = _cfg(*PATCH, "data.augment.enabled=false", "data.surround_mm=6")
    case_id, group, attrs = _labelled_case(phantom_store)
    full_band = surround_band(group["lung"][...], attrs["spacing"][::-1], 6.0)
    z0, y0, x0 = attrs["lung_box"][0], attrs["lung_box"][2], attrs["lung_box"][4]
    for start in [(z0, y0 - 3, x0 - 3), (0, 0, 0), (z0 + 2, y0 + 10, x0 + 5)]:
        spec = {"case_id": case_id, "z": start[0], "y": start[1], "x": start[2], "seed": 1,
                "domain": "x", "labelled": True, "index": 0, "epoch": 0, "lung_centred": True}
        band = make_sample(group, attrs, spec, cfg)["surround"]
        expected = read_region_np(full_band, start, (16, 32, 32))
        assert np.array_equal(band, expected), start
        assert not (band & make_sample(group, attrs, spec, cfg)["lung"]).any()


def read_region_np(array, start, size, fill=0):
    out = np.full(size, fill, array.dtype)
    src = tuple(slice(max(0, s), min(n, s + k)) for s, k, n in zip(start, size, array.shape))
    dst = tuple(slice(sl.start - s, sl.stop - s) for sl, s in zip(src, start))
    out[dst] = array[src]
    return out


def test_slice_sample_shapes_and_context(phantom_store):
    cfg = _cfg("data.slice_size=[64,64]", "data.context_slices=2", "data.split_fractions=[1,0,0]")
    case_id, group, attrs = _labelled_case(phantom_store)
    spec = {"case_id": case_id, "z": attrs["lung_box"][0], "y": 0, "x": 0, "seed": 3,
            "domain": "x", "labelled": True, "index": 0, "epoch": 0, "lung_centred": True}
    sample = make_sample(group, attrs, spec, cfg)
    assert sample["image"].shape == (5, 64, 64) and sample["image"].dtype == np.float32
    assert sample["lung"].shape == sample["surround"].shape == (64, 64)
    assert sample["lung"].any() and sample["surround"].any()
    assert not (sample["lung"] & sample["surround"]).any()
    assert -1.0 <= sample["image"].min() and sample["image"].max() <= 1.0


@pytest.fixture(scope="module")
def mask_shaped_store(tmp_path_factory):
    """One case whose image is the lung mask itself: -850 HU inside, +40 outside."""
    from raylung.store.case_store import CaseStore

    z, y, x = np.ogrid[:24, :80, :80]
    lung = ((((z - 12) / 10.0) ** 2 + ((y - 40) / 25.0) ** 2 + ((x - 30) / 15.0) ** 2) <= 1)
    image = np.where(lung, -850, 40).astype(np.int16)
    store = CaseStore(str(tmp_path_factory.mktemp("mask_store") / "s"))
    store.create()
    attrs = {"labelled": True, "spacing": [1.0, 1.0, 2.0], "thorax_box": [0, 24, 5, 75, 5, 75]}
    store.write_case("blob", {"image": image, "lung": lung.astype(np.uint8)}, attrs,
                     {"source_hash": ""}, (8, 32, 32), 1)
    return store


@pytest.mark.parametrize("mode", ["slice2d", "patch3d"])
@pytest.mark.parametrize("augment", [False, True])
def test_masks_stay_aligned_under_augmentation(mask_shaped_store, mode, augment):
    cfg = _cfg(*PATCH, f"data.mode={mode}", "data.slice_size=[70,70]", "data.augment.rotate_deg=25",
               "data.augment.noise_hu=0", "data.augment.hu_shift=0", "data.augment.scale=[0.8,1.2]",
               f"data.augment.enabled={augment}")
    reader = CropReader(mask_shaped_store.url, {}, cfg)
    for seed in range(6):
        spec = {"case_id": "blob", "z": 4 + seed % 3, "y": 25, "x": 14, "seed": seed,
                "domain": "healthy", "labelled": True, "index": 0, "epoch": 0,
                "lung_centred": True}
        sample = reader({k: np.array([v]) for k, v in spec.items()})
        dark = sample["image"][0, 0] < normalise_hu(np.array(-400), cfg.hu_norm)
        lung = sample["lung"][0].astype(bool)
        dice = 2 * (dark & lung).sum() / (dark.sum() + lung.sum())
        assert dice > (0.97 if augment else 0.999), (seed, dice)
        assert set(np.unique(sample["lung"])) <= {0, 1}


def test_same_seed_same_sample_different_epoch_differs(phantom_store):
    cfg = _cfg(*PATCH)
    cases = select_cases(phantom_store, cfg, "train", None, False)
    centres = load_centres(phantom_store, cases)
    assert draw_specs(cases, centres, cfg, 3, "s") == draw_specs(cases, centres, cfg, 3, "s")
    assert draw_specs(cases, centres, cfg, 3, "s") != draw_specs(cases, centres, cfg, 4, "s")
    reader = CropReader(phantom_store.url, {}, cfg)
    specs = draw_specs(cases, centres, cfg, 3, "s")[:4]
    batch = {k: np.array([s[k] for s in specs]) for k in specs[0]}
    first, second = reader(batch), CropReader(phantom_store.url, {}, cfg)(batch)
    for key in ("image", "lung", "surround"):
        assert np.array_equal(first[key], second[key])


def test_a_reader_keeps_only_its_most_recent_cases_open(phantom_store):
    """A reader bounded to 2 open cases reads 3 cases in turn twice over, reopening each, and
    gives the samples an unbounded reader gives."""
    cfg = _cfg(*PATCH)
    cases = select_cases(phantom_store, cfg, "train", None, False)
    specs = draw_specs(cases, load_centres(phantom_store, cases), cfg, 0, "s")
    one_per_case = list({s["case_id"]: s for s in specs}.values())[:3]
    assert len(one_per_case) == 3
    batch = {k: np.array([s[k] for s in one_per_case * 2]) for k in one_per_case[0]}
    bounded = CropReader(phantom_store.url, {}, cfg, open_cases=2)
    read = bounded(batch)
    assert list(bounded._cases) == [s["case_id"] for s in one_per_case[1:]]
    unbounded = CropReader(phantom_store.url, {}, cfg)(batch)
    for key in ("image", "lung", "surround"):
        assert np.array_equal(read[key], unbounded[key])


def test_lung_centred_fraction(phantom_store):
    cfg = _cfg(*PATCH, "data.lung_centre_fraction=0.3", "data.samples_per_epoch=2000")
    cases = select_cases(phantom_store, cfg, "train", None, True)
    specs = draw_specs(cases, load_centres(phantom_store, cases), cfg, 0, "ratio")
    share = np.mean([s["lung_centred"] for s in specs])
    assert abs(share - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 2000)


def test_unlabelled_without_air_box_only_random_centres(phantom_store):
    cfg = _cfg(*PATCH)
    cases = select_cases(phantom_store, cfg, "train", None, False)
    cases = cases.assign(labelled=False).drop(columns=[c for c in cases if c.startswith("air_")])
    specs = draw_specs(cases, {}, cfg, 0, "u")   # a store ingested before air boxes
    assert not any(s["lung_centred"] for s in specs)


def test_corrupt_chunk_names_the_case(phantom_store, tmp_path):
    import shutil

    from raylung.store.case_store import CaseStore

    copy = tmp_path / "store"
    shutil.copytree(phantom_store.url, copy)
    case_id = sorted(CaseStore(str(copy)).case_ids())[0]
    for chunk in (copy / "cases" / case_id / "image" / "c").rglob("*"):
        if chunk.is_file():
            chunk.write_bytes(b"\x00garbage" * 4)
    cfg = _cfg(*PATCH)
    reader = CropReader(str(copy), {}, cfg)
    spec = {"case_id": case_id, "z": 0, "y": 0, "x": 0, "seed": 1, "domain": "healthy",
            "labelled": True, "index": 0, "epoch": 0, "lung_centred": False}
    with pytest.raises(SampleReadError, match=rf"cases/{case_id}: cannot read the crop at z,y,x=0,0,0"):
        reader({k: np.array([v]) for k, v in spec.items()})


def test_zero_width_skips_the_band(phantom_store):
    cfg = _cfg(*PATCH, "data.surround_mm=0", "data.augment.enabled=false")
    case_id, group, attrs = _labelled_case(phantom_store)
    spec = {"case_id": case_id, "z": 0, "y": 20, "x": 9, "seed": 5, "domain": "x",
            "labelled": True, "index": 0, "epoch": 0, "lung_centred": True}
    sample = make_sample(group, attrs, spec, cfg)
    assert sample["lung"].any() and not sample["surround"].any()
