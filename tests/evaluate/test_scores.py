"""Per-case scores, their summary and the folder evaluation, on masks whose answers are known."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch
from monai.metrics import (compute_average_surface_distance, compute_hausdorff_distance,
                           compute_surface_dice)

from raylung.errors import InputError
from raylung.evaluate.folders import evaluate_cases, match_cases
from raylung.evaluate.overlap import rim_dice
from raylung.evaluate.report import format_summary, summarise_scores
from raylung.evaluate.scores import CaseWarning, EmptyMaskWarning, score_case

SPACING = (2.5, 1.3, 0.7)  # (z, y, x) mm: anisotropic, as in thick-slice CT


def _box(shape=(10, 10, 10), lo=(2, 2, 2), hi=(6, 6, 6), value=1):
    mask = np.zeros(shape, np.uint8)
    mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = value
    return mask


def _ellipsoid(centre, radii, shape=(40, 60, 90)):
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    return ((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 \
        + ((x - centre[2]) / radii[2]) ** 2 <= 1


def _lung_pair():
    """Reference ellipsoid; a shifted, smaller prediction plus a far false-positive blob."""
    ref = _ellipsoid((20, 30, 45), (8, 15, 25)).astype(np.uint8)
    pred = _ellipsoid((21, 28, 48), (7, 16, 22)) | _ellipsoid((10, 45, 70), (2, 3, 5))
    return pred.astype(np.uint8), ref


def test_overlap_and_volumes_by_hand():
    ref = _box()                                   # 64 voxels
    pred = _box(hi=(6, 6, 8))                      # 96 voxels, all 64 of ref inside
    row = score_case(pred, ref, spacing=(2.0, 1.0, 0.5))[0]    # 1 mm^3 voxels
    assert row["label"] == "lung"
    assert row["dice"] == pytest.approx(2 * 64 / 160)
    assert row["iou"] == pytest.approx(64 / 96)
    assert row["sensitivity"] == 1.0 and row["precision"] == pytest.approx(64 / 96)
    assert row["volume_pred_ml"] == pytest.approx(0.096)
    assert row["volume_ref_ml"] == pytest.approx(0.064)
    assert row["volume_diff_ml"] == pytest.approx(0.032)
    assert row["volume_diff_pct"] == pytest.approx(50.0)


def test_surface_scores_of_two_lines_by_hand():
    # Thin lines: every voxel is a surface voxel. Along x (1.5 mm): ref x = 2..4, pred x = 3..6.
    ref, pred = np.zeros((5, 5, 10), np.uint8), np.zeros((5, 5, 10), np.uint8)
    ref[2, 2, 2:5] = 1
    pred[2, 2, 3:7] = 1
    row = score_case(pred, ref, spacing=(1.0, 1.0, 1.5), tolerance_mm=2.0)[0]
    # pred -> ref: 0, 0, 1.5, 3.0 mm; ref -> pred: 1.5, 0, 0 mm
    # 95th percentiles (linear): 1.5 + 0.85 * 1.5 = 2.775 and 0.9 * 1.5 = 1.35; HD95 the larger
    assert row["hd95_mm"] == pytest.approx(2.775, abs=1e-5)
    assert row["assd_mm"] == pytest.approx(6.0 / 7, abs=1e-5)
    assert row["nsd"] == pytest.approx(6 / 7)    # all but the 3.0 mm point within 2 mm
    assert score_case(pred, ref, (1.0, 1.0, 1.5), tolerance_mm=1.0)[0]["nsd"] == \
        pytest.approx(4 / 7)
    assert row["dice"] == pytest.approx(4 / 7)


def _surface(mask):
    """Voxels of ``mask`` with a background face neighbour (SimpleITK, spacing set)."""
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(SPACING[::-1])
    return image - sitk.BinaryErode(image, [1, 1, 1], sitk.sitkCross)


def _directed_distances(a, b):
    """Distance (mm) from each surface voxel of ``a`` to the nearest surface voxel of ``b``."""
    to_b = sitk.SignedMaurerDistanceMap(_surface(b), insideIsPositive=False,
                                        squaredDistance=False, useImageSpacing=True)
    distance = np.clip(sitk.GetArrayFromImage(to_b), 0, None)   # on b's surface: <= 0 -> 0
    return distance[sitk.GetArrayFromImage(_surface(a)) > 0]


def test_distances_agree_with_simpleitk_on_anisotropic_spacing():
    pred, ref = _lung_pair()
    row = score_case(pred, ref, SPACING)[0]
    to_ref, to_pred = _directed_distances(pred, ref), _directed_distances(ref, pred)
    hausdorff = sitk.HausdorffDistanceImageFilter()
    hausdorff.Execute(_surface(pred), _surface(ref))
    # The reference helper itself: its maximum is SimpleITK's Hausdorff distance of the surfaces.
    assert max(to_ref.max(), to_pred.max()) == pytest.approx(hausdorff.GetHausdorffDistance(),
                                                             abs=1e-3)
    # Both sides measure exact Euclidean distances between the same surface-voxel centres (6-
    # neighbour surfaces), so they differ only by float32 rounding: 1e-3 mm is 700x below the
    # smallest voxel side (0.7 mm), where a different surface definition would show.
    expected_hd95 = max(np.percentile(to_ref, 95), np.percentile(to_pred, 95))
    expected_assd = (to_ref.sum() + to_pred.sum()) / (len(to_ref) + len(to_pred))
    assert row["hd95_mm"] == pytest.approx(expected_hd95, abs=1e-3)
    assert row["assd_mm"] == pytest.approx(expected_assd, abs=1e-3)
    assert 2.0 < row["hd95_mm"] < hausdorff.GetHausdorffDistance()    # non-trivial
    assert row["rim_dice"] == rim_dice(pred, ref, SPACING, 3.0)


def test_surface_scores_are_monais_three_metrics():
    """One edge-distance computation gives what MONAI's own metric functions give."""
    pred, ref = _lung_pair()
    row = score_case(pred, ref, SPACING, tolerance_mm=1.5)[0]
    y_pred, y = (torch.from_numpy(np.stack([m == 0, m != 0]))[None] for m in (pred, ref))
    spacing = list(SPACING)
    with warnings.catch_warnings():  # MONAI warns about its own internal call
        warnings.filterwarnings("ignore", ".*always_return_as_numpy", FutureWarning)
        expected = {"hd95_mm": compute_hausdorff_distance(y_pred, y, percentile=95,
                                                          spacing=spacing),
                    "assd_mm": compute_average_surface_distance(y_pred, y, symmetric=True,
                                                                spacing=spacing),
                    "nsd": compute_surface_dice(y_pred, y, [1.5], spacing=spacing)}
    for name, value in expected.items():
        assert row[name] == pytest.approx(float(value), rel=1e-6), name
    assert 0.2 < row["nsd"] < 0.9    # the tolerance cuts through the distances


