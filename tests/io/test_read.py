"""Reading volumes and masks: every unfit file is an InputError naming it."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from raylung.errors import InputError
from raylung.io.read import data_files, read_mask, read_mask_on, read_volume


def test_formats_read_the_same_voxels(tmp_path, image_writer):
    array = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    for suffix in (".nii.gz", ".mha", ".nrrd"):
        path = image_writer(tmp_path / f"ct{suffix}", array, spacing=(0.7, 0.7, 2.5))
        image = read_volume(path)
        assert np.array_equal(sitk.GetArrayFromImage(image), array)
        assert np.allclose(image.GetSpacing(), (0.7, 0.7, 2.5))


def test_dicom_series_folder_reads_as_volume(tmp_path):
    import pydicom.data

    src = pydicom.data.get_testdata_file("CT_small.dcm")
    shutil.copy(src, tmp_path / "slice.dcm")
    image = read_volume(tmp_path)
    assert image.GetSize() == (128, 128, 1)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="nope.nii.gz: file not found"):
        read_volume(tmp_path / "nope.nii.gz")


@pytest.mark.parametrize("name, words", [("ct.nii.gz", "truncated or corrupt compressed data"),
                                         ("ct.nii", "truncated NIfTI: 1352 of 2400 bytes")])
def test_truncated_nifti(tmp_path, image_writer, name, words):
    """SimpleITK zero-fills a truncated NIfTI silently; raylung must refuse it."""
    path = image_writer(tmp_path / name, np.ones((8, 8, 16), np.int16))
    data = path.read_bytes()
    path.write_bytes(data[:1352] if name == "ct.nii" else data[:-10])
    with pytest.raises(InputError, match=rf"{name}: {words}"):
        read_volume(path)


def test_truncated_metaimage(tmp_path, image_writer):
    """ITK's reason is a stale "No such file or directory"; the file is there."""
    path = image_writer(tmp_path / "ct.mha", np.ones((8, 8, 16), np.int16))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputError, match=r"ct.mha: unreadable image \(truncated or corrupt "
                                         r"file\)$"):
        read_volume(path)


@pytest.mark.parametrize("name", ["CT.NII.GZ", "ct.Nii"])
def test_upper_case_nifti_names_get_the_nifti_checks(tmp_path, image_writer, name):
    """SimpleITK zero-fills a truncated NIfTI whatever its name's case."""
    path = image_writer(tmp_path / "ct.nii.gz" if name.endswith("GZ") else tmp_path / "ct.nii",
                        np.ones((8, 8, 16), np.int16))
    data = path.read_bytes()
    path.unlink()
    (tmp_path / name).write_bytes(data[:-10] if name.endswith("GZ") else data[:1352])
    with pytest.raises(InputError, match=rf"{name}: truncated"):
        read_volume(tmp_path / name)


def test_analyze_pairs_are_refused(tmp_path, image_writer):
    """A .hdr/.img pair escapes the NIfTI checks; one line says to convert it."""
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((4, 5, 6), np.int16)), str(tmp_path / "a.hdr"))
    with pytest.raises(InputError, match=r"a.hdr: Analyze or NIfTI pairs \(.hdr/.img\) are not "
                                         r"read"):
        read_volume(tmp_path / "a.hdr")


def test_a_dicom_series_with_a_missing_slice_is_refused(tmp_path, dicom_writer):
    """ITK only warns and spreads the slices evenly, shifting every one after the gap."""
    image = sitk.GetImageFromArray(np.zeros((10, 16, 16), np.int16))
    image.SetSpacing((0.7, 0.7, 2.5))
    folder = dicom_writer(image, tmp_path / "series")
    assert read_volume(folder).GetSize() == (16, 16, 10)
    (folder / "slice_0004.dcm").unlink()
    with pytest.raises(InputError, match=r"series: slices are unevenly spaced \(2.50 to 5.00 mm "
                                         r"apart\): a missing or duplicate slice\?$"):
        read_volume(folder)


def test_zero_byte_file(tmp_path):
    (tmp_path / "ct.nii.gz").write_bytes(b"")
    with pytest.raises(InputError, match=r"ct.nii.gz: file is empty"):
        read_volume(tmp_path / "ct.nii.gz")


def test_garbage_dicom_folder(tmp_path):
    (tmp_path / "dcm").mkdir()
    (tmp_path / "dcm" / "a.dcm").write_bytes(b"not a dicom file" * 10)
    with pytest.raises(InputError, match=r"dcm: folder holds no readable DICOM series"):
        read_volume(tmp_path / "dcm")


