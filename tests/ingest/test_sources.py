"""The ways to name what to ingest: a parquet table, a folder without a table, multi-label masks;
the case ids and case folders that are refused (those tests need no Ray cluster)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest

from raylung.cli import main
from raylung.config import load_config
from raylung.errors import InputError
from raylung.ingest.run import ingest
from raylung.ingest.sources import read_sources
from raylung.io.read import IMAGE_SUFFIXES
from raylung.store.case_store import CaseStore
from raylung.store.manifest import read_manifest

VOLUMES = ("image", "lung", "lesion", "lung_centres")


@pytest.mark.usefixtures("ray_cluster")
def test_parquet_table_ingests_like_cases_csv(small_phantoms, phantom_store, tmp_path):
    table = pd.read_csv(small_phantoms / "cases.csv")
    for column in ("image", "lung", "lesion", "twin"):  # the parquet lives elsewhere: absolute paths
        table[column] = [None if pd.isna(p) else str(small_phantoms / p) for p in table[column]]
    table.to_parquet(tmp_path / "cases.parquet", index=False)
    url = str(tmp_path / "store")
    result = ingest(str(tmp_path / "cases.parquet"), url, load_config(), progress=False)
    assert result.ok and sorted(result.written) == sorted(table["case_id"]), result.failures
    store = CaseStore(url)
    pd.testing.assert_frame_equal(read_manifest(store), read_manifest(phantom_store))
    for case_id in table["case_id"]:
        ours, reference = store.open_case(case_id), phantom_store.open_case(case_id)
        assert sorted(ours.array_keys()) == sorted(reference.array_keys())
        for name in reference.array_keys():
            np.testing.assert_array_equal(ours[name][...], reference[name][...], err_msg=name)
        assert dict(ours.attrs) == dict(reference.attrs)


@pytest.fixture
def case_folders(small_phantoms, tmp_path):
    """One healthy and one pathological phantom case folder, with no cases.csv beside them."""
    table = pd.read_csv(small_phantoms / "cases.csv")
    picked = [table[table["domain"] == d].iloc[0]["case_id"] for d in ("healthy", "pathological")]
    src = tmp_path / "src"
    for case_id in picked:
        shutil.copytree(small_phantoms / case_id, src / case_id)
    return src, picked


@pytest.mark.usefixtures("ray_cluster")
def test_folder_without_table_takes_the_configured_domain(case_folders, phantom_store, tmp_path):
    src, (healthy, sick) = case_folders
    url = str(tmp_path / "store")
    config = load_config(None, ["ingest.domain=healthy"])
    result = ingest(str(src), url, config, progress=False)
    assert result.ok and sorted(result.written) == sorted([healthy, sick]), result.failures
    manifest = read_manifest(CaseStore(url)).set_index("case_id")
    assert manifest["domain"].to_dict() == {healthy: "healthy", sick: "healthy"}
    assert manifest["labelled"].to_dict() == {healthy: True, sick: True}
    assert manifest["has_lesion"].to_dict() == {healthy: False, sick: True}  # found by name
    group = CaseStore(url).open_case(sick)
    np.testing.assert_array_equal(group["lesion"][...],
                                  phantom_store.open_case(sick)["lesion"][...])


def test_folder_without_table_or_domain_is_a_one_line_error(case_folders, tmp_path, capsys):
    src, _ = case_folders
    status = main(["ingest", str(src), "--store", str(tmp_path / "store")])
    err = capsys.readouterr().err
    assert status == 2
    assert err == (f"raylung ingest: error: {src}: folder has no cases.csv: set "
                   "ingest.domain=healthy|pathological for its cases, or give a cases table\n")
    assert not (tmp_path / "store").exists()


LOBES = [10, 11, 12, 13, 14]


@pytest.fixture
def multi_label_case(tmp_path, image_writer):
    """A 16x48x48 body with ribs, and a label map: 1 body, 10-14 five lobes, 20 trachea."""
    shape, spacing = (16, 48, 48), (0.8, 0.8, 2.5)
    z, y, x = np.indices(shape)
    body = ((y - 24) / 20.0) ** 2 + ((x - 24) / 22.0) ** 2 <= 1
    ribs = body & (((y - 24) / 17.0) ** 2 + ((x - 24) / 19.0) ** 2 > 0.8)
    labels = np.where(body, 1, 0).astype(np.uint8)
    right, left = (x >= 8) & (x < 22), (x >= 27) & (x < 40)
    inner = (y >= 12) & (y < 36)
    labels[right & inner & (z < 8)] = 10
    labels[right & inner & (z >= 8)] = 11
    labels[left & inner & (z < 5)] = 12
    labels[left & inner & (z >= 5) & (z < 11)] = 13
    labels[left & inner & (z >= 11)] = 14
    labels[(np.abs(x - 24) <= 1) & (np.abs(y - 20) <= 1)] = 20
    image = np.where(body, 40, -1000).astype(np.int16)
    image[np.isin(labels, LOBES)] = -850
    image[labels == 20] = -1000
    image[ribs] = 700
    rows = [{"case_id": "lobes", "domain": "healthy",
             "image": str(image_writer(tmp_path / "lobes/image.nii.gz", image, spacing)),
             "lung": str(image_writer(tmp_path / "lobes/seg.nii.gz", labels, spacing))}]
    pd.DataFrame(rows).to_csv(tmp_path / "cases.csv", index=False)
    return tmp_path / "cases.csv", labels


@pytest.mark.usefixtures("ray_cluster")
@pytest.mark.parametrize("lung_labels", [LOBES, []], ids=["lobes", "default"])
def test_multi_label_mask_becomes_the_lung_through_lung_labels(multi_label_case, tmp_path,
                                                                lung_labels):
    table, labels = multi_label_case
    config = load_config(None, ["ingest.spacing_mm=null", f"ingest.lung_labels={lung_labels}"])
    url = str(tmp_path / "store")
    assert ingest(str(table), url, config, progress=False).ok
    lung = CaseStore(url).open_case("lobes")["lung"][...]
    expected = np.isin(labels, lung_labels) if lung_labels else labels != 0
    assert lung.dtype == np.uint8
    np.testing.assert_array_equal(lung, expected.astype(np.uint8))


@pytest.mark.usefixtures("ray_cluster")
def test_a_case_whose_changed_source_fails_leaves_the_store(case_folders, tmp_path):
    """Its earlier version would go on training while the report says it failed."""
    src, (healthy, sick) = case_folders
    url = str(tmp_path / "store")
    config = load_config(None, ["ingest.domain=healthy"])
    assert ingest(str(src), url, config, progress=False).ok
    image = src / healthy / "image.nii.gz"
    image.write_bytes(image.read_bytes()[:-2000])
    (failure,) = ingest(str(src), url, config, progress=False).failures
    assert failure.case == healthy
    assert failure.reason.endswith("(its earlier version was removed from the store)")
    assert read_manifest(CaseStore(url))["case_id"].tolist() == [sick]


def test_a_folder_scan_skips_hidden_folders_and_a_store_inside_it(case_folders, tmp_path):
    src, picked = case_folders
    (src / ".git").mkdir()
    CaseStore(str(src / "store")).create()
    sources, failures = read_sources(src, "healthy")
    assert sorted(s.case_id for s in sources) == sorted(picked) and not failures
    (tmp_path / "cases.csv").write_text("case_id,image,domain\n")
    with pytest.raises(InputError, match=r"cases.csv: cases table has no rows$"):
        read_sources(tmp_path / "cases.csv")


def test_case_ids_that_break_the_store_are_refused(tmp_path):
    """zarr took case 'zarr.json' for its metadata, fsspec read 'x::y' as a chained URL."""
    ids = ["zarr.json", "__z", "x::y", "tab\tx", "a/b", "ok"]
    table = pd.DataFrame({"case_id": ids, "image": "ct.nii.gz", "domain": "healthy"})
    table.to_csv(tmp_path / "cases.csv", index=False)
    sources, failures = read_sources(tmp_path / "cases.csv")
    assert [s.case_id for s in sources] == ["ok"]
    assert {f.case: f.reason for f in failures} == {
        "zarr.json": "invalid case id 'zarr.json' (zarr reserves names starting with '__' and "
                     "'zarr.json')",
        "__z": "invalid case id '__z' (zarr reserves names starting with '__' and 'zarr.json')",
        "x::y": "invalid case id 'x::y' ('::' chains URLs in fsspec)",
        "tab\tx": "invalid case id 'tab\\tx' (it holds a control character)",
        "a/b": "invalid case id 'a/b' ('/' and a leading '.' are path syntax)",
    }


def test_a_case_folder_whose_name_is_not_utf8_is_one_printable_failure(tmp_path, image_writer):
    """Its id would reach SimpleITK (which aborts) and the report (which cannot hold it)."""
    image_writer(tmp_path / "src/ok/image.nii.gz", np.zeros((2, 2, 2), np.int16))
    os.rename(tmp_path / "src/ok", os.fsencode(tmp_path / "src") + b"/case\xff")
    sources, (failure,) = read_sources(tmp_path / "src", "healthy")
    assert not sources
    assert (failure.case, failure.reason) == (
        "case\\xff", "invalid case id 'case\\udcff' (it is not valid UTF-8)")


def test_a_case_folder_without_image_says_what_it_holds(tmp_path, image_writer):
    """Its image was "…/capital/image: file not found"; an upper-case suffix is an image."""
    image_writer(tmp_path / "src/capital/Image.nii.gz", np.zeros((2, 2, 2), np.int16))
    (tmp_path / "src/capital/notes.txt").write_text("scanner B")
    image_writer(tmp_path / "src/upper/ct.nii.gz", np.zeros((2, 2, 2), np.int16))
    (tmp_path / "src/upper/ct.nii.gz").rename(tmp_path / "src/upper/image.NII.GZ")
    sources, (failure,) = read_sources(tmp_path / "src", "healthy")
    assert [(s.case_id, s.image) for s in sources] == [("upper",
                                                         str(tmp_path / "src/upper/image.NII.GZ"))]
    assert (failure.case, failure.reason) == ("capital", (
        f"no image.<suffix> with a supported suffix ({', '.join(IMAGE_SUFFIXES)}) nor an image/ "
        "DICOM folder in capital/ (found Image.nii.gz, notes.txt)"))


def test_a_case_folder_with_two_scans_fails_alone(tmp_path, image_writer):
    """image.nii.gz beside image.mha: the first suffix was taken without a word."""
    for name in ("image.nii.gz", "image.mha", "lung.nii.gz"):
        image_writer(tmp_path / "src/two" / name, np.zeros((2, 2, 2), np.int16))
    image_writer(tmp_path / "src/one/image.nii.gz", np.zeros((2, 2, 2), np.int16))
    sources, (failure,) = read_sources(tmp_path / "src", "healthy")
    assert [s.case_id for s in sources] == ["one"]
    assert (failure.case, failure.reason) == ("two", "image.mha and image.nii.gz are both its "
                                                     "image: keep one")


def test_a_mask_a_folder_scan_does_not_use_is_named_in_a_warning(tmp_path, image_writer):
    """A lung mask named seg.nii.gz left its case unlabelled without a word."""
    for name in ("image.nii.gz", "seg.nii.gz"):
        image_writer(tmp_path / "src/c1" / name, np.zeros((2, 2, 2), np.int16))
    with pytest.warns(UserWarning, match=r"src/c1: seg.nii.gz not used \(a case folder's files "
                                         r"are image, lung, lesion, twin.<suffix>; without a "
                                         r"lung.<suffix> the case is unlabelled\)$"):
        (source,), _ = read_sources(tmp_path / "src", "healthy")
    assert not source.labelled
