"""Ingest round trips: stored arrays equal SimpleITK's own resampling of the source files."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from raylung.config import load_config
from raylung.ingest.run import ingest
from raylung.store.case_store import CaseStore
from raylung.store.manifest import read_manifest

pytestmark = pytest.mark.usefixtures("ray_cluster")


def _reference(path, attrs, *, label: bool) -> np.ndarray:
    """What SimpleITK gives when resampling the source onto the stored grid."""
    source = sitk.ReadImage(str(path))
    grid = sitk.Image(attrs["shape"][::-1], sitk.sitkUInt8)
    grid.SetSpacing(attrs["spacing"])
    grid.SetOrigin(attrs["origin"])
    grid.SetDirection(attrs["direction"])
    if label:
        source = sitk.Cast(source != 0, sitk.sitkUInt8)
        return sitk.GetArrayFromImage(sitk.Resample(source, grid, sitk.Transform(),
                                                    sitk.sitkNearestNeighbor, 0))
    out = sitk.Resample(sitk.Cast(source, sitk.sitkFloat32), grid, sitk.Transform(),
                        sitk.sitkLinear, -1024.0)
    return np.clip(np.rint(sitk.GetArrayFromImage(out)), -1024, 3071).astype(np.int16)


def _centre_and_volume(mask: np.ndarray, spacing, origin, direction) -> tuple[np.ndarray, float]:
    """A mask's physical centre (mm, x y z) and volume (mm^3) from its own geometry."""
    index = np.argwhere(mask > 0)[:, ::-1].mean(axis=0)  # (x, y, z)
    matrix = np.reshape(direction, (3, 3))
    return np.asarray(origin) + matrix @ (np.asarray(spacing) * index), \
        float((mask > 0).sum() * np.prod(spacing))


def test_round_trip_matches_sitk_resampling(phantom_store, small_phantoms):
    """The stored volumes are SimpleITK's resampling onto the stored grid, and that grid holds
    the source's anatomy where the source has it (centre and volume of the lung, found from
    the source file's own geometry, not from what ingest stored)."""
    cases = pd.read_csv(small_phantoms / "cases.csv")
    for row in cases.itertuples():
        group = phantom_store.open_case(row.case_id)
        attrs = group.attrs["raylung"]
        source = sitk.ReadImage(str(small_phantoms / row.lung))
        centre, volume = _centre_and_volume(sitk.GetArrayFromImage(source), source.GetSpacing(),
                                            source.GetOrigin(), source.GetDirection())
        stored_centre, stored_volume = _centre_and_volume(
            group["lung"][...], attrs["spacing"], attrs["origin"], attrs["direction"])
        assert np.abs(stored_centre - centre).max() < 0.5  # mm
        assert stored_volume == pytest.approx(volume, rel=0.1)  # nearest slices at both ends
        assert np.array_equal(group["image"][...], _reference(small_phantoms / row.image, attrs,
                                                              label=False))
        assert np.array_equal(group["lung"][...], _reference(small_phantoms / row.lung, attrs,
                                                             label=True))
        assert attrs["spacing"] == [1.0, 1.0, 2.0]
        assert attrs["direction"] == [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]
        assert attrs["has_lesion"] == (row.domain == "pathological")
        centres = group["lung_centres"][...]
        assert len(centres) > 0
        assert group["lung"].get_coordinate_selection(tuple(centres.T)).all()


def test_native_spacing_is_bit_exact(small_phantoms, tmp_path):
    url = str(tmp_path / "store")
    ingest(str(small_phantoms), url, load_config(None, ["ingest.spacing_mm=null"]), progress=False)
    row = pd.read_csv(small_phantoms / "cases.csv").iloc[0]
    source = sitk.ReadImage(str(small_phantoms / row.image))
    group = CaseStore(url).open_case(row.case_id)
    assert np.array_equal(group["image"][...], np.clip(sitk.GetArrayFromImage(source), -1024, 3071))
    assert np.allclose(group.attrs["raylung"]["origin"], source.GetOrigin())


def test_the_store_holds_no_credentials(small_phantoms, tmp_path):
    """The store's config file records that the keys were redacted, never their values."""
    url = str(tmp_path / "store")
    config = load_config(None, ["storage.storage_options={key: AKIAPLANTED, secret: planted-1}"])
    assert ingest(str(small_phantoms), url, config, progress=False).ok
    for file in (f for f in (tmp_path / "store").rglob("*") if f.is_file()):
        data = file.read_bytes()
        assert b"AKIAPLANTED" not in data and b"planted-1" not in data, file
    assert "secret: <redacted>" in (tmp_path / "store" / "raylung_config.yaml").read_text()


def test_manifest_and_summary(phantom_store):
    manifest = read_manifest(phantom_store)
    assert sorted(manifest["domain"].value_counts().items()) == [("healthy", 2),
                                                                 ("pathological", 2)]
    assert manifest["labelled"].all()
    assert (manifest["disk_bytes"] < manifest["raw_bytes"]).all()
    summary = phantom_store.read_bytes("summary.json").decode()
    assert '"compression_ratio"' in summary and '"lung_hu"' in summary


