"""``raylung segment`` with a trained model: one scan, DICOM, a batch with a broken file, the
Python API, and the test report that train-seg writes."""

from __future__ import annotations

import json
import shutil

import fsspec
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from raylung.cli import main
from raylung.config import load_config
from raylung.evaluate.overlap import dice
from raylung.io.read import read_volume
from raylung.preprocess.thorax_crop import body_mask
from raylung.segment.segmenter import Segmenter
from raylung.train.seg_report import report_test_split

pytestmark = pytest.mark.slow


def _array(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _same_grid(a: sitk.Image, b: sitk.Image, tol: float = 0.0) -> bool:
    """Size equal; spacing, origin, direction equal up to ``tol`` (NIfTI keeps float32)."""
    return a.GetSize() == b.GetSize() and all(
        np.allclose(getattr(a, f)(), getattr(b, f)(), rtol=0, atol=tol)
        for f in ("GetSpacing", "GetOrigin", "GetDirection"))


def test_same_mask_twice_and_through_api_cli_and_batch(segmenter_file, small_phantoms, tmp_path,
                                                      capsys):
    scan = small_phantoms / "phantom_0001" / "image.nii.gz"
    segmenter = Segmenter(segmenter_file)
    first, second = segmenter(sitk.ReadImage(str(scan))), segmenter(sitk.ReadImage(str(scan)))
    api = sitk.GetArrayFromImage(first.probability)
    assert np.array_equal(api, sitk.GetArrayFromImage(second.probability))
    assert 0.0 < api.max() and api.min() < 1.0
    assert main(["segment", str(scan), "--model", str(segmenter_file), "--out",
                 str(tmp_path / "one.nii.gz"), "--probabilities"]) == 0
    assert np.array_equal(_array(tmp_path / "one.nii.gz"), sitk.GetArrayFromImage(first.mask))
    assert np.allclose(_array(tmp_path / "one_probability.nii.gz"), api)

    batch = tmp_path / "scans"
    batch.mkdir()
    for name in ("phantom_0001", "phantom_0002"):
        shutil.copy(small_phantoms / name / "image.nii.gz", batch / f"{name}.nii.gz")
    (batch / "broken.nii.gz").write_bytes(b"not a scan")
    capsys.readouterr()
    assert main(["segment", str(batch), "--model", str(segmenter_file), "--out",
                 str(tmp_path / "masks"), "--actors", "2"]) == 1  # 2 actors on 2 CPUs
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("raylung segment: ")]
    assert len(lines) == 1 and "broken.nii.gz: " in lines[0], err
    masks = tmp_path / "masks"
    assert sorted(p.name for p in masks.iterdir()) == [  # no temporary file left behind
        ".raylung_batch.json", "phantom_0001.nii.gz", "phantom_0002.nii.gz"]
    assert np.array_equal(_array(masks / "phantom_0001.nii.gz"), sitk.GetArrayFromImage(first.mask))

    # a rerun with the same model and settings runs only the scan that has no mask
    written = {p.name: p.stat().st_mtime_ns for p in masks.glob("*.nii.gz")}
    args = ["segment", str(batch), "--model", str(segmenter_file), "--out", str(masks)]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "2 of 3 scans already in" in out and "running the other 1" in out
    assert {p.name: p.stat().st_mtime_ns for p in masks.glob("*.nii.gz")} == written
    (batch / "broken.nii.gz").unlink()
    assert main([*args, "--no-postprocess"]) == 0  # other settings: every scan again
    assert "already in" not in capsys.readouterr().out
    assert all(p.stat().st_mtime_ns > written[p.name] for p in masks.glob("*.nii.gz"))


