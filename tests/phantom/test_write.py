"""Writing the phantom data set: files, cases.csv, exact read-back, atomicity, determinism."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from raylung.config import PhantomConfig
from raylung.phantom import make_case, write_phantoms
from raylung.phantom.write import pathological_cases

CONFIG = PhantomConfig(cases=5, pathological_fraction=0.4, seed=2, size=64, slices=(8, 10))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The data set folder and the table write_phantoms returned."""
    out = tmp_path_factory.mktemp("phantoms")
    return out, write_phantoms(out, CONFIG)


def _read_csv(out) -> pd.DataFrame:
    return pd.read_csv(out / "cases.csv", dtype=str, keep_default_na=False)


def _read_array(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _digests(out) -> dict[str, str]:
    files = sorted(p for p in out.rglob("*") if p.is_file())
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_cases_csv_has_the_columns_and_relative_paths(written):
    out, _ = written
    table = _read_csv(out)
    assert list(table.columns) == ["case_id", "image", "lung", "lesion", "twin", "domain"]
    assert all(table.twin == "")  # twins only when phantom.twins asks for them
    assert list(table.case_id) == [f"phantom_{i:04d}" for i in range(5)]
    assert all(table.image == table.case_id + "/image.nii.gz")
    assert all(table.lung == table.case_id + "/lung.nii.gz")


def test_exactly_the_rounded_fraction_is_pathological(written):
    table = _read_csv(written[0])
    assert table.domain.value_counts().to_dict() == {"healthy": 3, "pathological": 2}
    sick = table.domain == "pathological"
    assert all(table.lesion[sick] == table.case_id[sick] + "/lesion.nii.gz")
    assert all(table.lesion[~sick] == "")


def test_every_listed_file_exists_and_healthy_cases_have_no_lesion_file(written):
    out, _ = written
    for row in _read_csv(out).itertuples():
        assert (out / row.image).is_file() and (out / row.lung).is_file()
        assert (out / row.case_id / "lesion.nii.gz").is_file() == (row.domain == "pathological")


def test_returned_table_matches_cases_csv(written):
    out, table = written
    pd.testing.assert_frame_equal(table, _read_csv(out))


def test_volumes_read_back_as_the_made_case(written):
    out, table = written
    for index, row in enumerate(table.itertuples()):
        sick = row.domain == "pathological"
        case = make_case(CONFIG.seed, index, sick, CONFIG.size, CONFIG.slices)
        image = sitk.ReadImage(str(out / row.image))
        assert image.GetSpacing() == case.spacing
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), case.image)
        np.testing.assert_array_equal(_read_array(out / row.lung), case.lung)
        if sick:
            np.testing.assert_array_equal(_read_array(out / row.lesion), case.lesion)


def test_volumes_are_centred_with_identity_direction(written):
    out, table = written
    image = sitk.ReadImage(str(out / table.image[0]))
    centre = image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()])
    assert np.allclose(centre, 0.0, atol=1e-3)
    assert image.GetDirection() == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def test_no_temporary_files_are_left(written):
    assert not [p for p in written[0].rglob("*") if ".tmp" in p.name]


def test_rerun_rewrites_the_folder_identically(written):
    out, _ = written
    before = _digests(out)
    write_phantoms(out, CONFIG)
    assert _digests(out) == before


def test_a_rerun_with_other_settings_leaves_no_earlier_table_or_volume(tmp_path):
    """A rerun killed half-way left the old cases.csv naming new volumes (a pathological scan
    listed as healthy); a case that is healthy now kept an earlier run's lesion mask."""
    write_phantoms(tmp_path, CONFIG)
    lesions = {p.parent.name for p in tmp_path.glob("*/lesion.nii.gz")}
    (tmp_path / "phantom_0005").write_text("a file where a case folder goes: the write fails")
    with pytest.raises(FileExistsError):
        write_phantoms(tmp_path, CONFIG.model_copy(update={"seed": 3, "cases": 6}))
    assert not (tmp_path / "cases.csv").exists()  # the folder says it is incomplete
    table = write_phantoms(tmp_path, CONFIG.model_copy(update={"pathological_fraction": 0.0}))
    assert lesions and not list(tmp_path.glob("*/lesion.nii.gz"))
    assert (table["domain"] == "healthy").all()


def test_pathological_selection_is_exact_and_seeded():
    flags = pathological_cases(10, 0.35, seed=4)
    assert flags.sum() == round(10 * 0.35)
    np.testing.assert_array_equal(flags, pathological_cases(10, 0.35, seed=4))
    assert not np.array_equal(flags, pathological_cases(10, 0.35, seed=5))


def test_progress_is_shown_on_stderr_only_for_several_cases(tmp_path, capsys):
    write_phantoms(tmp_path / "one", CONFIG.model_copy(update={"cases": 1}))
    assert capsys.readouterr().err == ""
    write_phantoms(tmp_path / "two", CONFIG.model_copy(update={"cases": 2}))
    captured = capsys.readouterr()
    assert "phantoms" in captured.err and captured.out == ""