def test_rerun_skips_unchanged_and_redoes_changed(small_phantoms, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(small_phantoms, src)
    url = str(tmp_path / "store")
    first = ingest(str(src), url, load_config(), progress=False)
    case = sorted(first.written)[0]
    image_path = src / case / "image.nii.gz"
    image = sitk.ReadImage(str(image_path))
    sitk.WriteImage(image + 1, str(image_path))
    second = ingest(str(src), url, load_config(), progress=False)
    assert second.written == [case]
    assert sorted(second.skipped) == sorted(set(first.written) - {case})


def test_rerun_trusts_unchanged_sizes_and_times_and_hashes_the_rest(small_phantoms, tmp_path):
    """A file with its old size and time is not read again, even with other bytes (as make and
    rsync assume); one only touched is hashed once, found the same, and trusted from then on
    by its new time."""
    src = tmp_path / "src"
    shutil.copytree(small_phantoms, src)
    url = str(tmp_path / "store")
    first = ingest(str(src), url, load_config(), progress=False)
    touched, forged = (src / case / "image.nii.gz" for case in sorted(first.written)[:2])
    os.utime(touched)
    stat = forged.stat()
    forged.write_bytes(bytes(stat.st_size))  # unreadable if it were read
    os.utime(forged, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = ingest(str(src), url, load_config(), progress=False)
    assert second.ok and not second.written
    assert sorted(second.skipped) == sorted(first.written)
    stat = touched.stat()
    touched.write_bytes(bytes(stat.st_size))
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    third = ingest(str(src), url, load_config(), progress=False)
    assert third.ok and sorted(third.skipped) == sorted(first.written)


def test_dicom_series_ingests_like_nifti(small_phantoms, tmp_path, dicom_writer):
    row = pd.read_csv(small_phantoms / "cases.csv").iloc[0]
    image = sitk.ReadImage(str(small_phantoms / row.image))
    dicom_writer(image, tmp_path / "dicom")
    table = pd.DataFrame([
        {"case_id": "nifti", "image": str(small_phantoms / row.image), "domain": "healthy"},
        {"case_id": "dicom", "image": str(tmp_path / "dicom"), "domain": "healthy"},
    ])
    table.to_csv(tmp_path / "cases.csv", index=False)
    result = ingest(str(tmp_path / "cases.csv"), str(tmp_path / "store"), load_config(),
                    progress=False)
    assert result.ok
    store = CaseStore(str(tmp_path / "store"))
    assert np.array_equal(store.open_case("nifti")["image"][...],
                          store.open_case("dicom")["image"][...])


def test_pydicom_real_slice_is_one_slice_volume(tmp_path):
    import pydicom.data

    (tmp_path / "ct").mkdir()
    shutil.copy(pydicom.data.get_testdata_file("CT_small.dcm"), tmp_path / "ct" / "0001.dcm")
    pd.DataFrame([{"case_id": "ct_small", "image": str(tmp_path / "ct"),
                   "domain": "pathological"}]).to_csv(tmp_path / "cases.csv", index=False)
    result = ingest(str(tmp_path / "cases.csv"), str(tmp_path / "store"), load_config(),
                    progress=False)
    assert result.ok, result.failures
    group = CaseStore(str(tmp_path / "store")).open_case("ct_small")
    assert group["image"].shape[0] == 1
    assert group.attrs["raylung"]["labelled"] is False


def test_real_ct_lobes_merge_into_lung(real_ct, tmp_path):
    pd.DataFrame([{"case_id": "real", "image": str(real_ct / "example_ct_sm.nii.gz"),
                   "lung": str(real_ct / "example_seg.nii.gz"), "domain": "healthy"}]
                 ).to_csv(tmp_path / "cases.csv", index=False)
    config = load_config(None, ["ingest.lung_labels=[10,11,12,13,14]"])
    assert ingest(str(tmp_path / "cases.csv"), str(tmp_path / "store"), config,
                  progress=False).ok
    group = CaseStore(str(tmp_path / "store")).open_case("real")
    attrs = group.attrs["raylung"]
    seg = sitk.ReadImage(str(real_ct / "example_seg.nii.gz"))
    lobes = sitk.Cast((seg >= 10) & (seg <= 14), sitk.sitkUInt8)
    sitk.WriteImage(lobes, str(tmp_path / "lobes.nii.gz"))
    assert np.array_equal(group["lung"][...], _reference(tmp_path / "lobes.nii.gz", attrs,
                                                         label=True))
    assert np.array_equal(group["image"][...], _reference(real_ct / "example_ct_sm.nii.gz",
                                                          attrs, label=False))
    lung_hu = group["image"][...][group["lung"][...] > 0]
    assert np.median(lung_hu) < -700


def test_adding_cases_keeps_every_case_in_its_split(small_phantoms, tmp_path):
    cases = pd.read_csv(small_phantoms / "cases.csv")
    files = ["image", "lung", "lesion", "twin"]
    cases[files] = cases[files].map(lambda p: str(small_phantoms / p) if isinstance(p, str) else p)
    copies = cases.assign(case_id=cases["case_id"] + "_b")   # same scans, new case ids
    config = load_config(None, ["data.split_fractions=[0.4,0.3,0.3]"])
    url = str(tmp_path / "store")
    cases.iloc[:3].to_csv(tmp_path / "first.csv", index=False)
    assert ingest(str(tmp_path / "first.csv"), url, config, progress=False).ok
    first = json.loads((tmp_path / "store" / "splits.json").read_text())["schemes"]
    pd.concat([cases, copies]).to_csv(tmp_path / "all.csv", index=False)
    assert ingest(str(tmp_path / "all.csv"), url, config, progress=False).ok
    grown = json.loads((tmp_path / "store" / "splits.json").read_text())["schemes"]
    key = "seed=0 fractions=0.4,0.3,0.3"
    assert len(first[key]) == 3 and len(grown[key]) == 8
    assert {case: grown[key][case] for case in first[key]} == first[key]
    assert set(grown[key].values()) == {"train", "val", "test"}