def test_empty_prediction():
    ref = _box()
    with pytest.warns(EmptyMaskWarning, match="label lung: empty prediction"):
        row = score_case(np.zeros_like(ref), ref, SPACING)[0]
    diagonal = np.linalg.norm(np.array(ref.shape) * SPACING)
    assert row["dice"] == row["iou"] == row["nsd"] == row["rim_dice"] == 0.0
    assert row["sensitivity"] == row["precision"] == 0.0
    assert row["hd95_mm"] == row["assd_mm"] == pytest.approx(diagonal)
    assert row["volume_diff_pct"] == -100.0


def test_empty_reference_and_both_empty():
    pred = _box()
    with pytest.warns(EmptyMaskWarning, match="label lung: empty reference"):
        row = score_case(pred, np.zeros_like(pred), SPACING)[0]
    assert row["dice"] == row["sensitivity"] == row["precision"] == 0.0
    assert row["hd95_mm"] > 0 and "volume_diff_pct" not in row
    with pytest.warns(EmptyMaskWarning, match="empty prediction and empty reference"):
        row = score_case(np.zeros_like(pred), np.zeros_like(pred), SPACING)[0]
    assert row["dice"] == row["iou"] == row["nsd"] == row["rim_dice"] == 1.0
    assert row["sensitivity"] == row["precision"] == 1.0
    assert row["hd95_mm"] == row["assd_mm"] == row["volume_diff_pct"] == 0.0