@pytest.mark.parametrize("name", ["slice.png", "slice.nii.gz"])
def test_2d_image_rejected(tmp_path, image_writer, name):
    path = image_writer(tmp_path / name, np.zeros((16, 16), np.uint8))
    with pytest.raises(InputError, match=rf"{name}: image is 2-D, expected a 3-D volume"):
        read_volume(path)


def test_vector_pixels_rejected(tmp_path):
    image = sitk.Image([4, 4, 4], sitk.sitkVectorFloat32, 3)
    sitk.WriteImage(image, str(tmp_path / "rgb.mha"))
    with pytest.raises(InputError, match=r"rgb.mha: pixel type vector of 32-bit float is not a scalar"):
        read_volume(tmp_path / "rgb.mha")


def test_float_mask_with_whole_numbers_is_a_label_map(tmp_path, image_writer):
    path = image_writer(tmp_path / "m.nii.gz", np.array([[[0, 1], [2, 0]]], np.float32))
    assert sitk.GetArrayFromImage(read_mask(path)).tolist() == [[[0, 1], [2, 0]]]


def test_probability_mask_rejected(tmp_path, image_writer):
    path = image_writer(tmp_path / "m.nii.gz", np.full((2, 2, 2), 0.7, np.float32))
    with pytest.raises(InputError, match="m.nii.gz: mask is not an integer label map"):
        read_mask(path)


def test_a_ct_scan_given_as_a_mask_is_refused(tmp_path, image_writer):
    """evaluate scored a scan given as --pred (volume difference 3529 %) without a word."""
    path = image_writer(tmp_path / "ct.nii.gz", np.full((2, 4, 4), -1024, np.int16))
    with pytest.raises(InputError, match=r"ct.nii.gz: mask has negative labels \(down to "
                                         r"-1024\): a CT scan, not a label map\?$"):
        read_mask(path)


def test_zero_size_volume(tmp_path):
    header = ("ObjectType = Image\nNDims = 3\nDimSize = 10 10 0\nElementType = MET_SHORT\n"
              "ElementSpacing = 1 1 1\nElementDataFile = LOCAL\n")
    (tmp_path / "empty.mha").write_text(header)
    with pytest.raises(InputError, match=r"empty.mha: image has zero size \(10, 10, 0\)"):
        read_volume(tmp_path / "empty.mha")


@pytest.mark.parametrize("name", ["ct.nii.gz", "ct.nii", "ct.mha"])
def test_nan_and_inf_voxels_rejected(tmp_path, image_writer, name):
    """SimpleITK reads NaN in NIfTI as 0; raylung must still see it."""
    array = np.zeros((6, 7, 8), np.float32)
    array[0, 0, 0], array[5, 6, 7] = np.nan, np.inf
    path = image_writer(tmp_path / name, array)
    with pytest.raises(InputError, match=rf"{name}: image has 2 NaN/inf voxels"):
        read_volume(path)


def test_float64_nifti_without_nan_reads(tmp_path, image_writer):
    path = image_writer(tmp_path / "ct.nii.gz", np.full((6, 7, 8), -500.0))
    assert read_volume(path).GetSize() == (8, 7, 6)


def test_a_mask_whose_header_was_lost_is_refused_however_its_box_overlaps(tmp_path):
    """A label map saved from numpy (origin 0, spacing 1) still touches the scan's box, so
    the overlap check alone resampled it into the wrong place; the same mask reoriented (to
    RAS, other origin and direction, same voxels in space) is fine."""
    image = sitk.GetImageFromArray(np.zeros((40, 64, 64), np.int16))
    image.SetSpacing((0.7, 0.7, 2.5))
    image.SetOrigin((-22.0, -22.0, 10.0))
    lung = np.zeros((40, 64, 64), np.uint8)
    lung[5:35, 10:54, 8:30] = 1
    mask = sitk.GetImageFromArray(lung)
    mask.CopyInformation(image)
    reoriented = sitk.DICOMOrient(mask, "RAS")
    assert reoriented.GetDirection() != mask.GetDirection()
    sitk.WriteImage(reoriented, str(tmp_path / "ras.nii.gz"))
    assert np.array_equal(sitk.GetArrayFromImage(read_mask_on(tmp_path / "ras.nii.gz", image)),
                          lung)
    sitk.WriteImage(sitk.GetImageFromArray(lung), str(tmp_path / "lost.nii.gz"))
    with pytest.raises(InputError, match=r"lost.nii.gz: only \d+% of the mask's labelled voxels "
                                         r"lie inside its image: its origin, spacing or "
                                         r"direction do not match the image's$"):
        read_mask_on(tmp_path / "lost.nii.gz", image)


