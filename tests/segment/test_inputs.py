"""What ``raylung segment INPUT --out OUTPUT`` plans: one scan or a batch, and mask names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from raylung.cli import main
from raylung.errors import InputError
from raylung.segment.inputs import Job, pending, plan_jobs


def _scan(image_writer, path):
    return image_writer(path, np.zeros((4, 8, 8), np.int16))


def test_one_file_writes_output_as_given_or_into_a_folder(image_writer, tmp_path):
    scan = _scan(image_writer, tmp_path / "ct_01.nii.gz")
    assert plan_jobs(scan, tmp_path / "lung.nrrd") == (
        [Job("ct_01", str(scan), str(tmp_path / "lung.nrrd"))], False)
    jobs, batch = plan_jobs(scan, tmp_path / "masks")
    assert not batch and jobs[0].output == str(tmp_path / "masks" / "ct_01.nii.gz")
    assert jobs[0].probability == str(tmp_path / "masks" / "ct_01_probability.nii.gz")


def test_dicom_folder_is_one_scan(dicom_writer, tmp_path):
    folder = dicom_writer(sitk.Image((8, 8, 3), sitk.sitkInt16), tmp_path / "patient7")
    jobs, batch = plan_jobs(folder, tmp_path / "out")
    assert not batch and jobs == [Job("patient7", str(folder), str(tmp_path / "out" /
                                                                   "patient7.nii.gz"))]


def test_folder_of_scans_and_dicom_folders_is_a_batch(image_writer, dicom_writer, tmp_path):
    src = tmp_path / "scans"
    _scan(image_writer, src / "a.nii.gz")
    _scan(image_writer, src / "b.mha")
    dicom_writer(sitk.Image((8, 8, 3), sitk.sitkInt16), src / "c")
    _scan(image_writer, src / "d.mhd")                            # d.raw: its data, read with it
    (src / "notes.txt").write_text("not a scan")
    (src / "e.hdr").write_bytes(b"\0" * 348)                      # Analyze: not read
    (src / ".git").mkdir()                                       # hidden: no scans
    _scan(image_writer, src / ".b.1a2b3c4d.tmp.nii.gz")           # a killed write's temp file
    with pytest.warns(UserWarning, match=r"scans: e.hdr, notes.txt not read: not a scan "
                                         r"\(suffixes read: .nii.gz, "):
        jobs, batch = plan_jobs(src, tmp_path / "masks")
    assert batch and [j.name for j in jobs] == ["a", "b", "c", "d"]
    assert {j.output for j in jobs} == {str(tmp_path / "masks" / f"{n}.nii.gz") for n in "abcd"}


def test_case_folders_as_ingest_reads_them_are_scans_named_after_the_folder(image_writer,
                                                                           tmp_path):
    """The layout of "Your own scans" (<case>/image.nii.gz, lung.nii.gz) was read as DICOM
    folders: "folder holds no readable DICOM series"."""
    src = tmp_path / "sick"
    _scan(image_writer, src / "p1" / "image.nii.gz")
    _scan(image_writer, src / "p1" / "lung.nii.gz")
    _scan(image_writer, src / "p2" / "image.mha")
    _scan(image_writer, src / "p3.nrrd")
    jobs, batch = plan_jobs(src, tmp_path / "masks")
    assert batch and [(j.name, Path(j.image).name) for j in jobs] == [
        ("p1", "image.nii.gz"), ("p2", "image.mha"), ("p3", "p3.nrrd")]
    _scan(image_writer, src / "p4" / "lung.nii.gz")
    with pytest.raises(InputError, match=r"p4: case folder without its scan \(image.<suffix>"):
        plan_jobs(src, tmp_path / "masks")
    _scan(image_writer, src / "p4" / "image.nii.gz")
    (src / "p4" / "image").mkdir()
    with pytest.raises(InputError, match=r"p4: image.nii.gz and image/ are both its image: "):
        plan_jobs(src, tmp_path / "masks")


def test_table_names_masks_by_case_id_and_resolves_relative_paths(image_writer, tmp_path):
    _scan(image_writer, tmp_path / "data" / "x.nii.gz")
    pd.DataFrame({"case_id": ["p1"], "image": ["data/x.nii.gz"]}).to_csv(tmp_path / "t.csv",
                                                                         index=False)
    jobs, batch = plan_jobs(tmp_path / "t.csv", tmp_path / "masks")
    assert batch and jobs == [Job("p1", str(tmp_path / "data" / "x.nii.gz"),
                                  str(tmp_path / "masks" / "p1.nii.gz"))]
    pd.DataFrame({"path": ["x"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputError, match="bad.csv: table lacks column\\(s\\) image"):
        plan_jobs(tmp_path / "bad.csv", tmp_path / "masks")
    (tmp_path / "empty.csv").write_text("image\n")
    with pytest.raises(InputError, match="empty.csv: table has no rows$"):
        plan_jobs(tmp_path / "empty.csv", tmp_path / "masks")
    (tmp_path / "blank.csv").write_text("case_id,image\np1,data/x.nii.gz\np2,\n")
    with pytest.raises(InputError, match=r"blank.csv: row 2 \(after the header\) has no image$"):
        plan_jobs(tmp_path / "blank.csv", tmp_path / "masks")
    pd.DataFrame({"case_id": ["p1", "p2"], "image": ["data/x.nii.gz", None]}).to_parquet(
        tmp_path / "blank.parquet")  # read back as NaN
    with pytest.raises(InputError, match=r"blank.parquet: row 2 \(after the header\) has no "):
        plan_jobs(tmp_path / "blank.parquet", tmp_path / "masks")


def test_a_dicom_file_named_without_a_suffix_keeps_its_name(tmp_path):
    """``IM0001`` once became ``None.nii.gz``, and two such scans overwrote each other."""
    import pydicom.data

    for name in ("IM0001", "IM0002"):
        (tmp_path / name).write_bytes(Path(pydicom.data.get_testdata_file("CT_small.dcm"))
                                      .read_bytes())
    jobs, batch = plan_jobs(tmp_path / "IM0001", tmp_path / "masks")
    assert not batch and jobs[0].output == str(tmp_path / "masks" / "IM0001.nii.gz")
    pd.DataFrame({"image": ["IM0001", "IM0002"]}).to_csv(tmp_path / "t.csv", index=False)
    jobs, _ = plan_jobs(tmp_path / "t.csv", tmp_path / "masks")
    assert [job.name for job in jobs] == ["IM0001", "IM0002"]


def test_two_scans_with_one_name_and_empty_folders_are_errors(image_writer, tmp_path):
    _scan(image_writer, tmp_path / "twice" / "a.nii.gz")
    _scan(image_writer, tmp_path / "twice" / "a.mha")
    with pytest.raises(InputError, match="two scans are named 'a'"):
        plan_jobs(tmp_path / "twice", tmp_path / "masks")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: folder holds no DICOM series, image files"):
        plan_jobs(tmp_path / "empty", tmp_path / "masks")
    with pytest.raises(InputError, match="nowhere: input not found"):
        plan_jobs(tmp_path / "nowhere", tmp_path / "masks")


@pytest.mark.parametrize("command", ["segment", "synth"])
def test_an_output_over_an_input_scan_is_refused_before_anything_runs(command, image_writer,
                                                                      tmp_path, capsys):
    """``--out`` the input's own folder (or the scan itself) would replace the CT with its
    mask or its synthetic twin: one line, exit 2, the scans untouched."""
    scans = tmp_path / "scans"
    a = _scan(image_writer, scans / "a.nii.gz")
    _scan(image_writer, scans / "b.nii.gz")
    before = a.read_bytes()
    for out in (scans, a):
        assert main([command, str(scans if out == scans else a), "--model", "m.pt",
                     "--out", str(out)]) == 2
        assert capsys.readouterr().err == (f"raylung {command}: error: {a}: is an input scan: "
                                           "the output would overwrite it (choose another "
                                           "--out)\n")
    pd.DataFrame({"case_id": ["b"], "image": [str(scans / "b.nii.gz")]}).to_csv(
        tmp_path / "t.csv", index=False)
    with pytest.raises(InputError, match="b.nii.gz: is an input scan"):
        plan_jobs(tmp_path / "t.csv", scans)
    assert a.read_bytes() == before


def test_a_batch_folder_never_holds_two_models_outputs_under_one_record(tmp_path):
    """Model A on a, b, c, then B on a, then B on all: b and c are B's, not A's kept; the same
    names from another folder are other scans, run again."""
    def run(model: str, names: str, source: str = "scans") -> tuple[list[str], dict[str, str]]:
        jobs = [Job(n, f"/{source}/{n}.nii.gz", str(tmp_path / f"{n}.nii.gz")) for n in names]
        todo = pending(jobs, tmp_path, {"model": model}, lambda job: [job.output])
        for job in todo:
            Path(job.output).write_text(model)
        return [j.name for j in todo], {p.name[0]: p.read_text() for p in tmp_path.glob("*.gz")}

    assert run("A", "abc") == (["a", "b", "c"], {"a": "A", "b": "A", "c": "A"})
    assert run("B", "a") == (["a"], {"a": "B"})
    assert run("B", "abc") == (["b", "c"], {"a": "B", "b": "B", "c": "B"})
    assert run("B", "abc")[0] == []
    assert run("B", "ab", "elsewhere")[0] == ["a", "b"]