def test_dicom_series_folder_and_single_dicom_file(segmenter_file, small_phantoms, dicom_writer,
                                                   tmp_path):
    image = sitk.Cast(sitk.ReadImage(str(small_phantoms / "phantom_0000" / "image.nii.gz")),
                      sitk.sitkInt16)
    folder = dicom_writer(image, tmp_path / "series")
    assert main(["segment", str(folder), "--model", str(segmenter_file), "--out",
                 str(tmp_path / "out"), "--sides"]) == 0
    mask = sitk.ReadImage(str(tmp_path / "out" / "series.nii.gz"))
    assert _same_grid(mask, read_volume(folder), tol=1e-5)  # DICOM's doubles, NIfTI's floats
    assert set(np.unique(sitk.GetArrayFromImage(mask))) <= {0, 1, 2}
    one = sorted(folder.glob("*.dcm"))[image.GetDepth() // 2]
    assert main(["segment", str(one), "--model", str(segmenter_file), "--out",
                 str(tmp_path / "slice.nrrd")]) == 0
    mask = sitk.ReadImage(str(tmp_path / "slice.nrrd"))  # NRRD keeps doubles: exact
    assert mask.GetSize() == (96, 96, 1) and _same_grid(mask, read_volume(one))


def test_train_seg_learns_beyond_labelling_the_whole_body(trained_seg, phantom_store):
    """The segmenter learns: its loss falls, and on whole test scans it beats the chance-level
    answer "every voxel of the body is lung" (thorax_crop's body mask)."""
    run, _ = trained_seg
    losses = pd.read_csv(run / "metrics.csv")["loss_seg"].tolist()
    assert losses[-1] < 0.95 * losses[0], losses   # 1.35 -> 1.23 in 16 steps
    manifest = pd.read_parquet(phantom_store.url + "/manifest.parquet").set_index("case_id")
    per_case = pd.read_csv(run / "test" / "per_case.csv").set_index("case")
    for case, dice_score in per_case["dice"].items():
        image = sitk.GetArrayFromImage(sitk.ReadImage(manifest.loc[case, "source_image"]))
        lung = sitk.GetArrayFromImage(sitk.ReadImage(manifest.loc[case, "source_lung"]))
        assert dice_score > dice(body_mask(image, -500), lung) + 0.15, case   # 0.5 vs 0.3


def test_train_seg_scores_the_test_split_on_whole_scans(trained_seg, phantom_store):
    run, process = trained_seg
    per_case = pd.read_csv(run / "test" / "per_case.csv")
    manifest = pd.read_parquet(phantom_store.url + "/manifest.parquet").set_index("case_id")
    assert per_case["case"].nunique() == 2
    assert sorted(manifest.loc[per_case["case"].unique(), "domain"]) == ["healthy",
                                                                         "pathological"]
    lung = per_case[per_case["label"] == "lung"].set_index("case")
    for column in ("dice", "hd95_mm", "assd_mm", "nsd", "rim_dice", "volume_diff_pct"):
        assert lung[column].notna().all(), column
    sick = manifest.loc[lung.index, "domain"] == "pathological"
    assert lung.loc[sick, "lesion_inclusion"].between(0, 1).all()
    for case in lung.index:
        mask = sitk.ReadImage(str(run / "test" / "masks" / f"{case}.nii.gz"))
        assert _same_grid(mask, sitk.ReadImage(manifest.loc[case, "source_image"]))
    assert (run / "test" / "summary.csv").exists() and (run / "test" / "report.png").exists()
    assert "train-seg: test split, 2 whole scans in their native grid" in process.stdout
    tables = process.stdout.split("test split")[1]
    assert tables.index("pathological (1 scan):") < tables.index("healthy (1 scan):")
    assert "dice" in tables.split("healthy (1 scan):")[0], "a table per domain, its own scores"


def test_the_test_report_of_a_run_folder_on_object_storage(trained_seg, segmenter_file,
                                                           phantom_store, s3_options):
    """A run folder on a local S3 server: the model is read from there and the report, of the
    pathological test case only, is written there, with the local run's scores of that case."""
    run, _ = trained_seg
    url = "s3://raylung-test/seg_run"
    fs = fsspec.filesystem("s3", **s3_options)
    fs.put_file(str(segmenter_file), f"{url}/checkpoint/segmenter.pt")
    config = load_config(None, [f"data.store={phantom_store.url}",
                                "data.split_fractions=[0.5,0,0.5]"])
    config.storage.storage_options = s3_options
    per_case = report_test_split(config, f"{url}/checkpoint/segmenter.pt", f"{url}/test",
                                 progress=False, domain="pathological")
    assert list(per_case["domain"].unique()) == ["pathological"]
    (case,) = per_case["case"].unique()
    with fs.open(f"{url}/test/per_case.csv") as remote:
        written = pd.read_csv(remote)
    local = pd.read_csv(run / "test" / "per_case.csv")
    columns = ["case", "label", "dice", "rim_dice", "hd95_mm", "lesion_inclusion"]
    pd.testing.assert_frame_equal(written[columns],
                                  local.loc[local["case"] == case, columns].reset_index(drop=True))
    assert [m.rsplit("/", 1)[1] for m in fs.ls(f"{url}/test/masks")] == [f"{case}.nii.gz"]
    assert fs.exists(f"{url}/test/report.png") and fs.exists(f"{url}/test/summary.csv")


def test_the_test_report_scores_source_masks_as_ingest_reads_them(trained_seg, segmenter_file,
                                                                  small_phantoms, tmp_path):
    """A case whose lung mask lies on another grid (reoriented to RAS) with its lung as label
    7 beside a label 9 that is no lung (``ingest.lung_labels=[7]``): ingest takes it, and the
    report scores the case as it scores the plain mask (it once failed on the grid)."""
    from raylung.ingest.run import ingest

    local = pd.read_csv(trained_seg[0] / "test" / "per_case.csv")
    cases = pd.read_csv(small_phantoms / "cases.csv").set_index("case_id")
    case = next(c for c in local["case"] if cases.loc[c, "domain"] == "pathological")
    row = cases.loc[case]
    lung = sitk.ReadImage(str(small_phantoms / row.lung))
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(small_phantoms / row.image)))
    labels = np.where(sitk.GetArrayFromImage(lung) > 0, 7, np.where(image > 300, 9, 0))
    relabelled = sitk.GetImageFromArray(labels.astype(np.uint8))
    relabelled.CopyInformation(lung)
    sitk.WriteImage(sitk.DICOMOrient(relabelled, "RAS"), str(tmp_path / "lung.nii.gz"))
    pd.DataFrame([{"case_id": case, "image": str(small_phantoms / row.image), "domain": row.domain,
                   "lung": str(tmp_path / "lung.nii.gz"),
                   "lesion": str(small_phantoms / row.lesion)}]).to_csv(
        tmp_path / "cases.csv", index=False)
    config = load_config(None, [f"data.store={tmp_path / 'store'}", "ingest.lung_labels=[7]",
                                "data.split_fractions=[0,0,1]"])
    assert ingest(str(tmp_path / "cases.csv"), config.data.store, config, progress=False).ok
    report = report_test_split(config, str(segmenter_file), str(tmp_path / "test"),
                               progress=False)
    columns = ["case", "label", "dice", "rim_dice", "hd95_mm", "lesion_inclusion"]
    pd.testing.assert_frame_equal(report[columns],
                                  local.loc[local["case"] == case, columns].reset_index(drop=True))
    test = tmp_path / "test"  # what it scored against is kept: evaluate gives the same scores
    assert main(["evaluate", "--pred", str(test / "masks"), "--ref", str(test / "references"),
                 "--lesions", str(test / "lesions"), "--out", str(tmp_path / "again")]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "again" / "per_case.csv")[columns],
                                  report[columns])