@pytest.mark.parametrize("suffix", [".mhd", ".nhdr"])
def test_a_missing_data_file_is_named(tmp_path, image_writer, suffix):
    """ITK said "No such file" of the header, which is there."""
    path = image_writer(tmp_path / f"ct{suffix}", np.ones((4, 5, 6), np.int16))
    (tmp_path / "ct.raw").unlink()
    with pytest.raises(InputError, match=rf"ct{suffix}: data file {tmp_path}/ct.raw named by the "
                                         r"header is missing$"):
        read_volume(path)


@pytest.mark.parametrize("header, names", [
    ("ElementDataFile = LOCAL\n", []),
    ("ElementDataFile = /abs/ct.raw\n", ["/abs/ct.raw"]),
    ("ElementDataFile = LIST 2D\ns1.raw\ns2.raw\n", ["s1.raw", "s2.raw"]),
    ("ElementDataFile = s%02d.raw 1 5 2\n", ["s01.raw", "s03.raw", "s05.raw"]),
])
def test_data_files_of_a_metaimage_header(tmp_path, header, names):
    (tmp_path / "ct.mhd").write_text(f"ObjectType = Image\nNDims = 3\n{header}")
    assert data_files(tmp_path / "ct.mhd") == [tmp_path / name for name in names]


@pytest.mark.parametrize("field, names", [
    ("", []),  # attached: the voxels follow the blank line
    ("data file: ../ct.raw.gz\n", ["../ct.raw.gz"]),
    ("datafile: LIST\ns1.raw\ns2.raw\n", ["s1.raw", "s2.raw"]),
    ("data file: s%d.raw 0 2 1 2\n", ["s0.raw", "s1.raw", "s2.raw"]),
])
def test_data_files_of_a_nrrd_header(tmp_path, field, names):
    (tmp_path / "ct.nrrd").write_bytes(f"NRRD0004\ntype: short\n{field}\n".encode() + bytes(8))
    assert data_files(tmp_path / "ct.nrrd") == [tmp_path / name for name in names]


@pytest.mark.parametrize("index", [0, 9])
def test_a_truncated_first_or_last_dicom_slice_is_named(tmp_path, dicom_writer, index):
    """GDCM dropped it without a word, and the other slices are still evenly spaced."""
    image = sitk.GetImageFromArray(np.zeros((10, 16, 16), np.int16))
    folder = dicom_writer(image, tmp_path / "series")
    slice_ = folder / f"slice_{index:04d}.dcm"
    slice_.write_bytes(slice_.read_bytes()[:-100])
    with pytest.raises(InputError, match=rf"series/slice_{index:04d}.dcm: unreadable DICOM file: "
                                         r"truncated or corrupt\?$"):
        read_volume(folder)


def test_a_dicom_report_beside_the_slices_is_no_slice(tmp_path, dicom_writer):
    """GDCM leaves a structured report (no pixels) out of every series, rightly."""
    import pydicom.data

    folder = dicom_writer(sitk.GetImageFromArray(np.zeros((3, 16, 16), np.int16)),
                          tmp_path / "series")
    shutil.copy(pydicom.data.get_testdata_file("test-SR.dcm"), folder / "report.dcm")
    assert read_volume(folder).GetSize() == (16, 16, 3)


def test_a_file_name_that_is_not_utf8_is_refused_before_simpleitk(tmp_path, image_writer):
    """SimpleITK aborts the whole process (SIGABRT) on such a name."""
    path = image_writer(tmp_path / "ct.nii.gz", np.ones((2, 2, 2), np.int16))
    folder = os.fsencode(tmp_path) + b"/dicom\xff"
    os.mkdir(folder)
    os.rename(path, os.fsencode(tmp_path) + b"/ct\xff.nii.gz")
    for bad, shown in ((os.fsdecode(folder), "dicom"), (str(tmp_path / "ct\udcff.nii.gz"), "ct")):
        with pytest.raises(InputError, match=rf"{shown}\\xff(.nii.gz)?: file name is not valid "
                                             r"UTF-8 \(SimpleITK cannot open it: rename it\)$"):
            read_volume(bad)


def test_a_singular_nrrd_direction_gives_itks_reason_not_a_matrix_row(tmp_path):
    header = ("NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\n"
              "sizes: 2 2 2\nspace directions: (1,0,0) (1,0,0) (0,0,1)\nencoding: raw\n"
              "endian: little\nspace origin: (0,0,0)\n\n")
    (tmp_path / "ct.nrrd").write_bytes(header.encode() + bytes(16))
    with pytest.raises(InputError, match=r"ct.nrrd: unreadable image \(Bad direction, "
                                         r"determinant is 0\)$"):
        read_volume(tmp_path / "ct.nrrd")