def test_summary_of_empty_cases_has_no_nan():
    ref = _box()
    pairs = {"good": (_box(hi=(6, 6, 7)), ref), "no_pred": (np.zeros_like(ref), ref),
             "no_ref": (ref, np.zeros_like(ref)), "none": (np.zeros_like(ref),) * 2}
    with pytest.warns(EmptyMaskWarning):
        per_case = pd.DataFrame([{"case": case, **row} for case, (pred, truth) in pairs.items()
                                 for row in score_case(pred, truth, SPACING)])
    summary = summarise_scores(per_case)
    assert not summary.isna().any().any()
    dice = summary.set_index("metric").loc["dice"]
    assert dice["worst"] == 0.0 and dice["worst_case"] == "no_pred" and dice["cases"] == 4
    assert summary.set_index("metric").loc["volume_diff_pct", "cases"] == 3
    assert list(summary.columns) == ["label", "metric", "mean", "sd", "median", "worst",
                                     "worst_case", "cases"]
    assert "dice" in format_summary(summary) and "nan" not in format_summary(summary)
    empty = summary.set_index("metric").loc["empty_prediction"]
    assert (empty["mean"], empty["worst_case"], empty["cases"]) == (0.25, "no_pred", 4)
    assert "lung: 1 of 4 cases with an empty prediction (first no_pred): their HD95 and " \
           "ASSD are the volume's diagonal" in format_summary(summary)


def test_multi_label_maps_get_a_row_per_label():
    ref = _box(lo=(2, 2, 1), hi=(6, 6, 4), value=1) + _box(lo=(2, 2, 6), hi=(6, 6, 9), value=2)
    pred = ref.copy()
    pred[2:6, 2:6, 3] = 2                     # 16 voxels of the right label called left
    rows = {row["label"]: row for row in score_case(pred, ref, SPACING)}
    assert list(rows) == ["lung", "1", "2"]
    assert rows["lung"]["dice"] == 1.0
    assert rows["1"]["dice"] == pytest.approx(2 * 32 / (32 + 48))
    assert rows["2"]["dice"] == pytest.approx(2 * 48 / (64 + 48))
    sided = [row["label"] for row in score_case(pred, (ref != 0).astype(np.uint8), SPACING)]
    assert sided == ["lung"], "a binary reference is scored as one lung, whatever pred labels"


@pytest.mark.parametrize("pred_labels, named", [
    ({1: 1, 2: 1}, r"\[1\] of the prediction are not the reference's \[1, 2\]"),  # binary
    ({1: 1, 2: 3}, r"\[1, 3\] of the prediction are not the reference's \[1, 2\]")])
def test_other_labels_than_the_reference_s_are_one_lung_with_a_warning(pred_labels, named):
    """A binary mask (raylung segment's default) against a sided reference, or sides
    against lobes: label 1 of one is not label 1 of the other, so per-label rows would
    compare the whole lung with one side."""
    ref = _box(lo=(2, 2, 1), hi=(6, 6, 4), value=1) + _box(lo=(2, 2, 6), hi=(6, 6, 9), value=2)
    pred = np.vectorize(lambda v: pred_labels.get(v, 0))(ref).astype(ref.dtype)
    with pytest.warns(CaseWarning, match=named):
        rows = score_case(pred, ref, SPACING)
    assert [row["label"] for row in rows] == ["lung"] and rows[0]["dice"] == 1.0


