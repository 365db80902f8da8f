"""The ways to name what to ingest: a parquet table, a folder without a table, multi-label masks."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from raylung.cli import main
from raylung.config import load_config
from raylung.errors import InputError
from raylung.ingest.run import ingest
from raylung.store.case_store import CaseStore
from raylung.store.manifest import read_manifest

pytestmark = pytest.mark.usefixtures("ray_cluster")

VOLUMES = ("image", "lung", "lesion", "lung_centres")


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
    from raylung.ingest.sources import read_sources

    src, picked = case_folders
    (src / ".git").mkdir()
    CaseStore(str(src / "store")).create()
    sources, failures = read_sources(src, "healthy")
    assert sorted(s.case_id for s in sources) == sorted(picked) and not failures
    (tmp_path / "cases.csv").write_text("case_id,image,domain\n")
    with pytest.raises(InputError, match=r"cases.csv: cases table has no rows$"):
        read_sources(tmp_path / "cases.csv")
