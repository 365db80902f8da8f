"""Every kind of bad input: one line naming file and problem, no partial case, others ingested."""

from __future__ import annotations

import contextlib
import io
import shutil

import numpy as np
import pandas as pd
import pytest
import ray
import SimpleITK as sitk

from raylung.cli import main
from raylung.errors import InputError
from raylung.store.case_store import CaseStore

pytestmark = pytest.mark.usefixtures("ray_cluster")

# case id -> (file named in the report, words of the reason)
EXPECTED = {
    "missing": ("missing/image.nii.gz", "file not found"),
    "truncated": ("truncated/image.nii.gz", "truncated or corrupt compressed data"),
    "bad_dicom": ("bad_dicom/dicom", "no readable DICOM series"),
    "png": ("png/image.png", "image is 2-D"),
    "nifti_2d": ("nifti_2d/image.nii.gz", "image is 2-D"),
    "zero_size": ("zero_size/image.mha", "zero size"),
    "nan": ("nan/image.nii.gz", "NaN/inf voxels"),
    "far_mask": ("far_mask/lung.nii.gz", "does not overlap its image"),
    "prob_mask": ("prob_mask/lung.nii.gz", "not an integer label map"),
    "empty_lung": ("empty_lung/lung.nii.gz", "lung mask is empty"),
    "dup": ("cases.csv", "duplicate case id 'dup' (2 rows)"),
    "sick": ("cases.csv", "unknown domain 'ill'"),
    "vector": ("vector/image.mha", "is not a scalar number"),
}


def _bad_cases(src, good_image, good_lung, image_writer):
    """Build one case folder per kind of bad input; return the table rows."""
    image = sitk.ReadImage(str(good_image))
    array = sitk.GetArrayFromImage(image)
    rows = []

    def add(case, image_path, lung=None, domain="healthy"):
        rows.append({"case_id": case, "image": str(image_path), "lung": lung and str(lung),
                     "lesion": None, "domain": domain})

    add("missing", src / "missing/image.nii.gz")
    (src / "truncated").mkdir()
    (src / "truncated/image.nii.gz").write_bytes(good_image.read_bytes()[:-2000])
    add("truncated", src / "truncated/image.nii.gz")
    (src / "bad_dicom/dicom").mkdir(parents=True)
    (src / "bad_dicom/dicom/1.dcm").write_bytes(b"garbage" * 50)
    add("bad_dicom", src / "bad_dicom/dicom")
    add("png", image_writer(src / "png/image.png", array[0].astype(np.uint8)))
    add("nifti_2d", image_writer(src / "nifti_2d/image.nii.gz", array[0]))
    (src / "zero_size").mkdir()
    (src / "zero_size/image.mha").write_text(
        "ObjectType = Image\nNDims = 3\nDimSize = 4 4 0\nElementType = MET_SHORT\n"
        "ElementSpacing = 1 1 1\nElementDataFile = LOCAL\n")
    add("zero_size", src / "zero_size/image.mha")
    with_nan = array.astype(np.float32)
    with_nan[0, 0, 0] = np.nan
    add("nan", image_writer(src / "nan/image.nii.gz", with_nan, spacing=image.GetSpacing()))
    far = image_writer(src / "far_mask/lung.nii.gz", sitk.GetArrayFromImage(sitk.ReadImage(
        str(good_lung))), spacing=image.GetSpacing(), origin=(5000.0, 0.0, 0.0))
    add("far_mask", good_image, far)
    prob = image_writer(src / "prob_mask/lung.nii.gz", np.full(array.shape, 0.4, np.float32),
                        spacing=image.GetSpacing(), origin=image.GetOrigin())
    add("prob_mask", good_image, prob)
    empty = image_writer(src / "empty_lung/lung.nii.gz", np.zeros(array.shape, np.uint8),
                         spacing=image.GetSpacing(), origin=image.GetOrigin())
    add("empty_lung", good_image, empty)
    add("dup", good_image)
    add("dup", good_image)
    add("sick", good_image, domain="ill")
    (src / "vector").mkdir()
    sitk.WriteImage(sitk.Image([4, 4, 4], sitk.sitkVectorUInt8, 3), str(src / "vector/image.mha"))
    add("vector", src / "vector/image.mha")
    return rows


@pytest.fixture(scope="module")
def bad_run(small_phantoms, tmp_path_factory, image_writer):
    src = tmp_path_factory.mktemp("bad_src")
    good = pd.read_csv(small_phantoms / "cases.csv").iloc[0]
    shutil.copytree(small_phantoms / good.case_id, src / "good")
    rows = _bad_cases(src, src / "good/image.nii.gz", src / "good/lung.nii.gz",
                      image_writer)
    rows.append({"case_id": "good", "image": str(src / "good/image.nii.gz"),
                 "lung": str(src / "good/lung.nii.gz"), "lesion": None, "domain": "healthy"})
    pd.DataFrame(rows).to_csv(src / "cases.csv", index=False)
    store = src / "store"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = main(["ingest", str(src / "cases.csv"), "--store", str(store)])
    return store, status, err.getvalue()


def test_exit_status_and_one_line_per_bad_case(bad_run):
    store, status, err = bad_run
    assert status == 1
    report = pd.read_csv(store / "ingest_report.csv", keep_default_na=False)
    assert sorted(set(report["case"])) == sorted(EXPECTED)
    assert (report["case"] == "dup").sum() == 2
    for case, (file, words) in EXPECTED.items():
        line = [ln for ln in err.splitlines() if ln.startswith(f"raylung ingest: case {case}:")]
        rows_ = report[report["case"] == case]
        assert words in rows_["reason"].iloc[0], (case, rows_["reason"].iloc[0])
        assert rows_["file"].iloc[0].endswith(file), (case, rows_["file"].iloc[0])
        assert line and words in line[0] and file in line[0], (case, err)


def test_good_case_still_ingested_and_no_partial_cases(bad_run):
    store, _, _ = bad_run
    cases = store / "cases"
    assert sorted(p.name for p in cases.iterdir() if p.is_dir()) == ["good"]
    assert CaseStore(str(store)).case_ids() == ["good"]


def test_an_input_error_raised_in_a_ray_worker_reaches_the_driver_whole():
    """Ray pickles a worker's error for the driver: the file and the problem arrive intact."""
    @ray.remote
    def fail() -> None:
        raise InputError("/data/x.nii.gz", "file not found")
    with pytest.raises(InputError) as caught:
        ray.get(fail.remote())
    assert (caught.value.path, caught.value.problem) == ("/data/x.nii.gz", "file not found")