def test_lesion_inclusion_and_its_pooled_summary():
    pred = _box()
    lesion_a, lesion_b = np.zeros_like(pred), np.zeros_like(pred)
    lesion_a[5, 5, 2:10] = 1                 # 8 voxels, x 2..9: 4 inside the box (x 2..5)
    lesion_b[3:6, 2:7, 4] = 1                # 15 voxels, y 2..6: 12 inside (y 2..5)
    row = score_case(pred, pred, SPACING, lesion=lesion_a)[0]
    assert (row["lesion_voxels"], row["lesion_included_voxels"]) == (8, 4)
    assert row["lesion_inclusion"] == 0.5
    empty = score_case(pred, pred, SPACING, lesion=np.zeros_like(pred))[0]
    assert empty["lesion_voxels"] == 0 and "lesion_inclusion" not in empty
    per_case = pd.DataFrame([{"case": "a", **row},
                             {"case": "b", **score_case(pred, pred, SPACING, lesion=lesion_b)[0]},
                             {"case": "c", **empty}])
    pooled = summarise_scores(per_case).set_index("metric").loc["lesion_inclusion_pooled"]
    assert pooled["mean"] == pytest.approx(16 / 23) and pooled["cases"] == 2


def test_a_rim_band_narrower_than_a_voxel_is_an_error_not_a_perfect_score():
    pred, ref = _lung_pair()
    with pytest.raises(ValueError, match=r"a rim band of 0.5 mm holds no voxel at spacing "
                                         r"2.5 x 1.3 x 0.7 mm: widen it$"):
        score_case(pred, ref, SPACING, rim_mm=0.5)


def test_shape_mismatch_is_a_one_line_value_error():
    with pytest.raises(ValueError, match=r"prediction shape \(10, 10, 9\) differs") as err:
        score_case(np.zeros((10, 10, 9)), np.zeros((10, 10, 10)), SPACING)
    assert "\n" not in str(err.value)


@pytest.fixture
def three_cases(tmp_path, image_writer):
    """pred/ and ref/ folders of three small NIfTI cases, the third predicted worst."""
    for i, shift in enumerate((0, 1, 3)):
        ref = _box(shape=(12, 16, 16), lo=(3, 4, 4), hi=(9, 12, 12))
        pred = _box(shape=(12, 16, 16), lo=(3, 4, 4 + shift), hi=(9, 12, 12 + shift))
        image_writer(tmp_path / "ref" / f"case{i}.nii.gz", ref, spacing=(0.8, 0.8, 2.0))
        image_writer(tmp_path / "pred" / f"case{i}.nii.gz", pred, spacing=(0.8, 0.8, 2.0))
    return tmp_path


def test_evaluate_cases_writes_the_three_files(three_cases):
    cases = match_cases(three_cases / "pred", three_cases / "ref")
    assert [case[0] for case in cases] == ["case0", "case1", "case2"]
    per_case, summary = evaluate_cases(cases, three_cases / "out", progress=False)
    assert sorted(p.name for p in (three_cases / "out").iterdir()) == \
        ["per_case.csv", "report.png", "summary.csv"]
    written = pd.read_csv(three_cases / "out" / "per_case.csv")
    assert list(written.columns[:3]) == ["case", "label", "dice"] and len(written) == 3
    assert written.set_index("case").loc["case0", "dice"] == 1.0
    assert summary.set_index("metric").loc["dice", "worst_case"] == "case2"
    assert not pd.read_csv(three_cases / "out" / "summary.csv").isna().any().any()


def test_case_folders_give_their_lung_and_lesion_masks(three_cases):
    """A source folder as ingest reads it is a reference: each case folder's lung mask, its
    lesion mask for --lesions; a case without a lung mask (unlabelled) has no reference."""
    src = three_cases / "src"
    for i in range(3):
        (src / f"case{i}").mkdir(parents=True)
        (three_cases / "ref" / f"case{i}.nii.gz").rename(src / f"case{i}" / "lung.nii.gz")
    (src / "case1" / "lung.nii.gz").rename(src / "case1" / "image.nii.gz")  # no label
    (src / "case2" / "image.nii.gz").write_bytes((src / "case2" / "lung.nii.gz").read_bytes())
    cases = match_cases(three_cases / "pred", src)
    assert [(name, ref.name) for name, _, ref, _ in cases] == [("case0", "lung.nii.gz"),
                                                               ("case2", "lung.nii.gz")]
    (src / "case2" / "lesion.nii.gz").write_bytes((src / "case2" / "lung.nii.gz").read_bytes())
    with pytest.warns(UserWarning, match="1 of 2 cases have no lesion mask .*: case0"):
        cases = match_cases(three_cases / "pred", src, src)
    assert cases[1][3] == src / "case2" / "lesion.nii.gz"