def test_a_model_url_is_read_with_the_storage_options(segmenter_file, small_phantoms, s3_options,
                                                     tmp_path):
    """``--model s3://...`` with ``storage.storage_options`` (the local S3 server's endpoint
    and keys): the same mask as the local file gives."""
    fsspec.filesystem("s3", **s3_options).put_file(str(segmenter_file),
                                                   "raylung-test/models/segmenter.pt")
    scan = next(small_phantoms.glob("*/image.nii.gz"))
    assert main(["segment", str(scan), "--model", str(segmenter_file),
                 "--out", str(tmp_path / "local.nii.gz")]) == 0
    assert main(["segment", str(scan), "--model", "s3://raylung-test/models/segmenter.pt",
                 "--out", str(tmp_path / "remote.nii.gz"),
                 f"storage.storage_options={json.dumps(s3_options)}"]) == 0
    local, remote = (sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"{name}.nii.gz")))
                     for name in ("local", "remote"))
    assert np.array_equal(local, remote) and local.any()


def test_real_ct_mask_lands_on_its_grid(segmenter_file, real_ct, tmp_path):
    scan = real_ct / "example_ct_sm.nii.gz"   # direction diag(-1, -1, 1), 3 mm voxels
    assert main(["segment", str(scan), "--model", str(segmenter_file), "--out",
                 str(tmp_path / "real.nii.gz"), "--sides"]) == 0
    mask, image = sitk.ReadImage(str(tmp_path / "real.nii.gz")), sitk.ReadImage(str(scan))
    assert _same_grid(mask, image) and mask.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(sitk.GetArrayFromImage(mask))) <= {0, 1, 2}