def test_a_report_that_cannot_read_its_scans_leaves_no_tables(three_cases):
    (three_cases / "images").mkdir()
    (three_cases / "images" / "case2.nii.gz").write_bytes(b"not an image")  # the worst case
    with pytest.raises(InputError, match=r"case2.nii.gz: truncated or corrupt"):
        evaluate_cases(match_cases(three_cases / "pred", three_cases / "ref"), three_cases / "out",
                       images={"case2": three_cases / "images" / "case2.nii.gz"}, progress=False)
    assert not (three_cases / "out").exists() or not any((three_cases / "out").iterdir())


def test_grid_mismatch_is_a_one_line_input_error(three_cases, image_writer):
    image_writer(three_cases / "pred" / "case1.nii.gz", _box(shape=(12, 16, 16)),
                 spacing=(0.8, 0.8, 2.5))
    with pytest.raises(InputError, match="grid differs from the reference") as err:
        evaluate_cases(match_cases(three_cases / "pred", three_cases / "ref"),
                       three_cases / "out", progress=False)
    assert err.value.path.endswith("case1.nii.gz") and "\n" not in str(err.value)
    assert "spacing (0.8, 0.8, 2.5) vs (0.8, 0.8, 2.0)" in str(err.value)


def test_missing_prediction_errors_and_extra_one_warns(three_cases, image_writer):
    image_writer(three_cases / "pred" / "extra.nii.gz", _box())
    with pytest.warns(UserWarning, match="no reference and are ignored: extra"):
        match_cases(three_cases / "pred", three_cases / "ref")
    (three_cases / "pred" / "case2.nii.gz").unlink()
    with pytest.raises(InputError, match="no prediction for case 'case2' in .*pred"):
        match_cases(three_cases / "pred", three_cases / "ref")


def test_lesion_folder_and_single_files(three_cases, image_writer):
    lesion = _box(shape=(12, 16, 16), lo=(5, 6, 10), hi=(7, 8, 14))    # x 10..13; case1 to x 12
    image_writer(three_cases / "lesions" / "case1.nii.gz", lesion, spacing=(0.8, 0.8, 2.0))
    image_writer(three_cases / "lesions" / "case_1.nii.gz", lesion, spacing=(0.8, 0.8, 2.0))
    with pytest.warns(UserWarning) as caught:  # a misnamed lesion mask was once dropped silently
        cases = match_cases(three_cases / "pred", three_cases / "ref", three_cases / "lesions")
    assert [str(w.message).split(" in ")[0] for w in caught] == [
        "1 lesion mask(s)", "2 of 3 cases have no lesion mask"]
    assert str(caught[0].message).endswith("have no reference and are ignored: case_1")
    assert [case[3] is not None for case in cases] == [False, True, False]
    per_case, summary = evaluate_cases(cases, three_cases / "out", progress=False)
    assert per_case.set_index("case").loc["case1", "lesion_inclusion"] == 0.75
    pooled = summary.set_index("metric").loc["lesion_inclusion_pooled"]
    assert pooled["mean"] == 0.75 and pooled["cases"] == 1
    pred, ref = three_cases / "pred" / "case2.nii.gz", three_cases / "ref" / "case2.nii.gz"
    assert match_cases(pred, ref) == [("case2", pred, ref, None)]
    with pytest.raises(InputError, match="is a folder but the reference .* is one file"):
        match_cases(three_cases / "pred", ref)
